"""tapegrad.Tensor itself: creation, dtypes and promotion, NumPy interop (zero-copy), printing,
conversions, comparisons, errors, and a fuzz of ops on odd shapes that must never crash.

Values and gradients of the ops are in test_tensor_ops.py; autograd semantics and memory in
test_tensor_autograd.py.
"""

from __future__ import annotations

import copy
import gc
import math
import operator
import pickle
import textwrap

import numpy as np
import pytest

import tapegrad as tg
from conftest import run_fuzz_worker

# --- the README example ------------------------------------------------------------------------

def test_readme_example():
    x = tg.tensor([2.0], requires_grad=True)
    y = x * x * 3
    z = y + 2
    z.backward()
    assert str(x.grad) == "tensor([12.])"
    assert repr(x.grad) == "tensor([12.])"
    assert isinstance(x.grad, tg.Tensor)
    assert x.grad.numpy().tolist() == [12.0]
    # .grad.numpy() is a view of the gradient: the same memory on every call
    assert np.shares_memory(x.grad.numpy(), x.grad.numpy())
    address = x.grad.numpy().__array_interface__["data"][0]
    assert all(x.grad.numpy().__array_interface__["data"][0] == address for _ in range(3))
    assert np.shares_memory(x.grad.numpy(), np.asarray(x.grad))
    view = x.grad.numpy()
    view[0] = 5.0
    assert x.grad.item() == 5.0
    assert str(z) == "tensor([14.], grad_fn=<AddBackward0>)"  # PyTorch's print, grad_fn's name included
    assert str(y) == "tensor([12.], grad_fn=<MulBackward0>)"


# --- creation ----------------------------------------------------------------------------------

@pytest.mark.parametrize("data,dtype,shape", [
    (1.5, np.float64, ()),
    (3, np.int64, ()),
    (True, np.bool_, ()),
    ([1.0, 2.0], np.float64, (2,)),
    ([[1, 2, 3], [4, 5, 6]], np.int64, (2, 3)),
    ([True, False], np.bool_, (2,)),
    ([], np.float64, (0,)),
    ([[]], np.float64, (1, 0)),
    (np.zeros((2, 0, 3), np.float32), np.float32, (2, 0, 3)),
    (np.arange(4, dtype=np.int32), np.int64, (4,)),  # other integers widen to int64
    (np.arange(4, dtype=np.uint8), np.int64, (4,)),
    (np.ones(3, np.float16), np.float16, (3,)),  # float16 is a storage dtype
    (np.float32(2.5), np.float32, ()),
], ids=["float", "int", "bool", "list", "nested-int", "bool-list", "empty", "empty-2d", "float32-empty", "int32",
        "uint8", "float16", "np.float32"])
def test_tensor_infers_dtype_and_shape(data, dtype, shape):
    t = tg.tensor(data)
    assert isinstance(t, tg.Tensor)
    assert t.dtype == dtype
    assert t.shape == shape
    assert t.ndim == len(shape)
    assert t.size == int(np.prod(shape))
    assert t.numpy().tolist() == np.asarray(data).astype(dtype).tolist()
    assert not t.requires_grad and t.is_leaf and t.grad is None


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64, np.bool_, "float32", "float64", "int64", "bool",
                                   tg.float32, tg.float64, tg.int64, tg.bool_])
def test_tensor_dtype_argument(dtype):
    t = tg.tensor([0.0, 1.0, 2.0], dtype=dtype)
    assert t.dtype == np.dtype(dtype)
    assert t.numpy().tolist() == np.array([0.0, 1.0, 2.0]).astype(dtype).tolist()


def test_dtype_names():
    assert tg.float32 is np.float32 and tg.float64 is np.float64
    assert tg.int64 is np.int64 and tg.bool_ is np.bool_


def test_tensor_copies():
    a = np.array([1.0, 2.0, 3.0])
    t = tg.tensor(a)
    assert not np.shares_memory(t.numpy(), a)
    a[0] = 100.0
    assert t.numpy().tolist() == [1.0, 2.0, 3.0]
    t2 = tg.tensor(t)  # a Tensor is copied too
    assert not np.shares_memory(t2.numpy(), t.numpy())
    assert t2.numpy().tolist() == [1.0, 2.0, 3.0]
    assert tg.tensor(t, dtype=np.float32).dtype == np.float32
    t3 = tg.Tensor([1.0, 2.0])  # the constructor is tg.tensor
    assert t3.numpy().tolist() == [1.0, 2.0]
    v = tg.tensor(tg.Var(2.5))
    assert v.shape == () and v.item() == 2.5 and v.dtype == np.float64


def test_tensor_requires_grad_argument():
    t = tg.tensor([1.0, 2.0], requires_grad=True)
    assert t.requires_grad and t.is_leaf and t.grad is None
    assert tg.tensor([1.0], dtype=np.float32, requires_grad=True).requires_grad


@pytest.mark.parametrize("fn", ["zeros", "ones"])
def test_zeros_ones(fn):
    value = 0.0 if fn == "zeros" else 1.0
    make = getattr(tg, fn)
    for t, shape in [(make(2, 3), (2, 3)), (make((2, 3)), (2, 3)), (make([4]), (4,)), (make(()), ()), (make(0), (0,)),
                     (make(3), (3,))]:
        assert t.shape == shape and t.dtype == np.float64
        assert t.numpy().tolist() == np.full(shape, value).tolist()
    t = make(2, dtype=tg.float32, requires_grad=True)
    assert t.dtype == np.float32 and t.requires_grad and t.is_leaf
    assert make(2, dtype=tg.int64).numpy().tolist() == [int(value)] * 2
    assert make(2, dtype=tg.bool_).numpy().tolist() == [bool(value)] * 2


