"""Tests for the spline and affine couplings."""
import distrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dfflows.flows import AffineCoupling, SplineCoupling
from dfflows.flows.couplings import safe_spline
from tests.flows.flow_testing import check_bijection, perturb

NUM_BINS, BOUND = 4, 3.0


def _layer(kind, mask):
  if kind == 'spline':
    return SplineCoupling(hidden_channels=8, num_res_blocks=1, mask=mask, conv_impl='xla',
                          num_bins=NUM_BINS, tail_bound=BOUND)
  return AffineCoupling(hidden_channels=8, num_res_blocks=1, mask=mask, conv_impl='xla')


@pytest.mark.parametrize('kind', ['spline', 'affine'])
@pytest.mark.parametrize('mask', ['channel', 'checkerboard'])
def test_bijection_with_random_params(kind, mask):
  x = 1.5 * jax.random.normal(jax.random.PRNGKey(0), (2, 4, 4, 2))
  layer = _layer(kind, mask)
  variables = perturb(jax.jit(layer.init)(jax.random.PRNGKey(1), x), jax.random.PRNGKey(2), 0.1)
  y, _ = check_bijection(layer, variables, x)
  if mask == 'channel':  # The conditioning half passes through unchanged.
    np.testing.assert_array_equal(y[..., :1], x[..., :1])
  else:
    keep = (np.arange(4)[:, None] + np.arange(4)[None, :]) % 2 == 0
    np.testing.assert_array_equal(np.asarray(y)[:, keep], np.asarray(x)[:, keep])
    assert np.abs(np.asarray(y)[:, ~keep] - np.asarray(x)[:, ~keep]).max() > 1e-3


def test_checkerboard_parity_flips_the_transformed_pixels():
  x = jax.random.normal(jax.random.PRNGKey(0), (1, 4, 4, 1))
  layer = _layer('spline', 'checkerboard')
  variables = perturb(jax.jit(layer.init)(jax.random.PRNGKey(1), x), jax.random.PRNGKey(2), 0.1)
  y1, _ = layer.apply(variables, x, 1)
  keep = (np.arange(4)[:, None] + np.arange(4)[None, :]) % 2 == 1
  np.testing.assert_array_equal(np.asarray(y1)[:, keep], np.asarray(x)[:, keep])
  x1, _ = layer.apply(variables, y1, 1, method=layer.inverse)
  np.testing.assert_allclose(x1, x, atol=1e-5)


def test_spline_starts_at_identity():
  x = 2. * jax.random.normal(jax.random.PRNGKey(0), (2, 4, 4, 2))
  layer = _layer('spline', 'channel')
  y, logdet = layer.apply(jax.jit(layer.init)(jax.random.PRNGKey(1), x), x)
  np.testing.assert_allclose(y, x, atol=1e-5)
  np.testing.assert_allclose(logdet, 0., atol=1e-4)


def test_safe_spline_matches_distrax_inside_and_identity_outside():
  params = jax.random.normal(jax.random.PRNGKey(0), (7, 3 * NUM_BINS + 1))
  x = jnp.array([-1e3, -3.5, -2.9, -0.3, 0.0, 1.7, 2.99])
  y, logdet = safe_spline(x, params, BOUND)
  ref = distrax.RationalQuadraticSpline(params, -BOUND, BOUND, boundary_slopes='identity',
                                       min_bin_size=1e-3, min_knot_slope=1e-3)
  y_ref, logdet_ref = ref.forward_and_log_det(x)
  np.testing.assert_allclose(y[2:], y_ref[2:], rtol=1e-6)
  np.testing.assert_allclose(logdet[2:], logdet_ref[2:], rtol=1e-6, atol=1e-7)
  np.testing.assert_array_equal(y[:2], x[:2])
  np.testing.assert_array_equal(logdet[:2], 0.)


@pytest.mark.parametrize('inverse', [False, True])
def test_spline_far_outside_bound_is_finite_and_exact(inverse):
  params = 3. * jax.random.normal(jax.random.PRNGKey(0), (6, 3 * NUM_BINS + 1))
  x = jnp.array([-1e3, 1e3, -BOUND, BOUND, -3.0001, 1e4])

  def loss(x, params):
    y, logdet = safe_spline(x, params, BOUND, inverse)
    return jnp.sum(y ** 2 + logdet)

  y, logdet = safe_spline(x, params, BOUND, inverse)
  np.testing.assert_array_equal(y, x)  # Identity outside and at the bound.
  np.testing.assert_allclose(logdet, 0., atol=1e-5)
  gx, gp = jax.grad(loss, argnums=(0, 1))(x, params)
  assert np.all(np.isfinite(gx)) and np.all(np.isfinite(gp))
  np.testing.assert_allclose(gx, 2. * x, rtol=1e-5)


def test_coupling_far_outside_bound_inverts_with_finite_grads():
  x = jnp.full((1, 2, 2, 2), 1e3).at[0, 0, 0, 1].set(-1e3).at[0, 1, 1, 0].set(0.5)
  layer = _layer('spline', 'channel')
  variables = perturb(jax.jit(layer.init)(jax.random.PRNGKey(1), x), jax.random.PRNGKey(2), 0.1)
  y, _ = layer.apply(variables, x)
  x_rec, _ = layer.apply(variables, y, method=layer.inverse)
  np.testing.assert_array_equal(x_rec, x)

  def loss(variables, x):
    y, logdet = layer.apply(variables, x)
    return jnp.sum(y) + jnp.sum(logdet)

  gv, gx = jax.grad(loss, argnums=(0, 1))(variables, x)
  assert all(np.all(np.isfinite(g)) for g in jax.tree.leaves(gv))
  assert np.all(np.isfinite(gx))


def test_spline_inverse_at_bin_edges_is_finite():
  params = 2. * jax.random.normal(jax.random.PRNGKey(3), (3 * NUM_BINS + 1,))
  knots = distrax.RationalQuadraticSpline(
      params, -BOUND, BOUND, boundary_slopes='identity', min_bin_size=1e-3,
      min_knot_slope=1e-3).y_pos
  y = jnp.concatenate([knots, jnp.nextafter(knots, 0.)])
  tiled = jnp.broadcast_to(params, y.shape + params.shape)

  def loss(y, p):
    x, logdet = safe_spline(y, p, BOUND, inverse=True)
    return jnp.sum(x + logdet)

  x, logdet = safe_spline(y, tiled, BOUND, inverse=True)
  assert np.all(np.isfinite(x)) and np.all(np.isfinite(logdet))
  y_back, _ = safe_spline(x, tiled, BOUND)
  np.testing.assert_allclose(y_back, y, atol=1e-5)
  gy, gp = jax.grad(loss, argnums=(0, 1))(y, tiled)
  assert np.all(np.isfinite(gy)) and np.all(np.isfinite(gp))


def test_errors():
  with pytest.raises(ValueError, match='mask'):
    jax.jit(_layer('spline', 'stripes').init)(jax.random.PRNGKey(0), jnp.ones((1, 2, 2, 2)))
  with pytest.raises(ValueError, match='2 channels'):
    jax.jit(_layer('affine', 'channel').init)(jax.random.PRNGKey(0), jnp.ones((1, 2, 2, 1)))
  with pytest.raises(ValueError, match='NHWC'):
    jax.jit(_layer('affine', 'channel').init)(jax.random.PRNGKey(0), jnp.ones((2, 2, 2)))
