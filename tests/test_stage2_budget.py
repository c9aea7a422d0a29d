"""The gap-against-budget rows of experiments/stage2.py's `budget`."""
import pytest

from experiments import stage2


def _report(ode: float, bound: float):
  """A `report` output with one seed: the NSF and a 'joint80' arm."""
  diff = lambda m: {'mean_diff_real': m, 'paired_stderr_real': 0.001}
  return {'seeds': {'0': [{'name': 'nsf', 'bound_vs_nsf': diff(0.0)},
                          {'name': 'joint80', 'bound_vs_nsf': diff(bound),
                           'ode_vs_nsf': diff(ode)}]}}


def test_budget_rows_follow_the_minutes_and_keep_each_estimator():
  rows = stage2.budget_gaps({120.0: _report(-0.002, 0.004), 60.0: _report(0.001, 0.007)},
                            'joint80')
  assert [(r['minutes'], r['estimator'], r['gap_real']) for r in rows] == [
      (60.0, 'ODE NLL', 0.001), (60.0, 'full bound', 0.007),
      (120.0, 'ODE NLL', -0.002), (120.0, 'full bound', 0.004)]


def test_budget_names_a_report_without_the_arm():
  with pytest.raises(ValueError, match="60.0-minute report has no run 'frozen80'"):
    stage2.budget_gaps({60.0: _report(0.0, 0.0)}, 'frozen80')
