"""Evaluates a trained run: bits/dim (full bound), FID, sampling time, eps-MSE.

  python -m dfflows.evaluate --config=configs/default.py --workdir=runs/default \
      [--checkpoint=best|latest] [--num_examples=N] [--fid_samples=N]

Writes <workdir>/eval.json and prints a table. Bits/dim: exact for the flow-only
model; for diffusion models the variational bound with every t summed (prior KL,
KLs for t=1..T-1, decoder at t=0), plus -log|det| for a DiffFlow, then the
dequantisation offset (see dfflows/metrics/bpd.py). `bpd*` are bits per model dim
(`bpd_unit`); `bpd*_per_real_pixel` divide the same total bits by the unpadded pixel
count (784 for MNIST padded to 32x32), the unit of published MNIST figures.
"""
from dfflows import console  # First: it imports TensorFlow quietly.
import functools  # pylint: disable=g-bad-import-order,wrong-import-order
import json
import math
import os
import time
from typing import Any, Callable, Dict, NamedTuple, Optional

import jax
import ml_collections
import numpy as np
from absl import app, flags, logging
from ml_collections import config_flags

from dfflows import machine, rng, visualize
from dfflows.data import batching
from dfflows.data import input_pipeline
from dfflows.metrics import bpd as bpd_lib
from dfflows.metrics import classifier, fid, inception
from dfflows.models.build import build_model
from dfflows.models.interface import HasOdeLikelihood, HasTrajectory
from dfflows.training import trainer as trainer_lib
from dfflows.training.checkpoints import Checkpoints

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file('config', None, 'Config file of the run.', lock_config=True)
flags.DEFINE_string('workdir', None, 'Workdir of the run.')
flags.DEFINE_enum('checkpoint', 'best', ['best', 'latest'], 'Which checkpoint (EMA params).')
flags.DEFINE_integer('num_examples', 0, 'Test examples for bits/dim (0 = config.eval.num_examples).')
flags.DEFINE_integer('fid_samples', 0, 'Samples for FID (0 = config.eval.fid_num_samples).')
flags.DEFINE_integer('sample_steps', 0, 'Reverse steps (0 = config.diffusion.sample_steps).')


def restore_state(config: ml_collections.ConfigDict, workdir: str, trainer: trainer_lib.Trainer,
                  init_batch: np.ndarray, which: str):
  """EMA params and step of the run's best (falling back to latest) checkpoint."""
  target = trainer.init_state(init_batch)
  ckpts = Checkpoints(workdir, config.train.keep_checkpoints)
  state, step = ckpts.restore(target, which=which)
  if step is None and which == 'best':
    state, step = ckpts.restore(target, which='latest')
  ckpts.close()
  if step is None:
    raise FileNotFoundError(f'No checkpoint in {workdir}; train first with dfflows.main.')
  return state, step


def bpd_and_mse(trainer: trainer_lib.Trainer, params: Any, images: np.ndarray, num_examples: int,
                batch_size: int) -> Dict[str, float]:
  """Full-bound bits/dim (mean, stderr) and one-sample eps-MSE over test images."""
  model = trainer.model
  key = rng.stream(trainer.base_key, rng.Stream.EVAL_BPD)
  full = jax.jit(model.full_bpd)
  loss = jax.jit(lambda p, x, k: model.loss(p, x, k, train=False)[1])
  bpds, mses = [], []
  for i, (batch, mask) in enumerate(batching.eval_batches(images, batch_size, num_examples)):
    k = jax.random.fold_in(key, i)
    keep = np.asarray(mask, bool)
    bpds.append(np.asarray(full(params, batch, k))[keep])
    metrics = loss(params, batch, k)
    if 'l_simple' in metrics:
      mses.append(float(metrics['l_simple']))
  bpd = np.concatenate(bpds)
  out = {'bpd': float(bpd.mean()), 'bpd_stderr': float(bpd.std(ddof=1) / math.sqrt(len(bpd))),
         'bpd_num_examples': int(len(bpd)), 'bpd_per_example': bpd.tolist()}
  if mses:
    out['eps_mse'] = float(np.mean(mses))
  return out


