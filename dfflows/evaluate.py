"""Evaluates a trained run: bits/dim (full bound), FID, sampling time, eps-MSE.

  python -m dfflows.evaluate --config=configs/default.py --workdir=runs/default \
      [--checkpoint=best|latest] [--config.eval.num_examples=N] \
      [--config.eval.fid_num_samples=N] [--config.diffusion.sample_steps=N]

Writes <workdir>/eval.json and prints it as a table. The metrics and what they mean are
in `dfflows.evaluation`; the eval and sampler settings come from --config (the
model's must be the run's).
"""
from dfflows import console  # First: it imports TensorFlow quietly.
from absl import app, flags  # pylint: disable=g-bad-import-order,wrong-import-order
from ml_collections import config_flags

from dfflows import evaluation
from dfflows.training.run import CHECKPOINTS

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file('config', None, 'Config file of the run.', lock_config=True)
flags.DEFINE_string('workdir', None, 'Workdir of the run.')
flags.DEFINE_enum('checkpoint', 'best', list(CHECKPOINTS), 'Which checkpoint (EMA params).')


def main(argv):
  """Runs the evaluation and prints a table."""
  del argv
  console.quiet_libraries(FLAGS.verbosity)
  result = evaluation.evaluate_run(FLAGS.config, FLAGS.workdir, FLAGS.checkpoint)
  width = max(map(len, result))
  print('\n'.join(f'{k:<{width}}  {v:.4g}' if isinstance(v, float) else f'{k:<{width}}  {v}'
                  for k, v in result.items()))


if __name__ == '__main__':
  flags.mark_flags_as_required(['config', 'workdir'])
  app.run(main, flags_parser=console.parse_flags)
