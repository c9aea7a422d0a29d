"""NLL against training time of an NSF and of DiffFlows warm-started from it (two stages).

The comparison at equal wall time: one flow-only NSF trained for the whole budget (stage 1
and its continuation), and DiffFlows that load the NSF's checkpoint at the end of stage 1
(`config.model.warm_start`) and train for the rest of the budget, with step counts set from
one-core step times measured in one run. Each run is trained and evaluated with the usual
commands (`experiments/results/warm_start.md` lists them); this script reads the runs'
metrics.jsonl and eval.json and writes the table and the figure:

  python -m experiments.warm_start --nsf runs/wb/flow --nsf_step_s 0.46 \
      --diffflow warm=runs/wb/warm:0.62 --stage1_step 3600 [--out warm_start]

`--diffflow NAME=WORKDIR:STEP_SECONDS` may repeat. Minutes on the x axis are steps times
the one-core step time (compile, evals and checkpoints excluded), stage 1 included.
"""
import argparse
import json
import os
from typing import Dict, List, Tuple

import matplotlib
import numpy as np

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top,wrong-import-position

from dfflows import rng, train, visualize
from dfflows.data import input_pipeline
from dfflows.metrics import stats
from dfflows.run_metrics import likelihood
from dfflows.training import run as run_lib
from experiments import common


def _rows(workdir: str) -> List[Dict]:
  """The metrics.jsonl rows of a run."""
  return visualize.read_jsonl(os.path.join(workdir, train.METRICS_FILE))


def curve(workdir: str, key: str, step_s: float,
          start_minutes: float) -> Tuple[List[float], List[float]]:
  """(minutes, metric `key`) of a run whose step 0 is `start_minutes` in."""
  rows = [r for r in _rows(workdir) if key in r]
  return [start_minutes + r['step'] * step_s / 60 for r in rows], [r[key] for r in rows]


def final_row(name: str, workdir: str, minutes: float) -> Dict:
  """The eval.json figures of a run, in both units."""
  with open(os.path.join(workdir, 'eval.json')) as f:
    ev = json.load(f)
  factor = common.real_pixel_factor(workdir)
  row = {'name': name, 'minutes': round(minutes, 1), 'step': ev['step'],
         'params': ev['params'], 'bpd': ev['bpd'], 'bpd_stderr': ev['bpd_stderr'],
         'bpd_real': ev['bpd'] * factor, 'bpd_estimator': ev['bpd_estimator'],
         'fid': ev.get('fid'), 'top_class': ev.get('samples_mean_top_class_probability'),
         'seconds_for_25_samples': ev['seconds_for_25_samples']}
  if 'ode_bpd' in ev:
    row.update(ode_bpd=ev['ode_bpd'], ode_bpd_stderr=ev['ode_bpd_stderr'],
               ode_bpd_real=ev['ode_bpd'] * factor)
  return row


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--nsf', required=True)
  parser.add_argument('--nsf_step_s', type=float, required=True)
  parser.add_argument('--diffflow', action='append', default=[], metavar='NAME=WORKDIR:STEP_S')
  parser.add_argument('--stage1_step', type=int, required=True)
  parser.add_argument('--out', default='warm_start')
  args = parser.parse_args()
  stage1_minutes = args.stage1_step * args.nsf_step_s / 60
  fig, (ax, ax_train) = plt.subplots(1, 2, figsize=(13, 4.8))
  factor = common.real_pixel_factor(args.nsf)
  m, b = curve(args.nsf, 'eval/bpd', args.nsf_step_s, 0.0)
  ax.plot(m, [v * factor for v in b], 'o-', label='NSF (exact NLL)')
  m, b = curve(args.nsf, 'train/bpd', args.nsf_step_s, 0.0)
  ax_train.plot(m, [v * factor for v in b], '-', label='NSF (exact NLL)')
  nsf_steps = max(r['step'] for r in _rows(args.nsf))
  rows = [final_row('NSF', args.nsf, nsf_steps * args.nsf_step_s / 60)]
  specs = []
  for spec in args.diffflow:
    name, _, rest = spec.partition('=')
    workdir, _, step_s = rest.rpartition(':')
    specs.append((name, workdir))
    m, b = curve(workdir, 'eval/bpd', float(step_s), stage1_minutes)
    ax.plot(m, [v * factor for v in b], 's-',
            label=f'{name} (one-sample bound estimate, one fixed key: see the stars)')
    m, b = curve(workdir, 'train/bpd', float(step_s), stage1_minutes)
    ax_train.plot(m, [v * factor for v in b], '-',
                  label=f'{name} (one-sample bound estimate, fresh keys: unbiased)')
    steps = max(r['step'] for r in _rows(workdir))
    rows.append(final_row(name, workdir, stage1_minutes + steps * float(step_s) / 60))
  for row in rows:
    ax.plot([row['minutes']], [row['bpd_real']], '*', ms=14,
            label=f"{row['name']} final: {row['bpd_estimator']}")
    if 'ode_bpd_real' in row:
      ax.plot([row['minutes']], [row['ode_bpd_real']], 'P', ms=11,
              label=f"{row['name']} final: probability-flow ODE NLL")
  for a in (ax, ax_train):
    a.axvline(stage1_minutes, color='gray', ls=':', lw=1)
    a.set_xlabel('one-core training minutes (steps x step time)')
    a.legend(fontsize=7)
  ax.set_ylabel('test bits per real pixel (784)')
  ax.set_ylim(top=1.6)
  ax_train.set_ylabel('train-batch bits per real pixel (784), mean of 200 steps')
  ax_train.set_xlim(left=stage1_minutes - 4)
  ax_train.set_ylim(1.28, 1.6)
  fig.tight_layout()
  path = os.path.join(common.results_dir(), f'{args.out}_bpd.png')
  fig.savefig(path, dpi=120)
  paired = {row['name']: paired_differences(args.nsf, workdir)
            for row, (_, workdir) in zip(rows[1:], specs)}
  for row, (_, workdir) in zip(rows[1:], specs):
    row.update(flow_alone_bpd(workdir))
  with open(os.path.join(common.results_dir(), f'{args.out}.json'), 'w') as f:
    json.dump({'stage1_step': args.stage1_step, 'rows': rows, 'paired_vs_nsf': paired}, f,
              indent=2)
  for row in rows:
    print(row)
  print(json.dumps(paired, indent=1))


