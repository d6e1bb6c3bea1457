"""tapegrad.nn's losses against torch.nn's in float64: every reduction, class weights, ignore_index, label
smoothing, probability targets and K-dimensional cross entropy; values and the gradients of the input (and of
a probability or regression target) to 1e-12; and the errors for hostile arguments."""

from __future__ import annotations

import math
from typing import Any, Optional

import numpy as np
import pytest
from test_nn import TOL, compare, rand

import tapegrad as tg
from tapegrad import nn
from tapegrad.nn import functional as F

torch = pytest.importorskip("torch")
tF = torch.nn.functional
REDUCTIONS = ["mean", "sum", "none"]


def classes(shape: tuple[int, ...], n: int, seed: int = 0, ignore: Optional[int] = None) -> np.ndarray:
    """Random class indices, with a few set to ``ignore``."""
    t = np.random.default_rng(seed).integers(0, n, size=shape)
    if ignore is not None:
        t.reshape(-1)[::3] = ignore
    return t


def compare_loss(ours: Any, theirs: Any, x: np.ndarray, target: Any, target_grad: bool = False) -> None:
    """ours(input, target) against theirs: values and the input's gradient (and the target's, if float)."""
    if target_grad:
        compare(ours, theirs, x, target)
    else:
        compare(lambda a: ours(a, tg.tensor(target)), lambda a: theirs(a, torch.tensor(target)), x)


# --- regression losses ------------------------------------------------------------------------------------------


REGRESSION = [
    (nn.MSELoss, torch.nn.MSELoss, {}),
    (nn.L1Loss, torch.nn.L1Loss, {}),
    (nn.HuberLoss, torch.nn.HuberLoss, {}),
    (nn.HuberLoss, torch.nn.HuberLoss, {"delta": 0.4}),
    (nn.HuberLoss, torch.nn.HuberLoss, {"delta": 2.5}),
    (nn.SmoothL1Loss, torch.nn.SmoothL1Loss, {}),
    (nn.SmoothL1Loss, torch.nn.SmoothL1Loss, {"beta": 0.4}),
    (nn.SmoothL1Loss, torch.nn.SmoothL1Loss, {"beta": 0.0}),
]


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("ours,theirs,kwargs", REGRESSION, ids=[f"{t.__name__}{k}" for _, t, k in REGRESSION])
def test_regression_losses_match_torch(ours: Any, theirs: Any, kwargs: dict, reduction: str) -> None:
    x, y = rand(4, 5, scale=2.0), rand(4, 5, seed=1, scale=2.0)
    ours_m, theirs_m = ours(reduction=reduction, **kwargs), theirs(reduction=reduction, **kwargs)
    assert repr(ours_m) == repr(theirs_m)
    compare_loss(ours_m, theirs_m, x, y, target_grad=True)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name", ["mse_loss", "l1_loss", "huber_loss"])
def test_weighted_regression_losses_match_torch(name: str, reduction: str) -> None:
    x, y, w = rand(3, 4, scale=2.0), rand(3, 4, seed=1, scale=2.0), np.abs(rand(3, 4, seed=2))
    compare(lambda a, b: getattr(F, name)(a, b, reduction=reduction, weight=tg.tensor(w)),
            lambda a, b: getattr(tF, name)(a, b, reduction=reduction, weight=torch.tensor(w)), x, y)


def test_regression_target_broadcast_warns_like_torch() -> None:
    x, y = rand(4, 1), rand(4, seed=1)
    with pytest.warns(UserWarning, match=r"target of shape \(4,\), different to the input's shape \(4, 1\)"):
        ours = F.mse_loss(tg.tensor(x), tg.tensor(y))
    with pytest.warns(UserWarning):
        expected = tF.mse_loss(torch.tensor(x), torch.tensor(y))
    np.testing.assert_allclose(ours.item(), expected.item(), **TOL)
    with pytest.raises(ValueError, match=r"mse_loss: target has shape \(3,\) but input has shape \(4, 2\)"):
        F.mse_loss(tg.tensor(rand(4, 2)), tg.tensor(rand(3)))
    with pytest.raises(ValueError, match=r"l1_loss: weight has shape \(2,\) but input has shape \(4, 2\)"):
        F.l1_loss(tg.tensor(rand(4, 2)), tg.tensor(rand(4, 2)), weight=tg.ones(2))


# --- cross entropy and NLL --------------------------------------------------------------------------------------


