"""Tests for squeeze / unsqueeze."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dfflows.flows import squeeze, unsqueeze


def test_squeeze_matches_index_formula():
  x = np.arange(2 * 4 * 6 * 3, dtype=np.float32).reshape(2, 4, 6, 3)
  y = np.asarray(squeeze(jnp.asarray(x)))
  assert y.shape == (2, 2, 3, 12)
  for dh in range(2):
    for dw in range(2):
      np.testing.assert_array_equal(
          y[..., (2 * dh + dw) * 3:(2 * dh + dw + 1) * 3], x[:, dh::2, dw::2, :])


def test_roundtrip():
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 4, 4, 2))
  np.testing.assert_array_equal(unsqueeze(squeeze(x)), x)
  y = squeeze(x)
  np.testing.assert_array_equal(squeeze(unsqueeze(y)), y)


def test_errors():
  with pytest.raises(ValueError, match='even'):
    squeeze(jnp.ones((1, 3, 4, 1)))
  with pytest.raises(ValueError, match='divisible by 4'):
    unsqueeze(jnp.ones((1, 2, 2, 3)))
  with pytest.raises(ValueError, match='NHWC'):
    squeeze(jnp.ones((4, 4, 1)))
