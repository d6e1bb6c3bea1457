"""Every code example on the docs site runs here (docs/**/*.md): a page's Python blocks run in
order in one namespace, as a reader runs them, each ``print(expr)  # text`` printing exactly
``text``; each C++ block compiles against the wheel's headers and library and prints what its
``std::printf(...);  // text`` comments say."""

from __future__ import annotations

import pathlib
from typing import Any, Dict

import pytest
from markdown_blocks import blocks, run_cpp, run_python

DOCS = pathlib.Path(__file__).resolve().parent.parent / "docs"
PAGES = sorted(p for p in DOCS.rglob("*.md") if "hooks" not in p.parts)


def test_the_site_has_runnable_examples() -> None:
    assert sum(len(blocks(p, "python")) for p in PAGES) >= 4


@pytest.mark.parametrize("page", [p for p in PAGES if blocks(p, "python")], ids=lambda p: p.stem)
def test_python_examples(page: pathlib.Path) -> None:
    namespace: Dict[str, Any] = {"__name__": f"docs.{page.stem}"}
    for i, code in enumerate(blocks(page, "python")):
        run_python(code, f"{page.relative_to(DOCS)} python block {i}", namespace)


CPP = [(p, i) for p in PAGES for i in range(len(blocks(p, "cpp")))]


@pytest.mark.parametrize("page,index", CPP, ids=[f"{p.stem}-{i}" for p, i in CPP])
def test_cpp_examples(tmp_path: pathlib.Path, page: pathlib.Path, index: int) -> None:
    run_cpp(blocks(page, "cpp")[index], tmp_path)


def test_quoted_op_table_rows_are_verbatim() -> None:
    """A row of ops.def quoted on a page is copied from it, not paraphrased."""
    ops_def = (DOCS.parent / "cpp" / "include" / "tapegrad" / "ops.def").read_text().splitlines()
    quoted = [line for p in PAGES for block in blocks(p, "") for line in block.splitlines()
              if line.startswith("TAPEGRAD_")]
    assert quoted and all(line in ops_def for line in quoted)
