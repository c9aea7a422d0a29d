"""Flow-only NSF baseline on MNIST (thesis Table 5.4: 48 flow steps, 300 epochs)."""
from configs import mnist


def get_config():
  """Returns the MNIST NSF baseline config (3 levels x 16 steps)."""
  config = mnist.get_config()
  config.model.kind = 'flow'
  config.flow.num_steps = 16
  return config
