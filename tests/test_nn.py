"""tapegrad.nn against torch.nn in float64: layers, activations and functional forms (values and gradients of
inputs and parameters to 1e-12), Module's machinery (registration, state_dict, repr, train/eval, to(dtype),
hooks, zero_grad), containers, init, gradient clipping, and micrograd's Neuron/Layer/MLP on the same Module.
The losses are in test_nn_losses.py."""

from __future__ import annotations

import copy
import math
import pickle
import random
from collections import OrderedDict
from typing import Any, Callable, Sequence

import numpy as np
import pytest

import tapegrad as tg
import tapegrad.random as tgr
from tapegrad import nn
from tapegrad.nn import functional as F
from tapegrad.nn import init
from tapegrad.nn.utils import (
    clip_grad_norm_,
    clip_grad_value_,
    get_total_norm,
    parameters_to_vector,
    vector_to_parameters,
)

torch = pytest.importorskip("torch")
TOL = dict(rtol=1e-12, atol=1e-12)


def rand(*shape: int, seed: int = 0, scale: float = 1.0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape) * scale


def copy_weights(ours: nn.Module, theirs: Any) -> None:
    """torch's state_dict (as arrays) into ours: the keys must match."""
    result = ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    assert result.missing_keys == [] and result.unexpected_keys == []


def compare(ours: Callable[..., Any], theirs: Callable[..., Any], *arrays: np.ndarray, grads: bool = True,
            params: Sequence[tuple[Any, Any]] = ()) -> None:
    """ours(*tensors) against theirs(*torch tensors): values, then the gradients (under a random cotangent) of
    the inputs and of the (ours, theirs) parameter pairs ``params``."""
    xs = [tg.tensor(a, requires_grad=grads) for a in arrays]
    ts = [torch.tensor(a, requires_grad=grads) for a in arrays]
    out, expected = ours(*xs), theirs(*ts)
    assert out.shape == tuple(expected.shape)
    np.testing.assert_allclose(out.numpy(), expected.detach().numpy(), **TOL)
    if not grads:
        return
    seed = rand(*expected.shape, seed=99)
    out.backward(tg.tensor(seed))
    expected.backward(torch.tensor(seed))
    for x, t in zip(xs, ts):
        np.testing.assert_allclose(x.grad.numpy(), t.grad.numpy(), **TOL)
    for p, q in params:
        np.testing.assert_allclose(p.grad.numpy(), q.grad.numpy(), **TOL)


def compare_module(ours: nn.Module, theirs: Any, *arrays: np.ndarray) -> None:
    copy_weights(ours, theirs)
    pairs = list(zip(ours.named_parameters(), theirs.named_parameters()))
    assert [a for (a, _), _ in pairs] == [b for _, (b, _) in pairs]
    assert len(pairs) == len(list(theirs.parameters()))
    compare(ours, theirs, *arrays, params=[(p, q) for (_, p), (_, q) in pairs])


# --- layers -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shape", [(5, 3), (3,), (2, 4, 3)])
def test_linear_matches_torch(bias: bool, shape: tuple[int, ...]) -> None:
    compare_module(nn.Linear(3, 4, bias=bias), torch.nn.Linear(3, 4, bias=bias, dtype=torch.float64), rand(*shape))


def test_linear_initialisation_is_torchs() -> None:
    tgr.manual_seed(0)
    layer = nn.Linear(400, 300)
    bound = 1 / math.sqrt(400)
    for p in (layer.weight, layer.bias):
        a = p.numpy()
        assert p.dtype == np.float64 and p.requires_grad and isinstance(p, nn.Parameter)
        assert np.abs(a).max() <= bound and np.abs(a).max() > 0.99 * bound
    w = layer.weight.numpy()
    assert layer.weight.shape == (300, 400) and layer.bias.shape == (300,)
    assert abs(w.mean()) < 0.01 * bound and abs(w.var() - bound**2 / 3) < 0.02 * bound**2
    assert nn.Linear(2, 3, dtype=np.float32).weight.dtype == np.float32
    assert nn.Linear(2, 3, bias=False).bias is None


def test_linear_is_reproducible_from_a_seed() -> None:
    tgr.manual_seed(5)
    a = nn.Linear(3, 2)
    tgr.manual_seed(5)
    b = nn.Linear(3, 2)
    c = nn.Linear(3, 2)
    np.testing.assert_array_equal(a.weight.numpy(), b.weight.numpy())
    assert not np.array_equal(b.weight.numpy(), c.weight.numpy())


