"""Coupling layers: rational-quadratic spline (NSF) and affine (Glow)."""
from typing import Tuple

import distrax
import flax.linen as nn
import jax
import jax.numpy as jnp

from dfflows.checks import check_at_least, check_choice, check_nhwc
from dfflows.nets.conditioner import Conditioner
from dfflows.nets.conv import CONV_IMPLS

MASKS = ('channel', 'checkerboard')
# nflows' defaults (distrax uses 1e-4): bounds the spline's flattest slope, so the
# float32 inverse stays accurate even for extreme conditioner outputs.
MIN_BIN_SIZE = 1e-3
MIN_KNOT_SLOPE = 1e-3
AFFINE_MIN_SCALE = 1e-3  # Lower bound of the affine coupling's scale (see AffineCoupling).


def checkerboard(h: int, w: int, parity) -> jax.Array:
  """Returns the [1, H, W, 1] float mask ((i + j + parity) mod 2); parity may be traced."""
  ij = jnp.arange(h)[:, None] + jnp.arange(w)[None, :]
  return ((ij + parity) % 2).astype(jnp.float32)[None, :, :, None]


def safe_spline(x: jax.Array, params: jax.Array, tail_bound: float,
                inverse: bool = False) -> Tuple[jax.Array, jax.Array]:
  """Applies an RQ spline on [-B, B] (identity outside) elementwise; returns (y, logdet).

  `params` has shape x.shape + (3K + 1,). Values outside the bound are replaced
  by 0 *before* the spline (the double-`where` trick): a single `jnp.where` on
  the output does not stop NaN/Inf gradients of the discarded branch
  (flowjax #239), so inputs at +-1e3 stay finite in value and gradient.
  """
  inside = jnp.abs(x) < tail_bound
  x_safe = jnp.where(inside, x, jnp.zeros_like(x))
  spline = distrax.RationalQuadraticSpline(
      params, range_min=-tail_bound, range_max=tail_bound, boundary_slopes='identity',
      min_bin_size=MIN_BIN_SIZE, min_knot_slope=MIN_KNOT_SLOPE)
  if inverse:
    y, logdet = spline.inverse_and_log_det(x_safe)
  else:
    y, logdet = spline.forward_and_log_det(x_safe)
  return jnp.where(inside, y, x), jnp.where(inside, logdet, jnp.zeros_like(logdet))


class _Coupling(nn.Module):
  """Shared masking logic; subclasses define `_num_params` and `_transform`.

  Channel mask: x = [x_a, x_b] split in channels (x_a has C // 2); y = [x_a, g(x_b; c(x_a))].
  Checkerboard mask m (1 = transformed): y = m * g(x; c((1 - m) x)) + (1 - m) x.
  Log-det: sum over transformed entries of log|g'|; the inverse negates it.
  Every field is required (`models/build.py` fills them from `config.flow`); a bad one is a
  ValueError when the layer is built.
  """
  hidden_channels: int
  num_res_blocks: int
  mask: str
  conv_impl: str

  def __post_init__(self):
    self._check_options()  # At construction, not at init.
    super().__post_init__()

  def _check_options(self) -> None:
    """Raises ValueError naming the first option this coupling does not accept."""
    layer = type(self).__name__
    check_choice(layer, 'mask', self.mask, MASKS)
    check_choice(layer, 'conv_impl', self.conv_impl, CONV_IMPLS)
    check_at_least(layer, 'hidden_channels', self.hidden_channels, 1)
    check_at_least(layer, 'num_res_blocks', self.num_res_blocks, 0)

  def _num_params(self) -> int:
    raise NotImplementedError

  def _transform(self, x, raw, inverse):
    raise NotImplementedError

  @nn.compact
  def _conditioner(self, h: jax.Array, out_channels: int) -> jax.Array:
    """Returns the raw coupling parameters from the conditioning input `h`."""
    return Conditioner(out_channels, self.hidden_channels, self.num_res_blocks,
                       self.conv_impl, name='conditioner')(h)

  def _check(self, x: jax.Array) -> None:
    """Raises ValueError on a bad input shape."""
    check_nhwc(x, type(self).__name__)
    if self.mask == 'channel' and x.shape[-1] < 2:
      raise ValueError(f'Channel mask needs at least 2 channels; got shape {x.shape}.')

  def _couple(self, x, parity, inverse):
    """Applies the coupling in the given direction; returns (y, logdet)."""
    self._check(x)
    k = self._num_params()
    if self.mask == 'channel':
      ca = x.shape[-1] // 2
      xa, xb = x[..., :ca], x[..., ca:]
      raw = self._conditioner(xa, xb.shape[-1] * k)
      raw = raw.reshape(xb.shape + (k,))
      yb, logdet = self._transform(xb, raw, inverse)
      return jnp.concatenate([xa, yb], -1), jnp.sum(logdet, axis=(1, 2, 3))
    m = checkerboard(x.shape[1], x.shape[2], parity)
    raw = self._conditioner(x * (1. - m), x.shape[-1] * k).reshape(x.shape + (k,))
    y, logdet = self._transform(x, raw, inverse)
    y = m * y + (1. - m) * x
    return y, jnp.sum(m * logdet, axis=(1, 2, 3))

  def __call__(self, x: jax.Array, parity=0) -> Tuple[jax.Array, jax.Array]:
    return self.forward(x, parity)

  def forward(self, x: jax.Array, parity=0) -> Tuple[jax.Array, jax.Array]:
    """Returns y = coupling(x) and log|det dy/dx| per example."""
    return self._couple(x, parity, inverse=False)

  def inverse(self, y: jax.Array, parity=0) -> Tuple[jax.Array, jax.Array]:
    """Returns x = coupling^{-1}(y) and log|det dx/dy| per example."""
    return self._couple(y, parity, inverse=True)


class SplineCoupling(_Coupling):
  """Rational-quadratic spline coupling (Durkan et al. 2019), distrax's spline.

  g is a monotone RQ spline with `num_bins` bins on [-tail_bound, tail_bound]
  and identity (slope-1 linear) tails; its 3K + 1 parameters per element come
  from the conditioner. Zero parameters give the identity.
  """
  num_bins: int
  tail_bound: float

  def _check_options(self) -> None:
    """The shared options, then at least one bin and a positive tail bound."""
    super()._check_options()
    check_at_least('SplineCoupling', 'num_bins', self.num_bins, 1)
    if not self.tail_bound > 0:
      raise ValueError(f'SplineCoupling: tail_bound={self.tail_bound!r} must be positive.')

  def _num_params(self) -> int:
    return 3 * self.num_bins + 1

  def _transform(self, x, raw, inverse):
    return safe_spline(x, raw, self.tail_bound, inverse)


class AffineCoupling(_Coupling):
  """Glow affine coupling: g(x) = (x + t) * s with s = m + (1 - m) sigmoid(raw_s + 2).

  Inverse: x = y / s - t. Log-det: sum log s over transformed entries. The floor
  m = AFFINE_MIN_SCALE keeps the inverse finite: with Glow's plain sigmoid, extreme
  conditioner inputs (|x| = 1e4) underflow s to 0 in float32 and y / s is NaN.
  """

  def _num_params(self) -> int:
    return 2

  def _transform(self, x, raw, inverse):
    scale = AFFINE_MIN_SCALE + (1. - AFFINE_MIN_SCALE) * jax.nn.sigmoid(raw[..., 1] + 2.)
    shift, log_scale = raw[..., 0], jnp.log(scale)
    if inverse:
      return x * jnp.exp(-log_scale) - shift, -log_scale
    return (x + shift) * jnp.exp(log_scale), log_scale
