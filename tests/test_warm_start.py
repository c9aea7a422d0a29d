"""Warm start: a DiffFlow whose flow comes from a flow-only run starts at that run's exact NLL."""
import math
import os
import re
import subprocess
import sys

import jax
import numpy as np
import pytest

from dfflows import train
from dfflows.models.build import build_model
from dfflows.training import config_checks, warm_start
from dfflows.training import trainer as trainer_lib
from dfflows.training.checkpoints import Checkpoints
from tests.helpers import REPO_ROOT, one_device_env, random_images, tiny_config


def _trainer(config):
  return trainer_lib.Trainer(config, build_model(config), trainer_lib.make_mesh())


@pytest.fixture(scope='module')
def source(tmp_path_factory):
  """A flow-only workdir whose step-3 checkpoint holds perturbed (non-initial) flow params."""
  config = tiny_config('flow')
  workdir = str(tmp_path_factory.mktemp('warm') / 'flow')
  config_checks.check_workdir(config, workdir)
  trainer = _trainer(config)
  state = trainer.init_state(random_images(8))
  leaves, tree = jax.tree.flatten(state.params)
  keys = jax.random.split(jax.random.PRNGKey(3), len(leaves))
  noisy = [a + 0.05 * jax.random.normal(k, a.shape) for a, k in zip(leaves, keys)]
  params = jax.tree.unflatten(tree, noisy)
  ema = jax.tree.map(lambda a: 0.5 * a, params)  # Distinct from params: both must be loaded.
  # Adam's moments and count as after some steps (not the zeros of a fresh optimizer).
  opt_state = jax.tree.map(lambda a: a + 3 if a.dtype == np.int32 else a + 0.25, state.opt_state)
  ckpts = Checkpoints(workdir, 3)
  for step in (3, 5):
    ckpts.save(state.replace(step=state.step + step, params=params, ema_params=ema,
                             opt_state=opt_state))
    params = jax.tree.map(lambda a: a + 1.0, params)  # Step 5 differs from step 3.
  ckpts.close()
  return config, workdir, trainer


def _warm_config(workdir, step=3):
  config = tiny_config('diffflow')
  config.model.warm_start = workdir
  config.model.warm_start_step = step
  return config


def test_loaded_diffflow_bound_equals_flow_only_exact_nll(source):
  flow_config, workdir, flow_trainer = source
  flow_state, _ = Checkpoints(workdir, 3).restore(flow_trainer.init_state(random_images(8)),
                                                  step=3)
  config = _warm_config(workdir)
  trainer = _trainer(config)
  fresh = trainer.init_state(random_images(8))
  state = warm_start.load_flow(config, fresh)
  x = random_images(64, seed=1)
  key = jax.random.PRNGKey(7)
  full = jax.jit(trainer.model.full_bpd)
  for which in ('params', 'ema_params'):
    # One key: both dequantise with the same u (`models.common.eval_keys`).
    exact = np.asarray(flow_trainer.model.full_bpd(getattr(flow_state, which), x, key))
    bound = np.asarray(full(getattr(state, which), x, key))
    fresh_bound = np.asarray(full(getattr(fresh, which), x, key))
    # The full bound draws one z_t per t, so it is exact in the mean over examples.
    gap = lambda bpd: float(np.mean(bpd - exact)) * math.log(2)  # nats/dim
    assert abs(gap(bound)) < 0.01
    assert abs(gap(fresh_bound)) > 0.05  # Not the DiffFlow's own initial flow.
  # The U-Net is the fresh run's.
  for a, b in zip(jax.tree.leaves(state.params['unet']), jax.tree.leaves(fresh.params['unet'])):
    np.testing.assert_array_equal(a, b)
  assert int(state.step) == 0


def test_warm_start_carries_the_flow_moments_and_a_frozen_flow_is_the_ema(source):
  _, workdir, flow_trainer = source
  loaded, _ = Checkpoints(workdir, 3).restore(flow_trainer.init_state(random_images(8)), step=3)
  (src,) = warm_start.adam_states(loaded.opt_state)
  config = _warm_config(workdir)
  fresh = _trainer(config).init_state(random_images(8))
  state = warm_start.load_flow(config, fresh)
  flow, unet = warm_start.adam_states(state.opt_state)  # multi_transform's groups, sorted.
  assert int(flow.count) == int(src.count) == 3
  for new, old in ((flow.mu, src.mu), (flow.nu, src.nu)):
    for a, b in zip(jax.tree.leaves(new['flow']), jax.tree.leaves(old['flow'])):
      np.testing.assert_array_equal(a, b)
  for a, b in zip(jax.tree.leaves(unet), jax.tree.leaves(warm_start.adam_states(fresh.opt_state)[1])):
    np.testing.assert_array_equal(a, b)  # The U-Net's moments start fresh.
  config.optim.flow.lr_scale = 0.0
  frozen_trainer = _trainer(config)
  frozen = warm_start.load_flow(config, frozen_trainer.init_state(random_images(8)))
  for which in ('params', 'ema_params'):
    for a, b in zip(jax.tree.leaves(getattr(frozen, which)['flow']),
                    jax.tree.leaves(loaded.ema_params['flow'])):
      np.testing.assert_array_equal(a, b)
  # The train step donates params and EMA: they must not share buffers.
  x = random_images(config.train.batch_size, seed=2)
  after, _ = frozen_trainer.train(frozen, frozen_trainer.global_array(x[None],
                                                                     frozen_trainer.stacked))
  for a, b in zip(jax.tree.leaves(after.params['flow']), jax.tree.leaves(loaded.ema_params['flow'])):
    np.testing.assert_array_equal(a, b)


