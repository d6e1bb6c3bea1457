"""Pictures of a computation graph: ``tapegrad.viz.draw(y)``.

``draw(y)`` takes a recorded ``Var`` or ``Tensor`` and returns a :class:`Graph` of every
recorded op between the inputs and ``y``, drawn as micrograd's notebook draws it: each
value is a box (a Graphviz record) reading ``data`` and ``grad``, and each op is a small
ellipse holding the op (``+``, ``*``, ``tanh``, ``**2``; for tensors the op's name,
``addmm``, ``relu``, ``sum``) with an arrow from each operand and one into its result.
A scalar op's constant operand is written into the op (``x + 1`` draws ``+ 1``), where
micrograd would draw a box for the constant. Leaves (the inputs and parameters, whose
``.grad`` a backward fills) are blue, ``y`` is orange. Tensors show their dtype and shape,
and their values when they hold at most ``max_elements`` numbers (larger ones: the shape
and, for the gradient, its norm). Only what needs a gradient is recorded, so a tensor that
does not require grad (the data a model reads) is not drawn.

``Graph.dot()`` is the Graphviz DOT text (no dependency). ``Graph.render("g.png")`` writes
SVG, PNG or PDF and a Jupyter cell shows the graph inline; both run Graphviz, which needs
the ``graphviz`` Python package and Graphviz's ``dot`` program (``pip install graphviz``,
or ``pip install tapegrad[viz]``, and ``apt-get install graphviz``, or
``brew install graphviz``); without them they raise an error that says so.

Gradients, ``show_grads=True`` (the default): they are shown once a backward has run,
which ``draw`` reads from the leaves: some leaf of the graph holds a gradient (a tensor
leaf's ``.grad`` is not None, a ``Var`` leaf's ``.grad`` is not 0; Vars start at 0, as
micrograd's do, so a backward that gave every leaf 0 reads as none). Before that the boxes
carry no ``grad`` row. Once it has: a leaf shows its ``.grad``, as backward accumulated it
(micrograd's ``grad``); every other box shows ``dy/d(box)``, what the backward of ``y``
passes through it, computed by ``draw`` with a sweep that changes no ``.grad`` and runs no
hook. For a tensor ``y`` that is not a scalar, ``y`` stands for ``y.sum()``, as in
``y.backward(ones)``. A tensor's graph is released by its backward, so draw it with its
gradients after ``backward(retain_graph=True)``; drawing after a plain ``backward()``
raises ``ValueError``. ``show_grads=False`` never shows gradients.

Large graphs, ``max_nodes`` (default 100): a graph of more records (values: boxes) than
that draws the ``max_nodes`` records nearest ``y`` (breadth first from ``y`` through the
operands, so the loss and the last layers stay readable) and one dashed box,
"N more values not drawn", that counts the rest by op (``mul x 4000``, ``leaf x 337``)
and feeds every drawn op that reads one of them. ``max_nodes=None`` draws everything.
"""

from __future__ import annotations

import os
import re
from collections import Counter, deque
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Set, Tuple, Union

import numpy as np

from . import _core
from ._core import Tensor, Var
from ._dtypes import is_float

__all__ = ["draw", "Graph", "Node", "Edge"]

INSTALL_HINT = ("pip install graphviz (or pip install tapegrad[viz]) for the Python package, and "
                "apt-get install graphviz (brew install graphviz on macOS) for its `dot` program")
FORMATS = ("svg", "png", "pdf")
LEAF_FILL = "#cfe3f7"  # leaves: inputs and parameters
OUTPUT_FILL = "#fbd9a6"  # y
SUMMARY_FILL = "#eeeeee"

# micrograd's spelling of the scalar ops (Value._op); the others read as their names.
_SYMBOLS = {"add": "+", "sub": "-", "mul": "*", "div": "/", "pow": "**", "relu": "ReLU"}