ACTIVATIONS = [
    (nn.ReLU(), torch.nn.ReLU()),
    (nn.Tanh(), torch.nn.Tanh()),
    (nn.Sigmoid(), torch.nn.Sigmoid()),
    (nn.GELU(), torch.nn.GELU()),
    (nn.GELU("tanh"), torch.nn.GELU("tanh")),
    (nn.Softmax(dim=1), torch.nn.Softmax(dim=1)),
    (nn.Softmax(dim=0), torch.nn.Softmax(dim=0)),
    (nn.LogSoftmax(dim=-1), torch.nn.LogSoftmax(dim=-1)),
    (nn.LeakyReLU(), torch.nn.LeakyReLU()),
    (nn.LeakyReLU(0.2), torch.nn.LeakyReLU(0.2)),
    (nn.ELU(), torch.nn.ELU()),
    (nn.ELU(alpha=0.5), torch.nn.ELU(alpha=0.5)),
    (nn.Softplus(), torch.nn.Softplus()),
    (nn.Softplus(beta=2.0, threshold=3.0), torch.nn.Softplus(beta=2.0, threshold=3.0)),
    (nn.SiLU(), torch.nn.SiLU()),
    (nn.Identity(54, unused="x"), torch.nn.Identity(54, unused="x")),
    (nn.Flatten(), torch.nn.Flatten()),
    (nn.Flatten(0, 1), torch.nn.Flatten(0, 1)),
    (nn.Flatten(1, 2), torch.nn.Flatten(1, 2)),
    (nn.Flatten(-2, -1), torch.nn.Flatten(-2, -1)),
]


@pytest.mark.parametrize("ours,theirs", ACTIVATIONS, ids=[str(t) for _, t in ACTIVATIONS])
def test_activation_modules_match_torch(ours: nn.Module, theirs: Any) -> None:
    assert repr(ours) == repr(theirs)
    x = rand(3, 4, 5, scale=4.0)
    x[0, 0, :3] = [30.0, -30.0, 0.5]  # softplus' linear region, a saturated tanh
    compare(ours, theirs, x)


@pytest.mark.parametrize("p", [2.0, 1.0, 3.0, math.inf])
@pytest.mark.parametrize("dim", [1, 0, -1])
def test_normalize_matches_torch(p: float, dim: int) -> None:
    x = rand(4, 3)
    x[1] = 0.0  # a zero vector: clamped at eps, no NaN in the gradient
    compare(lambda t: F.normalize(t, p, dim), lambda t: torch.nn.functional.normalize(t, p, dim), x)


def test_functional_forms_match_torch() -> None:
    x, w, b = rand(5, 3), rand(4, 3, seed=1), rand(4, seed=2)
    tF = torch.nn.functional
    compare(F.linear, tF.linear, x, w, b)
    compare(F.linear, tF.linear, x, w)
    compare(F.logsigmoid, tF.logsigmoid, rand(6, scale=10))
    compare(lambda t: F.softmax(t, 0, dtype=np.float64), lambda t: tF.softmax(t, 0, dtype=torch.float64), x)
    compare(lambda t: F.layer_norm(t, (3,), eps=1e-3), lambda t: tF.layer_norm(t, (3,), eps=1e-3), x)
    compare(F.relu, tF.relu, x)
    compare(F.gelu, tF.gelu, x)


def test_functional_forms_reject_a_non_tensor_input() -> None:
    for fn in (F.relu, F.gelu, F.softmax, F.layer_norm, F.mse_loss, F.cross_entropy, F.binary_cross_entropy):
        with pytest.raises(TypeError, match=f"^{fn.__name__}: input must be a tapegrad Tensor, not list$"):
            fn([1.0, 2.0], [1.0, 2.0])
    with pytest.raises(TypeError, match="^relu: input must be a tapegrad Tensor, not list$"):
        nn.Sequential(nn.ReLU())([1.0])
    with pytest.raises(ValueError, match="dropout probability has to be between 0 and 1, but got x"):
        nn.Dropout("x")  # type: ignore[arg-type]


def test_softmax_without_dim_uses_torchs_implicit_choice_and_warns() -> None:
    for shape in [(4,), (2, 3), (2, 3, 4), (2, 3, 4, 5)]:
        x = rand(*shape)
        with pytest.warns(UserWarning, match="Implicit dimension choice for softmax"):
            ours = nn.Softmax()(tg.tensor(x)).numpy()
        with pytest.warns(UserWarning):
            expected = torch.nn.Softmax()(torch.tensor(x)).numpy()
        np.testing.assert_allclose(ours, expected, **TOL)


def test_one_hot_matches_torch() -> None:
    idx = np.array([[0, 2], [1, 4]])
    for n in (-1, 6):
        ours = F.one_hot(tg.tensor(idx), n)
        assert ours.dtype == np.int64
        np.testing.assert_array_equal(ours.numpy(), torch.nn.functional.one_hot(torch.tensor(idx), n).numpy())
    with pytest.raises(ValueError, match="smaller than num_classes"):
        F.one_hot(idx, 3)
    with pytest.raises(ValueError, match="non-negative"):
        F.one_hot(np.array([-1, 0]))
    with pytest.raises(TypeError, match="integer"):
        F.one_hot(tg.tensor([0.0, 1.0]))


