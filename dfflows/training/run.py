"""A trained run restored from its workdir for evaluation: config, model, params, EMA params,
step, base key and sampler.

Only the params and EMA params are read from the checkpoint, in its own shapes and dtypes
(`Checkpoints.restore_fields`): no optimizer or train step is built, no optimizer state is
read, and no images are loaded.
"""
import os
from typing import Any, Callable, NamedTuple, Optional

import jax
import ml_collections
from jax.sharding import NamedSharding, PartitionSpec as P

from dfflows import rng
from dfflows.models.build import build_model
from dfflows.models.interface import Model
from dfflows.training import config_checks
from dfflows.training.checkpoints import Checkpoints
from dfflows.training.trainer import jit_sample, make_mesh

CHECKPOINTS = ('best', 'latest')
RESTORED_FIELDS = ('params', 'ema_params')  # The TrainState fields evaluation reads.


class Run(NamedTuple):
  """A restored run: config, model, params, EMA params, step, base key (of `dfflows.rng`'s
  streams) and `model.sample` jitted (`trainer.jit_sample`)."""
  config: ml_collections.ConfigDict
  model: Model
  params: Any
  ema_params: Any
  step: int
  base_key: jax.Array
  sample: Callable


def saved_config(workdir: str) -> ml_collections.ConfigDict:
  """The config a run saved in `workdir` (config.json)."""
  return ml_collections.ConfigDict(config_checks.load_saved_config(workdir))


def restore_params(workdir: str, keep: int, which: str = 'best',
                   step: Optional[int] = None) -> tuple[dict, int]:
  """The `RESTORED_FIELDS` ({field: params}, replicated over `make_mesh()`) and step of the
  run's `which` checkpoint ('best' falls back to 'latest'; `step`: that saved step of
  `which`, a ValueError naming the saved steps if there is none); `keep` is its
  keep_checkpoints."""
  if which not in CHECKPOINTS:
    raise ValueError(f'which={which!r} is not one of {CHECKPOINTS}.')
  if not os.path.isdir(workdir):  # Checkpoints would create it.
    raise FileNotFoundError(f'No run in {workdir}: no such directory.')
  replicated = NamedSharding(make_mesh(), P())
  ckpts = Checkpoints(workdir, keep)
  try:
    fields, saved = ckpts.restore_fields(RESTORED_FIELDS, replicated, which, step)
    if saved is None and which == 'best' and step is None:
      fields, saved = ckpts.restore_fields(RESTORED_FIELDS, replicated, 'latest')
  finally:
    ckpts.close()
  if saved is None:
    raise FileNotFoundError(f'No checkpoint in {workdir}; train first with dfflows.main.')
  return fields, saved


def load_run(workdir: str, which: str = 'best',
             config: Optional[ml_collections.ConfigDict] = None,
             step: Optional[int] = None) -> Run:
  """The run in `workdir` at its `which` checkpoint ('best' falls back to 'latest'; `step`:
  that saved step of `which`).

  `config` (default: the run's saved config.json) may change settings that do not change
  the model, such as the eval or sampler settings of `dfflows.evaluate`'s command line; a
  config of another model is a ValueError naming the differences.
  """
  if config is None:
    config = saved_config(workdir)
  elif os.path.isdir(workdir):  # (`restore_params` names a missing workdir.)
    config_checks.check_same_model(config, workdir)
  model = build_model(config)
  fields, saved = restore_params(workdir, config.train.keep_checkpoints, which, step)
  return Run(config, model, fields['params'], fields['ema_params'], saved,
             rng.base_key(config.seed), jit_sample(model))
