"""Invertible 1x1 convolutions (Glow), plain and LU-decomposed."""
from typing import Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import jax.scipy.linalg

from dfflows.checks import check_nhwc


def random_rotation(key: jax.Array, channels: int) -> jax.Array:
  """Returns a Haar-random orthogonal [C, C] matrix (QR of a normal matrix)."""
  q, r = jnp.linalg.qr(jax.random.normal(key, (channels, channels)))
  return q * jnp.sign(jnp.diag(r))[None, :]


def _apply(x: jax.Array, w: jax.Array) -> jax.Array:
  """Returns y with y[..., i] = sum_j w[i, j] x[..., j]."""
  return jnp.einsum('ij,bhwj->bhwi', w, x)


def _per_example(x: jax.Array, logdet_per_pixel: jax.Array) -> jax.Array:
  """Returns H * W * logdet_per_pixel broadcast to the batch."""
  _, h, w, _ = x.shape
  return jnp.full(x.shape[:1], h * w * logdet_per_pixel, x.dtype)


class Conv1x1(nn.Module):
  """Invertible 1x1 convolution with a full weight matrix W [C, C].

  Forward: y = W x per pixel. Inverse: x = W^{-1} y.
  Log-det of the forward map: H * W * log|det W| (via slogdet).
  W is initialised to a random rotation.
  """

  @nn.compact
  def _weight(self, channels: int) -> jax.Array:
    """Returns W, initialised to a random rotation."""
    return self.param('kernel', lambda key: random_rotation(key, channels))

  def __call__(self, x: jax.Array) -> Tuple[jax.Array, jax.Array]:
    return self.forward(x)

  def forward(self, x: jax.Array) -> Tuple[jax.Array, jax.Array]:
    """Returns W x and the log-det per example."""
    check_nhwc(x, 'Conv1x1')
    w = self._weight(x.shape[-1])
    return _apply(x, w), _per_example(x, jnp.linalg.slogdet(w)[1])

  def inverse(self, y: jax.Array) -> Tuple[jax.Array, jax.Array]:
    """Returns W^{-1} y and log|det dx/dy| per example."""
    check_nhwc(y, 'Conv1x1')
    w = self._weight(y.shape[-1])
    return _apply(y, jnp.linalg.inv(w)), -_per_example(y, jnp.linalg.slogdet(w)[1])


def _lu_of_random_rotation(key: jax.Array, channels: int):
  """Returns (lower, upper, log_s) with L (U + diag(exp(log_s))) orthogonal.

  A random rotation R has the pivoted LU decomposition R = P L U. We start from
  W0 = P^T R D with D = diag(sign(diag(U))), which is again Haar-random
  orthogonal and equals L (U D) without pivoting and with a positive diagonal.
  So the fixed permutation is the identity and the fixed sign is +1: no
  non-trainable state is needed (nothing to keep out of the optimiser).
  """
  p, l, u = jax.scipy.linalg.lu(random_rotation(key, channels))
  del p
  s = jnp.diag(u)
  ud = u * jnp.sign(s)[None, :]
  return jnp.tril(l, -1), jnp.triu(ud, 1), jnp.log(jnp.abs(s))


class Conv1x1LU(nn.Module):
  """Invertible 1x1 convolution with an LU-parameterised weight.

  W = P L (U + diag(sign * exp(log_s))), L unit-lower, U strictly upper. The
  fixed permutation P and sign are absorbed into the random-rotation init, so
  P = I and sign = +1 (see `_lu_of_random_rotation`).
  Forward: y = W x per pixel. Inverse: x = W^{-1} y (two triangular solves).
  Log-det of the forward map: H * W * sum(log_s).
  """

  @nn.compact
  def _factors(self, channels: int) -> Tuple[jax.Array, jax.Array, jax.Array]:
    """Returns (L, U, log_s) with unit-lower L and U with diagonal exp(log_s)."""
    if self.is_initializing() and not self.has_variable('params', 'log_s'):
      init = _lu_of_random_rotation(self.make_rng('params'), channels)
    else:
      init = (None, None, None)
    lower = self.param('lower', lambda _: init[0])
    upper = self.param('upper', lambda _: init[1])
    log_s = self.param('log_s', lambda _: init[2])
    eye = jnp.eye(channels, dtype=lower.dtype)
    l = jnp.tril(lower, -1) + eye
    u = jnp.triu(upper, 1) + jnp.diag(jnp.exp(log_s))
    return l, u, log_s

  def __call__(self, x: jax.Array) -> Tuple[jax.Array, jax.Array]:
    return self.forward(x)

  def forward(self, x: jax.Array) -> Tuple[jax.Array, jax.Array]:
    """Returns L U x and the log-det per example."""
    check_nhwc(x, 'Conv1x1LU')
    l, u, log_s = self._factors(x.shape[-1])
    return _apply(x, l @ u), _per_example(x, jnp.sum(log_s))

  def inverse(self, y: jax.Array) -> Tuple[jax.Array, jax.Array]:
    """Returns U^{-1} L^{-1} y and log|det dx/dy| per example."""
    check_nhwc(y, 'Conv1x1LU')
    l, u, log_s = self._factors(y.shape[-1])
    eye = jnp.eye(l.shape[0], dtype=l.dtype)
    l_inv = jax.scipy.linalg.solve_triangular(l, eye, lower=True, unit_diagonal=True)
    u_inv = jax.scipy.linalg.solve_triangular(u, eye, lower=False)
    return _apply(y, u_inv @ l_inv), -_per_example(y, jnp.sum(log_s))
