"""Can the bound's one-sample gradient find a flow latent's second-order structure?

A linear denoiser, trained on a frozen flow's latents exactly as a DiffFlow's prior is (the
one-sample bound with importance-sampled t and the Gaussian control variate, Adam, batch 32),
and read as a DiffFlow's prior is (the full bound with the control variate on validation
latents, minus their exact NLL under N(0, I)). For latents z0 ~ N(m, I + S),

    E[eps | x_t] = sqrt(1 - abar_t) (I + abar_t S)^-1 (x_t - sqrt(abar_t) m)
                 = sqrt(1 - abar_t) (x_t - abar_t S x_t + abar_t^2 S^2 x_t - sqrt(abar_t) m) + ...

so the denoiser is that expansion with a learned D x D matrix A in place of S, B in place of
S^2 and a vector m, all zero at the start (the N(0, I) reverse process, as the U-Net's
zero-initialised residual), and the N(0, I) process's variance beta_t. Beside it: the
full-covariance and the diagonal Gaussians fitted in closed form to the same latents
(`experiments.latent_gaussian`). If the linear denoiser finds what the closed form finds and
the U-Net (`experiments.stage2 validate --control_variate`) does not, the U-Net is what
holds the prior back; if neither finds it, the bound's gradient does not, in these steps.

  python -m experiments.linear_denoiser --out linear_denoiser_s0 \
      --workdir runs/w60lr/reach_ch16_s0 [--steps 8000] [--eval_at 1000,2000,4000,8000] \
      [--objective l_simple]

`--objective l_simple` trains it on Improved DDPM's L_simple instead (the eps-MSE at a
uniform t: a weighting of the same terms, not the bound), still read with the bound.

The workdir is a DiffFlow's (its diffusion, latent layout and EMA flow are used; its U-Net is
not). Latents: one dequantization draw per image, the first `--num_fit` train images and the
first `--num_examples` validation images.
"""
import argparse
import functools
from typing import Dict, Tuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from dfflows import machine, rng
from dfflows.data import input_pipeline
from dfflows.diffusion.gaussian_diffusion import GaussianDiffusion, standard_normal_nll
from dfflows.metrics import bpd, stats
from dfflows.training import run as run_lib
from experiments import common, latent_gaussian

Params = Dict[str, jnp.ndarray]
BATCH = 32
OBJECTIVES = ('bound', 'l_simple')


def init_params(dims: int) -> Params:
  """A = B = 0, m = 0: the reverse process that is exact for N(0, I) latents."""
  return {'a': jnp.zeros((dims, dims)), 'b': jnp.zeros((dims, dims)), 'm': jnp.zeros((dims,))}


def linear_model_fn(diffusion: GaussianDiffusion, params: Params):
  """model_fn(x_t, t) of the linear denoiser: [eps_hat, raw variance 1] on NHWC latents."""
  def model_fn(x_t, t):
    shape = x_t.shape
    x = x_t.reshape(shape[0], -1)
    abar = jnp.asarray(diffusion.alphas_cumprod, x.dtype)[t][:, None]
    eps = jnp.sqrt(1.0 - abar) * (x - abar * (x @ params['a'].T) + abar**2 * (x @ params['b'].T)
                                  - jnp.sqrt(abar) * params['m'])
    return jnp.concatenate([eps.reshape(shape), jnp.ones(shape, x.dtype)], axis=-1)
  return model_fn


def train(diffusion: GaussianDiffusion, latents: np.ndarray, key: jax.Array, steps: int,
          lr: float, eval_at: Tuple[int, ...], evaluate,
          objective: str = 'bound') -> Dict[int, Dict]:
  """Adam (cosine to 0 over `steps`, 50 warm-up steps) on `objective`: the one-sample bound
  with the control variate, or L_simple; `evaluate(params)` at each step of `eval_at`."""
  if objective not in OBJECTIVES:
    raise ValueError(f'objective {objective!r} is not one of {OBJECTIVES}.')
  params = init_params(int(np.prod(latents.shape[1:])))
  schedule = optax.warmup_cosine_decay_schedule(0.0, lr, 50, steps)
  tx = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(schedule))
  opt_state = tx.init(params)
  data = jnp.asarray(latents)

  def loss(p, z0, k):
    model_fn = linear_model_fn(diffusion, p)
    if objective == 'l_simple':
      return diffusion.training_losses(model_fn, z0, k, vlb_weight=0.0)['l_simple'].mean()
    nats, _ = diffusion.one_sample_bound(model_fn, z0, k, 'importance', vlb_weight=0.0,
                                         control_variate=True)
    return nats.mean()

  def step(carry, i):
    p, s = carry
    k_batch, k_bound = jax.random.split(jax.random.fold_in(key, i))
    z0 = data[jax.random.randint(k_batch, (BATCH,), 0, data.shape[0])]
    grads = jax.grad(loss)(p, z0, k_bound)
    updates, s = tx.update(grads, s, p)
    return (optax.apply_updates(p, updates), s), None

  # Steps first..last (step i's key: fold_in(key, i)) in one scan per stretch between readings.
  run = jax.jit(lambda c, first, last: jax.lax.scan(step, c, jnp.arange(first, last + 1))[0],
                static_argnums=(1, 2))
  readings, done = {}, 0
  for stop in sorted({s for s in eval_at if s <= steps} | {steps}):
    params, opt_state = run((params, opt_state), done + 1, stop)
    done = stop
    if stop in eval_at:
      readings[stop] = evaluate(params)
      print(f"step {stop}: {readings[stop]['gain']:+.4f} +- {readings[stop]['stderr']:.4f}",
            flush=True)
  return readings


