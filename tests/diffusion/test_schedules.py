"""Tests for dfflows.diffusion.schedules."""
import math

import numpy as np
import pytest

from dfflows.diffusion import schedules


@pytest.mark.parametrize('num_timesteps', [30, 500, 1000])
def test_linear_schedule_matches_scaled_ddpm(num_timesteps):
  betas = schedules.get_beta_schedule('linear', num_timesteps)
  scale = 1000 / num_timesteps
  assert betas.dtype == np.float64 and betas.shape == (num_timesteps,)
  np.testing.assert_allclose(betas[0], 1e-4 * scale)
  np.testing.assert_allclose(betas[-1], 0.02 * scale)
  np.testing.assert_allclose(np.diff(betas), (0.02 - 1e-4) * scale / (num_timesteps - 1))


@pytest.mark.parametrize('num_timesteps', [20, 500])
def test_cosine_schedule_alpha_bar(num_timesteps):
  betas = schedules.get_beta_schedule('cosine', num_timesteps)
  f = lambda u: math.cos((u + 0.008) / 1.008 * math.pi / 2) ** 2
  expected = np.array([f((t + 1) / num_timesteps) / f(0.0) for t in range(num_timesteps)])
  abar = np.cumprod(1 - betas)
  # The last beta is clipped at 0.999; all earlier alpha-bars follow the cosine.
  np.testing.assert_allclose(abar[:-1], expected[:-1], rtol=1e-10)
  assert betas[-1] == pytest.approx(0.999)
  assert np.all(betas > 0) and np.all(betas <= 0.999)


def test_unknown_schedule_and_short_linear_raise():
  with pytest.raises(ValueError, match='num_timesteps > 20'):
    schedules.get_beta_schedule('linear', 20)
  with pytest.raises(ValueError, match='sigmoid'):
    schedules.get_beta_schedule('sigmoid', 10)


def test_space_timesteps_single_section():
  assert schedules.space_timesteps(10, 10) == list(range(10))
  assert schedules.space_timesteps(10, 1) == [0]
  # Stride (10 - 1) / 2 = 4.5, rounded as Python rounds.
  assert schedules.space_timesteps(10, 3) == [0, 4, 9]
  steps = schedules.space_timesteps(1000, 50)
  assert len(steps) == 50 and steps[0] == 0 and steps[-1] == 999


def test_space_timesteps_sections_and_ddim():
  steps = schedules.space_timesteps(300, [10, 15, 20])
  assert len(steps) == 45 and steps == sorted(steps)
  assert sum(s < 100 for s in steps) == 10 and sum(s >= 200 for s in steps) == 20
  assert schedules.space_timesteps(300, '10,15,20') == steps
  assert schedules.space_timesteps(1000, 'ddim50') == list(range(0, 1000, 20))


def test_space_timesteps_errors():
  with pytest.raises(ValueError, match='section'):
    schedules.space_timesteps(10, 11)
  with pytest.raises(ValueError, match='DDIM'):
    schedules.space_timesteps(10, 'ddim7')