def test_full_and_likes():
    t = tg.full((2, 3), 7.5)
    assert t.shape == (2, 3) and t.numpy().tolist() == np.full((2, 3), 7.5).tolist()
    assert tg.full(4, 2).numpy().tolist() == [2.0] * 4
    assert tg.full((), -1.0).shape == ()
    assert tg.full((2,), 3, dtype=tg.int64).dtype == np.int64
    base = tg.ones((2, 2), dtype=tg.float32)
    for fn, value in [(tg.zeros_like, 0.0), (tg.ones_like, 1.0)]:
        r = fn(base)
        assert r.shape == (2, 2) and r.dtype == np.float32 and r.numpy().tolist() == [[value] * 2] * 2
        assert not r.requires_grad
        assert fn(base, dtype=tg.float64).dtype == np.float64
        assert fn(base, requires_grad=True).requires_grad
    r = tg.full_like(base, 3.5)
    assert r.dtype == np.float32 and r.numpy().tolist() == [[3.5] * 2] * 2
    assert tg.full_like(base, 3, dtype=tg.int64).numpy().tolist() == [[3, 3], [3, 3]]
    assert tg.zeros_like(tg.tensor([[1, 2]])).dtype == np.int64


@pytest.mark.parametrize("args,kwargs", [
    ((5,), {}), ((2, 7), {}), ((0, 1, 0.25), {}), ((5, 0, -2), {}), ((1.5,), {}), ((0, 0), {}),
    ((3,), {"dtype": tg.float32}), ((-1.0, 1.0, 0.5), {}), ((10, 0), {}),
])
def test_arange(args, kwargs):
    t = tg.arange(*args, **kwargs)
    expected = np.arange(*args, **kwargs)
    assert t.dtype == expected.dtype, (args, t.dtype, expected.dtype)
    assert t.shape == expected.shape
    assert t.numpy().tolist() == expected.tolist()


@pytest.mark.parametrize("n,m", [(3, None), (2, 4), (4, 2), (0, None), (1, 1)])
def test_eye(n, m):
    t = tg.eye(n) if m is None else tg.eye(n, m)
    assert t.numpy().tolist() == np.eye(n, m).tolist()
    assert t.dtype == np.float64
    assert tg.eye(2, dtype=tg.float32).dtype == np.float32


def test_creation_errors():
    with pytest.raises(ValueError, match="negative dimension"):
        tg.zeros(-1)
    with pytest.raises(RuntimeError, match="step"):
        tg.arange(0, 5, 0)
    with pytest.raises(RuntimeError, match="only float32 and float64 tensors can require grad, not int64"):
        tg.ones(2, dtype=tg.int64, requires_grad=True)


# --- NumPy interop: zero copy ------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64, np.bool_])
def test_from_numpy_shares_memory(dtype):
    a = np.zeros((2, 3), dtype=dtype)
    t = tg.from_numpy(a)
    assert t.dtype == dtype and t.shape == (2, 3)
    assert np.shares_memory(t.numpy(), a)
    assert np.shares_memory(np.asarray(t), a)
    # a change on either side is seen on the other
    a[0, 1] = 1
    assert t.numpy()[0, 1] == 1
    t.numpy()[1, 2] = 1
    assert a[1, 2] == 1
    assert t.numpy().tolist() == a.tolist()


def test_from_numpy_keeps_the_array_alive():
    a = np.arange(5.0)
    t = tg.from_numpy(a)
    del a
    gc.collect()
    junk = [np.full(5, 7.0) for _ in range(100)]  # would reuse the memory if it had been freed
    assert t.numpy().tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert len(junk) == 100


@pytest.mark.parametrize("make,dtype", [
    (lambda: np.arange(6.0).reshape(2, 3).T, np.float64),  # not C-contiguous
    (lambda: np.arange(10.0)[::2], np.float64),  # strided
    (lambda: np.arange(3, dtype=np.int32), np.int64),
    (lambda: np.arange(3, dtype=np.uint16), np.int64),
], ids=["transposed", "strided", "int32", "uint16"])
def test_from_numpy_copies_what_it_cannot_share(make, dtype):
    a = make()
    t = tg.from_numpy(a)
    assert t.dtype == dtype
    assert t.numpy().tolist() == a.astype(dtype).tolist()
    assert t.numpy().flags["C_CONTIGUOUS"]
    assert not np.shares_memory(t.numpy(), a)


def test_from_numpy_read_only_array_is_copied_and_writeable():
    a = np.arange(4.0)
    a.flags.writeable = False
    t = tg.from_numpy(a)
    assert not np.shares_memory(t.numpy(), a)
    assert t.numpy().flags.writeable
    t.numpy()[0] = 9.0
    assert a[0] == 0.0


@pytest.mark.parametrize("bad", [[1.0, 2.0], 3.0, "abc", None])
def test_from_numpy_needs_an_ndarray(bad):
    with pytest.raises(TypeError):
        tg.from_numpy(bad)


@pytest.mark.parametrize("bad", [np.ones(2, complex), np.array(["a", "b"]), np.array([object()])],
                         ids=["complex", "str", "object"])
def test_unsupported_dtypes_are_refused(bad):
    with pytest.raises(TypeError, match="float32, float64, int64 or bool"):
        tg.from_numpy(bad)
    with pytest.raises(TypeError, match="float32, float64, int64 or bool"):
        tg.tensor(bad)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64, np.bool_])
def test_numpy_is_a_view(dtype):
    t = tg.tensor([[1, 0, 1], [0, 1, 1]], dtype=dtype)
    a = t.numpy()
    assert isinstance(a, np.ndarray)
    assert a.dtype == dtype and a.shape == (2, 3) and a.flags["C_CONTIGUOUS"] and a.flags.writeable
    assert np.shares_memory(a, t.numpy())  # the same memory on every call
    assert np.shares_memory(a, np.asarray(t))
    a[0, 1] = 1
    assert t.numpy()[0, 1] == 1
    assert t.tolist() == a.tolist()


