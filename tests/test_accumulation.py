"""Gradient accumulation (issue 12, part 1): micro-batches of loss / k give the full batch's
gradient, on Var and on Tensor, with .grad.zero_() and zero_grad(set_to_none=...) between
steps; and the exact clipping line of the tutorials on a tensor model and on micrograd's MLP."""

from __future__ import annotations

import random

import numpy as np
import pytest

import tapegrad as tg
from tapegrad import nn, optim

RNG = np.random.default_rng(12)
X = RNG.standard_normal((32, 5))
Y = RNG.integers(0, 3, 32)


def tensor_model() -> nn.Sequential:
    tg.manual_seed(3)
    return nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3))


def torch_twin(model: nn.Sequential) -> object:
    """The same model in PyTorch, float64, with model's weights."""
    import torch

    twin = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3)).double()
    twin.load_state_dict({k: torch.from_numpy(v.numpy().copy()) for k, v in model.state_dict().items()})
    return twin


def grads(model: nn.Module) -> list:
    return [p.grad.numpy().copy() for p in model.parameters()]


def test_four_micro_batches_of_a_quarter_loss_give_the_full_batch_gradient() -> None:
    model, loss_fn = tensor_model(), nn.CrossEntropyLoss()
    loss_fn(model(tg.tensor(X)), tg.tensor(Y)).backward()
    full = grads(model)
    model.zero_grad()
    for xb, yb in zip(np.split(X, 4), np.split(Y, 4)):  # 4 micro-batches of 8
        (loss_fn(model(tg.tensor(xb)), tg.tensor(yb)) / 4).backward()  # .grad accumulates
    for got, want in zip(grads(model), full):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)


def test_accumulation_matches_torch() -> None:
    torch = pytest.importorskip("torch")
    model, tmodel = tensor_model(), torch_twin(tensor_model())
    for m, lib in ((model, tg), (tmodel, torch)):
        loss_fn = lib.nn.CrossEntropyLoss()
        for xb, yb in zip(np.split(X, 4), np.split(Y, 4)):
            (loss_fn(m(lib.tensor(xb)), lib.tensor(yb)) / 4).backward()
    for p, q in zip(model.parameters(), tmodel.parameters()):
        np.testing.assert_allclose(p.grad.numpy(), q.grad.numpy(), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("reset", ["zero_grad(set_to_none=True)", "zero_grad(set_to_none=False)", ".grad.zero_()",
                                   "optimizer.zero_grad()"])
def test_each_reset_starts_the_next_accumulation_afresh(reset: str) -> None:
    model, loss_fn = tensor_model(), nn.MSELoss()
    opt = optim.SGD(model.parameters(), lr=0.0)  # (only its zero_grad is used)
    x, y = tg.tensor(X), tg.tensor(RNG.standard_normal((32, 3)))
    loss_fn(model(x), y).backward()
    once = grads(model)
    loss_fn(model(x), y).backward()  # a second backward accumulates: twice the gradient
    for got, want in zip(grads(model), once):
        np.testing.assert_allclose(got, 2 * want, rtol=1e-14)
    if reset == "zero_grad(set_to_none=True)":
        model.zero_grad(set_to_none=True)
        assert all(p.grad is None for p in model.parameters())
    elif reset == "zero_grad(set_to_none=False)":
        model.zero_grad(set_to_none=False)
        assert all(p.grad is not None and not p.grad.numpy().any() for p in model.parameters())
    elif reset == ".grad.zero_()":
        for p in model.parameters():
            p.grad.zero_()
    else:
        opt.zero_grad()
    loss_fn(model(x), y).backward()
    for got, want in zip(grads(model), once):
        np.testing.assert_allclose(got, want, rtol=1e-14)


def test_accumulation_on_vars() -> None:
    random.seed(5)
    model = nn.MLP(2, [4, 1])
    pts = RNG.standard_normal((8, 2)).tolist()
    ys = [1.0 if a * b > 0 else -1.0 for a, b in pts]

    def loss(batch: list) -> tg.Var:
        return sum(((1 + -y * model([tg.Var(a), tg.Var(b)])).relu() for (a, b), y in batch), tg.Var(0.0)) * (
            1.0 / len(batch))

    data = list(zip(pts, ys))
    loss(data).backward()
    full = [p.grad for p in model.parameters()]
    model.zero_grad()
    assert all(p.grad == 0.0 for p in model.parameters())
    for k in range(4):
        (loss(data[2 * k:2 * k + 2]) * 0.25).backward()
    for p, want in zip(model.parameters(), full):
        assert p.grad == pytest.approx(want, rel=1e-12, abs=1e-15)


def test_the_tutorials_clipping_line_on_a_tensor_model_and_on_micrograds_mlp() -> None:
    torch = pytest.importorskip("torch")
    model, tmodel = tensor_model(), torch_twin(tensor_model())
    for m, lib in ((model, tg), (tmodel, torch)):
        (lib.nn.CrossEntropyLoss()(m(lib.tensor(X)), lib.tensor(Y)) * 50).backward()
    total = tg.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
    ttotal = torch.nn.utils.clip_grad_norm_(tmodel.parameters(), max_norm=1.0)
    assert total.item() == pytest.approx(ttotal.item(), rel=1e-12) and total.item() > 1.0
    for p, q in zip(model.parameters(), tmodel.parameters()):
        np.testing.assert_allclose(p.grad.numpy(), q.grad.numpy(), rtol=1e-12, atol=1e-15)
    # the same line on micrograd's MLP of Vars: the total norm of every Var's grad, then scaled
    random.seed(1)
    mlp = nn.MLP(2, [3, 1])
    out = mlp([tg.Var(2.0), tg.Var(-3.0)])
    (out * 40).backward()
    before = np.array([p.grad for p in mlp.parameters()])
    norm = tg.nn.utils.clip_grad_norm_(mlp.parameters(), max_norm=1.0)
    assert float(norm) == pytest.approx(float(np.linalg.norm(before)), rel=1e-12)
    after = np.array([p.grad for p in mlp.parameters()])
    np.testing.assert_allclose(after, before * (1.0 / (np.linalg.norm(before) + 1e-6)), rtol=1e-12)
