"""Fréchet distance between Gaussian fits of two feature sets (FID).

For features with means mu1, mu2 and covariances S1, S2 the distance is

  d^2 = |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr((S1^{1/2} S2 S1^{1/2})^{1/2}),

where tr((S1^{1/2} S2 S1^{1/2})^{1/2}) = tr((S1 S2)^{1/2}) because both matrices
have the same (non-negative) eigenvalues. Computing it through the symmetric
PSD square roots of eigh, in float64, avoids the complex or NaN results that
`scipy.linalg.sqrtm(S1 @ S2)` gives for near-singular covariances.
"""
import dataclasses
import os
from typing import Callable

import numpy as np

MIN_SAMPLES = 2
# eval.fid_features: 'auto' is the classifier for 1-channel images, InceptionV3 for RGB.
FID_FEATURES = ('auto', 'classifier', 'inception')
# eval.inception_dim: the feature dims of pytorch-fid's InceptionV3 (metrics/inception.py), in
# its BLOCK_INDEX_BY_DIM order; here so that config checks need not import the model.
BLOCK_DIMS = (64, 192, 768, 2048)


def resolve_features(choice: str, channels: int) -> str:
  """'classifier' or 'inception' for an eval.fid_features choice and an image channel count."""
  if choice not in FID_FEATURES:
    raise ValueError(f'Unknown FID features {choice!r}; expected one of {FID_FEATURES}.')
  if choice == 'auto':
    return 'classifier' if channels == 1 else 'inception'
  if choice == 'classifier' and channels != 1:
    raise ValueError(f"eval.fid_features='classifier' needs 1-channel images (got {channels}); "
                     "use 'inception' (or 'auto').")
  return choice


@dataclasses.dataclass(frozen=True)
class FeatureStats:
  """Mean `mu` (d,), covariance `sigma` (d, d) and count `n` of a feature set."""
  mu: np.ndarray
  sigma: np.ndarray
  n: int

  def __post_init__(self):
    _check_gaussian(np.asarray(self.mu), np.asarray(self.sigma), 'stats')

  def save(self, path: str | os.PathLike) -> None:
    """Writes the statistics to an .npz file (e.g. next to a run's workdir)."""
    with open(path, 'wb') as f:
      np.savez(f, mu=self.mu, sigma=self.sigma, n=np.int64(self.n))

  @classmethod
  def load(cls, path: str | os.PathLike) -> 'FeatureStats':
    """Reads statistics written by `save`."""
    with np.load(path) as data:
      missing = {'mu', 'sigma', 'n'} - set(data.files)
      if missing:
        raise ValueError(f'{path} is missing {sorted(missing)}; not a FeatureStats file.')
      return cls(mu=data['mu'].astype(np.float64),
                 sigma=data['sigma'].astype(np.float64), n=int(data['n']))


def feature_stats(features: np.ndarray) -> FeatureStats:
  """Returns the float64 mean and unbiased covariance of (n, d) features."""
  features = np.asarray(features, dtype=np.float64)
  if features.ndim != 2:
    raise ValueError(f'features must have shape (n, d), got {features.shape}.')
  if features.shape[0] < MIN_SAMPLES:
    raise ValueError(
        f'Need at least {MIN_SAMPLES} feature vectors for a covariance, got {features.shape[0]}.')
  if not np.all(np.isfinite(features)):
    raise ValueError('features contain NaN or Inf.')
  return FeatureStats(mu=features.mean(axis=0), sigma=np.cov(features, rowvar=False, ddof=1).reshape(
      features.shape[1], features.shape[1]), n=features.shape[0])


