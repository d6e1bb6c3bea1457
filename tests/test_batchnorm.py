"""nn.BatchNorm1d, nn.BatchNorm2d and F.batch_norm: outputs, gradients and running statistics
against PyTorch's over several training steps and in eval mode (every option: momentum None,
affine off, bias off, no running statistics), gradients against central finite differences,
and the errors.
"""

from __future__ import annotations

from typing import Any, Dict

import numpy as np
import pytest
from numpy.testing import assert_allclose

import tapegrad as tg
import tapegrad.nn.functional as F
from tapegrad import nn


@pytest.mark.parametrize("cls,shape", [("BatchNorm1d", (8, 3)), ("BatchNorm1d", (4, 3, 5)),
                                       ("BatchNorm2d", (4, 3, 2, 5))])
@pytest.mark.parametrize("options", [{}, {"momentum": None}, {"affine": False}, {"bias": False},
                                     {"track_running_stats": False}, {"momentum": 0.5, "eps": 1e-3}])
def test_batch_norm_against_pytorch(cls: str, shape: Any, options: Dict[str, Any]) -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    ours = getattr(nn, cls)(3, **options)
    theirs = getattr(torch.nn, cls)(3, **options).double()
    assert repr(ours) == repr(theirs) and list(ours.state_dict()) == list(theirs.state_dict())
    if ours.weight is not None:
        w = rng.standard_normal(3)
        ours.load_state_dict({"weight": w}, strict=False)
        with torch.no_grad():
            theirs.weight.copy_(torch.tensor(w))
    if ours.bias is not None:
        b = rng.standard_normal(3)
        ours.load_state_dict({"bias": b}, strict=False)
        with torch.no_grad():
            theirs.bias.copy_(torch.tensor(b))
    for _ in range(3):
        x = rng.standard_normal(shape) * 2 + 1
        xo, xt = tg.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
        yo, yt = ours(xo), theirs(xt)
        assert_allclose(yo.numpy(), yt.detach().numpy(), rtol=1e-10, atol=1e-12)
        g = rng.standard_normal(yo.shape)
        (yo * tg.tensor(g)).sum().backward()
        (yt * torch.tensor(g)).sum().backward()
        assert_allclose(xo.grad.numpy(), xt.grad.numpy(), rtol=1e-9, atol=1e-10)
        for name in ("weight", "bias"):
            if getattr(ours, name) is not None:
                assert_allclose(getattr(ours, name).grad.numpy(), getattr(theirs, name).grad.numpy(), rtol=1e-9,
                                atol=1e-10)
        ours.zero_grad()
        theirs.zero_grad()
    for name, value in theirs.state_dict().items():
        assert_allclose(ours.state_dict()[name].numpy(), value.numpy(), rtol=1e-12)
    ours.eval()
    theirs.eval()
    x = rng.standard_normal(shape)
    assert_allclose(ours(tg.tensor(x)).numpy(), theirs(torch.tensor(x)).detach().numpy(), rtol=1e-10, atol=1e-12)


def test_batch_norm_gradients_against_finite_differences() -> None:
    rng = np.random.default_rng(1)
    x0, w0, b0 = rng.standard_normal((5, 2, 3)), rng.standard_normal(2), rng.standard_normal(2)
    g = rng.standard_normal((5, 2, 3))

    def f(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> float:
        mean = x.mean(axis=(0, 2), keepdims=True)
        var = ((x - mean) ** 2).mean(axis=(0, 2), keepdims=True)
        y = (x - mean) / np.sqrt(var + 1e-5) * w.reshape(1, 2, 1) + b.reshape(1, 2, 1)
        return float((y * g).sum())

    x, w, b = (tg.tensor(a, requires_grad=True) for a in (x0, w0, b0))
    (F.batch_norm(x, None, None, w, b, training=True) * tg.tensor(g)).sum().backward()
    h = 1e-6
    for k, (t, a) in enumerate([(x, x0), (w, w0), (b, b0)]):
        fd = np.zeros_like(a)
        for idx in np.ndindex(a.shape):
            args_up = [x0.copy(), w0.copy(), b0.copy()]
            args_dn = [x0.copy(), w0.copy(), b0.copy()]
            args_up[k][idx] += h
            args_dn[k][idx] -= h
            fd[idx] = (f(*args_up) - f(*args_dn)) / (2 * h)
        assert_allclose(t.grad.numpy(), fd, rtol=1e-6, atol=1e-7)


def test_batch_norm_running_statistics_and_eval() -> None:
    bn = nn.BatchNorm1d(2, momentum=0.5)
    x = tg.tensor([[1.0, 10.0], [3.0, 30.0]])
    bn(x)
    assert_allclose(bn.running_mean.numpy(), [1.0, 10.0])  # 0.5 * 0 + 0.5 * (2, 20)
    assert_allclose(bn.running_var.numpy(), [1.5, 100.5])  # 0.5 * 1 + 0.5 * unbiased (2, 200)
    assert bn.num_batches_tracked.item() == 1
    bn.eval()
    assert_allclose(bn(tg.tensor([[1.0, 10.0]])).numpy(), [[0.0, 0.0]], atol=1e-12)
    bn.reset_running_stats()
    assert bn.running_mean.numpy().tolist() == [0.0, 0.0] and bn.num_batches_tracked.item() == 0
    back = tg.load(_saved(bn.state_dict()))
    assert list(back) == ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]


