"""Bits per dimension of 8-bit images, from the negative log-density of their dequantisation.

For an 8-bit image x in {0..255}^D and its uniform dequantisation u = (x + e) / 256 with
e ~ U[0,1)^D, u lies in [0,1)^D and

    -log P(x) <= E_e[-log p(u)] - D log 256            (Jensen; Theorem 1 of Ho et al. 2019)

since the density of u' = x + e on [0,256)^D is p(u) / 256^D.  Hence, with
NLL(u) = -log p(u) in nats for u in [0,1)^D,

    bits/dim = (NLL(u) + D log 256) / (D log 2) = NLL(u) / (D log 2) + 8.

For a DiffFlow, NLL(u) <= -log|det df/du| + L_vlb(f(u)); for the flow-only model
NLL(u) = -log|det df/du| - log N(f(u); 0, I) exactly; for the pixel-space DDPM the
discretised decoder gives -log P(x) directly and bits/dim = L_vlb / (D log 2).
"""
import math

import jax.numpy as jnp

LOG2 = math.log(2.0)


def continuous_nats_to_bpd(nll_nats: jnp.ndarray, num_dims: int, num_bits: int = 8) -> jnp.ndarray:
  """Bits/dim of 8-bit data from the NLL (nats) of its dequantisation in [0,1)^D."""
  return (nll_nats + num_dims * num_bits * LOG2) / (num_dims * LOG2)


def discrete_nats_to_bpd(nll_nats: jnp.ndarray, num_dims: int) -> jnp.ndarray:
  """Bits/dim from a discrete NLL (nats) of the 8-bit image itself."""
  return nll_nats / (num_dims * LOG2)
