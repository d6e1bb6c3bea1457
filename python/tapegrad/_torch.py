"""PyTorch's names and signatures on ``tapegrad.Tensor`` and as functions, beside NumPy's.

Where the two agree (``t.sum(1)``, ``t.reshape(2, 3)``, ``t.squeeze(0)``) there is one method;
the compiled methods take ``dim=``/``keepdim=`` as well as ``axis=``/``keepdims=``. Where
they differ, the spelling decides, and the guide docs/guides/pytorch.md ("Coming from
PyTorch") lists each case:

- ``t.max(1)`` and ``t.max(dim=1)`` give PyTorch's ``(values, indices)``;
  ``t.max(axis=1)`` gives NumPy's values; ``t.max()`` is the largest element either way.
- ``t.transpose(0, 1)`` swaps two axes (PyTorch); ``t.transpose()``, ``t.transpose(axes)``
  and three or more axes are NumPy's permutation.
- ``t.size`` is NumPy's element count (an int) and, called, PyTorch's ``t.size()`` (a
  ``tapegrad.Size``) or ``t.size(d)``.
- ``t.std()``/``t.var()`` are NumPy's (``ddof=0``) unless spelled as PyTorch's: a positional
  dim (``t.var(1)``, ``torch.var(t, 1)``), ``dim=``, ``unbiased=`` or ``correction=`` give
  PyTorch's unbiased value. ``t.sum(dim=())`` reduces every axis (PyTorch's), ``t.sum(axis=())``
  none (NumPy's).
- ``t.repeat(2, 3)`` is PyTorch's (tiling); NumPy's ``repeat`` is ``np.repeat(t.numpy(), ...)``.
- ``t.squeeze(1)`` and ``t.squeeze(dim=1)`` of an axis whose length is not 1 leave it
  (PyTorch); ``t.squeeze(axis=1)`` raises there (NumPy).
- ``t.int()`` is int64 (tapegrad's only integer dtype; PyTorch's is int32).

Indices (argmax, sort, topk, max along a dim), gathers, scatters, cumsum and cumprod are the
core's ops (``cpp/src/ops/index.cpp``): their indices are computed in C++ from the values when
the op runs, and their gradients are the core's.
"""

from __future__ import annotations

import builtins
import operator
from typing import Any, Callable, Iterable, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np

from . import _core
from ._core import Tensor
from ._device import CPU as _CPU
from ._device import check as _check_device
from ._device import device
from ._dtypes import as_dtype, is_dtype, is_float
from ._tensor import _size_kw

_ops = _core.tensor_ops
_tensor = _core.tensor


class Size(tuple):  # type: ignore[type-arg]
    """A shape, as ``torch.Size``: a tuple of ints with ``numel()``."""

    def numel(self) -> int:
        n = 1
        for d in self:
            n *= d
        return n

    def __repr__(self) -> str:
        return f"tapegrad.Size({list(self)})"


class _SizeAttr(int):
    """``t.size``: NumPy's element count, and callable as PyTorch's ``t.size()``/``t.size(d)``."""

    _shape: Tuple[int, ...]

    def __new__(cls, shape: Tuple[int, ...]) -> "_SizeAttr":
        n = 1
        for d in shape:
            n *= d
        self = super().__new__(cls, n)
        self._shape = shape
        return self

    def __call__(self, dim: Optional[int] = None) -> Any:
        if dim is None:
            return Size(self._shape)
        return self._shape[_axis(dim, len(self._shape), "size")]


def _axis(dim: Any, ndim: int, fn: str) -> int:
    d = operator.index(dim)
    if not -builtins.max(ndim, 1) <= d < builtins.max(ndim, 1):
        raise IndexError(f"tapegrad.{fn}: axis {d} is out of bounds for a tensor of {ndim} dimensions")
    return d % builtins.max(ndim, 1)


def _as_tensor(x: Any) -> Tensor:
    return x if isinstance(x, Tensor) else _tensor(x)


def _sizes(args: Tuple[Any, ...]) -> Tuple[int, ...]:
    """``f(2, 3)``, ``f((2, 3))`` and ``f([2, 3])`` alike."""
    if len(args) == 1 and not isinstance(args[0], (int, np.integer)):
        return tuple(operator.index(d) for d in args[0])
    return tuple(operator.index(d) for d in args)


# --- what a tensor is ----------------------------------------------------------------------------


def numel(t: Any) -> int:
    """The number of elements (``torch.numel``)."""
    return int(_as_tensor(t).size)


def _dim(t: Tensor) -> int:
    return t.ndim


def _element_size(t: Tensor) -> int:
    return int(t.numpy().itemsize)


def is_tensor(x: object) -> bool:
    """Whether x is a tapegrad tensor (``torch.is_tensor``)."""
    return isinstance(x, Tensor)


def is_floating_point(t: Tensor) -> bool:
    """Whether t is floating: float16, bfloat16, float32 or float64 (``torch.is_floating_point``)."""
    return is_float(t.dtype)


# --- dtype conversion --------------------------------------------------------------------------------


def _to(t: Tensor, *args: Any, **kwargs: Any) -> Tensor:
    """``t.to(dtype)``, ``t.to('cpu')``, ``t.to('cpu', dtype)``, ``t.to(other)``: a tensor of that
    dtype (t itself when it has it already, as PyTorch)."""
    dtype = kwargs.pop("dtype", None)
    kwargs.pop("copy", None)
    kwargs.pop("non_blocking", None)
    dev = kwargs.pop("device", None)
    if kwargs:
        raise TypeError(f"Tensor.to() got unexpected arguments {sorted(kwargs)}")
    for a in args:
        if isinstance(a, Tensor):
            dtype = a.dtype
        elif isinstance(a, device) or (isinstance(a, str) and not is_dtype(a)) or \
                (isinstance(a, int) and not isinstance(a, bool)):
            dev = a  # (an int is PyTorch's accelerator ordinal: t.to(0) is t.to('cuda:0'))
        elif a is not None:
            dtype = a
    _check_device(dev, "Tensor.to()")
    if dtype is None or as_dtype(dtype) == t.dtype:
        return t
    return t.astype(dtype)


