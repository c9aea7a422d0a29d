"""Sample grids and training curves written into a run's workdir."""
import json
import math
import os
from typing import Dict, List

import matplotlib
matplotlib.use('Agg')
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
import numpy as np
from PIL import Image


def image_grid(images: np.ndarray, pad: int = 2, cols: int = 0) -> np.ndarray:
  """Tiles uint8 images [N, H, W, C] into one [rows*(H+pad), cols*(W+pad), C] image."""
  n, h, w, c = images.shape
  cols = cols or math.ceil(math.sqrt(n))
  rows = math.ceil(n / cols)
  grid = np.zeros((rows * (h + pad) + pad, cols * (w + pad) + pad, c), np.uint8)
  for i, img in enumerate(images):
    r, q = divmod(i, cols)
    grid[pad + r * (h + pad):pad + r * (h + pad) + h, pad + q * (w + pad):pad + q * (w + pad) + w] = img
  return grid


def save_image_grid(images: np.ndarray, path: str) -> None:
  """Writes a PNG grid of uint8 images [N, H, W, C] (C = 1 or 3)."""
  grid = image_grid(np.asarray(images))
  os.makedirs(os.path.dirname(path) or '.', exist_ok=True)
  Image.fromarray(grid[..., 0] if grid.shape[-1] == 1 else grid).save(path)


def save_trajectory_strip(z: np.ndarray, x: np.ndarray, path: str) -> None:
  """Writes a strip of reverse trajectories: per sample a row of z_t and a row of f^-1(z_t).

  z: float latents [frames, num, H, W, C] (shown as clip((z + 3) / 6) in gray);
  x: uint8 images of the same shape. Columns run from z_T (left) to z0 and x (right).
  """
  z, x = np.asarray(z), np.asarray(x)
  z_img = (np.clip((z + 3.) / 6., 0., 1.) * 255).astype(np.uint8)
  frames, num = x.shape[:2]
  rows = [img[:, i] for i in range(num) for img in (z_img, x)]  # each [frames, H, W, C]
  strip = image_grid(np.concatenate(rows), cols=frames)
  c = x.shape[-1]
  os.makedirs(os.path.dirname(path) or '.', exist_ok=True)
  Image.fromarray(strip[..., 0] if c == 1 else strip).save(path)


def read_jsonl(path: str) -> List[Dict]:
  """Reads a JSON-lines file (one dict a line); missing file -> []."""
  if not os.path.exists(path):
    return []
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]


def plot_bpd(metrics_path: str, out_path: str) -> None:
  """Plots train and eval bits/dim against step from a metrics.jsonl file."""
  rows = read_jsonl(metrics_path)
  fig, ax = plt.subplots(figsize=(6, 4))
  for key, label in (('train/bpd', 'train batch (one-sample bound estimate)'),
                     ('eval/bpd', 'test, EMA params (one-sample bound estimate)')):
    pts = [(r['step'], r[key]) for r in rows if key in r]
    if pts:
      ax.plot(*zip(*pts), marker='.' if key.startswith('eval') else None, label=label)
  ax.set_xlabel('step')
  ax.set_ylabel('bits per model dim')  # metrics.jsonl's *_per_real_pixel: x dims / real pixels.
  ax.grid(alpha=0.3)
  ax.legend()
  fig.tight_layout()
  fig.savefig(out_path, dpi=100)
  plt.close(fig)
