"""Every shipped config builds a model and passes validation; Table 5.1 values are exact."""
import glob
import importlib
import json
import os

import numpy as np
import pytest
import tensorflow_datasets as tfds

from dfflows.data import input_pipeline
from dfflows.models.build import build_model
from dfflows.training import config_checks
from dfflows.training import warm_start
from tests.helpers import REPO_ROOT

NAMES = sorted(os.path.basename(p)[:-3] for p in glob.glob(os.path.join(REPO_ROOT, 'configs', '*.py'))
               if not p.endswith(('__init__.py', 'thesis.py')))


@pytest.mark.parametrize('name', NAMES)
def test_config_validates_and_builds(name):
  config = importlib.import_module(f'configs.{name}').get_config()
  config_checks.validate_config(config, num_devices=1)
  model = build_model(config)
  # The model sees the dataset's own channel count, at a square size the flow can squeeze.
  assert model.image_shape[2] == input_pipeline.NATIVE_SHAPES[config.data.name][2]
  assert model.image_shape[0] == model.image_shape[1] == config.data.image_size
  assert type(model).__name__ == {'diffflow': 'DiffFlow', 'flow': 'FlowOnly',
                                  'ddpm': 'PixelDDPM'}[config.model.kind]


@pytest.mark.parametrize('name,epochs,batch,size,levels,steps,hidden,flow_rb,unet_rb', [
    ('mnist', 300, 128, (32, 1), 3, 8, 64, 2, 2),
    ('cifar10', 500, 156, (32, 3), 4, 15, 128, 3, 2),
    ('celeba', 100, 68, (64, 3), 4, 10, 128, 3, 2),
])
def test_thesis_table_5_1(name, epochs, batch, size, levels, steps, hidden, flow_rb, unet_rb):
  c = importlib.import_module(f'configs.{name}').get_config()
  train_split = {'mnist': 60000, 'cifar10': 50000, 'celeba': 162770}[name]
  # Epochs over the examples training reads: TFDS's own slice of the dataset's train split
  # by the split string `load_split` passes, the validation split held out.
  spec = input_pipeline.tfds_split('train', c.data.validation_percent)
  info = {'train': tfds.core.SplitInfo(name='train', shard_lengths=[train_split], num_bytes=0)}
  (read,) = tfds.core.ReadInstruction.from_spec(spec).to_absolute(info)
  trained_on = len(range(train_split)[read.from_:read.to])  # None: an open end.
  assert 0 < trained_on < train_split
  assert c.train.num_steps == epochs * trained_on // batch
  assert c.train.batch_size == batch
  assert (c.data.image_size, c.data.channels) == size
  assert (c.flow.num_levels, c.flow.num_steps, c.flow.hidden_channels) == (levels, steps, hidden)
  assert (c.flow.num_res_blocks, c.unet.num_res_blocks, c.unet.ch) == (flow_rb, unet_rb, hidden)
  assert c.diffusion.num_timesteps == 500


@pytest.mark.parametrize('name', ['mnist_ddpm', 'celeba_ddpm'])
def test_thesis_ddpm_configs_have_no_gaussian_residual(name):
  c = importlib.import_module(f'configs.{name}').get_config()
  assert (c.model.kind, c.diffusion.num_timesteps) == ('ddpm', 1000)
  assert not c.model.eps_skip and not c.model.variance_skip


@pytest.mark.parametrize('budget', ['', ',120'])
def test_two_stage_prior_warm_starts_from_a_kept_nsf_checkpoint(budget):
  """Stage 2 fits stage 1's flow, branches at a checkpoint stage 1 keeps, and trains the flow
  slower than the prior; a budget scales both stages alike."""
  two_stage = importlib.import_module('configs.two_stage')
  nsf, prior = two_stage.get_config('nsf' + budget), two_stage.get_config('prior' + budget)
  prior.model.warm_start = 'runs/nsf'
  config_checks.validate_config(prior, num_devices=1)
  warm_start.check_source(prior, json.loads(nsf.to_json()))
  every, last = nsf.train.checkpoint_every, nsf.train.num_steps
  kept = list(range(last, 0, -every))[:nsf.train.keep_checkpoints]
  assert 0 < prior.model.warm_start_step < last and prior.model.warm_start_step in kept
  assert (nsf.model.kind, prior.model.kind) == ('flow', 'diffflow')
  assert 0 < prior.optim.flow.lr_scale < 1
  # The flow trains on at the NSF's own cosine rate at the branch (after its linear warm-up).
  warmup, branch = nsf.optim.warmup_steps, prior.model.warm_start_step
  nsf_rate = nsf.optim.lr * 0.5 * (1 + np.cos(np.pi * (branch - warmup) / (last - warmup)))
  assert prior.optim.lr * prior.optim.flow.lr_scale == pytest.approx(nsf_rate, rel=0.02)
  # Stage 2 costs what the NSF's steps after the branch cost, at every budget.
  assert last == two_stage.NSF_STEPS * int(budget[1:] or 60) // 60
  assert prior.train.num_steps / (last - prior.model.warm_start_step) == pytest.approx(
      two_stage.PRIOR_STEPS / (two_stage.NSF_STEPS - two_stage.BRANCH_STEP))


@pytest.mark.parametrize('spec,problem', [('prior2', "stage 'prior2' is not one of"),
                                          ('nsf,90', "budget '90' is not a positive multiple"),
                                          ('nsf,0', "budget '0'"), ('nsf,x', "budget 'x'")])
def test_two_stage_rejects_an_unknown_stage_or_budget(spec, problem):
  with pytest.raises(ValueError, match=problem):
    importlib.import_module('configs.two_stage').get_config(spec)
