#!/usr/bin/env bash
# The Python suite's core against an AddressSanitizer + UBSan build of the extension: the
# bindings and the core as Python drives them (conversions, errors, threads, fuzzers), where
# the C++ suite alone does not reach. Called by scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
export PIP_CONSTRAINT="${PIP_CONSTRAINT:-$root/scripts/constraints.txt}"  # the tested bounds
venv=build/asan-venv
python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q --upgrade pip
"$venv/bin/python" -m pip install -q numpy pytest
# -O1 keeps the tests quick; the sanitizers need no more
"$venv/bin/python" -m pip install -q . -C build-dir=build/asan-py -C cmake.build-type=RelWithDebInfo \
  -C cmake.define.TAPEGRAD_SANITIZE=ON -C cmake.define.CMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g"
asan=$(g++ -print-file-name=libasan.so)
ubsan=$(g++ -print-file-name=libubsan.so)
core="test_var.py test_tensor.py test_tensor_autograd.py test_tensor_ops.py test_forward.py test_functional.py
      test_higher_order.py test_hardening.py test_threads.py test_memory.py"
# Python itself is not instrumented: the sanitizer runtimes are preloaded; CPython's own
# allocations are not leaks of ours, and impossible sizes must fail as MemoryError. The two
# tests that measure the process's RSS are left out: under ASan it holds freed memory in
# quarantine (the same loops run here with every other check of test_memory.py).
# shellcheck disable=SC2086
(cd tests && LD_PRELOAD="$asan:$ubsan" ASAN_OPTIONS="detect_leaks=0:allocator_may_return_null=1" \
  UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1" "$root/$venv/bin/python" -m pytest -q -p no:cacheprovider \
  -k "not test_training_loop_memory_is_flat and not test_training_loop_releasing_the_loss_clears_the_tape_every_step" \
  $core)
