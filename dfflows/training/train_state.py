"""The training state: everything a checkpoint needs to resume a run exactly.

The data position and the per-step RNG are functions of (config.seed, step), so
`step` is all of them that needs storing.
"""
from typing import Any

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


def create_optimizer(optim: ml_collections.ConfigDict,
                     num_steps: int) -> optax.GradientTransformation:
  """AdamW with warmup, optional cosine decay and global-norm clipping; non-finite steps skipped."""
  if optim.schedule == 'cosine':
    lr = optax.warmup_cosine_decay_schedule(0.0, optim.lr, max(optim.warmup_steps, 1),
                                            max(num_steps, optim.warmup_steps + 1))
  else:
    lr = optax.linear_schedule(0.0, optim.lr, max(optim.warmup_steps, 1))
  parts = [optax.clip_by_global_norm(optim.grad_clip)] if optim.grad_clip > 0 else []
  parts.append(optax.adamw(lr, b1=optim.b1, b2=optim.b2, weight_decay=optim.weight_decay))
  # Skips (zero update, optimizer state kept) every step with NaN/Inf gradients; optax
  # never gives up and applies them. The training loop stops after `max_bad_steps` in a row.
  return optax.apply_if_finite(optax.chain(*parts), max_consecutive_errors=2**30)


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
