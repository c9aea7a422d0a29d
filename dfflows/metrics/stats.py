"""The mean of a per-example metric and its standard error: the one reducer of every
`mean +- stderr` that dfflows reports (periodic eval, `dfflows.evaluate`, experiments).

The standard error of the mean is the sample standard deviation (n - 1 in the divisor)
over sqrt(n). Batches reduce to `moment_sums` (under `jax.jit` too, with a mask for the
padded rows of the last batch), which add across batches and devices.
"""
import math
from typing import Any, Optional, Tuple

import numpy as np


def moment_sums(values: Any, mask: Any) -> Tuple[Any, Any, Any]:
  """(count, sum, sum of squares) of `values` where `mask` is nonzero (numpy or jax arrays)."""
  m = mask.astype(values.dtype)
  return m.sum(), (values * m).sum(), (values**2 * m).sum()


def mean_and_stderr_of_sums(sums: Any) -> Tuple[float, float]:
  """Mean and standard error of the mean from added `moment_sums` (count, sum, sum of squares)."""
  count, total, total_sq = (float(s) for s in sums)
  if count < 1:
    raise ValueError(f'No values to average (count {count}).')
  mean = total / count
  if count < 2:
    return mean, float('nan')
  var = max(total_sq - count * mean**2, 0.0) / (count - 1)
  return mean, math.sqrt(var / count)


def mean_and_stderr(values: Any, mask: Optional[Any] = None) -> Tuple[float, float]:
  """Mean and standard error of the mean of `values` (where `mask`), in float64 on the host."""
  values = np.asarray(values, np.float64)
  mask = np.ones(values.shape, bool) if mask is None else np.asarray(mask)
  return mean_and_stderr_of_sums(moment_sums(values, mask))
