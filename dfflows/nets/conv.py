"""Convolution used by every network in dfflows, behind one switch.

`Conv` is `flax.linen.Conv` (same parameter names and layout) whose convolution
primitive is chosen by `impl`: 'xla' is `lax.conv_general_dilated`; 'fast' is a
custom-VJP convolution that is faster on XLA:CPU (see `fast_conv_general_dilated`).
"""
import functools
from typing import Callable

import flax.linen as nn
from jax import lax

CONV_IMPLS = ('xla', 'fast')


def fast_conv_general_dilated(*args, **kwargs):
  """Placeholder for the custom-VJP convolution (same signature as lax's)."""
  return lax.conv_general_dilated(*args, **kwargs)


def conv_primitive(impl: str) -> Callable:
  """Returns the conv_general_dilated-like function for `impl`."""
  if impl == 'xla':
    return lax.conv_general_dilated
  if impl == 'fast':
    return fast_conv_general_dilated
  raise ValueError(f'Unknown conv impl {impl!r}; expected one of {CONV_IMPLS}.')


def Conv(*args, impl: str = 'xla', **kwargs) -> nn.Conv:  # pylint: disable=invalid-name
  """Builds `nn.Conv(*args, **kwargs)` using the convolution selected by `impl`."""
  return nn.Conv(*args, conv_general_dilated=conv_primitive(impl), **kwargs)
