"""Forward mode: ``tapegrad.autograd.jvp`` (the tangent sweep over the tape) for every op
against finite differences and PyTorch's ``torch.func.jvp``; vector tangents; adjointness
with reverse mode; forward over reverse and reverse over forward; the functional API's
forward-mode transformations and ``Var`` arguments."""

from __future__ import annotations

import zlib
from typing import Callable, List, Sequence

import numpy as np
import pytest

import tapegrad as tg
from conftest import OPS, any_operand_domain, op_domain

_OPS = list(OPS)

Fn = Callable[[Sequence[tg.Tensor]], tg.Tensor]
# torch.func's first use imports torch.jit, which warns that it is deprecated.
TORCH_FUNC = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _fd_directional(f: Fn, xs: List[np.ndarray], vs: List[np.ndarray], h: float = 1e-3) -> np.ndarray:
    """d/dt f(xs + t vs) at 0 by the five-point stencil, without recording."""
    def at(t: float) -> np.ndarray:
        with tg.no_grad():
            return np.asarray(f([tg.tensor(x + t * v) for x, v in zip(xs, vs)]).numpy(), dtype=np.float64)
    return (-at(2 * h) + 8 * at(h) - 8 * at(-h) + at(-2 * h)) / (12 * h)


def _check(f: Fn, xs: List[np.ndarray], seed: int = 0) -> None:
    """jvp against finite differences; batched against single sweeps; <u, Jv> == <J^T u, v>;
    forward over reverse against reverse over reverse; reverse over forward likewise."""
    rng = np.random.default_rng(seed)
    ts = [tg.tensor(x, requires_grad=True) for x in xs]
    vs = [rng.uniform(-1, 1, size=np.shape(x)) for x in xs]
    v2 = [rng.uniform(-1, 1, size=np.shape(x)) for x in xs]
    y = f(ts)
    (jv,) = tg.autograd.jvp(y, ts, vs)
    assert tuple(jv.shape) == tuple(y.shape) and not jv.requires_grad
    np.testing.assert_allclose(jv.numpy(), _fd_directional(f, xs, vs), rtol=1e-7, atol=1e-8)
    (jb,) = tg.autograd.jvp(y, ts, [np.stack([a, b]) for a, b in zip(vs, v2)], batched=True)
    (jv2,) = tg.autograd.jvp(y, ts, v2)
    np.testing.assert_allclose(jb.numpy(), np.stack([jv.numpy(), jv2.numpy()]), rtol=1e-13, atol=1e-14)
    u = rng.uniform(-1, 1, size=tuple(y.shape))
    jtu = tg.autograd.grad(y, ts, [u], allow_unused=True)
    rhs = sum(float(np.sum(g.numpy() * v)) for g, v in zip(jtu, vs) if g is not None)
    assert float(np.sum(u * jv.numpy())) == pytest.approx(rhs, rel=1e-11, abs=1e-13)
    # second order, both ways: d/dx <J^T u, v>
    gs = tg.autograd.grad(y, ts, [u], create_graph=True, allow_unused=True)
    live = [(g, x, v) for g, x, v in zip(gs, ts, vs) if g is not None and g.requires_grad]
    if not live:
        return
    inner = sum(((g * v).sum() for g, _, v in live), tg.tensor(0.0))
    rev = tg.autograd.grad(inner, ts, allow_unused=True)
    fwd = tg.autograd.jvp([g for g, _, _ in live], ts, vs)
    for (_, x, _), hv in zip(live, fwd):
        want = rev[[i for i, t in enumerate(ts) if t is x][0]]
        np.testing.assert_allclose(hv.numpy(), want.numpy(), rtol=1e-10, atol=1e-12)
    (jvr,) = tg.autograd.jvp(y, ts, vs, create_graph=True)
    if jvr.requires_grad:
        back = tg.autograd.grad((jvr * u).sum(), ts, allow_unused=True)
        for a, b in zip(back, rev):
            if a is not None and b is not None:
                np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", _OPS)
def test_tangents_of_every_op(name: str) -> None:
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    op = getattr(tg, name)
    if OPS[name].arity == 1:
        _check(lambda t: op(t[0]), [rng.uniform(*op_domain(name), size=(2, 3))])
    else:
        _check(lambda t: op(t[0], t[1]), [rng.uniform(*op_domain(name, 0), size=(2, 3)),
                                          rng.uniform(*op_domain(name, 1), size=(3,))])
        lo, hi = any_operand_domain(name)
        c1, c2 = lo + 0.8 * (hi - lo), lo + 0.6 * (hi - lo)
        _check(lambda t: op(t[0], c1) + op(c2, t[0]), [rng.uniform(lo, hi, size=(4,))])