def test_numpy_view_outlives_the_tensor():
    t = tg.tensor(np.arange(1000.0))
    a = t.numpy()
    del t
    assert a.sum() == 499500.0


@pytest.mark.parametrize("dtype,fmt", [(np.float32, "f"), (np.float64, "d"), (np.int64, "q"), (np.bool_, "?")])
def test_buffer_protocol(dtype, fmt):
    t = tg.zeros((2, 3), dtype=dtype)
    m = memoryview(t)
    assert m.format == fmt
    assert m.shape == (2, 3)
    assert m.itemsize == np.dtype(dtype).itemsize
    assert m.strides == (3 * m.itemsize, m.itemsize)
    a = np.asarray(t)
    assert a.dtype == dtype and np.shares_memory(a, t.numpy())
    a[1, 1] = 1
    assert t.numpy()[1, 1] == 1


def test_grad_numpy_is_a_view():
    x = tg.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    (x * x).sum().backward()
    g1, g2 = x.grad.numpy(), x.grad.numpy()
    assert np.shares_memory(g1, g2)
    assert np.shares_memory(g1, np.asarray(x.grad))
    assert g1.tolist() == [[2.0, 4.0], [6.0, 8.0]]
    g1[0, 0] = -1.0
    assert x.grad.numpy()[0, 0] == -1.0


def test_zero_d_and_empty_views():
    t = tg.tensor(3.5)
    a = t.numpy()
    assert a.shape == () and a.dtype == np.float64 and float(a) == 3.5
    assert np.shares_memory(a, t.numpy())
    e = tg.zeros((0, 4))
    assert e.numpy().shape == (0, 4) and np.asarray(e).shape == (0, 4)


def test_data_is_a_detached_view():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    d = x.data
    assert not d.requires_grad and d.is_leaf
    assert np.shares_memory(d.numpy(), x.numpy())


# --- printing, conversions ---------------------------------------------------------------------

@pytest.mark.parametrize("make,text", [
    (lambda: tg.tensor([1.0, 2.0]), "tensor([1., 2.])"),
    (lambda: tg.tensor([[1.0, 2.0], [3.0, 4.5]]), "tensor([[1. , 2. ],\n        [3. , 4.5]])"),
    (lambda: tg.tensor(2.0), "tensor(2.)"),
    (lambda: tg.tensor([1.0, 2.0], dtype=tg.float32), "tensor([1., 2.], dtype=float32)"),
    (lambda: tg.tensor([1.0], requires_grad=True), "tensor([1.], requires_grad=True)"),
    (lambda: tg.tensor([1.0], dtype=tg.float32, requires_grad=True), "tensor([1.], dtype=float32, requires_grad=True)"),
    (lambda: tg.tensor([1, 2]), "tensor([1, 2])"),
    (lambda: tg.tensor([True, False]), "tensor([ True, False])"),
    (lambda: tg.zeros(0), "tensor([])"),
    (lambda: tg.tensor([1.0], requires_grad=True), "tensor([1.], requires_grad=True)"),
    (lambda: tg.tensor([1.0], requires_grad=True) * 2, "tensor([2.], grad_fn=<MulBackward0>)"),
])
def test_repr(make, text):
    t = make()
    assert repr(t) == text
    assert str(t) == text


def test_format_of_a_0d_tensor():
    t = tg.tensor(3.14159)
    assert f"{t:.2f}" == "3.14"
    assert f"{t}" == "3.14159"  # the number, as PyTorch formats a 0-d tensor (str(t) is still its repr)
    assert str(t) == "tensor(3.14159)"


def test_item_and_conversions():
    assert tg.tensor([3.5]).item() == 3.5 and type(tg.tensor([3.5]).item()) is float
    assert tg.tensor(2.0).item() == 2.0
    assert tg.tensor([[7]]).item() == 7 and type(tg.tensor([[7]]).item()) is int
    assert tg.tensor(True).item() is True
    assert tg.tensor([2.5], dtype=tg.float32).item() == 2.5
    assert float(tg.tensor([2.5])) == 2.5
    assert int(tg.tensor(3.0)) == 3
    assert bool(tg.tensor([1.0])) is True and bool(tg.tensor(0.0)) is False
    with pytest.raises(RuntimeError, match="one element"):
        tg.tensor([1.0, 2.0]).item()
    with pytest.raises(RuntimeError, match="one element"):
        tg.zeros(0).item()
    with pytest.raises(ValueError, match="ambiguous"):
        bool(tg.tensor([1.0, 2.0]))
    x = tg.tensor([1.5], requires_grad=True) * 2.0
    assert x.item() == 3.0  # item() of a recorded result


def test_len_iter_tolist():
    t = tg.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    assert len(t) == 3
    rows = list(t)
    assert len(rows) == 3 and all(isinstance(r, tg.Tensor) and r.shape == (2,) for r in rows)
    assert [r.tolist() for r in rows] == [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]
    assert [e.item() for e in tg.tensor([4.0, 5.0])] == [4.0, 5.0]
    assert t.tolist() == [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]
    assert tg.tensor(2.0).tolist() == 2.0
    with pytest.raises(TypeError):
        len(tg.tensor(1.0))
    with pytest.raises(TypeError):
        iter(tg.tensor(1.0))
    assert list(tg.zeros((0, 2))) == []


def test_tensors_hash_by_identity():
    a, b = tg.tensor([1.0]), tg.tensor([1.0])
    assert hash(a) == object.__hash__(a) and hash(b) == object.__hash__(b)
    s = {a, b}  # equal values, two tensors (== is elementwise, as for torch.Tensor)
    assert len(s) == 2 and a in s and b in s
    assert {a: 1}[a] == 1


