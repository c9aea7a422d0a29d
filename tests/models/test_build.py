"""models.build: every config field reaches the layer it names, and a model is the kind asked."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import default
from dfflows.diffusion import ode, schedules
from dfflows.flows import StepSettings
from dfflows.models import build
from dfflows.models.ddpm import PixelDDPM
from dfflows.models.diffflow import DiffFlow
from dfflows.models.flow_only import FlowOnly
from dfflows.models.interface import HasBoundTerms, HasTrajectory
from tests.helpers import tiny_config


def test_build_flow_reads_every_field():
  config = default.get_config().flow
  config.num_levels, config.num_steps, config.hidden_channels = 3, 5, 7
  config.coupling, config.mask, config.conv1x1 = 'affine', 'checkerboard', 'plain'
  config.num_bins, config.tail_bound, config.scan, config.logit_alpha = 6, 2.5, False, 0.0
  config.num_res_blocks = 2
  flow = build.build_flow(config, conv_impl='fast')
  assert (flow.num_levels, flow.num_steps, flow.scan, flow.logit_alpha) == (3, 5, False, 0.0)
  assert flow.step == StepSettings(hidden_channels=7, num_res_blocks=2, coupling='affine',
                                   num_bins=6, tail_bound=2.5, mask='checkerboard',
                                   conv1x1='plain', conv_impl='fast')


@pytest.mark.parametrize('key,value', [('coupling', 'glow'), ('mask', 'stripes'),
                                       ('conv1x1', 'full'), ('num_steps', 0), ('num_bins', 0),
                                       ('logit_alpha', 0.5)])
def test_build_flow_rejects_a_bad_option_when_called(key, value):
  """Before any init: one line naming the option and its value."""
  config = default.get_config().flow
  config[key] = value
  with pytest.raises(ValueError, match=f'{key}={value!r}') as error:
    build.build_flow(config, conv_impl='xla')
  assert '\n' not in str(error.value)
  with pytest.raises(ValueError, match="conv_impl='slow'"):
    build.build_flow(default.get_config().flow, conv_impl='slow')


def test_build_unet_reads_every_field_and_conv_impls_agree():
  config = default.get_config().unet
  config.ch, config.ch_mult, config.num_res_blocks, config.attn_resolutions = 8, (1, 2), 1, (4,)
  config.dropout, config.num_heads, config.dtype, config.remat = 0.1, 2, 'bfloat16', True
  model = build.build_unet(config, out_channels=6, conv_impl='fast')
  assert (model.ch, model.ch_mult, model.num_res_blocks, model.attn_resolutions, model.dropout,
          model.num_heads, model.out_channels, model.conv_impl, model.dtype, model.remat) == (
              8, (1, 2), 1, (4,), 0.1, 2, 6, 'fast', jnp.bfloat16, True)
  config.dtype, config.remat, config.dropout = 'float32', False, 0.0
  fast = build.build_unet(config, out_channels=6, conv_impl='fast')
  xla = build.build_unet(config, out_channels=6, conv_impl='xla')
  x, t = jax.random.normal(jax.random.PRNGKey(0), (1, 8, 8, 3)), jnp.array([3])
  params = fast.init(jax.random.PRNGKey(1), x, t)
  params = jax.tree.map(lambda p: p + 0.05, params)  # The zero-initialised last conv counts too.
  np.testing.assert_allclose(jax.jit(fast.apply)(params, x, t), jax.jit(xla.apply)(params, x, t),
                             atol=1e-4)


def test_build_diffusion_reads_schedule_and_variances():
  config = default.get_config().diffusion
  config.num_timesteps, config.schedule, config.learn_sigma = 30, 'linear', False
  diffusion = build.build_diffusion(config, decoder='discretized')
  np.testing.assert_allclose(diffusion.betas, schedules.get_beta_schedule('linear', 30))
  assert not diffusion.learn_sigma and diffusion.decoder == 'discretized'


@pytest.mark.parametrize('schedule', ['cosine', 'linear'])
def test_the_diffflow_ode_schedule_is_the_configs(schedule):
  config = tiny_config('diffflow')
  config.diffusion.schedule, config.diffusion.num_timesteps = schedule, 30
  assert build.build_model(config).ode_schedule == ode.VPSchedule(schedule, 30)


@pytest.mark.parametrize('kind,cls,channels', [('diffflow', DiffFlow, 4 * 2),
                                               ('ddpm', PixelDDPM, 1 * 2), ('flow', FlowOnly, 0)])
def test_build_model_kind_and_output_channels(kind, cls, channels):
  config = default.get_config()
  config.model.kind = kind
  config.model.eps_skip, config.model.variance_skip = False, False
  model = build.build_model(config)
  assert type(model) is cls and model.image_shape == (32, 32, 1)
  if channels:  # The U-Net outputs eps and v for every channel of what it models.
    assert model.unet.out_channels == channels
    assert (model.settings.eps_skip, model.settings.variance_skip) == (False, False)
    assert model.diffusion.decoder == ('continuous' if kind == 'diffflow' else 'discretized')
  assert isinstance(model, HasTrajectory) == (kind == 'diffflow')
  assert isinstance(model, HasBoundTerms) == (kind != 'flow')
  plan = model.sampling_plan(10**6)
  assert plan.num_steps == (None if kind == 'flow' else config.diffusion.num_timesteps)


def test_build_model_rejects_unknown_kind():
  config = default.get_config()
  config.model.kind = 'vae'
  with pytest.raises(ValueError, match='vae'):
    build.build_model(config)
