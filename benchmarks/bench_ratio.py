"""Step-time ratios of several train steps, measured in one process by interleaved rounds.

Usage: PYTHONPATH=. taskset -c 1 python benchmarks/bench_ratio.py \
    --arm nsf=default_flow --arm frozen=default:optim.flow.lr_scale=0.0,model.latent_squeeze=2 \
    [--rounds 5] [--steps 20]

Each `--arm NAME=CONFIG[:KEY=VALUE,...]` is a config of `bench_train.load_config` with
overrides. All arms are compiled first; then each round times `--steps` steps of every arm
in turn, so a machine that slows down or speeds up during the run slows every arm alike.
Prints the median seconds per step of each arm and its ratio to the first arm: the ratio
that turns one arm's one-core minutes into another's step count. Pin the process to one
core (`taskset`) to measure one-core ratios.
"""
import argparse
import re
import time
from typing import Dict, List

import jax
import numpy as np

from benchmarks.bench_train import apply_override, load_config
from dfflows.machine import describe, git_commit
from dfflows.models.build import build_model, image_shape
from dfflows.training.trainer import Trainer, make_mesh


def parse_arm(text: str):
  """'name=config[:k=v,k=(a,b)]' -> (name, config with the overrides applied)."""
  name, _, spec = text.partition('=')
  base, _, overrides = spec.partition(':')
  config = load_config(base, 'auto')
  for setting in filter(None, re.split(r',(?![^()]*\))', overrides)):  # Not inside (...).
    apply_override(config, setting)
  return name, config


def compiled_step(config):
  """(compiled train step, state, batch) of `config` on random images."""
  trainer = Trainer(config, build_model(config), make_mesh())
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (config.train.batch_size,) + image_shape(config), dtype=np.uint8)
  state = trainer.init_state(images)
  batch = trainer.global_array(images[None], trainer.stacked)
  step = trainer.train.lower(state, batch).compile()
  state, _ = step(state, batch)
  jax.block_until_ready(state)
  return step, state, batch


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--arm', action='append', required=True, metavar='NAME=CONFIG[:K=V,...]')
  parser.add_argument('--rounds', type=int, default=5)
  parser.add_argument('--steps', type=int, default=20)
  args = parser.parse_args()
  arms = dict(parse_arm(a) for a in args.arm)
  runs = {name: list(compiled_step(config)) for name, config in arms.items()}
  times: Dict[str, List[float]] = {name: [] for name in arms}
  for _ in range(args.rounds):
    for name, run in runs.items():
      step, state, batch = run
      t0 = time.perf_counter()
      for _ in range(args.steps):
        state, metrics = step(state, batch)
      jax.block_until_ready(metrics)
      times[name].append((time.perf_counter() - t0) / args.steps)
      run[1] = state
  print(f'{describe()}; commit {git_commit()}; {args.rounds} rounds x {args.steps} steps, '
        'interleaved')
  print('| arm | s / step (median) | ratio to the first |')
  print('|---|---:|---:|')
  first = float(np.median(times[next(iter(arms))]))
  for name, ts in times.items():
    print(f'| {name} | {np.median(ts):.3f} | {np.median(ts) / first:.2f} |')


if __name__ == '__main__':
  main()
