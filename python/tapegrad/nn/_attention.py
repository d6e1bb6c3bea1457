"""``scaled_dot_product_attention`` (re-exported by ``tapegrad.nn.functional`` and used by
``tapegrad.nn.MultiheadAttention``'s callers): attention composed of the core's recorded ops."""

from __future__ import annotations

import math
from typing import Any, Optional, Tuple

import numpy as np

from .. import _core
from .._core import Tensor
from .._tensor import no_grad, where
from .._tensor import softmax as _softmax


def _mask_array(mask: Any, name: str) -> Tuple[Optional[np.ndarray], Optional[Tensor]]:
    """A mask as (bool array, None) or (None, float tensor)."""
    if mask is None:
        return None, None
    a = mask.numpy() if isinstance(mask, Tensor) else np.asarray(mask)
    if a.dtype == np.bool_:
        return a, None
    if a.dtype.kind != "f":
        raise TypeError(f"{name}: only bool and floating types of masks are supported, not {a.dtype}")
    return None, mask if isinstance(mask, Tensor) else _core.tensor(a)


def scaled_dot_product_attention(query: Tensor, key: Tensor, value: Tensor, attn_mask: Any = None,
                                 dropout_p: float = 0.0, is_causal: bool = False, scale: Optional[float] = None,
                                 enable_gqa: bool = False) -> Tensor:
    """softmax(query @ key^T * scale + mask) @ value over the last two axes
    (``torch.nn.functional.scaled_dot_product_attention``): ``scale`` 1/sqrt(E) by default; a bool
    ``attn_mask`` says which positions take part (True), a float one is added; ``is_causal`` masks the
    positions after each query's; a query that may attend to nothing gets zeros (PyTorch's choice);
    ``dropout_p`` drops attention weights; ``enable_gqa`` shares each key and value head among
    query heads."""
    for what, t in (("query", query), ("key", key), ("value", value)):
        if not isinstance(t, Tensor):
            raise TypeError(f"scaled_dot_product_attention: {what} must be a tapegrad Tensor, not {type(t).__name__}")
        if t.ndim < 2:
            raise ValueError(f"scaled_dot_product_attention: {what} must have at least 2 axes (..., L, E), got "
                             f"shape {t.shape}")
    if query.shape[-1] != key.shape[-1] or key.shape[-2] != value.shape[-2]:
        raise ValueError(f"scaled_dot_product_attention: query {query.shape}, key {key.shape} and value "
                         f"{value.shape} do not fit: query and key need one E, key and value one S")
    L, S = query.shape[-2], key.shape[-2]
    if enable_gqa and query.ndim >= 3 and key.shape[-3] != query.shape[-3]:
        hq, hk = query.shape[-3], key.shape[-3]
        if hq % hk:
            raise ValueError(f"scaled_dot_product_attention: {hq} query heads do not share {hk} key heads evenly")
        idx = np.repeat(np.arange(hk), hq // hk)
        key, value = key[..., idx, :, :], value[..., idx, :, :]
    s = 1.0 / math.sqrt(query.shape[-1]) if scale is None else float(scale)
    scores = query @ key.swapaxes(-2, -1) * s
    allowed: Optional[np.ndarray] = None
    if is_causal:
        if attn_mask is not None:
            raise ValueError("scaled_dot_product_attention: give attn_mask or is_causal, not both")
        allowed = np.tril(np.ones((L, S), dtype=bool))
    bool_mask, float_mask = _mask_array(attn_mask, "scaled_dot_product_attention")
    if bool_mask is not None:
        allowed = bool_mask
    if float_mask is not None:
        scores = scores + float_mask
    if allowed is not None:
        scores = where(allowed, scores, -math.inf)
    weights = _softmax(scores, -1)
    if allowed is not None or float_mask is not None:  # rows that may attend to nothing: zeros, not NaN
        with no_grad():
            dead = np.isneginf(scores.numpy()).all(axis=-1, keepdims=True)
        if dead.any():
            weights = where(dead, 0.0, weights)
    if dropout_p > 0.0:
        from .functional import dropout

        weights = dropout(weights, dropout_p, True)
    return weights @ value
