"""Tests for the distrax adapter FlowBijector."""
import distrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dfflows.flows import FlowBijector
from tests.flows.flow_testing import perturb, small_flow

SHAPE = (4, 4, 1)


@pytest.fixture(scope='module')
def model():
  flow = small_flow(num_levels=1, num_steps=1, hidden_channels=4, num_bins=4, tail_bound=3.,
                    scan=False)
  x = jax.random.uniform(jax.random.PRNGKey(0), (3,) + SHAPE, minval=0.02, maxval=0.98)
  variables = perturb(jax.jit(flow.init)(jax.random.PRNGKey(1), x), jax.random.PRNGKey(2), 0.05)
  return flow, variables, x


def _transformed(flow, variables):
  base = distrax.Independent(distrax.Normal(jnp.zeros(SHAPE), 1.), 3)
  return distrax.Transformed(base, FlowBijector(flow, variables, direction='generative'))


def _by_hand(flow, variables, x):
  z, logdet = flow.apply(variables, x)
  base = -0.5 * np.sum(np.asarray(z) ** 2, axis=(1, 2, 3)) - 0.5 * z[0].size * np.log(
      2 * np.pi)
  return base + np.asarray(logdet)


def test_log_prob_equals_base_plus_logdet(model):
  flow, variables, x = model
  expected = _by_hand(flow, variables, x)
  np.testing.assert_allclose(_transformed(flow, variables).log_prob(x), expected,
                             rtol=1e-5, atol=1e-4)
  jitted = jax.jit(lambda v, x: _transformed(flow, v).log_prob(x))(variables, x)
  np.testing.assert_allclose(jitted, expected, rtol=1e-5, atol=1e-4)
  vmapped = jax.vmap(_transformed(flow, variables).log_prob)(x)  # Unbatched inside.
  np.testing.assert_allclose(vmapped, expected, rtol=1e-5, atol=1e-4)


def test_normalizing_direction_is_the_module_forward(model):
  flow, variables, x = model
  bij = FlowBijector(flow, variables)
  z, logdet = bij.forward_and_log_det(x)
  z_ref, logdet_ref = flow.apply(variables, x)
  np.testing.assert_array_equal(z, z_ref)
  np.testing.assert_array_equal(logdet, logdet_ref)
  x_rec, ild = bij.inverse_and_log_det(z)
  np.testing.assert_allclose(x_rec, x, atol=1e-5)
  np.testing.assert_allclose(ild, -logdet, rtol=1e-5)
  z0, ld0 = bij.forward_and_log_det(x[0])
  assert z0.shape == SHAPE and ld0.shape == ()


def test_sample_then_log_prob(model):
  flow, variables, _ = model
  dist = _transformed(flow, variables)
  samples, log_prob = jax.jit(
      lambda k: dist.sample_and_log_prob(seed=k, sample_shape=(5,)))(jax.random.PRNGKey(3))
  assert samples.shape == (5,) + SHAPE and log_prob.shape == (5,)
  np.testing.assert_allclose(dist.log_prob(samples), log_prob, rtol=1e-4, atol=1e-3)
  single = dist.sample(seed=jax.random.PRNGKey(4))
  assert single.shape == SHAPE


def test_rejects_bad_direction_and_rank(model):
  flow, variables, _ = model
  with pytest.raises(ValueError, match='direction'):
    FlowBijector(flow, variables, direction='sideways')
  with pytest.raises(ValueError, match=r'\[H, W, C\]'):
    FlowBijector(flow, variables).forward_and_log_det(jnp.zeros((4, 4)))


def test_wrong_event_shape_is_a_clear_error(model):
  flow, variables, x = model
  bijector = FlowBijector(flow, variables, direction='generative', event_shape=SHAPE)
  z = jnp.zeros((2, 4, 4, 3))  # three channels for a one-channel flow
  with pytest.raises(ValueError, match=r'FlowBijector.forward: expected events of shape '
                                       r'\(4, 4, 1\).*\(2, 4, 4, 3\)'):
    bijector.forward(z)
  with pytest.raises(ValueError, match=r'expected events of shape \(4, 4, 1\).*\(8, 8, 1\)'):
    bijector.inverse(jnp.zeros((8, 8, 1)))
  with pytest.raises(ValueError, match='event_shape must be'):
    FlowBijector(flow, variables, event_shape=(4, 4))
  y, _ = bijector.inverse_and_log_det(x)  # the right shape still works
  assert y.shape == x.shape


@pytest.mark.parametrize('bad', [1.5, -0.1])
def test_log_prob_outside_the_support_is_minus_inf_and_leaves_the_rest(model, bad):
  """The logit's domain (alpha 0.05: -0.0556 < u < 1.0556) is the support; u = 1.5 or -0.1
  in one entry of one example gives that example -inf, the others their own values."""
  flow, variables, x = model
  outside = x.at[1, 2, 3, 0].set(bad)
  log_prob = jax.jit(lambda v, x: _transformed(flow, v).log_prob(x))(variables, outside)
  assert np.isneginf(log_prob[1])
  np.testing.assert_allclose(np.asarray(log_prob)[[0, 2]], _by_hand(flow, variables, x)[[0, 2]],
                             rtol=1e-5, atol=1e-4)
  grads = jax.grad(lambda x: jnp.sum(_transformed(flow, variables).log_prob(x)[jnp.array([0, 2])]))(outside)
  assert np.all(np.isfinite(grads))  # No NaN leaks from the -inf example.


def test_nan_input_is_an_error(model):
  flow, variables, x = model
  with pytest.raises(ValueError, match='NaN'):
    _transformed(flow, variables).log_prob(x.at[0, 0, 0, 0].set(jnp.nan))
