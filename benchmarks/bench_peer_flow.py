"""dfflows' flow-only train step against a PyTorch Glow of the same size from `normflows`.

Usage (normflows installed: `pip install normflows`; it is not a dfflows dependency):

  PYTHONPATH=. python benchmarks/bench_peer_flow.py [--sizes small,mnist_cpu_nsf] [--steps 5]
      [--scan False]

Both sides are multi-scale Glows on MNIST-shaped batches (64 x 32x32x1, uniformly
dequantised to [0,1), logit preprocessing with alpha 0.05): per level squeeze, K steps of
actnorm -> LU 1x1 conv -> affine coupling (channel split), then factor out half the
channels (but at the last level), N(0, I) prior on the latent. dfflows is the
`model.kind='flow'` model of `build_model`, trained on its own `loss` (bits/dim);
normflows is `MultiscaleFlow` of `GlowBlock(split_mode='channel', scale=True)`, `Squeeze`
and `Merge` as in its Glow example, with fixed `DiagGaussian` priors and a `Logit`
transform, trained on `forward_kld` in bits/dim. The conditioners differ in layout
(dfflows: conv3x3 -> ResBlocks -> conv3x3; normflows: conv3x3 -> conv1x1 -> conv3x3), so
each size sets the normflows hidden width that matches the trainable parameter counts to
within 2% (checked; the script exits non-zero otherwise). A row with dfflows' spline
coupling at the same flow settings (no normflows peer) is printed beside each size. One
timed step on both sides: dequantise, forward to the latent, NLL, backward, Adam. Both use
every CPU the process may run on (torch.set_num_threads to that count; pin with
`taskset`), one after the other in one process, after one warm-up step (JAX's compile is
reported apart). Time on a quiet machine.
"""
import argparse
import math
import os
import sys
import time
import warnings
from typing import Dict, Tuple

import numpy as np

BATCH, SIDE = 64, 32
# name -> (num_levels, num_steps, dfflows hidden_channels, dfflows num_res_blocks,
#          normflows hidden_channels); the last is chosen to match the parameter counts.
SIZES: Dict[str, Tuple[int, int, int, int, int]] = {
    # configs/default.py's flow widths (2 levels, 16 hidden, 1 ResBlock) with 8 steps a level.
    'small': (2, 8, 16, 1, 46),
    # configs/mnist_cpu_nsf.py's layout (3 levels x 8 steps, 1 ResBlock) with the hidden
    # width raised from 32 to 52 so that the affine flow has its ~1.3M parameters.
    'mnist_cpu_nsf': (3, 8, 52, 1, 180),
}
MAX_PARAM_GAP = 0.02


def images() -> np.ndarray:
  """A fixed batch of uint8 images [BATCH, SIDE, SIDE, 1]."""
  return np.random.default_rng(0).integers(0, 256, (BATCH, SIDE, SIDE, 1), dtype=np.uint8)