def _check_gaussian(mu: np.ndarray, sigma: np.ndarray, name: str) -> None:
  """Raises ValueError unless mu is (d,) and sigma is a finite (d, d) matrix."""
  if mu.ndim != 1:
    raise ValueError(f'{name}: mu must have shape (d,), got {mu.shape}.')
  if sigma.shape != (mu.shape[0], mu.shape[0]):
    raise ValueError(f'{name}: sigma must have shape {(mu.shape[0],) * 2}, got {sigma.shape}.')
  if not (np.all(np.isfinite(mu)) and np.all(np.isfinite(sigma))):
    raise ValueError(f'{name}: mu or sigma contains NaN or Inf.')


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
  """Returns the symmetric PSD square root, clipping tiny negative eigenvalues to 0."""
  eigvals, eigvecs = np.linalg.eigh((matrix + matrix.T) / 2)
  return (eigvecs * np.sqrt(np.clip(eigvals, 0.0, None))) @ eigvecs.T


def _trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
  """Returns tr((sigma1 sigma2)^{1/2}) via the PSD matrix sigma1^{1/2} sigma2 sigma1^{1/2}."""
  root1 = _psd_sqrt(sigma1)
  inner = root1 @ sigma2 @ root1
  eigvals = np.linalg.eigvalsh((inner + inner.T) / 2)
  return float(np.sqrt(np.clip(eigvals, 0.0, None)).sum())


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray,
                     sigma2: np.ndarray) -> float:
  """Returns the squared Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2)."""
  mu1, mu2 = (np.asarray(m, dtype=np.float64) for m in (mu1, mu2))
  sigma1, sigma2 = (np.asarray(s, dtype=np.float64) for s in (sigma1, sigma2))
  _check_gaussian(mu1, sigma1, 'first')
  _check_gaussian(mu2, sigma2, 'second')
  if mu1.shape != mu2.shape:
    raise ValueError(f'Feature dims differ: {mu1.shape[0]} vs {mu2.shape[0]}.')
  diff = mu1 - mu2
  trace_term = np.trace(sigma1) + np.trace(sigma2) - 2 * _trace_sqrt_product(sigma1, sigma2)
  # Rounding can make the (non-negative) distance of identical sets slightly negative.
  return max(float(diff @ diff + trace_term), 0.0)


def fid_from_stats(stats_a: FeatureStats, stats_b: FeatureStats) -> float:
  """Returns the Fréchet distance between two cached feature statistics."""
  return frechet_distance(stats_a.mu, stats_a.sigma, stats_b.mu, stats_b.sigma)


def compute_fid(features_a: np.ndarray, features_b: np.ndarray) -> float:
  """Returns the FID between two (n, d) feature sets (n may differ, d may not)."""
  features_a, features_b = np.asarray(features_a), np.asarray(features_b)
  if features_a.ndim != 2 or features_b.ndim != 2:
    raise ValueError(
        f'features must have shape (n, d), got {features_a.shape} and {features_b.shape}.')
  if features_a.shape[1] != features_b.shape[1]:
    raise ValueError(f'Feature dims differ: {features_a.shape[1]} vs {features_b.shape[1]}.')
  return fid_from_stats(feature_stats(features_a), feature_stats(features_b))


def batched_features(feature_fn: Callable[[np.ndarray], np.ndarray], images: np.ndarray,
                     batch_size: int) -> np.ndarray:
  """Returns `feature_fn` applied to `images` in batches, concatenated as float64 (n, d).

  The last batch is padded to `batch_size` (and the padding dropped) so a jitted
  `feature_fn` compiles once.
  """
  if batch_size < 1:
    raise ValueError(f'batch_size must be positive, got {batch_size}.')
  images = np.asarray(images)
  if images.ndim < 1 or images.shape[0] == 0:
    raise ValueError(f'images must be a non-empty batch, got shape {images.shape}.')
  batch_size = min(batch_size, images.shape[0])
  outputs = []
  for start in range(0, images.shape[0], batch_size):
    batch = images[start:start + batch_size]
    num = batch.shape[0]
    if num < batch_size:
      batch = np.concatenate([batch, np.repeat(batch[-1:], batch_size - num, axis=0)])
    features = np.asarray(feature_fn(batch), dtype=np.float64)
    outputs.append(features.reshape(batch_size, -1)[:num])
  return np.concatenate(outputs)
