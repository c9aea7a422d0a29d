"""The DDPM / Improved-DDPM U-Net (Ho et al. 2020; Nichol & Dhariwal 2021) in flax.linen.

Sinusoidal time embedding + MLP; per level `num_res_blocks` ResNet blocks (with
self-attention at `attn_resolutions`) and a stride-2 downsampling conv; a middle
ResNet-attention-ResNet; a mirrored decoder with skip connections and nearest
upsampling; GroupNorm-SiLU-conv output initialised to zero.

`dtype` is the compute dtype (e.g. bfloat16 for mixed precision on GPUs/TPUs):
parameters stay float32 and the output is cast back to float32, so the diffusion
loss and everything downstream run in float32.
"""
import itertools
import math
from typing import Any, Tuple

import flax.linen as nn
import jax.numpy as jnp

from dfflows.nets.conv import Conv
from dfflows.nets.norm import GroupNorm

Array = jnp.ndarray


def num_groups(channels: int, max_groups: int = 32) -> int:
  """The largest divisor of `channels` <= max_groups leaving >= 2 channels per group."""
  # One channel per group (GroupNorm(min(32, ch)) for ch <= 32) would be instance
  # norm, which erases per-channel offsets; at least two channels keep them visible.
  limit = min(max_groups, max(channels // 2, 1))
  return next(g for g in range(limit, 0, -1) if channels % g == 0)


def timestep_embedding(t: Array, dim: int, max_period: float = 10000.0) -> Array:
  """Sinusoidal embedding [B, dim] of (possibly fractional) timesteps t [B]."""
  half = dim // 2
  freqs = jnp.exp(-math.log(max_period) * jnp.arange(half, dtype=jnp.float32) / half)
  args = t.astype(jnp.float32)[:, None] * freqs[None]
  emb = jnp.concatenate([jnp.cos(args), jnp.sin(args)], axis=-1)
  return jnp.pad(emb, ((0, 0), (0, dim % 2)))


class TimeResBlock(nn.Module):
  """h = x + conv(drop(silu(gn(conv(silu(gn(x)))) * (1 + scale) + shift))), 1x1 skip if needed.

  (scale, shift) = dense(silu(temb)): Improved DDPM's `use_scale_shift_norm`, which
  injects the time after the normalisation so no GroupNorm can remove it.
  """
  out_ch: int
  dropout: float = 0.0
  conv_impl: str = 'xla'
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: Array, temb: Array, train: bool = False) -> Array:
    dt = self.dtype
    h = nn.silu(GroupNorm(num_groups(x.shape[-1]), dtype=dt)(x))
    h = Conv(self.out_ch, (3, 3), impl=self.conv_impl, dtype=dt)(h)
    scale, shift = jnp.split(
        nn.Dense(2 * self.out_ch, dtype=dt)(nn.silu(temb))[:, None, None, :], 2, axis=-1)
    h = GroupNorm(num_groups(self.out_ch), dtype=dt)(h) * (1.0 + scale) + shift
    h = nn.silu(h)
    h = nn.Dropout(self.dropout, deterministic=not train)(h)
    h = Conv(self.out_ch, (3, 3), kernel_init=nn.initializers.zeros, impl=self.conv_impl,
             dtype=dt)(h)
    if x.shape[-1] != self.out_ch:
      x = Conv(self.out_ch, (1, 1), impl=self.conv_impl, dtype=dt)(x)
    return x + h


class AttnBlock(nn.Module):
  """h = x + MultiHeadAttention(gn(x)) over all spatial positions (zero-init output)."""
  num_heads: int = 1
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: Array) -> Array:
    batch, height, width, ch = x.shape
    h = GroupNorm(num_groups(ch), dtype=self.dtype)(x).reshape(batch, height * width, ch)
    h = nn.MultiHeadDotProductAttention(
        num_heads=self.num_heads, out_kernel_init=nn.initializers.zeros, dtype=self.dtype)(h)
    return x + h.reshape(x.shape)


