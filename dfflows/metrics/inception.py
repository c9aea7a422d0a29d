"""InceptionV3 of pytorch-fid (`fid_inception_v3`) in Flax, for FID on CIFAR-10 and CelebA.

The architecture is torchvision's Inception3 with pytorch-fid's FID blocks:
FIDInceptionA/C/E_1 average-pool without counting the padding, FIDInceptionE_2
max-pools in its pool branch. Like pytorch-fid's `InceptionV3`, the model resizes
inputs in [0, 1] to 299x299 (bilinear, align_corners=False, no antialiasing),
maps them to [-1, 1], and returns the spatial means of the outputs of its four
blocks: 64 (after the first max-pool), 192 (after Conv2d_4a and the second
max-pool; the thesis's FID dimension), 768 (after Mixed_6e) and 2048 (pool3).

Weights cannot be downloaded here: save pytorch-fid's state_dict as an .npz of
name -> array (see `load_inception_params`) and load it with this module.
"""
import functools
import os
from typing import Any, Callable, Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from dfflows.metrics.fid import BLOCK_DIMS
from dfflows.nets.conv import Conv

Variables = Any
RESIZE_TO = 299
BN_EPSILON = 1e-3  # torchvision BasicConv2d: BatchNorm2d(eps=0.001).


def _pads(padding: tuple[int, int]) -> tuple[tuple[int, int], tuple[int, int]]:
  """Returns torch-style symmetric (pad_h, pad_w) as Flax per-side padding."""
  return ((padding[0], padding[0]), (padding[1], padding[1]))


class BasicConv2d(nn.Module):
  """torchvision's BasicConv2d: bias-free conv, inference BatchNorm (eps 1e-3), ReLU."""
  features: int
  kernel_size: tuple[int, int]
  strides: int = 1
  padding: tuple[int, int] = (0, 0)
  conv_impl: str = 'xla'

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    x = Conv(self.features, self.kernel_size, strides=self.strides, padding=_pads(self.padding),
             use_bias=False, impl=self.conv_impl, name='conv')(x)
    x = nn.BatchNorm(use_running_average=True, epsilon=BN_EPSILON, name='bn')(x)
    return nn.relu(x)


def _avg_pool_3x3(x: jax.Array) -> jax.Array:
  """3x3 stride-1 average pool over the valid (unpadded) pixels (count_include_pad=False)."""
  return nn.avg_pool(x, (3, 3), strides=(1, 1), padding=_pads((1, 1)), count_include_pad=False)


def _max_pool_3x3_s2(x: jax.Array) -> jax.Array:
  """3x3 stride-2 unpadded max pool (torch MaxPool2d(3, 2))."""
  return nn.max_pool(x, (3, 3), strides=(2, 2), padding='VALID')


class FIDInceptionA(nn.Module):
  """Mixed_5b/c/d: 1x1, 5x5, double 3x3 and avg-pool branches (64+64+96+pool_features)."""
  pool_features: int
  conv_impl: str = 'xla'

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    conv = lambda name, *a, **k: BasicConv2d(*a, conv_impl=self.conv_impl, name=name, **k)
    branch1x1 = conv('branch1x1', 64, (1, 1))(x)
    branch5x5 = conv('branch5x5_1', 48, (1, 1))(x)
    branch5x5 = conv('branch5x5_2', 64, (5, 5), padding=(2, 2))(branch5x5)
    branch3x3dbl = conv('branch3x3dbl_1', 64, (1, 1))(x)
    branch3x3dbl = conv('branch3x3dbl_2', 96, (3, 3), padding=(1, 1))(branch3x3dbl)
    branch3x3dbl = conv('branch3x3dbl_3', 96, (3, 3), padding=(1, 1))(branch3x3dbl)
    branch_pool = conv('branch_pool', self.pool_features, (1, 1))(_avg_pool_3x3(x))
    return jnp.concatenate([branch1x1, branch5x5, branch3x3dbl, branch_pool], axis=-1)


class InceptionB(nn.Module):
  """Mixed_6a: stride-2 3x3, stride-2 double 3x3 and max-pool branches (384+96+C)."""
  conv_impl: str = 'xla'

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    conv = lambda name, *a, **k: BasicConv2d(*a, conv_impl=self.conv_impl, name=name, **k)
    branch3x3 = conv('branch3x3', 384, (3, 3), strides=2)(x)
    branch3x3dbl = conv('branch3x3dbl_1', 64, (1, 1))(x)
    branch3x3dbl = conv('branch3x3dbl_2', 96, (3, 3), padding=(1, 1))(branch3x3dbl)
    branch3x3dbl = conv('branch3x3dbl_3', 96, (3, 3), strides=2)(branch3x3dbl)
    return jnp.concatenate([branch3x3, branch3x3dbl, _max_pool_3x3_s2(x)], axis=-1)


