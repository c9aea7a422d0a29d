"""Trains a DiffFlow (or a baseline) from an ml_collections config file.

  python -m dfflows.main --config=configs/default.py --workdir=runs/default \
      [--config.train.num_steps=1000 ...]

Rerunning the same command resumes from the latest checkpoint in --workdir.
"""
import tensorflow as tf
from absl import app, flags, logging
from ml_collections import config_flags

from dfflows import train

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file('config', None, 'Training config file.', lock_config=True)
flags.DEFINE_string('workdir', None, 'Directory for checkpoints, metrics and samples.')
flags.mark_flags_as_required(['config', 'workdir'])


def main(argv):
  """Runs training."""
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  # TF only feeds data: keep it off any GPU that JAX uses.
  tf.config.experimental.set_visible_devices([], 'GPU')
  logging.info('Config:\n%s', FLAGS.config)
  train.train_and_evaluate(FLAGS.config, FLAGS.workdir)


if __name__ == '__main__':
  app.run(main)
