"""Tests for the invertible 1x1 convolutions."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dfflows.flows import Conv1x1, Conv1x1LU
from tests.flows.flow_testing import check_bijection, perturb

LAYERS = [Conv1x1, Conv1x1LU]


def _weight(layer, variables, c):
  """Recovers W from the layer's action on the standard basis."""
  basis = jnp.eye(c).reshape(c, 1, 1, c)
  y, _ = layer.apply(variables, basis)
  return np.asarray(y.reshape(c, c)).T


@pytest.mark.parametrize('cls', LAYERS)
def test_init_is_random_rotation(cls):
  x = jnp.ones((1, 2, 2, 4))
  layer = cls()
  w1 = _weight(layer, jax.jit(layer.init)(jax.random.PRNGKey(0), x), 4)
  w2 = _weight(layer, jax.jit(layer.init)(jax.random.PRNGKey(1), x), 4)
  np.testing.assert_allclose(w1 @ w1.T, np.eye(4), atol=1e-5)
  assert np.abs(w1 - w2).max() > 1e-2
  assert np.abs(w1 - np.eye(4)).max() > 1e-2


@pytest.mark.parametrize('cls', LAYERS)
def test_bijection_with_random_params(cls):
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 3, 3, 4))
  layer = cls()
  variables = perturb(jax.jit(layer.init)(jax.random.PRNGKey(1), x), jax.random.PRNGKey(2), 0.3)
  y, logdet = check_bijection(layer, variables, x)
  w = _weight(layer, variables, 4)
  np.testing.assert_allclose(y, np.einsum('ij,bhwj->bhwi', w, x), atol=1e-5)
  np.testing.assert_allclose(logdet, 9 * np.linalg.slogdet(w)[1], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize('cls', LAYERS)
def test_rejects_bad_rank(cls):
  with pytest.raises(ValueError, match='NHWC'):
    jax.jit(cls().init)(jax.random.PRNGKey(0), jnp.ones((2, 4)))
