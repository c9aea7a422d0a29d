"""Tests for uniform dequantisation, the Logit layer and bits/dim."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dfflows.flows import Logit, uniform_dequantize
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


def test_logit_outside_its_domain_has_log_det_minus_inf_and_finite_output():
  layer = Logit(0.05)
  u = jnp.array([[0.5, 0.2], [1.5, 0.2], [-0.1, 0.2], [1.05, -0.05]])  # last row: just inside
  y, logdet = layer.apply({}, u)
  assert np.all(np.isfinite(y))
  assert np.isneginf(logdet[1]) and np.isneginf(logdet[2])
  p = 0.05 + 0.9 * np.asarray(u)[[0, 3]]
  np.testing.assert_allclose(np.asarray(logdet)[[0, 3]], np.sum(np.log(0.9) - np.log(p) - np.log1p(-p), 1),
                             rtol=1e-5)
