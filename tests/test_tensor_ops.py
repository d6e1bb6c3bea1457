"""Every op of tapegrad.Tensor: values against NumPy, gradients against five-point central
differences (float64) and against PyTorch, float32 against float64.

Gradients are checked the same way for every op: the op runs on leaves that require grad,
``backward(gradient=w)`` seeds it with random weights ``w`` of the output's shape, and each
leaf's ``.grad`` must equal dL/dx of L = sum(w * op(x...)), which ``fd_gradients`` computes
element by element with the five-point central stencil of conftest.central_difference (the
op itself evaluated on plain float64 tensors). Shapes include 0-d and empty operands and
NumPy broadcasting (the gradient of a broadcast operand is reduced to its own shape).

ELEMENTWISE is the table of the op-table ops: one row per op of ``tg.op_table`` (its NumPy
reference and PyTorch name; operands are sampled in the op's domain from the table); adding an
op to cpp/include/tapegrad/ops.def without a row here fails ``test_every_op_has_a_row``.
"""

from __future__ import annotations

import math
import operator
import warnings
import zlib
from dataclasses import dataclass
from typing import Any, Callable, Sequence, Tuple

import numpy as np
import pytest

import tapegrad as tg
from conftest import OPS, fd_step

EPS = float(np.finfo(np.float64).eps)
VALUE_REL = 1e-14  # elementwise float64 values against NumPy (measured: <= 4e-16)
REDUCE_REL = 1e-12  # values of reductions, matmul, softmax against NumPy (summation order differs)
FD_REL = 1e-6  # gradients against five-point central differences (plus a rounding bound)
TORCH_REL = 1e-11  # values and gradients against PyTorch float64 autograd
TORCH_ABS = 1e-14  # ... plus this times the largest magnitude (see torch_abs)
F32_REL = 1e-5  # float32 values and gradients against float64 on the same (float32) inputs
F32_ABS = 1e-6  # ... plus this, for results near zero (sin near 0, a sum that cancels)

Shape = Tuple[int, ...]


# --- helpers -----------------------------------------------------------------------------------

@pytest.fixture
def rng(request):
    """A generator seeded from the test's name (parameters included): reproducible, and
    different for each case."""
    return np.random.default_rng(zlib.crc32(request.node.name.encode()))


def assert_array_close(actual: Any, expected: Any, rel: float, abs_: Any = 0.0, what: str = "") -> None:
    """|actual - expected| <= rel * max(|actual|, |expected|) + abs_ elementwise (abs_ may be
    an array); NaN equals NaN, equal infinities are equal; the shapes must match."""
    a = np.asarray(actual, dtype=np.float64)
    e = np.asarray(expected, dtype=np.float64)
    assert a.shape == e.shape, f"{what}: shape {a.shape}, expected {e.shape}"
    with np.errstate(invalid="ignore"):
        ok = (np.abs(a - e) <= rel * np.maximum(np.abs(a), np.abs(e)) + abs_) | (a == e) | (np.isnan(a) & np.isnan(e))
    if not ok.all():
        bad = np.argwhere(~ok)[:5]
        rows = [f"  at {tuple(int(i) for i in b)}: got {a[tuple(b)]!r}, expected {e[tuple(b)]!r}" for b in bad]
        raise AssertionError(f"{what}: {int((~ok).sum())} of {a.size} elements differ (rel {rel}):\n" + "\n".join(rows))


def fd_gradients(f: Callable[..., tg.Tensor], arrays: Sequence[np.ndarray], weights: np.ndarray):
    """For each array: dL/da with L(arrays) = sum(weights * f(*arrays)), by the five-point
    stencil at every element (f evaluated on plain float64 tensors), and a bound on the
    stencil's rounding error there: the four sums are each off by about eps * sum(|w * f|),
    weighted 1, 8, 8, 1 and divided by 12 h; times 5 for safety."""
    base = [tg.tensor(a) for a in arrays]
    grads, tols = [], []
    for i, a in enumerate(arrays):
        g = np.zeros(a.shape)
        tol = np.zeros(a.shape)
        for j in range(a.size):
            x0 = float(a.flat[j])
            h = fd_step(x0)
            sums, mags = [], []
            for k in (2, 1, -1, -2):
                b = a.copy()
                b.flat[j] = x0 + k * h
                args = list(base)
                args[i] = tg.tensor(b)
                out = f(*args).numpy() * weights
                sums.append(float(np.sum(out)))
                mags.append(float(np.sum(np.abs(out))))
            g.flat[j] = (-sums[0] + 8 * sums[1] - 8 * sums[2] + sums[3]) / (12 * h)
            tol.flat[j] = 8 * EPS * max(mags) / h
        grads.append(g)
        tols.append(tol)
    return grads, tols


def tg_gradients(f: Callable[..., tg.Tensor], arrays: Sequence[np.ndarray], rng, dtype=np.float64):
    """f on leaves that require grad, backward(gradient=w) with random w: (output, w, grads)."""
    xs = [tg.tensor(a, dtype=dtype, requires_grad=True) for a in arrays]
    out = f(*xs)
    assert isinstance(out, tg.Tensor), type(out)
    assert out.requires_grad, "the result of an op on tensors that require grad requires grad"
    w = np.asarray(rng.uniform(-1.5, 1.5, size=out.shape))
    out.backward(gradient=w)
    grads = []
    for i, x in enumerate(xs):
        assert x.grad is not None, f"operand {i} has no gradient after backward()"
        assert isinstance(x.grad, tg.Tensor)
        assert x.grad.shape == x.shape, f"operand {i}: gradient of shape {x.grad.shape} for shape {x.shape}"
        assert x.grad.dtype == x.dtype, f"operand {i}: gradient of dtype {x.grad.dtype} for {x.dtype}"
        grads.append(x.grad.numpy().copy())
    return out.numpy().copy(), w, grads


def check_fd(f: Callable[..., tg.Tensor], arrays: Sequence[np.ndarray], rng, ref: Callable[..., Any] | None = None,
             value_rel: float = VALUE_REL, what: str = "") -> None:
    """f's value against ref (NumPy) and its gradients against central differences."""
    arrays = [np.asarray(a, dtype=np.float64) for a in arrays]
    out, w, grads = tg_gradients(f, arrays, rng)
    if ref is not None:
        expected = np.asarray(ref(*arrays), dtype=np.float64)
        assert_array_close(out, expected, value_rel, what=f"{what}: value")
    fd, tols = fd_gradients(f, arrays, w)
    for i, (g, d, tol) in enumerate(zip(grads, fd, tols)):
        assert_array_close(g, d, FD_REL, tol, what=f"{what}: gradient of operand {i} against central differences")


def check_torch(torch, f: Callable[..., tg.Tensor], torch_f: Callable[..., Any], arrays: Sequence[np.ndarray], rng,
                what: str = "") -> None:
    """f's value and gradients against torch_f's (float64 autograd, the same seed gradient)."""
    arrays = [np.asarray(a, dtype=np.float64) for a in arrays]
    out, w, grads = tg_gradients(f, arrays, rng)
    ts = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in arrays]
    out_t = torch_f(*ts)
    assert tuple(out_t.shape) == out.shape, f"{what}: shape {out.shape}, torch {tuple(out_t.shape)}"
    expected = out_t.detach().numpy()
    assert_array_close(out, expected, TORCH_REL, torch_abs(expected), what=f"{what}: value against torch")
    out_t.backward(torch.from_numpy(w))
    for i, (g, t) in enumerate(zip(grads, ts)):
        expected = np.zeros(t.shape) if t.grad is None else t.grad.numpy()
        assert_array_close(g, expected, TORCH_REL, torch_abs(expected),
                           what=f"{what}: gradient of operand {i} against torch")


def torch_abs(expected: np.ndarray) -> float:
    """The absolute part of the tolerance against PyTorch: results that cancel to about zero
    (x / x, sums of +-terms) differ by a few eps times the terms' size, not relatively."""
    finite = np.abs(expected[np.isfinite(expected)])
    return TORCH_ABS * max(1.0, float(finite.max()) if finite.size else 1.0)


def check_float32(f: Callable[..., tg.Tensor], arrays: Sequence[np.ndarray], rng, what: str = "") -> None:
    """float32 results and gradients against float64 ones on the same inputs (rounded to
    float32 first, so only the arithmetic differs): rtol F32_REL = 1e-5, about 80 float32
    ulps, plus F32_ABS for values near zero."""
    arrays32 = [np.asarray(a, dtype=np.float32) for a in arrays]
    arrays64 = [a.astype(np.float64) for a in arrays32]
    state = rng.bit_generator.state
    out32, _, grads32 = tg_gradients(f, arrays32, rng, dtype=np.float32)
    rng.bit_generator.state = state  # the same seed gradient for both
    out64, _, grads64 = tg_gradients(f, arrays64, rng, dtype=np.float64)
    assert out32.dtype == np.float32, f"{what}: float32 operands gave {out32.dtype}"
    assert out64.dtype == np.float64
    assert_array_close(out32, out64, F32_REL, F32_ABS, what=f"{what}: float32 value")
    for i, (g32, g64) in enumerate(zip(grads32, grads64)):
        assert g32.dtype == np.float32
        assert_array_close(g32, g64, F32_REL, F32_ABS, what=f"{what}: float32 gradient of operand {i}")


