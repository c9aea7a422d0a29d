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
