"""Attention (issue 23, part 5): F.scaled_dot_product_attention, nn.MultiheadAttention,
nn.TransformerEncoderLayer and nn.TransformerEncoder against PyTorch's from the same weights (every
option and mask kind), outputs, attention weights and gradients; sdpa's gradient against finite
differences; the errors.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List

import numpy as np
import pytest
from numpy.testing import assert_allclose

import tapegrad as tg
import tapegrad.nn.functional as F
from tapegrad import nn

TOL = dict(rtol=1e-10, atol=1e-12)


def _t(torch: Any, v: Any) -> Any:
    return torch.tensor(v) if isinstance(v, np.ndarray) else v


@pytest.mark.parametrize("kw", [{}, {"is_causal": True}, {"mask": "bool"}, {"mask": "float"}, {"scale": 0.3},
                                {"mask": "bool_broadcast"}, {"gqa": True}])
def test_sdpa_against_pytorch(kw: Dict[str, Any]) -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    S = 3 if kw.get("is_causal") else 5
    hk = 1 if kw.get("gqa") else 2
    q, k, v = rng.standard_normal((2, 2, 3, 4)), rng.standard_normal((2, hk, S, 4)), rng.standard_normal((2, hk, S, 6))
    args: Dict[str, Any] = {}
    if kw.get("mask") == "bool":
        m = rng.random((3, S)) < 0.5
        m[1] = False  # a query that may attend to nothing: zeros
        args["attn_mask"] = m
    elif kw.get("mask") == "bool_broadcast":
        args["attn_mask"] = rng.random((2, 1, 3, S)) < 0.7
    elif kw.get("mask") == "float":
        args["attn_mask"] = rng.standard_normal((3, S))
    if kw.get("is_causal"):
        args["is_causal"] = True
    if "scale" in kw:
        args["scale"] = kw["scale"]
    if kw.get("gqa"):
        args["enable_gqa"] = True
    ours = [tg.tensor(a, requires_grad=True) for a in (q, k, v)]
    theirs = [torch.tensor(a, requires_grad=True) for a in (q, k, v)]
    y = F.scaled_dot_product_attention(*ours, **args)
    ty = torch.nn.functional.scaled_dot_product_attention(*theirs, **{a: _t(torch, b) for a, b in args.items()})
    assert_allclose(y.numpy(), ty.detach().numpy(), **TOL)
    g = rng.standard_normal(y.shape)
    (y * tg.tensor(g)).sum().backward()
    (ty * torch.tensor(g)).sum().backward()
    for a, b in zip(ours, theirs):
        assert_allclose(a.grad.numpy(), b.grad.numpy(), **TOL)


def test_sdpa_gradient_against_finite_differences() -> None:
    rng = np.random.default_rng(1)
    arrays = [rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 5, 4)), rng.standard_normal((2, 5, 3))]
    mask = rng.standard_normal((3, 5))
    g = rng.standard_normal((2, 3, 3))

    def loss(values: List[np.ndarray]) -> float:
        with tg.no_grad():
            return float((F.scaled_dot_product_attention(*[tg.tensor(a) for a in values], attn_mask=tg.tensor(mask))
                          * tg.tensor(g)).sum().item())

    ts = [tg.tensor(a, requires_grad=True) for a in arrays]
    (F.scaled_dot_product_attention(*ts, attn_mask=tg.tensor(mask)) * tg.tensor(g)).sum().backward()
    h = 1e-6
    for k, a in enumerate(arrays):
        fd = np.zeros_like(a)
        for idx in np.ndindex(a.shape):
            up = [b.copy() for b in arrays]
            dn = [b.copy() for b in arrays]
            up[k][idx] += h
            dn[k][idx] -= h
            fd[idx] = (loss(up) - loss(dn)) / (2 * h)
        assert_allclose(ts[k].grad.numpy(), fd, rtol=1e-6, atol=1e-8)


MHA: List[Dict[str, Any]] = [
    {}, {"bias": False}, {"batch_first": True}, {"kdim": 4, "vdim": 6}, {"add_bias_kv": True},
    {"add_zero_attn": True, "kdim": 3}, {"add_bias_kv": True, "add_zero_attn": True, "batch_first": True},
]
CALLS: List[Dict[str, Any]] = [
    {}, {"key_padding_mask": "bool"}, {"attn_mask": "bool", "need_weights": False}, {"attn_mask": "float"},
    {"average_attn_weights": False, "key_padding_mask": "float"}, {"attn_mask": "heads"},
    {"attn_mask": "causal", "is_causal": True},
]


@pytest.mark.parametrize("options", MHA)
@pytest.mark.parametrize("call", CALLS)
def test_multihead_attention_against_pytorch(options: Dict[str, Any], call: Dict[str, Any]) -> None:
    torch = pytest.importorskip("torch")
    theirs = torch.nn.MultiheadAttention(8, 2, **options).double()
    ours = nn.MultiheadAttention(8, 2, **options)
    assert repr(ours) == repr(theirs) and list(ours.state_dict()) == list(theirs.state_dict())
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    rng = np.random.default_rng(2)
    L, S, N, bf = 3, 5, 2, options.get("batch_first", False)
    shape = (lambda n, e: (N, n, e)) if bf else (lambda n, e: (n, N, e))
    q = rng.standard_normal(shape(L, 8))
    k = rng.standard_normal(shape(S, options.get("kdim", 8)))
    v = rng.standard_normal(shape(S, options.get("vdim", 8)))
    args: Dict[str, Any] = {}
    for name, kind in call.items():
        if name in ("need_weights", "average_attn_weights", "is_causal"):
            args[name] = kind
        elif name == "key_padding_mask":
            m = rng.random((N, S)) < 0.3
            m[:, 0] = False
            args[name] = m if kind == "bool" else np.where(m, -1.5, 0.25)
        elif kind == "bool":
            m = rng.random((L, S)) < 0.3
            m[:, 0] = False
            args[name] = m
        elif kind == "float":
            args[name] = rng.standard_normal((L, S))
        elif kind == "heads":
            args[name] = rng.standard_normal((N * 2, L, S))
        elif kind == "causal":
            args[name] = np.triu(np.ones((L, S), dtype=bool), 1)
    ours_in = [tg.tensor(a, requires_grad=True) for a in (q, k, v)]
    theirs_in = [torch.tensor(a, requires_grad=True) for a in (q, k, v)]
    y, w = ours(*ours_in, **args)
    ty, tw = theirs(*theirs_in, **{a: _t(torch, b) for a, b in args.items()})
    assert_allclose(y.numpy(), ty.detach().numpy(), **TOL)
    assert (w is None) == (tw is None)
    loss = (y * tg.tensor(rng.standard_normal(y.shape))).sum()
    tloss = (ty * torch.tensor(np.random.default_rng(2).standard_normal(y.shape))).sum()
    if w is not None:
        assert_allclose(w.numpy(), tw.detach().numpy(), **TOL)
    # the same cotangent on both sides
    g = np.random.default_rng(3).standard_normal(y.shape)
    loss, tloss = (y * tg.tensor(g)).sum(), (ty * torch.tensor(g)).sum()
    loss.backward()
    tloss.backward()
    for a, b in zip(ours_in, theirs_in):
        assert_allclose(a.grad.numpy(), b.grad.numpy(), **TOL)
    for (name, p), (_, tp) in zip(ours.named_parameters(), theirs.named_parameters()):
        assert_allclose(p.grad.numpy(), tp.grad.numpy(), **TOL, err_msg=name)


def test_multihead_attention_unbatched_and_init() -> None:
    torch = pytest.importorskip("torch")
    theirs, ours = torch.nn.MultiheadAttention(6, 3).double(), nn.MultiheadAttention(6, 3)
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    x = np.random.default_rng(4).standard_normal((4, 6))
    y, w = ours(tg.tensor(x), tg.tensor(x), tg.tensor(x))
    ty, tw = theirs(torch.tensor(x), torch.tensor(x), torch.tensor(x))
    assert y.shape == (4, 6) and w.shape == (4, 4)
    assert_allclose(y.numpy(), ty.detach().numpy(), **TOL)
    assert_allclose(w.numpy(), tw.detach().numpy(), **TOL)
    fresh = nn.MultiheadAttention(6, 3)
    assert (fresh.in_proj_bias.numpy() == 0).all() and (fresh.out_proj.bias.numpy() == 0).all()
    bound = np.sqrt(6 / (6 + 18))  # xavier_uniform_ of (18, 6)
    assert np.abs(fresh.in_proj_weight.numpy()).max() <= bound


@pytest.mark.parametrize("options", [{}, {"norm_first": True}, {"activation": "gelu", "batch_first": True},
                                     {"bias": False}, {"activation": F.silu}])
@pytest.mark.parametrize("masks", [False, True])
def test_transformer_encoder_against_pytorch(options: Dict[str, Any], masks: bool) -> None:
    """Two stacked layers in eval mode (no dropout), a final LayerNorm: outputs and every gradient."""
    torch = pytest.importorskip("torch")
    topts = dict(options)
    if topts.get("activation") is F.silu:
        topts["activation"] = torch.nn.functional.silu
    tlayer = torch.nn.TransformerEncoderLayer(8, 2, 16, **topts)
    theirs = torch.nn.TransformerEncoder(tlayer, 2, norm=torch.nn.LayerNorm(8), enable_nested_tensor=False).double()
    ours = nn.TransformerEncoder(nn.TransformerEncoderLayer(8, 2, 16, **options), 2, norm=nn.LayerNorm(8))
    assert list(ours.state_dict()) == list(theirs.state_dict())
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    ours.eval()
    theirs.eval()
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 5, 8) if options.get("batch_first") else (5, 2, 8))
    args: Dict[str, Any] = {}
    if masks:
        args["mask"] = nn.transformer.generate_square_subsequent_mask(5).numpy()
        pad = np.zeros((2, 5), dtype=bool)
        pad[1, 3:] = True
        args["src_key_padding_mask"] = np.where(pad, -np.inf, 0.0)  # (one mask type: PyTorch warns on mixed)
    ox, tx = tg.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    y = ours(ox, **args)
    with torch.backends.mha.flags(enable_fastpath=False) if hasattr(torch.backends, "mha") and hasattr(
            torch.backends.mha, "flags") else _null():
        ty = theirs(tx, **{a: _t(torch, b) for a, b in args.items()})
    assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-9, atol=1e-11)
    g = rng.standard_normal(y.shape)
    (y * tg.tensor(g)).sum().backward()
    (ty * torch.tensor(g)).sum().backward()
    assert_allclose(ox.grad.numpy(), tx.grad.numpy(), rtol=1e-9, atol=1e-11)
    for (name, p), (_, tp) in zip(ours.named_parameters(), theirs.named_parameters()):
        assert_allclose(p.grad.numpy(), tp.grad.numpy(), rtol=1e-9, atol=1e-11, err_msg=name)


class _null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *a: Any) -> None:
        return None


def test_transformer_layer_repr_and_training_mode() -> None:
    torch = pytest.importorskip("torch")
    assert repr(nn.TransformerEncoderLayer(8, 2, 16)) == repr(torch.nn.TransformerEncoderLayer(8, 2, 16))
    tg.manual_seed(0)
    layer = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.5)
    x = tg.randn(5, 2, 8)
    assert not np.allclose(layer(x).numpy(), layer(x).numpy())  # dropout in training mode
    layer.eval()
    assert np.array_equal(layer(x).numpy(), layer(x).numpy())
    mask = nn.transformer.generate_square_subsequent_mask(3).numpy()
    assert mask.tolist() == [[0.0, -np.inf, -np.inf], [0.0, 0.0, -np.inf], [0.0, 0.0, 0.0]]


@pytest.mark.parametrize("call,error,message", [
    (lambda: nn.MultiheadAttention(8, 3), AssertionError, "embed_dim must be divisible by num_heads"),
    (lambda: nn.MultiheadAttention(8, 2)(tg.zeros(3, 2, 6), tg.zeros(3, 2, 6), tg.zeros(3, 2, 6)), ValueError,
     "was expecting embedding dimension of 8, but got 6"),
    (lambda: nn.MultiheadAttention(8, 2)(tg.zeros(3, 2, 8), tg.zeros(4, 2, 8), tg.zeros(4, 2, 8),
                                         attn_mask=np.zeros((3, 5), dtype=bool)), RuntimeError,
     "the attn_mask should be of size (3, 4) or (4, 3, 4), got (3, 5)"),
    (lambda: nn.MultiheadAttention(8, 2)(tg.zeros(3, 2, 8), tg.zeros(4, 2, 8), tg.zeros(4, 2, 8),
                                         key_padding_mask=np.zeros((2, 3), dtype=bool)), ValueError,
     "expecting key_padding_mask shape of (2, 4), but got (2, 3)"),
    (lambda: nn.MultiheadAttention(8, 2)(tg.zeros(3, 2, 8), tg.zeros(3, 2, 8), tg.zeros(3, 2, 8), is_causal=True),
     RuntimeError, "Need attn_mask if specifying the is_causal hint"),
    (lambda: F.scaled_dot_product_attention(tg.zeros(2, 3, 4), tg.zeros(2, 5, 3), tg.zeros(2, 5, 3)), ValueError,
     "query and key need one E"),
    (lambda: F.scaled_dot_product_attention(tg.zeros(3, 4), tg.zeros(3, 4), tg.zeros(3, 4),
                                            attn_mask=np.zeros((3, 3), dtype=np.int64)), TypeError,
     "only bool and floating types of masks are supported"),
    (lambda: nn.TransformerEncoderLayer(8, 2, activation="tanh"), RuntimeError, "activation should be relu/gelu"),
])
def test_errors_name_the_problem(call: Callable[[], Any], error: type, message: str) -> None:
    with pytest.raises(error) as e:
        call()
    assert message in str(e.value)
