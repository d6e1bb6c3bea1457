"""Pictures of the graph (tapegrad.viz): the DOT text parsed back and checked, micrograd's own
draw_dot on tg.Value, the options, collapsing, errors, and a rendered PNG's pixels."""

from __future__ import annotations

import random
import re
import shutil
import struct
import sys
import zlib
from typing import Dict, List, Tuple

import numpy as np
import pytest

import tapegrad as tg
from conftest import micrograd_more_ops
from tapegrad import viz

# --- a small DOT reader: what viz.Graph.dot() writes, and graphviz.Digraph.source --------------

NAME = r'(?:"((?:[^"\\]|\\.)*)"|([\w.]+))'  # a quoted or a bare node id
NODE = re.compile(rf"^\s*{NAME}\s*\[(.*)\]\s*;?\s*$")
EDGE = re.compile(rf"^\s*{NAME}\s*->\s*{NAME}\s*;?\s*$")
ATTR = re.compile(r'(\w+)=(?:"((?:[^"\\]|\\.)*)"|([\w.#]+))')


def parse_dot(text: str) -> Tuple[Dict[str, Dict[str, str]], List[Tuple[str, str]]]:
    """(nodes: id -> attributes, edges: (tail, head) in order) of a DOT digraph."""
    lines = text.strip().splitlines()
    assert lines[0].startswith("digraph") and lines[-1].strip() == "}"
    nodes: Dict[str, Dict[str, str]] = {}
    edges: List[Tuple[str, str]] = []
    for line in lines[1:-1]:
        if m := EDGE.match(line):
            edges.append((m.group(1) or m.group(2), m.group(3) or m.group(4)))
        elif (m := NODE.match(line)) and (m.group(1) or m.group(2)) not in ("graph", "node", "edge"):
            nodes[m.group(1) or m.group(2)] = {k: q or bare for k, q, bare in ATTR.findall(m.group(3))}
    return nodes, edges


def record_fields(label: str) -> List[str]:
    """The rows of a record label, ``{ a | b }`` -> ["a", "b"], escapes undone."""
    label = label.strip()
    if label.startswith("{") and label.endswith("}"):
        label = label[1:-1]
    fields = re.split(r"(?<!\\)\|", label)
    lines = [re.sub(r"\\[ln]", "\n", f) for f in fields]  # \l, \n: ends of lines
    return [re.sub(r"\\(.)", r"\1", f).strip(" \n") for f in lines]


def values_and_ops(dot: str) -> Tuple[Dict[str, List[str]], Dict[str, str], List[Tuple[str, str]]]:
    nodes, edges = parse_dot(dot)
    values = {n: record_fields(a["label"]) for n, a in nodes.items() if a.get("shape") == "record"}
    ops = {n: a["label"] for n, a in nodes.items() if a.get("shape") == "ellipse"}
    return values, ops, edges


def has_graphviz() -> bool:
    try:
        import graphviz  # noqa: F401
    except ImportError:
        return False
    return shutil.which("dot") is not None


needs_graphviz = pytest.mark.skipif(not has_graphviz(), reason="needs the graphviz package and the dot program")


# --- Var graphs --------------------------------------------------------------------------------

