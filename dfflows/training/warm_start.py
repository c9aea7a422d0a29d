"""Warm start (LSGM's two-stage recipe): a DiffFlow's flow from a trained flow-only run.

`config.model.warm_start` names the workdir of a flow-only run (`model.kind='flow'`) with
the same `flow` section and image shape. Its checkpoint (`model.warm_start_step`, 0 = its
latest) gives the DiffFlow's flow params and their EMA; the U-Net and the optimizer state
start fresh. With the Gaussian residual (`model.eps_skip`, `model.variance_skip`) the
U-Net's zero-initialised output makes the DiffFlow at step 0 the loaded flow with a
N(0, I) prior, so its bound starts at the flow-only run's exact NLL and joint training
on the bound goes on from there. A run that resumes from its own checkpoint ignores the
warm start.
"""
import json
from typing import Any

import jax
import ml_collections

from dfflows.training import config_checks
from dfflows.training.checkpoints import Checkpoints
from dfflows.training.train_state import TrainState, create_optimizer, create_train_state

# Settings of the source run that must equal this run's for its flow params to fit.
MATCHING_KEYS = ('data.image_size', 'data.channels')


def _fitting_parts(config: dict) -> dict:
  """The flow section and the MATCHING_KEYS of a config (as a nested dict)."""
  parts = {'flow': config['flow']}
  for dotted in MATCHING_KEYS:
    section, key = dotted.split('.')
    parts.setdefault(section, {})[key] = config[section][key]
  return parts


def check_source(config: ml_collections.ConfigDict, saved: dict) -> None:
  """Raises ValueError unless `saved` is a flow-only run whose flow fits `config`'s."""
  source = config.model.warm_start
  if saved['model']['kind'] != 'flow':
    raise ValueError(f'config.model.warm_start={source!r} is a model.kind='
                     f'{saved["model"]["kind"]!r} run; expected a flow-only run (kind flow).')
  diffs = list(config_checks.differences(_fitting_parts(saved),
                                         _fitting_parts(json.loads(config.to_json())),
                                         label='source'))
  if diffs:
    raise ValueError(f'config.model.warm_start={source!r} has a flow that does not fit this '
                     'config:\n  ' + '\n  '.join(diffs))


def _source_target(flow_params: Any, optim: dict, num_steps: int) -> TrainState:
  """Abstract TrainState of a flow-only run with these flow params and optimizer settings."""
  tx = create_optimizer(ml_collections.ConfigDict(optim), num_steps)
  return jax.eval_shape(lambda p: create_train_state({'flow': p}, tx), flow_params)


def load_flow(config: ml_collections.ConfigDict, state: TrainState) -> TrainState:
  """`state` with its flow params and EMA flow params from `config.model.warm_start`."""
  source = config.model.warm_start
  try:
    saved = config_checks.load_saved_config(source)
  except FileNotFoundError as e:
    raise ValueError(f'config.model.warm_start={source!r}: {e}') from None
  check_source(config, saved)
  target = _source_target(state.params['flow'], saved['optim'], saved['train']['num_steps'])
  ckpts = Checkpoints(source, saved['train']['keep_checkpoints'])
  try:
    loaded, step = ckpts.restore(target, step=config.model.warm_start_step or None)
  finally:
    ckpts.close()
  if step is None:
    raise ValueError(f'config.model.warm_start={source!r} has no checkpoint.')
  params = {**state.params, 'flow': loaded.params['flow']}
  ema = {**state.ema_params, 'flow': loaded.ema_params['flow']}
  put = lambda tree, like: jax.tree.map(lambda a, b: jax.device_put(a, b.sharding), tree, like)
  return state.replace(params=put(params, state.params), ema_params=put(ema, state.ema_params))
