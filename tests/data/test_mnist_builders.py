"""Tests of the TFDS builders `mnist_embedded` and `mnist_idx`."""
import os
import subprocess
import sys

import ml_collections
import numpy as np
import pytest
import tensorflow_datasets as tfds

from dfflows.data import idx
from dfflows.data import input_pipeline
from dfflows.data import mnist_embedded
from tests.data import idx_testing
from tests.helpers import REPO_ROOT, SHARED_MNIST

HAS_SHARED = os.path.isdir(SHARED_MNIST)


def _data_config(name, data_dir, manual_dir='', image_size=32):
  """config.data for `input_pipeline.load_split`."""
  return ml_collections.ConfigDict(dict(name=name, data_dir=data_dir, manual_dir=manual_dir,
                                        image_size=image_size, channels=1,
                                        validation_percent=10))


def _rows(images):
  """The set of an image array's rows as bytes (TFDS reorders examples)."""
  return sorted(bytes(image) for image in np.asarray(images).reshape(len(images), -1))


def _load_all(name, split, data_dir, manual_dir=None):
  """Returns {feature: numpy array} of a whole split."""
  kwargs = {}
  if manual_dir:
    kwargs['download_and_prepare_kwargs'] = {
        'download_config': tfds.download.DownloadConfig(manual_dir=manual_dir)}
  return tfds.as_numpy(tfds.load(name, split=split, batch_size=-1, data_dir=data_dir,
                                 download=True, **kwargs))


@pytest.fixture(scope='module')
def embedded_dir(tmp_path_factory):
  """A data_dir where `mnist_embedded` was prepared once (offline, ~seconds)."""
  data_dir = str(tmp_path_factory.mktemp('tfds'))
  tfds.builder('mnist_embedded', data_dir=data_dir).download_and_prepare()
  return data_dir


def test_builders_registered():
  assert {'mnist_embedded', 'mnist_idx'} <= set(tfds.list_builders())


def test_packaged_file_is_small_and_complete():
  assert os.path.getsize(mnist_embedded.embedded_path()) < 2_500_000
  images, labels = mnist_embedded.load_embedded_arrays()
  assert images.dtype == np.uint8 and labels.dtype == np.uint8
  assert images.shape == (10_000, 28, 28) and labels.shape == (10_000,)


@pytest.mark.parametrize('split, n, offset', [('train', 9000, 0), ('test', 1000, 9000)])
def test_embedded_splits(embedded_dir, split, n, offset):
  data = _load_all('mnist_embedded', split, embedded_dir)
  images, labels, index = data['image'], data['label'], data['index']
  assert images.shape == (n, 28, 28, 1) and images.dtype == np.uint8
  assert labels.shape == (n,) and set(np.unique(labels)) == set(range(10))
  assert images.max() == 255 and images.min() == 0
  # Mean intensity of MNIST digits is ~33/255: real data, not noise or zeros.
  assert 25 < images.mean() < 40
  np.testing.assert_array_equal(np.sort(index), np.arange(offset, offset + n))
  packed_images, packed_labels = mnist_embedded.load_embedded_arrays()
  np.testing.assert_array_equal(images[..., 0], packed_images[index])
  np.testing.assert_array_equal(labels, packed_labels[index])


@pytest.mark.skipif(not HAS_SHARED, reason=f'{SHARED_MNIST} not present')
def test_embedded_matches_official_idx_files(embedded_dir):
  idx_images, idx_labels = idx.read_mnist_split(SHARED_MNIST, 'test')
  for split in ('train', 'test'):
    data = _load_all('mnist_embedded', split, embedded_dir)
    np.testing.assert_array_equal(data['image'][..., 0], idx_images[data['index']])
    np.testing.assert_array_equal(data['label'], idx_labels[data['index']])


def test_load_split_embedded_pads_to_32(embedded_dir):
  config = _data_config('mnist_embedded', embedded_dir)
  images, labels = input_pipeline.load_split(config, 'test')
  assert images.shape == (1000, 32, 32, 1) and images.dtype == np.uint8
  assert labels.dtype == np.int32 and labels.shape == (1000,)
  raw = _load_all('mnist_embedded', 'test', embedded_dir)
  np.testing.assert_array_equal(images[:, 2:30, 2:30], raw['image'])
  border = np.ones((32, 32), bool)
  border[2:30, 2:30] = False
  assert not images[:, border].any()


def test_mnist_idx_synthetic(tmp_path):
  manual_dir = str(tmp_path / 'manual')
  os.makedirs(manual_dir)
  arrays = idx_testing.write_fake_mnist(manual_dir, num_train=7, num_test=5)
  for split, (images, labels) in arrays.items():
    data = _load_all('mnist_idx', split, str(tmp_path / 'tfds'), manual_dir)
    assert data['image'].shape == (len(images), 28, 28, 1)
    np.testing.assert_array_equal(data['image'][..., 0], images[data['index']])
    np.testing.assert_array_equal(data['label'], labels[data['index']])
  config = _data_config('mnist_idx', str(tmp_path / 'tfds'), manual_dir)
  images, _ = input_pipeline.load_split(config, 'test')
  assert images.shape == (5, 32, 32, 1)


def test_mnist_idx_other_files_in_manual_dir_are_used(tmp_path):
  """Two IDX directories, one data_dir: each load gives its own directory's images."""
  data_dir = str(tmp_path / 'tfds')
  for seed in (0, 1, 0):
    manual_dir = str(tmp_path / f'manual{seed}')
    os.makedirs(manual_dir, exist_ok=True)
    arrays = idx_testing.write_fake_mnist(manual_dir, num_train=10, num_test=3, seed=seed)
    config = _data_config('mnist_idx', data_dir, manual_dir, image_size=28)
    images, labels = input_pipeline.load_split(config, 'test')
    assert _rows(images) == _rows(arrays['test'][0])
    assert sorted(labels) == sorted(arrays['test'][1])


