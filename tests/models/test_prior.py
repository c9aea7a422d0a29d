"""`model.prior='top_level'`: the diffusion on the flow's last-level latent, N(0, I) elsewhere."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dfflows.flows import join_levels, split_levels, uniform_dequantize
from dfflows.models.build import build_model
from tests.helpers import random_images, tiny_config


def _top_config(kind='diffflow'):
  config = tiny_config(kind)
  config.model.prior = 'top_level'
  config.model.latent_squeeze = 0
  return config


def test_split_levels_by_hand():
  """Level 0 factors out the first half of the channels of squeeze(z); the rest is squeezed."""
  z = jnp.arange(2 * 8 * 8 * 1, dtype=jnp.float32).reshape(2, 8, 8, 1)
  factored, top = split_levels(z, 2)
  assert [f.shape for f in factored] == [(2, 4, 4, 2)] and top.shape == (2, 2, 2, 8)
  # squeeze: channel index = 2 * (row parity) + column parity (space-to-depth of 2x2).
  zn = np.asarray(z)[..., 0]
  s = np.stack([zn[:, 0::2, 0::2], zn[:, 0::2, 1::2], zn[:, 1::2, 0::2], zn[:, 1::2, 1::2]], -1)
  np.testing.assert_array_equal(factored[0], s[..., :2])
  rest = s[..., 2:]
  top_hand = np.concatenate([rest[:, 0::2, 0::2], rest[:, 0::2, 1::2], rest[:, 1::2, 0::2],
                             rest[:, 1::2, 1::2]], -1)
  np.testing.assert_array_equal(np.sort(top, axis=-1), np.sort(top_hand, axis=-1))
  np.testing.assert_array_equal(join_levels(factored, top), z)


@pytest.fixture(scope='module')
def top_model():
  model = build_model(_top_config())
  x = jnp.asarray(random_images(64))
  params = jax.jit(model.init)(jax.random.PRNGKey(0), x)
  return model, params, x


def test_top_level_latent_is_the_flows_last_level(top_model):
  model, params, x = top_model
  assert model.latent_shape == (8, 8, 8)
  u = uniform_dequantize(jax.random.PRNGKey(1), x[:4])
  z, logdet = model.flow.apply(params['flow'], u, method='forward')
  z0, log_outside = model.latent_and_logdet(params, x[:4], jax.random.PRNGKey(1))
  factored, top = split_levels(z, 2)
  np.testing.assert_array_equal(z0, top)
  gauss = 0.5 * np.sum(np.asarray(factored[0]).reshape(4, -1)**2, 1) + 256 * math.log(2 * math.pi)
  np.testing.assert_allclose(log_outside, logdet - gauss, rtol=1e-5)


def test_top_level_bound_at_init_is_the_flows_exact_nll(top_model):
  """With the Gaussian residual the bound starts at the flow-only NLL (mean over examples)."""
  model, params, x = top_model
  flow_model = build_model(tiny_config('flow'))
  key = jax.random.PRNGKey(4)
  exact = flow_model.eval_bpd({'flow': params['flow']}, x, key)  # The same u (eval_keys).
  bound = jax.jit(model.full_bpd)(params, x, key)
  assert abs(float(jnp.mean(bound - exact))) * math.log(2) < 0.01


def test_top_level_samples_and_trajectory(top_model):
  model, params, _ = top_model
  key = jax.random.PRNGKey(3)
  sample = jax.jit(model.sample, static_argnames=('num', 'num_steps'))(params, key, num=3,
                                                                        num_steps=4)
  z, x = jax.jit(model.trajectory, static_argnames=('num', 'num_steps', 'frames'))(
      params, key, num=3, num_steps=4, frames=2)
  assert sample.shape == (3, 32, 32, 1) and sample.dtype == jnp.uint8
  np.testing.assert_array_equal(x[-1], sample)
  # The factored-out half is the same N(0, I) draw in every frame.
  f0, f1 = (split_levels(z[i], 2)[0][0] for i in range(2))
  np.testing.assert_array_equal(f0, f1)
  assert 0.8 < float(jnp.std(f0)) < 1.2
