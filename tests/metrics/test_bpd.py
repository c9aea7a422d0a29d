"""The bits/dim formulas of dfflows.metrics.bpd against numpy."""
import jax.numpy as jnp
import ml_collections
import numpy as np

from dfflows.metrics.bpd import continuous_nats_to_bpd, discrete_nats_to_bpd, per_real_pixel


def _data(name: str, size: int, channels: int) -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict({'name': name, 'image_size': size, 'channels': channels})


def test_continuous_bits_per_dim_of_uniform_density_is_8():
  # The uniform density on [0, 1)^D has NLL 0: 8 bits per 8-bit pixel.
  np.testing.assert_allclose(continuous_nats_to_bpd(jnp.zeros(()), 784), 8.0, rtol=1e-6)
  nll = 1234.5
  np.testing.assert_allclose(continuous_nats_to_bpd(jnp.asarray(nll), 100),
                             (nll + 100 * np.log(256)) / (100 * np.log(2)), rtol=1e-6)


def test_discrete_bits_per_dim_is_nats_over_d_log_2():
  np.testing.assert_allclose(discrete_nats_to_bpd(jnp.array(784 * np.log(2)), 784), 1.0,
                             rtol=1e-6)
  np.testing.assert_allclose(discrete_nats_to_bpd(jnp.array(5000.0), 1024),
                             5000.0 / 1024 / np.log(2), rtol=1e-6)


def test_bits_per_real_pixel_is_the_total_bits_over_the_unpadded_pixels():
  # A 32x32 model of zero-padded 28x28 MNIST: NLL (nats) of the dequantised 1,024 dims.
  nll = np.array([-3000.0, 250.5, 1234.5])
  total_bits = (nll + 1024 * np.log(256)) / np.log(2)  # -log2 P(x), independent of the unit.
  bpd = continuous_nats_to_bpd(jnp.asarray(nll), 1024)
  per_pixel = np.asarray(per_real_pixel(bpd, _data('mnist', 32, 1)))
  np.testing.assert_allclose(per_pixel, total_bits / 784, rtol=1e-6)
  assert np.all(per_pixel > np.asarray(bpd))  # Fewer pixels share the same bits.
  # Discrete NLL, floats (and a standard error: the map is linear).
  np.testing.assert_allclose(
      per_real_pixel(discrete_nats_to_bpd(5000.0, 1024), _data('mnist_idx', 32, 1)),
      5000.0 / np.log(2) / 784, rtol=1e-6)
  assert per_real_pixel(1.2, _data('cifar10', 32, 3)) == 1.2  # CIFAR-10: nothing padded.
  np.testing.assert_allclose(per_real_pixel(1.0, _data('mnist_embedded', 64, 1)), 4096 / 784,
                             rtol=1e-12)
