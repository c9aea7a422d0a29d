"""Samples of a trained model for the metrics: the time to draw them, and many drawn in batches.

Within the key of a sampling stream (`dfflows.rng`), `time_sampling` uses the key itself
(warm-up) and `fold_in(key, 1)` (timed), and `draw_samples` batch i `fold_in(key,
FIRST_DRAW + i)`, so that the two never share numbers.
"""
import math
import time
from typing import Any, Callable, Optional

import jax
import numpy as np
from absl import logging

FIRST_DRAW = 100  # draw_samples' batch i uses fold_in(key, FIRST_DRAW + i).


def time_sampling(sample: Callable, params: Any, key: jax.Array, num: int,
                  num_steps: Optional[int], temperature: float) -> float:
  """Seconds to draw `num` samples, after a warm-up call that compiles."""
  jax.block_until_ready(sample(params, key, num=num, num_steps=num_steps, temperature=temperature))
  t0 = time.perf_counter()
  jax.block_until_ready(sample(params, jax.random.fold_in(key, 1), num=num, num_steps=num_steps,
                               temperature=temperature))
  return time.perf_counter() - t0


def draw_samples(sample: Callable, params: Any, key: jax.Array, num: int, num_steps: int,
                 temperature: float, batch: int) -> np.ndarray:
  """`num` samples drawn `batch` at a time (batch i from fold_in(key, FIRST_DRAW + i)), logged."""
  t0 = time.perf_counter()
  parts = []
  for i in range(math.ceil(num / batch)):
    parts.append(np.asarray(sample(params, jax.random.fold_in(key, FIRST_DRAW + i), num=batch,
                                   num_steps=num_steps, temperature=temperature)))
    logging.info('  %d of %d samples (%.0f s)', min((i + 1) * batch, num), num,
                 time.perf_counter() - t0)
  return np.concatenate(parts)[:num]
