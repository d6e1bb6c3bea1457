"""tapegrad's functional API (JAX's names and semantics) against closed forms, finite
differences and PyTorch."""

from __future__ import annotations

import numpy as np
import pytest

import tapegrad as tg


def _np(t) -> np.ndarray:
    return np.asarray(t.numpy() if isinstance(t, tg.Tensor) else t, dtype=np.float64)


def test_grad_and_value_and_grad() -> None:
    x0 = np.array([0.5, 1.0, -2.0])
    f = lambda x: tg.sum(tg.sin(x) * x)  # noqa: E731
    np.testing.assert_allclose(_np(tg.grad(f)(x0)), np.sin(x0) + x0 * np.cos(x0), rtol=1e-15)
    v, g = tg.value_and_grad(f)(x0)
    assert v.item() == pytest.approx(float(np.sum(np.sin(x0) * x0)), rel=1e-15)
    np.testing.assert_allclose(_np(g), np.sin(x0) + x0 * np.cos(x0), rtol=1e-15)
    # argnums, has_aux, numbers and pytrees
    h = lambda a, b: (a * b * b, "aux")  # noqa: E731
    ga, gb = tg.grad(h, argnums=(0, 1), has_aux=True)(3.0, 2.0)[0]
    assert (ga.item(), gb.item()) == (4.0, 12.0)
    assert tg.grad(h, argnums=1, has_aux=True)(3.0, 2.0)[1] == "aux"
    d = tg.grad(lambda p: p["a"] ** 2 * p["b"][0] + p["b"][1])({"a": 3.0, "b": [2.0, 5.0]})
    assert d["a"].item() == 12.0 and d["b"][0].item() == 9.0 and d["b"][1].item() == 1.0
    assert isinstance(d["b"], list)
    t = tg.tensor([1.0, 2.0])
    assert tg.grad(lambda x: (x * x).sum())(t).numpy().tolist() == [2.0, 4.0]
    assert not t.requires_grad and t.grad is None  # the argument itself is left alone


def test_higher_order_by_composition() -> None:
    cube = lambda x: x * x * x  # noqa: E731
    assert tg.grad(cube)(2.0).item() == 12.0
    assert tg.grad(tg.grad(cube))(2.0).item() == 12.0
    assert tg.grad(tg.grad(tg.grad(cube)))(2.0).item() == 6.0
    assert tg.grad(tg.grad(tg.grad(tg.grad(tg.exp))))(0.7).item() == pytest.approx(np.exp(0.7), rel=1e-15)


def _F(x):
    return tg.stack([x[0] * x[1], tg.exp(x[2]) * x[0], tg.tanh(x[1] - x[2])])


def test_jacfwd_equals_jacrev_and_torch(torch) -> None:
    x0 = np.array([0.3, -0.8, 1.1])
    Jr, Jf = _np(tg.jacrev(_F)(x0)), _np(tg.jacfwd(_F)(x0))
    np.testing.assert_allclose(Jr, Jf, rtol=1e-14, atol=1e-15)
    Jt = torch.autograd.functional.jacobian(
        lambda x: torch.stack([x[0] * x[1], torch.exp(x[2]) * x[0], torch.tanh(x[1] - x[2])]), torch.tensor(x0))
    np.testing.assert_allclose(Jr, Jt.numpy(), rtol=1e-14, atol=1e-15)
    assert tg.jacobian is tg.jacrev
    # matrix input: out.shape + in.shape
    W0 = np.arange(6.0).reshape(2, 3) / 10
    J = tg.jacrev(lambda W: tg.tanh(W @ np.ones(3)))(W0)
    assert J.shape == (2, 2, 3)
    np.testing.assert_allclose(_np(J), _np(tg.jacfwd(lambda W: tg.tanh(W @ np.ones(3)))(W0)), rtol=1e-14)


def test_hessian_symmetric_and_equal_to_torch(torch) -> None:
    rng = np.random.default_rng(5)
    A = rng.standard_normal((6, 4))
    x0 = rng.standard_normal(4)
    H = _np(tg.hessian(lambda x: tg.logsumexp(A @ x) + 0.5 * (x * x).sum())(x0))
    np.testing.assert_allclose(H, H.T, rtol=1e-13, atol=1e-15)
    At = torch.tensor(A)
    Ht = torch.autograd.functional.hessian(lambda t: torch.logsumexp(At @ t, 0) + 0.5 * (t * t).sum(),
                                           torch.tensor(x0))
    np.testing.assert_allclose(H, Ht.numpy(), rtol=1e-12, atol=1e-14)
    v = rng.standard_normal(4)
    value, (hv,) = tg.hvp(lambda x: tg.logsumexp(A @ x) + 0.5 * (x * x).sum(), (x0,), (v,))
    np.testing.assert_allclose(_np(hv), H @ v, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("seed", range(5))
def test_jvp_and_vjp_are_adjoint(seed: int) -> None:
    """<vjp(u), v> == <u, jvp(v)> on random functions of two arguments."""
    rng = np.random.default_rng(seed)
    a0, b0 = rng.standard_normal(3), rng.standard_normal((3, 2))
    M = rng.standard_normal((2, 3))

    def f(a, b):
        return [tg.sin(a) * (b @ np.ones(2)), tg.tanh(M @ a + b.sum(axis=0)).exp()]

    va, vb = rng.standard_normal(3), rng.standard_normal((3, 2))
    u = [rng.standard_normal(3), rng.standard_normal(2)]
    out, jv = tg.jvp(f, (a0, b0), (va, vb))
    out2, vjp_fn = tg.vjp(f, a0, b0)
    ga, gb = vjp_fn(u)
    lhs = float(np.sum(_np(ga) * va) + np.sum(_np(gb) * vb))
    rhs = float(sum(np.sum(ui * _np(j)) for ui, j in zip(u, jv)))
    assert lhs == pytest.approx(rhs, rel=1e-12)
    assert isinstance(jv, list) and len(jv) == 2
    np.testing.assert_allclose(_np(out[1]), _np(out2[1]), rtol=0)


def test_errors() -> None:
    with pytest.raises(TypeError, match="one output element"):
        tg.grad(lambda x: x * 2)(np.ones(3))
    with pytest.raises(ValueError, match="argnums"):
        tg.grad(lambda x: x, argnums=2)(1.0)
    _, fn = tg.vjp(lambda x: x * 2, np.ones(3))
    with pytest.raises(ValueError, match="cotangent"):
        fn(np.ones(2))
    with pytest.raises(ValueError, match="tangent"):
        tg.jvp(lambda x: x, (np.ones(3),), (np.ones(2),))
