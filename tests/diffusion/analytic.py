"""Exact reverse model for Gaussian data x0 ~ N(mu, s^2 I), used as a test oracle."""
import jax.numpy as jnp
import numpy as np

from dfflows.diffusion.gaussian_diffusion import GaussianDiffusion


def exact_eps(base: GaussianDiffusion, mu, s: float, x_t, t_orig):
  """E[eps | x_t] under the original (unrespaced) process at timestep t_orig."""
  a = jnp.asarray(base.alphas_cumprod, x_t.dtype)[t_orig].reshape((-1,) + (1,) * (x_t.ndim - 1))
  return jnp.sqrt(1 - a) * (x_t - jnp.sqrt(a) * mu) / (a * s**2 + 1 - a)


def exact_reverse_variance(diffusion: GaussianDiffusion, s: float) -> np.ndarray:
  """Var of the true reverse q(x_{t-1} | x_t) per t: beta~_t + c1_t^2 Var(x0 | x_t)."""
  a = diffusion.alphas_cumprod
  var_x0 = s**2 * (1 - a) / (a * s**2 + 1 - a)
  return diffusion.posterior_variance + diffusion.posterior_mean_coef1**2 * var_x0


def exact_model_fn(diffusion: GaussianDiffusion, mu, s: float):
  """model_fn(x_t, t) returning exact eps and, with learn_sigma, v giving the true variance."""
  min_log = diffusion.posterior_log_variance_clipped
  max_log = np.log(diffusion.betas)
  v = 2 * (np.log(exact_reverse_variance(diffusion, s)) - min_log) / (max_log - min_log) - 1

  def model_fn(x_t, t):
    eps = exact_eps(diffusion, mu, s, x_t, t)
    if not diffusion.learn_sigma:
      return eps
    v_t = jnp.asarray(v, x_t.dtype)[t].reshape((-1,) + (1,) * (x_t.ndim - 1))
    return jnp.concatenate([eps, jnp.broadcast_to(v_t, x_t.shape)], axis=-1)

  return model_fn
