"""The jitted, data-parallel train step and the compiled functions of one run.

Data parallelism uses `jax.jit` over a 1-D device mesh ('data'): the batch is
sharded across all devices of all processes, params and optimizer state are
replicated, and XLA inserts the all-reduce of gradients (the `lax.pmean` of a
pmap). Random numbers are drawn for the whole global batch from
`fold_in(key, step)` with partitionable threefry, so results do not depend on
the number of devices. Needs no TensorFlow or clu (the training loop in
`dfflows.train` adds data loading, metric writers and checkpoints), so the
benchmarks run where only JAX is installed.
"""
import functools
from typing import Any, Callable, Dict, Tuple

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from dfflows import rng
from dfflows.data import batching
from dfflows.metrics import stats
from dfflows.models.interface import Model
from dfflows.training.train_state import (TrainState, consecutive_bad_steps, create_optimizer,
                                          create_train_state, ema_decay_at, ema_update,
                                          frozen_groups)


def maybe_initialize_distributed(dist: ml_collections.ConfigDict) -> None:
  """Calls jax.distributed.initialize() for multi-host runs (args from config or environment)."""
  if not dist.enabled:
    return
  kwargs = {}
  if dist.coordinator_address:
    kwargs['coordinator_address'] = dist.coordinator_address
  if dist.num_processes > 0:
    kwargs['num_processes'] = dist.num_processes
  if dist.process_id >= 0:
    kwargs['process_id'] = dist.process_id
  jax.distributed.initialize(**kwargs)


def make_mesh() -> Mesh:
  """A 1-D mesh over every device of every process, axis 'data'."""
  return Mesh(np.asarray(jax.devices()), ('data',))


def train_step(model: Model, tx: Any, ema: Tuple[float, bool], frozen: Tuple[str, ...],
               base_key: jax.Array, state: TrainState,
               batch: jnp.ndarray) -> Tuple[TrainState, Dict[str, jnp.ndarray]]:
  """One optimizer step on a global batch of uint8 images; `ema` = (decay, warmup).

  The `frozen` parameter groups (zero learning rate) are held constant: no gradient is
  computed for them, so a frozen flow costs its forward pass only.
  """
  key = jax.random.fold_in(base_key, state.step)
  fixed = {g: state.params[g] for g in frozen}
  trainable = {g: p for g, p in state.params.items() if g not in frozen}
  grad_fn = jax.value_and_grad(lambda p: model.loss({**fixed, **p}, batch, key, train=True),
                               has_aux=True)
  (loss, metrics), grads = grad_fn(trainable)
  for group, g in grads.items():
    metrics[f'grad_norm_{group}'] = optax.global_norm(g)
  metrics['grad_norm'] = optax.global_norm(grads)
  grads = {**jax.tree.map(jnp.zeros_like, fixed), **grads}
  # A non-finite loss marks the gradients non-finite too, so apply_if_finite skips the step.
  grads = jax.tree.map(lambda g: jnp.where(jnp.isfinite(loss), g, jnp.nan), grads)
  updates, opt_state = tx.update(grads, state.opt_state, state.params)
  params = jax.tree.map(lambda p, u: p + u, state.params, updates)
  new_state = TrainState(step=state.step + 1, params=params,
                         ema_params=ema_update(state.ema_params, params,
                                              ema_decay_at(state.step, *ema)),
                         opt_state=opt_state)
  metrics['bad_streak'] = consecutive_bad_steps(new_state)
  return new_state, metrics


