"""The DiffFlow objective and the baselines against hand-computed formulas."""
import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from dfflows.flows import uniform_dequantize
from dfflows.models import common
from dfflows.models.build import build_model
from tests.flows.flow_testing import perturb
from tests.helpers import random_images, tiny_config


@pytest.fixture(scope='module')
def diffflow():
  config = tiny_config('diffflow')
  model = build_model(config)
  x = jnp.asarray(random_images(4))
  params = perturb(jax.jit(model.init)(jax.random.PRNGKey(0), x), jax.random.PRNGKey(1), 0.05)
  return model, params, x


def _by_hand(model, params, x, key):
  """The DiffFlow's latent, log-det and diffusion quantities, written out step by step."""
  return jax.jit(lambda p, x, k: _by_hand_eager(model, p, x, k))(params, x, key)


def _by_hand_eager(model, params, x, key):
  d = model.diffusion
  k_deq, k_tn, _, _ = jax.random.split(key, 4)
  u = uniform_dequantize(k_deq, x)
  z, logdet = model.flow.apply(params['flow'], u, method='forward')
  z0 = model.to_latent(z)
  abar = jnp.asarray(np.cumprod(1.0 - np.asarray(d.betas, np.float64)), jnp.float32)

  def eps_model(x_t, t):
    out = model.unet.apply(params['unet'], x_t, t, train=False)
    # eps_skip: eps_hat = sqrt(1 - prod_{s<=t}(1 - beta_s)) x_t + U-Net output;
    # variance_skip: raw v = 1 + U-Net output.
    c = z0.shape[-1]
    out = out.at[..., :c].add(jnp.sqrt(1.0 - abar[t])[:, None, None, None] * x_t)
    return out.at[..., c:].add(1.0)

  k_t, k_noise = jax.random.split(k_tn)
  # Importance-sampled t, stratified: p_t ~ log(1 - abar_t) - log(1 - abar_{t-1}), 1 <= t <= T-2.
  abar64 = np.cumprod(1.0 - np.asarray(d.betas, np.float64))
  p = np.log(1.0 - abar64) - np.log(np.concatenate([[1.0], 1.0 - abar64[:-1]]))
  p[0] = p[-1] = 0.0
  p /= p.sum()
  b = x.shape[0]
  u = jnp.mod(jax.random.uniform(k_t, ()) + jnp.arange(b) / b, 1.0)
  t = jnp.sum(jnp.asarray(np.cumsum(p), jnp.float32)[None, :] <= u[:, None], axis=1)
  weight = jnp.asarray(np.divide(1.0, p, out=np.zeros_like(p), where=p > 0), jnp.float32)[t]
  # One normal draw for [z0 at t; z0 at t=0] (the model makes one batched network call).
  # One normal draw for [z0 at t; at t=0; at t=T-1] (the model makes one batched call).
  noise, noise_0, noise_last = jnp.split(
      jax.random.normal(jax.random.split(k_noise)[1], (3 * z0.shape[0],) + z0.shape[1:]), 3)
  x_t = d.q_sample(z0, t, noise)
  out = eps_model(x_t, t)
  t0, t_last = jnp.zeros_like(t), jnp.full_like(t, d.num_timesteps - 1)
  x_1 = d.q_sample(z0, t0, noise_0)
  decoder = d.vlb_term(eps_model(x_1, t0), z0, x_1, t0)
  x_last = d.q_sample(z0, t_last, noise_last)
  decoder = decoder + d.vlb_term(eps_model(x_last, t_last), z0, x_last, t_last)  # + L_{T-1}
  return z0, logdet, t, weight, noise, x_t, out, decoder


def test_diffflow_loss_is_negative_logdet_plus_vlb_by_hand(diffflow):
  model, params, x = diffflow
  key = jax.random.PRNGKey(3)
  _, metrics = jax.jit(model.loss, static_argnames='train')(params, x, key, train=False)
  z0, logdet, t, weight, _, x_t, out, decoder = _by_hand(model, params, x, key)
  d = model.diffusion
  nats = -logdet + decoder + weight * d.vlb_term(out, z0, x_t, t) + d.prior_kl(z0)
  dims = 32 * 32
  expected = (nats + dims * math.log(256)) / (dims * math.log(2))
  np.testing.assert_allclose(metrics['bpd'], expected.mean(), rtol=1e-5)