IDX = np.array([[0, 5], [2, 2]])
MASK = np.array([[True, False, True], [False, True, True]])
STRUCTURAL = {
    "sum axis": (lambda t: tg.sum(t[0] * t[0], axis=1), [(2, 3)]),
    "mean keepdims": (lambda t: tg.mean(tg.exp(t[0]), axis=0, keepdims=True), [(3, 2)]),
    "prod": (lambda t: tg.prod(t[0], axis=1), [(2, 3)]),
    "amax": (lambda t: tg.max(t[0] * t[0], axis=1), [(2, 3)]),
    "amin all": (lambda t: tg.min(tg.sin(t[0])), [(2, 3)]),
    "var ddof": (lambda t: tg.var(t[0], axis=1, ddof=1), [(2, 4)]),
    "std": (lambda t: tg.std(t[0]), [(5,)]),
    "logsumexp": (lambda t: tg.logsumexp(t[0], axis=1), [(2, 3)]),
    "softmax": (lambda t: tg.softmax(t[0], axis=-1), [(2, 3)]),
    "log_softmax": (lambda t: tg.log_softmax(t[0], axis=0), [(3, 2)]),
    "matmul": (lambda t: tg.tanh(t[0] @ t[1]), [(2, 3), (3, 2)]),
    "matmul batched": (lambda t: tg.sin(t[0] @ t[1]), [(2, 2, 3), (3,)]),
    "matmul batch right": (lambda t: tg.sin(t[0] @ t[1]), [(2, 3), (2, 3, 4)]),
    "matrix vector": (lambda t: tg.exp(0.3 * (t[0] @ t[1])), [(3, 2), (2,)]),
    "vector matrix": (lambda t: tg.exp(0.3 * (t[0] @ t[1])), [(3,), (3, 2)]),
    "dot": (lambda t: tg.sin(t[0] @ t[1]), [(4,), (4,)]),
    "reshape transpose broadcast": (lambda t: tg.exp(tg.broadcast_to(t[0].T.reshape(1, 6), (2, 6))), [(2, 3)]),
    "basic slices": (lambda t: tg.exp(t[0][:, ::-2]) * t[0][1:, 1:2].sum(), [(3, 4)]),
    "integer indexing": (lambda t: tg.sin(t[0].reshape(-1)[IDX]), [(2, 3)]),
    "boolean mask": (lambda t: t[0][MASK] ** 2, [(2, 3)]),
    "concatenate stack": (
        lambda t: tg.concatenate([tg.stack([tg.sin(t[0]), t[1] * t[0]]), (t[1] * t[1]).reshape(1, 2)]), [(2,), (2,)]),
    "where clip": (lambda t: tg.where(np.array([True, False, True]), tg.exp(t[0]), tg.clip(t[0], -0.5, 0.5) * t[0]),
                   [(3,)]),
    "float32 input promoted": (lambda t: t[0] * t[1].astype(np.float64), [(3,), (3,)]),
}


@pytest.mark.parametrize("name", list(STRUCTURAL))
def test_tangents_of_reductions_matmul_shapes_indexing(name: str) -> None:
    f, shapes = STRUCTURAL[name]
    rng = np.random.default_rng(len(name))
    _check(f, [rng.uniform(-1.5, 1.5, size=s) for s in shapes])


@TORCH_FUNC
def test_tangents_match_torch_func_jvp(torch) -> None:
    rng = np.random.default_rng(3)
    A, x0, v = rng.standard_normal((4, 3)), rng.standard_normal(3), rng.standard_normal(3)
    x = tg.tensor(x0, requires_grad=True)
    y = tg.softmax(tg.tanh(A @ x) * x.sum())
    (jv,) = tg.autograd.jvp(y, x, v)
    At = torch.tensor(A)
    _, want = torch.func.jvp(lambda t: torch.softmax(torch.tanh(At @ t) * t.sum(), 0), (torch.tensor(x0),),
                             (torch.tensor(v),))
    np.testing.assert_allclose(jv.numpy(), want.numpy(), rtol=1e-13, atol=1e-15)


def test_float32_tangents_stay_float32() -> None:
    x = tg.tensor(np.array([0.5, 1.0], dtype=np.float32), requires_grad=True)
    (jv,) = tg.autograd.jvp(tg.exp(x) * 2.0, x, [1.0, 0.0])
    assert jv.dtype == np.float32
    np.testing.assert_allclose(jv.numpy(), [2 * np.exp(0.5), 0.0], rtol=1e-6)