def test_astype_and_clone():
    t = tg.tensor([1.5, -2.5])
    r = t.astype(np.float32)
    assert r.dtype == np.float32 and r.numpy().tolist() == [1.5, -2.5]
    assert t.astype(np.int64).numpy().tolist() == [1, -2]
    c = t.clone()
    assert c.numpy().tolist() == [1.5, -2.5] and not np.shares_memory(c.numpy(), t.numpy())


def test_pickle_and_copy():
    x = tg.tensor([[1.0, 2.0]], dtype=tg.float32, requires_grad=True)
    y = pickle.loads(pickle.dumps(x))
    assert isinstance(y, tg.Tensor) and y is not x
    assert y.dtype == np.float32 and y.shape == (1, 2) and y.tolist() == [[1.0, 2.0]]
    assert y.requires_grad and y.is_leaf
    assert not np.shares_memory(y.numpy(), x.numpy())
    r = pickle.loads(pickle.dumps(x * 2.0))  # a result: its values, as a leaf without grad
    assert r.tolist() == [[2.0, 4.0]] and r.is_leaf and not r.requires_grad
    d = copy.deepcopy(tg.tensor([1, 2]))
    assert d.dtype == np.int64 and d.tolist() == [1, 2]


# --- dtypes: promotion as NumPy ----------------------------------------------------------------

PROMOTION = [
    (np.float32, np.float32, np.float32),
    (np.float32, np.float64, np.float64),
    (np.float64, np.float32, np.float64),
    (np.int64, np.float32, np.float64),
    (np.float32, np.int64, np.float64),
    (np.int64, np.float64, np.float64),
    (np.bool_, np.float32, np.float32),
    (np.bool_, np.float64, np.float64),
    (np.float32, np.bool_, np.float32),
]


@pytest.mark.parametrize("da,db,expected", PROMOTION, ids=[f"{np.dtype(a)}-{np.dtype(b)}" for a, b, _ in PROMOTION])
def test_promotion_of_two_tensors(da, db, expected):
    a = tg.tensor([1, 0, 1], dtype=da)
    b = tg.tensor([1, 1, 0], dtype=db)
    assert (np.ones(3, da) * np.ones(3, db)).dtype == expected  # NumPy agrees
    for op in ("__add__", "__sub__", "__mul__", "__truediv__", "__pow__"):
        assert getattr(a, op)(b).dtype == expected, op
    for fn in ("add", "atan2", "maximum", "minimum"):
        assert getattr(tg, fn)(a, b).dtype == expected, fn
    assert tg.where(tg.tensor([True, False, True]), a, b).dtype == expected
    assert tg.concatenate([a, b]).dtype == expected
    assert tg.stack([a, b]).dtype == expected


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_python_scalars_are_weak(dtype):
    t = tg.tensor([1.0, 2.0], dtype=dtype)
    for r in (t * 2.0, 2.0 * t, t + 1, t - True, t / 3.0, t ** 2, 2.0 ** t, tg.pow(t, 0.5), tg.maximum(t, 1.5),
              tg.atan2(1.0, t), tg.where(t > 1.0, t, 0.0), t * tg.Var(2.0)):
        assert r.dtype == dtype
    assert (t * 2.0).numpy().tolist() == [2.0, 4.0]


def test_float32_with_arrays_and_0d_tensors_promotes():
    t = tg.tensor([1.0, 2.0], dtype=tg.float32)
    assert (t + np.ones(2)).dtype == np.float64  # arrays: NumPy's rule
    assert (np.ones(2) + t).dtype == np.float64
    assert (t + np.ones(2, np.float32)).dtype == np.float32
    assert (t + tg.tensor(1.0)).dtype == np.float32  # a 0-d float64 tensor takes t's dtype: PyTorch's rule
    assert (tg.tensor(1.0) * t).dtype == np.float32
    assert (t @ tg.ones((2, 2))).dtype == np.float64


def test_integer_and_bool_tensors_in_arithmetic_give_floats():
    # int64 and bool tensors exist for indices and masks; arithmetic on them is float64
    i = tg.tensor([1, 2, 3])
    b = tg.tensor([True, False, True])
    for r, expected in [(i + i, [2.0, 4.0, 6.0]), (i * 2, [2.0, 4.0, 6.0]), (i / 2, [0.5, 1.0, 1.5]),
                        (b + b, [2.0, 0.0, 2.0]), (-i, [-1.0, -2.0, -3.0]), (tg.exp(tg.tensor([0])), [1.0])]:
        assert r.dtype == np.float64
        assert r.numpy().tolist() == expected
    assert i.sum().item() == 6.0
    assert (b * tg.tensor([2.0, 3.0, 4.0], dtype=tg.float32)).numpy().tolist() == [2.0, 0.0, 4.0]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_reductions_keep_float_dtype(dtype):
    t = tg.tensor([[1.0, 2.0], [3.0, 4.0]], dtype=dtype)
    for r in (t.sum(), t.mean(axis=0), t.max(), tg.prod(t, axis=1), t.var(), t.std(), tg.logsumexp(t),
              tg.softmax(t), tg.log_softmax(t, axis=0), t @ t, t.T, t.reshape(4), t[0], t[[0, 0]]):
        assert r.dtype == dtype


# --- comparisons ---------------------------------------------------------------------------------