def shape_id(shapes: Sequence[Shape]) -> str:
    return "&".join("x".join(map(str, s)) if s else "0d" for s in shapes)


# --- elementwise ops: the table ----------------------------------------------------------------

def _sigmoid(a):
    return np.exp(-np.logaddexp(0.0, -a))


_erf = np.vectorize(math.erf, otypes=[np.float64])


@dataclass(frozen=True)
class Elementwise:
    arity: int
    ref: Callable[..., Any]  # NumPy reference on float64 arrays
    torch: str  # dotted path of the PyTorch function under `torch.`
    operator: Callable[..., Any] | None = None  # the Python operator that spells it, if any


ELEMENTWISE = {
    # --- unary ---------------------------------------------------------------------------------
    "neg": Elementwise(1, np.negative, "neg", operator.neg),
    "exp": Elementwise(1, np.exp, "exp"),
    "log": Elementwise(1, np.log, "log"),
    "log2": Elementwise(1, np.log2, "log2"),
    "log1p": Elementwise(1, np.log1p, "log1p"),
    "expm1": Elementwise(1, np.expm1, "expm1"),
    "sqrt": Elementwise(1, np.sqrt, "sqrt"),
    "sin": Elementwise(1, np.sin, "sin"),
    "cos": Elementwise(1, np.cos, "cos"),
    "tan": Elementwise(1, np.tan, "tan"),
    "asin": Elementwise(1, np.arcsin, "asin"),
    "acos": Elementwise(1, np.arccos, "acos"),
    "atan": Elementwise(1, np.arctan, "atan"),
    "sinh": Elementwise(1, np.sinh, "sinh"),
    "cosh": Elementwise(1, np.cosh, "cosh"),
    "tanh": Elementwise(1, np.tanh, "tanh"),
    "sigmoid": Elementwise(1, _sigmoid, "sigmoid"),
    "softplus": Elementwise(1, lambda a: np.logaddexp(0.0, a), "nn.functional.softplus"),
    "relu": Elementwise(1, lambda a: np.maximum(a, 0.0), "relu"),
    "abs": Elementwise(1, np.abs, "abs", operator.abs),
    "erf": Elementwise(1, _erf, "erf"),
    "floor": Elementwise(1, np.floor, "floor"),
    "ceil": Elementwise(1, np.ceil, "ceil"),
    "round": Elementwise(1, np.round, "round"),
    "trunc": Elementwise(1, np.trunc, "trunc"),
    # --- binary --------------------------------------------------------------------------------
    "add": Elementwise(2, np.add, "add", operator.add),
    "sub": Elementwise(2, np.subtract, "sub", operator.sub),
    "mul": Elementwise(2, np.multiply, "mul", operator.mul),
    "div": Elementwise(2, np.divide, "div", operator.truediv),
    "pow": Elementwise(2, np.power, "pow", operator.pow),
    "atan2": Elementwise(2, np.arctan2, "atan2"),
    "min": Elementwise(2, np.minimum, "minimum"),
    "max": Elementwise(2, np.maximum, "maximum"),
}

UNARY_SHAPES: list[Shape] = [(), (0,), (5,), (2, 3), (2, 0, 3)]
BINARY_SHAPES: list[Tuple[Shape, Shape]] = [
    ((), ()),
    ((4,), ()),
    ((), (2, 3)),
    ((2, 3), (2, 3)),
    ((2, 3), (3,)),
    ((2, 1), (1, 3)),
    ((3, 1, 2), (2, 1)),
    ((1,), (2, 2)),
    ((0, 3), (3,)),
    ((2, 0), (2, 1)),
]

UNARY = [n for n, r in ELEMENTWISE.items() if r.arity == 1]
BINARY = [n for n, r in ELEMENTWISE.items() if r.arity == 2]
UNARY_CASES = [pytest.param(n, s, id=f"{n}-{shape_id([s])}") for n in UNARY for s in UNARY_SHAPES]
BINARY_CASES = [pytest.param(n, a, b, id=f"{n}-{shape_id([a, b])}") for n in BINARY for a, b in BINARY_SHAPES]


def sample(rng, name: str, shapes: Sequence[Shape]) -> list[np.ndarray]:
    return [rng.uniform(lo, hi, size=s) for (lo, hi), s in zip(OPS[name].domain, shapes)]


def torch_fn(torch, path: str):
    fn = torch
    for part in path.split("."):
        fn = getattr(fn, part)
    return fn


def tg_elementwise(name: str) -> Callable[..., tg.Tensor]:
    """tapegrad's module function for an op (minimum/maximum for the elementwise min/max)."""
    return {"min": tg.minimum, "max": tg.maximum}.get(name, getattr(tg, name))


def test_every_op_has_a_row():
    table = {name: row.arity for name, row in OPS.items()}
    missing = sorted(set(table) - set(ELEMENTWISE))
    assert not missing, f"ops of tg.op_table without a row in tests/test_tensor_ops.py ELEMENTWISE: {missing}"
    extra = sorted(set(ELEMENTWISE) - set(table))
    assert not extra, f"rows of ELEMENTWISE that are not in tg.op_table: {extra}"
    for name, arity in table.items():
        assert ELEMENTWISE[name].arity == arity, name


def test_every_op_is_a_tensor_method():
    t = tg.tensor([0.5, 0.25])
    for name, arity in ((r.name, r.arity) for r in tg.op_table):
        if name in ("min", "max"):
            continue  # Tensor.min/max are reductions (see test_max_min_two_tensors_are_elementwise)
        method = getattr(t, name)
        out = method() if arity == 1 else method(t)
        assert isinstance(out, tg.Tensor), name
        assert out.shape == (2,), name


@pytest.mark.parametrize("name,shape", UNARY_CASES)
def test_unary_value_and_gradient(name, shape, rng):
    row = ELEMENTWISE[name]
    (a,) = sample(rng, name, [shape])
    check_fd(tg_elementwise(name), [a], rng, row.ref, what=f"tg.{name}")
    check_fd(lambda x: getattr(x, name)(), [a], rng, row.ref, what=f"Tensor.{name}")
    if row.operator is not None:
        check_fd(row.operator, [a], rng, row.ref, what=f"{row.operator.__name__}(Tensor)")


@pytest.mark.parametrize("name,shape", UNARY_CASES)
def test_unary_against_torch(torch, name, shape, rng):
    (a,) = sample(rng, name, [shape])
    check_torch(torch, tg_elementwise(name), torch_fn(torch, ELEMENTWISE[name].torch), [a], rng, what=name)


@pytest.mark.parametrize("name,shape_a,shape_b", BINARY_CASES)
def test_binary_value_and_gradient(name, shape_a, shape_b, rng):
    row = ELEMENTWISE[name]
    a, b = sample(rng, name, [shape_a, shape_b])
    check_fd(tg_elementwise(name), [a, b], rng, row.ref, what=f"tg.{tg_elementwise(name).__name__}")
    if name in ("min", "max"):  # tg.min(a, b) / tg.max(a, b): elementwise with two operands
        check_fd(getattr(tg, name), [a, b], rng, row.ref, what=f"tg.{name}(a, b)")
    else:
        check_fd(lambda x, y: getattr(x, name)(y), [a, b], rng, row.ref, what=f"Tensor.{name}")
    if row.operator is not None:
        check_fd(row.operator, [a, b], rng, row.ref, what=f"operator {row.operator.__name__}")


@pytest.mark.parametrize("name,shape_a,shape_b", BINARY_CASES)
def test_binary_against_torch(torch, name, shape_a, shape_b, rng):
    a, b = sample(rng, name, [shape_a, shape_b])
    check_torch(torch, tg_elementwise(name), torch_fn(torch, ELEMENTWISE[name].torch), [a, b], rng, what=name)


@pytest.mark.parametrize("name", BINARY)
def test_binary_with_a_constant_operand(name, rng):
    # a number, an ndarray or a list on either side: a Tensor, and the gradient of the tensor
    row = ELEMENTWISE[name]
    a, b = sample(rng, name, [(2, 3), (3,)])
    fn = tg_elementwise(name)
    c = float(b[0])
    for label, f, ref in [
        ("f(Tensor, number)", lambda x: fn(x, c), lambda x: row.ref(x, c)),
        ("f(Tensor, ndarray)", lambda x: fn(x, b), lambda x: row.ref(x, b)),
        ("f(Tensor, list)", lambda x: fn(x, b.tolist()), lambda x: row.ref(x, b)),
    ]:
        check_fd(f, [a], rng, ref, what=f"{name}: {label}")
    d = float(a[0, 0])
    for label, f, ref in [
        ("f(number, Tensor)", lambda y: fn(d, y), lambda y: row.ref(d, y)),
        ("f(ndarray, Tensor)", lambda y: fn(a, y), lambda y: row.ref(a, y)),
    ]:
        check_fd(f, [b], rng, ref, what=f"{name}: {label}")
    if row.operator is not None:
        op = row.operator
        for label, f, ref in [
            ("Tensor op ndarray", lambda x: op(x, b), lambda x: row.ref(x, b)),
            ("Tensor op number", lambda x: op(x, c), lambda x: row.ref(x, c)),
        ]:
            check_fd(f, [a], rng, ref, what=f"{name}: {label}")
        for label, f, ref in [
            ("ndarray op Tensor", lambda y: op(a, y), lambda y: row.ref(a, y)),
            ("number op Tensor", lambda y: op(d, y), lambda y: row.ref(d, y)),
            ("list op Tensor", lambda y: op(a.tolist(), y), lambda y: row.ref(a, y)),
        ]:
            check_fd(f, [b], rng, ref, what=f"{name}: {label}")