class FIDInceptionC(nn.Module):
  """Mixed_6b-e: 1x1, factorised 7x7, double factorised 7x7 and avg-pool branches (4x192)."""
  channels_7x7: int
  conv_impl: str = 'xla'

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    conv = lambda name, *a, **k: BasicConv2d(*a, conv_impl=self.conv_impl, name=name, **k)
    c7 = self.channels_7x7
    branch1x1 = conv('branch1x1', 192, (1, 1))(x)
    branch7x7 = conv('branch7x7_1', c7, (1, 1))(x)
    branch7x7 = conv('branch7x7_2', c7, (1, 7), padding=(0, 3))(branch7x7)
    branch7x7 = conv('branch7x7_3', 192, (7, 1), padding=(3, 0))(branch7x7)
    branch7x7dbl = conv('branch7x7dbl_1', c7, (1, 1))(x)
    branch7x7dbl = conv('branch7x7dbl_2', c7, (7, 1), padding=(3, 0))(branch7x7dbl)
    branch7x7dbl = conv('branch7x7dbl_3', c7, (1, 7), padding=(0, 3))(branch7x7dbl)
    branch7x7dbl = conv('branch7x7dbl_4', c7, (7, 1), padding=(3, 0))(branch7x7dbl)
    branch7x7dbl = conv('branch7x7dbl_5', 192, (1, 7), padding=(0, 3))(branch7x7dbl)
    branch_pool = conv('branch_pool', 192, (1, 1))(_avg_pool_3x3(x))
    return jnp.concatenate([branch1x1, branch7x7, branch7x7dbl, branch_pool], axis=-1)


class InceptionD(nn.Module):
  """Mixed_7a: stride-2 3x3, stride-2 7x7-then-3x3 and max-pool branches (320+192+C)."""
  conv_impl: str = 'xla'

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    conv = lambda name, *a, **k: BasicConv2d(*a, conv_impl=self.conv_impl, name=name, **k)
    branch3x3 = conv('branch3x3_1', 192, (1, 1))(x)
    branch3x3 = conv('branch3x3_2', 320, (3, 3), strides=2)(branch3x3)
    branch7x7x3 = conv('branch7x7x3_1', 192, (1, 1))(x)
    branch7x7x3 = conv('branch7x7x3_2', 192, (1, 7), padding=(0, 3))(branch7x7x3)
    branch7x7x3 = conv('branch7x7x3_3', 192, (7, 1), padding=(3, 0))(branch7x7x3)
    branch7x7x3 = conv('branch7x7x3_4', 192, (3, 3), strides=2)(branch7x7x3)
    return jnp.concatenate([branch3x3, branch7x7x3, _max_pool_3x3_s2(x)], axis=-1)


class FIDInceptionE(nn.Module):
  """Mixed_7b (pool='avg', FIDInceptionE_1) and Mixed_7c (pool='max', FIDInceptionE_2).

  Branches: 1x1 (320), 1x1 then split 1x3/3x1 (2x384), 1x1-3x3 then split
  1x3/3x1 (2x384) and a 3x3 stride-1 pool followed by 1x1 (192): 2048 channels.
  """
  pool: str
  conv_impl: str = 'xla'

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    if self.pool not in ('avg', 'max'):
      raise ValueError(f"pool must be 'avg' or 'max', got {self.pool!r}.")
    conv = lambda name, *a, **k: BasicConv2d(*a, conv_impl=self.conv_impl, name=name, **k)
    branch1x1 = conv('branch1x1', 320, (1, 1))(x)
    branch3x3 = conv('branch3x3_1', 384, (1, 1))(x)
    branch3x3 = jnp.concatenate([
        conv('branch3x3_2a', 384, (1, 3), padding=(0, 1))(branch3x3),
        conv('branch3x3_2b', 384, (3, 1), padding=(1, 0))(branch3x3)], axis=-1)
    branch3x3dbl = conv('branch3x3dbl_1', 448, (1, 1))(x)
    branch3x3dbl = conv('branch3x3dbl_2', 384, (3, 3), padding=(1, 1))(branch3x3dbl)
    branch3x3dbl = jnp.concatenate([
        conv('branch3x3dbl_3a', 384, (1, 3), padding=(0, 1))(branch3x3dbl),
        conv('branch3x3dbl_3b', 384, (3, 1), padding=(1, 0))(branch3x3dbl)], axis=-1)
    if self.pool == 'avg':
      pooled = _avg_pool_3x3(x)
    else:  # pytorch-fid: "the FID Inception model uses max pooling instead of average".
      pooled = nn.max_pool(x, (3, 3), strides=(1, 1), padding=_pads((1, 1)))
    branch_pool = conv('branch_pool', 192, (1, 1))(pooled)
    return jnp.concatenate([branch1x1, branch3x3, branch3x3dbl, branch_pool], axis=-1)


