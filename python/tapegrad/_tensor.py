"""The Python side of ``tapegrad.Tensor``: creation helpers, NumPy-style indexing, printing,
grad-mode context managers, and the module functions that pick between the scalar (``Var``)
and tensor versions of an op. The arithmetic itself is in the compiled core.
"""

from __future__ import annotations

import builtins
import functools
import operator
from typing import Any, Callable, Optional, Sequence, Tuple, TypeVar, Union

import numpy as np

from . import _core
from ._core import Tensor, Var

_ops = _core.tensor_ops

float32 = np.float32
float64 = np.float64
int64 = np.int64
bool_ = np.bool_

ShapeLike = Union[int, Sequence[int]]
F = TypeVar("F", bound=Callable[..., Any])


# --- creation --------------------------------------------------------------------------------

tensor = _core.tensor
from_numpy = _core.from_numpy


def _shape(shape: Tuple[Any, ...]) -> Any:
    """zeros(2, 3) and zeros((2, 3)) alike (PyTorch's and NumPy's spellings)."""
    if len(shape) == 1 and not isinstance(shape[0], (int, np.integer)):
        return shape[0]  # a sequence: the core checks it (its length first)
    return tuple(shape)


def zeros(*shape: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """A tensor of zeros (float64 unless ``dtype`` says otherwise)."""
    return _core._full(_shape(shape), 0.0, dtype, requires_grad)


def ones(*shape: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """A tensor of ones (float64 unless ``dtype`` says otherwise)."""
    return _core._full(_shape(shape), 1.0, dtype, requires_grad)


def full(shape: ShapeLike, fill_value: float, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """A tensor of ``shape`` filled with ``fill_value``."""
    return _core._full(_shape((shape,)), float(fill_value), dtype, requires_grad)


def arange(start: float, stop: Optional[float] = None, step: float = 1, dtype: Any = None) -> Tensor:
    """Evenly spaced values in [start, stop), as ``numpy.arange`` (int64 for integer arguments)."""
    if stop is None:
        start, stop = 0, start
    if dtype is None:
        ints = all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in (start, stop, step))
        dtype = np.int64 if ints else np.float64
    return _core._arange(float(start), float(stop), float(step), dtype)


def eye(n: int, m: Optional[int] = None, dtype: Any = None) -> Tensor:
    """The n x m identity (m = n by default)."""
    return _core._eye(n, -1 if m is None else m, dtype)


def _like(t: Any) -> Tensor:
    """t's shape and dtype as a tensor's (an array or a number is taken as tg.tensor takes it)."""
    return t if isinstance(t, Tensor) else _core.tensor(t)


def zeros_like(t: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    t = _like(t)
    return _core._full(t.shape, 0.0, t.dtype if dtype is None else dtype, requires_grad)


def ones_like(t: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    t = _like(t)
    return _core._full(t.shape, 1.0, t.dtype if dtype is None else dtype, requires_grad)


def full_like(t: Any, fill_value: float, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    t = _like(t)
    return _core._full(t.shape, float(fill_value), t.dtype if dtype is None else dtype, requires_grad)


# --- grad mode -----------------------------------------------------------------------------------


class _GradMode:
    enabled = True

    def __new__(cls, func: Any = None) -> Any:
        """``@no_grad`` as well as ``@no_grad()`` and ``with no_grad():``."""
        self = super().__new__(cls)
        if func is None:
            return self
        if not callable(func):
            raise TypeError(f"tapegrad.{cls.__name__}() takes no argument, or the function it decorates "
                            f"(got {type(func).__name__})")
        return cls()(func)

    def __init__(self, func: Any = None) -> None:
        self._previous: list[bool] = []

    def __enter__(self) -> None:
        self._previous.append(_core.is_grad_enabled())
        _core._set_grad_enabled(self.enabled)

    def __exit__(self, *exc: object) -> None:
        _core._set_grad_enabled(self._previous.pop())

    def __call__(self, fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with self.__class__():
                return fn(*args, **kwargs)

        return wrapper  # type: ignore[return-value]


class no_grad(_GradMode):
    """``with tapegrad.no_grad():`` records nothing (results do not require grad), as in
    PyTorch. Also a decorator."""

    enabled = False


class enable_grad(_GradMode):
    """``with tapegrad.enable_grad():`` records again inside a ``no_grad`` block."""

    enabled = True


is_grad_enabled = _core.is_grad_enabled


# --- indexing ------------------------------------------------------------------------------------


def _is_basic(k: object) -> bool:
    if k is None or k is Ellipsis or isinstance(k, slice):
        return True
    return isinstance(k, (int, np.integer)) and not isinstance(k, (bool, np.bool_))


def _getitem(t: Tensor, key: Any) -> Tensor:
    """NumPy's indexing. Basic keys (ints, slices, None, ...) become one strided copy; keys
    with integer or boolean arrays become a gather of flat offsets that NumPy computes (so
    the semantics, and the IndexError for a bad index, are NumPy's exactly)."""
    if not isinstance(key, tuple):
        key = (key,)
    if all(_is_basic(k) for k in key):
        return _basic_index(t, key)
    np_key = tuple(k.numpy() if isinstance(k, Tensor) else k for k in key)
    offsets = np.arange(t.size, dtype=np.int64).reshape(t.shape)[np_key]
    # np.array, not np.ascontiguousarray: that one makes a 0-d result (x[np.array(1)]) 1-d
    return _ops._take(t, np.array(offsets, dtype=np.int64, order="C", ndmin=0))


def _basic_index(t: Tensor, key: Tuple[Any, ...]) -> Tensor:
    shape = t.shape
    consuming = builtins.sum(1 for k in key if k is not None and k is not Ellipsis)
    if consuming > len(shape):
        raise IndexError(f"too many indices for a tensor of dimension {len(shape)} (shape {shape})")
    if builtins.sum(1 for k in key if k is Ellipsis) > 1:
        raise IndexError("an index can only have a single ellipsis ('...')")
    expanded: list[Any] = []
    for k in key:
        if k is Ellipsis:
            expanded.extend([slice(None)] * (len(shape) - consuming))
        else:
            expanded.append(k)
    if Ellipsis not in key:
        expanded.extend([slice(None)] * (len(shape) - consuming))
    starts: list[int] = []
    steps: list[int] = []
    lens: list[int] = []
    final: list[int] = []
    whole = True
    axis = 0
    for k in expanded:
        if k is None:
            final.append(1)
            continue
        d = shape[axis]
        if isinstance(k, slice):
            start, stop, step = k.indices(d)
            n = len(range(start, stop, step))
            starts.append(start if n else 0)
            steps.append(step)
            lens.append(n)
            final.append(n)
            whole = whole and n == d and step == 1
        else:
            i = operator.index(k)
            if i < -d or i >= d:
                raise IndexError(f"index {i} is out of bounds for axis {axis} with size {d}")
            starts.append(i % d)
            steps.append(1)
            lens.append(1)
            whole = whole and d == 1
        axis += 1
    r = t if whole else _ops._strided(t, starts, steps, lens)
    if tuple(final) != r.shape:
        r = r.reshape(tuple(final))
    return r


def _iter(t: Tensor) -> Any:
    if t.ndim == 0:
        raise TypeError("iteration over a 0-d tensor")
    return (t[i] for i in range(t.shape[0]))


def _repr(t: Tensor) -> str:
    a = t.numpy()
    body = np.array2string(a, separator=", ", prefix="tensor(")
    extra = ""
    if t.dtype == np.float32:
        extra += ", dtype=float32"
    if t.requires_grad:
        extra += ", requires_grad=True"
    return f"tensor({body}{extra})"


def _tolist(t: Tensor) -> Any:
    return t.numpy().tolist()


# --- functions that take Vars, numbers and tensors ------------------------------------------------

def _axis_like(x: object, y: object) -> bool:
    """Whether max(x, y) means a reduction of array x along axis y (NumPy's and PyTorch's
    reading of an integer second argument), rather than an elementwise maximum."""
    array = isinstance(x, (Tensor, np.ndarray, list, tuple))
    return array and isinstance(y, (int, np.integer)) and not isinstance(y, (bool, np.bool_))


def max(x: Any, y: Any = None, axis: Any = None, keepdims: bool = False) -> Any:  # noqa: A001
    """``max(a, b)``: the elementwise maximum (Vars, numbers or tensors); ``max(t)``,
    ``max(t, axis)``, ``max(t, axis=..., keepdims=...)``: the reduction of a tensor (as
    ``numpy.max``; ties share the gradient)."""
    if y is not None and not (_axis_like(x, y) and axis is None):
        return _core.max(x, y)
    if isinstance(x, Var):
        return x
    return _ops.amax(x, y if y is not None else axis, keepdims)


def min(x: Any, y: Any = None, axis: Any = None, keepdims: bool = False) -> Any:  # noqa: A001
    """``min(a, b)``: the elementwise minimum; ``min(t, axis=None, keepdims=False)``: the
    reduction of a tensor."""
    if y is not None and not (_axis_like(x, y) and axis is None):
        return _core.min(x, y)
    if isinstance(x, Var):
        return x
    return _ops.amin(x, y if y is not None else axis, keepdims)


maximum = _core.max
minimum = _core.min
amax = _ops.amax
amin = _ops.amin
sum = _ops.sum  # noqa: A001
mean = _ops.mean
prod = _ops.prod
var = _ops.var
std = _ops.std
logsumexp = _ops.logsumexp
softmax = _ops.softmax
log_softmax = _ops.log_softmax
matmul = _ops.matmul
dot = _ops.dot
outer = _ops.outer
reshape = _ops.reshape
transpose = _ops.transpose
permute = _ops.permute
squeeze = _ops.squeeze
unsqueeze = _ops.unsqueeze
expand_dims = _ops.expand_dims
broadcast_to = _ops.broadcast_to
concatenate = _ops.concatenate
stack = _ops.stack
where = _ops.where
clip = _ops.clip


def _reduce(t: Tensor) -> Any:
    """Pickling keeps the values (a copy) and, for a leaf, requires_grad; never the graph."""
    return (_core.tensor, (t.numpy().copy(), None, t.requires_grad and t.is_leaf))


def _format(t: Tensor, spec: str) -> str:
    if t.ndim == 0 and spec:
        return format(t.item(), spec)
    return format(_repr(t), spec)


def _tensor_max(t: Tensor, axis: Any = None, keepdims: bool = False, out: Any = None) -> Tensor:
    """``t.max()``, ``t.max(axis)``: the reduction; ``t.max(other_tensor)``: elementwise. ``out``
    is NumPy's (``np.max(t)`` passes it) and must be None."""
    if isinstance(axis, (Tensor, np.ndarray)):
        return _ops.max(t, axis)
    return _ops.amax(t, axis, keepdims, out=out)


def _tensor_min(t: Tensor, axis: Any = None, keepdims: bool = False, out: Any = None) -> Tensor:
    """``t.min()``, ``t.min(axis)``: the reduction; ``t.min(other_tensor)``: elementwise. ``out``
    is NumPy's (``np.min(t)`` passes it) and must be None."""
    if isinstance(axis, (Tensor, np.ndarray)):
        return _ops.min(t, axis)
    return _ops.amin(t, axis, keepdims, out=out)
