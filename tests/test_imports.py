"""The train step, models, config checks and benchmarks import without TensorFlow, TFDS or clu;
the metrics' formulas import nothing of dfflows but the dataset catalog; no module imports
from a higher layer (LAYERS).

GPU machines often have JAX but not TensorFlow (too large to carry as a wheel);
`benchmarks/bench_train.py` must run there, so its imports must not need them. The config
checks read their choice tuples from light modules, not from the input pipeline (TFDS) or
the Inception model. (Where TensorFlow is installed, distrax's TFP-on-JAX still imports it
for docstrings, but nothing needs it.)
"""
import ast
import pathlib
import subprocess
import sys
from typing import Set

from tests.helpers import REPO_ROOT

BLOCKED = ('tensorflow', 'tensorflow_datasets', 'clu', 'tf_keras')
BLOCK = f'''
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
  def find_spec(self, name, path, target=None):
    if name.split('.')[0] in {BLOCKED!r}:
      raise ImportError('blocked ' + name)
sys.meta_path.insert(0, Block())
'''
SCRIPT = BLOCK + '''
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


LEAF_SCRIPT = BLOCK + '''
import dfflows.metrics.bpd, dfflows.metrics.stats
loaded = sorted(m for m in sys.modules if m.startswith('dfflows'))
print(loaded)
'''
LEAF_MODULES = ['dfflows', 'dfflows.data', 'dfflows.data.catalog', 'dfflows.metrics',
                'dfflows.metrics.bpd', 'dfflows.metrics.stats']


def test_the_metrics_formulas_import_no_tensorflow_and_no_other_dfflows_layer():
  proc = subprocess.run([sys.executable, '-c', LEAF_SCRIPT], cwd=REPO_ROOT, capture_output=True,
                        text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert proc.stdout.strip() == repr(LEAF_MODULES)


# Layers of dfflows, lowest first: a module imports only from its own layer or lower ones.
LAYERS = (
    ('dfflows.checks', 'dfflows.rng', 'dfflows.machine', 'dfflows.visualize',
     'dfflows.default_config', 'dfflows.data'),
    ('dfflows.nets',),
    ('dfflows.metrics', 'dfflows.flows'),
    ('dfflows.diffusion',),
    ('dfflows.models',),
    ('dfflows.training',),
    ('dfflows.train', 'dfflows.run_metrics', 'dfflows.console'),
    ('dfflows.main', 'dfflows.evaluate'),
)


def layer(module: str) -> int:
  """The index in LAYERS of the module `module` (dotted)."""
  for i, prefixes in enumerate(LAYERS):
    if any(module == p or module.startswith(p + '.') for p in prefixes):
      return i
  raise KeyError(module)


def imported_modules(path: pathlib.Path) -> Set[str]:
  """The dfflows modules (or packages) that a source file imports, at any depth."""
  found = set()
  for node in ast.walk(ast.parse(path.read_text())):
    if isinstance(node, ast.Import):
      found |= {a.name for a in node.names}
    elif isinstance(node, ast.ImportFrom) and node.module:
      found |= {f'{node.module}.{a.name}' for a in node.names}
  return {m for m in found if m.startswith('dfflows.')}


def test_no_module_imports_from_a_higher_layer():
  root = pathlib.Path(REPO_ROOT)
  upward = []
  for path in sorted((root / 'dfflows').rglob('*.py')):
    module = '.'.join(path.relative_to(root).with_suffix('').parts).removesuffix('.__init__')
    upward += [f'{module} -> {m}' for m in imported_modules(path) if layer(m) > layer(module)]
  assert not upward, upward


def test_the_layer_check_sees_an_upward_import():
  assert layer('dfflows.metrics.bpd') < layer('dfflows.models.interface')
  assert layer('dfflows.run_metrics.likelihood') > layer('dfflows.models.interface')
