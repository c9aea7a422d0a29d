"""DiffFlows vs flow-only NSF vs pixel DDPM on MNIST at a CPU budget, beside the thesis's rows.

  python -m experiments.mnist_table [--steps 600] [--dataset mnist_embedded]
      [--manual_dir ../shared/data/mnist] [--workdir runs/mnist_table]

Trains the three models of configs/default.py (same steps, batch and seed; the
baselines by `model.kind`), evaluates each with dfflows.evaluate (full bound over
all t, FID with the dfflows MNIST classifier, sampling time), and writes
experiments/results/mnist_table.{md,json}.
"""
import argparse
import datetime
import os

from configs import default
from dfflows import evaluate
from experiments import common

# Thesis Table 5.4 (MNIST): NLL in its units, FID with its MNIST classifier, seconds for 25 samples.
THESIS = {'ddpm': ('-', '1.05', '28.97'), 'flow': ('1.03', '2.58', '0.21'),
          'diffflow': ('0.93', '1.85', '15.12')}
NAMES = {'diffflow': 'DiffFlow', 'flow': 'NSF (flow only)', 'ddpm': 'DDPM (pixels)'}


def make_config(kind: str, args) -> 'ml_collections.ConfigDict':
  """The default config for `kind` with the experiment's budget."""
  config = default.get_config()
  config.model.kind = kind
  config.data.name = args.dataset
  config.data.manual_dir = args.manual_dir
  config.train.num_steps = args.steps
  config.train.eval_every = args.steps
  config.train.sample_every = args.steps
  config.train.checkpoint_every = args.steps
  config.eval.num_examples = args.eval_examples
  config.eval.fid_num_samples = args.fid_samples
  if kind == 'ddpm':
    config.unet.ch_mult = (1, 2, 2)
  return config


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--steps', type=int, default=600)
  parser.add_argument('--dataset', default='mnist_embedded')
  parser.add_argument('--manual_dir', default='')
  parser.add_argument('--eval_examples', type=int, default=64)
  parser.add_argument('--fid_samples', type=int, default=256)
  parser.add_argument('--workdir', default='runs/mnist_table')
  args = parser.parse_args()
  results = {}
  for kind in ('diffflow', 'flow', 'ddpm'):
    config = make_config(kind, args)
    workdir = os.path.join(args.workdir, kind)
    run = common.run(config, workdir)
    results[kind] = {'train_wall_seconds': run['wall_seconds'],
                     **evaluate.evaluate(config, workdir, 'latest')}
  lines = [
      '# MNIST: DiffFlows vs NSF vs DDPM at a CPU budget', '',
      f'Date {datetime.date.today()}, {common.machine()}, commit {common.git_commit()}, seed 0.',
      f'Command: `python -m experiments.mnist_table --steps {args.steps} --dataset {args.dataset}'
      f' --eval_examples {args.eval_examples} --fid_samples {args.fid_samples}`.',
      f'Each model: configs/default.py sizes, {args.steps} steps of batch 32, EMA params. '
      'Bits/dim: the full bound over all t (exact NLL for the flow), mean over '
      f'{args.eval_examples} test images with its standard error. FID: dfflows\' MNIST '
      f'classifier features, {args.fid_samples} samples vs the test split.', '',
      '| model | train (s) | bits/dim | FID | s / 25 samples | net evals / sample | params |'
      ' thesis NLL | thesis FID | thesis s / 25 |',
      '|---|---|---|---|---|---|---|---|---|---|']
  for kind, r in results.items():
    th = THESIS[kind]
    lines.append(f'| {NAMES[kind]} | {r["train_wall_seconds"]:.0f} | {r["bpd"]:.3f} ± '
                 f'{r["bpd_stderr"]:.3f} | {r["fid"]:.2f} | {r["seconds_for_25_samples"]:.2f} | '
                 f'{r["network_evals_per_sample"]} | {r["params"]} | {th[0]} | {th[1]} | {th[2]} |')
  lines += ['', 'The thesis trained 300 epochs on a GPU; these rows are minutes on 2 CPU cores, '
            'so only the orderings and the sampling-cost ratios are comparable.', '']
  common.write_results('mnist_table', '\n'.join(lines), results)
  print('\n'.join(lines))


if __name__ == '__main__':
  main()
