"""dfflows.nets.norm.GroupNorm against flax.linen.GroupNorm (same params, values, gradients)."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dfflows.nets.norm import GroupNorm


@pytest.mark.parametrize('shape,groups', [((3, 8, 8, 12), 4), ((2, 4, 4, 32), 16),
                                          ((2, 5, 3, 6), 6)])
def test_matches_flax_group_norm_values_and_gradients(shape, groups):
  x = 3.0 + 2.0 * jax.random.normal(jax.random.PRNGKey(0), shape)
  ours, theirs = GroupNorm(groups), nn.GroupNorm(num_groups=groups)
  params = theirs.init(jax.random.PRNGKey(1), x)
  assert jax.tree.map(jnp.shape, ours.init(jax.random.PRNGKey(1), x)) == jax.tree.map(
      jnp.shape, params)
  params = {'params': {'scale': 1.0 + jax.random.normal(jax.random.PRNGKey(2), (shape[-1],)),
                       'bias': jax.random.normal(jax.random.PRNGKey(3), (shape[-1],))}}
  np.testing.assert_allclose(ours.apply(params, x), theirs.apply(params, x), atol=2e-5)
  loss = lambda module: lambda p, x: jnp.sum(jnp.sin(module.apply(p, x)))
  g_ours = jax.grad(loss(ours), argnums=(0, 1))(params, x)
  g_theirs = jax.grad(loss(theirs), argnums=(0, 1))(params, x)
  for a, b in zip(jax.tree.leaves(g_ours), jax.tree.leaves(g_theirs)):
    np.testing.assert_allclose(a, b, atol=1e-4)


def test_auto_name_and_dtype_follow_flax():
  class Net(nn.Module):
    @nn.compact
    def __call__(self, x):
      return GroupNorm(2, dtype=jnp.bfloat16)(x)

  x = jnp.ones((1, 2, 2, 4))
  params = Net().init(jax.random.PRNGKey(0), x)
  assert list(params['params']) == ['GroupNorm_0']
  assert Net().apply(params, x).dtype == jnp.bfloat16


def test_rejects_channels_that_do_not_split_into_groups():
  with pytest.raises(ValueError, match='6 channels do not split into 4 groups'):
    GroupNorm(4).init(jax.random.PRNGKey(0), jnp.ones((1, 2, 2, 6)))
