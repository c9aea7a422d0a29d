"""Which FID features `dfflows.evaluate` uses (eval.fid_features), bad FID settings, the
bits per real pixel beside bits per model dim in eval.json, and the config of an evaluation:
the run's config.json with only the eval and sampler settings of the command line."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from dfflows.data import input_pipeline
from dfflows.run_metrics import likelihood
from dfflows.run_metrics.fid_features import fid_features
from dfflows.training import config_checks
from dfflows.training import run as run_lib
from experiments import bound_draws
from tests.helpers import REPO_ROOT, copy_run, tiny_config
from tests.metrics.inception_testing import fake_state_dict, random_variables


def _rgb_config(**eval_settings):
  config = tiny_config('diffflow')
  config.data.name, config.data.channels = 'cifar10', 3
  for key, value in eval_settings.items():
    config.eval[key] = value
  return config


def test_rgb_without_inception_weights_has_no_fid_features(tmp_path):
  assert fid_features(_rgb_config(), str(tmp_path)) is None


def test_rgb_uses_inception_features_from_the_weights_file(tmp_path):
  path = tmp_path / 'pt_inception.npz'
  np.savez(path, **fake_state_dict(random_variables(), np.random.default_rng(0)))
  features = fid_features(_rgb_config(inception_weights=str(path), inception_dim=64),
                          str(tmp_path))
  assert features.tag == 'inception64' and features.classifier_params is None
  images = np.random.default_rng(1).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
  out = np.asarray(features.fn(images))
  assert out.shape == (3, 64) and np.all(np.isfinite(out))
  assert not np.allclose(out[0], out[1])  # Features depend on the image.


def test_missing_inception_weights_file_is_an_error(tmp_path):
  config = _rgb_config(inception_weights=str(tmp_path / 'absent.npz'))
  with pytest.raises(FileNotFoundError, match='absent.npz'):
    fid_features(config, str(tmp_path))


def test_the_mnist_classifier_is_refused_for_rgb_images():
  with pytest.raises(ValueError, match="fid_features='classifier' needs 1-channel"):
    config_checks.validate_config(_rgb_config(fid_features='classifier'), num_devices=1)
  config_checks.validate_config(_rgb_config(fid_features='auto'), num_devices=1)


def test_eval_json_reports_bits_per_real_pixel_of_padded_mnist():
  config = tiny_config('diffflow')  # mnist_embedded, zero-padded 28x28 -> 32x32.
  result = {'bpd': 1.201, 'bpd_stderr': 0.016, 'bpd_raw_params': 1.25,
            'bpd_raw_params_stderr': 0.02}
  fields = likelihood.real_pixel_fields(result, config.data)
  assert fields['model_dims'] == 1024 and fields['real_pixels'] == 784
  for key in ('bpd', 'bpd_stderr', 'bpd_raw_params', 'bpd_raw_params_stderr'):
    per_pixel = key.replace('_stderr', '') + '_per_real_pixel' + (
        '_stderr' if key.endswith('_stderr') else '')
    np.testing.assert_allclose(fields[per_pixel], result[key] * 1024 / 784, rtol=1e-12)
  np.testing.assert_allclose(fields['bpd_per_real_pixel'], 1.5687, atol=1e-4)
  assert fields['bpd_unit'] == ('bits per model dim (32x32x1 = 1024 dims, of which 240 are zero '
                                'padding)')
  assert 'bits per real pixel' in fields['bpd_per_real_pixel_unit']
  # RGB data without padding: the two units agree.
  rgb = likelihood.real_pixel_fields({'bpd': 3.0}, _rgb_config().data)
  assert rgb['bpd_per_real_pixel'] == 3.0 and 'no padding' in rgb['bpd_unit']


def _saved_run(tmp_path) -> tuple:
  """A workdir holding the tiny DiffFlow's config.json, and that config."""
  config = tiny_config('diffflow')
  config_checks.check_workdir(config, str(tmp_path))
  return str(tmp_path), config