def ode_bpd(trainer: trainer_lib.Trainer, params: Any, images: np.ndarray, num_examples: int,
            batch_size: int, num_probes: int) -> Dict[str, Any]:
  """The probability-flow ODE's NLL (bits/dim, mean and stderr) and its cost per image."""
  model = trainer.model
  key = rng.stream(trainer.base_key, rng.Stream.EVAL_ODE)
  terms = jax.jit(functools.partial(model.ode_nll_terms, num_probes=num_probes))
  dims = int(np.prod(images.shape[1:]))
  bpds, nfe, seconds, count = [], 0, 0.0, 0
  for i, (batch, mask) in enumerate(batching.eval_batches(images, batch_size, num_examples)):
    k = jax.random.fold_in(key, i)
    if i == 0:
      terms = terms.lower(params, batch, k).compile()  # Compiled ahead, outside the timing.
    t0 = time.perf_counter()
    out = jax.device_get(terms(params, batch, k))
    seconds += time.perf_counter() - t0
    keep = np.asarray(mask, bool)
    nats = out['ode_nats'][keep] + out['neg_logdet'][keep]
    bpds.append(np.asarray(bpd_lib.continuous_nats_to_bpd(nats, dims)))
    nfe += int(out['nfe'][0]) * int(keep.sum())
    count += int(keep.sum())
  bpd = np.concatenate(bpds)
  return {'ode_bpd': float(bpd.mean()),
          'ode_bpd_stderr': float(bpd.std(ddof=1) / math.sqrt(len(bpd))),
          'ode_bpd_num_examples': int(len(bpd)), 'ode_bpd_per_example': bpd.tolist(),
          'ode_bpd_estimator': model.ode_label(num_probes),
          'ode_network_evals_per_image': nfe / count,
          'ode_seconds_per_image': seconds / count}


def real_pixel_fields(result: Dict[str, Any], data_config: ml_collections.ConfigDict,
                      model_dims: int) -> Dict[str, Any]:
  """`result`'s bits/dim (bits per model dim) also as bits per real (unpadded) pixel.

  The same total bits over input_pipeline.real_pixel_count pixels instead of the model's
  `model_dims` (MNIST at 32x32: 784 of 1,024); published MNIST figures are in this unit.
  """
  real = input_pipeline.real_pixel_count(data_config)
  size, channels = data_config.image_size, data_config.channels
  padded = (f'of which {model_dims - real} are zero padding' if real < model_dims else
            'no padding')
  out = {'bpd_unit': (f'bits per model dim ({size}x{size}x{channels} = {model_dims} dims, '
                      f'{padded})'),
         'bpd_per_real_pixel_unit': f'bits per real pixel (the same total bits / {real})',
         'model_dims': model_dims, 'real_pixels': real}
  for key in ('bpd', 'bpd_raw_params', 'ode_bpd'):
    for suffix in ('', '_stderr'):
      if key + suffix in result:
        out[f'{key}_per_real_pixel{suffix}'] = float(
            bpd_lib.bits_per_real_pixel(result[key + suffix], model_dims, real))
  return out


def time_sampling(sample: Callable, params: Any, key: jax.Array, num: int,
                  num_steps: Optional[int], temperature: float) -> float:
  """Seconds to draw `num` samples, after a warm-up call that compiles."""
  jax.block_until_ready(sample(params, key, num=num, num_steps=num_steps, temperature=temperature))
  t0 = time.perf_counter()
  jax.block_until_ready(sample(params, jax.random.fold_in(key, 1), num=num, num_steps=num_steps,
                               temperature=temperature))
  return time.perf_counter() - t0


class FidFeatures(NamedTuple):
  """An FID feature function, what it is, and the classifier's params (None for Inception)."""
  fn: Callable[[np.ndarray], Any]
  description: str
  tag: str  # Names the cached reference statistics in the workdir.
  classifier_params: Optional[Any]


