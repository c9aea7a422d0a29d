"""Trains a DiffFlow (or a baseline) from an ml_collections config file.

  python -m dfflows.main --config=configs/default.py --workdir=runs/default \
      [--config.train.num_steps=1000 ...]

Rerunning the same command resumes from the latest checkpoint in --workdir.
"""
import sys

from dfflows import console  # First: it imports TensorFlow quietly.
from absl import app, flags, logging  # pylint: disable=g-bad-import-order
from ml_collections import config_flags

from dfflows import train
from dfflows.training import warm_start

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file('config', None, 'Training config file.', lock_config=True)
flags.DEFINE_string('workdir', None, 'Directory for checkpoints, metrics and samples.')
flags.mark_flags_as_required(['config', 'workdir'])


def next_command(module: str) -> str:
  """This command's config flags with `module` in place of dfflows.main."""
  args = [a for a in sys.argv[1:] if a.startswith(('--config', '--workdir'))]
  return f'python -m {module} ' + ' '.join(args)


def parse_flags(argv: list[str]) -> list[str]:
  """`console.parse_flags`, then the warm start's source (`warm_start.check_before_training`):
  a source that cannot be loaded exits with one line before any work."""
  rest = console.parse_flags(argv)
  try:
    warm_start.check_before_training(FLAGS.config, FLAGS.workdir)
  except ValueError as error:
    sys.exit(f'FATAL config error: {error}')
  return rest


def main(argv):
  """Runs training."""
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  console.quiet_libraries(FLAGS.verbosity)
  logging.info('Config:\n%s', FLAGS.config)
  state = train.train_and_evaluate(FLAGS.config, FLAGS.workdir)
  step = int(state.step)
  logging.info('%s at step %d. Wrote in %s: %s (and TensorBoard events).\nNext, the '
               'full-bound bits/dim, FID and sampling time of the run:\n  %s',
               'Done' if step >= FLAGS.config.train.num_steps else 'Stopped', step,
               FLAGS.workdir, train.written_outputs(FLAGS.workdir),
               next_command('dfflows.evaluate'))


if __name__ == '__main__':
  app.run(main, flags_parser=parse_flags)
