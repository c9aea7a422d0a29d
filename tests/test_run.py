"""load_run: a trained run restored from its workdir alone, without reading any images."""
import os
import shutil

import jax
import numpy as np
import optax
import pytest

from dfflows.data import input_pipeline
from dfflows.training import run as run_lib
from dfflows.training import train_state
from dfflows.training import trainer as trainer_lib
from tests.helpers import copy_run, param_leaves


@pytest.fixture
def no_images(monkeypatch):
  """Any read of a data split fails: load_run must not need one."""
  def refuse(*args, **kwargs):
    raise AssertionError('load_run read a data split')
  monkeypatch.setattr(input_pipeline, 'load_split', refuse)


def test_load_run_restores_the_saved_config_and_state(tiny_run, no_images):
  run = run_lib.load_run(tiny_run.workdir, 'latest')
  assert run.step == 4
  assert run.config.flow.hidden_channels == tiny_run.config.flow.hidden_channels
  assert type(run.model).__name__ == 'DiffFlow'
  np.testing.assert_array_equal(run.base_key, jax.random.PRNGKey(tiny_run.config.seed))
  for x, y in zip(param_leaves(tiny_run.state), jax.tree.leaves(jax.device_get(run.params))):
    np.testing.assert_array_equal(x, y)


def _refuse(what: str):
  """A stand-in that fails the test when called: load_run built `what`."""
  def fail(*args, **kwargs):
    raise AssertionError(f'load_run built {what}')
  return fail


def test_load_run_builds_no_optimizer_or_train_step_and_restores_params_bit_for_bit(
    tiny_run, no_images, monkeypatch):
  # A train step is only built by Trainer.__init__ (with its optimizer).
  monkeypatch.setattr(trainer_lib.Trainer, '__init__', _refuse('a Trainer (optimizer, train step)'))
  monkeypatch.setattr(trainer_lib, 'create_optimizer', _refuse('an optimizer'))
  monkeypatch.setattr(train_state, 'create_optimizer', _refuse('an optimizer'))
  monkeypatch.setattr(train_state, 'create_train_state', _refuse('an optimizer state'))
  monkeypatch.setattr(optax, 'adamw', _refuse('an optax AdamW'))
  run = run_lib.load_run(tiny_run.workdir, 'latest')
  assert not hasattr(run, 'opt_state') and not hasattr(run, 'trainer')
  for saved, restored in ((tiny_run.state.params, run.params),
                          (tiny_run.state.ema_params, run.ema_params)):
    assert jax.tree.structure(restored) == jax.tree.structure(saved)
    for x, y in zip(jax.tree.leaves(jax.device_get(saved)),
                    jax.tree.leaves(jax.device_get(restored))):
      assert (x.dtype, x.shape, x.tobytes()) == (y.dtype, y.shape, y.tobytes())


def test_best_is_the_best_checkpoint_and_falls_back_to_latest(tiny_run, tmp_path, no_images):
  workdir = copy_run(tiny_run, tmp_path / 'run')
  shutil.rmtree(os.path.join(workdir, 'checkpoints', '4'))  # Latest is now step 2; best is 4.
  assert run_lib.load_run(workdir, 'latest').step == 2
  assert run_lib.load_run(workdir, 'best').step == 4
  shutil.rmtree(os.path.join(workdir, 'best'))
  assert run_lib.load_run(workdir, 'best').step == 2


def test_a_saved_step_is_restored_and_an_unsaved_one_named(tiny_run, no_images):
  """`step` restores that checkpoint (not the newest); a step never saved is a ValueError
  naming the saved ones."""
  earlier = run_lib.load_run(tiny_run.workdir, 'latest', step=2)
  latest = run_lib.load_run(tiny_run.workdir, 'latest')
  assert (earlier.step, latest.step) == (2, 4)
  leaves = [jax.tree.leaves(jax.device_get(r.params)) for r in (earlier, latest)]
  assert any(not np.array_equal(x, y) for x, y in zip(*leaves))
  with pytest.raises(ValueError, match=r'No checkpoint of step 3 .*saved steps: \[2, 4\]'):
    run_lib.load_run(tiny_run.workdir, 'latest', step=3)


def test_missing_run_is_a_clear_error(tiny_run, tmp_path, no_images):
  with pytest.raises(FileNotFoundError, match='holds no config.json'):
    run_lib.load_run(str(tmp_path))
  workdir = copy_run(tiny_run, tmp_path / 'run')
  for name in ('checkpoints', 'best'):
    shutil.rmtree(os.path.join(workdir, name))
  with pytest.raises(FileNotFoundError, match='No checkpoint in .*; train first'):
    run_lib.load_run(workdir)
  absent = tmp_path / 'absent'
  with pytest.raises(FileNotFoundError, match='no such directory'):
    run_lib.load_run(str(absent), config=tiny_run.config)
  assert not absent.exists()
  with pytest.raises(ValueError, match="which='first' is not one of"):
    run_lib.load_run(tiny_run.workdir, 'first')


def test_a_config_of_another_model_is_refused_naming_the_difference(tiny_run, no_images):
  config = tiny_run.config.copy_and_resolve_references()
  config.diffusion.sample_steps = 3  # Sampling settings may differ from the run's.
  config.eval.num_examples = 8
  assert run_lib.load_run(tiny_run.workdir, 'latest', config).step == 4
  config.flow.hidden_channels += 1
  with pytest.raises(ValueError, match=r'does not describe the run in .*\n  flow.hidden_channels: '
                     r'8 \(workdir\) vs 9 \(now\)'):
    run_lib.load_run(tiny_run.workdir, 'latest', config)
