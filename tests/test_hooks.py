"""Hooks (issue 12, part 3) against PyTorch on the same float64 inputs: ``Tensor.register_hook`` (the
gradients hooks see, their order, gradients they replace, intermediates and leaves, ``autograd.grad``,
``create_graph``), ``register_post_accumulate_grad_hook`` (an SGD step per parameter), the handles
(``remove()``, ``with handle:``), ``nn.Module``'s forward and full backward hooks (``grad_input`` and
``grad_output`` of ``nn.Linear`` / ``nn.Sequential``, ``prepend=``), ``Var.register_hook`` on
micrograd-style scalar code, and hostile hooks (not callable, raising, returning the wrong type or
shape): a clean exception, no half-written ``.grad``, and a clean backward afterwards.

Most cases are one function ``run(m)`` called with ``m = tapegrad`` and ``m = torch`` that returns what
the hooks saw and the resulting gradients; both runs must agree to 1e-12."""

from __future__ import annotations

from typing import Any, Callable, Dict, List

import numpy as np
import pytest
from numpy.testing import assert_allclose

import tapegrad as tg
from conftest import central_difference
from tapegrad import nn
from tapegrad.utils.hooks import RemovableHandle

pytestmark = [
    pytest.mark.usefixtures("torch_one_thread"),  # (conftest.py)
    # torch's warnings about what these tests do on purpose
    pytest.mark.filterwarnings("ignore:Full backward hook is firing when gradients are computed:UserWarning"),
    pytest.mark.filterwarnings("ignore:Using backward\\(\\) with create_graph=True:UserWarning"),
]

torch = pytest.importorskip("torch")
from twins import TOL, both, const, leaf, npy, same  # noqa: E402 (after the skip)

RNG = np.random.default_rng(12)
A = RNG.standard_normal(4)
B = RNG.standard_normal(4)
W = RNG.standard_normal(4)
X2 = RNG.standard_normal((5, 3))
_SEED52 = RNG.standard_normal((5, 2))  # a cotangent of the MLP's output


# --- helpers -------------------------------------------------------------------------------------


def grad_of(m: Any) -> Callable[..., Any]:
    return m.autograd.grad


def recorder(log: List[Any], name: str, result: Callable[[Any], Any] = lambda g: None) -> Callable[[Any], Any]:
    """A hook that logs (name, its gradient) and returns result(g)."""

    def hook(g: Any) -> Any:
        log.append((name, npy(g)))
        return result(g)

    return hook


# --- what hooks see ------------------------------------------------------------------------------


def test_hooks_see_the_gradients_torch_sees() -> None:
    def run(m: Any) -> Any:
        log: List[Any] = []
        x, w = leaf(m, A), leaf(m, B)
        y = x * w
        z = y.tanh()
        u = z * z + y
        for name, t in (("x", x), ("w", w), ("y", y), ("z", z), ("u", u)):
            t.register_hook(recorder(log, name))
        (u * const(m, W)).sum().backward()
        seen = dict(log)
        assert len(seen) == len(log) == 5, f"each hook once: {[n for n, _ in log]}"
        order = [n for n, _ in log]
        # reverse topological order: u, then z, then y, then the two leaves
        assert order[:3] == ["u", "z", "y"] and sorted(order[3:]) == ["w", "x"], order
        return seen, npy(x.grad), npy(w.grad)

    seen, xg, wg = both(run)
    # closed form: du/dy = 2 z (1 - z^2) + 1
    z = np.tanh(A * B)
    dy = W * (2 * z * (1 - z**2) + 1)
    assert_allclose(seen["u"], W, **TOL)
    assert_allclose(seen["z"], W * 2 * z, **TOL)
    assert_allclose(seen["y"], dy, **TOL)
    assert_allclose(seen["x"], dy * B, **TOL)
    assert_allclose(xg, dy * B, **TOL)
    assert_allclose(wg, dy * A, **TOL)


def test_a_tensor_used_twice_has_its_hook_called_once_with_the_sum() -> None:
    def run(m: Any) -> Any:
        log: List[Any] = []
        x = leaf(m, A)
        y = x.sin()
        y.register_hook(recorder(log, "y"))
        x.register_hook(recorder(log, "x"))
        loss = (y * const(m, W)).sum() + (y * y).sum() + (x * 3.0).sum()
        loss.backward()
        assert [n for n, _ in log] == ["y", "x"]
        return log, npy(x.grad)

    log, xg = both(run)
    dy = W + 2 * np.sin(A)
    assert_allclose(log[0][1], dy, **TOL)
    assert_allclose(xg, dy * np.cos(A) + 3.0, **TOL)


@pytest.mark.parametrize("where", ["leaf", "intermediate"])
def test_several_hooks_run_in_registration_order_each_on_the_previous_result(where: str) -> None:
    def run(m: Any) -> Any:
        log: List[Any] = []
        x = leaf(m, A)
        y = x * x
        t = x if where == "leaf" else y
        t.register_hook(recorder(log, "first", lambda g: g * 2.0))
        t.register_hook(recorder(log, "second"))  # None: keeps the gradient
        t.register_hook(recorder(log, "third", lambda g: g + 1.0))
        t.register_hook(recorder(log, "fourth", lambda g: -g))
        (y * const(m, W)).sum().backward()
        assert [n for n, _ in log] == ["first", "second", "third", "fourth"]
        return log, npy(x.grad)

    log, xg = both(run)
    g0 = W * 2 * A if where == "leaf" else W
    assert_allclose(log[0][1], g0, **TOL)
    assert_allclose(log[1][1], 2 * g0, **TOL)
    assert_allclose(log[2][1], 2 * g0, **TOL)
    assert_allclose(log[3][1], 2 * g0 + 1, **TOL)
    final = -(2 * g0 + 1)
    assert_allclose(xg, final if where == "leaf" else final * 2 * A, **TOL)


REPLACEMENTS: Dict[str, Callable[[Any], Any]] = {
    "scale": lambda g: g * 0.25,
    "zero": lambda g: g * 0.0,
    "clip": lambda g: g.clamp(-0.5, 0.5),
    "negate": lambda g: -g,
    "square": lambda g: g * g,
}