def test_thesis_objective_is_printed_loss_by_hand():
  """The ablation trains L_diff + log|det df/dx| (bits/dim units), as printed in eq. 4.6."""
  config = tiny_config('diffflow')
  config.model.objective = 'thesis_eq_4_6'
  model = build_model(config)
  x = jnp.asarray(random_images(4))
  params = perturb(jax.jit(model.init)(jax.random.PRNGKey(0), x), jax.random.PRNGKey(1), 0.05)
  key = jax.random.PRNGKey(2)
  loss, _ = jax.jit(model.loss, static_argnames='train')(params, x, key, train=False)
  z0, logdet, t, _, noise, x_t, out, _ = _by_hand(model, params, x, key)
  d = model.diffusion
  eps = out[..., :z0.shape[-1]]
  l_simple = jnp.mean((eps - noise)**2, axis=(1, 2, 3))
  vlb_bpd = d.vlb_term(out, z0, x_t, t, stop_grad_mean=True) / (z0[0].size * math.log(2))
  l_diff = l_simple + 0.001 * d.num_timesteps * vlb_bpd
  expected = (l_diff + logdet / (32 * 32 * math.log(2))).mean()
  np.testing.assert_allclose(loss, expected, rtol=1e-5)


def _grad_norms(grads):
  return {k: float(sum(jnp.sum(g**2) for g in jax.tree.leaves(v))) for k, v in grads.items()}


def test_flow_gradient_comes_from_bound_only_and_unet_from_hybrid(diffflow):
  _, params, x = diffflow
  config = tiny_config('diffflow')
  config.model.unet_loss = 'hybrid'
  model = build_model(config)
  key = jax.random.PRNGKey(5)
  g_total = jax.jit(jax.grad(lambda p: model.loss(p, x, key)[0]))(params)
  g_bound = jax.jit(jax.grad(lambda p: model.loss(p, x, key)[1]['bpd']))(params)
  norms = _grad_norms(g_total)
  assert norms['flow'] > 0 and norms['unet'] > 0
  for a, b in zip(jax.tree.leaves(g_total['flow']), jax.tree.leaves(g_bound['flow'])):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-7)
  # The bound itself does not train the U-Net in hybrid mode (stop-gradient on its params).
  assert _grad_norms(g_bound)['unet'] == 0.0


def test_unet_loss_bound_trains_unet_on_bound():
  config = tiny_config('diffflow')
  config.model.unet_loss = 'bound'
  model = build_model(config)
  x = jnp.asarray(random_images(4))
  params = perturb(jax.jit(model.init)(jax.random.PRNGKey(0), x), jax.random.PRNGKey(1), 0.05)
  key = jax.random.PRNGKey(2)
  g = jax.jit(jax.grad(lambda p: model.loss(p, x, key)[0]))(params)
  g_bpd = jax.jit(jax.grad(lambda p: model.loss(p, x, key)[1]['bpd']))(params)
  for a, b in zip(jax.tree.leaves(g), jax.tree.leaves(g_bpd)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-8)


def test_flow_only_nll_matches_scipy():
  config = tiny_config('flow')
  model = build_model(config)
  x = jnp.asarray(random_images(3))
  params = perturb(jax.jit(model.init)(jax.random.PRNGKey(0), x), jax.random.PRNGKey(1), 0.05)
  key = jax.random.PRNGKey(4)
  bpd = jax.jit(model.eval_bpd)(params, x, key)
  u = uniform_dequantize(jax.random.split(key)[0], x)  # The dequantization half of the key.
  z, logdet = model.flow.apply(params['flow'], u, method='forward')
  logp = stats.norm.logpdf(np.asarray(z, np.float64)).reshape(3, -1).sum(1) + np.asarray(logdet)
  d = 32 * 32
  np.testing.assert_allclose(bpd, (-logp + d * np.log(256)) / (d * np.log(2)), rtol=1e-5)


