"""Config file of tests.helpers.tiny_config for subprocess tests: --config=tests/tiny_config.py."""
from tests.helpers import tiny_config


def get_config():
  """The tiny DiffFlow config of the unit tests."""
  return tiny_config('diffflow')
