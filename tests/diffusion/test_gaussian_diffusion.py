"""Tests for dfflows.diffusion.gaussian_diffusion."""
import math

import jax

import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from dfflows.diffusion import gaussian_diffusion as gd
from dfflows.diffusion import schedules
from tests.diffusion import analytic


def make(num_timesteps=20, schedule='cosine', learn_sigma=True, decoder='continuous'):
  return gd.GaussianDiffusion(schedules.get_beta_schedule(schedule, num_timesteps),
                              learn_sigma=learn_sigma, decoder=decoder)


def test_closed_forms_match_loop_computation():
  diffusion = make(30, 'linear')
  betas = diffusion.betas
  abar, running = [], 1.0
  for beta in betas:
    running *= 1.0 - beta
    abar.append(running)
  abar = np.array(abar)
  abar_prev = np.concatenate([[1.0], abar[:-1]])
  np.testing.assert_allclose(diffusion.alphas_cumprod, abar, rtol=1e-12)
  # DDPM eq. (7): mean coefficients and variance of q(x_{t-1} | x_t, x0).
  np.testing.assert_allclose(diffusion.posterior_mean_coef1,
                             np.sqrt(abar_prev) * betas / (1 - abar), rtol=1e-12)
  np.testing.assert_allclose(diffusion.posterior_mean_coef2,
                             np.sqrt(1 - betas) * (1 - abar_prev) / (1 - abar), rtol=1e-12)
  beta_tilde = (1 - abar_prev) / (1 - abar) * betas
  assert beta_tilde[0] == 0.0
  clipped = np.log(np.concatenate([[beta_tilde[1]], beta_tilde[1:]]))
  np.testing.assert_allclose(diffusion.posterior_log_variance_clipped, clipped, rtol=1e-12)


def test_q_sample_matches_iterated_forward_steps():
  diffusion = make(30, 'linear')
  x0 = jnp.array([0.8, -0.3])
  n, t = 20000, 6
  keys = jax.random.split(jax.random.PRNGKey(0), t + 2)
  x = jnp.broadcast_to(x0, (n, 2))
  for step in range(t + 1):  # Steps 0..t produce x_t.
    beta = diffusion.betas[step]
    x = math.sqrt(1 - beta) * x + math.sqrt(beta) * jax.random.normal(keys[step], x.shape)
  direct = diffusion.q_sample(jnp.broadcast_to(x0, (n, 2)), jnp.full((n,), t),
                              jax.random.normal(keys[-1], (n, 2)))
  mean, var, log_var = diffusion.q_mean_variance(x0[None], jnp.array([t]))
  np.testing.assert_allclose(jnp.exp(log_var), var, rtol=1e-5)
  for samples in (x, direct):
    np.testing.assert_allclose(samples.mean(0), mean[0], atol=0.03)
    np.testing.assert_allclose(samples.var(0), var[0], rtol=0.04)


@pytest.mark.parametrize('t', [1, 4, 9])
def test_posterior_equals_gaussian_conditioning(t):
  diffusion = make(10, 'cosine')
  abar_prev = np.prod(1 - diffusion.betas[:t])
  alpha = 1 - diffusion.betas[t]
  x0, x_t = 0.7, -1.2
  # Joint of (x_{t-1}, x_t) given x0, then condition on x_t.
  mean = np.array([np.sqrt(abar_prev) * x0, np.sqrt(alpha * abar_prev) * x0])
  v1 = 1 - abar_prev
  cov = np.array([[v1, np.sqrt(alpha) * v1], [np.sqrt(alpha) * v1, alpha * v1 + 1 - alpha]])
  cond_mean = mean[0] + cov[0, 1] / cov[1, 1] * (x_t - mean[1])
  cond_var = cov[0, 0] - cov[0, 1] ** 2 / cov[1, 1]
  m, v, log_v = diffusion.q_posterior_mean_variance(
      jnp.full((1, 1), x0), jnp.full((1, 1), x_t), jnp.array([t]))
  np.testing.assert_allclose(m[0, 0], cond_mean, rtol=1e-5)
  np.testing.assert_allclose(v[0, 0], cond_var, rtol=1e-5)
  np.testing.assert_allclose(jnp.exp(log_v[0, 0]), cond_var, rtol=1e-5)


