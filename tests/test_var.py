"""The scalar Var: backward semantics, leaves, conversions, errors, tapes and threads."""

from __future__ import annotations

import gc
import math
import sys
import threading

import numpy as np
import pytest

import tapegrad as tg
from conftest import assert_close, micrograd_more_ops

# --- the README example and micrograd's tests ---------------------------------------------

def test_readme_example():
    x = tg.Var(3.0)
    y = x * x
    y.backward()
    assert x.grad == 6.0
    assert repr(x) == "Var(data=3.0, grad=6.0)"


def test_value_is_var():
    assert tg.Value is tg.Var


def test_micrograd_sanity_check(torch):
    # micrograd's test/test_engine.py::test_sanity_check, written with tg.Var
    x = tg.Var(-4.0)
    z = 2 * x + 2 + x
    q = z.relu() + z * x
    h = (z * z).relu()
    y = h + q + q * x
    y.backward()
    xmg, ymg = x, y

    x = torch.Tensor([-4.0]).double()
    x.requires_grad = True
    z = 2 * x + 2 + x
    q = z.relu() + z * x
    h = (z * z).relu()
    y = h + q + q * x
    y.backward()
    xpt, ypt = x, y

    tol = 1e-6
    assert abs(ymg.data - ypt.data.item()) < tol  # forward pass went well
    assert abs(xmg.grad - xpt.grad.item()) < tol  # backward pass went well


def test_micrograd_more_ops(torch):
    # micrograd's test/test_engine.py::test_more_ops, with tg.Var (conftest.micrograd_more_ops)
    a, b, _, g = micrograd_more_ops()
    amg, bmg, gmg = a, b, g

    a = torch.Tensor([-4.0]).double()
    b = torch.Tensor([2.0]).double()
    a.requires_grad = True
    b.requires_grad = True
    c = a + b
    d = a * b + b**3
    c = c + c + 1
    c = c + 1 + c + (-a)
    d = d + d * 2 + (b + a).relu()
    d = d + 3 * d + (b - a).relu()
    e = c - d
    f = e**2
    g = f / 2.0
    g = g + 10.0 / f
    g.backward()
    apt, bpt, gpt = a, b, g

    tol = 1e-6
    assert abs(gmg.data - gpt.data.item()) < tol  # forward pass went well
    assert abs(amg.grad - apt.grad.item()) < tol  # backward pass went well
    assert abs(bmg.grad - bpt.grad.item()) < tol


@pytest.mark.parametrize("name", ["tanh", "exp"])
def test_micrograd_unary_tensor_fns(torch, name):
    # micrograd's test/test_engine.py::test_unary_tensor_fns
    for x in [-1.0, 0.123, 2.0]:
        xv = tg.Var(x)
        yv = getattr(tg.Var, name)(xv)
        yv.backward()
        xt = torch.Tensor([x]).double()
        xt.requires_grad = True
        yt = getattr(torch.Tensor, name)(xt)
        yt.backward()
        assert abs(yv.data - yt.data.item()) < 1e-6
        assert abs(xv.grad - xt.grad.item()) < 1e-6


# --- backward semantics -------------------------------------------------------------------

def test_backward_twice_accumulates():
    x = tg.Var(3.0)
    y = x * x + 2 * x  # dy/dx = 2x + 2 = 8
    y.backward()
    assert x.grad == 8.0
    y.backward()
    assert x.grad == 16.0
    y.backward(retain_graph=True)  # accepted for PyTorch compatibility
    assert x.grad == 24.0
    x.grad = 0.0
    y.backward()
    assert x.grad == 8.0


def test_backward_with_a_seed():
    x = tg.Var(3.0)
    y = x * x
    y.backward(2.5)
    assert x.grad == 15.0
    x.grad = None  # None resets to 0
    assert x.grad == 0.0
    y.backward(gradient=tg.Var(-1.0))
    assert x.grad == -6.0


def test_backward_on_a_leaf():
    x = tg.Var(3.0)
    x.backward()
    assert x.grad == 1.0


