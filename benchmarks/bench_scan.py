"""Benchmarks the cost of while loops (`lax.scan`, `nn.scan`) on the backward pass.

Usage: PYTHONPATH=. python benchmarks/bench_scan.py [--configs default,mnist_cpu_nsf]
    [--steps 5] [--reps 5]

XLA:CPU runs a convolution with non-canonical dimension labels (the autodiff
transpose of a conv) as a naive loop nest inside a while body. Two tables make a
regression visible:
1. A 3x3 conv's gradient computed at the top level and inside a 2-step
   `lax.scan`, for `impl='xla'` and `'fast'` (ms, medians of `--reps`,
   interleaved); the last column is the in-loop slowdown.
2. The whole train step (`Trainer.train`, `steps_per_call=1`) of each config with
   the flow's steps under `nn.scan` (`flow.scan=True`) and unrolled.
"""
import argparse
import time
from typing import Callable, Dict

import jax
from jax import lax
import jax.numpy as jnp
import numpy as np

from bench_train import bench_train, load_config
from dfflows.machine import cpu_model
from dfflows.nets import conv as conv_lib

_DN = ('NHWC', 'HWIO', 'NHWC')
SHAPES = [(64, 16, 16, 16, 16), (64, 16, 16, 32, 32), (32, 32, 32, 64, 64)]


def conv_grads(impl: str, in_scan: bool) -> Callable:
  """Jitted (x, w) -> grads of sum(tanh(conv)^2), at top level or inside a 2-step scan."""
  conv = conv_lib.conv_primitive(impl)
  loss = lambda x, w: jnp.sum(jnp.tanh(conv(x, w, (1, 1), 'SAME', dimension_numbers=_DN))**2)
  grads = jax.grad(loss, (0, 1))
  if not in_scan:
    return jax.jit(grads)

  def scanned(x, w):
    body = lambda c, _: (c + 1.0, grads(x * (1.0 + 1e-3 * c), w))  # Not loop-invariant.
    return lax.scan(body, 0.0, None, length=2)[1]
  return jax.jit(scanned)


def time_interleaved(fns: Dict[str, Callable], args, reps: int) -> Dict[str, float]:
  """Median ms per call of each function, timed rep by rep in turn."""
  for fn in fns.values():
    jax.block_until_ready(fn(*args))
  times = {k: [] for k in fns}
  for _ in range(reps):
    for k, fn in fns.items():
      t0 = time.perf_counter()
      jax.block_until_ready(fn(*args))
      times[k].append(time.perf_counter() - t0)
  return {k: 1e3 * float(np.median(v)) for k, v in times.items()}


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--configs', default='default,mnist_cpu_nsf')
  parser.add_argument('--steps', type=int, default=5)
  parser.add_argument('--reps', type=int, default=5)
  args = parser.parse_args()
  print(f'{cpu_model()}; jax {jax.__version__}; {jax.device_count()} device(s)')
  print('\n| conv grad N,H,W,Cin,Cout | impl | top level (ms) | in scan, per step (ms) |'
        ' in-loop slowdown |')
  print('|---|---|---:|---:|---:|')
  for shape in SHAPES:
    n, h, w, cin, cout = shape
    x = jax.random.normal(jax.random.PRNGKey(0), (n, h, w, cin))
    k = 0.1 * jax.random.normal(jax.random.PRNGKey(1), (3, 3, cin, cout))
    fns = {(impl, s): conv_grads(impl, s) for impl in ('xla', 'fast') for s in (False, True)}
    ms = time_interleaved(fns, (x, k), args.reps)
    for impl in ('xla', 'fast'):
      top, loop = ms[(impl, False)], ms[(impl, True)] / 2
      print(f'| {",".join(map(str, shape))} | {impl} | {top:.1f} | {loop:.1f} | '
            f'{loop / top:.1f}x |', flush=True)
  print('\n| config | flow.scan | compile (s) | step (s) | images/s |')
  print('|---|---|---:|---:|---:|')
  for name in args.configs.split(','):
    for scan in (True, False):
      config = load_config(name, 'auto')
      config.flow.scan = scan
      r = bench_train(config, args.steps)
      print(f'| {name} | {scan} | {r["compile_s"]:.1f} | {r["step_s"]:.3f} | '
            f'{r["images_per_s"]:.1f} |', flush=True)


if __name__ == '__main__':
  main()