@dataclass(frozen=True)
class Node:
    """One node of the picture."""

    name: str  #: the DOT node id: ``v<record>`` (a value), ``op<record>`` (its op), ``more`` (the summary)
    kind: str  #: "value", "op" or "summary"
    fields: Tuple[str, ...]  #: the text, one entry per row of the box (an op or summary: one entry)
    record: Optional[int] = None  #: the record index (the core's ``id``), None for the summary
    leaf: bool = False  #: a leaf: an input or a parameter
    output: bool = False  #: the value of ``y``
    tooltip: str = ""  #: the node's PyTorch-style name (``MulBackward0``), shown on hover in SVG

    @property
    def label(self) -> str:
        """The text as one line, the rows joined by `` | ``."""
        return " | ".join(self.fields)


@dataclass(frozen=True)
class Edge:
    """An arrow: from an operand's value to the op that reads it, or from an op to its result."""

    tail: str
    head: str


class Graph:
    """The picture ``draw`` returns: ``nodes`` and ``edges``, ``dot()`` text, ``render(path)``.

    ``records`` is how many recorded values the graph of ``y`` holds, ``hidden`` how many of
    them the summary box stands for (0 when everything is drawn), ``grads_shown`` whether the
    boxes carry gradients.
    """

    def __init__(self, nodes: Sequence[Node], edges: Sequence[Edge], *, rankdir: str = "LR",
                 title: Optional[str] = None, records: int = 0, hidden: int = 0, grads_shown: bool = False,
                 stacked: bool = False) -> None:
        self.nodes: List[Node] = list(nodes)
        self.edges: List[Edge] = list(edges)
        self.rankdir = rankdir
        self.title = title
        self.records = records
        self.hidden = hidden
        self.grads_shown = grads_shown
        self.stacked = stacked  # a box's rows one above the other (tensors), not side by side (Vars)

    def node(self, name: str) -> Node:
        """The node with DOT id ``name``."""
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    def __repr__(self) -> str:
        more = f", {self.hidden} not drawn" if self.hidden else ""
        return f"<tapegrad.viz.Graph: {self.records} values{more}, {len(self.nodes)} nodes, {len(self.edges)} edges>"

    # --- DOT ---------------------------------------------------------------------------------

    def dot(self) -> str:
        """The Graphviz DOT text of the picture."""
        lines = ["digraph tapegrad {", f'  graph [rankdir="{self.rankdir}"];']
        if self.title:
            lines.append(f'  graph [label="{_quote(self.title)}", labelloc="t", fontname="Helvetica", fontsize="14"];')
        lines.append('  node [fontname="Helvetica", fontsize="11"];')
        lines.append('  edge [color="#555555", arrowsize="0.7"];')
        # A record's top-level fields run across the rank direction, a {braced} group along it.
        braces = (self.rankdir in ("LR", "RL")) != self.stacked
        for n in self.nodes:
            attrs: Dict[str, str] = {}
            if n.kind == "value":
                text = " | ".join(_record_text(f) for f in n.fields)
                attrs["label"] = "{ " + text + " }" if braces else text
                attrs["shape"] = "record"
                if n.leaf or n.output:
                    attrs.update(style="filled", fillcolor=LEAF_FILL if n.leaf else OUTPUT_FILL)
                if n.output:
                    attrs["penwidth"] = "2"
            elif n.kind == "op":
                attrs.update(label=_quote(n.fields[0]), shape="ellipse", height="0.3", margin="0.04,0.02")
            else:  # one line per row, left-aligned
                attrs.update(label="".join(_quote(f) + "\\l" for f in n.fields), shape="box",
                             style="dashed,filled", fillcolor=SUMMARY_FILL)
            if n.tooltip:
                attrs["tooltip"] = n.tooltip
            body = ", ".join(f'{k}="{v if k == "label" else _quote(v)}"' for k, v in attrs.items())
            lines.append(f"  {n.name} [{body}];")
        for e in self.edges:
            lines.append(f"  {e.tail} -> {e.head};")
        lines.append("}")
        return "\n".join(lines) + "\n"

    # --- Graphviz ------------------------------------------------------------------------------

    def pipe(self, format: str = "svg") -> bytes:
        """The picture in ``format`` (svg, png or pdf), drawn by Graphviz's ``dot``."""
        if format not in FORMATS:
            raise ValueError(f"tapegrad.viz: format must be one of {', '.join(FORMATS)}, not {format!r}")
        try:
            import graphviz
        except ImportError:
            raise ImportError(f"tapegrad.viz: drawing a picture needs Graphviz: {INSTALL_HINT}") from None
        try:
            out: bytes = graphviz.Source(self.dot()).pipe(format=format)
        except graphviz.ExecutableNotFound:
            raise RuntimeError(f"tapegrad.viz: Graphviz's `dot` program was not found: {INSTALL_HINT}") from None
        return out

    def render(self, path: Union[str, os.PathLike[str]], format: Optional[str] = None) -> str:
        """Writes the picture to ``path`` as SVG, PNG or PDF (``format``, or read from the suffix);
        returns the path. Needs the ``graphviz`` package and the ``dot`` program."""
        path = str(path)
        if format is None:
            format = path.rsplit(".", 1)[-1].lower() if "." in path.rsplit("/", 1)[-1] else ""
            if format not in FORMATS:
                raise ValueError(f"tapegrad.viz: cannot tell the format of {path!r}: name it .svg, .png or .pdf, "
                                 "or pass format=")
        data = self.pipe(format)
        with open(path, "wb") as f:
            f.write(data)
        return path

    def _repr_svg_(self) -> Optional[str]:
        """Jupyter's inline picture (None, so that the text shows, when Graphviz is missing)."""
        try:
            return self.pipe("svg").decode("utf-8")
        except (ImportError, RuntimeError):
            return None

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> Dict[str, str]:
        svg = self._repr_svg_()
        if svg is not None:
            return {"image/svg+xml": svg, "text/plain": repr(self)}
        return {"text/plain": f"{self!r}\n(to see it drawn: {INSTALL_HINT}; Graph.dot() gives the DOT text)"}


