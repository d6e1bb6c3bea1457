"""Autograd semantics of tapegrad.Tensor (PyTorch's): leaves and .grad, accumulation,
retain_grad, detach, no_grad / enable_grad, backward(gradient=...), retained graphs, in-place
updates; tapes; and memory: automatic clearing and a 10,000-step training loop in flat memory.
"""

from __future__ import annotations

import gc
import math
import os
import sys
import threading

import numpy as np
import pytest

import tapegrad as tg


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


# --- leaves and .grad ---------------------------------------------------------------------------

def test_leaf_and_result_flags():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    c = tg.tensor([3.0, 4.0])
    assert x.is_leaf and x.requires_grad and x.grad is None
    assert c.is_leaf and not c.requires_grad
    y = x * c
    assert not y.is_leaf and y.requires_grad and y.grad is None
    z = c * 2.0  # nothing requires grad: a leaf that does not require grad (as in PyTorch)
    assert z.is_leaf and not z.requires_grad
    y.sum().backward()
    assert x.grad.numpy().tolist() == [3.0, 4.0]
    assert c.grad is None  # a tensor that does not require grad gets none


def test_grad_accumulates_over_backward_calls():
    x = tg.tensor([1.0, -2.0, 3.0], requires_grad=True)
    (x * x).sum().backward()
    assert x.grad.numpy().tolist() == [2.0, -4.0, 6.0]
    (x * 3.0).sum().backward()
    assert x.grad.numpy().tolist() == [5.0, -1.0, 9.0]
    g, view = x.grad, x.grad.numpy()
    (x * 1.0).sum().backward()
    assert x.grad.numpy().tolist() == [6.0, 0.0, 10.0]
    # PyTorch accumulates into the existing .grad in place (AccumulateGrad: grad += new), so
    # a .grad held from before, and the NumPy view of it, see the new sum
    assert g.numpy().tolist() == [6.0, 0.0, 10.0]
    assert view.tolist() == [6.0, 0.0, 10.0]
    assert np.shares_memory(view, x.grad.numpy())


def test_zero_grad_and_grad_none():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    (x * 2.0).sum().backward()
    x.zero_grad()
    assert x.grad is None
    (x * 5.0).sum().backward()
    assert x.grad.numpy().tolist() == [5.0, 5.0]
    x.grad = None
    assert x.grad is None
    (x * 7.0).sum().backward()
    assert x.grad.numpy().tolist() == [7.0, 7.0]


def test_grad_setter():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    x.grad = np.array([10.0, 20.0])
    assert isinstance(x.grad, tg.Tensor) and x.grad.numpy().tolist() == [10.0, 20.0]
    (x * 1.0).sum().backward()
    assert x.grad.numpy().tolist() == [11.0, 21.0]
    x.grad = tg.tensor([0.5, 0.5])
    assert x.grad.numpy().tolist() == [0.5, 0.5]
    x.grad = tg.tensor([1, 2])  # converted to the tensor's dtype
    assert x.grad.dtype == np.float64 and x.grad.numpy().tolist() == [1.0, 2.0]
    with pytest.raises(RuntimeError, match=r"gradient of shape \(3,\) for a tensor of shape \(2,\)"):
        x.grad = np.ones(3)


def test_leaf_used_several_times_and_diamonds():
    x = tg.tensor([0.5, 2.0], requires_grad=True)
    a = x * x  # x^2
    b = tg.exp(x)
    y = (a * b + a + b).sum()  # both branches reuse x
    y.backward()
    xv = np.array([0.5, 2.0])
    expected = 2 * xv * np.exp(xv) + xv**2 * np.exp(xv) + 2 * xv + np.exp(xv)
    np.testing.assert_allclose(x.grad.numpy(), expected, rtol=1e-15)
    for name, f, d in [("x + x", lambda t: t + t, 2.0), ("x - x", lambda t: t - t, 0.0),
                       ("x / x", lambda t: t / t, 0.0)]:
        x = tg.tensor([1.5, -3.0], requires_grad=True)
        f(x).sum().backward()
        assert x.grad.numpy().tolist() == [d, d], name


def test_only_leaves_that_take_part_get_a_gradient():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    unused = tg.tensor([1.0, 2.0], requires_grad=True)
    (x * 2.0).sum().backward()
    assert unused.grad is None
    assert x.grad.numpy().tolist() == [2.0, 2.0]


