"""Shared checks for flow-layer tests: perturbed params, inverses and Jacobian log-dets, and
small flows built directly (the layers take every setting; the tests name what they vary)."""
import dataclasses
from typing import Any, Callable

import jax
import numpy as np

from dfflows.flows import MultiScaleFlow, StepSettings

# The tests' base settings: a spline flow with a channel mask, an LU 1x1 conv, XLA convolutions.
STEP = dict(hidden_channels=32, num_res_blocks=1, coupling='spline', num_bins=8, tail_bound=4.,
            mask='channel', conv1x1='lu', conv_impl='xla')
FLOW = dict(num_levels=2, num_steps=2, scan=True, logit_alpha=0.05)


def step_settings(**overrides) -> StepSettings:
  """StepSettings of STEP with `overrides`."""
  return StepSettings(**{**STEP, **overrides})


def small_flow(**overrides) -> MultiScaleFlow:
  """A MultiScaleFlow of FLOW and STEP with `overrides` (flow and step fields by name)."""
  step_fields = {f.name for f in dataclasses.fields(StepSettings)}
  step = {k: v for k, v in overrides.items() if k in step_fields}
  flow = {k: v for k, v in overrides.items() if k not in step_fields}
  return MultiScaleFlow(step=step_settings(**step), **{**FLOW, **flow})


def perturb(variables: Any, key: jax.Array, scale: float = 0.1) -> Any:
  """Returns `variables` with N(0, scale^2) noise added to every leaf."""
  leaves, treedef = jax.tree.flatten(variables)
  keys = jax.random.split(key, len(leaves))
  noisy = [l + scale * jax.random.normal(k, l.shape, l.dtype) for l, k in zip(leaves, keys)]
  return jax.tree.unflatten(treedef, noisy)


def jacobian_logdet(f: Callable, x: jax.Array) -> np.ndarray:
  """Returns log|det df/dx| per example of a batched map f: [B, ...] -> ([B, ...], _).

  Examples are independent, so the Jacobian of the whole batch is block diagonal;
  the off-diagonal blocks are checked to be zero.
  """
  b, d = x.shape[0], x[0].size
  flat = lambda v: f(v.reshape(x.shape))[0].reshape(-1)
  jac = np.asarray(jax.jit(jax.jacfwd(flat))(x.reshape(-1)), np.float64)
  blocks = jac.reshape(b, d, b, d)
  out = []
  for i in range(b):
    off = np.delete(blocks[i], i, axis=1)
    np.testing.assert_allclose(off, 0., atol=1e-5)
    sign, logdet = np.linalg.slogdet(blocks[i, :, i])
    assert sign != 0
    out.append(logdet)
  return np.array(out)


def check_bijection(module, variables, x, atol=1e-4, logdet_atol=2e-3):
  """Asserts inverse(forward(x)) == x and both log-dets equal slogdet of the Jacobians."""
  fwd = lambda v: module.apply(variables, v, method=module.forward)
  inv = lambda v: module.apply(variables, v, method=module.inverse)
  y, logdet = jax.jit(fwd)(x)
  assert y.shape == x.shape and logdet.shape == x.shape[:1]
  x_rec, inv_logdet = jax.jit(inv)(y)
  np.testing.assert_allclose(x_rec, x, atol=atol)
  np.testing.assert_allclose(inv_logdet, -logdet, rtol=1e-5, atol=logdet_atol)
  np.testing.assert_allclose(logdet, jacobian_logdet(fwd, x), rtol=1e-4, atol=logdet_atol)
  np.testing.assert_allclose(inv_logdet, jacobian_logdet(inv, y), rtol=1e-4,
                             atol=logdet_atol)
  return y, logdet
