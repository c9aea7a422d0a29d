"""The thesis's printed loss (eq. 4.6, L_diff + log|det|) against the valid bound.

  python -m experiments.objective_ablation [--steps 300] [--workdir runs/ablation]

Trains the default DiffFlow twice from the same seed, once per objective, and
records the latent scale std(z0), the flow's -log|det| in bits/dim and the honest
bound in bits/dim over training. Writes experiments/results/objective_ablation.{md,json,png}.
"""
import argparse
import datetime
import os

import matplotlib
matplotlib.use('Agg')
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

from configs import default
from dfflows import machine
from experiments import common

OBJECTIVES = ('bound', 'thesis_eq_4_6')
KEYS = (('train/z0_std', 'std(z0)'), ('train/logdet_bpd', '-log|det| (bits/dim)'),
        ('train/bpd', 'bound (bits/dim)'))


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--steps', type=int, default=300)
  parser.add_argument('--workdir', default='runs/ablation')
  args = parser.parse_args()
  results = {}
  for objective in OBJECTIVES:
    config = default.get_config()
    config.model.objective = objective
    config.train.num_steps = args.steps
    config.train.log_every = max(args.steps // 30, 1)
    results[objective] = common.run(config, os.path.join(args.workdir, objective))
  fig, axes = plt.subplots(1, 3, figsize=(13, 3.5))
  for ax, (key, label) in zip(axes, KEYS):
    for objective in OBJECTIVES:
      ax.plot(*common.series(results[objective]['rows'], key), label=objective)
    ax.set_xlabel('step')
    ax.set_title(label)
    ax.grid(alpha=0.3)
  axes[0].set_yscale('log')
  axes[0].legend()
  fig.tight_layout()
  out = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'results')
  os.makedirs(out, exist_ok=True)
  fig.savefig(os.path.join(out, 'objective_ablation.png'), dpi=100)
  lines = [
      '# Objective ablation: thesis eq. 4.6 vs the valid bound', '',
      f'Date {datetime.date.today()}, {machine.describe()}, commit {machine.git_commit()}.',
      f'Command: `python -m experiments.objective_ablation --steps {args.steps}` '
      '(configs/default.py, embedded MNIST subset, seed 0).', '',
      '| objective | wall (s) | final std(z0) | final -log\\|det\\| bpd | final bound bpd '
      '| eval bpd | eval bits per real pixel |',
      '|---|---|---|---|---|---|---|']
  summary = {}
  for objective in OBJECTIVES:
    rows = results[objective]['rows']
    last = {k: common.series(rows, k)[1][-1] for k, _ in KEYS}
    ev = common.series(rows, 'eval/bpd')[1]
    factor = common.real_pixel_factor(os.path.join(args.workdir, objective))
    summary[objective] = {**last, 'eval/bpd': ev[-1] if ev else None,
                          'eval/bpd_per_real_pixel': ev[-1] * factor if ev else None,
                          'wall_seconds': results[objective]['wall_seconds']}
    lines.append(f'| {objective} | {results[objective]["wall_seconds"]:.0f} | '
                 f'{last["train/z0_std"]:.3g} | {last["train/logdet_bpd"]:.3f} | '
                 f'{last["train/bpd"]:.3f} | {summary[objective]["eval/bpd"]:.3f} | '
                 f'{summary[objective]["eval/bpd_per_real_pixel"]:.3f} |')
  lines += ['', '![curves](objective_ablation.png)', '']
  common.write_results('objective_ablation', '\n'.join(lines),
                       {'summary': summary, 'curves': {o: results[o]['rows'] for o in OBJECTIVES}})
  print('\n'.join(lines))


if __name__ == '__main__':
  main()