def test_backward_of_a_leaf():
    x = tg.tensor([3.0], requires_grad=True)
    x.backward()
    assert x.grad.numpy().tolist() == [1.0]
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    x.backward(gradient=np.array([4.0, 5.0]))
    assert x.grad.numpy().tolist() == [4.0, 5.0]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gradient_has_the_leafs_dtype(dtype):
    x = tg.tensor([1.0, 2.0], dtype=dtype, requires_grad=True)
    other = tg.tensor([3.0, 4.0], dtype=np.float64 if dtype == np.float32 else np.float32, requires_grad=True)
    y = x * other  # float64 result
    assert y.dtype == np.float64
    y.sum().backward()
    assert x.grad.dtype == dtype and x.grad.numpy().tolist() == [3.0, 4.0]
    assert other.grad.dtype == other.dtype and other.grad.numpy().tolist() == [1.0, 2.0]


def test_astype_between_float_dtypes_is_recorded():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    y = x.astype(np.float32) * 3.0
    assert y.dtype == np.float32 and y.requires_grad
    y.sum().backward()
    assert x.grad.dtype == np.float64 and x.grad.numpy().tolist() == [3.0, 3.0]


def test_requires_grad_flag():
    x = tg.tensor([1.0, 2.0])
    assert x.requires_grad_() is x and x.requires_grad
    assert x.requires_grad_(False) is x and not x.requires_grad
    x.requires_grad = True
    y = x * 2.0
    with pytest.raises(RuntimeError, match="detach"):
        y.requires_grad_(False)
    with pytest.raises(RuntimeError, match="detach"):
        y.requires_grad = False
    assert y.requires_grad
    a = np.array([1.0, 2.0])
    t = tg.from_numpy(a).requires_grad_()  # still a view of a
    assert t.requires_grad and np.shares_memory(t.numpy(), a)


# --- retain_grad, detach -----------------------------------------------------------------------

def test_retain_grad():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    y = x * 3.0
    z = y * y
    z.sum().backward()
    assert y.grad is None  # not kept without retain_grad()
    x.zero_grad()
    y = x * 3.0
    y.retain_grad()
    z = y * y
    z.retain_grad()
    z.sum().backward(retain_graph=True)  # (without it, the backward frees z's saved values, as PyTorch's)
    assert z.grad.numpy().tolist() == [1.0, 1.0]
    assert y.grad.numpy().tolist() == [6.0, 12.0]  # 2 y
    assert x.grad.numpy().tolist() == [18.0, 36.0]
    z.sum().backward()  # the retained gradients accumulate too
    assert y.grad.numpy().tolist() == [12.0, 24.0]
    assert not np.shares_memory(x.grad.numpy(), y.grad.numpy())


def test_detach():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    d = x.detach()
    assert not d.requires_grad and d.is_leaf and d.grad is None
    assert np.shares_memory(d.numpy(), x.numpy())
    y = x * 2.0
    dy = y.detach()
    assert not dy.requires_grad and dy.is_leaf
    assert np.shares_memory(dy.numpy(), y.numpy())
    # a detached factor is a constant: d/dx (x * const(x)) = x
    (x * x.detach()).sum().backward()
    assert x.grad.numpy().tolist() == [1.0, 2.0]
    r = d * 3.0
    assert not r.requires_grad


# --- no_grad, enable_grad ----------------------------------------------------------------------

def test_no_grad():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    assert tg.is_grad_enabled()
    with tg.no_grad():
        assert not tg.is_grad_enabled()
        y = x * 2.0 + tg.exp(x)
        assert not y.requires_grad and y.is_leaf
        assert y.numpy().tolist() == (np.array([1.0, 2.0]) * 2 + np.exp([1.0, 2.0])).tolist()
        s = (x @ x)
        assert not s.requires_grad
        with tg.enable_grad():
            assert tg.is_grad_enabled()
            z = x * 2.0
            assert z.requires_grad
        assert not tg.is_grad_enabled()
        with tg.no_grad():  # nested
            assert not tg.is_grad_enabled()
        assert not tg.is_grad_enabled()
    assert tg.is_grad_enabled()
    z.sum().backward()
    assert x.grad.numpy().tolist() == [2.0, 2.0]


def test_no_grad_switches_var_recording_too():
    with tg.no_grad():
        v = tg.Var(2.0)
        y = v * v
        assert not y.requires_grad


