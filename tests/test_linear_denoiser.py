"""experiments.linear_denoiser: its denoiser against the exact Gaussian one (numpy), and its
training against the exact KL of Gaussian latents."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dfflows.diffusion import schedules
from dfflows.diffusion.gaussian_diffusion import GaussianDiffusion
from experiments import linear_denoiser


def _diffusion(steps: int) -> GaussianDiffusion:
  return GaussianDiffusion(schedules.get_beta_schedule('cosine', steps), learn_sigma=True,
                           decoder='continuous')


def test_with_a_s_and_s_squared_it_is_the_exact_gaussian_eps_to_third_order():
  """A = S, B = S^2, m: eps_hat against sqrt(1 - abar) (I + abar S)^-1 (x - sqrt(abar) m)."""
  rng = np.random.default_rng(0)
  dims = 12
  q = rng.normal(size=(dims, dims))
  s = 0.05 * (q + q.T) / np.linalg.norm(q + q.T, 2)
  m = 0.01 * rng.normal(size=dims)
  diffusion = _diffusion(20)
  params = {'a': jnp.asarray(s), 'b': jnp.asarray(s @ s), 'm': jnp.asarray(m)}
  x = rng.normal(size=(20, 2, 2, 3))
  t = np.arange(20)
  out = np.asarray(linear_denoiser.linear_model_fn(diffusion, params)(jnp.asarray(x), t))
  np.testing.assert_array_equal(out[..., 3:], 1.0)
  for i in range(20):
    abar = diffusion.alphas_cumprod[i]
    exact = np.sqrt(1 - abar) * np.linalg.solve(np.eye(dims) + abar * s,
                                                x[i].ravel() - np.sqrt(abar) * m)
    np.testing.assert_allclose(out[i, ..., :3].ravel(), exact, atol=5e-4)


@pytest.mark.parametrize('objective', linear_denoiser.OBJECTIVES)
def test_training_finds_most_of_a_correlated_gaussians_kl(objective):
  """Trained on z0 ~ N(0, I + S), its held-out full bound is below -log N(z0; 0, I) by at
  least half of KL(N(0, I + S) || N(0, I)) and not by more than that KL (the exact density's
  gain); at init the gain is 0 (to float rounding)."""
  rng = np.random.default_rng(1)
  q = rng.normal(size=(4, 4))
  s = 0.3 * (q + q.T) / np.linalg.norm(q + q.T, 2)
  cov = np.eye(4) + s
  kl = 0.5 * (np.trace(cov) - 4 - np.log(np.linalg.det(cov)))
  draw = lambda n: rng.multivariate_normal(np.zeros(4), cov, size=n).reshape(n, 1, 2, 2)
  fit, held = draw(20000), draw(2000)
  diffusion = _diffusion(50)
  key = jax.random.PRNGKey(0)
  gain = lambda p: float(np.mean(linear_denoiser.full_bound_gain(diffusion, p, held, key)))
  assert abs(gain(linear_denoiser.init_params(4))) < 1e-6
  readings = linear_denoiser.train(diffusion, fit, jax.random.PRNGKey(1), 1500, 1e-2, (1500,),
                                   lambda p: {'gain': gain(p), 'stderr': 0.0}, objective)
  assert -kl - 0.02 < readings[1500]['gain'] < -0.5 * kl
