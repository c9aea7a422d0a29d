"""Datasets (`input_pipeline`, which registers the TFDS builders `mnist_embedded` and
`mnist_idx`; their names and shapes in `catalog`), IDX files (`idx`) and batching
(`batching`); `catalog` and `batching` need no TensorFlow."""
