"""Tests for MultiScaleFlow."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dfflows.flows import ActNorm, AffineCoupling, FlowStep, SplineCoupling
from tests.flows.flow_testing import check_bijection, perturb, small_flow, step_settings

CONFIGS = [
    dict(coupling='spline', mask='channel', conv1x1='lu', scan=True),
    dict(coupling='affine', mask='checkerboard', conv1x1='plain', scan=False),
    dict(coupling='spline', mask='checkerboard', conv1x1='lu', scan=False, logit_alpha=0.),
    dict(coupling='affine', mask='channel', conv1x1='lu', scan=True),
]


def _flow(**kwargs):
  return small_flow(**{**dict(hidden_channels=4, num_bins=4, tail_bound=3.), **kwargs})


def _images(key, shape=(2, 8, 8, 1)):
  return jax.random.uniform(key, shape, minval=0.02, maxval=0.98)


@pytest.mark.parametrize('kwargs', CONFIGS)
def test_bijection_with_random_params(kwargs):
  x = _images(jax.random.PRNGKey(0), (2, 4, 4, 1))
  flow = _flow(**kwargs)
  variables = perturb(jax.jit(flow.init)(jax.random.PRNGKey(1), x), jax.random.PRNGKey(2), 0.05)
  check_bijection(flow, variables, x, logdet_atol=5e-3)


def _stack_steps(level_params, num_steps):
  """Converts unrolled params {'steps_i': p_i} to the scan layout {'step': stacked}."""
  steps = [level_params[f'steps_{i}'] for i in range(num_steps)]
  return {'step': jax.tree.map(lambda *p: jnp.stack(p), *steps)}


def _unstack_steps(level_params, num_steps):
  """Inverse of `_stack_steps`."""
  return {f'steps_{i}': jax.tree.map(lambda p, i=i: p[i], level_params['step'])
          for i in range(num_steps)}


@pytest.mark.parametrize('mask', ['channel', 'checkerboard'])
def test_scan_equals_unrolled_on_the_same_params(mask):
  x = _images(jax.random.PRNGKey(0))
  unrolled, scanned = _flow(mask=mask, scan=False), _flow(mask=mask, scan=True)
  params = perturb(jax.jit(unrolled.init)(jax.random.PRNGKey(1), x)['params'],
                   jax.random.PRNGKey(2), 0.05)
  scan_params = {k: _stack_steps(v, 2) for k, v in params.items()}
  z1, ld1 = jax.jit(unrolled.apply)({'params': params}, x)
  z2, ld2 = jax.jit(scanned.apply)({'params': scan_params}, x)
  np.testing.assert_allclose(z2, z1, atol=1e-5)
  np.testing.assert_allclose(ld2, ld1, rtol=1e-5)
  inverse = jax.jit(lambda p, z: scanned.apply(p, z, method=scanned.inverse))
  x2, ild2 = inverse({'params': scan_params}, z2)
  np.testing.assert_allclose(x2, x, atol=1e-4)
  np.testing.assert_allclose(ild2, -ld2, rtol=1e-5)


def test_scan_init_normalises_every_actnorm():
  x = _images(jax.random.PRNGKey(0))
  scanned = _flow(scan=True, logit_alpha=0.05)
  params = jax.jit(scanned.init)(jax.random.PRNGKey(1), x)['params']
  unrolled = _flow(scan=False, logit_alpha=0.05)
  params = {k: _unstack_steps(v, 2) for k, v in params.items()}
  outputs = []

  def record(next_fun, args, kwargs, context):
    out = next_fun(*args, **kwargs)
    if isinstance(context.module, ActNorm) and context.method_name == 'forward':
      outputs.append(out[0])
    return out

  with nn.intercept_methods(record):
    unrolled.apply({'params': params}, x)
  assert len(outputs) == 4
  for y in outputs:
    np.testing.assert_allclose(y.mean(axis=(0, 1, 2)), 0., atol=1e-4)
    np.testing.assert_allclose(y.std(axis=(0, 1, 2)), 1., atol=1e-3)


def test_latent_shape_and_three_levels():
  x = _images(jax.random.PRNGKey(0), (1, 8, 8, 2))
  flow = _flow(num_levels=3, num_steps=1)
  variables = jax.jit(flow.init)(jax.random.PRNGKey(1), x)
  z, _ = jax.jit(flow.apply)(variables, x)
  assert z.shape == x.shape
  x_rec, _ = jax.jit(lambda v, z: flow.apply(v, z, method=flow.inverse))(variables, z)
  np.testing.assert_allclose(x_rec, x, atol=1e-4)


@pytest.mark.parametrize('key,value', [
    ('coupling', 'glow'), ('mask', 'stripes'), ('conv1x1', 'full'), ('conv_impl', 'slow'),
    ('hidden_channels', 0), ('num_res_blocks', -1), ('num_bins', 0), ('tail_bound', 0.),
    ('num_levels', 0), ('num_steps', 0), ('logit_alpha', 0.5)])
def test_rejects_a_bad_option_when_built(key, value):
  """One line naming the option and its value, before any init."""
  with pytest.raises(ValueError, match=f'{key}={value!r}') as error:
    _flow(**{key: value})
  assert '\n' not in str(error.value)


@pytest.mark.parametrize('layer,kwargs', [
    (SplineCoupling, dict(num_bins=4, tail_bound=3., mask='stripes')),
    (AffineCoupling, dict(mask='stripes')),
    (AffineCoupling, dict(mask='channel', conv_impl='slow'))])
def test_couplings_reject_a_bad_option_when_built(layer, kwargs):
  settings = dict(hidden_channels=4, num_res_blocks=1, mask='channel', conv_impl='xla')
  with pytest.raises(ValueError, match=f'{layer.__name__}: (mask|conv_impl)='):
    layer(**{**settings, **kwargs})


def test_flow_step_settings_reject_an_unknown_coupling():
  with pytest.raises(ValueError, match="FlowStep: coupling='glow'"):
    FlowStep(step_settings(coupling='glow'))


def test_rejects_indivisible_image_size():
  flow = _flow(num_levels=2)
  with pytest.raises(ValueError, match='divisible by 4'):
    jax.jit(flow.init)(jax.random.PRNGKey(0), jnp.zeros((1, 6, 8, 1)))
