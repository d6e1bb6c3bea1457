"""Custom differentiable functions (issue 12, part 4): ``tapegrad.autograd.Function`` against
``torch.autograd.Function`` on the same float64 inputs. The same Function classes are written for both
engines (``functions(m)``): outputs, ``grad_fn`` names, gradients, ``needs_input_grad``, second derivatives
through a backward written with the engine's ops (``create_graph``), forward mode through a ``jvp``
staticmethod (``tg.autograd.jvp``, ``tg.functional.jvp`` against ``torch.autograd.forward_ad``),
``once_differentiable``, ``set_materialize_grads(False)``, the ``setup_context`` spelling, saved tensors
changed in place, backwards that return the wrong things, a Function inside an ``nn.Module`` trained by
SGD and inside ``checkpoint``, and hostile ``apply`` calls (a fuzz in a child process: never a crash)."""

from __future__ import annotations

import textwrap
import types
from typing import Any, Callable, Dict, List, Sequence

import numpy as np
import pytest
from numpy.testing import assert_allclose

import tapegrad as tg
from conftest import central_difference, run_fuzz_worker
from tapegrad import nn
from tapegrad.utils.checkpoint import checkpoint

pytestmark = [
    pytest.mark.usefixtures("torch_one_thread"),  # (conftest.py)
    pytest.mark.filterwarnings("ignore:Using backward\\(\\) with create_graph=True:UserWarning"),
    pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning"),  # (forward_ad)
]

torch = pytest.importorskip("torch")
import torch.autograd.forward_ad as fwAD  # noqa: E402 (after the skip)
from twins import TOL, both, const, leaf, npy, same  # noqa: E402 (after the skip)


@pytest.fixture(autouse=True)
def _torch_float64() -> Any:
    """torch's factories (arange, scalars) in float64, tapegrad's default, inside each test."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)

RNG = np.random.default_rng(4)
A = RNG.uniform(-1.5, 1.5, 5)
B = RNG.uniform(-1.5, 1.5, 5)
T = RNG.standard_normal(5)  # a tangent
X2 = RNG.standard_normal((6, 3))
Y2 = RNG.standard_normal((6, 2))


# --- helpers -------------------------------------------------------------------------------------


def once_differentiable(m: Any) -> Callable[[Any], Any]:
    return tg.autograd.once_differentiable if m is tg else torch.autograd.function.once_differentiable


def save_for_forward(ctx: Any, *tensors: Any) -> None:
    """torch's jvp reads what ``ctx.save_for_forward`` kept; tapegrad's jvp reads ``saved_tensors``."""
    if hasattr(ctx, "save_for_forward"):
        ctx.save_for_forward(*tensors)


# --- the same Functions on both engines ----------------------------------------------------------


def functions(m: Any) -> types.SimpleNamespace:
    """The test's Functions, subclassing m.autograd.Function; they log what their ctx knew in ``LOG``."""
    F = m.autograd.Function
    log: List[Any] = []

    class Exp(F):
        """exp, saving its output; a backward in the engine's ops (differentiable again); a jvp."""

        @staticmethod
        def forward(ctx, x):
            y = x.exp()
            ctx.save_for_backward(y)
            save_for_forward(ctx, y)
            log.append(("Exp.forward", ctx.needs_input_grad, m.is_grad_enabled()))
            return y

        @staticmethod
        def backward(ctx, g):
            (y,) = ctx.saved_tensors
            return g * y

        @staticmethod
        def jvp(ctx, t):
            (y,) = ctx.saved_tensors
            return t * y

    class LeakyClamp(F):
        """clamp(x, lo, hi) whose gradient leaks 0.1 outside [lo, hi] (not clamp's derivative)."""

        @staticmethod
        def forward(ctx, x, lo, hi):
            ctx.save_for_backward(x)
            ctx.lo, ctx.hi = lo, hi
            log.append(("LeakyClamp.forward", ctx.needs_input_grad))
            return x.clamp(lo, hi)

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            inside = (x >= ctx.lo) * (x <= ctx.hi) * 0.9 + 0.1
            return g * inside, None, None

    class SinCos(F):
        """Two outputs (sin x * k, cos x) with a non-tensor argument k."""

        @staticmethod
        def forward(ctx, x, k):
            ctx.save_for_backward(x)
            save_for_forward(ctx, x)
            ctx.k = k
            return x.sin() * k, x.cos()

        @staticmethod
        def backward(ctx, gs, gc):
            (x,) = ctx.saved_tensors
            return gs * ctx.k * x.cos() - gc * x.sin(), None

        @staticmethod
        def jvp(ctx, tx, tk):
            (x,) = ctx.saved_tensors
            return tx * ctx.k * x.cos(), -tx * x.sin()

    class PowN(F):
        """x ** n for an int n; backward's None for n."""

        @staticmethod
        def forward(ctx, x, n):
            ctx.save_for_backward(x)
            ctx.n = n
            log.append(("PowN.forward", ctx.needs_input_grad))
            return x**n

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            log.append(("PowN.backward", ctx.needs_input_grad))
            return g * ctx.n * x ** (ctx.n - 1), None

    class Mul(F):
        """a * b, computing only the gradients needs_input_grad asks for."""

        @staticmethod
        def forward(ctx, a, b):
            ctx.save_for_backward(a, b)
            save_for_forward(ctx, a, b)
            log.append(("Mul.forward", ctx.needs_input_grad))
            return a * b

        @staticmethod
        def backward(ctx, g):
            a, b = ctx.saved_tensors
            log.append(("Mul.backward", ctx.needs_input_grad))
            ga = g * b if ctx.needs_input_grad[0] else None
            gb = g * a if ctx.needs_input_grad[1] else None
            return ga, gb

        @staticmethod
        def jvp(ctx, ta, tb):
            a, b = ctx.saved_tensors
            out = 0.0
            if ta is not None:
                out = out + ta * b
            if tb is not None:
                out = out + a * tb
            return out

    class ReluMask(F):
        """(relu(x), the mask x > 0): the bool mask is marked non-differentiable."""

        @staticmethod
        def forward(ctx, x):
            mask = x > 0
            ctx.mark_non_differentiable(mask)
            ctx.save_for_backward(mask)
            return x * mask, mask

        @staticmethod
        def backward(ctx, g, gmask):
            (mask,) = ctx.saved_tensors
            log.append(("ReluMask.backward", gmask is None or not bool(npy(gmask).any())))
            return g * mask

    class ArgmaxValue(F):
        """(max, argmax) of a vector: the int64 index is marked non-differentiable."""

        @staticmethod
        def forward(ctx, x):
            i = x.argmax()
            ctx.mark_non_differentiable(i)
            ctx.save_for_backward(x, i)
            return x.max(), i

        @staticmethod
        def backward(ctx, g, gi):
            x, i = ctx.saved_tensors
            onehot = (m.arange(x.shape[0]) == i) * 1.0
            return g * onehot

    class SignSTE(F):
        """A straight-through estimator (BinaryConnect's): sign in forward, the gradient of hardtanh in
        backward (passed where |x| <= 1)."""

        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x.sign()

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return g * (x.abs() <= 1.0)

    class Cube(F):
        """x ** 3 with a once_differentiable backward."""

        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x**3

        @staticmethod
        @once_differentiable(m)
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            log.append(("Cube.backward grad enabled", m.is_grad_enabled()))
            return g * 3 * x * x

    class Scale(F):
        """The setup_context spelling: forward without ctx."""

        @staticmethod
        def forward(x, k):
            return x * k

        @staticmethod
        def setup_context(ctx, inputs, output):
            x, k = inputs
            ctx.k = k
            ctx.save_for_backward(x)
            log.append(("Scale.setup_context", ctx.needs_input_grad))

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return g * ctx.k + 0 * x, None

    def lazy_pair(materialize: bool) -> Any:
        class Pair(F):
            @staticmethod
            def forward(ctx, a, b):
                ctx.set_materialize_grads(materialize)
                return a * 2, b * 3

            @staticmethod
            def backward(ctx, ga, gb):
                log.append(("Pair.backward", npy(ga), npy(gb)))
                return (None if ga is None else ga * 2), (None if gb is None else gb * 3)

        return Pair

    class NoJvp(F):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x * x

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return 2 * g * x

    return types.SimpleNamespace(Exp=Exp, LeakyClamp=LeakyClamp, SinCos=SinCos, PowN=PowN, Mul=Mul,
                                 ReluMask=ReluMask, ArgmaxValue=ArgmaxValue, SignSTE=SignSTE, Cube=Cube,
                                 Scale=Scale, lazy_pair=lazy_pair, NoJvp=NoJvp, LOG=log)