def test_ddpm_bound_is_discrete_bits_of_scaled_pixels():
  """The training metric: T L_t + prior at the hybrid loss's uniform t, in discrete bits."""
  config = tiny_config('ddpm')
  model = build_model(config)
  x = jnp.asarray(random_images(2))
  params = perturb(jax.jit(model.init)(jax.random.PRNGKey(0), x), jax.random.PRNGKey(1), 0.05)
  key = jax.random.PRNGKey(1)
  bpd = jax.jit(lambda p, x, k: model.loss(p, x, k, train=False)[1]['bpd'])(params, x, key)

  def by_hand(params, x, key):
    k_tn, _ = jax.random.split(key)
    x0 = x.astype(jnp.float32) / 127.5 - 1.0
    k_t, k_n = jax.random.split(k_tn)
    d = model.diffusion
    t = jax.random.randint(k_t, (2,), 0, d.num_timesteps)
    noise = jax.random.normal(k_n, x0.shape)
    x_t = d.q_sample(x0, t, noise)
    out = model.unet.apply(params['unet'], x_t, t, train=False)
    # eps_skip and variance_skip: eps_hat = sqrt(1 - abar_t) x_t + U-Net; raw v = 1 + U-Net.
    abar = np.cumprod(1.0 - np.asarray(d.betas, np.float64))
    out = out.at[..., :1].add(jnp.asarray(np.sqrt(1.0 - abar), jnp.float32)[t][:, None, None, None]
                              * x_t)
    out = out.at[..., 1:].add(1.0)
    return (d.num_timesteps * d.vlb_term(out, x0, x_t, t) + d.prior_kl(x0)) / (32 * 32 * math.log(2))

  np.testing.assert_allclose(bpd, jnp.mean(jax.jit(by_hand)(params, x, key)), rtol=1e-5)
  assert model.diffusion.decoder == 'discretized'


def test_ddpm_eval_bpd_follows_t_sampling_and_is_unbiased():
  """The pixel DDPM's eval_bpd is `one_sample_bound` with `model.t_sampling`, as the DiffFlow's."""
  x = jnp.asarray(random_images(4))
  model = build_model(tiny_config('ddpm'))
  params = perturb(jax.jit(model.init)(jax.random.PRNGKey(0), x), jax.random.PRNGKey(1), 0.05)
  keys = jax.random.split(jax.random.PRNGKey(2), 200)
  full = np.asarray(jax.jit(jax.vmap(model.full_bpd, (None, None, 0)))(params, x, keys[:24]))
  first = {}
  for sampling in ('uniform', 'importance'):
    sampled = dataclasses.replace(
        model, settings=dataclasses.replace(model.settings, t_sampling=sampling))
    draws = np.asarray(jax.jit(jax.vmap(sampled.eval_bpd, (None, None, 0)))(params, x, keys))
    # Unbiased: per image, the mean of the draws is the full bound averaged over its noise.
    stderr = np.hypot(draws.std(0, ddof=1) / np.sqrt(len(draws)),
                      full.std(0, ddof=1) / np.sqrt(len(full)))
    assert np.all(np.abs(draws.mean(0) - full.mean(0)) < 4 * stderr), (draws.mean(0), full)
    first[sampling] = draws[0]
  assert np.all(first['uniform'] != first['importance'])  # The option reaches the estimator.


