"""Settings shared by the thesis's Table 5.1 configs (mnist.py, cifar10.py, celeba.py).

Table 5.1 gives epochs, batch size, image size, flow levels and steps, hidden
channels (flow and U-Net) and residual blocks; everything else here (Adam
learning rate, warmup, EMA, U-Net layout, logging cadence) is dfflows' choice.
"""
import ml_collections

from configs import default


def training_examples(train_size: int, validation_percent: int) -> int:
  """The examples of a `train_size` train split that training reads, the first 100 -
  `validation_percent` % (`input_pipeline.tfds_split`), rounded as TFDS's percent slicing."""
  return int(round((100 - validation_percent) * train_size / 100.0))


def get_config(*, dataset: str, image_size: int, channels: int, epochs: int, train_size: int,
               batch_size: int, num_levels: int, num_steps: int, hidden: int,
               flow_res_blocks: int, ch_mult: tuple) -> ml_collections.ConfigDict:
  """A GPU-sized DiffFlow config with one column of the thesis's Table 5.1; `train_size` is the
  dataset's train split, of which `training_examples` are trained on for `epochs`."""
  config = default.get_config()
  config.data.name = dataset
  config.data.image_size = image_size
  config.data.channels = channels
  config.model.latent_squeeze = 0
  config.flow.num_levels = num_levels
  config.flow.num_steps = num_steps
  config.flow.hidden_channels = hidden
  config.flow.num_res_blocks = flow_res_blocks
  config.unet.ch = hidden
  config.unet.ch_mult = ch_mult
  config.unet.num_res_blocks = 2
  config.unet.attn_resolutions = (16,)
  config.unet.dropout = 0.1
  config.diffusion.num_timesteps = 500
  config.optim.lr = 2e-4
  config.optim.warmup_steps = 1000
  config.optim.ema_decay = 0.9999
  config.train.batch_size = batch_size
  config.train.num_steps = (epochs * training_examples(train_size, config.data.validation_percent)
                            // batch_size)
  config.train.log_every = 100
  config.train.eval_every = 5000
  config.train.checkpoint_every = 2000
  config.train.sample_every = 5000
  config.eval.batch_size = batch_size
  config.eval.num_examples = 2000
  config.eval.num_samples = 64
  return config
