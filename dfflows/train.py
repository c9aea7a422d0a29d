"""Training loop: config -> data, model, jitted data-parallel train step, checkpoints, metrics.

Data parallelism uses `jax.jit` over a 1-D device mesh ('data'): the batch is
sharded across all devices of all processes, params and optimizer state are
replicated, and XLA inserts the all-reduce of gradients (the `lax.pmean` of a
pmap). Random numbers are drawn for the whole global batch from
`fold_in(key, step)` with partitionable threefry, so results do not depend on
the number of devices.
"""
import functools
import json
import math
import os
import signal
import threading
import time
from typing import Any, Callable, Dict, Iterator, Tuple

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging
from clu import metric_writers, periodic_actions
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from dfflows import config_checks, visualize
from dfflows.checkpoints import Checkpoints
from dfflows.data import input_pipeline
from dfflows.models import build_model
from dfflows.train_state import (TrainState, consecutive_bad_steps, create_optimizer,
                                 create_train_state, ema_update)

METRICS_FILE = 'metrics.jsonl'


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


def train_step(model: Any, tx: Any, ema_decay: float, base_key: jax.Array,
               state: TrainState, batch: jnp.ndarray) -> Tuple[TrainState, Dict[str, jnp.ndarray]]:
  """One optimizer step on a global batch of uint8 images."""
  key = jax.random.fold_in(base_key, state.step)
  grad_fn = jax.value_and_grad(lambda p: model.loss(p, batch, key, train=True), has_aux=True)
  (loss, metrics), grads = grad_fn(state.params)
  # A non-finite loss marks the gradients non-finite too, so apply_if_finite skips the step.
  grads = jax.tree.map(lambda g: jnp.where(jnp.isfinite(loss), g, jnp.nan), grads)
  updates, opt_state = tx.update(grads, state.opt_state, state.params)
  params = jax.tree.map(lambda p, u: p + u, state.params, updates)
  metrics['grad_norm'] = jnp.sqrt(sum(jnp.sum(g**2) for g in jax.tree.leaves(grads)))
  new_state = TrainState(step=state.step + 1, params=params,
                         ema_params=ema_update(state.ema_params, params, ema_decay),
                         opt_state=opt_state)
  metrics['bad_streak'] = consecutive_bad_steps(new_state)
  return new_state, metrics


def train_steps(model: Any, tx: Any, ema_decay: float, base_key: jax.Array, state: TrainState,
                batches: jnp.ndarray) -> Tuple[TrainState, Dict[str, jnp.ndarray]]:
  """`lax.scan` of train_step over batches [steps, B, ...]; returns mean metrics.

  'bad_streak' is the largest count of consecutive skipped (NaN/Inf) steps in the call.
  """
  step = functools.partial(train_step, model, tx, ema_decay, base_key)
  state, metrics = jax.lax.scan(step, state, batches)
  streak = metrics.pop('bad_streak')
  return state, {**jax.tree.map(jnp.mean, metrics), 'bad_streak': jnp.max(streak)}


def eval_sums(model: Any, params: Any, key: jax.Array, batch: jnp.ndarray,
              mask: jnp.ndarray) -> jnp.ndarray:
  """[sum bpd, sum bpd^2, count] over the unmasked examples of a batch."""
  bpd = model.eval_bpd(params, batch, key)
  m = mask.astype(jnp.float32)
  return jnp.stack([jnp.sum(bpd * m), jnp.sum(bpd**2 * m), jnp.sum(m)])


