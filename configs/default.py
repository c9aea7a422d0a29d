"""The default config: a small DiffFlow on the embedded MNIST subset (2 CPU cores, minutes).

Its keys and values are dfflows' reference config, `dfflows/default_config.py`, which lists
every key a config has; the other configs start from `get_config()` here and override fields.
"""
import ml_collections

from dfflows import default_config


def get_config() -> ml_collections.ConfigDict:
  """Returns the default (CPU-sized) DiffFlow configuration, locked."""
  return default_config.get_config()