@pytest.mark.parametrize('skip', [True, False])
def test_ddpm_last_term_at_init_is_small_only_with_the_gaussian_residual(skip):
  """At init the t = T-1 KL is ~0 with eps/variance skips, hundreds of nats/dim without."""
  config = tiny_config('ddpm')
  config.model.eps_skip = config.model.variance_skip = skip
  model = build_model(config)
  x = jnp.asarray(random_images(8))
  params = jax.jit(model.init)(jax.random.PRNGKey(0), x)
  d = model.diffusion
  x0 = x.astype(jnp.float32) / 127.5 - 1.0
  t = jnp.full((8,), d.num_timesteps - 1)
  x_t = d.q_sample(x0, t, jax.random.normal(jax.random.PRNGKey(1), x0.shape))
  out = common.gaussian_residual_fn(model.unet, params['unet'], d, False, jax.random.PRNGKey(2),
                                    skip, skip)(x_t, t)
  nats_per_dim = float(jnp.mean(d.vlb_term(out, x0, x_t, t))) / x0[0].size
  if skip:
    assert 0 <= nats_per_dim < 0.05
  else:
    assert nats_per_dim > 50


@pytest.mark.parametrize('kind', ['diffflow', 'flow', 'ddpm'])
def test_sample_shapes_and_dtype(kind):
  config = tiny_config(kind)
  model = build_model(config)
  x = jnp.asarray(random_images(2))
  params = jax.jit(model.init)(jax.random.PRNGKey(0), x)
  s = jax.jit(model.sample, static_argnames=('num', 'num_steps'))(
      params, jax.random.PRNGKey(1), num=3, num_steps=5)
  assert s.shape == (3, 32, 32, 1) and s.dtype == jnp.uint8


def test_bad_images_are_rejected(diffflow):
  model, params, _ = diffflow
  with pytest.raises(ValueError, match='shape'):
    model.loss(params, jnp.zeros((2, 28, 28, 1), jnp.uint8), jax.random.PRNGKey(0))
  with pytest.raises(ValueError, match='uint8'):
    model.loss(params, jnp.zeros((2, 32, 32, 1), jnp.float32), jax.random.PRNGKey(0))


def test_trajectory_ends_at_the_sample_and_starts_at_the_prior_draw(diffflow, tmp_path):
  from dfflows import visualize  # pylint: disable=g-import-not-at-top
  model, params, _ = diffflow
  key = jax.random.PRNGKey(3)
  z, x = jax.jit(model.trajectory, static_argnames=('num', 'num_steps', 'frames'))(
      params, key, num=2, num_steps=5, frames=3)
  assert z.shape == x.shape == (3, 2, 32, 32, 1) and x.dtype == jnp.uint8
  sample = jax.jit(model.sample, static_argnames=('num', 'num_steps'))(params, key, num=2,
                                                                        num_steps=5)
  np.testing.assert_array_equal(x[-1], sample)
  z_T = jax.random.normal(jax.random.split(key)[0], (2,) + model.latent_shape)
  np.testing.assert_allclose(z[0], model.from_latent(z_T), rtol=1e-6)
  path = str(tmp_path / 'strip.png')
  visualize.save_trajectory_strip(z, x, path)
  from PIL import Image  # pylint: disable=g-import-not-at-top
  assert np.asarray(Image.open(path)).shape == (4 * 34 + 2, 3 * 34 + 2)  # 2 rows per sample


def test_diffflow_at_init_is_the_flow_with_a_gaussian_prior():
  """eps_skip + variance_skip: at init the reverse process is exact for N(0, I) latents."""
  config = tiny_config('diffflow')
  model = build_model(config)
  x = jnp.asarray(random_images(64))
  params = jax.jit(model.init)(jax.random.PRNGKey(0), x)
  model_fn = common.gaussian_residual_fn(model.unet, params['unet'], model.diffusion, False,
                                         jax.random.PRNGKey(1), True, True)
  z0 = jax.random.normal(jax.random.PRNGKey(2), (256,) + model.latent_shape)
  dims = z0[0].size
  bound = jax.jit(model.diffusion.full_bound, static_argnums=0)(
      model_fn, z0, jax.random.PRNGKey(3))['total_nats'] / dims
  exact = np.mean(0.5 * np.log(2 * np.pi) + 0.5 * np.asarray(z0)**2, axis=(1, 2, 3))
  assert abs(float(np.mean(bound - exact))) < 0.01
  # Whole model: the DiffFlow's full bound against the flow-only exact NLL, same flow params.
  flow_model = build_model(tiny_config('flow'))
  flow_bpd = flow_model.eval_bpd({'flow': params['flow']}, x, jax.random.PRNGKey(4))
  diff_bpd = jax.jit(model.full_bpd)(params, x, jax.random.PRNGKey(4))
  assert abs(float(jnp.mean(diff_bpd - flow_bpd))) < 0.01