CE_SHAPES = [((6, 5), (6,)), ((5,), ()), ((4, 5, 3), (4, 3)), ((2, 5, 3, 2), (2, 3, 2))]


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("ignore_index", [-100, 2])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.15])
@pytest.mark.parametrize("shapes", CE_SHAPES, ids=[str(s) for s, _ in CE_SHAPES])
def test_cross_entropy_with_class_indices_matches_torch(shapes: Any, label_smoothing: float, ignore_index: int,
                                                        weighted: bool, reduction: str) -> None:
    x_shape, t_shape = shapes
    x = rand(*x_shape, scale=2.0)
    target = classes(t_shape, 5, ignore=ignore_index if t_shape else None)
    w = np.abs(rand(5, seed=3)) + 0.1 if weighted else None
    kwargs = dict(ignore_index=ignore_index, reduction=reduction, label_smoothing=label_smoothing)
    ours = nn.CrossEntropyLoss(weight=None if w is None else tg.tensor(w), **kwargs)
    theirs = torch.nn.CrossEntropyLoss(weight=None if w is None else torch.tensor(w), **kwargs)
    compare_loss(ours, theirs, x, target)
    assert list(ours.state_dict()) == list(theirs.state_dict())


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.2])
@pytest.mark.parametrize("shape", [(6, 5), (5,), (2, 5, 3, 2)])
def test_cross_entropy_with_probabilities_matches_torch(shape: tuple[int, ...], label_smoothing: float,
                                                        weighted: bool, reduction: str) -> None:
    x = rand(*shape, scale=2.0)
    axis = 1 if len(shape) > 1 else 0
    probs = np.exp(rand(*shape, seed=4))
    probs /= probs.sum(axis=axis, keepdims=True)
    w = np.abs(rand(5, seed=3)) + 0.1 if weighted else None
    kwargs = dict(reduction=reduction, label_smoothing=label_smoothing)
    compare(lambda a, p: F.cross_entropy(a, p, None if w is None else tg.tensor(w), **kwargs),
            lambda a, p: tF.cross_entropy(a, p, None if w is None else torch.tensor(w), **kwargs), x, probs)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("shapes", CE_SHAPES, ids=[str(s) for s, _ in CE_SHAPES])
def test_nll_loss_matches_torch(shapes: Any, weighted: bool, reduction: str) -> None:
    x_shape, t_shape = shapes
    axis = 1 if len(x_shape) > 1 else 0
    logp = np.asarray(tF.log_softmax(torch.tensor(rand(*x_shape)), axis))
    target = classes(t_shape, 5, ignore=-100 if t_shape else None)
    w = np.abs(rand(5, seed=3)) + 0.1 if weighted else None
    ours = nn.NLLLoss(weight=None if w is None else tg.tensor(w), reduction=reduction)
    theirs = torch.nn.NLLLoss(weight=None if w is None else torch.tensor(w), reduction=reduction)
    compare_loss(ours, theirs, logp, target)


def test_cross_entropy_when_every_target_is_ignored_is_nan_like_torch() -> None:
    x, target = rand(3, 4), np.full(3, -100)
    ours = F.cross_entropy(tg.tensor(x), tg.tensor(target))
    assert math.isnan(ours.item()) and math.isnan(tF.cross_entropy(torch.tensor(x), torch.tensor(target)).item())
    assert F.cross_entropy(tg.tensor(x), tg.tensor(target), reduction="sum").item() == 0.0


ALL_IGNORED = [("cross_entropy", 0.0), ("cross_entropy", 0.15), ("nll_loss", 0.0)]


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("ignore_index", [-100, 2])
@pytest.mark.parametrize("shapes", CE_SHAPES, ids=[str(s) for s, _ in CE_SHAPES])
@pytest.mark.parametrize("name,label_smoothing", ALL_IGNORED, ids=[f"{n}{s}" for n, s in ALL_IGNORED])
def test_every_target_ignored_has_torchs_loss_and_a_zero_gradient(name: str, label_smoothing: float, shapes: Any,
                                                                   ignore_index: int, weighted: bool,
                                                                   reduction: str) -> None:
    """An all-padding batch: torch's mean is nan (0/0) but its gradient is 0; sum and none are 0, gradient 0."""
    x_shape, t_shape = shapes
    target = np.full(t_shape, ignore_index)
    w = np.abs(rand(5, seed=3)) + 0.1 if weighted else None
    kwargs: dict[str, Any] = dict(ignore_index=ignore_index, reduction=reduction)
    if label_smoothing:
        kwargs["label_smoothing"] = label_smoothing
    compare_loss(lambda a, t: getattr(F, name)(a, t, None if w is None else tg.tensor(w), **kwargs),
                 lambda a, t: getattr(tF, name)(a, t, None if w is None else torch.tensor(w), **kwargs),
                 rand(*x_shape, scale=2.0), target)
    x = tg.tensor(rand(*x_shape, scale=2.0), requires_grad=True)
    loss = getattr(F, name)(x, tg.tensor(target), None if w is None else tg.tensor(w), **kwargs)
    assert (math.isnan(loss.item()) if reduction == "mean" else not loss.numpy().any())
    loss.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.zeros(x_shape))