def test_var_graph_before_backward_has_values_and_ops_but_no_grads() -> None:
    a, b = tg.Value(2.0), tg.Value(-3.0)
    y = (a * b + 1).tanh()
    g = viz.draw(y, names={"a": a, "b": b})
    values, ops, edges = values_and_ops(g.dot())
    assert len(values) == 5 and len(ops) == 3  # a, b, a*b, +1, tanh; the three ops
    assert sorted(ops.values()) == ["*", "+ 1", "tanh"]
    labels = sorted(values.values())
    assert labels == sorted([["a", "data 2.0000"], ["b", "data -3.0000"], ["data -6.0000"], ["data -5.0000"],
                             [f"data {np.tanh(-5.0):.4f}"]])
    assert not g.grads_shown and all("grad" not in f for fs in values.values() for f in fs)
    # each op: an arrow from each operand, one into its result; the chain a, b -> * -> + 1 -> tanh
    by_label = {fs[0]: n for n, fs in values.items()}
    op_of = {label: n for n, label in ops.items()}
    assert len(edges) == 7
    assert (by_label["a"], op_of["*"]) in edges and (by_label["b"], op_of["*"]) in edges
    assert (op_of["*"], by_label["data -6.0000"]) in edges
    assert (by_label["data -6.0000"], op_of["+ 1"]) in edges and (op_of["tanh"], by_label["data -0.9999"]) in edges
    # leaves blue, y orange and bold; the Graph's own nodes say the same
    nodes, _ = parse_dot(g.dot())
    assert nodes[by_label["a"]]["fillcolor"] == viz.LEAF_FILL
    assert nodes[by_label["data -0.9999"]]["fillcolor"] == viz.OUTPUT_FILL
    assert "fillcolor" not in nodes[by_label["data -6.0000"]]
    assert [n.label for n in g.nodes if n.leaf] == ["a | data 2.0000", "b | data -3.0000"]
    assert [n.name for n in g.nodes if n.output] == [by_label["data -0.9999"]]
    assert [(e.tail, e.head) for e in g.edges] == edges


def test_var_graph_after_backward_shows_micrograds_readme_numbers() -> None:
    # micrograd's README example: g = 24.7041, dg/da = 138.8338, dg/db = 645.5773
    a, b, f, g = micrograd_more_ops()
    pic = viz.draw(g, names={"a": a, "b": b})
    assert pic.grads_shown
    values, ops, edges = values_and_ops(pic.dot())
    leaves = sorted(fs for fs in values.values() if fs[0] in ("a", "b"))
    assert leaves == [["a", "data -4.0000", "grad 138.8338"], ["b", "data 2.0000", "grad 645.5773"]]
    assert [n.fields for n in pic.nodes if n.output] == [("data 24.7041", "grad 1.0000")]
    # every box after the backward has data and grad; f = e**2 is drawn with micrograd's '**2'
    assert all(len(fs) == 2 and fs[0].startswith("data ") and fs[1].startswith("grad ")
               for fs in values.values() if fs[0] not in ("a", "b"))
    assert "**2" in ops.values() and "/ 2" in ops.values() and "10 /" in ops.values()
    assert len(values) == pic.records == len(ops) + 2 and len(edges) == len(pic.edges)
    # d(g)/d(f) = 1/2 - 10/f^2 at f = e^2: the box of f reads it
    f_box = next(fs for fs in values.values() if fs[0] == f"data {f.data:.4f}")
    assert f_box[1] == f"grad {0.5 - 10.0 / f.data**2:.4f}"


@pytest.mark.parametrize("expr, label", [
    (lambda x: x + 1, "+ 1"), (lambda x: 1 + x, "1 +"), (lambda x: 2 - x, "2 -"), (lambda x: x * 3, "* 3"),
    (lambda x: x / 2, "/ 2"), (lambda x: 2 / x, "2 /"), (lambda x: x**2, "**2"), (lambda x: 2**x, "2 **"),
    (lambda x: x * x, "*"), (lambda x: x.relu(), "ReLU"), (lambda x: x.exp(), "exp"), (lambda x: -x, "neg"),
    (lambda x: tg.atan2(x, tg.Var(1.0)), "atan2"), (lambda x: x - tg.Var(1.0), "-"), (lambda x: x**0.5, "**0.5"),
])
def test_op_labels_read_as_micrograd_writes_them(expr, label) -> None:
    y = expr(tg.Var(1.5))
    (op,) = [n for n in viz.draw(y).nodes if n.kind == "op"]
    assert op.label == label
    if y._op and label[0].isalpha():
        assert label == y._op  # the names micrograd uses ('ReLU', 'exp', ...)


