"""Small ResNet that maps the conditioning half of a coupling to its parameters."""
import flax.linen as nn
import jax

from dfflows.nets.conv import Conv


class ResBlock(nn.Module):
  """Norm-free residual block: x + conv(silu(conv(silu(x))))."""
  features: int
  conv_impl: str = 'xla'

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    h = Conv(self.features, (3, 3), impl=self.conv_impl)(nn.silu(x))
    h = Conv(self.features, (3, 3), impl=self.conv_impl)(nn.silu(h))
    return x + h


class Conditioner(nn.Module):
  """3x3 conv -> `num_res_blocks` ResBlocks -> SiLU -> zero-initialised 3x3 conv.

  The output conv starts at zero, so the coupling that uses the output starts at
  (or, for Glow's affine coupling, near) the identity.
  """
  out_channels: int
  hidden_channels: int
  num_res_blocks: int
  conv_impl: str = 'xla'

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    h = Conv(self.hidden_channels, (3, 3), impl=self.conv_impl, name='conv_in')(x)
    for i in range(self.num_res_blocks):
      h = ResBlock(self.hidden_channels, self.conv_impl, name=f'res_{i}')(h)
    return Conv(self.out_channels, (3, 3), impl=self.conv_impl,
                kernel_init=nn.initializers.zeros, bias_init=nn.initializers.zeros,
                name='conv_out')(nn.silu(h))
