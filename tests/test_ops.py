"""Every op of tapegrad's op table: its value, its derivative(s), against references.

ROWS is the single table of this file: one row per op of ``tg.op_table`` with a reference
forward function (NumPy or math), the matching PyTorch function, and points to test at
(inside the domain, near its edges). Adding an op to cpp/include/tapegrad/ops.def without a
row here fails ``test_every_op_has_a_row``.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass
from typing import Callable, Sequence, Tuple, Union

import numpy as np
import pytest

import tapegrad as tg
from conftest import OPS, assert_close, central_difference, close, fd_step

Point = Union[float, Tuple[float, float]]


@dataclass(frozen=True)
class Row:
    arity: int
    ref: Callable[..., float]  # reference forward function on floats (NumPy / math)
    torch: str  # dotted path of the PyTorch function under `torch.`
    points: Sequence[Point]
    math_name: str | None = None  # the function of `math` that matches, if any


def _sigmoid(x: float) -> float:
    # 1 / (1 + e^-x) = exp(-softplus(-x)), accurate in both tails
    return float(np.exp(-np.logaddexp(0.0, -x)))


ROWS = {
    # --- unary ---------------------------------------------------------------------------
    "neg": Row(1, lambda x: -x, "neg", [-3.5, -1e-3, 0.0, 2.0, 1e10]),
    "exp": Row(1, math.exp, "exp", [-30.0, -1.0, 0.0, 0.5, 20.0], "exp"),
    "log": Row(1, math.log, "log", [1e-6, 0.1, 1.0, 2.5, 1e6], "log"),
    "log2": Row(1, math.log2, "log2", [1e-6, 0.1, 1.0, 2.5, 1e6], "log2"),
    "log1p": Row(1, math.log1p, "log1p", [-0.999, -0.5, 0.0, 1e-8, 3.0, 1e6], "log1p"),
    "expm1": Row(1, math.expm1, "expm1", [-20.0, -1.0, -1e-8, 0.0, 1e-8, 1.0, 20.0], "expm1"),
    "sqrt": Row(1, math.sqrt, "sqrt", [1e-6, 0.25, 2.0, 1e6], "sqrt"),
    "sin": Row(1, math.sin, "sin", [-3.0, -1.0, 0.0, 0.5, 2.0, 10.0], "sin"),
    "cos": Row(1, math.cos, "cos", [-3.0, -1.0, 0.0, 0.5, 2.0, 10.0], "cos"),
    "tan": Row(1, math.tan, "tan", [-1.5, -0.5, 0.0, 1.0, 1.5], "tan"),
    "asin": Row(1, math.asin, "asin", [-0.999, -0.5, 0.0, 0.3, 0.999], "asin"),
    "acos": Row(1, math.acos, "acos", [-0.999, -0.5, 0.0, 0.3, 0.999], "acos"),
    "atan": Row(1, math.atan, "atan", [-100.0, -1.0, 0.0, 0.5, 100.0], "atan"),
    "sinh": Row(1, math.sinh, "sinh", [-20.0, -1.0, 0.0, 1e-8, 2.0, 20.0], "sinh"),
    "cosh": Row(1, math.cosh, "cosh", [-20.0, -1.0, 0.0, 0.5, 3.0, 20.0], "cosh"),
    "tanh": Row(1, math.tanh, "tanh", [-20.0, -5.0, -1.0, 0.0, 0.5, 5.0, 20.0], "tanh"),
    "sigmoid": Row(1, _sigmoid, "sigmoid", [-40.0, -5.0, 0.0, 1.0, 5.0, 40.0]),
    "softplus": Row(1, lambda x: float(np.logaddexp(0.0, x)), "nn.functional.softplus",
                    [-40.0, -5.0, 0.0, 1.0, 5.0, 40.0]),
    "relu": Row(1, lambda x: max(x, 0.0), "relu", [-2.0, -1e-3, 1e-3, 3.0]),
    "abs": Row(1, abs, "abs", [-2.0, -1e-3, 1e-3, 3.0]),
    "erf": Row(1, math.erf, "erf", [-3.0, -0.5, 0.0, 1e-3, 1.0, 3.0], "erf"),
    # (piecewise constant: points off the jumps, where the slope is 0)
    "floor": Row(1, math.floor, "floor", [-3.5, -0.25, 0.5, 2.75], "floor"),
    "ceil": Row(1, math.ceil, "ceil", [-3.5, -0.25, 0.5, 2.75], "ceil"),
    "round": Row(1, lambda x: float(np.round(x)), "round", [-3.75, -0.25, 0.25, 2.75]),
    "trunc": Row(1, math.trunc, "trunc", [-3.5, -0.25, 0.5, 2.75], "trunc"),
    # --- binary --------------------------------------------------------------------------
    "add": Row(2, lambda x, y: x + y, "add", [(1.5, -2.25), (0.0, 3.0), (-4.0, 0.5)]),
    "sub": Row(2, lambda x, y: x - y, "sub", [(1.5, -2.25), (0.0, 3.0), (-4.0, 0.5)]),
    "mul": Row(2, lambda x, y: x * y, "mul", [(1.5, -2.25), (0.0, 3.0), (-4.0, 0.5), (1e3, 1e-3)]),
    "div": Row(2, lambda x, y: x / y, "div", [(1.5, -2.25), (0.0, 3.0), (-4.0, 0.5), (1.0, 1e-3), (1e3, 7.0)]),
    "pow": Row(2, math.pow, "pow",
               [(2.0, 3.0), (2.5, 2.5), (0.5, -1.5), (3.0, 0.5), (1e-3, 2.0), (10.0, -2.0),
                (1.5, 0.0), (-2.0, 3.0), (-1.5, 2.0)], "pow"),
    "atan2": Row(2, math.atan2, "atan2",
                 [(1.0, 1.0), (-1.0, 2.0), (1.0, -2.0), (-1.0, -2.0), (1e-3, 1.0), (3.0, 1e-3)], "atan2"),
    "min": Row(2, lambda x, y: float(np.minimum(x, y)), "minimum", [(1.0, 2.0), (2.0, 1.0), (-3.0, 0.5), (0.5, -3.0)]),
    "max": Row(2, lambda x, y: float(np.maximum(x, y)), "maximum", [(1.0, 2.0), (2.0, 1.0), (-3.0, 0.5), (0.5, -3.0)]),
}

UNARY_CASES = [pytest.param(n, x, id=f"{n}({x!r})") for n, r in ROWS.items() if r.arity == 1 for x in r.points]
BINARY_CASES = [pytest.param(n, x, y, id=f"{n}({x!r},{y!r})") for n, r in ROWS.items() if r.arity == 2
                for x, y in r.points]

VALUE_REL = 1e-14  # forward values against the references (a few ulp)
FD_REL = 2e-6  # derivatives against five-point central differences
TORCH_REL = 1e-12  # derivatives against PyTorch float64 autograd


def fd_abs_tolerance(f: Callable[[float], float], x: float) -> float:
    """A bound on the rounding error of the five-point stencil at x.

    Each of the four values is off by up to half an ulp, weighted 1, 8, 8, 1 and divided by
    12 h: about 1.5 eps |f| / h. Times 5 for safety. Where f' is far above f/h (almost
    everywhere) this is negligible against FD_REL; it matters only where f' is ~0.
    """
    h = fd_step(x)
    scale = max(abs(f(x + k * h)) for k in (-2, -1, 1, 2))
    return 8 * np.finfo(float).eps * scale / h if math.isfinite(scale) else 0.0


def tg_plain(name: str) -> Callable[..., float]:
    """tapegrad's own forward function on plain floats (the module function)."""
    return getattr(tg, name)