def test_comparisons_give_bool_tensors():
    a = np.array([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]])
    b = np.array([2.0, 2.0, 2.0])
    x = tg.tensor(a, requires_grad=True)
    y = tg.tensor(b)
    for op in ("__lt__", "__le__", "__gt__", "__ge__", "__eq__", "__ne__"):
        for r, expected in [(getattr(x, op)(y), getattr(a, op)(b)), (getattr(x, op)(2.0), getattr(a, op)(2.0)),
                            (getattr(x, op)(b), getattr(a, op)(b))]:
            assert isinstance(r, tg.Tensor), op
            assert r.dtype == np.bool_, op
            assert not r.requires_grad, op  # comparisons are never recorded
            assert r.numpy().tolist() == expected.tolist(), op
    # an ndarray on the left: NumPy defers to the Tensor
    r = b < x
    assert isinstance(r, tg.Tensor) and r.numpy().tolist() == (b < a).tolist()
    r = b == x
    assert isinstance(r, tg.Tensor) and r.numpy().tolist() == (b == a).tolist()
    assert (tg.tensor([1, 2]) == tg.tensor([1.0, 3.0])).numpy().tolist() == [True, False]


# --- mixing with ndarrays, lists and numbers --------------------------------------------------

@pytest.mark.parametrize("op", ["__add__", "__sub__", "__mul__", "__truediv__", "__pow__", "__matmul__"])
def test_ndarray_op_tensor_and_tensor_op_ndarray_are_tensors(op):
    a = np.array([[1.0, 2.0], [3.0, 4.0]])
    b = np.array([[0.5, 1.5], [2.0, 1.0]])
    t = tg.tensor(b)
    expected = getattr(a, op)(b)
    binop = getattr(operator, op)
    for left, right, label in [(a, t, "ndarray op Tensor"), (tg.tensor(a), b, "Tensor op ndarray"),
                               (a.tolist(), t, "list op Tensor"), (tg.tensor(a), b.tolist(), "Tensor op list"),
                               (tg.tensor(a), t, "Tensor op Tensor")]:
        r = binop(left, right)  # NumPy defers to Tensor.__rop__ (Tensor.__array_ufunc__ is None)
        assert isinstance(r, tg.Tensor), (label, type(r))
        assert r.numpy().tolist() == expected.tolist(), label


def test_functions_take_arrays_lists_and_numbers():
    assert isinstance(tg.exp(np.array([0.0, 1.0])), tg.Tensor)
    assert tg.exp([0.0, 1.0]).numpy().tolist() == [1.0, math.e]
    assert tg.add(np.array([1.0]), np.array([2.0])).numpy().tolist() == [3.0]
    assert tg.sum([1.0, 2.0]).item() == 3.0
    assert tg.max([1.0, 5.0, 2.0]).item() == 5.0
    assert tg.matmul([[1.0, 2.0]], [1.0, 1.0]).numpy().tolist() == [3.0]
    assert type(tg.exp(0.0)) is float  # plain numbers stay plain (the Var functions)


# --- shapes and indexing (values; gradients are in test_tensor_ops.py) --------------------------

def test_reshape_shares_memory_and_checks_sizes():
    t = tg.tensor(np.arange(6.0))
    r = t.reshape(2, 3)
    assert r.shape == (2, 3) and r.size == 6
    assert np.shares_memory(r.numpy(), t.numpy())
    assert t.reshape((3, -1)).shape == (3, 2)
    assert tg.reshape(t, 6).shape == (6,)
    assert t.flatten().shape == (6,)
    with pytest.raises(ValueError, match=r"reshape: cannot reshape a tensor of shape \(6,\) \(6 elements\) into "
                                            r"\(4, 2\)"):
        t.reshape(4, 2)
    with pytest.raises(ValueError, match="only one dimension can be -1"):
        t.reshape(-1, -1)


@pytest.mark.parametrize("key", [(slice(1, None),), (2,), (slice(1, 3), slice(None))],
                         ids=["x[1:]", "x[2]", "x[1:3,:]"])
def test_contiguous_slices_are_consistent_views(key):
    # a contiguous run is a view (README); it must know its own size, and stay usable
    a = np.arange(20.0).reshape(4, 5)
    t = tg.tensor(a)
    s = t[key]
    expected = a[key]
    assert s.shape == expected.shape and s.size == expected.size
    assert s.numpy().tolist() == expected.tolist()
    assert np.shares_memory(s.numpy(), t.numpy())
    assert s.reshape(-1).numpy().tolist() == expected.ravel().tolist()
    assert s.sum().item() == expected.sum()
    assert (s + 0.0).numpy().tolist() == expected.tolist()
    assert s[..., None].shape == expected[..., None].shape


def test_indexing_errors():
    t = tg.tensor(np.arange(6.0).reshape(2, 3))
    for key in (2, -3, (0, 3), (slice(None), -4), [0, 2], ([0, 1], [0, 3]), [-3]):
        with pytest.raises(IndexError):
            t[key]
    with pytest.raises(IndexError, match="too many indices"):
        t[0, 0, 0]
    with pytest.raises(IndexError, match="too many indices"):
        tg.tensor(1.0)[0]
    with pytest.raises(IndexError, match="single ellipsis"):
        t[..., ...]
    with pytest.raises(IndexError):
        t[np.array([True, False, True])]  # a mask of the wrong length
    for key in (0.5, "a", np.array([0.5]), tg.tensor([0.0])):
        with pytest.raises(IndexError):
            t[key]
    with pytest.raises(ValueError):
        t[::0]


def test_indexing_0d_and_empty():
    t = tg.tensor(2.0)
    assert t[...].shape == () and t[...].item() == 2.0
    assert t[None].shape == (1,)
    e = tg.zeros((0, 3))
    assert e[:, 1].shape == (0,)
    assert e[[]].shape == (0, 3)
    assert tg.arange(5.0)[5:].shape == (0,)
    assert tg.arange(5.0)[tg.zeros(5, dtype=tg.bool_)].shape == (0,)


def test_boolean_and_integer_tensor_keys():
    a = np.arange(12.0).reshape(3, 4)
    t = tg.tensor(a)
    assert t[t > 5.0].numpy().tolist() == a[a > 5.0].tolist()
    assert t[tg.tensor([2, 0])].numpy().tolist() == a[[2, 0]].tolist()
    assert t[tg.tensor([True, False, True])].numpy().tolist() == a[[True, False, True]].tolist()
    assert t[1, tg.tensor([3, 3])].numpy().tolist() == [7.0, 7.0]


