"""Every code example in the README is run here.

Python blocks run as they are; a line ``print(expr)  # text`` must print exactly ``text``.
The C++ block is compiled against the headers and library that the wheel carries, and run.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess

import pytest
from markdown_blocks import blocks as page_blocks
from markdown_blocks import run_cpp, run_python

import tapegrad as tg

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"


def blocks(lang: str) -> list[str]:
    """The README's fenced code blocks whose info string is `lang` ("" for plain fences)."""
    return page_blocks(README, lang)


def test_the_readme_has_examples() -> None:
    assert len(blocks("python")) >= 3
    assert len(blocks("cpp")) >= 1


@pytest.mark.parametrize("index", range(len(blocks("python"))))
def test_python_example(index: int) -> None:
    run_python(blocks("python")[index], f"README.md python block {index}", {})


@pytest.mark.parametrize("index", range(len(blocks("cpp"))))
def test_cpp_example(tmp_path: pathlib.Path, index: int) -> None:
    """Each C++ block compiles against the wheel's headers and library, exits 0 and prints what
    its ``std::printf(...);  // text`` comments say."""
    run_cpp(blocks("cpp")[index], tmp_path)


def test_quoted_op_table_rows_are_verbatim() -> None:
    """The README's excerpt of the op table is copied from ops.def, not paraphrased."""
    ops_def = (README.parent / "cpp" / "include" / "tapegrad" / "ops.def").read_text().splitlines()
    excerpt = [line for line in blocks("")[0].splitlines() if line.strip()]
    assert excerpt and all(line in ops_def for line in excerpt)


def test_cmake_snippet_is_what_the_example_builds_with() -> None:
    example = (README.parent / "examples" / "cpp" / "CMakeLists.txt").read_text()
    snippet = blocks("cmake")[0]
    assert "find_package(tapegrad 0.1 REQUIRED)" in snippet and "find_package(tapegrad 0.1 REQUIRED)" in example
    assert "tapegrad::tapegrad" in snippet and "tapegrad::tapegrad" in example


def test_the_wheels_cmake_package_builds_the_example(tmp_path: pathlib.Path) -> None:
    cmake_dir = pathlib.Path(tg.get_cmake_dir())
    if not (cmake_dir / "tapegradConfig.cmake").exists():
        pytest.skip("editable install: the wheel's CMake package is not in the package folder")
    cmake = shutil.which("cmake")
    assert cmake, "cmake is needed (scripts/test.sh installs it)"
    example = README.parent / "examples" / "cpp"
    build = tmp_path / "build"
    subprocess.run([cmake, "-S", str(example), "-B", str(build), f"-Dtapegrad_DIR={cmake_dir}",
                    "-DCMAKE_BUILD_TYPE=Release"], check=True, capture_output=True)
    subprocess.run([cmake, "--build", str(build)], check=True, capture_output=True)
    exe = next(p for p in build.rglob("embed*") if p.is_file() and os.access(p, os.X_OK))
    run = subprocess.run([str(exe)], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.splitlines()[0] == "d(x*x)/dx at 3 = 6"