def _fid_blocks(conv_impl: str) -> list[list[Callable[[jax.Array], jax.Array]]]:
  """Returns pytorch-fid's four blocks, each a list of layers (call inside a compact method)."""
  conv = lambda name, *a, **k: BasicConv2d(*a, conv_impl=conv_impl, name=name, **k)
  impl = conv_impl
  return [
        [conv('Conv2d_1a_3x3', 32, (3, 3), strides=2), conv('Conv2d_2a_3x3', 32, (3, 3)),
       conv('Conv2d_2b_3x3', 64, (3, 3), padding=(1, 1)), _max_pool_3x3_s2],
      [conv('Conv2d_3b_1x1', 80, (1, 1)), conv('Conv2d_4a_3x3', 192, (3, 3)), _max_pool_3x3_s2],
      [FIDInceptionA(32, impl, name='Mixed_5b'), FIDInceptionA(64, impl, name='Mixed_5c'),
       FIDInceptionA(64, impl, name='Mixed_5d'), InceptionB(impl, name='Mixed_6a'),
       FIDInceptionC(128, impl, name='Mixed_6b'), FIDInceptionC(160, impl, name='Mixed_6c'),
       FIDInceptionC(160, impl, name='Mixed_6d'), FIDInceptionC(192, impl, name='Mixed_6e')],
      [InceptionD(impl, name='Mixed_7a'), FIDInceptionE('avg', impl, name='Mixed_7b'),
       FIDInceptionE('max', impl, name='Mixed_7c')],
  ]


class InceptionV3(nn.Module):
  """pytorch-fid's InceptionV3: maps (N, H, W, 1 or 3) images in [0, 1] to block features.

  Returns {dim: (N, dim)} for each dim in `output_dims` (spatial means of the block
  outputs, as pytorch-fid's fid_score does); only the blocks needed are run.
  Grayscale inputs are repeated to 3 channels.
  """
  output_dims: Sequence[int] = (192, 2048)
  resize_input: bool = True
  normalize_input: bool = True
  conv_impl: str = 'xla'

  @nn.compact
  def __call__(self, images: jax.Array) -> dict[int, jax.Array]:
    unknown = set(self.output_dims) - set(BLOCK_DIMS)
    if not self.output_dims or unknown:
      raise ValueError(f'output_dims must be a non-empty subset of {BLOCK_DIMS}, '
                       f'got {tuple(self.output_dims)}.')
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
      raise ValueError(f'images must have shape (N, H, W, 1 or 3), got {images.shape}.')
    x = jnp.broadcast_to(images, images.shape[:3] + (3,)).astype(jnp.float32)
    if self.resize_input:
      # antialias=False: torch's F.interpolate(mode='bilinear', align_corners=False).
      x = jax.image.resize(x, (x.shape[0], RESIZE_TO, RESIZE_TO, 3), 'bilinear', antialias=False)
    if self.normalize_input:
      x = 2 * x - 1
    last = max(BLOCK_DIMS.index(d) for d in self.output_dims)
    outputs = {}
    for dim, block in zip(BLOCK_DIMS[:last + 1], _fid_blocks(self.conv_impl)):
      for layer in block:
        x = layer(x)
      if dim in self.output_dims:
        outputs[dim] = x.mean(axis=(1, 2))
    return outputs


def variable_shapes(image_size: int = 75) -> Variables:
  """Returns the ShapeDtypeStructs of the full model's variables (no compilation)."""
  model = InceptionV3(output_dims=(BLOCK_DIMS[-1],), resize_input=False)
  return jax.eval_shape(model.init, jax.random.PRNGKey(0),
                        jnp.zeros((1, image_size, image_size, 3), jnp.float32))


def init_variables(seed: int = 0) -> Variables:
  """Returns random variables: He-normal kernels, identity BatchNorm (for tests).

  All kernels are cut from one normal draw: compiling `model.init` (or one
  random op per shape) of the 94-conv network takes minutes on a small CPU.
  """
  leaves, treedef = jax.tree_util.tree_flatten_with_path(variable_shapes())
  sizes = [int(np.prod(s.shape)) for path, s in leaves if path[-1].key == 'kernel']
  noise = np.asarray(jax.random.normal(jax.random.PRNGKey(seed), (sum(sizes),)))
  offsets = iter(np.cumsum([0] + sizes))
  fill = {'scale': np.ones, 'var': np.ones, 'bias': np.zeros, 'mean': np.zeros}

  def leaf(path, shape: jax.ShapeDtypeStruct) -> np.ndarray:
    name = path[-1].key
    if name != 'kernel':
      return fill[name](shape.shape, np.float32)
    start = next(offsets)
    fan_in = np.prod(shape.shape[:-1])
    return noise[start:start + np.prod(shape.shape)].reshape(shape.shape) * np.float32(np.sqrt(2 / fan_in))

  return jax.tree_util.tree_unflatten(treedef, [leaf(path, s) for path, s in leaves])


