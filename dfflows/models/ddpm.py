"""Pixel-space Improved DDPM baseline (learned variances, hybrid loss).

Images are scaled to [-1, 1] and the decoder is Improved DDPM's discretised
Gaussian, so the bound is on -log P(x) of the 8-bit image itself:
bits/dim = (prior + sum_t L_t) / (D log 2).

Training is Improved DDPM's hybrid loss at one uniform t per image; its metric 'bpd' is the
unbiased but heavy-tailed T L_t + prior at that t. `eval_bpd` is the DiffFlow's estimator
(`GaussianDiffusion.one_sample_bound`: L_0 and L_{T-1} for every image, t ~ `t_sampling`).

With `eps_skip` and `variance_skip` (the defaults, as for the DiffFlow's prior) the
U-Net is a residual on the reverse process that is exact for N(0, I) data
(`common.gaussian_residual_fn`); both off is the plain Improved DDPM of the thesis.
"""
import dataclasses
from typing import Dict, Optional, Tuple

import jax
import jax.numpy as jnp

from dfflows.diffusion import samplers
from dfflows.diffusion.gaussian_diffusion import GaussianDiffusion
from dfflows.metrics.bpd import discrete_nats_to_bpd
from dfflows.models import common
from dfflows.models.interface import BpdLabels, Params, SamplingPlan
from dfflows.nets.unet import UNet


def scale_images(x: jnp.ndarray) -> jnp.ndarray:
  """uint8 in 0..255 -> float in [-1, 1]."""
  return x.astype(jnp.float32) / 127.5 - 1.0


@dataclasses.dataclass(frozen=True)
class PixelDDPM:
  """Improved DDPM on pixels."""
  unet: UNet  # out_channels = image channels * (2 if learn_sigma else 1).
  diffusion: GaussianDiffusion
  image_shape: Tuple[int, int, int]
  settings: common.DiffusionSettings

  @property
  def param_groups(self) -> Tuple[str, ...]:
    """The params' top-level keys (`Model.param_groups`)."""
    return ('unet',)

  @property
  def bpd_labels(self) -> BpdLabels:
    """`eval_bpd` is the `t_sampling` estimate; the training metric is at the loss's uniform t."""
    return common.diffusion_bpd_labels(self.settings.t_sampling)._replace(
        train="one-sample bound estimate at the hybrid loss's uniform t (heavy-tailed)")

  def sampling_plan(self, num_steps: int) -> SamplingPlan:
    """Reverse diffusion with min(num_steps, T) respaced steps."""
    return common.diffusion_sampling_plan(self.diffusion, self.settings.sampler, num_steps, 0)

  def _model_fn(self, params: Params, train: bool, key: jax.Array):
    """The eps/v network as a model_fn(x_t, t) (see `common.gaussian_residual_fn`)."""
    return common.gaussian_residual_fn(self.unet, params['unet'], self.diffusion, train, key,
                                       self.settings.eps_skip, self.settings.variance_skip)

  def init(self, key: jax.Array, x: jnp.ndarray) -> Params:
    """Initialises the U-Net params."""
    common.check_model_input(x, self.image_shape)
    return {'unet': self.unet.init(key, scale_images(x[:1]), jnp.zeros((1,), jnp.int32),
                                   train=False)}

  def loss(self, params: Params, x: jnp.ndarray, key: jax.Array,
           train: bool = True) -> Tuple[jnp.ndarray, Dict[str, jnp.ndarray]]:
    """Hybrid loss (L_simple + lambda L_vlb) at uniform t, and metrics (see `bpd_labels`)."""
    common.check_model_input(x, self.image_shape)
    k_tn, k_drop = jax.random.split(key)
    terms = self.diffusion.training_losses(self._model_fn(params, train, k_drop),
                                           scale_images(x), k_tn, vlb_weight=self.settings.vlb_weight)
    bpd = discrete_nats_to_bpd(terms['bound'], common.num_dims(self.image_shape))
    loss = terms['loss'].mean()
    return loss, {'loss': loss, 'bpd': jax.lax.stop_gradient(bpd).mean(),
                  'l_simple': terms['l_simple'].mean()}

  def eval_bpd(self, params: Params, x: jnp.ndarray, key: jax.Array) -> jnp.ndarray:
    """One-sample unbiased estimate of the bound (t ~ `t_sampling`) in bits/dim, per example."""
    common.check_model_input(x, self.image_shape)
    k_tn, k_drop = jax.random.split(key)
    nats, _ = self.diffusion.one_sample_bound(self._model_fn(params, False, k_drop),
                                              scale_images(x), k_tn, self.settings.t_sampling,
                                              vlb_weight=self.settings.vlb_weight)
    return discrete_nats_to_bpd(nats, common.num_dims(self.image_shape))

  def full_bound_terms(self, params: Params, x: jnp.ndarray,
                       key: jax.Array) -> Dict[str, jnp.ndarray]:
    """Every term of the bound in nats per example (`HasBoundTerms`)."""
    common.check_model_input(x, self.image_shape)
    return self.diffusion.full_bound(self._model_fn(params, False, key), scale_images(x), key)

  def full_bpd(self, params: Params, x: jnp.ndarray, key: jax.Array) -> jnp.ndarray:
    """The bound with every t summed, in bits/dim per example."""
    nats = self.full_bound_terms(params, x, key)['total_nats']
    return discrete_nats_to_bpd(nats, common.num_dims(self.image_shape))

  def sample(self, params: Params, key: jax.Array, num: int, num_steps: Optional[int] = None,
             temperature: float = 1.0) -> jnp.ndarray:
    """Samples `num` uint8 images by reverse diffusion (num_steps respaced)."""
    diffusion = common.sampling_diffusion(self.diffusion, num_steps)
    model_fn = self._model_fn(params, False, key)
    x0 = samplers.sample(diffusion, model_fn, (num,) + tuple(self.image_shape), key,
                         sampler=self.settings.sampler, eta=self.settings.ddim_eta, temperature=temperature,
                         clip_denoised=True)
    return jnp.clip(jnp.round((x0 + 1.0) * 127.5), 0, 255).astype(jnp.uint8)
