"""Tests for dfflows.metrics.inception (pytorch-fid's FID InceptionV3 in Flax)."""
import importlib.util

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dfflows.metrics import inception
from tests.metrics.inception_testing import fake_state_dict, random_variables

# torchvision's inception_v3 without AuxLogits and fc: 94 BasicConv2d layers and
# 27,161,264 - 2,049,000 (fc) - 3,326,696 (AuxLogits) = 21,785,568 parameters.
NUM_BASIC_CONVS = 94
NUM_PARAMS = 21_785_568


def test_architecture_counts_match_torchvision():
  variables = random_variables()
  kernels = [leaf for path, leaf in jax.tree_util.tree_leaves_with_path(variables['params'])
             if path[-1].key == 'kernel']
  assert len(kernels) == NUM_BASIC_CONVS
  assert all(leaf.dtype == np.float32 for leaf in jax.tree.leaves(variables))
  assert sum(leaf.size for leaf in jax.tree.leaves(variables['params'])) == NUM_PARAMS
  params = variables['params']
  # A few shapes (kh, kw, in, out) straight from torchvision's Inception3 definition.
  assert params['Conv2d_1a_3x3']['conv']['kernel'].shape == (3, 3, 3, 32)
  assert params['Conv2d_4a_3x3']['conv']['kernel'].shape == (3, 3, 80, 192)
  assert params['Mixed_5d']['branch_pool']['conv']['kernel'].shape == (1, 1, 288, 64)
  assert params['Mixed_6a']['branch3x3']['conv']['kernel'].shape == (3, 3, 288, 384)
  assert params['Mixed_6e']['branch7x7dbl_5']['conv']['kernel'].shape == (1, 7, 192, 192)
  assert params['Mixed_7a']['branch7x7x3_4']['conv']['kernel'].shape == (3, 3, 192, 192)
  assert params['Mixed_7b']['branch3x3dbl_1']['conv']['kernel'].shape == (1, 1, 1280, 448)
  assert params['Mixed_7c']['branch3x3dbl_3b']['conv']['kernel'].shape == (3, 1, 384, 384)
  assert variables['batch_stats']['Mixed_7c']['branch_pool']['bn']['var'].shape == (192,)


def test_output_shapes_at_small_size():
  variables = random_variables()
  model = inception.InceptionV3(output_dims=(64, 192, 768, 2048), resize_input=False)
  images = jax.random.uniform(jax.random.PRNGKey(1), (2, 75, 75, 3))
  out = jax.jit(model.apply)(variables, images)
  assert {dim: v.shape for dim, v in out.items()} == {
      64: (2, 64), 192: (2, 192), 768: (2, 768), 2048: (2, 2048)}
  assert all(bool(jnp.all(jnp.isfinite(v))) for v in out.values())
  # A truncated model (thesis's 192-d features) gives the same 192-d output.
  out192 = jax.jit(inception.InceptionV3(output_dims=(192,), resize_input=False).apply)(
      variables, images)
  assert set(out192) == {192}
  np.testing.assert_allclose(out192[192], out[192], rtol=1e-5, atol=1e-6)
  # Distinct images give distinct features.
  assert float(jnp.abs(out[2048][0] - out[2048][1]).max()) > 0


def test_grayscale_repeated_and_resize_applied():
  variables = random_variables()
  gray = jax.random.uniform(jax.random.PRNGKey(2), (1, 32, 32, 1))
  model = inception.InceptionV3(output_dims=(64,))
  np.testing.assert_allclose(model.apply(variables, gray)[64],
                             model.apply(variables, jnp.repeat(gray, 3, -1))[64], rtol=1e-6)
  # Resizing to 299 by hand then skipping the internal resize gives the same features.
  resized = jax.image.resize(jnp.repeat(gray, 3, -1), (1, 299, 299, 3), 'bilinear',
                             antialias=False)
  no_resize = inception.InceptionV3(output_dims=(64,), resize_input=False)
  np.testing.assert_allclose(model.apply(variables, gray)[64],
                             no_resize.apply(variables, resized)[64], rtol=1e-5, atol=1e-6)


def test_avg_pool_excludes_padding():
  x = jnp.ones((1, 4, 4, 1))
  np.testing.assert_allclose(inception._avg_pool_3x3(x), x)  # Padding counted would give 4/9.


def test_converter_round_tripsfake_state_dict():
  variables = random_variables()
  state_dict = fake_state_dict(variables, np.random.default_rng(0))
  state_dict['fc.weight'] = np.zeros((1008, 2048), np.float32)
  state_dict['fc.bias'] = np.zeros((1008,), np.float32)
  converted = inception.convert_torch_state_dict(state_dict)
  inception.check_variables(converted)
  assert jax.tree.structure(converted) == jax.tree.structure(jax.tree.map(np.asarray, variables))
  kernel = converted['params']['Mixed_6b']['branch7x7_2']['conv']['kernel']
  weight = state_dict['Mixed_6b.branch7x7_2.conv.weight']  # (out, in, kh, kw) = (128, 128, 1, 7)
  assert weight.shape == (128, 128, 1, 7) and kernel.shape == (1, 7, 128, 128)
  assert kernel[0, 5, 3, 7] == weight[7, 3, 0, 5]
  bn = 'Mixed_7c.branch_pool.bn'
  np.testing.assert_array_equal(converted['params']['Mixed_7c']['branch_pool']['bn']['scale'],
                                state_dict[f'{bn}.weight'])
  np.testing.assert_array_equal(converted['batch_stats']['Mixed_7c']['branch_pool']['bn']['var'],
                                state_dict[f'{bn}.running_var'])


