"""Tests for dfflows.nets.conv: the fast conv equals lax's in values and gradients."""
import re

import jax
from jax import lax
import jax.numpy as jnp
import numpy as np
import pytest

from dfflows.nets import conv as conv_lib

_DN = ('NHWC', 'HWIO', 'NHWC')

# (batch, height, width, in, out, kernel, padding, stride)
_CASES = [
    (1, 5, 6, 2, 3, (1, 1), 'SAME', 1),
    (3, 6, 5, 3, 4, (3, 3), 'SAME', 1),
    (3, 7, 7, 2, 5, (5, 5), 'SAME', 1),
    (1, 6, 6, 3, 2, (3, 3), 'VALID', 1),
    (3, 6, 7, 2, 3, (3, 2), ((0, 2), (1, 0)), 1),
    (1, 5, 5, 2, 2, (3, 3), ((3, 1), (0, 4)), 1),  # Padding wider than the kernel.
    (4, 64, 64, 2, 3, (3, 3), 'SAME', 1),  # Large spatial kernel in the kernel grad.
    (3, 8, 8, 3, 4, (3, 3), 'SAME', 2),  # Stride-2 fallback.
    (3, 7, 7, 3, 4, (3, 3), ((1, 1), (1, 1)), 2),
]


def _conv(impl, padding, stride):
  """The conv of `impl` with fixed settings, as a function of (x, w)."""
  fn = conv_lib.conv_primitive(impl)
  return lambda x, w: fn(x, w, (stride, stride), padding, dimension_numbers=_DN)


def _inputs(batch, height, width, cin, cout, kernel, seed=0):
  """Random input, kernel and output cotangent (float32)."""
  kx, kw = jax.random.split(jax.random.PRNGKey(seed))
  x = jax.random.normal(kx, (batch, height, width, cin))
  w = jax.random.normal(kw, kernel + (cin, cout))
  return x, w


def _assert_close(a, b):
  np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize('case,use_jit', [(c, i != 1) for i, c in enumerate(_CASES)])
def test_values_and_grads_match_lax(case, use_jit):
  batch, height, width, cin, cout, kernel, padding, stride = case
  x, w = _inputs(batch, height, width, cin, cout, kernel)
  fast, ref = _conv('fast', padding, stride), _conv('xla', padding, stride)
  if use_jit:
    fast, ref = jax.jit(fast), jax.jit(ref)
  y_fast, vjp_fast = jax.vjp(fast, x, w)
  y_ref, vjp_ref = jax.vjp(ref, x, w)
  _assert_close(y_fast, y_ref)
  g = jax.random.normal(jax.random.PRNGKey(7), y_ref.shape)
  for a, b in zip(vjp_fast(g), vjp_ref(g)):
    _assert_close(a, b)


def test_grad_of_scalar_loss_matches_lax():
  x, w = _inputs(2, 6, 6, 3, 4, (3, 3))
  loss = lambda impl: lambda x, w: jnp.sum(jnp.sin(_conv(impl, 'SAME', 1)(x, w)))
  for a, b in zip(jax.grad(loss('fast'), (0, 1))(x, w),
                  jax.grad(loss('xla'), (0, 1))(x, w)):
    _assert_close(a, b)


def test_matches_numpy_convolution():
  x, w = _inputs(1, 4, 5, 2, 3, (3, 3))
  xp = np.pad(np.asarray(x), ((0, 0), (1, 1), (1, 1), (0, 0)))
  expected = np.zeros((1, 4, 5, 3), np.float32)
  for i in range(3):
    for j in range(3):
      expected += np.einsum('nhwc,cd->nhwd', xp[:, i:i + 4, j:j + 5], np.asarray(w)[i, j])
  _assert_close(_conv('fast', 'SAME', 1)(x, w), expected)


@pytest.mark.parametrize('kernel,padding', [((3, 3), 'SAME'), ((1, 1), 'VALID')])
def test_vmap_grads_match_lax(kernel, padding):
  x, w = _inputs(3, 5, 5, 2, 3, kernel)
  xs = jnp.stack([x, 2.0 * x])  # Extra leading axis mapped by vmap.
  ws = jnp.stack([w, -w])

  def loss(impl):
    f = _conv(impl, padding, 1)
    return lambda x, w: jnp.sum(f(x, w) ** 2)

  fast = jax.jit(jax.vmap(jax.value_and_grad(loss('fast'), (0, 1))))
  ref = jax.vmap(jax.value_and_grad(loss('xla'), (0, 1)))
  (v_fast, g_fast), (v_ref, g_ref) = fast(xs, ws), ref(xs, ws)
  np.testing.assert_allclose(v_fast, v_ref, rtol=1e-4)
  for a, b in zip(g_fast, g_ref):
    _assert_close(a / jnp.max(jnp.abs(b)), b / jnp.max(jnp.abs(b)))


