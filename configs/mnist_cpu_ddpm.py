"""Pixel-space DDPM baseline at the size of configs/mnist_cpu.py (T = 1000, 32x32x1)."""
from configs import mnist_cpu


def get_config():
  """Returns the CPU-sized MNIST DDPM baseline config."""
  config = mnist_cpu.get_config()
  config.model.kind = 'ddpm'
  config.diffusion.num_timesteps = 1000
  config.unet.attn_resolutions = (16,)
  return config
