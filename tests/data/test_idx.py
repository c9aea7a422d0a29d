"""Tests of the IDX reader."""
import gzip
import os

import numpy as np
import pytest

from dfflows.data import idx
from tests.data import idx_testing
from tests.helpers import SHARED_MNIST



@pytest.mark.parametrize('name', ['a-idx3-ubyte', 'a-idx3-ubyte.gz'])
def test_read_idx_round_trip(tmp_path, name):
  array = np.random.default_rng(0).integers(0, 256, (3, 5, 7), dtype=np.uint8)
  path = str(tmp_path / name)
  idx_testing.write_idx(path, array)
  out = idx.read_idx(path)
  assert out.dtype == np.uint8 and out.shape == (3, 5, 7)
  np.testing.assert_array_equal(out, array)


def test_parse_idx_big_endian_int32():
  values = np.array([1, -2, 70000], np.int32)
  data = bytes([0, 0, 0x0C, 1]) + (3).to_bytes(4, 'big') + values.astype('>i4').tobytes()
  np.testing.assert_array_equal(idx.parse_idx(data), values)


@pytest.mark.parametrize('data, message', [
    (b'\x00\x00', 'only 2 bytes'),
    (b'\x00\x01\x08\x01' + (2).to_bytes(4, 'big') + b'\x01\x02', 'bad magic'),
    (b'\x00\x00\x07\x01' + (2).to_bytes(4, 'big') + b'\x01\x02', 'bad magic'),
    (b'\x00\x00\x08\x03' + (2).to_bytes(4, 'big'), 'header truncated'),
    (b'\x00\x00\x08\x01' + (3).to_bytes(4, 'big') + b'\x01\x02', 'header says shape'),
])
def test_parse_idx_corrupt(data, message):
  with pytest.raises(ValueError, match=message):
    idx.parse_idx(data, name='f')


def test_read_idx_bad_gzip_names_file(tmp_path):
  path = str(tmp_path / 'x-idx1-ubyte.gz')
  with open(path, 'wb') as f:
    f.write(b'not gzip at all')
  with pytest.raises(ValueError, match='x-idx1-ubyte.gz'):
    idx.read_idx(path)


def test_read_mnist_split_gz_and_plain(tmp_path):
  arrays = idx_testing.write_fake_mnist(str(tmp_path), 4, 3, gz=False)
  images, labels = idx.read_mnist_split(str(tmp_path), 'test')
  np.testing.assert_array_equal(images, arrays['test'][0])
  np.testing.assert_array_equal(labels, arrays['test'][1])


def test_read_mnist_split_missing_file_named(tmp_path):
  idx_testing.write_fake_mnist(str(tmp_path), 4, 3)
  os.remove(tmp_path / 't10k-labels-idx1-ubyte.gz')
  with pytest.raises(FileNotFoundError, match='t10k-labels-idx1-ubyte'):
    idx.read_mnist_split(str(tmp_path), 'test')


def test_read_mnist_split_count_mismatch(tmp_path):
  idx_testing.write_fake_mnist(str(tmp_path), 4, 3)
  idx_testing.write_idx(str(tmp_path / 't10k-labels-idx1-ubyte.gz'), np.zeros(2, np.uint8))
  with pytest.raises(ValueError, match='3 images but .* 2 labels'):
    idx.read_mnist_split(str(tmp_path), 'test')


def test_read_mnist_split_bad_label(tmp_path):
  idx_testing.write_fake_mnist(str(tmp_path), 4, 3)
  idx_testing.write_idx(str(tmp_path / 't10k-labels-idx1-ubyte.gz'), np.array([1, 2, 10], np.uint8))
  with pytest.raises(ValueError, match='0..9'):
    idx.read_mnist_split(str(tmp_path), 'test')


@pytest.mark.skipif(not os.path.isdir(SHARED_MNIST), reason=f'{SHARED_MNIST} not present')
def test_real_mnist_files():
  for split, n in idx.MNIST_NUM_EXAMPLES.items():
    images, labels = idx.read_mnist_split(SHARED_MNIST, split, expected_num_examples=n)
    assert images.shape == (n, 28, 28) and labels.shape == (n,)
    # Label counts of MNIST's test split as published (e.g. 980 zeros, 1135 ones).
    if split == 'test':
      assert np.bincount(labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
  # Our reader agrees with a direct decode of the raw bytes.
  with gzip.open(os.path.join(SHARED_MNIST, 't10k-labels-idx1-ubyte.gz'), 'rb') as f:
    raw = f.read()
  np.testing.assert_array_equal(labels, np.frombuffer(raw[8:], np.uint8))