def torch_fn(torch, name: str):
    fn = torch
    for part in ROWS[name].torch.split("."):
        fn = getattr(fn, part)
    return fn


# --- the table is complete ----------------------------------------------------------------

def test_every_op_has_a_row():
    table = {name: row.arity for name, row in OPS.items()}
    assert len(table) == len(tg.op_table), "op_table lists a name twice"
    missing = sorted(set(table) - set(ROWS))
    assert not missing, f"ops of tg.op_table without a row in tests/test_ops.py ROWS: {missing}"
    extra = sorted(set(ROWS) - set(table))
    assert not extra, f"rows of ROWS that are not in tg.op_table: {extra}"
    for name, arity in table.items():
        assert ROWS[name].arity == arity, name
        assert ROWS[name].points, name


def test_every_op_is_a_function_and_a_method():
    for name in OPS:
        assert callable(getattr(tg, name)), name
        assert callable(getattr(tg.Var, name)), name
        assert callable(getattr(tg.Tensor, name)), name
        assert name in tg.__all__
    # min/max with two arguments are elementwise (the table's ops); with one, reductions.
    a, b = tg.Var(1.0), tg.Var(2.0)
    assert tg.min(a, b).data == tg.minimum(a, b).data == 1.0
    assert tg.max(a, b).data == tg.maximum(a, b).data == 2.0