def flow_alone_bpd(workdir: str, num_examples: int = 256) -> Dict[str, float]:
  """A DiffFlow's flow with the flow-only model's N(0, I) prior: exact NLL on the test images.

  Beside the DiffFlow's bound it splits the gap to the NSF into the flow's part (this NLL
  against the NSF's) and the diffusion prior's part (this NLL minus the bound).
  """
  run = run_lib.load_run(workdir, 'latest')
  test_images, _ = input_pipeline.load_split(run.config.data, 'test')
  flow_only, flow_params = run.model.flow_under_gaussian(run.ema_params)
  out = likelihood.full_bpd_summary(flow_only, flow_params, test_images, num_examples,
                                    run.config.eval.batch_size,
                                    rng.stream(run.base_key, rng.Stream.EVAL_BPD))
  return {'step': run.step, 'flow_alone_bpd': out['bpd'],
          'flow_alone_bpd_stderr': out['bpd_stderr'],
          'flow_alone_bpd_real': out['bpd'] * common.real_pixel_factor(workdir)}


def paired_differences(nsf: str, workdir: str) -> Dict[str, Dict[str, float]]:
  """Per-image (model - NSF) bits/dim on the same test images: mean, paired stderr, both units."""
  ev = {}
  for name, path in (('nsf', nsf), ('model', workdir)):
    with open(os.path.join(path, 'eval.json')) as f:
      ev[name] = json.load(f)
  factor = common.real_pixel_factor(nsf)
  nsf_bpd = np.asarray(ev['nsf']['bpd_per_example'])
  out = {}
  for key in ('bpd', 'ode_bpd'):
    if f'{key}_per_example' not in ev['model']:
      continue
    mine = np.asarray(ev['model'][f'{key}_per_example'])
    diff = mine - nsf_bpd[:len(mine)]
    mean, stderr = stats.mean_and_stderr(diff)
    out[key] = {'mean_diff': mean, 'paired_stderr': stderr,
                'mean_diff_real': mean * factor, 'paired_stderr_real': stderr * factor,
                'num_images': int(len(diff))}
  return out


if __name__ == '__main__':
  main()