@pytest.mark.parametrize("kind", sorted(REPLACEMENTS))
@pytest.mark.parametrize("where", ["x", "w", "y", "z"])
def test_a_hook_replaces_the_gradient(kind: str, where: str) -> None:
    def run(m: Any) -> Any:
        x, w = leaf(m, A * 2), leaf(m, B * 2)
        y = x * w
        z = y.sin() * x
        {"x": x, "w": w, "y": y, "z": z}[where].register_hook(REPLACEMENTS[kind])
        (z * const(m, W)).sum().backward()
        return npy(x.grad), npy(w.grad)

    xg, wg = both(run)
    assert np.all(np.isfinite(xg)) and np.all(np.isfinite(wg))
    if kind == "zero" and where in ("y", "z"):
        # every path to w passes y: w's gradient is all zeros (not None)
        assert_allclose(wg, np.zeros(4), **TOL)


def test_clipping_hook_bounds_a_leafs_gradient() -> None:
    def run(m: Any) -> Any:
        x = leaf(m, A)
        x.register_hook(lambda g: g.clamp(-1.0, 1.0))
        (x * const(m, [10.0, -10.0, 0.5, -0.25])).sum().backward()
        return npy(x.grad)

    assert_allclose(both(run), [1.0, -1.0, 0.5, -0.25], **TOL)


def test_a_leaf_hook_sees_each_backwards_new_gradient_not_the_accumulated_one() -> None:
    def run(m: Any) -> Any:
        log: List[Any] = []
        x = leaf(m, A)
        x.register_hook(recorder(log, "x", lambda g: g * 10.0))
        (x * x).sum().backward()
        first = npy(x.grad)
        (x * const(m, W)).sum().backward()
        return log, first, npy(x.grad)

    log, first, second = both(run)
    assert_allclose(log[0][1], 2 * A, **TOL)
    assert_allclose(log[1][1], W, **TOL)
    assert_allclose(first, 20 * A, **TOL)
    assert_allclose(second, 20 * A + 10 * W, **TOL)


def test_a_zeroing_hook_on_an_intermediate_gives_zero_gradients_not_none() -> None:
    def run(m: Any) -> Any:
        x = leaf(m, A)
        y = x.exp()
        y.register_hook(lambda g: g * 0.0)
        (y * 3.0).sum().backward()
        assert x.grad is not None
        return npy(x.grad)

    assert_allclose(both(run), np.zeros(4), **TOL)


def test_retain_grad_keeps_the_hooked_gradient() -> None:
    def run(m: Any) -> Any:
        x = leaf(m, A)
        y = x * 3.0
        y.retain_grad()
        y.register_hook(lambda g: g * 2.0)
        (y * y).sum().backward()
        return npy(y.grad), npy(x.grad)

    yg, xg = both(run)
    assert_allclose(yg, 2 * (2 * 3 * A), **TOL)
    assert_allclose(xg, 3 * yg, **TOL)


# --- hooks and autograd.grad ---------------------------------------------------------------------


def test_hooks_apply_in_autograd_grad_and_leave_dot_grad_alone() -> None:
    def run(m: Any) -> Any:
        log: List[Any] = []
        x, w = leaf(m, A), leaf(m, B)
        y = x * w
        y.register_hook(recorder(log, "y", lambda g: g * 3.0))
        x.register_hook(recorder(log, "x", lambda g: g + 1.0))  # x is an input: its hook applies
        gx, gw = grad_of(m)((y.sin() * const(m, W)).sum(), (x, w))
        assert x.grad is None and w.grad is None
        return log, npy(gx), npy(gw)

    log, gx, gw = both(run)
    dy = 3 * W * np.cos(A * B)
    assert [n for n, _ in log] == ["y", "x"]
    assert_allclose(gx, dy * B + 1.0, **TOL)
    assert_allclose(gw, dy * A, **TOL)


def test_a_leaf_hook_for_autograd_grads_input_sees_the_gradient_before_it_is_returned() -> None:
    def run(m: Any) -> Any:
        log: List[Any] = []
        x = leaf(m, A)
        x.register_hook(recorder(log, "x", lambda g: g * 10.0))
        (gx,) = grad_of(m)((x * x).sum(), x)
        return log, npy(gx), x.grad is None

    log, gx, no_grad = both(run)
    assert no_grad
    assert_allclose(log[0][1], 2 * A, **TOL)
    assert_allclose(gx, 20 * A, **TOL)


@pytest.mark.parametrize("where", ["leaf not in inputs", "branch off the path"])
def test_autograd_grad_does_not_call_hooks_off_its_path(where: str) -> None:
    def run(m: Any) -> Any:
        log: List[Any] = []
        x, w = leaf(m, A), leaf(m, B)
        y = x.exp()
        (x if where == "leaf not in inputs" else y).register_hook(recorder(log, "hooked"))
        (gw,) = grad_of(m)((x * w).sum() + y.sum(), w)
        return [n for n, _ in log], npy(gw)

    names, gw = both(run)
    assert names == []
    assert_allclose(gw, A, **TOL)


# --- hooks under create_graph --------------------------------------------------------------------


def _hooked_gradient(m: Any, a: np.ndarray, create_graph: bool) -> Any:
    """The gradient of sum((x sin x)^2) w.r.t. x where a hook multiplies the gradient of y = x sin x by
    x: (x, the gradient, the hook's handle)."""
    x = leaf(m, a)
    y = x.sin() * x
    seen: List[bool] = []
    handle = y.register_hook(lambda g: (seen.append(bool(g.requires_grad)), g * x)[1])
    (g,) = grad_of(m)((y * y).sum(), x, create_graph=create_graph)
    assert seen == [create_graph], f"the hook's gradient requires grad: {seen}, create_graph={create_graph}"
    return x, g, handle


HESS_AT = np.array([0.5, -1.0, 2.0, 1.3])


