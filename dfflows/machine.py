"""What a figure was measured on: CPU model, JAX backend and devices, and the code's commit."""
import datetime
import os
import subprocess
from typing import Dict

import jax


def cpu_model() -> str:
  """The CPU model name from /proc/cpuinfo ('unknown CPU' where there is none)."""
  try:
    with open('/proc/cpuinfo') as f:
      for line in f:
        if line.startswith('model name'):
          return line.split(':', 1)[1].strip()
  except OSError:
    pass
  return 'unknown CPU'


def describe() -> str:
  """One line: CPU model and core count, jax version, backend and device count."""
  return (f'{cpu_model()} ({os.cpu_count()} cores), jax {jax.__version__} on '
          f'{jax.default_backend()} x{jax.device_count()}')


def git_commit() -> str:
  """The short commit of the dfflows checkout (with '+changes' if it has uncommitted edits),
  or 'unknown' outside a git checkout."""
  here = os.path.dirname(os.path.abspath(__file__))
  try:
    commit = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], cwd=here, check=True,
                            capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(['git', 'status', '--porcelain', '--untracked-files=no'], cwd=here,
                           check=True, capture_output=True, text=True).stdout.strip()
  except (OSError, subprocess.CalledProcessError):
    return 'unknown'
  return commit + ('+changes' if dirty else '')


def provenance() -> Dict[str, str]:
  """Date, machine and commit, for the JSON files that hold measured numbers."""
  return {'date': datetime.datetime.now().isoformat(timespec='seconds'), 'machine': describe(),
          'commit': git_commit()}
