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
