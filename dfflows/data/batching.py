"""Deterministic, multi-process batching of in-memory image arrays (numpy only).

`train_batches` yields resumable training batches whose global batch at step s
depends only on (seed, s); `eval_batches` yields padded, masked evaluation
batches. Kept apart from the TFDS input pipeline so that training and benchmark
code can use it without importing TensorFlow.
"""
from typing import Iterator

import numpy as np


def _steps_per_epoch(num_examples: int, global_batch_size: int) -> int:
  """Returns full batches per epoch (the remainder is dropped); errors if zero."""
  if global_batch_size <= 0:
    raise ValueError(f'global_batch_size must be positive, got {global_batch_size}.')
  if global_batch_size > num_examples:
    raise ValueError(f'global_batch_size {global_batch_size} exceeds the dataset size '
                     f'{num_examples}.')
  return num_examples // global_batch_size


def _process_slice(batch_size: int, process_index: int, process_count: int) -> slice:
  """Returns this process's contiguous slice of a global batch of `batch_size`."""
  if process_count <= 0 or not 0 <= process_index < process_count:
    raise ValueError(f'Need 0 <= process_index < process_count, got {process_index}, '
                     f'{process_count}.')
  if batch_size % process_count:
    raise ValueError(f'Global batch size {batch_size} is not divisible by process_count '
                     f'{process_count}.')
  local = batch_size // process_count
  return slice(process_index * local, (process_index + 1) * local)


def train_batches(images: np.ndarray, global_batch_size: int, seed: int, start_step: int = 0,
                  process_index: int = 0, process_count: int = 1) -> Iterator[np.ndarray]:
  """Yields this process's share of the global batches at steps start_step, start_step+1, ...

  The global batch at step s holds entries [i B, (i + 1) B) of the permutation
  `np.random.default_rng((seed, s // E))` draws for its epoch, where i = s mod E and
  E = len(images) // B full batches per epoch (the remainder is dropped).
  """
  if seed < 0 or start_step < 0:
    raise ValueError(f'seed and start_step must be >= 0, got {seed}, {start_step}.')
  num_examples = len(images)
  steps_per_epoch = _steps_per_epoch(num_examples, global_batch_size)
  local = _process_slice(global_batch_size, process_index, process_count)
  step, epoch, perm = start_step, None, None
  while True:
    if step // steps_per_epoch != epoch:
      epoch = step // steps_per_epoch
      perm = np.random.default_rng((seed, epoch)).permutation(num_examples)
    i = step % steps_per_epoch
    yield images[perm[i * global_batch_size:(i + 1) * global_batch_size][local]]
    step += 1


def eval_batches(images: np.ndarray, batch_size: int, num_examples: int = 0,
                 process_index: int = 0, process_count: int = 1,
                 ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
  """Yields (images, mask) covering the first `num_examples` (0 = all) exactly once.

  `batch_size` is the global batch; every process yields the same number of batches
  (its contiguous slice of each). The last global batch is zero-padded; `mask` is
  float32 [batch_size // process_count], 1.0 for real examples and 0.0 for padding.
  """
  total = len(images)
  num_examples = num_examples or total
  if not 0 < num_examples <= total:
    raise ValueError(f'num_examples {num_examples} must be in 1..{total} (0 = all).')
  if batch_size <= 0:
    raise ValueError(f'batch_size must be positive, got {batch_size}.')
  local = _process_slice(batch_size, process_index, process_count)
  for start in range(0, num_examples, batch_size):
    index = np.arange(start, start + batch_size)[local]
    mask = (index < num_examples).astype(np.float32)
    batch = images[np.minimum(index, num_examples - 1)]
    batch[mask == 0] = 0
    yield batch, mask
