"""Activation normalisation (Glow, Kingma & Dhariwal 2018) with data-dependent init."""
from typing import Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from dfflows.checks import check_nhwc


class ActNorm(nn.Module):
  """Per-channel affine map with data-dependent initialisation.

  Forward: y = (x + bias) * exp(log_scale), per channel.
  Inverse: x = y * exp(-log_scale) - bias.
  Log-det of the forward map: H * W * sum_c log_scale_c (per example).

  `module.init(key, x)` sets bias = -mean(x) and log_scale = -log(std(x) + eps)
  over the batch and spatial axes of `x`, so that the initial output has per-channel
  mean 0 and std 1 on that batch. The initialisers close over the input, so no
  mutable state is needed after init.
  """
  eps: float = 1e-6

  @nn.compact
  def _params(self, x: jax.Array) -> Tuple[jax.Array, jax.Array]:
    """Returns (bias, log_scale), initialised from the statistics of `x`."""
    def bias_init(_, shape, dtype=jnp.float32):
      return -jnp.mean(x, axis=(0, 1, 2)).astype(dtype).reshape(shape)

    def log_scale_init(_, shape, dtype=jnp.float32):
      std = jnp.std(x, axis=(0, 1, 2))
      return -jnp.log(std + self.eps).astype(dtype).reshape(shape)

    channels = x.shape[-1]
    bias = self.param('bias', bias_init, (channels,))
    log_scale = self.param('log_scale', log_scale_init, (channels,))
    return bias, log_scale

  def __call__(self, x: jax.Array) -> Tuple[jax.Array, jax.Array]:
    return self.forward(x)

  def forward(self, x: jax.Array) -> Tuple[jax.Array, jax.Array]:
    """Returns y = (x + bias) * exp(log_scale) and the log-det per example."""
    check_nhwc(x, 'ActNorm')
    bias, log_scale = self._params(x)
    y = (x + bias) * jnp.exp(log_scale)
    return y, _logdet(x, log_scale)

  def inverse(self, y: jax.Array) -> Tuple[jax.Array, jax.Array]:
    """Returns x = y * exp(-log_scale) - bias and log|det dx/dy| per example."""
    check_nhwc(y, 'ActNorm')
    bias, log_scale = self._params(y)
    x = y * jnp.exp(-log_scale) - bias
    return x, -_logdet(y, log_scale)


def _logdet(x: jax.Array, log_scale: jax.Array) -> jax.Array:
  """Returns H * W * sum(log_scale) broadcast to the batch."""
  _, h, w, _ = x.shape
  return jnp.full(x.shape[:1], h * w * jnp.sum(log_scale), x.dtype)