def _cpu(t: Tensor) -> Tensor:
    return t


def _cuda(t: Tensor, *args: Any, **kwargs: Any) -> Tensor:
    raise RuntimeError("tapegrad computes on the CPU; there is no CUDA device (drop .cuda(), or use .to('cpu'))")


def _type_as(t: Tensor, other: Tensor) -> Tensor:
    if not isinstance(other, Tensor):
        raise TypeError(f"tapegrad: type_as() takes a Tensor, not {type(other).__name__}")
    return _to(t, other.dtype)


# PyTorch's legacy tensor type names, by dtype name (t.type() gives them, t.type(name) takes them).
_TYPE_NAMES = {"float32": "torch.FloatTensor", "float64": "torch.DoubleTensor", "float16": "torch.HalfTensor",
               "bfloat16": "torch.BFloat16Tensor", "int64": "torch.LongTensor", "bool": "torch.BoolTensor"}


def _type(t: Tensor, dtype: Any = None, non_blocking: bool = False) -> Any:
    """``t.type()``: PyTorch's name of the tensor's type (``'torch.FloatTensor'`` for float32);
    ``t.type(dtype)`` (a dtype or such a name): the tensor in that dtype (t itself if it has it)."""
    if dtype is None:
        return _TYPE_NAMES[as_dtype(t.dtype).name]
    if isinstance(dtype, str) and dtype.startswith("torch."):
        names = {v: k for k, v in _TYPE_NAMES.items()}
        if dtype not in names:
            raise TypeError(f"tapegrad: Tensor.type(): {dtype!r} is not a tensor type tapegrad has "
                            f"(it has {', '.join(sorted(names))})")
        dtype = names[dtype]
    return _to(t, dtype)


# --- shapes -----------------------------------------------------------------------------------------


def _view(t: Tensor, *shape: Any) -> Tensor:
    if len(shape) == 1 and isinstance(shape[0], (type, np.dtype, str)):
        raise TypeError("tapegrad: Tensor.view(dtype) (reinterpreting memory) is not supported; use astype()")
    return t.reshape(*shape)


def _view_as(t: Tensor, other: Tensor) -> Tensor:
    return t.reshape(other.shape)


def _t(t: Tensor) -> Tensor:
    if t.ndim > 2:
        raise ValueError(f"tapegrad: t() expects a tensor of at most 2 dimensions, not shape {t.shape} "
                         "(use transpose(dim0, dim1) or mT)")
    return t.T if t.ndim == 2 else t


def _mT(t: Tensor) -> Tensor:  # noqa: N802
    if t.ndim < 2:
        raise ValueError(f"tapegrad: mT needs at least 2 dimensions, not shape {t.shape}")
    return _swap(t, -2, -1)


def _swap(t: Tensor, d0: int, d1: int) -> Tensor:
    n = t.ndim
    a, b = _axis(d0, n, "transpose"), _axis(d1, n, "transpose")
    perm = list(range(n))
    perm[a], perm[b] = perm[b], perm[a]
    return _ops.transpose(t, perm)


_np_transpose = Tensor.transpose


def _transpose(t: Tensor, *axes: Any, dim0: Any = None, dim1: Any = None) -> Tensor:
    """``t.transpose(dim0, dim1)`` (or ``dim0=``, ``dim1=``) swaps two axes (PyTorch); no axes, or a
    full permutation of three or more, is NumPy's."""
    if dim0 is not None or dim1 is not None:
        if axes or dim0 is None or dim1 is None:
            raise TypeError("tapegrad: transpose() takes dim0 and dim1 both, by position or both by keyword")
        return _swap(t, dim0, dim1)
    if len(axes) == 2 and builtins.all(isinstance(a, (int, np.integer)) for a in axes):
        return _swap(t, axes[0], axes[1])
    return _np_transpose(t, *axes)


def transpose(x: Any, axes: Any = None, dim1: Optional[int] = None, *, dim0: Optional[int] = None) -> Tensor:
    """``transpose(x, dim0, dim1)`` (or ``dim0=``, ``dim1=``) swaps two axes (PyTorch);
    ``transpose(x)`` and ``transpose(x, axes)`` permute them (NumPy)."""
    if dim0 is not None:
        if axes is not None or dim1 is None:
            raise TypeError("tapegrad: transpose() takes dim0 and dim1 both, by position or both by keyword")
        return _swap(_as_tensor(x), dim0, dim1)
    if dim1 is not None:
        return _swap(_as_tensor(x), axes, dim1)
    return _ops.transpose(x, axes)


def _swapaxes(t: Tensor, axis0: int, axis1: int) -> Tensor:
    """NumPy's ``swapaxes(axis0, axis1)`` (``transpose(dim0, dim1)``)."""
    return _swap(t, axis0, axis1)


def _swapdims(t: Tensor, dim0: int, dim1: int) -> Tensor:
    """PyTorch's ``swapdims(dim0, dim1)`` (``transpose(dim0, dim1)``)."""
    return _swap(t, dim0, dim1)


