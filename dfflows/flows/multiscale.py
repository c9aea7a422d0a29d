"""Multi-scale Glow/NSF flow: x (image in [0,1)) -> z of the same shape.

The layers take every setting as a required field and check it when built; `StepSettings`
holds what each FlowStep of a flow shares. `dfflows/models/build.py` fills them from a config.
"""
import dataclasses
from typing import List, Sequence, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from dfflows.checks import check_at_least, check_choice, check_nhwc
from dfflows.flows.actnorm import ActNorm
from dfflows.flows.conv1x1 import Conv1x1, Conv1x1LU
from dfflows.flows.couplings import AffineCoupling, SplineCoupling
from dfflows.flows.dequantize import Logit, check_logit_alpha
from dfflows.flows.squeeze import squeeze, unsqueeze

COUPLINGS = ('spline', 'affine')
CONV1X1S = ('lu', 'plain')


@dataclasses.dataclass(frozen=True)
class StepSettings:
  """What every FlowStep of a flow shares; an unknown option is a ValueError when made.

  hidden_channels, num_res_blocks, conv_impl: the coupling's conditioner (`nets/`);
  coupling: one of COUPLINGS; num_bins, tail_bound: the spline's (unused by 'affine');
  mask: one of `couplings.MASKS`; conv1x1: one of CONV1X1S.
  """
  hidden_channels: int
  num_res_blocks: int
  coupling: str
  num_bins: int
  tail_bound: float
  mask: str
  conv1x1: str
  conv_impl: str

  def __post_init__(self):
    check_choice('FlowStep', 'coupling', self.coupling, COUPLINGS)
    check_choice('FlowStep', 'conv1x1', self.conv1x1, CONV1X1S)
    self.make_coupling()  # The coupling checks the rest of its options when made.

  def make_coupling(self) -> nn.Module:
    """The coupling layer these settings name (unbound; `parent=None` outside any module)."""
    conditioner = dict(hidden_channels=self.hidden_channels, num_res_blocks=self.num_res_blocks,
                       mask=self.mask, conv_impl=self.conv_impl)
    if self.coupling == 'spline':
      return SplineCoupling(num_bins=self.num_bins, tail_bound=self.tail_bound, parent=None,
                            **conditioner)
    return AffineCoupling(parent=None, **conditioner)


class FlowStep(nn.Module):
  """One Glow step: ActNorm -> invertible 1x1 conv -> coupling.

  `parity` (int, possibly traced) flips the checkerboard mask between steps.
  Log-det: the sum of the three layers' log-dets.
  """
  settings: StepSettings

  def setup(self):
    self.actnorm = ActNorm()
    self.conv = Conv1x1LU() if self.settings.conv1x1 == 'lu' else Conv1x1()
    self.coupling_layer = self.settings.make_coupling()

  def __call__(self, x: jax.Array, parity=0) -> Tuple[jax.Array, jax.Array]:
    return self.forward(x, parity)

  def forward(self, x: jax.Array, parity=0) -> Tuple[jax.Array, jax.Array]:
    """Returns the step's output and log-det per example."""
    x, ld1 = self.actnorm.forward(x)
    x, ld2 = self.conv.forward(x)
    x, ld3 = self.coupling_layer.forward(x, parity)
    return x, ld1 + ld2 + ld3

  def inverse(self, y: jax.Array, parity=0) -> Tuple[jax.Array, jax.Array]:
    """Returns the step's inverse and log|det dx/dy| per example."""
    y, ld3 = self.coupling_layer.inverse(y, parity)
    y, ld2 = self.conv.inverse(y)
    y, ld1 = self.actnorm.inverse(y)
    return y, ld1 + ld2 + ld3


class FlowLevel(nn.Module):
  """`num_steps` FlowSteps at one scale, via `nn.scan` (scan=True) or a loop.

  With scan the step parameters are stacked on a leading axis of size
  `num_steps` (under 'step'); unrolled, they live under 'steps_0', 'steps_1', ...
  Step i uses checkerboard parity i mod 2 in both layouts.
  """
  num_steps: int
  settings: StepSettings
  scan: bool

  def setup(self):
    if self.scan:
      self.step = FlowStep(self.settings)
    else:
      self.steps = [FlowStep(self.settings) for _ in range(self.num_steps)]

  def _scanned(self, x: jax.Array, inverse: bool) -> Tuple[jax.Array, jax.Array]:
    """Runs the stacked step over its leading param axis (reversed for the inverse)."""
    def body(step, carry, parity):
      h, logdet = carry
      h, ld = step.inverse(h, parity) if inverse else step.forward(h, parity)
      return (h, logdet + ld), None

    scan = nn.scan(body, variable_axes={'params': 0}, split_rngs={'params': True},
                   length=self.num_steps, reverse=inverse)
    parities = jnp.arange(self.num_steps) % 2
    (x, logdet), _ = scan(self.step, (x, jnp.zeros(x.shape[:1], x.dtype)), parities)
    return x, logdet

  def __call__(self, x: jax.Array) -> Tuple[jax.Array, jax.Array]:
    return self.forward(x)

  def forward(self, x: jax.Array) -> Tuple[jax.Array, jax.Array]:
    """Returns the output of all steps and the summed log-det."""
    if self.scan:
      return self._scanned(x, inverse=False)
    logdet = jnp.zeros(x.shape[:1], x.dtype)
    for i, step in enumerate(self.steps):
      x, ld = step.forward(x, i % 2)
      logdet += ld
    return x, logdet

  def inverse(self, y: jax.Array) -> Tuple[jax.Array, jax.Array]:
    """Returns the inverse of all steps and log|det dx/dy|."""
    if self.scan:
      return self._scanned(y, inverse=True)
    logdet = jnp.zeros(y.shape[:1], y.dtype)
    for i in reversed(range(self.num_steps)):
      y, ld = self.steps[i].inverse(y, i % 2)
      logdet += ld
    return y, logdet


