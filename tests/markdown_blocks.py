"""Fenced code blocks of a Markdown page, and the checks every documented example passes: a
Python line ``print(expr)  # text`` must print exactly ``text``; a C++ line
``std::printf(...);  // text`` likewise (tests/test_readme.py, tests/test_docs_examples.py)."""

from __future__ import annotations

import os
import pathlib
import re
import shutil
import subprocess
import sys
from typing import Any, Dict, List

import pytest

import tapegrad as tg

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "docs" / "hooks"))
from pagecode import Block, page_blocks, run_block  # noqa: E402  (the docs build's own reader)

PRINTF_CHECK = re.compile(r"std::printf\(.*//\s*(.+)$")


def blocks(path: pathlib.Path, lang: str) -> List[str]:
    """The fenced code blocks of `path` whose info string is `lang` ("" for plain fences)."""
    return [b.code for b in page_blocks(path.read_text(), lang)]


def run_python(code: str, name: str, namespace: Dict[str, Any], shows_output: bool = False) -> None:
    """Runs a block in `namespace`; its ``print(...)  # text`` lines must print exactly those
    texts (a block whose output the page shows, ``<!-- output -->``, need only run)."""
    run_block(Block("python", code, shows_output, 0), name, namespace)


def run_cpp(code: str, tmp_path: pathlib.Path) -> None:
    """Compiles a block against the wheel's headers and library; it exits 0 and prints what its
    ``std::printf(...);  // text`` comments say."""
    include, lib = pathlib.Path(tg.get_include()), pathlib.Path(tg.get_cmake_dir()).parent.parent
    if not (include / "tapegrad" / "tapegrad.hpp").exists():
        pytest.skip("editable install: the wheel's C++ headers are not in the package folder")
    cxx = os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++")
    assert cxx, "a C++ compiler is needed"
    src = tmp_path / "example.cpp"
    src.write_text(code)
    exe = tmp_path / "example"
    subprocess.run([cxx, "-std=c++17", "-O1", f"-I{include}", str(src), str(lib / "libtapegrad.a"),
                    "-pthread", "-ldl", "-o", str(exe)], check=True)
    run = subprocess.run([str(exe)], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    expected = [m.group(1) for line in code.splitlines() if (m := PRINTF_CHECK.search(line))]
    assert expected and run.stdout.splitlines() == expected
