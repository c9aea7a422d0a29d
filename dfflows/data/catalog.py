"""The datasets dfflows loads (`config.data.name`) and their native image shapes.

No TensorFlow: the config checks read the names from here before any work starts.
"""

# Native (height, width, channels) of each dataset TFDS returns.
NATIVE_SHAPES = {
    'mnist_embedded': (28, 28, 1),
    'mnist': (28, 28, 1),
    'mnist_idx': (28, 28, 1),
    'cifar10': (32, 32, 3),
    'celeb_a': (218, 178, 3),
}
DATASETS = tuple(NATIVE_SHAPES)
# Datasets that `load_split` zero-pads (centred) from their native size to image_size: the
# padding is always 0, so only the native pixels carry data (`metrics.bpd.real_pixel_count`).
# The others reach image_size without padding: CIFAR-10 natively, CelebA by crop and resize.
ZERO_PADDED = ('mnist_embedded', 'mnist', 'mnist_idx')


def center_padding(native: int, size: int, name: str) -> tuple[int, int]:
  """Zero rows (before, after) that center-pad `native`px images to `size`px."""
  pad = size - native
  if pad < 0 or pad % 2:
    raise ValueError(f'{name}: cannot center-pad {native}px images to image_size '
                     f'{size}; need image_size >= {native} with an even difference.')
  return pad // 2, pad - pad // 2