# --- errors ------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["add", "sub", "mul", "div", "pow", "atan2", "min", "max"])
def test_broadcast_errors_name_the_op_and_both_shapes(name):
    a, b = tg.ones((2, 3)), tg.ones(4)
    fn = {"min": tg.minimum, "max": tg.maximum}.get(name, getattr(tg, name))
    message = f"tapegrad: {name}: shapes (2, 3) and (4,) cannot be broadcast together"
    with pytest.raises(RuntimeError) as info:
        fn(a, b)
    assert str(info.value) == message
    with pytest.raises(RuntimeError, match=r"shapes \(2, 3\) and \(4,\) cannot be broadcast"):
        fn(a, np.ones(4))
    with pytest.raises(RuntimeError, match=r"shapes \(4,\) and \(2, 3\) cannot be broadcast"):
        fn(np.ones(4), a)


def test_operator_errors_name_the_op():
    a, b = tg.ones((2, 3)), tg.ones(4)
    for op, name in [("__add__", "add"), ("__sub__", "sub"), ("__mul__", "mul"), ("__truediv__", "div"),
                     ("__pow__", "pow")]:
        with pytest.raises(RuntimeError) as info:
            getattr(a, op)(b)
        assert str(info.value) == f"tapegrad: {name}: shapes (2, 3) and (4,) cannot be broadcast together"
    with pytest.raises(RuntimeError, match=r"tapegrad: where: shapes \(2,\) and \(3,\) cannot be broadcast"):
        tg.where(tg.tensor([True, False]), tg.ones(3), 0.0)
    with pytest.raises(RuntimeError, match=r"broadcast_to: .*\(2, 3\).*\(3, 3\)"):
        tg.broadcast_to(a, (3, 3))


def test_matmul_errors():
    with pytest.raises(RuntimeError) as info:
        tg.ones((2, 3)) @ tg.ones((2, 3))
    assert str(info.value).startswith("tapegrad: matmul: shapes (2, 3) and (2, 3) do not match")
    with pytest.raises(RuntimeError, match=r"matmul: shapes \(3,\) and \(4,\) do not match"):
        tg.matmul(tg.ones(3), tg.ones(4))
    with pytest.raises(RuntimeError, match=r"matmul: .*cannot be broadcast"):
        tg.ones((2, 2, 3)) @ tg.ones((3, 3, 2))
    with pytest.raises(RuntimeError, match=r"matmul: .*at least one dimension"):
        tg.ones(()) @ tg.ones(())
    with pytest.raises(RuntimeError, match=r"dot: .*\(2, 2\) and \(2, 2\)"):
        tg.dot(tg.ones((2, 2)), tg.ones((2, 2)))
    with pytest.raises(RuntimeError, match=r"shapes \(2,\) and \(3,\) do not match"):
        tg.dot(tg.ones(2), tg.ones(3))


def test_shape_op_errors():
    t = tg.ones((2, 3))
    cases = [
        (lambda: t.sum(axis=2), r"sum: axis 2 is out of bounds for a tensor of dimension 2"),
        (lambda: t.mean(axis=-3), r"mean: axis -3 is out of bounds"),
        (lambda: t.sum(axis=(0, 0)), r"sum: axis 0 is repeated"),
        (lambda: t.softmax(axis=2), r"softmax: axis 2 is out of bounds"),
        (lambda: t.transpose((0, 0)), r"transpose: axis 0 appears twice"),
        (lambda: t.transpose((0, 2)), r"transpose: axis 2 is out of bounds"),
        (lambda: t.transpose(0), r"transpose: 1 axes for a tensor of shape \(2, 3\)"),
        (lambda: t.squeeze(axis=0), r"squeeze: axis 0 of shape \(2, 3\) does not have length 1"),
        (lambda: t.unsqueeze(3), r"unsqueeze: axis 3 is out of bounds"),
        (lambda: tg.concatenate([t, tg.ones((2, 2))]),
         r"concatenate: shapes \(2, 3\) and \(2, 2\) differ outside axis 0"),
        (lambda: tg.concatenate([]), r"concatenate: needs at least one tensor"),
        (lambda: tg.concatenate([tg.ones(()), tg.ones(())]), r"concatenate: zero-dimensional"),
        (lambda: tg.stack([t, tg.ones((3, 2))]),
         r"stack: all tensors must have the same shape, not \(2, 3\) and \(3, 2\)"),
        (lambda: tg.stack([]), r"stack: needs at least one tensor"),
        (lambda: tg.max(tg.zeros(0)), r"zero-size"),
    ]
    for fn, pattern in cases:
        with pytest.raises(RuntimeError, match=pattern):
            fn()


def test_requires_grad_on_integer_tensors_is_an_error():
    message = "only float32 and float64 tensors can require grad, not int64"
    with pytest.raises(RuntimeError, match=message):
        tg.tensor([1, 2], requires_grad=True)
    with pytest.raises(RuntimeError, match=message):
        tg.tensor([1, 2]).requires_grad_()
    t = tg.tensor([1, 2])
    with pytest.raises(RuntimeError, match=message):
        t.requires_grad = True
    assert not t.requires_grad
    with pytest.raises(RuntimeError, match="not bool"):
        tg.tensor([True]).requires_grad_()


@pytest.mark.parametrize("bad", ["a", None, {}, object(), 1j, [[1, 2], [3]]], ids=["str", "None", "dict", "object",
                                                                              "complex", "ragged"])
