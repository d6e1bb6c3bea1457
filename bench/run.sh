#!/usr/bin/env bash
# Every benchmark, side by side with the peers, in one run:
#   (a) the demo's training step: tapegrad Var vs micrograd
#   (b) a 20,000-term scalar expression: tapegrad Var vs micrograd vs PyTorch 0-d tensors
#   (c) C++: the Rosenbrock gradient at n = 10^6, recorded and swept from fresh inputs
#   tensors: MLP 784-256-256-10 step, Rosenbrock gradient in array ops (n = 10^6), one small op;
#            tapegrad Tensor vs PyTorch, JAX, HIPS autograd and NumPy (bench_tensor.py)
#   PyTorch-style steps (nn, optim), the same code on tapegrad and PyTorch (bench_torch_face.py)
#   checkpointing and mixed precision: memory and time, against PyTorch (bench_checkpoint.py, bench_amp.py)
# Installs the package (an ordinary release build) and the peers into build/bench-venv.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv build/bench-venv
build/bench-venv/bin/python -m pip install -q --upgrade pip
build/bench-venv/bin/python -m pip install -q ".[bench]"
echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores, $(uname -sr)"
build/bench-venv/bin/python bench/bench_scalar.py "$@"
build/bench-venv/bin/python bench/bench_tensor.py "$@"
build/bench-venv/bin/python bench/bench_hessian.py
build/bench-venv/bin/python bench/bench_torch_face.py
build/bench-venv/bin/python bench/bench_checkpoint.py
build/bench-venv/bin/python bench/bench_amp.py
cmake -S . -B build/bench -G Ninja -DCMAKE_BUILD_TYPE=Release -DTAPEGRAD_BUILD_TESTS=OFF >/dev/null
cmake --build build/bench --target bench_rosenbrock >/dev/null
build/bench/bench/bench_rosenbrock 1000000 20
