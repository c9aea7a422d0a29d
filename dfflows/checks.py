"""Input and option checks shared by the layers and models: one message format for each."""
from typing import Sequence

import jax


def check_nhwc(x: jax.Array, layer: str) -> None:
  """Raises ValueError unless `x` is a batched NHWC array [B, H, W, C]."""
  if x.ndim != 4:
    raise ValueError(
        f'{layer} expects a batched NHWC array [B, H, W, C]; got shape {x.shape}.')


def check_choice(layer: str, name: str, value: str, choices: Sequence[str]) -> None:
  """Raises ValueError unless the option `name` of `layer` is one of `choices`."""
  if value not in choices:
    raise ValueError(f'{layer}: {name}={value!r} is not one of {tuple(choices)}.')


def check_at_least(layer: str, name: str, value: float, low: float) -> None:
  """Raises ValueError unless the option `name` of `layer` is at least `low`."""
  if not value >= low:
    raise ValueError(f'{layer}: {name}={value!r} must be at least {low}.')
