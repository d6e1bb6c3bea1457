"""Every code example on the docs site runs here (docs/**/*.md): a page's Python blocks run in
order in one namespace, as a reader runs them, each ``print(expr)  # text`` printing exactly
``text``; each C++ block compiles against the wheel's headers and library and prints what its
``std::printf(...);  // text`` comments say."""

from __future__ import annotations

import pathlib
import shutil

import pytest
from markdown_blocks import blocks, run_cpp
from pagecode import dot_svg, drawn_images, run_page

DOCS = pathlib.Path(__file__).resolve().parent.parent / "docs"
PAGES = sorted(p for p in DOCS.rglob("*.md") if "hooks" not in p.parts)


def test_the_site_has_runnable_examples() -> None:
    assert sum(len(blocks(p, "python")) for p in PAGES) >= 4


@pytest.mark.parametrize("page", [p for p in PAGES if blocks(p, "python")], ids=lambda p: p.stem)
def test_python_examples(page: pathlib.Path, tmp_path: pathlib.Path) -> None:
    """A page's blocks run in order in one namespace, in a folder of their own; each image the
    page shows that is not a file of docs/ is one its code wrote there (a picture drawn by
    tapegrad.viz), as the build makes it (docs/hooks/pictures.py)."""
    run_page(page, tmp_path, str(page.relative_to(DOCS)))
    for image in drawn_images(page, page.read_text()):
        written = tmp_path / image
        assert written.is_file() and written.stat().st_size > 200, f"{page.name}: {image} was not drawn"


CPP = [(p, i) for p in PAGES for i in range(len(blocks(p, "cpp")))]


def test_excerpts_of_the_source_are_the_source() -> None:
    """A ``c++`` block (not compiled: an excerpt, as the table of tensor ops in the architecture
    page) is, line for line, in a file of cpp/."""
    source = "\n".join(p.read_text() for p in sorted((DOCS.parent / "cpp").rglob("*"))
                       if p.suffix in (".hpp", ".cpp", ".def"))
    excerpts = [(p, b) for p in PAGES for b in blocks(p, "c++")]
    assert excerpts, "the architecture page quotes the table of tensor ops"
    for page, code in excerpts:
        assert code in source, f"{page.name}: this excerpt is not in cpp/ any more:\n{code}"


@pytest.mark.parametrize("page,index", CPP, ids=[f"{p.stem}-{i}" for p, i in CPP])
def test_cpp_examples(tmp_path: pathlib.Path, page: pathlib.Path, index: int) -> None:
    run_cpp(blocks(page, "cpp")[index], tmp_path)


DOT = [(p, i) for p in PAGES for i in range(len(blocks(p, "dot")))]


@pytest.mark.parametrize("page,index", DOT, ids=[f"{p.stem}-{i}" for p, i in DOT])
def test_dot_pictures_draw(page: pathlib.Path, index: int) -> None:
    """A ``dot`` block is a picture the build draws with Graphviz (docs/hooks/pictures.py)."""
    if shutil.which("dot") is None:
        pytest.skip("Graphviz's dot program is not installed (scripts/test.sh installs it)")
    svg = dot_svg(blocks(page, "dot")[index]).decode()
    assert "<svg" in svg and svg.count("<g id=\"node") >= 2


def test_quoted_op_table_rows_are_verbatim() -> None:
    """A row of ops.def quoted on a page is copied from it, not paraphrased."""
    ops_def = (DOCS.parent / "cpp" / "include" / "tapegrad" / "ops.def").read_text().splitlines()
    quoted = [line for p in PAGES for block in blocks(p, "") for line in block.splitlines()
              if line.startswith("TAPEGRAD_")]
    assert quoted and all(line in ops_def for line in quoted)


def test_cmake_blocks_are_what_the_example_builds_with() -> None:
    """The CMake lines the site shows are the ones examples/cpp builds with (the test command
    builds that example from the wheel, from an installed build and as a subdirectory)."""
    example = (DOCS.parent / "examples" / "cpp" / "CMakeLists.txt").read_text()
    snippets = [b for p in PAGES for b in blocks(p, "cmake")]
    assert snippets
    for snippet in snippets:
        for line in ("find_package(tapegrad 0.1 REQUIRED)", "tapegrad::tapegrad"):
            assert line in snippet and line in example
