"""Tests for uniform dequantisation, the Logit layer and bits/dim."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dfflows.flows import Logit, bits_per_dim, uniform_dequantize
from tests.flows.flow_testing import check_bijection


def test_uniform_dequantize_stays_in_the_pixel_cell():
  x = jnp.arange(256, dtype=jnp.uint8).reshape(1, 16, 16, 1)
  u = uniform_dequantize(jax.random.PRNGKey(0), x)
  assert u.dtype == jnp.float32
  assert float(u.min()) >= 0. and float(u.max()) < 1.
  np.testing.assert_array_equal(np.floor(np.asarray(u) * 256), np.asarray(x))


@pytest.mark.parametrize('alpha', [0.0, 0.05])
def test_logit_bijection(alpha):
  u = jax.random.uniform(jax.random.PRNGKey(0), (2, 2, 2, 2), minval=0.01, maxval=0.99)
  layer = Logit(alpha)
  y, logdet = check_bijection(layer, {}, u)
  p = alpha + (1 - 2 * alpha) * np.asarray(u, np.float64)
  np.testing.assert_allclose(y, np.log(p / (1 - p)), rtol=1e-5, atol=1e-5)


def test_logit_rejects_bad_alpha():
  with pytest.raises(ValueError, match='alpha'):
    Logit(0.5).apply({}, jnp.ones((1, 2)) * 0.5)


def test_bits_per_dim_of_uniform_density_is_8():
  # The uniform density on [0, 1)^D has NLL 0: 8 bits per 8-bit pixel.
  np.testing.assert_allclose(bits_per_dim(jnp.zeros(()), 784), 8.0, rtol=1e-6)
  nll = 1234.5
  np.testing.assert_allclose(bits_per_dim(jnp.asarray(nll), 100),
                             (nll + 100 * np.log(256)) / (100 * np.log(2)), rtol=1e-6)
