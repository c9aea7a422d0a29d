"""The signal and noise of a set of gradients (experiments/gradient_noise.py)."""
import numpy as np

from experiments import gradient_noise


def test_spread_recovers_the_signal_and_noise_of_known_draws():
  rng = np.random.default_rng(0)
  mean = np.array([3.0, -1.0, 0.5, 0.0])
  scale = np.array([0.5, 2.0, 1.0, 0.1])
  out = [gradient_noise.spread(mean + scale * rng.normal(size=(8, 4))) for _ in range(4000)]
  signal = np.mean([o['signal'] for o in out])
  noise = np.mean([o['noise'] for o in out])
  np.testing.assert_allclose(signal, np.sum(mean**2), rtol=0.01)
  np.testing.assert_allclose(noise, np.sum(scale**2), rtol=0.02)
