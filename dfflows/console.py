"""What the command-line entry points print: library INFO lines only on request, and a
bad config as one line that names the key instead of a traceback.

Import it first: it turns TF's C++ INFO lines (tf.data buffer sizes) off unless
TF_CPP_MIN_LOG_LEVEL is already set, and imports TensorFlow with the process's native
stderr closed, since TF's import-time lines (oneDNN, CUDA stubs, cuInit) ignore that
level; with --verbosity on the command line they are shown. TF only feeds data, so it is
also kept off every GPU (JAX's).
"""
import logging as py_logging
import os
import sys
import traceback
from typing import List

from absl import app
from absl import flags
from absl import logging

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '1')


def _import_tensorflow(silence_native_stderr: bool) -> None:
  """Imports TensorFlow and hides the GPUs from it, optionally with fd 2 on /dev/null."""
  saved = os.dup(2) if silence_native_stderr else None
  if saved is not None:
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)
  try:
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    tf.config.set_visible_devices([], 'GPU')
  finally:
    if saved is not None:
      sys.stderr.flush()
      os.dup2(saved, 2)
      os.close(saved)


_import_tensorflow(silence_native_stderr=not any(a.startswith(('--verbosity', '-v'))
                                                 for a in sys.argv[1:]))

# INFO lines of these libraries (orbax's checkpoint internals, TFDS's dataset
# construction, ...) are shown only with --verbosity=1 or more.
QUIET_LIBRARIES = ('/orbax/', '/tensorflow_datasets/', '/clu/', '/etils/', '/tensorflow/',
                   '/jax/')


class QuietLibraries(py_logging.Filter):
  """Drops INFO (and lower) records that come from QUIET_LIBRARIES."""

  def filter(self, record: py_logging.LogRecord) -> bool:
    return record.levelno >= py_logging.WARNING or not any(
        lib in record.pathname for lib in QUIET_LIBRARIES)


def quiet_libraries(verbosity: int) -> None:
  """Installs QuietLibraries on absl's handler and turns TFDS's progress bars (preparing a
  dataset) off, unless `verbosity` (--verbosity) is 1 or more."""
  if verbosity < 1:
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
    logging.get_absl_handler().addFilter(QuietLibraries())
    tfds.display_progress_bar(False)


def parse_flags(argv: List[str]) -> List[str]:
  """absl's flag parsing (`app.run(main, flags_parser=parse_flags)`); a config that fails
  to load, an unknown `--config.` key, or a loaded config with a key missing or unknown, a
  value of the wrong type or a value the code does not accept (`config_checks.check_values`)
  exits with one line naming the key."""
  try:
    rest = app.parse_flags_with_usage(argv)
  except (AttributeError, KeyError, TypeError, ValueError) as error:
    sys.exit(f'FATAL config error: {config_error(argv, error)}')
  if 'config' in flags.FLAGS and flags.FLAGS.config is not None:
    from dfflows.training import config_checks  # pylint: disable=g-import-not-at-top
    try:
      config_checks.check_values(flags.FLAGS.config)  # Before any work.
    except ValueError as error:
      sys.exit(f'FATAL config error: {error}')
  return rest


def config_error(argv: List[str], error: Exception) -> str:
  """What went wrong while loading the --config file or applying a --config.KEY override."""
  if 'cannot be added since the config is locked' in str(error):
    # A misspelt key in a config file (configs/default.py returns a locked config).
    frames = [f for f in traceback.extract_tb(error.__traceback__)
              if '/ml_collections/' not in f.filename and '/absl/' not in f.filename]
    hint = str(error).strip('\'"').split('\\n')[-1]
    return (f'{frames[-1].filename}, line {frames[-1].lineno}: `{frames[-1].line}` sets a key '
            f'the config does not have. {hint}')
  from dfflows.training import config_checks  # pylint: disable=g-import-not-at-top
  for arg in argv:
    if arg.startswith('--config.'):
      message = config_checks.unknown_key(arg[len('--config.'):].split('=')[0])
      if message:
        return message
  return str(error)
