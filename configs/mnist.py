"""DiffFlow on MNIST with the thesis's Table 5.1 settings (GPU-sized).

300 epochs at batch 128, 1x32x32 (zero-padded), 3 levels x 8 steps, 64 hidden
channels, 2 residual blocks in the flow and in the U-Net, T = 500.
"""
from configs import thesis


def get_config():
  """Returns the thesis's MNIST DiffFlow config."""
  return thesis.get_config(dataset='mnist', image_size=32, channels=1, epochs=300,
                           train_size=60000, batch_size=128, num_levels=3, num_steps=8,
                           hidden=64, flow_res_blocks=2, ch_mult=(1, 2, 2))
