"""Higher-order derivatives of tensors: ``backward(create_graph=True)`` and
``tapegrad.autograd.grad``, against finite differences of first derivatives and PyTorch."""

from __future__ import annotations

import gc
import textwrap
import zlib

import numpy as np
import pytest

import tapegrad as tg
from conftest import OPS, any_operand_domain, op_domain, run_fuzz_worker


def _hvp_fd(f, x0: np.ndarray, v: np.ndarray, h: float = 1e-5) -> np.ndarray:
    """d/dt grad f(x0 + t v) at 0 by central differences of first-order gradients."""
    def grad_at(x: np.ndarray) -> np.ndarray:
        xt = tg.tensor(x, requires_grad=True)
        f(xt).backward()
        return xt.grad.numpy().copy()
    return (grad_at(x0 + h * v) - grad_at(x0 - h * v)) / (2 * h)


def _hvp(f, x0: np.ndarray, v: np.ndarray) -> np.ndarray:
    xt = tg.tensor(x0, requires_grad=True)
    (g,) = tg.autograd.grad(f(xt), [xt], create_graph=True)
    if not g.requires_grad:  # a gradient that does not depend on x (a linear op): H = 0
        return np.zeros_like(x0)
    (hv,) = tg.autograd.grad((g * v).sum(), [xt], allow_unused=True)
    return np.zeros_like(x0) if hv is None else hv.numpy()


def test_every_op_is_covered() -> None:
    assert set(OPS) == set(_OPS)


_OPS = list(OPS)


@pytest.mark.parametrize("name", _OPS)
def test_second_derivatives_of_every_op(name: str) -> None:
    """A "gradgradcheck" over the whole table: Hessian-vector products of sum(w * op(x, c))
    through create_graph against finite differences of the first derivatives."""
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    lo, hi = op_domain(name) if OPS[name].arity == 1 else any_operand_domain(name)
    x0 = rng.uniform(lo, hi, size=(2, 3))
    v = rng.uniform(-1, 1, size=(2, 3))
    w = rng.uniform(0.5, 1.5, size=(2, 3))
    arity = OPS[name].arity
    c = rng.uniform(*any_operand_domain(name), size=(3,))
    op = getattr(tg, name)

    def f(x):
        y = op(x) if arity == 1 else op(x, c) + op(c, x) * 0.5
        return (y * w).sum()

    np.testing.assert_allclose(_hvp(f, x0, v), _hvp_fd(f, x0, v), rtol=2e-6, atol=2e-7)


def test_the_issue_example() -> None:
    x = tg.tensor([2.0], requires_grad=True)
    y = x * x * x
    (g,) = tg.autograd.grad(y, [x], create_graph=True)  # 3x^2 = 12, itself differentiable
    (h,) = tg.autograd.grad(g, [x])                     # 6x = 12
    assert str(g) == "tensor([12.], grad_fn=<AddBackward0>)" and str(h) == "tensor([12.])"
    assert x.grad is None
    y.backward(create_graph=True)  # also works: x.grad is differentiable
    assert x.grad.requires_grad and x.grad.item() == 12.0
    g2 = x.grad
    x.grad = None
    g2.backward(create_graph=True)
    h2 = x.grad
    x.grad = None
    h2.backward()
    assert x.grad.item() == 6.0  # the third derivative of x^3