def _flatten(t: Tensor, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    n = t.ndim
    if n == 0:
        return t.reshape(1)
    s, e = _axis(start_dim, n, "flatten"), _axis(end_dim, n, "flatten")
    if s > e:
        raise ValueError(f"tapegrad.flatten: start_dim {start_dim} comes after end_dim {end_dim}")
    shape = t.shape
    merged = 1
    for d in shape[s:e + 1]:
        merged *= d
    return t.reshape(shape[:s] + (merged,) + shape[e + 1:])  # (not -1: a tensor with no elements has no -1)


def flatten(x: Any, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    """``torch.flatten``: axes start_dim..end_dim merged into one."""
    return _flatten(_as_tensor(x), start_dim, end_dim)


def _unflatten(t: Tensor, dim: int, sizes: Sequence[int]) -> Tensor:
    d = _axis(dim, t.ndim, "unflatten")
    return t.reshape(t.shape[:d] + tuple(sizes) + t.shape[d + 1:])


def _expand(t: Tensor, *sizes: Any) -> Tensor:
    want = _sizes(sizes)
    if len(want) < t.ndim:
        raise ValueError(f"tapegrad.expand: {len(want)} sizes for a tensor of shape {t.shape}")
    have = (1,) * (len(want) - t.ndim) + t.shape
    shape = tuple(h if w == -1 else w for w, h in zip(want, have))
    return _ops.broadcast_to(t, shape)


def _expand_as(t: Tensor, other: Tensor) -> Tensor:
    return _ops.broadcast_to(t, other.shape)


def _repeat(t: Tensor, *sizes: Any) -> Tensor:
    """PyTorch's ``repeat``: the tensor tiled ``sizes`` times along each axis."""
    reps = _sizes(sizes)
    if len(reps) < t.ndim:
        raise ValueError(f"tapegrad.repeat: {len(reps)} repeats for a tensor of {t.ndim} dimensions "
                         "(give one per dimension)")
    if builtins.any(r < 0 for r in reps):
        raise ValueError(f"tapegrad.repeat: repeats must be non-negative, not {reps}")
    shape = (1,) * (len(reps) - t.ndim) + t.shape
    inter = tuple(v for d in shape for v in (1, d))
    tiled = tuple(v for r, d in zip(reps, shape) for v in (r, d))
    return _ops.broadcast_to(t.reshape(inter), tiled).reshape(tuple(r * d for r, d in zip(reps, shape)))


def cat(tensors: Iterable[Any], dim: int = 0, *, axis: Optional[int] = None) -> Tensor:
    """``torch.cat``: tensors joined along an existing axis (NumPy's ``concatenate``)."""
    return _ops.concatenate(tensors, dim if axis is None else axis)


def stack(tensors: Iterable[Any], axis: int = 0, *, dim: Optional[int] = None) -> Tensor:
    """Tensors joined along a new axis (``numpy.stack``'s ``axis=``, ``torch.stack``'s ``dim=``)."""
    return _ops.stack(tensors, axis if dim is None else dim)


concat = cat


def _chunk_bounds(n: int, sizes: Sequence[int]) -> list[tuple[int, int]]:
    out, start = [], 0
    for s in sizes:
        out.append((start, start + s))
        start += s
    if start != n:
        raise ValueError(f"tapegrad.split: sizes {list(sizes)} add up to {start}, not the axis' length {n}")
    return out


def _split(t: Tensor, split_size_or_sections: Union[int, Sequence[int]], dim: int = 0) -> Tuple[Tensor, ...]:
    d = _axis(dim, t.ndim, "split")
    n = t.shape[d]
    if isinstance(split_size_or_sections, (int, np.integer)):
        step = int(split_size_or_sections)
        if step <= 0:
            raise ValueError(f"tapegrad.split: the split size must be positive, not {step}")
        sizes = [builtins.min(step, n - i) for i in range(0, n, step)] or [0]
    else:
        sizes = [operator.index(s) for s in split_size_or_sections]
        if builtins.any(s < 0 for s in sizes):
            raise ValueError(f"tapegrad.split: split sizes must be non-negative, not {sizes}")
    key: list[Any] = [slice(None)] * t.ndim
    parts = []
    for a, b in _chunk_bounds(n, sizes):
        key[d] = slice(a, b)
        parts.append(t[tuple(key)])
    return tuple(parts)


def _chunk(t: Tensor, chunks: int, dim: int = 0) -> Tuple[Tensor, ...]:
    if operator.index(chunks) <= 0:
        raise ValueError(f"tapegrad.chunk: chunks must be positive, not {chunks}")
    n = t.shape[_axis(dim, t.ndim, "chunk")]
    return _split(t, -(-n // chunks) if n else 1, dim)


def _unbind(t: Tensor, dim: int = 0) -> Tuple[Tensor, ...]:
    d = _axis(dim, t.ndim, "unbind")
    key: list[Any] = [slice(None)] * t.ndim
    out = []
    for i in range(t.shape[d]):
        key[d] = i
        out.append(t[tuple(key)])
    return tuple(out)


# --- out= and alpha= on the arithmetic functions --------------------------------------------------


def _into(out: Any, result: Any, name: str) -> Any:
    """PyTorch's out=: the result written into the tensor ``out`` (same shape; a dtype of the
    same kind), which is returned. As in PyTorch, not while recording a graph."""
    if not isinstance(out, Tensor):
        raise TypeError(f"tapegrad.{name}(): out= must be a Tensor, not {type(out).__name__}")
    if isinstance(result, Tensor) and result.requires_grad:
        raise RuntimeError(f"tapegrad.{name}(): functions with out=... arguments don't support automatic "
                           "differentiation, but one of the arguments requires grad")
    r = _as_tensor(result)
    if r.shape != out.shape:
        raise RuntimeError(f"tapegrad.{name}(): out= has shape {out.shape} but the result has shape {r.shape} "
                           "(tapegrad does not resize out=)")
    return out._assign_(r, f"{name}(out=)")


def add(input: Any, other: Any, *, alpha: Any = 1, out: Any = None) -> Any:
    """``input + alpha * other`` (the op table's ``add``), as ``torch.add``; ``out=`` writes the
    result into a tensor."""
    r = _core.add(input, other if alpha == 1 else _core.mul(other, alpha))
    return r if out is None else _into(out, r, "add")


def sub(input: Any, other: Any, *, alpha: Any = 1, out: Any = None) -> Any:
    """``input - alpha * other`` (the op table's ``sub``), as ``torch.sub``; ``out=`` writes the
    result into a tensor."""
    r = _core.sub(input, other if alpha == 1 else _core.mul(other, alpha))
    return r if out is None else _into(out, r, "sub")


def mul(input: Any, other: Any, *, out: Any = None) -> Any:
    """``input * other`` (the op table's ``mul``), as ``torch.mul``; ``out=`` writes the result into
    a tensor."""
    r = _core.mul(input, other)
    return r if out is None else _into(out, r, "mul")


def div(input: Any, other: Any, *, out: Any = None) -> Any:
    """``input / other`` (the op table's ``div``), as ``torch.div``; ``out=`` writes the result into
    a tensor."""
    r = _core.div(input, other)
    return r if out is None else _into(out, r, "div")


def matmul(input: Any, other: Any, *, out: Any = None) -> Tensor:
    """The matrix product of two tensors (any rank, broadcast batches), as ``torch.matmul``;
    ``out=`` writes the result into a tensor."""
    r = _ops.matmul(input, other)
    return r if out is None else _into(out, r, "matmul")


def _add(t: Tensor, other: Any, *, alpha: Any = 1, out: Any = None) -> Any:
    if alpha == 1 and out is None:  # (the method's own path: tensor_ops, not the Var-or-tensor function)
        return _ops.add(t, other)
    return add(t, other, alpha=alpha, out=out)


def _sub(t: Tensor, other: Any, *, alpha: Any = 1, out: Any = None) -> Any:
    if alpha == 1 and out is None:
        return _ops.sub(t, other)
    return sub(t, other, alpha=alpha, out=out)


# --- products -----------------------------------------------------------------------------------------


def mm(a: Any, b: Any) -> Tensor:
    """``torch.mm``: the product of two matrices (2-d only)."""
    for name, x in (("first", a), ("second", b)):
        if _as_tensor(x).ndim != 2:
            raise ValueError(f"tapegrad.mm: the {name} operand must be 2-d, not shape {_as_tensor(x).shape} "
                             "(matmul takes any rank)")
    return _ops.matmul(a, b)


def bmm(a: Any, b: Any) -> Tensor:
    """``torch.bmm``: batched products of (B, n, k) and (B, k, m)."""
    ta, tb = _as_tensor(a), _as_tensor(b)
    if ta.ndim != 3 or tb.ndim != 3 or ta.shape[0] != tb.shape[0]:
        raise ValueError(f"tapegrad.bmm: needs (B, n, k) and (B, k, m) with the same B, not {ta.shape} and {tb.shape}")
    return _ops.matmul(a, b)


def mv(a: Any, v: Any) -> Tensor:
    """``torch.mv``: a matrix times a vector."""
    return _ops.matmul(a, v)


# --- clamping, masks, comparisons -------------------------------------------------------------------------


def clamp(x: Any, min: Optional[float] = None, max: Optional[float] = None) -> Tensor:  # noqa: A002
    """``torch.clamp``: limits to [min, max] (either may be None); the gradient passes inside."""
    if min is None and max is None:
        raise ValueError("tapegrad.clamp: at least one of min and max must be given")
    lo = -np.inf if min is None else float(min)
    hi = np.inf if max is None else float(max)
    return _ops.clip(x, lo, hi)


def _clamp_min(t: Tensor, min: float) -> Tensor:  # noqa: A002
    return clamp(t, min=min)


def _clamp_max(t: Tensor, max: float) -> Tensor:  # noqa: A002
    return clamp(t, max=max)


def masked_fill(x: Any, mask: Any, value: Any) -> Tensor:
    """``torch.masked_fill``: value where mask is true (broadcast), x elsewhere."""
    m = _as_tensor(mask)
    if m.dtype != np.bool_:
        raise TypeError(f"tapegrad.masked_fill: the mask must be a bool tensor, not {m.dtype}")
    return _ops.where(m, value, x)


def _cmp(op: Callable[[Any, Any], Any], name: str, says: str) -> Callable[[Any, Any], Tensor]:
    def f(x: Any, other: Any) -> Tensor:
        return op(_as_tensor(x), other)  # type: ignore[no-any-return]

    f.__name__ = f.__qualname__ = name
    f.__doc__ = f"``torch.{name}``: whether x {says} other, elementwise with broadcasting (a bool tensor)."
    return f


eq, ne = _cmp(operator.eq, "eq", "equals"), _cmp(operator.ne, "ne", "differs from")
gt, lt = _cmp(operator.gt, "gt", "is greater than"), _cmp(operator.lt, "lt", "is less than")
ge = _cmp(operator.ge, "ge", "is greater than or equal to")
le = _cmp(operator.le, "le", "is less than or equal to")
greater, less, greater_equal, less_equal = gt, lt, ge, le
not_equal = ne


def equal(a: Any, b: Any) -> bool:
    """``torch.equal``: same shape and the same elements."""
    x, y = _as_tensor(a), _as_tensor(b)
    return x.shape == y.shape and bool(np.array_equal(x.numpy(), y.numpy()))


def allclose(a: Any, b: Any, rtol: float = 1e-5, atol: float = 1e-8, equal_nan: bool = False) -> bool:
    """``torch.allclose`` (NumPy's formula)."""
    return bool(np.allclose(_as_tensor(a).numpy(), _as_tensor(b).numpy(), rtol, atol, equal_nan))


def isclose(a: Any, b: Any, rtol: float = 1e-5, atol: float = 1e-8, equal_nan: bool = False) -> Tensor:
    """``torch.isclose``: elementwise, as a bool tensor."""
    return _tensor(np.isclose(_as_tensor(a).numpy(), _as_tensor(b).numpy(), rtol, atol, equal_nan))


def _bool_reduce(name: str) -> Callable[..., Tensor]:
    def f(x: Any, dim: Any = None, keepdim: bool = False, *, axis: Any = None, keepdims: Optional[bool] = None,
          out: None = None) -> Tensor:
        a = _as_tensor(x).numpy()
        ax = dim if axis is None else axis
        return _tensor(getattr(np, name)(a, axis=None if ax is None else tuple(np.atleast_1d(ax)),
                                         keepdims=keepdim if keepdims is None else keepdims))

    f.__name__ = name
    f.__doc__ = f"Whether {'every' if name == 'all' else 'any'} element is nonzero (over dim), as a bool tensor."
    return f


all, any = _bool_reduce("all"), _bool_reduce("any")  # noqa: A001


def isnan(x: Any) -> Tensor:
    """Elementwise NaN test."""
    return _tensor(np.isnan(_as_tensor(x).numpy()))


def isinf(x: Any) -> Tensor:
    """Elementwise infinity test."""
    return _tensor(np.isinf(_as_tensor(x).numpy()))


def isfinite(x: Any) -> Tensor:
    """Elementwise finiteness test."""
    return _tensor(np.isfinite(_as_tensor(x).numpy()))


def sign(x: Any) -> Tensor:
    """The sign of each element (its gradient is zero, as PyTorch's)."""
    t = _as_tensor(x)
    return _tensor(np.sign(t.numpy()))


# --- indices: argmax, max(dim), sort, topk, gather, scatter_add --------------------------------------------


class _ValuesIndices(NamedTuple):
    values: Tensor
    indices: Tensor


class return_types:  # noqa: N801 (PyTorch's name)
    """The named tuples of max(dim), min(dim), sort and topk (``torch.return_types``)."""

    max = min = sort = topk = _ValuesIndices


def _arg_extreme(t: Any, dim: Any, keepdim: bool, largest: bool) -> Tensor:
    x = _as_tensor(t)
    d = None if dim is None else _axis(dim, x.ndim, "argmax" if largest else "argmin")
    return _ops._arg_extreme(x, d, bool(keepdim), largest)


def argmax(x: Any, dim: Any = None, keepdim: bool = False, *, axis: Any = None) -> Tensor:
    """The index of the largest element (over dim; the first of ties), int64."""
    return _arg_extreme(x, dim if axis is None else axis, keepdim, True)


def argmin(x: Any, dim: Any = None, keepdim: bool = False, *, axis: Any = None) -> Tensor:
    """The index of the smallest element (over dim; the first of ties), int64."""
    return _arg_extreme(x, dim if axis is None else axis, keepdim, False)


def _index_array(index: Any, fn: str) -> np.ndarray:
    a = _as_tensor(index).numpy() if not isinstance(index, np.ndarray) else index
    if a.dtype.kind not in "iu":
        raise TypeError(f"tapegrad.{fn}: the index must be an integer tensor, not {a.dtype}")
    return a.astype(np.int64, copy=False)


def gather(x: Any, dim: int, index: Any) -> Tensor:
    """``torch.gather``: ``out[i][j] = x[index[i][j]][j]`` for dim 0 (and so on); differentiable in x."""
    t = _as_tensor(x)
    d = _axis(dim, t.ndim, "gather")
    return _ops._gather(t, d, _index_array(index, "gather"))


def take_along_dim(x: Any, indices: Any, dim: int) -> Tensor:
    """``torch.take_along_dim`` (NumPy's take_along_axis) for same-rank indices."""
    return gather(x, dim, indices)


def scatter_add(x: Any, dim: int, index: Any, src: Any) -> Tensor:
    """``torch.scatter_add``: x with ``src[i][j]`` added at ``x[index[i][j]][j]`` for dim 0 (and so on);
    differentiable in x and src."""
    t = _as_tensor(x)
    d = _axis(dim, t.ndim, "scatter_add")
    return _ops._scatter_add(t, d, _index_array(index, "scatter_add"), _as_tensor(src))


def index_select(x: Any, dim: int, index: Any) -> Tensor:
    """``torch.index_select``: the slices at `index` (1-d) along dim."""
    t = _as_tensor(x)
    d = _axis(dim, t.ndim, "index_select")
    idx = _index_array(index, "index_select")
    if idx.ndim > 1:
        raise ValueError(f"tapegrad.index_select: the index must be 1-d, not shape {idx.shape}")
    key: list[Any] = [slice(None)] * t.ndim
    key[d] = idx.reshape(-1)
    return t[tuple(key)]


def _extreme_dim(t: Tensor, dim: Any, keepdim: bool, largest: bool) -> _ValuesIndices:
    d = _axis(dim, t.ndim, "max" if largest else "min")
    return _ValuesIndices(*_ops._extreme_along(t, d, bool(keepdim), largest))


def _np_extreme(largest: bool) -> Callable[..., Any]:
    np_method = _core.tensor_ops.amax if largest else _core.tensor_ops.amin
    elementwise = _core.tensor_ops.max if largest else _core.tensor_ops.min

    def method(t: Tensor, dim: Any = None, keepdim: bool = False, *, axis: Any = None, keepdims: Any = None,
               out: Any = None) -> Any:
        if isinstance(dim, (Tensor, np.ndarray)):  # t.max(other): elementwise (PyTorch)
            return elementwise(t, dim)
        if axis is not None or keepdims is not None or out is not None:  # NumPy's spelling
            if axis is not None:  # (by keyword: NumPy's axis=() is no axis, a positional () every axis)
                return np_method(t, axis=axis, keepdims=bool(keepdims or keepdim), out=out)
            return np_method(t, dim, bool(keepdims or keepdim), out=out)
        if dim is None:
            return np_method(t, None, keepdim)
        return _extreme_dim(t, dim, keepdim, largest)

    return method


def sort(x: Any, dim: int = -1, descending: bool = False, stable: bool = True) -> _ValuesIndices:
    """``torch.sort``: (values, indices) along dim, stable (equal elements keep their order;
    NaN sorts above every number, as in PyTorch); the values are differentiable."""
    t = _as_tensor(x)
    d = _axis(dim, t.ndim, "sort")
    return _ValuesIndices(*_ops._sort(t, d, bool(descending)))


def argsort(x: Any, dim: int = -1, descending: bool = False, stable: bool = True) -> Tensor:
    """``torch.argsort``."""
    return sort(x, dim, descending).indices


def topk(x: Any, k: int, dim: int = -1, largest: bool = True, sorted: bool = True) -> _ValuesIndices:  # noqa: A002
    """``torch.topk``: the k largest (or smallest) elements along dim and their indices; the
    values are differentiable."""
    t = _as_tensor(x)
    d = _axis(dim, t.ndim, "topk")
    n = t.shape[d] if t.ndim else 1
    k = operator.index(k)
    if not 0 <= k <= n:
        raise ValueError(f"tapegrad.topk: k = {k} is out of range for a dimension of size {n}")
    return _ValuesIndices(*_ops._topk(t, k, d, bool(largest)))


def _scan(name: str) -> Callable[..., Tensor]:
    def f(x: Any, dim: Any = None, *, dtype: Any = None, axis: Any = None, out: None = None) -> Tensor:
        # (np.cumsum(t, axis=...) calls t.cumsum(axis=..., dtype=..., out=...); no axis: NumPy's flattened scan)
        if out is not None:
            raise TypeError(f"tapegrad.{name}: out= is not supported (the result is a new tensor)")
        if dim is not None and axis is not None:
            raise TypeError(f"tapegrad.{name}: give dim= or axis=, not both")
        t = _as_tensor(x)
        if dtype is not None:
            t = t.astype(dtype)
        d = dim if axis is None else axis
        if d is None:
            t, d = t.reshape(-1), 0
        kernel: Callable[[Tensor, int], Tensor] = _ops._cumsum if name == "cumsum" else _ops._cumprod
        return kernel(t, _axis(d, t.ndim, name))

    f.__name__ = name
    f.__doc__ = (f"``torch.{name}``: running {'sums' if name == 'cumsum' else 'products'} along dim, in O(n) "
                 "(int64 for integer and bool tensors); differentiable"
                 + (", exactly where x has zeros." if name == "cumprod" else "."))
    return f


cumsum, cumprod = _scan("cumsum"), _scan("cumprod")


# --- norms -------------------------------------------------------------------------------------------------


def _vector_norm(t: Tensor, ord: float, dim: Any, keepdim: bool) -> Tensor:  # noqa: A002
    axes = None if dim is None else [operator.index(d) for d in (dim if isinstance(dim, (tuple, list)) else (dim,))]
    return _ops._vector_norm(t, ord, axes, bool(keepdim))


def norm(x: Any, p: Any = "fro", dim: Any = None, keepdim: bool = False, dtype: Any = None) -> Tensor:
    """``torch.norm``: the vector p-norm over dim (all elements by default; 'fro' is 2)."""
    t = _as_tensor(x)
    if dtype is not None:
        t = t.astype(dtype)
    if not is_float(t.dtype):
        raise TypeError(f"tapegrad.norm: the tensor must be floating, not {t.dtype}")
    if p == "fro" or p is None:
        p = 2
    if p == "nuc":
        raise ValueError("tapegrad.norm: the nuclear norm is not supported")
    return _vector_norm(t, float(p), dim, keepdim)


class linalg:  # noqa: N801 (PyTorch's module name)
    """``tapegrad.linalg``: the norms of ``torch.linalg``."""

    @staticmethod
    def vector_norm(x: Any, ord: float = 2, dim: Any = None, keepdim: bool = False,  # noqa: A002
                    dtype: Any = None) -> Tensor:
        """``torch.linalg.vector_norm``: the ord-norm of the elements over dim (all by default)."""
        return norm(x, ord, dim, keepdim, dtype)

    @staticmethod
    def norm(x: Any, ord: Any = None, dim: Any = None, keepdim: bool = False, dtype: Any = None) -> Tensor:  # noqa: A002
        """``torch.linalg.norm``: the 2-norm of a vector, the Frobenius norm of a matrix (ord None
        or 'fro'), or the vector ord-norm over dim; matrix norms of other orders are not supported."""
        t = _as_tensor(x)
        two_dims = (dim is None and t.ndim == 2) or (isinstance(dim, (tuple, list)) and len(dim) == 2)
        if ord is not None and ord != "fro" and two_dims:
            raise ValueError(f"tapegrad.linalg.norm: the matrix norm of order {ord!r} is not supported "
                             "(use linalg.vector_norm for the elements' norm)")
        return norm(t, 2 if ord is None or ord == "fro" else ord, dim, keepdim, dtype)


# --- creation -----------------------------------------------------------------------------------------------


def _default_float() -> Any:
    return np.dtype(_core.get_default_dtype()).type


def get_default_dtype() -> Any:
    """The floating dtype of factories (zeros, randn, arange with float bounds, nn.Linear ...)
    and of Python floats in tensor(): float64 unless set_default_dtype changed it."""
    return _default_float()


def set_default_dtype(d: Any) -> None:
    """Makes float32 or float64 the default floating dtype (``torch.set_default_dtype``)."""
    _core._set_default_dtype(d)


def empty(*size: Any, dtype: Any = None, requires_grad: bool = False, device: Any = None,
          **kwargs: Any) -> Tensor:
    """``torch.empty``: a tensor of the shape; tapegrad fills it with zeros (never garbage)."""
    _check_device(device, "empty")
    size = _size_kw(size, kwargs, "empty", ("pin_memory", "memory_format", "layout"))
    return _core._full(_sizes(size), 0.0, dtype, requires_grad)


def empty_like(t: Any, dtype: Any = None, requires_grad: bool = False, *, device: Any = None) -> Tensor:
    """``torch.empty_like`` (zeros)."""
    _check_device(device, "empty_like")
    x = _as_tensor(t)
    return _core._full(x.shape, 0.0, x.dtype if dtype is None else dtype, requires_grad)


def as_tensor(data: Any, dtype: Any = None, device: Any = None) -> Tensor:
    """``torch.as_tensor``: data itself when it is a tensor of that dtype (else converted); an
    ndarray of a tensor dtype shares its memory, as ``from_numpy``; anything else is copied, as
    ``tensor(data, dtype)``."""
    _check_device(device, "as_tensor")
    if isinstance(data, Tensor):
        return data if dtype is None or as_dtype(dtype) == data.dtype else data.astype(dtype)
    if isinstance(data, np.ndarray) and (dtype is None or as_dtype(dtype) == data.dtype):
        return _core.from_numpy(data)
    return _tensor(data, dtype)


class _LegacyTensorType(type):
    """The metaclass of PyTorch's legacy tensor types (``FloatTensor``, ...): calling one makes a
    tensor of its dtype, and ``isinstance(t, FloatTensor)`` asks the tensor's dtype."""

    _dtype: Any

    def __instancecheck__(cls, obj: Any) -> bool:
        return isinstance(obj, Tensor) and obj.dtype == as_dtype(cls._dtype)

    def __call__(cls, *args: Any, device: Any = None) -> Tensor:
        _check_device(device, cls.__name__)
        if builtins.all(isinstance(a, (int, np.integer)) and not isinstance(a, (bool, np.bool_)) for a in args):
            return _core._full(tuple(int(a) for a in args) if args else (0,), 0.0, cls._dtype, False)
        if len(args) == 1:  # data: a copy in the type's dtype
            return _tensor(args[0], cls._dtype)
        raise TypeError(f"tapegrad.{cls.__name__}(): takes sizes (ints) or one sequence of data, not {args!r}")


def _legacy_type(name: str, dtype: Any) -> Any:
    return _LegacyTensorType(name, (), {"_dtype": dtype, "__module__": "tapegrad", "__doc__": (
        f"PyTorch's legacy ``torch.{name}``: ``{name}(data)`` copies data into a {as_dtype(dtype).name} tensor, "
        f"``{name}(2, 3)`` is one of that shape (zeros); ``isinstance(t, {name})`` asks t's dtype.")})


FloatTensor = _legacy_type("FloatTensor", np.float32)
DoubleTensor = _legacy_type("DoubleTensor", np.float64)
HalfTensor = _legacy_type("HalfTensor", np.float16)
BFloat16Tensor = _legacy_type("BFloat16Tensor", "bfloat16")
LongTensor = _legacy_type("LongTensor", np.int64)
BoolTensor = _legacy_type("BoolTensor", np.bool_)


def diag(input: Any, diagonal: int = 0) -> Tensor:
    """``torch.diag``: of a vector, the square matrix with it on diagonal ``diagonal`` (0 the main,
    > 0 above, < 0 below); of a matrix, that diagonal as a vector. Differentiable (the core's
    recorded products, sums and slices)."""
    x = _as_tensor(input)
    k = operator.index(diagonal)
    if x.ndim == 1:
        n = x.shape[0]
        size = n + builtins.abs(k)
        mask = _tensor(np.eye(size, k=k), x.dtype)
        w = _ops.concatenate([x, _core._full((builtins.abs(k),), 0.0, x.dtype, False)]) if k else x
        return (_ops.reshape(w, (size, 1)) if k >= 0 else _ops.reshape(w, (1, size))) * mask
    if x.ndim == 2:
        r, c = x.shape
        mask = _tensor(np.eye(r, c, k=k), x.dtype)
        length = builtins.max(0, builtins.min(r, c - k) if k >= 0 else builtins.min(r + k, c))
        return _ops.sum(x * mask, axis=1 if k >= 0 else 0)[:length]
    raise ValueError(f"tapegrad.diag: needs a 1-d or 2-d tensor, not one of shape {x.shape}")


def linspace(start: float, end: float, steps: int, dtype: Any = None, requires_grad: bool = False, *,
             device: Any = None) -> Tensor:
    """``torch.linspace``: `steps` evenly spaced values from start to end, both included."""
    _check_device(device, "linspace")
    if operator.index(steps) < 0:
        raise ValueError(f"tapegrad.linspace: steps must be non-negative, not {steps}")
    dt = as_dtype(dtype or _default_float())
    a = np.linspace(float(start), float(end), steps, dtype=None if dt.name == "bfloat16" else dt)
    return _tensor(a, dtype=dt, requires_grad=requires_grad)  # (a dtype tapegrad lacks: a TypeError)


def _new_factory(value: Optional[float]) -> Callable[..., Tensor]:
    def f(t: Tensor, *size: Any, dtype: Any = None, requires_grad: bool = False, device: Any = None,
          pin_memory: bool = False, layout: Any = None) -> Tensor:
        _check_device(device, "Tensor.new_*")
        shape = _sizes(size[:-1] if value is None else size)
        fill = float(size[-1]) if value is None else value
        return _core._full(shape, fill, t.dtype if dtype is None else dtype, requires_grad)

    return f


def _new_tensor(t: Tensor, data: Any, dtype: Any = None, requires_grad: bool = False, device: Any = None,
                pin_memory: bool = False) -> Tensor:
    _check_device(device, "Tensor.new_tensor")
    return _tensor(data, t.dtype if dtype is None else dtype, requires_grad)


# --- in place ---------------------------------------------------------------------------------------------


def _zero_(t: Tensor) -> Tensor:
    return t._assign_(False, "zero_")  # (a bool zero: storable in a tensor of any dtype, int64 and bool too)


def _fill_(t: Tensor, value: Any) -> Tensor:
    return t._assign_(value, "fill_")


def _copy_(t: Tensor, src: Any, non_blocking: bool = False) -> Tensor:
    s = _as_tensor(src)
    if s.shape != t.shape:
        s = _ops.broadcast_to(s, t.shape)
    return t._assign_(s, "copy_")


def _add_(t: Tensor, other: Any, alpha: float = 1) -> Tensor:
    t += other if alpha == 1 else other * alpha
    return t


def _sub_(t: Tensor, other: Any, alpha: float = 1) -> Tensor:
    t -= other if alpha == 1 else other * alpha
    return t


def _mul_(t: Tensor, other: Any) -> Tensor:
    t *= other
    return t


def _div_(t: Tensor, other: Any) -> Tensor:
    t /= other
    return t


def _clamp_(t: Tensor, min: Optional[float] = None, max: Optional[float] = None) -> Tensor:  # noqa: A002
    from ._tensor import no_grad

    with no_grad():
        values = clamp(t, min, max)
    return t._assign_(values, "clamp_")


def _masked_fill_(t: Tensor, mask: Any, value: Any) -> Tensor:
    from ._tensor import no_grad

    with no_grad():
        values = masked_fill(t, mask, value)
    return t._assign_(values, "masked_fill_")


def _uniform_(t: Tensor, a: float = 0.0, b: float = 1.0, generator: Any = None) -> Tensor:
    from . import random

    return t._assign_(random._draw(t.shape, t.dtype, "uniform", a, b, generator), "uniform_")


def _normal_(t: Tensor, mean: float = 0.0, std: float = 1.0, generator: Any = None) -> Tensor:
    from . import random

    return t._assign_(random._draw(t.shape, t.dtype, "normal", mean, std, generator), "normal_")


# --- Tensor methods -------------------------------------------------------------------------------------------

_METHODS: dict[str, Any] = {
    "numel": numel, "nelement": numel, "dim": _dim, "ndimension": _dim, "element_size": _element_size,
    "is_floating_point": is_floating_point,
    "to": _to, "cpu": _cpu, "cuda": _cuda, "type_as": _type_as, "type": _type, "diag": diag,
    "float": lambda t: _to(t, np.float32), "double": lambda t: _to(t, np.float64),
    "long": lambda t: _to(t, np.int64), "bool": lambda t: _to(t, np.bool_),
    "half": lambda t: _to(t, np.float16), "int": lambda t: _to(t, np.int64),
    "view": _view, "view_as": _view_as, "reshape_as": _view_as, "t": _t, "transpose": _transpose,
    "swapaxes": _swapaxes, "swapdims": _swapdims,
    "flatten": _flatten, "unflatten": _unflatten, "expand": _expand, "expand_as": _expand_as, "repeat": _repeat,
    "split": _split, "chunk": _chunk, "unbind": _unbind,
    "mm": mm, "bmm": bmm, "mv": mv, "matmul": lambda t, other: _ops.matmul(t, other),
    "clamp": clamp, "clamp_min": _clamp_min, "clamp_max": _clamp_max,
    "masked_fill": masked_fill, "eq": eq, "ne": ne, "gt": gt, "lt": lt, "ge": ge, "le": le, "equal": equal,
    "allclose": allclose, "isclose": isclose, "all": all, "any": any, "isnan": isnan, "isinf": isinf,
    "isfinite": isfinite, "sign": sign,
    "argmax": argmax, "argmin": argmin, "max": _np_extreme(True), "min": _np_extreme(False),
    "sort": sort, "argsort": argsort, "topk": topk, "gather": gather, "scatter_add": scatter_add,
    "index_select": index_select, "take_along_dim": take_along_dim, "cumsum": cumsum, "cumprod": cumprod,
    "norm": norm,
    "new_zeros": _new_factory(0.0), "new_ones": _new_factory(1.0), "new_empty": _new_factory(0.0),
    "new_full": _new_factory(None), "new_tensor": _new_tensor,
    "add": _add, "sub": _sub,
    "zero_": _zero_, "fill_": _fill_, "copy_": _copy_, "add_": _add_, "sub_": _sub_, "mul_": _mul_, "div_": _div_,
    "clamp_": _clamp_, "masked_fill_": _masked_fill_, "uniform_": _uniform_, "normal_": _normal_,
}


def _register_hook(t: Tensor, hook: Callable[[Tensor], Optional[Tensor]]) -> Any:
    """Calls ``hook(grad)`` with this tensor's gradient each time a backward pass (or
    ``autograd.grad``) has summed it, before it flows on (for a leaf: before it is added into
    ``.grad``); a Tensor it returns replaces the gradient (PyTorch's ``register_hook``). Under
    ``create_graph=True`` the gradient is recorded, and so is what the hook does with it.
    Returns a handle whose ``remove()`` unregisters the hook."""
    from .utils.hooks import RemovableHandle

    hook_id = _core._tensor_register_hook(t, hook, False)
    return RemovableHandle(remover=lambda: _core._tensor_remove_hook(t, hook_id), id=hook_id)


def _register_post_accumulate_grad_hook(t: Tensor, hook: Callable[[Tensor], None]) -> Any:
    """Calls ``hook(tensor)`` after a backward pass has accumulated into this leaf's ``.grad``
    (PyTorch's ``register_post_accumulate_grad_hook``: an optimizer step per parameter, as the
    gradients arrive). Leaves that require grad only."""
    import weakref

    from .utils.hooks import RemovableHandle

    if not callable(hook):
        raise TypeError(f"register_post_accumulate_grad_hook(): the hook must be callable, not {type(hook).__name__}")
    # The hook gets this very object (a Parameter stays a Parameter: optimizer-in-backward keys
    # its optimizers by parameter); a weak reference, so that the hook does not keep it alive.
    ref = weakref.ref(t)

    def call(_: Tensor) -> None:
        obj = ref()
        if obj is not None:
            hook(obj)

    hook_id = _core._tensor_register_hook(t, call, True)
    return RemovableHandle(remover=lambda: _core._tensor_remove_hook(t, hook_id), id=hook_id)


def _install() -> None:
    attrs = {
        "register_hook": _register_hook,
        "register_post_accumulate_grad_hook": _register_post_accumulate_grad_hook,
        **_METHODS,
        "size": property(lambda t: _SizeAttr(t.shape), doc="NumPy's element count; called, PyTorch's size()"),
        "mT": property(_mT, doc="The last two axes swapped (PyTorch's mT)"),
        "device": property(lambda t: _CPU, doc="Where the tensor lives: always the CPU"),
        "is_cuda": False,
        "nbytes": property(lambda t: int(t.numpy().nbytes), doc="The bytes its elements take"),
    }
    for name, f in attrs.items():
        setattr(Tensor, name, f)


_install()