class Trainer:
  """Holds the compiled functions and shardings of one run."""

  def __init__(self, config: ml_collections.ConfigDict, model: Any, mesh: Mesh):
    self.config = config
    self.model = model
    self.mesh = mesh
    self.replicated = NamedSharding(mesh, P())
    self.stacked = NamedSharding(mesh, P(None, 'data'))
    self.data = NamedSharding(mesh, P('data'))
    self.tx = create_optimizer(config.optim, config.train.num_steps)
    self.base_key = jax.random.PRNGKey(config.seed)
    self.train = jax.jit(functools.partial(train_steps, model, self.tx, config.optim.ema_decay,
                                           self.base_key), donate_argnums=0)
    self.eval = jax.jit(functools.partial(eval_sums, model))
    self.sample = jax.jit(model.sample, static_argnames=('num', 'num_steps'))

  def init_state(self, init_batch: np.ndarray) -> TrainState:
    """Initial state from one global batch (same on every process), replicated."""
    init_key = jax.random.fold_in(self.base_key, -1 % 2**31)
    params = jax.jit(self.model.init)(init_key, init_batch)
    return jax.device_put(create_train_state(params, self.tx), self.replicated)

  def global_array(self, local: np.ndarray, sharding: NamedSharding) -> jax.Array:
    """Assembles per-process batches into one sharded global array."""
    return jax.make_array_from_process_local_data(sharding, local)

  def evaluate(self, params: Any, images: np.ndarray) -> Tuple[float, float]:
    """Mean eval bits/dim over config.eval.num_examples test images and its standard error."""
    ev = self.config.eval
    key = jax.random.fold_in(self.base_key, 2**30)
    total = np.zeros(3)
    for batch, mask in input_pipeline.eval_batches(images, ev.batch_size // jax.process_count(),
                                                   ev.num_examples, jax.process_index(),
                                                   jax.process_count()):
      total += np.asarray(self.eval(params, key, self.global_array(batch, self.data),
                                    self.global_array(mask, self.data)))
    mean = total[0] / total[2]
    var = max(total[1] / total[2] - mean**2, 0.0)
    return float(mean), float(math.sqrt(var / total[2]))


def _crossed(prev: int, step: int, every: int) -> bool:
  """Whether a multiple of `every` lies in (prev, step]."""
  return step // every > prev // every


def _stacked_batches(it: Iterator[np.ndarray], k: int) -> np.ndarray:
  """Next k process-local batches stacked as [k, B_local, ...]."""
  return np.stack([next(it) for _ in range(k)])


def _log_model_size(trainer: Trainer, state: TrainState, batch: jax.Array) -> Callable:
  """Compiles the train step ahead of time, logs params, FLOPs/example and compile time."""
  t0 = time.time()
  compiled = trainer.train.lower(state, batch).compile()
  seconds = time.time() - t0
  n_params = {k: sum(x.size for x in jax.tree.leaves(v)) for k, v in state.params.items()}
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  flops = float(cost.get('flops', float('nan'))) if cost else float('nan')
  per_example = flops / (batch.shape[0] * batch.shape[1])
  logging.info('Params: %s; train-step FLOPs per example: %.3g; compile time %.1f s.',
               n_params, per_example, seconds)
  return compiled


