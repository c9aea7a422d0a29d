"""How much of the flow's gradient in a DiffFlow is the bound estimator's noise?

For each DiffFlow run (its latest checkpoint's training params), the gradient of the training
loss in the flow's params on a fixed train batch, under `--keys` keys (each a new t, diffusion
noise and dequantization), for three losses of the same params: the one-sample bound
('bound'), the same with the Gaussian control variate ('bound_cv',
`model.gaussian_control_variate`) and the flow under N(0, I) ('nsf', the flow-only NLL, whose
only randomness is the dequantization). Per loss it reports the squared norm of the mean
gradient less its noise (the signal) and the mean squared deviation from it (the noise a step
carries), on one batch and across `--keys` batches (data noise too):

  python -m experiments.gradient_noise --out gradient_noise --run s1=runs/w120/joint9760_s1
"""
from typing import Callable, Dict

import jax
import jax.numpy as jnp
import numpy as np

from dfflows import machine, rng
from dfflows.data import input_pipeline
from dfflows.models.build import build_model
from dfflows.training import run as run_lib
from experiments import common

LOSSES = ('bound', 'bound_cv', 'nsf')


def spread(grads: np.ndarray) -> Dict[str, float]:
  """Signal |E g|^2 and noise E|g - E g|^2 of K flattened gradients [K, P], both unbiased."""
  k = grads.shape[0]
  mean = grads.mean(0)
  noise = float(np.sum((grads - mean)**2) / (k - 1))
  return {'signal': float(np.sum(mean**2)) - noise / k, 'noise': noise}


def flow_grad_fn(run: run_lib.Run, loss: str) -> Callable:
  """jit (flow params, images, key) -> flattened gradient of `loss` in the flow's params."""
  config = run.config.copy_and_resolve_references()
  config.model.gaussian_control_variate = loss == 'bound_cv'
  model = build_model(config)
  if loss == 'nsf':
    flow_model, _ = model.flow_under_gaussian(run.params)
    fn = lambda flow, x, key: flow_model.loss({'flow': flow}, x, key)[0]
  else:
    fn = lambda flow, x, key: model.loss({**run.params, 'flow': flow}, x, key)[0]
  grad = jax.grad(fn)
  return jax.jit(lambda flow, x, key: jnp.concatenate(
      [jnp.ravel(g) for g in jax.tree.leaves(grad(flow, x, key))]))


def measure(workdir: str, keys: int, batch: int) -> Dict:
  """One run's signal and noise per loss, on one train batch and across `keys` batches."""
  run = run_lib.load_run(workdir, 'latest')
  if run.config.model.kind != 'diffflow':
    raise ValueError(f'{workdir}: a DiffFlow run is needed, got model.kind '
                     f'{run.config.model.kind!r}.')
  images, _ = input_pipeline.load_split(run.config.data, 'train')
  if images.shape[0] < batch * (keys + 1):
    raise ValueError(f'{workdir}: {images.shape[0]} train images, fewer than the '
                     f'{batch * (keys + 1)} that --keys {keys} batches of {batch} need.')
  key = rng.stream(run.base_key, rng.Stream.EXPERIMENT_ESTIMATES)
  out = {'workdir': workdir, 'step': run.step}
  for loss in LOSSES:
    fn = flow_grad_fn(run, loss)
    one = np.stack([np.asarray(fn(run.params['flow'], images[:batch], jax.random.fold_in(key, i)))
                    for i in range(keys)])
    many = np.stack([np.asarray(fn(run.params['flow'], images[batch * (i + 1):batch * (i + 2)],
                                   jax.random.fold_in(key, keys + i))) for i in range(keys)])
    out[loss] = {'one_batch': spread(one), 'across_batches': spread(many)}
  return out


def main():
  parser = common.runs_parser()
  parser.add_argument('--keys', type=int, default=12)
  parser.add_argument('--batch', type=int, default=32)
  args = parser.parse_args()
  print(f'{machine.describe()}; commit {machine.git_commit()}')
  print('| run | loss | one batch: signal / noise | across batches: signal / noise |')
  print('|---|---|---|---|')
  rows = {}
  for spec in args.run:
    name, workdir = spec.split('=', 1)
    r = rows[name] = measure(workdir, args.keys, args.batch)
    for loss in LOSSES:
      a, b = r[loss]['one_batch'], r[loss]['across_batches']
      print(f"| {name} | {loss} | {a['signal']:.3g} / {a['noise']:.3g} | "
            f"{b['signal']:.3g} / {b['noise']:.3g} |", flush=True)
  result = {'keys': args.keys, 'batch': args.batch, 'rows': rows,
            'machine': machine.describe(), 'commit': machine.git_commit()}
  common.write_json(args.out, result)


if __name__ == '__main__':
  main()
