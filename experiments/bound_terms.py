"""Where the bits go: the full bound of the mnist_table runs split by term and by timestep.

  python -m experiments.bound_terms [--workdir runs/mnist_table] [--num_examples 64]

For the DiffFlow: -log|det df/du|, the prior KL at T, the decoder term at t=0 and the
KL terms summed over t in 1, 2-9, 10-99, 100..T-1, each in bits/dim, plus the +8
bits/dim of the dequantisation (dfflows/metrics/bpd.py). For the pixel DDPM the same
timestep buckets (its t=0 term is the discretised decoder). The terms sum to the
bits/dim that dfflows.evaluate reports. For each DiffFlow it also gives the exact NLL of
its flow with a N(0, I) prior in place of the diffusion (what the diffusion prior adds).
It draws the one-sample estimate that training and the periodic eval log
(`model.eval_bpd`: prior + L_0 + L_{T-1} + L_t / p_t at one sampled t) --estimator_draws
times on 32 test images and compares its mean, median and tail with the full bound.
Writes experiments/results/bound_terms.{md,json}.
"""
import argparse
import datetime
import math
import os

import jax
import numpy as np

from dfflows import machine, rng
from dfflows.data import input_pipeline
from dfflows.run_metrics import likelihood
from dfflows.models import common as model_common
from dfflows.models.diffflow import DiffFlow
from dfflows.training import run as run_lib
from experiments import common, mnist_table

ROWS = tuple(r for r in mnist_table.ROWS if mnist_table.KIND[r] != 'flow')  # Diffusion rows.
BUCKETS = (('t=0 (decoder)', 0, 1), ('t=1', 1, 2), ('t=2..9', 2, 10), ('t=10..99', 10, 100),
           ('t=100..T-1', 100, None))


def breakdown(workdir: str, num_examples: int, estimator_draws: int = 200) -> dict:
  """Mean bits/dim of each term over `num_examples` test images."""
  run = run_lib.load_run(workdir, 'latest')
  model, params = run.model, run.ema_params
  test_images, _ = input_pipeline.load_split(run.config.data, 'test')
  terms = jax.jit(model.full_bound_terms)
  d = model_common.num_dims(model.image_shape)
  to_bits = lambda nats: float(np.mean(nats)) / (d * math.log(2))
  # The DiffFlow's flow with a standard normal prior instead of the diffusion (exact NLL).
  gaussian = (jax.jit(model.flow_under_gaussian(params)[0].eval_bpd)
              if isinstance(model, DiffFlow) else None)

  def per_batch(batch: np.ndarray, key: jax.Array) -> dict:
    """The bound's terms (and the flow's Gaussian NLL) per example of one batch."""
    out = terms(params, batch, key)
    if gaussian is not None:
      out['flow_gaussian_bpd'] = gaussian(model.flow_under_gaussian(params)[1], batch, key)
    return out

  bound_key = rng.stream(run.base_key, rng.Stream.EXPERIMENT_BOUND)
  cat = likelihood.per_example(per_batch, test_images, num_examples, 32, bound_key)
  rows = {}
  if 'neg_logdet' in cat:
    rows['-log|det df/du|'] = to_bits(cat['neg_logdet'])
    rows['dequantisation (+8)'] = 8.0
  rows['prior KL at T'] = to_bits(cat['prior_nats'])
  for name, lo, hi in BUCKETS:
    rows[name] = to_bits(cat['vlb_nats'][:, lo:hi].sum(axis=1))
  rows['total'] = sum(rows.values())
  x = test_images[:32]
  full = float(np.mean(jax.jit(model.full_bpd)(params, x, jax.random.fold_in(bound_key, 0))))
  draws = common.estimator_draws(run, x, estimator_draws)
  estimator = {'full_bound_32': full, 'draws': estimator_draws, **common.spread(draws)}
  result = {'step': run.step, 'num_examples': int(len(cat['prior_nats'])), 'bits_per_dim': rows,
            'one_sample_estimator': estimator}
  if 'flow_gaussian_bpd' in cat:
    result['flow_with_gaussian_prior_bpd'] = float(np.mean(cat['flow_gaussian_bpd']))
  return result


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--workdir', default='runs/mnist_table')
  parser.add_argument('--num_examples', type=int, default=64)
  parser.add_argument('--estimator_draws', type=int, default=200)
  args = parser.parse_args()
  results = {row: breakdown(os.path.join(args.workdir, row), args.num_examples,
                            args.estimator_draws) for row in ROWS}
  for row, r in results.items():  # The same total bits over MNIST's 784 real (unpadded) pixels.
    factor = common.real_pixel_factor(os.path.join(args.workdir, row))
    r['bits_per_real_pixel'] = {
        'total': r['bits_per_dim']['total'] * factor,
        'full_bound_32': r['one_sample_estimator']['full_bound_32'] * factor,
        **({'flow_with_gaussian_prior': r['flow_with_gaussian_prior_bpd'] * factor}
           if 'flow_with_gaussian_prior_bpd' in r else {})}
  names = list(results['diffflow']['bits_per_dim'])
  lines = ['# Bound terms of the mnist_table runs (bits/dim)', '',
           f'Date {datetime.date.today()}, {machine.describe()}, commit {machine.git_commit()}.',
           f'Command: `python -m experiments.bound_terms --workdir {args.workdir} --num_examples '
           f'{args.num_examples} --estimator_draws {args.estimator_draws}`; EMA params of the runs in results/mnist_table.md, the same '
           'test images; one x_t per t and example.', '',
           '| term | ' + ' | '.join(mnist_table.NAMES[k] for k in results) + ' |',
           '|---|' + '---|' * len(results)]
  for name in names:
    vals = [results[k]['bits_per_dim'].get(name) for k in results]
    lines.append(f'| {name} | ' + ' | '.join('-' if v is None else f'{v:.3f}' for v in vals) + ' |')
  lines.append('| total, bits per real pixel (784 of 1,024 dims) | ' + ' | '.join(
      f'{r["bits_per_real_pixel"]["total"]:.3f}' for r in results.values()) + ' |')
  for row, r in results.items():
    if 'flow_with_gaussian_prior_bpd' in r:
      gauss = r['flow_with_gaussian_prior_bpd']
      lines += ['', f'{mnist_table.NAMES[row]}: its flow with a N(0, I) prior in place of the '
                f'diffusion gives **{gauss:.3f}** bits/dim '
                f'({r["bits_per_real_pixel"]["flow_with_gaussian_prior"]:.3f} per real pixel; '
                'exact NLL, same images): the diffusion '
                f'prior takes {gauss - r["bits_per_dim"]["total"]:.3f} bits/dim off it.']
  lines += ['', 'The one-sample estimate that training and the periodic eval log, '
            f'{args.estimator_draws} draws of its mean over 32 test images (bits/dim):', '',
            '| model | full bound | full bound per real pixel | estimate: mean | median | 10% '
            '| 90% | max |',
            '|---|---|---|---|---|---|---|---|']
  for k, r in results.items():
    e = r['one_sample_estimator']
    lines.append(f'| {mnist_table.NAMES[k]} | {e["full_bound_32"]:.3f} | '
                 f'{r["bits_per_real_pixel"]["full_bound_32"]:.3f} | {e["mean"]:.3f} | '
                 f'{e["median"]:.3f} | {e["p10"]:.3f} | {e["p90"]:.3f} | {e["max"]:.1f} |')
  lines.append('')
  common.write_results('bound_terms', '\n'.join(lines), results)
  print('\n'.join(lines), flush=True)


if __name__ == '__main__':
  main()
