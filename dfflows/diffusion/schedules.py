"""Noise schedules and timestep respacing (Improved DDPM conventions).

Betas are indexed by t in 0..T-1 as in improved-diffusion: betas[t] is the
paper's beta_{t+1}, the variance of the forward step that produces x_t (with
the data being the state before step 0). Schedules are float64 numpy arrays;
the diffusion casts them after precomputing its constants.
"""
import math
from typing import Callable, List, Sequence, Union

import numpy as np

SCHEDULES = ('linear', 'cosine')
COSINE_OFFSET = 0.008  # o of Improved DDPM's cosine schedule.


def linear_beta_schedule(num_timesteps: int) -> np.ndarray:
  """DDPM's linear betas 1e-4..0.02, rescaled to T steps as improved-diffusion does."""
  scale = 1000.0 / num_timesteps
  if 0.02 * scale >= 1.0:
    raise ValueError(f'The linear schedule needs num_timesteps > 20, got {num_timesteps}.')
  return np.linspace(scale * 1e-4, scale * 0.02, num_timesteps, dtype=np.float64)


def betas_for_alpha_bar(num_timesteps: int, alpha_bar: Callable[[float], float],
                        max_beta: float = 0.999) -> np.ndarray:
  """Betas beta_i = min(1 - alpha_bar((i+1)/T) / alpha_bar(i/T), max_beta)."""
  betas = [min(1.0 - alpha_bar((i + 1) / num_timesteps) / alpha_bar(i / num_timesteps),
               max_beta) for i in range(num_timesteps)]
  return np.asarray(betas, dtype=np.float64)


def cosine_alpha_bar(s: float) -> float:
  """Improved DDPM's cumulative signal fraction cos^2((s + o) / (1 + o) * pi / 2)."""
  return math.cos((s + COSINE_OFFSET) / (1.0 + COSINE_OFFSET) * math.pi / 2) ** 2


def get_beta_schedule(name: str, num_timesteps: int) -> np.ndarray:
  """Returns the float64 betas [T] of schedule `name` ('linear' | 'cosine')."""
  if num_timesteps < 1:
    raise ValueError(f'num_timesteps must be >= 1, got {num_timesteps}.')
  if name == 'linear':
    return linear_beta_schedule(num_timesteps)
  if name == 'cosine':
    return betas_for_alpha_bar(num_timesteps, cosine_alpha_bar)
  raise ValueError(f'Unknown beta schedule {name!r}; expected one of {SCHEDULES}.')


def _ddim_timesteps(num_timesteps: int, desired_count: int) -> List[int]:
  """Timesteps range(0, T, stride) for the integer stride giving `desired_count` steps."""
  for stride in range(1, num_timesteps + 1):
    if len(range(0, num_timesteps, stride)) == desired_count:
      return list(range(0, num_timesteps, stride))
  raise ValueError(f'Cannot create exactly {desired_count} DDIM steps from {num_timesteps} '
                   'timesteps with an integer stride.')


def space_timesteps(num_timesteps: int,
                    num_steps: Union[int, str, Sequence[int]]) -> List[int]:
  """Sorted kept timesteps, evenly strided per section (improved-diffusion respacing).

  Args:
    num_timesteps: T of the original process.
    num_steps: an int (one section), a sequence of per-section counts (the range
      0..T-1 is split into that many equal sections), a comma-separated string of
      such counts, or 'ddimN' (stride chosen so that exactly N steps remain).

  Returns:
    The sorted list of kept original timesteps.
  """
  if isinstance(num_steps, str):
    if num_steps.startswith('ddim'):
      return _ddim_timesteps(num_timesteps, int(num_steps[len('ddim'):]))
    num_steps = [int(x) for x in num_steps.split(',')]
  section_counts = [num_steps] if isinstance(num_steps, (int, np.integer)) else list(num_steps)
  size_per, extra = divmod(num_timesteps, len(section_counts))
  start, kept = 0, []
  for i, count in enumerate(section_counts):
    size = size_per + (1 if i < extra else 0)
    if not 1 <= count <= size:
      raise ValueError(f'Cannot keep {count} steps of a section of {size} timesteps.')
    stride = 1.0 if count <= 1 else (size - 1) / (count - 1)
    kept += [start + round(j * stride) for j in range(count)]
    start += size
  return sorted(set(kept))