@pytest.mark.parametrize("padding_idx", [None, 0, 2, -1])
def test_embedding_matches_torch(padding_idx: Any) -> None:
    theirs = torch.nn.Embedding(5, 3, padding_idx=padding_idx, dtype=torch.float64)
    ours = nn.Embedding(5, 3, padding_idx=padding_idx)
    assert repr(ours) == repr(theirs)
    with torch.no_grad():
        theirs.weight.copy_(torch.tensor(rand(5, 3)))  # a non-zero padding row: its value is kept, its grad is 0
    copy_weights(ours, theirs)
    idx = np.array([[0, 2, 4, 2], [1, 1, 0, 4]])
    out, expected = ours(tg.tensor(idx)), theirs(torch.tensor(idx))
    np.testing.assert_allclose(out.numpy(), expected.detach().numpy(), **TOL)
    seed = rand(2, 4, 3, seed=3)
    out.backward(tg.tensor(seed))
    expected.backward(torch.tensor(seed))
    np.testing.assert_allclose(ours.weight.grad.numpy(), theirs.weight.grad.numpy(), **TOL)
    np.testing.assert_allclose(ours(idx).numpy(), out.numpy(), **TOL)  # a NumPy index as well


def test_embedding_initialisation_and_from_pretrained() -> None:
    tgr.manual_seed(1)
    e = nn.Embedding(2000, 8, padding_idx=3)
    w = e.weight.numpy()
    assert (w[3] == 0).all() and abs(w.std() - 1) < 0.02 and abs(w.mean()) < 0.02
    pre = nn.Embedding.from_pretrained(tg.tensor(rand(4, 2)))
    assert not pre.weight.requires_grad and pre.weight.shape == (4, 2)
    assert repr(pre) == "Embedding(4, 2)"
    with pytest.raises(ValueError, match="padding_idx 5 must be within num_embeddings"):
        nn.Embedding(5, 2, padding_idx=5)
    with pytest.raises(TypeError, match="integer indices"):
        e(tg.tensor([0.0, 1.0]))


def test_embedding_max_norm_renormalises_like_torch() -> None:
    theirs = torch.nn.Embedding(4, 3, max_norm=1.0, dtype=torch.float64)
    ours = nn.Embedding(4, 3, max_norm=1.0)
    with torch.no_grad():
        theirs.weight.copy_(torch.tensor(rand(4, 3, scale=2.0)))
    copy_weights(ours, theirs)
    idx = np.array([0, 2, 2])
    np.testing.assert_allclose(ours(idx).numpy(), theirs(torch.tensor(idx)).detach().numpy(), **TOL)
    np.testing.assert_allclose(ours.weight.numpy(), theirs.weight.detach().numpy(), **TOL)  # rows 0, 2 renormed


@pytest.mark.parametrize("shape,affine,bias", [(5, True, True), ((4, 5), True, True), (5, False, True),
                                               (5, True, False)])
def test_layer_norm_matches_torch(shape: Any, affine: bool, bias: bool) -> None:
    theirs = torch.nn.LayerNorm(shape, elementwise_affine=affine, bias=bias, dtype=torch.float64)
    ours = nn.LayerNorm(shape, elementwise_affine=affine, bias=bias)
    assert repr(ours) == repr(theirs)
    with torch.no_grad():
        for p in theirs.parameters():
            p.copy_(torch.tensor(rand(*p.shape, seed=7)))
    compare_module(ours, theirs, rand(3, 4, 5, scale=3.0) + 2.0)


def test_layer_norm_rejects_a_mismatched_shape() -> None:
    with pytest.raises(ValueError, match=r"normalized_shape \(4,\) does not end the input's shape \(2, 3\)"):
        nn.LayerNorm(4)(tg.tensor(rand(2, 3)))


# --- dropout, train and eval -----------------------------------------------------------------------------------


def test_dropout_in_training_zeroes_about_p_and_scales_the_rest() -> None:
    tgr.manual_seed(0)
    drop = nn.Dropout(0.3)
    assert drop.training and repr(drop) == "Dropout(p=0.3, inplace=False)"
    x = tg.tensor(np.full((200, 500), 2.0), requires_grad=True)
    y = drop(x)
    out = y.numpy()
    zeroed = (out == 0).mean()
    assert abs(zeroed - 0.3) < 0.01
    np.testing.assert_allclose(out[out != 0], 2.0 / 0.7, rtol=1e-15)
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), (out != 0) / 0.7, rtol=1e-15)  # the same mask
    tgr.manual_seed(0)
    np.testing.assert_array_equal(nn.Dropout(0.3)(x).numpy(), out)  # the mask comes from tapegrad's RNG