@pytest.mark.parametrize("name", UNARY + BINARY)
def test_float32_against_float64(name, rng):
    shapes = [(2, 3)] if ELEMENTWISE[name].arity == 1 else [(2, 3), (3,)]
    check_float32(tg_elementwise(name), sample(rng, name, shapes), rng, what=name)


@pytest.mark.parametrize("name", BINARY)
def test_binary_same_tensor_on_both_sides(torch, name, rng):
    # f(x, x): both partials flow into the one leaf (min/max tie everywhere: 1/2 + 1/2)
    a = rng.uniform(0.5, 2.0, size=(2, 3))
    check_torch(torch, lambda x: tg_elementwise(name)(x, x), lambda t: torch_fn(torch, ELEMENTWISE[name].torch)(t, t),
                [a], rng, what=f"{name}(x, x)")


@pytest.mark.parametrize("name", ["min", "max"])
def test_min_max_ties_split_the_gradient(torch, name):
    a = np.array([1.0, 2.0, 3.0, -1.0])
    b = np.array([1.0, 0.0, 3.0, 5.0])
    check_torch(torch, tg_elementwise(name), torch_fn(torch, ELEMENTWISE[name].torch), [a, b],
                np.random.default_rng(7), what=f"{name} with ties")
    x, y = tg.tensor(a, requires_grad=True), tg.tensor(b, requires_grad=True)
    getattr(tg, name)(x, y).sum().backward()
    tie = np.array([0.5, 0.0, 0.5, 0.0])
    wins = (a < b) if name == "min" else (a > b)
    assert x.grad.numpy().tolist() == (tie + wins).tolist()
    assert y.grad.numpy().tolist() == (tie + (~wins & (a != b))).tolist()


def test_max_min_two_tensors_are_elementwise():
    a = tg.tensor([1.0, 5.0, -2.0])
    b = tg.tensor([3.0, 2.0, -2.0])
    assert tg.max(a, b).numpy().tolist() == [3.0, 5.0, -2.0]
    assert tg.min(a, b).numpy().tolist() == [1.0, 2.0, -2.0]
    assert tg.maximum(a, b).numpy().tolist() == [3.0, 5.0, -2.0]
    assert tg.minimum(a, b).numpy().tolist() == [1.0, 2.0, -2.0]
    assert tg.max(a, 0.0).numpy().tolist() == [1.0, 5.0, 0.0]  # a float is a value, not an axis
    assert tg.min(-1.0, a).numpy().tolist() == [-1.0, -1.0, -2.0]


def test_max_min_with_a_dim_and_keepdim_positionally_are_torchs(torch):
    # torch.max(input, dim, keepdim): tg.max(t, 1, True) took True for a NumPy axis and raised.
    a = np.array([[1.0, 5.0, 2.0], [3.0, 0.0, 4.0]])
    for name in ("max", "min"):
        x, t = tg.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)
        ours, theirs = getattr(tg, name)(x, 1, True), getattr(torch, name)(t, 1, True)
        assert ours.values.numpy().tolist() == theirs.values.tolist()
        assert ours.indices.numpy().tolist() == theirs.indices.tolist()
        ours.values.sum().backward()
        theirs.values.sum().backward()
        assert x.grad.numpy().tolist() == t.grad.tolist()
    assert tg.max(tg.tensor(a), None, 1).numpy().tolist() == [5.0, 4.0]  # NumPy's (x, None, axis) still
    assert tg.min(tg.tensor(a), None, 0, True).numpy().tolist() == [[1.0, 0.0, 2.0]]


@pytest.mark.parametrize("call,message", [
    (lambda t: tg.max(t, axis=tg.Var(1.0)), r"tapegrad\.max: axis must be an int or a tuple of ints, not Var"),
    (lambda t: tg.min(t, dim=tg.Var(1.0)), r"tapegrad\.min: dim must be an int, not Var"),
    (lambda t: tg.max(t, dim=1.0), r"tapegrad\.max: dim must be an int, not float \(1\.0\)"),
    (lambda t: tg.max(t, axis=True), r"axis must be an int or a tuple of ints, not bool"),
    (lambda t: tg.max(t, None, 1.0), r"axis must be an int or a tuple of ints, not float"),
    (lambda t: tg.max(t, None, tg.Var(1.0)), r"axis must be an int or a tuple of ints, not Var"),
    (lambda t: tg.max(t, 1, tg.Var(1.0)), r"tapegrad\.max\(input, dim, keepdim\): keepdim must be one bool, got Var"),
    (lambda t: tg.max(t, 1, 0), r"keepdim must be one bool, got int \(0\)"),
    (lambda t: tg.max(t, t, 1), r"tapegrad\.max of more than two operands takes Vars and real numbers .* operand 1 "
                                r"is Tensor"),
    (lambda t: tg.max(t, t, axis=0), r"tapegrad\.max: axis= is for a reduction of one tensor"),
    (lambda t: tg.min(t, 1, dim=0), r"tapegrad\.min: got a dim \(1\) both as the second argument and as dim="),
    (lambda t: tg.max(t, dim=1, axis=0), r"got both axis= .* and dim="),
])
def test_max_min_refuse_what_is_not_an_axis(call, message):
    with pytest.raises(TypeError, match=message):
        call(tg.tensor([[1.0, 5.0, 2.0], [3.0, 0.0, 4.0]]))


# --- pow: constant exponents and bases, kinks ---------------------------------------------------

EXPONENTS = [0, 1, 2, 3, -1, -2, 0.5, 1.5, -0.5, 2.5, 1 / 3]


@pytest.mark.parametrize("p", EXPONENTS, ids=[repr(p) for p in EXPONENTS])
def test_pow_constant_exponent(torch, p, rng):
    a = rng.uniform(0.2, 2.5, size=(2, 3))
    check_fd(lambda x: x ** p, [a], rng, lambda x: np.power(x, float(p)), what=f"x ** {p!r}")
    check_torch(torch, lambda x: x ** p, lambda t: t ** p, [a], rng, what=f"x ** {p!r}")
    check_torch(torch, lambda x: tg.pow(x, p), lambda t: torch.pow(t, p), [a], rng, what=f"tg.pow(x, {p!r})")
    if float(p).is_integer():  # negative bases, and zero where defined
        b = np.array([-2.0, -0.5, 1.5, 0.0 if p >= 0 else 3.0])
        check_torch(torch, lambda x: x ** p, lambda t: t ** p, [b], rng, what=f"x ** {p!r} (negative bases)")


@pytest.mark.parametrize("c", [2.0, 0.5, math.e, 1.0])
def test_pow_constant_base(torch, c, rng):
    a = rng.uniform(-2.0, 2.0, size=(5,))
    check_fd(lambda y: c ** y, [a], rng, lambda y: np.power(c, y), what=f"{c} ** y")
    check_torch(torch, lambda y: c ** y, lambda t: c ** t, [a], rng, what=f"{c} ** y")


@pytest.mark.parametrize("base,exponent", [(0.0, 0.0), (0.0, 2.0), (0.0, 1.0), (0.0, 0.5), (3.0, 0.0), (-2.0, 2.0),
                                           (-2.0, 0.0), (0.0, 3.0)])
def test_pow_kinks_match_torch(torch, base, exponent):
    x = tg.tensor([base], requires_grad=True)
    y = tg.tensor([exponent], requires_grad=True)
    (x ** y).sum().backward()
    xt = torch.tensor([base], dtype=torch.float64, requires_grad=True)
    yt = torch.tensor([exponent], dtype=torch.float64, requires_grad=True)
    (xt ** yt).sum().backward()
    assert_array_close(x.grad.numpy(), xt.grad.numpy(), TORCH_REL, what=f"d/dx {base} ** {exponent}")
    assert_array_close(y.grad.numpy(), yt.grad.numpy(), TORCH_REL, what=f"d/dy {base} ** {exponent}")
    # and with a constant exponent
    x = tg.tensor([base], requires_grad=True)
    (x ** exponent).sum().backward()
    xt = torch.tensor([base], dtype=torch.float64, requires_grad=True)
    (xt ** exponent).sum().backward()
    assert_array_close(x.grad.numpy(), xt.grad.numpy(), TORCH_REL, what=f"d/dx {base} ** const {exponent}")


@pytest.mark.parametrize("name", ["relu", "abs"])
def test_relu_abs_zero_slope_at_zero(torch, name):
    a = np.array([-1.0, 0.0, -0.0, 2.0])
    check_torch(torch, getattr(tg, name), getattr(torch, name), [a], np.random.default_rng(3), what=f"{name} at 0")
    x = tg.tensor(a, requires_grad=True)
    getattr(tg, name)(x).sum().backward()
    assert x.grad.numpy().tolist() == ([0.0, 0.0, 0.0, 1.0] if name == "relu" else [-1.0, 0.0, 0.0, 1.0])