def test_leaf_used_several_times():
    x = tg.Var(1.5)
    w = tg.Var(-0.5)
    y = x * x * x + x * w + tg.sin(x) * x - w / x
    y.backward()
    x0, w0 = 1.5, -0.5
    assert_close(x.grad, 3 * x0**2 + w0 + math.cos(x0) * x0 + math.sin(x0) + w0 / x0**2, 1e-15, what="dy/dx")
    assert_close(w.grad, x0 - 1 / x0, 1e-15, what="dy/dw")


def test_diamond_graph():
    # y = f(x) used through two paths that meet again
    x = tg.Var(0.3)
    a = tg.exp(x)
    b = a * a
    c = a + b
    y = c * a
    y.backward()
    # y = e^{2x} + e^{3x}: dy/dx = 2 e^{2x} + 3 e^{3x}
    assert_close(x.grad, 2 * math.exp(0.6) + 3 * math.exp(0.9), 1e-14, what="dy/dx")


def test_intermediates_have_their_grad_as_in_micrograd():
    x = tg.Var(3.0)
    y = x * 2
    z = y * y
    assert x.is_leaf and not y.is_leaf and not z.is_leaf
    assert y.grad == 0.0 and z.grad == 0.0
    z.backward()
    assert z.grad == 1.0 and y.grad == 2 * 6.0  # dz/dz, dz/dy = 2y
    assert x.grad == 24.0
    z.backward()  # accumulates, as micrograd's (and a leaf's) does
    assert y.grad == 24.0 and x.grad == 48.0
    y.grad = 0.0
    assert y.grad == 0.0


def test_retain_grad():
    x = tg.Var(3.0)
    y = x * 2
    y.retain_grad()
    y.retain_grad()  # idempotent
    assert y.grad == 0.0
    z = y * y + y
    z.backward()
    assert y.grad == 2 * 6.0 + 1  # dz/dy = 2y + 1
    assert x.grad == 2 * (2 * 6.0 + 1)
    assert repr(y) == "Var(data=6.0, grad=13.0)"
    z.backward()
    assert y.grad == 26.0  # accumulates like a leaf's
    y.grad = 0.0
    assert y.grad == 0.0
    x.retain_grad()  # a no-op on leaves
    assert x.grad == 52.0


def test_grad_of_unrelated_leaf_is_zero():
    x, w = tg.Var(2.0), tg.Var(5.0)
    _other = w * w
    y = x * 3
    y.backward()
    assert x.grad == 3.0
    assert w.grad == 0.0


def test_records_on_unrelated_graphs_do_not_pollute():
    w = tg.Var(2.0)
    bad = tg.log(w - w)  # -inf, and an infinite local derivative
    assert bad.data == -math.inf
    y = w * 3
    y.backward()
    assert w.grad == 3.0


def test_set_data_on_a_leaf():
    x = tg.Var(2.0)
    y = x * x
    assert y.data == 4.0
    x.data = 5.0
    assert x.data == 5.0
    assert y.data == 4.0  # already computed
    z = x * x
    assert z.data == 25.0
    z.backward()
    assert x.grad == 10.0
    x.data = np.float32(0.5)
    assert x.data == 0.5 and type(x.data) is float
    x.data = tg.Var(7.0)
    assert x.data == 7.0


def test_set_data_keeps_older_graphs_differentiable():
    x = tg.Var(2.0)
    y = x * x
    x.data = 3.0
    y.backward()
    assert x.grad == 4.0


def test_set_data_on_a_non_leaf_raises():
    x = tg.Var(2.0)
    y = x * x
    with pytest.raises(AttributeError, match="leaf"):
        y.data = 1.0
    assert y.data == 4.0
    with pytest.raises(AttributeError):
        del x.data
    with pytest.raises(TypeError, match="str"):
        x.data = "a"
    assert x.data == 2.0


def test_requires_grad_false_acts_as_a_constant():
    c = tg.Var(2.0, requires_grad=False)
    x = tg.Var(3.0)
    assert not c.requires_grad and c.is_leaf
    y = c * x + c * c
    assert y.requires_grad
    y.backward()
    assert x.grad == 2.0
    assert c.grad == 0.0
    only_constants = c * c + tg.exp(c)
    assert only_constants.data == 4.0 + math.exp(2.0)
    assert not only_constants.requires_grad
    assert only_constants.is_leaf  # like PyTorch: a result that needs no grad is a leaf
    with pytest.raises(RuntimeError, match="does not require grad"):
        only_constants.backward()
    with pytest.raises(RuntimeError, match="does not require grad"):
        c.backward()
    assert repr(c) == "Var(data=2.0, grad=0.0, requires_grad=False)"