def test_bad_operand_types(bad):
    t = tg.tensor([1.0, 2.0])
    for op in ("__add__", "__radd__", "__mul__", "__sub__", "__rsub__", "__truediv__", "__pow__", "__matmul__",
               "__lt__"):
        with pytest.raises((TypeError, ValueError)):
            getattr(t, op)(bad)
    for fn in (tg.add, tg.maximum, tg.atan2):
        with pytest.raises((TypeError, ValueError)):
            fn(t, bad)


@pytest.mark.parametrize("bad", ["a", None, {}, object()], ids=["str", "None", "dict", "object"])
def test_bad_types_to_functions_raise_type_error(bad):
    with pytest.raises(TypeError):
        tg.exp(bad)
    with pytest.raises(TypeError):
        tg.tensor(bad)
    with pytest.raises(TypeError):
        tg.tensor([1.0, 2.0]) + bad


@pytest.mark.parametrize("call", [
    lambda t: t.sum(axis="a"),
    lambda t: t.sum(axis=0.5),
    lambda t: t.mean(axis=[0.5]),
    lambda t: tg.max(t, axis="0"),
    lambda t: t.reshape("a"),
    lambda t: tg.reshape(t, 2.5),
    lambda t: t.transpose("ab"),
    lambda t: t.unsqueeze(None),
    lambda t: tg.broadcast_to(t, "a"),
    lambda t: tg.concatenate([t, t], axis="a"),
    lambda t: t.softmax(axis="a"),
    lambda t: t.clip(None, 1.0),
], ids=["sum-axis-str", "sum-axis-float", "mean-axis-list-of-float", "max-axis-str", "reshape-str",
        "reshape-float", "transpose-str", "unsqueeze-None", "broadcast_to-str", "concatenate-axis-str",
        "softmax-axis-str", "clip-None"])
def test_bad_argument_types_raise_type_error(call):
    # like NumPy (np.sum(a, axis="a") and np.reshape(a, 2.5) raise TypeError), not RuntimeError
    t = tg.ones((2, 3))
    with pytest.raises(TypeError):
        call(t)


# --- fuzz: odd shapes never crash ---------------------------------------------------------------

