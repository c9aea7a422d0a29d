"""The training system: end-to-end run, resume, data parallelism, bad steps, checkpoints."""
import glob
import importlib.util
import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest
from jax.sharding import Mesh
from PIL import Image

from dfflows import rng
from dfflows import train
from dfflows.data import input_pipeline
from dfflows.models.build import build_model
from dfflows.training import config_checks
from dfflows.training import trainer as trainer_lib
from dfflows.training.checkpoints import Checkpoints
from dfflows.training.train_state import consecutive_bad_steps
from tests.helpers import (NaNOnMarkedBatch, REPO_ROOT, copy_run,
                           param_leaves, random_images, tiny_config)



def _config(data_dir, **train_overrides):
  config = tiny_config('diffflow')
  config.data.data_dir = data_dir
  for k, v in train_overrides.items():
    config.train[k] = v
  return config



def test_train_writes_checkpoint_metrics_samples_and_figure(tiny_run):
  workdir, state = tiny_run.workdir, tiny_run.state
  assert int(state.step) == 4
  rows = [json.loads(l) for l in open(os.path.join(workdir, 'metrics.jsonl'))]
  train_rows = [r for r in rows if 'train/bpd' in r]
  assert [r['step'] for r in train_rows] == [2, 4]
  assert all(np.isfinite(r['train/bpd']) and r['train/bpd'] > 0 for r in train_rows)
  assert any('eval/bpd' in r for r in rows)
  for key in ('train/bpd', 'eval/bpd', 'eval/bpd_stderr'):  # 28x28 of the 32x32 are real.
    real_key = key.replace('bpd', 'bpd_per_real_pixel')
    pairs = [(r[key], r[real_key]) for r in rows if key in r]
    assert pairs and all(np.isclose(real, bpd * 1024 / 784, rtol=1e-6) for bpd, real in pairs)
  assert sorted(os.listdir(os.path.join(workdir, 'checkpoints'))) == ['2', '4']
  img = np.asarray(Image.open(os.path.join(workdir, 'samples.png')))
  assert img.ndim == 2 and img.shape[0] > 32  # a 2x2 grid of 32x32 samples
  assert os.path.getsize(os.path.join(workdir, 'bpd.png')) > 1000
  assert glob.glob(os.path.join(workdir, 'events.out.tfevents.*'))


def test_periodic_eval_and_best_use_the_validation_split_never_the_test_split(tiny_run):
  assert 'validation' in tiny_run.loaded_splits and 'test' not in tiny_run.loaded_splits
  config, workdir = tiny_run.config, tiny_run.workdir
  rows = [json.loads(l) for l in open(os.path.join(workdir, 'metrics.jsonl'))]
  logged = [r['eval/bpd'] for r in rows if 'eval/bpd' in r][-1]  # Step 4, the best/ step.
  trainer = trainer_lib.Trainer(config, build_model(config), trainer_lib.make_mesh())
  bpd = {split: trainer.mean_eval_bpd(tiny_run.state.ema_params,
                                 input_pipeline.load_split(config.data, split)[0])[0]
         for split in ('validation', 'test')}
  np.testing.assert_allclose(logged, bpd['validation'], rtol=1e-5)
  assert abs(logged - bpd['test']) > 1e-3, bpd


def test_resume_continues_the_same_run(tmp_path, data_dir):
  """Train 2 steps, stop, rerun to 4: params equal an uninterrupted 4-step run."""
  workdir = str(tmp_path / 'split')
  # Same config except the stopping step: the LR schedule is a function of num_steps, so
  # emulate a kill at step 2 by stopping early with the final num_steps' schedule.
  config = _config(data_dir)
  config.optim.schedule = 'constant'
  whole = train.train_and_evaluate(config, str(tmp_path / 'whole_const'))
  first = _config(data_dir, num_steps=2)
  first.optim.schedule = 'constant'
  train.train_and_evaluate(first, workdir)
  resumed = train.train_and_evaluate(config, workdir)
  assert int(resumed.step) == 4
  for a, b in zip(param_leaves(whole), param_leaves(resumed)):
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_two_devices_match_one_device():
  if jax.device_count() < 2:
    pytest.skip('needs XLA_FLAGS=--xla_force_host_platform_device_count=2')
  config = tiny_config('diffflow')
  model = build_model(config)
  batch = random_images(8)
  results = []
  for devices in (jax.devices()[:1], jax.devices()[:2]):
    trainer = trainer_lib.Trainer(config, model, Mesh(np.asarray(devices), ('data',)))
    state = trainer.init_state(batch)
    batches = trainer.global_array(batch[None], trainer.stacked)
    assert len(batches.sharding.device_set) == len(devices)
    state, metrics = trainer.train(state, batches)
    results.append((float(metrics['loss']), param_leaves(state)))
  np.testing.assert_allclose(results[0][0], results[1][0], rtol=1e-5)
  for a, b in zip(results[0][1], results[1][1]):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_nan_steps_are_skipped_and_counted():
  config = tiny_config('flow')
  trainer = trainer_lib.Trainer(config, NaNOnMarkedBatch(build_model(config)),
                          Mesh(np.asarray(jax.devices()[:1]), ('data',)))
  good = random_images(8)
  bad = good.copy()
  bad[0, 0, 0, 0] = 255
  state = trainer.init_state(good)
  before = param_leaves(state)
  for _ in range(2):
    state, _ = trainer.train(state, trainer.global_array(bad[None], trainer.stacked))
  assert int(consecutive_bad_steps(state)) == 2
  for a, b in zip(before, param_leaves(state)):
    np.testing.assert_array_equal(a, b)
  for _ in range(2):  # the warmup schedule's first learning rate is 0
    state, _ = trainer.train(state, trainer.global_array(good[None], trainer.stacked))
  assert int(consecutive_bad_steps(state)) == 0
  assert any(not np.array_equal(a, b) for a, b in zip(before, param_leaves(state)))


