"""Command-line specs of the benchmark and experiment scripts."""
import pytest

from benchmarks import bench_ratio
from experiments import sampling_steps


def test_bench_ratio_arm_keeps_a_tuple_override_whole():
  name, config = bench_ratio.parse_arm(
      'ddpm=default_ddpm:unet.ch=16,unet.ch_mult=(1,2,2),optim.lr=0.001')
  assert name == 'ddpm'
  assert config.model.kind == 'ddpm'
  assert (config.unet.ch, tuple(config.unet.ch_mult), config.optim.lr) == (16, (1, 2, 2), 0.001)


def test_sampling_steps_runs_map_names_to_existing_workdirs(tmp_path):
  a, b = tmp_path / 'a', tmp_path / 'b'
  a.mkdir()
  b.mkdir()
  assert sampling_steps.parse_runs(f'diffflow={a},ddpm={b}') == {'diffflow': str(a),
                                                                 'ddpm': str(b)}
  with pytest.raises(ValueError, match='NAME=WORKDIR'):
    sampling_steps.parse_runs(str(a))
  with pytest.raises(FileNotFoundError, match='does not exist'):
    sampling_steps.parse_runs(f'ddpm={tmp_path / "missing"}')