def _install_stop_handlers(stop: threading.Event) -> Dict[int, Any]:
  """SIGTERM/SIGINT set `stop` (checkpoint, then exit cleanly); returns the old handlers."""
  if threading.current_thread() is not threading.main_thread():
    return {}
  old = {}
  for sig in (signal.SIGTERM, signal.SIGINT):
    old[sig] = signal.signal(sig, lambda *_: stop.set())
  return old


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> TrainState:
  """Trains (or resumes) the model of `config` in `workdir`; returns the final state."""
  maybe_initialize_distributed(config.distributed)
  config_checks.validate_config(config, jax.device_count())
  is_chief = jax.process_index() == 0
  if is_chief:
    config_checks.check_workdir(config, workdir)
  model = build_model(config)
  train_images, _ = input_pipeline.load_split(config.data, 'train')
  test_images, _ = input_pipeline.load_split(config.data, 'test')
  trainer = Trainer(config, model, make_mesh())
  tc = config.train
  first = next(input_pipeline.train_batches(train_images, tc.batch_size, config.seed))
  state = trainer.init_state(first)
  ckpts = Checkpoints(workdir, tc.keep_checkpoints)
  state, restored = ckpts.restore(state)
  step = int(jax.device_get(state.step))
  if restored is not None:
    logging.info('Resumed from checkpoint at step %d in %s.', step, ckpts.directory)

  writer = metric_writers.create_default_writer(workdir, just_logging=not is_chief)
  report = periodic_actions.ReportProgress(num_train_steps=tc.num_steps, writer=writer,
                                           every_steps=tc.log_every)
  batches = input_pipeline.train_batches(train_images, tc.batch_size, config.seed,
                                         start_step=step, process_index=jax.process_index(),
                                         process_count=jax.process_count())
  stop = threading.Event()
  old_handlers = _install_stop_handlers(stop)
  metrics_path = os.path.join(workdir, METRICS_FILE)
  k = tc.steps_per_call
  pending = []
  compiled = None
  try:
    while step < tc.num_steps and not stop.is_set():
      batch = trainer.global_array(_stacked_batches(batches, k), trainer.stacked)
      if compiled is None:
        compiled = _log_model_size(trainer, state, batch)
      prev, state, metrics = step, *compiled(state, batch)
      step += k
      pending.append(metrics)
      report(step)
      if _crossed(prev, step, tc.log_every) or step >= tc.num_steps:
        # Host reads (which wait for the device) only at log points, not every step.
        fetched = jax.device_get(pending)
        bad = max(int(m.pop('bad_streak')) for m in fetched)
        if bad >= tc.max_bad_steps:
          raise FloatingPointError(
              f'{bad} consecutive train steps with NaN/Inf loss or gradients (seen by step '
              f'{step}); they were skipped, so params hold no NaN/Inf. Last good checkpoint: '
              f'step {ckpts.latest_step()} in {ckpts.directory} (left intact).')
        scalars = {f'train/{k_}': float(v) for k_, v in
                   jax.tree.map(lambda *xs: np.mean(xs), *fetched).items()}
        scalars['train/bad_steps_total'] = float(state.opt_state.total_notfinite)
        pending = []
        _write(writer, metrics_path, step, scalars, is_chief)
      if _crossed(prev, step, tc.checkpoint_every) or step >= tc.num_steps or stop.is_set():
        ckpts.save(state)
      if _crossed(prev, step, tc.eval_every) or step >= tc.num_steps:
        bpd, err = trainer.evaluate(state.ema_params, test_images)
        _write(writer, metrics_path, step, {'eval/bpd': bpd, 'eval/bpd_stderr': err}, is_chief)
        ckpts.save_best(state, bpd)
        if is_chief:
          visualize.plot_bpd(metrics_path, os.path.join(workdir, 'bpd.png'))
      if _crossed(prev, step, tc.sample_every) or step >= tc.num_steps:
        _write_samples(trainer, state, workdir, step, is_chief)
    if stop.is_set():
      logging.info('Stop requested: saved a checkpoint at step %d; rerun to resume.', step)
  finally:
    for sig, handler in old_handlers.items():
      signal.signal(sig, handler)
    ckpts.close()
    writer.flush()
  return state


def _write(writer, path: str, step: int, scalars: Dict[str, float], is_chief: bool) -> None:
  """Writes scalars to the clu writer and (chief only) appends them to metrics.jsonl."""
  writer.write_scalars(step, scalars)
  if is_chief:
    with open(path, 'a') as f:
      f.write(json.dumps({'step': step, **scalars}) + '\n')


def _write_samples(trainer: Trainer, state: TrainState, workdir: str, step: int,
                   is_chief: bool) -> None:
  """Samples with the EMA params and writes samples/step_N.png and samples.png."""
  ev, dc = trainer.config.eval, trainer.config.diffusion
  key = jax.random.fold_in(trainer.base_key, 2**30 + 1)
  images = trainer.sample(state.ema_params, key, num=ev.num_samples,
                          num_steps=dc.sample_steps,
                          temperature=trainer.config.model.temperature)
  if is_chief:
    images = np.asarray(jax.device_get(images))
    visualize.save_image_grid(images, os.path.join(workdir, 'samples', f'step_{step}.png'))
    visualize.save_image_grid(images, os.path.join(workdir, 'samples.png'))
