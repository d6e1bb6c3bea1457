"""The layers of the C++ core, as docs/architecture.md draws them: no source includes a header
of a layer above its own, and the Python bindings call no sweep directly (they convert, and
call the core's front ends)."""

from __future__ import annotations

import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
SRC = ROOT / "cpp" / "src"
INCLUDE = ROOT / "cpp" / "include" / "tapegrad"

# table < records < scalars < tensors and their ops (one layer) < sweeps < front ends
HEADER_LAYER = {
    "tapegrad/ops.def": 0, "tapegrad/op.hpp": 0, "tapegrad/rules.hpp": 0, "tapegrad/version.hpp": 0,
    "tapegrad/half.hpp": 0,
    "tapegrad/tape.hpp": 1,
    "tapegrad/var.hpp": 2, "tapegrad/dual.hpp": 2,
    "tapegrad/tensor.hpp": 3, "tapegrad/sweep.hpp": 3,
    "tapegrad/functional.hpp": 5, "tapegrad/leaf.hpp": 5, "tapegrad/optim.hpp": 5, "tapegrad/custom.hpp": 5,
    "tapegrad/tapegrad.hpp": 6,
}
FOLDER_LAYER = {"tape": 1, "scalar": 2, "tensor": 3, "ops": 3, "sweep": 4, "optim": 5}
FRONT_ENDS = {"autograd.cpp": 5, "functional.cpp": 5, "custom.cpp": 5, "leaf.cpp": 5}


def layer_of_include(name: str) -> int:
    if name in HEADER_LAYER:
        return HEADER_LAYER[name]
    folder = name.split("/")[0]
    assert folder in FOLDER_LAYER, f"an include of no known layer: {name}"
    return FOLDER_LAYER[folder]


def sources():
    if not SRC.is_dir():
        pytest.skip("the C++ sources are not beside the tests")
    for path in sorted(SRC.rglob("*")):
        if path.suffix in (".cpp", ".hpp"):
            rel = path.relative_to(SRC)
            layer = FOLDER_LAYER[rel.parts[0]] if len(rel.parts) > 1 else FRONT_ENDS[rel.name]
            yield path, layer
    for path in sorted(INCLUDE.iterdir()):
        yield path, HEADER_LAYER[f"tapegrad/{path.name}"]


def test_no_source_includes_a_layer_above_its_own() -> None:
    checked = 0
    for path, layer in sources():
        for name in re.findall(r'^#include "([^"]+)"', path.read_text(), flags=re.M):
            assert layer_of_include(name) <= layer, f"{path.relative_to(ROOT)} (layer {layer}) includes {name}"
            checked += 1
    assert checked > 30


def test_the_bindings_call_no_sweep() -> None:
    bindings = ROOT / "python" / "bindings"
    if not bindings.is_dir():
        pytest.skip("the bindings' sources are not beside the tests")
    sweeps = [r"\.reverse\(", r"accumulate_root_grads", r"recorded_sweep", r"recorded_reverse",
              r"recorded_backward_sweep", r"scalar_tangents", r"recorded_tangents", r"tangent_sweep", r"fold_partials",
              r"for_each_partial"]
    for path in sorted(bindings.glob("*.cpp")):
        text = path.read_text()
        for pattern in sweeps:
            assert not re.search(pattern, text), f"{path.name} calls a sweep ({pattern}) instead of a front end"


def test_no_source_file_of_the_core_or_the_bindings_is_over_700_lines() -> None:
    """A file a newcomer reads whole: the core's sources and headers and the bindings stay
    under 700 lines each (a longer one is split by what it does, as var_type.cpp and
    var_graph.cpp are)."""
    bindings = ROOT / "python" / "bindings"
    if not bindings.is_dir():
        pytest.skip("the sources are not beside the tests")
    files = [p for d in (SRC, INCLUDE, bindings) for p in sorted(d.rglob("*")) if p.suffix in {".cpp", ".hpp", ".def"}]
    assert len(files) > 40
    lines = {str(p.relative_to(ROOT)): len(p.read_text().splitlines()) for p in files}
    long = {name: n for name, n in lines.items() if n > 700}
    assert not long, f"source files over 700 lines: {long}"