def test_dropout_in_eval_and_at_the_extremes() -> None:
    x = tg.tensor(rand(4, 5))
    model = nn.Sequential(nn.Linear(5, 5), nn.Dropout(0.5))
    assert model.eval() is model
    assert not model.training and not model[1].training
    assert F.dropout(x, 0.5, training=False) is x
    assert nn.Dropout(0.9).eval()(x) is x
    np.testing.assert_array_equal(F.dropout(x, 1.0).numpy(), 0.0)
    assert F.dropout(x, 0.0) is x
    model.train()
    assert model.training and model[1].training
    for p in (-0.1, 1.5):
        with pytest.raises(ValueError, match=f"dropout probability has to be between 0 and 1, but got {p}"):
            nn.Dropout(p)
        with pytest.raises(ValueError, match="dropout probability"):
            F.dropout(x, p)
    with pytest.raises(ValueError, match="training mode is expected to be boolean"):
        model.train("yes")  # type: ignore[arg-type]


# --- Module machinery -------------------------------------------------------------------------------------------


def torch_mlp() -> Any:
    return torch.nn.Sequential(torch.nn.Linear(2, 16), torch.nn.ReLU(), torch.nn.Linear(16, 16), torch.nn.Tanh(),
                               torch.nn.LayerNorm(16), torch.nn.Linear(16, 1)).double()


def our_mlp() -> nn.Sequential:
    return nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 16), nn.Tanh(), nn.LayerNorm(16),
                         nn.Linear(16, 1))


def test_sequential_matches_torch_values_gradients_and_repr() -> None:
    ours, theirs = our_mlp(), torch_mlp()
    assert repr(ours) == str(theirs)
    assert str(ours).startswith("Sequential(\n  (0): Linear(in_features=2, out_features=16, bias=True)\n"
                                "  (1): ReLU()\n")
    assert list(ours.state_dict()) == list(theirs.state_dict())
    compare_module(ours, theirs, rand(7, 2))


def build_block(self: Any, lib: Any) -> None:
    """The same structure in tapegrad.nn or torch.nn: children, a ModuleList, a ModuleDict, a parameter, buffers."""
    def tensor(values: list[float]) -> Any:
        return torch.tensor(values, dtype=torch.float64) if lib is torch.nn else tg.tensor(values)

    self.proj = lib.Linear(3, 4)
    self.layers = lib.ModuleList([lib.Linear(4, 4), lib.Linear(4, 4), lib.Tanh()])
    self.heads = lib.ModuleDict({"a": lib.Linear(4, 2), "b": lib.Sequential(lib.ReLU(), lib.Linear(4, 2))})
    self.scale = lib.Parameter(tensor([1.5, -0.5]))
    self.register_buffer("offset", tensor([0.25, 0.75]))
    self.register_buffer("scratch", tensor([0.0]), persistent=False)


def block_forward(self: Any, x: Any) -> Any:
    h = self.proj(x)
    for layer in self.layers:
        h = layer(h)
    return (self.heads["a"](h) + self.heads["b"](h)) * self.scale + self.offset


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        build_block(self, nn)

    forward = block_forward


