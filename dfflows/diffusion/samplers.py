"""Reverse-process samplers: ancestral (DDPM) and DDIM, each one `lax.scan`.

Respaced sampling is sampling from a `gaussian_diffusion.respace`d diffusion;
the network is always called with the original timesteps (`timestep_map`).
"""
from typing import Optional, Tuple

import jax
import jax.numpy as jnp

from dfflows.diffusion.gaussian_diffusion import Array, GaussianDiffusion, ModelFn

SAMPLERS = ('ancestral', 'ddim')


def ancestral_step(diffusion: GaussianDiffusion, model_out: Array, x_t: Array, t: Array,
                   noise: Array, clip_denoised: bool = False) -> Array:
  """x_{t-1} = mean + std * noise under p(x_{t-1} | x_t); the mean alone at t == 0."""
  out = diffusion.p_mean_variance(model_out, x_t, t, clip_denoised)
  nonzero = (t > 0).astype(x_t.dtype).reshape((-1,) + (1,) * (x_t.ndim - 1))
  return out['mean'] + nonzero * jnp.exp(0.5 * out['log_variance']) * noise


def ddim_step(diffusion: GaussianDiffusion, model_out: Array, x_t: Array, t: Array,
              noise: Array, eta: float = 0.0, clip_denoised: bool = False) -> Array:
  """DDIM update (Song et al. 2021, eq. 12) to x_{t-1}; deterministic for eta = 0."""
  pred_x0 = diffusion.p_mean_variance(model_out, x_t, t, clip_denoised)['pred_x0']
  eps = diffusion.predict_eps_from_x0(x_t, t, pred_x0)
  abar = diffusion.gather(diffusion.alphas_cumprod, t, x_t)
  abar_prev = diffusion.gather(diffusion.alphas_cumprod_prev, t, x_t)
  sigma = eta * jnp.sqrt((1.0 - abar_prev) / (1.0 - abar) * (1.0 - abar / abar_prev))
  mean = pred_x0 * jnp.sqrt(abar_prev) + jnp.sqrt(1.0 - abar_prev - sigma**2) * eps
  nonzero = (t > 0).astype(x_t.dtype).reshape((-1,) + (1,) * (x_t.ndim - 1))
  return mean + nonzero * sigma * noise


def sample(diffusion: GaussianDiffusion, model_fn: ModelFn, shape: Tuple[int, ...],
           key: jax.Array, *, sampler: str = 'ancestral', eta: float = 0.0,
           temperature: float = 1.0, clip_denoised: bool = False,
           return_trajectory: bool = False, x_T: Optional[Array] = None,
           dtype=jnp.float32) -> Array:
  """Draws x0 by running the reverse process from x_T ~ N(0, temperature^2 I).

  A given `x_T` (e.g. from `ddim_encode`) replaces the prior draw. Returns x0 of `shape`, or with `return_trajectory` the states
  [num_timesteps + 1, *shape] from x_T (index 0) to x0 (index -1).
  """
  if sampler not in SAMPLERS:
    raise ValueError(f'Unknown sampler {sampler!r}; expected one of {SAMPLERS}.')
  key_init, key_steps = jax.random.split(key)
  if x_T is None:
    x_T = temperature * jax.random.normal(key_init, shape, dtype)
  elif x_T.shape != tuple(shape):
    raise ValueError(f'x_T has shape {x_T.shape}, expected {tuple(shape)}.')

  def step(x, t_scalar):
    t = jnp.full((shape[0],), t_scalar, dtype=jnp.int32)
    model_out = model_fn(x, diffusion.model_timesteps(t))
    noise = jax.random.normal(jax.random.fold_in(key_steps, t_scalar), shape, dtype)
    if sampler == 'ancestral':
      x_prev = ancestral_step(diffusion, model_out, x, t, noise, clip_denoised)
    else:
      x_prev = ddim_step(diffusion, model_out, x, t, noise, eta, clip_denoised)
    return x_prev, x_prev

  ts = jnp.arange(diffusion.num_timesteps - 1, -1, -1)
  x0, states = jax.lax.scan(step, x_T, ts)
  if return_trajectory:
    return jnp.concatenate([x_T[None], states], axis=0)
  return x0


def ddim_encode(diffusion: GaussianDiffusion, model_fn: ModelFn, x0: Array) -> Array:
  """Deterministic DDIM map x0 -> x_T, the inverse of `sample(..., 'ddim', eta=0)`.

  Step t moves the state from noise level abar_{t-1} (1 for the data) to abar_t
  with eps evaluated at the current state and timestep t (first-order inverse).
  """

  def step(x, t_scalar):
    t = jnp.full((x0.shape[0],), t_scalar, dtype=jnp.int32)
    eps, _ = diffusion.split_model_out(model_fn(x, diffusion.model_timesteps(t)), x)
    abar = diffusion.gather(diffusion.alphas_cumprod, t, x)
    abar_prev = diffusion.gather(diffusion.alphas_cumprod_prev, t, x)
    pred_x0 = (x - jnp.sqrt(1.0 - abar_prev) * eps) / jnp.sqrt(abar_prev)
    return pred_x0 * jnp.sqrt(abar) + jnp.sqrt(1.0 - abar) * eps, None

  x_T, _ = jax.lax.scan(step, x0, jnp.arange(diffusion.num_timesteps))
  return x_T