#: name -> (call(fns, *tensors), input arrays)
CASES: Dict[str, Any] = {
    "Exp": (lambda f, x: f.Exp.apply(x), [A]),
    "LeakyClamp": (lambda f, x: f.LeakyClamp.apply(x, -0.5, 0.75), [A]),
    "SinCos": (lambda f, x: f.SinCos.apply(x, 2.5), [A]),
    "PowN": (lambda f, x: f.PowN.apply(x, 3), [A]),
    "Mul": (lambda f, a, b: f.Mul.apply(a, b), [A, B]),
    "ReluMask": (lambda f, x: f.ReluMask.apply(x), [A]),
    "ArgmaxValue": (lambda f, x: f.ArgmaxValue.apply(x), [A]),
    "SignSTE": (lambda f, x: f.SignSTE.apply(x * 1.5), [A]),
    "Cube": (lambda f, x: f.Cube.apply(x), [A]),
    "Scale": (lambda f, x: f.Scale.apply(x, -1.5), [A]),
}

def _flat(out: Any) -> List[Any]:
    return list(out) if isinstance(out, tuple) else [out]


def _weights(k: int, shape: tuple) -> np.ndarray:
    return np.random.default_rng(100 + k).standard_normal(shape)


def _grad_fn_name(t: Any) -> Any:
    return None if t.grad_fn is None else t.grad_fn.name()


@pytest.mark.parametrize("name", sorted(CASES))
def test_outputs_grad_fn_and_gradients_match_torch(name: str) -> None:
    call, arrays = CASES[name]

    def run(m: Any) -> Any:
        f = functions(m)
        xs = [leaf(m, a) for a in arrays]
        outs = _flat(call(f, *xs))
        loss = None
        for k, o in enumerate(outs):
            if o.requires_grad:
                term = (o * const(m, _weights(k, tuple(o.shape)))).sum()
                loss = term if loss is None else loss + term
        loss.backward()
        return ([(npy(o), o.requires_grad, _grad_fn_name(o), str(o.dtype).replace("torch.", "")) for o in outs],
                [npy(x.grad) for x in xs])

    outs, grads = both(run)
    for _value, requires_grad, grad_fn, _ in outs:
        if requires_grad:
            assert grad_fn == f"{name}Backward"
        else:
            assert grad_fn is None
    assert all(g is not None and np.all(np.isfinite(g)) for g in grads)


#: the Functions whose backward is the true derivative: also checked by central differences
TRUE_DERIVATIVE = ["Exp", "SinCos", "PowN", "Mul", "Cube", "Scale"]


@pytest.mark.parametrize("name", TRUE_DERIVATIVE)
def test_true_gradients_match_central_differences(name: str) -> None:
    call, arrays = CASES[name]
    f = functions(tg)

    def loss(*ts: Any) -> Any:
        outs = _flat(call(f, *ts))
        total = 0.0
        for k, o in enumerate(outs):
            total = total + (o * tg.tensor(_weights(k, tuple(o.shape)))).sum()
        return total

    xs = [leaf(tg, a) for a in arrays]
    loss(*xs).backward()
    for i, a in enumerate(arrays):
        for j in range(len(a)):
            def along(t: float, i: int = i, j: int = j) -> float:
                b = [np.array(x, copy=True) for x in arrays]
                b[i][j] = t
                return float(loss(*[tg.tensor(v) for v in b]).item())

            fd = central_difference(along, a[j])
            assert abs(float(npy(xs[i].grad)[j]) - fd) < 1e-8 * max(1.0, abs(fd)), (name, i, j)


