"""Programs that gave another answer than PyTorch's without saying so (issue 21's adversarial
pass), each against torch on the same inputs in float64: var/std spelled with a positional dim,
reductions over dim=(), zero adjoints times infinite partials on Var (IEEE's NaN, as Tensor and
PyTorch give), atan2's slope at the origin, and a gradient of a piecewise-linear function under
create_graph (a gradient penalty)."""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

import tapegrad as tg

torch = pytest.importorskip("torch")

X = np.random.default_rng(21).standard_normal((3, 4, 5))


def both(f: Callable[[Any], Any]) -> tuple[np.ndarray, np.ndarray]:
    """f on a tapegrad and a torch tensor of X: values as arrays."""
    ours = f(tg.tensor(X))
    theirs = f(torch.tensor(X))
    return np.asarray(ours.numpy()), theirs.numpy()


SPREAD_SPELLINGS = [
    lambda t: t.var(1), lambda t: t.var(dim=1), lambda t: t.var(1, keepdim=True), lambda t: t.var(1, True),
    lambda t: t.var(1, False), lambda t: t.var(1, True, True), lambda t: t.var((0, 2)), lambda t: t.var(dim=(0, 2)),
    lambda t: t.var(-1, unbiased=False), lambda t: t.var(0, correction=2), lambda t: t.var(True),
    lambda t: t.var(False), lambda t: t.var(None), lambda t: t.var(dim=None), lambda t: t.var(dim=()),
    lambda t: t.std(0), lambda t: t.std(dim=0), lambda t: t.std(0, keepdim=True), lambda t: t.std(2, False, True),
]
SPREAD_FUNCTIONS = [(lambda m, t: m.var(t, 1)), (lambda m, t: m.var(t, dim=1)), (lambda m, t: m.std(t, 0)),
                    (lambda m, t: m.std(t, 0, keepdim=True)), (lambda m, t: m.var(t, 1, unbiased=False))]


@pytest.mark.parametrize("k", range(len(SPREAD_SPELLINGS)))
def test_var_and_std_with_a_positional_dim_are_pytorchs(k: int) -> None:
    """x.var(1) was NumPy's population variance where x.var(dim=1) is PyTorch's unbiased one: every
    PyTorch spelling now gives PyTorch's value."""
    ours, theirs = both(SPREAD_SPELLINGS[k])
    assert ours.shape == theirs.shape
    assert_allclose(ours, theirs, rtol=1e-13)


@pytest.mark.parametrize("k", range(len(SPREAD_FUNCTIONS)))
def test_var_and_std_functions_with_a_positional_dim_are_pytorchs(k: int) -> None:
    f = SPREAD_FUNCTIONS[k]
    assert_allclose(f(tg, tg.tensor(X)).numpy(), f(torch, torch.tensor(X)).numpy(), rtol=1e-13)


def test_numpy_spellings_of_var_stay_numpys() -> None:
    t = tg.tensor(X)
    assert_allclose(t.var().item(), X.var(), rtol=1e-13)
    assert_allclose(t.var(axis=1).numpy(), X.var(axis=1), rtol=1e-13)
    assert_allclose(t.std(axis=(0, 2), ddof=1).numpy(), X.std(axis=(0, 2), ddof=1), rtol=1e-13)
    assert_allclose(np.var(t, axis=0), X.var(axis=0), rtol=1e-13)  # NumPy calls t.var(axis=..., ...)
    assert_allclose(tg.var(t, axis=2, keepdims=True).numpy(), X.var(axis=2, keepdims=True), rtol=1e-13)
    assert t.var(axis=()).shape == X.shape  # NumPy's axis=(): no axis


def test_var_spelling_errors_name_the_problem() -> None:
    t = tg.tensor(X)
    for call, msg in [(lambda: t.var(1, 2), "second positional argument is unbiased, a bool"),
                      (lambda: t.var(1, dim=1), "both as a positional and as a keyword"),
                      (lambda: t.var(1, axis=1), "both as a positional and as a keyword"),
                      (lambda: t.var(True, False), "takes no other positional argument"),
                      (lambda: t.var(1, True, False, 3), "at most 3 positional arguments"),
                      (lambda: t.var(dim=1, ddof=1), "ddof= is NumPy's spelling"),
                      (lambda: t.var(1, unbiased=True, correction=0), "unbiased and correction both given")]:
        with pytest.raises(TypeError, match=msg):
            call()


@pytest.mark.parametrize("name", ["sum", "mean"])
def test_reductions_over_dim_empty_reduce_everything(name: str) -> None:
    """PyTorch's dim=() (and a positional ()) reduces over every axis; NumPy's axis=() over none."""
    for spell in (lambda t: getattr(t, name)(dim=()), lambda t: getattr(t, name)(()),
                  lambda t: getattr(t, name)(dim=[], keepdim=True)):
        ours, theirs = both(spell)
        assert ours.shape == theirs.shape
        assert_allclose(ours, theirs, rtol=1e-13)
    assert getattr(tg.tensor(X), name)(axis=()).shape == X.shape
    x = tg.tensor(X, requires_grad=True)
    getattr(x, name)(dim=()).backward()
    tx = torch.tensor(X, requires_grad=True)
    getattr(tx, name)(dim=()).backward()
    assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-15)
    with pytest.raises(TypeError, match="axes both positionally"):
        getattr(tg.tensor(X), name)(1, dim=1)


