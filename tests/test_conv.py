"""Convolution, padding and pooling (issue 23, part 5): F.conv1d/2d/3d, conv_transpose1d/2d/3d, pad,
max_pool, avg_pool and adaptive_avg_pool in 1, 2 and 3 dimensions, and their nn layers. Outputs and
gradients against PyTorch's from the same weights (float64, every option), gradients and
second derivatives against central finite differences, tangents (jvp) against finite
differences, LeNet-5 trained side by side with PyTorch's, and the errors.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Sequence, Tuple

import numpy as np
import pytest
from numpy.testing import assert_allclose

import tapegrad as tg
import tapegrad.nn.functional as F
from tapegrad import nn


def _against_torch(fn: str, arrays: Sequence[np.ndarray], kwargs: Dict[str, Any], tol: float = 1e-12,
                   out_index: int = -1) -> None:
    """fn(*arrays, **kwargs) in tapegrad and in PyTorch (float64): the outputs, and the gradients of
    sum(out * g) with respect to every array."""
    torch = pytest.importorskip("torch")
    ours = [tg.tensor(a, requires_grad=True) for a in arrays]
    theirs = [torch.tensor(a, requires_grad=True) for a in arrays]
    y = getattr(F, fn)(*ours, **kwargs)
    ty = getattr(torch.nn.functional, fn)(*theirs, **kwargs)
    if isinstance(ty, tuple):
        assert (y[1].numpy() == ty[1].numpy()).all(), "the indices differ"
        assert y[1].dtype == np.int64
        y, ty = y[0], ty[0]
    assert y.shape == tuple(ty.shape), (y.shape, tuple(ty.shape))
    assert_allclose(y.numpy(), ty.detach().numpy(), rtol=tol, atol=tol)
    g = np.random.default_rng(5).standard_normal(y.shape)
    (y * tg.tensor(g)).sum().backward()
    (ty * torch.tensor(g)).sum().backward()
    for k, (a, b) in enumerate(zip(ours, theirs)):
        assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=tol, atol=tol, err_msg=f"gradient of operand {k}")


def _rand(*shape: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed + sum(shape)).standard_normal(shape)


# --- convolutions against PyTorch -----------------------------------------------------------------------------

CONV2D: List[Tuple[Tuple[int, int, int], Tuple[int, int], Dict[str, Any]]] = [
    ((3, 6, 1), (5, 5), {}),
    ((4, 6, 2), (3, 2), {"stride": (2, 1), "padding": (1, 2), "dilation": (1, 2), "groups": 2}),
    ((2, 4, 1), (3, 3), {"stride": 2, "padding": 1, "dilation": 2}),
    ((4, 4, 4), (3, 3), {"padding": 1, "groups": 4}),  # depthwise
    ((2, 3, 1), (3, 3), {"padding": "same"}),
    ((2, 3, 1), (2, 4), {"padding": "same", "dilation": (2, 1)}),  # even kernels: the extra zero goes after
    ((2, 3, 1), (3, 3), {"padding": "valid"}),
    ((2, 3, 1), (1, 1), {}),
]


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")  # (PyTorch's, about its own copy)
@pytest.mark.parametrize("channels,kernel,kwargs", CONV2D)
@pytest.mark.parametrize("bias", [True, False])
def test_conv2d_against_pytorch(channels: Tuple[int, int, int], kernel: Tuple[int, int], kwargs: Dict[str, Any],
                                bias: bool) -> None:
    c, o, g = channels
    arrays = [_rand(2, c, 9, 8), _rand(o, c // g, *kernel, seed=1)] + ([_rand(o, seed=2)] if bias else [])
    _against_torch("conv2d", arrays, kwargs)


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
@pytest.mark.parametrize("fn,x,w,kwargs", [
    ("conv1d", (2, 3, 11), (4, 3, 3), {"stride": 2, "padding": 1}),
    ("conv1d", (3, 10), (4, 3, 4), {"dilation": 2, "padding": "same"}),  # unbatched
    ("conv1d", (1, 4, 7), (2, 2, 1), {"groups": 2}),
    ("conv2d", (3, 6, 5), (2, 3, 3, 3), {"padding": 1}),  # unbatched
    ("conv3d", (1, 2, 5, 4, 6), (3, 2, 2, 3, 2), {"stride": (1, 2, 1), "padding": (1, 0, 1)}),
    ("conv3d", (2, 4, 3, 3, 3), (2, 2, 3, 1, 2), {"groups": 2, "dilation": (1, 1, 2)}),
])
def test_conv_1d_3d_and_unbatched_against_pytorch(fn: str, x: Tuple[int, ...], w: Tuple[int, ...],
                                                  kwargs: Dict[str, Any]) -> None:
    _against_torch(fn, [_rand(*x), _rand(*w, seed=1), _rand(w[0], seed=2)], kwargs)


@pytest.mark.parametrize("fn,x,w,kwargs", [
    ("conv_transpose2d", (2, 3, 4, 5), (3, 2, 3, 3), {}),
    ("conv_transpose2d", (2, 3, 4, 5), (3, 2, 3, 3), {"stride": 2, "padding": 1, "output_padding": 1}),
    ("conv_transpose2d", (1, 4, 3, 3), (4, 3, 2, 3), {"stride": (2, 3), "groups": 2, "dilation": (2, 1),
                                                       "output_padding": (1, 2)}),
    ("conv_transpose2d", (1, 2, 5, 5), (2, 1, 4, 4), {"stride": 2, "padding": 1}),  # the DCGAN upsampling
    ("conv_transpose2d", (2, 3, 3), (2, 2, 3, 3), {"stride": 2}),  # unbatched
    ("conv_transpose1d", (2, 3, 6), (3, 2, 3), {"stride": 3, "padding": 2, "output_padding": 2}),
    ("conv_transpose3d", (1, 2, 3, 2, 3), (2, 2, 2, 2, 2), {"stride": 2, "padding": (0, 1, 0)}),
])
@pytest.mark.parametrize("bias", [True, False])
def test_conv_transpose_against_pytorch(fn: str, x: Tuple[int, ...], w: Tuple[int, ...], kwargs: Dict[str, Any],
                                        bias: bool) -> None:
    groups = kwargs.get("groups", 1)
    arrays = [_rand(*x), _rand(*w, seed=1)] + ([_rand(w[1] * groups, seed=2)] if bias else [])
    _against_torch(fn, arrays, kwargs)


def test_conv_float32_against_pytorch() -> None:
    torch = pytest.importorskip("torch")
    x, w, b = _rand(2, 3, 8, 8).astype(np.float32), _rand(4, 3, 3, 3, seed=1).astype(np.float32), \
        _rand(4, seed=2).astype(np.float32)
    y = F.conv2d(tg.tensor(x), tg.tensor(w), tg.tensor(b), padding=1)
    assert y.dtype == np.float32
    assert_allclose(y.numpy(), torch.nn.functional.conv2d(torch.tensor(x), torch.tensor(w), torch.tensor(b),
                                                          padding=1).numpy(), rtol=1e-5, atol=1e-5)


# --- padding --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("pad,mode,value", [
    ((1, 2), "constant", None), ((1, 2, 0, 3), "constant", 1.5), ((-1, 2, 1, -2), "constant", None),
    ((2, 1, 1, 2), "reflect", None), ((3, 0, 2, 1), "replicate", None), ((2, 3, 1, 1), "circular", None),
    ((1, 1, 1, 1, 1, 0), "replicate", None),
])
def test_pad_against_pytorch(pad: Tuple[int, ...], mode: str, value: Any) -> None:
    _against_torch("pad", [_rand(2, 3, 4, 5)], {"pad": pad, "mode": mode, "value": value})


def test_pad_integer_tensors_and_errors() -> None:
    x = tg.tensor(np.arange(6).reshape(2, 3))
    assert F.pad(x, (1, 0), value=7).numpy().tolist() == [[7, 0, 1, 2], [7, 3, 4, 5]]
    with pytest.raises(ValueError, match="pad: pad \\(1, 2, 3\\) must hold \\(before, after\\) pairs"):
        F.pad(tg.zeros(2, 3), (1, 2, 3))
    with pytest.raises(ValueError, match="reflect padding \\(3, 0\\) must be smaller than the axis' length 3"):
        F.pad(tg.zeros(2, 3), (3, 0), mode="reflect")
    with pytest.raises(NotImplementedError, match="mode 'wrap'"):
        F.pad(tg.zeros(2, 3), (1, 1), mode="wrap")
    with pytest.raises(ValueError, match="crops axis 1 of \\(2, 3\\) below zero length"):
        F.pad(tg.zeros(2, 3), (-2, -2))


# --- pooling --------------------------------------------------------------------------------------------------

POOL2D: List[Dict[str, Any]] = [
    {"kernel_size": 2},
    {"kernel_size": 3, "stride": 2, "padding": 1},
    {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True},
    {"kernel_size": (3, 2), "stride": (2, 1), "padding": (1, 0)},
    {"kernel_size": 3, "stride": 2, "padding": (0, 1), "ceil_mode": True},
]


@pytest.mark.parametrize("kwargs", POOL2D + [{"kernel_size": (3, 2), "stride": 2, "padding": 1, "dilation": (2, 1)}])
def test_max_pool2d_against_pytorch(kwargs: Dict[str, Any]) -> None:
    _against_torch("max_pool2d", [_rand(2, 3, 9, 8)], dict(kwargs, return_indices=True))


@pytest.mark.parametrize("kwargs", POOL2D + [{"kernel_size": 3, "padding": 1, "divisor_override": 2}])
@pytest.mark.parametrize("count_include_pad", [True, False])
def test_avg_pool2d_against_pytorch(kwargs: Dict[str, Any], count_include_pad: bool) -> None:
    _against_torch("avg_pool2d", [_rand(2, 3, 9, 8)], dict(kwargs, count_include_pad=count_include_pad))


@pytest.mark.parametrize("fn,shape,kwargs", [
    ("max_pool1d", (2, 3, 11), {"kernel_size": 3, "stride": 2, "padding": 1, "return_indices": True}),
    ("max_pool1d", (3, 10), {"kernel_size": 2, "ceil_mode": True, "return_indices": True}),
    ("max_pool3d", (1, 2, 5, 6, 4), {"kernel_size": (2, 3, 2), "stride": (1, 2, 2), "padding": (1, 1, 0),
                                     "return_indices": True}),
    ("max_pool2d", (3, 7, 6), {"kernel_size": 2, "return_indices": True}),  # unbatched
    ("avg_pool1d", (2, 3, 11), {"kernel_size": 3, "stride": 2, "padding": 1, "count_include_pad": False}),
    ("avg_pool3d", (1, 2, 5, 6, 4), {"kernel_size": 2, "ceil_mode": True}),
    ("avg_pool2d", (3, 7, 6), {"kernel_size": 3, "stride": 1}),  # unbatched
    ("adaptive_avg_pool1d", (2, 3, 10), {"output_size": 4}),
    ("adaptive_avg_pool2d", (2, 3, 9, 8), {"output_size": (1, 1)}),
    ("adaptive_avg_pool2d", (2, 3, 9, 8), {"output_size": (4, 3)}),
    ("adaptive_avg_pool2d", (2, 3, 9, 8), {"output_size": (5, None)}),
    ("adaptive_avg_pool2d", (3, 7, 7), {"output_size": 7}),  # unbatched; the identity
    ("adaptive_avg_pool3d", (1, 2, 5, 6, 4), {"output_size": (2, 4, 3)}),
])
def test_pooling_1d_3d_adaptive_against_pytorch(fn: str, shape: Tuple[int, ...], kwargs: Dict[str, Any]) -> None:
    _against_torch(fn, [_rand(*shape)], kwargs)


def test_max_pool_ties_give_the_gradient_to_the_first_and_padding_never_wins() -> None:
    torch = pytest.importorskip("torch")
    x = np.zeros((1, 1, 4, 4))
    x[0, 0, 3, 3] = -5.0  # all windows tie at 0, except the one holding -5 (its other elements still 0)
    ours = tg.tensor(-np.abs(x) - 1.0, requires_grad=True)  # negative everywhere: zero padding would win
    y, idx = F.max_pool2d(ours, 3, 2, padding=1, return_indices=True)
    theirs = torch.tensor(-np.abs(x) - 1.0, requires_grad=True)
    ty, tidx = torch.nn.functional.max_pool2d(theirs, 3, 2, padding=1, return_indices=True)
    assert (y.numpy() < 0).all() and (idx.numpy() == tidx.numpy()).all()
    y.sum().backward()
    ty.sum().backward()
    assert_allclose(ours.grad.numpy(), theirs.grad.numpy())


# --- derivatives against finite differences ------------------------------------------------------------------

def _fd_grad(f: Callable[[List[np.ndarray]], float], arrays: List[np.ndarray], k: int, h: float = 1e-6) -> np.ndarray:
    out = np.zeros_like(arrays[k])
    for idx in np.ndindex(arrays[k].shape):
        up = [a.copy() for a in arrays]
        dn = [a.copy() for a in arrays]
        up[k][idx] += h
        dn[k][idx] -= h
        out[idx] = (f(up) - f(dn)) / (2 * h)
    return out


CASES: List[Tuple[str, Callable[..., Any], List[Tuple[int, ...]]]] = [
    ("conv2d", lambda x, w, b: F.conv2d(x, w, b, stride=(2, 1), padding=1, dilation=(1, 2)),
     [(1, 2, 5, 5), (3, 2, 2, 3), (3,)]),
    ("conv_transpose2d", lambda x, w: F.conv_transpose2d(x, w, stride=2, padding=1, output_padding=1),
     [(1, 2, 3, 3), (2, 2, 3, 3)]),
    ("max_pool2d", lambda x: F.max_pool2d(x, 3, 2, padding=1, ceil_mode=True), [(1, 2, 5, 6)]),
    ("avg_pool2d", lambda x: F.avg_pool2d(x, 3, 2, padding=1, count_include_pad=False), [(1, 2, 5, 6)]),
    ("adaptive_avg_pool2d", lambda x: F.adaptive_avg_pool2d(x, (2, 3)), [(1, 2, 5, 4)]),
    ("pad reflect", lambda x: F.pad(x, (2, 1, 1, 0), mode="reflect"), [(1, 2, 3, 4)]),
]


@pytest.mark.parametrize("name,fn,shapes", CASES, ids=[c[0] for c in CASES])
def test_gradients_and_second_derivatives_against_finite_differences(name: str, fn: Callable[..., Any],
                                                                     shapes: List[Tuple[int, ...]]) -> None:
    rng = np.random.default_rng(3)
    arrays = [rng.standard_normal(s) for s in shapes]
    ts = [tg.tensor(a, requires_grad=True) for a in arrays]
    g = rng.standard_normal(fn(*ts).shape)

    def loss(values: List[np.ndarray]) -> float:  # sum(g * tanh(f))
        with tg.no_grad():
            return float((tg.tensor(g) * fn(*[tg.tensor(v) for v in values]).tanh()).sum().item())

    out = (tg.tensor(g) * fn(*ts).tanh()).sum()
    grads = tg.autograd.grad(out, ts, create_graph=True)
    for k in range(len(arrays)):
        assert_allclose(grads[k].numpy(), _fd_grad(loss, arrays, k), rtol=1e-6, atol=1e-7, err_msg=f"operand {k}")
    # a Hessian-vector product through the recorded gradients, against differences of the gradient
    v = [rng.standard_normal(s) for s in shapes]
    hv = tg.autograd.grad(sum((gk * tg.tensor(vk)).sum() for gk, vk in zip(grads, v)), ts, allow_unused=True)
    h = 1e-6

    def grad_at(values: List[np.ndarray]) -> List[np.ndarray]:
        xs = [tg.tensor(a, requires_grad=True) for a in values]
        return [t.numpy() for t in tg.autograd.grad((tg.tensor(g) * fn(*xs).tanh()).sum(), xs)]

    up = grad_at([a + h * vk for a, vk in zip(arrays, v)])
    dn = grad_at([a - h * vk for a, vk in zip(arrays, v)])
    for k in range(len(arrays)):
        expected = (up[k] - dn[k]) / (2 * h)
        got = np.zeros_like(expected) if hv[k] is None else hv[k].numpy()
        assert_allclose(got, expected, rtol=1e-5, atol=1e-6, err_msg=f"H v, operand {k}")


@pytest.mark.parametrize("name,fn,shapes", CASES, ids=[c[0] for c in CASES])
def test_tangents_against_finite_differences(name: str, fn: Callable[..., Any], shapes: List[Tuple[int, ...]]) -> None:
    rng = np.random.default_rng(4)
    arrays = [rng.standard_normal(s) for s in shapes]
    v = [rng.standard_normal(s) for s in shapes]
    _, jv = tg.functional.jvp(lambda *xs: fn(*xs), tuple(tg.tensor(a) for a in arrays),
                              tuple(tg.tensor(t) for t in v))
    h = 1e-6
    with tg.no_grad():
        up = fn(*[tg.tensor(a + h * t) for a, t in zip(arrays, v)]).numpy()
        dn = fn(*[tg.tensor(a - h * t) for a, t in zip(arrays, v)]).numpy()
    assert_allclose(jv.numpy(), (up - dn) / (2 * h), rtol=1e-6, atol=1e-7)


# --- the layers -----------------------------------------------------------------------------------------------

LAYERS: List[Tuple[str, Tuple[Any, ...], Dict[str, Any], Tuple[int, ...]]] = [
    ("Conv2d", (3, 6, 5), {}, (2, 3, 12, 12)),
    ("Conv2d", (4, 6, (3, 2)), {"stride": 2, "padding": 1, "groups": 2, "bias": False}, (2, 4, 9, 8)),
    ("Conv2d", (2, 3, 3), {"padding": "same", "dilation": 2}, (1, 2, 7, 7)),
    ("Conv2d", (2, 3, 3), {"padding": 1, "padding_mode": "reflect"}, (1, 2, 6, 5)),
    ("Conv2d", (2, 3, 3), {"padding": (2, 1), "padding_mode": "circular"}, (1, 2, 6, 5)),
    ("Conv2d", (2, 3, 2), {"padding": "same", "padding_mode": "replicate"}, (1, 2, 6, 5)),
    ("Conv1d", (3, 4, 3), {"padding": 2, "dilation": 2}, (2, 3, 10)),
    ("Conv3d", (2, 2, 2), {"stride": (1, 2, 1)}, (1, 2, 4, 5, 3)),
    ("ConvTranspose2d", (4, 2, 4), {"stride": 2, "padding": 1}, (2, 4, 5, 5)),
    ("ConvTranspose2d", (4, 6, 3), {"stride": 2, "output_padding": 1, "groups": 2, "dilation": 2}, (1, 4, 3, 3)),
    ("ConvTranspose1d", (3, 2, 3), {"stride": 2}, (2, 3, 5)),
    ("ConvTranspose3d", (2, 2, 2), {"stride": 2, "bias": False}, (1, 2, 2, 3, 2)),
    ("MaxPool2d", (2,), {}, (2, 3, 8, 8)),
    ("MaxPool2d", (3, 2, 1), {"ceil_mode": True}, (2, 3, 8, 7)),
    ("MaxPool2d", (2,), {"return_indices": True}, (2, 3, 8, 8)),
    ("MaxPool1d", (3,), {"stride": 1, "dilation": 2}, (2, 3, 9)),
    ("MaxPool3d", (2,), {}, (1, 2, 4, 4, 4)),
    ("AvgPool2d", (3,), {"stride": 2, "padding": 1, "count_include_pad": False}, (2, 3, 8, 7)),
    ("AvgPool1d", (2,), {}, (2, 3, 9)),
    ("AvgPool3d", (2,), {"divisor_override": 3}, (1, 2, 4, 4, 4)),
    ("AdaptiveAvgPool2d", ((1, 1),), {}, (2, 3, 5, 5)),
    ("AdaptiveAvgPool2d", (3,), {}, (2, 3, 7, 8)),
    ("AdaptiveAvgPool1d", (4,), {}, (2, 3, 9)),
    ("AdaptiveAvgPool3d", ((2, None, 1),), {}, (1, 2, 4, 3, 5)),
]


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
@pytest.mark.parametrize("cls,args,kwargs,shape", LAYERS)
def test_layers_against_pytorch(cls: str, args: Tuple[Any, ...], kwargs: Dict[str, Any],
                                shape: Tuple[int, ...]) -> None:
    """Same repr and state_dict as PyTorch's layer; from its weights, the same outputs and gradients."""
    torch = pytest.importorskip("torch")
    ours = getattr(nn, cls)(*args, **kwargs)
    theirs = getattr(torch.nn, cls)(*args, **kwargs).double()
    assert repr(ours) == repr(theirs)
    sd = theirs.state_dict()
    assert list(ours.state_dict()) == list(sd)
    for k, v in sd.items():
        assert ours.state_dict()[k].shape == tuple(v.shape)
    ours.load_state_dict({k: v.numpy() for k, v in sd.items()})
    x = _rand(*shape)
    tx, ox = torch.tensor(x, requires_grad=True), tg.tensor(x, requires_grad=True)
    ty, y = theirs(tx), ours(ox)
    if isinstance(ty, tuple):
        assert (y[1].numpy() == ty[1].numpy()).all()
        ty, y = ty[0], y[0]
    assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-12, atol=1e-12)
    g = _rand(*y.shape, seed=9)
    (y * tg.tensor(g)).sum().backward()
    (ty * torch.tensor(g)).sum().backward()
    assert_allclose(ox.grad.numpy(), tx.grad.numpy(), rtol=1e-12, atol=1e-12)
    for (name, p), (_, tp) in zip(ours.named_parameters(), theirs.named_parameters()):
        assert_allclose(p.grad.numpy(), tp.grad.numpy(), rtol=1e-12, atol=1e-12, err_msg=name)