def _at_init_with(setting: str):
  """(a tiny DiffFlow with the boolean `setting` ('section.key') on, the same without it,
  its params at init, 8 images, the flow-only model of its flow section, a key)."""
  config = tiny_config('diffflow')
  section, name = setting.split('.')
  config[section][name] = True
  model = build_model(config)
  x = jnp.asarray(random_images(8))
  params = jax.jit(model.init)(jax.random.PRNGKey(0), x)
  return (model, build_model(tiny_config('diffflow')), params, x, build_model(tiny_config('flow')),
          jax.random.PRNGKey(4))


def test_control_variate_at_init_gives_the_flow_only_nll_image_for_image():
  """With the Gaussian control variate, the DiffFlow at init (its reverse process exact for
  N(0, I)) estimates the flow-only NLL with no noise at all: each image's one-sample bound and
  the flow's gradient equal the NSF's on the same dequantization. Without it they do not."""
  model, plain, params, x, flow_model, key = _at_init_with('model.gaussian_control_variate')
  flow_bpd = flow_model.eval_bpd({'flow': params['flow']}, x, key)  # The same u (eval_keys).
  np.testing.assert_allclose(jax.jit(model.eval_bpd)(params, x, key), flow_bpd, rtol=1e-5)
  assert float(jnp.max(jnp.abs(jax.jit(plain.eval_bpd)(params, x, key) - flow_bpd))) > 1e-3
  # The loss's flow gradient: the NSF's, given the loss's own dequantization key.
  k_loss = jax.random.PRNGKey(6)
  g = jax.jit(jax.grad(lambda p: model.loss(p, x, k_loss)[0]))(params)['flow']
  k_deq_loss = jax.random.split(k_loss, 4)[0]
  g_nsf = jax.jit(jax.grad(lambda p: jnp.mean(flow_model.nll_terms(p, x, k_deq_loss)[0])))(
      {'flow': params['flow']})['flow']
  for a, b in zip(jax.tree.leaves(g), jax.tree.leaves(g_nsf)):
    np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-6)


def test_bound_control_variate_at_init_gives_the_flow_only_nll_image_for_image():
  """With `eval.bound_control_variate`, the DiffFlow at init has a full bound equal to the
  flow-only exact NLL image for image when both are evaluated with one key (`eval_keys`: the
  same u); without it the draws of x_t leave noise. The label says which estimate it is."""
  model, plain, params, x, flow_model, key = _at_init_with('eval.bound_control_variate')
  flow_bpd = flow_model.full_bpd({'flow': params['flow']}, x, key)
  np.testing.assert_allclose(jax.jit(model.full_bpd)(params, x, key), flow_bpd, rtol=1e-5)
  assert float(jnp.max(jnp.abs(jax.jit(plain.full_bpd)(params, x, key) - flow_bpd))) > 1e-4
  assert 'N(0, I)' in model.bpd_labels.full and 'N(0, I)' not in plain.bpd_labels.full


def test_control_variate_needs_a_continuous_latent_and_learned_variance():
  config = tiny_config('ddpm')
  config.model.gaussian_control_variate = True
  with pytest.raises(ValueError, match='pixel DDPM'):
    build_model(config)
  config = tiny_config('ddpm')
  config.eval.bound_control_variate = True
  with pytest.raises(ValueError, match='eval.bound_control_variate.*pixel DDPM'):
    build_model(config)
  config = tiny_config('diffflow')
  config.model.gaussian_control_variate = True
  config.diffusion.learn_sigma = False
  with pytest.raises(ValueError, match='learn_sigma'):
    build_model(config)
