"""The Python side of ``tapegrad.Tensor``: creation helpers, NumPy-style indexing, printing,
grad-mode context managers, and the module functions that pick between the scalar (``Var``)
and tensor versions of an op. The arithmetic itself is in the compiled core.
"""

from __future__ import annotations

import builtins
import functools
import numbers
import operator
from typing import Any, Callable, Optional, Sequence, Tuple, TypeVar, Union

import numpy as np

from . import _core
from ._core import Tensor, Var
from ._device import check as _check_device
from ._dtypes import numpy_values

_ops = _core.tensor_ops

float16 = np.float16
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


def _size_kw(shape: Tuple[Any, ...], kwargs: Any, who: str,
             options: Tuple[str, ...] = ("pin_memory", "layout")) -> Tuple[Any, ...]:
    """The shape given positionally or as PyTorch's ``size=`` keyword (not both), for the factories that
    take ``*size``; ``kwargs`` may also hold PyTorch's memory ``options`` (nothing to choose on the CPU)
    and nothing else."""
    extra = set(kwargs) - {"size", *options}
    if extra:
        raise TypeError(f"tapegrad.{who}() got unexpected keyword arguments {sorted(extra)}")
    if kwargs.get("size") is None:
        return shape
    if shape:
        raise TypeError(f"tapegrad.{who}(): the shape given both positionally and as size=")
    return (kwargs["size"],)


def zeros(*shape: Any, dtype: Any = None, requires_grad: bool = False, device: Any = None, size: Any = None) -> Tensor:
    """A tensor of zeros (of the default dtype, float64 unless set_default_dtype changed it)."""
    _check_device(device, "zeros")
    return _core._full(_shape(_size_kw(shape, {"size": size}, "zeros")), 0.0, dtype, requires_grad)


def ones(*shape: Any, dtype: Any = None, requires_grad: bool = False, device: Any = None, size: Any = None) -> Tensor:
    """A tensor of ones (of the default dtype unless ``dtype`` says otherwise)."""
    _check_device(device, "ones")
    return _core._full(_shape(_size_kw(shape, {"size": size}, "ones")), 1.0, dtype, requires_grad)


def full(shape: Optional[ShapeLike] = None, fill_value: Optional[float] = None, dtype: Any = None,
         requires_grad: bool = False, device: Any = None, *, size: Optional[ShapeLike] = None) -> Tensor:
    """A tensor of ``shape`` (PyTorch's ``size=``) filled with ``fill_value``."""
    _check_device(device, "full")
    if size is not None:
        if shape is not None:
            raise TypeError("tapegrad.full(): the shape given both positionally and as size=")
        shape = size
    if shape is None or fill_value is None:
        raise TypeError("tapegrad.full(): needs a shape (or size=) and a fill_value")
    return _core._full(_shape((shape,)), float(fill_value), dtype, requires_grad)


def arange(start: float, stop: Optional[float] = None, step: float = 1, dtype: Any = None, *,
           end: Optional[float] = None, requires_grad: bool = False, device: Any = None) -> Tensor:
    """Evenly spaced values in [start, stop), as ``numpy.arange`` and ``torch.arange`` (int64
    for integer arguments, else the default dtype); ``end=`` is PyTorch's name for stop."""
    _check_device(device, "arange")
    if end is not None:
        stop = end
    if stop is None:
        start, stop = 0, start
    if dtype is None:
        ints = all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in (start, stop, step))
        dtype = np.int64 if ints else None
    r = _core._arange(float(start), float(stop), float(step), dtype)
    return r.requires_grad_() if requires_grad else r


def eye(n: int, m: Optional[int] = None, dtype: Any = None, *, requires_grad: bool = False,
        device: Any = None) -> Tensor:
    """The n x m identity (m = n by default)."""
    _check_device(device, "eye")
    r = _core._eye(n, -1 if m is None else m, dtype)
    return r.requires_grad_() if requires_grad else r


def _like(t: Any) -> Tensor:
    """t's shape and dtype as a tensor's (an array or a number is taken as tg.tensor takes it)."""
    return t if isinstance(t, Tensor) else _core.tensor(t)


def zeros_like(t: Any, dtype: Any = None, requires_grad: bool = False, *, device: Any = None) -> Tensor:
    """A tensor of zeros with t's shape (and dtype unless ``dtype`` says otherwise)."""
    _check_device(device, "zeros_like")
    t = _like(t)
    return _core._full(t.shape, 0.0, t.dtype if dtype is None else dtype, requires_grad)


