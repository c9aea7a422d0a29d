"""TFDS builder `mnist_embedded`: real MNIST digits shipped inside the package.

The data are the 10,000 images and labels of the official MNIST *test* split
(LeCun, Cortes and Burges, "The MNIST database of handwritten digits",
http://yann.lecun.com/exdb/mnist/), stored as uint8 in
`dfflows/data/embedded/mnist_test.npz` (~1.7 MB, np.savez_compressed), so training
and tests work on a fresh machine without internet. The split is deterministic:
'train' = the first 9,000 of the MNIST test images, 'test' = the last 1,000.

Numbers on this dataset are not comparable with published MNIST results (those
train on the 60,000 MNIST training images and evaluate on all 10,000 test images).
Use `mnist` (downloaded) or `mnist_idx` (local IDX files) for that.
"""
import gzip
import hashlib
import importlib.resources
import os

import numpy as np
import tensorflow_datasets as tfds

from dfflows.data import idx
from dfflows.data.mnist_idx import mnist_info

EMBEDDED_FILE = 'embedded/mnist_test.npz'
NUM_TRAIN = 9_000
NUM_TEST = 1_000
# md5 of the uncompressed official files (as in MNIST's distribution); checked when
# the embedded file is (re)built from the IDX files.
MNIST_TEST_MD5 = {
    't10k-images-idx3-ubyte': '2646ac647ad5339dbf082846283269ea',
    't10k-labels-idx1-ubyte': '27ae3e4e09519cfbb04c329615203637',
}


def embedded_path() -> str:
  """Returns the path of the packaged MNIST test-split file."""
  return str(importlib.resources.files('dfflows.data').joinpath(EMBEDDED_FILE))


def load_embedded_arrays() -> tuple[np.ndarray, np.ndarray]:
  """Returns the packaged MNIST test split: uint8 images [10000,28,28], uint8 labels [10000]."""
  with np.load(embedded_path()) as f:
    images, labels = f['images'], f['labels']
  if images.shape != (NUM_TRAIN + NUM_TEST, 28, 28) or labels.shape != (NUM_TRAIN + NUM_TEST,):
    raise ValueError(f'{embedded_path()}: unexpected shapes {images.shape}, {labels.shape}.')
  return images, labels


def write_embedded_file(idx_dir: str, path: str) -> None:
  """Writes `path` (npz) from the official MNIST test IDX files in `idx_dir`, md5-checked."""
  for stem, md5 in MNIST_TEST_MD5.items():
    file_path = idx.find_idx_file(idx_dir, stem)
    opener = gzip.open if file_path.endswith('.gz') else open
    with opener(file_path, 'rb') as f:
      digest = hashlib.md5(f.read()).hexdigest()
    if digest != md5:
      raise ValueError(f'{file_path}: md5 {digest} != official {md5}.')
  images, labels = idx.read_mnist_split(idx_dir, 'test', expected_num_examples=10_000)
  os.makedirs(os.path.dirname(path) or '.', exist_ok=True)
  np.savez_compressed(path, images=images, labels=labels)


class MnistEmbedded(tfds.core.GeneratorBasedBuilder):
  """The MNIST test split (LeCun et al.) packaged with dfflows: 'train' 9,000 / 'test' 1,000."""

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'MNIST test split, first 9,000 -> train, last 1,000 -> test.'}

  def _info(self) -> tfds.core.DatasetInfo:
    # 'index': the position in the official MNIST test split.
    return mnist_info(self, __doc__)

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    del dl_manager  # Nothing to download: the data ship with the package.
    return {
        'train': self._generate_examples(0, NUM_TRAIN),
        'test': self._generate_examples(NUM_TRAIN, NUM_TRAIN + NUM_TEST),
    }

  def _generate_examples(self, start: int, stop: int):
    images, labels = load_embedded_arrays()
    for i in range(start, stop):
      # Key = index in the official MNIST test split.
      yield i, {'image': images[i][..., None], 'label': int(labels[i]), 'index': i}