def test_requires_grad_false_records_nothing():
    with tg.Tape() as t:
        c = tg.Var(2.0, requires_grad=False)
        y = tg.sin(c * c) + 1
        assert t.stats()["records"] == 0
        assert y.data == math.sin(4.0) + 1


def test_detach():
    x = tg.Var(3.0)
    y = x * x
    d = y.detach()
    assert d.data == 9.0 and d.is_leaf and not d.requires_grad
    z = d * x  # d is a constant: dz/dx = d
    z.backward()
    assert x.grad == 9.0
    assert d.grad == 0.0
    assert not x.detach().requires_grad


def test_new_var_from_a_var_is_a_leaf():
    x = tg.Var(3.0)
    y = tg.Var(x * 2)
    assert y.is_leaf and y.requires_grad and y.data == 6.0
    assert tg.Var().data == 0.0


# --- conversions, comparisons, formatting ------------------------------------------------

def test_comparisons_by_value():
    x = tg.Var(3.0)
    assert x == 3.0 and x == 3 and 3 == x
    assert x == tg.Var(3.0)
    assert x != 2.0 and x != tg.Var(2.0)
    assert x < 4 and x <= 3 and x > 2.5 and x >= 3.0
    assert 4 > x and tg.Var(1.0) < x
    assert x == np.float64(3.0) and x < np.float32(3.5)
    assert (x == "a") is False and (x != "a") is True
    with pytest.raises(TypeError):
        _ = x < "a"
    assert sorted([tg.Var(2.0), tg.Var(-1.0), tg.Var(0.5)]) == [-1.0, 0.5, 2.0]
    assert max(tg.Var(2.0), tg.Var(5.0)).data == 5.0
    assert type(x == 3.0) is bool and type(x < 4) is bool


def test_hash_by_identity():
    a, b = tg.Var(1.0), tg.Var(1.0)
    assert a == b
    assert hash(a) == object.__hash__(a)
    assert len({a, b}) == 2
    d = {a: "a", b: "b"}
    assert d[a] == "a" and d[b] == "b"


def test_float_bool_item_format_repr():
    x = tg.Var(2.5)
    assert float(x) == 2.5 and type(float(x)) is float
    assert int(tg.Var(2.7)) == 2 and int(tg.Var(-2.7)) == -2 and type(int(x)) is int
    assert round(tg.Var(2.567)) == 3 and round(tg.Var(2.567), 1) == 2.6 and math.floor(tg.Var(-0.5)) == -1
    assert x.item() == 2.5 and type(x.item()) is float
    assert math.sqrt(tg.Var(4.0)) == 2.0  # math functions take it through __float__
    assert bool(x) and not bool(tg.Var(0.0)) and bool(tg.Var(float("nan")))
    assert f"{x:.3f}" == "2.500" and format(x, "e") == "2.500000e+00"
    assert f"{x}" == "2.5"  # formats the value, as PyTorch formats a 0-d tensor
    assert repr(x) == "Var(data=2.5, grad=0.0)"
    assert str(x) == repr(x)
    assert repr(x * 2) == "Var(data=5.0, grad=0.0)"  # every Var has its grad, as micrograd's Value
    assert repr(tg.Var(0.1)) == "Var(data=0.1, grad=0.0)"
    assert repr(tg.Var(1e300)) == "Var(data=1e+300, grad=0.0)"
    assert repr(-x) == "Var(data=-2.5, grad=0.0)"
    assert +x is x
    assert abs(tg.Var(-2.0)).data == 2.0


def test_data_and_grad_are_floats():
    x = tg.Var(3)
    assert type(x.data) is float and type(x.grad) is float
    assert tg.Var(True).data == 1.0


