"""Uniform dequantisation of 8-bit images and the logit preprocessing layer.

Bits per dimension. A flow gives a density p(u) on u in [0, 1)^D, where
u = (x + U[0, 1)) / 256 for the 8-bit image x. The discrete model
P(x) = integral over its cell of volume 256^-D of p(u) du is bounded by Jensen:
-log P(x) <= E[-log p(u)] + D log 256, i.e. the density of the unscaled
dequantised value x + U (in [0, 256)^D) is p(u) / 256^D. Therefore

  bpd = (NLL(u) + D log 256) / (D log 2),

where NLL(u) = -log p(u) in nats, including the log-dets of every layer after
u (here `Logit`).
"""
from typing import Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from dfflows.metrics.bpd import continuous_nats_to_bpd


def uniform_dequantize(key: jax.Array, x_uint8: jax.Array) -> jax.Array:
  """Returns u = (x + U[0, 1)) / 256 in [0, 1) for integer pixels x in [0, 255]."""
  noise = jax.random.uniform(key, x_uint8.shape, jnp.float32)
  return (x_uint8.astype(jnp.float32) + noise) / 256.


# (NLL(u) + D log 256) / (D log 2) for NLL(u) in nats of u in [0,1)^D; one definition.
bits_per_dim = continuous_nats_to_bpd


class Logit(nn.Module):
  """Logit preprocessing (RealNVP): y = logit(alpha + (1 - 2 alpha) u).

  Forward: p = alpha + (1 - 2 alpha) u, y = log p - log(1 - p).
  Inverse: u = (sigmoid(y) - alpha) / (1 - 2 alpha).
  Log-det of the forward map: sum over entries of
  log(1 - 2 alpha) - log p - log(1 - p).
  """
  alpha: float = 0.05

  def __call__(self, u: jax.Array) -> Tuple[jax.Array, jax.Array]:
    return self.forward(u)

  def _check(self, x: jax.Array) -> None:
    """Raises ValueError on a bad alpha or an unbatched input."""
    if not 0. <= self.alpha < 0.5:
      raise ValueError(f'Logit alpha must be in [0, 0.5); got {self.alpha}.')
    if x.ndim < 2:
      raise ValueError(f'Logit expects a batched array [B, ...]; got shape {x.shape}.')

  def forward(self, u: jax.Array) -> Tuple[jax.Array, jax.Array]:
    """Returns y = logit(alpha + (1 - 2 alpha) u) and the log-det per example."""
    self._check(u)
    p = self.alpha + (1. - 2. * self.alpha) * u
    y = jnp.log(p) - jnp.log1p(-p)
    logdet = jnp.log1p(-2. * self.alpha) - jnp.log(p) - jnp.log1p(-p)
    return y, jnp.sum(logdet.reshape(u.shape[0], -1), axis=1)

  def inverse(self, y: jax.Array) -> Tuple[jax.Array, jax.Array]:
    """Returns u = (sigmoid(y) - alpha) / (1 - 2 alpha) and log|det du/dy|."""
    self._check(y)
    p = jax.nn.sigmoid(y)
    u = (p - self.alpha) / (1. - 2. * self.alpha)
    logdet = jax.nn.log_sigmoid(y) + jax.nn.log_sigmoid(-y) - jnp.log1p(-2. * self.alpha)
    return u, jnp.sum(logdet.reshape(y.shape[0], -1), axis=1)
