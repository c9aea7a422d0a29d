"""Fixtures and settings shared by the whole suite.

A persistent JAX compilation cache for this test session (pytest-xdist's workers
and the tests' subprocesses inherit it): many tests compile the same tiny train
step, eval and sampler, which then compile once. XLA:CPU's backend optimisation
level 0, since compiles dominate a suite of tiny models; tests compare numbers
computed under one setting, never timings.
"""
import atexit
import os
import shutil
import tempfile
from typing import Any, NamedTuple, Tuple

import ml_collections
import pytest

# Read by JAX when it is first imported (test modules import it after this file)
# and inherited by the `python -m dfflows.main` subprocesses of the tests.
_CACHE_DIR = tempfile.mkdtemp(prefix='dfflows_test_jax_cache_')
atexit.register(shutil.rmtree, _CACHE_DIR, ignore_errors=True)
os.environ.setdefault('JAX_COMPILATION_CACHE_DIR', _CACHE_DIR)
os.environ.setdefault('JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS', '0.5')
if '--xla_backend_optimization_level' not in os.environ.get('XLA_FLAGS', ''):
  os.environ['XLA_FLAGS'] = (os.environ.get('XLA_FLAGS', '') +
                             ' --xla_backend_optimization_level=0').strip()


@pytest.fixture(scope='session')
def data_dir(tmp_path_factory):
  """One TFDS data_dir for the embedded dataset, prepared once per test session."""
  return str(tmp_path_factory.mktemp('tfds'))


class TinyRun(NamedTuple):
  """A finished 4-step run of the tiny DiffFlow config (tests copy `workdir` to change it)
  and the splits it loaded, in order."""
  config: ml_collections.ConfigDict
  workdir: str
  state: Any
  loaded_splits: Tuple[str, ...]


@pytest.fixture(scope='session')
def tiny_run(tmp_path_factory, data_dir) -> TinyRun:
  """The tiny DiffFlow trained once per session; its checkpoint, metrics and evaluate tests
  share it (each copies the workdir before writing to it)."""
  from dfflows import train  # pylint: disable=g-import-not-at-top
  from dfflows.data import input_pipeline  # pylint: disable=g-import-not-at-top
  from tests.helpers import tiny_config  # pylint: disable=g-import-not-at-top
  config = tiny_config('diffflow')
  config.data.data_dir = data_dir
  workdir = str(tmp_path_factory.mktemp('tiny_run') / 'run')
  loaded, load_split = [], input_pipeline.load_split

  def recording_load_split(data_config, split):
    loaded.append(split)
    return load_split(data_config, split)

  with pytest.MonkeyPatch.context() as patch:
    patch.setattr(input_pipeline, 'load_split', recording_load_split)
    state = train.train_and_evaluate(config, workdir)
  return TinyRun(config, workdir, state, tuple(loaded))

