#!/usr/bin/env bash
# Downloads into .whl/ (git-ignored) the wheels that benchmarks/gpu.sh needs on a GPU machine
# that has JAX, flax, optax, orbax and chex but no internet (the device tool's H200 image,
# Python 3.12). The benchmark path imports no TensorFlow, TFDS or clu
# (tests/test_imports.py), so these few pure-Python wheels and dm-tree are all it lacks.
#
#   bash benchmarks/gpu_wheels.sh      # here, with PyPI access; then carry .whl to the machine
set -euo pipefail
mkdir -p .whl
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo /.whl/ >> .git/info/exclude
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
    distrax==0.1.9 tfp-nightly==0.26.0.dev20261027 dm-tree==0.1.10 ml-collections==1.1.0 \
    decorator gast
du -sh .whl && ls .whl