# --- reductions --------------------------------------------------------------------------------

def _np_logsumexp(a, axis=None, keepdims=False):
    m = np.max(a, axis=axis, keepdims=True)
    r = np.log(np.sum(np.exp(a - m), axis=axis, keepdims=True)) + m
    return r if keepdims else np.squeeze(r, axis=axis if axis is not None else tuple(range(a.ndim)))


def _dims(ndim: int, axis) -> tuple:
    if axis is None:
        return tuple(range(ndim))
    axes = axis if isinstance(axis, tuple) else (axis,)
    return tuple(sorted(a % ndim for a in axes))


def _torch_reduce(torch, name: str, t, axis, keepdims: bool, ddof: int = 0):
    if t.ndim == 0:
        dims: tuple = ()
    else:
        dims = _dims(t.ndim, axis)
    if name == "prod":
        r = t
        for d in sorted(dims, reverse=True):
            r = torch.prod(r, dim=d, keepdim=True)
        if not keepdims and dims:
            r = r.reshape([n for i, n in enumerate(r.shape) if i not in dims])
        return r
    if t.ndim == 0:  # a 0-d tensor reduces as its one element
        return _torch_reduce(torch, name, t.reshape(1), 0, False, ddof)
    fn = {"sum": torch.sum, "mean": torch.mean, "max": torch.amax, "min": torch.amin,
          "logsumexp": torch.logsumexp}.get(name)
    if fn is not None:
        return fn(t, dim=dims, keepdim=keepdims)
    return getattr(torch, name)(t, dim=dims, correction=ddof, keepdim=keepdims)


REDUCE_REFS = {
    "sum": np.sum,
    "mean": np.mean,
    "max": np.max,
    "min": np.min,
    "prod": np.prod,
    "var": np.var,
    "std": np.std,
    "logsumexp": _np_logsumexp,
}

REDUCE_SHAPES = [((), None), ((5,), None), ((5,), 0), ((5,), -1), ((2, 3), None), ((2, 3), 0), ((2, 3), 1),
                 ((2, 3), -1), ((2, 3), (0, 1)), ((2, 3, 4), 1), ((2, 3, 4), (0, 2)), ((2, 3, 4), (-1, 0))]
REDUCE_CASES = [pytest.param(n, s, ax, k, id=f"{n}-{shape_id([s])}-axis{ax}{'-keepdims' if k else ''}")
                for n in REDUCE_REFS for s, ax in REDUCE_SHAPES for k in (False, True)
                if not (n == "std" and s == ())]  # the std of one element: test_std_gradient_where_the_std_is_zero


def _tg_reduce(name: str, form: str, axis, keepdims: bool, ddof: int = 0) -> Callable[[tg.Tensor], tg.Tensor]:
    extra = {"ddof": ddof} if name in ("var", "std") else {}
    if form == "method":
        return lambda x: getattr(x, name)(axis=axis, keepdims=keepdims, **extra)
    return lambda x: getattr(tg, name)(x, axis=axis, keepdims=keepdims, **extra)


def _reduce_input(rng, name: str, shape: Shape) -> np.ndarray:
    if name in ("max", "min"):  # distinct values: no ties (tested on their own)
        return (rng.permutation(int(np.prod(shape))) * 0.37 - 1.0).reshape(shape) + rng.uniform(0, 0.1, shape)
    if name == "prod":
        return rng.uniform(0.5, 1.5, size=shape) * rng.choice([-1.0, 1.0], size=shape)
    return rng.uniform(-2.0, 2.0, size=shape)


@pytest.mark.parametrize("name,shape,axis,keepdims", REDUCE_CASES)
def test_reduction_value_and_gradient(name, shape, axis, keepdims, rng):
    a = _reduce_input(rng, name, shape)
    ref = REDUCE_REFS[name]
    for form in ("function", "method"):
        check_fd(_tg_reduce(name, form, axis, keepdims), [a], rng, lambda x: ref(x, axis=axis, keepdims=keepdims),
                 REDUCE_REL, what=f"{form} {name}(axis={axis}, keepdims={keepdims})")


@pytest.mark.parametrize("name,shape,axis,keepdims", REDUCE_CASES)
def test_reduction_against_torch(torch, name, shape, axis, keepdims, rng):
    a = _reduce_input(rng, name, shape)
    check_torch(torch, _tg_reduce(name, "function", axis, keepdims),
                lambda t: _torch_reduce(torch, name, t, axis, keepdims), [a], rng, what=f"{name}(axis={axis})")


@pytest.mark.parametrize("name", ["var", "std"])
@pytest.mark.parametrize("ddof", [0, 1, 2])
@pytest.mark.parametrize("axis", [None, 0, 1])
def test_var_std_ddof(torch, name, ddof, axis, rng):
    a = rng.uniform(-2.0, 2.0, size=(4, 3))
    check_fd(_tg_reduce(name, "function", axis, False, ddof), [a], rng,
             lambda x: REDUCE_REFS[name](x, axis=axis, ddof=ddof), REDUCE_REL, what=f"{name}(ddof={ddof})")
    check_torch(torch, _tg_reduce(name, "method", axis, True, ddof),
                lambda t: _torch_reduce(torch, name, t, axis, True, ddof), [a], rng, what=f"{name}(ddof={ddof})")


STD_ZERO = [([2.0], None), ([3.0, 3.0, 3.0], None), ([[1.0, 1.0], [2.0, 3.0]], -1), (2.5, None)]


@pytest.mark.parametrize("a,axis", STD_ZERO, ids=["one-element", "constant", "constant-row", "0d"])
def test_std_gradient_where_the_std_is_zero(torch, a, axis):
    """std is sqrt(var): where var is 0 (one element, or all equal) PyTorch's gradient is 0,
    not 0/0 (the subgradient at the kink; for one element std is constantly 0, so 0 is the
    derivative). NaN there poisons every gradient of a model that normalises a constant row."""
    a = np.array(a)
    x = tg.tensor(a, requires_grad=True)
    tg.std(x, axis=axis).sum().backward()
    xt = torch.tensor(a, dtype=torch.float64, requires_grad=True)
    _torch_reduce(torch, "std", xt, axis, False).sum().backward()
    assert np.isfinite(xt.grad.numpy()).all()
    assert_array_close(x.grad.numpy(), xt.grad.numpy(), TORCH_REL, what=f"std gradient of {a.tolist()}")


def test_var_with_ddof_at_least_the_count_is_not_negative():
    # NumPy divides by max(n - ddof, 0): inf (a RuntimeWarning), never a negative variance
    a = np.array([2.0, 3.0])
    for ddof in (2, 3):
        v = tg.var(tg.tensor(a), ddof=ddof).item()
        assert v == math.inf, f"var of {a.tolist()} with ddof={ddof}: {v}"


def test_var_std_defaults_are_numpy_ddof_0():
    a = np.array([1.0, 2.0, 4.0, 7.0])
    assert math.isclose(tg.var(tg.tensor(a)).item(), float(np.var(a)), rel_tol=1e-15)
    assert math.isclose(tg.tensor(a).std().item(), float(np.std(a)), rel_tol=1e-15)
    assert math.isclose(tg.var(tg.tensor(a), ddof=1).item(), float(np.var(a, ddof=1)), rel_tol=1e-15)


@pytest.mark.parametrize("name", ["max", "min"])
def test_max_min_ties_share_the_gradient(torch, name):
    sign = 1.0 if name == "max" else -1.0
    a = sign * np.array([[1.0, 3.0, 3.0, 2.0], [5.0, 5.0, 5.0, -1.0], [0.0, 0.0, 0.0, 0.0]])
    for axis in (None, 0, 1):
        x = tg.tensor(a, requires_grad=True)
        getattr(tg, name)(x, axis=axis).sum().backward()
        xt = torch.tensor(a, dtype=torch.float64, requires_grad=True)
        _torch_reduce(torch, name, xt, axis, False).sum().backward()
        assert_array_close(x.grad.numpy(), xt.grad.numpy(), 1e-15, what=f"{name}(axis={axis}) with ties")
    x = tg.tensor(a, requires_grad=True)
    getattr(tg, name)(x, axis=1).sum().backward()  # NumPy's spelling: ties share
    third = 1.0 / 3.0
    assert_array_close(x.grad.numpy(), [[0, 0.5, 0.5, 0], [third, third, third, 0], [0.25] * 4], 1e-15)
    x = tg.tensor(a, requires_grad=True)
    getattr(tg, name)(x, 1).values.sum().backward()  # PyTorch's max(t, dim): the index taken
    assert_array_close(x.grad.numpy(), [[0, 1, 0, 0], [1, 0, 0, 0], [1, 0, 0, 0]], 0)
    # the method spelling of the reduction
    x = tg.tensor(a, requires_grad=True)
    getattr(x, name)(axis=1, keepdims=True).sum().backward()
    assert_array_close(x.grad.numpy(), [[0, 0.5, 0.5, 0], [third, third, third, 0], [0.25] * 4], 1e-15)


