"""Flow-only baseline (NSF/Glow): exact likelihood under a standard normal prior.

    -log p(u) = -log|det df/du| - log N(f(u); 0, I)

for a dequantised image u in [0,1)^D; samples are f^-1(temperature * N(0, I)).
"""
import dataclasses
from typing import Dict, Optional, Tuple

import jax
import jax.numpy as jnp

from dfflows.diffusion.gaussian_diffusion import standard_normal_nll
from dfflows.flows import MultiScaleFlow, uniform_dequantize
from dfflows.metrics.bpd import LOG2, continuous_nats_to_bpd
from dfflows.models import common
from dfflows.models.interface import BpdLabels, Params, SamplingPlan


@dataclasses.dataclass(frozen=True)
class FlowOnly:
  """A normalizing flow with a standard normal prior on its latent."""
  flow: MultiScaleFlow
  image_shape: Tuple[int, int, int]

  @property
  def param_groups(self) -> Tuple[str, ...]:
    """The params' top-level keys (`Model.param_groups`)."""
    return ('flow',)

  @property
  def bpd_labels(self) -> BpdLabels:
    """Every bits/dim of the flow is its exact NLL (of one dequantisation draw)."""
    return BpdLabels(train='exact NLL', eval='exact NLL', full='exact NLL of the flow')

  def sampling_plan(self, num_steps: int) -> SamplingPlan:
    """One flow inverse, whatever `num_steps` asks for."""
    del num_steps
    return SamplingPlan(None, 'flow inverse', 1)

  def init(self, key: jax.Array, x: jnp.ndarray) -> Params:
    """Initialises params; ActNorm layers are initialised from the batch `x` (uint8)."""
    common.check_model_input(x, self.image_shape)
    k_deq, k_flow = jax.random.split(key)
    return {'flow': self.flow.init(k_flow, uniform_dequantize(k_deq, x))}

  def nll_terms(self, params: Params, x: jnp.ndarray,
                key: jax.Array) -> Tuple[jnp.ndarray, jnp.ndarray, jnp.ndarray]:
    """Per-example (bits/dim, -logdet nats, prior NLL nats) of uint8 `x`."""
    common.check_model_input(x, self.image_shape)
    z, logdet = self.flow.apply(params['flow'], uniform_dequantize(key, x), method='forward')
    prior = standard_normal_nll(z)
    return continuous_nats_to_bpd(prior - logdet, common.num_dims(self.image_shape)), -logdet, prior

  def loss(self, params: Params, x: jnp.ndarray, key: jax.Array,
           train: bool = True) -> Tuple[jnp.ndarray, Dict[str, jnp.ndarray]]:
    """Mean bits/dim (the exact NLL of the dequantised batch) and metrics."""
    del train
    bpd, neg_logdet, prior = self.nll_terms(params, x, key)
    scale = common.num_dims(self.image_shape) * LOG2
    loss = bpd.mean()
    return loss, {'loss': loss, 'bpd': loss, 'logdet_bpd': (neg_logdet / scale).mean(),
                  'prior_bpd': (prior / scale).mean()}

  def eval_bpd(self, params: Params, x: jnp.ndarray, key: jax.Array) -> jnp.ndarray:
    """Exact bits/dim per example (one dequantisation sample, `common.eval_keys(key)[0]`: a
    DiffFlow evaluated with `key` sees the same u)."""
    return self.nll_terms(params, x, common.eval_keys(key)[0])[0]

  full_bpd = eval_bpd

  def sample(self, params: Params, key: jax.Array, num: int, num_steps: Optional[int] = None,
             temperature: float = 1.0) -> jnp.ndarray:
    """Samples `num` uint8 images as f^-1(temperature * eps)."""
    del num_steps
    z = temperature * jax.random.normal(key, (num,) + tuple(self.image_shape))
    u, _ = self.flow.apply(params['flow'], z, method='inverse')
    return common.to_uint8(u)
