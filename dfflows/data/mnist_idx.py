"""TFDS builder `mnist_idx`: MNIST read from the four IDX files in a local directory.

Point TFDS at a directory holding `train-images-idx3-ubyte`, `train-labels-idx1-ubyte`,
`t10k-images-idx3-ubyte` and `t10k-labels-idx1-ubyte` (each optionally `.gz`):

  tfds.load('mnist_idx', download_and_prepare_kwargs={'download_config':
      tfds.download.DownloadConfig(manual_dir='/path/to/mnist')})

Splits: 'train' (train-* files) and 'test' (t10k-* files). Nothing is downloaded.
"""
import numpy as np
import tensorflow_datasets as tfds

from dfflows.data import idx


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
