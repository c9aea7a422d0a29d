"""Probability-flow ODE of the VP diffusion: exact likelihood, encoder and sampler.

Continuous time tau in [0, 1] with abar(tau) chosen so that the discrete index i of
a T-step schedule is tau = (i + 1) / T (the network's time input is tau * T - 1):

  'cosine': abar(tau) = cosine_alpha_bar(tau) / cosine_alpha_bar(0), which equals the
            discrete alphas_cumprod[i] at tau = (i + 1) / T (except at i = T - 1,
            where the discrete beta is clipped at 0.999 and abar(1) = 0);
  'linear': beta(tau) linear in tau and equal to T beta_j at the middle (j + 1/2) / T of
            discrete step j, so that int over the step is beta_j and abar((i+1)/T) =
            exp(-sum_{j<=i} beta_j) matches prod_{j<=i} (1 - beta_j) to O(beta^2)
            (score_sde's VP SDE, beta from 0.1 to 20, up to that half-step shift);
            log abar(tau) = -int_0^tau beta. For T <= 100 the rate is negative near
            tau = 0 (abar > 1 below tau = 1 / T): only [tau_min, tau_max] is meaningful.

sigma(tau) = sqrt(1 - abar(tau)) and beta(tau) = -d log abar / d tau. With eps_hat(x, tau)
the network's estimate of the noise (the score is -eps_hat / sigma), the probability
flow ODE (Song et al. 2021, eq. 13) is

  dx/dtau = f(x, tau) = -1/2 beta(tau) (x - eps_hat(x, tau) / sigma(tau)),

and the instantaneous change of variables (Chen et al. 2018) gives the density of
x(tau_min) under the model "x(tau_max) ~ N(0, I), then the ODE backwards":

  -log p(x0) = -log N(x(tau_max); 0, I) - int_{tau_min}^{tau_max} div f(x(tau), tau) dtau.

The divergence is exact (the trace of the Jacobian via D Jacobian-vector products,
for small D) or Hutchinson's unbiased estimate E_v[v^T (df/dx) v] with Rademacher
probes v drawn once per solve (FFJORD), written as v^T J v with vector-Jacobian
products; the NLL is linear in the estimate, so it is
unbiased too (up to the solver's tolerance).

The integration range is [tau_min, tau_max] with tau_min = 1 / T (discrete index 0,
the least noisy level the network was trained on; score_sde's eps) and tau_max the
tau at which abar(tau) equals the discrete schedule's last alphas_cumprod (or 1 when
abar never gets that low, as for 'linear'), so both ends are noise levels the network
was trained on and beta stays finite (the cosine beta diverges at tau = 1).

The whole batch is one ODE (shared adaptive steps; the error norm is over the batch).
"""
import dataclasses
import math
from typing import Callable, Dict, Optional

import diffrax
import jax
import jax.numpy as jnp
import numpy as np

from dfflows.diffusion import schedules
from dfflows.diffusion.gaussian_diffusion import standard_normal_nll

Array = jnp.ndarray
EpsFn = Callable[[Array, Array], Array]  # eps_fn(x [B, ...], tau [B]) -> eps_hat [B, ...]
# Network evaluations of a diffrax Tsit5 solve (7 stages, the last reused as the next
# step's first): 1 + 6 per step, rejected steps included (`tests/diffusion/test_ode.py`).
FSAL_EVALS_PER_STEP = 6
INITIAL_EVALS = 1
MAX_STEPS = 16384  # Of one adaptive solve.


