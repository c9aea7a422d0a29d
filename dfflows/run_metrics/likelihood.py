"""Test-set likelihood of a trained model over the eval batches, per example: the full
bound (the exact NLL for the flow) in bits/dim, the probability-flow ODE's NLL, the
one-sample eps-MSE, and the bits/dim fields in both units (per model dim, per real pixel).

Each function takes the model, its params, the images and the key of its stream
(`dfflows.rng`); batch i of the eval batches uses `fold_in(key, i)`, and the zero-padded
rows of the last batch are dropped before anything is averaged.
"""
import functools
import time
from typing import Any, Callable, Dict, Optional

import jax
import ml_collections
import numpy as np

from dfflows.data import batching
from dfflows.metrics import bpd as bpd_lib
from dfflows.metrics import stats
from dfflows.models.interface import HasOdeLikelihood, Model


def per_example(fn: Callable[[np.ndarray, jax.Array], Any], images: np.ndarray,
                num_examples: int, batch_size: int, key: jax.Array) -> Any:
  """fn(batch, fold_in(key, i)) (per-example arrays) over the first `num_examples` images
  (0 = all), concatenated without the padded rows of the last batch."""
  parts = []
  for i, (batch, mask) in enumerate(batching.eval_batches(images, batch_size, num_examples)):
    keep = np.asarray(mask, bool)
    out = jax.device_get(fn(batch, jax.random.fold_in(key, i)))
    parts.append(jax.tree.map(lambda a, keep=keep: np.asarray(a)[keep], out))
  return jax.tree.map(lambda *a: np.concatenate(a), *parts)


def _summary(name: str, values: np.ndarray) -> Dict[str, Any]:
  """`name`, `name`_stderr, `name`_num_examples and `name`_per_example of per-example values."""
  mean, stderr = stats.mean_and_stderr(values)
  return {name: mean, f'{name}_stderr': stderr, f'{name}_num_examples': int(len(values)),
          f'{name}_per_example': values.tolist()}


def draw_key(key: jax.Array, draw: int) -> jax.Array:
  """The key of Monte Carlo draw `draw` of a per-example estimate: `key` itself for draw 0."""
  return key if draw == 0 else jax.random.fold_in(key, draw)


def full_bpd_draws(model: Model, params: Any, images: np.ndarray, num_examples: int,
                   batch_size: int, key: jax.Array, draws: int) -> np.ndarray:
  """[draws, examples] full-bound bits/dim (the exact NLL for the flow), one row per Monte
  Carlo draw (keys `draw_key(key, d)`)."""
  if draws < 1:
    raise ValueError(f'The full bound needs at least one draw per image, got draws={draws} '
                     '(config.eval.bound_draws).')
  # Jitted as the class's function with the model static: the cache is keyed on the model, so
  # a second call (the raw params after the EMA's) reuses the compiled bound.
  fn = functools.partial(jax.jit(type(model).full_bpd, static_argnums=0), model)
  return np.stack([per_example(lambda x, k: fn(params, x, k), images, num_examples, batch_size,
                               draw_key(key, d)) for d in range(draws)])


def full_bpd_summary(model: Model, params: Any, images: np.ndarray, num_examples: int,
                     batch_size: int, key: jax.Array, draws: int = 1) -> Dict[str, Any]:
  """Full-bound bits/dim (the exact NLL for the flow): mean, stderr and per example, each
  example's value the mean of its `draws` Monte Carlo draws (`full_bpd_draws`)."""
  values = full_bpd_draws(model, params, images, num_examples, batch_size, key, draws)
  return {**_summary('bpd', values.mean(axis=0)), 'bpd_draws': draws}


def example_l_simple(model: Model, params: Any, x: np.ndarray, key: jax.Array) -> jax.Array:
  """Each example's one-sample eps-MSE (`l_simple` of the loss of that example alone, with
  key i of split(key)), [B]."""
  keys = jax.random.split(key, x.shape[0])
  one = lambda xi, ki: model.loss(params, xi[None], ki, train=False)[1]['l_simple']
  return jax.vmap(one)(x, keys)


def eps_mse(model: Model, params: Any, images: np.ndarray, num_examples: int, batch_size: int,
            key: jax.Array) -> Optional[float]:
  """Mean one-sample eps-MSE over the real examples; None for a model without one (flow)."""
  _, metrics = jax.eval_shape(functools.partial(model.loss, train=False), params, images[:1], key)
  if 'l_simple' not in metrics:
    return None
  fn = jax.jit(functools.partial(example_l_simple, model))
  values = per_example(lambda x, k: fn(params, x, k), images, num_examples, batch_size, key)
  return stats.mean_and_stderr(values)[0]


def ode_bpd_summary(model: HasOdeLikelihood, params: Any, images: np.ndarray, num_examples: int,
            batch_size: int, num_probes: int, key: jax.Array) -> Dict[str, Any]:
  """The probability-flow ODE's NLL (bits/dim: mean, stderr, per example) and its cost."""
  batch = jax.ShapeDtypeStruct((batch_size, *images.shape[1:]), images.dtype)
  # Compiled ahead, so that the timing below is the solves'.
  terms = jax.jit(functools.partial(model.ode_nll_terms, num_probes=num_probes)).lower(
      params, batch, key).compile()
  t0 = time.perf_counter()
  out = per_example(lambda x, k: terms(params, x, k), images, num_examples, batch_size, key)
  seconds = time.perf_counter() - t0
  dims = int(np.prod(images.shape[1:]))
  bpd = np.asarray(bpd_lib.continuous_nats_to_bpd(out['ode_nats'] + out['neg_logdet'], dims))
  return {**_summary('ode_bpd', bpd), 'ode_bpd_estimator': model.ode_label(num_probes),
          'ode_network_evals_per_image': float(np.mean(out['nfe'])),
          'ode_seconds_per_image': seconds / len(bpd)}


def real_pixel_fields(result: Dict[str, Any],
                      data_config: ml_collections.ConfigDict) -> Dict[str, Any]:
  """`result`'s bits/dim (bits per model dim) also as bits per real (unpadded) pixel.

  The same total bits over `bpd.real_pixel_count` pixels instead of the model's dims
  (MNIST at 32x32: 784 of 1,024); published MNIST figures are in this unit.
  """
  real, model_dims = bpd_lib.real_pixel_count(data_config), bpd_lib.model_dims(data_config)
  size, channels = data_config.image_size, data_config.channels
  padded = (f'of which {model_dims - real} are zero padding' if real < model_dims else
            'no padding')
  out = {'bpd_unit': (f'bits per model dim ({size}x{size}x{channels} = {model_dims} dims, '
                      f'{padded})'),
         'bpd_per_real_pixel_unit': f'bits per real pixel (the same total bits / {real})',
         'model_dims': model_dims, 'real_pixels': real}
  for key in ('bpd', 'bpd_raw_params', 'ode_bpd'):
    for suffix in ('', '_stderr'):
      if key + suffix in result:
        out[f'{key}_per_real_pixel{suffix}'] = float(
            bpd_lib.per_real_pixel(result[key + suffix], data_config))
  return out