def test_conv_initialisation_as_pytorch() -> None:
    """kaiming_uniform_(a=sqrt(5)): weights and biases within 1/sqrt(fan_in), fan_in = in/groups * kernel."""
    tg.manual_seed(0)
    conv = nn.Conv2d(6, 16, 5, groups=2)
    bound = 1 / np.sqrt(3 * 25)
    for p in (conv.weight, conv.bias):
        a = p.numpy()
        assert np.abs(a).max() <= bound and np.abs(a).max() > 0.9 * bound
    assert conv.weight.shape == (16, 3, 5, 5) and conv.weight.requires_grad
    t = nn.ConvTranspose2d(4, 6, 3, groups=2)
    assert t.weight.shape == (4, 3, 3, 3) and np.abs(t.bias.numpy()).max() <= 1 / np.sqrt(27)
    assert nn.Conv2d(1, 2, 3, dtype=tg.float32).weight.dtype == np.float32


def test_conv_transpose_output_size() -> None:
    torch = pytest.importorskip("torch")
    ours = nn.ConvTranspose2d(2, 3, 3, stride=2, padding=1)
    theirs = torch.nn.ConvTranspose2d(2, 3, 3, stride=2, padding=1).double()
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    x = _rand(1, 2, 4, 4)
    for size in [(7, 7), (8, 8), (1, 3, 8, 7)]:
        y, ty = ours(tg.tensor(x), output_size=size), theirs(torch.tensor(x), output_size=size)
        assert y.shape == tuple(ty.shape)
        assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="requested an output size of \\(9, 9\\), but valid sizes along axis 0 range "
                                         "from 7 to 8"):
        ours(tg.tensor(x), output_size=(9, 9))