@dataclasses.dataclass(frozen=True)
class VPSchedule:
  """The continuous-time VP schedule of a T-step discrete 'cosine' or 'linear' schedule."""
  name: str
  num_timesteps: int

  def __post_init__(self):
    if self.name not in schedules.SCHEDULES:
      raise ValueError(f'Unknown schedule {self.name!r}; the probability-flow ODE supports '
                       f'{schedules.SCHEDULES}.')
    # Also validates T (e.g. the linear schedule needs T > 20).
    schedules.get_beta_schedule(self.name, self.num_timesteps)

  def _linear_rate(self):
    """(a, b) of the linear rate beta(tau) = a + b tau through T beta_j at tau = (j+1/2)/T."""
    betas = schedules.linear_beta_schedule(self.num_timesteps)
    t = self.num_timesteps
    slope = t * t * float(betas[-1] - betas[0]) / (t - 1)
    return t * float(betas[0]) - 0.5 * slope / t, slope

  def log_alpha_bar(self, tau: Array, xp=jnp) -> Array:
    """log abar(tau) (`xp` = numpy for float64 on the host)."""
    if self.name == 'cosine':
      # cos((tau + o) / (1 + o) pi / 2) written as a sine of 1 - tau, accurate near tau = 1.
      c = math.pi / (2.0 * (1.0 + schedules.COSINE_OFFSET))
      return 2.0 * (xp.log(xp.sin((1.0 - tau) * c))
                    - math.log(math.cos(schedules.COSINE_OFFSET * c)))
    a, b = self._linear_rate()
    return -(a * tau + 0.5 * b * tau**2)

  def beta(self, tau: Array) -> Array:
    """beta(tau) = -d log abar / d tau."""
    if self.name == 'cosine':
      c = math.pi / (2.0 * (1.0 + schedules.COSINE_OFFSET))
      return 2.0 * c / jnp.tan((1.0 - tau) * c)
    a, b = self._linear_rate()
    return a + b * tau

  def alpha_bar(self, tau: Array) -> Array:
    """abar(tau), the signal fraction of x(tau) = sqrt(abar) x0 + sigma eps."""
    return jnp.exp(self.log_alpha_bar(tau))

  def sigma(self, tau: Array) -> Array:
    """sigma(tau) = sqrt(1 - abar(tau)), accurate for abar near 1."""
    return jnp.sqrt(-jnp.expm1(self.log_alpha_bar(tau)))

  def model_time(self, tau: Array) -> Array:
    """The network's (fractional) timestep tau * T - 1: discrete index i at tau = (i+1)/T."""
    return tau * self.num_timesteps - 1.0

  @property
  def tau_min(self) -> float:
    """1 / T, discrete index 0."""
    return 1.0 / self.num_timesteps

  @property
  def tau_max(self) -> float:
    """The tau where abar equals the discrete last alphas_cumprod (at most 1), by bisection."""
    betas = schedules.get_beta_schedule(self.name, self.num_timesteps)
    target = float(np.sum(np.log1p(-betas)))
    if self.log_alpha_bar(1.0 - 1e-12, xp=np) >= target:
      return 1.0
    lo, hi = self.tau_min, 1.0  # log abar(lo) > target > log abar(hi).
    for _ in range(100):
      mid = 0.5 * (lo + hi)
      lo, hi = (mid, hi) if self.log_alpha_bar(mid, xp=np) > target else (lo, mid)
    return lo


def drift(eps_fn: EpsFn, schedule: VPSchedule, x: Array, tau: Array) -> Array:
  """f(x, tau) = -1/2 beta(tau) (x - eps_hat(x, tau) / sigma(tau)) for a scalar tau."""
  tau_b = jnp.full(x.shape[:1], tau, x.dtype)
  return -0.5 * schedule.beta(tau) * (x - eps_fn(x, tau_b) / schedule.sigma(tau))


def rademacher_probes(key: jax.Array, num_probes: int, shape, dtype=jnp.float32) -> Array:
  """[num_probes, *shape] independent +-1 entries."""
  return jax.random.rademacher(key, (num_probes,) + tuple(shape), dtype)


def divergence(fn: Callable[[Array], Array], x: Array, probes: Optional[Array]):
  """(fn(x), div per example) for a batched fn; [P, B] Hutchinson or [1, B] exact (probes None).

  fn must act on each example separately (block-diagonal Jacobian over the batch). Written
  with vector-Jacobian products (v^T J v), so it also differentiates networks whose layers
  define only a custom VJP (the CPU-fast convolution of `dfflows.nets.conv`).
  """
  out, vjp = jax.vjp(fn, x)
  vjp_one = lambda v: vjp(v)[0]
  batch, dims = x.shape[0], math.prod(x.shape[1:])
  if probes is None:
    # One unit vector per dimension, applied to every example at once.
    basis = jnp.broadcast_to(jnp.eye(dims, dtype=x.dtype)[:, None, :], (dims, batch, dims))
    rows = jax.vmap(vjp_one)(basis.reshape((dims,) + x.shape)).reshape(dims, batch, dims)
    return out, jnp.einsum('kbk->b', rows)[None]
  vj = jax.vmap(vjp_one)(probes)
  return out, jnp.sum((probes * vj).reshape(probes.shape[:2] + (-1,)), axis=-1)


