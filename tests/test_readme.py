"""The README's Python example runs as written and its printed shape is right."""
import contextlib
import io
import os
import re

from tests.helpers import REPO_ROOT


def test_readme_python_example_runs():
  with open(os.path.join(REPO_ROOT, 'README.md')) as f:
    blocks = re.findall(r'```python\n(.*?)```', f.read(), re.S)
  assert blocks, 'README has no python example'
  out = io.StringIO()
  with contextlib.redirect_stdout(out):
    exec(compile(blocks[0], 'README.md', 'exec'), {})  # pylint: disable=exec-used
  assert out.getvalue().strip().splitlines()[-1] == '(8,)'
