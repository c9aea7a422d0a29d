#!/usr/bin/env bash
# GPU benchmark: train-step images/s, compile time, step memory and sampling time for the
# thesis-sized MNIST and CIFAR10 configs (float32 and bfloat16 U-Net compute) and the MNIST
# baselines. Fits in 10 minutes on one H200. Run from the repository root:
#
#   pip install -e '.[cuda12]' && bash benchmarks/gpu.sh      # a machine with internet
#
# On the device tool's H200 (JAX, flax, optax, orbax and chex installed, no internet), first
# run `bash benchmarks/gpu_wheels.sh` here, then carry .whl: this script installs it.
#
# conv_impl=xla: the custom-VJP conv is a CPU optimisation (cuDNN is fast on its own). The
# flow always computes in float32; `unet.dtype=bfloat16` is the U-Net's mixed precision.
set -uo pipefail
export PYTHONPATH=.
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:.
fi
export PYTHONUNBUFFERED=1
python3 -c 'import jax; print("jax", jax.__version__, jax.devices())' || exit 1
B="python3 benchmarks/bench_train.py --conv_impl xla --steps 20"
timeout 200 $B --configs mnist,mnist_nsf,mnist_ddpm --sample_steps 1000,100
timeout 150 $B --configs cifar10 --sample_steps 1000,100
timeout 180 $B --configs mnist,cifar10 --sample_steps 100 --set unet.dtype=bfloat16
