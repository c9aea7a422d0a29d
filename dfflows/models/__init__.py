"""Models by config: `model.kind` = 'diffflow' | 'flow' | 'ddpm'."""
import dataclasses

import ml_collections

from dfflows.diffusion.gaussian_diffusion import GaussianDiffusion
from dfflows.flows import build_flow
from dfflows.models.ddpm import PixelDDPM
from dfflows.models.diffflow import DiffFlow
from dfflows.models.flow_only import FlowOnly
from dfflows.nets.unet import build_unet

MODEL_KINDS = ('diffflow', 'flow', 'ddpm')


def image_shape(config: ml_collections.ConfigDict) -> tuple:
  """(H, W, C) of the preprocessed images of `config.data`."""
  return (config.data.image_size, config.data.image_size, config.data.channels)


def build_model(config: ml_collections.ConfigDict):
  """Builds the DiffFlow, FlowOnly or PixelDDPM model that `config.model.kind` names."""
  kind = config.model.kind
  shape = image_shape(config)
  conv_impl = config.model.conv_impl
  if kind == 'flow':
    return FlowOnly(flow=build_flow(config.flow, conv_impl=conv_impl), image_shape=shape)
  learn = config.diffusion.learn_sigma
  sampling = dict(sampler=config.diffusion.sampler, ddim_eta=config.diffusion.ddim_eta,
                  eps_skip=config.model.eps_skip, variance_skip=config.model.variance_skip)
  if kind == 'ddpm':
    diffusion = GaussianDiffusion.from_config(config.diffusion, decoder='discretized')
    unet = build_unet(config.unet, out_channels=shape[2] * (2 if learn else 1), conv_impl=conv_impl)
    return PixelDDPM(unet=unet, diffusion=diffusion, image_shape=shape,
                     vlb_weight=config.diffusion.vlb_weight, **sampling)
  if kind == 'diffflow':
    diffusion = GaussianDiffusion.from_config(config.diffusion, decoder='continuous')
    model = DiffFlow(flow=build_flow(config.flow, conv_impl=conv_impl), unet=None,
                     diffusion=diffusion, image_shape=shape,
                     latent_squeeze=config.model.latent_squeeze,
                     objective=config.model.objective, unet_loss=config.model.unet_loss,
                     vlb_weight=config.diffusion.vlb_weight,
                     t_sampling=config.model.t_sampling, **sampling)
    channels = model.latent_shape[2] * (2 if learn else 1)
    unet = build_unet(config.unet, out_channels=channels, conv_impl=conv_impl)
    return dataclasses.replace(model, unet=unet)
  raise ValueError(f'Unknown model.kind {kind!r}; expected one of {MODEL_KINDS}.')
