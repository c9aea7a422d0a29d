"""Pieces shared by the DiffFlow and baseline models."""
import dataclasses
import math
from typing import Any, Callable, Optional, Tuple

import jax
import jax.numpy as jnp

from dfflows.checks import check_choice
from dfflows.diffusion import timesteps
from dfflows.diffusion.gaussian_diffusion import GaussianDiffusion, respace
from dfflows.diffusion.samplers import SAMPLERS
from dfflows.models.interface import BpdLabels, SamplingPlan


@dataclasses.dataclass(frozen=True)
class DiffusionSettings:
  """How a diffusion model (the DiffFlow's prior or the pixel DDPM) trains, estimates and samples.

  vlb_weight: lambda of the hybrid loss; sampler, ddim_eta: the reverse process for samples;
  eps_skip, variance_skip: the Gaussian residual (`gaussian_residual_fn`); t_sampling: the
  bound's one-sample t (`timesteps.T_SAMPLINGS`); control_variate: the one-sample bound's
  N(0, I) control variate in training (`GaussianDiffusion.one_sample_bound`);
  bound_control_variate: the same in the full bound that evaluation sums
  (`GaussianDiffusion.full_bound`).
  """
  vlb_weight: float
  sampler: str
  ddim_eta: float
  eps_skip: bool
  variance_skip: bool
  t_sampling: str
  control_variate: bool
  bound_control_variate: bool

  def __post_init__(self):
    check_choice('DiffusionSettings', 'sampler', self.sampler, SAMPLERS)
    check_choice('DiffusionSettings', 't_sampling', self.t_sampling, timesteps.T_SAMPLINGS)


def num_dims(shape: Tuple[int, ...]) -> int:
  """Number of dimensions D of one example of `shape` (without batch)."""
  return math.prod(shape)


def check_model_input(x: jnp.ndarray, image_shape: Tuple[int, ...]) -> None:
  """Raises ValueError unless `x` is a batch of 8-bit images of `image_shape`."""
  if x.ndim != 4 or tuple(x.shape[1:]) != tuple(image_shape):
    raise ValueError(f'Expected a batch of images of shape [B, {", ".join(map(str, image_shape))}],'
                     f' got {tuple(x.shape)}.')
  if x.dtype != jnp.uint8:
    raise ValueError(f'Expected uint8 images with values in 0..255, got dtype {x.dtype}.')


def eval_keys(key: jax.Array) -> Tuple[jax.Array, jax.Array]:
  """(dequantization key, key of every other draw) of an evaluation with `key`: every model
  dequantizes with the first, so two models evaluated with one key see the same u, and their
  paired difference carries no dequantization noise."""
  k_deq, k_draws = jax.random.split(key)
  return k_deq, k_draws


def to_uint8(u: jnp.ndarray) -> jnp.ndarray:
  """Maps u in [0, 1) back to 8-bit pixels (floor(256 u), clipped)."""
  return jnp.clip(jnp.floor(u * 256.0), 0, 255).astype(jnp.uint8)


def add_eps_skip(eps: jnp.ndarray, x_t: jnp.ndarray, sigma: jnp.ndarray) -> jnp.ndarray:
  """eps + sigma_t x_t: the network's eps as a residual on E[eps | x_t] for N(0, I) data."""
  return eps + sigma.reshape((-1,) + (1,) * (x_t.ndim - 1)) * x_t


def sampling_diffusion(diffusion: GaussianDiffusion,
                       num_steps: Optional[int]) -> GaussianDiffusion:
  """`diffusion` respaced to `num_steps` reverse steps if fewer than its T (0/None: all T)."""
  if num_steps and num_steps < diffusion.num_timesteps:
    return respace(diffusion, num_steps)
  return diffusion


def gaussian_residual_fn(unet: Any, unet_params: Any, diffusion: GaussianDiffusion, train: bool,
                         key: jax.Array, eps_skip: bool, variance_skip: bool) -> Callable:
  """The U-Net as a model_fn(x_t, t), optionally as a residual on the N(0, I) solution.

  With `eps_skip`, eps_hat = sqrt(1 - abar_t) x_t + U-Net(x_t, t): the exact E[eps | x_t]
  when x_0 ~ N(0, I). With `variance_skip` (learned sigma) the raw variance output is
  1 + U-Net's, so the reverse variance starts at beta_t, the exact Var(x_{t-1} | x_t) for
  N(0, I) data. The U-Net's last layer is zero-initialised, so at init the reverse process
  is exact for N(0, I) data; in particular the t = T-1 term, where x_t is almost pure
  noise, is near zero for any data. Without the eps skip a zero-initialised U-Net
  predicts eps_hat = 0, and the KL term at t = T-1 (beta ~ 1, mean error amplified by
  1/sqrt(alpha_t) ~ 30) alone adds hundreds of nats per dimension to the initial bound.
  """
  def model_fn(x_t, t):
    out = unet.apply(unet_params, x_t, t, train=train, rngs={'dropout': key})
    c = x_t.shape[-1]
    if eps_skip:
      sigma = diffusion.gather(diffusion.sqrt_one_minus_alphas_cumprod, t, x_t)
      out = out.at[..., :c].set(add_eps_skip(out[..., :c], x_t, sigma))
    if variance_skip and diffusion.learn_sigma:
      out = out.at[..., c:].add(1.0)
    return out
  return model_fn


def diffusion_bpd_labels(t_sampling: str, bound_control_variate: bool = False) -> BpdLabels:
  """Labels of a diffusion model whose training metric and eval_bpd draw one t per image."""
  full = 'full variational bound, every t summed'
  if bound_control_variate:
    full += ', minus the N(0, I) process\'s at the same draws plus its exact value (unbiased)'
  return BpdLabels(train='one-sample bound estimate',
                   eval=(f'bound with one {t_sampling}-sampled t per image: an unbiased '
                         'estimate; dfflows.evaluate sums every t'),
                   full=full)


def diffusion_sampling_plan(diffusion: GaussianDiffusion, sampler: str, num_steps: int,
                            extra_evals: int) -> SamplingPlan:
  """min(num_steps, T) respaced reverse steps, plus `extra_evals` other network passes."""
  steps = min(num_steps, diffusion.num_timesteps)
  return SamplingPlan(steps, f'{sampler}, {steps} of {diffusion.num_timesteps} steps',
                      steps + extra_evals)