@pytest.mark.parametrize("keep_hook", [False, True])
def test_a_hook_under_create_graph_is_recorded_hessian_matches_torch(keep_hook: bool) -> None:
    """The hook's product is recorded: the second derivative goes through it. Removed before the second
    sweep, the Hessian is the Jacobian of the hooked gradient (central differences); kept, it runs again
    in the second sweep (through y), as in torch."""
    a = HESS_AT

    def run(m: Any) -> Any:
        x, g, handle = _hooked_gradient(m, a, create_graph=True)
        assert g.requires_grad
        if not keep_hook:
            handle.remove()
        rows = [npy(grad_of(m)(g[i], x, retain_graph=True)[0]) for i in range(len(a))]
        return npy(g), np.array(rows)

    g, hess = both(run)
    # closed form of the hooked gradient G(x) = 2 (x sin x) * x * (sin x + x cos x)
    s, c = np.sin(a), np.cos(a)
    y, dy, d2y = a * s, s + a * c, 2 * c - a * s
    assert_allclose(g, 2 * y * a * dy, **TOL)
    assert_allclose(hess - np.diag(np.diag(hess)), np.zeros((4, 4)), **TOL)
    full = 2 * dy * a * dy + 2 * y * dy + 2 * y * a * d2y  # G'(x)
    if keep_hook:
        # the second sweep's gradient into y is multiplied by x again: 2 x y'^2 becomes 2 x^2 y'^2
        assert_allclose(np.diag(hess), full + 2 * a * dy**2 * (a - 1), rtol=1e-12, atol=1e-12)
        return
    assert_allclose(np.diag(hess), full, rtol=1e-12, atol=1e-12)
    for i in range(len(a)):
        def gi(t: float, i: int = i) -> float:
            b = a.copy()
            b[i] = t
            return float(npy(_hooked_gradient(tg, b, create_graph=False)[1])[i])

        fd = central_difference(gi, a[i])
        assert abs(hess[i, i] - fd) < 1e-7 * max(1.0, abs(fd)), (i, hess[i, i], fd)


def test_a_leaf_hook_under_backward_create_graph() -> None:
    def run(m: Any) -> Any:
        x = leaf(m, A)
        k = leaf(m, B)
        x.register_hook(lambda g: g * k)
        (x.sin() * x).sum().backward(create_graph=True)
        assert x.grad.requires_grad
        g1 = npy(x.grad)
        gx, gk = grad_of(m)((x.grad * const(m, W)).sum(), (x, k))
        return g1, npy(gx), npy(gk)

    g1, gx, gk = both(run)
    s, c = np.sin(A), np.cos(A)
    assert_allclose(g1, B * (s + A * c), **TOL)
    # the hook is still registered: it multiplies x's gradient in the second sweep too
    assert_allclose(gx, W * B * B * (2 * c - A * s), **TOL)
    assert_allclose(gk, W * (s + A * c), **TOL)


# --- handles ------------------------------------------------------------------------------------


def test_handles_remove_hooks_and_keep_the_others_in_order() -> None:
    def run(m: Any) -> Any:
        log: List[Any] = []
        x = leaf(m, A)
        y = x * 2.0
        h1 = y.register_hook(recorder(log, "h1", lambda g: g * 3.0))
        h2 = y.register_hook(recorder(log, "h2", lambda g: g + 1.0))
        h3 = y.register_hook(recorder(log, "h3", lambda g: g * 5.0))
        h2.remove()
        h2.remove()  # twice: nothing
        y.sum().backward(retain_graph=True)
        after_one = ([n for n, _ in log], npy(x.grad))
        log.clear()
        x.grad = None
        h1.remove()
        h3.remove()
        y.sum().backward()
        return after_one, [n for n, _ in log], npy(x.grad)

    (names, g1), names2, g2 = both(run)
    assert names == ["h1", "h3"] and names2 == []
    assert_allclose(g1, np.full(4, 2 * 15.0), **TOL)
    assert_allclose(g2, np.full(4, 2.0), **TOL)


def test_handle_is_a_context_manager() -> None:
    def run(m: Any) -> Any:
        x = leaf(m, A)
        with x.register_hook(lambda g: g * 7.0) as handle:
            (x * 1.0).sum().backward()
            inside = npy(x.grad)
        x.grad = None
        (x * 1.0).sum().backward()
        return inside, npy(x.grad), type(handle).__name__

    inside, outside, name = both(run)
    assert name == "RemovableHandle"
    assert_allclose(inside, np.full(4, 7.0), **TOL)
    assert_allclose(outside, np.ones(4), **TOL)


def test_handle_removes_its_hook_when_the_block_raises() -> None:
    x = leaf(tg, A)
    with pytest.raises(ZeroDivisionError):
        with x.register_hook(lambda g: g * 7.0) as handle:
            raise ZeroDivisionError("inside the block")
    assert isinstance(handle, RemovableHandle)
    (x * 1.0).sum().backward()
    assert_allclose(npy(x.grad), np.ones(4), **TOL)


def test_handle_edge_cases_match_torch() -> None:
    """A hook that removes itself runs once; dropping a handle keeps its hook; a hook registered during the
    backward pass on the tensor being hooked waits for the next pass; a hook on a slice scales only that
    slice's gradient."""

    def run(m: Any) -> Any:
        x = leaf(m, A)
        y = x * 2.0
        handles: List[Any] = []
        calls: List[int] = []

        def once(g: Any) -> Any:
            calls.append(1)
            handles[0].remove()
            return g * 10.0

        handles.append(y.register_hook(once))
        y.sum().backward(retain_graph=True)
        y.sum().backward(retain_graph=True)
        self_removed = (len(calls), npy(x.grad))

        x2 = leaf(m, A)
        h = x2.register_hook(lambda g: g * 3.0)
        del h
        (x2 * 1.0).sum().backward()

        x3 = leaf(m, A)
        y3 = x3 * 2.0
        late: List[int] = []
        y3.register_hook(lambda g: y3.register_hook(lambda g2: (late.append(1), g2 * 100.0)[1]) and None)
        y3.sum().backward(retain_graph=True)
        first = npy(x3.grad)
        x3.grad = None
        y3.sum().backward()
        second = (len(late), npy(x3.grad))

        x4 = leaf(m, A)
        v = x4[1:3]
        v.register_hook(lambda g: g * 7.0)
        ((v * v).sum() + x4.sum()).backward()
        return self_removed, npy(x2.grad), first, second, npy(x4.grad)

    (n, g1), g2, first, (late, second), g4 = both(run)
    assert n == 1
    assert_allclose(g1, np.full(4, 20.0 + 2.0), **TOL)
    assert_allclose(g2, np.full(4, 3.0), **TOL)
    assert_allclose(first, np.full(4, 2.0), **TOL)
    assert late == 1
    assert_allclose(second, np.full(4, 200.0), **TOL)
    assert_allclose(g4, [1.0, 1 + 14 * A[1], 1 + 14 * A[2], 1.0], **TOL)