@pytest.mark.parametrize("np_type", [np.float32, np.float64, np.int64, np.int32, np.float16])
def test_numpy_scalars_on_either_side(np_type):
    s = np_type(2)
    x = tg.Var(3.0)
    for expr, value, grad in [
        (lambda: s * x, 6.0, 2.0),
        (lambda: x * s, 6.0, 2.0),
        (lambda: s + x, 5.0, 1.0),
        (lambda: x - s, 1.0, 1.0),
        (lambda: s - x, -1.0, -1.0),
        (lambda: x / s, 1.5, 0.5),
        (lambda: s / x, 2.0 / 3.0, -2.0 / 9.0),
        (lambda: x**s, 9.0, 6.0),
        (lambda: s**x, 8.0, 8.0 * math.log(2.0)),
        (lambda: tg.atan2(s, x), math.atan2(2.0, 3.0), -2.0 / 13.0),
        (lambda: tg.max(x, s), 3.0, 1.0),
    ]:
        x.grad = 0.0
        y = expr()
        assert type(y) is tg.Var, (np_type, y)
        assert_close(y.data, value, 1e-15, what=f"{np_type.__name__} value")
        y.backward()
        assert_close(x.grad, grad, 1e-15, what=f"{np_type.__name__} grad")
    assert tg.Var(s).data == 2.0


def test_other_real_numbers():
    from fractions import Fraction

    x = tg.Var(3.0)
    y = x * Fraction(1, 4)
    assert type(y) is tg.Var and y.data == 0.75
    y = True + x
    assert y.data == 4.0


def test_ndarray_and_var_do_not_make_object_arrays():
    # Var sets __array_ufunc__ = None: NumPy defers to Var, which makes a Var and an array on
    # either side the tensor op (the Var broadcast, its gradient flowing back), as a Var and a
    # Tensor give; never a silent object array of Vars.
    x = tg.Var(3.0)
    for arr in (np.array([1.0, 2.0]), np.array(2.0)):
        for r, want in ((arr * x, arr * 3.0), (x * arr, arr * 3.0), (arr + x, arr + 3.0), (x - arr, 3.0 - arr),
                        (arr / x, arr / 3.0), (x ** arr, 3.0 ** arr)):
            assert isinstance(r, tg.Tensor) and r.requires_grad
            np.testing.assert_allclose(r.numpy(), want, rtol=1e-15)
    y = (np.array([1.0, 2.0]) * x).sum()
    y.backward()
    assert x.grad == 3.0
    objects = np.array([x, x], dtype=object)
    for f in (lambda: objects * x, lambda: x * objects, lambda: objects + x, lambda: x - objects):
        with pytest.raises(TypeError, match="not object"):
            f()
    with pytest.raises(TypeError):
        np.multiply(np.array([1.0]), x)


def test_bad_operands_raise_type_error():
    x = tg.Var(3.0)
    with pytest.raises(TypeError, match=r"unsupported operand.*Var.*str"):
        _ = x + "a"
    with pytest.raises(TypeError, match=r"unsupported operand.*str.*Var"):
        _ = "a" - x
    with pytest.raises(TypeError, match="Var"):
        _ = "a" * x
    with pytest.raises(TypeError, match="NoneType"):
        _ = x * None
    with pytest.raises(TypeError):
        _ = x + 1j
    with pytest.raises(TypeError):
        _ = x + [1.0]
    with pytest.raises(TypeError, match=r"tapegrad\.exp: expected a Var, a Tensor, an array or a real number, got str"):
        tg.exp("a")
    with pytest.raises(TypeError, match=r"tapegrad\.pow: expected a Var, a Tensor, an array or a real number, got str"):
        tg.pow(x, "a")
    with pytest.raises(TypeError, match=r"tapegrad\.min: expected a Var, a Tensor, an array or a real number, "
                                        r"got NoneType"):
        tg.min(None, 1.0)
    # A list with a Var is array arithmetic: a Tensor (the Var enters as a 0-d tensor).
    assert isinstance(tg.atan2([1.0], x), tg.Tensor)
    with pytest.raises(TypeError, match=r"takes 2 arguments \(1 given\)"):
        tg.pow(x)
    with pytest.raises(TypeError, match=r"tapegrad\.pow: expected a Var or a real number, got str"):
        x.pow("a")
    with pytest.raises(TypeError, match="modulus"):
        pow(x, 2, 3)
    with pytest.raises(TypeError, match=r"tapegrad\.Var: expected a Var or a real number, got str"):
        tg.Var("a")
    with pytest.raises(TypeError, match="gradient"):
        (x * x).backward("a")
    with pytest.raises(TypeError, match="str"):
        x.grad = "a"
    with pytest.raises(OverflowError):
        _ = x * 2**2000


