"""Small CNN classifier for grayscale digits whose penultimate layer gives FID features.

The thesis computed MNIST FID on the features of a classifier trained on MNIST
instead of Inception's. Inputs are uint8 images (N, H, W) or (N, H, W, 1) with
H = W = 28 or 32; 28x28 images are zero-padded to 32x32 as the input pipeline pads
MNIST, so both sizes give the same features for the same digit.
"""
import functools
import os
import time
from typing import Any, Callable

from absl import logging
import flax.linen as nn
from flax import serialization
import jax
import jax.numpy as jnp
import numpy as np
import optax

from dfflows.nets.conv import Conv

Params = Any
IMAGE_SIZE = 32
INPUT_SIZES = (28, 32)
NUM_CLASSES = 10


def preprocess(images: jax.Array) -> jax.Array:
  """Returns uint8 images as float32 (N, 32, 32, 1) in [0, 1), 28x28 zero-padded to 32x32."""
  if images.ndim == 3:
    images = images[..., None]
  if images.ndim != 4 or images.shape[-1] != 1:
    raise ValueError(f'Expected grayscale images (N, H, W[, 1]), got shape {images.shape}.')
  size = images.shape[1]
  if images.shape[1] != images.shape[2] or size not in INPUT_SIZES:
    raise ValueError(f'Expected {INPUT_SIZES[0]}x{INPUT_SIZES[0]} or {INPUT_SIZES[1]}x'
                     f'{INPUT_SIZES[1]} images, got {images.shape[1]}x{images.shape[2]}.')
  x = images.astype(jnp.float32) / 256.0
  pad = (IMAGE_SIZE - size) // 2
  return jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))


class Classifier(nn.Module):
  """Stride-2 3x3 conv + ReLU stages, then a dense ReLU feature layer and a logit layer.

  Strided convolutions instead of max-pooling: max-pool's gradient
  (select-and-scatter) is several times slower than the convolutions on XLA:CPU.
  """
  channels: tuple[int, ...] = (32, 64, 128)
  feature_dim: int = 128
  dropout_rate: float = 0.25
  conv_impl: str = 'xla'

  def setup(self):
    self.convs = [Conv(c, (3, 3), strides=2, impl=self.conv_impl) for c in self.channels]
    self.dense = nn.Dense(self.feature_dim)
    self.dropout = nn.Dropout(self.dropout_rate)
    self.head = nn.Dense(NUM_CLASSES)

  def features(self, x: jax.Array) -> jax.Array:
    """Returns the (N, feature_dim) penultimate ReLU activations of preprocessed images."""
    for conv in self.convs:
      x = nn.relu(conv(x))
    return nn.relu(self.dense(x.reshape(x.shape[0], -1)))

  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    """Returns (N, 10) logits; dropout on the features when `train` (needs a 'dropout' rng)."""
    return self.head(self.dropout(self.features(x), deterministic=not train))


def init_params(key: jax.Array, model: Classifier = Classifier()) -> Params:
  """Returns freshly initialised classifier parameters."""
  dummy = jnp.zeros((1, IMAGE_SIZE, IMAGE_SIZE, 1), jnp.float32)
  return jax.jit(model.init)(key, dummy)['params']


def _check_labelled(images: np.ndarray, labels: np.ndarray) -> None:
  """Raises ValueError unless images are uint8 and labels are (N,) class ids."""
  if images.dtype != np.uint8:
    raise ValueError(f'images must be uint8, got {images.dtype}.')
  if labels.shape != (images.shape[0],):
    raise ValueError(f'labels must have shape ({images.shape[0]},), got {labels.shape}.')