def _saved(obj: Any) -> Any:
    import io

    buf = io.BytesIO()
    tg.save(obj, buf)
    buf.seek(0)
    return buf


def test_batch_norm_errors() -> None:
    with pytest.raises(ValueError, match=r"expected 2D or 3D input \(got 4D input\)"):
        nn.BatchNorm1d(3)(tg.ones(2, 3, 4, 4))
    with pytest.raises(ValueError, match="expected 4D input"):
        nn.BatchNorm2d(3)(tg.ones(2, 3))
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        nn.BatchNorm1d(3)(tg.ones(1, 3))
    with pytest.raises(ValueError, match="running_mean has shape"):
        F.batch_norm(tg.ones(2, 3), tg.zeros(4), tg.ones(4))
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        F.batch_norm(tg.ones(3), None, None)
    with pytest.raises(RuntimeError, match="no device 'cuda'"):
        nn.BatchNorm2d(3, device="cuda")


@pytest.mark.parametrize("groups,shape,options", [(2, (3, 4, 5), {}), (1, (2, 6, 3, 2), {}),
                                                  (3, (2, 6, 4, 4), {"affine": False}), (6, (4, 6), {"bias": False})])
def test_group_norm_against_pytorch(groups: int, shape: Any, options: Dict[str, Any]) -> None:
    """nn.GroupNorm and F.group_norm: outputs and gradients from the same weights as PyTorch's."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    c = shape[1]
    ours, theirs = nn.GroupNorm(groups, c, **options), torch.nn.GroupNorm(groups, c, **options).double()
    assert repr(ours) == repr(theirs) and list(ours.state_dict()) == list(theirs.state_dict())
    values = {k: rng.standard_normal(c) for k in theirs.state_dict()}
    ours.load_state_dict(values)
    theirs.load_state_dict({k: torch.tensor(v) for k, v in values.items()})
    x, g = rng.standard_normal(shape), rng.standard_normal(shape)
    ox, tx = tg.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    y, ty = ours(ox), theirs(tx)
    assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-10, atol=1e-12)
    (y * tg.tensor(g)).sum().backward()
    (ty * torch.tensor(g)).sum().backward()
    assert_allclose(ox.grad.numpy(), tx.grad.numpy(), rtol=1e-9, atol=1e-11)
    for (name, p), (_, tp) in zip(ours.named_parameters(), theirs.named_parameters()):
        assert_allclose(p.grad.numpy(), tp.grad.numpy(), rtol=1e-9, atol=1e-11, err_msg=name)


def test_group_norm_gradient_against_finite_differences_and_errors() -> None:
    rng = np.random.default_rng(3)
    x0, w0 = rng.standard_normal((2, 4, 3)), rng.standard_normal(4)
    g = rng.standard_normal((2, 4, 3))

    def f(x: np.ndarray) -> float:
        z = x.reshape(2, 2, 6)
        z = (z - z.mean(2, keepdims=True)) / np.sqrt(z.var(2, keepdims=True) + 1e-5)
        return float((z.reshape(2, 4, 3) * w0.reshape(1, 4, 1) * g).sum())

    x = tg.tensor(x0, requires_grad=True)
    (F.group_norm(x, 2, tg.tensor(w0)) * tg.tensor(g)).sum().backward()
    h, fd = 1e-6, np.zeros_like(x0)
    for idx in np.ndindex(x0.shape):
        up, dn = x0.copy(), x0.copy()
        up[idx] += h
        dn[idx] -= h
        fd[idx] = (f(up) - f(dn)) / (2 * h)
    assert_allclose(x.grad.numpy(), fd, rtol=1e-6, atol=1e-7)
    with pytest.raises(ValueError, match=r"group_norm: the input's 4 channels \(shape \(2, 4, 3\)\) must split into "
                                         r"num_groups \(3\) equal groups"):
        F.group_norm(x, 3)
    with pytest.raises(ValueError, match=r"num_channels \(4\) must be divisible by num_groups \(3\)"):
        nn.GroupNorm(3, 4)
