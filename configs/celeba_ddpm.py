"""Pixel-space Improved DDPM baseline on CelebA (thesis Table 5.3: T = 1000, 100 epochs)."""
from configs import celeba


def get_config():
  """Returns the CelebA DDPM baseline config."""
  config = celeba.get_config()
  config.model.kind = 'ddpm'
  config.diffusion.num_timesteps = 1000
  return config
