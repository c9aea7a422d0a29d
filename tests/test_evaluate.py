"""Which FID features `dfflows.evaluate` uses (eval.fid_features), and bad FID settings."""
import numpy as np
import pytest

from dfflows import evaluate
from dfflows.training import config_checks
from tests.helpers import tiny_config
from tests.metrics.inception_testing import fake_state_dict, random_variables


def _rgb_config(**eval_settings):
  config = tiny_config('diffflow')
  config.data.name, config.data.channels = 'cifar10', 3
  for key, value in eval_settings.items():
    config.eval[key] = value
  return config


def test_rgb_without_inception_weights_has_no_fid_features(tmp_path):
  assert evaluate.fid_features(_rgb_config(), str(tmp_path)) is None


def test_rgb_uses_inception_features_from_the_weights_file(tmp_path):
  path = tmp_path / 'pt_inception.npz'
  np.savez(path, **fake_state_dict(random_variables(), np.random.default_rng(0)))
  features = evaluate.fid_features(_rgb_config(inception_weights=str(path), inception_dim=64),
                                   str(tmp_path))
  assert features.tag == 'inception64' and features.classifier_params is None
  images = np.random.default_rng(1).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
  out = np.asarray(features.fn(images))
  assert out.shape == (3, 64) and np.all(np.isfinite(out))
  assert not np.allclose(out[0], out[1])  # Features depend on the image.


def test_missing_inception_weights_file_is_an_error(tmp_path):
  config = _rgb_config(inception_weights=str(tmp_path / 'absent.npz'))
  with pytest.raises(FileNotFoundError, match='absent.npz'):
    evaluate.fid_features(config, str(tmp_path))


def test_the_mnist_classifier_is_refused_for_rgb_images():
  with pytest.raises(ValueError, match="fid_features='classifier' needs 1-channel"):
    config_checks.validate_config(_rgb_config(fid_features='classifier'), num_devices=1)
  config_checks.validate_config(_rgb_config(fid_features='auto'), num_devices=1)