def ones_like(t: Any, dtype: Any = None, requires_grad: bool = False, *, device: Any = None) -> Tensor:
    """A tensor of ones with t's shape (and dtype unless ``dtype`` says otherwise)."""
    _check_device(device, "ones_like")
    t = _like(t)
    return _core._full(t.shape, 1.0, t.dtype if dtype is None else dtype, requires_grad)


def full_like(t: Any, fill_value: float, dtype: Any = None, requires_grad: bool = False, *,
              device: Any = None) -> Tensor:
    """A tensor of t's shape filled with ``fill_value`` (t's dtype unless ``dtype`` says otherwise)."""
    _check_device(device, "full_like")
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


class set_grad_enabled(_GradMode):
    """``set_grad_enabled(False)`` turns recording off (a function call, as PyTorch's), and
    ``with set_grad_enabled(mode):`` for a block; also a decorator."""

    def __new__(cls, mode: bool) -> Any:
        self = object.__new__(cls)
        self.enabled = bool(mode)
        self._previous = [_core.is_grad_enabled()]
        _core._set_grad_enabled(bool(mode))  # takes effect now, as torch.set_grad_enabled does
        return self

    def __init__(self, mode: bool) -> None:
        pass

    def __enter__(self) -> None:
        pass  # (set on construction)

    def __call__(self, fn: F) -> F:
        _core._set_grad_enabled(self._previous[0])  # a decorator: only inside the function
        mode = self.enabled

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with set_grad_enabled(mode):
                return fn(*args, **kwargs)

        return wrapper  # type: ignore[return-value]


class inference_mode(_GradMode):
    """``with tapegrad.inference_mode():`` records nothing, as ``no_grad`` (PyTorch's faster
    variant; in tapegrad they are the same). ``inference_mode(False)`` records."""

    enabled = False

    def __new__(cls, mode: Any = True) -> Any:
        if callable(mode):
            return cls()(mode)
        self = object.__new__(cls)
        self.enabled = not bool(mode)
        self._previous = []
        return self

    def __init__(self, mode: Any = True) -> None:
        pass

    def __call__(self, fn: F) -> F:
        enabled = self.enabled

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with inference_mode(not enabled):
                return fn(*args, **kwargs)

        return wrapper  # type: ignore[return-value]


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
    if len(np_key) == 1 and t.ndim >= 1 and isinstance(np_key[0], np.ndarray) and np_key[0].dtype.kind in "iu":
        # rows of the first axis (a mini-batch, an embedding lookup): their offsets alone,
        # not a table the size of the tensor
        rows = np_key[0].astype(np.int64, copy=False)
        n = t.shape[0]
        if rows.size and (rows.min() < -n or rows.max() >= n):
            bad = int(rows.min()) if rows.min() < -n else int(rows.max())
            raise IndexError(f"index {bad} is out of bounds for axis 0 with size {n}")
        inner = t.size // n if n else 0
        offsets = (np.where(rows < 0, rows + n, rows) * inner)[..., None] + np.arange(inner, dtype=np.int64)
        offsets = offsets.reshape(rows.shape + t.shape[1:])
        return _ops._take(t, np.array(offsets, dtype=np.int64, order="C", ndmin=0))  # (0-d stays 0-d)
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
    """PyTorch's form: ``tensor([...], dtype=..., requires_grad=True)`` for a leaf, with
    ``grad_fn=<MulBackward0>`` for a recorded result. The dtype is shown when it is not the
    default floating dtype, int64 or bool."""
    dt = t.dtype
    bf16 = dt.name == "bfloat16"
    a = numpy_values(t)
    body = np.array2string(a, separator=", ", prefix="tensor(")
    extra = ""
    if (dt.kind == "f" or bf16) and dt != _core.get_default_dtype():
        extra += f", dtype={dt.name}"
    fn = t.grad_fn if t.requires_grad and not t.is_leaf else None
    if fn is not None:
        extra += f", grad_fn=<{fn.name()}>"
    elif t.requires_grad:
        extra += ", requires_grad=True"
    return f"tensor({body}{extra})"


def _tolist(t: Tensor) -> Any:
    return numpy_values(t).tolist()  # (bfloat16: Python floats, exact)


# --- functions that take Vars, numbers and tensors ------------------------------------------------

