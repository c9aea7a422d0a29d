"""FID and sampling time vs the number of reverse steps, for the DiffFlows and the pixel DDPM.

  python -m experiments.sampling_steps [--workdir runs/mnist_table] [--fid_samples 128]
      [--steps 500,250,100,50,25] [--ddim 50,25] [--kinds diffflow,diffflow_nsf,ddpm]
  python -m experiments.sampling_steps --runs diffflow=RUN_DIR,ddpm=RUN_DIR \
      --name sampling_steps_60min --steps 100,25,10,5 --ddim ''

By default uses the runs that experiments.mnist_table trained (same configs, EMA params of
the latest checkpoint) and its cached FID classifier and test statistics; `--runs` names
any other runs (each workdir needs the classifier cache, fid_classifier.msgpack and
fid_stats_test_classifier.npz, of one run that has evaluated FID). For each model: ancestral
sampling with the chain respaced to each of --steps (the full chain's length = no respacing),
and DDIM (eta = 0) at each of --ddim. Each row: FID of --fid_samples samples against the test
split, and seconds for 25 samples after compilation. Rows are written as they finish:
experiments/results/<--name>.{md,json,png}.
"""
import argparse
import datetime
import os
import time
from typing import Dict

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


def label_of(model: str) -> str:
  """The table's name of a model: mnist_table's row name, else the --runs name."""
  return mnist_table.NAMES.get(model, model)


def parse_runs(text: str) -> Dict[str, str]:
  """'name=workdir,name=workdir' -> {name: workdir}."""
  runs = {}
  for item in filter(None, text.split(',')):
    name, sep, workdir = item.partition('=')
    if not sep or not name or not workdir:
      raise ValueError(f'--runs: {item!r} is not NAME=WORKDIR.')
    if not os.path.isdir(workdir):
      raise FileNotFoundError(f'--runs: {name}\'s workdir {workdir!r} does not exist.')
    runs[name] = workdir
  return runs


def write(rows, args) -> None:
  """Writes the table, JSON and plot of the rows so far."""
  out = common.results_dir()
  fig, axes = plt.subplots(1, 3, figsize=(14, 3.5))
  for kind in sorted({r['model'] for r in rows}):
    for sampler, marker in (('ancestral', 'o-'), ('ddim', 's--')):
      pts = sorted((r['steps'], r['fid'], r['seconds_for_25_samples']) for r in rows
                   if r['model'] == kind and r['sampler'] == sampler)
      if pts:
        s, f, t = zip(*pts)
        label = f'{label_of(kind)} {sampler}'
        axes[0].plot(s, f, marker, label=label)
        axes[1].plot(s, t, marker, label=label)
        axes[2].plot(t, f, marker, label=label)
  for ax, (xlabel, ylabel) in zip(axes, (('reverse steps', 'FID'),
                                         ('reverse steps', 'seconds for 25 samples'),
                                         ('seconds for 25 samples', 'FID'))):
    ax.set_xscale('log')
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
  axes[1].set_yscale('log')
  axes[0].legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(os.path.join(out, f'{args.name}.png'), dpi=100)
  plt.close(fig)
  if args.runs:
    command = f'--runs {args.runs} --name {args.name}'
    models = 'on the runs named by --runs'
  else:
    command = f'--workdir {args.workdir}'
    models = ('on the models that `experiments.mnist_table` trained '
              '(results/mnist_table.md)')
  lines = ['# FID and sampling time vs reverse steps', '',
           f'Date {datetime.date.today()}, {machine.describe()}, commit {machine.git_commit()}.',
           f'Command: `python -m experiments.sampling_steps {command} --fid_samples '
           f"{args.fid_samples} --steps {args.steps} --ddim '{args.ddim}'` {models}. FID: "
           f"dfflows' MNIST classifier features, {args.fid_samples} samples vs the test split "
           '(small-sample FID is biased upwards; compare rows, not papers). Seconds: 25 samples '
           'after compilation.', '',
           '| model | sampler | reverse steps | net evals / sample | FID | s / 25 samples |',
           '|---|---|---|---|---|---|']
  for r in rows:
    lines.append(f'| {label_of(r["model"])} | {r["sampler"]} | {r["steps"]} | '
                 f'{r["network_evals_per_sample"]} | {r["fid"]:.1f} | '
                 f'{r["seconds_for_25_samples"]:.2f} |')
  lines += ['', f'![FID and time vs steps]({args.name}.png)', '']
  common.write_results(args.name, '\n'.join(lines), {'rows': rows})
  print('\n'.join(lines), flush=True)


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--workdir', default='runs/mnist_table')
  parser.add_argument('--fid_samples', type=int, default=128)
  parser.add_argument('--steps', default='500,250,100,50,25')
  parser.add_argument('--ddim', default='50,25')
  parser.add_argument('--kinds', default='diffflow,diffflow_nsf,ddpm')  # mnist_table rows
  parser.add_argument('--runs', default='', help='NAME=WORKDIR,...: these runs, not --kinds')
  parser.add_argument('--name', default='sampling_steps', help='experiments/results/NAME.*')
  args = parser.parse_args()
  if args.runs:
    workdirs = parse_runs(args.runs)
  else:
    workdirs = {kind: os.path.join(args.workdir, kind) for kind in args.kinds.split(',')}
  # Cheapest settings first, alternating models, so that a run cut short still compares both.
  settings = sorted(((steps, sampler, kind) for kind in workdirs
                     for sampler, text in (('ancestral', args.steps), ('ddim', args.ddim))
                     for steps in (int(s) for s in text.split(',') if s)),
                    key=lambda x: (x[0], x[1] != 'ddim'))
  rows = []
  for steps, sampler, kind in settings:
    workdir = workdirs[kind]
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
