"""The functional forms of the layers and losses (``torch.nn.functional``), on tapegrad tensors.

Each function has torch's signature and semantics; ``inplace=True`` is accepted for compatibility, but the
result is computed out of place (the input is left unchanged). The deprecated ``size_average``/``reduce`` of
the losses are honoured as in torch (with its warning). Gradients come from tapegrad's tape, so they are the
exact derivatives of the formulas here; where torch's hand-written backward differs (at saturated points of
``binary_cross_entropy``), see that function.
"""

from __future__ import annotations

import functools
import math
import warnings
from typing import Any, Callable, Optional, Sequence, TypeVar, Union, cast

import numpy as np

from .. import _core, _torch
from .._core import Tensor
from .._dtypes import is_float
from .._tensor import log_softmax as _log_softmax
from .._tensor import maximum, minimum, where
from .._tensor import no_grad as _core_no_grad
from .._tensor import softmax as _softmax
from .._tensor import tensor as _make_tensor
from ..amp import _float32_under_autocast
from ._attention import scaled_dot_product_attention
from ._conv import (
    adaptive_avg_pool1d,
    adaptive_avg_pool2d,
    adaptive_avg_pool3d,
    avg_pool1d,
    avg_pool2d,
    avg_pool3d,
    conv1d,
    conv2d,
    conv3d,
    conv_transpose1d,
    conv_transpose2d,
    conv_transpose3d,
    max_pool1d,
    max_pool2d,
    max_pool3d,
    pad,
)
from .init import _assign, _np_generator

_REDUCTIONS = ("none", "mean", "sum")
_Fn = TypeVar("_Fn", bound=Callable[..., Any])


def _takes_tensor(fn: _Fn) -> _Fn:
    """``fn`` raising a TypeError that names it when its first argument, the input, is not a Tensor."""

    @functools.wraps(fn)
    def checked(input: Any, *args: Any, **kwargs: Any) -> Any:
        if not isinstance(input, Tensor):
            raise TypeError(f"{fn.__name__}: input must be a tapegrad Tensor, not {type(input).__name__}")
        return fn(input, *args, **kwargs)

    return cast(_Fn, checked)


def _tensor(x: Any) -> Tensor:
    return x if isinstance(x, Tensor) else _make_tensor(x)


def _array(x: Any) -> np.ndarray[Any, Any]:
    return x.numpy() if isinstance(x, Tensor) else np.asarray(x)


def _reduction(name: str, reduction: str, size_average: Optional[bool] = None, reduce: Optional[bool] = None) -> str:
    """``reduction`` checked, or the one torch's deprecated ``size_average``/``reduce`` stand for."""
    if size_average is not None or reduce is not None:
        reduction = "none" if reduce is False else ("sum" if size_average is False else "mean")
        warnings.warn(f"size_average and reduce args will be deprecated, please use reduction='{reduction}' instead.",
                      stacklevel=3)
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{name}: reduction must be 'none', 'mean' or 'sum', not {reduction!r}")
    return reduction


def _reduce(loss: Tensor, reduction: str) -> Tensor:
    if reduction == "sum":
        return loss.sum()
    return loss.mean() if reduction == "mean" else loss


# --- activations --------------------------------------------------------------------------------------------


@_takes_tensor
def relu(input: Tensor, inplace: bool = False) -> Tensor:
    """max(x, 0)."""
    return input.relu()


@_takes_tensor
def leaky_relu(input: Tensor, negative_slope: float = 0.01, inplace: bool = False) -> Tensor:
    """x for x > 0, else negative_slope * x."""
    out: Tensor = where(input > 0, input, input * negative_slope)
    return out


@_takes_tensor
def elu(input: Tensor, alpha: float = 1.0, inplace: bool = False) -> Tensor:
    """x for x > 0, else alpha * (exp(x) - 1)."""
    out: Tensor = where(input > 0, input, alpha * minimum(input, 0.0).expm1())
    return out


@_takes_tensor
def silu(input: Tensor, inplace: bool = False) -> Tensor:
    """x * sigmoid(x) (swish)."""
    return input * input.sigmoid()