def _solve(vector_field, y0, t0: float, t1: float, *, rtol: float, atol: float):
  """Tsit5 solve of dy/dtau = vector_field(tau, y) from t0 to t1 (either direction)."""
  return diffrax.diffeqsolve(
      diffrax.ODETerm(lambda t, y, args: vector_field(t, y)), diffrax.Tsit5(), t0, t1,
      dt0=None, y0=y0, stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol),
      saveat=diffrax.SaveAt(t1=True), max_steps=MAX_STEPS)


def nll(eps_fn: EpsFn, x0: Array, key: jax.Array, *, schedule: VPSchedule,
        num_probes: int = 1, exact_trace: bool = False, rtol: float = 1e-5,
        atol: float = 1e-5) -> Dict[str, Array]:
  """-log p(x0) in nats per example under the probability-flow ODE with a N(0, I) prior.

  Returns dict with
    'nats' [B]:          the NLL (the mean over probes with Hutchinson);
    'probe_nats' [P, B]: the NLL with each probe's divergence alone ([1, B] if exact);
    'prior_nats' [B]:    -log N(x(tau_max); 0, I);
    'delta_nats' [B]:    int div f dtau (so nats = prior_nats - delta_nats);
    'z' [B, ...]:        x(tau_max), the encoding;
    'num_steps', 'num_rejected_steps', 'nfe': scalars; nfe = network evaluations
                         (each on the whole batch) of the Tsit5 solve.
  Jittable with static `num_probes`, `exact_trace`.
  """
  probes = None if exact_trace else rademacher_probes(key, num_probes, x0.shape, x0.dtype)

  def vector_field(tau, state):
    x, _ = state
    dx, div = divergence(lambda y: drift(eps_fn, schedule, y, tau), x, probes)
    return dx, div

  integral0 = jnp.zeros((1 if exact_trace else num_probes, x0.shape[0]), x0.dtype)
  sol = _solve(vector_field, (x0, integral0), schedule.tau_min, schedule.tau_max, rtol=rtol,
               atol=atol)
  z, delta = sol.ys[0][0], sol.ys[1][0]
  prior = standard_normal_nll(z)
  probe_nats = prior[None] - delta
  num_steps = sol.stats['num_steps']
  return dict(nats=jnp.mean(probe_nats, axis=0), probe_nats=probe_nats, prior_nats=prior,
              delta_nats=jnp.mean(delta, axis=0), z=z, num_steps=num_steps,
              num_rejected_steps=sol.stats['num_rejected_steps'],
              nfe=INITIAL_EVALS + FSAL_EVALS_PER_STEP * num_steps)


def transport(eps_fn: EpsFn, x: Array, *, schedule: VPSchedule, forward: bool,
              rtol: float = 1e-5, atol: float = 1e-5) -> Array:
  """The ODE run from tau_min to tau_max (`forward`, the encoder) or back (the sampler)."""
  ends = (schedule.tau_min, schedule.tau_max)
  t0, t1 = ends if forward else ends[::-1]
  sol = _solve(lambda tau, y: drift(eps_fn, schedule, y, tau), x, t0, t1, rtol=rtol, atol=atol)
  return sol.ys[0]


def encode(eps_fn: EpsFn, x0: Array, **kwargs) -> Array:
  """x(tau_max) from x(tau_min) = x0 (deterministic encoder); kwargs as `transport`."""
  return transport(eps_fn, x0, forward=True, **kwargs)


def decode(eps_fn: EpsFn, x_T: Array, **kwargs) -> Array:
  """x(tau_min) from x(tau_max) = x_T (deterministic sampler); kwargs as `transport`."""
  return transport(eps_fn, x_T, forward=False, **kwargs)
