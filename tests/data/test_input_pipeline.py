"""Tests of load_split (on mock TFDS data) and the deterministic batching."""
import itertools

import ml_collections
import numpy as np
import pytest
import tensorflow_datasets as tfds

from dfflows.data import batching
from dfflows.data import input_pipeline as ip


def _config(name, image_size, channels, **kwargs):
  return ml_collections.ConfigDict(dict(name=name, data_dir='', manual_dir='',
                                        image_size=image_size, channels=channels,
                                        validation_percent=10, **kwargs))


def _images(n, shape=(2, 2, 1)):
  """Images whose first pixel is the example index (mod 256), so indices are recoverable."""
  images = np.zeros((n,) + shape, np.uint8)
  images[:, 0, 0, 0] = np.arange(n) % 256
  return images


@pytest.mark.parametrize('name, size, channels', [
    ('mnist', 32, 1), ('cifar10', 32, 3), ('celeb_a', 64, 3)])
def test_load_split_mock_shapes(name, size, channels):
  with tfds.testing.mock_data(num_examples=6):
    images, labels = ip.load_split(_config(name, size, channels), 'train')
  assert images.shape == (6, size, size, channels) and images.dtype == np.uint8
  assert labels.shape == (6,) and labels.dtype == np.int32
  assert images.max() > 0


def test_load_split_mnist_mock_is_centered_padding():
  with tfds.testing.mock_data(num_examples=4):
    padded, labels = ip.load_split(_config('mnist', 32, 1), 'test')
    raw = tfds.as_numpy(tfds.load('mnist', split='test', batch_size=4))
  raw = next(iter(raw))
  np.testing.assert_array_equal(padded[:, 2:30, 2:30], raw['image'])
  np.testing.assert_array_equal(labels, raw['label'])
  assert padded[:, :2].sum() == 0 and padded[:, 30:].sum() == 0
  assert padded[:, :, :2].sum() == 0 and padded[:, :, 30:].sum() == 0


def test_load_split_celeb_a_center_crop_resize():
  with tfds.testing.mock_data(num_examples=2):
    images, _ = ip.load_split(_config('celeb_a', 37, 3), 'train')
    raw = next(iter(tfds.as_numpy(tfds.load('celeb_a', split='train', batch_size=2))))
  # Independent numpy reference: 148x148 center crop, then 4x4 block means (148/4 = 37).
  top, left = (218 - 148) // 2, (178 - 148) // 2
  crop = raw['image'][:, top:top + 148, left:left + 148].astype(np.float64)
  expected = crop.reshape(2, 37, 4, 37, 4, 3).mean(axis=(2, 4))
  assert np.abs(images.astype(np.float64) - expected).max() <= 0.5 + 1e-3


@pytest.mark.parametrize('config, message', [
    (_config('imagenet', 32, 3), 'Unknown dataset .*mnist_embedded, mnist, mnist_idx, cifar10, celeb_a'),
    (_config('cifar10', 32, 1), 'cifar10.* 3 channel'),
    (_config('mnist', 32, 3), 'mnist.* 1 channel'),
    (_config('celeb_a', 256, 3), 'exceeds the 148px crop'),
])
def test_load_split_config_errors(config, message):
  with pytest.raises(ValueError, match=message):
    ip.load_split(config, 'train')


@pytest.mark.parametrize('config, message', [
    (_config('mnist', 31, 1), 'center-pad'),
    (_config('mnist', 24, 1), 'center-pad'),
    (_config('cifar10', 64, 3), r'expected \(64, 64, 3\)'),
])
def test_load_split_size_errors(config, message):
  with tfds.testing.mock_data(num_examples=2):
    with pytest.raises(ValueError, match=message):
      ip.load_split(config, 'train')


@pytest.mark.parametrize('name, size, channels, real', [
    ('mnist', 32, 1, 784), ('mnist_idx', 32, 1, 784), ('mnist_embedded', 32, 1, 784),
    ('mnist_embedded', 28, 1, 784), ('mnist', 64, 1, 784),
    ('cifar10', 32, 3, 3072), ('celeb_a', 64, 3, 12288), ('celeb_a', 37, 3, 4107)])
def test_real_pixel_count_is_the_unpadded_size(name, size, channels, real):
  assert ip.real_pixel_count(_config(name, size, channels)) == real


def test_real_pixel_count_counts_the_pixels_load_split_does_not_pad():
  with tfds.testing.mock_data(num_examples=4):
    padded, _ = ip.load_split(_config('mnist', 36, 1), 'test')
    raw = next(iter(tfds.as_numpy(tfds.load('mnist', split='test', batch_size=4))))['image']
  assert ip.real_pixel_count(_config('mnist', 36, 1)) == raw[0].size == 784 < padded[0].size
  np.testing.assert_array_equal(padded[:, 4:32, 4:32], raw)  # The rest is zero padding.
  assert padded.astype(np.int64).sum() == raw.astype(np.int64).sum()


@pytest.mark.parametrize('config, message', [
    (_config('mnist', 24, 1), 'center-pad'), (_config('mnist_idx', 31, 1), 'center-pad'),
    (_config('imagenet', 32, 3), 'Unknown dataset')])
def test_real_pixel_count_errors(config, message):
  with pytest.raises(ValueError, match=message):
    ip.real_pixel_count(config)


