"""experiments.stage2 validate's run specs: WORKDIR or WORKDIR@STEP, checked before any work."""
import argparse

import pytest

from experiments import stage2


def test_a_step_after_the_last_at_sign_is_the_checkpoint():
  assert stage2.workdir_and_step('runs/a') == ('runs/a', None)
  assert stage2.workdir_and_step('runs/a@b/c@2000') == ('runs/a@b/c', 2000)
  with pytest.raises(ValueError, match='must be a number'):
    stage2.workdir_and_step('runs/a@latest')


def test_an_unsaved_step_is_refused_before_any_run_is_evaluated(tiny_run, monkeypatch):
  def refuse(*args, **kwargs):
    raise AssertionError('a run was evaluated before the specs were checked')
  monkeypatch.setattr(stage2, 'validation_bpd', refuse)
  args = argparse.Namespace(run=[f'a={tiny_run.workdir}', f'b={tiny_run.workdir}@3'],
                            num_examples=8, control_variate=False)
  with pytest.raises(ValueError, match=r'--run b=.*no checkpoint of step 3 .*saved steps: \[2, 4\]'):
    stage2.validate(args)