@pytest.mark.parametrize("name", ["max", "min", "amax", "amin"])
def test_max_min_reduction_spellings(name):
    a = np.array([[1.0, 7.0, -3.0], [4.0, 2.0, 9.0]])
    np_fn = np.max if name.endswith("max") else np.min
    t = tg.tensor(a)
    fn = getattr(tg, name)
    assert fn(t).shape == () and fn(t).item() == np_fn(a)
    r0 = fn(t, 0)
    if name in ("max", "min"):  # PyTorch's (values, indices) for a positional dim
        assert r0.indices.numpy().tolist() == (np.argmax if name == "max" else np.argmin)(a, 0).tolist()
        r0 = r0.values
    assert r0.numpy().tolist() == np_fn(a, 0).tolist()
    assert fn(t, axis=1).numpy().tolist() == np_fn(a, axis=1).tolist()
    assert fn(t, axis=-1, keepdims=True).numpy().tolist() == np_fn(a, axis=-1, keepdims=True).tolist()
    assert fn(t, axis=(0, 1)).item() == np_fn(a)
    if name in ("max", "min"):
        assert getattr(t, name)().item() == np_fn(a)
        assert getattr(t, name)(axis=0, keepdims=True).numpy().tolist() == np_fn(a, axis=0, keepdims=True).tolist()
        assert getattr(t, name)(1).values.numpy().tolist() == np_fn(a, 1).tolist()


PROD_ZEROS = [[2.0, 0.0, 3.0], [0.0, 0.0, 3.0], [0.0, 0.0, 0.0], [[1.5, 0.0], [0.0, 0.0], [2.0, -1.0]]]


@pytest.mark.parametrize("a", PROD_ZEROS, ids=["one-zero", "two-zeros", "all-zeros", "2d"])
def test_prod_gradient_is_exact_with_zeros(torch, a):
    a = np.array(a)
    axes = [None] + list(range(a.ndim))
    for axis in axes:
        x = tg.tensor(a, requires_grad=True)
        tg.prod(x, axis=axis).sum().backward()
        xt = torch.tensor(a, dtype=torch.float64, requires_grad=True)
        _torch_reduce(torch, "prod", xt, axis, False).sum().backward()
        assert_array_close(x.grad.numpy(), xt.grad.numpy(), TORCH_REL, what=f"prod(axis={axis}) of {a.tolist()}")
    x = tg.tensor([2.0, 0.0, 3.0], requires_grad=True)
    x.prod().backward()
    assert x.grad.numpy().tolist() == [0.0, 6.0, 0.0]


def test_logsumexp_does_not_overflow(torch):
    a = np.array([[1000.0, 1000.0, 990.0], [-1000.0, -1001.0, -1e4]])
    x = tg.tensor(a, requires_grad=True)
    r = tg.logsumexp(x, axis=1)
    assert np.isfinite(r.numpy()).all()
    assert_array_close(r.numpy(), _np_logsumexp(a, axis=1), 1e-15)
    r.sum().backward()
    xt = torch.tensor(a, dtype=torch.float64, requires_grad=True)
    torch.logsumexp(xt, dim=1).sum().backward()
    assert_array_close(x.grad.numpy(), xt.grad.numpy(), 1e-14)
    assert math.isclose(tg.logsumexp(tg.tensor([1000.0, 1000.0])).item(), 1000.0 + math.log(2.0), rel_tol=1e-15)


EMPTY_REDUCTIONS = [((0,), None), ((0, 3), 0), ((0, 3), 1), ((2, 0), 1), ((2, 0), 0), ((2, 0, 3), (0, 2))]


