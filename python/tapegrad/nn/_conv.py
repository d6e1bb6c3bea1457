"""Convolution, padding and pooling as functions (``torch.nn.functional.conv2d``, ``pad``, ``max_pool2d``, ...),
re-exported by ``tapegrad.nn.functional``.

The work is the core's (``cpp/src/ops/conv.cpp``: compositions of the op table's strided gather and scatter and
its matrix product, so C++ has them too and every sweep differentiates them); this module gives them PyTorch's
signatures: int-or-tuple arguments, ``padding='same'``, unbatched inputs, the padding modes.
"""

from __future__ import annotations

import numbers
from typing import Any, List, Optional, Sequence, Tuple, Union

import numpy as np

from .. import _core
from .._core import Tensor
from .._dtypes import is_float

_ops = _core.tensor_ops
_IntOrTuple = Union[int, Sequence[int]]


def _check_tensor(name: str, what: str, x: Any) -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name}: {what} must be a tapegrad Tensor, not {type(x).__name__}")


def _ints(v: Any, d: int, name: str, what: str) -> Tuple[int, ...]:
    """``v`` as d ints: one int repeated, or a sequence of d ints (PyTorch's ``_pair``, ``_triple``)."""
    if isinstance(v, (numbers.Integral, np.integer)) and not isinstance(v, bool):
        return (int(v),) * d
    if isinstance(v, (tuple, list)) and all(isinstance(e, (numbers.Integral, np.integer)) and not isinstance(e, bool)
                                            for e in v):
        if len(v) == 1:
            return (int(v[0]),) * d
        if len(v) == d:
            return tuple(int(e) for e in v)
        raise ValueError(f"{name}: {what} needs 1 or {d} values, got {tuple(v)}")
    raise TypeError(f"{name}: {what} must be an int or a tuple of {d} ints, not {v!r}")


def _batched(name: str, x: Tensor, d: int) -> Tuple[Tensor, bool]:
    """x with a batch axis (PyTorch's unbatched (C, *spatial) input gets one), and whether it was added."""
    if x.ndim == d + 1:
        return x.unsqueeze(0), True
    if x.ndim == d + 2:
        return x, False
    raise ValueError(f"{name}: expected a {d + 1}-d (unbatched) or {d + 2}-d (batched) input, got an input of "
                     f"shape {x.shape}")


# --- padding --------------------------------------------------------------------------------------------------


def _source_index(n: int, before: int, after: int, mode: str, name: str) -> np.ndarray[Any, Any]:
    """Where each element of a padded axis of length n comes from, for the modes that copy the input."""
    j = np.arange(-before, n + after)
    if mode == "replicate":
        if n == 0:
            raise ValueError(f"{name}: replicate padding needs a non-empty axis")
        return np.clip(j, 0, n - 1)
    if mode == "reflect":
        if max(before, after) >= n:
            raise ValueError(f"{name}: reflect padding ({before}, {after}) must be smaller than the axis' length {n}")
        i = np.abs(j)
        return np.where(i >= n, 2 * (n - 1) - i, i)
    if max(before, after) > n:  # circular
        raise ValueError(f"{name}: circular padding ({before}, {after}) must be at most the axis' length {n}")
    return j % n


