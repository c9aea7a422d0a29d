"""distrax adapter for a flow module (forward: data -> latent)."""
from typing import Any, Optional, Sequence, Tuple

import distrax
import flax.linen as nn
import jax
import jax.numpy as jnp

DIRECTIONS = ('normalizing', 'generative')


class FlowBijector(distrax.Bijector):
  """Wraps a flow module (`forward`/`inverse` on [B, H, W, C]) as a distrax Bijector.

  direction='normalizing': forward = module.forward (data x -> latent z).
  direction='generative': forward = module.inverse (z -> x), inverse = module.forward.
  Log-dets are those of the module; inputs may be batched [..., H, W, C] with at
  most one batch axis, or unbatched [H, W, C] (then the log-det is a scalar).
  With `event_shape` (H, W, C) given, inputs of any other event shape raise a
  ValueError naming both shapes (otherwise e.g. ActNorm's per-channel params
  would silently broadcast over a wrong channel count).

  Support: a MultiScaleFlow with a Logit layer is a bijection from the logit's domain
  (per entry -alpha / (1 - 2 alpha) < u < (1 - alpha) / (1 - 2 alpha), which contains
  [0, 1)) to R^D. Outside it the normalizing log-det is -inf, so `log_prob` is -inf.
  A NaN input is a ValueError when the input is a concrete array; under `jax.jit` the
  NaN propagates (values cannot be checked there).

  Example (the flow-only model p(x) = N(f(x); 0, I) |det df/dx|):

    flow = MultiScaleFlow(...)
    variables = flow.init(key, x_batch)
    base = distrax.Independent(distrax.Normal(jnp.zeros((H, W, C)), 1.), 3)
    model = distrax.Transformed(
        base, FlowBijector(flow, variables, direction='generative'))
    model.log_prob(x)          # = base.log_prob(f(x)) + log|det df/dx|
    model.sample(seed=key, sample_shape=(16,))
  """

  def __init__(self, module: nn.Module, variables: Any, direction: str = 'normalizing',
               event_shape: Optional[Sequence[int]] = None):
    if direction not in DIRECTIONS:
      raise ValueError(f'Unknown direction {direction!r}; expected one of {DIRECTIONS}.')
    if event_shape is not None and len(event_shape) != 3:
      raise ValueError(f'event_shape must be (H, W, C); got {tuple(event_shape)}.')
    super().__init__(event_ndims_in=3, event_ndims_out=3)
    self._module = module
    self._variables = variables
    self._direction = direction
    self._event_shape = None if event_shape is None else tuple(event_shape)

  def _apply(self, x: jax.Array, method: str, caller: str) -> Tuple[jax.Array, jax.Array]:
    """Applies the module's `method` to batched or unbatched x (for bijector's `caller`)."""
    if x.ndim not in (3, 4):
      raise ValueError(f'FlowBijector expects [H, W, C] or [B, H, W, C]; got {x.shape}.')
    if self._event_shape is not None and tuple(x.shape[-3:]) != self._event_shape:
      raise ValueError(f'FlowBijector.{caller}: expected events of shape {self._event_shape} '
                       f'(H, W, C); got an input of shape {x.shape}.')
    if not isinstance(x, jax.core.Tracer) and bool(jnp.any(jnp.isnan(x))):
      raise ValueError(f'FlowBijector.{caller}: the input contains NaN.')
    unbatched = x.ndim == 3
    xb = x[None] if unbatched else x
    y, logdet = self._module.apply(self._variables, xb,
                                   method=getattr(self._module, method))
    return (y[0], logdet[0]) if unbatched else (y, logdet)

  def forward_and_log_det(self, x: jax.Array) -> Tuple[jax.Array, jax.Array]:
    """Computes y = f(x) and log|det J(f)(x)|."""
    return self._apply(x, 'forward' if self._direction == 'normalizing' else 'inverse', 'forward')

  def inverse_and_log_det(self, y: jax.Array) -> Tuple[jax.Array, jax.Array]:
    """Computes x = f^{-1}(y) and log|det J(f^{-1})(y)|."""
    return self._apply(y, 'inverse' if self._direction == 'normalizing' else 'forward', 'inverse')