# --- tapes: stale handles, different tapes ------------------------------------------------

def test_stale_handles_after_clear():
    x = tg.Var(2.0)
    with tg.Tape() as t:
        assert tg.active_tape() is t
        y = x * x
        assert y.tape is t
        assert x.tape is None  # leaves belong to no tape
        t.clear()
        assert t.stats()["records"] == 0
        for use in (lambda: y + 1, lambda: 1 + y, lambda: y * x, lambda: y.backward(),
                    lambda: tg.exp(y), lambda: y.exp(), lambda: tg.pow(y, 2), lambda: y.retain_grad()):
            with pytest.raises(RuntimeError, match="stale"):
                use()
        assert y.data == 4.0  # the value stays readable
        assert y.tape is None
        # leaves keep working
        z = x * 3
        z.backward()
        assert x.grad == 3.0
    assert tg.active_tape() is not t


def test_operands_from_different_tapes():
    a = tg.Var(1.0)
    with tg.Tape() as t1:
        p = a * 2
    with tg.Tape() as t2:
        q = a * 3
    assert p.tape is t1 and q.tape is t2
    with pytest.raises(RuntimeError, match="different tapes"):
        _ = p + q
    with pytest.raises(RuntimeError, match="different tapes"):
        tg.atan2(q, p)
    # a non-leaf records on its own tape even outside its with block
    b = tg.Var(5.0)
    r = p * b
    assert r.tape is t1
    r.backward()
    assert b.grad == 2.0


def test_leaf_used_on_two_tapes_gets_both_gradients():
    x = tg.Var(2.0)
    with tg.Tape():
        y1 = x * x
    with tg.Tape():
        y2 = x * 3
    y1.backward()
    assert x.grad == 4.0
    y2.backward()
    assert x.grad == 7.0


def test_leaf_back_on_its_first_tape_gets_its_whole_gradient():
    a = tg.Var(1.0)
    with tg.Tape() as t1:
        p = a * 2
    with tg.Tape():
        q = a * 3
    r = p + a
    assert r.tape is t1
    r.backward()
    assert a.grad == 3.0
    q.backward()
    assert a.grad == 6.0


def test_a_leaf_outlives_the_tapes_it_was_used_on_and_tapes_outlive_their_leaves():
    # the leaves' bookkeeping is the core's (tapegrad::detail::LeafRecords): a tape that went
    # first is not touched again, a tape at a dead one's address is a new tape to the leaf, and
    # a leaf that went first delivers nowhere (the Python core's ASan run reads these paths)
    x = tg.Var(1.5)
    for k in range(20):
        with tg.Tape():
            y = x * x * (k + 1)
        y.backward()
        del y
        gc.collect()  # the tape of step k is gone: the leaf's sink there with it
    assert x.grad == pytest.approx(2 * 1.5 * sum(range(1, 21)), rel=1e-15)
    with tg.Tape() as t:
        gone = tg.Var(2.0)
        z = gone * gone + x
        del gone  # its record stays on the tape; its .grad went with it
        z.backward()
    assert x.grad == pytest.approx(2 * 1.5 * sum(range(1, 21)) + 1.0, rel=1e-15)
    x.data = 4.0  # a new value: the next use records it; older records keep delivering
    with t:
        w = z + x * x
    w.backward()
    assert x.grad == pytest.approx(2 * 1.5 * sum(range(1, 21)) + 2.0 + 8.0, rel=1e-15)
    assert tg.autograd.grad(w, [x])[0].data == pytest.approx(1.0 + 8.0, rel=1e-15)


def test_tapes_nest():
    x = tg.Var(2.0)
    outer, inner = tg.Tape(), tg.Tape()
    default = tg.active_tape()
    with outer:
        with inner:
            assert tg.active_tape() is inner
            y = x * x
        assert tg.active_tape() is outer
        with pytest.raises(ValueError):
            with outer:
                pass
    assert tg.active_tape() is default
    assert y.tape is inner
    y.backward()
    assert x.grad == 4.0


# --- max and min of several Vars ----------------------------------------------------------