def test_custom_gradients_are_what_backward_says() -> None:
    """The leaky clamp and the straight-through estimator: their gradients, in closed form."""
    f = functions(tg)
    x = leaf(tg, A)
    y = f.LeakyClamp.apply(x, -0.5, 0.75)
    assert_allclose(npy(y), np.clip(A, -0.5, 0.75), **TOL)
    y.sum().backward()
    inside = (A >= -0.5) & (A <= 0.75)
    assert 0 < inside.sum() < 5
    assert_allclose(npy(x.grad), np.where(inside, 1.0, 0.1), **TOL)
    x.grad = None
    y = f.SignSTE.apply(x * 1.5)
    assert_allclose(npy(y), np.sign(A * 1.5), **TOL)
    (y * tg.tensor(B)).sum().backward()
    assert_allclose(npy(x.grad), np.where(np.abs(1.5 * A) <= 1.0, 1.5 * B, 0.0), **TOL)
    assert 0 < np.count_nonzero(npy(x.grad)) < 5  # both sides of the window are exercised


def test_a_multi_output_functions_outputs_share_its_name_and_non_differentiable_outputs() -> None:
    def run(m: Any) -> Any:
        f = functions(m)
        x = leaf(m, A)
        s, c = f.SinCos.apply(x, 2.0)
        y, mask = f.ReluMask.apply(x)
        v, i = f.ArgmaxValue.apply(x)
        (y * y).sum().backward()  # the mask's gradient: zeros (materialized), as torch
        return (_grad_fn_name(s), _grad_fn_name(c), mask.requires_grad, _grad_fn_name(mask), npy(mask),
                str(mask.dtype).replace("torch.", ""), i.requires_grad, int(npy(i)), npy(x.grad),
                [e for e in f.LOG if e[0] == "ReluMask.backward"])

    r = both(run)
    assert r[:4] == ("SinCosBackward", "SinCosBackward", False, None) and r[5] == "bool"
    assert r[6] is False and r[7] == int(np.argmax(A))
    assert_allclose(r[8], 2 * np.maximum(A, 0.0), **TOL)
    assert r[9] == [("ReluMask.backward", True)]


# --- needs_input_grad ----------------------------------------------------------------------------


@pytest.mark.parametrize("needs", [(True, True), (True, False), (False, True)])
def test_needs_input_grad_matches_torch(needs: tuple) -> None:
    def run(m: Any) -> Any:
        f = functions(m)
        a, b = leaf(m, A, needs[0]), leaf(m, B, needs[1])
        out = f.Mul.apply(a, b)
        (out * out).sum().backward()
        if needs[0]:
            f.PowN.apply(a, 2).sum().backward()
        f.Mul.apply(leaf(m, A, False), leaf(m, B, False))
        f.LeakyClamp.apply(b, 0.0, 1.0)
        f.Scale.apply(a, 2.0)
        return f.LOG, npy(a.grad), npy(b.grad)

    log, ag, bg = both(run)
    assert log[0] == ("Mul.forward", needs) and log[1] == ("Mul.backward", needs)
    assert ("Mul.forward", (False, False)) in log
    assert ("LeakyClamp.forward", (needs[1], False, False)) in log
    assert ("Scale.setup_context", (needs[0], False)) in log
    if needs[0]:
        assert_allclose(ag, 2 * A * B * B + 2 * A, **TOL)
    else:
        assert ag is None


def test_needs_input_grad_is_all_false_when_nothing_is_recorded() -> None:
    """Under no_grad tapegrad's needs_input_grad is all False (no gradient will be wanted: FunctionCtx's
    documented meaning); torch's says (True, True) there: it reads requires_grad only."""
    f = functions(tg)
    a, b = leaf(tg, A), leaf(tg, B)
    with tg.no_grad():
        out = f.Mul.apply(a, b)
    assert not out.requires_grad and out.grad_fn is None
    assert f.LOG == [("Mul.forward", (False, False))]
    g = functions(torch)
    with torch.no_grad():
        g.Mul.apply(leaf(torch, A), leaf(torch, B))
    assert g.LOG == [("Mul.forward", (True, True))]


def test_forward_runs_with_grad_disabled_and_its_outputs_are_recorded_once() -> None:
    def run(m: Any) -> Any:
        f = functions(m)
        x = leaf(m, A)
        y = f.Exp.apply(x)
        return f.LOG, _grad_fn_name(y), m.is_grad_enabled()

    log, name, enabled = both(run)
    assert log == [("Exp.forward", (True,), False)] and name == "ExpBackward" and enabled


# --- second derivatives --------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["Exp", "SinCos", "PowN", "Mul", "LeakyClamp", "Scale"])
def test_second_derivatives_through_the_backward_match_torch(name: str) -> None:
    """backward written with the engine's ops is recorded under create_graph: the gradient of
    (gradient . v) matches torch, for autograd.grad and for backward(create_graph=True)."""
    call, arrays = CASES[name]

    def run(m: Any) -> Any:
        f = functions(m)
        xs = [leaf(m, a) for a in arrays]
        outs = _flat(call(f, *xs))
        loss = sum(((o * o).sum() * (k + 1) for k, o in enumerate(outs)), const(m, 0.0))
        grads = m.autograd.grad(loss, xs, create_graph=True)
        dot = sum(((g * const(m, _weights(7 + i, tuple(g.shape)))).sum() for i, g in enumerate(grads)),
                  const(m, 0.0))
        second = m.autograd.grad(dot, xs, allow_unused=True)
        # the same through .backward(create_graph=True)
        xs2 = [leaf(m, a) for a in arrays]
        loss2 = sum(((o * o).sum() * (k + 1) for k, o in enumerate(_flat(call(f, *xs2)))), const(m, 0.0))
        loss2.backward(create_graph=True)
        again = m.autograd.grad(sum((x.grad.sum() for x in xs2), const(m, 0.0)), xs2, allow_unused=True)
        return [npy(g) for g in grads], [npy(s) for s in second], [npy(g) for g in again]

    grads, second, again = both(run)
    assert all(s is not None for s in second)


