"""A run's FID features (`eval.fid_features`: dfflows' MNIST classifier or pytorch-fid's
InceptionV3) and the FID of samples against the test split, with the classifier and the
test split's statistics cached in the workdir."""
import os
from typing import Any, Callable, NamedTuple, Optional

import ml_collections
import numpy as np
from absl import logging

from dfflows import rng
from dfflows.data import input_pipeline
from dfflows.metrics import classifier, fid, inception


class FidFeatures(NamedTuple):
  """An FID feature function, what it is, and the classifier's params (None for Inception)."""
  fn: Callable[[np.ndarray], Any]
  description: str
  tag: str  # Names the cached reference statistics in the workdir.
  classifier_params: Optional[Any]


def fid_features(config: ml_collections.ConfigDict, workdir: str) -> Optional[FidFeatures]:
  """The run's FID features (eval.fid_features); None for Inception without weights."""
  kind = fid.resolve_features(config.eval.fid_features, config.data.channels)
  if kind == 'inception':
    path, dim = config.eval.inception_weights, config.eval.inception_dim
    if not path:
      return None
    if not os.path.exists(path):
      raise FileNotFoundError(f'config.eval.inception_weights={path!r} does not exist.')
    return FidFeatures(inception.feature_fn(inception.load_inception_params(path), dim),
                       f'pytorch-fid InceptionV3, {dim}-d (test split reference)',
                       f'inception{dim}', None)
  path = os.path.join(workdir, 'fid_classifier.msgpack')
  if os.path.exists(path):
    params = classifier.load_classifier(path)
  else:
    logging.info('Training the FID feature classifier (%d steps, cached in %s)...',
                 config.eval.classifier_steps, path)
    images, labels = input_pipeline.load_split(config.data, 'train')
    key = rng.stream(rng.base_key(config.seed), rng.Stream.FID_CLASSIFIER)
    params = classifier.train_classifier(images, labels, key=key,
                                         num_steps=config.eval.classifier_steps,
                                         batch_size=128, log_every=500)
    classifier.save_classifier(path, params)
  return FidFeatures(classifier.feature_fn(params),
                     'dfflows MNIST classifier, penultimate layer (test split reference)',
                     'classifier', params)


def samples_fid(features: FidFeatures, workdir: str, test_images: np.ndarray,
                samples: np.ndarray) -> float:
  """FID of `samples` against the test split (its statistics cached in the workdir)."""
  stats_path = os.path.join(workdir, f'fid_stats_test_{features.tag}.npz')
  if os.path.exists(stats_path):
    ref = fid.FeatureStats.load(stats_path)
  else:
    logging.info('FID reference statistics of the test split (%d images, cached in %s)...',
                 len(test_images), stats_path)
    ref = fid.feature_stats(fid.batched_features(features.fn, test_images, 500))
    ref.save(stats_path)
  return fid.fid_from_stats(fid.feature_stats(fid.batched_features(features.fn, samples, 500)),
                            ref)