def train_steps(model: Model, tx: Any, ema: Tuple[float, bool], frozen: Tuple[str, ...],
                base_key: jax.Array, state: TrainState,
                batches: jnp.ndarray) -> Tuple[TrainState, Dict[str, jnp.ndarray]]:
  """train_step over batches [steps, B, ...]; returns mean metrics.

  One batch runs as a plain step; more run in a `lax.scan`. On XLA:CPU a while
  loop costs even with the canonical-conv VJP of `nets/conv.py` (stride-2
  convolutions, gathers; benchmarks/RESULTS.md), so CPU runs keep
  `train.steps_per_call=1`. 'bad_streak' is the largest count of consecutive
  skipped (NaN/Inf) steps in the call.
  """
  step = functools.partial(train_step, model, tx, ema, frozen, base_key)
  if batches.shape[0] == 1:
    state, metrics = step(state, batches[0])
    metrics = jax.tree.map(lambda m: m[None], metrics)
  else:
    state, metrics = jax.lax.scan(step, state, batches)
  streak = metrics.pop('bad_streak')
  return state, {**jax.tree.map(jnp.mean, metrics), 'bad_streak': jnp.max(streak)}


def eval_sums(model: Model, params: Any, key: jax.Array, batch: jnp.ndarray,
              mask: jnp.ndarray) -> jnp.ndarray:
  """`stats.moment_sums` of the eval bits/dim over the unmasked examples of a batch."""
  return jnp.stack(stats.moment_sums(model.eval_bpd(params, batch, key), mask))


def jit_sample(model: Model) -> Callable:
  """`model.sample` jitted, with `num` and `num_steps` static."""
  return jax.jit(model.sample, static_argnames=('num', 'num_steps'))


class Trainer:
  """Holds the compiled functions and shardings of one run."""

  def __init__(self, config: ml_collections.ConfigDict, model: Model, mesh: Mesh):
    self.config = config
    self.model = model
    self.mesh = mesh
    self.replicated = NamedSharding(mesh, P())
    self.stacked = NamedSharding(mesh, P(None, 'data'))
    self.data = NamedSharding(mesh, P('data'))
    self.tx = create_optimizer(config.optim, config.train.num_steps, model.param_groups)
    self.frozen = frozen_groups(config.optim, model.param_groups)
    self.base_key = rng.base_key(config.seed)
    ema = (config.optim.ema_decay, config.optim.ema_warmup)
    self.train = jax.jit(functools.partial(train_steps, model, self.tx, ema, self.frozen,
                                           self.base_key), donate_argnums=0)
    self.eval = jax.jit(functools.partial(eval_sums, model))
    self.sample = jit_sample(model)

  def init_state(self, init_batch: np.ndarray) -> TrainState:
    """Initial state from one global batch (same on every process), replicated."""
    init_key = rng.stream(self.base_key, rng.Stream.INIT)
    params = jax.jit(self.model.init)(init_key, init_batch)
    return jax.device_put(create_train_state(params, self.tx), self.replicated)

  def abstract_state(self) -> TrainState:
    """The shapes, dtypes and (replicated) shardings of `init_state`'s state, computed
    without running init or loading images: a target to restore a checkpoint into."""
    init_key = rng.stream(self.base_key, rng.Stream.INIT)
    batch = jax.ShapeDtypeStruct((self.config.train.batch_size, *self.model.image_shape),
                                 jnp.uint8)
    shapes = jax.eval_shape(lambda x: create_train_state(self.model.init(init_key, x), self.tx),
                            batch)
    return jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=self.replicated),
                        shapes)

  def global_array(self, local: np.ndarray, sharding: NamedSharding) -> jax.Array:
    """Assembles per-process batches into one sharded global array."""
    return jax.make_array_from_process_local_data(sharding, local)

  def mean_eval_bpd(self, params: Any, images: np.ndarray) -> Tuple[float, float]:
    """Mean eval bits/dim over the first config.eval.num_examples `images` (the validation
    split in training) and its standard error."""
    ev = self.config.eval
    key = rng.stream(self.base_key, rng.Stream.PERIODIC_EVAL)
    total = np.zeros(3)
    batches = batching.eval_batches(images, ev.batch_size, ev.num_examples, jax.process_index(),
                                    jax.process_count())
    for i, (batch, mask) in enumerate(batches):  # Each batch its own draws of t and noise.
      total += np.asarray(self.eval(params, jax.random.fold_in(key, i),
                                    self.global_array(batch, self.data),
                                    self.global_array(mask, self.data)))
    return stats.mean_and_stderr_of_sums(total)