def test_posterior_at_t0_is_the_data():
  diffusion = make(10)
  x0 = jnp.array([[0.3, -0.5]])
  m, v, _ = diffusion.q_posterior_mean_variance(x0, jnp.array([[2.0, 1.0]]), jnp.array([0]))
  np.testing.assert_allclose(m, x0, rtol=1e-6)
  np.testing.assert_allclose(v, 0.0)


def test_p_mean_variance_interpolation_and_x0():
  diffusion = make(10)
  x0 = jax.random.normal(jax.random.PRNGKey(1), (3, 4, 4, 2))
  noise = jax.random.normal(jax.random.PRNGKey(2), x0.shape)
  t = jnp.array([0, 3, 9])
  x_t = diffusion.q_sample(x0, t, noise)
  for v, expected in ((-1.0, diffusion.posterior_log_variance_clipped),
                      (1.0, np.log(diffusion.betas))):
    out = diffusion.p_mean_variance(jnp.concatenate([noise, jnp.full_like(noise, v)], -1),
                                    x_t, t)
    np.testing.assert_allclose(out['log_variance'][:, 0, 0, 0], expected[t], rtol=1e-5)
    np.testing.assert_allclose(out['variance'], jnp.exp(out['log_variance']), rtol=1e-6)
    # The true noise recovers x0 and hence the true posterior mean.
    np.testing.assert_allclose(out['pred_x0'], x0, atol=2e-3)
    mean, _, _ = diffusion.q_posterior_mean_variance(x0, x_t, t)
    np.testing.assert_allclose(out['mean'], mean, atol=1e-4)
  half = diffusion.p_mean_variance(jnp.concatenate([noise, jnp.zeros_like(noise)], -1), x_t, t)
  np.testing.assert_allclose(
      half['log_variance'][:, 0, 0, 0],
      0.5 * (diffusion.posterior_log_variance_clipped[t] + np.log(diffusion.betas[t])),
      rtol=1e-5)
  clipped = diffusion.p_mean_variance(jnp.concatenate([noise * 50, noise], -1), x_t, t,
                                      clip_denoised=True)
  assert jnp.all(jnp.abs(clipped['pred_x0']) <= 1.0)


def test_fixed_variance_and_bad_model_out():
  small = make(10, learn_sigma=False)
  x = jnp.zeros((2, 3))
  t = jnp.array([0, 5])
  np.testing.assert_allclose(small.p_mean_variance(x, x, t)['variance'][:, 0],
                             [small.posterior_variance[1], small.posterior_variance[5]],
                             rtol=1e-6)
  with pytest.raises(ValueError, match='model_out'):
    make(10).p_mean_variance(x, x, t)  # learn_sigma needs 2C channels.
  with pytest.raises(ValueError, match='decoder'):
    make(10, decoder='binary')


def test_prior_kl_matches_numpy():
  diffusion = make(30, 'linear')
  x0 = jnp.array([[0.5, -1.0, 2.0]])
  a = np.prod(1 - diffusion.betas)
  m, v = np.sqrt(a) * np.array([0.5, -1.0, 2.0]), 1 - a
  expected = np.sum(0.5 * (v + m**2 - 1 - np.log(v)))
  np.testing.assert_allclose(diffusion.prior_kl(x0), [expected], rtol=1e-4)


def test_discretized_decoder_is_a_distribution_over_256_bins():
  mean, log_var = jnp.float32(0.1), jnp.float32(np.log(0.05))
  bins = jnp.linspace(-1.0, 1.0, 256)
  nll = gd.discretized_gaussian_nll(bins, mean, log_var)
  np.testing.assert_allclose(jnp.sum(jnp.exp(-nll)), 1.0, rtol=1e-4)
  std = np.sqrt(0.05)
  b = np.linspace(-1.0, 1.0, 256)
  upper = np.where(b > 0.999, np.inf, b + 1 / 255)
  lower = np.where(b < -0.999, -np.inf, b - 1 / 255)
  expected = stats.norm.cdf(upper, 0.1, std) - stats.norm.cdf(lower, 0.1, std)
  np.testing.assert_allclose(np.exp(-nll), expected, rtol=1e-3, atol=1e-7)


