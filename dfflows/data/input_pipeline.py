"""Input pipelines: whole splits as uint8 numpy arrays.

`load_split` returns a preprocessed split in memory; batching (`train_batches`,
`eval_batches`) is in `dfflows.data.batching`, which needs no TensorFlow.
"""
import fcntl
import os
from typing import Callable, Optional

import jax
from jax.experimental import multihost_utils
import ml_collections
import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from dfflows.data.catalog import DATASETS, NATIVE_SHAPES, ZERO_PADDED, center_padding
# Importing the builders registers `mnist_embedded` and `mnist_idx` with TFDS.
from dfflows.data import mnist_embedded  # pylint: disable=unused-import
from dfflows.data import mnist_idx

# CelebA: central 148x148 crop, then area-resize to image_size, as in Real NVP
# (Dinh et al., 2017, Sec. 4.1); the crop keeps the face and drops most background.
CELEBA_CROP = 148
_READ_BATCH = 4096  # Examples per tf.data batch when reading a split into memory.


SPLITS = ('train', 'validation', 'test')


def tfds_split(split: str, validation_percent: int) -> str:
  """The TFDS split string of 'train', 'validation' or 'test'.

  'validation' is the last `validation_percent` % of the dataset's train split and 'train'
  the rest (TFDS's percent slicing: disjoint, together the whole train split); 'test' is the
  dataset's test split. Periodic evaluation and every choice of a hyper-parameter or a
  checkpoint use 'validation'; reported test figures use 'test'.
  """
  if split not in SPLITS:
    raise ValueError(f'Unknown split {split!r}; expected one of {SPLITS}.')
  if not 0 < validation_percent < 100:
    raise ValueError(f'config.data.validation_percent={validation_percent} must be in 1..99.')
  if split == 'test':
    return 'test'
  cut = 100 - validation_percent
  return f'train[:{cut}%]' if split == 'train' else f'train[{cut}%:]'


def load_split(data_config: ml_collections.ConfigDict,
               split: str) -> tuple[np.ndarray, np.ndarray]:
  """Loads `split` ('train' | 'validation' | 'test', see `tfds_split`) of `data_config.name`:
  uint8 images [N, S, S, C] and int32 labels [N]."""
  name = data_config.name
  if name not in NATIVE_SHAPES:
    raise ValueError(f'Unknown dataset {name!r}; known datasets: {", ".join(DATASETS)}.')
  channels = NATIVE_SHAPES[name][2]
  if data_config.channels != channels:
    raise ValueError(f'Dataset {name!r} has {channels} channel(s) but config.data.channels '
                     f'is {data_config.channels}.')
  size = data_config.image_size
  if name == 'celeb_a':
    images, labels = _load_celeb_a(data_config, split)
  else:
    images, labels = _load_numpy(data_config, split)
    check_images(images, name)
    images = _pad_to(images, size, name) if name in ZERO_PADDED else images
  if images.shape[1:] != (size, size, channels):
    raise ValueError(f'Dataset {name!r} gives {images.shape[1:]} images, expected '
                     f'({size}, {size}, {channels}) for image_size {size}.')
  check_images(images, name)
  return images, np.asarray(labels, np.int32)


def check_images(images: np.ndarray, name: str = 'images') -> None:
  """Raises ValueError unless `images` is uint8 [N, H, W, C] (values 0..255)."""
  images = np.asarray(images)
  if images.dtype != np.uint8:
    value_range = f'[{images.min()}, {images.max()}]' if images.size else 'empty'
    raise ValueError(f'{name}: expected uint8 pixel values in 0..255, got {images.dtype} '
                     f'with range {value_range}.')
  if images.ndim != 4:
    raise ValueError(f'{name}: expected images of rank 4 [N, H, W, C], got shape {images.shape}.')


