"""What the command-line entry points print: library INFO lines only on request.

Import it before TensorFlow: it turns TF's C++ INFO lines (oneDNN, tf.data buffer
sizes) off unless TF_CPP_MIN_LOG_LEVEL is already set.
"""
import logging as py_logging
import os

from absl import logging

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '1')

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
  """Installs QuietLibraries on absl's handler unless `verbosity` (--verbosity) is 1 or more."""
  if verbosity < 1:
    logging.get_absl_handler().addFilter(QuietLibraries())
