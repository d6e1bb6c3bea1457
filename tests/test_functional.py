"""tapegrad's functional API (JAX's names and semantics) against closed forms, finite
differences and PyTorch."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest

import tapegrad as tg
from conftest import run_fuzz_worker


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
    with pytest.raises(TypeError, match=r"must return one element, not shape \(3,\)"):
        tg.grad(lambda x: x * 2)(np.ones(3))
    with pytest.raises(ValueError, match="argnums"):
        tg.grad(lambda x: x, argnums=2)(1.0)
    _, fn = tg.vjp(lambda x: x * 2, np.ones(3))
    with pytest.raises(ValueError, match="cotangent"):
        fn(np.ones(2))
    with pytest.raises(ValueError, match="tangent"):
        tg.jvp(lambda x: x, (np.ones(3),), (np.ones(2),))


@pytest.mark.parametrize("name", ["jacrev", "jacfwd", "jacobian"])
def test_a_jacobian_bigger_than_any_memory_is_refused_before_any_sweep(name: str) -> None:
    # 10^6 outputs x 10^6 inputs x 8 bytes = 8 TB: jacrev swept (and allocated) row by row for hours.
    import time

    x = tg.zeros(10**6)
    start = time.perf_counter()
    with pytest.raises(MemoryError, match=rf"tapegrad\.{'jacrev' if name == 'jacobian' else name}: the Jacobian "
                                          r"of an output of shape \(1000000,\) with respect to an input of shape "
                                          r"\(1000000,\) needs 8000000000000 bytes \(7450\.6 GiB\), more than "
                                          r"this machine's memory \(\d+ bytes"):
        getattr(tg, name)(lambda x: x * 2.0)(x)
    assert time.perf_counter() - start < 5.0
    with pytest.raises(MemoryError, match=r"tapegrad\.hessian: the Jacobian of an output of shape \(1000000,\) with "
                                          r"respect to an input of shape \(1000000,\) needs 8000000000000 bytes"):
        tg.hessian(lambda x: (x * x).sum())(x)
    # every block counts: (10^12 + 2 10^6 + 1) elements x 8 bytes
    with pytest.raises(MemoryError, match=r"outputs of shapes \(1000000,\), \(\) with respect to inputs of shapes "
                                          r"\(1000000,\), \(1,\) needs 8000016000008 bytes"):
        tg.jacrev(lambda a, b: [a * b, (a * b).sum()], argnums=(0, 1))(x, np.ones(1))
    with pytest.raises(MemoryError, match=r"needs 4000000000000 bytes"):  # float32: 4 bytes an element
        tg.jacrev(lambda x: x * 2.0)(tg.zeros(10**6, dtype=np.float32))
    assert time.perf_counter() - start < 10.0


def test_the_jacobian_size_rule_is_this_machines_memory(monkeypatch: pytest.MonkeyPatch, torch) -> None:
    import tapegrad.functional as F

    assert F._memory_bytes() is None or F._memory_bytes() > 2**20
    monkeypatch.setattr(F, "_memory_bytes", lambda: 20 * 20 * 8)  # a 20 x 20 float64 Jacobian fits, exactly
    x0 = np.linspace(-1.0, 1.0, 20)
    expected = torch.autograd.functional.jacobian(lambda x: torch.tanh(x) * x.sum(), torch.tensor(x0)).numpy()
    for jac in (tg.jacrev, tg.jacfwd):
        np.testing.assert_allclose(_np(jac(lambda x: tg.tanh(x) * x.sum())(x0)), expected, rtol=1e-14, atol=1e-15)
        with pytest.raises(MemoryError, match=r"an output of shape \(21,\) with respect to an input of shape \(20,\) "
                                              r"needs 3360 bytes \(0\.0 GiB\), more than this machine's memory "
                                              r"\(3200 bytes"):
            jac(lambda x: tg.concatenate([x, x[:1]]))(x0)
    monkeypatch.setattr(F, "_memory_bytes", lambda: None)  # unknown (no sysconf): only the address space counts
    np.testing.assert_allclose(_np(tg.jacrev(lambda x: tg.tanh(x) * x.sum())(x0)), expected, rtol=1e-14, atol=1e-15)
    x = tg.zeros(4 * 10**6)  # 80000 outputs (the same tensor) of 4e6 elements: 1.02e19 bytes, past 2**63
    with pytest.raises(MemoryError, match=r"outputs of shapes \(4000000,\), \(4000000,\), \(4000000,\), \.\.\. "
                                          r"\(80000 in all\) with respect to inputs of shapes \(4000000,\) needs "
                                          r"10240000000000000000 bytes .* more than any address space "
                                          r"\(9223372036854775807 bytes\)"):
        tg.jacrev(lambda x: [x] * 80000)(x)


def test_outermost_runs_on_a_tape_of_its_own() -> None:
    """As the C++ transformations: nothing is left on the caller's tape, and the results are
    values cut from any graph; an argument that requires grad makes the call record on the
    caller's graph instead (the caller differentiates through it)."""
    def f(x):
        return (x * x * x).sum()

    def g(x):
        return x.sin() * x.sum()

    x = np.array([0.1, 0.5, -0.7])
    for tape in (tg.active_tape(), tg.Tape()):
        with tape:
            n = len(tape)
            results = [tg.grad(f)(x), tg.value_and_grad(f)(x)[0], tg.jacfwd(g)(x), tg.jacrev(g)(x),
                       tg.hessian(f)(x), tg.hvp(f, (x,), (x,))[0], tg.hvp(f, (x,), (x,))[1][0],
                       tg.jvp(g, (x,), (x,))[0], tg.jvp(g, (x,), (x,))[1], tg.vjp(g, x)[0]]
            assert len(tape) == n
        assert not any(r.requires_grad for r in results)
    np.testing.assert_allclose(_np(results[4]), np.diag(6 * x), rtol=0, atol=0)
    _, vjp_fn = tg.vjp(g, x)  # its graph lives as long as vjp_fn does
    np.testing.assert_allclose(_np(vjp_fn(np.ones(3))[0]), _np(tg.jacrev(g)(x)).sum(axis=0), rtol=1e-15)
    xv = tg.tensor(x).requires_grad_()
    gx = tg.grad(f)(xv)
    assert gx.requires_grad
    gx.sum().backward()
    np.testing.assert_allclose(_np(xv.grad), 6 * x, rtol=1e-15)