def test_grad_mode_is_restored_after_an_exception():
    with pytest.raises(ZeroDivisionError):
        with tg.no_grad():
            raise ZeroDivisionError
    assert tg.is_grad_enabled()
    with tg.no_grad():
        with pytest.raises(KeyError):
            with tg.enable_grad():
                raise KeyError("x")
        assert not tg.is_grad_enabled()
    assert tg.is_grad_enabled()


def test_no_grad_and_enable_grad_as_decorators():
    x = tg.tensor([1.0], requires_grad=True)

    @tg.no_grad()
    def f(t):
        assert not tg.is_grad_enabled()
        return t * 2.0

    @tg.enable_grad()
    def g(t):
        return t * 2.0

    assert not f(x).requires_grad
    assert tg.is_grad_enabled()
    with tg.no_grad():
        assert g(x).requires_grad
        assert not tg.is_grad_enabled()
    assert f.__name__ == "f"


def test_no_grad_as_a_bare_decorator():
    # torch.no_grad works with and without parentheses (PyTorch 2)
    x = tg.tensor([1.0], requires_grad=True)

    @tg.no_grad
    def f(t):
        return t * 2.0

    assert not f(x).requires_grad
    assert f(x).numpy().tolist() == [2.0]


def test_grad_mode_is_per_thread():
    seen = {}

    def worker():
        x = tg.tensor([1.0], requires_grad=True)
        seen["enabled"] = tg.is_grad_enabled()
        y = x * 2.0
        seen["requires_grad"] = y.requires_grad
        y.sum().backward()
        seen["grad"] = x.grad.numpy().tolist()

    with tg.no_grad():
        thread = threading.Thread(target=worker)
        thread.start()
        thread.join()
        assert not tg.is_grad_enabled()
    assert seen == {"enabled": True, "requires_grad": True, "grad": [2.0]}


def test_backward_under_no_grad_still_fills_grads():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    with tg.no_grad():
        y.backward()
    assert x.grad.numpy().tolist() == [2.0, 4.0]


# --- backward ----------------------------------------------------------------------------------

def test_backward_of_a_non_scalar_needs_a_gradient():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2.0
    with pytest.raises(RuntimeError, match="pass gradient=") as info:
        y.backward()
    assert "(2,)" in str(info.value)
    assert x.grad is None
    z = tg.tensor([[1.0, 2.0]], requires_grad=True) * 1.0
    with pytest.raises(RuntimeError, match="pass gradient="):
        z.backward()
    # one element, any shape: no gradient needed
    w = tg.tensor([[3.0]], requires_grad=True)
    (w * w).backward()
    assert w.grad.numpy().tolist() == [[6.0]]


@pytest.mark.parametrize("gradient", [np.array([1.0, -2.0]), [1.0, -2.0], [1, -2], tg.tensor([1.0, -2.0]),
                                      np.array([1.0, -2.0], np.float32), tg.tensor([1.0, -2.0], dtype=tg.float32)],
                         ids=["ndarray", "list", "int-list", "Tensor", "float32-ndarray", "float32-Tensor"])
def test_backward_with_a_gradient(gradient):
    x = tg.tensor([3.0, 4.0], requires_grad=True)
    y = x * x
    y.backward(gradient=gradient, retain_graph=True)
    assert x.grad.dtype == np.float64
    assert x.grad.numpy().tolist() == [6.0, -16.0]
    y.backward(gradient)  # positional too; the graph was retained: accumulates
    assert x.grad.numpy().tolist() == [12.0, -32.0]


def test_backward_gradient_of_0d_output():
    x = tg.tensor(3.0, requires_grad=True)
    y = x * x
    y.backward(gradient=0.5, retain_graph=True)
    assert x.grad.item() == 3.0
    y.backward(gradient=np.asarray(2.0))
    assert x.grad.item() == 15.0


def test_backward_gradient_of_the_wrong_shape():
    x = tg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = x * 2.0
    for g in (np.ones(4), np.ones(1), np.ones((3, 1)), 1.0):
        with pytest.raises(RuntimeError, match=r"the gradient has shape .* but the output has shape \(3,\)"):
            y.backward(gradient=g)
    assert x.grad is None


def test_backward_of_a_tensor_that_does_not_require_grad():
    with pytest.raises(RuntimeError, match="does not require grad"):
        tg.tensor([1.0]).backward()
    x = tg.tensor([1.0], requires_grad=True)
    with tg.no_grad():
        y = x * 2.0
    with pytest.raises(RuntimeError, match="does not require grad"):
        y.backward()


