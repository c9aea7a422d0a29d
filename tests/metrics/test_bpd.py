"""The bits/dim formulas of dfflows.metrics.bpd against numpy."""
import jax.numpy as jnp
import numpy as np

from dfflows.metrics.bpd import continuous_nats_to_bpd, discrete_nats_to_bpd


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
