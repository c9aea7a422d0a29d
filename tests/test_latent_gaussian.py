"""The fitted diagonal Gaussian's gain over N(0, I) (experiments/latent_gaussian.py)."""
import numpy as np
from scipy import stats

from experiments import latent_gaussian


def test_gain_is_the_log_density_difference_of_the_fitted_gaussian():
  rng = np.random.default_rng(0)
  fit = rng.normal(0.3, 1.5, size=(50, 4))
  held = rng.normal(size=(7, 4))
  mean, std = fit.mean(0), fit.std(0)
  expected = (stats.norm.logpdf(held, mean, std) - stats.norm.logpdf(held)).sum(1)
  np.testing.assert_allclose(latent_gaussian.diagonal_gaussian_gain(fit, held), expected,
                             rtol=1e-10)


def test_gain_on_scaled_gaussian_latents_approaches_their_kl_to_the_standard_normal():
  rng = np.random.default_rng(1)
  scale = np.array([0.6, 0.9, 1.0, 1.2])
  fit, held = (rng.normal(size=(n, 4)) * scale for n in (200_000, 200_000))
  kl = 0.5 * (scale**2 - 1 - np.log(scale**2)).sum()  # KL(N(0, s^2) || N(0, 1)), nats.
  assert abs(latent_gaussian.diagonal_gaussian_gain(fit, held).mean() - kl) < 0.01


def test_full_gain_is_the_log_density_difference_of_the_fitted_gaussian():
  rng = np.random.default_rng(2)
  mix = rng.normal(size=(4, 4))
  fit = rng.normal(size=(60, 4)) @ mix + 0.2
  held = rng.normal(size=(9, 4))
  mean, cov = fit.mean(0), np.cov(fit, rowvar=False)
  expected = (stats.multivariate_normal.logpdf(held, mean, cov)
              - stats.multivariate_normal.logpdf(held, np.zeros(4), np.eye(4)))
  np.testing.assert_allclose(latent_gaussian.full_gaussian_gain(fit, held), expected,
                             rtol=1e-10)


def test_full_gain_on_correlated_latents_approaches_their_kl_and_beats_the_diagonal():
  rng = np.random.default_rng(3)
  cov = np.array([[1.0, 0.8], [0.8, 1.0]])  # Unit variances: the diagonal fit gains nothing.
  chol = np.linalg.cholesky(cov)
  fit, held = (rng.normal(size=(n, 2)) @ chol.T for n in (200_000, 200_000))
  kl = -0.5 * np.log(np.linalg.det(cov))  # KL(N(0, cov) || N(0, I)) with unit variances, nats.
  assert abs(latent_gaussian.full_gaussian_gain(fit, held).mean() - kl) < 0.01
  assert abs(latent_gaussian.diagonal_gaussian_gain(fit, held).mean()) < 0.01
