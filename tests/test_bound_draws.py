"""The full bound's draws over eval keys (experiments/bound_draws.py)."""
import jax
import jax.numpy as jnp
import numpy as np

from dfflows import rng
from dfflows.data import input_pipeline
from dfflows.models.build import build_model
from dfflows.run_metrics import likelihood
from dfflows.training import run as run_lib
from experiments import bound_draws, common
from tests.helpers import tiny_config


def test_paired_pools_each_images_mean_over_draws():
  diff = np.random.default_rng(0).normal(size=(3, 7))
  out = bound_draws.paired(diff)
  np.testing.assert_allclose([r['mean'] for r in out['per_draw']], diff.mean(axis=1))
  np.testing.assert_allclose([r['stderr'] for r in out['per_draw']],
                             diff.std(axis=1, ddof=1) / np.sqrt(7))
  per_image = diff.mean(axis=0)
  np.testing.assert_allclose(out['pooled']['mean'], per_image.mean())
  np.testing.assert_allclose(out['pooled']['stderr'], per_image.std(ddof=1) / np.sqrt(7))


def test_draw_zero_is_evaluates_draw_and_the_next_is_another(tiny_run):
  run = run_lib.load_run(tiny_run.workdir, 'best')
  images, _ = input_pipeline.load_split(run.config.data, 'test')
  draws = bound_draws.run_draws(run, images, 8, 8, draws=2)
  evaluate = likelihood.full_bpd_summary(run.model, run.ema_params, images, 8, 8,
                                         rng.stream(run.base_key, rng.Stream.EVAL_BPD))
  np.testing.assert_array_equal(draws[0], evaluate['bpd_per_example'])
  assert not np.allclose(draws[1], draws[0])


def test_flow_alone_is_the_flow_only_models_nll_of_the_diffflows_flow_with_the_nsfs_keys(tiny_run):
  run = run_lib.load_run(tiny_run.workdir, 'best')
  images, _ = input_pipeline.load_split(run.config.data, 'test')
  alone = bound_draws.flow_alone_draws(run, images, 8, 8, draws=2)
  # Independently: a flow-only model of the same flow section with the DiffFlow's flow params,
  # drawn with the keys of a run of the same seed (as its NSF's draws are).
  flow_config = tiny_config('flow')
  flow_config.flow = run.config.flow
  nsf_like = build_model(flow_config)
  direct = bound_draws.bound_draws(nsf_like, {'flow': run.ema_params['flow']}, run.base_key,
                                   images, 8, 8, draws=2)
  np.testing.assert_allclose(alone, direct, rtol=1e-6)
  bound = bound_draws.run_draws(run, images, 8, 8, draws=1)
  assert not np.allclose(alone[0], bound[0])  # The prior's part is not zero.


def test_the_control_variate_reads_an_n01_prior_without_noise(tiny_run):
  """`common.load_run(..., bound_control_variate=True)` builds the DiffFlow whose full bound
  has the control variate: with its U-Net zeroed (the reverse process exact for N(0, I)), its
  prior's part (the bound minus its flow alone, on the same u) is 0 image for image; the
  plain bound's is not, the draws of x_t left in it."""
  loaded = {cv: common.load_run(tiny_run.workdir, 'best', bound_control_variate=cv)
            for cv in (False, True)}
  assert loaded[True].model.settings.bound_control_variate
  assert not loaded[False].model.settings.bound_control_variate
  images, _ = input_pipeline.load_split(loaded[False].config.data, 'test')
  alone = bound_draws.flow_alone_draws(loaded[False], images, 8, 8, draws=1)[0]
  prior = {}
  for cv, run in loaded.items():
    zero_unet = jax.tree.map(jnp.zeros_like, run.ema_params['unet'])
    run = run._replace(ema_params={**run.ema_params, 'unet': zero_unet})
    prior[cv] = bound_draws.run_draws(run, images, 8, 8, draws=1)[0] - alone
  np.testing.assert_allclose(prior[True], 0.0, atol=1e-5)
  assert np.max(np.abs(prior[False])) > 1e-3
