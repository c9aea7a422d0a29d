"""What `python -m dfflows.main` prints: no library INFO noise, true steps/s, a closing summary."""
import datetime
import os
import re
import subprocess
import sys

import tensorflow_datasets as tfds
from absl import logging

from dfflows import console
from dfflows.data import input_pipeline
from tests.data import idx_testing
from tests.helpers import REPO_ROOT, one_device_env, tiny_config


def _run_main(workdir, data_dir, *extra):
  cmd = [sys.executable, '-m', 'dfflows.main', '--config=tests/tiny_config.py',
         f'--workdir={workdir}', f'--config.data.data_dir={data_dir}', '--config.model.kind=flow',
         '--config.train.num_steps=12', '--config.train.log_every=4',
         '--config.train.checkpoint_every=12', '--config.train.eval_every=12',
         '--config.train.sample_every=12', *extra]
  env = one_device_env()
  return subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=900)


def _stamp(line):
  """The time of an absl log line (I1129 16:22:28.572789 ...)."""
  return datetime.datetime.strptime(line.split()[1], '%H:%M:%S.%f')


def test_main_prints_progress_and_summary_without_library_info(tmp_path, data_dir):
  workdir = str(tmp_path / 'run')
  proc = _run_main(workdir, data_dir)
  out = proc.stdout + proc.stderr
  assert proc.returncode == 0, out[-3000:]
  # No INFO lines of orbax, TFDS or clu at the default verbosity.
  noisy = [l for l in out.splitlines() if re.match(r'I\d{4} ', l)
           and re.search(r'(checkpoint_manager|standard_logger|dataset_info|reader|'
                         r'logging_writer|dataset_builder)\.py', l)]
  assert not noisy, noisy[:5]
  # Nor TensorFlow's native import-time lines (oneDNN, CUDA stubs), which ignore log levels.
  native = [l for l in out.splitlines() if re.match(r'[IWE]0000 ', l) or 'InitializeLog' in l]
  assert not native, native[:5]
  # One progress line per log point; steps/s matches the wall time between log points.
  progress = [l for l in out.splitlines() if re.search(r'step \d+/12 \| ', l)]
  assert [int(re.search(r'step (\d+)/', l).group(1)) for l in progress] == [4, 8, 12]
  rate = float(re.search(r'([\d.]+) steps/s', progress[1]).group(1))
  wall = (_stamp(progress[1]) - _stamp(progress[0])).total_seconds()
  assert 0.5 < rate * wall / 4 < 2.0, (rate, wall)
  # The eval line says which estimate it is (the flow-only model's NLL is exact), in both
  # units: bits per model dim (32x32, padded) and per real (28x28) pixel, 1024/784 times more.
  match = re.search(r'step 12 \| eval bpd ([\d.]+) \+- [\d.]+ bits/model dim = ([\d.]+) \+- '
                    r'[\d.]+ bits/real pixel on \d+ validation images '
                    r'\(EMA params; exact NLL\)', out)
  assert match, out[-3000:]
  assert abs(float(match.group(2)) - float(match.group(1)) * 1024 / 784) < 2e-3, match.group(0)
  assert re.search(r'train bpd [\d.]+ bits/model dim = [\d.]+ bits/real pixel \(exact NLL\)',
                   progress[0]), progress[0]
  # The closing summary names what exists and the next command.
  match = re.search(r'Done at step 12\. Wrote in (\S+): (.*) \(and TensorBoard', out)
  assert match and match.group(1) == workdir, out[-2000:]
  for name in match.group(2).split(', '):
    assert os.path.exists(os.path.join(workdir, name)), name
  assert f'python -m dfflows.evaluate --config=tests/tiny_config.py --workdir={workdir}' in out


def test_verbosity_one_shows_library_info(tmp_path, data_dir):
  proc = _run_main(str(tmp_path / 'run'), data_dir, '--verbosity=1')
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert re.search(r'I\d{4} .*(checkpoint_manager|standard_logger)\.py', proc.stderr)


def test_quiet_console_prepares_mnist_idx_without_progress_bars(tmp_path, capfd):
  manual_dir = str(tmp_path / 'manual')
  os.makedirs(manual_dir)
  idx_testing.write_fake_mnist(manual_dir, num_train=10, num_test=3)
  config = tiny_config().data
  config.update(dict(name='mnist_idx', data_dir=str(tmp_path / 'tfds'), manual_dir=manual_dir))
  handler = logging.get_absl_handler()
  console.quiet_libraries(0)
  try:
    input_pipeline.load_split(config, 'test')
  finally:
    tfds.display_progress_bar(True)
    for f in [f for f in handler.filters if isinstance(f, console.QuietLibraries)]:
      handler.removeFilter(f)
  out, err = capfd.readouterr()
  for bar in ('Generating splits', 'Shuffling', 'examples/s'):
    assert bar not in out + err, (out + err)[-2000:]