def test_an_operand_read_twice_has_two_arrows() -> None:
    x = tg.Var(3.0)
    g = viz.draw(x * x)
    values, ops, edges = values_and_ops(g.dot())
    (op,) = ops
    (leaf,) = [n.name for n in g.nodes if n.leaf]
    assert edges.count((leaf, op)) == 2 and len(edges) == 3


def test_a_leaf_is_one_box() -> None:
    x = tg.Var(3.0)
    g = viz.draw(x, names={"x": x})
    assert [n.fields for n in g.nodes] == [("x", "data 3.0000")] and g.edges == []
    (x * x).backward()
    assert [n.fields for n in viz.draw(x).nodes] == [("data 3.0000", "grad 6.0000")]
    t = tg.tensor([1.0, 2.0])
    assert [n.fields for n in viz.draw(t).nodes] == [("float64 (2)", "data [1.0000, 2.0000]")]
    values, ops, edges = values_and_ops(viz.draw(t).dot())
    assert len(values) == 1 and not ops and not edges


def test_drawing_changes_no_grad_and_runs_no_hook() -> None:
    calls: List[float] = []
    x = tg.tensor([1.0, -2.0, 3.0], requires_grad=True)
    x.register_hook(lambda g: calls.append(1.0))
    y = (x * x).tanh().sum()
    viz.draw(y)
    assert x.grad is None and calls == []
    y.backward(retain_graph=True)
    before = x.grad.numpy().copy()
    g = viz.draw(y)
    assert g.grads_shown and len(calls) == 1 and np.array_equal(x.grad.numpy(), before)
    v = tg.Var(0.5)
    w = (v * v).sin()
    w.backward()
    viz.draw(w)
    assert v.grad == pytest.approx(np.cos(0.25))


def test_drawing_with_grads_leaves_the_next_backward_as_it_was() -> None:
    """draw() runs a gradient sweep of its own that changes nothing: the same backward passes with
    and without a drawing between them give the same gradients (a leaf's accumulate; a Var that
    _prev makes for an intermediate record shows what the tape's last backward gave it)."""

    def run(draw: bool) -> tuple:
        a, b = tg.Value(2.0), tg.Value(-3.0)
        y = (a * b + 1).tanh()
        y.backward()
        if draw:
            viz.draw(y)  # grads shown: the core's gradient sweep runs
        y.backward()
        inner = next(iter(y._prev))  # a * b + 1's result, a Python object made now
        return inner.grad, a.grad, b.grad

    assert run(True) == run(False)
    inner, ga, gb = run(True)
    slope = 1 - np.tanh(-5.0) ** 2
    assert inner == pytest.approx(slope)
    assert ga == pytest.approx(2 * -3.0 * slope) and gb == pytest.approx(2 * 2.0 * slope)


# --- micrograd's own draw_dot ------------------------------------------------------------------
# trace() and draw_dot() below are copied verbatim from micrograd's trace_graph.ipynb
# (github.com/karpathy/micrograd, MIT licence); they run unchanged on tg.Value.

try:
    from graphviz import Digraph
except ImportError:
    Digraph = None

def trace(root):
    nodes, edges = set(), set()
    def build(v):
        if v not in nodes:
            nodes.add(v)
            for child in v._prev:
                edges.add((child, v))
                build(child)
    build(root)
    return nodes, edges

def draw_dot(root, format='svg', rankdir='LR'):
    """
    format: png | svg | ...
    rankdir: TB (top to bottom graph) | LR (left to right)
    """
    assert rankdir in ['LR', 'TB']
    nodes, edges = trace(root)
    dot = Digraph(format=format, graph_attr={'rankdir': rankdir}) #, node_attr={'rankdir': 'TB'})

    for n in nodes:
        dot.node(name=str(id(n)), label = "{ data %.4f | grad %.4f }" % (n.data, n.grad), shape='record')
        if n._op:
            dot.node(name=str(id(n)) + n._op, label=n._op)
            dot.edge(str(id(n)) + n._op, str(id(n)))

    for n1, n2 in edges:
        dot.edge(str(id(n1)), str(id(n2)) + n2._op)

    return dot