def test_vlb_term_at_t0_is_decoder_nll_and_kl_elsewhere():
  for decoder in gd.DECODERS:
    diffusion = make(10, decoder=decoder)
    x0 = jnp.round(jax.random.uniform(jax.random.PRNGKey(0), (2, 3), minval=-1, maxval=1)
                   * 127.5) / 127.5
    x_t = jnp.zeros_like(x0)
    model_out = jnp.concatenate([0.1 * jnp.ones_like(x0), 0.3 * jnp.ones_like(x0)], -1)
    t = jnp.array([0, 4])
    out = diffusion.p_mean_variance(model_out, x_t, t)
    got = diffusion.vlb_term(model_out, x0, x_t, t)
    mean, std = np.asarray(out['mean'][0]), np.sqrt(np.asarray(out['variance'][0]))
    if decoder == 'continuous':
      nll0 = -np.sum(stats.norm.logpdf(np.asarray(x0[0]), mean, std))
    else:
      nll0 = -np.sum(np.log(stats.norm.cdf(np.asarray(x0[0]) + 1 / 255, mean, std)
                            - stats.norm.cdf(np.asarray(x0[0]) - 1 / 255, mean, std)))
    np.testing.assert_allclose(got[0], nll0, rtol=1e-4)
    q_mean, q_var, _ = diffusion.q_posterior_mean_variance(x0, x_t, t)
    p_mean, p_var = np.asarray(out['mean'][1]), np.asarray(out['variance'][1])
    kl = np.sum(np.log(np.sqrt(p_var / q_var[1])) + (q_var[1] + (q_mean[1] - p_mean) ** 2)
                / (2 * p_var) - 0.5)
    np.testing.assert_allclose(got[1], kl, rtol=1e-4)


def test_full_bound_of_exact_model_is_true_nll_plus_prior_gap():
  with jax.enable_x64(True):
    diffusion = make(50, 'linear', learn_sigma=True)
    mu, s, d, n = jnp.array([0.5, -0.3, 0.2]), 0.6, 3, 4000
    x0 = mu + s * jax.random.normal(jax.random.PRNGKey(0), (n, d), jnp.float64)
    model_fn = analytic.exact_model_fn(diffusion, mu, s)
    out = jax.jit(lambda x, k: diffusion.full_bound(model_fn, x, k))(x0, jax.random.PRNGKey(1))
    assert out['vlb_nats'].shape == (n, 50) and out['mse'].shape == (n, 50)
    nll = -jnp.sum(jax.scipy.stats.norm.logpdf(x0, mu, s), axis=1)
    gap = out['total_nats'] - nll
    # Exact reverse conditionals make the bound tight up to KL(q(x_T) || N(0, I)).
    a = diffusion.alphas_cumprod[-1]
    m, v = np.sqrt(a) * np.asarray(mu), a * s**2 + 1 - a
    prior_gap = np.sum(0.5 * (v + m**2 - 1 - np.log(v)))
    stderr = float(jnp.std(gap)) / np.sqrt(n)
    assert abs(float(jnp.mean(gap)) - prior_gap) < 4 * stderr + 1e-6
    assert float(jnp.mean(gap)) > -4 * stderr
    assert stderr < 0.05  # The check above is sharp: the bound is within ~0.2 nats.
    # A fixed-variance model is suboptimal: its bound is strictly looser.
    fixed = make(50, 'linear', learn_sigma=False)
    loose = fixed.full_bound(analytic.exact_model_fn(fixed, mu, s), x0, jax.random.PRNGKey(1))
    assert float(jnp.mean(loose['total_nats'] - nll)) > 0.2


def test_hybrid_loss_gradients_split_between_heads():
  diffusion = make(10)
  x0 = jax.random.normal(jax.random.PRNGKey(0), (4, 2, 2, 3))
  base = jax.random.normal(jax.random.PRNGKey(1), (4, 2, 2, 6)) * 0.5
  key = jax.random.PRNGKey(2)

  def losses(delta):
    return diffusion.training_losses(lambda x_t, t: jnp.tanh(base + delta), x0, key,
                                     vlb_weight=0.01)

  zero = jnp.zeros_like(base)
  grads = jax.jit(jax.jacrev(lambda d: {k: jnp.sum(v) for k, v in losses(d).items()
                                          if k != 't'}))(zero)
  g_loss, g_simple, g_vlb = grads['loss'], grads['l_simple'], grads['vlb_t']
  np.testing.assert_allclose(g_loss[..., :3], g_simple[..., :3], rtol=1e-5, atol=1e-7)
  np.testing.assert_allclose(g_simple[..., 3:], 0.0)
  scale = 0.01 * diffusion.num_timesteps / (12 * math.log(2))
  np.testing.assert_allclose(g_loss[..., 3:], scale * g_vlb[..., 3:], rtol=1e-4, atol=1e-7)
  assert float(jnp.abs(g_vlb[..., :3]).max()) > 0  # The unstopped bound trains the mean.
  assert float(jnp.abs(g_loss[..., 3:]).max()) > 0


