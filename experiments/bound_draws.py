"""The full bound's Monte Carlo draw: DiffFlows' test full bound minus their NSF's exact NLL,
paired per image, over several eval keys (draw 0 is `dfflows.evaluate`'s), bits per real pixel.

The full bound sums every t, but each t's term takes one draw of x_t and each image one
draw of the dequantization noise, from a key that depends only on the run's seed, so every
run of one seed shares the draw. This shows how far one comparison moves with the draw, and
pools the draws per image (their mean over draws is the same unbiased estimate, less noisy).

  python -m experiments.bound_draws --out NAME --nsf WORKDIR --run NAME=WORKDIR [--draws 4]
"""
from typing import Dict

import jax
import numpy as np

from dfflows import machine
from dfflows.data import input_pipeline
from dfflows.metrics import stats
from dfflows.run_metrics import likelihood, report
from dfflows.training import run as run_lib
from experiments import common


def bound_draws(run: run_lib.Run, images: np.ndarray, num_examples: int, batch_size: int,
                draws: int) -> np.ndarray:
  """[draws, num_examples] full-bound bits/dim per image (EMA params), one row per draw of
  `dfflows.evaluate`'s key (row 0 is its draw)."""
  key = report.full_bound_key(run.base_key)
  return np.stack([np.asarray(likelihood.full_bpd_summary(
      run.model, run.ema_params, images, num_examples, batch_size,
      likelihood.draw_key(key, d))['bpd_per_example']) for d in range(draws)])


def paired(diff: np.ndarray) -> Dict:
  """Mean and stderr over images of [draws, images] paired differences: per draw, and of
  each image's mean over the draws."""
  rows = [stats.mean_and_stderr(d) for d in diff]
  mean, stderr = stats.mean_and_stderr(diff.mean(axis=0))
  return {'per_draw': [{'mean': m, 'stderr': s} for m, s in rows],
          'pooled': {'mean': mean, 'stderr': stderr}}


def main():
  parser = common.runs_parser()
  parser.add_argument('--nsf', required=True, metavar='WORKDIR')
  parser.add_argument('--draws', type=int, default=4)
  parser.add_argument('--num_examples', type=int, default=256)
  parser.add_argument('--batch_size', type=int, default=64)
  args = parser.parse_args()
  print(f'{machine.describe()}; commit {machine.git_commit()}')
  nsf = run_lib.load_run(args.nsf, 'best')
  images, _ = input_pipeline.load_split(nsf.config.data, 'test')
  factor = common.real_pixel_factor(args.nsf)
  base = bound_draws(nsf, images, args.num_examples, args.batch_size, args.draws)
  print('| run | draw | full bound minus the NSF, paired (per real pixel) |')
  print('|---|---|---|')
  rows = {}
  for spec in args.run:
    name, workdir = spec.split('=', 1)
    run = run_lib.load_run(workdir, 'best')
    diff = factor * (bound_draws(run, images, args.num_examples, args.batch_size, args.draws)
                     - base)
    r = rows[name] = {'workdir': workdir, 'step': run.step, **paired(diff)}
    for d, row in enumerate(r['per_draw']):
      print(f"| {name} | {d} | {row['mean']:+.4f} +- {row['stderr']:.4f} |")
    print(f"| {name} | mean of {args.draws} | {r['pooled']['mean']:+.4f} +- "
          f"{r['pooled']['stderr']:.4f} |", flush=True)
  common.write_json(args.out, {
      'nsf': args.nsf, 'nsf_step': nsf.step, 'draws': args.draws,
      'num_examples': args.num_examples, 'rows': rows, 'machine': machine.describe(),
      'commit': machine.git_commit()})


if __name__ == '__main__':
  main()
