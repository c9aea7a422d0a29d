"""Stage 2 of the two-stage DiffFlow: choose its recipe on the validation split, then report.

`validate` compares runs on the validation split (the last `data.validation_percent` % of
train), never the test split: each run's full bound (the exact NLL for a flow-only run),
EMA params at the latest checkpoint, on the same validation images, with each run's
difference to the first run paired over those images:

  python -m experiments.stage2 validate --out stage2_sweep \
      --run nsf=runs/w28/nsf_s0 --run ch16=runs/w28/sweep_ch16 [--num_examples 512] \
      [--run ch16_1000=runs/w28/sweep_ch16@1000] [--control_variate]

`WORKDIR@STEP` reads that saved checkpoint instead of the latest. `--control_variate` reads
each DiffFlow's full bound with the bound's Gaussian control variate
(`eval.bound_control_variate`: unbiased, far less noisy while its prior is near N(0, I)).

`report` reads the `dfflows.evaluate` outputs (eval.json, test split) of NSFs and of the
DiffFlows warm-started from them, one group per training seed, and writes the table of
NLLs in both units with each DiffFlow's difference to its own NSF paired over the same test
images:

  python -m experiments.stage2 report --out stage2 \
      --seed 0:nsf=runs/w28/nsf_s0,frozen80=runs/w28/frozen80_s0 \
      --seed 1:nsf=runs/w28/nsf_s1,frozen80=runs/w28/frozen80_s1

`budget` plots one arm's gap to its NSF (ODE NLL and full bound, per real pixel, +- 2 paired
standard errors, one line per seed) against the training budget, from `report` outputs:

  python -m experiments.stage2 budget --out stage2_budget --arm joint80 \
      --report 49=stage2_test --report 60=stage2_60min_test
"""
import argparse
import json
import os
from typing import Dict, List, Optional, Tuple

import matplotlib
matplotlib.use('Agg')
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
import numpy as np

from dfflows import machine, rng
from dfflows.data import input_pipeline
from dfflows.metrics import stats
from dfflows.run_metrics import likelihood
from dfflows.training import checkpoints
from experiments import common


def _named(specs: List[str]) -> List[Tuple[str, str]]:
  """'name=workdir' pairs."""
  return [tuple(s.split('=', 1)) for s in specs]


def paired(values: np.ndarray, reference: np.ndarray, factor: float) -> Dict[str, float]:
  """Mean and paired standard error of (values - reference), per model dim and per real pixel."""
  mean, stderr = stats.mean_and_stderr(np.asarray(values) - np.asarray(reference))
  return {'mean_diff': mean, 'paired_stderr': stderr, 'mean_diff_real': mean * factor,
          'paired_stderr_real': stderr * factor, 'num_images': int(len(values))}


def workdir_and_step(spec: str) -> Tuple[str, Optional[int]]:
  """'WORKDIR' -> (WORKDIR, None); 'WORKDIR@STEP' -> (WORKDIR, STEP)."""
  workdir, at, step = spec.rpartition('@')
  if not at:
    return spec, None
  if not step.isdigit():
    raise ValueError(f'{spec!r}: the checkpoint step after "@" must be a number.')
  return workdir, int(step)


def validation_bpd(spec: str, num_examples: int, control_variate: bool = False) -> Dict:
  """A run's full bound (EMA params; the latest checkpoint or WORKDIR@STEP's) on its first
  validation images, with the bound's Gaussian control variate if `control_variate`."""
  workdir, step = workdir_and_step(spec)
  run = common.load_run(workdir, 'latest', step, control_variate)
  images, _ = input_pipeline.load_split(run.config.data, 'validation')
  key = rng.stream(run.base_key, rng.Stream.EXPERIMENT_BOUND)
  out = likelihood.full_bpd_summary(run.model, run.ema_params, images, num_examples,
                                    run.config.eval.batch_size, key)
  return {'step': run.step, 'bpd_estimator': run.model.bpd_labels.full, **out}


