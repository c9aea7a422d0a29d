"""The bound's timestep sampler: probabilities, stratification and unbiasedness by enumeration."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dfflows.diffusion import schedules, timesteps
from dfflows.diffusion.gaussian_diffusion import GaussianDiffusion

T = 50


def _abar(schedule='cosine'):
  return np.cumprod(1.0 - schedules.get_beta_schedule(schedule, T))


@pytest.mark.parametrize('schedule', ['cosine', 'linear'])
def test_importance_probs_follow_log_one_minus_abar(schedule):
  abar = _abar(schedule)
  p = timesteps.timestep_probs(abar, 'importance')
  # Independent: differences of log(1 - abar), normalised over 1 <= t <= T-2.
  raw = np.array([np.log(1 - abar[t]) - np.log(1 - abar[t - 1]) for t in range(1, T - 1)])
  np.testing.assert_allclose(p[1:-1], raw / raw.sum(), rtol=1e-9)
  assert p[0] == 0.0 and p[-1] == 0.0 and abs(p.sum() - 1.0) < 1e-12


def test_uniform_probs():
  p = timesteps.timestep_probs(_abar(), 'uniform')
  np.testing.assert_allclose(p, np.r_[0.0, np.full(T - 2, 1.0 / (T - 2)), 0.0])


def test_stratified_uniforms_put_one_draw_in_each_stratum():
  for seed in range(5):
    u = np.asarray(timesteps.stratified_uniforms(jax.random.PRNGKey(seed), 16))
    assert np.all((u >= 0) & (u < 1))
    np.testing.assert_array_equal(np.sort(np.floor(u * 16)), np.arange(16))


@pytest.mark.parametrize('kind', ['uniform', 'importance'])
def test_draws_follow_probs_and_weights_are_inverse_probs(kind):
  p = timesteps.timestep_probs(_abar(), kind)
  fn = jax.jit(lambda k: timesteps.sample_timesteps(k, 256, p))
  counts = np.zeros(T)
  for seed in range(40):
    t, w = map(np.asarray, fn(jax.random.PRNGKey(seed)))
    assert t.min() >= 1 and t.max() <= T - 2
    np.testing.assert_allclose(w * p[t], 1.0, rtol=1e-5)
    counts += np.bincount(t, minlength=T)
  # Stratified draws: each count is within a few draws of its expectation.
  np.testing.assert_allclose(counts / counts.sum(), p, atol=3.0 / counts.sum() + 1e-3)


@pytest.mark.parametrize('kind', ['uniform', 'importance'])
def test_estimator_expectation_by_enumeration_equals_full_bound(kind):
  """sum_t p_t (prior + L_0 + L_{T-1} + w_t L_t) == prior + sum_t L_t, L_t of a real diffusion."""
  d = GaussianDiffusion(schedules.get_beta_schedule('cosine', T), learn_sigma=True,
                        decoder='continuous')
  z0 = jax.random.normal(jax.random.PRNGKey(0), (3, 4, 4, 2))
  model_fn = lambda x_t, t: jnp.concatenate([0.3 * x_t, jnp.zeros_like(x_t)], -1)
  full = d.full_bound(model_fn, z0, jax.random.PRNGKey(1))
  vlb = np.asarray(full['vlb_nats'], np.float64)  # [B, T]
  prior = np.asarray(full['prior_nats'], np.float64)
  p = timesteps.timestep_probs(d.alphas_cumprod, kind)
  t_all = np.arange(1, T - 1)
  # The weights the sampler attaches to each t (draw enough to see every t).
  t, w = map(np.asarray, timesteps.sample_timesteps(jax.random.PRNGKey(2), 4096, p))
  weight = {int(a): float(b) for a, b in zip(t, w)}
  assert set(weight) == set(t_all.tolist())
  expectation = prior + vlb[:, 0] + vlb[:, -1] + sum(p[s] * weight[s] * vlb[:, s] for s in t_all)
  np.testing.assert_allclose(expectation, np.asarray(full['total_nats'], np.float64), rtol=1e-5)


def test_unknown_kind_raises():
  with pytest.raises(ValueError, match='Unknown t_sampling'):
    timesteps.timestep_probs(_abar(), 'loss_aware')


@pytest.mark.parametrize('kind', ['uniform', 'importance'])
def test_one_sample_bound_by_enumeration_over_its_draws(kind):
  """sum_s p_s E[estimate | t = s] == the full bound, on `one_sample_bound`'s own draws.

  With z0 = 0 and eps_hat = x_t / sqrt(1 - abar_t) (exact), each L_t is a variance-only KL
  (or the decoder NLL at t = 0) that does not depend on the noise, so the estimate given t is
  a number: the rows of a large batch enumerate it for every t.
  """
  d = GaussianDiffusion(schedules.get_beta_schedule('cosine', T), learn_sigma=True,
                        decoder='continuous')

  def model_fn(x_t, t):
    eps = x_t / d.gather(d.sqrt_one_minus_alphas_cumprod, t, x_t)
    v_raw = jnp.cos(0.3 * t.astype(jnp.float32)).reshape((-1, 1, 1, 1)) * jnp.ones_like(x_t)
    return jnp.concatenate([eps, v_raw], -1)

  z0 = jnp.zeros((4096, 2, 2, 1))
  nats, terms = jax.jit(lambda k: d.one_sample_bound(model_fn, z0, k, kind, vlb_weight=0.001))(
      jax.random.PRNGKey(3))
  nats, t = np.asarray(nats, np.float64), np.asarray(terms['t'])
  p = timesteps.timestep_probs(d.alphas_cumprod, kind)
  by_t = {}
  for s in range(1, T - 1):
    rows = nats[t == s]
    assert rows.size and np.ptp(rows) < 1e-4 * max(1.0, np.abs(rows).max())  # One value per t.
    by_t[s] = rows[0]
  expectation = sum(p[s] * by_t[s] for s in by_t)
  full = d.full_bound(model_fn, z0[:1], jax.random.PRNGKey(4))['total_nats']
  np.testing.assert_allclose(expectation, float(full[0]), rtol=1e-4)
