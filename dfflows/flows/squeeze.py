"""2x2 space-to-depth squeeze (RealNVP/Glow), a volume-preserving reshape (log-det 0)."""
import jax

from dfflows.checks import check_nhwc


def squeeze(x: jax.Array) -> jax.Array:
  """Maps [B, H, W, C] to [B, H/2, W/2, 4C]; channel index (2*dh + dw) * C + c."""
  check_nhwc(x, 'squeeze')
  b, h, w, c = x.shape
  if h % 2 or w % 2:
    raise ValueError(f'squeeze needs even H and W; got shape {x.shape}.')
  x = x.reshape(b, h // 2, 2, w // 2, 2, c).transpose(0, 1, 3, 2, 4, 5)
  return x.reshape(b, h // 2, w // 2, 4 * c)


def unsqueeze(x: jax.Array) -> jax.Array:
  """Inverse of `squeeze`: maps [B, H, W, 4C] to [B, 2H, 2W, C]."""
  check_nhwc(x, 'unsqueeze')
  b, h, w, c4 = x.shape
  if c4 % 4:
    raise ValueError(f'unsqueeze needs C divisible by 4; got shape {x.shape}.')
  c = c4 // 4
  x = x.reshape(b, h, w, 2, 2, c).transpose(0, 1, 3, 2, 4, 5)
  return x.reshape(b, 2 * h, 2 * w, c)