def validate(args) -> Dict:
  """The `validate` table: full bounds on validation images and paired differences."""
  runs = _named(args.run)
  for name, spec in runs:  # Every spec checked before any run is evaluated.
    workdir, step = workdir_and_step(spec)
    if step is None:
      continue
    saved = checkpoints.saved_steps(workdir)
    if step not in saved:
      raise ValueError(f'--run {name}={spec}: no checkpoint of step {step} in {workdir}; saved '
                       f'steps: {saved}.')
  factor = common.real_pixel_factor(workdir_and_step(runs[0][1])[0])
  results = {name: validation_bpd(spec, args.num_examples, args.control_variate)
             for name, spec in runs}
  first = results[runs[0][0]]['bpd_per_example']
  rows = []
  for name, workdir in runs:
    r = results[name]
    rows.append({'name': name, 'workdir': workdir, 'step': r['step'], 'bpd': r['bpd'],
                 'bpd_estimator': r['bpd_estimator'],
                 'bpd_stderr': r['bpd_stderr'], 'bpd_real': r['bpd'] * factor,
                 'vs_first': paired(r['bpd_per_example'], first, factor),
                 'bpd_per_example': [float(v) for v in r['bpd_per_example']]})
  print(f"| run | step | validation bound, bits/model dim | per real pixel | minus {runs[0][0]}, "
        'paired (per real pixel) |')
  print('|---|---:|---|---|---|')
  for r in rows:
    d = r['vs_first']
    print(f"| {r['name']} | {r['step']} | {r['bpd']:.4f} +- {r['bpd_stderr']:.4f} | "
          f"{r['bpd_real']:.4f} | {d['mean_diff_real']:+.4f} +- {d['paired_stderr_real']:.4f} |")
  return {'split': 'validation', 'num_examples': args.num_examples,
          'bound_control_variate': args.control_variate, 'rows': rows}


def _eval(workdir: str) -> Dict:
  """A run's eval.json."""
  with open(os.path.join(workdir, 'eval.json')) as f:
    return json.load(f)


def report(args) -> Dict:
  """The `report` table: test NLLs of each seed's runs, paired against that seed's NSF."""
  seeds = {}
  for spec in args.seed:
    seed, _, runs = spec.partition(':')
    runs = _named(runs.split(','))
    factor = common.real_pixel_factor(runs[0][1])
    nsf = _eval(runs[0][1])
    rows = []
    for name, workdir in runs:
      ev = _eval(workdir)
      row = {'name': name, 'workdir': workdir, 'step': ev['step'], 'bpd': ev['bpd'],
             'bpd_stderr': ev['bpd_stderr'], 'bpd_real': ev['bpd'] * factor,
             'bpd_estimator': ev['bpd_estimator']}
      n = len(ev['bpd_per_example'])
      row['bound_vs_nsf'] = paired(ev['bpd_per_example'], nsf['bpd_per_example'][:n], factor)
      if 'ode_bpd_per_example' in ev:
        n = len(ev['ode_bpd_per_example'])
        row.update(ode_bpd=ev['ode_bpd'], ode_bpd_stderr=ev['ode_bpd_stderr'],
                   ode_bpd_real=ev['ode_bpd'] * factor,
                   ode_vs_nsf=paired(ev['ode_bpd_per_example'], nsf['bpd_per_example'][:n],
                                     factor))
      rows.append(row)
    seeds[seed] = rows
  print('| seed | run | step | test NLL per real pixel | estimator | minus NSF, paired |')
  print('|---|---|---:|---|---|---|')
  for seed, rows in seeds.items():
    for r in rows:
      d = r['bound_vs_nsf']
      print(f"| {seed} | {r['name']} | {r['step']} | {r['bpd_real']:.4f} | {r['bpd_estimator']} "
            f"| {d['mean_diff_real']:+.4f} +- {d['paired_stderr_real']:.4f} |")
      if 'ode_bpd' in r:
        d = r['ode_vs_nsf']
        print(f"| {seed} | {r['name']} | {r['step']} | {r['ode_bpd_real']:.4f} | ODE NLL "
              f"| {d['mean_diff_real']:+.4f} +- {d['paired_stderr_real']:.4f} |")
  return {'split': 'test', 'seeds': seeds}