def fid_features(config: ml_collections.ConfigDict, workdir: str) -> Optional[FidFeatures]:
  """The run's FID features (eval.fid_features); None for Inception without weights."""
  kind = fid.resolve_features(config.eval.fid_features, config.data.channels)
  if kind == 'inception':
    path, dim = config.eval.inception_weights, config.eval.inception_dim
    if not path:
      return None
    if not os.path.exists(path):
      raise FileNotFoundError(f'config.eval.inception_weights={path!r} does not exist.')
    return FidFeatures(inception.feature_fn(inception.load_inception_params(path), dim),
                       f'pytorch-fid InceptionV3, {dim}-d (test split reference)',
                       f'inception{dim}', None)
  path = os.path.join(workdir, 'fid_classifier.msgpack')
  if os.path.exists(path):
    params = classifier.load_classifier(path)
  else:
    logging.info('Training the FID feature classifier (%d steps, cached in %s)...',
                 config.eval.classifier_steps, path)
    images, labels = input_pipeline.load_split(config.data, 'train')
    params = classifier.train_classifier(images, labels, num_steps=config.eval.classifier_steps,
                                         batch_size=128, seed=config.seed, log_every=500)
    classifier.save_classifier(path, params)
  return FidFeatures(classifier.feature_fn(params),
                     'dfflows MNIST classifier, penultimate layer (test split reference)',
                     'classifier', params)


def draw_samples(sample: Callable, params: Any, key: jax.Array, num: int, num_steps: int,
                 temperature: float, batch: int) -> np.ndarray:
  """`num` samples drawn `batch` at a time (batch i from fold_in(key, 100 + i)), logged."""
  t0 = time.perf_counter()
  parts = []
  for i in range(math.ceil(num / batch)):
    parts.append(np.asarray(sample(params, jax.random.fold_in(key, 100 + i), num=batch,
                                   num_steps=num_steps, temperature=temperature)))
    logging.info('  %d of %d samples (%.0f s)', min((i + 1) * batch, num), num,
                 time.perf_counter() - t0)
  return np.concatenate(parts)[:num]


def samples_fid(features: FidFeatures, workdir: str, test_images: np.ndarray,
                samples: np.ndarray) -> float:
  """FID of `samples` against the test split (its statistics cached in the workdir)."""
  stats_path = os.path.join(workdir, f'fid_stats_test_{features.tag}.npz')
  if os.path.exists(stats_path):
    ref = fid.FeatureStats.load(stats_path)
  else:
    logging.info('FID reference statistics of the test split (%d images, cached in %s)...',
                 len(test_images), stats_path)
    ref = fid.feature_stats(fid.batched_features(features.fn, test_images, 500))
    ref.save(stats_path)
  return fid.fid_from_stats(fid.feature_stats(fid.batched_features(features.fn, samples, 500)),
                            ref)


