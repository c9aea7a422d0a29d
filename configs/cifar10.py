"""DiffFlow on CIFAR10 with the thesis's Table 5.1 settings (GPU-sized).

500 epochs at batch 156, 3x32x32, 4 levels x 15 steps, 128 hidden channels,
3 residual blocks in the flow, 2 in the U-Net, T = 500.
"""
from configs import thesis


def get_config():
  """Returns the thesis's CIFAR10 DiffFlow config."""
  return thesis.get_config(dataset='cifar10', image_size=32, channels=3, epochs=500,
                           train_size=50000, batch_size=156, num_levels=4, num_steps=15,
                           hidden=128, flow_res_blocks=3, ch_mult=(1, 2, 2, 2))
