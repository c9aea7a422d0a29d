"""Training loop: config -> data, model, jitted data-parallel train step, checkpoints, metrics.

The train step, the `Trainer` holding the compiled functions and the device
mesh are in `dfflows.training.trainer`; this module adds the data,
periodic evaluation, samples, metric writers, checkpoints and fault handling.
"""
import json
import os
import signal
import threading
import time
from typing import Any, Callable, Dict, Iterator

import jax
import ml_collections
import numpy as np
from absl import logging
from clu import metric_writers

from dfflows import rng, visualize
from dfflows.data import batching
from dfflows.data import input_pipeline
from dfflows.metrics.bpd import per_real_pixel
from dfflows.models.build import build_model
from dfflows.training import config_checks, warm_start
from dfflows.training.checkpoints import Checkpoints
from dfflows.training.train_state import TrainState
from dfflows.training.trainer import Trainer, make_mesh, maybe_initialize_distributed

METRICS_FILE = 'metrics.jsonl'


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


class _Progress:
  """Steps/s, images/s and ETA from wall time between log points (after blocking on results).

  Time spent in evaluation, checkpoints and samples is excluded (`pause`), and the
  first interval starts after the train step is compiled.
  """

  def __init__(self, step: int, num_steps: int, batch_size: int, bpd_label: str):
    self.num_steps, self.batch_size, self.bpd_label = num_steps, batch_size, bpd_label
    self.step, self.time = step, time.perf_counter()

  def pause(self, seconds: float) -> None:
    """Excludes `seconds` (eval, checkpoint, samples) from the current interval."""
    self.time += seconds

  def line(self, step: int, scalars: Dict[str, float]) -> str:
    """The console line of a log point; restarts the interval."""
    now = time.perf_counter()
    rate = (step - self.step) / max(now - self.time, 1e-9)
    self.step, self.time = step, now
    eta = (self.num_steps - step) / max(rate, 1e-9)
    text = (f'step {step}/{self.num_steps} | {rate:.2f} steps/s, {rate * self.batch_size:.0f} '
            f'images/s | ETA {int(eta // 60)}m{int(eta % 60):02d}s | loss {scalars["train/loss"]:.4f}')
    if 'train/bpd' in scalars:
      text += (f' | train bpd {scalars["train/bpd"]:.3f} bits/model dim = '
               f'{scalars["train/bpd_per_real_pixel"]:.3f} bits/real pixel ({self.bpd_label})')
    return text


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
  warm_start.check_before_training(config, workdir)  # Before the workdir is written.
  is_chief = jax.process_index() == 0
  if is_chief:
    config_checks.check_workdir(config, workdir)
  model = build_model(config)
  train_images, _ = input_pipeline.load_split(config.data, 'train')
  # The periodic eval and `best/` use the validation split, never the test split.
  val_images, _ = input_pipeline.load_split(config.data, 'validation')
  trainer = Trainer(config, model, make_mesh())
  tc = config.train
  first = next(batching.train_batches(train_images, tc.batch_size, config.seed))
  state = trainer.init_state(first)
  ckpts = Checkpoints(workdir, tc.keep_checkpoints)
  state, restored = ckpts.restore(state)
  step = int(jax.device_get(state.step))
  if restored is not None:
    logging.info('Resumed from checkpoint at step %d in %s.', step, ckpts.directory)
  elif config.model.warm_start:
    state = warm_start.load_flow(config, state)

  writer = metric_writers.create_default_writer(workdir, just_logging=not is_chief)
  batches = batching.train_batches(train_images, tc.batch_size, config.seed,
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
        progress = _Progress(step, tc.num_steps, tc.batch_size, trainer.model.bpd_labels.train)
      prev, state, metrics = step, *compiled(state, batch)
      step += k
      pending.append(metrics)
      if len(pending) >= 2:
        # At most one call queued ahead of the host, so a stop request ends within a
        # step or two and the checkpoint holds the step reached at that moment.
        jax.block_until_ready(pending[-2])
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
        if 'train/bpd' in scalars:
          scalars['train/bpd_per_real_pixel'] = per_real_pixel(scalars['train/bpd'], config.data)
        pending = []
        logging.info('%s', progress.line(step, scalars))
        _write(writer, metrics_path, step, scalars, is_chief)
      t_other = time.perf_counter()
      if _crossed(prev, step, tc.checkpoint_every) or step >= tc.num_steps or stop.is_set():
        ckpts.save(state)
      if _crossed(prev, step, tc.eval_every) or step >= tc.num_steps:
        bpd, err = trainer.mean_eval_bpd(state.ema_params, val_images)
        real_bpd, real_err = (per_real_pixel(v, config.data) for v in (bpd, err))  # Linear.
        logging.info('step %d | eval bpd %.3f +- %.3f bits/model dim = %.3f +- %.3f bits/real '
                     'pixel on %d validation images (EMA params; %s)', step, bpd, err, real_bpd,
                     real_err, config.eval.num_examples or len(val_images),
                     trainer.model.bpd_labels.eval)
        _write(writer, metrics_path, step, {'eval/bpd': bpd, 'eval/bpd_stderr': err,
                                            'eval/bpd_per_real_pixel': real_bpd,
                                            'eval/bpd_per_real_pixel_stderr': real_err}, is_chief)
        ckpts.save_best(state, bpd)
        if is_chief:
          visualize.plot_bpd(metrics_path, os.path.join(workdir, 'bpd.png'))
      if _crossed(prev, step, tc.sample_every) or step >= tc.num_steps:
        _write_samples(trainer, state, workdir, step, is_chief)
      progress.pause(time.perf_counter() - t_other)
    if stop.is_set():
      logging.info('Stop requested: saved a checkpoint at step %d; rerun to resume.', step)
  finally:
    for sig, handler in old_handlers.items():
      signal.signal(sig, handler)
    ckpts.close()
    writer.flush()
  return state


def written_outputs(workdir: str) -> str:
  """The run's outputs that exist in `workdir`, comma-separated (for the closing summary)."""
  names = ('checkpoints', 'best', METRICS_FILE, 'bpd.png', 'samples.png', 'samples')
  return ', '.join(n for n in names if os.path.exists(os.path.join(workdir, n)))


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
  key = rng.stream(trainer.base_key, rng.Stream.PERIODIC_SAMPLES)
  images = trainer.sample(state.ema_params, key, num=ev.num_samples,
                          num_steps=dc.sample_steps,
                          temperature=trainer.config.model.temperature)
  if is_chief:
    images = np.asarray(jax.device_get(images))
    visualize.save_image_grid(images, os.path.join(workdir, 'samples', f'step_{step}.png'))
    visualize.save_image_grid(images, os.path.join(workdir, 'samples.png'))
