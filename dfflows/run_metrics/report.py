"""Every metric of a trained run, written to its eval.json: what `dfflows.evaluate` runs.

Bits/dim: exact for the flow-only model; for diffusion models the variational bound with
every t summed (prior KL, KLs for t=1..T-1, decoder at t=0), plus -log|det| for a
DiffFlow, then the dequantisation offset (see dfflows/metrics/bpd.py). `bpd*` are bits per
model dim (`bpd_unit`); `bpd*_per_real_pixel` divide the same total bits by the unpadded
pixel count (784 for MNIST padded to 32x32), the unit of published MNIST figures.
"""
import json
import os
import time
from typing import Any, Dict

import jax
import ml_collections
import numpy as np
from absl import logging

from dfflows import machine, rng, visualize
from dfflows.data import input_pipeline
from dfflows.metrics import classifier
from dfflows.run_metrics import likelihood, sampling
from dfflows.run_metrics.fid_features import fid_features, samples_fid
from dfflows.models.interface import HasOdeLikelihood, HasTrajectory
from dfflows.training.run import Run, load_run

EVAL_FILE = 'eval.json'


def save_trajectory(run: Run, path: str) -> None:
  """A DiffFlow's reverse chain z_T -> z0 -> x for four samples (EMA params), as a strip."""
  z, x = jax.jit(run.model.trajectory, static_argnames=('num', 'num_steps'))(
      run.ema_params, rng.stream(run.base_key, rng.Stream.EVAL_TRAJECTORY), num=4,
      num_steps=run.model.sampling_plan(run.config.diffusion.sample_steps).num_steps)
  visualize.save_trajectory_strip(z, x, path)


def full_bound_key(base_key: jax.Array) -> jax.Array:
  """The key of the test full bound's draws (x_t per t, dequantization) of a run's base key:
  it depends on the seed alone, so every run of a seed shares draw 0 (`eval.bound_draws`).
  The ODE NLL's batches use it too: every model dequantizes image batch i with the same u
  (`models.common.eval_keys`), so a DiffFlow's ODE NLL minus its NSF's is paired on it."""
  return rng.stream(base_key, rng.Stream.EVAL_BPD)


def _likelihood(run: Run, test_images: np.ndarray) -> Dict[str, Any]:
  """Full-bound bits/dim (EMA and raw params), eps-MSE and the ODE NLL, in both units."""
  config, model, base = run.config, run.model, run.base_key
  ev = config.eval
  logging.info('Bits/dim of step %d: %s on %d test images (EMA params, then raw params)...',
               run.step, model.bpd_labels.full, ev.num_examples or len(test_images))
  bpd_key = full_bound_key(base)
  result = likelihood.full_bpd_summary(model, run.ema_params, test_images, ev.num_examples,
                                       ev.batch_size, bpd_key, ev.bound_draws)
  result['bpd_estimator'] = model.bpd_labels.full
  result['bpd_params'] = 'EMA'
  # Early in a run the EMA may lag the params: report the raw params' bits/dim beside it.
  raw = likelihood.full_bpd_summary(model, run.params, test_images, ev.num_examples,
                                    ev.batch_size, bpd_key, ev.bound_draws)
  result['bpd_raw_params'], result['bpd_raw_params_stderr'] = raw['bpd'], raw['bpd_stderr']
  mse = likelihood.eps_mse(model, run.ema_params, test_images, ev.num_examples, ev.batch_size,
                           rng.stream(base, rng.Stream.EVAL_EPS_MSE))
  if mse is not None:
    result['eps_mse'] = mse
  if isinstance(model, HasOdeLikelihood) and ev.ode_examples:
    logging.info('Probability-flow ODE NLL on %d test images (%d Hutchinson probes)...',
                 ev.ode_examples, ev.ode_probes)
    result.update(likelihood.ode_bpd_summary(model, run.ema_params, test_images,
                                             ev.ode_examples, ev.batch_size, ev.ode_probes,
                                             bpd_key))
  result.update(likelihood.real_pixel_fields(result, config.data))
  return result


def _samples(run: Run, workdir: str, test_images: np.ndarray,
             test_labels: np.ndarray) -> Dict[str, Any]:
  """Sampling time, FID (and the classifier's figures) of the EMA params; eval_samples.png."""
  config, params = run.config, run.ema_params
  plan = run.model.sampling_plan(config.diffusion.sample_steps)
  temperature = config.model.temperature
  key = rng.stream(run.base_key, rng.Stream.EVAL_SAMPLES)
  result = {'sampler': plan.description, 'network_evals_per_sample': plan.network_evals,
            'seconds_for_25_samples': sampling.time_sampling(run.sample, params, key, 25,
                                                             plan.num_steps, temperature)}
  n = config.eval.fid_num_samples
  features = fid_features(config, workdir)
  logging.info('Drawing %d samples (%s)...', n, plan.description)
  t0 = time.perf_counter()
  samples = sampling.draw_samples(run.sample, params, key, n, plan.num_steps, temperature,
                                  min(n, 250))
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
  return result


def write_report(config: ml_collections.ConfigDict, workdir: str,
                 which: str = 'best') -> Dict[str, Any]:
  """Every metric of the run in `workdir` at its `which` checkpoint, with `config`'s eval and
  sampler settings (`config_checks.evaluation_config`), written to eval.json and returned."""
  t_start = time.perf_counter()
  run = load_run(workdir, which, config)
  test_images, test_labels = input_pipeline.load_split(config.data, 'test')
  result = {'step': run.step, 'checkpoint': which, 'model': config.model.kind, 'split': 'test',
            'checkpoint_selection_split': 'validation' if which == 'best' else None,  # train.py
            'params': int(sum(x.size for x in jax.tree.leaves(run.ema_params)))}
  result.update(_likelihood(run, test_images))
  logging.info('bpd %.3f +- %.3f bits/model dim = %.3f +- %.3f bits/real pixel (raw params '
               '%.3f = %.3f). FID features (%s)...', result['bpd'], result['bpd_stderr'],
               result['bpd_per_real_pixel'], result['bpd_per_real_pixel_stderr'],
               result['bpd_raw_params'], result['bpd_raw_params_per_real_pixel'],
               config.eval.fid_features)
  result.update(_samples(run, workdir, test_images, test_labels))
  if isinstance(run.model, HasTrajectory):  # DiffFlow: the reverse chain z_T -> z0 -> x.
    save_trajectory(run, os.path.join(workdir, 'eval_trajectory.png'))
  result['provenance'] = {**machine.provenance(),
                          'seconds': round(time.perf_counter() - t_start, 1)}
  with open(os.path.join(workdir, EVAL_FILE), 'w') as f:
    json.dump(result, f, indent=2)
  return result