@pytest.mark.parametrize("name", ["max", "min"])
@pytest.mark.parametrize("values", [(1.0, 1.0, 5.0), (5.0, 1.0, 1.0), (2.0, -3.0, 0.5, 7.0), (-1.0, -2.0, -0.5)])
def test_max_min_of_several_vars_is_the_extreme_one_like_builtin_max(torch, name, values):
    # tg.max(Var(1), Var(1), Var(5)) took the third Var for an axis and returned 1.0.
    xs = [tg.Var(v) for v in values]
    expected = {"max": max, "min": min}[name](values)  # Python's builtin
    y = getattr(tg, name)(*xs)
    assert type(y) is tg.Var and y.data == expected
    y.backward()
    # The gradient goes to the winner, as torch's for the same values stacked (a two-way tie: 1/2 each in both).
    t = torch.tensor(values, dtype=torch.float64, requires_grad=True)
    getattr(t, name)().backward()
    assert [x.grad for x in xs] == t.grad.tolist()
    plain = getattr(tg, name)(*values)  # numbers only: a float
    assert type(plain) is float and plain == expected


def test_max_of_several_folds_pairwise_on_ties_and_takes_numbers():
    a, b, c = tg.Var(2.0), tg.Var(2.0), tg.Var(2.0)
    y = tg.max(a, b, c)  # = max(max(a, b), c): each pairwise tie splits 1/2 each
    y.backward()
    assert (y.data, a.grad, b.grad, c.grad) == (2.0, 0.25, 0.25, 0.5)
    a, b = tg.Var(1.0), tg.Var(-1.0)
    y = tg.max(a, 3, b, 0.5)  # a number wins: a Var still, with no gradient to the others
    y.backward()
    assert type(y) is tg.Var and (y.data, a.grad, b.grad) == (3.0, 0.0, 0.0)
    y = tg.min(a, np.float32(-4.0), b)
    y.backward()
    assert (y.data, a.grad, b.grad) == (-4.0, 0.0, 0.0)
    assert math.isnan(tg.max(tg.Var(1.0), float("nan"), tg.Var(5.0)).data)
    assert tg.max(1, 2, 5) == 5.0 and tg.min(4, 2.5, 3) == 2.5


def test_max_min_never_take_a_var_or_number_for_an_axis():
    a, b = tg.Var(1.0), tg.Var(2.0)
    with pytest.raises(TypeError, match=r"tapegrad\.max: axis= is for a reduction of one tensor"):
        tg.max(a, b, axis=0)
    with pytest.raises(TypeError, match=r"tapegrad\.min: dim= is for a reduction"):
        tg.min(a, b, tg.Var(0.0), dim=0)
    with pytest.raises(TypeError, match=r"tapegrad\.max: axis must be an int or a tuple of ints, not Var"):
        tg.max(a, axis=b)
    with pytest.raises(TypeError, match=r"tapegrad\.max of more than two operands takes Vars and real numbers.* "
                                        r"operand 3 is str"):
        tg.max(a, b, "c")


# --- NaN and infinity ---------------------------------------------------------------------

def test_nan_and_inf_propagate(torch):
    # log(-1): the value is NaN; the derivative rule 1/x is evaluated as IEEE says, which
    # gives -1 (PyTorch and JAX give the same), not NaN.
    x = tg.Var(-1.0)
    y = tg.log(x)
    assert math.isnan(y.data)
    y.backward()
    t = torch.tensor(-1.0, dtype=torch.float64, requires_grad=True)
    torch.log(t).backward()
    assert x.grad == t.grad.item() == -1.0

    # sqrt(-1): NaN value, and the rule 0.5 / z makes the gradient NaN
    x = tg.Var(-1.0)
    y = tg.sqrt(x)
    y.backward()
    assert math.isnan(y.data) and math.isnan(x.grad)

    # log(0) = -inf, d/dx = 1/0 = +inf
    x = tg.Var(0.0)
    y = tg.log(x)
    assert y.data == -math.inf
    y.backward()
    assert x.grad == math.inf

    # NaN as data: the derivative of 2x is still 2
    x = tg.Var(float("nan"))
    y = x * 2
    assert math.isnan(y.data)
    y.backward()
    assert x.grad == 2.0

    # NaN flowing through the chain makes the gradient NaN
    x = tg.Var(float("nan"))
    y = x * x
    y.backward()
    assert math.isnan(x.grad)

    # overflow
    x = tg.Var(1000.0)
    y = tg.exp(x)
    assert y.data == math.inf
    y.backward()
    assert x.grad == math.inf
    z = y - y
    assert math.isnan(z.data)

    # NaN through min/max and relu, as NumPy and PyTorch propagate it
    n = tg.Var(float("nan"))
    assert math.isnan(tg.min(n, 1.0).data) and math.isnan(tg.max(1.0, n).data)
    assert math.isnan(tg.relu(n).data)
    assert math.isnan(tg.max(float("nan"), 1.0))


