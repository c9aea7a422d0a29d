"""InceptionV3 variables and torch-layout state_dicts for the FID tests (random values)."""
import functools

import jax
import numpy as np

from dfflows.metrics import inception


@functools.lru_cache(maxsize=1)
def random_variables():
  """Random InceptionV3 variables (cut from one draw: fast to make), made once."""
  return inception.init_variables(seed=0)


def fake_state_dict(variables, rng: np.random.Generator) -> dict[str, np.ndarray]:
  """A torch-layout state_dict (random values) named and shaped after the Flax variables."""
  state_dict = {}
  for path, leaf in jax.tree_util.tree_leaves_with_path(variables['params']):
    names = [p.key for p in path]
    prefix = '.'.join(names[:-1])
    if names[-1] == 'kernel':
      kh, kw, cin, cout = leaf.shape
      state_dict[f'{prefix}.weight'] = rng.normal(size=(cout, cin, kh, kw)).astype(np.float32)
    else:
      torch_leaf = {'scale': 'weight', 'bias': 'bias'}[names[-1]]
      state_dict[f'{prefix}.{torch_leaf}'] = rng.normal(size=leaf.shape).astype(np.float32)
      state_dict[f'{prefix}.running_mean'] = rng.normal(size=leaf.shape).astype(np.float32)
      state_dict[f'{prefix}.running_var'] = rng.uniform(0.5, 2, size=leaf.shape).astype(np.float32)
      state_dict[f'{prefix}.num_batches_tracked'] = np.array(0, np.int64)
  return state_dict