def test_corrupted_latest_checkpoint_falls_back(tiny_run, tmp_path):
  workdir, state = copy_run(tiny_run, tmp_path / 'run'), tiny_run.state
  files = [f for f in glob.glob(os.path.join(workdir, 'checkpoints', '4', '**', '*'),
                                recursive=True) if os.path.isfile(f) and os.path.getsize(f) > 0]
  for f in files:
    with open(f, 'r+b') as fh:
      fh.truncate(max(os.path.getsize(f) // 3, 1))
  ckpts = Checkpoints(workdir, keep=3)
  restored, step = ckpts.restore(state)
  ckpts.close()
  assert step == 2
  assert int(restored.step) == 2


def test_config_validation_errors(tmp_path):
  config = tiny_config('diffflow')
  config.train.batch_size = 7
  with pytest.raises(ValueError, match='batch_size=7'):
    config_checks.validate_config(config, num_devices=2)
  config = tiny_config('diffflow')
  config.data.image_size = 36
  config.flow.num_levels = 3
  with pytest.raises(ValueError, match='divisible by 2\\*\\*flow.num_levels'):
    config_checks.validate_config(config, num_devices=1)
  config = tiny_config('diffflow')
  config.data.name = 'imagenet'
  with pytest.raises(ValueError, match="data.name='imagenet'"):
    config_checks.validate_config(config, num_devices=1)
  config = tiny_config('diffflow')
  config.eval.bound_draws = 0
  with pytest.raises(ValueError, match='config.eval.bound_draws must be positive, got 0'):
    config_checks.validate_config(config, num_devices=1)


MISSPELT_CONFIG = """from configs import default


def get_config():
  config = default.get_config()
  config.flow.num_step = 4
  return config
"""
DEFAULT_SOURCE = open(os.path.join(REPO_ROOT, 'dfflows', 'default_config.py')).read()


def _default_copy(old: str, new: str) -> str:
  """The source of dfflows/default_config.py with `old` replaced by `new` (a user's copy)."""
  assert old in DEFAULT_SOURCE, old
  return DEFAULT_SOURCE.replace(old, new)


# A copy of the default config with a misspelt key set before its lock(): the config file
# itself cannot tell it from a key of its own.
COPY_MISSPELT = _default_copy('  config.lock()', '  config.flow.num_step = 4\n  config.lock()')
MISSPELT_MESSAGE = ('config.flow.num_step is not a dfflows config key; the closest known key is '
                    'config.flow.num_steps.')


def _load_config_file(path):
  """get_config() of the config file at `path`, loaded as --config loads it."""
  spec = importlib.util.spec_from_file_location('user_config', str(path))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


@pytest.mark.parametrize('source,message', [
    (COPY_MISSPELT, MISSPELT_MESSAGE),
    (_default_copy('  config.flow.num_bins = 8\n', ''),
     'config.flow.num_bins is missing (a config has every key of dfflows/default_config.py); '
     'the closest key it has is config.flow.num_'),
    (_default_copy("config.flow.coupling = 'spline'", "config.flow.coupling = 'glow'"),
     "config.flow.coupling='glow' is not one of ('spline', 'affine')."),
    (_default_copy('config.flow.num_steps = 8', "config.flow.num_steps = '8'"),
     "config.flow.num_steps='8' has type str; dfflows expects int (default 8)."),
    (_default_copy('config.optim.lr = 2e-3', 'config.optim.lr = 1'), None)])
def test_config_file_anywhere_is_checked_against_the_package_key_tree(tmp_path, source, message):
  """A config file outside the repository with its own key tree: one line naming the key."""
  path = tmp_path / 'my_config.py'
  path.write_text(source)
  config = _load_config_file(path)
  if message is None:  # An int where the default is a float is a float.
    config_checks.check_values(config)
    return
  with pytest.raises(ValueError) as error:
    config_checks.check_values(config)
  assert message in str(error.value) and '\n' not in str(error.value), str(error.value)


@pytest.mark.parametrize('source,flags,message', [
    (None, ['--config.train.bacth_size=3'],
     'config.train.bacth_size is not a dfflows config key; the closest known key is '
     'config.train.batch_size.'),
    (None, ['--config.flow.foo=1'], 'config.flow.foo is not a dfflows config key; the closest'),
    (None, ['--config.train.batch_size=abc'], "batch_size=abc: invalid literal for int()"),
    (None, ['--config.flow.coupling=glow'],
     "FATAL config error: config.flow.coupling='glow' is not one of ('spline', 'affine')."),
    (MISSPELT_CONFIG, [], 'line 6: `config.flow.num_step = 4` sets a key the config does not '
                          'have. Did you mean "num_steps" instead of "num_step"?'),
    (COPY_MISSPELT, [], f'FATAL config error: {MISSPELT_MESSAGE}')])
def test_unknown_key_or_wrong_type_fails_before_work_naming_the_key(tmp_path, source, flags,
                                                                    message):
  """On the command line or misspelt in a config file (configs are locked; a copy of the
  default is checked against the package's keys), one line, no traceback."""
  workdir, config_file = tmp_path / 'run', tmp_path / 'misspelt.py'
  if source:
    config_file.write_text(source)
  config = f'--config={config_file}' if source else '--config=configs/default.py'
  proc = subprocess.run([sys.executable, '-m', 'dfflows.main', config, f'--workdir={workdir}']
                        + flags, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
  assert proc.returncode != 0
  assert message in proc.stderr and 'Traceback' not in proc.stderr, proc.stderr[-2000:]
  assert not workdir.exists()


def test_evaluate_checks_its_config_file_against_the_package_key_tree(tmp_path):
  config_file = tmp_path / 'misspelt.py'
  config_file.write_text(COPY_MISSPELT)
  proc = subprocess.run([sys.executable, '-m', 'dfflows.evaluate', f'--config={config_file}',
                         f'--workdir={tmp_path / "run"}'], cwd=REPO_ROOT, capture_output=True,
                        text=True, timeout=300)
  assert proc.returncode != 0
  assert f'FATAL config error: {MISSPELT_MESSAGE}' in proc.stderr, proc.stderr[-2000:]
  assert 'Traceback' not in proc.stderr


def test_workdir_of_a_different_config_is_refused(tmp_path):
  config = tiny_config('diffflow')
  config_checks.check_workdir(config, str(tmp_path))
  other = tiny_config('diffflow')
  other.flow.hidden_channels = 32
  with pytest.raises(ValueError, match='flow.hidden_channels'):
    config_checks.check_workdir(other, str(tmp_path))
  longer = tiny_config('diffflow')
  longer.train.num_steps = 100  # train/eval settings may change on resume
  longer.unet.remat = True  # and so may how the model is computed
  longer.model.conv_impl = 'xla'
  config_checks.check_workdir(longer, str(tmp_path))


def test_workdir_of_an_older_dfflows_is_refused_with_one_clear_error(tmp_path):
  config = tiny_config('diffflow')
  saved = json.loads(config.to_json())
  del saved['unet']['dtype']  # As written by a dfflows before unet.dtype existed ...
  saved['optim']['name'] = 'adamw'  # ... and with a key since removed.
  (tmp_path / config_checks.CONFIG_FILE).write_text(json.dumps(saved))
  with pytest.raises(ValueError) as error:
    config_checks.check_workdir(config, str(tmp_path))
  message = str(error.value)
  assert '\n' not in message, message
  assert f'{config_checks.CONFIG_FILE} was written by an older dfflows' in message
  assert 'keys missing: unet.dtype; unknown: optim.name' in message
  assert message.endswith('use a new workdir.')
  assert json.loads((tmp_path / config_checks.CONFIG_FILE).read_text()) == saved  # Untouched.


def test_workdir_saved_before_an_added_key_loads_with_the_value_it_was_trained_with(tmp_path):
  """config.json without a key of ADDED_KEYS (a run from before it existed) resumes and loads
  with that key's old value."""
  config = tiny_config('diffflow')
  saved = json.loads(config.to_json())
  del saved['model']['gaussian_control_variate']
  (tmp_path / config_checks.CONFIG_FILE).write_text(json.dumps(saved))
  loaded = config_checks.load_saved_config(str(tmp_path))
  assert loaded['model']['gaussian_control_variate'] is False
  config_checks.check_workdir(config, str(tmp_path))  # The same run: resumes.
  config.model.gaussian_control_variate = True  # A resumable key: how the bound is estimated.
  config_checks.check_workdir(config, str(tmp_path))
  del saved['model']['prior']  # Not an added key: still an older dfflows.
  (tmp_path / config_checks.CONFIG_FILE).write_text(json.dumps(saved))
  with pytest.raises(ValueError, match='keys missing: model.prior;'):
    config_checks.check_workdir(config, str(tmp_path))


def test_evaluate_writes_eval_json_of_a_trained_run(tiny_run, tmp_path):
  from dfflows.run_metrics import report  # pylint: disable=g-import-not-at-top
  from dfflows.training.run import load_run  # pylint: disable=g-import-not-at-top
  config = tiny_run.config.copy_and_resolve_references()
  config.eval.classifier_steps = 20  # Eval settings: the run's workdir accepts them.
  config.eval.num_examples, config.eval.fid_num_samples = 8, 16
  workdir = copy_run(tiny_run, tmp_path / 'run')
  result = report.write_report(config, workdir, 'latest')
  saved = json.load(open(os.path.join(workdir, 'eval.json')))
  assert saved == result
  assert result['step'] == 4 and result['bpd_num_examples'] == 8
  assert (result['split'], result['checkpoint_selection_split']) == ('test', None)  # latest/
  # The reported bits/dim is the full bound of the latest EMA params on the first 8 test
  # images, computed here directly with the stream evaluate documents.
  run = load_run(workdir, 'latest')
  test_images, _ = input_pipeline.load_split(config.data, 'test')
  key = jax.random.fold_in(rng.stream(run.base_key, rng.Stream.EVAL_BPD), 0)
  direct = np.asarray(jax.jit(run.model.full_bpd)(run.ema_params, test_images[:8], key))
  np.testing.assert_allclose(result['bpd'], direct.mean(), rtol=1e-5)
  np.testing.assert_allclose(result['bpd_stderr'], direct.std(ddof=1) / np.sqrt(8), rtol=1e-4)
  assert result['bpd_estimator'] == 'full variational bound, every t summed'
  assert np.isfinite(result['bpd_raw_params'])
  # The probability-flow ODE NLL on the first eval.ode_examples images (its maths is tested
  # in tests/diffusion/test_ode.py). Four steps from init the ODE model and the bound are
  # both near the flow with a N(0, I) prior (0.14 bits/dim apart here, T = 20): a dropped
  # or doubled log-det would put them bits apart.
  ode = np.asarray(result['ode_bpd_per_example'])
  assert len(ode) == config.eval.ode_examples == result['ode_bpd_num_examples']
  np.testing.assert_allclose(result['ode_bpd'], ode.mean(), rtol=1e-6)
  assert abs(result['ode_bpd'] - np.mean(result['bpd_per_example'][:len(ode)])) < 0.5
  assert result['ode_network_evals_per_image'] > 1 and result['ode_seconds_per_image'] > 0
  assert 'Hutchinson with 2 Rademacher probes' in result['ode_bpd_estimator']
  np.testing.assert_allclose(result['ode_bpd_per_real_pixel'], result['ode_bpd'] * 1024 / 784,
                             rtol=1e-6)
  # Bits per real pixel: the same total bits over MNIST's 784 unpadded pixels.
  assert (result['model_dims'], result['real_pixels']) == (1024, 784)
  for key in ('bpd', 'bpd_stderr', 'bpd_raw_params', 'bpd_raw_params_stderr'):
    real_key = key.replace('_stderr', '') + '_per_real_pixel' + '_stderr' * key.endswith('stderr')
    np.testing.assert_allclose(result[real_key], result[key] * 1024 / 784, rtol=1e-6)
  assert np.isfinite(result['fid']) and result['fid'] >= 0
  assert 0.1 <= result['samples_mean_top_class_probability'] <= 1.0
  assert result['network_evals_per_sample'] == config.diffusion.sample_steps + 1
  assert result['params'] > 0 and result['seconds_for_25_samples'] > 0
  assert result['provenance']['commit'] != '' and 'jax' in result['provenance']['machine']
  assert result['provenance']['seconds'] > result['seconds_for_25_samples']