def test_one_sample_bound_is_unbiased_over_t():
  diffusion = make(12, decoder='discretized')
  x0 = jnp.round(jax.random.uniform(jax.random.PRNGKey(0), (3, 4, 4, 1), minval=-1,
                                    maxval=1) * 127.5) / 127.5
  model_fn = lambda x_t, t: jnp.concatenate(
      [0.5 * x_t, jnp.tanh(x_t) + 0.01 * t[:, None, None, None]], -1)
  key = jax.random.PRNGKey(3)
  full = diffusion.full_bound(model_fn, x0, key)
  one_sample = jax.jit(lambda t, noise: diffusion.training_losses(
      model_fn, x0, jax.random.PRNGKey(9), t=t, noise=noise))
  bounds = []
  for t in range(diffusion.num_timesteps):
    noise = jax.random.normal(jax.random.fold_in(key, t), x0.shape)
    out = one_sample(jnp.full((3,), t), noise)
    np.testing.assert_allclose(out['vlb_t'], full['vlb_nats'][:, t], rtol=1e-5)
    bounds.append(out['bound'])
  np.testing.assert_allclose(np.mean(bounds, axis=0), full['total_nats'], rtol=1e-5)


def test_training_losses_sample_t_uniformly_and_jit():
  diffusion = make(5)
  x0 = jnp.zeros((2000, 2))
  model_fn = lambda x_t, t: jnp.zeros(x_t.shape[:-1] + (4,))
  fn = jax.jit(lambda k: diffusion.training_losses(model_fn, x0, k))
  out = fn(jax.random.PRNGKey(0))
  counts = np.bincount(np.asarray(out['t']), minlength=5)
  assert counts.min() > 320 and counts.max() < 480
  np.testing.assert_allclose(out['l_simple'].mean(), 1.0, atol=0.1)  # eps_hat = 0; sd 0.022.
  with jax.disable_jit():
    eager = diffusion.training_losses(model_fn, x0[:8], jax.random.PRNGKey(0))
  np.testing.assert_array_equal(eager['t'], out['t'][:8])
  np.testing.assert_allclose(out['loss'][:8], eager['loss'], rtol=1e-5)


def test_respace_keeps_alpha_bar_and_maps_timesteps():
  diffusion = make(20)
  same = gd.respace(diffusion, 20)
  np.testing.assert_allclose(same.betas, diffusion.betas, rtol=1e-12)
  np.testing.assert_array_equal(same.timestep_map, np.arange(20))
  sub = gd.respace(diffusion, [0, 5, 11, 19])
  np.testing.assert_allclose(sub.alphas_cumprod, diffusion.alphas_cumprod[[0, 5, 11, 19]],
                             rtol=1e-10)
  np.testing.assert_array_equal(sub.timestep_map, [0, 5, 11, 19])
  twice = gd.respace(sub, [1, 3])
  np.testing.assert_array_equal(twice.timestep_map, [5, 19])
  np.testing.assert_allclose(twice.alphas_cumprod, diffusion.alphas_cumprod[[5, 19]])
  seen = []
  sub.training_losses(lambda x, t: seen.append(t) or jnp.zeros(x.shape[:-1] + (2,)),
                      jnp.zeros((2, 1)), jax.random.PRNGKey(0), t=jnp.array([2, 3]))
  np.testing.assert_array_equal(seen[0], [11, 19])
  with pytest.raises(ValueError, match='Kept'):
    gd.respace(diffusion, [3, 20])


