"""Attention and the Transformer encoder (``torch.nn.MultiheadAttention``, ``TransformerEncoderLayer``,
``TransformerEncoder``, ``torch.nn.functional.scaled_dot_product_attention``): PyTorch's parameters, names,
initialisation, masks and options, composed of the core's recorded ops (matmul, softmax, where, linear), so
every sweep differentiates them.
"""

from __future__ import annotations

import copy
import math
from typing import Any, Callable, Optional, Tuple, Union

import numpy as np

from .. import _core
from .._core import Tensor
from .._device import check as _check_device
from .._tensor import concatenate
from . import functional as F
from . import init
from ._attention import _mask_array, scaled_dot_product_attention
from .layers import Dropout, LayerNorm, Linear, _empty
from .module import Module, ModuleList, Parameter


class NonDynamicallyQuantizableLinear(Linear):
    """MultiheadAttention's output projection: a ``Linear`` (PyTorch's name for it, kept for its ``repr``)."""


class MultiheadAttention(Module):
    """Multi-head attention (``torch.nn.MultiheadAttention``): the queries, keys and values projected
    (``in_proj_weight`` (3E, E), or ``q_proj_weight``, ``k_proj_weight``, ``v_proj_weight`` where kdim or
    vdim differ), split into ``num_heads`` heads, attended (softmax(q k^T / sqrt(E / heads) + masks) v),
    joined and projected by ``out_proj``. ``forward(query, key, value, key_padding_mask=None,
    need_weights=True, attn_mask=None, average_attn_weights=True, is_causal=False)`` returns (output,
    weights or None); bool masks mark what may not be attended (True), float ones are added."""

    in_proj_weight: Optional[Parameter]
    q_proj_weight: Optional[Parameter]
    k_proj_weight: Optional[Parameter]
    v_proj_weight: Optional[Parameter]
    in_proj_bias: Optional[Parameter]
    bias_k: Optional[Parameter]
    bias_v: Optional[Parameter]

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0, bias: bool = True,
                 add_bias_kv: bool = False, add_zero_attn: bool = False, kdim: Optional[int] = None,
                 vdim: Optional[int] = None, batch_first: bool = False, device: Any = None, dtype: Any = None) -> None:
        _check_device(device, "MultiheadAttention")
        super().__init__()
        if embed_dim <= 0 or num_heads <= 0:
            raise ValueError(f"embed_dim and num_heads must be greater than 0, got embed_dim={embed_dim} and "
                             f"num_heads={num_heads} instead")
        if embed_dim % num_heads:
            raise AssertionError("embed_dim must be divisible by num_heads")
        self.embed_dim, self.num_heads, self.dropout, self.batch_first = embed_dim, num_heads, dropout, batch_first
        self.kdim = kdim if kdim is not None else embed_dim
        self.vdim = vdim if vdim is not None else embed_dim
        self._qkv_same_embed_dim = self.kdim == embed_dim and self.vdim == embed_dim
        self.head_dim = embed_dim // num_heads
        self.add_zero_attn = add_zero_attn
        if self._qkv_same_embed_dim:
            self.in_proj_weight = _empty((3 * embed_dim, embed_dim), dtype)
            self.register_parameter("q_proj_weight", None)
            self.register_parameter("k_proj_weight", None)
            self.register_parameter("v_proj_weight", None)
        else:
            self.q_proj_weight = _empty((embed_dim, embed_dim), dtype)
            self.k_proj_weight = _empty((embed_dim, self.kdim), dtype)
            self.v_proj_weight = _empty((embed_dim, self.vdim), dtype)
            self.register_parameter("in_proj_weight", None)
        if bias:
            self.in_proj_bias = _empty((3 * embed_dim,), dtype)
        else:
            self.register_parameter("in_proj_bias", None)
        self.out_proj = NonDynamicallyQuantizableLinear(embed_dim, embed_dim, bias=bias, dtype=dtype)
        if add_bias_kv:
            self.bias_k = _empty((1, 1, embed_dim), dtype)
            self.bias_v = _empty((1, 1, embed_dim), dtype)
        else:
            self.bias_k = self.bias_v = None
        self._reset_parameters()

    def _reset_parameters(self) -> None:
        """PyTorch's initialisation: xavier_uniform_ projections, zero biases, xavier_normal_ bias_k/bias_v."""
        weights = [self.in_proj_weight] if self._qkv_same_embed_dim else [
            self.q_proj_weight, self.k_proj_weight, self.v_proj_weight]
        for w in weights:
            assert w is not None
            init.xavier_uniform_(w)
        if self.in_proj_bias is not None and self.out_proj.bias is not None:
            init.constant_(self.in_proj_bias, 0.0)
            init.constant_(self.out_proj.bias, 0.0)
        if self.bias_k is not None:
            init.xavier_normal_(self.bias_k)
        if self.bias_v is not None:
            init.xavier_normal_(self.bias_v)

    def forward(self, query: Tensor, key: Tensor, value: Tensor, key_padding_mask: Any = None,
                need_weights: bool = True, attn_mask: Any = None, average_attn_weights: bool = True,
                is_causal: bool = False) -> Tuple[Tensor, Optional[Tensor]]:
        for what, t in (("query", query), ("key", key), ("value", value)):
            if not isinstance(t, Tensor):
                raise TypeError(f"MultiheadAttention: {what} must be a tapegrad Tensor, not {type(t).__name__}")
        batched = query.ndim == 3
        if query.ndim not in (2, 3) or key.ndim != query.ndim or value.ndim != query.ndim:
            raise ValueError(f"MultiheadAttention: query, key and value must all be 3-d (batched) or 2-d (unbatched), "
                             f"got shapes {query.shape}, {key.shape}, {value.shape}")
        if is_causal and attn_mask is None:
            raise RuntimeError("Need attn_mask if specifying the is_causal hint. You may use the Transformer module "
                               "method `generate_square_subsequent_mask` to create this mask.")
        if not batched:
            query, key, value = query.unsqueeze(1), key.unsqueeze(1), value.unsqueeze(1)
            if key_padding_mask is not None:
                key_padding_mask = np.asarray(_np(key_padding_mask))[None]
        elif self.batch_first:
            query, key, value = query.swapaxes(0, 1), key.swapaxes(0, 1), value.swapaxes(0, 1)
        L, N, E = query.shape
        if E != self.embed_dim:
            raise ValueError(f"MultiheadAttention: was expecting embedding dimension of {self.embed_dim}, but got {E}")
        H, hd = self.num_heads, self.head_dim
        b = self.in_proj_bias
        bq, bk, bv = (None, None, None) if b is None else (b[:E], b[E:2 * E], b[2 * E:])
        if self._qkv_same_embed_dim:
            assert self.in_proj_weight is not None
            w = self.in_proj_weight
            wq, wk, wv = w[:E], w[E:2 * E], w[2 * E:]
        else:  # (three separate projections: kdim or vdim differ)
            assert self.q_proj_weight is not None and self.k_proj_weight is not None and self.v_proj_weight is not None
            wq, wk, wv = self.q_proj_weight, self.k_proj_weight, self.v_proj_weight
        q, k, v = F.linear(query, wq, bq), F.linear(key, wk, bk), F.linear(value, wv, bv)
        # the masks as one additive float mask (N H or 1, L, S), -inf where attending is not allowed
        mask = _additive(attn_mask, "attn_mask", q.dtype)
        if mask is not None:
            S0 = key.shape[0]
            if mask.shape not in ((L, S0), (N * H, L, S0)):
                raise RuntimeError(f"MultiheadAttention: the attn_mask should be of size {(L, S0)} or "
                                   f"{(N * H, L, S0)}, got {mask.shape}")
            if mask.ndim == 2:
                mask = mask.unsqueeze(0)
        pad = _additive(key_padding_mask, "key_padding_mask", q.dtype)
        if self.bias_k is not None and self.bias_v is not None:
            k = concatenate([k, self.bias_k.expand(1, N, E)], 0)
            v = concatenate([v, self.bias_v.expand(1, N, E)], 0)
            mask = None if mask is None else F.pad(mask, (0, 1))
            pad = None if pad is None else F.pad(pad, (0, 1))
        q = q.reshape(L, N * H, hd).swapaxes(0, 1)
        k = k.reshape(k.shape[0], N * H, hd).swapaxes(0, 1)
        v = v.reshape(v.shape[0], N * H, hd).swapaxes(0, 1)
        if self.add_zero_attn:
            zeros = _core._full((N * H, 1, hd), 0.0, q.dtype, False)
            k, v = concatenate([k, zeros], 1), concatenate([v, zeros], 1)
            mask = None if mask is None else F.pad(mask, (0, 1))
            pad = None if pad is None else F.pad(pad, (0, 1))
        S = k.shape[1]
        if pad is not None:
            if pad.shape != (N, S):
                raise ValueError(f"MultiheadAttention: expecting key_padding_mask shape of {(N, S)}, but got "
                                 f"{pad.shape}")
            pad = pad.reshape(N, 1, 1, S).expand(N, H, 1, S).reshape(N * H, 1, S)
            mask = pad if mask is None else mask + pad
        scores = (q * math.sqrt(1.0 / hd)) @ k.swapaxes(-2, -1)
        if mask is not None:
            scores = scores + mask
        weights = F.softmax(scores, dim=-1)
        if self.dropout > 0.0 and self.training:
            weights = F.dropout(weights, self.dropout, True)
        out = (weights @ v).swapaxes(0, 1).reshape(L * N, E)
        out = self.out_proj(out).reshape(L, N, E)
        if self.batch_first and batched:
            out = out.swapaxes(0, 1)
        if not batched:
            out = out.squeeze(1)
        if not need_weights:
            return out, None
        w_out = weights.reshape(N, H, L, S)
        if average_attn_weights:
            w_out = w_out.mean(axis=1)
        return out, (w_out if batched else w_out.squeeze(0))


