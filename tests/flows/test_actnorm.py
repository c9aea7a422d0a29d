"""Tests for ActNorm."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dfflows.flows import ActNorm
from tests.flows.flow_testing import check_bijection, perturb


def _batch(key, shape=(4, 4, 4, 3)):
  return 3. + 2. * jax.random.normal(key, shape) * jnp.arange(1., shape[-1] + 1)


def test_init_normalises_the_init_batch():
  x = _batch(jax.random.PRNGKey(0))
  layer = ActNorm()
  variables = jax.jit(layer.init)(jax.random.PRNGKey(1), x)
  y, _ = layer.apply(variables, x)
  np.testing.assert_allclose(y.mean(axis=(0, 1, 2)), 0., atol=1e-5)
  np.testing.assert_allclose(y.std(axis=(0, 1, 2)), 1., atol=1e-4)


def test_logdet_formula():
  x = _batch(jax.random.PRNGKey(0))
  layer = ActNorm()
  variables = jax.jit(layer.init)(jax.random.PRNGKey(1), x)
  _, logdet = layer.apply(variables, x)
  expected = 16 * np.sum(-np.log(np.std(np.asarray(x), axis=(0, 1, 2))))
  np.testing.assert_allclose(logdet, expected, rtol=1e-5)


def test_bijection_with_random_params():
  x = _batch(jax.random.PRNGKey(0), (2, 4, 4, 2))
  layer = ActNorm()
  variables = perturb(jax.jit(layer.init)(jax.random.PRNGKey(1), x), jax.random.PRNGKey(2))
  check_bijection(layer, variables, x)


def test_rejects_unbatched_input():
  with pytest.raises(ValueError, match='NHWC'):
    jax.jit(ActNorm().init)(jax.random.PRNGKey(0), jnp.ones((4, 4, 2)))
