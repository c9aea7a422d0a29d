"""Convolution used by every network in dfflows, behind one switch.

`Conv` is `flax.linen.Conv` (same parameter names and layout) whose convolution
primitive is chosen by `impl`: 'xla' is `lax.conv_general_dilated`; 'fast' is a
custom-VJP convolution for XLA:CPU (see `fast_conv_general_dilated`); 'auto'
(the default of the configs) is 'fast' on the CPU backend and 'xla' elsewhere.

Why a hand-written VJP: XLA:CPU runs a convolution fast only in the canonical
layout (input N..C, kernel ..IO, output N..C, dim_labels b01f_01io->b01f). The
autodiff transpose of a convolution is a convolution with permuted dimension
labels; at the top level of a program XLA:CPU's canonicalisation inserts
transposes, but inside a while loop (`lax.scan`, `nn.scan`, `fori_loop`) it
does not, and the permuted convolution runs as a naive loop nest, many times
slower (benchmarks/RESULTS.md has the measurement). The backward pass here
writes both gradients as canonical convolutions with explicit transposes, so it
is as fast inside loops as outside, and equal to XLA's to float rounding.
Being a `jax.custom_vjp`, 'fast' has no forward-mode derivative (`jax.jvp`,
`jax.jacfwd`): the modules default to 'xla'; the configs pick 'auto'.
"""
from typing import Any, Callable, Optional, Sequence, Tuple, Union

import flax.linen as nn
import jax
from jax import lax
import jax.numpy as jnp

CONV_IMPLS = ('auto', 'xla', 'fast')

Padding = Union[str, Sequence[Tuple[int, int]]]
Pads = Tuple[Tuple[int, int], ...]


def _all_ones(values: Optional[Sequence[int]]) -> bool:
  """Whether an optional stride/dilation tuple is None or all ones."""
  return values is None or all(v == 1 for v in values)


def _is_channels_last(lhs_ndim: int, dn: lax.ConvDimensionNumbers) -> bool:
  """Whether `dn` is N(spatial)C / (spatial)IO / N(spatial)C, as flax uses."""
  spatial = tuple(range(1, lhs_ndim - 1))
  lhs_spec = (0, lhs_ndim - 1) + spatial
  rhs_spec = (lhs_ndim - 1, lhs_ndim - 2) + tuple(range(lhs_ndim - 2))
  return (tuple(dn.lhs_spec) == lhs_spec and tuple(dn.rhs_spec) == rhs_spec
          and tuple(dn.out_spec) == lhs_spec)


def _explicit_pads(lhs: jax.Array, rhs: jax.Array, padding: Padding) -> Pads:
  """Padding as one (low, high) pair per spatial dimension (stride 1)."""
  num_spatial = lhs.ndim - 2
  if isinstance(padding, str):
    pads = lax.padtype_to_pads(lhs.shape[1:-1], rhs.shape[:-2],
                               (1,) * num_spatial, padding)
  else:
    pads = padding
  return tuple((int(lo), int(hi)) for lo, hi in pads)


def _kernel_grad(x: jax.Array, g: jax.Array, kernel_shape: Sequence[int],
                 pads: Pads, precision: Any) -> jax.Array:
  """d(loss)/d(kernel) as one canonical convolution.

  The batch is the contraction: x transposed to [C, spatial..., N] is convolved
  with g transposed to a kernel [spatial..., N, D], giving [C, kernel..., D].
  """
  n = x.ndim
  spatial = tuple(range(1, n - 1))
  xt = jnp.transpose(x, (n - 1,) + spatial + (0,))
  gt = jnp.transpose(g, spatial + (0, n - 1))
  dn = lax.conv_dimension_numbers(xt.shape, gt.shape, _channels_last_spec(n))
  out = lax.conv_general_dilated(xt, gt, (1,) * len(spatial), pads, dimension_numbers=dn,
                                 precision=precision)
  assert out.shape[1:-1] == tuple(kernel_shape), (out.shape, kernel_shape)
  return jnp.transpose(out, spatial + (0, n - 1))


def _channels_last_spec(ndim: int) -> Tuple[str, str, str]:
  """('N..C', '..IO', 'N..C') dimension-number strings for `ndim`-d operands."""
  sp = 'DHW'[-(ndim - 2):] if ndim <= 5 else None
  if sp is None:
    raise ValueError(f'At most 3 spatial dimensions; got a {ndim}-d input.')
  return ('N' + sp + 'C', sp + 'IO', 'N' + sp + 'C')


def _input_grad(g: jax.Array, w: jax.Array, pads: Pads,
                dn: lax.ConvDimensionNumbers, precision: Any) -> jax.Array:
  """d(loss)/d(input): `g` convolved with the flipped, in/out-swapped kernel."""
  num_spatial = g.ndim - 2
  kernel_shape = w.shape[:num_spatial]
  flipped = jnp.swapaxes(w[(slice(None, None, -1),) * num_spatial], -1, -2)
  # A negative pad (input padding wider than the kernel) crops, as lax allows.
  back_pads = [(k - 1 - lo, k - 1 - hi) for k, (lo, hi) in zip(kernel_shape, pads)]
  return lax.conv_general_dilated(
      g, flipped, (1,) * num_spatial, back_pads, dimension_numbers=dn,
      precision=precision)