def test_create_graph_records_the_gradient_and_retain_graph_is_accepted():
    x = tg.tensor([1.0], requires_grad=True)
    y = (x * x).sum()
    y.backward(create_graph=True)  # x.grad = 2x, on the tape (tests/test_higher_order.py)
    assert x.grad.requires_grad and not x.grad.is_leaf
    assert x.grad.numpy().tolist() == [2.0]
    x.grad = None
    y.backward(retain_graph=True)
    y.backward(retain_graph=False)  # graphs are kept while their results live
    assert x.grad.numpy().tolist() == [4.0] and not x.grad.requires_grad


def test_graphs_are_retained_on_request():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    w = tg.tensor([[1.0, 0.5], [-1.0, 2.0]], requires_grad=True)
    loss = tg.tanh(w @ x).sum()
    loss.backward(retain_graph=True)
    gx, gw = x.grad.numpy().copy(), w.grad.numpy().copy()
    loss.backward()  # (releases it: PyTorch's default)
    np.testing.assert_array_equal(x.grad.numpy(), 2 * gx)
    np.testing.assert_array_equal(w.grad.numpy(), 2 * gw)
    with pytest.raises(RuntimeError, match="retain_graph=True"):
        loss.backward()
    # backward from an intermediate result, then from the output: both sweep with retain_graph=True
    x.zero_grad()
    h = x * 2.0
    out = (h * 3.0).sum()
    h.backward(gradient=np.ones(2), retain_graph=True)
    out.backward()
    assert x.grad.numpy().tolist() == [8.0, 8.0]
    # without it, the first backward freed what h's record saved (as PyTorch frees it as it passes)
    h = x * 2.0
    out = (h * 3.0).sum()
    h.backward(gradient=np.ones(2))
    with pytest.raises(RuntimeError, match="retain_graph=True"):
        out.backward()


def test_gradient_does_not_alias_the_seed_or_other_leaves():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    y = tg.tensor([3.0, 4.0], requires_grad=True)
    seed = np.array([1.0, 1.0])
    (x + y).backward(gradient=seed)  # the same gradient flows to both leaves
    assert not np.shares_memory(x.grad.numpy(), y.grad.numpy())
    assert not np.shares_memory(x.grad.numpy(), seed)
    (x * 3.0).sum().backward()
    assert x.grad.numpy().tolist() == [4.0, 4.0]
    assert y.grad.numpy().tolist() == [1.0, 1.0]
    assert seed.tolist() == [1.0, 1.0]
    z = x.reshape(2)  # a view of x: its gradient is a view of nothing
    z.backward(gradient=seed, retain_graph=True)
    z.backward(gradient=seed)
    assert seed.tolist() == [1.0, 1.0]
    assert x.grad.numpy().tolist() == [6.0, 6.0]


def test_deep_chain_does_not_recurse():
    x = tg.tensor([0.5, -0.25], requires_grad=True)
    y = x
    for _ in range(20_000):
        y = y * 0.9999 + 0.0001
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(200)
    try:
        y.sum().backward()
    finally:
        sys.setrecursionlimit(old)
    assert np.allclose(x.grad.numpy(), 0.9999**20_000, rtol=1e-9)


# --- in-place updates --------------------------------------------------------------------------

def test_in_place_update_of_a_leaf_under_no_grad():
    a = np.array([1.0, 2.0, 3.0])
    w = tg.from_numpy(a).requires_grad_()
    (w * w).sum().backward()
    grad_view = w.grad.numpy()
    with tg.no_grad():
        w -= 0.5 * w.grad
    assert w.numpy().tolist() == [0.0, 0.0, 0.0]
    assert a.tolist() == [0.0, 0.0, 0.0]  # in place: the ndarray sees it
    assert np.shares_memory(w.numpy(), a)
    assert w.is_leaf and w.requires_grad
    assert w.grad.numpy().tolist() == [2.0, 4.0, 6.0] and np.shares_memory(w.grad.numpy(), grad_view)
    # the next forward uses the new values, and gradients are right
    w.grad = None
    ((w + 1.0) ** 2).sum().backward()
    assert w.grad.numpy().tolist() == [2.0, 2.0, 2.0]


@pytest.mark.parametrize("op,expected", [("__iadd__", [3.0, 4.0]), ("__isub__", [-1.0, 0.0]),
                                         ("__imul__", [2.0, 4.0]), ("__itruediv__", [0.5, 1.0])])
