"""Flow-only NSF baseline at the size of configs/mnist_cpu.py (twice the flow steps)."""
from configs import mnist_cpu


def get_config():
  """Returns the CPU-sized MNIST NSF baseline config."""
  config = mnist_cpu.get_config()
  config.model.kind = 'flow'
  config.flow.num_steps = 8
  return config
