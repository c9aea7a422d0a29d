"""Pieces shared by the DiffFlow and baseline models."""
import math
from typing import Tuple

import jax.numpy as jnp


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