def test_hessian_matches_torch(torch) -> None:
    rng = np.random.default_rng(3)
    A = rng.standard_normal((7, 5))
    x0 = rng.standard_normal(5)

    def f(x):
        return tg.logsumexp(A @ x) + 0.5 * (x * x).sum()

    x = tg.tensor(x0, requires_grad=True)
    (g,) = tg.autograd.grad(f(x), [x], create_graph=True)
    H = np.stack([tg.autograd.grad(g[i], [x])[0].numpy() for i in range(5)])
    At = torch.tensor(A)
    Ht = torch.autograd.functional.hessian(lambda t: torch.logsumexp(At @ t, 0) + 0.5 * (t * t).sum(),
                                           torch.tensor(x0))
    np.testing.assert_allclose(H, Ht.numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(H, H.T, rtol=1e-12, atol=1e-14)


def test_double_backward_through_matmul_softmax_and_indexing_matches_torch(torch) -> None:
    rng = np.random.default_rng(4)
    W0, X0 = rng.standard_normal((3, 4)), rng.standard_normal((5, 3))
    idx = np.array([0, 2, 2, 1, 4])

    def f(W, X, lib):
        Z = X @ W
        if lib is tg:
            p = tg.softmax(Z, axis=1)
            return (p[np.arange(5), idx % 4] ** 2).sum() + tg.tanh(Z[1:, ::2]).sum()
        p = torch.softmax(Z, 1)
        return (p[torch.arange(5), torch.tensor(idx % 4)] ** 2).sum() + torch.tanh(Z[1:, ::2]).sum()

    W = tg.tensor(W0, requires_grad=True)
    (g,) = tg.autograd.grad(f(W, tg.tensor(X0), tg), [W], create_graph=True)
    (gg,) = tg.autograd.grad((g * g).sum(), [W])
    Wt = torch.tensor(W0, requires_grad=True)
    (gt,) = torch.autograd.grad(f(Wt, torch.tensor(X0), torch), [Wt], create_graph=True)
    (ggt,) = torch.autograd.grad((gt * gt).sum(), [Wt])
    np.testing.assert_allclose(g.numpy(), gt.detach().numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(gg.numpy(), ggt.numpy(), rtol=1e-10, atol=1e-12)


def test_autograd_grad_semantics() -> None:
    a = tg.tensor([1.0, 2.0], requires_grad=True)
    m = a * 3.0
    o1, o2 = (m * m).sum(), m
    gm, ga, gm2 = tg.autograd.grad([o1, o2], [m, a, m], grad_outputs=[None, tg.tensor([1.0, -1.0])])
    assert gm.numpy().tolist() == [7.0, 11.0] and gm2.numpy().tolist() == [7.0, 11.0]
    assert ga.numpy().tolist() == [21.0, 33.0]
    assert a.grad is None and not ga.requires_grad
    unused = tg.tensor([1.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="allow_unused"):
        tg.autograd.grad(o1, [unused])
    assert tg.autograd.grad(o1, [unused], allow_unused=True) == (None,)
    with pytest.raises(RuntimeError, match="does not require grad"):
        tg.autograd.grad(tg.tensor([1.0]).sum(), [a])
    with pytest.raises(TypeError, match="must be Tensors"):
        tg.autograd.grad(o1, [1.0])
    with pytest.raises(ValueError, match="grad_outputs"):
        tg.autograd.grad([o1, o1], [a], grad_outputs=[None])


def test_create_graph_loops_keep_flat_memory() -> None:
    x = tg.tensor(np.linspace(-1, 1, 8), requires_grad=True)
    with tg.Tape() as tape:  # a tape of its own: what other tests left on the default one is not this loop's
        for _ in range(3000):
            (g,) = tg.autograd.grad(tg.sin(x).sum(), [x], create_graph=True)
            (h,) = tg.autograd.grad(g.sum(), [x])
            x.grad = None
            (x * x).sum().backward(create_graph=True)
            x.grad = None
        del g, h
        gc.collect()
        assert tape.stats()["records"] == 0


def test_second_order_after_the_tape_was_collected() -> None:
    x = tg.tensor([0.3, -1.2], requires_grad=True)
    y = (tg.sin(x) * x).sum()
    tg.active_tape().collect()  # every record moves; saved values must follow
    (g,) = tg.autograd.grad(y, [x], create_graph=True)
    tg.active_tape().collect()
    (h,) = tg.autograd.grad(g.sum(), [x])
    x0 = np.array([0.3, -1.2])
    np.testing.assert_allclose(h.numpy(), 2 * np.cos(x0) - x0 * np.sin(x0), rtol=1e-14)


def test_hessian_large_enough_to_collect_midway() -> None:
    rng = np.random.default_rng(0)
    A = rng.standard_normal((30, 60)) / 5
    x0 = rng.standard_normal(60)
    H = tg.hessian(lambda x: tg.logsumexp(tg.tensor(A) @ x) + 0.5 * (x * x).sum())(x0).numpy()
    z = A @ x0
    p = np.exp(z - z.max())
    p /= p.sum()
    np.testing.assert_allclose(H, A.T @ (np.diag(p) - np.outer(p, p)) @ A + np.eye(60), rtol=1e-12, atol=1e-14)


# --- Var: the recorded scalar sweep --------------------------------------------------------------


def _var_second(op, arity: int, form: str, x0: float) -> float:
    x = tg.Var(x0)
    y = op(x * 1.1) if arity == 1 else {"vv": lambda: op(x, x * x + 0.5), "vc": lambda: op(x * x, 1.3),
                                         "cv": lambda: op(1.3, x * x)}[form]()
    (g,) = tg.autograd.grad(y, [x], create_graph=True)
    (h,) = tg.autograd.grad(g, [x], allow_unused=True) if g.requires_grad else (None,)
    return 0.0 if h is None else h.data


def _var_first(op, arity: int, form: str, x0: float) -> float:
    x = tg.Var(x0)
    y = op(x * 1.1) if arity == 1 else {"vv": lambda: op(x, x * x + 0.5), "vc": lambda: op(x * x, 1.3),
                                         "cv": lambda: op(1.3, x * x)}[form]()
    y.backward()
    return float(x.grad)


@pytest.mark.parametrize("name", _OPS)
def test_var_second_derivatives_of_every_op(name: str) -> None:
    """The gradgradcheck on Var: d/dx of the recorded gradient against finite differences
    of first derivatives, for f(x), f(x, x^2 + 1/2), f(x^2, c) and f(c, x^2)."""
    op, arity = getattr(tg, name), OPS[name].arity
    lo, hi = op_domain(name)
    x0 = lo + 0.35 * (hi - lo) if arity == 1 else 0.8  # (0.8: inside every binary op's domains)
    for form in (["u"] if arity == 1 else ["vv", "vc", "cv"]):
        h = 1e-5
        fd = (-_var_first(op, arity, form, x0 + 2 * h) + 8 * _var_first(op, arity, form, x0 + h)
              - 8 * _var_first(op, arity, form, x0 - h) + _var_first(op, arity, form, x0 - 2 * h)) / (12 * h)
        assert _var_second(op, arity, form, x0) == pytest.approx(fd, rel=1e-6, abs=1e-7), form


def test_var_the_issue_example_and_backward_create_graph() -> None:
    x = tg.Var(2.0)
    y = x * x * x
    (g,) = tg.autograd.grad(y, [x], create_graph=True)   # 3x^2 = 12
    (h,) = tg.autograd.grad(g, [x], create_graph=True)   # 6x = 12
    (t,) = tg.autograd.grad(h, [x])                      # 6
    assert (g.data, h.data, t.data) == (12.0, 12.0, 6.0)
    assert isinstance(t, tg.Var) and not t.requires_grad
    assert x.grad == 0.0  # autograd.grad leaves .grad alone
    y.backward(create_graph=True)
    assert isinstance(x.grad, tg.Var) and x.grad.data == 12.0 and x.grad.requires_grad
    (h2,) = tg.autograd.grad(x.grad, [x])
    assert h2.data == 12.0
    y.backward(create_graph=True)  # accumulates, still differentiable: 24, d/dx = 24
    assert x.grad.data == 24.0 and tg.autograd.grad(x.grad, [x])[0].data == 24.0
    x.grad.backward()  # a plain sweep adds 24 into the float: the recorded gradient is dropped
    assert x.grad == 48.0 and isinstance(x.grad, float)
    y.backward(create_graph=True)
    x.grad = 0.0  # setting .grad drops the recorded one
    assert x.grad == 0.0 and isinstance(x.grad, float)


def test_var_hessian_and_grad_outputs() -> None:
    a, b = tg.Var(0.7), tg.Var(-1.2)
    f = tg.sin(a * b) + tg.exp(a) * b * b
    ga, gb = tg.autograd.grad(f, [a, b], create_graph=True)
    haa, hab = tg.autograd.grad(ga, [a, b])
    hba, hbb = tg.autograd.grad(gb, [a, b])
    s, c, e = np.sin(0.7 * -1.2), np.cos(0.7 * -1.2), np.exp(0.7)
    assert haa.data == pytest.approx(-s * 1.44 + e * 1.44, rel=1e-14)
    assert hab.data == pytest.approx(hba.data, rel=1e-14)
    assert hab.data == pytest.approx(c - s * 0.7 * -1.2 + 2 * e * -1.2, rel=1e-14)
    assert hbb.data == pytest.approx(-s * 0.49 + 2 * e, rel=1e-14)
    # several outputs with weights; a leaf among the outputs
    (w,) = tg.autograd.grad([a * a, b], [a], grad_outputs=[2.0, 5.0])
    assert w.data == pytest.approx(4 * 0.7)
    (one,) = tg.autograd.grad([b], [b])
    assert one.data == 1.0
    with pytest.raises(RuntimeError, match="must all be Vars"):
        tg.autograd.grad([a * b], [tg.tensor([1.0])])


def test_var_mixed_into_tensors_to_any_order() -> None:
    """y = sum(c x^2 t) + sin(x) x with a Var x and a tensor t: after
    backward(create_graph=True), x.grad is a Var recorded through the tensor records, and
    differentiates again by reverse and forward mode; autograd.grad leaves every .grad alone."""
    x = tg.Var(1.5)
    t = tg.tensor([3.0, 4.0], requires_grad=True)
    c = tg.tensor([1.0, 2.0])
    y = (c * x * x * t).sum() + tg.sin(x) * x
    y.backward(create_graph=True)
    xv, ct = 1.5, 11.0
    d1 = 2 * xv * ct + np.cos(xv) * xv + np.sin(xv)
    d2 = 2 * ct - np.sin(xv) * xv + 2 * np.cos(xv)
    d3 = -np.cos(xv) * xv - 3 * np.sin(xv)
    assert isinstance(x.grad, tg.Var) and x.grad.data == pytest.approx(d1, rel=1e-14)
    assert t.grad.requires_grad and t.grad.numpy().tolist() == [2.25, 4.5]
    (h,) = tg.autograd.grad(x.grad, [x], create_graph=True)
    assert h.data == pytest.approx(d2, rel=1e-13)
    assert tg.autograd.grad(h, [x])[0].data == pytest.approx(d3, rel=1e-12)
    assert tg.autograd.jvp(x.grad, x, 1.0)[0].data == pytest.approx(d2, rel=1e-13)
    assert t.grad.numpy().tolist() == [2.25, 4.5]  # autograd.grad and jvp changed no .grad
    # a tensor tangent through the Var: x.grad * ones depends on t through tensors, the Var's
    # scalar records, and tensors again; d(dy/dx)/dt . v = 2x <c, v>
    out = x.grad * tg.tensor([1.0, 1.0])
    (jv,) = tg.autograd.jvp(out, t, np.array([0.5, -1.0]))
    assert jv.numpy().tolist() == pytest.approx([2 * xv * (0.5 - 2.0)] * 2, rel=1e-14)
    (jvr,) = tg.autograd.jvp(out, t, np.array([0.5, -1.0]), create_graph=True)  # recorded through the Var
    assert jvr.requires_grad and jvr.numpy().tolist() == pytest.approx(jv.numpy().tolist(), rel=1e-15)
    (h2,) = tg.autograd.jvp(x.grad, x, 1.0, create_graph=True)  # forward over reverse through tensors
    assert h2.data == pytest.approx(d2, rel=1e-13)
    assert tg.autograd.grad(h2, [x])[0].data == pytest.approx(d3, rel=1e-12)
    t.grad = None
    x.grad.backward()  # a plain sweep through the recorded gradient: d(dy/dx)/dt = 2x c
    assert t.grad.numpy().tolist() == [3.0, 6.0] and x.grad == pytest.approx(d1 + d2, rel=1e-13)
    # a Var's backward(create_graph=True) through tensors records the tensors' gradients too
    x3 = tg.Var(1.5)
    t3 = tg.tensor([3.0, 4.0], requires_grad=True)
    (c * x3 * x3 * t3).sum().backward(create_graph=True)
    g3 = x3.grad
    t3.grad = None
    g3.backward(create_graph=True)  # d(dy/dx)/dt = 2x c
    assert t3.grad.requires_grad and t3.grad.numpy().tolist() == [3.0, 6.0]
    assert isinstance(x3.grad, tg.Var) and x3.grad.data == pytest.approx(2 * xv * ct + 2 * ct, rel=1e-14)
    # a non-leaf Var that keeps its gradient gets its value from the recorded sweep too
    u = x * x
    u.retain_grad()
    (t * u).sum().backward(create_graph=True)
    assert u.grad == 7.0
    # against finite differences of the first derivative, for a function with more mixing
    def first(v: float) -> float:
        xx = tg.Var(v)
        tt = tg.tensor([0.3, -0.7], requires_grad=True)
        (tg.exp(tt * xx).sum() * xx + tg.tanh(xx)).backward()
        return float(xx.grad)
    xx = tg.Var(0.4)
    tt = tg.tensor([0.3, -0.7], requires_grad=True)
    (tg.exp(tt * xx).sum() * xx + tg.tanh(xx)).backward(create_graph=True)
    hh = 1e-5
    fd = (-first(0.4 + 2 * hh) + 8 * first(0.4 + hh) - 8 * first(0.4 - hh) + first(0.4 - 2 * hh)) / (12 * hh)
    assert tg.autograd.grad(xx.grad, [xx])[0].data == pytest.approx(fd, rel=1e-8)


@pytest.mark.parametrize("create_graph", [False, True])
def test_autograd_grad_on_tensors_leaves_var_grads_alone(create_graph: bool) -> None:
    """autograd.grad of a tensor output through a Var leaf: no .grad changes, the Var's
    neither (the sweep's one context says so to the scalar leaves and the tensor leaves
    alike; the plain sweep used to deliver into the Var's .grad)."""
    v = tg.Var(2.0)
    t = tg.tensor([1.0, 2.0], requires_grad=True)
    y = (t * v * v).sum()
    (g,) = tg.autograd.grad(y, [t], create_graph=create_graph)
    assert v.grad == 0.0 and t.grad is None
    np.testing.assert_allclose(g.numpy(), [4.0, 4.0])
    y.backward()  # a backward still delivers to both
    assert v.grad == pytest.approx(2 * 2.0 * 3.0)
    np.testing.assert_allclose(t.grad.numpy(), [4.0, 4.0])


@pytest.mark.parametrize("create_graph", [False, True])
def test_var_grad_an_input_recorded_before_but_not_used_is_unused(create_graph: bool) -> None:
    """An input the outputs do not depend on is unused (None with allow_unused, else an error)
    in both modes, even where it was recorded on the tape before the outputs; one reached with
    a zero slope is used and gets 0."""
    x, z = tg.Var(1.0), tg.Var(2.0)
    w = z * 3.0  # z is on the tape, y does not depend on it
    y = x * x
    with pytest.raises(RuntimeError, match="input 1 was not used"):
        tg.autograd.grad(y, [x, z], create_graph=create_graph)
    gx, gz = tg.autograd.grad(y, [x, z], allow_unused=True, create_graph=create_graph)
    assert gx.data == 2.0 and gz is None
    (g,) = tg.autograd.grad(tg.relu(x - 5.0), [x], create_graph=create_graph)  # zero slope at x = 1
    assert g.data == 0.0
    assert w.data == 6.0 and x.grad == 0.0 and z.grad == 0.0


VAR_AUTOGRAD_FUZZ = textwrap.dedent(r"""
    import sys
    import numpy as np
    import tapegrad as tg

    seed, n = int(sys.argv[1]), int(sys.argv[2])
    rng = np.random.default_rng(seed)
    results = errors = 0

    def pool():
        x, y = tg.Var(rng.uniform(0.5, 2.0)), tg.Var(rng.uniform(0.5, 2.0))
        c = tg.Var(1.5, requires_grad=False)
        t = tg.tensor([1.0, 2.0], requires_grad=True)
        a = x * y + tg.sin(x)
        b = tg.exp(y) / x
        with tg.Tape() as other:
            z = tg.Var(3.0)
            w = z * z
        stale_tape = tg.Tape()
        with stale_tape:
            s = tg.Var(1.0) * 2.0
        stale_tape.clear()
        return [x, y, c, a, b, w, s, t, (t * t).sum(), 1.0, 2, None, "x", [], np.ones(3), np.float32(2.0),
                float("nan"), float("inf"), 10**400, object(), complex(1, 2), True]

    def pick(items):
        k = int(rng.integers(0, 4))
        if rng.uniform() < 0.15:
            return items[int(rng.integers(len(items)))]  # not a sequence at all, sometimes
        return [items[int(rng.integers(len(items)))] for _ in range(k)]

    for i in range(n):
        items = pool()
        sane = items[:7] + [1.0, None]  # Vars (some of other or cleared tapes), numbers, None
        outs, ins, seeds = (pick(sane if rng.uniform() < 0.7 else items) for _ in range(3))
        create_graph, allow_unused = bool(rng.integers(2)), bool(rng.integers(2))
        try:
            if rng.uniform() < 0.5:
                r = tg.autograd.grad(outs, ins, seeds if rng.uniform() < 0.5 else None,
                                     create_graph=create_graph, allow_unused=allow_unused)
            else:
                r = tg.autograd.jvp(outs, ins, seeds, create_graph=create_graph)
            for g in (r if isinstance(r, (list, tuple)) else [r]):
                if g is not None:
                    float(g.data) if isinstance(g, tg.Var) else g.numpy()
            results += 1
        except (TypeError, ValueError, RuntimeError, OverflowError):
            errors += 1
    print("done", results, errors, flush=True)
""")


@pytest.mark.parametrize("seed", range(3))
def test_fuzz_var_autograd_never_crashes(seed: int, tmp_path) -> None:
    """tapegrad.autograd.grad and jvp on Vars (their arguments converted for the core's grad and
    jvp on records) with hostile arguments: Vars of other and cleared tapes, constants,
    tensors, strings, None, huge numbers, wrong lengths, non-sequences. Each call returns or
    raises a Python exception; run in a child process so that a crash is reported."""
    results, errors = run_fuzz_worker(VAR_AUTOGRAD_FUZZ, seed, 600, tmp_path)
    assert results > 20 and errors > 20, (results, errors)  # both outcomes are exercised