def evaluate(config: ml_collections.ConfigDict, workdir: str, which: str = 'best',
             num_examples: int = 0, fid_samples: int = 0, sample_steps: int = 0) -> Dict:
  """Computes every metric of a run and writes eval.json; returns the dict."""
  t_start = time.perf_counter()
  model = build_model(config)
  trainer = trainer_lib.Trainer(config, model, trainer_lib.make_mesh())
  train_images, _ = input_pipeline.load_split(config.data, 'train')
  test_images, test_labels = input_pipeline.load_split(config.data, 'test')
  state, step = restore_state(config, workdir, trainer, train_images[:config.train.batch_size],
                              which)
  params = state.ema_params
  num_examples = num_examples or config.eval.num_examples
  plan = model.sampling_plan(sample_steps or config.diffusion.sample_steps)
  steps = plan.num_steps
  result = {'step': step, 'checkpoint': which, 'model': config.model.kind,
            'params': int(sum(x.size for x in jax.tree.leaves(params)))}
  logging.info('Bits/dim of step %d: %s on %d test images (EMA params, then raw params)...',
               step, model.bpd_labels.full,
               num_examples or len(test_images))
  result.update(bpd_and_mse(trainer, params, test_images, num_examples, config.eval.batch_size))
  result['bpd_estimator'] = model.bpd_labels.full
  result['bpd_params'] = 'EMA'
  # Early in a run the EMA may lag the params: report the raw params' bits/dim beside it.
  raw = bpd_and_mse(trainer, state.params, test_images, num_examples, config.eval.batch_size)
  result['bpd_raw_params'], result['bpd_raw_params_stderr'] = raw['bpd'], raw['bpd_stderr']
  if isinstance(model, HasOdeLikelihood) and config.eval.ode_examples:
    logging.info('Probability-flow ODE NLL on %d test images (%d Hutchinson probes)...',
                 config.eval.ode_examples, config.eval.ode_probes)
    result.update(ode_bpd(trainer, params, test_images, config.eval.ode_examples,
                          config.eval.batch_size, config.eval.ode_probes))
  result.update(real_pixel_fields(result, config.data, int(np.prod(test_images.shape[1:]))))

  temperature = config.model.temperature
  key = rng.stream(trainer.base_key, rng.Stream.EVAL_SAMPLES)
  result['sampler'] = plan.description
  result['network_evals_per_sample'] = plan.network_evals
  result['seconds_for_25_samples'] = time_sampling(trainer.sample, params, key, 25, steps, temperature)

  n = fid_samples or config.eval.fid_num_samples
  logging.info('bpd %.3f +- %.3f bits/model dim = %.3f +- %.3f bits/real pixel (raw params '
               '%.3f = %.3f). FID features (%s)...', result['bpd'], result['bpd_stderr'],
               result['bpd_per_real_pixel'], result['bpd_per_real_pixel_stderr'],
               result['bpd_raw_params'], result['bpd_raw_params_per_real_pixel'],
               config.eval.fid_features)
  features = fid_features(config, workdir)
  logging.info('Drawing %d samples (%s)...', n, result['sampler'])
  t0 = time.perf_counter()
  samples = draw_samples(trainer.sample, params, key, n, steps, temperature, min(n, 250))
  result[f'seconds_for_{n}_samples'] = time.perf_counter() - t0
  if features is None:
    logging.warning('No FID: RGB images need InceptionV3 weights; set '
                    'config.eval.inception_weights (README, "Evaluation").')
    result['fid'], result['fid_features'] = None, 'none (config.eval.inception_weights unset)'
  else:
    result['fid'] = samples_fid(features, workdir, test_images, samples)
    result['fid_features'] = features.description
  result['fid_num_samples'] = n
  if features is not None and features.classifier_params is not None:
    cls_params = features.classifier_params
    result['fid_classifier_test_accuracy'] = float(classifier.accuracy(cls_params, test_images,
                                                                       test_labels))
    result['samples_mean_top_class_probability'] = classifier.mean_top_probability(cls_params,
                                                                                 samples)
  visualize.save_image_grid(samples[:64], os.path.join(workdir, 'eval_samples.png'))
  if isinstance(model, HasTrajectory):  # DiffFlow: the reverse chain z_T -> z0 -> x.
    z, x = jax.jit(model.trajectory, static_argnames=('num', 'num_steps'))(
        params, jax.random.fold_in(key, 99), num=4, num_steps=steps)
    visualize.save_trajectory_strip(z, x, os.path.join(workdir, 'eval_trajectory.png'))
  result['provenance'] = {**machine.provenance(),
                          'seconds': round(time.perf_counter() - t_start, 1)}
  with open(os.path.join(workdir, 'eval.json'), 'w') as f:
    json.dump(result, f, indent=2)
  return result


def main(argv):
  """Runs the evaluation and prints a table."""
  del argv
  console.quiet_libraries(FLAGS.verbosity)
  result = evaluate(FLAGS.config, FLAGS.workdir, FLAGS.checkpoint, FLAGS.num_examples,
                    FLAGS.fid_samples, FLAGS.sample_steps)
  width = max(map(len, result))
  print('\n'.join(f'{k:<{width}}  {v:.4g}' if isinstance(v, float) else f'{k:<{width}}  {v}'
                  for k, v in result.items()))


if __name__ == '__main__':
  flags.mark_flags_as_required(['config', 'workdir'])
  app.run(main, flags_parser=console.parse_flags)
