"""The full bound's Monte Carlo draw: DiffFlows' test full bound minus their NSF's exact NLL,
paired per image, over several eval keys (draw 0 is `dfflows.evaluate`'s), bits per real pixel.

The full bound sums every t, but each t's term takes one draw of x_t and each image one
draw of the dequantization noise, from a key that depends only on the run's seed, so every
run of one seed shares the draw. This shows how far one comparison moves with the draw, and
pools the draws per image (their mean over draws is the same unbiased estimate, less noisy).

It also splits each DiffFlow's pooled difference into the flow's part (its flow under the
NSF's N(0, I) prior, an exact NLL, minus the NSF) and the diffusion prior's part (the full
bound minus that flow alone), with the same draws' keys:

  python -m experiments.bound_draws --out NAME --nsf WORKDIR --run NAME=WORKDIR [--draws 4] \
      [--control_variate]

`--control_variate` reads each DiffFlow's full bound with the bound's Gaussian control variate
(`eval.bound_control_variate`): the same expectation, and its prior's part without the noise
of the draws of x_t while the prior is near N(0, I).
"""
from typing import Any, Dict

import jax
import numpy as np

from dfflows import machine
from dfflows.data import input_pipeline
from dfflows.metrics import stats
from dfflows.models.diffflow import DiffFlow
from dfflows.models.interface import Model
from dfflows.run_metrics import likelihood, report
from dfflows.training import run as run_lib
from experiments import common


def bound_draws(model: Model, params: Any, base_key: jax.Array, images: np.ndarray,
                num_examples: int, batch_size: int, draws: int) -> np.ndarray:
  """[draws, num_examples] full-bound bits/dim per image, one row per draw of
  `dfflows.evaluate`'s key for `base_key` (row 0 is its draw)."""
  return likelihood.full_bpd_draws(model, params, images, num_examples, batch_size,
                                  report.full_bound_key(base_key), draws)


def run_draws(run: run_lib.Run, images: np.ndarray, num_examples: int, batch_size: int,
              draws: int) -> np.ndarray:
  """`bound_draws` of a run's EMA params."""
  return bound_draws(run.model, run.ema_params, run.base_key, images, num_examples, batch_size,
                     draws)


def flow_alone_draws(run: run_lib.Run, images: np.ndarray, num_examples: int, batch_size: int,
                     draws: int) -> np.ndarray:
  """`bound_draws` of a DiffFlow's flow (EMA params) under N(0, I): an exact NLL per draw."""
  flow_only, flow_params = run.model.flow_under_gaussian(run.ema_params)
  return bound_draws(flow_only, flow_params, run.base_key, images, num_examples, batch_size,
                     draws)


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
  parser.add_argument('--control_variate', action='store_true')
  args = parser.parse_args()
  print(f'{machine.describe()}; commit {machine.git_commit()}')
  nsf = run_lib.load_run(args.nsf, 'best')
  images, _ = input_pipeline.load_split(nsf.config.data, 'test')
  factor = common.real_pixel_factor(args.nsf)
  base = run_draws(nsf, images, args.num_examples, args.batch_size, args.draws)
  print('| run | draw | full bound minus the NSF, paired (per real pixel) |')
  print('|---|---|---|')
  rows = {}
  for spec in args.run:
    name, workdir = spec.split('=', 1)
    run = common.load_run(workdir, 'best', bound_control_variate=args.control_variate)
    bound = run_draws(run, images, args.num_examples, args.batch_size, args.draws)
    r = rows[name] = {'workdir': workdir, 'step': run.step, **paired(factor * (bound - base))}
    for d, row in enumerate(r['per_draw']):
      print(f"| {name} | {d} | {row['mean']:+.4f} +- {row['stderr']:.4f} |")
    print(f"| {name} | mean of {args.draws} | {r['pooled']['mean']:+.4f} +- "
          f"{r['pooled']['stderr']:.4f} |", flush=True)
    if isinstance(run.model, DiffFlow):
      alone = flow_alone_draws(run, images, args.num_examples, args.batch_size, args.draws)
      r['flow_part'] = paired(factor * (alone - base))['pooled']
      r['prior_part'] = paired(factor * (bound - alone))['pooled']
      print(f"| {name} | of which the flow (its flow under N(0, I) minus the NSF) | "
            f"{r['flow_part']['mean']:+.4f} +- {r['flow_part']['stderr']:.4f} |")
      print(f"| {name} | and the prior (the bound minus its flow under N(0, I)) | "
            f"{r['prior_part']['mean']:+.4f} +- {r['prior_part']['stderr']:.4f} |", flush=True)
  common.write_json(args.out, {
      'nsf': args.nsf, 'nsf_step': nsf.step, 'draws': args.draws,
      'bound_control_variate': args.control_variate,
      'num_examples': args.num_examples, 'rows': rows, 'machine': machine.describe(),
      'commit': machine.git_commit()})


if __name__ == '__main__':
  main()
