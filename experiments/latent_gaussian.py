"""The reach of the simplest priors: Gaussians fitted to a flow's latents.

For each flow-only run or DiffFlow (EMA params, latest checkpoint), maps the first
`--num_fit` train images and the first `--num_examples` validation images through its flow,
fits two Gaussians to the train latents, and reports, paired over the validation images, how
many bits each takes off that flow's exact NLL under N(0, I):
- a diagonal Gaussian (each dimension's mean and variance);
- a full-covariance Gaussian (the mean and the sample covariance of all dimensions).
The flow and its log-det are shared, so each difference is the two priors' log-densities
alone. A diffusion prior on that flow that gains no more over N(0, I) than the diagonal one
has learned no more than each dimension's location and scale; the full-covariance gain is the
part of the latent's structure that a linear denoiser (the exact eps-predictor of Gaussian
data) can reach. Its estimate is low by the covariance's estimation error, about
D (D + 1) / (4 num_fit) nats per image for D dimensions, so fit on many images:

  python -m experiments.latent_gaussian --out latent_gaussian \
      --run s0_4000=runs/w28b/nsf4000_s0 --run s1_4000=runs/w28b/nsf4000_s1
"""
from typing import Callable, Dict

import jax
import jax.numpy as jnp
import numpy as np
from scipy import linalg

from dfflows import machine, rng
from dfflows.data import input_pipeline
from dfflows.flows import uniform_dequantize
from dfflows.metrics import bpd, stats
from dfflows.training import run as run_lib
from experiments import common

BATCH = 256


def flow_latents(forward: Callable, images: np.ndarray, key: jax.Array) -> np.ndarray:
  """The outputs z = forward(u) of dequantised `images`, flattened, float64 [N, D]."""
  out = []
  for i in range(0, len(images), BATCH):
    u = uniform_dequantize(jax.random.fold_in(key, i), jnp.asarray(images[i:i + BATCH]))
    out.append(np.asarray(forward(u), np.float64).reshape(len(u), -1))
  return np.concatenate(out)


def diagonal_gaussian_gain(fit: np.ndarray, held_out: np.ndarray) -> np.ndarray:
  """log N(z; mean, diag var) - log N(z; 0, I) per held-out row, nats; mean, var from `fit`."""
  mean, var = fit.mean(0), fit.var(0)
  fitted = -0.5 * ((held_out - mean)**2 / var + np.log(var)).sum(1)
  standard = -0.5 * (held_out**2).sum(1)
  return fitted - standard


def full_gaussian_gain(fit: np.ndarray, held_out: np.ndarray) -> np.ndarray:
  """log N(z; mean, cov) - log N(z; 0, I) per held-out row, nats; mean, cov from `fit`."""
  mean = fit.mean(0)
  cov = np.cov(fit, rowvar=False)
  chol = np.linalg.cholesky(cov)
  white = linalg.solve_triangular(chol, (held_out - mean).T, lower=True)
  fitted = -0.5 * (white**2).sum(0) - np.log(np.diag(chol)).sum()
  standard = -0.5 * (held_out**2).sum(1)
  return fitted - standard


def gain(workdir: str, num_fit: int, num_examples: int) -> Dict:
  """One run's gains from the fitted Gaussians, bits per real pixel, paired."""
  run = run_lib.load_run(workdir, 'latest')
  if run.config.model.kind not in ('flow', 'diffflow'):
    raise ValueError(f'{workdir}: a flow-only run or a DiffFlow is needed, got model.kind '
                     f'{run.config.model.kind!r}.')
  key = rng.stream(run.base_key, rng.Stream.EXPERIMENT_LATENTS)
  k_fit, k_held = jax.random.split(key)
  train, _ = input_pipeline.load_split(run.config.data, 'train')
  validation, _ = input_pipeline.load_split(run.config.data, 'validation')
  forward = jax.jit(lambda u: run.model.flow.apply(run.ema_params['flow'], u, method='forward')[0])
  fit = flow_latents(forward, train[:num_fit], k_fit)
  held = flow_latents(forward, validation[:num_examples], k_held)
  to_bits = bpd.LOG2 * bpd.real_pixel_count(run.config.data)
  mean, stderr = stats.mean_and_stderr(diagonal_gaussian_gain(fit, held) / to_bits)
  full_mean, full_stderr = stats.mean_and_stderr(full_gaussian_gain(fit, held) / to_bits)
  var = fit.var(0)
  return {'workdir': workdir, 'step': run.step, 'dims': int(fit.shape[1]),
          'gain_bits_per_real_pixel': mean, 'stderr': stderr,
          'full_gain_bits_per_real_pixel': full_mean, 'full_stderr': full_stderr,
          'latent_var_min': float(var.min()), 'latent_var_max': float(var.max()),
          'latent_mean_abs': float(np.abs(fit.mean(0)).mean())}


def main():
  parser = common.runs_parser()
  parser.add_argument('--num_fit', type=int, default=12000)
  parser.add_argument('--num_examples', type=int, default=3000)
  args = parser.parse_args()
  print(f'{machine.describe()}; commit {machine.git_commit()}')
  rows = {}
  print('| run | step | latent variance, min / max | diagonal Gaussian minus N(0, I) | '
        'full-covariance Gaussian minus N(0, I) |')
  print('|---|---:|---|---|---|')
  for spec in args.run:
    name, workdir = spec.split('=', 1)
    r = rows[name] = gain(workdir, args.num_fit, args.num_examples)
    print(f"| {name} | {r['step']} | {r['latent_var_min']:.3f} / {r['latent_var_max']:.3f} | "
          f"{-r['gain_bits_per_real_pixel']:+.4f} +- {r['stderr']:.4f} | "
          f"{-r['full_gain_bits_per_real_pixel']:+.4f} +- {r['full_stderr']:.4f} |")
  result = {'split': 'validation', 'num_fit': args.num_fit, 'num_examples': args.num_examples,
            'rows': rows, 'machine': machine.describe(), 'commit': machine.git_commit()}
  common.write_json(args.out, result)


if __name__ == '__main__':
  main()
