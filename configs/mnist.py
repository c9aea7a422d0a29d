"""DiffFlow on MNIST with the thesis's Table 5.1 settings (GPU-sized).

300 epochs at batch 128, 1x32x32 (zero-padded), 3 levels x 8 steps, 64 hidden
channels, 2 residual blocks in the flow and in the U-Net, T = 500.
"""
from configs import default


def get_config():
  """Returns the thesis's MNIST DiffFlow config."""
  config = default.get_config()
  config.data.name = 'mnist'
  config.data.image_size = 32
  config.data.channels = 1
  config.model.latent_squeeze = 0
  config.flow.num_levels = 3
  config.flow.num_steps = 8
  config.flow.hidden_channels = 64
  config.flow.num_res_blocks = 2
  config.unet.ch = 64
  config.unet.ch_mult = (1, 2, 2)
  config.unet.num_res_blocks = 2
  config.unet.attn_resolutions = (16,)
  config.unet.dropout = 0.1
  config.diffusion.num_timesteps = 500
  config.optim.lr = 2e-4
  config.optim.warmup_steps = 1000
  config.optim.ema_decay = 0.9999
  config.train.batch_size = 128
  config.train.num_steps = 300 * 60000 // 128  # 300 epochs.
  config.train.log_every = 100
  config.train.eval_every = 5000
  config.train.checkpoint_every = 2000
  config.train.sample_every = 5000
  config.eval.num_examples = 2000
  config.eval.num_samples = 64
  return config
