"""PyTorch names that tutorials and examples written by others use, found by running them on
tapegrad as a new user would (PyTorch's tutorials and examples, imports changed, data replaced
by random tensors): each is checked here against PyTorch where it is installed, and against
known values where it is not.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

import tapegrad as tg
import tapegrad.nn.functional as F
from tapegrad import nn


def _torch() -> Any:
    return pytest.importorskip("torch")


def test_devices_of_any_type_can_be_named_but_not_used() -> None:
    cuda = tg.device("cuda")
    assert cuda.type == "cuda" and cuda.index is None and str(cuda) == "cuda" and cuda == "cuda"
    assert tg.device("cuda:1").index == 1 and tg.device("cuda", 1) == tg.device("cuda:1") != tg.device("cuda:0")
    assert not (tg.cuda.is_available() & (tg.device("cuda").index is not None))  # tensorqs_tutorial's guard
    for use in (lambda: tg.zeros(2, device=cuda), lambda: tg.ones(2).to(cuda), lambda: nn.Linear(2, 2).to(cuda),
                lambda: tg.device("meta").__enter__()):
        with pytest.raises(RuntimeError, match=r"no device device\(type='(cuda|meta)'\)"):
            use()
    with pytest.raises(RuntimeError, match="no device 0"):  # an accelerator's ordinal: PyTorch raises too
        tg.device(0)
    with pytest.raises(RuntimeError, match="twice"):
        tg.device("cuda:0", 1)


def test_devices_print_as_pytorch_prints_them() -> None:
    torch = _torch()
    for args in [("cpu",), ("cuda",), ("cuda:1",), ("cuda", 2), ("mps",), ("meta",), ("cpu", 0)]:
        assert repr(tg.device(*args)) == repr(torch.device(*args)) and str(tg.device(*args)) == str(torch.device(*args))
    with pytest.raises(RuntimeError):
        torch.device(0)  # (what tapegrad's device(0) mirrors)


def test_layers_take_device_and_dtype_positionally_as_pytorch() -> None:
    lin = nn.Linear(3, 2, True, None, tg.float32)  # examples/mnist_forward_forward's super().__init__ call
    assert lin.weight.dtype == np.float32 and lin.bias is not None
    emb = nn.Embedding(5, 2, None, None, 2.0, False, False, None, False, "cpu", tg.float32)
    assert emb.weight.dtype == np.float32
    ln = nn.LayerNorm(4, 1e-5, True, True, None, tg.float32)
    assert ln.weight.dtype == np.float32
    with pytest.raises(RuntimeError, match="no device 'cuda'"):
        nn.Linear(3, 2, True, "cuda")


def test_legacy_tensor_types() -> None:
    a = tg.FloatTensor([1, 2])
    assert a.dtype == np.float32 and a.numpy().tolist() == [1.0, 2.0]
    assert isinstance(a, tg.FloatTensor) and not isinstance(a, tg.LongTensor) and isinstance(a, tg.Tensor)
    assert tg.FloatTensor(2, 3).shape == (2, 3) and tg.FloatTensor(3).shape == (3,) and tg.FloatTensor().shape == (0,)
    assert tg.LongTensor(np.array([1.7, -2.2])).numpy().tolist() == [1, -2]
    assert tg.DoubleTensor([0.5]).dtype == np.float64 and tg.BoolTensor([1, 0]).numpy().tolist() == [True, False]
    assert tg.HalfTensor([1.0]).dtype == np.float16 and tg.BFloat16Tensor([1.0]).dtype.name == "bfloat16"
    with pytest.raises(TypeError, match="sizes"):
        tg.FloatTensor([1.0], 2)
    with pytest.raises(RuntimeError, match="no device 'cuda'"):
        tg.FloatTensor([1.0], device="cuda")


def test_legacy_tensor_types_against_pytorch() -> None:
    torch = _torch()
    for name in ("FloatTensor", "DoubleTensor", "LongTensor", "BoolTensor", "HalfTensor"):
        for args in ([[1.5, -2.0, 0.0]], [np.array([1.7, -2.2])], [2, 3], [4]):
            ours, theirs = getattr(tg, name)(*args), getattr(torch, name)(*args)
            assert ours.shape == tuple(theirs.shape) and ours.type() == theirs.type()
            if not (len(args) > 0 and isinstance(args[0], int)):  # (torch leaves sized ones unset)
                assert_array_equal(ours.numpy(), theirs.numpy())


@pytest.mark.parametrize("k", [0, 1, 2, -1, -3, 7])
def test_diag_against_known_values_and_gradients(k: int) -> None:
    v = np.array([1.0, -2.0, 3.0])
    m = np.arange(12.0).reshape(3, 4)
    d = tg.diag(tg.tensor(v), k).numpy()
    assert_array_equal(d, np.diag(v, k))
    assert_array_equal(tg.diag(tg.tensor(m), k).numpy(), np.diag(m, k))
    x = tg.tensor(m, requires_grad=True)
    w = np.arange(1.0, 1.0 + len(np.diag(m, k)))
    (tg.diag(x, k) * tg.tensor(w)).sum().backward()
    expected = np.zeros_like(m)
    rows, cols = np.nonzero(np.eye(3, 4, k=k))
    expected[rows, cols] = w
    assert_array_equal(x.grad.numpy(), expected)
    y = tg.tensor(v, requires_grad=True)
    (tg.diag(y, k) * tg.tensor(np.ones_like(d))).sum().backward()
    assert_array_equal(y.grad.numpy(), np.ones(3))
    assert_array_equal(tg.tensor(m).diag(k).numpy(), np.diag(m, k))  # the method
    with pytest.raises(ValueError, match="1-d or 2-d"):
        tg.diag(tg.ones(2, 2, 2))


def test_diag_against_pytorch() -> None:
    torch = _torch()
    rng = np.random.default_rng(0)
    for shape in [(4,), (3, 5), (5, 3), (1,), (0,)]:
        a = rng.standard_normal(shape)
        for k in (-2, 0, 1):
            ours = tg.tensor(a, requires_grad=True)
            theirs = torch.tensor(a, requires_grad=True)
            r, t = tg.diag(ours, k), torch.diag(theirs, k)
            assert_allclose(r.numpy(), t.detach().numpy())
            if r.numel() == 0:
                continue
            w = rng.standard_normal(r.shape)
            (r * tg.tensor(w)).sum().backward()
            (t * torch.tensor(w)).sum().backward()
            assert_allclose(ours.grad.numpy(), theirs.grad.numpy())


def test_factories_take_size_as_a_keyword() -> None:
    assert tg.empty(size=(2, 3)).shape == (2, 3) and tg.zeros(size=(2,)).shape == (2,)
    assert tg.ones(size=[1, 2]).shape == (1, 2)
    assert tg.rand(size=(2, 2)).shape == (2, 2) and tg.randn(size=(3,)).shape == (3,)
    assert tg.full(size=(2,), fill_value=3.0).numpy().tolist() == [3.0, 3.0]
    for both in (lambda: tg.zeros(2, size=(2,)), lambda: tg.empty(2, size=(2,)), lambda: tg.randn(2, size=(2,)),
                 lambda: tg.full((2,), 1.0, size=(2,))):
        with pytest.raises(TypeError, match="both"):
            both()
    with pytest.raises(TypeError, match="fill_value"):
        tg.full((2,))
    with pytest.raises(TypeError, match="unexpected"):
        tg.randn(2, bogus=1)


def test_variable_is_a_tensor_as_in_pytorch() -> None:
    from tapegrad.autograd import Variable

    t = tg.ones(2)
    v = Variable(t, requires_grad=True)
    assert v.requires_grad and v is not t and not t.requires_grad
    assert isinstance(v, Variable) and isinstance(t, Variable)
    (v * 3.0).sum().backward()
    assert_array_equal(v.grad.numpy(), [3.0, 3.0])
    assert Variable([1.0, 2.0]).numpy().tolist() == [1.0, 2.0] and not isinstance(3.0, Variable)


def test_formatting_a_zero_d_tensor_gives_its_number() -> None:
    assert f"{tg.tensor(7)}" == "7" and f"{tg.tensor(2.5)}" == "2.5" and f"{tg.tensor(2.5):.2f}" == "2.50"
    assert f"{tg.tensor([1.0])}" == str(tg.tensor([1.0]))
    torch = _torch()
    for v in (7, 2.5, True, -0.0):
        assert f"{tg.tensor(v)}" == f"{torch.tensor(v)}"


def test_load_state_dict_says_all_keys_matched_as_pytorch() -> None:
    m = nn.Linear(2, 2)
    assert repr(m.load_state_dict(m.state_dict())) == "<All keys matched successfully>"
    r = m.load_state_dict({"weight": tg.ones(2, 2)}, strict=False)
    assert r.missing_keys == ["bias"] and "missing_keys=['bias']" in repr(r)
    torch = _torch()
    t = torch.nn.Linear(2, 2)
    assert repr(m.load_state_dict(m.state_dict())) == repr(t.load_state_dict(t.state_dict()))


@pytest.mark.parametrize("layer,fn,shape", [
    (nn.Dropout2d, F.dropout2d, (4, 3, 5, 5)), (nn.Dropout2d, F.dropout2d, (3, 5, 5)),
    (nn.Dropout1d, F.dropout1d, (4, 3, 7)), (nn.Dropout1d, F.dropout1d, (3, 7)),
])
def test_channel_dropout_zeroes_whole_channels(layer: Any, fn: Any, shape: Any) -> None:
    tg.manual_seed(0)
    x = tg.tensor(np.random.default_rng(1).uniform(1.0, 2.0, shape), requires_grad=True)
    m = layer(0.5)
    y = m(x)
    spatial = 2 if layer is nn.Dropout2d else 1
    channels = y.numpy().reshape(-1, int(np.prod(shape[-spatial:])))
    xs = x.numpy().reshape(channels.shape)
    kept = np.all(channels != 0, axis=1)
    assert np.all(np.all(channels == 0, axis=1) | kept)  # each channel all zero or all kept
    assert 0 < kept.sum() < len(kept)
    assert_allclose(channels[kept], 2.0 * xs[kept])  # scaled by 1 / (1 - p)
    y.sum().backward()
    assert_allclose(x.grad.numpy().reshape(channels.shape), np.where(kept[:, None], 2.0, 0.0) * np.ones_like(xs))
    m.eval()
    assert m(x) is x and fn(x, 0.5, training=False) is x and fn(x, 0.0) is x
    assert np.all(fn(x, 1.0).numpy() == 0)
    with pytest.raises(ValueError, match="expected"):
        fn(tg.ones(*((2,) * (len(shape) + 2))), 0.5)
    with pytest.raises(ValueError, match="probability"):
        layer(1.5)


def test_out_and_alpha_on_the_arithmetic_functions() -> None:
    x, y = tg.tensor([1.0, 2.0]), tg.tensor([3.0, 4.0])
    r = tg.zeros(2)
    assert tg.add(x, y, out=r) is r and r.numpy().tolist() == [4.0, 6.0]
    assert tg.mul(x, y, out=r) is r and r.numpy().tolist() == [3.0, 8.0]
    assert tg.sub(x, y, out=r).numpy().tolist() == [-2.0, -2.0] and tg.div(x, y, out=r) is r
    m = tg.zeros(2, 2)
    assert tg.matmul(tg.ones(2, 3), tg.ones(3, 2), out=m) is m and m.numpy().tolist() == [[3.0, 3.0], [3.0, 3.0]]
    assert tg.add(x, y, alpha=2).numpy().tolist() == [7.0, 10.0]
    assert tg.sub(x, y, alpha=0.5).numpy().tolist() == [-0.5, 0.0]
    assert x.add(y, alpha=3).numpy().tolist() == [10.0, 14.0] and x.sub(y).numpy().tolist() == [-2.0, -2.0]
    v = tg.add(tg.Var(1.0), 2.0, alpha=3)
    assert isinstance(v, tg.Var) and v.data == 7.0 and tg.add(1.0, 2.0) == 3.0
    a = tg.ones(2, requires_grad=True)
    (tg.add(a, a, alpha=3) * tg.tensor([1.0, 2.0])).sum().backward()
    assert a.grad.numpy().tolist() == [4.0, 8.0]
    with pytest.raises(RuntimeError, match="don't support automatic differentiation"):
        tg.add(a, 1.0, out=tg.zeros(2))
    with pytest.raises(RuntimeError, match="does not resize"):
        tg.add(x, y, out=tg.zeros(3))
    with pytest.raises(TypeError, match="must be a Tensor"):
        tg.mul(x, y, out=[0.0, 0.0])
    with pytest.raises(TypeError, match="int64"):
        tg.add(x, y, out=tg.tensor([1, 2]))
    torch = _torch()
    tx, ty = torch.tensor([1.0, 2.0]), torch.tensor([3.0, 4.0])
    for ours, theirs in [(tg.add(x, y, alpha=2), torch.add(tx, ty, alpha=2)),
                         (tg.sub(x, y, alpha=3), torch.sub(tx, ty, alpha=3)),
                         (x.add(y, alpha=-1), tx.add(ty, alpha=-1))]:
        assert_array_equal(ours.numpy(), theirs.numpy())


def test_zero__on_every_dtype() -> None:
    """(found through BatchNorm's num_batches_tracked: zero_ refused an int64 tensor)"""
    for t in (tg.tensor([1, 2]), tg.tensor([True, False]), tg.ones(2), tg.ones(2, dtype=tg.float16)):
        assert t.zero_().numpy().tolist() == [0, 0]


def test_load_state_dict_assign() -> None:
    """assign=True: the parameters and buffers become new tensors of the checkpoint's values and dtypes (each
    parameter keeping requires_grad), as PyTorch's; without it the values are copied into the old ones."""
    torch = pytest.importorskip("torch")
    model = tg.nn.Sequential(tg.nn.Linear(2, 3), tg.nn.BatchNorm1d(3))
    model[0].bias.requires_grad_(False)
    old_weight = model[0].weight
    sd = {k: np.full(v.shape, 0.5, dtype=np.float32) if v.dtype == np.float64 else v.numpy()
          for k, v in model.state_dict().items()}
    model.load_state_dict(sd, assign=True)
    assert model[0].weight is not old_weight and isinstance(model[0].weight, tg.nn.Parameter)
    assert model[0].weight.dtype == np.float32 and model[0].weight.requires_grad
    assert not model[0].bias.requires_grad
    assert model[1].running_mean.dtype == np.float32 and list(model.state_dict()) == list(sd)
    assert [p is model[0].weight for p in model.parameters()][0]
    theirs = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.BatchNorm1d(3))
    theirs.load_state_dict({k: torch.tensor(v) for k, v in sd.items()}, assign=True)
    assert str(theirs[0].weight.dtype) == "torch.float32" and theirs[0].weight.requires_grad
    again = tg.nn.Linear(2, 3)
    w = again.weight
    again.load_state_dict({"weight": np.ones((2, 3)).T, "bias": np.zeros(3)})
    assert again.weight is w and (w.numpy() == 1).all()
    with pytest.raises(RuntimeError, match="size mismatch for weight"):
        again.load_state_dict({"weight": np.ones((2, 2)), "bias": np.zeros(3)}, assign=True)