def test_warm_start_step_selects_the_checkpoint(source):
  _, workdir, _ = source
  config = _warm_config(workdir, step=0)  # 0 = the latest, step 5.
  trainer = _trainer(config)
  fresh = trainer.init_state(random_images(8))
  latest = warm_start.load_flow(config, fresh)
  third = warm_start.load_flow(_warm_config(workdir, step=3), fresh)
  diff = jax.tree.map(lambda a, b: float(np.max(np.abs(a - b))), latest.params['flow'],
                      third.params['flow'])
  np.testing.assert_allclose(jax.tree.leaves(diff), 1.0, atol=1e-5)
  with pytest.raises(ValueError, match='No checkpoint of step 4'):
    warm_start.load_flow(_warm_config(workdir, step=4), fresh)


def test_source_that_does_not_fit_is_a_clear_error(source, tmp_path):
  _, workdir, _ = source
  config = _warm_config(workdir)
  config.flow.num_steps = 2
  with pytest.raises(ValueError, match=r'flow.num_steps: 1 \(source\) vs 2 \(now\)'):
    warm_start.load_flow(config, None)
  with pytest.raises(ValueError, match='holds no config.json'):
    warm_start.load_flow(_warm_config(str(tmp_path)), None)
  ddpm = tiny_config('ddpm')
  config_checks.check_workdir(ddpm, str(tmp_path / 'ddpm'))
  with pytest.raises(ValueError, match="kind='ddpm' run; expected a flow-only run"):
    warm_start.load_flow(_warm_config(str(tmp_path / 'ddpm')), None)
  flow = tiny_config('flow')
  flow.model.warm_start = workdir
  with pytest.raises(ValueError, match='warm_start is for model.kind=diffflow'):
    config_checks.validate_config(flow, 1)
  no_source = tiny_config()
  no_source.model.warm_start_step = 4
  with pytest.raises(ValueError, match='warm_start_step=4 names a checkpoint of '
                                       'config.model.warm_start, which is empty'):
    config_checks.validate_config(no_source, 1)


def test_source_without_a_checkpoint_is_refused_before_training(tmp_path):
  source = str(tmp_path / 'flow')
  config_checks.check_workdir(tiny_config('flow'), source)  # A config.json, no checkpoint.
  with pytest.raises(ValueError, match=re.escape(f"warm_start='{source}' has no checkpoint")):
    warm_start.check_before_training(_warm_config(source, step=0), str(tmp_path / 'new'))


def test_refused_warm_start_loads_no_data_and_writes_nothing(source, tmp_path, monkeypatch,
                                                             data_dir):
  _, workdir, _ = source
  config = _warm_config(workdir)
  config.data.data_dir = data_dir
  config.flow.num_steps = 2
  def no_data(*args):
    raise AssertionError('data loaded before the warm start was checked')
  monkeypatch.setattr(train.input_pipeline, 'load_split', no_data)
  new = str(tmp_path / 'new')
  with pytest.raises(ValueError, match=r'does not fit this config: flow.num_steps: 1 \(source'):
    train.train_and_evaluate(config, new)
  assert not os.path.exists(new)
  config_checks.check_workdir(_warm_config(workdir), new)  # A fitting source may use it.


def test_main_refuses_a_warm_start_that_does_not_fit_in_one_line(source, tmp_path, data_dir):
  _, workdir, _ = source
  new = str(tmp_path / 'new')
  proc = subprocess.run(
      [sys.executable, '-m', 'dfflows.main', '--config=tests/tiny_config.py', f'--workdir={new}',
       f'--config.data.data_dir={data_dir}', f'--config.model.warm_start={workdir}',
       '--config.flow.num_steps=2'],
      cwd=REPO_ROOT, env=one_device_env(), capture_output=True, text=True, timeout=600)
  assert proc.returncode != 0 and 'Traceback' not in proc.stderr, proc.stderr[-3000:]
  assert proc.stderr.strip().splitlines()[-1].startswith(
      f"FATAL config error: config.model.warm_start='{workdir}' has a flow that does not fit"
  ), proc.stderr[-3000:]
  assert not os.path.exists(new)
