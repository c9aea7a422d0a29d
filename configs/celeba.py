"""DiffFlow on CelebA 64x64 with the thesis's Table 5.1 settings (GPU-sized).

100 epochs at batch 68, 3x64x64, 4 levels x 10 steps, 128 hidden channels,
3 residual blocks in the flow, 2 in the U-Net, T = 500.
"""
from configs import thesis


def get_config():
  """Returns the thesis's CelebA DiffFlow config."""
  return thesis.get_config(dataset='celeb_a', image_size=64, channels=3, epochs=100,
                           train_size=162770, batch_size=68, num_levels=4, num_steps=10,
                           hidden=128, flow_res_blocks=3, ch_mult=(1, 2, 2, 2))