class UNet(nn.Module):
  """eps (and variance) network of a diffusion: (x [B,H,W,C], t [B]) -> [B,H,W,out_channels].

  H and W must be divisible by 2**(len(ch_mult) - 1). Dropout uses the 'dropout'
  rng collection when `train` is True. Computes in `dtype`; returns float32. With
  `remat` the ResNet and attention blocks keep only their inputs for the backward
  pass and recompute the rest (less memory, about one more forward pass of compute).
  """
  ch: int
  ch_mult: Tuple[int, ...]
  num_res_blocks: int
  attn_resolutions: Tuple[int, ...]
  dropout: float
  num_heads: int
  out_channels: int
  conv_impl: str
  dtype: Any
  remat: bool

  def _check_input(self, x: Array, t: Array) -> None:
    """Raises ValueError for inputs the U-Net cannot process."""
    if x.ndim != 4:
      raise ValueError(f'UNet expects NHWC input of rank 4, got shape {x.shape}.')
    factor = 2 ** (len(self.ch_mult) - 1)
    if x.shape[1] % factor or x.shape[2] % factor:
      raise ValueError(f'UNet input height and width {x.shape[1:3]} must be divisible by '
                       f'2**(len(ch_mult) - 1) = {factor}.')
    if t.shape != (x.shape[0],):
      raise ValueError(f'UNet expects timesteps of shape {(x.shape[0],)}, got {t.shape}.')

  @nn.compact
  def __call__(self, x: Array, t: Array, train: bool = False) -> Array:
    t = jnp.broadcast_to(jnp.asarray(t), (x.shape[0],)) if jnp.ndim(t) == 0 else t
    self._check_input(x, t)
    dt = self.dtype
    temb = timestep_embedding(t, self.ch)
    temb = nn.Dense(4 * self.ch, dtype=dt)(temb)
    temb = nn.Dense(4 * self.ch, dtype=dt)(nn.silu(temb))
    res_cls = nn.remat(TimeResBlock, static_argnums=(3,)) if self.remat else TimeResBlock
    attn_cls = nn.remat(AttnBlock) if self.remat else AttnBlock
    res_ids, attn_ids = itertools.count(), itertools.count()
    # Explicit names, the params' keys: they depend on neither remat nor the class name.
    block = lambda out_ch: res_cls(out_ch, self.dropout, self.conv_impl, dt,
                                   name=f'ResBlock_{next(res_ids)}')
    attn = lambda: attn_cls(self.num_heads, dt, name=f'AttnBlock_{next(attn_ids)}')
    conv = lambda *args, **kwargs: Conv(*args, impl=self.conv_impl, dtype=dt, **kwargs)

    hs = [conv(self.ch, (3, 3))(x)]
    for level, mult in enumerate(self.ch_mult):
      for _ in range(self.num_res_blocks):
        h = block(self.ch * mult)(hs[-1], temb, train)
        if h.shape[1] in self.attn_resolutions:
          h = attn()(h)
        hs.append(h)
      if level != len(self.ch_mult) - 1:
        hs.append(conv(hs[-1].shape[-1], (3, 3), strides=(2, 2))(hs[-1]))

    h = hs[-1]
    h = block(h.shape[-1])(h, temb, train)
    h = attn()(h)
    h = block(h.shape[-1])(h, temb, train)

    for level, mult in reversed(list(enumerate(self.ch_mult))):
      for _ in range(self.num_res_blocks + 1):
        h = block(self.ch * mult)(jnp.concatenate([h, hs.pop()], axis=-1), temb, train)
        if h.shape[1] in self.attn_resolutions:
          h = attn()(h)
      if level != 0:
        h = jnp.repeat(jnp.repeat(h, 2, axis=1), 2, axis=2)  # Nearest-neighbour 2x.
        h = conv(h.shape[-1], (3, 3))(h)

    h = nn.silu(GroupNorm(num_groups(h.shape[-1]), dtype=dt)(h))
    out = conv(self.out_channels, (3, 3), kernel_init=nn.initializers.zeros)(h)
    return out.astype(jnp.float32)


COMPUTE_DTYPES = ('float32', 'bfloat16')  # unet.dtype
