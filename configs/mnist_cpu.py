"""DiffFlow on real MNIST sized for 2 CPU cores (hours, not days).

The thesis's MNIST U-Net on the 1x32x32 latent is GPU-sized. This config diffuses
the flow latent squeezed once (16x16x4) with a 32-channel U-Net and a
3-level x 4-step flow with 32 hidden channels. Data: real MNIST via TFDS
('mnist'), or `--config.data.name=mnist_idx --config.data.manual_dir=DIR` for IDX
files on disk. `num_steps` is an estimate for about 2 hours at the measured
default-config rate scaled by FLOPs; check the FLOPs/example and steps/s that the
run logs at start-up and adjust.
"""
from configs import default


def get_config():
  """Returns the CPU-sized MNIST DiffFlow config."""
  config = default.get_config()
  config.data.name = 'mnist'
  config.model.latent_squeeze = 1
  config.flow.num_levels = 3
  config.flow.num_steps = 4
  config.flow.hidden_channels = 32
  config.flow.num_res_blocks = 1
  config.unet.ch = 32
  config.unet.ch_mult = (1, 2, 2)
  config.unet.num_res_blocks = 1
  config.unet.attn_resolutions = (8,)
  config.diffusion.num_timesteps = 500
  config.optim.lr = 5e-4
  config.optim.warmup_steps = 200
  config.optim.ema_decay = 0.999
  config.train.batch_size = 64
  config.train.num_steps = 3000
  config.train.log_every = 50
  config.train.eval_every = 500
  config.train.checkpoint_every = 250
  config.train.sample_every = 1000
  config.eval.num_examples = 512
  config.eval.num_samples = 36
  return config
