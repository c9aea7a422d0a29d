"""The train step, models, config checks and benchmarks import without TensorFlow, TFDS or clu.

GPU machines often have JAX but not TensorFlow (too large to carry as a wheel);
`benchmarks/bench_train.py` must run there, so its imports must not need them. The config
checks read their choice tuples from light modules, not from the input pipeline (TFDS) or
the Inception model. (Where TensorFlow is installed, distrax's TFP-on-JAX still imports it
for docstrings, but nothing needs it.)
"""
import subprocess
import sys

from tests.helpers import REPO_ROOT

BLOCKED = ('tensorflow', 'tensorflow_datasets', 'clu', 'tf_keras')
SCRIPT = f'''
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
  def find_spec(self, name, path, target=None):
    if name.split('.')[0] in {BLOCKED!r}:
      raise ImportError('blocked ' + name)
sys.meta_path.insert(0, Block())
import dfflows.training.trainer, dfflows.models.build, dfflows.data.batching, dfflows.flows
import dfflows.training.config_checks
assert 'dfflows.metrics.inception' not in sys.modules, 'the Inception model was imported'
sys.path.insert(0, 'benchmarks')
import bench_train
print('imported')
'''


def test_train_step_models_and_benchmark_import_without_tensorflow_or_clu():
  proc = subprocess.run([sys.executable, '-c', SCRIPT], cwd=REPO_ROOT, capture_output=True,
                        text=True, timeout=300)
  assert proc.returncode == 0 and 'imported' in proc.stdout, proc.stderr[-3000:]


def test_the_blocker_works():
  """The same script fails when a blocked package is imported (so the test above can fail)."""
  script = SCRIPT.replace('import dfflows.training.trainer', 'import dfflows.train, dfflows.training.trainer')
  proc = subprocess.run([sys.executable, '-c', script], cwd=REPO_ROOT, capture_output=True,
                        text=True, timeout=300)
  assert proc.returncode != 0 and 'blocked' in proc.stderr
