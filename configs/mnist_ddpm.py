"""Pixel-space Improved DDPM baseline on MNIST (thesis Table 5.4: T = 1000, 300 epochs).

`model.eps_skip` and `model.variance_skip` are off: the thesis's DDPM has no Gaussian
residual around its U-Net (dfflows/models/ddpm.py).
"""
from configs import mnist


def get_config():
  """Returns the MNIST DDPM baseline config."""
  config = mnist.get_config()
  config.model.kind = 'ddpm'
  config.model.eps_skip = False
  config.model.variance_skip = False
  config.diffusion.num_timesteps = 1000
  return config
