"""Models from a config: the one place that reads the `flow`, `unet`, `diffusion` and `model`
sections; the layers in `flows/`, `nets/` and `diffusion/` take plain arguments."""
from typing import Tuple

import jax.numpy as jnp
import ml_collections

from dfflows.diffusion import ode, schedules
from dfflows.diffusion.gaussian_diffusion import GaussianDiffusion
from dfflows.flows.multiscale import MultiScaleFlow, StepSettings
from dfflows.models.common import DiffusionSettings
from dfflows.models.ddpm import PixelDDPM
from dfflows.models.diffflow import DiffFlow, latent_shape
from dfflows.models.flow_only import FlowOnly
from dfflows.models.interface import Model
from dfflows.nets.unet import UNet

MODEL_KINDS = ('diffflow', 'flow', 'ddpm')


def image_shape(config: ml_collections.ConfigDict) -> Tuple[int, int, int]:
  """(H, W, C) of the preprocessed images of `config.data`."""
  return (config.data.image_size, config.data.image_size, config.data.channels)


def build_flow(flow: ml_collections.ConfigDict, conv_impl: str) -> MultiScaleFlow:
  """The MultiScaleFlow of a `config.flow` section; an option the layers do not accept (an
  unknown coupling, mask, conv1x1 or conv_impl, a count below 1) is a ValueError here."""
  step = StepSettings(
      hidden_channels=flow.hidden_channels, num_res_blocks=flow.num_res_blocks,
      coupling=flow.coupling, num_bins=flow.num_bins, tail_bound=flow.tail_bound, mask=flow.mask,
      conv1x1=flow.conv1x1, conv_impl=conv_impl)
  return MultiScaleFlow(num_levels=flow.num_levels, num_steps=flow.num_steps, step=step,
                        scan=flow.scan, logit_alpha=flow.logit_alpha)


def build_unet(unet: ml_collections.ConfigDict, out_channels: int, conv_impl: str) -> UNet:
  """The U-Net of a `config.unet` section with `out_channels` outputs."""
  return UNet(ch=unet.ch, ch_mult=tuple(unet.ch_mult), num_res_blocks=unet.num_res_blocks,
              attn_resolutions=tuple(unet.attn_resolutions), dropout=unet.dropout,
              num_heads=unet.num_heads, out_channels=out_channels, conv_impl=conv_impl,
              dtype=jnp.dtype(unet.dtype), remat=unet.remat)


def build_diffusion(diffusion: ml_collections.ConfigDict, decoder: str) -> GaussianDiffusion:
  """The GaussianDiffusion of a `config.diffusion` section with the given decoder."""
  betas = schedules.get_beta_schedule(diffusion.schedule, diffusion.num_timesteps)
  return GaussianDiffusion(betas, learn_sigma=diffusion.learn_sigma, decoder=decoder)


def build_model(config: ml_collections.ConfigDict) -> Model:
  """The DiffFlow, FlowOnly or PixelDDPM model that `config.model.kind` names."""
  kind = config.model.kind
  shape = image_shape(config)
  conv_impl = config.model.conv_impl
  if kind == 'flow':
    return FlowOnly(flow=build_flow(config.flow, conv_impl), image_shape=shape)
  outputs = 2 if config.diffusion.learn_sigma else 1
  settings = DiffusionSettings(
      vlb_weight=config.diffusion.vlb_weight, sampler=config.diffusion.sampler,
      ddim_eta=config.diffusion.ddim_eta, eps_skip=config.model.eps_skip,
      variance_skip=config.model.variance_skip, t_sampling=config.model.t_sampling,
      control_variate=config.model.gaussian_control_variate,
      bound_control_variate=config.eval.bound_control_variate)
  if kind == 'ddpm':
    for key, on in (('model.gaussian_control_variate', settings.control_variate),
                    ('eval.bound_control_variate', settings.bound_control_variate)):
      if on:
        raise ValueError(f'{key} is for a DiffFlow (a continuous latent); the pixel DDPM\'s '
                         'discretized decoder has no N(0, I) density to match.')
    return PixelDDPM(unet=build_unet(config.unet, shape[2] * outputs, conv_impl),
                     diffusion=build_diffusion(config.diffusion, 'discretized'),
                     image_shape=shape, settings=settings)
  if kind == 'diffflow':
    channels = latent_shape(shape, config.model.latent_squeeze, config.model.prior,
                            config.flow.num_levels)[2] * outputs
    return DiffFlow(flow=build_flow(config.flow, conv_impl),
                    unet=build_unet(config.unet, channels, conv_impl),
                    diffusion=build_diffusion(config.diffusion, 'continuous'), image_shape=shape,
                    latent_squeeze=config.model.latent_squeeze, objective=config.model.objective,
                    unet_loss=config.model.unet_loss, prior=config.model.prior, settings=settings,
                    ode_schedule=ode.VPSchedule(config.diffusion.schedule,
                                                config.diffusion.num_timesteps))
  raise ValueError(f'Unknown model.kind {kind!r}; expected one of {MODEL_KINDS}.')