def test_evaluation_config_is_the_runs_config_without_a_command_line(tmp_path):
  workdir, config = _saved_run(tmp_path)
  got = config_checks.evaluation_config(workdir, None, {})
  assert json.loads(got.to_json()) == json.loads(config.to_json())


def test_evaluation_config_takes_eval_and_sampler_overrides_and_ignores_training_keys(tmp_path):
  workdir, config = _saved_run(tmp_path)
  overrides = {'eval.num_examples': 8, 'diffusion.sample_steps': 3, 'diffusion.sampler': 'ddim',
               'optim.lr': 0.5, 'train.num_steps': 7, 'model.warm_start': 'runs/x',
               'flow.hidden_channels': config.flow.hidden_channels}  # The run's own value.
  got = config_checks.evaluation_config(workdir, None, overrides)
  assert (got.eval.num_examples, got.diffusion.sample_steps, got.diffusion.sampler) == (
      8, 3, 'ddim')
  assert (got.optim.lr, got.train.num_steps, got.model.warm_start) == (
      config.optim.lr, config.train.num_steps, '')


def test_evaluation_config_refuses_a_model_override_naming_it(tmp_path):
  workdir, config = _saved_run(tmp_path)
  with pytest.raises(ValueError, match=r'--config.flow.hidden_channels=9 differs from the run .* '
                     r'\(8\); an evaluation sets only config.eval.\*'):
    config_checks.evaluation_config(workdir, None, {'flow.hidden_channels': 9})


def test_evaluation_config_takes_a_config_files_eval_settings_not_its_training_ones(tmp_path):
  workdir, config = _saved_run(tmp_path)
  given = tiny_config('diffflow')
  given.optim.lr, given.train.num_steps = 0.5, 99  # Trained otherwise: never blocks.
  given.eval.fid_num_samples, given.model.temperature = 12, 0.7
  got = config_checks.evaluation_config(workdir, given, {})
  assert (got.eval.fid_num_samples, got.model.temperature) == (12, 0.7)
  assert (got.optim.lr, got.train.num_steps) == (config.optim.lr, config.train.num_steps)
  given.flow.hidden_channels += 1
  with pytest.raises(ValueError, match=r'does not describe the run .*\n  flow.hidden_channels: '
                     r'8 \(workdir\) vs 9 \(now\)'):
    config_checks.evaluation_config(workdir, given, {})


def test_evaluate_without_config_uses_the_runs_config_and_prints_a_summary(tiny_run, tmp_path):
  workdir = copy_run(tiny_run, tmp_path / 'run')
  proc = subprocess.run(
      [sys.executable, '-m', 'dfflows.evaluate', f'--workdir={workdir}', '--checkpoint=latest',
       '--config.eval.num_examples=8', '--config.eval.fid_num_samples=16',
       '--config.eval.classifier_steps=20', '--config.eval.ode_examples=0',
       '--config.eval.bound_draws=2', '--config.optim.lr=0.5'],
      cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  with open(os.path.join(workdir, 'eval.json')) as f:
    result = json.load(f)
  assert result['step'] == 4 and len(result['bpd_per_example']) == 8
  # Each image's full bound is the mean of the two draws experiments/bound_draws reads
  # (draw 0 is evaluate's single draw).
  run = run_lib.load_run(workdir, 'latest')
  images, _ = input_pipeline.load_split(run.config.data, 'test')
  draws = bound_draws.run_draws(run, images, 8, run.config.eval.batch_size, draws=2)
  assert result['bpd_draws'] == 2
  np.testing.assert_allclose(result['bpd_per_example'], draws.mean(axis=0), rtol=1e-5)
  lines = proc.stdout.splitlines()
  assert any(l.split() == ['bpd_per_example', '(8', 'values,', 'in', 'eval.json)'] for l in lines)
  assert any(l.split() == ['bpd_num_examples', '8'] for l in lines)
  assert '[' not in proc.stdout, proc.stdout  # No per-image list on the console.