def _axis_like(x: object, y: object) -> bool:
    """Whether max(x, y) means a reduction of array x along axis y (an integer second argument,
    as in PyTorch), rather than an elementwise maximum."""
    array = isinstance(x, (Tensor, np.ndarray, list, tuple))
    return array and isinstance(y, (int, np.integer)) and not isinstance(y, (bool, np.bool_))


def _is_int(v: object) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def _check_axis(name: str, what: str, v: Any, sequence: bool) -> Any:
    """``v`` if it is an axis (an int; for ``axis``, a tuple or list of ints too), else a TypeError naming it:
    a Var, a float, a bool or a tensor is never taken for an axis."""
    if v is None or _is_int(v) or (sequence and isinstance(v, (tuple, list)) and builtins.all(map(_is_int, v))):
        return v
    kind = "an int or a tuple of ints" if sequence else "an int"
    raise TypeError(f"tapegrad.{name}: {what} must be {kind}, not {type(v).__name__} ({v!r})")


def _scalar_operand(v: object) -> bool:
    return isinstance(v, (Var, numbers.Real))


def _extreme(name: str, x: Any, y: Any, more: Tuple[Any, ...], axis: Any, keepdims: Any, dim: Any, keepdim: bool,
             largest: bool) -> Any:
    binary = _core.max if largest else _core.min
    if y is not None and not _axis_like(x, y):  # elementwise, of two operands or (Vars and numbers) more
        if axis is not None or keepdims is not None or dim is not None or keepdim:
            given = [k for k, v in (("axis", axis), ("keepdims", keepdims), ("dim", dim)) if v is not None]
            raise TypeError(f"tapegrad.{name}: {(given or ['keepdim'])[0]}= is for a reduction of one tensor, "
                            f"not for the elementwise {name} of several operands")
        if not more:
            return binary(x, y)
        for i, v in enumerate((x, y, *more)):
            if not _scalar_operand(v):
                raise TypeError(f"tapegrad.{name} of more than two operands takes Vars and real numbers (as "
                                f"Python's {name}(a, b, c)), but operand {i + 1} is {type(v).__name__}: for "
                                f"tensors, write tg.{name}(tg.{name}(a, b), c); an axis goes in axis= or dim=")
        return functools.reduce(binary, more, binary(x, y))  # max(max(max(x, y), z), ...)
    if y is not None:  # PyTorch's (input, dim[, keepdim])
        if dim is not None or axis is not None:
            raise TypeError(f"tapegrad.{name}: got a dim ({y!r}) both as the second argument and as "
                            f"{'dim' if dim is not None else 'axis'}=")
        if more:
            if len(more) > 1 or keepdim or not isinstance(more[0], (bool, np.bool_)):
                raise TypeError(f"tapegrad.{name}(input, dim, keepdim): keepdim must be one bool, got "
                                + ", ".join(f"{type(v).__name__} ({v!r})" for v in more)
                                + (" and keepdim=" if keepdim else ""))
            keepdim = bool(more[0])
    elif more:  # NumPy's (x, None, axis[, keepdims]), positionally
        if len(more) > 2 or axis is not None or (len(more) == 2 and keepdims is not None):
            raise TypeError(f"tapegrad.{name}(x, None, axis, keepdims): too many arguments, or axis or keepdims "
                            f"given twice")
        axis = _check_axis(name, "axis", more[0], True)
        keepdims = more[1] if len(more) == 2 else keepdims
    _check_axis(name, "axis", axis, True)
    _check_axis(name, "dim", dim, False)
    if axis is not None and dim is not None:
        raise TypeError(f"tapegrad.{name}: got both axis= (NumPy's values) and dim= (PyTorch's values and indices)")
    if isinstance(x, Var):
        return x
    t = x if isinstance(x, Tensor) else _core.tensor(x)
    method = t.max if largest else t.min
    if axis is not None or keepdims is not None:  # NumPy's spelling: the values
        return method(axis=axis if axis is not None else y, keepdims=bool(keepdims or keepdim))
    return method(y if y is not None else dim, keepdim)  # PyTorch's: (values, indices) over a dim


