"""TFDS builder `mnist_idx`: MNIST read from the four IDX files in a local directory.

Point TFDS at a directory holding `train-images-idx3-ubyte`, `train-labels-idx1-ubyte`,
`t10k-images-idx3-ubyte` and `t10k-labels-idx1-ubyte` (each optionally `.gz`):

  tfds.load('mnist_idx', builder_kwargs={'config': config_name('/path/to/mnist')},
            download_and_prepare_kwargs={'download_config':
                tfds.download.DownloadConfig(manual_dir='/path/to/mnist')})

Splits: 'train' (train-* files) and 'test' (t10k-* files). Nothing is downloaded.
The builder config `config_name(manual_dir)` names the files' content, so IDX files
that differ are prepared into their own directory of `data_dir` (TFDS reuses a
prepared config whatever `manual_dir` says).
"""
import hashlib
import re
from typing import Optional

import numpy as np
import tensorflow_datasets as tfds

from dfflows.data import idx


CONFIG_PATTERN = re.compile(r'files_[0-9a-f]{16}')


def config_name(manual_dir: str) -> str:
  """'files_' + the first 16 hex digits of the sha256 of the four IDX files in `manual_dir`."""
  digest = hashlib.sha256()
  for stem in (stem for pair in idx.MNIST_FILES.values() for stem in pair):
    path = idx.find_idx_file(manual_dir, stem)
    digest.update(stem.encode())
    with open(path, 'rb') as f:
      digest.update(f.read())
  return f'files_{digest.hexdigest()[:16]}'


def mnist_info(builder: tfds.core.GeneratorBasedBuilder,
               description: str) -> tfds.core.DatasetInfo:
  """DatasetInfo of an MNIST builder: image, label and 'index' (position in the source
  files; TFDS reorders examples)."""
  return builder.dataset_info_from_configs(
      description=description,
      features=tfds.features.FeaturesDict({
          'image': tfds.features.Image(shape=(28, 28, 1)),
          'label': tfds.features.ClassLabel(num_classes=10),
          'index': tfds.features.Scalar(dtype=np.int64),
      }),
      supervised_keys=('image', 'label'),
      homepage='http://yann.lecun.com/exdb/mnist/',
  )


class MnistIdx(tfds.core.GeneratorBasedBuilder):
  """MNIST (LeCun et al.) from local IDX files in the TFDS manual_dir."""

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'Initial release.'}
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
      'Place the four MNIST IDX files (train-images-idx3-ubyte, train-labels-idx1-ubyte, '
      't10k-images-idx3-ubyte, t10k-labels-idx1-ubyte; gzipped or not) in manual_dir.')

  @classmethod
  def get_builder_config(cls, name: str,
                         version: Optional[str] = None) -> Optional[tfds.core.BuilderConfig]:
    """The config of IDX files whose content `config_name` names; None for other names."""
    del version  # Every config has the builder's VERSION.
    if not CONFIG_PATTERN.fullmatch(name):
      return None
    return tfds.core.BuilderConfig(name=name, description=f'IDX files of content {name}.')

  def _info(self) -> tfds.core.DatasetInfo:
    return mnist_info(self, __doc__)

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    manual_dir = str(dl_manager.manual_dir)
    # Read (and validate) every file before writing anything.
    arrays = {split: idx.read_mnist_split(manual_dir, split) for split in idx.MNIST_FILES}
    return {split: self._generate_examples(*arrays[split]) for split in arrays}

  def _generate_examples(self, images, labels):
    for i, (image, label) in enumerate(zip(images, labels)):
      yield i, {'image': image[..., None], 'label': int(label), 'index': i}
