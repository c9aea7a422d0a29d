"""What a figure was measured on: CPU model, JAX backend and devices (printed with every figure)."""
import os

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
