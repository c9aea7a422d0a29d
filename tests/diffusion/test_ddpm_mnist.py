"""Slow: a tiny pixel-space Improved DDPM on real MNIST lowers its bound in bits/dim."""
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from dfflows.data import idx
from dfflows.diffusion import gaussian_diffusion as gd
from dfflows.diffusion import schedules
from dfflows.metrics.bpd import discrete_nats_to_bpd
from dfflows.nets import unet as unet_lib
from tests.helpers import SHARED_MNIST

MNIST_IMAGES = os.path.join(SHARED_MNIST, 'train-images-idx3-ubyte.gz')


def mnist_16x16(count: int) -> np.ndarray:
  """MNIST padded to 32x32, 2x2-average-pooled to 16x16, rounded, scaled to [-1, 1]."""
  images = np.pad(idx.read_idx(MNIST_IMAGES)[:count], ((0, 0), (2, 2), (2, 2)))
  pooled = images.reshape(count, 16, 2, 16, 2).astype(np.float32).mean(axis=(2, 4))
  return (np.round(pooled) / 127.5 - 1.0)[..., None]


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists(MNIST_IMAGES), reason=f'{MNIST_IMAGES} is absent')
def test_tiny_ddpm_lowers_its_bound_on_mnist():
  data = jnp.asarray(mnist_16x16(320))
  train, held_out = data[:256], data[256:]
  diffusion = gd.GaussianDiffusion(schedules.get_beta_schedule('cosine', 100),
                                   learn_sigma=True, decoder='discretized')
  model = unet_lib.UNet(ch=16, ch_mult=(1, 2), num_res_blocks=1, attn_resolutions=(8,),
                        dropout=0.0, num_heads=1, out_channels=2, conv_impl='xla',
                        dtype=jnp.float32, remat=False)
  params = model.init(jax.random.PRNGKey(0), train[:1], jnp.zeros((1,), jnp.int32))
  optimizer = optax.adam(2e-3)
  opt_state = optimizer.init(params)

  @jax.jit
  def bpd(params):
    out = diffusion.full_bound(lambda x, t: model.apply(params, x, t), held_out,
                               jax.random.PRNGKey(7))
    return jnp.mean(discrete_nats_to_bpd(out['total_nats'], 256))

  @jax.jit
  def step(params, opt_state, key):
    key_batch, key_loss = jax.random.split(key)
    batch = train[jax.random.choice(key_batch, train.shape[0], (32,), replace=False)]
    loss_fn = lambda p: jnp.mean(diffusion.training_losses(
        lambda x, t: model.apply(p, x, t), batch, key_loss)['loss'])
    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt_state = optimizer.update(grads, opt_state)
    return optax.apply_updates(params, updates), opt_state, loss

  before = float(bpd(params))
  for i in range(300):
    params, opt_state, loss = step(params, opt_state, jax.random.PRNGKey(100 + i))
  after = float(bpd(params))
  print(f'held-out bits/dim: {before:.3f} at init, {after:.3f} after 300 steps')
  assert np.isfinite(float(loss))
  # Zero-initialised output starts at several bits/dim; training must cut it a lot.
  assert after < 0.7 * before, (before, after)