class MultiScaleFlow(nn.Module):
  """Multi-scale flow (Glow layout, NSF or affine couplings): u in [0,1)^D -> z.

  Forward: h = Logit(u) if logit_alpha > 0 else u - 0.5; then at each of
  `num_levels` levels: squeeze, `num_steps` FlowSteps, and (except at the last
  level) factor out the first half of the channels. The factored parts are
  re-assembled by inverting the squeezes, so z has the shape of u:
  z = unsqueeze(concat(z_0, unsqueeze(concat(z_1, ... unsqueeze(h_last))))).
  Inverse: the exact reverse. Log-det: sum of all layers' log-dets, so
  log p(u) = log N(z; 0, I) + log|det dz/du|. `step` holds the settings of every FlowStep;
  `scan` runs each level's steps under `nn.scan` (see FlowLevel).
  """
  num_levels: int
  num_steps: int
  step: StepSettings
  scan: bool
  logit_alpha: float

  def __post_init__(self):
    check_at_least('MultiScaleFlow', 'num_levels', self.num_levels, 1)  # At construction.
    check_at_least('MultiScaleFlow', 'num_steps', self.num_steps, 1)
    check_logit_alpha('MultiScaleFlow', 'logit_alpha', self.logit_alpha)
    super().__post_init__()

  def setup(self):
    self.logit = Logit(self.logit_alpha)
    self.levels = [FlowLevel(self.num_steps, self.step, self.scan)
                   for _ in range(self.num_levels)]

  def _check(self, x: jax.Array) -> None:
    """Raises ValueError unless x is NHWC with H, W divisible by 2**num_levels."""
    check_nhwc(x, 'MultiScaleFlow')
    factor = 2 ** self.num_levels
    if x.shape[1] % factor or x.shape[2] % factor:
      raise ValueError(
          f'MultiScaleFlow with num_levels={self.num_levels} needs H and W divisible '
          f'by {factor}; got shape {x.shape}.')

  def __call__(self, u: jax.Array) -> Tuple[jax.Array, jax.Array]:
    return self.forward(u)

  def forward(self, u: jax.Array) -> Tuple[jax.Array, jax.Array]:
    """Returns z = f(u) (same shape as u) and log|det dz/du| per example."""
    self._check(u)
    if self.logit_alpha > 0:
      h, logdet = self.logit.forward(u)
    else:
      h, logdet = u - 0.5, jnp.zeros(u.shape[:1], u.dtype)
    factored = []
    for i, level in enumerate(self.levels):
      h, ld = level.forward(squeeze(h))
      logdet += ld
      if i < self.num_levels - 1:
        z_i, h = jnp.split(h, 2, axis=-1)
        factored.append(z_i)
    return join_levels(factored, h), logdet

  def inverse(self, z: jax.Array) -> Tuple[jax.Array, jax.Array]:
    """Returns u = f^{-1}(z) and log|det du/dz| per example."""
    self._check(z)
    factored, h = split_levels(z, self.num_levels)
    logdet = jnp.zeros(z.shape[:1], z.dtype)
    for i in reversed(range(self.num_levels)):
      if i < self.num_levels - 1:
        h = jnp.concatenate([factored[i], h], axis=-1)
      h, ld = self.levels[i].inverse(h)
      logdet += ld
      h = unsqueeze(h)
    if self.logit_alpha > 0:
      u, ld = self.logit.inverse(h)
      return u, logdet + ld
    return h + 0.5, logdet


def split_levels(z: jax.Array, num_levels: int) -> Tuple[List[jax.Array], jax.Array]:
  """The latents of a `num_levels` flow's output z: (factored-out parts by level, top level).

  Level i < num_levels - 1 factored out z_i of shape [B, H/2^(i+1), W/2^(i+1), 2^(i+1) C];
  the top level's latent has shape [B, H/2^L, W/2^L, 2^(L+1) C] (L = num_levels).
  """
  factored = []
  for _ in range(num_levels - 1):
    z_i, z = jnp.split(squeeze(z), 2, axis=-1)
    factored.append(z_i)
  return factored, squeeze(z)


def join_levels(factored: Sequence[jax.Array], top: jax.Array) -> jax.Array:
  """Inverse of `split_levels`: the flow output in the input's shape."""
  z = unsqueeze(top)
  for z_i in reversed(factored):
    z = unsqueeze(jnp.concatenate([z_i, z], axis=-1))
  return z

