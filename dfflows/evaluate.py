"""Evaluates a trained run: bits/dim (full bound), FID, sampling time, eps-MSE.

  python -m dfflows.evaluate --workdir=runs/default [--checkpoint=best|latest] \
      [--config.eval.num_examples=N] [--config.eval.bound_draws=K] \
      [--config.eval.bound_control_variate=true] \
      [--config.eval.fid_num_samples=N] [--config.diffusion.sample_steps=N] \
      [--config=configs/default.py]

The run's own config.json is the config. `--config` (a file) and `--config.KEY` flags set
only the evaluation and sampler settings (`config_checks.evaluation_config`); their
training-only keys (`optim.*`, `train.*`) are ignored. Writes <workdir>/eval.json (with the
per-image lists) and prints a summary of it; the metrics are in `dfflows.run_metrics.report`.
"""
import os
import re
import sys
from typing import Any, Dict, List

from dfflows import console  # First: it imports TensorFlow quietly.
from absl import app, flags  # pylint: disable=g-bad-import-order,wrong-import-order
from ml_collections import config_flags

from dfflows import default_config
from dfflows.run_metrics import report
from dfflows.training import config_checks
from dfflows.training.run import CHECKPOINTS

FLAGS = flags.FLAGS
# Without --config, the --config.KEY flags apply to the package's key tree (the defaults);
# only the keys they name are taken (`config_checks.evaluation_config`).
KEY_TREE = os.path.abspath(default_config.__file__)
config_flags.DEFINE_config_file(
    'config', None, "Optional config file: its eval and sampler settings replace the run's.",
    lock_config=True)
flags.DEFINE_string('workdir', None, 'Workdir of the run.')
flags.DEFINE_enum('checkpoint', 'best', list(CHECKPOINTS), 'Which checkpoint (EMA params).')


def summary_lines(result: Dict[str, Any], prefix: str = '') -> List[str]:
  """`result` as 'key  value' lines: lists by their length, dicts by their keys."""
  width = max(map(len, result)) + len(prefix)
  lines = []
  for key, value in result.items():
    if isinstance(value, dict):
      lines += summary_lines(value, f'{prefix}{key}.')
    elif isinstance(value, list):
      lines.append(f'{prefix + key:<{width}}  ({len(value)} values, in eval.json)')
    else:
      lines.append(f'{prefix + key:<{width}}  {value:.4g}' if isinstance(value, float) else
                   f'{prefix + key:<{width}}  {value}')
  return lines


def with_key_tree(argv: List[str]) -> List[str]:
  """`argv` with --config=KEY_TREE first if it names no --config file."""
  if any(re.match(r'^--?config(=|$)', arg) for arg in argv[1:]):
    return argv
  return [argv[0], f'--config={KEY_TREE}', *argv[1:]]


def main(argv):
  """Runs the evaluation and prints a summary."""
  del argv
  console.quiet_libraries(FLAGS.verbosity)
  given = None if config_flags.get_config_filename(FLAGS['config']) == KEY_TREE else FLAGS.config
  try:
    config = config_checks.evaluation_config(
        FLAGS.workdir, given, config_flags.get_override_values(FLAGS['config']))
    config_checks.check_values(config)
  except (FileNotFoundError, ValueError) as error:
    sys.exit(f'FATAL config error: {error}')
  result = report.write_report(config, FLAGS.workdir, FLAGS.checkpoint)
  print('\n'.join(summary_lines(result)))


if __name__ == '__main__':
  flags.mark_flags_as_required(['workdir'])
  sys.argv = with_key_tree(sys.argv)  # The --config.KEY flags are read from sys.argv.
  app.run(main, flags_parser=console.parse_flags)