def test_fourth_derivative_by_mixing_modes() -> None:
    """x^5 at 2: 5x^4 = 80, 20x^3 = 160, 60x^2 = 240, 120x = 240, exactly."""
    x = tg.tensor([2.0], requires_grad=True)
    y = x ** 5
    (g1,) = tg.autograd.grad(y, x, create_graph=True)
    (g2,) = tg.autograd.jvp(g1, x, [1.0], create_graph=True)
    (g3,) = tg.autograd.grad(g2, x, create_graph=True)
    (g4,) = tg.autograd.jvp(g3, x, [1.0])
    assert [g1.item(), g2.item(), g3.item(), g4.item()] == [80.0, 160.0, 240.0, 240.0]


def test_jvp_semantics_and_errors() -> None:
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    z = tg.tensor([3.0], requires_grad=True)
    w = z * 2.0
    r = tg.autograd.jvp([x, w, tg.exp(x)], [x], [np.array([0.5, -1.0])])
    assert r[0].numpy().tolist() == [0.5, -1.0] and r[1].numpy().tolist() == [0.0]
    assert r[2].numpy()[1] == pytest.approx(-np.exp(2.0))
    assert tg.autograd.jvp(tg.exp(x), x, None)[0].numpy().tolist() == [0.0, 0.0]  # a None tangent is zero
    y = tg.exp(x)
    with pytest.raises(ValueError, match=r"has shape \(3,\) but input 0 has shape \(2,\)"):
        tg.autograd.jvp(y, x, np.ones(3))
    with pytest.raises(RuntimeError, match="does not require grad"):
        tg.autograd.jvp(y, tg.tensor([1.0, 2.0]), np.ones(2))
    with pytest.raises(ValueError, match=r"tangents\[0\] has shape \(2,\) for input 0 of shape \(2,\) \(expected \(K"):
        tg.autograd.jvp(y, x, np.ones(2), batched=True)
    with pytest.raises(ValueError, match="2 tangents for 1 inputs"):
        tg.autograd.jvp(y, [x], [np.ones(2), np.ones(2)])
    with pytest.raises(TypeError, match="must be Tensors"):
        tg.autograd.jvp(y, [np.ones(2)], [np.ones(2)])


# --- the functional API on the tangent sweep -----------------------------------------------------


def test_jacfwd_is_one_vector_sweep_and_equals_jacrev() -> None:
    def F(p):
        return [p["a"] * tg.sum(p["b"]), tg.exp(p["a"][0]) * p["b"]]

    p0 = {"a": np.array([0.3, -0.2]), "b": np.array([[1.0, 2.0], [0.5, -1.0]])}
    Jf, Jr = tg.jacfwd(F)(p0), tg.jacrev(F)(p0)
    for o in range(2):
        for k in ("a", "b"):
            assert Jf[o][k].shape == Jr[o][k].shape
            np.testing.assert_allclose(Jf[o][k].numpy(), Jr[o][k].numpy(), rtol=1e-14, atol=1e-15)
    assert Jf[0]["b"].shape == (2, 2, 2) and Jf[1]["a"].shape == (2, 2, 2)