needs_graphviz_package = pytest.mark.skipif(Digraph is None, reason="needs the graphviz Python package")


@needs_graphviz_package
def test_micrograds_draw_dot_runs_on_tg_value() -> None:
    # the notebook's "very simple example"
    x = tg.Value(1.0)
    y = (x * 2 + 1).relu()
    y.backward()
    values, ops, edges = values_and_ops(draw_dot(y).source.replace("\t", "  "))
    assert sorted(values.values()) == [["data 1.0000", "grad 2.0000"], ["data 2.0000", "grad 1.0000"],
                                       ["data 3.0000", "grad 1.0000"], ["data 3.0000", "grad 1.0000"]]
    nodes, _ = parse_dot(draw_dot(y).source)
    assert sorted(a["label"] for a in nodes.values() if "shape" not in a) == ["*", "+", "ReLU"]
    assert len(edges) == 6  # 3 op -> value, 3 value -> op


@needs_graphviz_package
def test_micrograds_draw_dot_and_viz_draw_agree_on_a_neuron() -> None:
    # the notebook's "simple 2D neuron"
    random.seed(1337)
    n = tg.nn.Neuron(2)
    x = [tg.Value(1.0), tg.Value(-2.0)]
    y = n(x)
    y.backward()
    dot = draw_dot(y)
    theirs, their_ops, their_edges = values_and_ops(dot.source)
    nodes, _ = parse_dot(dot.source)
    their_ops = {k: a["label"] for k, a in nodes.items() if "shape" not in a}
    ours, our_ops, our_edges = values_and_ops(viz.draw(y).dot())
    assert sorted(theirs.values()) == sorted(ours.values())  # the same boxes: data and grad of each value
    assert sorted(their_ops.values()) == sorted(our_ops.values()) == ["*", "*", "+", "+", "ReLU"]
    assert len(their_edges) == len(our_edges)


# --- tensor graphs -----------------------------------------------------------------------------

def small_mlp_loss() -> Tuple[tg.Tensor, tg.nn.Sequential]:
    tg.random.manual_seed(0)
    model = tg.nn.Sequential(tg.nn.Linear(2, 3), tg.nn.ReLU(), tg.nn.Linear(3, 1))
    X = tg.tensor([[0.5, -1.0], [1.0, 2.0], [-1.5, 0.25], [0.0, 1.0]])
    t = tg.tensor([1.0, -1.0, 1.0, -1.0])
    out = model(X).squeeze(1)
    loss = (1 - t * out).relu().mean() + 1e-4 * sum((p * p).sum() for p in model.parameters())
    return loss, model


def matrix_row(what: str, a: np.ndarray) -> str:
    """A box's row for a matrix: ``what`` on a line of its own, then NumPy's lines, their
    indent in no-break spaces."""
    rows = [", ".join(f"{v + 0.0:.4f}" for v in row) for row in a]
    return "\n".join([what, "[[" + rows[0] + "],"] + ["\u00a0[" + r + "]," for r in rows[1:-1]]
                     + ["\u00a0[" + rows[-1] + "]]"])


