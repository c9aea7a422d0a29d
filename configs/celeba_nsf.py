"""Flow-only NSF baseline on CelebA (thesis Table 5.3: 80 flow steps, 100 epochs)."""
from configs import celeba


def get_config():
  """Returns the CelebA NSF baseline config (4 levels x 20 steps)."""
  config = celeba.get_config()
  config.model.kind = 'flow'
  config.flow.num_steps = 20
  return config
