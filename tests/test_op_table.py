"""The table of tensor ops (cpp/src/ops/table.hpp), one row per entry.

Each entry of the table (an op id, its attributes, forward kernel, vjp, jvp and what its rules
read) has at least one row here: a small program that records the entry, written once for
tapegrad and PyTorch (``f(m, *xs)``, m the module). Every row is checked the same ways, in
float64: its graph holds a record of the entry; its value is PyTorch's; its gradient, its
tangent (forward mode) and its second derivative (a create_graph gradient, which runs the
entry's rules recorded) match central finite differences; and the recorded program, run
forward at new inputs natively, gives a fresh run's value. A table entry without a row fails
``test_every_entry_has_a_row``: adding a tensor op is its entry, its kernel and a row here.
(The elementwise ops are ops.def's rows, checked row by row in test_ops.py and
test_tensor_ops.py.)
"""
from __future__ import annotations

from typing import Any, Callable, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np
import pytest

import tapegrad as tg

MASK = np.array([[True, False, True], [False, False, True]])


class Row(NamedTuple):
    entry: str                                  # the table entry the program records
    src: str                                    # the program, for the test id and messages
    f: Callable[..., Any]                       # f(m, *xs): m is tapegrad or torch
    shapes: Sequence[Tuple[int, ...]]
    lo: float = -2.0                            # where the inputs are drawn
    hi: float = 2.0
    tol: float = 1e-6                           # relative tolerance against finite differences
    jvp: bool = True                            # whether forward mode applies (not to a grad())
    h: float = 1e-6                             # the finite differences' step


def grad_of(m: Any, y: Any, x: Any) -> Any:
    """dy.sum()/dx, recorded (create_graph): a program whose records are the rules' own."""
    return m.autograd.grad(y.sum(), x, create_graph=True)[0]


ROWS: List[Row] = [
    Row("Reshape", "x.reshape(3, 4)", lambda m, x: x.reshape(3, 4), [(2, 6)]),
    Row("Transpose", "x.permute(2, 0, 1)", lambda m, x: x.permute(2, 0, 1), [(2, 3, 4)]),
    Row("Broadcast", "broadcast_to(x, (3, 2, 4))", lambda m, x: m.broadcast_to(x, (3, 2, 4)), [(2, 1)]),
    Row("Take", "x[[0, 2, 2, 1]]", lambda m, x: x[[0, 2, 2, 1]], [(4, 3)]),
    Row("Strided", "x[1:, ::2]", lambda m, x: x[1:, ::2], [(4, 5)]),
    Row("Strided", "x[:, 1]", lambda m, x: x[:, 1], [(3, 4)]),
    Row("Concat", "cat([x, y], 1)", lambda m, x, y: m.cat([x, y], 1), [(2, 3), (2, 2)]),
    Row("ScatterStrided", "grad of x[1:, ::2]**3", lambda m, x: grad_of(m, x[1:, ::2] ** 3, x), [(4, 5)], jvp=False),
    Row("ScatterAdd", "grad of x[[0, 2, 2]]**3", lambda m, x: grad_of(m, x[[0, 2, 2]] ** 3, x), [(3, 2)], jvp=False),
    Row("Cumsum", "cumsum(x, 1)", lambda m, x: m.cumsum(x, 1), [(3, 4)]),
    Row("Cumprod", "cumprod(x, 1)", lambda m, x: m.cumprod(x, 1), [(3, 4)], 0.5, 1.5),
    Row("Cumprod", "cumprod(x, 0)", lambda m, x: m.cumprod(x, 0), [(5,)], -1.5, 1.5),
    Row("Select", "sort(x, 1).values", lambda m, x: m.sort(x, 1)[0], [(3, 4)]),
    Row("Select", "topk(x, 2, 1).values", lambda m, x: m.topk(x, 2, 1)[0], [(3, 4)]),
    Row("Select", "max(x, 1).values", lambda m, x: m.max(x, 1)[0], [(3, 4)]),
    Row("Select", "gather(x, 1, index)",
        lambda m, x: m.gather(x, 1, m.tensor([[0, 0], [2, 1], [1, 2]])), [(3, 3)]),
    Row("MaxPool", "max_pool2d(x, 3, 2, padding=1)", lambda m, x: m.nn.functional.max_pool2d(x, 3, 2, padding=1),
        [(1, 2, 5, 4)]),
    Row("Sum", "x.sum(1)", lambda m, x: x.sum(1), [(3, 4)]),
    Row("Sum", "x.mean((0, 2))", lambda m, x: x.mean((0, 2)), [(2, 3, 4)]),
    Row("Sum", "x.var(1)", lambda m, x: x.var(1), [(3, 4)]),
    Row("Extreme", "amax(x, 1)", lambda m, x: m.amax(x, 1), [(3, 4)]),
    Row("Extreme", "amin(x, 0)", lambda m, x: m.amin(x, 0), [(3, 4)]),
    Row("Prod", "x.prod(1)", lambda m, x: x.prod(1), [(3, 4)]),
    Row("Logsumexp", "logsumexp(x, 1)", lambda m, x: m.logsumexp(x, 1), [(3, 4)]),
    Row("Softmax", "softmax(x, 1)", lambda m, x: m.softmax(x, 1), [(3, 4)]),
    Row("LogSoftmax", "log_softmax(x, 0)", lambda m, x: m.log_softmax(x, 0), [(3, 4)]),
    Row("StdSqrt", "x.std(1)", lambda m, x: x.std(1), [(3, 4)]),
    Row("Matmul", "matmul(x, y)", lambda m, x, y: m.matmul(x, y), [(2, 3, 4), (4, 2)]),
    Row("Matmul", "x @ y (batched)", lambda m, x, y: x @ y, [(2, 3), (4, 3, 2)]),
    Row("Linear", "linear(x, w, b)", lambda m, x, w, b: m.nn.functional.linear(x, w, b), [(5, 3), (2, 3), (2,)]),
    # (a float32 result: linear, so a long step is exact but for float32's rounding)
    Row("Astype", "x.float()", lambda m, x: x.float(), [(3, 2)], tol=1e-4, h=1e-2),
    Row("Clip", "clamp(x, -0.5, 0.5)", lambda m, x: m.clamp(x, -0.5, 0.5), [(3, 4)]),
    Row("Where", "where(mask, x, y)", lambda m, x, y: m.where(m.tensor(MASK), x, y), [(2, 3), (1, 3)]),
    Row("ZeroSlope", "grad of relu(x) * x", lambda m, x: grad_of(m, m.relu(x) * x, x), [(3, 4)], jvp=False),
]