# --- unary ops ----------------------------------------------------------------------------

@pytest.mark.parametrize("name,x", UNARY_CASES)
def test_unary_value(name, x):
    expected = ROWS[name].ref(x)
    for form in ("function", "method"):
        v = tg.Var(x)
        y = getattr(tg, name)(v) if form == "function" else getattr(v, name)()
        assert isinstance(y, tg.Var)
        assert not y.is_leaf and y.requires_grad
        assert_close(y.data, expected, VALUE_REL, what=f"{form} {name}({x})")


@pytest.mark.parametrize("name,x", UNARY_CASES)
def test_unary_derivative_finite_difference(name, x):
    f = tg_plain(name)
    expected = central_difference(f, x)
    for form in ("function", "method"):
        v = tg.Var(x)
        y = getattr(tg, name)(v) if form == "function" else getattr(v, name)()
        y.backward()
        assert_close(v.grad, expected, FD_REL, fd_abs_tolerance(f, x), what=f"d{name}/dx at {x} ({form})")


@pytest.mark.parametrize("name,x", UNARY_CASES)
def test_unary_against_torch(torch, name, x):
    v = tg.Var(x)
    y = getattr(tg, name)(v)
    y.backward()
    t = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    yt = torch_fn(torch, name)(t)
    yt.backward()
    assert_close(y.data, yt.item(), TORCH_REL, what=f"{name}({x}) vs torch")
    assert_close(v.grad, t.grad.item(), TORCH_REL, what=f"d{name}/dx at {x} vs torch")


@pytest.mark.parametrize("name,x", UNARY_CASES)
def test_unary_function_on_plain_numbers(name, x):
    row = ROWS[name]
    out = getattr(tg, name)(x)
    assert type(out) is float
    if row.math_name is not None:
        assert out == getattr(math, row.math_name)(x), f"tg.{name}({x}) != math.{row.math_name}({x})"
    else:
        assert_close(out, row.ref(x), VALUE_REL, what=f"tg.{name}({x})")
    # ints and NumPy scalars are real numbers too
    assert getattr(tg, name)(np.float64(x)) == out
    if float(x).is_integer() and abs(x) < 2**53:
        assert getattr(tg, name)(int(x)) == out


# --- binary ops ---------------------------------------------------------------------------

def _binary_forms(name: str, x: float, y: float):
    """(label, result, Var of x or None, Var of y or None) for each way to call a binary op."""
    fn = getattr(tg, name)
    vx, vy = tg.Var(x), tg.Var(y)
    yield "f(Var, Var)", fn(vx, vy), vx, vy
    vx = tg.Var(x)
    yield "f(Var, number)", fn(vx, y), vx, None
    vy = tg.Var(y)
    yield "f(number, Var)", fn(x, vy), None, vy
    vx, vy = tg.Var(x), tg.Var(y)
    yield "Var.method(Var)", getattr(vx, name)(vy), vx, vy
    vx = tg.Var(x)
    yield "Var.method(number)", getattr(vx, name)(y), vx, None
    op = {"add": "__add__", "sub": "__sub__", "mul": "__mul__", "div": "__truediv__", "pow": "__pow__"}.get(name)
    if op is not None:
        binop = getattr(operator, op)
        vx, vy = tg.Var(x), tg.Var(y)
        yield "Var op Var", binop(vx, vy), vx, vy
        vx = tg.Var(x)
        yield "Var op number", binop(vx, y), vx, None
        vy = tg.Var(y)
        yield "number op Var", binop(x, vy), None, vy