class TorchBlock(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        build_block(self, torch.nn)

    forward = block_forward


def test_a_nested_module_matches_torch() -> None:
    ours, theirs = Block(), TorchBlock().double()
    assert repr(ours) == repr(theirs).replace("TorchBlock", "Block")
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert "scratch" not in ours.state_dict() and [n for n, _ in ours.named_buffers()] == ["offset", "scratch"]
    assert [n for n, _ in ours.named_modules()] == [n for n, _ in theirs.named_modules()]
    assert [n for n, _ in ours.named_children()] == ["proj", "layers", "heads"]
    assert [type(m).__name__ for m in ours.children()] == ["Linear", "ModuleList", "ModuleDict"]
    assert len(list(ours.modules())) == len(list(theirs.modules()))
    assert ours.get_submodule("heads.b.1") is ours.heads["b"][1]
    compare_module(ours, theirs, rand(5, 3))


def test_state_dict_round_trip_and_torch_checkpoint() -> None:
    a, b = our_mlp(), our_mlp()
    sd = a.state_dict()
    assert isinstance(sd, OrderedDict) and all(not v.requires_grad for v in sd.values())
    b.load_state_dict(sd)
    x = tg.tensor(rand(3, 2))
    np.testing.assert_array_equal(a(x).numpy(), b(x).numpy())
    assert b[0].weight is not sd["0.weight"]  # values copied into b's own parameters
    theirs = torch_mlp()
    a.load_state_dict(theirs.state_dict())  # torch tensors directly
    np.testing.assert_allclose(a(x).numpy(), theirs(torch.tensor(x.numpy())).detach().numpy(), **TOL)


def test_load_state_dict_errors_like_torch() -> None:
    model = our_mlp()
    sd = model.state_dict()
    del sd["2.bias"]
    sd["9.weight"] = np.zeros(2)
    sd["0.weight"] = np.zeros((3, 3))
    with pytest.raises(RuntimeError) as info:
        model.load_state_dict(sd)
    assert str(info.value) == (
        "Error(s) in loading state_dict for Sequential:\n"
        '\tMissing key(s) in state_dict: "2.bias". \n'
        '\tUnexpected key(s) in state_dict: "9.weight". \n'
        "\tsize mismatch for 0.weight: copying a param with shape (3, 3) from checkpoint, "
        "the shape in current model is (16, 2).")
    before = model[2].weight.numpy().copy()
    del sd["0.weight"]
    sd["2.weight"] = np.ones((16, 16))
    result = model.load_state_dict(sd, strict=False)
    assert result.missing_keys == ["0.weight", "2.bias"] and result.unexpected_keys == ["9.weight"]
    assert (model[2].weight.numpy() == 1).all() and not (before == 1).all()
    with pytest.raises(TypeError, match="dict-like"):
        model.load_state_dict([1, 2])  # type: ignore[arg-type]


def test_registration_rules() -> None:
    m = nn.Linear(2, 2)
    with pytest.raises(TypeError, match="cannot assign 'Tensor' as parameter 'weight'"):
        m.weight = tg.zeros(2, 2)
    m.bias = None
    assert m.bias is None and "bias" not in m.state_dict()
    m.extra = nn.Parameter(tg.ones(3))
    assert [n for n, _ in m.named_parameters()] == ["weight", "extra"]
    del m.extra
    assert [n for n, _ in m.named_parameters()] == ["weight"]
    m.child = nn.ReLU()
    assert list(m.state_dict()) == ["weight"] and [n for n, _ in m.named_children()] == ["child"]
    m.child = nn.Tanh()
    assert type(m.child).__name__ == "Tanh"
    with pytest.raises(TypeError, match="cannot assign 'int' as child module 'child'"):
        m.child = 3
    with pytest.raises(AttributeError, match="'Linear' object has no attribute 'nothing'"):
        m.nothing  # noqa: B018
    with pytest.raises(KeyError, match="attribute 'weight' already exists"):
        m.register_buffer("weight", tg.zeros(1))

    class Late(nn.Module):
        def __init__(self) -> None:
            self.p = nn.Parameter(tg.ones(1))

    with pytest.raises(AttributeError, match="cannot assign parameter before Module.__init__"):
        Late()
    with pytest.raises(NotImplementedError, match='missing the required "forward"'):
        nn.Module()(1)


def test_shared_parameters_are_listed_once() -> None:
    layer = nn.Linear(2, 2)
    model = nn.Sequential(layer, nn.ReLU(), layer)
    assert len(list(model.parameters())) == 2
    assert list(model.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]  # as torch: both names


def test_zero_grad() -> None:
    model = our_mlp()
    model(tg.tensor(rand(3, 2))).sum().backward()
    model.zero_grad(set_to_none=False)
    for p in model.parameters():
        assert p.grad is not None and p.grad.shape == p.shape and (p.grad.numpy() == 0).all()
    model(tg.tensor(rand(3, 2))).sum().backward()
    assert any((p.grad.numpy() != 0).any() for p in model.parameters())
    model.zero_grad()
    assert all(p.grad is None for p in model.parameters())


def test_apply_requires_grad_and_train_flags() -> None:
    model = our_mlp()
    seen: list[str] = []
    assert model.apply(lambda m: seen.append(type(m).__name__)) is model
    assert seen == ["Linear", "ReLU", "Linear", "Tanh", "LayerNorm", "Linear", "Sequential"]  # children first
    model.requires_grad_(False)
    assert not any(p.requires_grad for p in model.parameters())
    model.requires_grad_()
    assert all(p.requires_grad for p in model.parameters())
    assert all(m.training for m in model.modules())
    model.eval()
    assert not any(m.training for m in model.modules())


def test_forward_hooks() -> None:
    model = nn.Linear(2, 2)
    calls: list[str] = []
    pre = model.register_forward_pre_hook(lambda m, args: (args[0] * 0.0,))
    post = model.register_forward_hook(lambda m, args, out: calls.append("post") or out + 1.0)
    x = tg.tensor(rand(3, 2))
    expected = np.broadcast_to(model.bias.numpy() + 1.0, (3, 2))
    np.testing.assert_allclose(model(x).numpy(), expected, **TOL)
    assert calls == ["post"]
    pre.remove()
    post.remove()
    np.testing.assert_allclose(model(x).numpy(), x.numpy() @ model.weight.numpy().T + model.bias.numpy(), **TOL)
    assert calls == ["post"]
    with model.register_forward_hook(lambda m, args, out: out * 0.0):
        assert (model(x).numpy() == 0).all()
    assert (model(x).numpy() != 0).any()


def test_to_dtype_replaces_parameters() -> None:
    shared = nn.Linear(2, 3)
    model = nn.Sequential(shared, nn.Tanh(), nn.Linear(3, 2), nn.Sequential(shared))
    model.extra = nn.CrossEntropyLoss(weight=tg.ones(2))
    x64 = tg.tensor(rand(4, 2))
    shared(x64).sum().backward()
    old = shared.weight
    assert model.float() is model
    assert shared.weight is not old and isinstance(shared.weight, nn.Parameter)
    assert model[3][0].weight is shared.weight  # sharing kept
    assert all(p.dtype == np.float32 and p.requires_grad for p in model.parameters())
    assert shared.weight.grad.dtype == np.float32
    np.testing.assert_allclose(shared.weight.grad.numpy(), old.grad.numpy(), rtol=1e-6)
    assert model.extra.weight.dtype == np.float32
    out = model[:3](tg.tensor(rand(4, 2), dtype=np.float32))
    assert out.dtype == np.float32
    model.to(tg.float64)
    assert all(p.dtype == np.float64 for p in model.parameters())
    assert model.to("cpu") is model and model.cpu() is model
    model.to(tg.tensor([1.0], dtype=np.float32))
    assert shared.bias.dtype == np.float32
    with pytest.raises(TypeError, match="only accepts floating point dtypes"):
        model.to(np.int64)
    with pytest.raises(RuntimeError, match="no device 'cuda'"):
        model.to("cuda")


def test_parameter() -> None:
    p = nn.Parameter(tg.tensor([1.0, 2.0]))
    assert isinstance(p, tg.Tensor) and p.requires_grad and p.is_leaf
    assert repr(p) == "Parameter containing:\ntensor([1., 2.], requires_grad=True)"
    assert str(p) == repr(p)
    empty = nn.Parameter()
    assert empty.shape == (0,) and empty.dtype == np.float64
    assert not nn.Parameter(np.ones(2), requires_grad=False).requires_grad
    restored = pickle.loads(pickle.dumps(p))
    assert isinstance(restored, nn.Parameter) and restored.tolist() == [1.0, 2.0] and restored.requires_grad


def test_deepcopy_of_a_model() -> None:
    model = our_mlp()
    clone = copy.deepcopy(model)
    assert isinstance(clone[0].weight, nn.Parameter) and clone[0].weight is not model[0].weight
    x = tg.tensor(rand(2, 2))
    np.testing.assert_array_equal(clone(x).numpy(), model(x).numpy())


def test_sequential_container_operations() -> None:
    relu, tanh, lin = nn.ReLU(), nn.Tanh(), nn.Linear(2, 2)
    seq = nn.Sequential(lin, relu, tanh)
    assert len(seq) == 3 and seq[0] is lin and seq[-1] is tanh and list(seq) == [lin, relu, tanh]
    tail = seq[1:]
    assert isinstance(tail, nn.Sequential) and list(tail) == [relu, tanh]
    assert list(tail.state_dict()) == [] and [n for n, _ in tail.named_children()] == ["1", "2"]  # keys kept
    seq.append(nn.Sigmoid())
    assert [n for n, _ in seq.named_children()] == ["0", "1", "2", "3"]
    del seq[1]
    assert [type(m).__name__ for m in seq] == ["Linear", "Tanh", "Sigmoid"]
    seq.insert(0, nn.Identity())
    assert [n for n, _ in seq.named_children()] == ["0", "1", "2", "3"] and seq[1] is lin
    seq[0] = relu
    assert seq[0] is relu
    with pytest.raises(IndexError, match="index 7 is out of range for a Sequential of length 4"):
        seq[7]  # noqa: B018
    named = nn.Sequential(OrderedDict([("fc", nn.Linear(2, 3)), ("act", nn.ReLU())]))
    theirs = torch.nn.Sequential(OrderedDict([("fc", torch.nn.Linear(2, 3)), ("act", torch.nn.ReLU())]))
    assert repr(named) == repr(theirs) and list(named.state_dict()) == ["fc.weight", "fc.bias"]
    assert named.fc is named[0]
    assert repr(nn.Sequential()) == "Sequential()"


def test_module_list_and_dict() -> None:
    layers = nn.ModuleList([nn.ReLU(), nn.ReLU(), nn.Tanh(), nn.Linear(2, 2)])
    theirs = torch.nn.ModuleList([torch.nn.ReLU(), torch.nn.ReLU(), torch.nn.Tanh(), torch.nn.Linear(2, 2)])
    assert repr(layers) == repr(theirs)
    assert repr(nn.ModuleList()) == "ModuleList()"
    assert len(layers) == 4 and isinstance(layers[1:3], nn.ModuleList) and len(layers[1:3]) == 2
    del layers[0]
    assert [n for n, _ in layers.named_children()] == ["0", "1", "2"] and type(layers[1]).__name__ == "Tanh"
    layers += [nn.Sigmoid()]
    layers.insert(1, nn.Identity())
    assert [type(m).__name__ for m in layers] == ["ReLU", "Identity", "Tanh", "Linear", "Sigmoid"]
    assert list(layers.state_dict()) == ["3.weight", "3.bias"]
    with pytest.raises(TypeError, match="iterable"):
        layers.extend(nn.ReLU())
    heads = nn.ModuleDict({"x": nn.Linear(1, 1)})
    heads["y"] = nn.ReLU()
    heads.update([("z", nn.Tanh())])
    assert list(heads) == ["x", "y", "z"] and "y" in heads and len(heads) == 3
    assert type(heads.pop("y")).__name__ == "ReLU" and list(heads.keys()) == ["x", "z"]
    assert [n for n, _ in heads.items()] == ["x", "z"] and len(list(heads.values())) == 2
    assert list(heads.state_dict()) == ["x.weight", "x.bias"]


# --- micrograd's modules on the same Module -----------------------------------------------------------------


def test_micrograd_modules_are_modules_and_zero_grad_sets_zero() -> None:
    mlp = nn.MLP(3, [4, 1])
    assert isinstance(mlp, nn.Module) and isinstance(nn.Neuron(2), nn.Module) and isinstance(nn.Layer(2, 2), nn.Module)
    assert len(mlp.parameters()) == 4 * 4 + 5
    out = mlp([1.0, -2.0, 0.5])
    out.backward()
    assert any(p.grad != 0.0 for p in mlp.parameters())
    mlp.zero_grad()
    assert all(p.grad == 0.0 and isinstance(p.grad, float) for p in mlp.parameters())
    assert mlp.eval() is mlp and not mlp.training and mlp.train().training
    assert mlp.state_dict() == OrderedDict()
    assert repr(nn.Neuron(2)) == "ReLUNeuron(2)"


# --- init -------------------------------------------------------------------------------------------------------


def test_calculate_gain_and_fans_match_torch() -> None:
    for name in ["linear", "conv2d", "sigmoid", "tanh", "relu", "leaky_relu", "selu"]:
        assert init.calculate_gain(name) == torch.nn.init.calculate_gain(name)
    assert init.calculate_gain("leaky_relu", 0.2) == torch.nn.init.calculate_gain("leaky_relu", 0.2)
    with pytest.raises(ValueError, match="Unsupported nonlinearity foo"):
        init.calculate_gain("foo")
    with pytest.raises(ValueError, match="not a valid number"):
        init.calculate_gain("leaky_relu", "x")  # type: ignore[arg-type]
    for shape in [(3, 4), (5, 2, 3, 3)]:
        assert init._calculate_fan_in_and_fan_out(tg.zeros(shape)) == \
            torch.nn.init._calculate_fan_in_and_fan_out(torch.zeros(shape))
    with pytest.raises(ValueError, match="fewer than 2 dimensions"):
        init._calculate_fan_in_and_fan_out(tg.zeros(3))


def test_init_functions() -> None:
    t = tg.zeros((600, 500), requires_grad=True)
    for fn, bound in [(init.xavier_uniform_, math.sqrt(6 / 1100)), (init.kaiming_uniform_, math.sqrt(6 / 500)),
                      (lambda x: init.kaiming_uniform_(x, mode="fan_out", nonlinearity="relu"), math.sqrt(6 / 600)),
                      (lambda x: init.uniform_(x, -0.3, 0.3), 0.3)]:
        assert fn(t) is t
        a = t.numpy()
        assert np.abs(a).max() <= bound and np.abs(a).max() > 0.99 * bound
        assert abs(a.std() - bound / math.sqrt(3)) < 0.01 * bound
    for fn, std in [(init.xavier_normal_, math.sqrt(2 / 1100)), (init.kaiming_normal_, math.sqrt(2 / 500)),
                    (lambda x: init.normal_(x, 1.0, 0.5), 0.5)]:
        fn(t)
        assert abs(t.numpy().std() - std) < 0.01 * std
    assert abs(t.numpy().mean() - 1.0) < 0.01 and t.requires_grad and t.is_leaf and t.grad is None
    np.testing.assert_array_equal(init.constant_(t, 0.5).numpy(), 0.5)
    np.testing.assert_array_equal(init.ones_(t).numpy(), 1.0)
    np.testing.assert_array_equal(init.zeros_(t).numpy(), 0.0)
    np.testing.assert_array_equal(init.eye_(tg.zeros((2, 3))).numpy(), np.eye(2, 3))
    f32 = init.normal_(tg.zeros(3, dtype=np.float32))
    assert f32.dtype == np.float32
    with pytest.raises(ValueError, match="Mode fan_avg not supported"):
        init.kaiming_uniform_(t, mode="fan_avg")
    with pytest.raises(TypeError, match="tapegrad.random.Generator"):
        init.uniform_(t, generator=np.random.default_rng())
    g1, g2 = tgr.Generator().manual_seed(3), tgr.Generator().manual_seed(3)
    np.testing.assert_array_equal(init.normal_(tg.zeros(4), generator=g1).numpy(),
                                  init.normal_(tg.zeros(4), generator=g2).numpy())
    with pytest.warns(UserWarning, match="zero-element"):
        init.kaiming_uniform_(tg.zeros((0, 3)))


# --- gradient clipping ------------------------------------------------------------------------------------------


def grads_pair(seed: int = 0, scale: float = 1.0) -> tuple[list[tg.Tensor], list[Any]]:
    shapes = [(3, 4), (5,), (2, 2, 2)]
    ours = [tg.tensor(rand(*s, seed=seed + i), requires_grad=True) for i, s in enumerate(shapes)]
    theirs = [torch.tensor(rand(*s, seed=seed + i), requires_grad=True) for i, s in enumerate(shapes)]
    for i, (p, q) in enumerate(zip(ours, theirs)):
        g = rand(*p.shape, seed=10 + i, scale=scale)
        p.grad, q.grad = tg.tensor(g), torch.tensor(g)
    return ours, theirs


@pytest.mark.parametrize("norm_type", [2.0, 1.0, math.inf, 3.0, "inf"])
@pytest.mark.parametrize("max_norm", [0.5, 1e6])
def test_clip_grad_norm_matches_torch(norm_type: Any, max_norm: float) -> None:
    ours, theirs = grads_pair()
    extra = tg.tensor([1.0], requires_grad=True)  # no grad: skipped
    total = clip_grad_norm_(iter(ours + [extra]), max_norm, norm_type)
    expected = torch.nn.utils.clip_grad_norm_(theirs, max_norm, norm_type)
    assert isinstance(total, tg.Tensor) and total.shape == ()
    np.testing.assert_allclose(total.item(), expected.item(), **TOL)
    for p, q in zip(ours, theirs):
        np.testing.assert_allclose(p.grad.numpy(), q.grad.numpy(), **TOL)
    assert extra.grad is None
    if max_norm == 1e6:
        np.testing.assert_array_equal(ours[0].grad.numpy(), rand(3, 4, seed=10))  # unchanged


def test_clip_grad_norm_details() -> None:
    ours, _ = grads_pair()
    total = get_total_norm(ours)
    assert clip_grad_norm_(ours[0], 0.1).item() == pytest.approx(np.linalg.norm(rand(3, 4, seed=10)), rel=1e-14)
    assert get_total_norm(ours).item() < total.item()
    assert clip_grad_norm_([], 1.0).item() == 0.0
    ours[1].grad = tg.tensor([np.inf, 0, 0, 0, 0])
    with pytest.raises(RuntimeError, match="non-finite"):
        clip_grad_norm_(ours, 1.0, error_if_nonfinite=True)
    with pytest.raises(TypeError, match="Tensors or Vars"):
        clip_grad_norm_([np.ones(2)], 1.0)


def test_clip_grad_on_micrograds_vars_by_hand() -> None:
    random.seed(0)
    mlp = nn.MLP(2, [3, 1])
    mlp([0.5, -1.5]).backward()
    grads = np.array([p.grad for p in mlp.parameters()])
    norm = math.sqrt(float((grads**2).sum()))
    assert norm > 0.01
    total = clip_grad_norm_(mlp.parameters(), 0.01)
    assert total.item() == pytest.approx(norm, rel=1e-14)
    coef = 0.01 / (norm + 1e-6)
    np.testing.assert_allclose([p.grad for p in mlp.parameters()], grads * coef, rtol=1e-14)
    assert all(isinstance(p.grad, float) for p in mlp.parameters())
    assert clip_grad_norm_(mlp.parameters(), 1.0, norm_type=math.inf).item() == pytest.approx(
        np.abs(grads * coef).max(), rel=1e-14)
    clip_grad_value_(mlp.parameters(), 1e-3)
    np.testing.assert_allclose([p.grad for p in mlp.parameters()], np.clip(grads * coef, -1e-3, 1e-3), rtol=1e-14)


def test_clip_grad_value_matches_torch() -> None:
    ours, theirs = grads_pair()
    clip_grad_value_(ours, 0.5)
    torch.nn.utils.clip_grad_value_(theirs, 0.5)
    for p, q in zip(ours, theirs):
        np.testing.assert_array_equal(p.grad.numpy(), q.grad.numpy())
    assert (np.abs(ours[0].grad.numpy()) == 0.5).any()


def test_parameters_to_vector_and_back() -> None:
    model, theirs = our_mlp(), torch_mlp()
    copy_weights(model, theirs)
    vec = parameters_to_vector(model.parameters())
    expected = torch.nn.utils.parameters_to_vector(theirs.parameters())
    np.testing.assert_array_equal(vec.numpy(), expected.detach().numpy())
    vector_to_parameters(vec * 2.0, model.parameters())
    np.testing.assert_array_equal(model[0].weight.numpy(), 2 * theirs[0].weight.detach().numpy())
    assert isinstance(model[0].weight, nn.Parameter)
    with pytest.raises(ValueError, match="vec has shape"):
        vector_to_parameters(vec[:3], model.parameters())
    with pytest.raises(TypeError, match="expected a tapegrad Tensor"):
        vector_to_parameters(vec.numpy(), model.parameters())  # type: ignore[arg-type]