def test_in_place_operators(op, expected):
    for rhs in (2.0, np.array([2.0, 2.0]), tg.tensor([2.0, 2.0]), tg.tensor(2.0), [2.0]):
        t = tg.tensor([1.0, 2.0])
        before = t.numpy()
        r = getattr(t, op)(rhs)
        assert r is t
        assert t.numpy().tolist() == expected
        assert np.shares_memory(before, t.numpy())
        assert t.dtype == np.float64


def test_in_place_keeps_dtype_and_shape():
    t = tg.tensor([1.0, 2.0], dtype=tg.float32)
    t += np.array([0.5, 0.5])  # float64 operand: the tensor stays float32
    assert t.dtype == np.float32 and t.numpy().tolist() == [1.5, 2.5]
    m = tg.zeros((2, 3))
    m += tg.tensor([1.0, 2.0, 3.0])  # broadcast into the tensor's shape
    assert m.numpy().tolist() == [[1.0, 2.0, 3.0]] * 2
    v = tg.zeros(2)
    with pytest.raises(RuntimeError, match=r"in-place op: the result has shape \(2, 2\) but the tensor has shape \(2,"):
        v += np.ones((2, 2))
    assert v.numpy().tolist() == [0.0, 0.0]


def test_in_place_on_a_slice_writes_through():
    # contiguous slices are views (README): an in-place change shows in the base, as NumPy
    t = tg.tensor(np.arange(6.0))
    s = t[1:3]
    s += 10.0
    assert t.numpy().tolist() == [0.0, 11.0, 12.0, 3.0, 4.0, 5.0]
    m = tg.tensor(np.arange(6.0).reshape(2, 3))
    r = m[1]
    r *= 2.0
    assert m.numpy().tolist() == [[0.0, 1.0, 2.0], [6.0, 8.0, 10.0]]


def test_in_place_on_a_leaf_requiring_grad_needs_no_grad():
    w = tg.tensor([1.0, 2.0], requires_grad=True)
    for op in ("__iadd__", "__isub__", "__imul__", "__itruediv__"):
        with pytest.raises(RuntimeError, match="no_grad"):
            getattr(w, op)(1.0)
    assert w.numpy().tolist() == [1.0, 2.0]


def test_backward_after_an_in_place_change_of_a_saved_tensor_is_an_error():
    # PyTorch's rule: a tensor that a recorded op saved for its gradient and that was changed
    # in place since raises at backward() ("modified by an inplace operation") instead of
    # giving the gradient of values that were never used
    w = tg.tensor([1.0, 2.0], requires_grad=True)
    y = (w * w).sum()  # saves w
    with tg.no_grad():
        w -= 1.0
    with pytest.raises(RuntimeError, match="in-place|inplace|modified"):
        y.backward()
    w = tg.tensor([1.0, 2.0], requires_grad=True)
    c = tg.tensor([3.0, 4.0])
    y = (w * c).sum()  # saves c, a constant
    c += 1.0
    with pytest.raises(RuntimeError, match="in-place|inplace|modified"):
        y.backward()


def test_backward_after_an_in_place_change_of_an_unsaved_tensor_is_fine():
    w = tg.tensor([1.0, 2.0], requires_grad=True)
    y = tg.exp(w).sum()  # exp saves its result, not w (PyTorch allows this too)
    with tg.no_grad():
        w *= 0.0
    y.backward()
    np.testing.assert_allclose(w.grad.numpy(), np.exp([1.0, 2.0]), rtol=1e-15)


def test_in_place_on_a_recorded_result_is_refused():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2.0
    with pytest.raises(RuntimeError, match="in-place"):
        y += 1.0
    assert y.numpy().tolist() == [2.0, 4.0]
    y.sum().backward()
    assert x.grad.numpy().tolist() == [2.0, 2.0]


# --- Var and Tensor ----------------------------------------------------------------------------

def test_var_gradient_accumulates_from_tensors():
    v = tg.Var(2.0)
    t = tg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = (t * v).sum()  # a Var broadcast against a tensor
    assert isinstance(y, tg.Tensor)
    y.backward(retain_graph=True)
    assert v.grad == 6.0
    assert t.grad.numpy().tolist() == [2.0, 2.0, 2.0]
    y.backward()
    assert v.grad == 12.0
    z = tg.tensor(3.0, requires_grad=True) * v
    assert isinstance(z, tg.Tensor) and z.item() == 6.0


