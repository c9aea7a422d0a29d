"""Trains a DiffFlow (or a baseline) from an ml_collections config file.

  python -m dfflows.main --config=configs/default.py --workdir=runs/default \
      [--config.train.num_steps=1000 ...]

Rerunning the same command resumes from the latest checkpoint in --workdir.
"""
import logging as py_logging
import os
import sys

# TensorFlow's C++ INFO lines (oneDNN, tf.data buffer sizes) unless the user set a level.
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '1')
import tensorflow as tf  # pylint: disable=g-import-not-at-top,wrong-import-position
from absl import app, flags, logging  # pylint: disable=g-import-not-at-top,wrong-import-position
from ml_collections import config_flags  # pylint: disable=g-import-not-at-top,wrong-import-position

from dfflows import train  # pylint: disable=g-import-not-at-top,wrong-import-position

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file('config', None, 'Training config file.', lock_config=True)
flags.DEFINE_string('workdir', None, 'Directory for checkpoints, metrics and samples.')
flags.mark_flags_as_required(['config', 'workdir'])
# INFO lines of these libraries (orbax's checkpoint internals, TFDS's dataset
# construction, ...) are shown only with --verbosity=1 or more.
QUIET_LIBRARIES = ('/orbax/', '/tensorflow_datasets/', '/clu/', '/etils/', '/tensorflow/',
                   '/jax/')


class _QuietLibraries(py_logging.Filter):
  """Drops INFO (and lower) records that come from QUIET_LIBRARIES."""

  def filter(self, record: py_logging.LogRecord) -> bool:
    return record.levelno >= py_logging.WARNING or not any(
        lib in record.pathname for lib in QUIET_LIBRARIES)


def quiet_libraries() -> None:
  """Installs the filter on absl's handler unless --verbosity asks for more."""
  if FLAGS.verbosity < 1:
    logging.get_absl_handler().addFilter(_QuietLibraries())


def next_command(module: str) -> str:
  """This command's config flags with `module` in place of dfflows.main."""
  args = [a for a in sys.argv[1:] if a.startswith(('--config', '--workdir'))]
  return f'python -m {module} ' + ' '.join(args)


def main(argv):
  """Runs training."""
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  # TF only feeds data: keep it off any GPU that JAX uses.
  tf.config.experimental.set_visible_devices([], 'GPU')
  quiet_libraries()
  logging.info('Config:\n%s', FLAGS.config)
  state = train.train_and_evaluate(FLAGS.config, FLAGS.workdir)
  step = int(state.step)
  logging.info('%s at step %d. Wrote in %s: %s (and TensorBoard events).\nNext, the '
               'full-bound bits/dim, FID and sampling time of the run:\n  %s',
               'Done' if step >= FLAGS.config.train.num_steps else 'Stopped', step,
               FLAGS.workdir, train.written_outputs(FLAGS.workdir),
               next_command('dfflows.evaluate'))


if __name__ == '__main__':
  app.run(main)