def test_hessian_through_a_function_matches_torch() -> None:
    def fn_of(m: Any) -> Callable[[Any], Any]:
        f = functions(m)
        return lambda x: (f.Exp.apply(x * 0.5) * f.SinCos.apply(x, 1.5)[0]).sum()

    ours = tg.functional.hessian(fn_of(tg))(const(tg, A))
    ours_rev = tg.functional.jacrev(tg.functional.jacrev(fn_of(tg)))(const(tg, A))
    theirs = torch.autograd.functional.hessian(fn_of(torch), const(torch, A))
    assert_allclose(npy(ours), npy(theirs), **TOL)
    assert_allclose(npy(ours_rev), npy(theirs), **TOL)


# --- forward mode --------------------------------------------------------------------------------


def _torch_jvp(fn: Callable[..., Any], primals: Sequence[np.ndarray], tangents: Sequence[np.ndarray]) -> Any:
    with fwAD.dual_level():
        duals = [fwAD.make_dual(const(torch, p), const(torch, t)) for p, t in zip(primals, tangents)]
        outs = _flat(fn(*duals))
        return [npy(fwAD.unpack_dual(o).primal) for o in outs], [npy(fwAD.unpack_dual(o).tangent) for o in outs]


JVP_CASES = {
    "Exp": (lambda f, x: (f.Exp.apply(x) * x).sin(), [A]),
    "SinCos": (lambda f, x: f.SinCos.apply(x, 3.0), [A]),
    "Mul": (lambda f, a, b: f.Mul.apply(a.exp(), b) * a, [A, B]),
    "chain": (lambda f, x: f.Mul.apply(f.Exp.apply(x), f.SinCos.apply(x, 0.5)[1]), [A]),
}


@pytest.mark.parametrize("name", sorted(JVP_CASES))
def test_jvp_staticmethod_serves_forward_mode_as_torch(name: str) -> None:
    call, arrays = JVP_CASES[name]
    tangents = [T * (i + 1) for i in range(len(arrays))]
    theirs_out, theirs_tan = _torch_jvp(lambda *xs: call(functions(torch), *xs), arrays, tangents)
    f = functions(tg)
    # tapegrad.autograd.jvp: over the recorded outputs
    xs = [leaf(tg, a) for a in arrays]
    outs = _flat(call(f, *xs))
    tans = tg.autograd.jvp(outs, xs, [const(tg, t) for t in tangents])
    same([npy(o) for o in outs], theirs_out, "outputs")
    same([npy(t) for t in tans], theirs_tan, "autograd.jvp")
    # tapegrad.functional.jvp
    out2, tan2 = tg.functional.jvp(lambda *ts: call(f, *ts), [const(tg, a) for a in arrays],
                                   [const(tg, t) for t in tangents])
    same([npy(o) for o in _flat(out2)], theirs_out, "functional.jvp outputs")
    same([npy(t) for t in _flat(tan2)], theirs_tan, "functional.jvp")
    # and the jvp is the reverse-mode Jacobian times the tangent
    jac = tg.functional.jacrev(lambda *ts: call(f, *ts), argnums=tuple(range(len(arrays))))(
        *[const(tg, a) for a in arrays])
    jacs = _flat(jac) if isinstance(jac, tuple) and isinstance(jac[0], tuple) else [jac]
    assert len(jacs) == len(tans)
    for k, row in enumerate(jacs):
        blocks = row if isinstance(row, tuple) else (row,)
        expected = sum(npy(b) @ t for b, t in zip(blocks, tangents))
        assert_allclose(npy(tans[k]), expected, **TOL)


def test_jvp_closed_form_and_jacfwd() -> None:
    f = functions(tg)
    x = leaf(tg, A)
    (t,) = tg.autograd.jvp(f.Exp.apply(x), x, const(tg, T))
    assert_allclose(npy(t), T * np.exp(A), **TOL)
    jac = tg.functional.jacfwd(lambda v: f.SinCos.apply(v, 2.0)[0])(const(tg, A))
    assert_allclose(npy(jac), np.diag(2.0 * np.cos(A)), **TOL)
    (batched,) = tg.autograd.jvp(f.Exp.apply(x), x, const(tg, np.eye(5)), batched=True)
    assert_allclose(npy(batched), np.diag(np.exp(A)), **TOL)
    # reverse over forward: the tangents the jvp staticmethods computed are recorded
    s, c = f.SinCos.apply(x, 2.0)
    ts, tc = tg.autograd.jvp([s, c], x, const(tg, T), create_graph=True)
    assert ts.requires_grad and tc.requires_grad
    (g,) = tg.autograd.grad((ts + tc).sum(), x)
    assert_allclose(npy(g), -T * 2.0 * np.sin(A) - T * np.cos(A), **TOL)


def test_forward_mode_through_a_function_without_jvp_raises_clearly() -> None:
    f = functions(tg)
    x = leaf(tg, A)
    y = f.NoJvp.apply(x)
    with pytest.raises(RuntimeError, match=r"NoJvpBackward.*jvp"):
        tg.autograd.jvp(y, x, const(tg, T))
    with pytest.raises(RuntimeError, match=r"NoJvpBackward.*jvp"):
        tg.functional.jvp(lambda v: f.NoJvp.apply(v).sin(), [const(tg, A)], [const(tg, T)])
    with pytest.raises(RuntimeError, match=r"NoJvpBackward.*jvp"):
        tg.functional.jacfwd(lambda v: f.NoJvp.apply(v))(const(tg, A))
    # torch: NotImplementedError ("You must implement the jvp function")
    g = functions(torch)
    with pytest.raises(NotImplementedError, match="jvp"):
        _torch_jvp(lambda v: g.NoJvp.apply(v), [A], [T])
    # reverse mode through it is fine, and so is reverse over reverse
    (gx,) = tg.autograd.grad(f.NoJvp.apply(x).sum(), x)
    assert_allclose(npy(gx), 2 * A, **TOL)
    h = tg.functional.jacrev(tg.functional.grad(lambda v: f.NoJvp.apply(v).sin().sum()))(const(tg, A))
    assert_allclose(npy(h), np.diag(2 * np.cos(A**2) - 4 * A**2 * np.sin(A**2)), **TOL)