def draw(y: Union[Var, Tensor], *, show_grads: bool = True, show_values: bool = True, rankdir: str = "LR",
         max_nodes: Optional[int] = 100, max_elements: int = 6,
         names: Optional[Mapping[str, Union[Var, Tensor]]] = None, title: Optional[str] = None) -> Graph:
    """The picture of every recorded op between the inputs and ``y`` (the module's docstring
    says what it shows).

    ``show_grads``: show gradients once a backward has run. ``show_values``: show each
    ``Var``'s data and the values of tensors of at most ``max_elements`` numbers.
    ``rankdir``: "LR" (left to right, micrograd's), "TB", "RL" or "BT". ``max_nodes``: the
    most records drawn before the rest is summed up in one box (None: no limit). ``names``:
    a name for some leaves, ``{"w": w, "b": b}``, written in their box (a ``Var`` leaf; a
    tensor leaf once the core reports leaf objects for tensors). ``title``: a caption.
    """
    if rankdir not in ("LR", "TB", "RL", "BT"):
        raise ValueError(f"tapegrad.viz.draw: rankdir must be 'LR', 'TB', 'RL' or 'BT', not {rankdir!r}")
    if max_nodes is not None and (not isinstance(max_nodes, int) or isinstance(max_nodes, bool)):
        raise TypeError(f"tapegrad.viz.draw: max_nodes must be an int or None, not {type(max_nodes).__name__}")
    if max_nodes is not None and max_nodes < 1:
        raise ValueError(f"tapegrad.viz.draw: max_nodes must be at least 1 (or None), not {max_nodes}")
    if not isinstance(max_elements, int) or isinstance(max_elements, bool) or max_elements < 0:
        raise ValueError(f"tapegrad.viz.draw: max_elements must be an int >= 0, not {max_elements!r}")
    if names is not None and not isinstance(names, Mapping):
        raise TypeError(f"tapegrad.viz.draw: names must be a mapping of names to leaves, not {type(names).__name__}")
    if not isinstance(y, (Var, Tensor)):
        raise TypeError(f"tapegrad.viz.draw: y must be a tapegrad Var or Tensor, not {type(y).__name__}")
    by_id = {id(obj): name for name, obj in (names or {}).items()}
    fmt = _Format(show_values, max_elements)
    if y.is_leaf:
        return _draw_leaf(y, fmt, show_grads, by_id, rankdir, title)

    # First without gradients: a backward need not have run, and then no sweep is needed.
    records = _core._graph(y, grads=False)
    grads_shown = show_grads and any(_holds_grad(r["leaf_grad"]) for r in records if r["leaf"])
    if grads_shown:
        records = _core._graph(y, grads=True)
    by_record = {r["id"]: r for r in records}
    out_id = records[-1]["id"]

    drawn: Set[int] = set(by_record)
    if max_nodes is not None and len(records) > max_nodes:
        drawn = _nearest(out_id, by_record, max_nodes)
    hidden = [r for r in records if r["id"] not in drawn]

    nodes: List[Node] = []
    edges: List[Edge] = []
    if hidden:
        kinds = Counter(_kind(r) for r in hidden)
        top = kinds.most_common(6)
        rows = [f"{len(hidden)} more values not drawn", *(f"{k} x {c}" for k, c in top)]
        if len(kinds) > len(top):
            rows.append(f"... ({len(kinds) - len(top)} more kinds)")
        nodes.append(Node("more", "summary", tuple(rows)))
    for r in records:
        rid = r["id"]
        if rid not in drawn:
            continue
        fields: List[str] = []
        name = by_id.get(id(r["leaf_object"])) if r["leaf_object"] is not None else None
        if name is not None:
            fields.append(name)
        if r["value"] is None:  # a value no rule reads and nothing holds: its record let it go
            shape = tuple(r["shape"])
            fields.append(f"{r['dtype']} {shape if shape else 'scalar'} (freed)".replace(",)", ")"))
        else:
            fields.extend(fmt.value_rows(r["value"]))
        if grads_shown:
            fields.extend(fmt.grad_rows(r["leaf_grad"] if r["leaf"] else r["grad"]))
        nodes.append(Node(f"v{rid}", "value", tuple(fields) or (" ",), rid, bool(r["leaf"]), rid == out_id,
                          str(r["name"])))
        if r["leaf"]:
            continue
        op = f"op{rid}"
        nodes.append(Node(op, "op", (_op_label(r),), rid, tooltip=str(r["name"])))
        fed_by_summary = False
        for i in r["inputs"]:
            if i in drawn:
                edges.append(Edge(f"v{i}", op))
            elif not fed_by_summary:
                edges.append(Edge("more", op))
                fed_by_summary = True
        edges.append(Edge(op, f"v{rid}"))
    return Graph(nodes, edges, rankdir=rankdir, title=title, records=len(records), hidden=len(hidden),
                 grads_shown=grads_shown, stacked=isinstance(y, Tensor))