# --- hostile hooks -------------------------------------------------------------------------------


def test_register_hook_on_a_tensor_that_does_not_require_grad_raises() -> None:
    for m in (tg, torch):
        c = leaf(m, A, requires_grad=False)
        with pytest.raises(RuntimeError, match="does(n't| not) require grad"):
            c.register_hook(lambda g: g)
        with pytest.raises(RuntimeError, match="does(n't| not) require grad"):
            c.register_post_accumulate_grad_hook(lambda t: None)


@pytest.mark.parametrize("hook", [3, None, "g", [lambda g: g]], ids=["int", "None", "str", "list"])
def test_a_hook_that_is_not_callable_is_a_type_error(hook: Any) -> None:
    x = leaf(tg, A)
    y = x * 2.0
    for t in (x, y):
        with pytest.raises(TypeError, match="callable"):
            t.register_hook(hook)
    with pytest.raises(TypeError, match="callable"):
        x.register_post_accumulate_grad_hook(hook)
    # nothing was registered: the plain gradient
    y.sum().backward()
    assert_allclose(npy(x.grad), np.full(4, 2.0), **TOL)
    # (torch accepts it and fails in the backward pass, with a TypeError too)
    tx = leaf(torch, A)
    tx.register_hook(hook)
    with pytest.raises(TypeError):
        (tx * 2.0).sum().backward()


class HookError(Exception):
    pass


@pytest.mark.parametrize("exc", [KeyError, ValueError, ZeroDivisionError, HookError])
@pytest.mark.parametrize("where", ["x", "w", "y", "z"])
def test_a_raising_hook_propagates_and_leaves_no_half_written_grad(exc: type, where: str) -> None:
    """A hook that raises: its exception (type and message) comes out of backward(); every leaf's .grad is
    then either untouched (None) or complete; the interrupted backward freed what it had passed (as torch's:
    a second backward through that graph raises), and with the hook removed, a backward of the graph built
    again gives torch's values."""

    def boom(g: Any) -> Any:
        raise exc("hook failed on purpose")

    def build(m: Any) -> Any:
        x, w = leaf(m, A), leaf(m, B)
        y = x * w
        z = y.sin() * x + w * w
        return x, w, y, z

    expected = {}
    tx, tw, _, tz = build(torch)
    (tz * const(torch, W)).sum().backward()
    expected = {"x": npy(tx.grad), "w": npy(tw.grad)}

    x, w, y, z = build(tg)
    handle = {"x": x, "w": w, "y": y, "z": z}[where].register_hook(boom)
    with pytest.raises(exc, match="hook failed on purpose"):
        (z * const(tg, W)).sum().backward()
    for name, t in (("x", x), ("w", w)):
        if t.grad is not None:
            assert_allclose(npy(t.grad), expected[name], err_msg=f"{name}.grad half-written", **TOL)
    handle.remove()
    x.grad = None
    w.grad = None
    x, w, y, z = build(tg)
    (z * const(tg, W)).sum().backward()
    assert_allclose(npy(x.grad), expected["x"], **TOL)
    assert_allclose(npy(w.grad), expected["w"], **TOL)


