"""Pieces shared by the DiffFlow and baseline models."""
import math
from typing import Tuple

import jax
import jax.numpy as jnp

from dfflows.diffusion.gaussian_diffusion import GaussianDiffusion


def num_dims(shape: Tuple[int, ...]) -> int:
  """Number of dimensions D of one example of `shape` (without batch)."""
  return math.prod(shape)


def check_images(x: jnp.ndarray, image_shape: Tuple[int, ...]) -> None:
  """Raises ValueError unless `x` is a batch of 8-bit images of `image_shape`."""
  if x.ndim != 4 or tuple(x.shape[1:]) != tuple(image_shape):
    raise ValueError(f'Expected a batch of images of shape [B, {", ".join(map(str, image_shape))}],'
                     f' got {tuple(x.shape)}.')
  if x.dtype != jnp.uint8:
    raise ValueError(f'Expected uint8 images with values in 0..255, got dtype {x.dtype}.')


def to_uint8(u: jnp.ndarray) -> jnp.ndarray:
  """Maps u in [0, 1) back to 8-bit pixels (floor(256 u), clipped)."""
  return jnp.clip(jnp.floor(u * 256.0), 0, 255).astype(jnp.uint8)


def hybrid_loss(diffusion: GaussianDiffusion, model_out: jnp.ndarray, x0: jnp.ndarray,
                x_t: jnp.ndarray, t: jnp.ndarray, noise: jnp.ndarray,
                vlb_weight: float) -> jnp.ndarray:
  """Improved-DDPM hybrid loss L_simple + lambda * L_vlb per example (L_vlb in bits/dim).

  L_vlb is estimated as T * L_t for the sampled t, with stop-gradient on the
  predicted mean, so the L_vlb part only trains the variance head.
  """
  dims = num_dims(x0.shape[1:])
  vlb_t = diffusion.vlb_term(model_out, x0, x_t, t, stop_grad_mean=True)
  vlb_bpd = diffusion.num_timesteps * vlb_t / (dims * math.log(2.0))
  return diffusion.l_simple(model_out, noise) + vlb_weight * vlb_bpd


def sample_t_and_noise(key: jax.Array, x0: jnp.ndarray,
                       num_timesteps: int) -> Tuple[jnp.ndarray, jnp.ndarray]:
  """Uniform timesteps in 0..T-1 and standard normal noise for a batch."""
  k_t, k_n = jax.random.split(key)
  t = jax.random.randint(k_t, (x0.shape[0],), 0, num_timesteps)
  return t, jax.random.normal(k_n, x0.shape, x0.dtype)