# --- helpers -------------------------------------------------------------------------------------


class _Format:
    """How values and gradients read in a box."""

    def __init__(self, show_values: bool, max_elements: int) -> None:
        self.show_values = show_values
        self.max_elements = max_elements

    def value_rows(self, value: Any) -> List[str]:
        if isinstance(value, Tensor):
            shape = tuple(value.shape)
            rows = [f"{value.dtype} {shape if shape else 'scalar'}".replace(",)", ")")]
            if self.show_values and value.numel() <= self.max_elements:
                rows.append(_array_row("data", value.numpy()))
            return rows
        return [f"data {_number(value)}"] if self.show_values else []

    def grad_rows(self, grad: Any) -> List[str]:
        if grad is None:
            return ["grad none"]
        if isinstance(grad, Tensor):
            a = grad.numpy()
            if a.size <= self.max_elements:
                return [_array_row("grad", a)]
            return [f"grad norm {float(np.linalg.norm(a.astype(np.float64))):.4f}"]
        return [f"grad {_number(grad)}"]


def _draw_leaf(y: Union[Var, Tensor], fmt: _Format, show_grads: bool, by_id: Mapping[int, str], rankdir: str,
               title: Optional[str]) -> Graph:
    """A leaf has no graph: one box."""
    grad = y.grad
    fields = [by_id[id(y)]] if id(y) in by_id else []
    fields.extend(fmt.value_rows(y.data if isinstance(y, Var) else y))
    grads_shown = show_grads and _holds_grad(grad)
    if grads_shown:
        fields.extend(fmt.grad_rows(grad))
    node = Node("v0", "value", tuple(fields) or (" ",), 0, leaf=True, output=True, tooltip="AccumulateGrad")
    return Graph([node], [], rankdir=rankdir, title=title, records=1, grads_shown=grads_shown,
                 stacked=isinstance(y, Tensor))