# --- once_differentiable, materialize_grads, setup_context ----------------------------------------


def test_once_differentiable_first_derivative_fine_second_raises() -> None:
    def run(m: Any) -> Any:
        f = functions(m)
        x = leaf(m, A)
        y = f.Cube.apply(x)
        (g,) = m.autograd.grad((y * y).sum(), x, create_graph=True)
        with pytest.raises(RuntimeError, match="trying to differentiate twice"):
            g.sum().backward()
        x2 = leaf(m, A)
        (g2,) = m.autograd.grad(f.Cube.apply(x2).sum(), x2)
        return npy(g), npy(g2), g2.requires_grad, f.LOG

    g, g2, req, log = both(run)
    assert_allclose(g, 2 * A**3 * 3 * A**2, **TOL)
    assert_allclose(g2, 3 * A**2, **TOL)
    assert req is False
    assert log == [("Cube.backward grad enabled", False)] * 2


@pytest.mark.parametrize("materialize", [True, False])
def test_set_materialize_grads(materialize: bool) -> None:
    def run(m: Any) -> Any:
        f = functions(m)
        a, b = leaf(m, A), leaf(m, B)
        u, v = f.lazy_pair(materialize).apply(a, b)
        (u * const(m, B)).sum().backward()
        return f.LOG, npy(a.grad), npy(b.grad)

    log, ag, bg = both(run)
    ((_, ga, gb),) = log
    assert_allclose(ga, B, **TOL)
    if materialize:
        assert_allclose(gb, np.zeros(5), **TOL)
        assert_allclose(bg, np.zeros(5), **TOL)
    else:
        assert gb is None and bg is None
    assert_allclose(ag, 2 * B, **TOL)


def test_setup_context_spelling() -> None:
    def run(m: Any) -> Any:
        f = functions(m)
        x = leaf(m, A)
        y = f.Scale.apply(x, -1.5)
        (y * y).sum().backward()
        return npy(y), _grad_fn_name(y), npy(x.grad), f.LOG

    y, name, g, log = both(run)
    assert name == "ScaleBackward" and log == [("Scale.setup_context", (True, False))]
    assert_allclose(g, 2 * 1.5**2 * A, **TOL)


# --- errors from the backward and from saved tensors ----------------------------------------------


@pytest.mark.parametrize("saved", ["input", "output"])
def test_an_in_place_change_of_a_saved_tensor_makes_backward_raise(saved: str) -> None:
    for m in (tg, torch):
        f = functions(m)
        x = leaf(m, A)
        if saved == "input":
            z = x * 1.0
            y = f.PowN.apply(z, 2)
            victim = z
        else:
            y = f.Exp.apply(x)
            victim = y
        with m.no_grad():
            victim.mul_(2.0)
        with pytest.raises(RuntimeError, match="modified by an inplace operation|modified by an in-place operation"):
            (y * 1.0).sum().backward()
        assert x.grad is None


def _bad(m: Any, backward: Callable[..., Any], n_args: int = 1) -> Any:
    def forward(ctx: Any, *args: Any) -> Any:
        return args[0] * 2.0

    return type("Bad", (m.autograd.Function,), {"forward": staticmethod(forward),
                                                 "backward": staticmethod(backward)})


def test_wrong_number_of_gradients() -> None:
    for m in (tg, torch):
        Bad = _bad(m, lambda ctx, g: g)
        with pytest.raises(RuntimeError, match=r"function BadBackward returned an incorrect number of gradients "
                                               r"\(expected 2, got 1\)"):
            Bad.apply(leaf(m, A), leaf(m, B)).sum().backward()
        Bad = _bad(m, lambda ctx, g: (g, g, g))
        with pytest.raises(RuntimeError, match=r"incorrect number of gradients \(expected 2, got 3\)"):
            Bad.apply(leaf(m, A), leaf(m, B)).sum().backward()
        # extra Nones are allowed (torch's rule)
        Fine = _bad(m, lambda ctx, g: (g, None, None, None))
        x = leaf(m, A)
        Fine.apply(x).sum().backward()
        assert_allclose(npy(x.grad), np.ones(5), **TOL)


def test_a_gradient_of_the_wrong_shape_names_both_shapes() -> None:
    Bad = _bad(tg, lambda ctx, g: g[:3])
    x = leaf(tg, A)
    with pytest.raises(ValueError, match=r"BadBackward.*\(3,\).*\(5,\)"):
        Bad.apply(x).sum().backward()
    assert x.grad is None
    with pytest.raises(RuntimeError, match="got \\[3\\] but expected shape compatible with \\[5\\]"):
        _bad(torch, lambda ctx, g: g[:3]).apply(leaf(torch, A)).sum().backward()
    # a gradient that sums to the input's shape is summed, as torch does
    for m in (tg, torch):
        x = leaf(m, A)
        _bad(m, lambda ctx, g, m=m: const(m, np.ones((2, 5)))).apply(x).sum().backward()
        assert_allclose(npy(x.grad), np.full(5, 2.0), **TOL)


def test_a_gradient_for_a_non_tensor_input_is_an_error() -> None:
    for m in (tg, torch):
        Bad = _bad(m, lambda ctx, g: (g, g))
        with pytest.raises(RuntimeError, match="returned a gradient different than None at position"):
            Bad.apply(leaf(m, A), 2.0).sum().backward()


@pytest.mark.parametrize("value", [3.0, [1.0] * 5, "g", np.ones(5)], ids=["float", "list", "str", "ndarray"])
def test_a_backward_returning_a_non_tensor_is_an_error(value: Any) -> None:
    for m in (tg, torch):
        x = leaf(m, A)
        Bad = _bad(m, lambda ctx, g: value)
        # tapegrad: TypeError naming the type; torch: RuntimeError "expected Variable or None"
        with pytest.raises(TypeError if m is tg else RuntimeError) as info:
            Bad.apply(x).sum().backward()
        assert x.grad is None
        if m is tg:
            assert type(value).__name__ in str(info.value)


