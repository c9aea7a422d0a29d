"""Input checks shared by the flow layers."""
import jax


def check_nhwc(x: jax.Array, layer: str) -> None:
  """Raises ValueError unless `x` is a batched NHWC array [B, H, W, C]."""
  if x.ndim != 4:
    raise ValueError(
        f'{layer} expects a batched NHWC array [B, H, W, C]; got shape {x.shape}.')