def test_tensor_graph_shows_dtype_shape_and_small_values() -> None:
    loss, model = small_mlp_loss()
    g = viz.draw(loss)
    values, ops, edges = values_and_ops(g.dot())
    records = tg._core._graph(loss, grads=False)
    assert len(values) == len(records) == g.records and len(ops) == sum(not r["leaf"] for r in records)
    assert len(edges) == sum(len(r["inputs"]) + 1 for r in records if not r["leaf"])
    leaves = [n.fields for n in g.nodes if n.leaf]
    assert len(leaves) == 4  # the two weights and two biases; the data X needs no grad and is not drawn
    weight = model[0].weight.detach().numpy()
    assert ("float64 (3, 2)",) == leaves[0][:1] and len(leaves[0]) == 2
    assert leaves[0][1] == matrix_row("data", weight)
    # in the DOT text: one left-aligned line per row, indented as NumPy indents them
    dot_labels = [a["label"] for a in parse_dot(g.dot())[0].values()]
    assert any("| data\\l[[" + f"{weight[0, 0]:.4f}, {weight[0, 1]:.4f}],\\l\u00a0[" in label
               for label in dot_labels)
    assert ("float64 (3)",) == leaves[1][:1]
    assert sorted(set(ops.values())) == ["add", "addmm", "mean", "mul", "relu", "sub", "sum", "view"]
    (out,) = [n for n in g.nodes if n.output]
    assert out.fields == ("float64 scalar", f"data {loss.item():.4f}")
    # a (4, 3) hidden activation has 12 numbers: its shape only
    assert ["float64 (4, 3)"] in values.values()
    # a Linear's result before the relu: no rule reads it, its record let it go (issue 22)
    assert ["float64 (4, 3) (freed)"] in values.values()
    # rows one above the other in a tensor's box: no braces left to right
    nodes, _ = parse_dot(g.dot())
    assert not nodes[out.name]["label"].startswith("{")


def test_tensor_graph_grads_after_backward_with_retain_graph() -> None:
    loss, model = small_mlp_loss()
    loss.backward(retain_graph=True)
    g = viz.draw(loss)
    assert g.grads_shown
    leaves = [n.fields for n in g.nodes if n.leaf]
    bias2 = model[2].bias.grad.numpy()
    assert leaves[3] == ("float64 (1)", f"data [{model[2].bias.item():.4f}]", f"grad [{bias2[0]:.4f}]")
    assert leaves[0][2] == matrix_row("grad", model[0].weight.grad.numpy())
    (out,) = [n for n in g.nodes if n.output]
    assert out.fields[-1] == "grad 1.0000"
    big = [fs for fs in (n.fields for n in g.nodes) if fs[0] == "float64 (4, 3)"]
    assert big and all(len(fs) == 2 and re.fullmatch(r"grad norm \d+\.\d{4}", fs[1]) for fs in big)
    # show_grads=False and show_values=False leave the shapes alone
    plain = viz.draw(loss, show_grads=False, show_values=False)
    assert not plain.grads_shown and all(len(n.fields) == 1 for n in plain.nodes if n.kind == "value")


def test_a_released_graph_says_how_to_draw_it() -> None:
    loss, _ = small_mlp_loss()
    loss.backward()
    with pytest.raises(ValueError, match=r"retain_graph=True"):
        viz.draw(loss)


def test_a_tensor_that_is_not_a_scalar_stands_for_its_sum() -> None:
    x = tg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = x * x
    y.backward(tg.ones(3), retain_graph=True)
    g = viz.draw(y)
    assert [n.fields for n in g.nodes if n.output] == [("float64 (3)", "data [1.0000, 4.0000, 9.0000]",
                                                        "grad [1.0000, 1.0000, 1.0000]")]
    assert [n.fields for n in g.nodes if n.leaf][0][-1] == "grad [2.0000, 4.0000, 6.0000]"


# --- options -----------------------------------------------------------------------------------

