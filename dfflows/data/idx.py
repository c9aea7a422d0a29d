"""Reader for the IDX file format of the MNIST distribution (LeCun et al.).

An IDX file is a 4-byte magic number (two zero bytes, a type code, the number of
dimensions), one big-endian uint32 per dimension, then the data in C order. MNIST
ships as `{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]`.

Written by hand (a few lines of `struct`) because neither numpy nor TFDS exposes a
public IDX reader, and we want validation with errors that name the bad file.
"""
import gzip
import os
import struct
from typing import Optional, Sequence

import numpy as np

# IDX type code -> big-endian numpy dtype.
IDX_DTYPES = {
    0x08: np.dtype('>u1'),
    0x09: np.dtype('>i1'),
    0x0B: np.dtype('>i2'),
    0x0C: np.dtype('>i4'),
    0x0D: np.dtype('>f4'),
    0x0E: np.dtype('>f8'),
}

MNIST_FILES = {
    'train': ('train-images-idx3-ubyte', 'train-labels-idx1-ubyte'),
    'test': ('t10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte'),
}
MNIST_NUM_EXAMPLES = {'train': 60_000, 'test': 10_000}


def parse_idx(data: bytes, name: str = '<bytes>') -> np.ndarray:
  """Parses the bytes of one IDX file into an array (native byte order)."""
  if len(data) < 4:
    raise ValueError(f'{name}: corrupt IDX file, only {len(data)} bytes.')
  zero0, zero1, type_code, ndim = struct.unpack('>BBBB', data[:4])
  if zero0 != 0 or zero1 != 0 or type_code not in IDX_DTYPES or ndim == 0:
    raise ValueError(
        f'{name}: corrupt IDX file, bad magic number 0x{data[:4].hex()} '
        f'(expected 0x0000 + type code in {sorted(IDX_DTYPES)} + ndim > 0).')
  header_size = 4 + 4 * ndim
  if len(data) < header_size:
    raise ValueError(f'{name}: corrupt IDX file, header truncated.')
  shape = struct.unpack(f'>{ndim}I', data[4:header_size])
  dtype = IDX_DTYPES[type_code]
  expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
  if len(data) - header_size != expected:
    raise ValueError(
        f'{name}: corrupt IDX file, header says shape {shape} '
        f'({expected} data bytes) but the file has {len(data) - header_size}.')
  array = np.frombuffer(data, dtype=dtype, offset=header_size).reshape(shape)
  return array.astype(dtype.newbyteorder('='))


def read_idx(path: str) -> np.ndarray:
  """Reads an IDX file, gzip-compressed if its name ends in '.gz'."""
  opener = gzip.open if path.endswith('.gz') else open
  try:
    with opener(path, 'rb') as f:
      data = f.read()
  except (OSError, EOFError) as e:  # gzip.BadGzipFile is an OSError.
    raise ValueError(f'{path}: unreadable IDX file ({e}).') from e
  return parse_idx(data, name=path)


def find_idx_file(directory: str, stem: str) -> str:
  """Returns the path of `stem` or `stem.gz` in `directory`; error naming it if absent."""
  for candidate in (stem + '.gz', stem):
    path = os.path.join(directory, candidate)
    if os.path.exists(path):
      return path
  raise FileNotFoundError(
      f'MNIST file {stem}[.gz] not found in {directory!r}. Put the four MNIST '
      f'IDX files ({", ".join(s for pair in MNIST_FILES.values() for s in pair)}, '
      'optionally gzipped) there.')


def read_mnist_split(
    directory: str, split: str,
    expected_num_examples: Optional[int] = None) -> tuple[np.ndarray, np.ndarray]:
  """Reads MNIST `split` ('train' | 'test') from IDX files: uint8 [N,28,28], uint8 [N]."""
  if split not in MNIST_FILES:
    raise ValueError(f'Unknown MNIST split {split!r}; expected one of {sorted(MNIST_FILES)}.')
  image_path, label_path = (find_idx_file(directory, s) for s in MNIST_FILES[split])
  images, labels = read_idx(image_path), read_idx(label_path)
  _check_mnist_arrays(images, labels, (image_path, label_path), expected_num_examples)
  return images, labels


def _check_mnist_arrays(images: np.ndarray, labels: np.ndarray, paths: Sequence[str],
                        expected_num_examples: Optional[int]) -> None:
  """Raises ValueError unless images/labels look like one MNIST split."""
  if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
    raise ValueError(f'{paths[0]}: expected uint8 images [N, 28, 28], got '
                     f'{images.dtype} {images.shape}.')
  if labels.dtype != np.uint8 or labels.ndim != 1:
    raise ValueError(f'{paths[1]}: expected uint8 labels [N], got {labels.dtype} {labels.shape}.')
  if len(images) != len(labels):
    raise ValueError(f'{paths[0]} has {len(images)} images but {paths[1]} has '
                     f'{len(labels)} labels.')
  if expected_num_examples is not None and len(images) != expected_num_examples:
    raise ValueError(f'{paths[0]}: expected {expected_num_examples} examples, got {len(images)}.')
  if labels.size and labels.max() > 9:
    raise ValueError(f'{paths[1]}: labels must be digits 0..9, found {labels.max()}.')
