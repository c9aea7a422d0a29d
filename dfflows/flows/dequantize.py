"""Uniform dequantisation of 8-bit images and the logit preprocessing layer.

The bits/dim of a density on u is `dfflows.metrics.bpd.continuous_nats_to_bpd`, with
NLL(u) including the log-dets of every layer after u (here `Logit`).
"""
from typing import Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp



def uniform_dequantize(key: jax.Array, x_uint8: jax.Array) -> jax.Array:
  """Returns u = (x + U[0, 1)) / 256 in [0, 1) for integer pixels x in [0, 255]."""
  noise = jax.random.uniform(key, x_uint8.shape, jnp.float32)
  return (x_uint8.astype(jnp.float32) + noise) / 256.


def check_logit_alpha(layer: str, name: str, alpha: float) -> None:
  """Raises ValueError unless the Logit alpha `name` of `layer` is in [0, 0.5)."""
  if not 0. <= alpha < 0.5:
    raise ValueError(f'{layer}: {name}={alpha!r} must be in [0, 0.5).')


class Logit(nn.Module):
  """Logit preprocessing (RealNVP): y = logit(alpha + (1 - 2 alpha) u).

  Forward: p = alpha + (1 - 2 alpha) u, y = log p - log(1 - p).
  Inverse: u = (sigmoid(y) - alpha) / (1 - 2 alpha).
  Log-det of the forward map: sum over entries of
  log(1 - 2 alpha) - log p - log(1 - p).
  Support: 0 < p < 1, i.e. -alpha / (1 - 2 alpha) < u < (1 - alpha) / (1 - 2 alpha), which
  contains [0, 1). An example with an entry outside it has log-det -inf (its density is 0),
  and the entry maps to y = 0 so that nothing downstream turns into NaN.
  """
  alpha: float

  def __post_init__(self):
    check_logit_alpha('Logit', 'alpha', self.alpha)  # At construction, not at init.
    super().__post_init__()

  def __call__(self, u: jax.Array) -> Tuple[jax.Array, jax.Array]:
    return self.forward(u)

  def _check(self, x: jax.Array) -> None:
    """Raises ValueError on an unbatched input."""
    if x.ndim < 2:
      raise ValueError(f'Logit expects a batched array [B, ...]; got shape {x.shape}.')

  def forward(self, u: jax.Array) -> Tuple[jax.Array, jax.Array]:
    """Returns y = logit(alpha + (1 - 2 alpha) u) and the log-det per example."""
    self._check(u)
    p = self.alpha + (1. - 2. * self.alpha) * u
    inside = (p > 0.) & (p < 1.)
    p = jnp.where(inside, p, 0.5)  # Keeps the values (and gradients) inside unchanged.
    y = jnp.where(inside, jnp.log(p) - jnp.log1p(-p), 0.)
    logdet = jnp.sum((jnp.log1p(-2. * self.alpha) - jnp.log(p) - jnp.log1p(-p)).reshape(
        u.shape[0], -1), axis=1)
    return y, jnp.where(jnp.all(inside.reshape(u.shape[0], -1), axis=1), logdet, -jnp.inf)

  def inverse(self, y: jax.Array) -> Tuple[jax.Array, jax.Array]:
    """Returns u = (sigmoid(y) - alpha) / (1 - 2 alpha) and log|det du/dy|."""
    self._check(y)
    p = jax.nn.sigmoid(y)
    u = (p - self.alpha) / (1. - 2. * self.alpha)
    logdet = jax.nn.log_sigmoid(y) + jax.nn.log_sigmoid(-y) - jnp.log1p(-2. * self.alpha)
    return u, jnp.sum(logdet.reshape(y.shape[0], -1), axis=1)