@pytest.mark.parametrize("name,x,y", BINARY_CASES)
def test_binary_value(name, x, y):
    expected = ROWS[name].ref(x, y)
    for label, z, _, _ in _binary_forms(name, x, y):
        assert isinstance(z, tg.Var), label
        assert not z.is_leaf and z.requires_grad, label
        assert_close(z.data, expected, VALUE_REL, what=f"{label} {name}({x}, {y})")


@pytest.mark.parametrize("name,x,y", BINARY_CASES)
def test_binary_derivatives_finite_difference(name, x, y):
    f = tg_plain(name)
    fx = lambda t: f(t, y)  # noqa: E731
    fy = lambda t: f(x, t)  # noqa: E731
    dx, dy = central_difference(fx, x), central_difference(fy, y)
    tol_x, tol_y = fd_abs_tolerance(fx, x), fd_abs_tolerance(fy, y)
    for label, z, vx, vy in _binary_forms(name, x, y):
        z.backward()
        if vx is not None:
            assert_close(vx.grad, dx, FD_REL, tol_x, what=f"{label}: d{name}/dx at ({x}, {y})")
        if vy is not None:
            assert_close(vy.grad, dy, FD_REL, tol_y, what=f"{label}: d{name}/dy at ({x}, {y})")


@pytest.mark.parametrize("name,x,y", BINARY_CASES)
def test_binary_against_torch(torch, name, x, y):
    fn = torch_fn(torch, name)
    for label, z, vx, vy in _binary_forms(name, x, y):
        z.backward()
        tx = torch.tensor(x, dtype=torch.float64, requires_grad=vx is not None)
        ty = torch.tensor(y, dtype=torch.float64, requires_grad=vy is not None)
        zt = fn(tx, ty)
        zt.backward()
        assert_close(z.data, zt.item(), TORCH_REL, what=f"{label}: {name}({x}, {y}) vs torch")
        if vx is not None:
            assert_close(vx.grad, tx.grad.item(), TORCH_REL, what=f"{label}: d{name}/dx at ({x}, {y}) vs torch")
        if vy is not None:
            assert_close(vy.grad, ty.grad.item(), TORCH_REL, what=f"{label}: d{name}/dy at ({x}, {y}) vs torch")


@pytest.mark.parametrize("name,x,y", BINARY_CASES)
def test_binary_function_on_plain_numbers(name, x, y):
    row = ROWS[name]
    out = getattr(tg, name)(x, y)
    assert type(out) is float
    if row.math_name is not None:
        assert out == getattr(math, row.math_name)(x, y), f"tg.{name}({x}, {y}) != math.{row.math_name}"
    else:
        assert out == row.ref(x, y)
    assert getattr(tg, name)(np.float64(x), np.float64(y)) == out


@pytest.mark.parametrize("name", [n for n, r in ROWS.items() if r.arity == 2])
def test_binary_same_var_on_both_sides(name):
    # f(x, x): both partials flow into the one leaf.
    x0 = 0.7
    v = tg.Var(x0)
    getattr(tg, name)(v, v).backward()
    f = tg_plain(name)
    g = lambda t: f(t, t)  # noqa: E731
    if name in ("min", "max"):
        assert v.grad == 1.0  # a tie: 1/2 to each operand, both the same leaf
    else:
        assert_close(v.grad, central_difference(g, x0), FD_REL, fd_abs_tolerance(g, x0), what=f"d{name}(x, x)/dx")


def test_module_functions_on_plain_numbers_return_floats():
    assert type(tg.exp(2)) is float and tg.exp(2) == math.exp(2)
    assert type(tg.pow(2, 3)) is float and tg.pow(2, 3) == 8.0
    assert type(tg.atan2(1, 2)) is float and tg.atan2(1, 2) == math.atan2(1, 2)
    assert type(tg.min(1, 2)) is float and tg.min(1, 2) == 1.0
    assert type(tg.max(1, 2)) is float and tg.max(1, 2) == 2.0
    assert tg.minimum(3.0, -1.0) == -1.0 and tg.maximum(3.0, -1.0) == 3.0
    assert tg.sqrt(np.float32(0.25)) == 0.5
    assert tg.log(np.int64(1)) == 0.0
    assert tg.neg(True) == -1.0
    assert tg.relu(-2) == 0.0 and tg.abs(-2) == 2.0