@pytest.mark.parametrize("bad", ["3", b"1", 1 + 2j, np.array([1.0, None], dtype=object), np.ones(2, complex)])
def test_refuses_what_tensor_refuses(bad) -> None:
    with pytest.raises(TypeError, match="tensors hold"):
        tg.tensor(bad)
    for call in (lambda: tg.grad(lambda t: (t * t).sum())(bad), lambda: tg.jacfwd(lambda t: t)(bad),
                 lambda: tg.jvp(lambda t: t, (np.ones(2),), (bad,)), lambda: tg.vjp(lambda t: t, np.ones(2))[1](bad)):
        with pytest.raises(TypeError, match="tensors hold"):
            call()


def test_one_implementation() -> None:
    """The transformations' steps are the core's (tapegrad._core.transforms, which C++'s
    functional.hpp calls too): the Python module calls no sweep of its own."""
    import inspect

    import tapegrad.functional as F
    src = inspect.getsource(F)
    for name in ("import autograd", "from .autograd", "_core._grad", "_core._jvp", "_eye", "transpose", "stack"):
        assert name not in src, name
    assert src.count("_t.") >= 6


TRANSFORMS_FUZZ = textwrap.dedent(r"""
    import sys
    import numpy as np
    import tapegrad as tg
    from tapegrad._core import transforms as T

    seed, n = int(sys.argv[1]), int(sys.argv[2])
    rng = np.random.default_rng(seed)
    results = errors = 0

    def pool():
        x = tg.tensor(rng.normal(size=3), requires_grad=True)
        y = (x * x).sum()
        stale_tape = tg.Tape()
        with stale_tape:
            s = x * 2.0
        stale_tape.clear()
        return [x, y, x * 3.0, s, tg.tensor([1, 2]), tg.zeros((0,)), tg.ones((2, 3)), tg.Var(2.0), 1.0, 2, None,
                "x", [], np.ones(3), np.ones((0, 2)), float("nan"), 10**400, object(), complex(1, 2), True,
                np.float32(2.0), [np.ones(3), 1.0], {"a": np.ones(2)}]

    def pick(items):
        if rng.uniform() < 0.15:
            return items[int(rng.integers(len(items)))]  # not a sequence at all, sometimes
        return [items[int(rng.integers(len(items)))] for _ in range(int(rng.integers(0, 4)))]

    funs = [lambda *a: a[0], lambda *a: (a[0] * a[0]).sum(), lambda *a: [a[0], a[-1]], lambda *a: a[0] @ a[0],
            lambda *a: 3.0, lambda *a: {"k": a[0].sin()}, lambda *a: a[0].reshape((1, -1))]
    for i in range(n):
        items = pool()
        f = funs[int(rng.integers(len(funs)))]
        a, b, c = pick(items), pick(items), pick(items)
        record, flag = bool(rng.integers(2)), bool(rng.integers(2))
        k = int(rng.integers(12))
        try:
            if k == 0:
                r = T.vjp(a, b, c if flag else None, record)
            elif k == 1:
                r = T.jvp(a, b, c, record, flag)
            elif k == 2:
                r = T.jacobian(a, b, flag, record)
            elif k == 3:
                r = T.hvp(a, b, c, record)
            elif k == 4:
                r = T.variables(a)
            elif k == 5:
                with T.Level(flag) as lv:
                    r = [lv.record, T.result(a, record)]
            elif k == 6:
                r = tg.grad(f, argnums=int(rng.integers(-2, 3)))(*a) if isinstance(a, list) else tg.grad(f)(a)
            elif k == 7:
                r = tg.jacfwd(f)(a)
            elif k == 8:
                r = tg.jacrev(f)(a)
            elif k == 9:
                r = tg.jvp(f, a if isinstance(a, list) else [a], b if isinstance(b, list) else [b])
            elif k == 10:
                r = tg.vjp(f, a)[1](b)
            else:
                r = tg.hvp(f, a if isinstance(a, list) else [a], b if isinstance(b, list) else [b])
            repr(r)
            results += 1
        except (TypeError, ValueError, RuntimeError, OverflowError, IndexError, AttributeError):
            errors += 1
    print("done", results, errors, flush=True)
""")