def _load_kwargs(data_config: ml_collections.ConfigDict) -> dict:
  """Returns the keyword arguments of `tfds.load` for `data_config`."""
  kwargs = {'data_dir': data_config.get('data_dir') or None}
  if data_config.name == 'mnist_idx':
    manual_dir = data_config.get('manual_dir') or None
    if manual_dir is None:
      raise ValueError("config.data.manual_dir must name the MNIST IDX directory for 'mnist_idx'.")
    kwargs['builder_kwargs'] = {'config': mnist_idx.config_name(manual_dir)}
    kwargs['download_and_prepare_kwargs'] = {
        'download_config': tfds.download.DownloadConfig(manual_dir=manual_dir)}
  return kwargs


def _pad_to(images: np.ndarray, size: int, name: str) -> np.ndarray:
  """Zero-pads square images [N, s, s, C] to [N, size, size, C], centered."""
  before, after = center_padding(images.shape[1], size, name)
  return np.pad(images, ((0, 0), (before, after), (before, after), (0, 0)))


def _load_celeb_a(data_config: ml_collections.ConfigDict,
                  split: str) -> tuple[np.ndarray, np.ndarray]:
  """Loads CelebA `split` center-cropped and resized; labels are all 0 (unconditional)."""
  size = data_config.image_size
  if size > CELEBA_CROP:
    raise ValueError(f'celeb_a: image_size {size} exceeds the {CELEBA_CROP}px crop.')

  def preprocess(example):
    image = tf.image.resize_with_crop_or_pad(example['image'], CELEBA_CROP, CELEBA_CROP)
    image = tf.image.resize(image, (size, size), method='area')
    return tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)

  # In memory: 162,770 train images at 64x64x3 uint8 are ~2 GB; the 218x178 originals
  # (~19 GB) are never held at once since the resize runs inside tf.data.
  return _load_numpy(data_config, split, preprocess)


def _load_numpy(data_config: ml_collections.ConfigDict, split: str,
                preprocess: Optional[Callable[[dict], tf.Tensor]] = None,
                ) -> tuple[np.ndarray, np.ndarray]:
  """Reads a whole TFDS split into memory: images (after `preprocess`), labels (0 if none)."""
  # Not `tfds.load(batch_size=-1)`: under tfds.testing.mock_data that batches by
  # sys.maxsize and aborts the process; fixed-size batches work everywhere.
  _prepare_on_first_process(data_config)
  ds = tfds.load(data_config.name, split=tfds_split(split, data_config.validation_percent),
                 **_load_kwargs(data_config))
  preprocess = preprocess or (lambda example: example['image'])
  ds = ds.map(lambda ex: (preprocess(ex), ex.get('label', tf.constant(0, tf.int64))),
              num_parallel_calls=tf.data.AUTOTUNE)
  batches = list(tfds.as_numpy(ds.batch(_READ_BATCH)))
  if not batches:
    raise ValueError(f'{data_config.name} split {split!r} is empty.')
  return (np.concatenate([b[0] for b in batches]), np.concatenate([b[1] for b in batches]))


def _prepare_on_first_process(data_config: ml_collections.ConfigDict) -> None:
  """Prepares the dataset on process 0 (under a lock file) while the other processes wait."""
  if jax.process_index() == 0:
    _prepare_locked(data_config)
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices(f'dfflows: {data_config.name} prepared')


def _prepare_locked(data_config: ml_collections.ConfigDict) -> None:
  """Prepares the TFDS dataset holding a lock file beside it: processes or separate runs that
  share a data_dir would otherwise race to rename the same prepared directory."""
  kwargs = _load_kwargs(data_config)
  builder = tfds.builder(data_config.name, data_dir=kwargs['data_dir'],
                         **kwargs.get('builder_kwargs', {}))
  lock_dir = os.path.dirname(builder.data_dir)
  os.makedirs(lock_dir, exist_ok=True)
  with open(os.path.join(lock_dir, '.dfflows_prepare.lock'), 'w') as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)  # Released when the file closes.
    builder.download_and_prepare(**kwargs.get('download_and_prepare_kwargs', {}))
