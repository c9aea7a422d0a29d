"""DiffFlows vs flow-only NSF vs pixel DDPM on MNIST at a CPU budget, beside the thesis's rows.

  python -m experiments.mnist_table [--steps diffflow=360,diffflow_nsf=260,flow=1200,ddpm=150]
      [--dataset mnist_idx --manual_dir ../shared/data/mnist] [--workdir runs/mnist_table]
      [--report_only]

Trains the models at configs/default.py settings with 2 flow steps per level, a
U-Net of width 16 and learning rate 1e-3 (the default's before commits d69679e and
99dca06; same batch and seed; the baselines by `model.kind`; the NSF has 8 instead of 2
flow steps per level, so that its parameter count matches the DiffFlow's, the pixel DDPM's U-Net has
ch_mult (1, 2, 2),
and the row `diffflow_nsf` is a DiffFlow with the NSF's flow and a U-Net of width 8)
for about the same wall time (the step counts are set from
benchmarks/bench_train.py's step times), evaluates each as dfflows.evaluate does
(full bound over all t, FID with the dfflows MNIST classifier, sampling time) and
writes experiments/results/mnist_table.{md,json}, mnist_table_bpd.png (bits/dim vs
step) and mnist_table_samples_<model>.png. Reruns resume training and reuse a
finished evaluation; --report_only rewrites the results from the run directories.
"""
import argparse
import datetime
import json
import os
import shutil
from typing import Dict

import matplotlib
matplotlib.use('Agg')
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
import ml_collections  # pylint: disable=g-import-not-at-top

from configs import default
from dfflows import machine, train, visualize
from dfflows.run_metrics import likelihood, report as eval_report
from dfflows.training import run as run_lib
from experiments import common

# Table row -> its `model.kind` (make_config sets each row's sizes), in table order.
KIND = {'diffflow': 'diffflow', 'diffflow_nsf': 'diffflow', 'flow': 'flow', 'ddpm': 'ddpm'}
ROWS = tuple(KIND)
# Thesis Table 5.4 (MNIST) per model kind: NLL in its units, FID with its MNIST classifier,
# seconds for 25 samples.
THESIS = {'ddpm': ('-', '1.05', '28.97'), 'flow': ('1.03', '2.58', '0.21'),
          'diffflow': ('0.93', '1.85', '15.12')}
NAMES = {'diffflow': 'DiffFlow', 'diffflow_nsf': "DiffFlow, the NSF's flow",
         'flow': 'NSF (flow only)', 'ddpm': 'DDPM (pixels)'}
SHARED_EVAL_FILES = ('fid_classifier.msgpack', 'fid_stats_test_classifier.npz')


def parse_steps(text: str) -> Dict[str, int]:
  """'diffflow=360,diffflow_nsf=260,flow=1200,ddpm=150' (or one number for all) -> steps per row."""
  if '=' not in text:
    return {k: int(text) for k in ROWS}
  steps = dict(item.split('=') for item in text.split(','))
  return {k: int(steps[k]) for k in ROWS}


