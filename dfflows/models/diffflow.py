"""DiffFlow: a multi-scale flow f whose latent z0 = f(u) is modelled by a DDPM.

Negative log-density of a dequantised image u in [0,1)^D (Jacobian change of
variables, then the diffusion variational bound on the latent):

    -log p(u) = -log|det df/du| - log p(z0) <= -log|det df/du| + L_vlb(z0),
    L_vlb(z0) = KL(q(z_T|z0) || N(0,I)) + sum_{t>=1} KL(q(z_{t-1}|z_t,z0) || p(z_{t-1}|z_t))
                - log p(z0|z_1).

Training uses an unbiased one-sample estimate, prior + L_0 + L_{T-1} + L_t / p_t
with t ~ p on 1..T-2, stratified over the batch (`t_sampling`: 'importance' or 'uniform';
`GaussianDiffusion.one_sample_bound`, `dfflows.diffusion.timesteps`), optionally minus the
same estimate for the N(0, I) reverse process plus its exact value -log N(z0; 0, I)
(`gaussian_control_variate`: unbiased; it removes most of the noise of the flow's gradient
while the prior is near N(0, I), as a warm-started one is). The
flow always gets its gradient from this bound. With `unet_loss='hybrid'` the
U-Net is trained by Improved DDPM's L_simple + lambda * L_vlb instead, computed
on a stop-gradient latent, while the bound is computed with stop-gradient U-Net
params; with `unet_loss='bound'` both are trained by the bound in one pass.

`objective='thesis_eq_4_6'` trains the thesis's printed loss L_diff + log|det|
(an ablation: it rewards shrinking z0 and the model collapses).

`prior='top_level'` puts the diffusion on the flow's last-level latent only (1/2^(L-1) of
the dims for L levels, at 1/4^(L-1) of the positions) and keeps Glow's N(0, I) on the
factored-out latents: -log p(u) <= -log|det df/du| - log N(z_factored; 0, I) + L_vlb(z_top).
"""
import dataclasses
from typing import Dict, List, Optional, Sequence, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from dfflows.checks import check_choice
from dfflows.diffusion import ode, samplers
from dfflows.diffusion.gaussian_diffusion import GaussianDiffusion, standard_normal_nll
from dfflows.flows import (MultiScaleFlow, join_levels, split_levels, squeeze, unsqueeze,
                           uniform_dequantize)
from dfflows.metrics.bpd import LOG2, continuous_nats_to_bpd
from dfflows.models import common
from dfflows.models.flow_only import FlowOnly
from dfflows.models.interface import BpdLabels, Params, SamplingPlan
from dfflows.nets.unet import UNet

OBJECTIVES = ('bound', 'thesis_eq_4_6')
UNET_LOSSES = ('hybrid', 'bound')
PRIORS = ('full', 'top_level')


