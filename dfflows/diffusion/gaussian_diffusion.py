"""Gaussian diffusion with learned variances (Improved DDPM, Nichol & Dhariwal 2021).

Conventions follow openai/improved-diffusion. Timesteps t are int32 in 0..T-1;
x_t is the state after forward step t, so x_0 here is the paper's x_1 and the
data x0 is the state before step 0:

  q(x_t | x0)           = N(sqrt(abar_t) x0, (1 - abar_t) I),  abar_t = prod_{s<=t} (1 - beta_s)
  q(x_{t-1} | x_t, x0)  = N(c1_t x0 + c2_t x_t, beta~_t I)     (the data x0 when t = 0)
  p(x_{t-1} | x_t)      = N(mu(x_t, t), exp(v log beta_t + (1 - v) log beta~_t) I)

The bound on -log p(x0) (nats) is prior_kl + sum_t vlb_t with vlb_0 the decoder
NLL -log p(x0 | x_0) and vlb_t = KL(q(x_{t-1}|x_t,x0) || p(x_{t-1}|x_t)) for t > 0.

All arrays are NHWC (any rank >= 2 with the batch first). The network output
`model_out` has 2C channels (eps, raw v in [-1, 1]) when `learn_sigma`, else C
channels (eps) with a fixed variance.
"""
import math
from typing import Callable, Dict, Optional, Sequence, Tuple, Union

import distrax
import jax
import jax.numpy as jnp
from jax.scipy import special
import numpy as np

from dfflows.diffusion import schedules, timesteps
from dfflows.metrics.bpd import discrete_nats_to_bpd

Array = jnp.ndarray
ModelFn = Callable[[Array, Array], Array]
DECODERS = ('continuous', 'discretized')


def sum_over_dims(x: Array) -> Array:
  """Sums all but the batch axis."""
  return jnp.sum(x, axis=tuple(range(1, x.ndim)))


def mean_over_dims(x: Array) -> Array:
  """Averages all but the batch axis."""
  return jnp.mean(x, axis=tuple(range(1, x.ndim)))


def standard_normal_nll(x: Array) -> Array:
  """-log N(x; 0, I) per example in nats, summed over all non-batch dims."""
  dims = math.prod(x.shape[1:])
  return 0.5 * jnp.sum(jnp.square(x).reshape(x.shape[0], -1), axis=1) + 0.5 * dims * math.log(
      2.0 * math.pi)


def normal_kl(mean1: Array, log_var1: Array, mean2: Array, log_var2: Array) -> Array:
  """Elementwise KL(N(mean1, exp(log_var1)) || N(mean2, exp(log_var2))) in nats."""
  # Written in log-variances (not via distrax.Normal scales) so that tiny
  # variances such as beta~_1 never pass through exp and back through log.
  return 0.5 * (-1.0 + log_var2 - log_var1 + jnp.exp(log_var1 - log_var2)
                + jnp.square(mean1 - mean2) * jnp.exp(-log_var2))


def continuous_gaussian_nll(x: Array, mean: Array, log_var: Array) -> Array:
  """Elementwise -log N(x; mean, exp(log_var)) in nats (a density)."""
  return -distrax.Normal(mean, jnp.exp(0.5 * log_var)).log_prob(x)


def discretized_gaussian_nll(x: Array, mean: Array, log_var: Array) -> Array:
  """Elementwise -log P(bin of x) for 8-bit data in [-1, 1] under N(mean, exp(log_var)).

  Bins have width 2/255; the edge bins extend to +-infinity (Improved DDPM).
  """
  inv_std = jnp.exp(-0.5 * log_var)
  upper = inv_std * (x - mean + 1.0 / 255.0)
  lower = inv_std * (x - mean - 1.0 / 255.0)
  # Exact normal CDFs (improved-diffusion uses a tanh approximation); the mass
  # of the bin is taken on the side of the mean where it does not cancel.
  mass = jnp.where(lower > 0, special.ndtr(-lower) - special.ndtr(-upper),
                   special.ndtr(upper) - special.ndtr(lower))
  log_mid = jnp.log(jnp.maximum(mass, 1e-12))
  log_probs = jnp.where(x < -0.999, special.log_ndtr(upper),
                        jnp.where(x > 0.999, special.log_ndtr(-lower), log_mid))
  return -log_probs


