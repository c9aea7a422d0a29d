"""Tests for dfflows.metrics.fid."""
import numpy as np
import pytest
import scipy.linalg

from dfflows.metrics import fid


def _random_cov(rng: np.random.Generator, dim: int) -> np.ndarray:
  """A well-conditioned random covariance (eigenvalues in [0.5, 2])."""
  q, _ = np.linalg.qr(rng.normal(size=(dim, dim)))
  return (q * rng.uniform(0.5, 2.0, size=dim)) @ q.T


def _sqrtm_reference(mu1, sigma1, mu2, sigma2) -> float:
  """The textbook formula with scipy.linalg.sqrtm (fine for well-conditioned inputs)."""
  covmean = scipy.linalg.sqrtm(sigma1 @ sigma2).real
  diff = mu1 - mu2
  return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


@pytest.mark.parametrize('dim', [1, 5, 32])
def test_matches_sqrtm_reference(dim):
  rng = np.random.default_rng(dim)
  mu1, mu2 = rng.normal(size=dim), rng.normal(size=dim)
  sigma1, sigma2 = _random_cov(rng, dim), _random_cov(rng, dim)
  expected = _sqrtm_reference(mu1, sigma1, mu2, sigma2)
  assert expected > 0.1
  np.testing.assert_allclose(fid.frechet_distance(mu1, sigma1, mu2, sigma2), expected, rtol=1e-9)


def test_symmetric():
  rng = np.random.default_rng(1)
  mu1, mu2 = rng.normal(size=8), rng.normal(size=8)
  sigma1, sigma2 = _random_cov(rng, 8), _random_cov(rng, 8)
  np.testing.assert_allclose(
      fid.frechet_distance(mu1, sigma1, mu2, sigma2),
      fid.frechet_distance(mu2, sigma2, mu1, sigma1), rtol=1e-10)


def test_shift_with_equal_covariance_is_squared_norm():
  rng = np.random.default_rng(2)
  mu = rng.normal(size=6)
  delta = rng.normal(size=6)
  sigma = _random_cov(rng, 6)
  np.testing.assert_allclose(
      fid.frechet_distance(mu, sigma, mu + delta, sigma), delta @ delta, rtol=1e-10, atol=1e-12)


def test_isotropic_closed_form():
  # N(0, a I) vs N(0, b I): d * (sqrt(a) - sqrt(b))^2.
  dim, a, b = 4, 4.0, 1.0
  got = fid.frechet_distance(np.zeros(dim), a * np.eye(dim), np.zeros(dim), b * np.eye(dim))
  np.testing.assert_allclose(got, dim * (np.sqrt(a) - np.sqrt(b))**2, rtol=1e-12)


def test_identical_sets_give_zero():
  features = np.random.default_rng(3).normal(size=(50, 8))
  assert fid.compute_fid(features, features) == pytest.approx(0.0, abs=1e-9)


def test_rank_deficient_covariance_is_real_and_finite():
  # 10 samples of 64-d features: singular covariances where naive sqrtm misbehaves.
  rng = np.random.default_rng(4)
  a, b = rng.normal(size=(10, 64)), rng.normal(size=(10, 64)) + 0.5
  value = fid.compute_fid(a, b)
  assert np.isfinite(value) and value > 0
  assert fid.compute_fid(a, a) == pytest.approx(0.0, abs=1e-8)


def test_feature_stats_matches_numpy():
  features = np.random.default_rng(5).normal(size=(40, 3)).astype(np.float32)
  stats = fid.feature_stats(features)
  assert stats.mu.dtype == np.float64 and stats.sigma.dtype == np.float64
  assert stats.n == 40
  np.testing.assert_allclose(stats.mu, features.astype(np.float64).mean(0))
  centered = features.astype(np.float64) - stats.mu
  np.testing.assert_allclose(stats.sigma, centered.T @ centered / 39)


def test_feature_stats_save_load_round_trip(tmp_path):
  stats = fid.feature_stats(np.random.default_rng(6).normal(size=(20, 4)))
  path = tmp_path / 'stats.npz'
  stats.save(path)
  loaded = fid.FeatureStats.load(path)
  np.testing.assert_array_equal(loaded.mu, stats.mu)
  np.testing.assert_array_equal(loaded.sigma, stats.sigma)
  assert loaded.n == stats.n


def test_load_rejects_other_npz(tmp_path):
  path = tmp_path / 'other.npz'
  np.savez(path, mu=np.zeros(3))
  with pytest.raises(ValueError, match='missing'):
    fid.FeatureStats.load(path)


@pytest.mark.parametrize('make_call, match', [
    (lambda: fid.compute_fid(np.zeros((5, 3)), np.zeros((5, 4))), 'dims differ'),
    (lambda: fid.compute_fid(np.zeros((1, 3)), np.zeros((5, 3))), 'at least 2'),
    (lambda: fid.compute_fid(np.zeros(5), np.zeros(5)), r'shape \(n, d\)'),
    (lambda: fid.frechet_distance(np.zeros(3), np.eye(2), np.zeros(3), np.eye(3)), 'sigma'),
    (lambda: fid.frechet_distance(np.zeros(3), np.eye(3), np.zeros(2), np.eye(2)), 'dims differ'),
    (lambda: fid.feature_stats(np.full((4, 2), np.nan)), 'NaN'),
    (lambda: fid.batched_features(lambda x: x, np.zeros((4, 2)), 0), 'batch_size'),
])
def test_bad_input_raises(make_call, match):
  with pytest.raises(ValueError, match=match):
    make_call()


def test_batched_features_pads_last_batch():
  images = np.arange(7 * 2, dtype=np.float32).reshape(7, 2)
  seen_sizes = []

  def feature_fn(batch):
    seen_sizes.append(batch.shape[0])
    return batch * 2

  out = fid.batched_features(feature_fn, images, batch_size=3)
  np.testing.assert_array_equal(out, images * 2)
  assert out.dtype == np.float64
  assert seen_sizes == [3, 3, 3]
