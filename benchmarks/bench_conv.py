"""Benchmarks conv forward+backward: 'fast' vs XLA's default vs a matmul of equal FLOPs.

Usage: PYTHONPATH=. python benchmarks/bench_conv.py [--reps 7] [--shapes mnist|default|all]

Prints one row per shape with GFLOP/s (forward + input grad + kernel grad,
counted as 3 x 2*N*H*W*Cin*Cout*KH*KW) and the ratios fast/xla and
fast/matmul. The three are timed interleaved, rep by rep, and medians are
reported, so a load change from other processes hits all three alike.
"""
import argparse
import time
from typing import Callable, Dict, List, Sequence, Tuple

import jax
import numpy as np

from dfflows.nets import conv as conv_lib

Shape = Tuple[int, int, int, int, int]  # batch, height, width, in, out
_DN = ('NHWC', 'HWIO', 'NHWC')
SHAPES: Dict[str, List[Tuple[str, Shape]]] = {
    'mnist': [
        ('cond 16x16 c64', (128, 16, 16, 64, 64)),
        ('cond 8x8 c64', (128, 8, 8, 64, 64)),
        ('unet 32x32 c64', (128, 32, 32, 64, 64)),
        ('unet 16x16 c128', (128, 16, 16, 128, 128)),
        ('unet 8x8 c128', (128, 8, 8, 128, 128)),
    ],
    'default': [
        ('cond 16x16 c16', (32, 16, 16, 16, 16)),
        ('unet 32x32 c16', (32, 32, 32, 16, 16)),
        ('unet 16x16 c32', (32, 16, 16, 32, 32)),
    ],
}


def conv_step(impl: str) -> Callable:
  """Jitted (x, w, g) -> (y, dx, dw) for a 3x3 SAME conv of `impl`."""
  fn = conv_lib.conv_primitive(impl)

  def step(x, w, g):
    y, vjp = jax.vjp(lambda x, w: fn(x, w, (1, 1), 'SAME', dimension_numbers=_DN), x, w)
    return (y,) + vjp(g)

  return jax.jit(step)


def time_interleaved(fns: Dict[str, Tuple[Callable, Sequence]], reps: int) -> Dict[str, float]:
  """Median seconds per call of each function, timed round-robin."""
  for fn, args in fns.values():
    jax.block_until_ready(fn(*args))
  times = {name: [] for name in fns}
  for _ in range(reps):
    for name, (fn, args) in fns.items():
      start = time.perf_counter()
      jax.block_until_ready(fn(*args))
      times[name].append(time.perf_counter() - start)
  return {name: float(np.median(t)) for name, t in times.items()}


def bench_shape(shape: Shape, reps: int) -> Dict[str, float]:
  """GFLOP/s of fast, xla and matmul for one 3x3 conv shape."""
  n, h, w_, cin, cout = shape
  kx, kw, kg = jax.random.split(jax.random.PRNGKey(0), 3)
  x = jax.random.normal(kx, (n, h, w_, cin))
  w = jax.random.normal(kw, (3, 3, cin, cout)) / np.sqrt(9 * cin)
  g = jax.random.normal(kg, (n, h, w_, cout))
  # The im2col product of the forward conv: same FLOPs as one conv pass.
  a = jax.random.normal(kx, (n * h * w_, 9 * cin))
  b = jax.random.normal(kw, (9 * cin, cout))
  matmul = jax.jit(lambda a, b: a @ b)
  secs = time_interleaved({
      'fast': (conv_step('fast'), (x, w, g)),
      'xla': (conv_step('xla'), (x, w, g)),
      'matmul': (matmul, (a, b)),
  }, reps)
  conv_flops = 2.0 * n * h * w_ * cin * cout * 9
  return {'fast': 3 * conv_flops / secs['fast'] / 1e9,
          'xla': 3 * conv_flops / secs['xla'] / 1e9,
          'matmul': conv_flops / secs['matmul'] / 1e9}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--reps', type=int, default=7)
  parser.add_argument('--shapes', choices=['mnist', 'default', 'all'], default='all')
  args = parser.parse_args()
  groups = ['mnist', 'default'] if args.shapes == 'all' else [args.shapes]
  print(f'jax {jax.__version__}, {jax.devices()[0].platform}, reps={args.reps}')
  print(f"{'shape (3x3 SAME)':<18}{'N,H,W,Cin,Cout':<22}{'fast':>8}{'xla':>8}"
        f"{'matmul':>8}{'fast/xla':>10}{'fast/mm':>9}")
  for group in groups:
    for name, shape in SHAPES[group]:
      r = bench_shape(shape, args.reps)
      print(f"{name:<18}{str(shape):<22}{r['fast']:8.1f}{r['xla']:8.1f}{r['matmul']:8.1f}"
            f"{r['fast'] / r['xla']:10.2f}{r['fast'] / r['matmul']:9.2f}", flush=True)


if __name__ == '__main__':
  main()