@functools.lru_cache(maxsize=None)
def _jitted_gain(diffusion: GaussianDiffusion):
  """gain(params, z0, key): the full bound with the control variate minus -log N(z0; 0, I),
  nats per latent; compiled once per diffusion, the params an argument."""
  def gain(params, z0, k):
    nats = diffusion.full_bound(linear_model_fn(diffusion, params), z0, k,
                                control_variate=True)['total_nats']
    return nats - standard_normal_nll(z0)
  return jax.jit(gain)


def full_bound_gain(diffusion: GaussianDiffusion, params: Params, latents: np.ndarray,
                    key: jax.Array) -> np.ndarray:
  """Per latent: the full bound with the control variate minus -log N(z0; 0, I), nats."""
  gain = _jitted_gain(diffusion)
  return np.concatenate([np.asarray(gain(params, jnp.asarray(latents[i:i + 64]),
                                         jax.random.fold_in(key, i)))
                         for i in range(0, len(latents), 64)])


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--workdir', required=True)
  parser.add_argument('--out', required=True)
  parser.add_argument('--steps', type=int, default=8000)
  parser.add_argument('--eval_at', default='1000,2000,4000,8000')
  parser.add_argument('--lr', type=float, default=2e-3)
  parser.add_argument('--objective', choices=OBJECTIVES, default='bound')
  parser.add_argument('--num_fit', type=int, default=54000)
  parser.add_argument('--num_examples', type=int, default=512)
  args = parser.parse_args()
  print(f'{machine.describe()}; commit {machine.git_commit()}')
  run = run_lib.load_run(args.workdir, 'latest')
  model = run.model
  key = rng.stream(run.base_key, rng.Stream.EXPERIMENT_LINEAR_DENOISER)
  k_fit, k_held, k_train, k_eval = jax.random.split(key, 4)
  train_images, _ = input_pipeline.load_split(run.config.data, 'train')
  validation, _ = input_pipeline.load_split(run.config.data, 'validation')
  to_latent = jax.jit(lambda x, k: model.latent_and_logdet(run.ema_params, x, k)[0])

  def latents(images, k):
    return np.concatenate([np.asarray(to_latent(jnp.asarray(images[i:i + 256]),
                                                jax.random.fold_in(k, i)))
                           for i in range(0, len(images), 256)])

  fit = latents(train_images[:args.num_fit], k_fit)
  held = latents(validation[:args.num_examples], k_held)
  to_bits = bpd.LOG2 * bpd.real_pixel_count(run.config.data)

  def reading(gains_nats: np.ndarray) -> Dict:
    mean, stderr = stats.mean_and_stderr(gains_nats / to_bits)
    return {'gain': mean, 'stderr': stderr}

  flat_fit, flat_held = fit.reshape(len(fit), -1), held.reshape(len(held), -1)
  closed = {'diagonal': reading(-latent_gaussian.diagonal_gaussian_gain(flat_fit, flat_held)),
            'full_covariance': reading(-latent_gaussian.full_gaussian_gain(flat_fit, flat_held))}
  for name, r in closed.items():
    print(f"closed-form {name} Gaussian: {r['gain']:+.4f} +- {r['stderr']:.4f}", flush=True)
  eval_at = tuple(int(s) for s in args.eval_at.split(','))
  readings = train(model.diffusion, fit, k_train, args.steps, args.lr, eval_at,
                   lambda p: reading(full_bound_gain(model.diffusion, p, held, k_eval)),
                   args.objective)
  print('| linear denoiser, steps | validation bound minus N(0, I), per real pixel |')
  print('|---:|---|')
  for s, r in readings.items():
    print(f"| {s} | {r['gain']:+.4f} +- {r['stderr']:.4f} |")
  common.write_json(args.out, {
      'workdir': args.workdir, 'num_fit': args.num_fit, 'num_examples': args.num_examples,
      'lr': args.lr, 'batch': BATCH, 'steps': args.steps, 'objective': args.objective,
      'closed_form': closed,
      'linear_denoiser': {str(s): r for s, r in readings.items()},
      'unit': 'bits per real pixel, minus the exact NLL under N(0, I), paired',
      'machine': machine.describe(), 'commit': machine.git_commit()})


if __name__ == '__main__':
  main()
