"""Benchmarks the train step (images/s, compile time, memory) and sampling time per config.

Usage: PYTHONPATH=. python benchmarks/bench_train.py [--configs default,default_flow,default_ddpm]
    [--steps 10] [--sample_steps 500,100] [--conv_impl fast,xla] [--batch_size 32]
    [--set unet.dtype=bfloat16 ...] [--compile_only]

Each named config is a module of configs/ (`default`, `mnist`, `cifar10`, ...); a
suffix `_flow` / `_ddpm` switches `model.kind` to the baseline at the same sizes.
For each config it prints: the jit compile time of the train step, images/s over
`--steps` timed steps after one warm-up call, the compiled step's memory (arguments
+ outputs + temporaries from XLA's memory analysis; the process's peak RSS is also
shown), and seconds for 25 samples for each reverse-step count in `--sample_steps`
(the flow-only model samples with one inverse pass; K reverse steps are K U-Net
evaluations per sample). With two conv implementations it also prints the
step-time ratio between them, measured in the same run. `--batch_size` replaces
the config's batch (e.g. to fit a CPU's memory), `--set key=value` any other
setting, and `--compile_only` reports compile time and memory without running.
"""
import argparse
import ast
import importlib
import resource
import time
from typing import Dict, List

import jax
import numpy as np

from dfflows.machine import cpu_model
from dfflows.models.build import build_model, image_shape
from dfflows.training.trainer import Trainer, make_mesh


def apply_override(config, setting: str) -> None:
  """Sets `config` from 'section.key=value' (value a Python literal, else a string)."""
  dotted, _, text = setting.partition('=')
  try:
    value = ast.literal_eval(text)
  except (ValueError, SyntaxError):
    value = text
  config.lock()  # An unknown key is then a KeyError instead of a new field.
  config.update_from_flattened_dict({dotted: value})  # Casts or raises TypeError.


def load_config(name: str, conv_impl: str):
  """configs/<name>.py, with an optional _flow/_ddpm suffix selecting the model kind."""
  base, kind = name, None
  for suffix in ('_flow', '_ddpm'):
    if name.endswith(suffix) and name not in ('mnist_ddpm', 'celeba_ddpm', 'mnist_cpu_ddpm'):
      base, kind = name[:-len(suffix)], suffix[1:]
  config = importlib.import_module(f'configs.{base}').get_config()
  if kind:
    config.model.kind = kind
  config.model.conv_impl = conv_impl
  return config


def bench_train(config, steps: int, compile_only: bool = False) -> Dict[str, float]:
  """Compile time, images/s and memory of the jitted train step of `config`."""
  model = build_model(config)
  trainer = Trainer(config, model, make_mesh())
  bs = config.train.batch_size
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (bs,) + image_shape(config), dtype=np.uint8)
  state = trainer.init_state(images)
  batch = trainer.global_array(images[None], trainer.stacked)
  t0 = time.perf_counter()
  compiled = trainer.train.lower(state, batch).compile()
  compile_s = time.perf_counter() - t0
  mem = compiled.memory_analysis()
  mem_bytes = (mem.argument_size_in_bytes + mem.output_size_in_bytes + mem.temp_size_in_bytes
               if mem is not None else float('nan'))
  out = {'compile_s': compile_s, 'step_memory_mb': mem_bytes / 2**20,
         'params': int(sum(x.size for x in jax.tree.leaves(state.params)))}
  if compile_only:
    return {**out, 'step_s': float('nan'), 'images_per_s': float('nan')}
  state, _ = compiled(state, batch)  # Warm-up.
  jax.block_until_ready(state)
  t0 = time.perf_counter()
  for _ in range(steps):
    state, metrics = compiled(state, batch)
  jax.block_until_ready(metrics)
  step_s = (time.perf_counter() - t0) / steps
  return {**out, 'step_s': step_s, 'images_per_s': bs / step_s, '_trainer': trainer,
          '_state': state}


def bench_sampling(trainer, state, steps_list: List[int], num: int = 25) -> Dict:
  """Seconds for `num` samples (after compiling) for each reverse-step count."""
  out = {}
  key = jax.random.PRNGKey(1)
  # The flow-only model has one plan (an inverse, steps None) whatever is asked.
  for steps in dict.fromkeys(trainer.model.sampling_plan(s).num_steps for s in steps_list):
    fn = lambda: trainer.sample(state.ema_params, key, num=num, num_steps=steps)  # pylint: disable=cell-var-from-loop
    jax.block_until_ready(fn())
    t0 = time.perf_counter()
    jax.block_until_ready(fn())
    out['inverse' if steps is None else f'{steps} steps'] = time.perf_counter() - t0
  return out


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--configs', default='default,default_flow,default_ddpm')
  parser.add_argument('--steps', type=int, default=10)
  parser.add_argument('--sample_steps', default='500,100')
  parser.add_argument('--conv_impl', default='auto')
  parser.add_argument('--batch_size', type=int, default=0, help="0 = the config's")
  parser.add_argument('--set', action='append', default=[], metavar='KEY=VALUE')
  parser.add_argument('--compile_only', action='store_true')
  args = parser.parse_args()
  steps_list = [int(s) for s in args.sample_steps.split(',') if s]
  impls = args.conv_impl.split(',')
  print(f'{cpu_model()}; jax {jax.__version__}, {jax.device_count()} x {jax.devices()[0].device_kind}; '
        f'batch {args.batch_size or "of the config"}; settings {args.set or "as configured"}')
  print('| config | conv | params | compile (s) | step (s) | images/s | step memory (MB) |'
        ' sampling 25 (s) |')
  print('|---|---|---|---|---|---|---|---|')
  for name in args.configs.split(','):
    step_times = {}
    for impl in impls:
      config = load_config(name, impl)
      if args.batch_size:
        config.train.batch_size = args.batch_size
      for setting in args.set:
        apply_override(config, setting)
      r = bench_train(config, args.steps, args.compile_only)
      step_times[impl] = r['step_s']
      s = (bench_sampling(r['_trainer'], r["_state"],
                          [min(k, config.diffusion.num_timesteps) for k in steps_list])
           if impl == impls[0] and not args.compile_only else {})
      samp = ', '.join(f'{k}: {v:.2f}' for k, v in s.items()) or '-'
      print(f'| {name} | {impl} | {r["params"]} | {r["compile_s"]:.1f} | {r["step_s"]:.3f} | '
            f'{r["images_per_s"]:.1f} | {r["step_memory_mb"]:.0f} | {samp} |', flush=True)
    if len(impls) == 2 and not args.compile_only:
      a, b = impls
      print(f'|  | {a}/{b} speed-up | | | {step_times[b] / step_times[a]:.2f}x | | | |')
  peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
  print(f'Process peak RSS: {peak:.0f} MB.')


if __name__ == '__main__':
  main()