@pytest.mark.parametrize("name", ["cross_entropy", "nll_loss"])
def test_kept_targets_of_zero_weight_get_torchs_nan_gradient_and_ignored_ones_zero(name: str) -> None:
    x, target, w = rand(4, 3), np.array([0, 0, -100, 0]), np.array([0.0, 2.0, 1.0])
    compare_loss(lambda a, t: getattr(F, name)(a, t, weight=tg.tensor(w)),
                 lambda a, t: getattr(tF, name)(a, t, weight=torch.tensor(w)), x, target)
    a = tg.tensor(x, requires_grad=True)
    getattr(F, name)(a, tg.tensor(target), weight=tg.tensor(w)).backward()
    nan = np.isnan(a.grad.numpy())  # nll_loss: at the targets; cross_entropy: through log_softmax, the whole row
    np.testing.assert_array_equal(nan[[0, 1, 3]], [[True, name == "cross_entropy", name == "cross_entropy"]] * 3)
    np.testing.assert_array_equal(a.grad.numpy()[2], [0.0, 0.0, 0.0])


def test_an_all_padding_batch_leaves_the_weights_unchanged_after_a_step() -> None:
    tg.manual_seed(0)
    model, loss_fn = nn.Linear(4, 3), nn.CrossEntropyLoss(ignore_index=0)
    opt = tg.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    before = [p.numpy().copy() for p in model.parameters()]
    loss = loss_fn(model(tg.tensor(rand(5, 4))), tg.tensor(np.zeros(5, dtype=np.int64)))
    assert math.isnan(loss.item())
    loss.backward()
    opt.step()
    for p, b in zip(model.parameters(), before):
        np.testing.assert_array_equal(p.numpy(), b)


def test_cross_entropy_takes_arrays_and_lists_as_targets() -> None:
    x = rand(3, 4)
    expected = tF.cross_entropy(torch.tensor(x), torch.tensor([0, 3, 1])).item()
    for target in ([0, 3, 1], np.array([0, 3, 1]), tg.tensor([0, 3, 1])):
        np.testing.assert_allclose(F.cross_entropy(tg.tensor(x), target).item(), expected, **TOL)


def test_cross_entropy_and_nll_reject_bad_targets() -> None:
    x = tg.tensor(rand(4, 5))
    with pytest.raises(ValueError, match=r"cross_entropy: target has shape \(3, 2\) but input has shape \(4, 5\)"):
        F.cross_entropy(x, np.zeros((3, 2), dtype=np.int64))
    with pytest.raises(ValueError, match=r"target has shape \(4,\) but input has shape \(4, 5\): class prob"):
        nn.CrossEntropyLoss()(x, tg.tensor(rand(4)))
    with pytest.raises(TypeError, match="cross_entropy: target must hold class indices .* not bool"):
        F.cross_entropy(x, np.ones(4, dtype=bool))
    with pytest.raises(TypeError, match="nll_loss: target .* must hold integer indices, not float64"):
        nn.NLLLoss()(x, tg.tensor(rand(4)))
    with pytest.raises(IndexError, match="cross_entropy: target 5 is out of bounds for 5 classes"):
        F.cross_entropy(x, [0, 1, 5, 2])
    with pytest.raises(IndexError, match="target -3 is out of bounds"):
        F.nll_loss(x, [0, 1, -3, 2])
    with pytest.raises(ValueError, match=r"weight has shape \(4,\), expected \(5,\)"):
        F.cross_entropy(x, [0, 1, 2, 3], weight=tg.ones(4))
    with pytest.raises(ValueError, match="label_smoothing must be between 0.0 and 1.0, got 1.5"):
        nn.CrossEntropyLoss(label_smoothing=1.5)
    with pytest.raises(ValueError, match="class dimension"):
        F.cross_entropy(tg.tensor(1.0), 0)


# --- binary cross entropy ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
def test_bce_matches_torch(weighted: bool, reduction: str) -> None:
    rng = np.random.default_rng(0)
    p, y = rng.uniform(0.02, 0.98, (4, 3)), rng.uniform(0, 1, (4, 3))
    w = np.abs(rand(3, seed=2)) if weighted else None
    ours = nn.BCELoss(weight=None if w is None else tg.tensor(w), reduction=reduction)
    theirs = torch.nn.BCELoss(weight=None if w is None else torch.tensor(w), reduction=reduction)
    compare_loss(ours, theirs, p, y)