# --- tapes ---------------------------------------------------------------------------------------

def test_stale_tensor_after_clear():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    with tg.Tape() as t:
        y = x * 3.0
        assert t.stats()["records"] == 2  # the leaf and the mul
        t.clear()
        with pytest.raises(RuntimeError, match="stale"):
            y + 1.0
        with pytest.raises(RuntimeError, match="stale"):
            y.sum()
        assert y.numpy().tolist() == [3.0, 6.0]  # the values stay readable
        assert (y.detach() + 1.0).numpy().tolist() == [4.0, 7.0]
        z = x * 2.0  # the leaf is recorded afresh
        z.sum().backward()
    assert x.grad.numpy().tolist() == [2.0, 2.0]


def test_collect_keeps_what_live_tensors_reach():
    with tg.Tape() as t:
        a = np.array([0.5, 1.5])
        x = tg.tensor(a, requires_grad=True)
        h = tg.sin(x) * x
        h.retain_grad()
        out = (h * 3.0).sum()
        for i in range(1000):
            g = x * float(i)  # dead at once, but the tape is not empty
        del g
        before = t.stats()["records"]
        t.collect()
        after = t.stats()["records"]
        assert after < 10 < before
        out.backward()  # the live results are still valid and differentiate correctly
        np.testing.assert_allclose(x.grad.numpy(), 3 * (np.cos(a) * a + np.sin(a)), rtol=1e-14)
        assert h.grad.numpy().tolist() == [3.0, 3.0]
        more = (h * h).sum()
        np.testing.assert_allclose(more.item(), np.sum((np.sin(a) * a) ** 2), rtol=1e-14)


def test_data_setter_changes_values_in_place():
    a = np.array([1.0, 2.0])
    x = tg.from_numpy(a).requires_grad_()
    x.data = np.array([5.0, 6.0])
    assert x.numpy().tolist() == [5.0, 6.0] and a.tolist() == [5.0, 6.0]
    assert x.is_leaf and x.requires_grad
    x.data = tg.tensor([7.0, 8.0])
    assert a.tolist() == [7.0, 8.0]
    with pytest.raises(RuntimeError, match=r"shape \(3,\) for a tensor of shape \(2,\)"):
        x.data = np.ones(3)
    (x * x).sum().backward()
    assert x.grad.numpy().tolist() == [14.0, 16.0]


def test_operands_from_different_tapes():
    x = tg.tensor([1.0], requires_grad=True)
    with tg.Tape():
        a = x * 2.0
    with tg.Tape():
        b = x * 3.0
    with pytest.raises(RuntimeError, match="different tapes"):
        a + b


# --- memory --------------------------------------------------------------------------------------

def test_tape_is_cleared_when_the_last_result_dies():
    with tg.Tape() as t:
        x = tg.tensor([1.0, 2.0], requires_grad=True)
        w = tg.tensor([[1.0, 0.0], [0.0, 1.0]], requires_grad=True)
        h = w @ x
        y = tg.exp(h).sum()
        s = t.stats()
        assert s["records"] >= 5 and s["nodes"] == s["records"]  # at least x, w, matmul, exp, sum
        assert s["roots"] == 2  # h, y
        del h
        assert t.stats()["records"] == s["records"]  # y still needs them
        y.backward()
        del y
        s = t.stats()
        assert s["records"] == 0 and s["nodes"] == 0 and s["roots"] == 0 and s["bytes_in_use"] == 0
        assert x.grad.numpy().tolist() == np.exp([1.0, 2.0]).tolist()
        # leaves alone keep nothing on the tape
        (x * x).sum().backward()
        assert t.stats()["records"] == 0
        # a retained gradient or a grad Tensor does not keep the graph
        r = x * 2.0
        r.retain_grad()
        r.sum().backward()
        rg = r.grad
        del r
        assert t.stats()["records"] == 0
        assert rg.numpy().tolist() == [1.0, 1.0]
        np.testing.assert_array_equal(x.grad.numpy(), np.exp([1.0, 2.0]) + [2.0, 4.0] + [2.0, 2.0])


