"""Parameter groups: the flow's own learning rate, warm-up and clipping; a frozen flow."""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dfflows.models.build import build_model
from dfflows.training import config_checks
from dfflows.training import trainer as trainer_lib
from tests.helpers import random_images, tiny_config


@dataclasses.dataclass(frozen=True)
class TwoGroups:
  """A stand-in model with a 'flow' and a 'unet' group whose gradients differ by 1e4 in size."""
  image_shape = (4, 4, 1)
  param_groups = ('flow', 'unet')

  def init(self, key, x):
    k1, k2 = jax.random.split(key)
    return {'flow': {'w': jax.random.normal(k1, (16,))},
            'unet': {'v': jax.random.normal(k2, (16,))}}

  def loss(self, params, x, key, train=True):
    x = x.reshape(x.shape[0], -1).astype(jnp.float32) / 255.0
    flow = jnp.mean((x @ params['flow']['w'])**2)
    loss = flow + 1e4 * jnp.mean((x @ params['unet']['v'] - 1.0)**2)
    return loss, {'bpd': loss}

  def sample(self, params, key, num, num_steps=None, temperature=1.0):
    raise NotImplementedError


def _step(**flow):
  """(before, after) one train step of TwoGroups with `optim.flow` set; full lr at step 0."""
  config = tiny_config('diffflow')
  config.optim.warmup_steps = 0
  for k, v in flow.items():
    config.optim.flow[k] = v
  trainer = trainer_lib.Trainer(config, TwoGroups(), trainer_lib.make_mesh())
  x = np.asarray(jax.random.randint(jax.random.PRNGKey(1), (8, 4, 4, 1), 0, 256), np.uint8)
  state = trainer.init_state(x)
  before = jax.device_get(state)
  after, metrics = trainer.train(state, trainer.global_array(x[None], trainer.stacked))
  return before, jax.device_get(after), trainer, jax.device_get(metrics)


def _change(before, after, group):
  return [np.asarray(b) - np.asarray(a) for a, b in
          zip(jax.tree.leaves(before.params[group]), jax.tree.leaves(after.params[group]))]


@pytest.fixture(scope='module')
def steps():
  return {scale: _step(lr_scale=scale) for scale in (1.0, 0.01, 0.0)}


def test_frozen_flow_is_unchanged_and_the_unet_step_is_the_same(steps):
  before, frozen, trainer, metrics = steps[0.0]
  assert trainer.frozen == ('flow',) and 'grad_norm_flow' not in metrics
  np.testing.assert_array_equal(_change(before, frozen, 'flow')[0], 0.0)
  np.testing.assert_array_equal(frozen.ema_params['flow']['w'], before.params['flow']['w'])
  _, joint, _, joint_metrics = steps[1.0]
  np.testing.assert_allclose(_change(before, frozen, 'unet')[0],
                             _change(before, joint, 'unet')[0], rtol=1e-5)
  assert np.abs(_change(before, frozen, 'unet')[0]).max() > 0
  assert joint_metrics['grad_norm_unet'] > 1e3 * joint_metrics['grad_norm_flow']


def test_each_group_clips_its_own_gradient(steps):
  """The U-Net's gradient is 1e4 times the flow's: a shared global-norm clip would shrink
  the flow's first Adam step to nearly 0; clipped per group it is a full step of lr."""
  before, joint, trainer, _ = steps[1.0]
  lr = trainer.config.optim.lr
  np.testing.assert_allclose(np.abs(_change(before, joint, 'flow')[0]), lr, rtol=1e-3)


def test_flow_lr_scale_scales_the_flow_update_only(steps):
  before, full, _, _ = steps[1.0]
  _, scaled, _, _ = steps[0.01]
  np.testing.assert_allclose(_change(before, scaled, 'flow')[0],
                             0.01 * _change(before, full, 'flow')[0], rtol=1e-2)  # float32
  np.testing.assert_allclose(_change(before, scaled, 'unet')[0],
                             _change(before, full, 'unet')[0], rtol=1e-5)


def test_flow_warmup_of_its_own():
  before, after, _, _ = _step(warmup_steps=10)
  np.testing.assert_array_equal(_change(before, after, 'flow')[0], 0.0)  # lr 0 at step 0.
  assert np.abs(_change(before, after, 'unet')[0]).max() > 0


def test_frozen_flow_step_skips_the_flow_backward_pass():
  """The DiffFlow's train step with a frozen flow costs fewer FLOPs than one that
  differentiates the flow too."""
  def flops(scale):
    config = tiny_config('diffflow')
    config.optim.flow.lr_scale = scale
    trainer = trainer_lib.Trainer(config, build_model(config), trainer_lib.make_mesh())
    batch = jax.ShapeDtypeStruct((1, config.train.batch_size, *trainer.model.image_shape),
                                 np.uint8, sharding=trainer.stacked)
    cost = trainer.train.lower(trainer.abstract_state(), batch).cost_analysis()
    return float((cost[0] if isinstance(cost, (list, tuple)) else cost)['flops'])
  assert flops(0.0) < 0.8 * flops(1.0)


def test_bad_flow_group_settings_are_one_error():
  config = tiny_config('diffflow')
  config.optim.flow.schedule = 'linear'
  with pytest.raises(ValueError, match='optim.flow.schedule'):
    config_checks.check_values(config)
  config = tiny_config('flow')
  config.optim.flow.lr_scale = 0.0
  with pytest.raises(ValueError, match='freezes the flow'):
    config_checks.check_values(config)
  config = tiny_config('diffflow')
  config.optim.flow.lr_scale = -1.0
  with pytest.raises(ValueError, match='lr_scale'):
    config_checks.check_values(config)