def _stride1_conv(pads: Pads, dn: lax.ConvDimensionNumbers,
                  precision: Any) -> Callable[[jax.Array, jax.Array], jax.Array]:
  """A channels-last stride-1 convolution with the custom VJP for `pads`."""
  num_spatial = len(pads)

  @jax.custom_vjp
  def conv(x: jax.Array, w: jax.Array) -> jax.Array:
    return lax.conv_general_dilated(x, w, (1,) * num_spatial, pads,
                                    dimension_numbers=dn, precision=precision)

  def conv_fwd(x, w):
    return conv(x, w), (x, w)

  def conv_bwd(residuals, g):
    x, w = residuals
    dx = _input_grad(g, w, pads, dn, precision).astype(x.dtype)
    dw = _kernel_grad(x, g, w.shape[:num_spatial], pads, precision)
    return dx, dw.astype(w.dtype)

  conv.defvjp(conv_fwd, conv_bwd)
  return conv


def fast_conv_general_dilated(
    lhs: jax.Array,
    rhs: jax.Array,
    window_strides: Sequence[int],
    padding: Padding,
    lhs_dilation: Optional[Sequence[int]] = None,
    rhs_dilation: Optional[Sequence[int]] = None,
    dimension_numbers: Any = None,
    feature_group_count: int = 1,
    batch_group_count: int = 1,
    precision: Any = None,
    preferred_element_type: Any = None,
) -> jax.Array:
  """`lax.conv_general_dilated` with a faster backward pass on XLA:CPU.

  The fast path covers channels-last (NHWC/HWIO, as `flax.linen.Conv` calls it)
  stride-1 undilated ungrouped convolutions with any kernel size and
  non-negative padding; every other call is passed to `lax.conv_general_dilated`
  unchanged, so results are always those of lax up to float rounding.

  Args:
    lhs: input, e.g. [N, H, W, C].
    rhs: kernel, e.g. [KH, KW, C, D].
    window_strides: strides, as for lax.
    padding: 'SAME', 'VALID', 'SAME_LOWER' or (low, high) pairs, as for lax.
    lhs_dilation: as for lax.
    rhs_dilation: as for lax.
    dimension_numbers: as for lax.
    feature_group_count: as for lax.
    batch_group_count: as for lax.
    precision: as for lax; also used in the backward pass.
    preferred_element_type: as for lax (calls that set it use lax).

  Returns:
    The convolution, e.g. [N, H', W', D].
  """
  def fallback() -> jax.Array:
    return lax.conv_general_dilated(
        lhs, rhs, window_strides, padding, lhs_dilation=lhs_dilation,
        rhs_dilation=rhs_dilation, dimension_numbers=dimension_numbers,
        feature_group_count=feature_group_count,
        batch_group_count=batch_group_count, precision=precision,
        preferred_element_type=preferred_element_type)

  if (lhs.ndim < 3 or lhs.ndim != rhs.ndim or dimension_numbers is None
      or not _all_ones(window_strides) or not _all_ones(lhs_dilation)
      or not _all_ones(rhs_dilation) or feature_group_count != 1
      or batch_group_count != 1 or preferred_element_type is not None
      or lhs.dtype != rhs.dtype):
    return fallback()
  dn = lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers)
  if not _is_channels_last(lhs.ndim, dn):
    return fallback()
  pads = _explicit_pads(lhs, rhs, padding)
  out_spatial = [s + lo + hi - k + 1 for s, k, (lo, hi)
                 in zip(lhs.shape[1:-1], rhs.shape[:-2], pads)]
  if (len(pads) != lhs.ndim - 2 or any(lo < 0 or hi < 0 for lo, hi in pads)
      or any(o < 1 for o in out_spatial) or lhs.shape[-1] != rhs.shape[-2]):
    return fallback()  # Also lets lax report malformed calls.
  return _stride1_conv(pads, dn, precision)(lhs, rhs)


def resolve_impl(impl: str) -> str:
  """'auto' -> 'fast' on the CPU backend, 'xla' elsewhere; other names unchanged."""
  if impl == 'auto':
    return 'fast' if jax.default_backend() == 'cpu' else 'xla'
  return impl


def conv_primitive(impl: str) -> Callable:
  """Returns the conv_general_dilated-like function for `impl`."""
  impl = resolve_impl(impl)
  if impl == 'xla':
    return lax.conv_general_dilated
  if impl == 'fast':
    return fast_conv_general_dilated
  raise ValueError(f'Unknown conv impl {impl!r}; expected one of {CONV_IMPLS}.')


def Conv(*args, impl: str = 'xla', **kwargs) -> nn.Conv:  # pylint: disable=invalid-name
  """Builds `nn.Conv(*args, **kwargs)` using the convolution selected by `impl`."""
  return nn.Conv(*args, conv_general_dilated=conv_primitive(impl), **kwargs)