class GaussianDiffusion:
  """Improved-DDPM Gaussian diffusion: forward process, reverse model and bound.

  Constants are precomputed in float64 numpy and cast to the dtype of the data
  when used, so an instance can be closed over inside `jax.jit`.

  Forward:  x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps.
  Reverse:  mean = c1_t x0_hat + c2_t x_t with x0_hat = (x_t - sqrt(1 - abar_t) eps_hat)
            / sqrt(abar_t); log-variance v log beta_t + (1 - v) log beta~_t with
            v = (raw + 1) / 2 (learn_sigma), else log beta~_t (the fixed 'small' variance);
            beta~_0 = 0 is replaced by beta~_1 as in improved-diffusion.
  """

  def __init__(self, betas: np.ndarray, learn_sigma: bool, decoder: str,
               timestep_map: Optional[np.ndarray] = None):
    betas = np.asarray(betas, dtype=np.float64)
    if betas.ndim != 1 or betas.size < 2:
      raise ValueError(f'betas must be 1-D with at least 2 entries, got shape {betas.shape}.')
    if not np.all((betas > 0) & (betas < 1)):
      raise ValueError('betas must lie in (0, 1).')
    if decoder not in DECODERS:
      raise ValueError(f'Unknown decoder {decoder!r}; expected one of {DECODERS}.')
    self.betas = betas
    self.num_timesteps = int(betas.size)
    self.learn_sigma = learn_sigma
    self.decoder = decoder
    if timestep_map is None:
      timestep_map = np.arange(self.num_timesteps)
    self.timestep_map = np.asarray(timestep_map, dtype=np.int32)
    if self.timestep_map.shape != betas.shape:
      raise ValueError(f'timestep_map has shape {self.timestep_map.shape}, '
                       f'expected {betas.shape}.')

    alphas = 1.0 - betas
    self.alphas_cumprod = np.cumprod(alphas)
    self.alphas_cumprod_prev = np.append(1.0, self.alphas_cumprod[:-1])
    self.sqrt_alphas_cumprod = np.sqrt(self.alphas_cumprod)
    self.sqrt_one_minus_alphas_cumprod = np.sqrt(1.0 - self.alphas_cumprod)
    self.log_one_minus_alphas_cumprod = np.log(1.0 - self.alphas_cumprod)
    self.sqrt_recip_alphas_cumprod = np.sqrt(1.0 / self.alphas_cumprod)
    self.sqrt_recipm1_alphas_cumprod = np.sqrt(1.0 / self.alphas_cumprod - 1.0)
    self.posterior_variance = betas * (1.0 - self.alphas_cumprod_prev) / (
        1.0 - self.alphas_cumprod)
    self.posterior_log_variance_clipped = np.log(
        np.append(self.posterior_variance[1], self.posterior_variance[1:]))
    self.posterior_mean_coef1 = betas * np.sqrt(self.alphas_cumprod_prev) / (
        1.0 - self.alphas_cumprod)
    self.posterior_mean_coef2 = (1.0 - self.alphas_cumprod_prev) * np.sqrt(alphas) / (
        1.0 - self.alphas_cumprod)
    self.log_betas = np.log(betas)

  # --- helpers -------------------------------------------------------------

  def gather(self, values: np.ndarray, t: Array, x: Array) -> Array:
    """values[t] as x.dtype, shaped [B, 1, ..., 1] to broadcast against x."""
    out = jnp.asarray(values, dtype=x.dtype)[t]
    return out.reshape(out.shape + (1,) * (x.ndim - 1))

  def model_timesteps(self, t: Array) -> Array:
    """Original-process timesteps the network is called with (respacing)."""
    return jnp.asarray(self.timestep_map)[t]

  def split_model_out(self, model_out: Array, x: Array) -> Tuple[Array, Optional[Array]]:
    """Splits the network output into (eps, raw v or None)."""
    channels = x.shape[-1] * (2 if self.learn_sigma else 1)
    if model_out.shape[:-1] != x.shape[:-1] or model_out.shape[-1] != channels:
      raise ValueError(f'model_out has shape {model_out.shape}; expected '
                       f'{x.shape[:-1] + (channels,)} (learn_sigma={self.learn_sigma}).')
    if self.learn_sigma:
      return jnp.split(model_out, 2, axis=-1)
    return model_out, None

  # --- forward process -----------------------------------------------------

  def q_mean_variance(self, x0: Array, t: Array) -> Tuple[Array, Array, Array]:
    """Mean, variance and log-variance of q(x_t | x0)."""
    mean = self.gather(self.sqrt_alphas_cumprod, t, x0) * x0
    var = self.gather(1.0 - self.alphas_cumprod, t, x0)
    log_var = self.gather(self.log_one_minus_alphas_cumprod, t, x0)
    return mean, jnp.broadcast_to(var, x0.shape), jnp.broadcast_to(log_var, x0.shape)

  def q_sample(self, x0: Array, t: Array, noise: Array) -> Array:
    """Draws x_t ~ q(x_t | x0) as sqrt(abar_t) x0 + sqrt(1 - abar_t) noise."""
    return (self.gather(self.sqrt_alphas_cumprod, t, x0) * x0
            + self.gather(self.sqrt_one_minus_alphas_cumprod, t, x0) * noise)

  def q_posterior_mean_variance(self, x0: Array, x_t: Array,
                                t: Array) -> Tuple[Array, Array, Array]:
    """Mean, variance and clipped log-variance of q(x_{t-1} | x_t, x0)."""
    mean = (self.gather(self.posterior_mean_coef1, t, x_t) * x0
            + self.gather(self.posterior_mean_coef2, t, x_t) * x_t)
    var = jnp.broadcast_to(self.gather(self.posterior_variance, t, x_t), x_t.shape)
    log_var = jnp.broadcast_to(
        self.gather(self.posterior_log_variance_clipped, t, x_t), x_t.shape)
    return mean, var, log_var

  def predict_x0_from_eps(self, x_t: Array, t: Array, eps: Array) -> Array:
    """x0 = (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t)."""
    return (self.gather(self.sqrt_recip_alphas_cumprod, t, x_t) * x_t
            - self.gather(self.sqrt_recipm1_alphas_cumprod, t, x_t) * eps)

  def predict_eps_from_x0(self, x_t: Array, t: Array, x0: Array) -> Array:
    """eps = (x_t - sqrt(abar_t) x0) / sqrt(1 - abar_t)."""
    return ((self.gather(self.sqrt_recip_alphas_cumprod, t, x_t) * x_t - x0)
            / self.gather(self.sqrt_recipm1_alphas_cumprod, t, x_t))

  # --- reverse process -----------------------------------------------------

  def model_log_variance(self, v_raw: Optional[Array], x_t: Array, t: Array) -> Array:
    """Log-variance of p(x_{t-1} | x_t): learned interpolation or fixed."""
    if v_raw is None:
      return jnp.broadcast_to(self.gather(self.posterior_log_variance_clipped, t, x_t), x_t.shape)
    min_log = self.gather(self.posterior_log_variance_clipped, t, x_t)
    max_log = self.gather(self.log_betas, t, x_t)
    frac = (v_raw + 1.0) / 2.0
    return frac * max_log + (1.0 - frac) * min_log

  def p_mean_variance(self, model_out: Array, x_t: Array, t: Array,
                      clip_denoised: bool = False) -> Dict[str, Array]:
    """Mean, variance, log-variance and predicted x0 of p(x_{t-1} | x_t)."""
    eps, v_raw = self.split_model_out(model_out, x_t)
    log_var = self.model_log_variance(v_raw, x_t, t)
    pred_x0 = self.predict_x0_from_eps(x_t, t, eps)
    if clip_denoised:
      pred_x0 = jnp.clip(pred_x0, -1.0, 1.0)
    mean, _, _ = self.q_posterior_mean_variance(pred_x0, x_t, t)
    return dict(mean=mean, variance=jnp.exp(log_var), log_variance=log_var,
                pred_x0=pred_x0)

  # --- bound terms ---------------------------------------------------------

  def prior_kl(self, x0: Array) -> Array:
    """KL(q(x_T | x0) || N(0, I)) per example, nats summed over dims."""
    t = jnp.full((x0.shape[0],), self.num_timesteps - 1, dtype=jnp.int32)
    mean, _, log_var = self.q_mean_variance(x0, t)
    zeros = jnp.zeros_like(mean)
    return sum_over_dims(normal_kl(mean, log_var, zeros, zeros))

  def decoder_nll(self, x0: Array, mean: Array, log_var: Array) -> Array:
    """Elementwise -log p(x0 | x_0) of the configured decoder, nats."""
    if self.decoder == 'discretized':
      return discretized_gaussian_nll(x0, mean, log_var)
    return continuous_gaussian_nll(x0, mean, log_var)

  def vlb_term(self, model_out: Array, x0: Array, x_t: Array, t: Array,
               stop_grad_mean: bool = False) -> Array:
    """L_t per example in nats: posterior KL for t > 0, decoder NLL at t == 0.

    With `stop_grad_mean` the model's mean is a constant, so the term trains only
    the variance (Improved DDPM's hybrid objective).
    """
    true_mean, _, true_log_var = self.q_posterior_mean_variance(x0, x_t, t)
    out = self.p_mean_variance(model_out, x_t, t)
    mean = jax.lax.stop_gradient(out['mean']) if stop_grad_mean else out['mean']
    kl = sum_over_dims(normal_kl(true_mean, true_log_var, mean, out['log_variance']))
    nll = sum_over_dims(self.decoder_nll(x0, mean, out['log_variance']))
    return jnp.where(t == 0, nll, kl)

  def l_simple(self, model_out: Array, noise: Array) -> Array:
    """Per-example mean over dims of (eps - eps_hat)^2."""
    eps, _ = self.split_model_out(model_out, noise)
    return mean_over_dims(jnp.square(noise - eps))

  def training_losses(self, model_fn: ModelFn, x0: Array, key: jax.Array, *,
                      vlb_weight: float = 0.001, t: Optional[Array] = None,
                      noise: Optional[Array] = None) -> Dict[str, Array]:
    """Hybrid loss and one-sample bound for t ~ U{0..T-1}, per example.

    Returns dict with
      'loss':     l_simple + vlb_weight * T * vlb_t(stop_grad_mean) / (D log 2),
                  i.e. Improved DDPM's L_simple + lambda L_vlb with L_vlb in bits/dim
                  (improved-diffusion's RESCALED_MSE `vb * T / 1000` for lambda = 1e-3);
      'l_simple': mean over dims of the squared eps error;
      'vlb_t':    L_t in nats;
      'bound':    T * L_t + prior_kl, an unbiased estimate of the bound in nats;
      't':        the sampled timesteps.
    `t` and `noise` may be given to fix the sample (e.g. to evaluate every t).
    """
    key_t, key_noise = jax.random.split(key)
    batch = x0.shape[0]
    if t is None:
      t = jax.random.randint(key_t, (batch,), 0, self.num_timesteps, dtype=jnp.int32)
    if noise is None:
      noise = jax.random.normal(key_noise, x0.shape, x0.dtype)
    x_t = self.q_sample(x0, t, noise)
    model_out = model_fn(x_t, self.model_timesteps(t))
    l_simple = self.l_simple(model_out, noise)
    vlb_hybrid = self.vlb_term(model_out, x0, x_t, t, stop_grad_mean=True)
    vlb_t = self.vlb_term(model_out, x0, x_t, t)
    num_dims = int(np.prod(x0.shape[1:]))
    loss = l_simple + vlb_weight * self.num_timesteps * discrete_nats_to_bpd(vlb_hybrid, num_dims)
    bound = self.num_timesteps * vlb_t + self.prior_kl(x0)
    return dict(loss=loss, l_simple=l_simple, vlb_t=vlb_t, bound=bound, t=t)

  def standard_normal_out(self, x_t: Array, t: Array) -> Array:
    """The model output of the reverse process that is exact for N(0, I) data (learned sigma).

    eps_hat = sqrt(1 - abar_t) x_t (E[eps | x_t] when x0 ~ N(0, I)) and raw v = 1 (the variance
    beta_t): p(x_{t-1} | x_t) = N(sqrt(alpha_t) x_t, beta_t), the stationary chain run backwards.
    """
    if not self.learn_sigma:
      raise ValueError('The N(0, I) reverse process needs learn_sigma: the fixed variance '
                       'beta~_t is not the stationary chain\'s beta_t.')
    eps = self.gather(self.sqrt_one_minus_alphas_cumprod, t, x_t) * x_t
    return jnp.concatenate([eps, jnp.ones_like(x_t)], axis=-1)

  def check_control_variate(self) -> None:
    """Raises ValueError unless `one_sample_bound`'s control variate applies to this process."""
    if not self.learn_sigma:
      raise ValueError('The Gaussian control variate needs learn_sigma: with the fixed variance '
                       'the reverse process is not exact for N(0, I) data.')
    if self.decoder != 'continuous':
      raise ValueError('The Gaussian control variate needs the continuous decoder (a density '
                       f'of x0), not {self.decoder!r}.')
    if not np.array_equal(self.timestep_map, np.arange(self.num_timesteps)):
      raise ValueError('The Gaussian control variate needs the unrespaced process: '
                       '`standard_normal_out` reads its timesteps as this process\'s own.')

  def one_sample_bound(self, model_fn: ModelFn, x0: Array, key: jax.Array, t_sampling: str, *,
                       vlb_weight: float,
                       control_variate: bool = False) -> Tuple[Array, Dict[str, Array]]:
    """Unbiased one-sample bound on -log p(x0) in nats per example, and the terms at its t.

    prior + L_0 + L_{T-1} + L_t / p_t with t ~ p on 1..T-2 (`t_sampling`, see
    `timesteps.timestep_probs`), stratified over the batch. L_0 (the decoder) and L_{T-1} (where beta ~ 1
    amplifies eps errors) are computed for every example: sampled, either would dominate the
    estimator's variance. The second value is `training_losses`' dict at the sampled t.

    `control_variate` (continuous decoder, learned sigma): subtract the same estimate, at the
    same t and noise, of the reverse process that is exact for N(0, I) data
    (`standard_normal_out`), and add its expectation, -log N(x0; 0, I) exactly (that model's
    chain is the stationary one, whose bound is tight for every x0). Still unbiased, for the
    value and its gradient in x0; for x0 near N(0, I) and a model near that reverse process
    the noise the two estimates share cancels.
    """
    k_t, k_noise = jax.random.split(key)
    probs = timesteps.timestep_probs(self.alphas_cumprod, t_sampling)
    t, weight = timesteps.sample_timesteps(k_t, x0.shape[0], probs)
    nats, terms = self._estimate_at(model_fn, x0, k_noise, t, weight, vlb_weight)
    if control_variate:
      self.check_control_variate()
      reference, _ = self._estimate_at(self.standard_normal_out, x0, k_noise, t, weight,
                                       vlb_weight)
      nats = nats - reference + standard_normal_nll(x0)
    return nats, terms

  def _estimate_at(self, model_fn: ModelFn, x0: Array, key: jax.Array, t: Array, weight: Array,
                   vlb_weight: float) -> Tuple[Array, Dict[str, Array]]:
    """prior + L_0 + L_{T-1} + weight L_t at the given t, noise from `key`; and the terms at t."""
    batch = x0.shape[0]
    # One network call on [x0 at t; at 0; at T-1] (batch 3B) rather than three calls: the
    # same FLOPs, but one copy of the network in the compiled graph (compile time).
    ends = [jnp.zeros_like(t), jnp.full_like(t, self.num_timesteps - 1)]
    both = self.training_losses(model_fn, jnp.concatenate([x0] * 3), key,
                                t=jnp.concatenate([t] + ends), vlb_weight=vlb_weight)
    terms = jax.tree.map(lambda a: a[:batch], both)
    decoder, last = both['vlb_t'][batch:2 * batch], both['vlb_t'][2 * batch:]
    return self.prior_kl(x0) + decoder + last + weight * terms['vlb_t'], terms

  def full_bound(self, model_fn: ModelFn, x0: Array, key: jax.Array, *,
                 control_variate: bool = False) -> Dict[str, Array]:
    """The bound summed exactly over all t (one x_t per t), per example, in nats.

    The noise for timestep t is `jax.random.normal(jax.random.fold_in(key, t), x0.shape)`.
    Returns dict(total_nats [B], prior_nats [B], vlb_nats [B, T], mse [B, T]): the model's own
    terms. With `control_variate` (as in `one_sample_bound`), total_nats subtracts the same sum
    for the N(0, I) reverse process (`standard_normal_out`) at the same x_t and adds its exact
    value -log N(x0; 0, I): the same expectation, without the noise of the draws the two share.
    """
    batch = x0.shape[0]
    if control_variate:
      self.check_control_variate()

    def term(reference, t_scalar):
      """The model's KL at t, and the running sum of the N(0, I) process's (control variate)."""
      t = jnp.full((batch,), t_scalar, dtype=jnp.int32)
      noise = jax.random.normal(jax.random.fold_in(key, t_scalar), x0.shape, x0.dtype)
      x_t = self.q_sample(x0, t, noise)
      model_out = model_fn(x_t, self.model_timesteps(t))
      if control_variate:
        reference = reference + self.vlb_term(self.standard_normal_out(x_t, t), x0, x_t, t)
      return reference, (self.vlb_term(model_out, x0, x_t, t), self.l_simple(model_out, noise))

    reference, (vlb, mse) = jax.lax.scan(term, jnp.zeros((batch,), x0.dtype),
                                         jnp.arange(self.num_timesteps))
    prior = self.prior_kl(x0)
    total = jnp.sum(vlb, axis=0) + prior
    if control_variate:  # Minus the N(0, I) process's bound (the same prior KL), plus its value.
      total = total - (reference + prior) + standard_normal_nll(x0)
    return dict(total_nats=total, prior_nats=prior, vlb_nats=vlb.T, mse=mse.T)


def respace(diffusion: GaussianDiffusion,
            num_steps_or_list: Union[int, str, Sequence[int]]) -> GaussianDiffusion:
  """The diffusion restricted to a subsequence of its timesteps.

  An int or str is passed to `schedules.space_timesteps`; a sequence is the
  explicit list of kept timesteps. Kept betas are 1 - abar_t / abar_{t_prev}; the
  `timestep_map` sends new indices to the original ones the network was trained on.
  """
  if isinstance(num_steps_or_list, (int, np.integer, str)):
    kept = schedules.space_timesteps(diffusion.num_timesteps, num_steps_or_list)
  else:
    kept = sorted(set(int(t) for t in num_steps_or_list))
  if not kept or kept[0] < 0 or kept[-1] >= diffusion.num_timesteps:
    raise ValueError(f'Kept timesteps must lie in 0..{diffusion.num_timesteps - 1}.')
  abar = diffusion.alphas_cumprod[kept]
  betas = 1.0 - abar / np.append(1.0, abar[:-1])
  return GaussianDiffusion(betas, learn_sigma=diffusion.learn_sigma,
                           decoder=diffusion.decoder,
                           timestep_map=diffusion.timestep_map[kept])
