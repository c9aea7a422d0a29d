"""dfflows' U-Net train step against openai/improved-diffusion's PyTorch `UNetModel`.

Usage (torch installed, improved-diffusion checked out anywhere; nothing of it is copied here):

  PYTHONPATH=. python benchmarks/bench_peer.py --improved_diffusion ~/src/improved-diffusion \
      [--sizes mnist_cpu,thesis_mnist] [--steps 5]

For each size both networks are built with the same hyperparameters (learned sigma: 2C
outputs; improved-diffusion's use_scale_shift_norm=True, as in dfflows' U-Net) and their
parameter counts, which must agree, are printed side by side; the timed step is the
same in both: forward on a batch of noisy images and timesteps, MSE of the eps half of
the output against a target, backward, Adam. Both use every CPU the process may run on
(XLA:CPU does; torch.set_num_threads to the same count: pin with `taskset -c 0-1` to
compare on 2 cores), one after the other in one process, after one warm-up step (JAX's
compile is reported apart). Time on a quiet machine.
"""
import argparse
import os
import sys
import time
from typing import Dict, Tuple


# name -> (H, C, batch, ch, ch_mult, num_res_blocks, attention resolutions (pixels), heads)
SIZES: Dict[str, Tuple] = {
    # configs/mnist_cpu.py's U-Net on the 16x16x4 squeezed latent.
    'mnist_cpu': (16, 4, 64, 32, (1, 2, 2), 1, (8,), 1),
    # The thesis's MNIST U-Net on 32x32x1 (configs/mnist.py).
    'thesis_mnist': (32, 1, 32, 64, (1, 2, 2), 2, (16,), 1),
}


def torch_step(size: Tuple, steps: int) -> Tuple[int, float]:
  """(params, seconds per train step) of improved-diffusion's UNetModel at `size`."""
  import torch  # pylint: disable=g-import-not-at-top
  from improved_diffusion.unet import UNetModel  # pylint: disable=g-import-not-at-top
  h, c, batch, ch, mult, blocks, attn, heads = size
  net = UNetModel(in_channels=c, model_channels=ch, out_channels=2 * c, num_res_blocks=blocks,
                  attention_resolutions=tuple(h // r for r in attn), dropout=0.0,
                  channel_mult=mult, num_heads=heads, use_scale_shift_norm=True)
  opt = torch.optim.Adam(net.parameters(), lr=1e-4)
  gen = torch.Generator().manual_seed(0)
  x = torch.randn(batch, c, h, h, generator=gen)
  t = torch.randint(0, 1000, (batch,), generator=gen)
  target = torch.randn(batch, c, h, h, generator=gen)

  def step():
    opt.zero_grad()
    loss = ((net(x, t)[:, :c] - target) ** 2).mean()
    loss.backward()
    opt.step()

  step()
  t0 = time.perf_counter()
  for _ in range(steps):
    step()
  return sum(p.numel() for p in net.parameters()), (time.perf_counter() - t0) / steps


def jax_step(size: Tuple, steps: int, conv_impl: str) -> Tuple[int, float, float]:
  """(params, seconds per train step, compile seconds) of dfflows' UNet at `size`."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  import optax  # pylint: disable=g-import-not-at-top
  from dfflows.nets.unet import UNet  # pylint: disable=g-import-not-at-top
  h, c, batch, ch, mult, blocks, attn, heads = size
  net = UNet(ch=ch, ch_mult=mult, num_res_blocks=blocks, attn_resolutions=attn, dropout=0.0,
             num_heads=heads, out_channels=2 * c, conv_impl=conv_impl, dtype=jnp.float32,
             remat=False)
  keys = jax.random.split(jax.random.PRNGKey(0), 4)
  x = jax.random.normal(keys[0], (batch, h, h, c))
  t = jax.random.randint(keys[1], (batch,), 0, 1000)
  target = jax.random.normal(keys[2], (batch, h, h, c))
  params = net.init(keys[3], x, t)
  tx = optax.adam(1e-4)

  def step(params, opt_state):
    grads = jax.grad(lambda p: jnp.mean((net.apply(p, x, t)[..., :c] - target) ** 2))(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state

  t0 = time.perf_counter()
  compiled = jax.jit(step, donate_argnums=(0, 1)).lower(params, tx.init(params)).compile()
  compile_s = time.perf_counter() - t0
  count = sum(p.size for p in jax.tree.leaves(params))
  state = compiled(params, tx.init(params))
  jax.block_until_ready(state)
  t0 = time.perf_counter()
  for _ in range(steps):
    state = compiled(*state)
  jax.block_until_ready(state)
  return count, (time.perf_counter() - t0) / steps, compile_s


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--improved_diffusion', required=True,
                      help='a checkout of github.com/openai/improved-diffusion')
  parser.add_argument('--sizes', default='mnist_cpu,thesis_mnist')
  parser.add_argument('--steps', type=int, default=5)
  parser.add_argument('--conv_impl', default='fast')
  args = parser.parse_args()
  if not os.path.isdir(os.path.join(args.improved_diffusion, 'improved_diffusion')):
    sys.exit(f'{args.improved_diffusion} holds no improved_diffusion package.')
  sys.path.insert(0, args.improved_diffusion)
  import torch  # pylint: disable=g-import-not-at-top
  from dfflows.machine import describe  # pylint: disable=g-import-not-at-top
  threads = len(os.sched_getaffinity(0))
  torch.set_num_threads(threads)
  print(f'{describe()}; torch {torch.__version__}; {threads} threads each; '
        f'{args.steps} timed steps after one warm-up; dfflows conv_impl={args.conv_impl}')
  print('| size | batch | params torch / dfflows | torch img/s | dfflows img/s | dfflows / torch |'
        ' dfflows compile (s) |')
  print('|---|---|---|---|---|---|---|')
  for name in args.sizes.split(','):
    size = SIZES[name]
    n_torch, s_torch = torch_step(size, args.steps)
    n_jax, s_jax, compile_s = jax_step(size, args.steps, args.conv_impl)
    if n_torch != n_jax:
      sys.exit(f'{name}: the networks differ ({n_torch:,} vs {n_jax:,} params).')
    batch = size[2]
    print(f'| {name} | {batch} | {n_torch:,} / {n_jax:,} | {batch / s_torch:.1f} | '
          f'{batch / s_jax:.1f} | {s_torch / s_jax:.2f}x | {compile_s:.1f} |', flush=True)


if __name__ == '__main__':
  main()
