"""Spread of the bound's one-sample estimate on a trained DiffFlow or pixel DDPM: which t.

  python -m experiments.estimator_spread --workdir runs/default
      [--draws 400] [--name estimator_spread]

On the run's EMA params, the full bound's per-timestep terms L_t (one x_t per t and
example, as `dfflows.evaluate` computes them) are used to draw estimates of the mean
bound over batches of 32 test images under these estimators:
- 'T L_t': prior + T L_t, t ~ U{0..T-1} independently: the pixel DDPM's training metric
  (its hybrid loss's draw);
- 'uniform, all t': prior + L_0 + (T-1) L_t, t ~ U{1..T-1} independently (L_{T-1}
  drawn like the other terms);
- 'uniform' (`model.t_sampling='uniform'`): prior + L_0 + L_{T-1} + (T-2) L_t,
  t ~ U{1..T-2}, stratified;
- 'importance' (`model.t_sampling='importance'`, the default): prior + L_0 + L_{T-1} +
  L_t / p_t, p_t ~
  log(1 - abar_t) - log(1 - abar_{t-1}), stratified;
- 'loss-aware': the same with p_t proportional to the root mean square of L_t over these
  images (mixed with 0.1% uniform): what improved-diffusion's LossSecondMomentResampler
  converges to, fitted to the very terms it is scored on, so an upper bound on its gain.
With the L_t fixed, the draws isolate the spread that the choice of t causes; all
have the full bound as their mean. It also draws the model's own estimate
(`eval_bpd`, fresh noise too) as a check. Writes experiments/results/<name>.{md,json}.
"""
import argparse
import datetime
import math

import jax
import jax.numpy as jnp
import numpy as np

from dfflows import machine, rng
from dfflows.data import input_pipeline
from dfflows.diffusion import timesteps
from dfflows.metrics import bpd as bpd_lib
from dfflows.training import run as run_lib
from experiments import common

BATCH = 32


def draw_estimates(vlb: np.ndarray, prior: np.ndarray, probs: np.ndarray, always: tuple,
                   stratified: bool, t_rng: np.random.Generator, draws: int) -> np.ndarray:
  """Batch-mean estimates (nats) from per-example terms vlb [B, T]: the terms at `always`
  plus L_t / p_t with t ~ probs (stratified over the batch or independent)."""
  b, t_max = vlb.shape
  cdf = np.cumsum(probs)
  out = []
  for _ in range(draws):
    u = (t_rng.uniform() + np.arange(b) / b) % 1.0 if stratified else t_rng.uniform(size=b)
    t = np.minimum(np.searchsorted(cdf, u, side='right'), t_max - 1)
    est = prior + vlb[:, list(always)].sum(1) + vlb[np.arange(b), t] / probs[t]
    out.append(est.mean())
  return np.asarray(out)


