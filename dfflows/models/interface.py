"""The typed boundary between the models and the trainer, `evaluate` and the experiments."""
from typing import Any, Dict, NamedTuple, Optional, Protocol, Tuple, runtime_checkable

import jax
import jax.numpy as jnp

Params = Any


class BpdLabels(NamedTuple):
  """What a model's bits/dim numbers are: of `loss`'s metric, `eval_bpd` and `full_bpd`."""
  train: str
  eval: str
  full: str


class SamplingPlan(NamedTuple):
  """How `sample` draws with a requested number of reverse steps."""
  num_steps: Optional[int]  # Passed to `sample`; None: no reverse chain (a flow inverse).
  description: str
  network_evals: int  # Network evaluations per sample.


class Model(Protocol):
  """A density model of uint8 images, trained and evaluated by dfflows."""
  image_shape: Tuple[int, int, int]

  @property
  def param_groups(self) -> Tuple[str, ...]:
    """The top-level keys of `init`'s params, each a parameter group of the optimizer."""

  @property
  def bpd_labels(self) -> BpdLabels:
    """Labels of the bits/dim that `loss`, `eval_bpd` and `full_bpd` return."""

  def init(self, key: jax.Array, x: jnp.ndarray) -> Params:
    """Params from a key and a batch of uint8 images."""

  def loss(self, params: Params, x: jnp.ndarray, key: jax.Array,
           train: bool = True) -> Tuple[jnp.ndarray, Dict[str, jnp.ndarray]]:
    """The training loss and per-batch metrics (including 'bpd')."""

  def eval_bpd(self, params: Params, x: jnp.ndarray, key: jax.Array) -> jnp.ndarray:
    """A cheap unbiased estimate (or the exact value) of the bits/dim, per example."""

  def full_bpd(self, params: Params, x: jnp.ndarray, key: jax.Array) -> jnp.ndarray:
    """The full bound (or exact NLL) in bits/dim, per example; dequantized with
    `common.eval_keys(key)[0]`, so models evaluated with one key are paired on the same u."""

  def sampling_plan(self, num_steps: int) -> SamplingPlan:
    """What `sample` does when asked for `num_steps` reverse steps."""

  def sample(self, params: Params, key: jax.Array, num: int, num_steps: Optional[int] = None,
             temperature: float = 1.0) -> jnp.ndarray:
    """`num` uint8 images."""


@runtime_checkable
class HasTrajectory(Protocol):
  """A model whose samples come from a reverse chain that can be shown frame by frame."""

  def trajectory(self, params: Params, key: jax.Array, num: int, num_steps: Optional[int] = None,
                 frames: int = 8) -> Tuple[jnp.ndarray, jnp.ndarray]:
    """(latent frames, image frames), each [frames, num, H, W, C]."""


@runtime_checkable
class HasBoundTerms(Protocol):
  """A model whose bound is a sum of diffusion terms that can be reported one by one."""

  def full_bound_terms(self, params: Params, x: jnp.ndarray,
                       key: jax.Array) -> Dict[str, jnp.ndarray]:
    """Per-example nats: 'prior_nats' [B], 'vlb_nats' [B, T] (t = 0 is the decoder), and
    for a flow latent 'neg_logdet' [B] (-log|det df/du|)."""


@runtime_checkable
class HasOdeLikelihood(Protocol):
  """A model with an exact likelihood through the probability-flow ODE of its diffusion."""

  def ode_label(self, num_probes: int) -> str:
    """What `ode_nll_terms` with `num_probes` Hutchinson probes estimates."""

  def ode_nll_terms(self, params: Params, x: jnp.ndarray, key: jax.Array,
                    num_probes: int = 1) -> Dict[str, jnp.ndarray]:
    """Per-example nats: 'ode_nats' (the ODE's -log p of the latent), 'neg_logdet'
    (everything outside the diffusion), and the solve's 'nfe' (network evaluations)."""
