"""The training state: everything a checkpoint needs to resume a run exactly.

The data position and the per-step RNG are functions of (config.seed, step), so
`step` is all of them that needs storing.
"""
from typing import Any, NamedTuple, Sequence, Tuple

import flax
import jax
import jax.numpy as jnp
import ml_collections
import optax


@flax.struct.dataclass
class TrainState:
  """Step, params, EMA params and optimizer state."""
  step: jnp.ndarray
  params: Any
  ema_params: Any
  opt_state: Any


LR_SCHEDULES = ('constant', 'cosine')
FLOW_SCHEDULES = ('same',) + LR_SCHEDULES
FLOW_GROUP = 'flow'  # The params of a model's flow: its own lr, warm-up and schedule.


class GroupSettings(NamedTuple):
  """Peak learning rate, warm-up steps and schedule of one parameter group."""
  lr: float
  warmup_steps: int
  schedule: str


def group_settings(optim: ml_collections.ConfigDict, group: str) -> GroupSettings:
  """The settings of the `group` params: `optim.flow`'s for the flow, `optim`'s otherwise."""
  if group != FLOW_GROUP:
    return GroupSettings(optim.lr, optim.warmup_steps, optim.schedule)
  flow = optim.flow
  return GroupSettings(optim.lr * flow.lr_scale,
                       optim.warmup_steps if flow.warmup_steps < 0 else flow.warmup_steps,
                       optim.schedule if flow.schedule == 'same' else flow.schedule)


def frozen_groups(optim: ml_collections.ConfigDict, groups: Sequence[str]) -> Tuple[str, ...]:
  """The groups with a zero learning rate: not updated, and not differentiated."""
  return tuple(g for g in groups if group_settings(optim, g).lr == 0)


def _group_optimizer(optim: ml_collections.ConfigDict, settings: GroupSettings,
                     num_steps: int) -> optax.GradientTransformation:
  """Global-norm clipping within the group, then AdamW with a linear warm-up from 0 over
  `warmup_steps` (0: the full lr from the first step) and an optional cosine decay to 0."""
  if settings.lr == 0:
    return optax.set_to_zero()
  warmup = settings.warmup_steps
  if settings.schedule == 'cosine':  # With warmup 0: the cosine from the first step.
    lr = optax.warmup_cosine_decay_schedule(0.0, settings.lr, warmup, max(num_steps, warmup + 1))
  else:  # optax's linear (and warmup-constant) schedule with 0 steps stays at its init, 0.
    lr = optax.linear_schedule(0.0, settings.lr, warmup) if warmup else settings.lr
  parts = [optax.clip_by_global_norm(optim.grad_clip)] if optim.grad_clip > 0 else []
  parts.append(optax.adamw(lr, b1=optim.b1, b2=optim.b2, weight_decay=optim.weight_decay))
  return optax.chain(*parts)


def create_optimizer(optim: ml_collections.ConfigDict, num_steps: int,
                     groups: Sequence[str]) -> optax.GradientTransformation:
  """AdamW per parameter group (the top-level keys of the params, `groups`), each with its
  own clipping, warm-up and schedule (`group_settings`); non-finite steps skipped.

  A model with one group gets that group's optimizer alone; with several, an
  `optax.multi_transform` over the top-level keys, so a fresh U-Net's large early gradients
  neither share a clipping norm nor a learning rate with a trained flow.
  """
  if len(groups) == 1:
    tx = _group_optimizer(optim, group_settings(optim, groups[0]), num_steps)
  else:
    tx = optax.multi_transform(
        {g: _group_optimizer(optim, group_settings(optim, g), num_steps) for g in groups},
        lambda params: {k: jax.tree.map(lambda _, k=k: k, v) for k, v in params.items()})
  # Skips (zero update, optimizer state kept) every step with NaN/Inf gradients; optax
  # never gives up and applies them. The training loop stops after `max_bad_steps` in a row.
  return optax.apply_if_finite(tx, max_consecutive_errors=2**30)


def create_train_state(params: Any, tx: optax.GradientTransformation) -> TrainState:
  """A step-0 state with EMA params equal to `params`."""
  return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                    ema_params=jax.tree.map(jnp.copy, params), opt_state=tx.init(params))


def consecutive_bad_steps(state: TrainState) -> jnp.ndarray:
  """How many of the latest steps in a row had non-finite gradients."""
  return state.opt_state.notfinite_count


def ema_update(ema: Any, params: Any, decay: float) -> Any:
  """ema <- decay * ema + (1 - decay) * params."""
  return optax.incremental_update(params, ema, step_size=1.0 - decay)


def ema_decay_at(step: jnp.ndarray, ema_decay: float, warmup: bool) -> jnp.ndarray:
  """The EMA decay used after `step` updates: min(ema_decay, (1 + step) / (10 + step)) with warmup.

  Without warmup, after n steps a fraction ema_decay**n of the average is still the
  initial weights (91% after 89 steps at 0.999); with it the early average follows
  the params.
  """
  if not warmup:
    return jnp.asarray(ema_decay, jnp.float32)
  step = step.astype(jnp.float32)
  return jnp.minimum(ema_decay, (1.0 + step) / (10.0 + step))