def row_id(row: Row) -> str:
    return f"{row.entry}: {row.src}"


def inputs_of(row: Row, seed: int = 0) -> List[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.uniform(row.lo, row.hi, s) for s in row.shapes]


def run(row: Row, arrays: Sequence[np.ndarray]) -> Tuple[List[Any], Any]:
    xs = [tg.tensor(a, requires_grad=True) for a in arrays]
    return xs, row.f(tg, *xs)


def value(row: Row, arrays: Sequence[np.ndarray]) -> np.ndarray:
    with tg.no_grad() if row.jvp else tg.enable_grad():
        return np.asarray(run(row, arrays)[1].detach().numpy(), dtype=np.float64)


def weights(row: Row, arrays: Sequence[np.ndarray]) -> np.ndarray:
    """The fixed cotangent W: the checks differentiate L = sum(f(xs) * W)."""
    shape = value(row, arrays).shape
    return np.random.default_rng(99).uniform(-1, 1, shape)


def loss_fd(row: Row, arrays: List[np.ndarray], w: np.ndarray, k: int, i: int, h: float) -> float:
    """The central difference of L along element i of input k."""
    up = [a.copy() for a in arrays]
    dn = [a.copy() for a in arrays]
    up[k].flat[i] += h
    dn[k].flat[i] -= h
    return float(((value(row, up) - value(row, dn)) * w).sum() / (2 * h))


def test_every_entry_has_a_row() -> None:
    entries = tg._core._op_table()
    assert len(entries) == len(set(entries)) and len(entries) >= 24, entries
    missing = sorted(set(entries) - {r.entry for r in ROWS})
    assert not missing, f"table entries with no row in tests/test_op_table.py: {missing}"
    unknown = sorted({r.entry for r in ROWS} - set(entries))
    assert not unknown, f"rows naming no table entry: {unknown}"


@pytest.mark.parametrize("row", ROWS, ids=row_id)
def test_the_row_records_its_entry(row: Row) -> None:
    _, y = run(row, inputs_of(row))
    entries = {r["entry"] for r in tg._core._graph(y, False)}
    assert row.entry in entries, f"{row.src} recorded {sorted(e for e in entries if e)}, not {row.entry}"