@pytest.mark.parametrize("seed", range(3))
def test_fuzz_transforms_never_crash(seed: int, tmp_path) -> None:
    """The functional transformations and the core's transforms module they call, with hostile
    arguments: stale and foreign tensors, Vars, numbers, strings, None, huge numbers, empty
    shapes, pytrees, wrong counts, non-sequences. Each call returns or raises a Python
    exception; run in a child process so that a crash is reported."""
    results, errors = run_fuzz_worker(TRANSFORMS_FUZZ, seed, 800, tmp_path)
    assert results > 20 and errors > 20, (results, errors)


def test_transformations_differentiate_under_no_grad() -> None:
    """As torch.func's: an outer no_grad does not switch a transformation off (it gave zeros),
    and the caller's mode is restored after."""
    f = lambda x: (x * x * x).sum()  # noqa: E731
    with tg.no_grad():
        np.testing.assert_array_equal(_np(tg.grad(f)(np.array([1.0, 2.0]))), [3.0, 12.0])
        np.testing.assert_array_equal(_np(tg.hessian(f)(np.array([1.0, 2.0]))), [[6.0, 0.0], [0.0, 12.0]])
        x = tg.tensor([1.0, 2.0], requires_grad=True)
        g = tg.grad(f)(x)  # the caller records nothing under no_grad: a plain value
        assert not g.requires_grad and not tg.is_grad_enabled()
    assert tg.is_grad_enabled()