# --- threads ------------------------------------------------------------------------------

def _thread_work(i: int, steps: int):
    out = []
    tapes = set()
    a = tg.Var(float(i + 1))
    for k in range(steps):
        b = tg.Var(0.5 * k)
        y = a * a * b + tg.sin(a) - b / a
        tapes.add(id(y.tape))
        a.grad = 0.0
        y.backward()
        out.append((y.data, a.grad, b.grad))
    return out, tapes, tg.active_tape()


def test_threads_record_on_their_own_tapes():
    steps = 300
    serial = [_thread_work(i, steps)[0] for i in range(4)]
    main_tape = tg.active_tape()
    results = {}
    errors = []
    barrier = threading.Barrier(4)

    def run(i):
        try:
            barrier.wait()
            results[i] = _thread_work(i, steps)
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # interleave the threads as much as possible
    try:
        threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(old)
    assert not errors, errors
    thread_tapes = []
    for i in range(4):
        out, tapes, active = results[i]
        assert out == serial[i], f"thread {i} differs from the serial run"
        assert len(tapes) == 1 and active is not main_tape
        assert id(active) in tapes
        thread_tapes.append(active)
        x0 = float(i + 1)
        for k, (y, ga, gb) in enumerate(out):
            b0 = 0.5 * k
            assert_close(y, x0 * x0 * b0 + math.sin(x0) - b0 / x0, 1e-14, 1e-14, what="value")
            assert_close(ga, 2 * x0 * b0 + math.cos(x0) + b0 / x0**2, 1e-14, 1e-14, what="dy/da")
            assert_close(gb, x0 * x0 - 1 / x0, 1e-14, what="dy/db")
    assert len({id(t) for t in thread_tapes}) == 4


def test_pickle_and_copy_give_a_leaf_with_the_same_value():
    import copy
    import pickle

    x = tg.Var(1.25)
    y = x * 2
    for clone in (pickle.loads(pickle.dumps(x)), copy.copy(x), copy.deepcopy(y), pickle.loads(pickle.dumps(y))):
        assert type(clone) is tg.Var and clone.is_leaf and clone.requires_grad
        assert clone.data == (1.25 if clone == x else 2.5)
    c = pickle.loads(pickle.dumps(tg.Var(3.0, requires_grad=False)))
    assert c.data == 3.0 and not c.requires_grad


def test_tape_with_block_misuse_raises_instead_of_corrupting_state():
    import threading

    t = tg.Tape()
    with pytest.raises(ValueError, match="not active"):
        t.__exit__(None, None, None)
    t.__enter__()
    with pytest.raises(ValueError, match="already active"):
        t.__enter__()
    errors = []

    def close_elsewhere():
        try:
            t.__exit__(None, None, None)
        except ValueError as e:
            errors.append(str(e))

    th = threading.Thread(target=close_elsewhere)
    th.start()
    th.join()
    assert errors and "another thread" in errors[0]
    t.__exit__(None, None, None)
    assert tg.active_tape() is not t


def test_no_grad_stops_var_recording_too() -> None:
    x = tg.Var(2.0)
    with tg.Tape() as t:
        with tg.no_grad():
            y = x * x + 1.0
            assert not tg.is_grad_enabled()
            assert t.stats()["records"] == 0  # nothing recorded
            with tg.enable_grad():
                w = x * 3.0
            assert t.stats()["records"] == 2  # x's leaf record and the product
        assert tg.is_grad_enabled()
        assert y.data == 5.0 and not y.requires_grad and y.is_leaf
        assert w.requires_grad and not w.is_leaf
        z = x * x
        assert z.requires_grad
        z.backward()
    assert x.grad == 4.0
