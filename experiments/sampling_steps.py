"""FID and sampling time vs the number of reverse steps, for the DiffFlows and the pixel DDPM.

  python -m experiments.sampling_steps [--workdir runs/mnist_table] [--fid_samples 128]
      [--steps 500,250,100,50,25] [--ddim 50,25] [--kinds diffflow,diffflow_nsf,ddpm]

Uses the runs that experiments.mnist_table trained (same configs, EMA params of the
latest checkpoint) and its cached FID classifier and test statistics. For each
model: ancestral sampling with the chain respaced to each of --steps (500 = the
full chain), and DDIM (eta = 0) at each of --ddim. Each row: FID of --fid_samples
samples against the test split, and seconds for 25 samples after compilation.
Rows are written as they finish: experiments/results/sampling_steps.{md,json,png}.
"""
import argparse
import datetime
import os
import time

import matplotlib
matplotlib.use('Agg')
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

from dfflows import machine, rng
from dfflows.data import input_pipeline
from dfflows.run_metrics import sampling
from dfflows.run_metrics.fid_features import fid_features, samples_fid
from dfflows.training import run as run_lib
from experiments import common, mnist_table


def fid_and_time(config, workdir: str, steps: int, n: int) -> dict:
  """FID of n samples and seconds for 25 samples of the run in `workdir` at `steps` steps."""
  run = run_lib.load_run(workdir, 'latest', config)
  sample, params = run.sample, run.ema_params
  key = rng.stream(run.base_key, rng.Stream.EXPERIMENT_SAMPLES)
  seconds = sampling.time_sampling(sample, params, key, 25, steps, 1.0)
  features = fid_features(config, workdir)
  test_images, _ = input_pipeline.load_split(config.data, 'test')
  samples = sampling.draw_samples(sample, params, key, n, steps, 1.0, min(n, 128))
  value = samples_fid(features, workdir, test_images, samples)
  return {'train_step': run.step, 'fid': value, 'seconds_for_25_samples': seconds,
          'network_evals_per_sample': run.model.sampling_plan(steps).network_evals}


def write(rows, args) -> None:
  """Writes the table, JSON and plot of the rows so far."""
  out = common.results_dir()
  fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
  for kind in sorted({r['model'] for r in rows}):
    for sampler, marker in (('ancestral', 'o-'), ('ddim', 's--')):
      pts = sorted((r['steps'], r['fid'], r['seconds_for_25_samples']) for r in rows
                   if r['model'] == kind and r['sampler'] == sampler)
      if pts:
        s, f, t = zip(*pts)
        axes[0].plot(s, f, marker, label=f'{mnist_table.NAMES[kind]} {sampler}')
        axes[1].plot(s, t, marker, label=f'{mnist_table.NAMES[kind]} {sampler}')
  for ax, label in zip(axes, ('FID', 'seconds for 25 samples')):
    ax.set_xscale('log')
    ax.set_xlabel('reverse steps')
    ax.set_ylabel(label)
    ax.grid(alpha=0.3)
  axes[1].set_yscale('log')
  axes[0].legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(os.path.join(out, 'sampling_steps.png'), dpi=100)
  plt.close(fig)
  lines = ['# FID and sampling time vs reverse steps', '',
           f'Date {datetime.date.today()}, {machine.describe()}, commit {machine.git_commit()}.',
           f'Command: `python -m experiments.sampling_steps --workdir {args.workdir} --fid_samples '
           f'{args.fid_samples} --steps {args.steps} --ddim {args.ddim}` on the models that '
           '`experiments.mnist_table` trained (results/mnist_table.md). FID: dfflows\' MNIST '
           f'classifier features, {args.fid_samples} samples vs the test split (small-sample FID is '
           'biased upwards; compare rows, not papers). Seconds: 25 samples after compilation.', '',
           '| model | sampler | reverse steps | net evals / sample | FID | s / 25 samples |',
           '|---|---|---|---|---|---|']
  for r in rows:
    lines.append(f'| {mnist_table.NAMES[r["model"]]} | {r["sampler"]} | {r["steps"]} | '
                 f'{r["network_evals_per_sample"]} | {r["fid"]:.1f} | '
                 f'{r["seconds_for_25_samples"]:.2f} |')
  lines += ['', '![FID and time vs steps](sampling_steps.png)', '']
  common.write_results('sampling_steps', '\n'.join(lines), {'rows': rows})
  print('\n'.join(lines), flush=True)


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--workdir', default='runs/mnist_table')
  parser.add_argument('--fid_samples', type=int, default=128)
  parser.add_argument('--steps', default='500,250,100,50,25')
  parser.add_argument('--ddim', default='50,25')
  parser.add_argument('--kinds', default='diffflow,diffflow_nsf,ddpm')  # mnist_table rows
  args = parser.parse_args()
  # Cheapest settings first, alternating models, so that a run cut short still compares both.
  settings = sorted(((steps, sampler, kind) for kind in args.kinds.split(',')
                     for sampler, text in (('ancestral', args.steps), ('ddim', args.ddim))
                     for steps in (int(s) for s in text.split(',') if s)),
                    key=lambda x: (x[0], x[1] != 'ddim'))
  rows = []
  for steps, sampler, kind in settings:
    workdir = os.path.join(args.workdir, kind)
    config = run_lib.saved_config(workdir)
    config.diffusion.sampler = sampler
    t0 = time.time()
    row = {'model': kind, 'sampler': sampler, 'steps': steps,
           **fid_and_time(config, workdir, steps, args.fid_samples)}
    row['wall_seconds'] = time.time() - t0
    rows.append(row)
    write(sorted(rows, key=lambda r: (r['model'], r['sampler'], -r['steps'])), args)


if __name__ == '__main__':
  main()