def normflows_glow(levels: int, steps: int, hidden: int) -> 'torch.nn.Module':
  """normflows' multi-scale Glow on [B, 1, SIDE, SIDE], built as in its Glow example."""
  import normflows as nf  # pylint: disable=g-import-not-at-top
  flows, merges, q0 = [], [], []
  for i in range(levels):  # i = 0 is the coarsest level.
    flows.append([nf.flows.GlowBlock(2 ** (levels + 1 - i), hidden, split_mode='channel',
                                     scale=True) for _ in range(steps)] + [nf.flows.Squeeze()])
    if i > 0:
      merges.append(nf.flows.Merge())
    down = 2 ** (levels - i)  # Squeezes applied to this level's output.
    shape = (2 ** (levels - i) if i > 0 else 2 ** (levels + 1), SIDE // down, SIDE // down)
    q0.append(nf.distributions.DiagGaussian(shape, trainable=False))  # N(0, I).
  return nf.MultiscaleFlow(q0, flows, merges, transform=nf.transforms.Logit(alpha=0.05),
                           class_cond=False)


def torch_step(size: Tuple[int, ...], steps: int) -> Tuple[int, float]:
  """(params, seconds per train step) of normflows' multi-scale Glow at `size`."""
  import torch  # pylint: disable=g-import-not-at-top
  torch.manual_seed(0)
  model = normflows_glow(size[0], size[1], size[4])
  opt = torch.optim.Adam(model.parameters(), lr=1e-3)
  x = torch.from_numpy(images()).permute(0, 3, 1, 2).float()
  gen = torch.Generator().manual_seed(0)
  dims = SIDE * SIDE

  def step():
    opt.zero_grad()
    u = (x + torch.rand(x.shape, generator=gen)) / 256.
    loss = model.forward_kld(u) / (dims * math.log(2.)) + 8.
    loss.backward()
    opt.step()

  step()  # Also the data-dependent ActNorm init.
  t0 = time.perf_counter()
  for _ in range(steps):
    step()
  return sum(p.numel() for p in model.parameters()), (time.perf_counter() - t0) / steps


def jax_step(size: Tuple[int, ...], coupling: str, steps: int,
             scan: bool) -> Tuple[int, float, float]:
  """(params, seconds per train step, compile seconds) of dfflows' flow-only model."""
  import jax  # pylint: disable=g-import-not-at-top
  import optax  # pylint: disable=g-import-not-at-top
  from configs import default  # pylint: disable=g-import-not-at-top
  from dfflows.models.build import build_model  # pylint: disable=g-import-not-at-top
  levels, k, hidden, res_blocks, _ = size
  config = default.get_config()
  config.model.kind = 'flow'
  config.flow.update(num_levels=levels, num_steps=k, hidden_channels=hidden,
                     num_res_blocks=res_blocks, coupling=coupling, scan=scan)
  model = build_model(config)
  x = jax.numpy.asarray(images())
  k_init, key = jax.random.split(jax.random.PRNGKey(0))
  params = model.init(k_init, x)  # Data-dependent ActNorm init.
  tx = optax.adam(1e-3)

  def step(params, opt_state, key, x):
    key, sub = jax.random.split(key)
    grads = jax.grad(lambda p: model.loss(p, x, sub)[0])(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, key

  t0 = time.perf_counter()
  compiled = jax.jit(step, donate_argnums=(0, 1, 2)).lower(
      params, tx.init(params), key, x).compile()
  compile_s = time.perf_counter() - t0
  count = sum(p.size for p in jax.tree.leaves(params))
  state = compiled(params, tx.init(params), key, x)
  jax.block_until_ready(state)
  t0 = time.perf_counter()
  for _ in range(steps):
    state = compiled(*state, x)
  jax.block_until_ready(state)
  return count, (time.perf_counter() - t0) / steps, compile_s


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--sizes', default='small,mnist_cpu_nsf')
  parser.add_argument('--steps', type=int, default=5)
  parser.add_argument('--scan', default='False', choices=('True', 'False'),
                      help="dfflows' flow.scan (unrolled measured as fast or faster on CPU)")
  args = parser.parse_args()
  try:
    import normflows  # pylint: disable=g-import-not-at-top
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    sys.exit(f'{e}: this benchmark needs PyTorch and normflows (`pip install normflows`), '
             'which dfflows does not depend on.')
  from dfflows.machine import describe  # pylint: disable=g-import-not-at-top
  warnings.filterwarnings('ignore', message='.*torch.lu')  # normflows' LU init.
  threads = len(os.sched_getaffinity(0))
  torch.set_num_threads(threads)
  print(f'{describe()}; torch {torch.__version__}; normflows {normflows.__version__}; '
        f'{threads} threads each; {args.steps} timed steps after one warm-up; '
        f'dfflows flow.scan={args.scan}')
  print('| size (levels x steps) | coupling | batch | params normflows / dfflows | '
        'normflows img/s | dfflows img/s | dfflows / normflows | dfflows compile (s) |')
  print('|---|---|---|---|---|---|---|---|')
  for name in args.sizes.split(','):
    size = SIZES[name]
    label = f'{name} ({size[0]}x{size[1]})'
    n_torch, s_torch = torch_step(size, args.steps)
    n_jax, s_jax, compile_s = jax_step(size, 'affine', args.steps, args.scan == 'True')
    print(f'| {label} | affine | {BATCH} | {n_torch:,} / {n_jax:,} | {BATCH / s_torch:.1f} | '
          f'{BATCH / s_jax:.1f} | {s_torch / s_jax:.2f}x | {compile_s:.1f} |', flush=True)
    if abs(n_jax - n_torch) > MAX_PARAM_GAP * n_torch:
      sys.exit(f'{name}: parameter counts differ by more than {MAX_PARAM_GAP:.0%} '
               f'({n_torch:,} vs {n_jax:,}).')
    n_spline, s_spline, compile_s = jax_step(size, 'spline', args.steps, args.scan == 'True')
    print(f'| {label} | spline | {BATCH} | - / {n_spline:,} | - | {BATCH / s_spline:.1f} | - | '
          f'{compile_s:.1f} |', flush=True)


if __name__ == '__main__':
  main()