_BN_LEAVES = {'weight': ('params', 'scale'), 'bias': ('params', 'bias'),
              'running_mean': ('batch_stats', 'mean'), 'running_var': ('batch_stats', 'var')}
_SKIPPED_PREFIXES = ('fc.', 'AuxLogits.')  # Classifier head and aux branch: unused by FID.


def convert_torch_state_dict(state_dict: Mapping[str, np.ndarray]) -> Variables:
  """Returns {'params', 'batch_stats'} for `InceptionV3` from a pytorch-fid state_dict.

  Conv weights (O, I, kh, kw) become kernels (kh, kw, I, O); BatchNorm weight, bias,
  running_mean and running_var become scale, bias, mean and var. fc, AuxLogits and
  num_batches_tracked entries are dropped.
  """
  variables = {'params': {}, 'batch_stats': {}}
  for name, value in state_dict.items():
    if name.startswith(_SKIPPED_PREFIXES) or name.endswith('num_batches_tracked'):
      continue
    *path, layer, leaf = name.split('.')
    value = np.asarray(value, np.float32)
    if layer == 'conv' and leaf == 'weight':
      if value.ndim != 4:
        raise ValueError(f'{name}: expected a 4-D conv weight, got shape {value.shape}.')
      collection, flax_leaf, value = 'params', 'kernel', value.transpose(2, 3, 1, 0)
    elif layer == 'bn' and leaf in _BN_LEAVES:
      collection, flax_leaf = _BN_LEAVES[leaf]
    else:
      raise ValueError(f'Unexpected state_dict entry {name!r}; not a pytorch-fid InceptionV3.')
    node = variables[collection]
    for part in path + [layer]:
      node = node.setdefault(part, {})
    if flax_leaf in node:
      raise ValueError(f'Duplicate state_dict entry for {name!r}.')
    node[flax_leaf] = value
  return variables


def check_variables(variables: Variables) -> None:
  """Raises ValueError unless `variables` has exactly the names and shapes of `InceptionV3`."""
  expected = variable_shapes()
  flat_expected = {jax.tree_util.keystr(k): v.shape
                   for k, v in jax.tree_util.tree_leaves_with_path(expected)}
  flat_got = {jax.tree_util.keystr(k): np.shape(v)
              for k, v in jax.tree_util.tree_leaves_with_path(variables)}
  missing = sorted(set(flat_expected) - set(flat_got))
  extra = sorted(set(flat_got) - set(flat_expected))
  if missing or extra:
    raise ValueError(f'Inception variables mismatch: missing {missing[:5]} ({len(missing)}), '
                     f'unexpected {extra[:5]} ({len(extra)}).')
  wrong = [(k, flat_got[k], s) for k, s in flat_expected.items() if flat_got[k] != s]
  if wrong:
    raise ValueError(f'Inception variable shapes mismatch (name, got, expected): {wrong[:5]}.')


def load_inception_params(path: str | os.PathLike) -> Variables:
  """Loads pytorch-fid weights saved as .npz of state_dict name -> array.

  Make the file where torch is installed, e.g.
    model = pytorch_fid.inception.fid_inception_v3()
    np.savez(path, **{k: v.numpy() for k, v in model.state_dict().items()})
  """
  with np.load(path) as data:
    variables = convert_torch_state_dict({k: data[k] for k in data.files})
  check_variables(variables)
  return variables


@functools.partial(jax.jit, static_argnames='model')
def _apply(model: InceptionV3, variables: Variables, images: jax.Array) -> dict[int, jax.Array]:
  """Returns the model's features of uint8 images (scaled to [0, 1] as ToTensor does)."""
  return model.apply(variables, images.astype(jnp.float32) / 255.0)


def feature_fn(variables: Variables, dim: int = 2048,
               conv_impl: str = 'xla') -> Callable[[np.ndarray], jax.Array]:
  """Returns a map from uint8 (N, H, W, 1 or 3) images to (N, dim) FID features."""
  model = InceptionV3(output_dims=(dim,), conv_impl=conv_impl)

  def fn(images: np.ndarray) -> jax.Array:
    images = np.asarray(images)
    if images.dtype != np.uint8:
      raise ValueError(f'images must be uint8 (quantise samples first), got {images.dtype}.')
    return _apply(model, variables, images)[dim]

  return fn