def test_mnist_idx_train_and_validation_partition_the_train_files(tmp_path):
  manual_dir = str(tmp_path / 'manual')
  os.makedirs(manual_dir)
  arrays = idx_testing.write_fake_mnist(manual_dir, num_train=20, num_test=3)
  config = _data_config('mnist_idx', str(tmp_path / 'tfds'), manual_dir, image_size=28)
  train, _ = input_pipeline.load_split(config, 'train')
  validation, _ = input_pipeline.load_split(config, 'validation')
  assert (len(train), len(validation)) == (18, 2)
  assert _rows(np.concatenate([train, validation])) == _rows(arrays['train'][0])


def test_embedded_train_and_validation_partition_train(embedded_dir):
  index = {split: _load_all('mnist_embedded', input_pipeline.tfds_split(split, 10),
                            embedded_dir)['index'] for split in ('train', 'validation')}
  assert (len(index['train']), len(index['validation'])) == (8100, 900)
  np.testing.assert_array_equal(np.sort(np.concatenate(list(index.values()))), np.arange(9000))


def test_mnist_idx_missing_file_named(tmp_path):
  manual_dir = str(tmp_path / 'manual')
  os.makedirs(manual_dir)
  idx_testing.write_fake_mnist(manual_dir, num_train=3, num_test=2)
  os.remove(os.path.join(manual_dir, 'train-images-idx3-ubyte.gz'))
  with pytest.raises(FileNotFoundError, match='train-images-idx3-ubyte'):
    _load_all('mnist_idx', 'test', str(tmp_path / 'tfds'), manual_dir)


def test_mnist_idx_corrupt_file(tmp_path):
  manual_dir = str(tmp_path / 'manual')
  os.makedirs(manual_dir)
  idx_testing.write_fake_mnist(manual_dir, num_train=3, num_test=2, gz=False)
  path = os.path.join(manual_dir, 't10k-images-idx3-ubyte')
  with open(path, 'r+b') as f:
    f.truncate(100)
  with pytest.raises(ValueError, match='t10k-images-idx3-ubyte: corrupt IDX file'):
    _load_all('mnist_idx', 'test', str(tmp_path / 'tfds'), manual_dir)


def test_mnist_idx_needs_manual_dir():
  config = _data_config('mnist_idx', '')
  with pytest.raises(ValueError, match='manual_dir'):
    input_pipeline.load_split(config, 'train')


@pytest.mark.slow
@pytest.mark.skipif(not HAS_SHARED, reason=f'{SHARED_MNIST} not present')
def test_mnist_idx_real_files(tmp_path):
  data = _load_all('mnist_idx', 'test', str(tmp_path), SHARED_MNIST)
  assert data['image'].shape == (10_000, 28, 28, 1)
  packed_images, packed_labels = mnist_embedded.load_embedded_arrays()
  np.testing.assert_array_equal(data['image'][..., 0], packed_images[data['index']])
  np.testing.assert_array_equal(data['label'], packed_labels[data['index']])
  train = _load_all('mnist_idx', 'train', str(tmp_path), SHARED_MNIST)
  assert train['image'].shape == (60_000, 28, 28, 1)


@pytest.mark.skipif(not HAS_SHARED, reason=f'{SHARED_MNIST} not present')
def test_write_embedded_file_reproduces_packaged_arrays(tmp_path):
  path = str(tmp_path / 'mnist_test.npz')
  mnist_embedded.write_embedded_file(SHARED_MNIST, path)
  with np.load(path) as f:
    images, labels = f['images'], f['labels']
  packed_images, packed_labels = mnist_embedded.load_embedded_arrays()
  np.testing.assert_array_equal(images, packed_images)
  np.testing.assert_array_equal(labels, packed_labels)


def test_write_embedded_file_rejects_non_official_files(tmp_path):
  idx_testing.write_fake_mnist(str(tmp_path), num_train=2, num_test=2)
  with pytest.raises(ValueError, match='t10k-images-idx3-ubyte.gz: md5 .* != official'):
    mnist_embedded.write_embedded_file(str(tmp_path), str(tmp_path / 'out.npz'))


_LOAD_AT = '''
import os, sys, time
import ml_collections
from dfflows.data import input_pipeline
data_dir, manual_dir, barrier = sys.argv[1:]
config = ml_collections.ConfigDict(dict(name='mnist_idx', data_dir=data_dir, manual_dir=manual_dir,
                                        image_size=28, channels=1, validation_percent=10))
open(os.path.join(barrier, str(os.getpid())), 'w').close()
while len(os.listdir(barrier)) < 2:  # Both imported: start preparing together.
  time.sleep(0.01)
print(len(input_pipeline.load_split(config, 'test')[0]))
'''


def test_mnist_idx_two_runs_prepare_one_data_dir_at_once(tmp_path):
  """Two processes that prepare the same new dataset at the same moment both load it."""
  manual_dir = str(tmp_path / 'manual')
  os.makedirs(manual_dir)
  idx_testing.write_fake_mnist(manual_dir, num_train=20, num_test=30)
  barrier = tmp_path / 'barrier'
  barrier.mkdir()
  procs = [subprocess.Popen([sys.executable, '-c', _LOAD_AT, str(tmp_path / 'tfds'), manual_dir,
                             str(barrier)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=REPO_ROOT) for _ in range(2)]
  for proc in procs:
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-2000:]
    assert out.split()[-1] == '30'
