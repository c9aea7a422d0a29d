"""Warm start (LSGM's two-stage recipe): a DiffFlow's flow from a trained flow-only run.

`config.model.warm_start` names the workdir of a flow-only run (`model.kind='flow'`) with
the same `flow` section and image shape. Its checkpoint (`model.warm_start_step`, 0 = its
latest) gives the DiffFlow's flow params, their EMA and Adam's moments of the flow (so the
flow's group, `optim.flow`, goes on without re-estimating them); the U-Net starts fresh. A
frozen flow (`optim.flow.lr_scale=0`) is the source's EMA flow, in params and EMA alike. With the Gaussian residual (`model.eps_skip`, `model.variance_skip`) the
U-Net's zero-initialised output makes the DiffFlow at step 0 the loaded flow with a
N(0, I) prior, so its bound starts at the flow-only run's exact NLL and joint training
on the bound goes on from there. A run that resumes from its own checkpoint ignores the
warm start.
"""
import json
from typing import Any, List

import jax
import jax.numpy as jnp
import ml_collections
import optax
from absl import logging

from dfflows.training import config_checks
from dfflows.training.checkpoints import Checkpoints, saved_steps
from dfflows.training.train_state import (FLOW_GROUP, TrainState, create_optimizer,
                                          create_train_state, frozen_groups)

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
  """Raises ValueError (one line) unless `saved` is a flow-only run whose flow fits `config`'s."""
  source = config.model.warm_start
  if saved['model']['kind'] != 'flow':
    raise ValueError(f'config.model.warm_start={source!r} is a model.kind='
                     f'{saved["model"]["kind"]!r} run; expected a flow-only run (kind flow).')
  diffs = list(config_checks.differences(_fitting_parts(saved),
                                         _fitting_parts(json.loads(config.to_json())),
                                         label='source'))
  if diffs:
    raise ValueError(f'config.model.warm_start={source!r} has a flow that does not fit this '
                     f'config: {"; ".join(diffs)}.')


def source_config(config: ml_collections.ConfigDict) -> dict:
  """The saved config of the run `config.model.warm_start` names; ValueError (one line) unless
  it is a flow-only run whose flow fits `config` and that holds the checkpoint to load."""
  source = config.model.warm_start
  try:
    saved = config_checks.load_saved_config(source)
  except FileNotFoundError as e:
    raise ValueError(f'config.model.warm_start={source!r}: {e}') from None
  check_source(config, saved)
  steps, step = saved_steps(source), config.model.warm_start_step
  if not steps:
    raise ValueError(f'config.model.warm_start={source!r} has no checkpoint.')
  if step and step not in steps:
    raise ValueError(f'config.model.warm_start={source!r}: No checkpoint of step {step} '
                     f'(config.model.warm_start_step); saved steps: {steps}.')
  return saved


def check_before_training(config: ml_collections.ConfigDict, workdir: str) -> None:
  """Raises ValueError (one line, `source_config`) if a run in `workdir` would warm-start from
  a source it cannot load; a run that resumes from its own checkpoint is not warm-started."""
  if config.model.warm_start and not saved_steps(workdir):
    source_config(config)


def _source_target(flow_params: Any, optim: dict, num_steps: int) -> TrainState:
  """Abstract TrainState of a flow-only run with these flow params and optimizer settings."""
  tx = create_optimizer(ml_collections.ConfigDict(optim), num_steps, (FLOW_GROUP,))
  return jax.eval_shape(lambda p: create_train_state({FLOW_GROUP: p}, tx), flow_params)


def _is_adam(node: Any) -> bool:
  return isinstance(node, optax.ScaleByAdamState)


def adam_states(opt_state: Any) -> List[optax.ScaleByAdamState]:
  """Every Adam state (count, mu, nu) in an optimizer state, in tree order."""
  return [n for n in jax.tree.leaves(opt_state, is_leaf=_is_adam) if _is_adam(n)]


def carry_flow_moments(opt_state: Any, source_opt_state: Any) -> Any:
  """`opt_state` (of `create_optimizer`) with the flow's Adam count and moments of a flow-only
  run's `source_opt_state`; the other groups' moments are kept."""
  source = adam_states(source_opt_state)
  if len(source) != 1:
    raise ValueError(f'the source optimizer state has {len(source)} Adam states, expected 1.')
  source = source[0]

  def carry(node):
    # The flow group's Adam state holds arrays for the flow; another group's holds only
    # optax.MaskedNode leaves there.
    if not _is_adam(node) or not jax.tree.leaves(node.mu.get(FLOW_GROUP, ())):
      return node
    return optax.ScaleByAdamState(count=source.count,
                                  mu={**node.mu, FLOW_GROUP: source.mu[FLOW_GROUP]},
                                  nu={**node.nu, FLOW_GROUP: source.nu[FLOW_GROUP]})
  return jax.tree.map(carry, opt_state, is_leaf=_is_adam)


def load_flow(config: ml_collections.ConfigDict, state: TrainState) -> TrainState:
  """`state` with its flow params and EMA flow params from `config.model.warm_start`."""
  source = config.model.warm_start
  saved = source_config(config)
  target = _source_target(state.params[FLOW_GROUP], saved['optim'], saved['train']['num_steps'])
  ckpts = Checkpoints(source, saved['train']['keep_checkpoints'])
  try:
    loaded, step = ckpts.restore(target, step=config.model.warm_start_step or None)
  finally:
    ckpts.close()
  if step is None:
    raise ValueError(f'config.model.warm_start={source!r} has no checkpoint.')
  frozen = FLOW_GROUP in frozen_groups(config.optim, (FLOW_GROUP,))
  flow = loaded.ema_params[FLOW_GROUP] if frozen else loaded.params[FLOW_GROUP]
  params = {**state.params, FLOW_GROUP: flow}
  # A copy: a frozen flow's params and EMA are equal but must not share buffers (the train
  # step donates both).
  ema = {**state.ema_params, FLOW_GROUP: jax.tree.map(jnp.copy, loaded.ema_params[FLOW_GROUP])}
  opt_state = state.opt_state if frozen else carry_flow_moments(state.opt_state,
                                                                loaded.opt_state)
  logging.info('Warm start from step %d of %s: %s.', step, source,
               'frozen flow = its EMA flow' if frozen else "flow params, EMA and Adam's moments")
  put = lambda tree, like: jax.tree.map(lambda a, b: jax.device_put(a, b.sharding), tree, like)
  return state.replace(params=put(params, state.params), ema_params=put(ema, state.ema_params),
                       opt_state=put(opt_state, state.opt_state))