# --- kinks: the conventions of PyTorch ----------------------------------------------------

def _grad1(name: str, x: float) -> float:
    v = tg.Var(x)
    getattr(tg, name)(v).backward()
    return v.grad


def _grads2(name: str, x: float, y: float) -> Tuple[float, float]:
    vx, vy = tg.Var(x), tg.Var(y)
    getattr(tg, name)(vx, vy).backward()
    return vx.grad, vy.grad


def test_relu_and_abs_have_zero_slope_at_zero():
    assert _grad1("relu", 0.0) == 0.0
    assert _grad1("abs", 0.0) == 0.0
    assert _grad1("abs", -0.0) == 0.0
    v = tg.Var(0.0)
    abs(v).backward()
    assert v.grad == 0.0


@pytest.mark.parametrize("name", ["min", "max"])
@pytest.mark.parametrize("t", [0.0, 1.5, -2.0])
def test_min_max_tie_splits_the_gradient(name, t):
    assert _grads2(name, t, t) == (0.5, 0.5)
    # one operand constant: the Var still gets half
    v = tg.Var(t)
    getattr(tg, name)(v, t).backward()
    assert v.grad == 0.5
    v = tg.Var(t)
    getattr(tg, name)(t, v).backward()
    assert v.grad == 0.5


@pytest.mark.parametrize("y", [0.0, 0.5, 1.0, 2.0, 3.0])
def test_pow_zero_base_has_zero_slope_in_the_exponent(y):
    # d/dy 0**y = 0 for y >= 0 (0**y ln 0 is 0 * -inf without the rule)
    assert _grads2("pow", 0.0, y)[1] == 0.0
    v = tg.Var(y)
    (0.0 ** v).backward()
    assert v.grad == 0.0


@pytest.mark.parametrize("x", [0.0, 2.0, -3.0, 0.5])
def test_pow_zero_exponent_has_zero_slope_in_the_base(x):
    # d/dx x**0 = 0 everywhere, 0**0 included (0 * 0**-1 would be nan)
    assert _grads2("pow", x, 0.0)[0] == 0.0
    v = tg.Var(x)
    (v ** 0).backward()
    assert v.grad == 0.0


def test_pow_at_zero_base_partials():
    assert _grads2("pow", 0.0, 2.0) == (0.0, 0.0)
    assert _grads2("pow", 0.0, 1.0) == (1.0, 0.0)
    gx, _ = _grads2("pow", 0.0, 0.5)
    assert gx == math.inf


KINKS = [("relu", (0.0,)), ("abs", (0.0,)), ("min", (1.5, 1.5)), ("max", (-2.0, -2.0)), ("min", (0.0, 0.0)),
         ("pow", (0.0, 0.0)), ("pow", (0.0, 2.0)), ("pow", (0.0, 0.5)), ("pow", (0.0, 1.0)), ("pow", (3.0, 0.0)),
         ("pow", (0.0, -1.0)), ("pow", (-2.0, 0.0)), ("pow", (-2.0, 2.0)), ("sqrt", (0.0,)), ("log", (0.0,))]


@pytest.mark.parametrize("name,args", KINKS, ids=[f"{n}{a}" for n, a in KINKS])
def test_kinks_match_torch(torch, name, args):
    vs = [tg.Var(a) for a in args]
    z = getattr(tg, name)(*vs)
    z.backward()
    ts = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in args]
    zt = torch_fn(torch, name)(*ts)
    zt.backward()
    assert close(z.data, zt.item(), TORCH_REL), (z.data, zt.item())
    for i, (v, t) in enumerate(zip(vs, ts)):
        assert close(v.grad, t.grad.item(), TORCH_REL), f"{name}{args}: partial {i}: {v.grad} vs torch {t.grad.item()}"