def loss_aware_probs(vlb: np.ndarray, uniform_mix: float = 0.001) -> np.ndarray:
  """p_t on 1..T-2 proportional to sqrt(mean over examples of L_t^2), mixed with uniform."""
  p = np.sqrt(np.mean(vlb**2, axis=0))
  p[0] = p[-1] = 0.0
  p = (1 - uniform_mix) * p / p.sum()
  p[1:-1] += uniform_mix / (len(p) - 2)
  return p


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--workdir', default='runs/default')
  parser.add_argument('--draws', type=int, default=400)
  parser.add_argument('--name', default='estimator_spread')
  args = parser.parse_args()
  run = run_lib.load_run(args.workdir, 'latest')
  model, step = run.model, run.step
  test_images, _ = input_pipeline.load_split(run.config.data, 'test')
  x = jnp.asarray(test_images[:BATCH])
  key = jax.random.fold_in(rng.stream(run.base_key, rng.Stream.EXPERIMENT_BOUND), 0)
  full = jax.device_get(jax.jit(model.full_bound_terms)(run.ema_params, x, key))
  vlb, prior = np.asarray(full['vlb_nats'], np.float64), np.asarray(full['prior_nats'], np.float64)
  d = int(np.prod(model.image_shape))
  if 'neg_logdet' in full:  # A DiffFlow: a density of the dequantised image.
    neg_logdet = float(np.mean(full['neg_logdet']))
    to_bpd = lambda nats: bpd_lib.continuous_nats_to_bpd(nats + neg_logdet, d)
  else:  # The pixel DDPM: a probability of the 8-bit image.
    to_bpd = lambda nats: bpd_lib.discrete_nats_to_bpd(nats, d)
  t_count = vlb.shape[1]
  ends = (0, t_count - 1)
  probs = lambda kind: timesteps.timestep_probs(model.diffusion.alphas_cumprod, kind)
  estimators = {
      "T L_t, t ~ U{0..T-1} (the pixel DDPM's train/bpd)": (
          np.full(t_count, 1.0 / t_count), (), False),
      'uniform, all t (L_{T-1} drawn)': (
          np.r_[0.0, np.full(t_count - 1, 1.0 / (t_count - 1))], (0,), False),
      'uniform (t_sampling=uniform)': (probs('uniform'), ends, True),
      'importance (t_sampling=importance, default)': (probs('importance'), ends, True),
      'loss-aware (p_t ~ RMS of L_t over these images)': (loss_aware_probs(vlb), ends, True),
  }
  t_rng = np.random.default_rng(0)  # Which t each simulated draw takes (numpy, fixed seed).
  full_bpd = float(to_bpd(vlb.sum(1).mean() + prior.mean()))
  rows = {}
  for name, (p, always, stratified) in estimators.items():
    est = np.asarray(to_bpd(draw_estimates(vlb, prior, p, always, stratified, t_rng, args.draws)))
    rows[name] = common.spread(est)
  rows['model.eval_bpd (fresh noise and t)'] = common.spread(
      common.estimator_draws(run, x, min(args.draws, 100)))
  ratio = rows['uniform, all t (L_{T-1} drawn)']['std'] / rows[
      'importance (t_sampling=importance, default)']['std']
  factor = common.real_pixel_factor(args.workdir)  # Bits per model dim -> per real pixel.
  lines = [f'# Spread of the one-sample bound estimate ({args.workdir}, step {step})', '',
           f'Date {datetime.date.today()}, {machine.describe()}, commit {machine.git_commit()}.',
           f'Command: `python -m experiments.estimator_spread --workdir {args.workdir} '
           f'--draws {args.draws} --name {args.name}`. EMA params; the mean over {BATCH} test '
           f'images, bits/dim; the per-t terms of one full-bound pass are fixed, so the rows '
           f'differ only in how t is drawn (see the script\'s docstring).', '',
           f'Full bound of these {BATCH} images: **{full_bpd:.3f}** bits/dim '
           f'({full_bpd * factor:.3f} bits per real pixel: x {factor:.4f}, the same total bits '
           'over the unpadded pixels; every column below converts by the same factor).', '',
           '| estimator | mean | mean per real pixel | std | median | 10% | 90% | max |',
           '|---|---|---|---|---|---|---|---|']
  for name, r in rows.items():
    lines.append(f'| {name} | {r["mean"]:.3f} | {r["mean"] * factor:.3f} | {r["std"]:.3f} | '
                 f'{r["median"]:.3f} | '
                 f'{r["p10"]:.3f} | {r["p90"]:.3f} | {r["max"]:.2f} |')
  lines += ['', f'Std of uniform, all t / std with importance sampling: **{ratio:.1f}x**.', '']
  common.write_results(args.name, '\n'.join(lines),
                       {'step': step, 'full_bound_bpd': full_bpd,
                        'full_bound_bits_per_real_pixel': full_bpd * factor,
                        'bits_per_real_pixel_factor': factor, 'estimators': rows,
                        'std_ratio_uniform_all_t_over_importance': ratio})
  print('\n'.join(lines), flush=True)


if __name__ == '__main__':
  main()
