"""Faults end to end: determinism, NaN streaks, SIGKILL and SIGTERM of a real training process."""
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from dfflows import train
from dfflows.data import batching
from dfflows.data import input_pipeline
from dfflows.training import trainer as trainer_lib
from dfflows.training.checkpoints import Checkpoints
from tests.helpers import NaNOnMarkedBatch, REPO_ROOT, one_device_env, param_leaves, tiny_config




def test_same_config_and_seed_give_bitwise_identical_params(tiny_run, tmp_path):
  again = train.train_and_evaluate(tiny_run.config, str(tmp_path / 'again'))
  for x, y in zip(param_leaves(tiny_run.state), param_leaves(again)):
    np.testing.assert_array_equal(x, y)


def test_a_streak_of_nan_steps_stops_training_and_keeps_the_last_good_checkpoint(
    tmp_path, data_dir, monkeypatch):
  """Batches from step 2 on give a NaN loss: after max_bad_steps=2 the run stops."""
  config = tiny_config('flow')
  config.data.data_dir = data_dir
  config.train.num_steps = 10
  config.train.checkpoint_every = 2
  config.train.max_bad_steps = 2
  build = train.build_model
  monkeypatch.setattr(train, 'build_model', lambda c: NaNOnMarkedBatch(build(c)))
  batches = batching.train_batches

  def poisoned(*args, start_step=0, **kwargs):
    for i, batch in enumerate(batches(*args, start_step=start_step, **kwargs)):
      if start_step + i >= 2:  # the batch of step index >= 2 (the third step on)
        batch = batch.copy()
        batch[0, 0, 0, 0] = 255
      yield batch

  monkeypatch.setattr(batching, 'train_batches', poisoned)
  workdir = str(tmp_path / 'run')
  with pytest.raises(FloatingPointError, match=r'2 consecutive train steps with NaN/Inf.*'
                     r'seen by step 4.*params hold no NaN/Inf.*Last good checkpoint: '
                     r'step 2 in .*checkpoints \(left intact\)'):
    train.train_and_evaluate(config, workdir)
  assert sorted(os.listdir(os.path.join(workdir, 'checkpoints'))) == ['2']
  monkeypatch.undo()
  model = train.build_model(config)
  trainer = trainer_lib.Trainer(config, model, trainer_lib.make_mesh())
  first = next(batching.train_batches(
      input_pipeline.load_split(config.data, 'train')[0], 8, config.seed))
  ckpts = Checkpoints(workdir, keep=3)
  restored, step = ckpts.restore(trainer.init_state(first))
  ckpts.close()
  assert step == 2 and int(restored.step) == 2
  assert all(np.all(np.isfinite(x)) for x in param_leaves(restored))


def _start(workdir, data_dir, log_path):
  """Starts `python -m dfflows.main` on the tiny config (flow-only: quick to compile), long run."""
  cmd = [sys.executable, '-m', 'dfflows.main', '--config=tests/tiny_config.py',
         f'--workdir={workdir}', f'--config.data.data_dir={data_dir}', '--config.model.kind=flow',
         '--config.train.num_steps=100000', '--config.train.checkpoint_every=3',
         '--config.train.log_every=1000', '--config.train.eval_every=100000',
         '--config.train.sample_every=100000']
  env = one_device_env()
  return subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL,
                          stderr=open(log_path, 'w'))


def _wait_for(predicate, proc, log_path, timeout=600):
  """Polls `predicate` until true; fails with the log if the process dies or time runs out."""
  end = time.time() + timeout
  while time.time() < end:
    if predicate():
      return
    if proc.poll() is not None:
      break
    time.sleep(0.2)
  proc.kill()
  pytest.fail(f'condition not reached (rc={proc.poll()}); log:\n{open(log_path).read()[-3000:]}')


def _steps(workdir):
  """Checkpoint steps that orbax finalised (temporary directories excluded)."""
  path = os.path.join(workdir, 'checkpoints')
  return sorted(int(d) for d in os.listdir(path) if d.isdigit()) if os.path.isdir(path) else []


def test_sigkill_then_rerun_resumes_and_sigterm_saves_a_final_checkpoint(tmp_path, data_dir):
  workdir, log1, log2 = str(tmp_path / 'run'), str(tmp_path / 'log1'), str(tmp_path / 'log2')
  proc = _start(workdir, data_dir, log1)
  _wait_for(lambda: len(_steps(workdir)) >= 2, proc, log1)
  proc.send_signal(signal.SIGKILL)
  proc.wait(timeout=60)
  ckpts = Checkpoints(workdir, keep=3)
  last_good = ckpts.latest_step()
  ckpts.close()
  assert last_good is not None and last_good >= 6 and last_good % 3 == 0

  proc = _start(workdir, data_dir, log2)
  resumed = lambda: f'Resumed from checkpoint at step {last_good}' in open(log2).read()
  _wait_for(lambda: resumed() and max(_steps(workdir)) > last_good, proc, log2)
  proc.send_signal(signal.SIGTERM)
  assert proc.wait(timeout=300) == 0, open(log2).read()[-3000:]
  match = re.search(r'Stop requested: saved a checkpoint at step (\d+)', open(log2).read())
  assert match, open(log2).read()[-3000:]
  stopped = int(match.group(1))
  assert stopped > last_good and stopped in _steps(workdir)
  ckpts = Checkpoints(workdir, keep=3)
  assert ckpts.latest_step() == stopped
  ckpts.close()