def test_bce_clamps_its_logs_at_minus_100_like_torch() -> None:
    p, y = np.array([0.0, 1.0, 0.0, 1.0, 1e-50]), np.array([1.0, 0.0, 0.0, 1.0, 1.0])
    ours = F.binary_cross_entropy(tg.tensor(p), tg.tensor(y), reduction="none")
    np.testing.assert_allclose(ours.numpy(), tF.binary_cross_entropy(torch.tensor(p), torch.tensor(y),
                                                                     reduction="none").numpy(), **TOL)
    np.testing.assert_array_equal(ours.numpy(), [100.0, 100.0, 0.0, 0.0, 100.0])
    x = tg.tensor(p, requires_grad=True)
    F.binary_cross_entropy(x, tg.tensor(y)).backward()
    assert np.isfinite(x.grad.numpy()).all()


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("pos_weighted", [False, True])
def test_bce_with_logits_matches_torch(pos_weighted: bool, weighted: bool, reduction: str) -> None:
    x, y = rand(4, 3, scale=3.0), np.random.default_rng(1).uniform(0, 1, (4, 3))
    x[0] = [40.0, -40.0, 0.0]  # saturated logits stay finite
    w = np.abs(rand(3, seed=2)) if weighted else None
    pw = np.abs(rand(3, seed=5)) + 0.5 if pos_weighted else None
    kwargs = dict(reduction=reduction)
    ours = nn.BCEWithLogitsLoss(None if w is None else tg.tensor(w), pos_weight=None if pw is None else pw, **kwargs)
    theirs = torch.nn.BCEWithLogitsLoss(None if w is None else torch.tensor(w),
                                        pos_weight=None if pw is None else torch.tensor(pw), **kwargs)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    compare_loss(ours, theirs, x, y, target_grad=True)


def test_bce_with_logits_is_stable_at_huge_logits() -> None:
    x = tg.tensor([1000.0, -1000.0, 1000.0], requires_grad=True)
    loss = F.binary_cross_entropy_with_logits(x, tg.tensor([1.0, 0.0, 0.0]), reduction="none")
    np.testing.assert_array_equal(loss.numpy(), [0.0, 0.0, 1000.0])
    loss.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, 0.0, 1.0])


def test_binary_losses_reject_bad_arguments() -> None:
    p = tg.tensor([0.2, 0.7])
    with pytest.raises(ValueError, match=r"binary_cross_entropy: target has shape \(3,\) but input has shape \(2,\)"):
        nn.BCELoss()(p, tg.tensor([1.0, 0.0, 1.0]))
    with pytest.raises(ValueError, match=r"with_logits: target has shape \(2, 1\) but input has shape \(2,\)"):
        nn.BCEWithLogitsLoss()(p, tg.tensor([[1.0], [0.0]]))
    with pytest.raises(ValueError, match="input should be between 0 and 1"):
        F.binary_cross_entropy(tg.tensor([1.5, 0.5]), tg.tensor([1.0, 0.0]))


# --- reductions and construction ---------------------------------------------------------------------------------


@pytest.mark.parametrize("loss", [nn.MSELoss, nn.L1Loss, nn.HuberLoss, nn.SmoothL1Loss, nn.CrossEntropyLoss,
                                  nn.NLLLoss, nn.BCELoss, nn.BCEWithLogitsLoss])
def test_a_bad_reduction_is_a_value_error(loss: Any) -> None:
    with pytest.raises(ValueError, match=f"{loss.__name__}: reduction must be 'none', 'mean' or 'sum', not 'avg'"):
        loss(reduction="avg")


def test_functional_reduction_and_legacy_arguments() -> None:
    x, y = tg.tensor(rand(3)), tg.tensor(rand(3, seed=1))
    with pytest.raises(ValueError, match="mse_loss: reduction must be"):
        F.mse_loss(x, y, reduction="elementwise")
    for size_average, reduce, meaning in [(False, None, "sum"), (None, False, "none"), (True, True, "mean")]:
        with pytest.warns(UserWarning, match=f"reduction='{meaning}'"):
            legacy = F.mse_loss(x, y, size_average, reduce)
        np.testing.assert_array_equal(legacy.numpy(), F.mse_loss(x, y, reduction=meaning).numpy())
    with pytest.warns(UserWarning, match="reduction='sum'"):
        assert nn.CrossEntropyLoss(size_average=False).reduction == "sum"


def test_loss_parameter_checks() -> None:
    with pytest.raises(ValueError, match="HuberLoss: delta must be a positive number, got 0"):
        nn.HuberLoss(delta=0)
    with pytest.raises(ValueError, match="huber_loss: delta must be positive"):
        F.huber_loss(tg.zeros(2), tg.zeros(2), delta=-1.0)
    with pytest.raises(ValueError, match="SmoothL1Loss: beta must be non-negative"):
        nn.SmoothL1Loss(beta=-0.5)