@pytest.mark.parametrize("row", ROWS, ids=row_id)
def test_the_value_is_pytorchs(row: Row, torch) -> None:
    arrays = inputs_of(row)
    xs = [torch.tensor(a, requires_grad=True) for a in arrays]
    expected = row.f(torch, *xs).detach().double().numpy()
    np.testing.assert_allclose(value(row, arrays), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("row", ROWS, ids=row_id)
def test_the_gradient_is_the_finite_differences(row: Row) -> None:
    arrays = inputs_of(row)
    w = weights(row, arrays)
    xs, y = run(row, arrays)
    grads = tg.autograd.grad((y * tg.tensor(w)).sum(), xs)
    for k, (a, g) in enumerate(zip(arrays, grads)):
        fd = np.array([loss_fd(row, arrays, w, k, i, row.h) for i in range(a.size)]).reshape(a.shape)
        np.testing.assert_allclose(g.numpy(), fd, rtol=row.tol, atol=row.tol, err_msg=f"d/d input {k}")


@pytest.mark.parametrize("row", [r for r in ROWS if r.jvp], ids=row_id)
def test_the_tangent_is_the_finite_differences(row: Row) -> None:
    arrays = inputs_of(row)
    rng = np.random.default_rng(5)
    ts = [rng.uniform(-1, 1, a.shape) for a in arrays]
    _, t = tg.jvp(lambda *xs: row.f(tg, *xs), tuple(tg.tensor(a) for a in arrays), tuple(tg.tensor(v) for v in ts))
    h = row.h
    up = value(row, [a + h * v for a, v in zip(arrays, ts)])
    fd = (up - value(row, [a - h * v for a, v in zip(arrays, ts)])) / (2 * h)
    np.testing.assert_allclose(np.asarray(t.numpy(), dtype=np.float64), fd, rtol=row.tol, atol=row.tol)


@pytest.mark.parametrize("row", ROWS, ids=row_id)
def test_the_second_derivative_is_the_finite_differences(row: Row) -> None:
    """d/dx (dL/dx . v) through a create_graph gradient (the rules run recorded) against the
    central difference of the first gradient along v."""
    arrays = inputs_of(row)
    w = weights(row, arrays)
    rng = np.random.default_rng(3)
    vs = [rng.uniform(-1, 1, a.shape) for a in arrays]

    def first(arr: Sequence[np.ndarray], create_graph: bool) -> Tuple[List[Any], List[Any]]:
        xs, y = run(row, arr)
        return xs, list(tg.autograd.grad((y * tg.tensor(w)).sum(), xs, create_graph=create_graph, allow_unused=True))

    xs, gs = first(arrays, True)
    gv = sum(((g * tg.tensor(v)).sum() for g, v in zip(gs, vs) if g is not None and g.requires_grad), tg.tensor(0.0))
    if not gv.requires_grad:  # a program linear in its inputs: the second derivative is zero
        second = [np.zeros(a.shape) for a in arrays]
    else:
        second = [np.zeros(a.shape) if g is None else g.numpy()
                  for g, a in zip(tg.autograd.grad(gv, xs, allow_unused=True), arrays)]
    h = max(row.h, 1e-5)

    def g_at(arr: Sequence[np.ndarray]) -> List[np.ndarray]:
        return [np.zeros(a.shape) if g is None else np.asarray(g.numpy(), dtype=np.float64)
                for g, a in zip(first(arr, False)[1], arr)]
    up = g_at([a + h * v for a, v in zip(arrays, vs)])
    dn = g_at([a - h * v for a, v in zip(arrays, vs)])
    for k in range(len(arrays)):
        fd = (up[k] - dn[k]) / (2 * h)
        np.testing.assert_allclose(second[k], fd, rtol=max(row.tol, 1e-5), atol=max(row.tol, 1e-5),
                                   err_msg=f"H v for input {k}")


@pytest.mark.parametrize("row", ROWS, ids=row_id)
def test_the_program_runs_forward_at_new_inputs(row: Row) -> None:
    arrays = inputs_of(row)
    new = inputs_of(row, seed=1)
    with tg.Tape() as tape:
        tape.keep_constants = True
        xs, y = run(row, arrays)
        replayed = tg._core._forward_at([y], xs, new)
    np.testing.assert_allclose(np.asarray(replayed.numpy(), dtype=np.float64), value(row, new), rtol=1e-12, atol=1e-12)


def entry_of_records(y: Any) -> Optional[str]:
    """The entry of y's own record (the last record of its graph)."""
    return tg._core._graph(y, False)[-1]["entry"]


def test_elementwise_records_name_their_ops_def_row() -> None:
    x = tg.tensor([0.5, 1.5], requires_grad=True)
    assert entry_of_records(tg.exp(x)) == "exp"
    assert entry_of_records(x * x) == "mul"
    assert entry_of_records(x.reshape(2, 1)) == "Reshape"
