"""Which FID features `dfflows.evaluate` uses (eval.fid_features), bad FID settings, and the
bits per real pixel beside bits per model dim in eval.json."""
import numpy as np
import pytest

from dfflows.metrics import likelihood
from dfflows.metrics.fid_features import fid_features
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
  assert fid_features(_rgb_config(), str(tmp_path)) is None


def test_rgb_uses_inception_features_from_the_weights_file(tmp_path):
  path = tmp_path / 'pt_inception.npz'
  np.savez(path, **fake_state_dict(random_variables(), np.random.default_rng(0)))
  features = fid_features(_rgb_config(inception_weights=str(path), inception_dim=64),
                          str(tmp_path))
  assert features.tag == 'inception64' and features.classifier_params is None
  images = np.random.default_rng(1).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
  out = np.asarray(features.fn(images))
  assert out.shape == (3, 64) and np.all(np.isfinite(out))
  assert not np.allclose(out[0], out[1])  # Features depend on the image.


def test_missing_inception_weights_file_is_an_error(tmp_path):
  config = _rgb_config(inception_weights=str(tmp_path / 'absent.npz'))
  with pytest.raises(FileNotFoundError, match='absent.npz'):
    fid_features(config, str(tmp_path))


def test_the_mnist_classifier_is_refused_for_rgb_images():
  with pytest.raises(ValueError, match="fid_features='classifier' needs 1-channel"):
    config_checks.validate_config(_rgb_config(fid_features='classifier'), num_devices=1)
  config_checks.validate_config(_rgb_config(fid_features='auto'), num_devices=1)


def test_eval_json_reports_bits_per_real_pixel_of_padded_mnist():
  config = tiny_config('diffflow')  # mnist_embedded, zero-padded 28x28 -> 32x32.
  result = {'bpd': 1.201, 'bpd_stderr': 0.016, 'bpd_raw_params': 1.25,
            'bpd_raw_params_stderr': 0.02}
  fields = likelihood.real_pixel_fields(result, config.data, 32 * 32)
  assert fields['model_dims'] == 1024 and fields['real_pixels'] == 784
  for key in ('bpd', 'bpd_stderr', 'bpd_raw_params', 'bpd_raw_params_stderr'):
    per_pixel = key.replace('_stderr', '') + '_per_real_pixel' + (
        '_stderr' if key.endswith('_stderr') else '')
    np.testing.assert_allclose(fields[per_pixel], result[key] * 1024 / 784, rtol=1e-12)
  np.testing.assert_allclose(fields['bpd_per_real_pixel'], 1.5687, atol=1e-4)
  assert fields['bpd_unit'] == ('bits per model dim (32x32x1 = 1024 dims, of which 240 are zero '
                                'padding)')
  assert 'bits per real pixel' in fields['bpd_per_real_pixel_unit']
  # RGB data without padding: the two units agree.
  rgb = likelihood.real_pixel_fields({'bpd': 3.0}, _rgb_config().data, 32 * 32 * 3)
  assert rgb['bpd_per_real_pixel'] == 3.0 and 'no padding' in rgb['bpd_unit']
