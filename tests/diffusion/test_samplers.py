"""Tests for dfflows.diffusion.samplers."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dfflows.diffusion import gaussian_diffusion as gd
from dfflows.diffusion import samplers
from dfflows.diffusion import schedules
from tests.diffusion import analytic

MU, S = 0.5, 0.4


def make(num_timesteps, learn_sigma=True):
  return gd.GaussianDiffusion(schedules.get_beta_schedule('cosine', num_timesteps),
                              learn_sigma=learn_sigma, decoder='continuous')


def test_shapes_determinism_and_temperature():
  diffusion = make(8)
  model_fn = analytic.exact_model_fn(diffusion, MU, S)
  run = jax.jit(lambda key, temp: samplers.sample(
      diffusion, model_fn, (3, 4, 4, 2), key, temperature=temp, return_trajectory=True))
  traj = run(jax.random.PRNGKey(0), 1.0)
  assert traj.shape == (9, 3, 4, 4, 2)
  np.testing.assert_array_equal(traj, run(jax.random.PRNGKey(0), 1.0))
  assert not np.allclose(traj[-1], run(jax.random.PRNGKey(1), 1.0)[-1])
  cold = run(jax.random.PRNGKey(0), 0.5)
  np.testing.assert_allclose(cold[0], 0.5 * traj[0], rtol=1e-6)
  assert not np.allclose(cold[-1], traj[-1])
  x0 = samplers.sample(diffusion, model_fn, (3, 4, 4, 2), jax.random.PRNGKey(0))
  np.testing.assert_allclose(x0, traj[-1], rtol=1e-5, atol=1e-6)
  with pytest.raises(ValueError, match='sampler'):
    samplers.sample(diffusion, model_fn, (1, 2), jax.random.PRNGKey(0), sampler='euler')


@pytest.mark.parametrize('sampler', ['ancestral', 'ddim'])
def test_exact_model_samples_the_data_distribution(sampler):
  diffusion = make(100)
  model_fn = analytic.exact_model_fn(diffusion, MU, S)
  x0 = jax.jit(lambda k: samplers.sample(diffusion, model_fn, (20000, 1), k,
                                         sampler=sampler))(jax.random.PRNGKey(0))
  np.testing.assert_allclose(float(x0.mean()), MU, atol=0.015)
  np.testing.assert_allclose(float(x0.std()), S, atol=0.015)


def test_ddim_encode_decode_round_trip():
  diffusion = make(200, learn_sigma=False)
  model_fn = analytic.exact_model_fn(diffusion, MU, S)
  x0 = MU + S * jax.random.normal(jax.random.PRNGKey(0), (64, 3))
  x_T = jax.jit(lambda x: samplers.ddim_encode(diffusion, model_fn, x))(x0)
  # For Gaussian data the DDIM ODE maps x0 to (x0 - mu) / s, up to discretisation.
  np.testing.assert_allclose(x_T, (x0 - MU) / S, atol=0.05)
  recon = jax.jit(lambda z: samplers.sample(diffusion, model_fn, x0.shape,
                                            jax.random.PRNGKey(1), sampler='ddim',
                                            x_T=z))(x_T)
  np.testing.assert_allclose(recon, x0, atol=0.03)
  assert float(jnp.abs(recon - x0).mean()) < 0.015


def test_respaced_all_steps_equals_full_and_subsequence_works():
  diffusion = make(30)
  model_fn = analytic.exact_model_fn(diffusion, MU, S)
  for sampler in ('ancestral', 'ddim'):
    full = samplers.sample(diffusion, model_fn, (5, 2), jax.random.PRNGKey(3), sampler=sampler)
    same = samplers.sample(gd.respace(diffusion, 30), model_fn, (5, 2), jax.random.PRNGKey(3),
                           sampler=sampler)
    np.testing.assert_allclose(same, full, rtol=1e-6, atol=1e-6)
  seen = []
  spy = lambda x, t: seen.append(t) or jnp.zeros(x.shape[:-1] + (4,))
  with jax.disable_jit():  # Runs the scan as a loop, so the spy sees values.
    samplers.sample(gd.respace(diffusion, [0, 10, 29]), spy, (5, 2), jax.random.PRNGKey(3))
  # The network sees the original timesteps.
  np.testing.assert_array_equal(np.stack(seen), [[29] * 5, [10] * 5, [0] * 5])


def test_ddim_respaced_exact_model_samples_the_data():
  diffusion = make(200, learn_sigma=False)
  model_fn = analytic.exact_model_fn(diffusion, MU, S)
  x0 = jax.jit(lambda k: samplers.sample(gd.respace(diffusion, 40), model_fn, (20000, 1), k,
                                         sampler='ddim'))(jax.random.PRNGKey(0))
  np.testing.assert_allclose(float(x0.mean()), MU, atol=0.02)
  np.testing.assert_allclose(float(x0.std()), S, atol=0.02)


def test_ddim_eta_one_has_posterior_variance():
  diffusion = make(10, learn_sigma=False)
  x_t = jax.random.normal(jax.random.PRNGKey(0), (4, 3))
  model_out = 0.3 * x_t
  t = jnp.array([1, 4, 7, 9])
  noise = jax.random.normal(jax.random.PRNGKey(1), x_t.shape)
  step = lambda eta, n: samplers.ddim_step(diffusion, model_out, x_t, t, n, eta=eta)
  np.testing.assert_allclose(step(1.0, noise) - step(1.0, 0 * noise),
                             np.sqrt(diffusion.posterior_variance[t])[:, None] * noise,
                             rtol=1e-4, atol=1e-6)
  # With eta = 1 the DDIM mean is the DDPM posterior mean given the predicted x0.
  mean = diffusion.p_mean_variance(model_out, x_t, t)['mean']
  np.testing.assert_allclose(step(1.0, 0 * noise), mean, rtol=1e-4, atol=1e-5)