def test_tensors_make_no_reference_cycles_and_leak_nothing():
    x = tg.tensor([0.3, -0.2], requires_grad=True)
    w = tg.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    assert not gc.is_tracked(x)
    assert not gc.is_tracked(x * 2.0)

    def work():
        y = tg.tanh(w @ x + 1.0) ** 2 - x / 3.0
        y.sum().backward()
        return x.grad.numpy().sum()

    with tg.Tape() as t:
        work()
        rc_tape, rc_x, rc_w = sys.getrefcount(t), sys.getrefcount(x), sys.getrefcount(w)
        gc.collect()
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            n_before = len(gc.get_objects())
            for _ in range(2000):
                work()
            n_after = len(gc.get_objects())
            assert gc.collect() == 0  # nothing unreachable: no cycles were made
        finally:
            if was_enabled:
                gc.enable()
        assert n_after - n_before < 100, (n_before, n_after)
        assert sys.getrefcount(t) == rc_tape
        assert (sys.getrefcount(x), sys.getrefcount(w)) == (rc_x, rc_w)
        assert t.stats()["records"] == 0


def _linear_regression(steps: int, release_loss: bool, checkpoints=(1000, 10_000)):
    """Fits y = X @ w + b by gradient descent, PyTorch-style (README): the loss of the previous
    step is alive while the next one is built unless release_loss. Returns the tape's stats
    and RSS at the checkpoints, the largest record count seen, and the fitted w, b."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((64, 3))
    w_true = np.array([1.5, -2.0, 0.5])
    y = X @ w_true + 0.1
    Xt = tg.from_numpy(X)
    w = tg.zeros(3, requires_grad=True)
    b = tg.zeros((), requires_grad=True)
    at, most = {}, 0
    with tg.Tape() as tape:
        assert tg.active_tape() is tape
        for step in range(1, steps + 1):
            loss = ((Xt @ w + b - y) ** 2).mean()
            w.grad = None
            b.grad = None
            loss.backward()
            with tg.no_grad():
                w -= 0.05 * w.grad
                b -= 0.05 * b.grad
            value = loss.item()
            if release_loss:
                del loss
            s = tg.active_tape().stats()
            most = max(most, s["records"])
            if step in checkpoints:
                at[step] = dict(s, rss=rss_bytes(), loss=value)
    return at, most, w.numpy().copy(), b.item()


def _assert_fitted(w, b, at):
    np.testing.assert_allclose(w, [1.5, -2.0, 0.5], rtol=1e-9)
    assert math.isclose(b, 0.1, rel_tol=1e-9)
    assert at[10_000]["loss"] < 1e-20


def test_training_loop_memory_is_flat():
    """10,000 steps of the README's linear regression (`@`, in-place updates under no_grad);
    the previous loss is alive while each new one is built, so the tape is never empty and
    is never cleared automatically: only collection keeps it small. The tape is collected
    whenever the tensor records pushed since the last collection hold 4 MiB (about 1 KiB
    each here), so the record count is a sawtooth whose peak does not depend on the number
    of steps: it stays under 8192 over the whole run, and between step 1000 and step 10,000
    the arena's reservation does not grow and RSS grows by < 4 MiB (as test_memory.py asks
    of the Var training loop)."""
    at, most, w, b = _linear_regression(10_000, release_loss=False)
    _assert_fitted(w, b, at)
    s1, s2 = at[1000], at[10_000]
    rss_growth = s2["rss"] - s1["rss"]
    problems = []
    if most > 8192:
        problems.append(f"up to {most} records on the tape")
    if s2["bytes_reserved"] > s1["bytes_reserved"]:
        problems.append(f"bytes_reserved {s1['bytes_reserved']} -> {s2['bytes_reserved']}")
    if rss_growth >= 4 * 2**20:
        problems.append(f"RSS grew by {rss_growth / 2**20:.1f} MiB")
    assert not problems, "memory grew between steps 1000 and 10000: " + "; ".join(problems)


def test_training_loop_releasing_the_loss_clears_the_tape_every_step():
    at, most, w, b = _linear_regression(10_000, release_loss=True)
    _assert_fitted(w, b, at)
    assert most == 0  # cleared as soon as the step's loss dies
    s1, s2 = at[1000], at[10_000]
    assert s1["records"] == s2["records"] == 0 and s2["bytes_in_use"] == 0
    assert s2["bytes_reserved"] == s1["bytes_reserved"]
    rss_growth = s2["rss"] - s1["rss"]
    assert rss_growth < 4 * 2**20, f"RSS grew by {rss_growth / 2**20:.1f} MiB between steps 1000 and 10000"