def test_a_backward_that_raises_propagates_and_a_clean_backward_follows() -> None:
    def boom(ctx: Any, g: Any) -> Any:
        raise KeyError("backward failed on purpose")

    Bad = _bad(tg, boom)
    x, w = leaf(tg, A), leaf(tg, B)
    y = Bad.apply(x) + w * w
    with pytest.raises(KeyError, match="backward failed on purpose"):
        y.sum().backward()
    assert x.grad is None and (w.grad is None or np.allclose(npy(w.grad), 2 * B))
    w.grad = None
    (x * 2.0 + w * w).sum().backward()
    assert_allclose(npy(x.grad), np.full(5, 2.0), **TOL)
    assert_allclose(npy(w.grad), 2 * B, **TOL)


def test_functions_are_not_instantiated_and_must_define_forward_and_backward() -> None:
    f = functions(tg)
    with pytest.raises(RuntimeError, match="apply"):
        f.Exp()
    NoBackward = type("NoBackward", (tg.autograd.Function,), {"forward": staticmethod(lambda ctx, x: x * 2.0)})
    with pytest.raises(NotImplementedError, match="backward"):
        NoBackward.apply(leaf(tg, A))
    NoForward = type("NoForward", (tg.autograd.Function,), {})
    with pytest.raises(NotImplementedError, match="forward"):
        NoForward.apply(leaf(tg, A))
    with pytest.raises(TypeError, match="save_for_backward"):
        f.Mul.apply(2.0, 3.0)  # floats to save_for_backward (torch defers the check)


def test_an_output_kept_as_a_ctx_attribute_is_usable_in_backward() -> None:
    def run(m: Any) -> Any:
        class ExpAttr(m.autograd.Function):
            @staticmethod
            def forward(ctx, x):
                y = x.exp()
                ctx.y = y
                return y

            @staticmethod
            def backward(ctx, g):
                return g * ctx.y

        x = leaf(m, A)
        ExpAttr.apply(x).sum().backward()
        return npy(x.grad)

    assert_allclose(both(run), np.exp(A), **TOL)


def test_an_input_kept_as_a_ctx_attribute_is_usable_in_backward() -> None:
    def run(m: Any) -> Any:
        class SinAttr(m.autograd.Function):
            @staticmethod
            def forward(ctx, x):
                ctx.x = x
                return x.sin()

            @staticmethod
            def backward(ctx, g):
                return g * ctx.x.cos()

        x = leaf(m, A)
        SinAttr.apply(x).sum().backward()
        return npy(x.grad)

    assert_allclose(both(run), np.cos(A), **TOL)


# --- hostile apply: documented behaviours -----------------------------------------------------------


def _fn(m: Any, forward: Callable[..., Any], backward: Callable[..., Any] = lambda ctx, *g: g[0]) -> Any:
    return type("Hostile", (m.autograd.Function,), {"forward": staticmethod(forward),
                                                     "backward": staticmethod(backward)})


@pytest.mark.parametrize("case", ["no tensors", "None", "list", "dict", "int", "mixed tuple", "nested tuple",
                                  "input itself", "int tensor", "empty tuple"])
def test_hostile_apply_behaves_as_torch(case: str) -> None:
    """What forward returns decides what apply returns: Tensors (alone or in a tuple) are recorded, anything
    else passes through unrecorded (a list, a dict, a nested tuple's inner tuple, numbers, None)."""

    def run(m: Any) -> Any:
        x = leaf(m, A)
        forward = {
            "no tensors": lambda ctx, a, b: a * b,
            "None": lambda ctx, x: None,
            "list": lambda ctx, x: [x * 2.0, x * 3.0],
            "dict": lambda ctx, x: {"y": x * 2.0},
            "int": lambda ctx, x: 7,
            "mixed tuple": lambda ctx, x: (x * 2.0, 7, "s", None),
            "nested tuple": lambda ctx, x: (x * 2.0, (x * 3.0,)),
            "input itself": lambda ctx, x: x,
            "int tensor": lambda ctx, x: m.tensor(np.array([1, 2], dtype=np.int64)),
            "empty tuple": lambda ctx, x: (),
        }[case]
        backward = (lambda ctx, *g: g[0] * 5.0) if case in ("input itself", "mixed tuple", "nested tuple") else (
            lambda ctx, *g: g[0])
        fn = _fn(m, forward, backward)
        out = fn.apply(2.0, 3.0) if case == "no tensors" else fn.apply(x)

        def describe(o: Any) -> Any:
            if isinstance(o, (tg.Tensor, torch.Tensor)):
                return ("tensor", npy(o), o.requires_grad, _grad_fn_name(o))
            if isinstance(o, (list, tuple)):
                return (type(o).__name__, [describe(i) for i in o])
            if isinstance(o, dict):
                return {k: describe(v) for k, v in o.items()}
            return o

        result = describe(out)
        first = out[0] if isinstance(out, tuple) and out else out
        if isinstance(first, (tg.Tensor, torch.Tensor)) and first.requires_grad:
            first.sum().backward()
        return result, npy(x.grad)

    result, grad = both(run)
    if case in ("input itself", "mixed tuple", "nested tuple"):
        assert_allclose(grad, np.full(5, 5.0), **TOL)
    elif case == "no tensors":
        assert result == 6.0 and grad is None
    else:
        assert grad is None


def test_a_function_returning_the_same_tensor_twice_gives_each_output_its_gradient() -> None:
    """(tapegrad records two outputs: backward gets each one's gradient; torch merges them into the last.)"""
    Twice = _fn(tg, lambda ctx, x: (lambda y: (y, y))(x * 2.0), lambda ctx, g1, g2: g1 + 2.0 * g2)
    x = leaf(tg, A)
    u, v = Twice.apply(x)
    (u * 3.0 + v * 5.0).sum().backward()
    assert_allclose(npy(x.grad), np.full(5, 13.0), **TOL)