def make_config(row: str, steps: int, args) -> ml_collections.ConfigDict:
  """The default config for table row `row` with the experiment's budget."""
  config = default.get_config()
  # The table's base sizes and learning rate: configs/default.py's before commits d69679e and
  # 99dca06, which made the second DiffFlow row's sizes and a learning rate of 2e-3 the default.
  config.flow.num_steps, config.unet.ch, config.optim.lr = 2, 16, 1e-3
  config.model.kind = KIND[row]
  config.data.name = args.dataset
  config.data.manual_dir = os.path.abspath(args.manual_dir) if args.manual_dir else ''
  config.train.num_steps = steps
  config.train.log_every = max(steps // 30, 1)
  config.train.eval_every = max(steps // 3, 1)
  config.train.sample_every = steps
  config.train.checkpoint_every = max(steps // 6, 1)
  config.eval.num_examples = args.eval_examples
  config.eval.fid_num_samples = args.fid_samples
  if row in ('flow', 'diffflow_nsf'):
    config.flow.num_steps = 8  # The NSF's flow: about the first DiffFlow's parameter count.
  if row == 'diffflow_nsf':  # Flow depth over U-Net width: the NSF's flow, a U-Net of 49k params.
    config.unet.ch = 8
  if row == 'ddpm':
    config.unet.ch_mult = (1, 2, 2)
  return config


def run_row(row: str, steps: int, args) -> Dict:
  """Trains (or resumes) and evaluates one table row; reuses a finished eval.json."""
  config = make_config(row, steps, args)
  workdir = os.path.join(args.workdir, row)
  eval_path = os.path.join(workdir, 'eval.json')
  if os.path.exists(eval_path):
    with open(eval_path) as f:
      done = json.load(f)
    if done.get('step') == steps:
      return done
  wall_path = os.path.join(workdir, 'train_wall_seconds.json')
  previous = json.load(open(wall_path))['wall_seconds'] if os.path.exists(wall_path) else 0.0
  run = common.run(config, workdir)
  with open(wall_path, 'w') as f:  # Summed over resumed runs.
    json.dump({'wall_seconds': previous + run['wall_seconds']}, f)
  for name in SHARED_EVAL_FILES:  # One FID classifier and test statistics for all models.
    src = os.path.join(args.workdir, ROWS[0], name)
    if row != ROWS[0] and os.path.exists(src):
      shutil.copy(src, os.path.join(workdir, name))
  return eval_report.write_report(config, workdir, 'latest')


def trajectory_strip(workdir: str) -> str:
  """The DiffFlow run's reverse-trajectory strip (made if missing), copied to the results."""
  run_dir = os.path.join(workdir, 'diffflow')
  path = os.path.join(run_dir, 'eval_trajectory.png')
  if not os.path.exists(path):
    eval_report.save_trajectory(run_lib.load_run(run_dir, 'latest'), path)
  out = os.path.join(common.results_dir(), 'mnist_table_trajectory_diffflow.png')
  shutil.copy(path, out)
  return out


def report(args, steps: Dict[str, int]) -> None:
  """Writes the table, JSON, bits/dim plot and sample grids from the run directories."""
  out = common.results_dir()
  results, curves = {}, {}
  for row in ROWS:
    workdir = os.path.join(args.workdir, row)
    with open(os.path.join(workdir, 'eval.json')) as f:
      results[row] = json.load(f)
    metrics = visualize.read_jsonl(os.path.join(workdir, train.METRICS_FILE))
    with open(os.path.join(workdir, 'train_wall_seconds.json')) as f:
      results[row]['train_wall_seconds'] = json.load(f)['wall_seconds']
    if 'bpd_per_real_pixel' not in results[row]:  # An eval.json written before that unit.
      data = run_lib.saved_config(workdir).data
      results[row].update(likelihood.real_pixel_fields(results[row], data))
    curves[row] = {key: common.series(metrics, key) for key in ('train/bpd', 'eval/bpd')}
    shutil.copy(os.path.join(workdir, 'eval_samples.png'),
                os.path.join(out, f'mnist_table_samples_{row}.png'))
  strip = trajectory_strip(args.workdir)
  fig, ax = plt.subplots(figsize=(6, 4))
  for row in ROWS:
    exact = row == 'flow'  # The flow's NLL is exact; the diffusion curves are estimates.
    line, = ax.plot(*curves[row]['train/bpd'], alpha=0.5,
                    label=f'{NAMES[row]} train' + ('' if exact else ' (one-sample bound)'))
    ax.plot(*curves[row]['eval/bpd'], 'o-', color=line.get_color(),
            label=f'{NAMES[row]} eval' + (' (exact)' if exact else ' (one-sample bound)'))
    if not exact:
      ax.plot([results[row]['step']], [results[row]['bpd']], '*', ms=14, color=line.get_color(),
              label=f'{NAMES[row]} full bound (dfflows.evaluate)')
  ax.set_xlabel('step')
  ax.set_ylabel('bits/dim')
  ax.set_xscale('log')
  ax.set_ylim(0, 12)
  ax.grid(alpha=0.3)
  ax.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(os.path.join(out, 'mnist_table_bpd.png'), dpi=100)
  step_text = ','.join(f'{k}={steps[k]}' for k in ROWS)
  dims, real = results[ROWS[0]]['model_dims'], results[ROWS[0]]['real_pixels']
  thesis_real = ' and '.join(f'{float(THESIS[k][0]) * dims / real:.3f} ({name})'
                             for k, name in (('diffflow', 'DiffFlow'), ('flow', 'NSF')))
  lines = [
      '# MNIST: DiffFlows vs NSF vs DDPM at a CPU budget', '',
      f'Date {datetime.date.today()}, {machine.describe()}, commit {machine.git_commit()}, seed 0.',
      f'Command: `python -m experiments.mnist_table --steps {step_text} --dataset {args.dataset}'
      f'{" --manual_dir " + args.manual_dir if args.manual_dir else ""}'
      f' --eval_examples {args.eval_examples} --fid_samples {args.fid_samples}`.', '',
      f'Each model has configs/default.py settings with 2 flow steps per level, a U-Net of '
      f'width 16 and learning rate 1e-3 (the default\'s before commits d69679e and 99dca06), '
      f'batch 32 (the NSF '
      f'with 8 flow steps per level, '
      f'for about the DiffFlow\'s parameter count; the second DiffFlow with the NSF\'s flow and a '
      f'U-Net of width 8; the DDPM\'s U-Net with ch_mult (1, 2, 2)); the '
      f'step counts ({step_text}) give each about the same training wall time on this machine. '
      'EMA params are evaluated. '
      'Bits/dim: the full bound over all t (the exact NLL for the flow), the mean over '
      f'{args.eval_examples} test images with its standard error, in bits per model dim '
      f'({dims:,}: MNIST zero-padded from 28x28 to 32x32); bits/real pixel: the same total bits '
      f'over the {real} real pixels, the unit of published MNIST results (still an upper bound: '
      'a padding pixel cannot cost negative bits). FID: features of dfflows\' MNIST '
      f'classifier (test accuracy in the JSON), {args.fid_samples} samples against the test split. '
      'Sampling time: 25 samples after compilation, with the sampler named. Thesis NLL: its '
      'Table 5.4, on MNIST at image size (1, 32, 32) (its Table 5.1); the thesis says neither '
      'whether it padded or resized the 28x28 digits nor the unit of its NLL. If it is bits per '
      f'dim of zero-padded 32x32 images, it compares with the bits/dim column, and per real '
      f'pixel it is {thesis_real}.', '',
      '| model | steps | train (s) | bits/dim | bits/real pixel | FID | s / 25 samples | sampler '
      '| net evals / sample | params | thesis NLL | thesis FID | thesis s / 25 |',
      '|---|---|---|---|---|---|---|---|---|---|---|---|---|']
  for row, r in results.items():
    th = THESIS[KIND[row]]
    lines.append(f'| {NAMES[row]} | {r["step"]} | {r["train_wall_seconds"]:.0f} | {r["bpd"]:.3f} ± '
                 f'{r["bpd_stderr"]:.3f} | {r["bpd_per_real_pixel"]:.3f} ± '
                 f'{r["bpd_per_real_pixel_stderr"]:.3f} | {r["fid"]:.1f} | '
                 f'{r["seconds_for_25_samples"]:.2f} | '
                 f'{r["sampler"]} | {r["network_evals_per_sample"]} | {r["params"]} | {th[0]} | '
                 f'{th[1]} | {th[2]} |')
  lines += ['', '![bits/dim](mnist_table_bpd.png)', '',
            ' '.join(f'{NAMES[k]}: ![{k}](mnist_table_samples_{k}.png)' for k in ROWS), '',
            f'DiffFlow reverse trajectory (per sample: z_t, then f^-1(z_t); z_T left, z0 and x '
            f'right): ![trajectory]({os.path.basename(strip)})', '']
  notes = os.path.join(out, 'mnist_table_notes.md')  # Hand-written reading of the numbers.
  if os.path.exists(notes):
    with open(notes) as f:
      lines += [f.read()]
  common.write_results('mnist_table', '\n'.join(lines), results)
  print('\n'.join(lines))


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--steps', default='diffflow=360,diffflow_nsf=260,flow=1200,ddpm=150')
  parser.add_argument('--dataset', default='mnist_embedded')
  parser.add_argument('--manual_dir', default='')
  parser.add_argument('--eval_examples', type=int, default=64)
  parser.add_argument('--fid_samples', type=int, default=256)
  parser.add_argument('--workdir', default='runs/mnist_table')
  parser.add_argument('--report_only', action='store_true')
  args = parser.parse_args()
  steps = parse_steps(args.steps)
  if not args.report_only:
    for row in ROWS:
      run_row(row, steps[row], args)
  report(args, steps)


if __name__ == '__main__':
  main()