@pytest.mark.parametrize('stride,uses_custom_vjp', [(1, True), (2, False)])
def test_fast_path_taken_only_for_stride_one(stride, uses_custom_vjp):
  x, w = _inputs(1, 4, 4, 2, 3, (3, 3))
  jaxpr = str(jax.make_jaxpr(_conv('fast', 'SAME', stride))(x, w))
  assert ('custom_vjp_call' in jaxpr) == uses_custom_vjp


def _conv_dim_labels(fn, *args):
  """The dim_labels of every convolution in the compiled HLO of jit(fn)(*args)."""
  hlo = jax.jit(fn).lower(*args).compile().as_text()
  return re.findall(r'convolution\(.*dim_labels=(\S+?),', hlo)


@pytest.mark.parametrize('kernel', [(3, 3), (1, 1)])
def test_backward_inside_scan_uses_only_canonical_convolutions(kernel):
  # XLA:CPU runs non-canonical convolutions inside while loops as naive loops
  # (20-70x slower); the fast impl's gradients must stay canonical there.
  x, w = _inputs(2, 6, 6, 3, 4, kernel)

  def scanned_grad(impl):
    loss = lambda x, w: jnp.sum(jnp.tanh(_conv(impl, 'SAME', 1)(x, w)))
    def fn(x, w):
      body = lambda c, _: (c, jax.grad(loss, (0, 1))(x, w))
      return lax.scan(body, 0.0, None, length=2)[1]
    return fn

  fast = _conv_dim_labels(scanned_grad('fast'), x, w)
  assert set(fast) == {'b01f_01io->b01f'}, fast  # (1x1 convs may become dots.)
  if jax.default_backend() == 'cpu' and kernel == (3, 3):  # The failure guarded against:
    assert set(_conv_dim_labels(scanned_grad('xla'), x, w)) != {'b01f_01io->b01f'}


def test_auto_impl_is_fast_on_cpu_and_xla_elsewhere():
  expected = 'fast' if jax.default_backend() == 'cpu' else 'xla'
  assert conv_lib.resolve_impl('auto') == expected
  assert conv_lib.conv_primitive('auto') is conv_lib.conv_primitive(expected)


def test_other_dimension_numbers_fall_back_to_lax():
  x, w = _inputs(2, 5, 5, 3, 4, (3, 3))
  x_nchw, w_oihw = jnp.transpose(x, (0, 3, 1, 2)), jnp.transpose(w, (3, 2, 0, 1))
  args = ((1, 1), 'SAME')
  _assert_close(conv_lib.fast_conv_general_dilated(x_nchw, w_oihw, *args),
                lax.conv_general_dilated(x_nchw, w_oihw, *args))


@pytest.mark.parametrize('kwargs', [
    dict(features=4, kernel_size=(3, 3)),
    dict(features=5, kernel_size=(1, 1), padding='VALID'),
    dict(features=4, kernel_size=(3, 3), strides=(2, 2)),
])
def test_flax_conv_impls_agree(kwargs):
  x, _ = _inputs(2, 6, 6, 3, 1, (1, 1))
  fast = conv_lib.Conv(impl='fast', **kwargs)
  xla = conv_lib.Conv(impl='xla', **kwargs)
  params = xla.init(jax.random.PRNGKey(1), x)
  np.testing.assert_equal(jax.tree.map(jnp.shape, fast.init(jax.random.PRNGKey(1), x)),
                          jax.tree.map(jnp.shape, params))
  loss = lambda m: lambda p, x: jnp.sum(jnp.tanh(m.apply(p, x)))
  _assert_close(fast.apply(params, x), xla.apply(params, x))
  g_fast = jax.jit(jax.grad(loss(fast), (0, 1)))(params, x)
  g_xla = jax.grad(loss(xla), (0, 1))(params, x)
  for a, b in zip(jax.tree.leaves(g_fast), jax.tree.leaves(g_xla)):
    _assert_close(a, b)


def test_unknown_impl_raises():
  with pytest.raises(ValueError, match='Unknown conv impl'):
    conv_lib.conv_primitive('cudnn')
  with pytest.raises(ValueError, match='Unknown conv impl'):
    conv_lib.Conv(4, (3, 3), impl='nope')