def pad(input: Tensor, pad: Sequence[int], mode: str = "constant", value: Optional[float] = None) -> Tensor:
    """``input`` padded (``torch.nn.functional.pad``): ``pad`` is (before, after) pairs from the last axis back,
    ``(left, right, top, bottom, ...)``; negative amounts crop. ``mode`` is ``'constant'`` (``value``, 0 by
    default), ``'reflect'`` (mirrored without the edge), ``'replicate'`` (the edge repeated) or ``'circular'``
    (wrapped around). Differentiable: the gradient of a copied element adds to its source."""
    _check_tensor("pad", "input", input)
    if isinstance(pad, (numbers.Integral, np.integer)) or not all(
            isinstance(p, (numbers.Integral, np.integer)) and not isinstance(p, bool) for p in pad):
        raise TypeError(f"pad: pad must be a sequence of ints, not {pad!r}")
    pads = [int(p) for p in pad]
    if len(pads) % 2 or len(pads) // 2 > input.ndim:
        raise ValueError(f"pad: pad {tuple(pads)} must hold (before, after) pairs for at most the input's "
                         f"{input.ndim} axes")
    before = [0] * input.ndim
    after = [0] * input.ndim
    for k in range(len(pads) // 2):
        before[input.ndim - 1 - k], after[input.ndim - 1 - k] = pads[2 * k], pads[2 * k + 1]
    if mode == "constant":
        if not is_float(input.dtype):  # integer and bool tensors: no gradient to keep
            a = input.numpy()
            crop = tuple(slice(-min(b, 0), a.shape[i] + min(e, 0)) for i, (b, e) in enumerate(zip(before, after)))
            widths = [(max(b, 0), max(e, 0)) for b, e in zip(before, after)]
            return _core.tensor(np.pad(a[crop], widths, constant_values=value or 0))
        out = _ops._pad(input, before, after)
        if value:
            inside = _ops._pad(_core._full(input.shape, 1.0, input.dtype, False), before, after)
            out = out + (1.0 - inside) * float(value)
        return out
    if mode not in ("reflect", "replicate", "circular"):
        raise NotImplementedError(f"pad: mode {mode!r} is not one of 'constant', 'reflect', 'replicate', 'circular'")
    if value:
        raise ValueError(f"pad: value= is only for mode='constant', not {mode!r}")
    out = input
    for axis in range(input.ndim):
        if before[axis] or after[axis]:
            idx = _source_index(input.shape[axis], before[axis], after[axis], mode, "pad")
            out = out[(slice(None),) * axis + (idx,)]
    return out


# --- convolution ----------------------------------------------------------------------------------------------


def _same_padding(name: str, d: int, weight: Tensor, stride: Tuple[int, ...],
                  dilation: Tuple[int, ...]) -> Tuple[List[int], List[int]]:
    if any(s != 1 for s in stride):
        raise ValueError(f"{name}: padding='same' is not supported for strided convolutions")
    total = [dil * (k - 1) for dil, k in zip(dilation, weight.shape[2:])]
    return [t // 2 for t in total], [t - t // 2 for t in total]


def _conv(d: int, name: str, input: Tensor, weight: Tensor, bias: Optional[Tensor], stride: _IntOrTuple,
          padding: Union[str, _IntOrTuple], dilation: _IntOrTuple, groups: int) -> Tensor:
    _check_tensor(name, "input", input)
    _check_tensor(name, "weight", weight)
    if bias is not None:
        _check_tensor(name, "bias", bias)
    x, unbatched = _batched(name, input, d)
    st, dil = _ints(stride, d, name, "stride"), _ints(dilation, d, name, "dilation")
    if isinstance(padding, str):
        if padding == "valid":
            pd = (0,) * d
        elif padding == "same":
            lo, hi = _same_padding(name, d, weight, st, dil)
            if lo != hi:  # an even kernel: the extra element goes after, as PyTorch's
                pairs = [p for k in reversed(range(d)) for p in (lo[k], hi[k])]
                x = pad(x, pairs)
                lo = [0] * d
            pd = tuple(lo)
        else:
            raise ValueError(f"{name}: padding {padding!r} must be 'valid', 'same', an int or a tuple of ints")
    else:
        pd = _ints(padding, d, name, "padding")
    if not isinstance(groups, (numbers.Integral, np.integer)) or isinstance(groups, bool):
        raise TypeError(f"{name}: groups must be an int, not {groups!r}")
    y = _ops._conv(x, weight, bias, list(st), list(pd), list(dil), int(groups), name)
    return y.squeeze(0) if unbatched else y


def conv1d(input: Tensor, weight: Tensor, bias: Optional[Tensor] = None, stride: _IntOrTuple = 1,
           padding: Union[str, _IntOrTuple] = 0, dilation: _IntOrTuple = 1, groups: int = 1) -> Tensor:
    """The 1-d cross-correlation of input (N, C, L) with weight (O, C / groups, k), plus bias (O)
    (``torch.nn.functional.conv1d``); ``padding`` is zeros on both sides, or ``'same'`` / ``'valid'``."""
    return _conv(1, "conv1d", input, weight, bias, stride, padding, dilation, groups)


def conv2d(input: Tensor, weight: Tensor, bias: Optional[Tensor] = None, stride: _IntOrTuple = 1,
           padding: Union[str, _IntOrTuple] = 0, dilation: _IntOrTuple = 1, groups: int = 1) -> Tensor:
    """The 2-d cross-correlation of input (N, C, H, W) with weight (O, C / groups, kh, kw), plus bias (O)
    (``torch.nn.functional.conv2d``): out[n, o] = bias[o] + sum over c, i, j of weight[o, c, i, j] *
    input[n, c, y * stride + i * dilation, x * stride + j * dilation] (after zero ``padding``).
    ``groups`` splits the channels into independent convolutions; an unbatched (C, H, W) input gives an
    unbatched result. Computed as PyTorch's CPU fallback does: the windows gathered (im2col) and one
    matrix product per group."""
    return _conv(2, "conv2d", input, weight, bias, stride, padding, dilation, groups)


def conv3d(input: Tensor, weight: Tensor, bias: Optional[Tensor] = None, stride: _IntOrTuple = 1,
           padding: Union[str, _IntOrTuple] = 0, dilation: _IntOrTuple = 1, groups: int = 1) -> Tensor:
    """The 3-d cross-correlation of input (N, C, D, H, W) with weight (O, C / groups, kd, kh, kw)
    (``torch.nn.functional.conv3d``)."""
    return _conv(3, "conv3d", input, weight, bias, stride, padding, dilation, groups)


def _conv_transpose(d: int, name: str, input: Tensor, weight: Tensor, bias: Optional[Tensor], stride: _IntOrTuple,
                    padding: _IntOrTuple, output_padding: _IntOrTuple, groups: int, dilation: _IntOrTuple) -> Tensor:
    _check_tensor(name, "input", input)
    _check_tensor(name, "weight", weight)
    if bias is not None:
        _check_tensor(name, "bias", bias)
    if isinstance(padding, str):
        raise ValueError(f"{name}: padding must be an int or a tuple of ints, not {padding!r}")
    x, unbatched = _batched(name, input, d)
    y = _ops._conv_transpose(x, weight, bias, list(_ints(stride, d, name, "stride")),
                             list(_ints(padding, d, name, "padding")),
                             list(_ints(output_padding, d, name, "output_padding")), int(groups),
                             list(_ints(dilation, d, name, "dilation")), name)
    return y.squeeze(0) if unbatched else y


def conv_transpose1d(input: Tensor, weight: Tensor, bias: Optional[Tensor] = None, stride: _IntOrTuple = 1,
                     padding: _IntOrTuple = 0, output_padding: _IntOrTuple = 0, groups: int = 1,
                     dilation: _IntOrTuple = 1) -> Tensor:
    """The transposed 1-d convolution (the input-gradient of conv1d) of input (N, C, L) with weight
    (C, O / groups, k) (``torch.nn.functional.conv_transpose1d``)."""
    return _conv_transpose(1, "conv_transpose1d", input, weight, bias, stride, padding, output_padding, groups,
                           dilation)


def conv_transpose2d(input: Tensor, weight: Tensor, bias: Optional[Tensor] = None, stride: _IntOrTuple = 1,
                     padding: _IntOrTuple = 0, output_padding: _IntOrTuple = 0, groups: int = 1,
                     dilation: _IntOrTuple = 1) -> Tensor:
    """The transposed 2-d convolution of input (N, C, H, W) with weight (C, O / groups, kh, kw)
    (``torch.nn.functional.conv_transpose2d``): each input element adds weight-scaled copies of the kernel
    at stride steps (the overlaps summed), then ``padding`` is cropped from each side; the output is
    (H - 1) * stride - 2 * padding + dilation * (kh - 1) + output_padding + 1 high (and so wide)."""
    return _conv_transpose(2, "conv_transpose2d", input, weight, bias, stride, padding, output_padding, groups,
                           dilation)


def conv_transpose3d(input: Tensor, weight: Tensor, bias: Optional[Tensor] = None, stride: _IntOrTuple = 1,
                     padding: _IntOrTuple = 0, output_padding: _IntOrTuple = 0, groups: int = 1,
                     dilation: _IntOrTuple = 1) -> Tensor:
    """The transposed 3-d convolution (``torch.nn.functional.conv_transpose3d``)."""
    return _conv_transpose(3, "conv_transpose3d", input, weight, bias, stride, padding, output_padding, groups,
                           dilation)


# --- pooling --------------------------------------------------------------------------------------------------


def _pool_input(name: str, x: Any, d: int) -> None:
    _check_tensor(name, "input", x)
    if x.ndim not in (d + 1, d + 2):
        raise ValueError(f"{name}: expected a {d + 1}-d (unbatched) or {d + 2}-d (batched) input, got an input of "
                         f"shape {x.shape}")


def _stride(stride: Any, kernel: Tuple[int, ...], d: int, name: str) -> Tuple[int, ...]:
    if stride is None or (isinstance(stride, (tuple, list)) and len(stride) == 0):
        return kernel  # PyTorch's default: windows side by side
    return _ints(stride, d, name, "stride")


def _max_pool(d: int, name: str, input: Tensor, kernel_size: _IntOrTuple, stride: Any, padding: _IntOrTuple,
              dilation: _IntOrTuple, ceil_mode: bool, return_indices: bool) -> Any:
    _pool_input(name, input, d)
    k = _ints(kernel_size, d, name, "kernel_size")
    values, indices = _ops._max_pool(input, list(k), list(_stride(stride, k, d, name)),
                                     list(_ints(padding, d, name, "padding")),
                                     list(_ints(dilation, d, name, "dilation")), bool(ceil_mode), name)
    return (values, indices) if return_indices else values


def max_pool1d(input: Tensor, kernel_size: _IntOrTuple, stride: Any = None, padding: _IntOrTuple = 0,
               dilation: _IntOrTuple = 1, ceil_mode: bool = False, return_indices: bool = False) -> Any:
    """The largest element of each window of the last axis (``torch.nn.functional.max_pool1d``)."""
    return _max_pool(1, "max_pool1d", input, kernel_size, stride, padding, dilation, ceil_mode, return_indices)


def max_pool2d(input: Tensor, kernel_size: _IntOrTuple, stride: Any = None, padding: _IntOrTuple = 0,
               dilation: _IntOrTuple = 1, ceil_mode: bool = False, return_indices: bool = False) -> Any:
    """The largest element of each kernel_size window of the last two axes, windows ``stride`` apart (by
    default side by side), after ``padding`` that never wins (``torch.nn.functional.max_pool2d``). With
    ``return_indices``, also each one's flat index into the input's (H, W) plane, as PyTorch's. The
    gradient goes to that element (the first of ties); ``ceil_mode`` keeps a last partial window."""
    return _max_pool(2, "max_pool2d", input, kernel_size, stride, padding, dilation, ceil_mode, return_indices)


def max_pool3d(input: Tensor, kernel_size: _IntOrTuple, stride: Any = None, padding: _IntOrTuple = 0,
               dilation: _IntOrTuple = 1, ceil_mode: bool = False, return_indices: bool = False) -> Any:
    """The largest element of each window of the last three axes (``torch.nn.functional.max_pool3d``)."""
    return _max_pool(3, "max_pool3d", input, kernel_size, stride, padding, dilation, ceil_mode, return_indices)


def _avg_pool(d: int, name: str, input: Tensor, kernel_size: _IntOrTuple, stride: Any, padding: _IntOrTuple,
              ceil_mode: bool, count_include_pad: bool, divisor_override: Optional[int]) -> Tensor:
    _pool_input(name, input, d)
    k = _ints(kernel_size, d, name, "kernel_size")
    if divisor_override is not None and (not isinstance(divisor_override, (numbers.Integral, np.integer))
                                         or divisor_override <= 0):
        raise ValueError(f"{name}: divisor_override must be a positive int, not {divisor_override!r}")
    return _ops._avg_pool(input, list(k), list(_stride(stride, k, d, name)), list(_ints(padding, d, name, "padding")),
                          bool(ceil_mode), bool(count_include_pad), int(divisor_override or 0), name)


def avg_pool1d(input: Tensor, kernel_size: _IntOrTuple, stride: Any = None, padding: _IntOrTuple = 0,
               ceil_mode: bool = False, count_include_pad: bool = True) -> Tensor:
    """The mean of each window of the last axis (``torch.nn.functional.avg_pool1d``)."""
    return _avg_pool(1, "avg_pool1d", input, kernel_size, stride, padding, ceil_mode, count_include_pad, None)


def avg_pool2d(input: Tensor, kernel_size: _IntOrTuple, stride: Any = None, padding: _IntOrTuple = 0,
               ceil_mode: bool = False, count_include_pad: bool = True,
               divisor_override: Optional[int] = None) -> Tensor:
    """The mean of each kernel_size window of the last two axes (``torch.nn.functional.avg_pool2d``): the zero
    ``padding`` counts in the window's size unless ``count_include_pad`` is False; ``divisor_override``
    replaces the size."""
    return _avg_pool(2, "avg_pool2d", input, kernel_size, stride, padding, ceil_mode, count_include_pad,
                     divisor_override)


def avg_pool3d(input: Tensor, kernel_size: _IntOrTuple, stride: Any = None, padding: _IntOrTuple = 0,
               ceil_mode: bool = False, count_include_pad: bool = True,
               divisor_override: Optional[int] = None) -> Tensor:
    """The mean of each window of the last three axes (``torch.nn.functional.avg_pool3d``)."""
    return _avg_pool(3, "avg_pool3d", input, kernel_size, stride, padding, ceil_mode, count_include_pad,
                     divisor_override)


def _adaptive(d: int, name: str, input: Tensor, output_size: Any) -> Tensor:
    _pool_input(name, input, d)
    sizes = (output_size,) * d if not isinstance(output_size, (tuple, list)) else tuple(output_size)
    if len(sizes) == 1:
        sizes = sizes * d
    if len(sizes) != d:
        raise ValueError(f"{name}: output_size needs 1 or {d} values, got {output_size!r}")
    spatial = input.shape[input.ndim - d:]
    out = [spatial[i] if s is None else s for i, s in enumerate(sizes)]
    return _ops._adaptive_avg_pool(input, list(_ints(out, d, name, "output_size")), name)


def adaptive_avg_pool1d(input: Tensor, output_size: Any) -> Tensor:
    """The mean over ``output_size`` windows of the last axis, window i covering [floor(i L / o), ceil((i + 1) L /
    o)) (``torch.nn.functional.adaptive_avg_pool1d``)."""
    return _adaptive(1, "adaptive_avg_pool1d", input, output_size)


def adaptive_avg_pool2d(input: Tensor, output_size: Any) -> Tensor:
    """The mean over an ``output_size`` grid of windows of the last two axes (``None`` keeps an axis), as
    ``torch.nn.functional.adaptive_avg_pool2d``: ``(1, 1)`` is a global average. Computed as a product with
    a constant averaging matrix per axis."""
    return _adaptive(2, "adaptive_avg_pool2d", input, output_size)


def adaptive_avg_pool3d(input: Tensor, output_size: Any) -> Tensor:
    """The mean over an ``output_size`` grid of windows of the last three axes
    (``torch.nn.functional.adaptive_avg_pool3d``)."""
    return _adaptive(3, "adaptive_avg_pool3d", input, output_size)
