"""Writes IDX files for tests (independent of the reader under test)."""
import gzip
import os

import numpy as np


def idx_bytes(array: np.ndarray) -> bytes:
  """Returns the IDX encoding of a uint8 array (magic 0x0000 08 ndim, big-endian dims)."""
  header = bytes([0, 0, 0x08, array.ndim])
  header += b''.join(int(d).to_bytes(4, 'big') for d in array.shape)
  return header + np.ascontiguousarray(array, np.uint8).tobytes()


def write_idx(path: str, array: np.ndarray) -> None:
  """Writes `array` to `path` as IDX, gzipped if the name ends in '.gz'."""
  opener = gzip.open if path.endswith('.gz') else open
  with opener(path, 'wb') as f:
    f.write(idx_bytes(array))


def write_fake_mnist(directory: str, num_train: int, num_test: int, seed: int = 0,
                     gz: bool = True) -> dict:
  """Writes a tiny random MNIST (four IDX files); returns {split: (images, labels)}."""
  rng = np.random.default_rng(seed)
  suffix = '.gz' if gz else ''
  arrays = {}
  for split, prefix, n in (('train', 'train', num_train), ('test', 't10k', num_test)):
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, (n,), dtype=np.uint8)
    write_idx(os.path.join(directory, f'{prefix}-images-idx3-ubyte{suffix}'), images)
    write_idx(os.path.join(directory, f'{prefix}-labels-idx1-ubyte{suffix}'), labels)
    arrays[split] = (images, labels)
  return arrays
