#!/usr/bin/env bash
# Installs what the tests need and runs every test: the Python suite (pytest), the C++ suite
# (ctest, also under AddressSanitizer + UBSan) and the C++ example that embeds tapegrad
# through find_package. Needs Python >= 3.9 and a C++17 compiler; run from anywhere.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
jobs=${JOBS:-2}

# From Debian's packages: the C++ test framework (doctest), a CBLAS (OpenBLAS), so that
# the C++ suite tests matmul on a real BLAS as well as on the portable kernel, Graphviz
# (its `dot` program), with which tapegrad.viz renders pictures of the graph, and Chromium
# with its WebDriver, which opens the built docs site to check that its pictures show.
need=()
[ -f /usr/include/doctest/doctest.h ] || need+=(doctest-dev)
ls /usr/include/*/cblas.h /usr/include/cblas.h >/dev/null 2>&1 || need+=(libopenblas-dev)
command -v dot >/dev/null 2>&1 || need+=(graphviz)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
if [ ${#need[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq "${need[@]}"
fi

# Python: a fresh virtual environment with the package (an ordinary, isolated build), the
# test requirements (pytest; PyTorch 2.13 CPU as the oracle; the graphviz package for
# tapegrad.viz; from pyproject's [test]) and the C++ build tools (CMake, Ninja), so that
# nothing but Python and a compiler is assumed.
# Every pip install below (and in the scripts this one calls) keeps to scripts/constraints.txt: the
# bounds of what the tests rely on.
export PIP_CONSTRAINT="$root/scripts/constraints.txt"
python3 -m venv build/test-venv
py=build/test-venv/bin/python
$py -m pip install -q --upgrade pip
$py -m pip install -q ".[test]"
export PATH="$root/build/test-venv/bin:$PATH"

echo "== lint (ruff) and types (mypy --strict on the package)"
ruff check python tests bench scripts docs
mypy

echo "== pytest"
# run from tests/ so that the installed package, not the source tree, is imported;
# pytest's exit code 5 (no tests collected) fails like any other.
(cd tests && "$root/$py" -m pytest -q -p no:cacheprovider)

echo "== docs: mkdocs build --strict (a warning, a broken link, a public name without a summary or a failing example fails it)"
# (not -q: a quiet build logs no warnings, so strict mode would count none and pass)
NO_MKDOCS_2_WARNING=1 mkdocs build --strict -d build/site
echo "== docs: the built pages' pictures, opened in headless Chromium (screenshots in build/docs-screenshots)"
python scripts/check_docs_browser.py build/site build/docs-screenshots

echo "== every other Python the package claims (3.9, 3.10, 3.12, 3.13): wheel + core tests"
bash scripts/test_pythons.sh

echo "== C++ tests (Release)"
cmake -S . -B build/cpp -G Ninja -DCMAKE_BUILD_TYPE=Release -DTAPEGRAD_BLAS=ON \
  -DCMAKE_INSTALL_PREFIX="$root/build/cpp-install" >/dev/null
cmake --build build/cpp -j "$jobs"
ctest --test-dir build/cpp --output-on-failure --no-tests=error -j "$jobs"

echo "== C++ tests under AddressSanitizer + UBSan"
# (the portable matmul kernel here, so that both kernels are tested)
cmake -S . -B build/asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DTAPEGRAD_SANITIZE=ON -DTAPEGRAD_BUILD_BENCH=OFF \
  -DTAPEGRAD_BLAS=OFF >/dev/null
cmake --build build/asan -j "$jobs"
ctest --test-dir build/asan --output-on-failure --no-tests=error -j "$jobs"

echo "== the Python suite's core against an ASan + UBSan build of the extension"
bash scripts/test_asan_python.sh

echo "== C++ threads suite under ThreadSanitizer (tapes on several threads, a shared leaf)"
cmake -S . -B build/tsan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTAPEGRAD_SANITIZE_THREAD=ON \
  -DTAPEGRAD_BUILD_BENCH=OFF -DTAPEGRAD_BLAS=OFF >/dev/null
cmake --build build/tsan -j "$jobs"
TSAN_OPTIONS="halt_on_error=1" ctest --test-dir build/tsan --output-on-failure --no-tests=error

echo "== C++ example through find_package(tapegrad)"
rm -rf build/cpp-install build/example
cmake --install build/cpp >/dev/null
cmake -S examples/cpp -B build/example -G Ninja -DCMAKE_PREFIX_PATH="$root/build/cpp-install" >/dev/null
cmake --build build/example
./build/example/embed

echo "== C++ example through add_subdirectory (tapegrad's tests and benches must not be built)"
rm -rf build/example-subdir
cmake -S examples/cpp -B build/example-subdir -G Ninja -DCMAKE_BUILD_TYPE=Release -DTAPEGRAD_SOURCE_DIR="$root" >/dev/null
if cmake --build build/example-subdir --target help | grep -qE "tapegrad_tests|bench_rosenbrock"; then
  echo "add_subdirectory(tapegrad) also builds tapegrad's tests or benchmarks" >&2
  exit 1
fi
cmake --build build/example-subdir
./build/example-subdir/embed

echo "== all tests passed"