def budget_gaps(reports: Dict[float, Dict], arm: str) -> List[Dict]:
  """Rows (minutes, seed, estimator, gap, paired stderr) of `arm` in each `report` output."""
  rows = []
  for minutes, result in sorted(reports.items()):
    for seed, runs in result['seeds'].items():
      found = [r for r in runs if r['name'] == arm]
      if not found:
        raise ValueError(f'budget: the {minutes}-minute report has no run {arm!r} for seed {seed}.')
      for estimator, key in (('ODE NLL', 'ode_vs_nsf'), ('full bound', 'bound_vs_nsf')):
        if key in found[0]:
          d = found[0][key]
          rows.append({'minutes': minutes, 'seed': seed, 'estimator': estimator,
                       'gap_real': d['mean_diff_real'], 'stderr_real': d['paired_stderr_real']})
  return rows


def budget(args) -> Dict:
  """The `budget` figure and table: the arm's gap to its NSF against the budget."""
  reports = {}
  for spec in args.report:
    minutes, _, name = spec.partition('=')
    with open(os.path.join(common.results_dir(), f'{name}.json')) as f:
      reports[float(minutes)] = json.load(f)
  rows = budget_gaps(reports, args.arm)
  fig, axes = plt.subplots(1, 2, figsize=(9, 3.5), sharey=True)
  for ax, estimator in zip(axes, ('ODE NLL', 'full bound')):
    for seed in sorted({r['seed'] for r in rows}):
      pts = [r for r in rows if r['seed'] == seed and r['estimator'] == estimator]
      ax.errorbar([r['minutes'] for r in pts], [r['gap_real'] for r in pts],
                  yerr=[2 * r['stderr_real'] for r in pts], marker='o', capsize=3,
                  label=f'seed {seed}')
    ax.axhline(0.0, color='k', lw=0.8)
    ax.set_title(f'{args.arm} {estimator} minus NSF')
    ax.set_xlabel('one-core minutes')
    ax.grid(alpha=0.3)
  axes[0].set_ylabel('bits per real pixel (+- 2 paired s.e.)')
  axes[0].legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(os.path.join(common.results_dir(), f'{args.out}.png'), dpi=100)
  plt.close(fig)
  print('| minutes | seed | estimator | minus NSF, paired (per real pixel) |')
  print('|---:|---|---|---|')
  for r in rows:
    print(f"| {r['minutes']:g} | {r['seed']} | {r['estimator']} | "
          f"{r['gap_real']:+.4f} +- {r['stderr_real']:.4f} |")
  return {'arm': args.arm, 'reports': args.report, 'rows': rows}


def main():
  parser = argparse.ArgumentParser()
  sub = parser.add_subparsers(dest='command', required=True)
  v = sub.add_parser('validate')
  v.add_argument('--run', action='append', required=True, metavar='NAME=WORKDIR[@STEP]')
  v.add_argument('--num_examples', type=int, default=512)
  v.add_argument('--control_variate', action='store_true')
  v.add_argument('--out', required=True)
  r = sub.add_parser('report')
  r.add_argument('--seed', action='append', required=True, metavar='SEED:NAME=WORKDIR,...')
  r.add_argument('--out', required=True)
  b = sub.add_parser('budget')
  b.add_argument('--report', action='append', required=True, metavar='MINUTES=REPORT_NAME')
  b.add_argument('--arm', required=True)
  b.add_argument('--out', required=True)
  args = parser.parse_args()
  print(f'{machine.describe()}; commit {machine.git_commit()}')
  result = {'validate': validate, 'report': report, 'budget': budget}[args.command](args)
  result.update(machine=machine.describe(), commit=machine.git_commit())
  with open(os.path.join(common.results_dir(), f'{args.out}.json'), 'w') as f:
    json.dump(result, f, indent=1)


if __name__ == '__main__':
  main()
