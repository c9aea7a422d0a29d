"""Pixel-space Improved DDPM baseline on CelebA (thesis Table 5.3: T = 1000, 100 epochs).

`model.eps_skip` and `model.variance_skip` are off: the thesis's DDPM has no Gaussian
residual around its U-Net (dfflows/models/ddpm.py).
"""
from configs import celeba


def get_config():
  """Returns the CelebA DDPM baseline config."""
  config = celeba.get_config()
  config.model.kind = 'ddpm'
  config.model.eps_skip = False
  config.model.variance_skip = False
  config.diffusion.num_timesteps = 1000
  return config
