"""Timesteps for the one-sample estimate of the diffusion bound: which t, and its weight.

The estimate itself is `GaussianDiffusion.one_sample_bound`, used by both diffusion models.

The bound sums L_t over t = 0..T-1. The first term (the decoder, about -3 nats
per dim) and the last (t = T-1, where the cosine schedule's beta = 0.999 turns
an eps error e into a KL of about 500 e^2 per dim, a sizeable part of a trained
model's bound) are computed for every example (the trade-off against drawing
them: benchmarks/RESULTS.md). The terms in between are estimated by one draw
t ~ p on 1..T-2, weighted by 1 / p_t, which is unbiased for any p with p_t > 0:
E_p[L_t / p_t] = sum_t L_t.
'uniform' is p_t = 1 / (T-2). 'importance' is p_t proportional to
log(1 - abar_t) - log(1 - abar_{t-1}) (t = 1..T-2): for a standard
normal latent L_t is about D/2 times that difference, so the weighted terms are
nearly equal and the estimate's variance collapses (the discrete form of the
likelihood weighting that is uniform in log-SNR, as in LSGM, ScoreFlow and VDM).
The draws of a batch are stratified (VDM's low-discrepancy sampler): u_i = (u +
i / B) mod 1 with one shared u ~ U[0, 1), pushed through the inverse CDF of p,
so each of the B strata of [0, 1) holds exactly one draw and each draw is
still marginally p-distributed.
"""
from typing import Tuple

import jax
import jax.numpy as jnp
import numpy as np

T_SAMPLINGS = ('uniform', 'importance')


def timestep_probs(alphas_cumprod: np.ndarray, kind: str) -> np.ndarray:
  """p_t for t = 0..T-1 with p_0 = p_{T-1} = 0 (those terms are always computed), float64."""
  abar = np.asarray(alphas_cumprod, np.float64)
  if kind == 'uniform':
    p = np.ones_like(abar)
  elif kind == 'importance':
    p = np.diff(np.log1p(-abar), prepend=0.0)  # log(1 - abar_t) - log(1 - abar_{t-1})
  else:
    raise ValueError(f'Unknown t_sampling {kind!r}; expected one of {T_SAMPLINGS}.')
  p[0] = p[-1] = 0.0
  if abar.size < 3 or np.any(p[1:-1] <= 0):
    raise ValueError('Need T >= 3 and a decreasing abar for positive probabilities on 1..T-2.')
  return p / p.sum()


def stratified_uniforms(key: jax.Array, n: int) -> jnp.ndarray:
  """n uniforms in [0, 1) with exactly one in each [i/n, (i+1)/n): (u + i/n) mod 1."""
  u = jax.random.uniform(key, ())
  return jnp.mod(u + jnp.arange(n, dtype=jnp.float32) / n, 1.0)


def sample_timesteps(key: jax.Array, n: int,
                     probs: np.ndarray) -> Tuple[jnp.ndarray, jnp.ndarray]:
  """n stratified draws t ~ probs (int32) and their weights 1 / p_t (float32)."""
  cdf = np.cumsum(probs)
  cdf[-1] = 1.0
  u = stratified_uniforms(key, n)
  t = jnp.searchsorted(jnp.asarray(cdf, jnp.float32), u, side='right')
  t = jnp.clip(t, 1, len(probs) - 2).astype(jnp.int32)
  return t, jnp.asarray(1.0 / np.where(probs > 0, probs, 1.0), jnp.float32)[t]
