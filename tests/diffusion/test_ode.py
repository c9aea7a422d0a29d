"""Tests for dfflows.diffusion.ode and the DiffFlow's probability-flow likelihood."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from dfflows.diffusion import ode, schedules
from dfflows.diffusion.gaussian_diffusion import GaussianDiffusion
from dfflows.metrics.bpd import continuous_nats_to_bpd
from dfflows.models.build import build_model
from tests.helpers import random_images, tiny_config

SCHEDULE = ode.VPSchedule('cosine', 100)
SHAPE = (3, 2, 2, 2)


def _bcast(a, x):
  return jnp.reshape(a, (-1,) + (1,) * (x.ndim - 1))


def _gaussian_eps_fn(s):
  """The exact E[eps | x_tau] for data N(0, s^2 I): sigma x / v, v = abar s^2 + 1 - abar."""
  def eps_fn(x, tau):
    abar = SCHEDULE.alpha_bar(tau)
    return _bcast(SCHEDULE.sigma(tau) / (abar * s**2 + 1.0 - abar), x) * x
  return eps_fn


def _nonlinear_eps_fn(callback=None):
  """sigma x + 0.5 tanh(W x + tau b), fixed random W, b: a nonlinear, time-dependent eps."""
  dims = math.prod(SHAPE[1:])
  w = jax.random.normal(jax.random.PRNGKey(10), (dims, dims)) / math.sqrt(dims)
  b = jax.random.normal(jax.random.PRNGKey(11), (dims,))

  def eps_fn(x, tau):
    if callback is not None:
      jax.debug.callback(callback)
    h = jnp.tanh(x.reshape(x.shape[0], -1) @ w + tau[:, None] * b).reshape(x.shape)
    return _bcast(SCHEDULE.sigma(tau), x) * x + 0.5 * h
  return eps_fn


@jax.jit
def _gaussian_nll(x0, s):
  return ode.nll(_gaussian_eps_fn(s), x0, jax.random.PRNGKey(0), schedule=SCHEDULE,
                 exact_trace=True)


def _x0(s=1.0, seed=1):
  return s * jax.random.normal(jax.random.PRNGKey(seed), SHAPE)


@pytest.mark.parametrize('name,num_timesteps', [('cosine', 20), ('cosine', 1000),
                                                ('linear', 1000)])
def test_continuous_schedule_matches_discrete(name, num_timesteps):
  schedule = ode.VPSchedule(name, num_timesteps)
  abar = GaussianDiffusion(schedules.get_beta_schedule(name, num_timesteps), learn_sigma=True,
                          decoder='continuous').alphas_cumprod
  i = np.arange(num_timesteps - 1)
  cont = np.exp(schedule.log_alpha_bar((i + 1) / num_timesteps, xp=np))
  # Cosine: exact but for the clipped last beta; linear: to O(beta^2), sigma to 1e-3.
  if name == 'cosine':
    np.testing.assert_allclose(cont, abar[:-1], rtol=1e-9)
  else:
    np.testing.assert_allclose(np.sqrt(1 - cont), np.sqrt(1 - abar[:-1]), rtol=1e-3)
  tau_max = schedule.tau_max
  assert schedule.tau_min == 1.0 / num_timesteps
  assert (tau_max < 1.0) == (name == 'cosine')
  if name == 'cosine':
    np.testing.assert_allclose(np.exp(schedule.log_alpha_bar(tau_max, xp=np)), abar[-1],
                               rtol=1e-6)
  tau = jnp.linspace(schedule.tau_min, tau_max, 7)
  grad = jax.vmap(jax.grad(lambda t: -schedule.log_alpha_bar(t)))(tau)
  np.testing.assert_allclose(schedule.beta(tau), grad, rtol=1e-4)


def test_vp_schedule_rejects_other_schedules():
  with pytest.raises(ValueError, match="Unknown schedule 'quadratic'"):
    ode.VPSchedule('quadratic', 50)


@pytest.mark.parametrize('s', [0.5, 1.0, 2.0])
def test_gaussian_data_nll_matches_analytic(s):
  """For N(0, s^2 I) data and the exact eps the flow is x(tau) = x0 sqrt(v(tau) / v_min)."""
  x0 = _x0(s)
  out = _gaussian_nll(x0, s)
  abar = lambda t: np.exp(SCHEDULE.log_alpha_bar(t, xp=np))
  v_min, v_max = (abar(t) * s**2 + 1 - abar(t) for t in (SCHEDULE.tau_min, SCHEDULE.tau_max))
  dims = math.prod(SHAPE[1:])
  x = np.asarray(x0, np.float64).reshape(SHAPE[0], -1)
  x_max = x * np.sqrt(v_max / v_min)
  expected = -stats.norm.logpdf(x_max).sum(-1) - 0.5 * dims * np.log(v_max / v_min)
  np.testing.assert_allclose(out['nats'] / dims, expected / dims, atol=1e-3)
  np.testing.assert_allclose(out['z'].reshape(x.shape), x_max, atol=1e-3)
  # The ODE model of N(0, s^2 I) data is close to N(0, s^2 I) itself (tau_min > 0, abar_max > 0).
  data_nll = -stats.norm.logpdf(x, scale=s).sum(-1)
  np.testing.assert_allclose(out['nats'] / dims, data_nll / dims, atol=0.02)
  if s == 1.0:  # The drift is exactly 0: the NLL is the prior's.
    np.testing.assert_allclose(out['nats'], data_nll, rtol=1e-5)
    np.testing.assert_allclose(out['delta_nats'], 0.0, atol=1e-5)


def test_hutchinson_is_unbiased_and_nfe_is_counted():
  x0 = _x0(1.5)
  calls = []
  eps_fn = _nonlinear_eps_fn(lambda: calls.append(1))
  solve = jax.jit(lambda x0, exact: ode.nll(eps_fn, x0, jax.random.PRNGKey(2), schedule=SCHEDULE,
                                            num_probes=256, exact_trace=exact),
                  static_argnums=1)
  exact = solve(x0, True)
  jax.block_until_ready(exact)
  assert len(calls) == int(exact['nfe'])
  probes = solve(x0, False)['probe_nats']
  assert probes.shape == (256, SHAPE[0])
  mean, se = probes.mean(0), probes.std(0, ddof=1) / math.sqrt(probes.shape[0])
  assert np.all(se > 1e-3)  # The probes do vary: the Jacobian is not diagonal.
  np.testing.assert_array_less(np.abs(mean - exact['nats']), 3 * se + 1e-3)
  # The nonlinearity matters: the exact NLL is not the prior's N(0, I) NLL of x0.
  assert np.all(np.abs(exact['nats'] + stats.norm.logpdf(np.asarray(x0)).sum((1, 2, 3))) > 0.1)


def test_encode_decode_round_trip():
  x0 = _x0(1.5, seed=3)
  eps_fn = _nonlinear_eps_fn()
  z = jax.jit(lambda x: ode.encode(eps_fn, x, schedule=SCHEDULE))(x0)
  back = jax.jit(lambda z: ode.decode(eps_fn, z, schedule=SCHEDULE))(z)
  assert float(jnp.max(jnp.abs(z - x0))) > 0.1
  # Two solves at rtol = atol = 1e-5 each: the round trip is exact to a few times 1e-5 (the
  # largest of 24 values lands near 1e-4, machine-dependently).
  np.testing.assert_allclose(back, x0, atol=3e-4)


@pytest.fixture(scope='module')
def diffflow():
  model = build_model(tiny_config('diffflow'))
  x = jnp.asarray(random_images(2))
  return model, jax.jit(model.init)(jax.random.PRNGKey(0), x), x


def test_diffflow_continuous_eps_matches_discrete(diffflow):
  model, params, _ = diffflow
  num_timesteps = model.diffusion.num_timesteps
  t = jnp.arange(num_timesteps - 1)  # The last index has a clipped beta: not continuous.
  z = jax.random.normal(jax.random.PRNGKey(2), (t.size,) + model.latent_shape)

  # Perturbed (numpy noise: no per-leaf compiles) so that the zero-initialised layers
  # do not hide the time input.
  rng = np.random.default_rng(1)
  unet = jax.tree.map(lambda p: p + 0.05 * rng.standard_normal(p.shape, np.float32),
                      params['unet'])
  cont, disc = jax.jit(lambda u, z: (
      model._ode_eps_fn(u)(z, (t + 1.0) / num_timesteps),
      model._unet_fn(u, False, jax.random.PRNGKey(3))(z, t)[..., :z.shape[-1]]))(unet, z)
  np.testing.assert_allclose(cont, disc, rtol=1e-4, atol=1e-5)
  assert float(jnp.max(jnp.abs(disc - jnp.sqrt(1 - model.diffusion.alphas_cumprod[:-1, None, None,
                                                                                None]) * z))) > 0.01


def test_diffflow_at_init_ode_nll_is_the_gaussian_prior_nll(diffflow):
  """Zero U-Net output with the eps skip: the ODE is the identity, its prior N(0, I)."""
  model, params, x = diffflow
  key = jax.random.PRNGKey(4)
  # One compile: the bits/dim and (with the same dequantisation key) the flow's latent.
  bpd, (z0, logdet) = jax.jit(lambda p, x, k: (
      model.ode_bpd(p, x, k), model.latent_and_logdet(p, x, jax.random.split(k)[0])))(params, x, key)
  gauss = -stats.norm.logpdf(np.asarray(z0, np.float64)).sum((1, 2, 3))
  dims = math.prod(model.image_shape)
  # 1e-3 nats/dim of the flow-with-N(0, I)-prior NLL.
  np.testing.assert_allclose(bpd, continuous_nats_to_bpd(gauss - logdet, dims),
                             atol=1e-3 / math.log(2))


def test_ode_nll_with_the_custom_vjp_conv_equals_xla_conv(diffflow):
  """The CPU-fast convolution defines only a VJP: the divergence must not need a JVP."""
  model, params, x = diffflow
  config = tiny_config('diffflow')
  config.model.conv_impl = 'fast'
  fast = build_model(config)
  rng = np.random.default_rng(5)
  params = jax.tree.map(lambda p: p + 0.05 * rng.standard_normal(p.shape, np.float32), params)
  key = jax.random.PRNGKey(6)
  ref, got = (jax.jit(lambda p, x, k, m=m: m.ode_nll_terms(p, x, k)['ode_nats'])(params, x[:2],
                                                                                    key)
              for m in (model, fast))
  np.testing.assert_allclose(got, ref, rtol=1e-4)


def test_ode_sample_decodes_prior_draws_that_the_ode_encodes_back(diffflow):
  """ode_sample's latents are the ODE run back from temperature * N(0, I) draws."""
  model, params, _ = diffflow
  rng = np.random.default_rng(7)
  params = {**params, 'unet': jax.tree.map(
      lambda p: p + 0.05 * rng.standard_normal(p.shape, np.float32), params['unet'])}
  key, num, temperature = jax.random.PRNGKey(8), 2, 0.8
  z0 = jax.jit(lambda p: model.ode_latents(p, key, num, temperature))(params)
  z_max = jax.jit(lambda p, z: ode.encode(model._ode_eps_fn(p['unet']), z,
                                          schedule=model.ode_schedule))(params, z0)
  draws = temperature * np.asarray(jax.random.normal(key, (num,) + model.latent_shape))
  np.testing.assert_allclose(z_max, draws, atol=1e-3)
  assert float(np.max(np.abs(np.asarray(z0) - draws))) > 0.01  # The ODE moved them.
  images = jax.jit(lambda p: model.ode_sample(p, key, num, temperature))(params)
  assert images.dtype == jnp.uint8 and images.shape == (num,) + tuple(model.image_shape)
  np.testing.assert_array_equal(images, model._images(params, z0, key, temperature)[1])