@TORCH_FUNC
def test_hessian_every_composition_agrees(torch) -> None:
    rng = np.random.default_rng(8)
    A, x0 = rng.standard_normal((5, 3)), rng.standard_normal(3)

    def f(x):
        return tg.logsumexp(A @ tg.sin(x)) + (x * x * x).sum() / 3

    H = tg.hessian(f)(x0).numpy()
    for other in (tg.jacrev(tg.jacrev(f)), tg.jacfwd(tg.jacfwd(f)), tg.jacrev(tg.jacfwd(f))):
        np.testing.assert_allclose(other(x0).numpy(), H, rtol=1e-12, atol=1e-13)
    At = torch.tensor(A)
    Ht = torch.func.hessian(lambda t: torch.logsumexp(At @ torch.sin(t), 0) + (t * t * t).sum() / 3)(torch.tensor(x0))
    np.testing.assert_allclose(H, Ht.numpy(), rtol=1e-12, atol=1e-13)
    v = rng.standard_normal(3)
    _, (hv,) = tg.hvp(f, (x0,), (v,))
    np.testing.assert_allclose(hv.numpy(), H @ v, rtol=1e-12, atol=1e-13)
    # the third derivative tensor: jacfwd of the Hessian, symmetric in all three indices
    T = tg.jacfwd(tg.hessian(f))(x0).numpy()
    np.testing.assert_allclose(T, T.transpose(1, 0, 2), rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(T, T.transpose(2, 1, 0), rtol=1e-11, atol=1e-12)


@TORCH_FUNC
def test_jvp_matches_torch(torch) -> None:
    x0, y0, v, w = np.array([0.2, 0.7]), np.array([1.5, -0.5]), np.array([1.0, 0.5]), np.array([-0.3, 2.0])
    out, t = tg.jvp(lambda a, b: [tg.sin(a) * b, (a @ b) * a], (x0, y0), (v, w))
    _, tt = torch.func.jvp(lambda a, b: (torch.sin(a) * b, (a @ b) * a), (torch.tensor(x0), torch.tensor(y0)),
                           (torch.tensor(v), torch.tensor(w)))
    for a, b in zip(t, tt):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(out[0].numpy(), np.sin(x0) * y0, rtol=1e-15)


def test_var_arguments_give_var_results() -> None:
    x = tg.Var(2.0)
    g = tg.grad(lambda a: a * a * a)(x)
    assert isinstance(g, tg.Var) and g.data == 12.0 and not g.requires_grad
    assert tg.grad(tg.grad(lambda a: a * a * a))(x).data == 12.0
    assert tg.grad(tg.grad(tg.grad(lambda a: a * a * a)))(x).data == 6.0
    d = tg.grad(lambda p: p["u"] * p["w"][0] + p["w"][1])({"u": tg.Var(3.0), "w": [tg.Var(5.0), 1.0]})
    assert isinstance(d["u"], tg.Var) and d["u"].data == 5.0 and d["w"][0].data == 3.0
    assert isinstance(d["w"][1], tg.Tensor) and d["w"][1].item() == 1.0  # a float argument: a 0-d tensor
    _, t = tg.jvp(lambda a: tg.exp(a), (tg.Var(0.0),), (1.0,))
    assert t.item() == 1.0


def test_jvp_on_vars() -> None:
    """The scalar tangent sweep: <grad, v> == jvp(v); a leaf used with two values (two
    records) gets its tangent on both; seeded intermediates keep their seed."""
    a, b = tg.Var(1.5), tg.Var(-0.5)
    y = tg.sin(a * b) + tg.exp(a) / b
    (t,) = tg.autograd.jvp(y, [a, b], [1.0, 2.0])
    y.backward()
    assert isinstance(t, tg.Var) and t.data == pytest.approx(a.grad + 2 * b.grad, rel=1e-15)
    x = tg.Var(2.0)
    u = x * x
    x.data = 3.0  # the next use records x again, with its new value
    w = u * x     # d/dx along 1: 2*2*3 + 4 = 16 (both records of x carry the tangent)
    assert tg.autograd.jvp(w, x, 1.0)[0].data == 16.0
    m = a * b
    z = tg.sin(m) * a
    assert tg.autograd.jvp(z, [m], [1.0])[0].data == pytest.approx(np.cos(m.data) * a.data, rel=1e-15)
    assert [r.data for r in tg.autograd.jvp([z, a], [a], [1.0])][1] == 1.0
    with pytest.raises(ValueError, match="for tensors"):
        tg.autograd.jvp(z, [a], [1.0], batched=True)
    # recorded (create_graph): x^4 at 2 by forward, forward, reverse, forward: 32, 48, 48, 24
    x = tg.Var(2.0)
    q = x * x * x * x
    (t1,) = tg.autograd.jvp(q, x, 1.0, create_graph=True)
    (t2,) = tg.autograd.jvp(t1, x, 1.0, create_graph=True)
    (t3,) = tg.autograd.grad(t2, [x], create_graph=True)
    (t4,) = tg.autograd.jvp(t3, x, 1.0)
    assert [t1.data, t2.data, t3.data, t4.data] == [32.0, 48.0, 48.0, 24.0]
    v = tg.Var(0.5)  # a tangent that is a variable: d(J v)/dv = J
    (jv,) = tg.autograd.jvp(q, [x], [v], create_graph=True)
    assert jv.data == 16.0 and tg.autograd.grad(jv, [v])[0].data == 32.0
    # forward over reverse: the tangent of the recorded gradient is H v
    (g,) = tg.autograd.grad(q, [x], create_graph=True)
    assert tg.autograd.jvp(g, x, 2.0)[0].data == 2 * 48.0
    with pytest.raises(RuntimeError, match="2 tangents for 1 inputs"):
        tg.autograd.jvp(z, [a], [1.0, 2.0])
