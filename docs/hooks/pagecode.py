"""The code of a Markdown page, as the docs build and the tests run it.

A page's fenced code blocks, in order, with their info string (``python``, ``cpp``, ``dot``,
``""``). A Python block is checked by its ``print(expr)  # text`` lines: each must print exactly
``text``. A Python block followed by the line ``<!-- output -->`` is one whose output the page
shows instead: the build runs it and puts what it printed (measured timings, say) under it, so
its prints need no expected text. ``run_page`` runs a page's Python blocks in order in one
namespace, as a reader runs them, in a folder of its own: files they write there (the pictures
``tapegrad.viz`` renders) are what the page's images show. Used by ``hooks/pictures.py`` (the
build) and by ``tests/markdown_blocks.py`` (the test suite).
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
from contextlib import redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional

PRINT_CHECK = re.compile(r"^\s*print\((.*)\)\s*#\s*(.+?)\s*$")
OUTPUT_MARK = "<!-- output -->"
IMAGE = re.compile(r"!\[[^\]]*\]\(([^)\s]+)\)")


@dataclass
class Block:
    info: str  #: the fence's info string: "python", "cpp", "dot", "" ...
    code: str
    shows_output: bool  #: followed by ``<!-- output -->``: the build shows what it printed
    end_line: int  #: the index of the closing fence's line


def page_blocks(text: str, lang: Optional[str] = None) -> List[Block]:
    """The fenced code blocks of a page (whose info string is ``lang``, when given)."""
    lines = text.splitlines(keepends=True)
    found: List[Block] = []
    current: Optional[List[str]] = None
    info = ""
    for i, line in enumerate(lines):
        if line.startswith("```"):
            if current is None:
                current, info = [], line[3:].strip()
            else:
                rest = [x.strip() for x in lines[i + 1:] if x.strip()][:1]
                found.append(Block(info, "".join(current), rest == [OUTPUT_MARK], i))
                current = None
        elif current is not None:
            current.append(line)
    return [b for b in found if lang is None or b.info == lang]


def run_block(block: Block, name: str, namespace: Dict[str, Any]) -> str:
    """Runs one Python block in ``namespace``; returns what it printed. Its
    ``print(...)  # text`` lines must print exactly those texts (unless it shows its output)."""
    expected = [m.group(2) for line in block.code.splitlines() if (m := PRINT_CHECK.match(line))]
    if not block.shows_output and not expected:
        raise AssertionError(f"{name}: each example shows what it prints (a `print(x)  # text` line), "
                             f"or is followed by {OUTPUT_MARK}")
    out = io.StringIO()
    with redirect_stdout(out):
        exec(compile(block.code, name, "exec"), namespace)
    printed = out.getvalue()
    if not block.shows_output and printed.splitlines() != expected:
        raise AssertionError(f"{name} printed\n{printed}\nwhere the page says\n" + "\n".join(expected))
    return printed


def run_page(path: Path, cwd: Path, label: str = "") -> List[str]:
    """Runs the page's Python blocks in order in one namespace, in the folder ``cwd``; returns
    what each printed."""
    namespace: Dict[str, Any] = {"__name__": f"docs.{path.stem}"}
    outputs: List[str] = []
    text = path.read_text()
    old = os.getcwd()
    os.chdir(cwd)
    try:
        for i, block in enumerate(page_blocks(text, "python")):
            outputs.append(run_block(block, f"{label or path.name} python block {i}", namespace))
    finally:
        os.chdir(old)
    return outputs


def drawn_images(path: Path, text: str) -> List[str]:
    """The images the page shows that are not files of docs/: the ones its code writes."""
    return [i for i in IMAGE.findall(text) if not (path.parent / i).exists()]


def dot_svg(source: str) -> bytes:
    """Graphviz's SVG drawing of a DOT text (an error names the program when it is missing)."""
    dot = shutil.which("dot")
    if dot is None:
        raise RuntimeError("the docs draw their dot pictures with Graphviz's `dot` program: apt-get install graphviz")
    return subprocess.run([dot, "-Tsvg"], input=source.encode(), capture_output=True, check=True).stdout