def test_options() -> None:
    a = tg.Var(2.0)
    y = (a * 3).tanh()
    y.backward()
    assert all("data" not in f for n in viz.draw(y, show_values=False).nodes for f in n.fields)
    assert all("grad" not in f for n in viz.draw(y, show_grads=False).nodes for f in n.fields)
    lr, tb = viz.draw(y), viz.draw(y, rankdir="TB")
    assert 'rankdir="TB"' in tb.dot() and 'rankdir="LR"' in lr.dot()
    # a Var's box reads across: braced rows left to right, plain rows top to bottom
    assert parse_dot(lr.dot())[0]["v" + str(lr.nodes[0].record)]["label"].startswith("{")
    assert not parse_dot(tb.dot())[0]["v" + str(tb.nodes[0].record)]["label"].startswith("{")
    titled = viz.draw(y, title='a "quoted" title')
    assert 'label="a \\"quoted\\" title"' in titled.dot()
    with pytest.raises(ValueError, match="rankdir"):
        viz.draw(y, rankdir="XY")
    with pytest.raises(ValueError, match="max_nodes"):
        viz.draw(y, max_nodes=0)
    with pytest.raises(TypeError, match="Var or Tensor"):
        viz.draw(3.0)  # type: ignore[arg-type]


def test_names_with_record_characters_survive_the_dot_text() -> None:
    a = tg.Var(1.0)
    g = viz.draw(a * 2, names={'w{0} | <x> "q"': a})
    values, _, _ = values_and_ops(g.dot())
    assert ['w{0} | <x> "q"', "data 1.0000"] in values.values()


def test_a_large_graph_draws_the_values_nearest_y_and_counts_the_rest() -> None:
    x = tg.Var(0.5)
    y = x
    for _ in range(30):
        y = (y * 1.01).tanh() + x
    g = viz.draw(y, max_nodes=10)
    assert g.records == 91 and g.hidden == 81
    values, ops, edges = values_and_ops(g.dot())
    assert len(values) == 10
    summary = g.node("more")
    assert summary.kind == "summary" and summary.fields[0] == "81 more values not drawn"
    # the 10 drawn: y, x and the last three steps; the summary counts the other 27 steps by op
    assert sorted(summary.fields[1:]) == ["add x 27", "mul x 27", "tanh x 27"]
    assert [n.fields for n in g.nodes if n.leaf] == [(f"data {x.data:.4f}",)]
    nodes, _ = parse_dot(g.dot())
    assert nodes["more"]["label"] == "".join(f + "\\l" for f in summary.fields)  # left-aligned lines
    assert nodes["more"]["style"] == "dashed,filled"
    # each drawn op: an arrow from each drawn operand, and one from the summary for the others
    for r in tg._core._graph(y, grads=False):
        op = f"op{r['id']}"
        if op in ops:
            drawn = [f"v{i}" for i in r["inputs"] if f"v{i}" in values]
            expected = drawn + (["more"] if len(drawn) < len(r["inputs"]) else [])
            assert sorted(t for t, h in edges if h == op) == sorted(expected)
    assert [t for t, h in edges if t == "more"] == ["more"]  # only the oldest drawn mul reads a hidden value
    full = viz.draw(y, max_nodes=None)
    assert full.hidden == 0 and len(values_and_ops(full.dot())[0]) == 91
    assert viz.draw(y).hidden == 0  # 91 <= 100, the default


# --- rendering ---------------------------------------------------------------------------------

