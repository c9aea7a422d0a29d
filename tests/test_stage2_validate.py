"""experiments.stage2 validate's run specs: WORKDIR or WORKDIR@STEP."""
import pytest

from experiments import stage2


def test_a_step_after_the_last_at_sign_is_the_checkpoint():
  assert stage2.workdir_and_step('runs/a') == ('runs/a', None)
  assert stage2.workdir_and_step('runs/a@b/c@2000') == ('runs/a@b/c', 2000)
  with pytest.raises(ValueError, match='must be a number'):
    stage2.workdir_and_step('runs/a@latest')