def _stationary_chain_expected_terms(betas: np.ndarray, x0: float) -> np.ndarray:
  """E_eps of each bound term (prior KL, then t = 0..T-1) for the N(0, I) reverse process
  p(x_{t-1} | x_t) = N(sqrt(alpha_t) x_t, beta_t), one dim at x0; independent numpy."""
  betas = np.asarray(betas, np.float64)
  alphas = 1 - betas
  abar = np.cumprod(alphas)
  abar_prev = np.append(1.0, abar[:-1])
  post_var = betas * (1 - abar_prev) / (1 - abar)
  c1 = betas * np.sqrt(abar_prev) / (1 - abar)
  c2 = (1 - abar_prev) * np.sqrt(alphas) / (1 - abar)
  # mu_q - mu_p = c1 x0 + (c2 - sqrt(alpha_t)) x_t, x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps.
  b = c2 - np.sqrt(alphas)
  sq = (c1 + b * np.sqrt(abar))**2 * x0**2 + b**2 * (1 - abar)
  with np.errstate(divide='ignore'):  # post_var[0] = 0; t = 0 is the decoder, set below.
    kl = 0.5 * (np.log(betas / post_var) + post_var / betas + sq / betas - 1)
  # t = 0: -log N(x0; sqrt(alpha_0) x_1, beta_0), with E(x0 - sqrt(alpha_0) x_1)^2 =
  # beta_0^2 x0^2 + alpha_0 beta_0.
  kl[0] = 0.5 * np.log(2 * np.pi * betas[0]) + 0.5 * (betas[0] * x0**2 + alphas[0])
  prior = 0.5 * (1 - abar[-1] + abar[-1] * x0**2 - 1 - np.log(1 - abar[-1]))
  return np.append(prior, kl)


@pytest.mark.parametrize('schedule', ['cosine', 'linear'])
def test_standard_normal_reverse_process_bound_is_the_exact_nll(schedule):
  """Summed over every t, the N(0, I) reverse process's bound is -log N(x0; 0, 1) exactly:
  the control variate's expectation (independent numpy, per dim)."""
  betas = schedules.get_beta_schedule(schedule, 40)
  for x0 in (0.0, 0.7, -2.5):
    total = _stationary_chain_expected_terms(betas, x0).sum()
    np.testing.assert_allclose(total, 0.5 * x0**2 + 0.5 * np.log(2 * np.pi), rtol=1e-10)


def test_standard_normal_out_realises_that_process():
  """full_bound with `standard_normal_out`: each t's term, averaged over noise, matches the
  numpy expectation above."""
  diffusion = make(12)
  x0 = jnp.full((20000, 1), 0.8)
  out = jax.jit(lambda k: diffusion.full_bound(diffusion.standard_normal_out, x0, k))(
      jax.random.PRNGKey(0))
  expected = _stationary_chain_expected_terms(diffusion.betas, 0.8)
  np.testing.assert_allclose(float(out['prior_nats'][0]), expected[0], rtol=1e-4, atol=1e-5)
  vlb = np.asarray(out['vlb_nats'], np.float64)
  stderr = vlb.std(0) / np.sqrt(vlb.shape[0])
  assert np.all(np.abs(vlb.mean(0) - expected[1:]) < 5 * stderr + 1e-5)
  with pytest.raises(ValueError, match='learn_sigma'):
    make(12, learn_sigma=False).standard_normal_out(x0, jnp.zeros((20000,), jnp.int32))


def test_control_variate_is_the_estimate_minus_the_gaussian_one_at_the_same_draws():
  """With the control variate, the estimate is (the model's) - (the N(0, I) process's, at the
  same t and noise) + -log N(x0; 0, I): draw for draw."""
  diffusion = make(30)
  x0 = jax.random.normal(jax.random.PRNGKey(0), (16, 2, 2, 3))
  model_fn = lambda x_t, t: diffusion.standard_normal_out(x_t, t) + 0.1 * jnp.tanh(
      jnp.concatenate([x_t, x_t**2], -1))
  key = jax.random.PRNGKey(5)
  bound = lambda fn, cv: diffusion.one_sample_bound(fn, x0, key, 'importance', vlb_weight=0.001,
                                                    control_variate=cv)[0]
  expected = (bound(model_fn, False) - bound(diffusion.standard_normal_out, False)
              + gd.standard_normal_nll(x0))
  np.testing.assert_allclose(bound(model_fn, True), expected, rtol=1e-5)
  assert float(jnp.max(jnp.abs(bound(model_fn, True) - bound(model_fn, False)))) > 1e-3
  with pytest.raises(ValueError, match='continuous decoder'):
    make(30, decoder='discretized').one_sample_bound(model_fn, x0, key, 'importance',
                                                     vlb_weight=0.001, control_variate=True)
  with pytest.raises(ValueError, match='unrespaced'):
    gd.respace(diffusion, 10).one_sample_bound(model_fn, x0, key, 'importance',
                                               vlb_weight=0.001, control_variate=True)