def _np(x: Any) -> Any:
    return x.numpy() if isinstance(x, Tensor) else x


def _additive(mask: Any, name: str, dtype: Any) -> Optional[Tensor]:
    """A mask as an additive float tensor: a bool mask's True (not allowed) is -inf."""
    bool_mask, float_mask = _mask_array(mask, f"MultiheadAttention: {name}")
    if bool_mask is not None:
        return _core.tensor(np.where(bool_mask, -np.inf, 0.0).astype(dtype))
    return float_mask


def _activation(activation: Union[str, Callable[[Tensor], Tensor]]) -> Callable[[Tensor], Tensor]:
    if activation == "relu":
        return F.relu
    if activation == "gelu":
        return F.gelu
    if callable(activation):
        return activation
    raise RuntimeError(f"activation should be relu/gelu, not {activation}")


class TransformerEncoderLayer(Module):
    """A Transformer encoder layer (``torch.nn.TransformerEncoderLayer``): self-attention and a feed-forward
    block (linear1, activation, dropout, linear2), each with dropout and a residual connection, and layer
    normalisation after each (or before, ``norm_first=True``). ``forward(src, src_mask=None,
    src_key_padding_mask=None, is_causal=False)``."""

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int = 2048, dropout: float = 0.1,
                 activation: Union[str, Callable[[Tensor], Tensor]] = "relu", layer_norm_eps: float = 1e-5,
                 batch_first: bool = False, norm_first: bool = False, bias: bool = True, device: Any = None,
                 dtype: Any = None) -> None:
        _check_device(device, "TransformerEncoderLayer")
        super().__init__()
        self.self_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias, batch_first=batch_first,
                                            dtype=dtype)
        self.linear1 = Linear(d_model, dim_feedforward, bias=bias, dtype=dtype)
        self.dropout = Dropout(dropout)
        self.linear2 = Linear(dim_feedforward, d_model, bias=bias, dtype=dtype)
        self.norm_first = norm_first
        self.norm1 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dtype)
        self.norm2 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dtype)
        self.dropout1 = Dropout(dropout)
        self.dropout2 = Dropout(dropout)
        self.activation = _activation(activation)

    def _sa_block(self, x: Tensor, attn_mask: Any, key_padding_mask: Any, is_causal: bool) -> Tensor:
        x = self.self_attn(x, x, x, attn_mask=attn_mask, key_padding_mask=key_padding_mask, need_weights=False,
                           is_causal=is_causal)[0]
        out: Tensor = self.dropout1(x)
        return out

    def _ff_block(self, x: Tensor) -> Tensor:
        out: Tensor = self.dropout2(self.linear2(self.dropout(self.activation(self.linear1(x)))))
        return out

    def forward(self, src: Tensor, src_mask: Any = None, src_key_padding_mask: Any = None,
                is_causal: bool = False) -> Tensor:
        x = src
        if self.norm_first:
            x = x + self._sa_block(self.norm1(x), src_mask, src_key_padding_mask, is_causal)
            return x + self._ff_block(self.norm2(x))
        x = self.norm1(x + self._sa_block(x, src_mask, src_key_padding_mask, is_causal))
        out: Tensor = self.norm2(x + self._ff_block(x))
        return out