FUZZ_WORKER = textwrap.dedent(r"""
    import sys
    import numpy as np
    import tapegrad as tg

    seed, n = int(sys.argv[1]), int(sys.argv[2])
    rng = np.random.default_rng(seed)
    SHAPES = [(), (0,), (1,), (3,), (2, 3), (3, 2), (0, 3), (3, 0), (1, 3), (2, 1, 3), (2, 0, 1), (4,), (1, 1)]
    DTYPES = [np.float64, np.float64, np.float32, np.int64, np.bool_]
    UNARY = [r.name for r in tg.op_table if r.arity == 1]
    BINARY = [r.name for r in tg.op_table if r.arity == 2]
    AXES = [None, 0, 1, -1, 2, -3, (0, 1), (1, 0), (0, 0), ()]

    def operand():
        shape = SHAPES[rng.integers(len(SHAPES))]
        dtype = DTYPES[rng.integers(len(DTYPES))]
        a = (rng.standard_normal(shape) * 3).astype(dtype)
        kind = rng.integers(6)
        if kind == 0:
            return a
        if kind == 1:
            return float(rng.standard_normal())
        grad = dtype in (np.float32, np.float64) and rng.random() < 0.5
        t = tg.tensor(a, requires_grad=bool(grad))
        if kind == 2 and grad:
            return t * 1.5  # a recorded result
        return t

    def key(shape):
        choices = [0, -1, 1, 5, slice(None), slice(1, None), slice(None, None, -1), None, Ellipsis,
                   [0, 0], [-1, 2], np.array([True]), (0, 0), (slice(None), 0), (Ellipsis, None, 1), [],
                   (slice(0, 0),), np.zeros(shape, dtype=bool) if shape else 0]
        return choices[rng.integers(len(choices))]

    def one():
        x, y = operand(), operand()
        kind = rng.integers(27)
        if kind == 0:
            name = UNARY[rng.integers(len(UNARY))]
            return f"tg.{name}(x)", lambda: getattr(tg, name)(x)
        if kind == 1:
            name = BINARY[rng.integers(len(BINARY))]
            return f"tg.{name}(x, y)", lambda: getattr(tg, name)(x, y)
        if kind == 2:
            name = ["sum", "mean", "max", "min", "prod", "var", "std", "logsumexp"][rng.integers(8)]
            ax, kd = AXES[rng.integers(len(AXES))], bool(rng.integers(2))
            return f"tg.{name}(x, axis={ax}, keepdims={kd})", lambda: getattr(tg, name)(x, axis=ax, keepdims=kd)
        if kind == 3:
            return "x @ y", lambda: tg.matmul(x, y)
        if kind == 4:
            sh = SHAPES[rng.integers(len(SHAPES))]
            return f"reshape(x, {sh})", lambda: tg.reshape(x, sh)
        if kind == 5:
            sh = SHAPES[rng.integers(len(SHAPES))]
            return f"broadcast_to(x, {sh})", lambda: tg.broadcast_to(x, sh)
        if kind == 6:
            ax = [0, 1, -1, 2][rng.integers(4)]
            return f"concatenate([x, y], {ax})", lambda: tg.concatenate([x, y], axis=ax)
        if kind == 7:
            ax = [0, 1, -1, 3][rng.integers(4)]
            return f"stack([x, y], {ax})", lambda: tg.stack([x, y], axis=ax)
        if kind == 8:
            k = key(np.shape(x) if not isinstance(x, float) else ())
            return f"x[{k!r}]", lambda: tg.tensor(x)[k] if not isinstance(x, tg.Tensor) else x[k]
        if kind == 9:
            return "where(x > 0, x, y)", lambda: tg.where(tg.tensor(x) > 0.0, x, y)
        if kind == 10:
            ax = [0, 1, -1, 2][rng.integers(4)]
            name = ["softmax", "log_softmax"][rng.integers(2)]
            return f"{name}(x, {ax})", lambda: getattr(tg, name)(x, axis=ax)
        if kind == 11:
            ax = AXES[rng.integers(len(AXES))]
            return f"squeeze(x, {ax})", lambda: tg.squeeze(x, ax)
        if kind == 12:
            return "x - y (in place)", lambda: x.__isub__(y) if isinstance(x, tg.Tensor) else tg.sub(x, y)
        if kind == 13:
            return "transpose(x)", lambda: tg.transpose(x)
        if kind == 14:
            return "outer(x, y)", lambda: tg.outer(x, y)
        if kind == 15:
            return "dot(x, y)", lambda: tg.dot(x, y)
        if kind == 16:
            lo, hi = sorted(rng.standard_normal(2))
            return f"clip(x, {lo}, {hi})", lambda: tg.clip(x, lo, hi)
        if kind == 17:
            return "x * Var", lambda: x * tg.Var(1.5) if isinstance(x, tg.Tensor) else tg.Var(1.5) * y
        if kind == 18:
            g = operand()
            return "backward(gradient=y)", lambda: x.backward(gradient=g) if isinstance(x, tg.Tensor) else None
        if kind == 19:
            return "x[tensor key]", lambda: tg.tensor(x)[tg.tensor(y) > 0.0] if rng.random() < 0.5 else \
                tg.tensor(x)[tg.tensor(np.asarray(y)).astype(np.int64)]
        if kind == 20:
            ax = [0, 1, -1, 2][rng.integers(4)]
            return f"unsqueeze(x, {ax})", lambda: tg.unsqueeze(x, ax)
        if kind == 21:
            b = bool(rng.integers(2))
            return f"autograd.jvp(tanh(x), x, y, batched={b})", lambda: tg.autograd.jvp(
                tg.tanh(x), [x], [y], create_graph=bool(rng.integers(2)), batched=b)[0]
        if kind == 22:
            return "autograd.grad(sum(x * x), x, create_graph)", lambda: tg.autograd.grad(
                tg.sum(x * x), [x], create_graph=True, allow_unused=bool(rng.integers(2)))[0]
        if kind == 23:
            name = ["hessian", "jacfwd", "jacrev", "grad"][rng.integers(4)]
            return f"tg.{name}(f)(x)", lambda: getattr(tg, name)(lambda v: tg.sum(tg.sin(v) * v))(x)
        if kind == 24:
            which = int(rng.integers(2))
            return "tg.jvp / tg.hvp(f, (x,), (y,))", lambda: [lambda r: r[1], lambda r: r[1][0]][which](
                (tg.jvp, tg.hvp)[which](lambda v: tg.sum(tg.exp(v)), (x,), (y,)))
        if kind == 25:
            v = tg.Var(float(rng.standard_normal()))
            def mixed():
                out = tg.sum(tg.tensor(x) * v * v) if not isinstance(x, tg.Tensor) else tg.sum(x * v * v)
                out.backward(create_graph=True)
                return v.grad if isinstance(v.grad, tg.Var) else None
            return "sum(x * Var * Var).backward(create_graph=True)", mixed
        with tg.no_grad():
            return "x ** y under no_grad", lambda: tg.pow(x, y)

    results = errors = 0
    for i in range(n):
        label, fn = one()
        print(i, label, flush=True)
        try:
            with np.errstate(all="ignore"):
                r = fn()
        except (RuntimeError, ValueError, TypeError, IndexError):
            errors += 1
            continue
        # a float or a Var where no operand was a tensor; None from backward()
        assert isinstance(r, (tg.Tensor, float, tg.Var, type(None))), (label, type(r))
        results += 1
        if not isinstance(r, tg.Tensor):
            continue
        a = r.numpy()
        assert a.shape == r.shape and a.size == r.size, (label, a.shape, r.shape, r.size)
        np.sum(a.astype(np.float64))  # read every element
        if r.requires_grad:
            try:
                r.backward(gradient=np.ones(r.shape))
            except (RuntimeError, ValueError):
                pass
    print("done", results, errors, flush=True)
""")


@pytest.mark.parametrize("seed", range(4))
def test_fuzz_odd_shapes_never_crash(seed, tmp_path):
    """Random ops on empty, 0-d, mismatched operands of every dtype: each call must return a
    Tensor (consistent and readable) or raise a Python exception. Run in a child process so
    that a crash is reported (with the call that crashed) instead of ending the test run."""
    results, errors = run_fuzz_worker(FUZZ_WORKER, seed, 400, tmp_path)
    assert results > 100 and errors > 20, (results, errors)  # both outcomes are exercised


def test_set_num_threads_is_torchs_and_checked() -> None:
    """tg.set_num_threads / get_num_threads (as torch's): the most threads a matrix product may use.
    Products below 2^20 multiply-adds run on one thread whatever it says; results do not depend on it."""
    before = tg.get_num_threads()
    assert isinstance(before, int) and before >= 1
    a = np.random.default_rng(0).standard_normal((300, 300))
    try:
        results = []
        for n in (1, 2, 1):
            tg.set_num_threads(n)
            assert tg.get_num_threads() == n
            results.append((tg.tensor(a) @ tg.tensor(a)).numpy())
        np.testing.assert_allclose(results[0], a @ a, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(results[1], results[0], rtol=1e-13, atol=1e-12)
        for bad, err in ((0, ValueError), (-3, ValueError), (2**70, ValueError), (70000, ValueError), (1.0, TypeError),
                         (True, TypeError), ("2", TypeError), (None, TypeError)):
            with pytest.raises(err, match="set_num_threads"):
                tg.set_num_threads(bad)
        assert tg.get_num_threads() == 1
    finally:
        tg.set_num_threads(before)
