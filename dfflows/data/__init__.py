"""Datasets and input pipelines; importing this package registers the TFDS builders
`mnist_embedded` (offline MNIST shipped with dfflows) and `mnist_idx` (local IDX files)."""
from dfflows.data.input_pipeline import check_images
from dfflows.data.input_pipeline import DATASETS
from dfflows.data.input_pipeline import load_split
from dfflows.data.mnist_embedded import MnistEmbedded
from dfflows.data.mnist_idx import MnistIdx