class TransformerEncoder(Module):
    """A stack of ``num_layers`` copies of ``encoder_layer`` (``torch.nn.TransformerEncoder``), then ``norm``
    if given. ``forward(src, mask=None, src_key_padding_mask=None, is_causal=None)``."""

    def __init__(self, encoder_layer: TransformerEncoderLayer, num_layers: int, norm: Optional[Module] = None,
                 enable_nested_tensor: bool = True, mask_check: bool = True) -> None:
        super().__init__()
        self.layers = ModuleList([copy.deepcopy(encoder_layer) for _ in range(num_layers)])
        self.num_layers = num_layers
        self.norm = norm

    def forward(self, src: Tensor, mask: Any = None, src_key_padding_mask: Any = None,
                is_causal: Optional[bool] = None) -> Tensor:
        x = src
        for layer in self.layers:
            x = layer(x, src_mask=mask, src_key_padding_mask=src_key_padding_mask, is_causal=bool(is_causal))
        if self.norm is not None:
            x = self.norm(x)
        return x


def generate_square_subsequent_mask(sz: int, dtype: Any = None) -> Tensor:
    """The causal mask of ``sz`` positions: 0 on and below the diagonal, -inf above
    (``torch.nn.Transformer.generate_square_subsequent_mask``)."""
    a = np.triu(np.full((sz, sz), -np.inf), 1)
    return _core.tensor(a if dtype is None else a.astype(dtype))


__all__ = ["MultiheadAttention", "TransformerEncoderLayer", "TransformerEncoder", "scaled_dot_product_attention",
           "generate_square_subsequent_mask"]
