#!/usr/bin/env bash
# GPU benchmark: train-step images/s, compile time, step memory and sampling time for the
# thesis-sized MNIST and CIFAR10 configs and the MNIST baselines. Fits in 10 minutes on one
# H200 (run from the repository root; installs the CUDA extra first).
#
#   bash benchmarks/gpu.sh            # fp32 (the configs' precision)
#
# dfflows trains in float32 only; there is no bf16 switch yet, so no bf16 row is reported.
# conv_impl=xla: the custom-VJP conv is a CPU optimisation (cuDNN is fast on its own).
set -euo pipefail
python -m pip install -q -e '.[cuda12]'
python -c 'import jax; print(jax.devices())'
export PYTHONPATH=.
timeout 270 python benchmarks/bench_train.py --configs mnist,mnist_nsf,mnist_ddpm \
    --steps 20 --sample_steps 1000,100 --conv_impl xla
timeout 240 python benchmarks/bench_train.py --configs cifar10 \
    --steps 20 --sample_steps 1000,100 --conv_impl xla
