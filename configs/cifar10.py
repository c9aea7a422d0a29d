"""DiffFlow on CIFAR10 with the thesis's Table 5.1 settings (GPU-sized).

500 epochs at batch 156, 3x32x32, 4 levels x 15 steps, 128 hidden channels,
3 residual blocks in the flow, 2 in the U-Net, T = 500.
"""
from configs import default


def get_config():
  """Returns the thesis's CIFAR10 DiffFlow config."""
  config = default.get_config()
  config.data.name = 'cifar10'
  config.data.image_size = 32
  config.data.channels = 3
  config.model.latent_squeeze = 0
  config.flow.num_levels = 4
  config.flow.num_steps = 15
  config.flow.hidden_channels = 128
  config.flow.num_res_blocks = 3
  config.unet.ch = 128
  config.unet.ch_mult = (1, 2, 2, 2)
  config.unet.num_res_blocks = 2
  config.unet.attn_resolutions = (16,)
  config.unet.dropout = 0.1
  config.diffusion.num_timesteps = 500
  config.optim.lr = 2e-4
  config.optim.warmup_steps = 1000
  config.optim.ema_decay = 0.9999
  config.train.batch_size = 156
  config.train.num_steps = 500 * 50000 // 156  # 500 epochs.
  config.train.log_every = 100
  config.train.eval_every = 5000
  config.train.checkpoint_every = 2000
  config.train.sample_every = 5000
  config.eval.batch_size = 156
  config.eval.num_examples = 2000
  config.eval.num_samples = 64
  return config
