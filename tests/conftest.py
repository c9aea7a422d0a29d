"""Fixtures shared by the whole suite."""
import pytest


@pytest.fixture(scope='session')
def data_dir(tmp_path_factory):
  """One TFDS data_dir for the embedded dataset, prepared once per test session."""
  return str(tmp_path_factory.mktemp('tfds'))
