"""Test-set metrics over padded eval batches: the padding never enters a mean."""
import jax
import numpy as np
import pytest

from dfflows.run_metrics import likelihood
from dfflows.models.build import build_model
from tests.helpers import random_images, tiny_config


def _model(kind: str, num_images: int, seed: int):
  """A tiny model of `kind`, its initial params and `num_images` random images."""
  model = build_model(tiny_config(kind))
  images = random_images(num_images, seed=seed)
  return model, model.init(jax.random.PRNGKey(0), images[:4]), images


def test_eps_mse_is_the_mean_over_real_examples_of_each_ones_l_simple():
  model, params, images = _model('ddpm', 5, seed=2)
  key = jax.random.PRNGKey(1)
  # 5 examples in batches of 4: the second batch is one image and three zero-padded rows.
  got = likelihood.eps_mse(model, params, images, 5, 4, key)
  # Independently: each real example alone through the loss, with the documented keys
  # (batch i: fold_in(key, i); its example j: split of that into 4, key j).
  loss = jax.jit(lambda x, k: model.loss(params, x, k, train=False)[1]['l_simple'])
  direct = []
  for i, start in enumerate((0, 4)):
    keys = jax.random.split(jax.random.fold_in(key, i), 4)
    for j in range(min(4, 5 - start)):
      direct.append(float(loss(images[start + j][None], keys[j])))
  np.testing.assert_allclose(got, np.mean(direct), rtol=1e-5)
  # The padded rows' l_simple differs from the real ones': averaging batch means (as before)
  # gives another number.
  padded = np.concatenate([images[4:], np.zeros((3,) + images.shape[1:], np.uint8)])
  keys = jax.random.split(jax.random.fold_in(key, 1), 4)
  pads = [float(loss(padded[j][None], keys[j])) for j in range(4)]
  batch_means = [np.mean(direct[:4]), np.mean(pads)]
  assert abs(np.mean(batch_means) - got) > 1e-3 * got


def test_full_bpd_summary_drops_the_padding_and_reports_mean_and_stderr():
  model, params, images = _model('flow', 7, seed=3)
  key = jax.random.PRNGKey(4)
  out = likelihood.full_bpd_summary(model, params, images, 7, 4, key)
  full = jax.jit(model.full_bpd)
  direct = np.concatenate([np.asarray(full(params, images[:4], jax.random.fold_in(key, 0))),
                           np.asarray(full(params, images[4:], jax.random.fold_in(key, 1)))])
  np.testing.assert_allclose(out['bpd_per_example'], direct, rtol=1e-5)
  assert out['bpd_num_examples'] == 7
  np.testing.assert_allclose(out['bpd'], direct.mean(), rtol=1e-5)
  np.testing.assert_allclose(out['bpd_stderr'], direct.std(ddof=1) / np.sqrt(7), rtol=1e-4)


def test_full_bpd_summary_averages_each_examples_draws_over_their_keys():
  model, params, images = _model('diffflow', 5, seed=5)
  key = jax.random.PRNGKey(6)
  out = likelihood.full_bpd_summary(model, params, images, 5, 4, key, draws=3)
  full = jax.jit(model.full_bpd)
  # Independently: draw 0 with `key` itself, draw d > 0 with fold_in(key, d); batch i of a
  # draw folds i into the draw's key.
  rows = []
  for d in range(3):
    k = key if d == 0 else jax.random.fold_in(key, d)
    rows.append(np.concatenate([np.asarray(full(params, images[:4], jax.random.fold_in(k, 0))),
                                np.asarray(full(params, images[4:], jax.random.fold_in(k, 1)))]))
  rows = np.stack(rows)
  assert not np.allclose(rows[1], rows[0])  # The draws differ, so the mean is no one draw.
  np.testing.assert_allclose(out['bpd_per_example'], rows.mean(axis=0), rtol=1e-5)
  np.testing.assert_allclose(out['bpd'], rows.mean(), rtol=1e-5)
  assert out['bpd_draws'] == 3 and out['bpd_num_examples'] == 5
  one = likelihood.full_bpd_summary(model, params, images, 5, 4, key)
  np.testing.assert_allclose(one['bpd_per_example'], rows[0], rtol=1e-5)
  with pytest.raises(ValueError, match=r'at least one draw per image, got draws=0 '
                     r'\(config.eval.bound_draws\)'):
    likelihood.full_bpd_summary(model, params, images, 5, 4, key, draws=0)