def lenet(torch_nn: Any) -> Any:
    """LeNet-5 as PyTorch's tutorials write it, on either library's classes."""
    return torch_nn.Sequential(
        torch_nn.Conv2d(1, 6, 5, padding=2), torch_nn.ReLU(), torch_nn.MaxPool2d(2, 2),
        torch_nn.Conv2d(6, 16, 5), torch_nn.ReLU(), torch_nn.MaxPool2d(2),
        torch_nn.Flatten(), torch_nn.Linear(16 * 5 * 5, 120), torch_nn.ReLU(), torch_nn.Linear(120, 84),
        torch_nn.ReLU(), torch_nn.Linear(84, 10))


def test_lenet5_trains_as_pytorchs() -> None:
    """Five SGD steps with momentum from the same weights: the same losses and weights as PyTorch's."""
    torch = pytest.importorskip("torch")
    theirs, ours = lenet(torch.nn).double(), lenet(nn)
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    opt = tg.optim.SGD(ours.parameters(), lr=0.05, momentum=0.9)
    topt = torch.optim.SGD(theirs.parameters(), lr=0.05, momentum=0.9)
    rng = np.random.default_rng(0)
    for step in range(5):
        x, t = rng.standard_normal((8, 1, 28, 28)), rng.integers(0, 10, 8)
        loss = F.cross_entropy(ours(tg.tensor(x)), t)
        tloss = torch.nn.functional.cross_entropy(theirs(torch.tensor(x)), torch.tensor(t))
        assert_allclose(loss.item(), tloss.item(), rtol=1e-10, err_msg=f"step {step}")
        opt.zero_grad()
        topt.zero_grad()
        loss.backward()
        tloss.backward()
        opt.step()
        topt.step()
    for k, v in theirs.state_dict().items():
        assert_allclose(ours.state_dict()[k].numpy(), v.numpy(), rtol=1e-9, atol=1e-11, err_msg=k)