@_takes_tensor
def softplus(input: Tensor, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    """log(1 + exp(beta * x)) / beta, and x itself where beta * x > threshold."""
    scaled = input * beta
    out: Tensor = where(scaled > threshold, input, scaled.softplus() / beta)
    return out


@_takes_tensor
def logsigmoid(input: Tensor) -> Tensor:
    """log(sigmoid(x)) = -softplus(-x)."""
    return -(-input).softplus()


@_takes_tensor
def gelu(input: Tensor, approximate: str = "none") -> Tensor:
    """x * Phi(x) (``approximate='none'``) or its tanh approximation (``'tanh'``)."""
    if approximate == "none":
        return 0.5 * input * (1.0 + (input * (1 / math.sqrt(2.0))).erf())
    if approximate == "tanh":
        inner = math.sqrt(2.0 / math.pi) * (input + 0.044715 * input * input * input)
        return 0.5 * input * (1.0 + inner.tanh())
    raise ValueError(f"gelu: approximate must be 'none' or 'tanh', not {approximate!r}")


@_takes_tensor
def tanh(input: Tensor) -> Tensor:
    """The hyperbolic tangent."""
    return input.tanh()


@_takes_tensor
def sigmoid(input: Tensor) -> Tensor:
    """1 / (1 + exp(-x))."""
    return input.sigmoid()


def _softmax_dim(name: str, input: Tensor, dim: Optional[int], stacklevel: int) -> int:
    """``dim``, or torch's deprecated implicit choice (with its warning) when it is None."""
    if dim is not None:
        return dim
    warnings.warn(f"Implicit dimension choice for {name} has been deprecated. "
                  "Change the call to include dim=X as an argument.", stacklevel=stacklevel)
    return 0 if input.ndim in (0, 1, 3) else 1


@_takes_tensor
def softmax(input: Tensor, dim: Optional[int] = None, _stacklevel: int = 3, dtype: Any = None) -> Tensor:
    """exp(x) / sum(exp(x)) along ``dim``."""
    x = input if dtype is None else input.astype(dtype)
    return _softmax(x, _softmax_dim("softmax", x, dim, _stacklevel))


@_takes_tensor
def log_softmax(input: Tensor, dim: Optional[int] = None, _stacklevel: int = 3, dtype: Any = None) -> Tensor:
    """x - logsumexp(x) along ``dim``."""
    x = input if dtype is None else input.astype(dtype)
    return _log_softmax(x, _softmax_dim("log_softmax", x, dim, _stacklevel))


def _dropout_p(p: Any) -> float:
    """``p`` checked: a probability."""
    if isinstance(p, (bool, np.bool_)) or not isinstance(p, (int, float, np.integer, np.floating)) or not 0 <= p <= 1:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    return float(p)


@_takes_tensor
def dropout(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    """In training, zero each element with probability ``p`` (a mask from tapegrad's default generator) and
    scale the rest by 1 / (1 - p); otherwise the input itself."""
    _dropout_p(p)
    if not training or p == 0.0:
        return input
    if p == 1.0:
        return input * 0.0
    keep = _np_generator(None).random(input.shape) >= p
    return input * (keep * (1.0 / (1.0 - p))).astype(input.dtype)


def _channel_dropout(input: Tensor, p: float, training: bool, dims: int, name: str) -> Tensor:
    """Dropout of whole channels: input (N, C, *spatial) or (C, *spatial) with `dims` spatial
    axes; each channel is zeroed with probability p (one draw per channel) and the rest scaled."""
    _dropout_p(p)
    if input.ndim not in (dims + 1, dims + 2):
        raise ValueError(f"{name}: expected a {dims + 1}-d (unbatched) or {dims + 2}-d (batched) input, "
                         f"got one of shape {tuple(input.shape)}")
    if not training or p == 0.0:
        return input
    if p == 1.0:
        return input * 0.0
    mask_shape = tuple(input.shape[:input.ndim - dims]) + (1,) * dims
    keep = _np_generator(None).random(mask_shape) >= p
    return input * (keep * (1.0 / (1.0 - p))).astype(input.dtype)


def dropout1d(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    """Zeroes whole channels of an (N, C, L) or (C, L) input with probability ``p`` in training, and
    scales the rest by 1 / (1 - p) (``torch.nn.functional.dropout1d``)."""
    return _channel_dropout(input, p, training, 1, "dropout1d")


def dropout2d(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    """Zeroes whole channels of an (N, C, H, W) or (C, H, W) input with probability ``p`` in training,
    and scales the rest by 1 / (1 - p) (``torch.nn.functional.dropout2d``)."""
    return _channel_dropout(input, p, training, 2, "dropout2d")


# --- layers -------------------------------------------------------------------------------------------------


@_takes_tensor
def linear(input: Tensor, weight: Tensor, bias: Optional[Tensor] = None) -> Tensor:
    """x @ weight.T + bias (weight of shape (out_features, in_features)): one native op with no
    transposed copy of the weight (``tapegrad._core.tensor_ops.linear``)."""
    return _core.tensor_ops.linear(input, weight, bias)


def _indices(x: Any, name: str, what: str) -> np.ndarray[Any, Any]:
    """An integer array, or a TypeError naming ``what``."""
    a = _array(x)
    if a.dtype.kind not in "iu":
        raise TypeError(f"{name}: {what} must hold integer indices, not {a.dtype}")
    return a.astype(np.int64, copy=False)


def embedding(input: Any, weight: Tensor, padding_idx: Optional[int] = None, max_norm: Optional[float] = None,
              norm_type: float = 2.0, scale_grad_by_freq: bool = False, sparse: bool = False) -> Tensor:
    """The rows ``weight[input]``; the row ``padding_idx`` gets no gradient; with ``max_norm``, the rows looked
    up are first renormalised in place to at most that norm (as torch)."""
    if scale_grad_by_freq or sparse:
        raise NotImplementedError("embedding: scale_grad_by_freq and sparse are not supported")
    idx = _indices(input, "embedding", "input")
    num = weight.shape[0]
    if padding_idx is not None:
        if not -num <= padding_idx < num:
            raise ValueError(f"embedding: padding_idx {padding_idx} must be within num_embeddings ({num})")
        padding_idx %= num
    if max_norm is not None:
        rows = np.unique(idx)
        w = weight.numpy().copy()
        norms = np.linalg.norm(w[rows], ord=norm_type, axis=1)
        w[rows] *= np.where(norms > max_norm, max_norm / (norms + 1e-7), 1.0)[:, None]
        _assign(weight, w)
    out = weight[idx]
    if padding_idx is not None and weight.requires_grad:
        pad = idx == padding_idx
        if pad.any():
            out = where(pad[..., None], out.detach(), out)
    return out


@_takes_tensor
def layer_norm(input: Tensor, normalized_shape: Union[int, Sequence[int]], weight: Optional[Tensor] = None,
               bias: Optional[Tensor] = None, eps: float = 1e-5) -> Tensor:
    """(x - mean) / sqrt(var + eps) * weight + bias over the trailing ``normalized_shape`` axes (biased var)."""
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    k = len(shape)
    if k == 0 or input.shape[input.ndim - k:] != shape or input.ndim < k:
        raise ValueError(f"layer_norm: normalized_shape {shape} does not end the input's shape {input.shape}")
    for what, t in (("weight", weight), ("bias", bias)):
        if t is not None and t.shape != shape:
            raise ValueError(f"layer_norm: {what} has shape {t.shape}, expected normalized_shape {shape}")
    axes = tuple(range(-k, 0))
    centred = input - input.mean(axis=axes, keepdims=True)
    out = centred / ((centred * centred).mean(axis=axes, keepdims=True) + eps).sqrt()
    if weight is not None:
        out = out * weight
    return out if bias is None else out + bias


@_takes_tensor
def group_norm(input: Tensor, num_groups: int, weight: Optional[Tensor] = None, bias: Optional[Tensor] = None,
               eps: float = 1e-5) -> Tensor:
    """(x - mean) / sqrt(var + eps) over each group of ``C / num_groups`` channels and the other axes of
    an (N, C, *) input (biased var), then ``* weight + bias`` per channel (``torch.nn.functional.group_norm``)."""
    if input.ndim < 2:
        raise ValueError(f"group_norm: expected an input of at least 2 axes (N, C, *), got shape {input.shape}")
    n, c = input.shape[0], input.shape[1]
    if num_groups <= 0 or c % num_groups:
        raise ValueError(f"group_norm: the input's {c} channels (shape {input.shape}) must split into num_groups "
                         f"({num_groups}) equal groups")
    for what, t in (("weight", weight), ("bias", bias)):
        if t is not None and t.shape != (c,):
            raise ValueError(f"group_norm: {what} has shape {t.shape}, expected ({c},), one per channel")
    grouped = input.reshape(n, num_groups, -1)
    centred = grouped - grouped.mean(axis=2, keepdims=True)
    out = (centred / ((centred * centred).mean(axis=2, keepdims=True) + eps).sqrt()).reshape(input.shape)
    per_channel = (1, c) + (1,) * (input.ndim - 2)
    if weight is not None:
        out = out * weight.reshape(per_channel)
    return out if bias is None else out + bias.reshape(per_channel)


def batch_norm(input: Tensor, running_mean: Optional[Tensor], running_var: Optional[Tensor],
               weight: Optional[Tensor] = None, bias: Optional[Tensor] = None, training: bool = False,
               momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """Normalisation of each channel (axis 1) over the batch and the other axes, then ``* weight +
    bias`` per channel (``torch.nn.functional.batch_norm``). In training (or without running
    statistics) the batch's mean and biased variance are used, and the running statistics, if
    given, move toward the batch's (mean, unbiased variance) by ``momentum``, in place; otherwise
    the running statistics are used. Differentiable (the core's recorded ops)."""
    if input.ndim < 2:
        raise ValueError(f"batch_norm: expected an input of at least 2 dimensions (N, C, ...), got shape {input.shape}")
    channels = input.shape[1]
    for what, t in (("running_mean", running_mean), ("running_var", running_var), ("weight", weight), ("bias", bias)):
        if t is not None and t.shape != (channels,):
            raise ValueError(f"batch_norm: {what} has shape {t.shape}, expected ({channels},) for the input's "
                             f"{channels} channels")
    per_channel = (1, channels) + (1,) * (input.ndim - 2)
    axes = (0,) + tuple(range(2, input.ndim))
    if training or running_mean is None or running_var is None:
        n = input.numel() // max(channels, 1)
        if training and n <= 1:
            raise ValueError(f"batch_norm: expected more than 1 value per channel when training, got input shape "
                             f"{input.shape}")
        mean = input.mean(axis=axes, keepdims=True)
        centred = input - mean
        var = (centred * centred).mean(axis=axes, keepdims=True)
        out = centred / (var + eps).sqrt()
        if training and running_mean is not None and running_var is not None:
            with _core_no_grad():
                m = float(momentum)
                batch_mean = mean.detach().reshape(channels).astype(running_mean.dtype)
                batch_var = (var.detach().reshape(channels) * (n / max(n - 1, 1))).astype(running_var.dtype)
                running_mean.copy_(running_mean * (1.0 - m) + batch_mean * m)
                running_var.copy_(running_var * (1.0 - m) + batch_var * m)
    else:
        out = (input - running_mean.reshape(per_channel)) / (running_var.reshape(per_channel) + eps).sqrt()
    if weight is not None:
        out = out * weight.reshape(per_channel)
    return out if bias is None else out + bias.reshape(per_channel)


def one_hot(tensor: Any, num_classes: int = -1) -> Tensor:
    """An int64 tensor of shape ``tensor.shape + (num_classes,)`` with a one at each index (-1: max + 1)."""
    idx = _indices(tensor, "one_hot", "tensor")
    if idx.size and idx.min() < 0:
        raise ValueError(f"one_hot: class values must be non-negative, got {idx.min()}")
    if num_classes == -1:
        num_classes = int(idx.max()) + 1 if idx.size else 0
    if idx.size and idx.max() >= num_classes:
        raise ValueError(f"one_hot: class values must be smaller than num_classes ({num_classes}), got {idx.max()}")
    return _make_tensor(np.eye(num_classes, dtype=np.int64)[idx])


@_takes_tensor
def normalize(input: Tensor, p: float = 2.0, dim: int = 1, eps: float = 1e-12) -> Tensor:
    """x / max(||x||_p, eps) along ``dim``."""
    out: Tensor = input / maximum(_torch.norm(input, p, dim, keepdim=True), eps)  # (zero gradient at 0)
    return out


# --- losses ---------------------------------------------------------------------------------------------------


def _check_shapes(name: str, x: Tensor, y: Tensor) -> None:
    """torch's warning when target and input differ in shape (they are broadcast), a ValueError if they can't be."""
    if x.shape == y.shape:
        return
    try:
        np.broadcast_shapes(x.shape, y.shape)
    except ValueError:
        raise ValueError(f"{name}: target has shape {y.shape} but input has shape {x.shape} "
                         "(not broadcastable)") from None
    warnings.warn(f"{name}: using a target of shape {y.shape}, different to the input's shape {x.shape}. "
                  "This will likely lead to incorrect results due to broadcasting. "
                  "Please ensure they have the same size.", stacklevel=4)


def _pointwise(name: str, input: Tensor, target: Any, reduction: str, weight: Any, elementwise: Any,
               mean_by_weight: bool = True) -> Tensor:
    """``elementwise(input - target)``, weighted and reduced (a weighted mean divides by the weights' sum when
    ``mean_by_weight``, as torch's mse_loss and l1_loss; by the count otherwise, as its huber_loss)."""
    y = _tensor(target)
    _check_shapes(name, input, y)
    loss: Tensor = elementwise(input - y)
    if weight is None:
        return _reduce(loss, reduction)
    w = _tensor(weight)
    if w.shape != input.shape:
        raise ValueError(f"{name}: weight has shape {w.shape} but input has shape {input.shape}; they must match")
    loss = loss * w
    if reduction == "mean" and mean_by_weight:
        return loss.sum() / w.sum()
    return _reduce(loss, reduction)


@_takes_tensor
@_float32_under_autocast
def mse_loss(input: Tensor, target: Any, size_average: Optional[bool] = None, reduce: Optional[bool] = None,
             reduction: str = "mean", weight: Any = None) -> Tensor:
    """(x - y)**2, reduced."""
    reduction = _reduction("mse_loss", reduction, size_average, reduce)
    return _pointwise("mse_loss", input, target, reduction, weight, lambda d: d * d)


@_takes_tensor
@_float32_under_autocast
def l1_loss(input: Tensor, target: Any, size_average: Optional[bool] = None, reduce: Optional[bool] = None,
            reduction: str = "mean", weight: Any = None) -> Tensor:
    """|x - y|, reduced."""
    reduction = _reduction("l1_loss", reduction, size_average, reduce)
    return _pointwise("l1_loss", input, target, reduction, weight, lambda d: d.abs())


def _huber(d: Tensor, delta: float) -> Tensor:
    a = d.abs()
    out: Tensor = where(a < delta, 0.5 * d * d, delta * (a - 0.5 * delta))
    return out


@_takes_tensor
@_float32_under_autocast
def huber_loss(input: Tensor, target: Any, reduction: str = "mean", delta: float = 1.0,
               weight: Any = None) -> Tensor:
    """0.5 d**2 where |d| < delta, else delta * (|d| - delta / 2), with d = x - y, reduced."""
    reduction = _reduction("huber_loss", reduction)
    if not delta > 0:
        raise ValueError(f"huber_loss: delta must be positive, got {delta}")
    return _pointwise("huber_loss", input, target, reduction, weight, lambda d: _huber(d, delta),
                      mean_by_weight=False)


@_takes_tensor
@_float32_under_autocast
def smooth_l1_loss(input: Tensor, target: Any, size_average: Optional[bool] = None, reduce: Optional[bool] = None,
                   reduction: str = "mean", beta: float = 1.0) -> Tensor:
    """0.5 d**2 / beta where |d| < beta, else |d| - beta / 2 (|d| for beta = 0), reduced: huber_loss / beta."""
    reduction = _reduction("smooth_l1_loss", reduction, size_average, reduce)
    if beta < 0:
        raise ValueError(f"smooth_l1_loss: beta must be non-negative, got {beta}")
    fn = (lambda d: d.abs()) if beta == 0 else (lambda d: _huber(d, beta) / beta)
    return _pointwise("smooth_l1_loss", input, target, reduction, None, fn)


def _class_weight(weight: Any, classes: int, dtype: Any, name: str) -> Optional[np.ndarray[Any, Any]]:
    if weight is None:
        return None
    w = _array(weight)
    if w.shape != (classes,):
        raise ValueError(f"{name}: weight has shape {w.shape}, expected ({classes},): one weight per class")
    return w.astype(dtype)


def _nll(logp: Tensor, target: Any, weight: Any, ignore_index: int, reduction: str, label_smoothing: float,
         name: str) -> Tensor:
    """-logp at the target classes (class axis 1, or 0 for a 1-d input), weighted, ignoring ``ignore_index``,
    mixed with torch's label smoothing; a weighted mean divides by the non-ignored targets' weights."""
    if logp.ndim == 0:
        raise ValueError(f"{name}: input must have a class dimension, got a 0-d tensor")
    classes = logp.shape[1 if logp.ndim > 1 else 0]
    expected = logp.shape[:1] + logp.shape[2:] if logp.ndim > 1 else ()
    t = _indices(target, name, "target (class indices)")
    if t.shape != expected:
        raise ValueError(f"{name}: target has shape {t.shape} but input has shape {logp.shape}: "
                         f"class indices must have shape {expected}")
    w = _class_weight(weight, classes, logp.dtype, name)
    ignored = (t == ignore_index).reshape(-1)
    flat_t = t.reshape(-1)
    bad = flat_t[~ignored & ((flat_t < 0) | (flat_t >= classes))]
    if bad.size:
        raise IndexError(f"{name}: target {bad[0]} is out of bounds for {classes} classes")
    safe = np.where(ignored, 0, flat_t)
    order = (0, *range(2, logp.ndim), 1) if logp.ndim > 2 else None
    flat = (logp.permute(order) if order else logp).reshape((-1, classes))
    kept = (~ignored).astype(logp.dtype)
    per = kept if w is None else w[safe] * kept
    loss: Tensor = -(flat[np.arange(flat_t.size), safe] * per)
    if label_smoothing > 0:
        smooth = -(flat if w is None else flat * w).sum(axis=1) * kept
        loss = (1.0 - label_smoothing) * loss + (label_smoothing / classes) * smooth
    if reduction == "none":
        return loss.reshape(expected)
    if reduction == "sum":
        return loss.sum()
    total = per.sum()
    if total == 0:
        # As torch: the mean is 0/0 = nan, but only the kept targets take part in its gradient. An all-ignored
        # batch (all padding) has a nan loss and a zero gradient; kept targets of zero weight get nan.
        loss = loss[np.flatnonzero(kept)]
    mean: Tensor = loss.sum() / total
    return mean


@_takes_tensor
@_float32_under_autocast
def nll_loss(input: Tensor, target: Any, weight: Any = None, size_average: Optional[bool] = None,
             ignore_index: int = -100, reduce: Optional[bool] = None, reduction: str = "mean") -> Tensor:
    """The negative log likelihood of class indices ``target`` (shape (N,) or (N, d1, ...)) under
    log-probabilities ``input`` (shape (N, C) or (N, C, d1, ...), or (C,) with a 0-d target)."""
    reduction = _reduction("nll_loss", reduction, size_average, reduce)
    return _nll(input, target, weight, ignore_index, reduction, 0.0, "nll_loss")


@_takes_tensor
@_float32_under_autocast
def cross_entropy(input: Tensor, target: Any, weight: Any = None, size_average: Optional[bool] = None,
                  ignore_index: int = -100, reduce: Optional[bool] = None, reduction: str = "mean",
                  label_smoothing: float = 0.0) -> Tensor:
    """The cross entropy of logits ``input`` (classes on axis 1, or 0 for a 1-d input) and ``target``: class
    indices (integers, shape (N,) or (N, d1, ...)) or class probabilities (floats, the input's shape)."""
    name = "cross_entropy"
    reduction = _reduction(name, reduction, size_average, reduce)
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"{name}: label_smoothing must be between 0.0 and 1.0, got {label_smoothing}")
    if input.ndim == 0:
        raise ValueError(f"{name}: input must have a class dimension, got a 0-d tensor")
    axis = 1 if input.ndim > 1 else 0
    logp = _log_softmax(input, axis)
    tdt = target.dtype if isinstance(target, Tensor) else np.asarray(target).dtype
    kind = "f" if is_float(tdt) else tdt.kind
    if kind in "iu":
        return _nll(logp, target, weight, ignore_index, reduction, label_smoothing, name)
    if kind != "f":
        raise TypeError(f"{name}: target must hold class indices (integers) or class probabilities (floats), "
                        f"not {np.dtype(_array(target).dtype)}")
    probs = _tensor(target)
    if probs.shape != input.shape:
        raise ValueError(f"{name}: target has shape {probs.shape} but input has shape {input.shape}: class "
                         "probabilities (a floating target) must have the input's shape, class indices must be "
                         "integers")
    classes = input.shape[axis]
    if label_smoothing > 0:
        probs = probs * (1.0 - label_smoothing) + label_smoothing / classes
    terms = logp * probs
    w = _class_weight(weight, classes, input.dtype, name)
    if w is not None:
        terms = terms * w.reshape((classes,) + (1,) * (input.ndim - 2))  # broadcast along the class axis
    if reduction == "none":
        return -terms.sum(axis=axis)
    return -terms.sum() if reduction == "sum" else -terms.sum() / (math.prod(input.shape) // classes)


def _same_shape(name: str, input: Tensor, target: Any) -> Tensor:
    y = _tensor(target)
    if y.shape != input.shape:
        raise ValueError(f"{name}: target has shape {y.shape} but input has shape {input.shape}; they must match")
    return y


def _weighted(loss: Tensor, weight: Any, reduction: str) -> Tensor:
    return _reduce(loss if weight is None else loss * _tensor(weight), reduction)


def _clamped_log(x: Tensor) -> Tensor:
    """log(x) clamped below at -100 (torch's BCE), with a zero gradient where clamped (x = 0 included)."""
    above = x > math.exp(-100.0)
    out: Tensor = where(above, where(above, x, 1.0).log(), -100.0)
    return out


@_takes_tensor
@_float32_under_autocast
def binary_cross_entropy(input: Tensor, target: Any, weight: Any = None, size_average: Optional[bool] = None,
                         reduce: Optional[bool] = None, reduction: str = "mean") -> Tensor:
    """-(y log x + (1 - y) log(1 - x)) for probabilities x, each log clamped at -100 as torch, reduced.

    Gradients are the derivatives of that formula; torch's hand-written backward instead divides by
    max(x (1 - x), 1e-12), which differs only where x is 0 or 1 or within 1e-12 of them."""
    name = "binary_cross_entropy"
    reduction = _reduction(name, reduction, size_average, reduce)
    y = _same_shape(name, input, target)
    x = input.numpy()
    if x.size and not ((x >= 0) & (x <= 1)).all():
        raise ValueError(f"{name}: all elements of input should be between 0 and 1")
    loss = -(y * _clamped_log(input) + (1.0 - y) * _clamped_log(1.0 - input))
    return _weighted(loss, weight, reduction)


@_takes_tensor
@_float32_under_autocast
def binary_cross_entropy_with_logits(input: Tensor, target: Any, weight: Any = None,
                                     size_average: Optional[bool] = None, reduce: Optional[bool] = None,
                                     reduction: str = "mean", pos_weight: Any = None) -> Tensor:
    """binary_cross_entropy(sigmoid(x), y), computed stably as (1 - y) x + softplus(-x) (the softplus term
    scaled by 1 + (pos_weight - 1) y with ``pos_weight``), reduced."""
    name = "binary_cross_entropy_with_logits"
    reduction = _reduction(name, reduction, size_average, reduce)
    y = _same_shape(name, input, target)
    log_term = (-input).softplus()
    if pos_weight is not None:
        log_term = log_term * (1.0 + (_tensor(pos_weight) - 1.0) * y)
    return _weighted((1.0 - y) * input + log_term, weight, reduction)


__all__ = [
    "relu", "leaky_relu", "elu", "silu", "softplus", "logsigmoid", "gelu", "tanh", "sigmoid", "softmax",
    "log_softmax", "dropout", "dropout1d", "dropout2d", "linear", "embedding", "layer_norm", "group_norm",
    "batch_norm", "one_hot",
    "normalize", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d", "pad",
    "max_pool1d", "max_pool2d", "max_pool3d", "avg_pool1d", "avg_pool2d", "avg_pool3d", "adaptive_avg_pool1d",
    "adaptive_avg_pool2d", "adaptive_avg_pool3d", "scaled_dot_product_attention",
    "mse_loss", "l1_loss",
    "huber_loss", "smooth_l1_loss", "nll_loss", "cross_entropy", "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
]
