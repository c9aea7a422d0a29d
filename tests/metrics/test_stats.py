"""The one mean +- standard error reducer, against numpy's mean and std (ddof=1) / sqrt(n)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dfflows.metrics import stats


def _numpy(values):
  return values.mean(), values.std(ddof=1) / np.sqrt(len(values))


def test_mean_and_stderr_matches_numpy():
  values = np.random.default_rng(0).normal(1.2, 0.3, size=257)
  np.testing.assert_allclose(stats.mean_and_stderr(values), _numpy(values), rtol=1e-10)


def test_masked_batch_sums_under_jit_add_up_to_the_unpadded_values():
  values = np.random.default_rng(1).normal(3.0, 0.5, size=10).astype(np.float32)
  # Batches of 4 as the eval loops make them: the last one zero-padded, its pad masked out.
  padded = np.concatenate([values, np.full(2, 100.0, np.float32)]).reshape(3, 4)
  mask = (np.arange(12) < 10).reshape(3, 4)
  sums = jax.jit(lambda v, m: jnp.stack(stats.moment_sums(v, m)))
  total = sum(np.asarray(sums(v, m), np.float64) for v, m in zip(padded, mask))
  np.testing.assert_allclose(stats.mean_and_stderr_of_sums(total),
                             _numpy(values.astype(np.float64)), rtol=1e-5)
  np.testing.assert_allclose(stats.mean_and_stderr(padded, mask),
                             _numpy(values.astype(np.float64)), rtol=1e-10)


def test_one_value_has_no_stderr_and_none_is_an_error():
  mean, stderr = stats.mean_and_stderr(np.array([2.5]))
  assert mean == 2.5 and np.isnan(stderr)
  with pytest.raises(ValueError, match='No values'):
    stats.mean_and_stderr(np.zeros(3), np.zeros(3, bool))
