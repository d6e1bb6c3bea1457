"""``scaled_dot_product_attention`` (re-exported by ``tapegrad.nn.functional`` and used by
``tapegrad.nn.MultiheadAttention``'s callers): attention composed of the core's recorded ops."""

from __future__ import annotations

import math
from typing import Any, Optional, Tuple

import numpy as np

from .. import _core
from .._core import Tensor


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
    if enable_gqa and query.ndim >= 3 and key.shape[-3] != query.shape[-3]:
        hq, hk = query.shape[-3], key.shape[-3]
        if hq % hk:
            raise ValueError(f"scaled_dot_product_attention: {hq} query heads do not share {hk} key heads evenly")
        idx = np.repeat(np.arange(hk), hq // hk)
        key, value = key[..., idx, :, :], value[..., idx, :, :]
    bool_mask, float_mask = _mask_array(attn_mask, "scaled_dot_product_attention")
    if is_causal and attn_mask is not None:
        raise ValueError("scaled_dot_product_attention: give attn_mask or is_causal, not both")
    # (tapegrad::attention_weights in C++: softmax(q k^T scale + mask), zeros where nothing may be attended)
    weights = _core.tensor_ops._attention_weights(query, key, value, float_mask,
                                                  None if bool_mask is None else _core.tensor(bool_mask),
                                                  math.nan if scale is None else float(scale), bool(is_causal))
    if dropout_p > 0.0:
        from .functional import dropout

        weights = dropout(weights, dropout_p, True)
    return weights @ value
