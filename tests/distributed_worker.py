"""One process of the two-process training test (tests/test_distributed.py).

  python -m tests.distributed_worker PROCESS_ID PORT WORKDIR DATA_DIR OUT_NPZ

Trains tests.helpers.tiny_config (flow-only, which compiles fastest; the data-parallel
machinery is the same for every model kind) with jax.distributed on 127.0.0.1:PORT (two
processes, CPU collectives over gloo); process 0 saves the final params to OUT_NPZ.
"""
import sys

import jax
import numpy as np

from dfflows import train
from tests.helpers import tiny_config


def main(process_id: int, port: int, workdir: str, data_dir: str, out: str) -> None:
  """Runs the training of one process and saves process 0's final params."""
  config = tiny_config('flow')
  config.data.data_dir = data_dir
  config.distributed.enabled = True
  config.distributed.coordinator_address = f'127.0.0.1:{port}'
  config.distributed.num_processes = 2
  config.distributed.process_id = process_id
  state = train.train_and_evaluate(config, workdir)
  leaves = [np.asarray(x) for x in jax.tree.leaves(jax.device_get(state.params))]
  if jax.process_index() == 0:
    np.savez(out, *leaves)
  print(f'process {jax.process_index()} of {jax.process_count()}: '
        f'{jax.local_device_count()} local / {jax.device_count()} global devices, '
        f'step {int(jax.device_get(state.step))}')


if __name__ == '__main__':
  main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5])
