"""Two processes on loopback (jax.distributed, gloo CPU collectives) train like one process."""
import json
import os
import socket
import subprocess
import sys

import jax
import numpy as np

from dfflows import train
from dfflows.metrics import stats
from dfflows.models.build import build_model
from dfflows.training import trainer as trainer_lib
from tests.helpers import REPO_ROOT, one_device_env, tiny_config


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def test_two_processes_train_like_one_process_with_the_same_global_batch(tmp_path):
  data_dir, workdir, out = str(tmp_path / 'tfds'), str(tmp_path / 'run'), str(tmp_path / 'p.npz')
  port = _free_port()
  env = one_device_env()
  logs = [open(tmp_path / f'log{i}', 'w+') for i in range(2)]
  procs = [subprocess.Popen([sys.executable, '-m', 'tests.distributed_worker', str(i), str(port),
                             workdir, data_dir, out], cwd=REPO_ROOT, env=env, stdout=logs[i],
                            stderr=subprocess.STDOUT) for i in range(2)]
  try:
    codes = [p.wait(timeout=1200) for p in procs]
  finally:
    for p in procs:
      p.kill()
  text = [open(tmp_path / f'log{i}').read() for i in range(2)]
  assert codes == [0, 0], '\n'.join(t[-3000:] for t in text)
  for i in range(2):
    assert f'process {i} of 2: 1 local / 2 global devices, step 4' in text[i]

  config = tiny_config('flow')  # one process, this process's devices, same global batch
  config.data.data_dir = data_dir
  single = train.train_and_evaluate(config, str(tmp_path / 'single'))
  multi = np.load(out)
  leaves = [np.asarray(x) for x in jax.tree.leaves(jax.device_get(single.params))]
  assert len(multi.files) == len(leaves)
  for i, leaf in enumerate(leaves):
    np.testing.assert_allclose(multi[f'arr_{i}'], leaf, rtol=1e-4, atol=1e-6)

  # Process 0 alone wrote metrics and checkpoints: each step's row appears once.
  rows = [json.loads(l) for l in open(os.path.join(workdir, 'metrics.jsonl'))]
  assert [r['step'] for r in rows if 'train/loss' in r] == [2, 4]
  assert sorted(os.listdir(os.path.join(workdir, 'checkpoints'))) == ['2', '4']


def test_each_process_evaluates_its_share_of_the_global_eval_batch(monkeypatch):
  """Trainer.mean_eval_bpd as process p of 2: its rows of each global batch of eval.batch_size."""
  config = tiny_config('flow')
  config.eval.num_examples = 13
  trainer = trainer_lib.Trainer(config, build_model(config), trainer_lib.make_mesh())
  images = np.zeros((20, 32, 32, 1), np.uint8)
  images[:, 0, 0, 0] = np.arange(1, 21)  # Example i is marked i + 1; padding is 0.
  trainer.global_array = lambda local, sharding: local  # The rows this process contributes.
  seen = {}

  def fake_eval(params, key, batch, mask):
    seen.setdefault(process, []).append((batch, mask))
    return np.stack(stats.moment_sums(batch[:, 0, 0, 0].astype(np.float64), mask))

  trainer.eval = fake_eval
  monkeypatch.setattr(jax, 'process_count', lambda: 2)
  for process in range(2):
    monkeypatch.setattr(jax, 'process_index', lambda p=process: p)
    trainer.mean_eval_bpd(None, images)
  assert len(seen[0]) == len(seen[1]) == 2  # ceil(13 / 8) global batches on each process.
  marks = []
  for batch, mask in seen[0] + seen[1]:
    assert batch.shape[0] == mask.shape[0] == config.eval.batch_size // 2
    marks += batch[mask == 1, 0, 0, 0].tolist()
  assert sorted(marks) == list(range(1, 14))  # Each of the 13 examples exactly once.


def test_each_eval_batch_draws_its_own_key_and_every_process_the_same(monkeypatch):
  """The periodic eval's batches get distinct keys (independent t and noise draws), the same
  on every process and on every call."""
  config = tiny_config('flow')
  config.eval.num_examples = 13
  trainer = trainer_lib.Trainer(config, build_model(config), trainer_lib.make_mesh())
  images = np.zeros((20, 32, 32, 1), np.uint8)
  trainer.global_array = lambda local, sharding: local
  keys = []

  def fake_eval(params, key, batch, mask):
    keys.append(np.asarray(jax.random.key_data(key)).tobytes())
    return np.stack(stats.moment_sums(np.zeros(len(batch)), mask))

  trainer.eval = fake_eval
  monkeypatch.setattr(jax, 'process_count', lambda: 2)
  for process in (0, 1, 0):
    monkeypatch.setattr(jax, 'process_index', lambda p=process: p)
    trainer.mean_eval_bpd(None, images)
  assert len(keys) == 6 and keys[0] != keys[1]  # Two global batches per call.
  assert keys[:2] == keys[2:4] == keys[4:]