def _holds_grad(grad: Any) -> bool:
    if grad is None:
        return False
    if isinstance(grad, Var):
        grad = grad.data
    return not isinstance(grad, (int, float)) or grad != 0.0


def _nearest(out_id: int, by_record: Mapping[int, Mapping[str, Any]], limit: int) -> Set[int]:
    """The ``limit`` records nearest ``out_id``, breadth first through the operands."""
    seen = {out_id}
    queue = deque([out_id])
    while queue and len(seen) < limit:
        for i in by_record[queue.popleft()]["inputs"]:
            if i not in seen and i in by_record:
                seen.add(i)
                queue.append(i)
                if len(seen) == limit:
                    break
    return seen


def _kind(record: Mapping[str, Any]) -> str:
    """What the summary box counts a record as: "leaf", or its op's name."""
    if record["leaf"]:
        return "leaf"
    return _tensor_op(str(record["name"])) if "shape" in record else str(record["op"])  # (a tensor's record)


def _tensor_op(name: str) -> str:
    """``AddmmBackward0`` reads ``addmm``."""
    return re.sub(r"Backward\d*$", "", name).lower() or name


def _op_label(record: Mapping[str, Any]) -> str:
    if "shape" in record:  # a tensor's record (its value may be gone: see _graph's "kept")
        return _tensor_op(str(record["name"]))
    op = str(record["op"])
    symbol = _SYMBOLS.get(op, op)
    constants: Iterable[float] = record["constants"]
    for c in constants:
        text = f"{c:g}"
        if op == "pow" and not record["constant_left"]:
            return f"**{text}"  # micrograd's '**2'
        return f"{text} {symbol}" if record["constant_left"] else f"{symbol} {text}"
    return symbol


def _number(x: Any) -> str:
    if isinstance(x, Var):
        x = x.data
    return f"{float(x) + 0.0:.4f}"  # + 0.0: -0.0 reads 0.0000


def _array_text(a: np.ndarray[Any, Any]) -> str:
    """``a`` as NumPy prints it, to 4 decimals (a matrix: one line per row)."""
    if a.ndim == 0:
        return _number(a.item()) if is_float(a.dtype) else str(a.item())
    if is_float(a.dtype):
        a = a + 0.0  # -0.0 reads 0.0000
    return np.array2string(a, separator=", ", max_line_width=1_000_000, threshold=1_000_000,
                           formatter={"float_kind": lambda v: f"{v:.4f}"})


def _array_row(what: str, a: np.ndarray[Any, Any]) -> str:
    """A box's row for an array: ``data [1.0000, 2.0000]``; a matrix below its ``data``, its
    rows indented as NumPy indents them (Graphviz drops leading spaces, not no-break ones)."""
    text = _array_text(a)
    if "\n" not in text:
        return f"{what} {text}"
    lines = [line.lstrip(" ") for line in text.split("\n")]
    indents = [len(line) - len(line.lstrip(" ")) for line in text.split("\n")]
    return "\n".join([what] + ["\u00a0" * k + line for k, line in zip(indents, lines)])


def _quote(text: str) -> str:
    """Text inside a DOT string."""
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _record_text(text: str) -> str:
    """Text of one row of a record label: its structure characters escaped; the lines of a
    row of several lines (a matrix) left-aligned."""
    text = re.sub(r'([{}|<>"\\])', r"\\\1", text)
    return text.replace("\n", "\\l") + "\\l" if "\n" in text else text

