#!/usr/bin/env bash
# Every CPython that pyproject's requires-python claims, besides the main one of
# scripts/test.sh: builds the wheel (an ordinary, isolated build) into a fresh virtual
# environment of that Python and runs the core pytest subset there. The interpreters come
# from pyenv (as on the CI machines); TAPEGRAD_PYTHONS overrides the list.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
export PIP_CONSTRAINT="${PIP_CONSTRAINT:-$root/scripts/constraints.txt}"  # the tested bounds
versions=${TAPEGRAD_PYTHONS:-"3.9 3.10 3.12 3.13"}
# what runs everywhere (no PyTorch there: its oracle tests skip; the main run has them)
core="test_var.py test_tensor.py test_tensor_autograd.py test_tensor_ops.py test_forward.py test_functional.py
      test_higher_order.py test_hardening.py test_demo.py test_stub.py"

find_python() {
  local v=$1 p
  for p in "$(command -v "python$v" 2>/dev/null || true)" "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$v".*/bin/python"$v"; do
    if [ -n "$p" ] && [ -x "$p" ] && "$p" -c "import sys; assert sys.version_info[:2] == tuple(map(int, '$v'.split('.')))" 2>/dev/null; then
      echo "$p"
      return
    fi
  done
  echo "no Python $v found (pyenv install $v, or set TAPEGRAD_PYTHONS)" >&2
  exit 1
}

for v in $versions; do
  py=$(find_python "$v")
  echo "== Python $v ($py): build the wheel, run the core tests"
  venv=build/py$v-venv
  "$py" -m venv --clear "$venv"
  "$venv/bin/python" -m pip install -q --upgrade pip
  "$venv/bin/python" -m pip install -q . pytest
  # shellcheck disable=SC2086
  (cd tests && "$root/$venv/bin/python" -m pytest -q -p no:cacheprovider $core)
done