# --- errors ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("call,error,message", [
    (lambda: F.conv2d(tg.zeros(1, 3, 8, 8), tg.zeros(4, 2, 3, 3)), ValueError,
     "conv2d: with groups=1, weight of shape (4, 2, 3, 3) expects 2 input channels, but the input of shape "
     "(1, 3, 8, 8) has 3"),
    (lambda: F.conv2d(tg.zeros(1, 4, 8, 8), tg.zeros(3, 2, 3, 3), groups=2), ValueError,
     "conv2d: out_channels 3 (weight of shape (3, 2, 3, 3)) must be divisible by groups 2"),
    (lambda: F.conv2d(tg.zeros(1, 2, 8, 8), tg.zeros(3, 2, 3, 3), tg.zeros(4)), ValueError,
     "conv2d: bias of shape (4,) must be (3,), one per output channel of the weight (3, 2, 3, 3)"),
    (lambda: F.conv2d(tg.zeros(1, 2, 2, 8), tg.zeros(3, 2, 3, 3)), ValueError,
     "conv2d: input of shape (1, 2, 2, 8) (padding (0, 0)) is smaller than the (dilated) kernel of the weight "
     "(3, 2, 3, 3)"),
    (lambda: F.conv2d(tg.zeros(1, 2, 8, 8), tg.zeros(3, 2, 3, 3, dtype=tg.float32)), TypeError,
     "conv2d: input (float64) and weight (float32) must have the same dtype"),
    (lambda: F.conv2d(tg.zeros(2, 8, 8), tg.zeros(3, 2, 3)), ValueError,
     "conv2d: weight of shape (3, 2, 3) expects an input of 3 axes (N, C, 1 spatial), got (1, 2, 8, 8)"),
    (lambda: F.conv2d(tg.zeros(8, 8), tg.zeros(3, 2, 3, 3)), ValueError,
     "conv2d: expected a 3-d (unbatched) or 4-d (batched) input, got an input of shape (8, 8)"),
    (lambda: F.conv2d(tg.zeros(1, 2, 8, 8), tg.zeros(3, 2, 3, 3), stride=2, padding="same"), ValueError,
     "conv2d: padding='same' is not supported for strided convolutions"),
    (lambda: F.conv2d(tg.zeros(1, 2, 8, 8), tg.zeros(3, 2, 3, 3), padding="full"), ValueError,
     "conv2d: padding 'full' must be 'valid', 'same', an int or a tuple of ints"),
    (lambda: F.conv2d(tg.zeros(1, 2, 8, 8), tg.zeros(3, 2, 3, 3), stride=(1, 2, 3)), ValueError,
     "conv2d: stride needs 1 or 2 values, got (1, 2, 3)"),
    (lambda: F.conv2d(tg.zeros(1, 2, 8, 8), tg.zeros(3, 2, 3, 3), stride=0), ValueError,
     "conv2d: stride must be at least 1, got (0, 0)"),
    (lambda: F.conv2d(tg.zeros(1, 2, 8, 8), tg.zeros(3, 2, 3, 3), dilation=1.5), TypeError,
     "conv2d: dilation must be an int or a tuple of 2 ints, not 1.5"),
    (lambda: F.conv2d(np.zeros((1, 2, 8, 8)), tg.zeros(3, 2, 3, 3)), TypeError,
     "conv2d: input must be a tapegrad Tensor, not ndarray"),
    (lambda: F.conv2d(tg.zeros(1, 2, 8, 8, dtype=tg.int64), tg.zeros(3, 2, 3, 3)), TypeError,
     "conv2d: input must be a floating tensor, got int64"),
    (lambda: F.conv_transpose2d(tg.zeros(1, 2, 4, 4), tg.zeros(2, 3, 3, 3), stride=2, output_padding=2), ValueError,
     "conv_transpose2d: output_padding (2, 2) must be smaller than stride or dilation along each axis"),
    (lambda: F.conv_transpose2d(tg.zeros(1, 3, 4, 4), tg.zeros(2, 3, 3, 3)), ValueError,
     "conv_transpose2d: weight of shape (2, 3, 3, 3) expects 2 input channels, but the input of shape (1, 3, 4, 4) "
     "has 3"),
    (lambda: F.max_pool2d(tg.zeros(1, 1, 4, 4), 2, padding=2), ValueError,
     "max_pool2d: padding (2, 2) must be at most half of kernel_size (2, 2) (dilated)"),
    (lambda: F.max_pool2d(tg.zeros(1, 1, 2, 2), 3), ValueError,
     "max_pool2d: input of shape (1, 1, 2, 2) is too small for kernel_size (3, 3) with padding (0, 0)"),
    (lambda: F.max_pool2d(tg.zeros(4, 4), 2), ValueError,
     "max_pool2d: expected a 3-d (unbatched) or 4-d (batched) input, got an input of shape (4, 4)"),
    (lambda: F.avg_pool2d(tg.zeros(1, 1, 4, 4), 2, divisor_override=0), ValueError,
     "avg_pool2d: divisor_override must be a positive int, not 0"),
    (lambda: F.adaptive_avg_pool2d(tg.zeros(1, 1, 4, 4), (2, 0)), ValueError,
     "adaptive_avg_pool2d: output_size must be at least 1, got (2, 0)"),
    (lambda: F.adaptive_avg_pool2d(tg.zeros(1, 1, 4, 4), (2, 2**62)), ValueError,  # (it crashed: found by fuzzing)
     "adaptive_avg_pool2d: output_size (2, 4611686018427387904) is too large"),
    (lambda: F.conv2d(tg.zeros(1, 2, 8, 8), tg.zeros(3, 2, 3, 3), padding=2**62), ValueError,
     "conv2d: padding (4611686018427387904, 4611686018427387904) is too large"),
    (lambda: F.adaptive_avg_pool2d(tg.zeros(1, 1, 4, 4), (2, 2, 2)), ValueError,
     "adaptive_avg_pool2d: output_size needs 1 or 2 values, got (2, 2, 2)"),
    (lambda: nn.Conv2d(3, 4, 3, groups=2), ValueError, "Conv2d: in_channels (3) must be divisible by groups (2)"),
    (lambda: nn.Conv2d(2, 4, 3, padding_mode="mirror"), ValueError,
     "Conv2d: padding_mode must be one of ('zeros', 'reflect', 'replicate', 'circular'), not 'mirror'"),
    (lambda: nn.Conv2d(2, 4, 3, stride=2, padding="same"), ValueError,
     "Conv2d: padding='same' is not supported for strided convolutions"),
    (lambda: nn.Conv2d(2, 4, 3, device="cuda"), RuntimeError, "cuda"),
])
def test_errors_name_the_problem(call: Callable[[], Any], error: type, message: str) -> None:
    with pytest.raises(error) as e:
        call()
    assert message in str(e.value)