@pytest.mark.parametrize('images, message', [
    (np.full((2, 4, 4, 1), 0.5, np.float32), r'uint8 .* float32 with range \[0.5, 0.5\]'),
    (np.full((2, 4, 4, 1), 300, np.int32), r'uint8 .* int32 with range \[300, 300\]'),
    (np.zeros((4, 4, 1), np.uint8), 'rank 4'),
])
def test_check_images_errors(images, message):
  with pytest.raises(ValueError, match=message):
    ip.check_images(images)


def test_train_batches_pure_in_seed_and_step():
  images = _images(23)
  a = list(itertools.islice(batching.train_batches(images, 4, seed=3), 12))
  b = list(itertools.islice(batching.train_batches(images, 4, seed=3), 12))
  c = list(itertools.islice(batching.train_batches(images, 4, seed=4), 12))
  for step, (x, y) in enumerate(zip(a, b)):
    np.testing.assert_array_equal(x, y)
    epoch, i = divmod(step, 23 // 4)  # Batch i of epoch `epoch`'s permutation of (3, epoch).
    perm = np.random.default_rng((3, epoch)).permutation(23)
    np.testing.assert_array_equal(x[:, 0, 0, 0], perm[4 * i:4 * i + 4])
  assert any((x != z).any() for x, z in zip(a, c))


def test_train_batches_resume_equals_continuation():
  images = _images(23)
  full = list(itertools.islice(batching.train_batches(images, 4, seed=1), 20))
  for start in (0, 3, 5, 11, 17):
    resumed = list(itertools.islice(batching.train_batches(images, 4, seed=1, start_step=start), 20 - start))
    for x, y in zip(full[start:], resumed):
      np.testing.assert_array_equal(x, y)


def test_train_batches_each_epoch_is_a_permutation():
  n, batch = 23, 4  # 5 steps per epoch; 3 examples dropped each epoch.
  batches = list(itertools.islice(batching.train_batches(_images(n), batch, seed=0), 15))
  epochs = []
  for e in range(3):
    ids = np.concatenate([b[:, 0, 0, 0] for b in batches[5 * e:5 * e + 5]])
    assert len(ids) == 20 and len(set(ids.tolist())) == 20  # No example twice per epoch.
    expected = np.random.default_rng((0, e)).permutation(n)[:20]
    np.testing.assert_array_equal(ids, expected)
    epochs.append(ids)
  assert not np.array_equal(epochs[0], epochs[1])


def test_train_batches_full_epoch_covers_every_example():
  ids = np.concatenate([b[:, 0, 0, 0] for b in itertools.islice(
      batching.train_batches(_images(24), 6, seed=5), 4)])
  np.testing.assert_array_equal(np.sort(ids), np.arange(24))


def test_train_batches_process_slices_concatenate():
  images = _images(30)
  global_batches = list(itertools.islice(batching.train_batches(images, 6, seed=2, start_step=4), 7))
  per_process = [list(itertools.islice(
      batching.train_batches(images, 6, seed=2, start_step=4, process_index=p, process_count=3), 7))
                 for p in range(3)]
  for step, g in enumerate(global_batches):
    parts = [per_process[p][step] for p in range(3)]
    assert all(part.shape == (2, 2, 2, 1) for part in parts)
    np.testing.assert_array_equal(np.concatenate(parts), g)


@pytest.mark.parametrize('kwargs, message', [
    (dict(global_batch_size=5, seed=0, process_count=2), 'not divisible by process_count 2'),
    (dict(global_batch_size=11, seed=0), 'exceeds the dataset size 10'),
    (dict(global_batch_size=0, seed=0), 'must be positive'),
    (dict(global_batch_size=2, seed=0, process_index=2, process_count=2), 'process_index'),
    (dict(global_batch_size=2, seed=-1), '>= 0'),
])
def test_train_batches_errors(kwargs, message):
  with pytest.raises(ValueError, match=message):
    next(batching.train_batches(_images(10), **kwargs))


@pytest.mark.parametrize('n, batch, num_examples, count', [
    (10, 4, 0, 1), (10, 4, 7, 1), (12, 4, 0, 2), (13, 6, 13, 3), (5, 8, 0, 2)])
def test_eval_batches_cover_each_example_once(n, batch, num_examples, count):
  images = _images(n)
  images[:, 1, 1, 0] = 1  # Marks real examples; padding is zeros.
  target = num_examples or n
  per_process = [list(batching.eval_batches(images, batch, num_examples, p, count))
                 for p in range(count)]
  assert len({len(batches) for batches in per_process}) == 1  # Same #batches everywhere.
  seen = []
  for p_batches in per_process:
    for x, mask in p_batches:
      assert x.shape == (batch // count, 2, 2, 1) and mask.dtype == np.float32
      np.testing.assert_array_equal(mask, x[:, 1, 1, 0].astype(np.float32))
      seen.extend(x[mask == 1, 0, 0, 0].tolist())
  assert sorted(seen) == list(range(target))


@pytest.mark.parametrize('kwargs, message', [
    (dict(batch_size=3, process_count=2), 'not divisible'),
    (dict(batch_size=4, num_examples=11), 'num_examples 11'),
    (dict(batch_size=0), 'positive'),
])
def test_eval_batches_errors(kwargs, message):
  with pytest.raises(ValueError, match=message):
    next(batching.eval_batches(_images(10), **kwargs))
