"""Small configs and data shared by the model and training tests."""
import os
import shutil

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from configs import default

# The full MNIST IDX files, found relative to the repository root (../shared/data/mnist);
# tests that need them skip with this path in the reason when it is absent.
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_MNIST = os.path.join(os.path.dirname(REPO_ROOT), 'shared', 'data', 'mnist')


def one_device_env() -> dict:
  """This process's environment for a subprocess with one CPU device (other XLA flags kept)."""
  flags = [f for f in os.environ.get('XLA_FLAGS', '').split()
           if not f.startswith('--xla_force_host_platform_device_count')]
  return dict(os.environ, XLA_FLAGS=' '.join(flags + ['--xla_force_host_platform_device_count=1']))


def tiny_config(kind: str = 'diffflow') -> ml_collections.ConfigDict:
  """A DiffFlow/flow/DDPM config small enough for a unit test on CPU."""
  config = default.get_config()
  config.model.kind = kind
  config.model.latent_squeeze = 2
  config.model.conv_impl = 'xla'
  config.flow.num_levels = 2
  config.flow.num_steps = 1
  config.flow.hidden_channels = 8
  config.flow.num_res_blocks = 1
  config.unet.ch = 8
  config.unet.ch_mult = (1,) if kind == 'diffflow' else (1, 2)
  config.unet.num_res_blocks = 1
  config.unet.attn_resolutions = ()
  config.diffusion.num_timesteps = 20
  config.diffusion.sample_steps = 5
  config.train.batch_size = 8
  config.train.num_steps = 4
  config.train.log_every = 2
  config.train.eval_every = 4
  config.train.checkpoint_every = 2
  config.train.sample_every = 4
  config.optim.warmup_steps = 1
  config.eval.batch_size = 8
  config.eval.num_examples = 16
  config.eval.num_samples = 4
  config.eval.ode_examples = 8
  config.eval.ode_probes = 2
  return config


def random_images(n: int, shape=(32, 32, 1), seed: int = 0) -> np.ndarray:
  """Random uint8 images with MNIST-like zero borders."""
  rng = np.random.default_rng(seed)
  x = rng.integers(0, 256, size=(n,) + shape).astype(np.uint8)
  x[:, :2] = 0
  return x


class NaNOnMarkedBatch:
  """Wraps a model so that its loss is NaN for batches whose first pixel is 255."""

  def __init__(self, model):
    self.model = model

  def init(self, key, x):
    return self.model.init(key, x)

  def loss(self, params, x, key, train=True):
    loss, metrics = self.model.loss(params, x, key, train)
    bad = x[0, 0, 0, 0] == 255
    return jnp.where(bad, jnp.nan, loss), metrics

  def __getattr__(self, name):
    return getattr(self.model, name)


def copy_run(run, dest) -> str:
  """A private copy at `dest` of the workdir of a shared run (conftest's `tiny_run`)."""
  shutil.copytree(run.workdir, str(dest))
  return str(dest)


def param_leaves(state) -> list:
  """The params of a TrainState as a list of numpy arrays (for exact comparisons)."""
  return [np.asarray(x) for x in jax.tree.leaves(jax.device_get(state.params))]
