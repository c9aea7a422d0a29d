"""Pixel-space Improved DDPM baseline on MNIST (thesis Table 5.4: T = 1000, 300 epochs)."""
from configs import mnist


def get_config():
  """Returns the MNIST DDPM baseline config."""
  config = mnist.get_config()
  config.model.kind = 'ddpm'
  config.diffusion.num_timesteps = 1000
  return config