def test_full_bound_control_variate_is_the_bound_minus_the_gaussian_one_at_the_same_draws():
  """full_bound with the control variate: the model's sum minus the N(0, I) process's at the
  same x_t, plus -log N(x0; 0, I), draw for draw (unbiased, since the N(0, I) process's sum
  has exactly that expectation: the two tests above); for that process itself, exact."""
  diffusion = make(30)
  x0 = jax.random.normal(jax.random.PRNGKey(0), (16, 2, 2, 3))
  model_fn = lambda x_t, t: diffusion.standard_normal_out(x_t, t) + 0.1 * jnp.tanh(
      jnp.concatenate([x_t, x_t**2], -1))
  key = jax.random.PRNGKey(5)
  total = lambda fn, cv: diffusion.full_bound(fn, x0, key, control_variate=cv)['total_nats']
  exact = gd.standard_normal_nll(x0)
  expected = total(model_fn, False) - total(diffusion.standard_normal_out, False) + exact
  np.testing.assert_allclose(total(model_fn, True), expected, rtol=1e-5)
  np.testing.assert_allclose(total(diffusion.standard_normal_out, True), exact, rtol=1e-5)
  assert float(jnp.max(jnp.abs(total(diffusion.standard_normal_out, False) - exact))) > 1e-2
  with pytest.raises(ValueError, match='continuous decoder'):
    make(30, decoder='discretized').full_bound(model_fn, x0, key, control_variate=True)


def test_full_bound_control_variate_cuts_the_draws_noise():
  """For data near N(0, I) under its exact reverse model, the full bound's spread over draws
  (keys) of x_t, image for image, falls more than tenfold with the control variate; both
  estimates have the same mean over draws."""
  with jax.enable_x64(True):
    diffusion = make(50, 'cosine')
    mu, s = jnp.array([0.1, -0.05, 0.0]), 0.95
    x0 = mu + s * jax.random.normal(jax.random.PRNGKey(0), (8, 3), jnp.float64)
    model_fn = analytic.exact_model_fn(diffusion, mu, s)
    draws = {cv: jax.vmap(lambda k, cv=cv: diffusion.full_bound(
        model_fn, x0, k, control_variate=cv)['total_nats'])(
            jax.random.split(jax.random.PRNGKey(1), 4000)) for cv in (False, True)}
    spread = {cv: float(jnp.mean(jnp.var(d, axis=0))) for cv, d in draws.items()}
    assert spread[True] < 0.1 * spread[False]
    diff = draws[True] - draws[False]
    stderr = jnp.std(diff, axis=0) / np.sqrt(diff.shape[0])
    assert bool(jnp.all(jnp.abs(jnp.mean(diff, axis=0)) < 4 * stderr))


def test_control_variate_keeps_the_bound_and_cuts_its_noise():
  """For data near N(0, I) under its exact reverse model: the mean of the one-sample estimate
  with the control variate is the full bound's (unbiased), and the noise of the estimate and
  of its gradient in x0 (what the flow gets) is far smaller than without it."""
  with jax.enable_x64(True):
    diffusion = make(50, 'cosine')
    mu, s, n = jnp.array([0.2, -0.1, 0.0]), 0.9, 20000
    x0 = mu + s * jax.random.normal(jax.random.PRNGKey(0), (n, 3), jnp.float64)
    model_fn = analytic.exact_model_fn(diffusion, mu, s)
    full = diffusion.full_bound(model_fn, x0, jax.random.PRNGKey(1))['total_nats']

    def estimate(x, key, cv):
      return diffusion.one_sample_bound(model_fn, x, key, 'importance', vlb_weight=0.001,
                                        control_variate=cv)[0]

    for cv in (False, True):
      est = jax.jit(estimate, static_argnums=2)(x0, jax.random.PRNGKey(2), cv)
      diff = est - full
      stderr = float(jnp.std(diff)) / np.sqrt(n)
      assert abs(float(jnp.mean(diff))) < 4 * stderr
    spread = {}
    for cv in (False, True):
      est = jax.jit(estimate, static_argnums=2)(x0, jax.random.PRNGKey(2), cv)
      grad = jax.jit(jax.grad(lambda x, k: jnp.sum(estimate(x, k, cv))))(x0[:4000],
                                                                          jax.random.PRNGKey(3))
      exact = jax.grad(lambda x: jnp.sum(-jax.scipy.stats.norm.logpdf(x, mu, s)))(x0[:4000])
      spread[cv] = (float(jnp.var(est - full)), float(jnp.mean(jnp.square(grad - exact))))
    assert spread[True][0] < 0.1 * spread[False][0]
    assert spread[True][1] < 0.1 * spread[False][1]
