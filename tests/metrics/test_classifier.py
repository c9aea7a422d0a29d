"""Tests for dfflows.metrics.classifier."""
import functools
import gzip
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dfflows.metrics import classifier

MNIST_DIR = os.environ.get(
    'DFFLOWS_MNIST_DIR',
    os.path.join(os.path.dirname(__file__), '..', '..', '..', 'shared', 'data', 'mnist'))

SMALL = classifier.Classifier(channels=(4, 8, 8), feature_dim=16, dropout_rate=0.0)


@functools.lru_cache(maxsize=1)
def _small_params():
  """SMALL's seed-0 initial params, shared by tests (compiling on a busy CPU is slow)."""
  return classifier.init_params(jax.random.PRNGKey(0), SMALL)


def _read_idx(path: str) -> np.ndarray:
  """Reads a gzipped IDX file (big-endian dims, uint8 data)."""
  with gzip.open(path, 'rb') as f:
    data = f.read()
  ndim = data[3]
  dims = np.frombuffer(data, '>u4', ndim, 4)
  return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def _synthetic_digits(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
  """Two separable classes: a bright square in the top-left or bottom-right, with noise."""
  rng = np.random.default_rng(seed)
  labels = rng.integers(0, 2, size=n)
  images = rng.integers(0, 60, size=(n, 28, 28)).astype(np.uint8)
  for i, label in enumerate(labels):
    if label == 0:
      images[i, 4:12, 4:12] = 255
    else:
      images[i, 16:24, 16:24] = 255
  return images, labels


def test_forward_shapes_and_feature_dim():
  default_shapes = jax.eval_shape(classifier.init_params, jax.random.PRNGKey(0))
  assert default_shapes['dense']['kernel'].shape == (4 * 4 * 128, 128)  # 128-d features.
  images = np.zeros((3, 32, 32), np.uint8)
  logits = classifier._logits(_small_params(), images, SMALL)
  assert logits.shape == (3, classifier.NUM_CLASSES)
  features = classifier.feature_fn(_small_params(), SMALL)(images)
  assert features.shape == (3, 16)
  assert np.all(np.asarray(features) >= 0)  # ReLU features.


def test_28_and_32_inputs_give_same_features():
  params = _small_params()
  images28 = np.random.default_rng(0).integers(0, 256, size=(2, 28, 28, 1)).astype(np.uint8)
  images32 = np.pad(images28, ((0, 0), (2, 2), (2, 2), (0, 0)))
  fn = classifier.feature_fn(params, SMALL)
  np.testing.assert_array_equal(fn(images28), fn(images32))


def test_preprocess_range():
  x = classifier.preprocess(jnp.array([[[0, 255]]], jnp.uint8).repeat(28, 1).repeat(14, 2))
  assert x.shape == (1, 32, 32, 1)
  assert float(x.max()) == 255 / 256 and float(x.min()) == 0.0


@pytest.mark.parametrize('shape', [(2, 30, 30), (2, 28, 32), (2, 28, 28, 3), (28, 28)])
def test_bad_image_shape_raises(shape):
  with pytest.raises(ValueError, match='images'):
    classifier.preprocess(jnp.zeros(shape, jnp.uint8))


def test_float_images_rejected():
  params = _small_params()
  with pytest.raises(ValueError, match='uint8'):
    classifier.feature_fn(params, SMALL)(np.zeros((1, 28, 28), np.float32))
  with pytest.raises(ValueError, match='labels'):
    classifier.accuracy(params, np.zeros((2, 28, 28), np.uint8), np.zeros(3), model=SMALL)


def test_training_separates_synthetic_classes():
  train_x, train_y = _synthetic_digits(256, seed=0)
  test_x, test_y = _synthetic_digits(128, seed=1)
  untrained = _small_params()
  params = classifier.train_classifier(train_x, train_y, key=jax.random.PRNGKey(0), num_steps=40,
                                       batch_size=32, lr=3e-3, model=SMALL)
  assert classifier.accuracy(params, test_x, test_y, model=SMALL) >= 0.95
  # The untrained network is at chance on one of the classes' shares.
  assert classifier.accuracy(untrained, test_x, test_y, model=SMALL) < 0.9


def test_save_load_round_trip(tmp_path):
  params = _small_params()
  path = tmp_path / 'classifier.msgpack'
  classifier.save_classifier(path, params)
  loaded = classifier.load_classifier(path)
  assert jax.tree.structure(loaded) == jax.tree.structure(params)
  jax.tree.map(np.testing.assert_array_equal, loaded, params)
  images = np.random.default_rng(3).integers(0, 256, size=(2, 32, 32)).astype(np.uint8)
  np.testing.assert_array_equal(classifier.feature_fn(loaded, SMALL)(images),
                                classifier.feature_fn(params, SMALL)(images))
  params_copy = jax.tree.map(lambda p: p + 1, params)
  assert not np.array_equal(classifier.feature_fn(params_copy, SMALL)(images),
                            classifier.feature_fn(params, SMALL)(images))


@pytest.mark.slow
def test_mnist_test_accuracy_at_least_99_percent():
  if not os.path.isdir(MNIST_DIR):
    pytest.skip(f'MNIST IDX files not found in {MNIST_DIR} (set DFFLOWS_MNIST_DIR).')
  load = lambda name: _read_idx(os.path.join(MNIST_DIR, name))
  train_x, train_y = load('train-images-idx3-ubyte.gz'), load('train-labels-idx1-ubyte.gz')
  test_x, test_y = load('t10k-images-idx3-ubyte.gz'), load('t10k-labels-idx1-ubyte.gz')
  assert train_x.shape == (60000, 28, 28) and test_x.shape == (10000, 28, 28)
  start = time.time()
  params = classifier.train_classifier(train_x, train_y, key=jax.random.PRNGKey(0))
  acc = classifier.accuracy(params, test_x, test_y)
  print(f'MNIST test accuracy {acc:.4f} after {time.time() - start:.0f}s')
  assert acc >= 0.99