def read_png(data: bytes) -> np.ndarray:
    """The pixels of an 8-bit, non-interlaced PNG (grey, RGB, palette or with alpha) as (H, W, C) uint8."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, palette = 8, b"", None
    width = height = depth = ctype = interlace = 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            width, height, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", body)
        elif kind == b"PLTE":
            palette = np.frombuffer(body, np.uint8).reshape(-1, 3)
        elif kind == b"IDAT":
            idat += body
        elif kind == b"IEND":
            break
    assert depth == 8 and interlace == 0, (depth, interlace)
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[ctype]
    stride = width * channels
    raw = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(height, stride + 1)
    out = np.zeros((height, stride), np.int32)
    prev = np.zeros(stride, np.int32)
    for row in range(height):
        kind, line = raw[row, 0], raw[row, 1:].astype(np.int32)
        cur = np.zeros(stride, np.int32)
        for i in range(stride):
            left = cur[i - channels] if i >= channels else 0
            up = prev[i]
            up_left = prev[i - channels] if i >= channels else 0
            if kind == 0:
                pred = 0
            elif kind == 1:
                pred = left
            elif kind == 2:
                pred = up
            elif kind == 3:
                pred = (left + up) // 2
            else:
                p = left + up - up_left
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - up_left)
                pred = left if pa <= pb and pa <= pc else up if pb <= pc else up_left
            cur[i] = (line[i] + pred) & 0xFF
        out[row], prev = cur, cur
    pixels = out.astype(np.uint8).reshape(height, width, channels)
    if ctype == 3:
        assert palette is not None
        pixels = palette[pixels[:, :, 0]]
    return pixels


@needs_graphviz
def test_a_rendered_png_has_the_picture(tmp_path) -> None:
    random.seed(1337)
    n = tg.nn.Neuron(2)
    x = [tg.Value(1.0), tg.Value(-2.0)]
    y = n(x)
    y.backward()
    path = tmp_path / "neuron.png"
    assert viz.draw(y).render(path) == str(path)
    pixels = read_png(path.read_bytes())
    h, w = pixels.shape[:2]
    assert 800 < w < 4000 and 100 < h < 1000 and w > 2 * h  # left to right: wide
    rgb = pixels[:, :, :3].astype(int)
    if pixels.shape[2] == 4:  # transparent pixels count as white
        rgb[pixels[:, :, 3] == 0] = 255
    colours = rgb.reshape(-1, 3)
    white = (colours == 255).all(axis=1).mean()
    dark = (colours.max(axis=1) < 100).mean()
    assert 0.3 < white < 0.97 and dark > 0.002  # not blank: boxes, arrows and text
    def share(hex_colour: str) -> float:
        target = np.array([int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)])
        return float((np.abs(colours - target).max(axis=1) <= 2).mean())
    assert share(viz.LEAF_FILL) > 0.01 and share(viz.OUTPUT_FILL) > 0.002  # the leaves' and y's fills


@needs_graphviz
def test_render_svg_pdf_and_jupyter(tmp_path) -> None:
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    g = viz.draw((x * x).sum())
    svg = (tmp_path / "g.svg")
    g.render(svg)
    assert "<svg" in svg.read_text() and "addmm" not in svg.read_text() and ">mul<" in svg.read_text()
    g.render(tmp_path / "g.pdf")
    assert (tmp_path / "g.pdf").read_bytes()[:4] == b"%PDF"
    g.render(tmp_path / "noext", format="png")
    assert (tmp_path / "noext").read_bytes()[:4] == b"\x89PNG"
    bundle = g._repr_mimebundle_()
    assert "<svg" in bundle["image/svg+xml"] and bundle["text/plain"] == repr(g)
    with pytest.raises(ValueError, match=r"\.svg, \.png or \.pdf"):
        g.render(tmp_path / "g.txt")
    with pytest.raises(ValueError, match="format"):
        g.pipe("gif")


def test_without_the_graphviz_package_the_error_says_what_to_install(tmp_path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "graphviz", None)  # import graphviz raises ImportError
    g = viz.draw(tg.Var(2.0) * 3)
    with pytest.raises(ImportError, match=r"pip install graphviz.*apt-get install graphviz"):
        g.render(tmp_path / "g.png")
    assert g._repr_svg_() is None
    assert "pip install graphviz" in g._repr_mimebundle_()["text/plain"]
    assert g.dot().startswith("digraph")  # DOT text needs nothing


def test_without_the_dot_program_the_error_says_what_to_install(tmp_path, monkeypatch) -> None:
    pytest.importorskip("graphviz")
    monkeypatch.setenv("PATH", str(tmp_path))  # no `dot` on the path
    g = viz.draw(tg.Var(2.0) * 3)
    with pytest.raises(RuntimeError, match=r"`dot` program was not found.*apt-get install graphviz"):
        g.render(tmp_path / "g.png")
    assert g._repr_svg_() is None
