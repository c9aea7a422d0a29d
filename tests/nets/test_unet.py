"""Tests for dfflows.nets.unet."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dfflows.nets import unet as unet_lib


def tiny(**kwargs):
  fields = dict(ch=8, ch_mult=(1, 2), num_res_blocks=1, attn_resolutions=(4,), dropout=0.0,
                num_heads=2, out_channels=2, conv_impl='xla', dtype=jnp.float32, remat=False)
  fields.update(kwargs)
  return unet_lib.UNet(**fields)


def init(model, shape, key=0):
  """Inputs and random parameters of the right shapes (no zero-initialised layers).

  Only shapes come from `model.init` (via eval_shape): compiling the initialisers
  of every layer costs about a minute on a loaded CPU, so only one test does it.
  """
  x = jax.random.normal(jax.random.PRNGKey(key), shape)
  t = jnp.arange(shape[0], dtype=jnp.int32) * 7
  return x, t, randomize(jax.eval_shape(model.init, jax.random.PRNGKey(key + 1), x, t))


def randomize(params, scale=0.3):
  """Random weights everywhere, so every path through the network is visible."""
  leaves, treedef = jax.tree_util.tree_flatten(params)
  sizes = [int(np.prod(p.shape)) for p in leaves]
  # One draw sliced up: a draw per shape would compile once per shape.
  flat = np.asarray(scale * jax.random.normal(jax.random.PRNGKey(5), (sum(sizes),)))
  pieces = np.split(flat, np.cumsum(sizes)[:-1])
  return jax.tree_util.tree_unflatten(
      treedef, [jnp.asarray(v.reshape(p.shape)) for v, p in zip(pieces, leaves)])


def count(tree):
  return sum(int(np.prod(p.shape)) for p in jax.tree_util.tree_leaves(tree))


def test_num_groups_divides_and_keeps_two_channels_per_group():
  assert unet_lib.num_groups(256) == 32
  assert unet_lib.num_groups(64) == 32
  assert unet_lib.num_groups(48) == 24
  assert unet_lib.num_groups(16) == 8
  assert unet_lib.num_groups(12) == 6
  assert unet_lib.num_groups(1) == 1


def test_zero_output_at_init():
  model = tiny(ch_mult=(1,), attn_resolutions=(), out_channels=4)
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 4, 4, 2))
  t = jnp.array([0, 9])
  params = model.init(jax.random.PRNGKey(1), x, t)
  out = jax.jit(model.apply)(params, x, t)
  assert out.shape == (2, 4, 4, 4)
  np.testing.assert_array_equal(out, 0.0)


@pytest.mark.parametrize('shape,ch_mult,attn', [((2, 16, 16, 4), (1, 2), (8,)),
                                                ((2, 32, 32, 1), (1, 2, 2), (8,)),
                                                ((2, 32, 32, 3), (1, 2, 2, 2), (16,)),
                                                ((1, 8, 8, 16), (1, 2), (4,))])
def test_output_shapes(shape, ch_mult, attn):
  model = tiny(ch_mult=ch_mult, attn_resolutions=attn, out_channels=2 * shape[-1])
  x, t = jnp.zeros(shape), jnp.zeros(shape[:1], jnp.int32)
  params = jax.eval_shape(model.init, jax.random.PRNGKey(0), x, t)
  out = jax.eval_shape(model.apply, params, x, t)
  assert out.shape == shape[:-1] + (2 * shape[-1],)


def test_output_depends_on_input_and_time():
  model = tiny(out_channels=1)
  x, t, params = init(model, (2, 8, 8, 1))
  apply = jax.jit(model.apply)
  out = apply(params, x, t)
  assert float(jnp.abs(out).mean()) > 1e-2
  assert float(jnp.abs(apply(params, x, t + 1) - out).mean()) > 1e-3
  # Examples are processed independently: changing one leaves the other alone.
  other = apply(params, x.at[1].set(0.0), t)
  np.testing.assert_allclose(other[0], out[0], atol=1e-5)
  assert not np.allclose(other[1], out[1])
  assert jax.eval_shape(model.apply, params, x, 3).shape == out.shape  # Scalar t.


def test_dropout_uses_rng_in_train_mode():
  model = tiny(dropout=0.5)
  x, t, params = init(model, (2, 8, 8, 1))
  apply = jax.jit(functools.partial(model.apply, train=True))
  a = apply(params, x, t, rngs={'dropout': jax.random.PRNGKey(0)})
  b = apply(params, x, t, rngs={'dropout': jax.random.PRNGKey(1)})
  c = apply(params, x, t, rngs={'dropout': jax.random.PRNGKey(0)})
  assert not np.allclose(a, b)
  np.testing.assert_array_equal(a, c)


def test_bad_shapes_raise():
  model = tiny(ch_mult=(1, 2, 2))
  with pytest.raises(ValueError, match='divisible by'):
    model.init(jax.random.PRNGKey(0), jnp.zeros((1, 10, 16, 1)), jnp.zeros((1,), jnp.int32))
  with pytest.raises(ValueError, match='rank 4'):
    model.init(jax.random.PRNGKey(0), jnp.zeros((8, 8, 1)), jnp.zeros((8,), jnp.int32))
  with pytest.raises(ValueError, match='timesteps'):
    model.init(jax.random.PRNGKey(0), jnp.zeros((2, 8, 8, 1)), jnp.zeros((3,), jnp.int32))


def test_param_count_matches_hand_count():
  conv = lambda k, i, o: k * k * i * o + o
  dense = lambda i, o: i * o + o
  gn = lambda c: 2 * c
  temb = 32

  def res(i, o):
    return (gn(i) + conv(3, i, o) + dense(temb, 2 * o) + gn(o) + conv(3, o, o)
            + (conv(1, i, o) if i != o else 0))

  def attn(c):
    return gn(c) + 3 * dense(c, c) + dense(c, c)

  expected = (dense(8, 32) + dense(32, 32) + conv(3, 1, 8)
              + res(8, 8) + conv(3, 8, 8)                          # level 0 (8x8), down
              + res(8, 16) + attn(16)                              # level 1 (4x4)
              + res(16, 16) + attn(16) + res(16, 16)               # middle
              + res(32, 16) + attn(16) + res(24, 16) + attn(16)    # up level 1
              + conv(3, 16, 16)                                    # upsample
              + res(24, 8) + res(16, 8)                            # up level 0
              + gn(8) + conv(3, 8, 2))
  shapes = jax.eval_shape(tiny().init, jax.random.PRNGKey(0), jnp.zeros((1, 8, 8, 1)),
                          jnp.zeros((1,), jnp.int32))
  assert count(shapes) == expected


def test_bfloat16_compute_is_close_to_float32_and_returns_float32():
  model = tiny()
  x, t, params = init(model, (2, 8, 8, 3))
  bf16 = tiny(dtype=jnp.bfloat16)
  # The parameter tree (names, shapes, float32 storage) does not depend on the dtype.
  shapes = jax.eval_shape(bf16.init, jax.random.PRNGKey(1), x, t)
  assert jax.tree.map(lambda a: (a.shape, a.dtype), shapes) == jax.tree.map(
      lambda a: (a.shape, a.dtype), params)
  out32 = np.asarray(jax.jit(model.apply)(params, x, t))
  out16 = jax.jit(bf16.apply)(params, x, t)
  assert out16.dtype == jnp.float32
  rel = np.linalg.norm(np.asarray(out16) - out32) / np.linalg.norm(out32)
  # bfloat16 has an 8-bit mantissa (relative rounding 2**-9 per op): close, not equal.
  assert 1e-4 < rel < 5e-2, rel
  grads = jax.jit(jax.grad(lambda p: jnp.sum(bf16.apply(p, x, t) ** 2)))(params)
  assert all(g.dtype == jnp.float32 and np.all(np.isfinite(g)) for g in jax.tree.leaves(grads))


def test_remat_gives_the_same_params_outputs_and_grads_and_checkpoints_the_blocks():
  model, remat = tiny(dropout=0.1), tiny(dropout=0.1, remat=True)
  x, t, params = init(model, (4, 8, 8, 3))
  shapes = jax.eval_shape(remat.init, jax.random.PRNGKey(1), x, t)
  assert jax.tree.structure(shapes) == jax.tree.structure(params)

  def loss(m, p):
    out = m.apply(p, x, t, train=True, rngs={'dropout': jax.random.PRNGKey(2)})
    return jnp.sum(out ** 2)

  plain = jax.jit(jax.value_and_grad(functools.partial(loss, model)))
  rematted = jax.jit(jax.value_and_grad(functools.partial(loss, remat)))
  (v0, g0), (v1, g1) = plain(params), rematted(params)
  np.testing.assert_allclose(v1, v0, rtol=1e-6)
  # atol: float32 rounding of the recomputed graph (grads here reach ~10; seen 3e-6).
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5), g1, g0)
  # The blocks are jax.checkpoint regions (recomputed in the backward pass). XLA:CPU's
  # temporaries barely change (they did not before either: 2 KB of 0.8 MB); the memory
  # saving is for accelerators.
  count = lambda m: str(jax.make_jaxpr(jax.grad(functools.partial(loss, m)))(params)).count(
      ' remat')
  assert count(model) == 0 and count(remat) >= 4
