"""Tests for the coupling conditioner network."""
import jax
import numpy as np

from dfflows.nets.conditioner import Conditioner


def test_zero_output_at_init_and_nonzero_after_update():
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 4, 4, 3))
  net = Conditioner(out_channels=5, hidden_channels=8, num_res_blocks=2)
  variables = jax.jit(net.init)(jax.random.PRNGKey(1), x)
  out = net.apply(variables, x)
  assert out.shape == (2, 4, 4, 5)
  np.testing.assert_array_equal(out, 0.)
  assert set(variables['params']) == {'conv_in', 'res_0', 'res_1', 'conv_out'}
  params = jax.tree.map(lambda p: p + 0.1, variables['params'])
  assert np.abs(net.apply({'params': params}, x)).max() > 1e-2


def test_conv_impls_agree():
  x = jax.random.normal(jax.random.PRNGKey(0), (1, 4, 4, 2))
  xla = Conditioner(out_channels=3, hidden_channels=4, num_res_blocks=1, conv_impl='xla')
  fast = Conditioner(out_channels=3, hidden_channels=4, num_res_blocks=1, conv_impl='fast')
  params = jax.tree.map(lambda p: p + 0.1, jax.jit(xla.init)(jax.random.PRNGKey(1), x))
  np.testing.assert_allclose(fast.apply(params, x), xla.apply(params, x), rtol=1e-5,
                             atol=1e-5)