def test_a_raising_hook_leaves_an_existing_grad_as_it_was() -> None:
    x = leaf(tg, A)
    (x * 2.0).sum().backward()
    h = x.register_hook(lambda g: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        (x * x).sum().backward()
    assert_allclose(npy(x.grad), np.full(4, 2.0), **TOL)
    h.remove()
    (x * x).sum().backward()
    assert_allclose(npy(x.grad), 2.0 + 2 * A, **TOL)


@pytest.mark.parametrize("where", ["leaf", "intermediate"])
def test_a_hook_returning_the_wrong_shape_raises_naming_both_shapes(where: str) -> None:
    for m in (tg, torch):
        x = leaf(m, A)
        y = x * 2.0
        (x if where == "leaf" else y).register_hook(lambda g, m=m: const(m, np.ones(3)))
        with pytest.raises(RuntimeError) as info:
            y.sum().backward()
        assert x.grad is None
        if m is tg:
            assert "(3,)" in str(info.value) and "(4,)" in str(info.value), str(info.value)


@pytest.mark.parametrize("value", [5.0, np.ones(4), "g", [1.0] * 4, (None,)],
                         ids=["float", "ndarray", "str", "list", "tuple"])
def test_a_hook_returning_a_non_tensor_is_a_type_error(value: Any) -> None:
    for m in (tg, torch):
        x = leaf(m, A)
        y = x * 2.0
        h = y.register_hook(lambda g: value)
        with pytest.raises(TypeError) as info:
            y.sum().backward(retain_graph=True)
        if m is tg:
            assert type(value).__name__ in str(info.value), str(info.value)
        assert x.grad is None
        h.remove()
        y.sum().backward()
        assert_allclose(npy(x.grad), np.full(4, 2.0), **TOL)


def test_a_hook_changing_the_dtype_raises_as_torch() -> None:
    tx = leaf(torch, A)
    ty = tx * 2.0
    ty.register_hook(lambda g: g.to(torch.float32))
    with pytest.raises(RuntimeError, match="changed the type"):
        ty.sum().backward()
    x = leaf(tg, A)
    y = x * 2.0
    y.register_hook(lambda g: g.astype(np.float32))
    with pytest.raises((RuntimeError, TypeError), match="float32"):
        y.sum().backward()


# --- post-accumulate-grad hooks -----------------------------------------------------------------


def test_post_accumulate_hook_runs_after_the_grad_hook_and_sees_the_accumulated_grad() -> None:
    def run(m: Any) -> Any:
        log: List[Any] = []
        p = leaf(m, A)
        p.register_hook(lambda g: (log.append(("pre", npy(g), npy(p.grad))), g * 2.0)[1])
        p.register_post_accumulate_grad_hook(lambda t: log.append(("post", npy(t.grad), None)))
        (p * p).sum().backward()
        (p * const(m, W)).sum().backward()
        # autograd.grad accumulates nothing: no post hook (the pre hook runs, as p is the input)
        grad_of(m)((p * 3.0).sum(), p)
        return log

    log = both(run)
    assert [e[0] for e in log] == ["pre", "post", "pre", "post", "pre"]
    assert_allclose(log[1][1], 4 * A, **TOL)
    assert_allclose(log[3][1], 4 * A + 2 * W, **TOL)


@pytest.mark.parametrize("engine", ["tapegrad", "torch"])
def test_post_accumulate_hook_is_for_leaves_and_can_be_removed(engine: str) -> None:
    m = tg if engine == "tapegrad" else torch
    p = leaf(m, A)
    with pytest.raises(RuntimeError, match="leaf|leaves"):
        (p * 2.0).register_post_accumulate_grad_hook(lambda t: None)
    calls: List[int] = []
    h = p.register_post_accumulate_grad_hook(lambda t: calls.append(1))
    (p * 2.0).sum().backward()
    h.remove()
    (p * 2.0).sum().backward()
    assert calls == [1]
    assert_allclose(npy(p.grad), np.full(4, 4.0), **TOL)


def _mlp(m: Any) -> Any:
    torch.manual_seed(3)
    theirs = torch.nn.Sequential(torch.nn.Linear(3, 6), torch.nn.Tanh(), torch.nn.Linear(6, 2)).double()
    if m is torch:
        return theirs
    ours = nn.Sequential(nn.Linear(3, 6), nn.Tanh(), nn.Linear(6, 2))
    result = ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    assert result.missing_keys == [] and result.unexpected_keys == []
    return ours


def test_post_accumulate_hooks_do_an_sgd_step_per_parameter() -> None:
    """The optimizer-in-backward idiom: each parameter is stepped (and its .grad dropped) as soon as its
    gradient is accumulated; the final weights and the losses match torch doing the same."""
    lr = 0.1
    target = np.random.default_rng(5).standard_normal((5, 2))

    def run(m: Any) -> Any:
        model = _mlp(m)
        steps: List[tuple] = []

        def step(p: Any) -> None:
            with m.no_grad():
                p.sub_(p.grad * lr)
            p.grad = None
            steps.append(tuple(p.shape))

        for p in model.parameters():
            p.register_post_accumulate_grad_hook(step)
        losses = []
        for _ in range(4):
            loss = ((model(const(m, X2)) - const(m, target)) ** 2).mean()
            loss.backward()
            losses.append(float(loss.item()))
        assert len(steps) == 4 * 4 and sorted(set(steps)) == sorted({(6, 3), (6,), (2, 6), (2,)})
        assert all(p.grad is None for p in model.parameters())
        return losses, {k: npy(v) for k, v in model.state_dict().items()}

    losses, state = both(run)
    assert losses[-1] < losses[0]
    # the same as four plain SGD steps
    model = _mlp(tg)
    opt = tg.optim.SGD(model.parameters(), lr=lr)
    for _ in range(4):
        opt.zero_grad()
        ((model(const(tg, X2)) - const(tg, target)) ** 2).mean().backward()
        opt.step()
    same({k: npy(v) for k, v in model.state_dict().items()}, state, "post-hook SGD vs optim.SGD")


def test_post_accumulate_hook_gets_the_parameter_itself() -> None:
    """torch's tutorial idiom: one optimizer per parameter in a dict keyed by the parameter."""

    def run(m: Any, optim: Any) -> List[bool]:
        model = _mlp(m)
        optimizers = {p: optim.SGD([p], lr=0.1) for p in model.parameters()}
        got: List[bool] = []

        def hook(p: Any) -> None:
            got.append(any(p is q for q in optimizers))
            optimizers[p].step()
            optimizers[p].zero_grad()

        for p in model.parameters():
            p.register_post_accumulate_grad_hook(hook)
        model(const(m, X2)).sum().backward()
        return got

    assert run(torch, torch.optim) == [True] * 4
    assert run(tg, tg.optim) == [True] * 4


# --- module hooks --------------------------------------------------------------------------------


def _module_log_run(m: Any, prepend_second: bool) -> Any:
    model = _mlp(m)
    log: List[str] = []
    handles = []
    for name, pre in (("first", False), ("second", prepend_second), ("third", False)):
        handles.append(model.register_forward_pre_hook(lambda mod, args, n=name: log.append("pre:" + n),
                                                       prepend=pre))
        handles.append(model.register_forward_hook(lambda mod, args, out, n=name: log.append("fwd:" + n),
                                                   prepend=pre))
        handles.append(model.register_full_backward_pre_hook(lambda mod, go, n=name: log.append("bpre:" + n),
                                                             prepend=pre))
        handles.append(model.register_full_backward_hook(lambda mod, gi, go, n=name: log.append("bwd:" + n),
                                                         prepend=pre))
    model(leaf(m, X2)).sum().backward()
    for h in handles:
        h.remove()
    model(leaf(m, X2)).sum().backward()
    return log


@pytest.mark.parametrize("prepend", [False, True])
def test_module_hooks_run_in_order_and_prepend_puts_one_first(prepend: bool) -> None:
    log = both(lambda m: _module_log_run(m, prepend))
    order = ["second", "first", "third"] if prepend else ["first", "second", "third"]
    assert log == [f"{kind}:{n}" for kind in ("pre", "fwd", "bpre", "bwd") for n in order]


def test_forward_hooks_replace_inputs_and_outputs_as_torch() -> None:
    def run(m: Any) -> Any:
        model = _mlp(m)
        seen: List[Any] = []
        model[0].register_forward_pre_hook(lambda mod, args: (args[0] * 2.0,))
        model[0].register_forward_hook(lambda mod, args, out: seen.append((npy(args[0]), npy(out))))
        model[2].register_forward_hook(lambda mod, args, out: out + 1.0)
        x = leaf(m, X2)
        y = model(x)
        (y * y).sum().backward()
        return seen, npy(y), npy(x.grad), npy(model[0].weight.grad)

    seen, *_ = both(run)
    assert_allclose(seen[0][0], 2 * X2, **TOL)


def _grads(gs: Any) -> Any:
    return tuple(npy(g) for g in gs)


def test_full_backward_hook_on_linear_sees_torchs_grad_input_and_grad_output() -> None:
    def run(m: Any) -> Any:
        model = _mlp(m)
        lin = model[0]
        log: List[Any] = []
        lin.register_full_backward_hook(lambda mod, gi, go: log.append((mod is lin, _grads(gi), _grads(go))))
        x = leaf(m, X2)
        out = model(x)
        (out * const(m, _SEED52)).sum().backward()
        return log, npy(x.grad), npy(lin.weight.grad), npy(lin.bias.grad)

    log, xg, _, _ = both(run)
    assert len(log) == 1 and log[0][0] is True
    gi, go = log[0][1], log[0][2]
    assert len(gi) == 1 and len(go) == 1 and gi[0].shape == (5, 3) and go[0].shape == (5, 6)
    assert_allclose(gi[0], xg, **TOL)


@pytest.mark.parametrize("requires_grad", [False, True])
def test_full_backward_hooks_on_a_sequential_and_its_layers(requires_grad: bool) -> None:
    def run(m: Any) -> Any:
        model = _mlp(m)
        log: List[Any] = []

        def full(mod: Any, gi: Any, go: Any) -> None:
            log.append(("full", type(mod).__name__, _grads(gi), _grads(go)))

        def pre(mod: Any, go: Any) -> None:
            log.append(("pre", type(mod).__name__, _grads(go)))

        for sub in model:
            sub.register_full_backward_hook(full)
            sub.register_full_backward_pre_hook(pre)
        model.register_full_backward_hook(full)
        x = leaf(m, X2, requires_grad=requires_grad)
        (model(x) * const(m, _SEED52)).sum().backward()
        return log, {k: npy(p.grad) for k, p in model.named_parameters()}

    log, _ = both(run)
    kinds = [(e[0], e[1]) for e in log]
    layers = [("pre", "Linear"), ("full", "Linear"), ("pre", "Tanh"), ("full", "Tanh"), ("pre", "Linear"),
              ("full", "Linear")]
    if requires_grad:
        assert kinds == layers + [("full", "Sequential")]
    else:
        # no input requires grad: the container's hook is called with grad_input (None,) as soon as its
        # grad_output is known, and so is the first layer's
        assert kinds == [("full", "Sequential")] + layers
        assert log[0][2] == (None,) and log[-1][2] == (None,)
    assert_allclose(log[1][3][0] if requires_grad else log[0][3][0], _SEED52, **TOL)


def test_a_module_whose_input_does_not_require_grad_gets_grad_input_none() -> None:
    def run(m: Any) -> Any:
        lin = _mlp(m)[0]
        log: List[Any] = []
        lin.register_full_backward_hook(lambda mod, gi, go: log.append((gi, _grads(go))))
        (lin(const(m, X2)) ** 2).sum().backward()
        return log, npy(lin.weight.grad)

    log, _ = both(run)
    assert len(log) == 1 and log[0][0] == (None,)


class TwoInputs(nn.Module):
    def forward(self, a: Any, b: Any, scale: float = 1.0) -> Any:
        return (a * b).sin() * scale, a - b


class TorchTwoInputs(torch.nn.Module):
    def forward(self, a: Any, b: Any, scale: float = 1.0) -> Any:
        return (a * b).sin() * scale, a - b


@pytest.mark.parametrize("needs", [(True, True), (True, False), (False, True)])
def test_backward_hook_of_a_module_with_two_inputs_and_two_outputs(needs: tuple) -> None:
    def run(m: Any) -> Any:
        mod = TwoInputs() if m is tg else TorchTwoInputs()
        log: List[Any] = []
        mod.register_full_backward_hook(lambda md, gi, go: log.append((_grads(gi), _grads(go))))
        a, b = leaf(m, A, needs[0]), leaf(m, B, needs[1])
        u, v = mod(a, b, scale=3.0)  # a keyword: not in grad_input
        ((u * const(m, W)).sum() + (v * v).sum()).backward()
        (gi, go), = log
        # an input that needs no gradient: None (tapegrad), zeros (torch: its identity Function marks it
        # non-differentiable and gets materialized zeros): both mean "no gradient" here
        gi = tuple(None if g is None or not need else g for g, need in zip(gi, needs))
        if m is torch:
            assert all(g is None or not g.any() for g, need in zip(_grads(log[0][0]), needs) if not need)
        return gi, go, npy(a.grad), npy(b.grad)

    gi, go, ag, bg = both(run)
    assert len(gi) == 2 and len(go) == 2
    assert_allclose(go[0], W, **TOL)
    assert_allclose(go[1], 2 * (A - B), **TOL)
    for k, (need, g) in enumerate(zip(needs, (ag, bg))):
        if need:
            assert_allclose(gi[k], g, **TOL)
        else:
            assert gi[k] is None and g is None


def test_grad_input_has_none_for_a_non_tensor_positional_argument() -> None:
    def run(m: Any) -> Any:
        mod = TwoInputs() if m is tg else TorchTwoInputs()
        log: List[Any] = []
        mod.register_full_backward_hook(lambda md, gi, go: log.append(_grads(gi)))
        a, b = leaf(m, A), leaf(m, B)
        u, v = mod(a, b, 3.0)  # positional
        (u.sum() + v.sum()).backward()
        return log, npy(a.grad), npy(b.grad)

    (gi,), ag, bg = both(run)
    assert len(gi) == 3 and gi[2] is None
    assert_allclose(gi[0], ag, **TOL)


@pytest.mark.parametrize("factor", [0.5, 0.0, None])
def test_a_backward_pre_hook_replaces_grad_output(factor: Any) -> None:
    def run(m: Any) -> Any:
        model = _mlp(m)
        seen: List[Any] = []

        def hook(mod: Any, go: Any) -> Any:
            seen.append(_grads(go))
            return None if factor is None else (go[0] * factor,)

        model[2].register_full_backward_pre_hook(hook)
        model[2].register_full_backward_hook(lambda mod, gi, go: seen.append(_grads(go)))
        x = leaf(m, X2)
        (model(x) * const(m, _SEED52)).sum().backward()
        return seen, npy(x.grad), {k: npy(p.grad) for k, p in model.named_parameters()}

    seen, xg, grads = both(run)
    f = 1.0 if factor is None else factor
    assert_allclose(seen[0][0], _SEED52, **TOL)
    assert_allclose(seen[1][0], f * _SEED52, **TOL)  # the full hook sees the replaced grad_output
    assert_allclose(grads["2.bias"], f * _SEED52.sum(0), **TOL)
    if factor == 0.0:
        assert_allclose(xg, np.zeros_like(X2), **TOL)


def test_a_full_backward_hook_replaces_grad_input() -> None:
    def run(m: Any) -> Any:
        model = _mlp(m)
        model[2].register_full_backward_hook(lambda mod, gi, go: (gi[0].clamp(-0.05, 0.05),))
        model[1].register_full_backward_hook(lambda mod, gi, go: None)  # None: kept
        x = leaf(m, X2)
        (model(x) * const(m, _SEED52)).sum().backward()
        return npy(x.grad), {k: npy(p.grad) for k, p in model.named_parameters()}

    xg, grads = both(run)
    assert np.abs(grads["0.bias"]).max() <= 0.05 * 5 + 1e-12


def test_module_hooks_removed_by_handle_and_with() -> None:
    def run(m: Any) -> Any:
        model = _mlp(m)
        calls: List[str] = []
        h = model.register_full_backward_hook(lambda mod, gi, go: calls.append("bwd"))
        with model.register_forward_hook(lambda mod, a, out: out * 0.0):
            zero = npy(model(const(m, X2)))
        x = leaf(m, X2)
        model(x).sum().backward()
        h.remove()
        h.remove()
        model(x).sum().backward()
        return zero, calls, npy(model(const(m, X2)))

    zero, calls, out = both(run)
    assert_allclose(zero, np.zeros((5, 2)), **TOL)
    assert calls == ["bwd"]
    assert np.abs(out).sum() > 0


def test_module_hook_errors() -> None:
    model = _mlp(tg)
    for register in (model.register_forward_pre_hook, model.register_forward_hook,
                     model.register_full_backward_hook, model.register_full_backward_pre_hook):
        with pytest.raises(TypeError, match="callable"):
            register(42)
    for m in (tg, torch):
        model = _mlp(m)
        # a backward hook returning a tuple of the wrong length
        h = model[2].register_full_backward_hook(lambda mod, gi, go: (gi[0], gi[0]))
        with pytest.raises(RuntimeError):
            model(leaf(m, X2)).sum().backward()
        h.remove()
        h = model[2].register_full_backward_pre_hook(lambda mod, go: (go[0], go[0]))
        with pytest.raises(RuntimeError):
            model(leaf(m, X2)).sum().backward()
        h.remove()
        # a raising hook: its exception
        h = model[0].register_full_backward_hook(lambda mod, gi, go: {}["missing"])
        with pytest.raises(KeyError, match="missing"):
            model(leaf(m, X2)).sum().backward()
        h.remove()
        h = model.register_forward_hook(lambda mod, a, out: 1 / 0)
        with pytest.raises(ZeroDivisionError):
            model(leaf(m, X2))
        h.remove()
        # and afterwards a clean backward
        for p in model.parameters():
            p.grad = None
        x = leaf(m, X2)
        model(x).sum().backward()
        if m is tg:
            ours = npy(x.grad)
        else:
            assert_allclose(ours, npy(x.grad), **TOL)


# --- Var hooks ----------------------------------------------------------------------------------


def _scalar_program(m: Any, hooks: Dict[str, Callable[[Any], Any]], log: List[Any]) -> Any:
    """micrograd's sanity check (with a tanh) on tapegrad Vars or torch 0-d tensors, with hooks on named
    values; returns the leaves' gradients."""
    if m is tg:
        x, w = tg.Var(-4.0), tg.Var(0.7)
    else:
        x = torch.tensor(-4.0, dtype=torch.float64, requires_grad=True)
        w = torch.tensor(0.7, dtype=torch.float64, requires_grad=True)
    names = {"x": x, "w": w}
    z = 2 * x + 2 + x * w
    names["z"] = z
    q = z.relu() + z * x
    names["q"] = q
    h = (z * w).tanh()
    names["h"] = h
    for name, fn in hooks.items():
        def hook(g: Any, name: str = name, fn: Callable[[Any], Any] = fn) -> Any:
            log.append((name, float(g)))
            return fn(g)

        names[name].register_hook(hook)
    y = h + q + q * x
    y.backward()
    return float(x.grad), float(w.grad), float(y.data if m is tg else y.item())


@pytest.mark.parametrize("hooks", [
    {"z": lambda g: None},
    {"z": lambda g: g * 0.5},
    {"q": lambda g: g * 0.0, "h": lambda g: None},
    {"x": lambda g: g * 3.0, "w": lambda g: -g},
    {"z": lambda g: g * 2.0, "q": lambda g: g + 1.0, "h": lambda g: g * g, "x": lambda g: g / 4.0},
], ids=["observe", "scale", "zero", "leaves", "all"])
def test_var_hooks_on_micrograd_code_match_torch(hooks: Dict[str, Callable[[Any], Any]]) -> None:
    def run(m: Any) -> Any:
        log: List[Any] = []
        result = _scalar_program(m, hooks, log)
        return sorted(log), result

    log, _ = both(run)
    assert len(log) == len(hooks)


def test_var_hook_sees_a_float_and_may_return_a_number_or_a_var() -> None:
    seen: List[Any] = []
    x = tg.Var(1.5)
    y = x * x
    y.register_hook(lambda g: (seen.append(g), tg.Var(3.0))[1])
    z = y * 2.0
    z.register_hook(lambda g: (seen.append(g), 5)[1])  # an int
    z.backward()
    assert type(seen[0]) is float and seen == [1.0, 5.0 * 2.0]
    assert isinstance(x.grad, float) and x.grad == 3.0 * 2 * 1.5
    assert z.grad == 5.0 and y.grad == 3.0  # every Var has its (hooked) float gradient


def test_var_leaf_hook_applies_to_records_before_and_after_registration() -> None:
    def run(m: Any) -> Any:
        if m is tg:
            x = tg.Var(0.8)
        else:
            x = torch.tensor(0.8, dtype=torch.float64, requires_grad=True)
        early = x.sin()
        seen: List[float] = []
        x.register_hook(lambda g: (seen.append(float(g)), g * 10.0)[1])
        late = x * x
        (early + late).backward()
        return seen, float(x.grad)

    seen, g = both(run)
    assert_allclose(seen, [np.cos(0.8) + 1.6], **TOL)
    assert_allclose(g, 10 * (np.cos(0.8) + 1.6), **TOL)


def test_var_hook_handles() -> None:
    x = tg.Var(2.0)
    h = x.register_hook(lambda g: g * 100.0)
    assert isinstance(h, RemovableHandle)
    h.remove()
    h.remove()
    (x * x).backward()
    assert x.grad == 4.0
    x.grad = 0.0
    with x.register_hook(lambda g: g * 100.0):
        (x * x).backward()
    assert x.grad == 400.0
    x.grad = 0.0
    (x * x).backward()
    assert x.grad == 4.0
    y = x * 3.0
    hy = y.register_hook(lambda g: 0.0)
    hy.remove()
    x.grad = 0.0
    (y * y).backward()
    assert x.grad == 2 * 6.0 * 3.0


@pytest.mark.parametrize("keep_hook", [False, True])
def test_var_hooks_under_create_graph_second_derivative_matches_torch(keep_hook: bool) -> None:
    def run(m: Any) -> Any:
        if m is tg:
            x = tg.Var(0.7)
        else:
            x = torch.tensor(0.7, dtype=torch.float64, requires_grad=True)
        y = x.sin() * x
        seen: List[str] = []
        handle = y.register_hook(lambda g: (seen.append(type(g).__name__), g * x)[1])
        (g,) = grad_of(m)(y * y, x, create_graph=True)
        if not keep_hook:
            handle.remove()
        (h,) = grad_of(m)(g, x)
        return seen[0] in ("Var", "Tensor"), len(seen), float(npy(g)), float(npy(h))

    ok, calls, g, h = both(run)
    assert ok and calls == (2 if keep_hook else 1)
    a = 0.7
    y, dy, d2y = a * np.sin(a), np.sin(a) + a * np.cos(a), 2 * np.cos(a) - a * np.sin(a)
    assert_allclose(g, 2 * y * a * dy, **TOL)
    full = 2 * dy * a * dy + 2 * y * dy + 2 * y * a * d2y
    if keep_hook:  # the hook runs in the second sweep too, multiplying the gradient of y by x again
        assert_allclose(h, full + 2 * a * dy**2 * (a - 1), **TOL)
        return
    assert_allclose(h, full, **TOL)

    def g_of(t: float) -> float:
        x = tg.Var(t)
        y = x.sin() * x
        y.register_hook(lambda gr: gr * x.data)
        (y * y).backward()
        return float(x.grad)

    assert abs(h - central_difference(g_of, a)) < 1e-7 * abs(h)


def test_var_hooks_in_autograd_grad_match_torch() -> None:
    def run(m: Any) -> Any:
        if m is tg:
            x, w = tg.Var(1.2), tg.Var(-0.4)
        else:
            x = torch.tensor(1.2, dtype=torch.float64, requires_grad=True)
            w = torch.tensor(-0.4, dtype=torch.float64, requires_grad=True)
        y = x * w
        y.register_hook(lambda g: g * 3.0)
        gx, gw = grad_of(m)((y.exp() + y * y), (x, w))
        return float(gx), float(gw)

    gx, gw = both(run)
    dy = 3.0 * (np.exp(1.2 * -0.4) + 2 * 1.2 * -0.4)
    assert_allclose([gx, gw], [dy * -0.4, dy * 1.2], **TOL)


def test_var_hostile_hooks() -> None:
    x = tg.Var(2.0)
    with pytest.raises(TypeError, match="callable"):
        x.register_hook(3)
    with pytest.raises(RuntimeError, match="require grad"):
        tg.Var(2.0, requires_grad=False).register_hook(lambda g: g)
    y = x * 3.0
    h = y.register_hook(lambda g: "seven")
    with pytest.raises(TypeError, match="str"):
        (y * y).backward()
    assert x.grad in (0.0, 36.0)
    h.remove()
    h = y.register_hook(lambda g: {}["nope"])
    with pytest.raises(KeyError, match="nope"):
        (y * y).backward()
    assert x.grad in (0.0, 36.0)
    h.remove()
    x.grad = 0.0
    (y * y).backward()
    assert x.grad == 36.0


def test_a_raising_var_hook_leaves_no_half_written_grad() -> None:
    """x reaches y by two paths; the hook on the path swept last raises: no Var keeps a partial gradient."""
    x = tg.Var(2.0)
    b = x * 3.0  # recorded first: swept last
    h = b.register_hook(lambda g: 1 / 0)
    a = x * x
    y = b + a
    with pytest.raises(ZeroDivisionError):
        y.backward()
    assert (x.grad, a.grad, b.grad) == (0.0, 0.0, 0.0)
    h.remove()
    y.backward()
    assert (x.grad, a.grad, b.grad) == (3.0 + 4.0, 1.0, 1.0)


# --- forward hooks with kwargs, always_call ------------------------------------------------------


def test_forward_hooks_with_kwargs_and_always_call_as_torch() -> None:
    """with_kwargs=True hooks see (and a pre-hook replaces) args and kwargs; an always_call hook also
    runs, with output None, when the forward raises; removal unmarks both flags."""

    def run(m: Any) -> Any:
        lin = m.nn.Linear(3, 2).double()
        log: List[Any] = []
        h1 = lin.register_forward_pre_hook(
            lambda mod, a, kw: log.append(("pre", sorted(kw))) or ((a[0] * 2,), {}), with_kwargs=True)
        h2 = lin.register_forward_hook(
            lambda mod, a, kw, out: log.append(("post", sorted(kw), tuple(out.shape), npy(a[0]).sum())),
            with_kwargs=True)
        h3 = lin.register_forward_hook(lambda mod, a, out: log.append(("always", out is None)), always_call=True)
        lin(m.ones(4, 3, dtype=m.float64))
        original = lin.forward
        lin.forward = lambda *a, **k: 1 / 0
        with pytest.raises(ZeroDivisionError):
            lin(m.ones(4, 3, dtype=m.float64))
        lin.forward = original
        for h in (h1, h2, h3):
            h.remove()
        out = lin(m.ones(4, 3, dtype=m.float64))
        log.append(("removed", tuple(out.shape)))
        return log

    log = both(run)
    assert log[0] == ("pre", []) and log[1][:3] == ("post", [], (4, 2)) and log[1][3] == 24.0
    assert log[2:] == [("always", False), ("pre", []), ("always", True), ("removed", (4, 2))]


def test_a_with_kwargs_pre_hook_must_return_args_and_kwargs() -> None:
    lin = tg.nn.Linear(3, 2)
    lin.register_forward_pre_hook(lambda mod, a, kw: a, with_kwargs=True)
    with pytest.raises(RuntimeError, match=r"tuple \(new_args, new_kwargs\)"):
        lin(tg.ones(1, 3))