def test_kwargs_pass_to_forward() -> None:
    """A keyword argument reaches forward. (torch binds it to forward's parameters: needs_input_grad and the
    gradients backward returns count it; tapegrad counts positional arguments only, and accepts the extra
    None a backward written for torch returns.)"""

    def run(m: Any) -> Any:
        nig: List[Any] = []

        def forward(ctx: Any, x: Any, k: float = 1.0) -> Any:
            nig.append(ctx.needs_input_grad)
            return x * k

        fn = _fn(m, forward, lambda ctx, g: (g * 4.0, None))
        x = leaf(m, A)
        y = fn.apply(x, k=4.0)
        y.sum().backward()
        return npy(y), npy(x.grad), nig[0][0]

    y, g, needs_x = both(run)
    assert needs_x is True
    assert_allclose(y, 4.0 * A, **TOL)
    assert_allclose(g, np.full(5, 4.0), **TOL)


FUZZ = textwrap.dedent(r'''
    import faulthandler
    import random
    import sys

    faulthandler.enable()
    import numpy as np
    import tapegrad as tg

    seed, n = int(sys.argv[1]), int(sys.argv[2])
    rng = random.Random(seed)
    results = errors = 0
    CLEAN = (TypeError, ValueError, RuntimeError, NotImplementedError)

    def clean(e):
        """A hostile Function's error is one of these types (its own ValueError included)."""
        if not isinstance(e, CLEAN):
            print(f"unexpected {type(e).__name__}: {e}", flush=True)
            raise SystemExit(3)

    def pick(options):
        return options[rng.randrange(len(options))]

    def fwd_result(ctx, args):
        tensors = [a for a in args if isinstance(a, tg.Tensor)]
        x = tensors[0] if tensors else None
        kind = pick(["one", "two", "input", "None", "list", "dict", "int", "mixed", "nested", "empty",
                     "inttensor", "same twice", "scalar", "array", "str", "bool mask"])
        if x is None:
            return pick([3, None, (), "s", tg.tensor(1.0)])
        return {
            "one": lambda: x * 2.0, "two": lambda: (x * 2.0, x.sin()), "input": lambda: x, "None": lambda: None,
            "list": lambda: [x * 2.0], "dict": lambda: {"a": x}, "int": lambda: 3,
            "mixed": lambda: (x * 2.0, 7, None, "s"), "nested": lambda: (x, (x * 3.0,)), "empty": lambda: (),
            "inttensor": lambda: tg.tensor([1, 2]), "same twice": lambda: (lambda y: (y, y))(x * 2.0),
            "scalar": lambda: x.sum(), "array": lambda: np.ones(3), "str": lambda: "out",
            "bool mask": lambda: (x * 1.0, x > 0),
        }[kind]()

    def ctx_actions(ctx, args, out):
        tensors = [a for a in args if isinstance(a, tg.Tensor)]
        outs = list(out) if isinstance(out, tuple) else [out]
        pool = tensors + outs + [None, 3.0, "s", np.ones(2)]
        for _ in range(rng.randrange(3)):
            action = pick(["save", "nondiff", "materialize", "attr"])
            try:
                if action == "save":
                    ctx.save_for_backward(*[pick(pool) for _ in range(rng.randrange(3))])
                elif action == "nondiff":
                    ctx.mark_non_differentiable(*[pick(pool) for _ in range(rng.randrange(3))])
                elif action == "materialize":
                    ctx.set_materialize_grads(pick([True, False, 0, None]))
                else:
                    ctx.y = pick(pool)
            except (TypeError, ValueError, RuntimeError):
                pass

    def bwd_result(ctx, grads):
        g = next((x for x in grads if isinstance(x, tg.Tensor)), None)
        kind = pick(["g", "None", "pair", "triple", "list", "float", "str", "array", "wrong shape", "int",
                     "nan", "raise", "many None", "nested", "saved", "scalar"])
        if kind == "raise":
            raise ValueError("hostile backward")
        if kind == "saved":
            s = ctx.saved_tensors
            return s[0] if s else g
        return {
            "g": lambda: g, "None": lambda: None, "pair": lambda: (g, None), "triple": lambda: (g, g, g),
            "list": lambda: [g], "float": lambda: 1.0, "str": lambda: "g", "array": lambda: np.ones(2),
            "wrong shape": lambda: tg.ones((7, 3)), "int": lambda: tg.tensor([1, 2]),
            "nan": lambda: None if g is None else g * float("nan"), "many None": lambda: (None,) * 6,
            "nested": lambda: ((g,),), "scalar": lambda: None if g is None else g.sum(),
        }[kind]()

    def make():
        def forward(ctx, *args, **kwargs):
            out = fwd_result(ctx, args)
            ctx_actions(ctx, args, out)
            return out

        def backward(ctx, *grads):
            return bwd_result(ctx, grads)

        body = {"forward": staticmethod(forward), "backward": staticmethod(backward)}
        if rng.random() < 0.4:
            body["jvp"] = staticmethod(lambda ctx, *t: bwd_result(ctx, t))
        return type("Hostile", (tg.autograd.Function,), body)

    for i in range(n):
        print(f"@@ {i}", flush=True)
        x = tg.tensor(np.linspace(-1.0, 1.0, 2), requires_grad=True)
        y = tg.tensor([0.5, 1.5], requires_grad=rng.random() < 0.5)
        args = pick([(x,), (x, 3), (), (x, y), (3,), (x, None), (tg.Var(1.0),), (np.ones(2),), (y, x, "s"),
                     (x * 1.0,)])
        try:
            out = make().apply(*args)
            results += 1
        except Exception as e:
            clean(e)
            errors += 1
            continue
        outs = list(out) if isinstance(out, (tuple, list)) else [out]
        outs = [o for o in outs if isinstance(o, tg.Tensor) and o.requires_grad and o.dtype.kind == "f"]
        if not outs:
            continue
        for step in ("backward", "grad", "create_graph", "jvp"):
            try:
                total = sum((o.sum() for o in outs), tg.tensor(0.0))
                if step == "backward":
                    total.backward()
                elif step == "grad":
                    tg.autograd.grad(total, [x], allow_unused=True)
                elif step == "create_graph":
                    (g,) = tg.autograd.grad(total, [x], create_graph=True, allow_unused=True)
                    if g is not None and g.requires_grad:
                        g.sum().backward()
                else:
                    tg.autograd.jvp(outs, [x], [tg.ones(2)])
                results += 1
            except Exception as e:
                clean(e)
                errors += 1
    print(f"done {results} {errors}", flush=True)
''')


