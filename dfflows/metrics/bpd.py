"""Bits per dimension of 8-bit images, from the negative log-density of their dequantisation.

For an 8-bit image x in {0..255}^D and its uniform dequantisation u = (x + e) / 256 with
e ~ U[0,1)^D, u lies in [0,1)^D and

    -log P(x) <= E_e[-log p(u)] - D log 256            (Jensen; Theorem 1 of Ho et al. 2019)

since the density of u' = x + e on [0,256)^D is p(u) / 256^D.  Hence, with
NLL(u) = -log p(u) in nats for u in [0,1)^D,

    bits/dim = (NLL(u) + D log 256) / (D log 2) = NLL(u) / (D log 2) + 8.

For a DiffFlow, NLL(u) <= -log|det df/du| + L_vlb(f(u)); for the flow-only model
NLL(u) = -log|det df/du| - log N(f(u); 0, I) exactly; for the pixel-space DDPM the
discretised decoder gives -log P(x) directly and bits/dim = L_vlb / (D log 2).

Two units: these are bits per *model dim* (D = image_size^2 * channels, 1,024 for MNIST
zero-padded to 32x32). Published MNIST figures are bits per *real pixel* (784), the same
total bits over the unpadded pixel count: `per_real_pixel`.

A leaf of the package: it imports only jax, ml_collections and the dataset catalog, so every
layer (models, diffusion, training, the run-level metrics, experiments) may import it.
"""
import math

import jax.numpy as jnp
import ml_collections

from dfflows.data.catalog import DATASETS, NATIVE_SHAPES, ZERO_PADDED, center_padding

LOG2 = math.log(2.0)


def continuous_nats_to_bpd(nll_nats: jnp.ndarray, num_dims: int, num_bits: int = 8) -> jnp.ndarray:
  """Bits/dim of 8-bit data from the NLL (nats) of its dequantisation in [0,1)^D."""
  return (nll_nats + num_dims * num_bits * LOG2) / (num_dims * LOG2)


def discrete_nats_to_bpd(nll_nats: jnp.ndarray, num_dims: int) -> jnp.ndarray:
  """Bits/dim from a discrete NLL (nats) of the 8-bit image itself."""
  return nll_nats / (num_dims * LOG2)


def model_dims(data_config: ml_collections.ConfigDict) -> int:
  """Dims the model sees per image: image_size^2 * channels."""
  return data_config.image_size**2 * data_config.channels


def real_pixel_count(data_config: ml_collections.ConfigDict) -> int:
  """Pixel values of one image before zero-padding: the dims of the model that carry data.

  MNIST's 28x28x1 digits are zero-padded to image_size, so 784 of them are real (an
  image_size that cannot center-pad them is refused, as by `load_split`); CIFAR-10 (native
  32x32x3) and CelebA (cropped and resized to image_size) are not padded, so all
  image_size^2 * channels are real.
  """
  name, size = data_config.name, data_config.image_size
  if name not in NATIVE_SHAPES:
    raise ValueError(f'Unknown dataset {name!r}; known datasets: {", ".join(DATASETS)}.')
  if name in ZERO_PADDED:
    height, width, channels = NATIVE_SHAPES[name]
    center_padding(height, size, name)  # Raises where `load_split` cannot pad.
    return height * width * channels
  return model_dims(data_config)


def per_real_pixel(bpd, data_config: ml_collections.ConfigDict):
  """Bits per real (unpadded) pixel from bits per model dim: bpd * model dims / real pixels.

  Both divide the same total bits -log2 P(x) of an image; only the divisor differs (for
  MNIST zero-padded 28x28 -> 32x32: 1,024 model dims, 784 real pixels, a factor 1.306).
  The model's figure bounds -log2 P(real, padding = 0), and since a padding pixel cannot
  cost negative bits, P(real) >= P(real, padding = 0): the same total is a valid upper
  bound on -log2 P(real) per real pixel, comparable with published MNIST bits/dim.
  Linear, so it also converts standard errors; works on floats and arrays.
  """
  return bpd * (model_dims(data_config) / real_pixel_count(data_config))
