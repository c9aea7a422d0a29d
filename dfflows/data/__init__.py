"""Datasets (`input_pipeline`, which registers the TFDS builders `mnist_embedded` and
`mnist_idx`), IDX files (`idx`) and batching (`batching`, which needs no TensorFlow)."""