# A zero adjoint passes on through an infinite or NaN partial as IEEE says (0 * inf = NaN), as
# PyTorch's and tapegrad's Tensor do; a record that does not lead to the output passes nothing.
VAR_PROGRAMS = [
    ("log(exp(x)) at 800", lambda m, x: m.log(m.exp(x)), 800.0),
    ("sqrt(x) * 0 at 0", lambda m, x: m.sqrt(x) * 0, 0.0),
    ("0 * log(x) at 0", lambda m, x: 0 * m.log(x), 0.0),
    ("(1 / x) * 0 at 0", lambda m, x: (1 / x) * 0, 0.0),
    ("asin(x) * 0 at 1", lambda m, x: m.asin(x) * 0, 1.0),
    ("maximum(sqrt(x), 5) at 0", lambda m, x: m.maximum(m.sqrt(x), m.tensor(5.0) if m is torch else 5.0), 0.0),
    ("sqrt(x) * 0 + x at 0", lambda m, x: m.sqrt(x) * 0 + x, 0.0),
    ("x * 2 at 0", lambda m, x: x * 2, 0.0),
    ("exp(x) * 0 at 1", lambda m, x: m.exp(x) * 0, 1.0),
]


@pytest.mark.parametrize("name,f,x0", VAR_PROGRAMS, ids=[p[0] for p in VAR_PROGRAMS])
def test_a_zero_adjoint_times_an_infinite_partial_is_nan_on_var_as_on_tensor(name: str, f: Any, x0: float) -> None:
    tx = torch.tensor(x0, dtype=torch.float64, requires_grad=True)
    f(torch, tx).backward()
    want = tx.grad.item()
    x = tg.Var(x0)
    f(tg, x).backward()
    t = tg.tensor(x0, requires_grad=True)
    f(tg, t).backward()
    for got, what in ((x.grad, "Var"), (t.grad.item(), "Tensor")):
        assert (math.isnan(got) and math.isnan(want)) or got == want, f"{name}: {what} {got} != torch {want}"


def test_records_that_do_not_lead_to_the_output_pass_nothing() -> None:
    """An unused sqrt(0) on the tape (its partial is infinite, its adjoint zero) is not on the output's
    path: x's gradient stays 2, not NaN. Also through autograd.grad and with several outputs."""
    x = tg.Var(0.0)
    unused = tg.sqrt(x) * 0  # noqa: F841 (recorded, never used)
    y = x * 2
    y.backward()
    assert x.grad == 2.0
    (g,) = tg.autograd.grad(x * 3, [x])
    assert g == 3.0
    t = tg.tensor(0.0, requires_grad=True)
    unused_t = t.sqrt() * 0  # noqa: F841
    (t * 2).backward()
    assert t.grad.item() == 2.0


def test_atan2_slope_at_the_origin_is_zero_as_pytorchs() -> None:
    for a0, b0 in ((0.0, 0.0), (-0.0, 0.0), (0.0, -0.0), (1.0, 0.0), (0.0, 2.0), (1e-200, 1e-200)):
        ta = torch.tensor(a0, dtype=torch.float64, requires_grad=True)
        tb = torch.tensor(b0, dtype=torch.float64, requires_grad=True)
        torch.atan2(ta, tb).backward()
        a = tg.tensor(a0, requires_grad=True)
        b = tg.tensor(b0, requires_grad=True)
        tg.atan2(a, b).backward()
        va, vb = tg.Var(a0), tg.Var(b0)
        tg.atan2(va, vb).backward()
        for got, want in ((a.grad.item(), ta.grad.item()), (b.grad.item(), tb.grad.item()), (va.grad, ta.grad.item()),
                          (vb.grad, tb.grad.item())):
            assert got == want or (math.isnan(got) and math.isnan(want)), (a0, b0, got, want)


@pytest.mark.parametrize("fn", ["relu", "abs", "clamp_min", "maximum", "minimum"])
def test_a_gradient_penalty_through_a_piecewise_linear_function(fn: str) -> None:
    """autograd.grad(relu(x).sum(), x, create_graph=True) gave a gradient that did not require grad,
    so a gradient penalty's second backward raised; PyTorch's requires grad and the second backward
    gives zeros (a slope of relu has a zero derivative). tapegrad's slopes of the piecewise-linear
    primitives are all results of x with a zero derivative: where PyTorch's gradient requires grad
    (relu, clamp) the second backward is PyTorch's, and where it does not (abs, maximum, minimum:
    PyTorch's second backward raises) it gives the zeros the mathematics gives."""
    x0 = np.array([1.0, -2.0, 3.0, 0.5])
    ops = {"relu": lambda m, x: m.nn.functional.relu(x), "abs": lambda m, x: x.abs(),
           "clamp_min": lambda m, x: m.clamp(x, min=0.7) if m is torch else m.clip(x, 0.7, np.inf),
           "maximum": lambda m, x: m.maximum(x, x.detach() * 0 + 0.7),
           "minimum": lambda m, x: m.minimum(x, x.detach() * 0 + 0.7)}
    tx = torch.tensor(x0, requires_grad=True)
    (tg_,) = torch.autograd.grad(ops[fn](torch, tx).sum(), tx, create_graph=True)
    x = tg.tensor(x0, requires_grad=True)
    (g,) = tg.autograd.grad(ops[fn](tg, x).sum(), x, create_graph=True)
    assert g.requires_grad
    assert_array_equal(g.detach().numpy(), tg_.detach().numpy())
    (g**2).sum().backward()
    assert_array_equal(x.grad.numpy(), np.zeros(4))
    if tg_.requires_grad:
        (tg_**2).sum().backward()
        dense = torch.zeros(4, dtype=torch.float64) + tx.grad  # (torch's grad may be a ZeroTensor)
        assert_array_equal(x.grad.numpy(), dense.numpy())