def train_classifier(images_uint8: np.ndarray, labels: np.ndarray, *, key: jax.Array,
                     num_steps: int = 3000, batch_size: int = 128, lr: float = 2e-3,
                     model: Classifier = Classifier(), log_every: int = 0) -> Params:
  """Trains `model` with Adam (cosine-decayed lr) on random minibatches; returns params.

  `key` gives the initial params and, folded with the step, each step's batch and dropout.
  """
  images_uint8, labels = np.asarray(images_uint8), np.asarray(labels)
  _check_labelled(images_uint8, labels)
  if num_steps < 1 or batch_size < 1:
    raise ValueError(f'num_steps and batch_size must be positive, got {num_steps}, {batch_size}.')
  data = preprocess(jnp.asarray(images_uint8))  # Validates shapes before training starts.
  labels = jnp.asarray(labels, jnp.int32)
  k_init, key = jax.random.split(key)
  params = init_params(k_init, model)
  tx = optax.adam(optax.cosine_decay_schedule(lr, num_steps))
  opt_state = tx.init(params)

  @jax.jit
  def step(params, opt_state, data, labels, step_key):
    batch_key, dropout_key = jax.random.split(step_key)
    idx = jax.random.randint(batch_key, (batch_size,), 0, data.shape[0])

    def loss_fn(p):
      logits = model.apply({'params': p}, data[idx], train=True, rngs={'dropout': dropout_key})
      return optax.softmax_cross_entropy_with_integer_labels(logits, labels[idx]).mean()

    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  start = time.time()
  for i in range(num_steps):
    params, opt_state, loss = step(params, opt_state, data, labels, jax.random.fold_in(key, i))
    if log_every and (i + 1) % log_every == 0:
      logging.info('classifier step %d loss %.4f (%.0fs)', i + 1, loss, time.time() - start)
  return params


@functools.partial(jax.jit, static_argnames='model')
def _logits(params: Params, images: jax.Array, model: Classifier) -> jax.Array:
  """Returns logits of uint8 images."""
  return model.apply({'params': params}, preprocess(images))


def accuracy(params: Params, images: np.ndarray, labels: np.ndarray, batch_size: int = 1000,
             model: Classifier = Classifier()) -> float:
  """Returns the fraction of `images` classified as `labels`."""
  images, labels = np.asarray(images), np.asarray(labels)
  _check_labelled(images, labels)
  correct = 0
  for start in range(0, images.shape[0], batch_size):
    logits = _logits(params, images[start:start + batch_size], model)
    correct += int(np.sum(np.argmax(logits, -1) == labels[start:start + batch_size]))
  return correct / images.shape[0]


def mean_top_probability(params: Params, images: np.ndarray, batch_size: int = 1000,
                         model: Classifier = Classifier()) -> float:
  """Mean over `images` of the classifier's largest class probability (1.0: every image
  is confidently some digit; 0.1: uniform over ten classes)."""
  images = np.asarray(images)
  tops = [np.max(jax.nn.softmax(_logits(params, images[s:s + batch_size], model)), -1)
          for s in range(0, images.shape[0], batch_size)]
  return float(np.mean(np.concatenate(tops)))


@functools.partial(jax.jit, static_argnames='model')
def _features(params: Params, images: jax.Array, model: Classifier) -> jax.Array:
  """Returns penultimate features of uint8 images."""
  return model.apply({'params': params}, preprocess(images), method=Classifier.features)


def feature_fn(params: Params, model: Classifier = Classifier()
               ) -> Callable[[np.ndarray], jax.Array]:
  """Returns a map from uint8 images to (N, feature_dim) features (jitted once per shape)."""

  def fn(images: np.ndarray) -> jax.Array:
    images = np.asarray(images)
    if images.dtype != np.uint8:
      raise ValueError(f'images must be uint8 (quantise samples first), got {images.dtype}.')
    return _features(params, images, model)

  return fn


def save_classifier(path: str | os.PathLike, params: Params) -> None:
  """Writes params as flax msgpack."""
  with open(path, 'wb') as f:
    f.write(serialization.msgpack_serialize(jax.tree.map(np.asarray, params)))


def load_classifier(path: str | os.PathLike) -> Params:
  """Reads params written by `save_classifier`."""
  with open(path, 'rb') as f:
    return serialization.msgpack_restore(f.read())
