"""Shared helpers of the experiment scripts: run a config, read its metrics, write results."""
import argparse
import json
import os
import time
from typing import Dict, List, Optional

import jax
import numpy as np

from dfflows import rng, train, visualize
from dfflows.metrics.bpd import per_real_pixel
from dfflows.training import run as run_lib
from dfflows.training.run import Run, saved_config


def real_pixel_factor(workdir: str) -> float:
  """Bits per model dim -> bits per real (unpadded) pixel for the run in `workdir`: the
  model's dims over the real pixels (1024 / 784 for MNIST zero-padded to 32x32)."""
  return per_real_pixel(1.0, saved_config(workdir).data)


def load_run(workdir: str, which: str, step: Optional[int] = None,
             bound_control_variate: bool = False) -> Run:
  """The run in `workdir` at its `which` checkpoint (or saved `step`), its full bound read with
  the Gaussian control variate if `bound_control_variate` (`eval.bound_control_variate`)."""
  config = saved_config(workdir)
  config.eval.bound_control_variate = bound_control_variate
  return run_lib.load_run(workdir, which, config, step)


def estimator_draws(run: Run, images: np.ndarray, draws: int) -> np.ndarray:
  """`draws` batch means of the run's one-sample bound estimate (`model.eval_bpd`, EMA
  params) on `images`, draw i with key i of the EXPERIMENT_ESTIMATES stream."""
  key = rng.stream(run.base_key, rng.Stream.EXPERIMENT_ESTIMATES)
  one = jax.jit(run.model.eval_bpd)
  return np.asarray([float(np.mean(one(run.ema_params, images, jax.random.fold_in(key, i))))
                     for i in range(draws)])


def spread(values: np.ndarray) -> Dict[str, float]:
  """Mean, std, median, 10% and 90% quantiles and max of `values`."""
  return {'mean': float(values.mean()), 'std': float(values.std(ddof=1)),
          'median': float(np.median(values)), 'p10': float(np.percentile(values, 10)),
          'p90': float(np.percentile(values, 90)), 'max': float(values.max())}


def run(config, workdir: str) -> Dict:
  """Trains (or resumes) `config` in `workdir`; returns wall time and the metric rows."""
  t0 = time.time()
  train.train_and_evaluate(config, workdir)
  return {'wall_seconds': time.time() - t0,
          'rows': visualize.read_jsonl(os.path.join(workdir, train.METRICS_FILE))}


def series(rows: List[Dict], key: str):
  """(steps, values) of one metric from metrics.jsonl rows."""
  pts = [(r['step'], r[key]) for r in rows if key in r]
  return [p[0] for p in pts], [p[1] for p in pts]


def results_dir() -> str:
  """experiments/results/, created if missing."""
  out = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'results')
  os.makedirs(out, exist_ok=True)
  return out


def _run_spec(spec: str) -> str:
  """A --run value, refused unless it reads NAME=WORKDIR."""
  if '=' not in spec:
    raise argparse.ArgumentTypeError(f'{spec!r}: expected NAME=WORKDIR.')
  return spec


def runs_parser() -> argparse.ArgumentParser:
  """The command line of a per-run experiment: repeated --run NAME=WORKDIR and --out NAME."""
  parser = argparse.ArgumentParser()
  parser.add_argument('--run', action='append', required=True, metavar='NAME=WORKDIR',
                      type=_run_spec)
  parser.add_argument('--out', required=True)
  return parser


def write_json(name: str, data: Dict) -> None:
  """Writes experiments/results/<name>.json."""
  with open(os.path.join(results_dir(), f'{name}.json'), 'w') as f:
    json.dump(data, f, indent=1)


def write_results(name: str, markdown: str, data: Dict) -> None:
  """Writes experiments/results/<name>.md and .json."""
  out = results_dir()
  with open(os.path.join(out, f'{name}.md'), 'w') as f:
    f.write(markdown)
  with open(os.path.join(out, f'{name}.json'), 'w') as f:
    json.dump(data, f, indent=2)
