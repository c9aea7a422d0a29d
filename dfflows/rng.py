"""Named random streams of a run, all derived from `PRNGKey(config.seed)`.

Train step n uses `fold_in(base, n)` (n < 2**30); every other use of randomness
has its own stream here, so no two uses share numbers and each is found by name.
A member's value never changes (a new use gets a new member), so results and
checkpoints' initial params keep their keys.
"""
import enum

import jax


class Stream(enum.IntEnum):
  """fold_in values of the streams (train steps use 0 .. 2**30 - 1)."""
  INIT = 2**31 - 1  # Param initialisation.
  PERIODIC_EVAL = 2**30  # The periodic eval bits/dim during training.
  PERIODIC_SAMPLES = 2**30 + 1  # The sample grids written during training.
  EVAL_BPD = 2**30 + 2  # dfflows.evaluate: full-bound bits/dim.
  EVAL_SAMPLES = 2**30 + 3  # dfflows.evaluate: samples for timing, FID and the trajectory.
  EXPERIMENT_SAMPLES = 2**30 + 5  # experiments/sampling_steps.py.
  EVAL_TRAJECTORY = 2**30 + 7  # dfflows.evaluate: the reverse trajectory strip.
  EVAL_EPS_MSE = 2**30 + 8  # dfflows.evaluate: t and noise of the one-sample eps-MSE.
  EXPERIMENT_BOUND = 2**30 + 9  # experiments: full-bound terms (batch i: fold_in(key, i)).
  EXPERIMENT_ESTIMATES = 2**30 + 10  # experiments: draws of the one-sample bound estimate.
  FID_CLASSIFIER = 2**30 + 11  # The FID feature classifier's init and training steps.
  EXPERIMENT_LATENTS = 2**30 + 12  # experiments/latent_gaussian.py: dequantisation noise.
  EXPERIMENT_LINEAR_DENOISER = 2**30 + 13  # experiments/linear_denoiser.py: latents, steps, bound.


def base_key(seed: int) -> jax.Array:
  """The base key of a run whose config.seed is `seed`: every key of the run derives from it."""
  return jax.random.PRNGKey(seed)


def stream(base_key: jax.Array, name: Stream) -> jax.Array:
  """The key of stream `name` of a run whose base key is `base_key`."""
  return jax.random.fold_in(base_key, int(name))