def test_load_inception_params_from_npz(tmp_path):
  state_dict = fake_state_dict(random_variables(), np.random.default_rng(1))
  path = tmp_path / 'pt_inception.npz'
  np.savez(path, **state_dict)
  loaded = inception.load_inception_params(path)
  np.testing.assert_array_equal(loaded['batch_stats']['Conv2d_1a_3x3']['bn']['mean'],
                                state_dict['Conv2d_1a_3x3.bn.running_mean'])


@pytest.mark.parametrize('mutate, match', [
    (lambda sd: sd.pop('Mixed_5b.branch1x1.conv.weight'), 'missing'),
    (lambda sd: sd.update({'Mixed_5b.branch1x1.conv.weight': np.zeros((64, 192, 3, 3))}),
     'shapes'),
    (lambda sd: sd.update({'Mixed_5b.extra.weight': np.zeros(3)}), 'Unexpected'),
])
def test_bad_state_dict_raises(mutate, match):
  state_dict = fake_state_dict(random_variables(), np.random.default_rng(2))
  mutate(state_dict)
  with pytest.raises(ValueError, match=match):
    inception.check_variables(inception.convert_torch_state_dict(state_dict))


def test_bad_inputs_raise():
  with pytest.raises(ValueError, match='output_dims'):
    inception.InceptionV3(output_dims=(100,)).init(jax.random.PRNGKey(0), jnp.zeros((1, 75, 75, 3)))
  with pytest.raises(ValueError, match='images'):
    inception.InceptionV3().init(jax.random.PRNGKey(0), jnp.zeros((1, 75, 75, 2)))
  with pytest.raises(ValueError, match='uint8'):
    inception.feature_fn(random_variables())(np.zeros((1, 32, 32, 3), np.float32))


def _torch_available() -> bool:
  return all(importlib.util.find_spec(m) is not None
             for m in ('torch', 'torchvision', 'pytorch_fid'))


@pytest.mark.torch
@pytest.mark.skipif(not _torch_available(),
                    reason='needs torch, torchvision and pytorch_fid (pip install .[fid_torch])')
def test_matches_pytorch_fid(monkeypatch):
  import torch  # pylint: disable=g-import-not-at-top
  import torchvision  # pylint: disable=g-import-not-at-top
  from pytorch_fid import inception as pt_inception  # pylint: disable=g-import-not-at-top

  torch.manual_seed(0)
  # pytorch-fid's fid_inception_v3() with random weights instead of the downloaded ones.
  net = torchvision.models.inception_v3(
      weights=None, aux_logits=False, num_classes=1008, init_weights=False)
  net.Mixed_5b = pt_inception.FIDInceptionA(192, pool_features=32)
  net.Mixed_5c = pt_inception.FIDInceptionA(256, pool_features=64)
  net.Mixed_5d = pt_inception.FIDInceptionA(288, pool_features=64)
  net.Mixed_6b = pt_inception.FIDInceptionC(768, channels_7x7=128)
  net.Mixed_6c = pt_inception.FIDInceptionC(768, channels_7x7=160)
  net.Mixed_6d = pt_inception.FIDInceptionC(768, channels_7x7=160)
  net.Mixed_6e = pt_inception.FIDInceptionC(768, channels_7x7=192)
  net.Mixed_7b = pt_inception.FIDInceptionE_1(1280)
  net.Mixed_7c = pt_inception.FIDInceptionE_2(2048)
  with torch.no_grad():
    for module in net.modules():  # Non-trivial BatchNorm statistics.
      if isinstance(module, torch.nn.BatchNorm2d):
        module.running_mean.normal_(0, 0.1)
        module.running_var.uniform_(0.5, 1.5)
        module.weight.uniform_(0.5, 1.5)
        module.bias.normal_(0, 0.1)
  monkeypatch.setattr(pt_inception, 'fid_inception_v3', lambda: net)
  torch_model = pt_inception.InceptionV3(output_blocks=[1, 3]).eval()

  images = np.random.default_rng(0).uniform(size=(2, 32, 32, 3)).astype(np.float32)
  with torch.no_grad():
    torch_out = torch_model(torch.from_numpy(images.transpose(0, 3, 1, 2)))
  torch_192 = torch_out[0].mean(dim=(2, 3)).numpy()
  torch_2048 = torch_out[1][:, :, 0, 0].numpy()

  state_dict = {k: v.numpy() for k, v in net.state_dict().items()}
  variables = inception.convert_torch_state_dict(state_dict)
  inception.check_variables(variables)
  with jax.default_matmul_precision('highest'):
    out = inception.InceptionV3(output_dims=(192, 2048)).apply(variables, images)
  np.testing.assert_allclose(out[192], torch_192, rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(out[2048], torch_2048, rtol=1e-4, atol=1e-4)
