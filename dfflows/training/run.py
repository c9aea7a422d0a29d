"""A trained run restored from its workdir: config, model, trainer, state and step.

The restore target comes from `Trainer.abstract_state` (the shapes of init, nothing
computed), so restoring reads no images.
"""
import os
from typing import NamedTuple, Optional

import ml_collections

from dfflows.models.build import build_model
from dfflows.models.interface import Model
from dfflows.training import config_checks
from dfflows.training.checkpoints import Checkpoints
from dfflows.training.train_state import TrainState
from dfflows.training.trainer import Trainer, make_mesh

CHECKPOINTS = ('best', 'latest')


class Run(NamedTuple):
  """A restored run: its config, model, trainer (compiled functions, base key), state, step."""
  config: ml_collections.ConfigDict
  model: Model
  trainer: Trainer
  state: TrainState
  step: int


def saved_config(workdir: str) -> ml_collections.ConfigDict:
  """The config a run saved in `workdir` (config.json)."""
  return ml_collections.ConfigDict(config_checks.load_saved_config(workdir))


def restore(trainer: Trainer, workdir: str, which: str = 'best') -> tuple[TrainState, int]:
  """The state and step of the run's `which` checkpoint ('best' falls back to 'latest')."""
  if which not in CHECKPOINTS:
    raise ValueError(f'which={which!r} is not one of {CHECKPOINTS}.')
  if not os.path.isdir(workdir):  # Checkpoints would create it.
    raise FileNotFoundError(f'No run in {workdir}: no such directory.')
  ckpts = Checkpoints(workdir, trainer.config.train.keep_checkpoints)
  try:
    target = trainer.abstract_state()
    state, step = ckpts.restore(target, which=which)
    if step is None and which == 'best':
      state, step = ckpts.restore(target, which='latest')
  finally:
    ckpts.close()
  if step is None:
    raise FileNotFoundError(f'No checkpoint in {workdir}; train first with dfflows.main.')
  return state, step


def load_run(workdir: str, which: str = 'best',
             config: Optional[ml_collections.ConfigDict] = None) -> Run:
  """The run in `workdir` at its `which` checkpoint ('best' falls back to 'latest').

  `config` (default: the run's saved config.json) may change settings that do not change
  the model, such as the eval or sampler settings of `dfflows.evaluate`'s command line; a
  config of another model is a ValueError naming the differences.
  """
  if config is None:
    config = saved_config(workdir)
  elif os.path.isdir(workdir):  # (`restore` names a missing workdir.)
    config_checks.check_same_model(config, workdir)
  model = build_model(config)
  trainer = Trainer(config, model, make_mesh())
  state, step = restore(trainer, workdir, which)
  return Run(config, model, trainer, state, step)