@pytest.mark.parametrize("shape,axis", EMPTY_REDUCTIONS, ids=[f"{shape_id([s])}-axis{a}" for s, a in EMPTY_REDUCTIONS])
@pytest.mark.parametrize("name", ["sum", "prod", "max", "min", "mean", "logsumexp"])
def test_reductions_of_empty_tensors(name, shape, axis, rng):
    """Like NumPy: sum/prod/logsumexp of nothing are 0/1/-inf, mean is NaN (NumPy warns),
    and max/min of nothing are errors; reducing a non-empty axis of an empty tensor gives an
    empty result. The gradient of an empty input is an empty array of its shape."""
    a = np.zeros(shape)
    np_name = {"logsumexp": None}.get(name, name)
    with np.errstate(all="ignore"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                expected = getattr(np, np_name)(a, axis=axis) if np_name else np.log(np.sum(np.exp(a), axis=axis))
            except ValueError:
                expected = None
    x = tg.tensor(a, requires_grad=True)
    if expected is None:
        with pytest.raises((RuntimeError, ValueError), match="zero-size"):
            getattr(tg, name)(x, axis=axis)
        return
    r = getattr(tg, name)(x, axis=axis)
    assert_array_close(r.numpy(), expected, 1e-15, what=f"{name} of {shape} over {axis}")
    r.backward(gradient=np.ones(r.shape))
    assert x.grad is not None and x.grad.shape == shape


# --- softmax -----------------------------------------------------------------------------------

def _np_softmax(a, axis):
    e = np.exp(a - np.max(a, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


SOFTMAX_CASES = [((5,), -1), ((5,), 0), ((2, 3), -1), ((2, 3), 0), ((2, 3, 4), 1), ((1, 1), -1), ((0, 3), -1)]


@pytest.mark.parametrize("shape,axis", SOFTMAX_CASES, ids=[f"{shape_id([s])}-axis{a}" for s, a in SOFTMAX_CASES])
@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax(torch, name, shape, axis, rng):
    a = rng.uniform(-3.0, 3.0, size=shape)
    ref = (lambda x: _np_softmax(x, axis)) if name == "softmax" else (lambda x: np.log(_np_softmax(x, axis)))
    check_fd(lambda x: getattr(tg, name)(x, axis=axis), [a], rng, ref, REDUCE_REL, what=f"{name}(axis={axis})")
    check_fd(lambda x: getattr(x, name)(axis), [a], rng, ref, REDUCE_REL, what=f"Tensor.{name}({axis})")
    check_torch(torch, lambda x: getattr(tg, name)(x, axis=axis), lambda t: getattr(torch, name)(t, dim=axis),
                [a], rng, what=f"{name}(axis={axis})")


def test_softmax_default_axis_is_last_and_stable():
    a = np.array([[1000.0, 1001.0, 999.0], [-5.0, 0.0, 5.0]])
    s = tg.softmax(tg.tensor(a))
    assert np.isfinite(s.numpy()).all()
    assert_array_close(s.numpy(), _np_softmax(a, -1), 1e-14)
    assert_array_close(s.numpy().sum(axis=-1), [1.0, 1.0], 1e-15)
    ls = tg.log_softmax(tg.tensor(a))
    assert_array_close(ls.numpy(), a - _np_logsumexp(a, axis=-1, keepdims=True), 1e-14)


@pytest.mark.parametrize("name", ["sum", "mean", "max", "min", "prod", "var", "std", "logsumexp", "softmax",
                                  "log_softmax"])
def test_reductions_float32_against_float64(name, rng):
    a = _reduce_input(rng, name if name in REDUCE_REFS else "sum", (3, 4))
    if name in ("softmax", "log_softmax"):
        check_float32(lambda x: getattr(tg, name)(x, axis=0), [a], rng, what=name)
    else:
        check_float32(lambda x: getattr(tg, name)(x, axis=1), [a], rng, what=f"{name}(axis=1)")
        check_float32(lambda x: getattr(tg, name)(x), [a], rng, what=f"{name}()")


# --- linear algebra ----------------------------------------------------------------------------

MATMUL_SHAPES = [
    ((3,), (3,)),
    ((2, 3), (3,)),
    ((3,), (3, 4)),
    ((2, 3), (3, 4)),
    ((1, 1), (1, 1)),
    ((2, 2, 3), (3, 4)),
    ((3,), (2, 3, 2)),
    ((2, 2, 3), (2, 3, 1)),
    ((2, 1, 2, 3), (3, 3, 2)),
    ((0, 3), (3, 2)),
    ((2, 0), (0, 3)),
    ((3, 0), (0,)),
]


@pytest.mark.parametrize("shape_a,shape_b", MATMUL_SHAPES, ids=[shape_id(s) for s in MATMUL_SHAPES])
def test_matmul(torch, shape_a, shape_b, rng):
    a, b = rng.uniform(-2.0, 2.0, size=shape_a), rng.uniform(-2.0, 2.0, size=shape_b)
    check_fd(tg.matmul, [a, b], rng, np.matmul, REDUCE_REL, what="tg.matmul")
    check_fd(operator.matmul, [a, b], rng, np.matmul, REDUCE_REL, what="@")
    check_torch(torch, tg.matmul, torch.matmul, [a, b], rng, what="matmul")


def test_matmul_with_arrays_and_float32(rng):
    a, b = rng.uniform(-2.0, 2.0, size=(3, 4)), rng.uniform(-2.0, 2.0, size=(4, 2))
    check_fd(lambda x: x @ b, [a], rng, lambda x: x @ b, REDUCE_REL, what="Tensor @ ndarray")
    check_fd(lambda y: a @ y, [b], rng, lambda y: a @ y, REDUCE_REL, what="ndarray @ Tensor")
    check_float32(tg.matmul, [a, b], rng, what="matmul")
    check_float32(tg.matmul, [rng.uniform(-1, 1, (2, 3, 5)), rng.uniform(-1, 1, (5,))], rng, what="batched matmul")


def test_matmul_large_enough_for_blas(torch, rng):
    # sizes past any small-matrix path of the kernel, both dtypes
    a, b = rng.normal(size=(67, 129)), rng.normal(size=(129, 33))
    x, y = tg.tensor(a, requires_grad=True), tg.tensor(b, requires_grad=True)
    out = x @ y
    assert_array_close(out.numpy(), a @ b, 1e-12, 1e-12)
    w = rng.normal(size=(67, 33))
    out.backward(gradient=w)
    assert_array_close(x.grad.numpy(), w @ b.T, 1e-12, 1e-12)
    assert_array_close(y.grad.numpy(), a.T @ w, 1e-12, 1e-12)
    out32 = tg.tensor(a, dtype=tg.float32) @ tg.tensor(b, dtype=tg.float32)
    assert out32.dtype == np.float32
    exact = a.astype(np.float32).astype(np.float64) @ b.astype(np.float32).astype(np.float64)
    # float32 products: off by at most k eps32 (|a| @ |b|), k = 129 terms; 1e-5 > 129 * 6e-8
    bound = 1e-5 * (np.abs(a.astype(np.float32)).astype(np.float64) @ np.abs(b.astype(np.float32)).astype(np.float64))
    assert_array_close(out32.numpy(), exact, 0.0, bound)


def test_dot_and_outer(torch, rng):
    a, b = rng.uniform(-2, 2, 4), rng.uniform(-2, 2, 4)
    check_fd(tg.dot, [a, b], rng, np.dot, REDUCE_REL, what="tg.dot")
    check_fd(lambda x, y: x.dot(y), [a, b], rng, np.dot, REDUCE_REL, what="Tensor.dot")
    check_torch(torch, tg.dot, torch.dot, [a, b], rng, what="dot")
    c = rng.uniform(-2, 2, 3)
    check_fd(tg.outer, [a, c], rng, np.outer, what="tg.outer")
    check_torch(torch, tg.outer, torch.outer, [a, c], rng, what="outer")
    m = rng.uniform(-2, 2, (2, 2))
    check_fd(tg.outer, [m, c], rng, np.outer, what="tg.outer of a 2-d operand (flattened, as numpy.outer)")
    check_fd(tg.outer, [np.zeros(0), c], rng, np.outer, what="tg.outer of an empty operand")


# --- shapes ------------------------------------------------------------------------------------

SHAPE_OPS: list[Tuple[str, Shape, Callable[[Any], Any], Callable[[Any], Any], Any]] = [
    # (id, input shape, tapegrad, numpy, torch or None)
    ("reshape", (2, 3), lambda x: x.reshape(3, 2), lambda a: a.reshape(3, 2), lambda t: t.reshape(3, 2)),
    ("reshape-tuple", (2, 3), lambda x: x.reshape((6,)), lambda a: a.reshape(6), lambda t: t.reshape(6)),
    ("reshape-infer", (2, 3, 2), lambda x: x.reshape(-1, 4), lambda a: a.reshape(-1, 4), lambda t: t.reshape(-1, 4)),
    ("tg.reshape", (2, 3), lambda x: tg.reshape(x, (3, 1, 2)), lambda a: a.reshape(3, 1, 2),
     lambda t: t.reshape(3, 1, 2)),
    ("reshape-0d", (), lambda x: x.reshape(1, 1), lambda a: a.reshape(1, 1), lambda t: t.reshape(1, 1)),
    ("reshape-to-0d", (1,), lambda x: x.reshape(()), lambda a: a.reshape(()), lambda t: t.reshape(())),
    ("reshape-empty", (0, 3), lambda x: x.reshape(3, 0), lambda a: a.reshape(3, 0), lambda t: t.reshape(3, 0)),
    ("flatten", (2, 3), lambda x: x.flatten(), lambda a: a.flatten(), lambda t: t.flatten()),
    ("T", (2, 3), lambda x: x.T, lambda a: a.T, lambda t: t.T),
    ("T-3d", (2, 3, 4), lambda x: x.T, lambda a: a.T, lambda t: t.permute(2, 1, 0)),
    ("transpose-axes", (2, 3, 4), lambda x: x.transpose(1, 2, 0), lambda a: a.transpose(1, 2, 0),
     lambda t: t.permute(1, 2, 0)),
    ("tg.transpose", (2, 3, 4), lambda x: tg.transpose(x, (2, 0, 1)), lambda a: a.transpose(2, 0, 1),
     lambda t: t.permute(2, 0, 1)),
    ("tg.transpose-default", (2, 3), lambda x: tg.transpose(x), lambda a: a.T, lambda t: t.T),
    ("permute", (2, 3, 4), lambda x: x.permute(2, 0, 1), lambda a: a.transpose(2, 0, 1),
     lambda t: t.permute(2, 0, 1)),
    ("tg.permute", (2, 3, 4), lambda x: tg.permute(x, (0, 2, 1)), lambda a: a.transpose(0, 2, 1),
     lambda t: t.permute(0, 2, 1)),
    ("squeeze", (1, 3, 1), lambda x: x.squeeze(), lambda a: a.squeeze(), lambda t: t.squeeze()),
    ("squeeze-axis", (1, 3, 1), lambda x: x.squeeze(2), lambda a: a.squeeze(2), lambda t: t.squeeze(2)),
    ("tg.squeeze-axes", (1, 3, 1), lambda x: tg.squeeze(x, (0, -1)), lambda a: a.squeeze((0, -1)),
     lambda t: t.squeeze((0, 2))),
    ("unsqueeze", (2, 3), lambda x: x.unsqueeze(1), lambda a: np.expand_dims(a, 1), lambda t: t.unsqueeze(1)),
    ("unsqueeze-end", (2, 3), lambda x: tg.unsqueeze(x, -1), lambda a: np.expand_dims(a, -1),
     lambda t: t.unsqueeze(-1)),
    ("expand_dims", (2, 3), lambda x: tg.expand_dims(x, 0), lambda a: np.expand_dims(a, 0),
     lambda t: t.unsqueeze(0)),
    ("expand_dims-0d", (), lambda x: x.expand_dims(0), lambda a: np.expand_dims(a, 0), lambda t: t.unsqueeze(0)),
    ("broadcast_to", (3,), lambda x: tg.broadcast_to(x, (2, 3)), lambda a: np.broadcast_to(a, (2, 3)),
     lambda t: t.expand(2, 3)),
    ("broadcast_to-middle", (2, 1, 3), lambda x: x.broadcast_to((4, 2, 5, 3)),
     lambda a: np.broadcast_to(a, (4, 2, 5, 3)), lambda t: t.expand(4, 2, 5, 3)),
    ("broadcast_to-0d", (), lambda x: tg.broadcast_to(x, (2, 2)), lambda a: np.broadcast_to(a, (2, 2)),
     lambda t: t.expand(2, 2)),
    ("broadcast_to-empty", (1, 3), lambda x: tg.broadcast_to(x, (0, 3)), lambda a: np.broadcast_to(a, (0, 3)),
     lambda t: t.expand(0, 3)),
    ("clone", (2, 3), lambda x: x.clone(), lambda a: a.copy(), lambda t: t.clone()),
    ("clip", (3, 4), lambda x: tg.clip(x, -0.5, 0.7), lambda a: np.clip(a, -0.5, 0.7),
     lambda t: t.clamp(-0.5, 0.7)),
    ("clip-method", (3, 4), lambda x: x.clip(-1.0, 0.0), lambda a: np.clip(a, -1.0, 0.0),
     lambda t: t.clamp(-1.0, 0.0)),
]


@pytest.mark.parametrize("case", SHAPE_OPS, ids=[c[0] for c in SHAPE_OPS])
def test_shape_op(torch, case, rng):
    _, shape, f, ref, torch_f = case
    a = rng.uniform(-2.0, 2.0, size=shape)
    check_fd(f, [a], rng, ref, what=case[0])
    check_torch(torch, f, torch_f, [a], rng, what=case[0])


def test_clip_gradient_passes_at_the_bounds(torch):
    # like torch.clamp: 1 where a_min <= x <= a_max (the bounds included), 0 outside
    a = np.array([-2.0, -1.0, -0.5, 0.0, 1.0, 1.5])
    x = tg.tensor(a, requires_grad=True)
    y = tg.clip(x, -1.0, 1.0)
    assert y.numpy().tolist() == [-1.0, -1.0, -0.5, 0.0, 1.0, 1.0]
    y.sum().backward()
    assert x.grad.numpy().tolist() == [0.0, 1.0, 1.0, 1.0, 1.0, 0.0]
    xt = torch.tensor(a, requires_grad=True)
    torch.clamp(xt, -1.0, 1.0).sum().backward()
    assert x.grad.numpy().tolist() == xt.grad.numpy().tolist()


def test_clip_with_a_min_above_a_max_gives_a_max():
    # NumPy and torch.clamp: when a_min > a_max every element becomes a_max
    a = np.array([0.0, 1.5, 3.0])
    expected = np.clip(a, 2.0, 1.0)
    assert expected.tolist() == [1.0, 1.0, 1.0]
    assert tg.clip(tg.tensor(a), 2.0, 1.0).numpy().tolist() == expected.tolist()


def test_float32_shape_ops_keep_dtype(rng):
    a = rng.uniform(-1, 1, (2, 3))
    for label, f in [("reshape", lambda x: x.reshape(3, 2)), ("T", lambda x: x.T),
                     ("broadcast_to", lambda x: tg.broadcast_to(x, (4, 2, 3))), ("clip", lambda x: x.clip(-0.5, 0.5)),
                     ("unsqueeze", lambda x: x.unsqueeze(0)), ("concatenate", lambda x: tg.concatenate([x, x], 1)),
                     ("stack", lambda x: tg.stack([x, x * 2.0])), ("getitem", lambda x: x[[1, 0, 1], 1:])]:
        check_float32(f, [a], rng, what=label)


# --- concatenate, stack, where ------------------------------------------------------------------

CONCAT_CASES = [
    ([(2, 3), (4, 3)], 0),
    ([(2, 3), (2, 1), (2, 2)], 1),
    ([(2, 3), (2, 3)], -1),
    ([(3,), (0,), (2,)], 0),
    ([(2, 2, 1), (2, 2, 3)], 2),
    ([(1, 2)], 0),
]


@pytest.mark.parametrize("shapes,axis", CONCAT_CASES, ids=[f"{shape_id(s)}-axis{a}" for s, a in CONCAT_CASES])
def test_concatenate(torch, shapes, axis, rng):
    arrays = [rng.uniform(-2, 2, s) for s in shapes]
    check_fd(lambda *xs: tg.concatenate(list(xs), axis=axis), arrays, rng,
             lambda *xs: np.concatenate(xs, axis=axis), what=f"concatenate(axis={axis})")
    check_torch(torch, lambda *xs: tg.concatenate(xs, axis), lambda *ts: torch.cat(ts, dim=axis), arrays, rng,
                what=f"concatenate(axis={axis})")


STACK_CASES = [([(3,), (3,)], 0), ([(3,), (3,), (3,)], 1), ([(2, 3)] * 2, -1), ([()] * 3, 0), ([(0, 2)] * 2, 1)]


@pytest.mark.parametrize("shapes,axis", STACK_CASES, ids=[f"{shape_id(s)}-axis{a}" for s, a in STACK_CASES])
def test_stack(torch, shapes, axis, rng):
    arrays = [rng.uniform(-2, 2, s) for s in shapes]
    check_fd(lambda *xs: tg.stack(list(xs), axis=axis), arrays, rng, lambda *xs: np.stack(xs, axis=axis),
             what=f"stack(axis={axis})")
    check_torch(torch, lambda *xs: tg.stack(xs, axis), lambda *ts: torch.stack(ts, dim=axis), arrays, rng,
                what=f"stack(axis={axis})")


def test_concatenate_and_stack_the_same_tensor_twice(rng):
    a = rng.uniform(-2, 2, (2, 3))
    check_fd(lambda x: tg.concatenate([x, x * 2.0, x]), [a], rng, lambda x: np.concatenate([x, 2 * x, x]))
    x = tg.tensor(a, requires_grad=True)
    tg.stack([x, x, x]).sum().backward()
    assert x.grad.numpy().tolist() == np.full((2, 3), 3.0).tolist()


WHERE_CASES = [((2, 3), (2, 3), (2, 3)), ((2, 3), (3,), ()), ((3,), (2, 1), (1, 3)), ((), (2, 2), (2, 2)),
               ((0, 3), (3,), (0, 3))]


@pytest.mark.parametrize("shape_c,shape_a,shape_b", WHERE_CASES, ids=[shape_id(s) for s in WHERE_CASES])
def test_where(torch, shape_c, shape_a, shape_b, rng):
    cond = rng.uniform(size=shape_c) < 0.5
    a, b = rng.uniform(-2, 2, shape_a), rng.uniform(-2, 2, shape_b)
    check_fd(lambda x, y: tg.where(tg.tensor(cond), x, y), [a, b], rng, lambda x, y: np.where(cond, x, y),
             what="where(Tensor cond, ...)")
    check_fd(lambda x, y: tg.where(cond, x, y), [a, b], rng, lambda x, y: np.where(cond, x, y),
             what="where(ndarray cond, ...)")
    check_torch(torch, lambda x, y: tg.where(cond, x, y),
                lambda x, y: torch.where(torch.from_numpy(np.asarray(cond)), x, y), [a, b], rng, what="where")


def test_where_with_a_scalar_and_a_comparison(rng):
    a = rng.uniform(-2, 2, (3, 4))
    check_fd(lambda x: tg.where(x > 0.0, x, 0.0), [a], rng, lambda x: np.where(x > 0, x, 0.0), what="where(x>0, x, 0)")
    check_fd(lambda x: tg.where(x > 0.0, 1.0, x * x), [a], rng, lambda x: np.where(x > 0, 1.0, x * x),
             what="where(x>0, 1, x*x)")
    x = tg.tensor([1.0, -2.0, 3.0], requires_grad=True)
    y = tg.where(x < 0.0, -x, x * 3.0)
    assert y.numpy().tolist() == [3.0, 2.0, 9.0]
    y.sum().backward()
    assert x.grad.numpy().tolist() == [3.0, -1.0, 3.0]


# --- indexing ----------------------------------------------------------------------------------

INDEX_KEYS: list[Tuple[str, Shape, Any, bool]] = [
    # (id, shape, key, torch accepts the key)
    ("int", (4, 3), 1, True),
    ("int-neg", (4, 3), -1, True),
    ("int-1d", (5,), 2, True),
    ("int-int", (4, 3), (1, 2), True),
    ("int-int-neg", (4, 3), (-4, -1), True),
    ("slice", (5,), slice(1, 4), True),
    ("slice-rows", (4, 3), slice(1, 3), True),
    ("slice-open", (4, 3), slice(2, None), True),
    ("slice-step", (7,), slice(None, None, 2), True),
    ("slice-neg-step", (5, 2), slice(None, None, -1), False),
    ("slice-neg-step-2", (6,), slice(4, 0, -2), False),
    ("slice-empty", (4, 3), slice(3, 1), True),
    ("slice-past-end", (4, 3), slice(2, 100), True),
    ("column", (4, 3), (slice(None), 1), True),
    ("block", (4, 5), (slice(1, 3), slice(0, 5, 2)), True),
    ("ellipsis", (2, 3, 4), (Ellipsis, 1), True),
    ("ellipsis-mid", (2, 3, 4), (0, Ellipsis, slice(1, 3)), True),
    ("ellipsis-all", (2, 3), Ellipsis, True),
    ("none", (4, 3), None, True),
    ("none-mid", (4, 3), (slice(None), None, 1), True),
    ("int-none", (4, 3), (2, None), True),
    ("0d-ellipsis", (), Ellipsis, True),
    ("0d-none", (), None, True),
    ("int-array", (5,), [0, 3, 4], True),
    ("int-array-repeated", (5,), [1, 1, 4, 1], True),
    ("int-array-neg", (5,), [-1, 0, -1], True),
    ("int-array-2d-index", (5,), np.array([[0, 1], [1, 4]]), True),
    ("int-array-rows", (4, 3), [2, 0, 2], True),
    ("int-array-pairs", (4, 3), ([0, 1, 3, 0], [2, 2, 0, 2]), True),
    ("int-array-and-slice", (4, 3), (slice(1, None), [0, 0]), True),
    ("int-array-empty", (4, 3), np.array([], dtype=np.int64), True),
    ("bool-mask-1d", (5,), np.array([True, False, True, True, False]), True),
    ("bool-mask-2d", (3, 4), "mask>0", True),
    ("bool-mask-rows", (4, 3), np.array([False, True, False, True]), True),
    ("bool-mask-none", (4,), np.zeros(4, dtype=bool), True),
    ("tensor-int-index", (5,), "tensor[4,0,4]", True),
]


def _resolve_key(key, a):
    if isinstance(key, str) and key == "mask>0":
        return a > 0
    if isinstance(key, str) and key.startswith("tensor"):
        return np.array([4, 0, 4])
    return key


def _tg_key(key, a):
    if isinstance(key, str) and key == "mask>0":
        return tg.tensor(a) > 0.0  # a bool Tensor
    if isinstance(key, str) and key.startswith("tensor"):
        return tg.tensor([4, 0, 4])  # an int64 Tensor
    return key


def _torch_key(torch, key):
    if isinstance(key, np.ndarray):
        return torch.from_numpy(key)
    if isinstance(key, tuple):
        return tuple(torch.tensor(k) if isinstance(k, list) else k for k in key)
    return key


@pytest.mark.parametrize("case", INDEX_KEYS, ids=[c[0] for c in INDEX_KEYS])
def test_getitem_value(case, rng):
    _, shape, key, _ = case
    a = rng.uniform(-2, 2, shape)
    np_key, tg_key = _resolve_key(key, a), _tg_key(key, a)
    t = tg.tensor(a)
    r = t[tg_key]
    expected = a[np_key]
    assert isinstance(r, tg.Tensor)
    assert r.shape == expected.shape, f"{case[0]}: shape {r.shape}, NumPy {expected.shape}"
    assert r.size == expected.size, f"{case[0]}: size {r.size} for shape {r.shape}"
    assert r.ndim == expected.ndim
    assert r.numpy().tolist() == expected.tolist()
    assert r.flatten().numpy().tolist() == expected.ravel().tolist()
    assert r.reshape(-1).shape == (expected.size,)


@pytest.mark.parametrize("case", INDEX_KEYS, ids=[c[0] for c in INDEX_KEYS])
def test_getitem_gradient(torch, case, rng):
    _, shape, key, torch_ok = case
    a = rng.uniform(-2, 2, shape)
    np_key, tg_key = _resolve_key(key, a), _tg_key(key, a)
    check_fd(lambda x: x[tg_key], [a], rng, lambda x: x[np_key], what=f"x[{case[0]}]")
    if torch_ok:
        check_torch(torch, lambda x: x[tg_key], lambda t: t[_torch_key(torch, np_key)], [a], rng, what=case[0])


def test_repeated_indices_accumulate():
    x = tg.tensor([1.0, 2.0, 3.0, 4.0], requires_grad=True)
    y = x[[0, 0, 2, 0, -1]]
    assert y.numpy().tolist() == [1.0, 1.0, 3.0, 1.0, 4.0]
    (y * tg.tensor([1.0, 10.0, 100.0, 1000.0, 5.0])).sum().backward()
    assert x.grad.numpy().tolist() == [1011.0, 0.0, 100.0, 5.0]
    m = tg.tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    m[[1, 1, 0], [2, 2, 2]].sum().backward()
    assert m.grad.numpy().tolist() == [[0.0, 0.0, 1.0], [0.0, 0.0, 2.0]]


def test_chained_indexing_and_use_of_the_parts():
    a = np.arange(12.0).reshape(3, 4)
    x = tg.tensor(a, requires_grad=True)
    y = x[1][2] * x[2, 3] + x[0][1:3].sum() + x[:, 0][-1]
    assert y.item() == a[1][2] * a[2, 3] + a[0][1:3].sum() + a[:, 0][-1]
    y.backward()
    expected = np.zeros((3, 4))
    expected[1, 2] += a[2, 3]
    expected[2, 3] += a[1, 2]
    expected[0, 1:3] += 1.0
    expected[2, 0] += 1.0
    assert x.grad.numpy().tolist() == expected.tolist()


def test_iterating_a_tensor_gives_its_rows():
    a = np.arange(6.0).reshape(3, 2)
    x = tg.tensor(a, requires_grad=True)
    rows = list(x)
    assert len(rows) == 3
    assert [r.numpy().tolist() for r in rows] == a.tolist()
    total = rows[0] * 1.0 + rows[1] * 2.0 + rows[2] * 3.0
    total.sum().backward()
    assert x.grad.numpy().tolist() == [[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]]


def test_slices_of_a_slice(rng):
    a = rng.uniform(-2, 2, (6, 5))
    check_fd(lambda x: x[1:5][1:3, ::2][::-1], [a], rng, lambda x: x[1:5][1:3, ::2][::-1], what="nested slices")
    check_fd(lambda x: x[2:4].reshape(-1)[[0, 9, 9]], [a], rng, lambda x: x[2:4].reshape(-1)[[0, 9, 9]],
             what="slice, reshape, gather")
    check_fd(lambda x: (x[1:3] * x[3:5]).T, [a], rng, lambda x: (x[1:3] * x[3:5]).T, what="product of two slices")


# --- Var and 0-d tensors -------------------------------------------------------------------------

@pytest.mark.parametrize("op", [operator.add, operator.sub, operator.mul, operator.truediv, operator.pow],
                         ids=["add", "sub", "mul", "div", "pow"])
def test_var_and_0d_tensor_mix(torch, op):
    for var_first in (True, False):
        v = tg.Var(1.5)
        t = tg.tensor(0.75, requires_grad=True)
        r = op(v, t) if var_first else op(t, v)
        assert isinstance(r, tg.Tensor)
        assert r.shape == () and r.requires_grad
        r.backward()
        vt = torch.tensor(1.5, dtype=torch.float64, requires_grad=True)
        tt = torch.tensor(0.75, dtype=torch.float64, requires_grad=True)
        rt = op(vt, tt) if var_first else op(tt, vt)
        rt.backward()
        assert math.isclose(r.item(), rt.item(), rel_tol=1e-15)
        assert isinstance(v.grad, float)
        assert math.isclose(v.grad, vt.grad.item(), rel_tol=1e-15), (v.grad, vt.grad.item())
        assert math.isclose(t.grad.item(), tt.grad.item(), rel_tol=1e-15)


def test_var_graph_flows_into_a_tensor_graph():
    a = tg.Var(2.0)
    b = a * a + 1.0  # a recorded Var (5)
    x = tg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = (x * b).sum() + tg.exp(tg.tensor(0.0)) * a  # Tensor result
    assert isinstance(y, tg.Tensor)
    assert y.item() == 5.0 * 6.0 + 2.0
    y.backward()
    assert x.grad.numpy().tolist() == [5.0, 5.0, 5.0]
    assert a.grad == 6.0 * 2.0 * 2.0 + 1.0  # d/da (sum(x) (a^2 + 1) + a)


# --- large shapes: the vectorised and blocked paths, against PyTorch ---------------------------

@pytest.mark.parametrize("name", UNARY + BINARY)
def test_elementwise_large_against_torch(torch, name, rng):
    row = ELEMENTWISE[name]
    for shapes in ([(300, 257)], [(1000, 3)]) if row.arity == 1 else ([(300, 1), (257,)], [(2, 1, 513), (7, 1)]):
        arrays = [rng.uniform(lo, hi, s) for (lo, hi), s in zip(OPS[name].domain, shapes)]
        check_torch(torch, tg_elementwise(name), torch_fn(torch, row.torch), arrays, rng, what=f"{name} {shapes}")


LARGE_REDUCTIONS = [((10_000,), None), ((64, 33, 17), 1), ((64, 33, 17), (0, 2)), ((3, 5000), 1), ((5000, 3), 0),
                    ((129, 257), None), ((1, 4099), -1)]


@pytest.mark.parametrize("name", list(REDUCE_REFS))
def test_reductions_large_against_torch(torch, name, rng):
    for shape, axis in LARGE_REDUCTIONS:
        a = rng.uniform(0.99, 1.01, shape) if name == "prod" else _reduce_input(rng, name, shape)
        check_torch(torch, lambda x, axis=axis: getattr(tg, name)(x, axis=axis),
                    lambda t, axis=axis: _torch_reduce(torch, name, t, axis, False), [a], rng,
                    what=f"{name} {shape} axis={axis}")
    if name in ("sum", "mean", "var", "logsumexp"):
        check_float32(lambda x: getattr(tg, name)(x, axis=1), [rng.uniform(0.5, 1.5, (8, 4099))], rng, what=name)


def test_sum_of_a_long_row_is_accurate():
    # a million terms: the error stays at the level of NumPy's pairwise sum, far below n eps
    x = np.random.default_rng(11).standard_normal(1_000_003) * 1e3
    exact = math.fsum(x)
    scale = float(np.sum(np.abs(x)))
    assert abs(tg.tensor(x).sum().item() - exact) <= 1e-13 * scale
    assert abs(tg.tensor(x.reshape(1, -1)).sum(axis=1).item() - exact) <= 1e-13 * scale


def test_large_shape_ops_against_torch(torch, rng):
    a = rng.standard_normal((500, 300))
    idx = rng.integers(-500, 500, 2000)
    cases = [
        ("softmax", lambda x: tg.softmax(x, axis=0), lambda t: torch.softmax(t, dim=0), [a]),
        ("log_softmax", lambda x: tg.log_softmax(x), lambda t: torch.log_softmax(t, dim=-1), [a]),
        ("matmul", tg.matmul, torch.matmul, [rng.standard_normal((200, 100)), rng.standard_normal((100, 300))]),
        ("batched matmul", tg.matmul, torch.matmul, [rng.standard_normal((5, 1, 70, 40)),
                                                     rng.standard_normal((3, 40, 90))]),
        ("gather", lambda x: x[idx], lambda t: t[torch.from_numpy(idx)], [a]),
        ("strided slice", lambda x: x[10:400:3, 1::2], lambda t: t[10:400:3, 1::2], [a]),
        ("mask", lambda x: x[x > 0.5], lambda t: t[t > 0.5], [a]),
        ("T", lambda x: x.T * 1.0, lambda t: t.T * 1.0, [a]),
        ("transpose 3-d", lambda x: x.reshape(50, 10, 300).transpose(2, 0, 1),
         lambda t: t.reshape(50, 10, 300).permute(2, 0, 1), [a]),
        ("broadcast_to", lambda x: tg.broadcast_to(x[:, :1], (500, 300)), lambda t: t[:, :1].expand(500, 300), [a]),
        ("concatenate", lambda x, y: tg.concatenate([x, y], axis=1), lambda x, y: torch.cat([x, y], 1),
         [a, rng.standard_normal((500, 17))]),
        ("where", lambda x, y: tg.where(x > 0.0, x, y), lambda x, y: torch.where(x > 0, x, y),
         [a, rng.standard_normal(300)]),
    ]
    for label, f, tf, arrays in cases:
        check_torch(torch, f, tf, arrays, rng, what=label)