@pytest.mark.parametrize("seed", [0, 1])
def test_hostile_functions_never_crash(seed: int, tmp_path: Any) -> None:
    """Random Functions (forwards returning anything, ctx calls with anything, backwards and jvps returning
    anything or raising) applied to random arguments, then swept every way: each step returns or raises a
    Python exception; the child process never dies."""
    results, errors = run_fuzz_worker(FUZZ, seed, 300, tmp_path)
    assert results > 50 and errors > 50, (results, errors)


# --- a Function in a model, and in checkpoint ------------------------------------------------------


def _leaky_tanh(m: Any) -> Any:
    class LeakyTanh(m.autograd.Function):
        """tanh(x) + 0.1 x, its derivative from the saved output."""

        @staticmethod
        def forward(ctx, x):
            t = x.tanh()
            ctx.save_for_backward(t)
            return t + 0.1 * x

        @staticmethod
        def backward(ctx, g):
            (t,) = ctx.saved_tensors
            return g * (1.0 - t * t + 0.1)

    return LeakyTanh


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(3, 8)
        self.fc2 = nn.Linear(8, 2)
        self.act = _leaky_tanh(tg)

    def forward(self, x: Any) -> Any:
        return self.fc2(self.act.apply(self.fc1(x)))


class TorchNet(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = torch.nn.Linear(3, 8, dtype=torch.float64)
        self.fc2 = torch.nn.Linear(8, 2, dtype=torch.float64)
        self.act = _leaky_tanh(torch)

    def forward(self, x: Any) -> Any:
        return self.fc2(self.act.apply(self.fc1(x)))


def _nets() -> Any:
    torch.manual_seed(11)
    theirs = TorchNet()
    ours = Net()
    result = ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    assert result.missing_keys == [] and result.unexpected_keys == []
    return ours, theirs


def test_a_function_inside_a_module_trained_by_sgd_matches_torch() -> None:
    ours, theirs = _nets()
    runs = []
    for m, model in ((tg, ours), (torch, theirs)):
        opt = m.optim.SGD(model.parameters(), lr=0.2, momentum=0.5)
        losses = []
        for _ in range(6):
            opt.zero_grad()
            loss = ((model(const(m, X2)) - const(m, Y2)) ** 2).mean()
            loss.backward()
            opt.step()
            losses.append(float(loss.item()))
        runs.append((losses, {k: npy(v) for k, v in model.state_dict().items()}))
    same(runs[0], runs[1], "training")
    assert runs[0][0][-1] < runs[0][0][0]


def test_a_function_inside_checkpoint_gives_the_same_gradients() -> None:
    ours, theirs = _nets()

    def grads(m: Any, model: Any, use_checkpoint: bool, create_graph: bool) -> Any:
        x = leaf(m, X2)
        if use_checkpoint:
            if m is tg:
                h = checkpoint(lambda v: model.act.apply(model.fc1(v)), x)
            else:
                h = torch.utils.checkpoint.checkpoint(lambda v: model.act.apply(model.fc1(v)), x,
                                                      use_reentrant=False)
        else:
            h = model.act.apply(model.fc1(x))
        loss = (model.fc2(h) ** 2).sum()
        params = [model.fc1.weight, model.fc1.bias, model.fc2.weight]
        gs = m.autograd.grad(loss, [x] + params, create_graph=create_graph)
        out = [npy(g) for g in gs]
        if create_graph:
            (gg,) = m.autograd.grad(sum((g * g).sum() for g in gs), model.fc1.weight)
            out.append(npy(gg))
        return out

    for create_graph in (False, True):
        plain = grads(tg, ours, False, create_graph)
        same(grads(tg, ours, True, create_graph), plain, f"checkpointed (create_graph={create_graph})")
        same(plain, grads(torch, theirs, True, create_graph), f"torch (create_graph={create_graph})")


def test_save_for_forward_is_what_jvp_reads_as_torch() -> None:
    """ctx.save_for_forward keeps tensors for jvp (saved_tensors there), save_for_backward for backward."""

    def make(m: Any) -> Any:
        class F(m.autograd.Function):
            @staticmethod
            def forward(ctx: Any, x: Any, y: Any) -> Any:
                ctx.save_for_backward(x, y)
                ctx.save_for_forward(x * 10, y)
                return x * y

            @staticmethod
            def backward(ctx: Any, g: Any) -> Any:
                x, y = ctx.saved_tensors
                return g * y, g * x

            @staticmethod
            def jvp(ctx: Any, tx: Any, ty: Any) -> Any:
                x10, y = ctx.saved_tensors
                return tx * y + ty * x10 / 10

        return F

    x0, y0, tx, ty = A, B, T, T[::-1].copy()
    F = make(tg)
    x, y = leaf(tg, x0), leaf(tg, y0)
    (jv,) = tg.autograd.jvp(F.apply(x, y), (x, y), (tg.tensor(tx), tg.tensor(ty)))
    Ft = make(torch)
    with fwAD.dual_level():
        xd = fwAD.make_dual(torch.tensor(x0), torch.tensor(tx))
        yd = fwAD.make_dual(torch.tensor(y0), torch.tensor(ty))
        jt = fwAD.unpack_dual(Ft.apply(xd, yd)).tangent
    same(npy(jv), npy(jt), "jvp")
    gx, gy = tg.autograd.grad(F.apply(x, y).sum(), (x, y))
    same([npy(gx), npy(gy)], [y0, x0], "backward reads save_for_backward's")