def max(x: Any, y: Any = None, *more: Any, axis: Any = None, keepdims: Any = None,  # noqa: A001
        dim: Any = None, keepdim: bool = False) -> Any:
    """``max(a, b)``: the elementwise maximum (Vars, numbers or tensors); ``max(a, b, c, ...)`` of Vars and
    numbers: the largest, as Python's ``max``, folded as ``max(max(a, b), c)`` (a Var when any operand is one;
    the gradient goes to the largest operand, split as those pairwise maxima split it on a tie). ``max(t)``:
    the largest element. ``max(t, 1)``, ``max(t, 1, True)`` or ``max(t, dim=1, keepdim=...)``: PyTorch's
    ``(values, indices)`` along the axis (the gradient goes to the index taken). ``max(t, axis=1,
    keepdims=...)`` (or ``max(t, None, 1)``): NumPy's values (ties share the gradient, as numpy.max's
    derivative, torch.amax). Only an int is taken for an axis or dim (a tuple of ints too for ``axis``): a
    Var, a float or a bool there is a TypeError."""
    return _extreme("max", x, y, more, axis, keepdims, dim, keepdim, True)


def min(x: Any, y: Any = None, *more: Any, axis: Any = None, keepdims: Any = None,  # noqa: A001
        dim: Any = None, keepdim: bool = False) -> Any:
    """The counterpart of ``max``: elementwise, the smallest of several Vars and numbers, the smallest element,
    PyTorch's ``(values, indices)`` along a dim, or NumPy's values along ``axis=``."""
    return _extreme("min", x, y, more, axis, keepdims, dim, keepdim, False)


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


_PICKLED_DTYPES = {"float64": "<f8", "float32": "<f4", "float16": "<f2", "bfloat16": "<u2", "int64": "<i8",
                   "bool": "|b1"}


def _reduce(t: Tensor) -> Any:
    """Pickling keeps the values (a copy) and, for a leaf, requires_grad; never the graph.

    The pickle names one function, ``tapegrad._tensor._rebuild``, with plain arguments: the
    shape, the dtype's name and the little-endian bytes of the values (bfloat16's as its 16-bit
    patterns, so ml_dtypes need not be there). No ``eval`` (what pybind11 pickles a compiled
    function as) and no NumPy objects, so a restricted unpickler that allows that one name
    loads it. Unpickling untrusted bytes is unsafe all the same (any pickle can name any
    function): load only what you trust."""
    name = t.dtype.name
    if name == "bfloat16":
        bits = (numpy_values(t).astype("<f4").view("<u4") >> 16).astype("<u2")
        data = bits.tobytes()
    else:
        data = np.ascontiguousarray(t.numpy()).astype(_PICKLED_DTYPES[name], copy=False).tobytes()
    return (_rebuild, (tuple(t.shape), name, data, bool(t.requires_grad and t.is_leaf)))


def _rebuild(shape: Any, dtype: Any, data: Any, requires_grad: Any) -> Tensor:
    """A tensor from what ``_reduce`` pickled; every argument checked, so damaged bytes raise a
    ValueError or TypeError that names the problem."""
    if not isinstance(dtype, str) or dtype not in _PICKLED_DTYPES:
        raise ValueError(f"tapegrad: a pickled Tensor with an unknown dtype {dtype!r}")
    if not isinstance(shape, tuple) or not all(type(d) is int and 0 <= d < 2**62 for d in shape) or len(shape) > 64:
        raise ValueError(f"tapegrad: a pickled Tensor with an invalid shape {shape!r}")
    if not isinstance(data, (bytes, bytearray)):
        raise TypeError(f"tapegrad: a pickled Tensor's values must be bytes, not {type(data).__name__}")
    if not isinstance(requires_grad, bool):
        raise TypeError("tapegrad: a pickled Tensor's requires_grad must be a bool, not "
                        f"{type(requires_grad).__name__}")
    code = np.dtype(_PICKLED_DTYPES[dtype])
    n = 1
    for d in shape:
        n *= d
    if n * code.itemsize != len(data):
        raise ValueError(f"tapegrad: a pickled Tensor of shape {shape} and dtype {dtype} needs {n * code.itemsize} "
                         f"bytes of values, not {len(data)}")
    values = np.frombuffer(data, dtype=code).reshape(shape)
    if dtype == "bfloat16":
        wide = (values.astype(np.uint32) << 16).view(np.float32)  # exact: bfloat16 is float32's top half
        return _core.tensor(wide, "bfloat16", requires_grad)
    return _core.tensor(values.astype(code.newbyteorder("="), copy=True), None, requires_grad)


def _format(t: Tensor, spec: str) -> str:
    if t.ndim == 0:  # (f"{t}" of a 0-d tensor is its number, as PyTorch's)
        return format(t.item(), spec)
    return format(_repr(t), spec)