def latent_shape(image_shape: Tuple[int, int, int], latent_squeeze: int, prior: str = 'full',
                 num_levels: int = 1) -> Tuple[int, int, int]:
  """Shape of the latent the U-Net sees: the whole flow output or (`prior='top_level'`) its
  last-level latent, then squeezed `latent_squeeze` times."""
  h, w, c = image_shape
  if prior == 'top_level':
    f = 2**num_levels
    h, w, c = h // f, w // f, c * 2 * f
  f = 2**latent_squeeze
  return (h // f, w // f, c * f * f)


@dataclasses.dataclass(frozen=True)
class DiffFlow:
  """Flow `flow` (x -> z0, same shape) followed by a diffusion model on z0."""
  flow: MultiScaleFlow
  unet: UNet  # On the latent, with out_channels = latent channels * (2 if learn_sigma else 1).
  diffusion: GaussianDiffusion
  image_shape: Tuple[int, int, int]
  settings: common.DiffusionSettings
  latent_squeeze: int
  objective: str
  unet_loss: str
  prior: str
  ode_schedule: ode.VPSchedule  # The continuous-time schedule of `diffusion`'s betas.

  def __post_init__(self):
    check_choice('DiffFlow', 'objective', self.objective, OBJECTIVES)
    check_choice('DiffFlow', 'unet_loss', self.unet_loss, UNET_LOSSES)
    check_choice('DiffFlow', 'prior', self.prior, PRIORS)
    if self.settings.control_variate:
      self.diffusion.check_control_variate()  # Refused at build, before any work.

  @property
  def latent_shape(self) -> Tuple[int, int, int]:
    """Shape of the (squeezed) latent that the U-Net sees."""
    return latent_shape(self.image_shape, self.latent_squeeze, self.prior, self.flow.num_levels)

  @property
  def param_groups(self) -> Tuple[str, ...]:
    """The params' top-level keys (`Model.param_groups`)."""
    return ('flow', 'unet')

  @property
  def bpd_labels(self) -> BpdLabels:
    """The training metric and `eval_bpd` are one-sample estimates of the bound."""
    return common.diffusion_bpd_labels(self.settings.t_sampling,
                                       self.settings.bound_control_variate)

  def sampling_plan(self, num_steps: int) -> SamplingPlan:
    """Reverse diffusion with min(num_steps, T) respaced steps, then one flow inverse."""
    return common.diffusion_sampling_plan(self.diffusion, self.settings.sampler, num_steps, 1)

  def flow_under_gaussian(self, params: Params) -> Tuple[FlowOnly, Params]:
    """Its flow under the flow-only model's N(0, I) prior, and that model's params."""
    return FlowOnly(flow=self.flow, image_shape=self.image_shape), {'flow': params['flow']}

  def _split(self, z: jnp.ndarray) -> Tuple[List[jnp.ndarray], jnp.ndarray]:
    """(latents under N(0, I), the latent of the diffusion) of a flow output z."""
    factored, z = split_levels(z, self.flow.num_levels) if self.prior == 'top_level' else ([], z)
    for _ in range(self.latent_squeeze):
      z = squeeze(z)
    return factored, z

  def to_latent(self, z: jnp.ndarray) -> jnp.ndarray:
    """The latent the diffusion models (its top level, squeezed `latent_squeeze` times)."""
    return self._split(z)[1]

  def from_latent(self, z: jnp.ndarray, factored: Sequence[jnp.ndarray] = ()) -> jnp.ndarray:
    """Inverse of `to_latent`, given the factored-out latents for `prior='top_level'`."""
    for _ in range(self.latent_squeeze):
      z = unsqueeze(z)
    return join_levels(factored, z) if self.prior == 'top_level' else z

  def _gaussian_factored(self, key: jax.Array, num: int, temperature: float,
                         frames: int = 1) -> List[jnp.ndarray]:
    """temperature * N(0, I) draws of the factored-out latents (none for `prior='full'`)."""
    if self.prior == 'full':
      return []
    shapes = [z.shape[1:] for z in split_levels(
        jnp.zeros((1,) + tuple(self.image_shape)), self.flow.num_levels)[0]]
    keys = jax.random.split(key, len(shapes))
    return [jnp.tile(temperature * jax.random.normal(k, (num,) + s), (frames, 1, 1, 1))
            for k, s in zip(keys, shapes)]

  def init(self, key: jax.Array, x: jnp.ndarray) -> Params:
    """Initialises params; ActNorm layers are initialised from the batch `x` (uint8)."""
    common.check_model_input(x, self.image_shape)
    k_deq, k_flow, k_unet = jax.random.split(key, 3)
    u = uniform_dequantize(k_deq, x)
    flow_params = self.flow.init(k_flow, u)
    z0 = jnp.zeros((1,) + self.latent_shape)
    unet_params = self.unet.init(k_unet, z0, jnp.zeros((1,), jnp.int32), train=False)
    return {'flow': flow_params, 'unet': unet_params}

  def _unet_fn(self, unet_params: Params, train: bool, key: jax.Array):
    """The eps/v network as a model_fn(x_t, t) (see `common.gaussian_residual_fn`).

    With `eps_skip` and `variance_skip` the DiffFlow at init is the flow with a N(0, I)
    prior, which the flow's latent approaches.
    """
    return common.gaussian_residual_fn(self.unet, unet_params, self.diffusion, train, key,
                                       self.settings.eps_skip, self.settings.variance_skip)

  def latent_and_logdet(self, params: Params, x: jnp.ndarray,
                        key: jax.Array) -> Tuple[jnp.ndarray, jnp.ndarray]:
    """Dequantises uint8 `x` and returns (latent z0, log-density outside the diffusion).

    The second part is log|det df/du| per example, plus log N(z_factored; 0, I) of the
    factored-out latents for `prior='top_level'`, so -log p(u) <= L_vlb(z0) - that.
    """
    common.check_model_input(x, self.image_shape)
    u = uniform_dequantize(key, x)
    z, logdet = self.flow.apply(params['flow'], u, method='forward')
    factored, z0 = self._split(z)
    for z_i in factored:
      logdet -= standard_normal_nll(z_i)
    return z0, logdet

  def loss(self, params: Params, x: jnp.ndarray, key: jax.Array,
           train: bool = True) -> Tuple[jnp.ndarray, Dict[str, jnp.ndarray]]:
    """Training loss and per-batch metrics (bits/dim and its parts)."""
    k_deq, k_bound, k_hybrid, k_drop = jax.random.split(key, 4)
    z0, logdet = self.latent_and_logdet(params, x, k_deq)
    dims = common.num_dims(self.image_shape)
    sg = jax.lax.stop_gradient
    joint = self.objective == 'thesis_eq_4_6' or self.unet_loss == 'bound'
    unet_params = params['unet'] if joint else sg(params['unet'])
    nats, terms = self.diffusion.one_sample_bound(self._unet_fn(unet_params, train, k_drop), z0,
                                                  k_bound, self.settings.t_sampling,
                                                  vlb_weight=self.settings.vlb_weight,
                                                  control_variate=self.settings.control_variate)
    bpd = continuous_nats_to_bpd(nats - logdet, dims)
    metrics = {
        'bpd': bpd.mean(),
        'logdet_bpd': (-logdet / (dims * LOG2)).mean(),
        'diffusion_bpd': (nats / (dims * LOG2)).mean(),
        'z0_std': jnp.std(z0),
        'l_simple': terms['l_simple'].mean(),
    }
    if self.objective == 'thesis_eq_4_6':
      # The printed L = L_diff + log|det df/dx| (in bits/dim): invalid, kept as an ablation.
      loss = (terms['loss'] + logdet / (dims * LOG2)).mean()
    elif self.unet_loss == 'bound':
      loss = bpd.mean()
    else:
      # Its own t and noise, independent of the bound's (LSGM's disjoint training).
      hybrid = self.diffusion.training_losses(self._unet_fn(params['unet'], train, k_drop),
                                              sg(z0), k_hybrid, vlb_weight=self.settings.vlb_weight)
      loss = bpd.mean() + hybrid['loss'].mean()
      metrics['l_simple'] = hybrid['l_simple'].mean()
    metrics['loss'] = loss
    return loss, metrics

  def eval_bpd(self, params: Params, x: jnp.ndarray, key: jax.Array) -> jnp.ndarray:
    """One-sample unbiased estimate of the bound in bits/dim, per example."""
    k_deq, k_tn = common.eval_keys(key)
    z0, logdet = self.latent_and_logdet(params, x, k_deq)
    nats, _ = self.diffusion.one_sample_bound(self._unet_fn(params['unet'], False, k_tn), z0,
                                              k_tn, self.settings.t_sampling,
                                              vlb_weight=self.settings.vlb_weight,
                                              control_variate=self.settings.control_variate)
    return continuous_nats_to_bpd(nats - logdet, common.num_dims(self.image_shape))

  def full_bound_terms(self, params: Params, x: jnp.ndarray,
                       key: jax.Array) -> Dict[str, jnp.ndarray]:
    """Every term of the bound in nats per example (`HasBoundTerms`), with 'neg_logdet'."""
    k_deq, k_bound = common.eval_keys(key)
    z0, logdet = self.latent_and_logdet(params, x, k_deq)
    model_fn = self._unet_fn(params['unet'], False, key)
    terms = self.diffusion.full_bound(model_fn, z0, k_bound,
                                      control_variate=self.settings.bound_control_variate)
    return {**terms, 'neg_logdet': -logdet}

  def full_bpd(self, params: Params, x: jnp.ndarray, key: jax.Array) -> jnp.ndarray:
    """The bound with every t summed (prior, all KLs, decoder), in bits/dim per example."""
    terms = self.full_bound_terms(params, x, key)
    return continuous_nats_to_bpd(terms['total_nats'] + terms['neg_logdet'],
                                  common.num_dims(self.image_shape))

  def _reverse_process(self, params: Params, key: jax.Array, num_steps: Optional[int]):
    """The diffusion (respaced to num_steps if fewer than T) and eps-network for sampling."""
    return (common.sampling_diffusion(self.diffusion, num_steps),
            self._unet_fn(params['unet'], False, key))

  def _images(self, params: Params, z0: jnp.ndarray, key: jax.Array, temperature: float,
              frames: int = 1) -> Tuple[jnp.ndarray, jnp.ndarray]:
    """(z, uint8 f^-1(z)) of diffusion latents z0 [frames * num, ...] and factored-out
    latents drawn with fold_in(key, 1) at `temperature`."""
    num = z0.shape[0] // frames
    factored = self._gaussian_factored(jax.random.fold_in(key, 1), num, temperature, frames)
    z = self.from_latent(z0, factored)
    u, _ = self.flow.apply(params['flow'], z, method='inverse')
    return z, common.to_uint8(u)

  def sample(self, params: Params, key: jax.Array, num: int, num_steps: Optional[int] = None,
             temperature: float = 1.0) -> jnp.ndarray:
    """Samples `num` uint8 images: reverse diffusion to z0 (num_steps respaced), then f^-1."""
    diffusion, model_fn = self._reverse_process(params, key, num_steps)
    z0 = samplers.sample(diffusion, model_fn, (num,) + self.latent_shape, key,
                         sampler=self.settings.sampler, eta=self.settings.ddim_eta, temperature=temperature)
    return self._images(params, z0, key, temperature)[1]

  def trajectory(self, params: Params, key: jax.Array, num: int, num_steps: Optional[int] = None,
                 frames: int = 8) -> Tuple[jnp.ndarray, jnp.ndarray]:
    """The reverse chain z_T -> z0 at `frames` evenly spaced steps, for a strip figure.

    Returns (z, x): z_t in image layout [frames, num, H, W, C] (float) and
    f^{-1}(z_t) as uint8 images of the same shape; the last frame's x is the sample.
    """
    diffusion, model_fn = self._reverse_process(params, key, num_steps)
    states = samplers.sample(diffusion, model_fn, (num,) + self.latent_shape, key,
                             sampler=self.settings.sampler, eta=self.settings.ddim_eta, return_trajectory=True)
    idx = np.round(np.linspace(0, diffusion.num_timesteps, frames)).astype(int)
    z, x = self._images(params, states[idx].reshape((frames * num,) + self.latent_shape), key,
                        1.0, frames)
    shape = (frames, num) + tuple(self.image_shape)
    return z.reshape(shape), x.reshape(shape)

  # --- probability-flow ODE (dfflows.diffusion.ode) -------------------------

  def _ode_eps_fn(self, unet_params: Params) -> ode.EpsFn:
    """eps_hat(z, tau) = U-Net(z, tau T - 1)[..., :C] (+ sigma(tau) z with `eps_skip`).

    At tau = (i + 1) / T it is the eps of `_unet_fn` at index i (for i < T - 1).
    """
    schedule = self.ode_schedule
    channels = self.latent_shape[-1]

    def eps_fn(z, tau):
      eps = self.unet.apply(unet_params, z, schedule.model_time(tau), train=False)
      eps = eps[..., :channels]
      return common.add_eps_skip(eps, z, schedule.sigma(tau)) if self.settings.eps_skip else eps
    return eps_fn

  def ode_nll_terms(self, params: Params, x: jnp.ndarray, key: jax.Array,
                    num_probes: int = 1, exact_trace: bool = False, rtol: float = 1e-5,
                    atol: float = 1e-5) -> Dict[str, jnp.ndarray]:
    """The probability-flow ODE's NLL of the latent and -log|det df/du|, nats per example.

    Keys: 'ode_nats' (-log p(z0) under the ODE, Hutchinson-estimated with `num_probes`
    Rademacher probes unless `exact_trace`), 'neg_logdet', 'prior_nats' (-log N(z(tau_max))),
    and the solve's 'num_steps' and 'nfe' (network evaluations on the batch), broadcast to [B].
    Jittable with static num_probes and exact_trace.
    """
    k_deq, k_probe = common.eval_keys(key)
    z0, logdet = self.latent_and_logdet(params, x, k_deq)
    out = ode.nll(self._ode_eps_fn(params['unet']), z0, k_probe, schedule=self.ode_schedule,
                  num_probes=num_probes, exact_trace=exact_trace, rtol=rtol, atol=atol)
    batch = x.shape[0]
    return {'ode_nats': out['nats'], 'neg_logdet': -logdet, 'prior_nats': out['prior_nats'],
            'num_steps': jnp.full((batch,), out['num_steps']),
            'nfe': jnp.full((batch,), out['nfe'])}

  def ode_label(self, num_probes: int) -> str:
    """What `ode_nll_terms` estimates, for reports."""
    return ('probability-flow ODE NLL: the exact likelihood of the ODE model (flow log-det + '
            f'ODE), its trace by Hutchinson with {num_probes} Rademacher probes (unbiased)')

  def ode_bpd(self, params: Params, x: jnp.ndarray, key: jax.Array, num_probes: int = 1,
              exact_trace: bool = False, rtol: float = 1e-5,
              atol: float = 1e-5) -> jnp.ndarray:
    """The probability-flow ODE's NLL (flow + ODE, exact up to Hutchinson/tolerance), bits/dim."""
    terms = self.ode_nll_terms(params, x, key, num_probes, exact_trace, rtol, atol)
    return continuous_nats_to_bpd(terms['ode_nats'] + terms['neg_logdet'],
                                  common.num_dims(self.image_shape))

  def ode_latents(self, params: Params, key: jax.Array, num: int,
                  temperature: float = 1.0) -> jnp.ndarray:
    """`num` diffusion latents z0: z(tau_max) ~ N(0, temperature^2 I), the ODE back to z0."""
    z_max = temperature * jax.random.normal(key, (num,) + self.latent_shape)
    return ode.decode(self._ode_eps_fn(params['unet']), z_max, schedule=self.ode_schedule)

  def ode_sample(self, params: Params, key: jax.Array, num: int,
                 temperature: float = 1.0) -> jnp.ndarray:
    """`num` uint8 images: `ode_latents`, then f^-1 (the deterministic sampler)."""
    return self._images(params, self.ode_latents(params, key, num, temperature), key,
                        temperature)[1]
