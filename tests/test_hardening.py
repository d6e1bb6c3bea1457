"""Inputs that crashed the process, values that were silently wrong, and errors that did not
say what went wrong (issue 10): each one as found, with what it does now. Crashes run in a
child process, so that a regression is reported instead of ending the test run."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import tapegrad as tg


def run_child(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120)


# --- crashes --------------------------------------------------------------------------------


def test_stack_and_concatenate_of_sequences_that_build_their_items() -> None:
    """An ndarray or a Tensor builds its rows on access: their handles were kept borrowed and
    read after they were freed (a segfault). Any iterable is taken, generators included."""
    proc = run_child("""
        import numpy as np, tapegrad as tg
        for _ in range(200):
            assert tg.stack(np.ones((2, 3))).numpy().tolist() == [[1.0] * 3] * 2
            assert tg.concatenate(tg.ones((2, 3))).shape == (6,)
            assert tg.stack(np.arange(6.0).reshape(3, 2), axis=1).numpy().tolist() == [[0, 2, 4], [1, 3, 5]]
            assert tg.ones((2, 3)).reshape(np.array([3, 2])).shape == (3, 2)
        print("ok")
    """)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-2000:]
    g = tg.stack(t * 2.0 for t in [tg.ones(2), tg.zeros(2)])
    np.testing.assert_array_equal(g.numpy(), [[2.0, 2.0], [0.0, 0.0]])
    for bad in ("ab", 3.0, None):
        with pytest.raises(TypeError, match="tensors must be a sequence or iterable of tensors"):
            tg.stack(bad)


def test_tape_blocks_closed_out_of_order() -> None:
    """Closing `with Tape()` blocks out of order released the wrong tape (a segfault at exit);
    now the closed tape is unlinked where it is, and the rest of the chain is kept."""
    proc = run_child("""
        import gc, tapegrad as tg
        d = tg.active_tape()
        a, b, c = tg.Tape(), tg.Tape(), tg.Tape()
        a.__enter__(); b.__enter__(); c.__enter__()
        b.__exit__(None, None, None)            # the middle one
        assert tg.active_tape() is c
        c.__exit__(None, None, None)
        assert tg.active_tape() is a            # c now returns to what b would have
        a.__exit__(None, None, None)
        assert tg.active_tape() is d

        def gen():
            with tg.Tape() as t:
                x = tg.Var(2.0)
                yield t, x * x
        g1, g2 = gen(), gen()
        (t1, y1), (t2, y2) = next(g1), next(g2)
        assert tg.active_tape() is t2
        g1.close()                              # the first opened, closed first
        assert tg.active_tape() is t2
        y2.backward(); y1.backward()
        g2.close()
        assert tg.active_tape() is d
        try:
            b.__exit__(None, None, None)
        except ValueError as e:
            assert "not active" in str(e)
        del a, b, c, g1, g2, t1, t2, y1, y2
        gc.collect()
        with tg.Tape():
            v = tg.Var(3.0)
            (v * v).backward()
        assert v.grad == 6.0
        print("ok")
    """)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-2000:]


def test_forward_mode_through_a_matmul_with_an_empty_inner_dimension() -> None:
    """MatmulNode::jvp divided by the inner dimension: SIGFPE through jacfwd, hessian, hvp."""
    proc = run_child("""
        import numpy as np, tapegrad as tg
        A = tg.zeros((2, 0))
        J = tg.jacfwd(lambda v: A.T @ v)(np.ones(2))
        assert J.shape == (0, 2)
        H = tg.hessian(lambda v: (tg.zeros((3, 0)) @ tg.zeros((0, 2)) @ v).sum())(np.ones(2))
        assert H.numpy().tolist() == [[0.0, 0.0], [0.0, 0.0]]
        _, hv = tg.hvp(lambda v: (tg.ones((0,)) @ tg.zeros((0, 2)) @ v) * 1.0, (np.ones(2),), (np.ones(2),))
        assert hv[0].numpy().tolist() == [0.0, 0.0]
        x = tg.tensor(np.ones(2), requires_grad=True)
        (jv,) = tg.autograd.jvp([tg.zeros((3, 0)) @ tg.zeros((0, 2)) @ x], [x], [np.ones(2)])
        assert jv.numpy().tolist() == [0.0, 0.0, 0.0]
        print("ok")
    """)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-2000:]


def test_every_user_shape_is_checked() -> None:
    """reshape accepted (3, 6148914691236517206) for 2 elements (the product overflowed), and
    indexing the result read out of bounds."""
    t = tg.ones(2)
    for shape in [(3, 6148914691236517206), (2**62, 4), (-1, 2**62, 4), (2**40, 2**40, 0)]:
        with pytest.raises(ValueError, match="is too large"):
            t.reshape(shape)
    with pytest.raises(ValueError, match="negative dimension"):
        t.reshape((-2, -1))
    with pytest.raises(ValueError, match="only one dimension can be -1"):
        t.reshape((-1, -1))
    with pytest.raises(ValueError, match=r"cannot reshape a tensor of shape \(2,\)"):
        t.reshape((-1, 3))
    for make in (lambda s: tg.zeros(s), lambda s: tg.full(s, 1.0), lambda s: tg.broadcast_to(tg.ones(1), s),
                 lambda s: tg.ones(s)):
        with pytest.raises(ValueError, match="negative dimension"):
            make((-1, 2))
        with pytest.raises(ValueError, match="is too large"):
            make((2**62, 4))
    # sizes within bounds that no machine has: MemoryError before any work, naming the size
    with pytest.raises(MemoryError, match=r"out of memory: a tensor needs 8192\.0 GiB"):
        tg.broadcast_to(tg.ones(1), (2**20, 2**20))
    with pytest.raises(MemoryError, match="out of memory"):
        tg.zeros((2**24, 2**22))


# --- silently wrong ---------------------------------------------------------------------------


def test_int_of_a_tensor_is_pythons_int_of_its_number() -> None:
    with pytest.raises(ValueError, match="NaN"):
        int(tg.tensor(float("nan")))
    with pytest.raises(OverflowError, match="infinity"):
        int(tg.tensor(float("-inf")))
    assert int(tg.tensor(1e30)) == int(1e30)
    assert int(tg.tensor(-2.7)) == -2
    assert int(tg.tensor(2**62 + 1)) == 2**62 + 1
    assert int(tg.tensor(True)) == 1


def test_int64_values_do_not_pass_through_double() -> None:
    for v in (2**62 + 1, 2**63 - 1, -(2**63), 9007199254740993):
        assert tg.tensor(v).item() == v
        assert tg.tensor([v, 0]).tolist()[0] == v
        assert tg.tensor(np.array([v], dtype=np.int64))[0].item() == v
    for big in (2**63, 2**64 - 1, 2**64, [1, 2**70], np.array([2**64 - 1], dtype=np.uint64)):
        with pytest.raises(OverflowError, match="does not fit in int64"):
            tg.tensor(big)
    assert tg.tensor(np.array([2**63 - 1], dtype=np.uint64)).item() == 2**63 - 1
    assert tg.tensor(2**64, dtype=np.float64).item() == float(2**64)  # asked for a float: fine


def test_in_place_arithmetic_keeps_numpys_casting_rule() -> None:
    """`t += 1.5` on an int64 tensor truncated; NumPy and PyTorch raise a casting error."""
    i = tg.tensor([1, 2])
    for f in (lambda: i.__iadd__(1.5), lambda: i.__imul__(np.array([0.5, 1.0])), lambda: i.__itruediv__(2),
              lambda: i.__isub__(tg.tensor([1.0, 1.0]))):
        with pytest.raises(TypeError, match=r"floating-point values cannot be stored in an int64 tensor"):
            f()
    b = tg.tensor([True, False])
    with pytest.raises(TypeError, match="integer values cannot be stored in a bool tensor"):
        b += 1
    with pytest.raises(TypeError, match="floating-point values cannot be stored in an int64 tensor"):
        i.data = np.array([1.5, 2.5])
    assert i.tolist() == [1, 2]  # unchanged by the refused ones
    i += 2
    i *= tg.tensor([True, True])
    i.data = np.array([7, 8])
    assert i.tolist() == [7, 8] and i.dtype == np.int64
    f = tg.tensor([1.0, 2.0], dtype=np.float32)
    f += 1
    f /= 2
    f.data = np.array([3, 4])
    assert f.tolist() == [3.0, 4.0] and f.dtype == np.float32


def test_axes_beyond_32_bits_are_not_truncated() -> None:
    """sum(axis=2**32) summed axis 0 (the axis truncated to 32 bits)."""
    t = tg.ones((2, 3))
    for f in (lambda: t.sum(axis=2**32), lambda: t.mean(axis=-(2**32)), lambda: t.sum(axis=(0, 2**32 + 1)),
              lambda: t.transpose(2**32, 0), lambda: t.squeeze(axis=2**33), lambda: t.amax(axis=2**40)):
        with pytest.raises(IndexError, match=r"axis -?\d+ is out of bounds"):
            f()
    with pytest.raises(OverflowError):
        t.sum(axis=2**70)


# --- unclear errors -------------------------------------------------------------------------------


def test_errors_name_the_problem() -> None:
    t = tg.ones(2)
    with pytest.raises(OverflowError, match=r"the number 100000000000\.\.\. \(401 digits\) is too large"):
        _ = t * 10**400
    # ndarray and Var: the tensor op, either side
    x = tg.Var(2.0)
    np.testing.assert_array_equal((np.ones(2) + x).numpy(), [3.0, 3.0])
    v = tg.Var(1.0)
    v.grad = tg.Var(2.0)
    assert v.grad == 2.0
    # one grad_output given as an array is the seed of the one output
    a = tg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    (g,) = tg.autograd.grad(a * 2.0, a, grad_outputs=np.array([1.0, 0.0, 2.0]))
    np.testing.assert_array_equal(g.numpy(), [2.0, 0.0, 4.0])
    with pytest.raises(ValueError, match="outputs is empty"):
        tg.autograd.grad([], [tg.Var(1.0)])
    with pytest.raises(ValueError, match=r"need a leading axis of K directions.*\(expected \(K, 3\)\)"):
        tg.autograd.jvp([a * 2.0], [a], [np.ones(3)], batched=True)
    with pytest.raises(ValueError, match="truth value of an empty tensor"):
        bool(tg.tensor([]))
    assert (t == None) is False and (t != None) is True  # noqa: E711 (the comparison under test)
    assert (t == "a") is False
    assert float(np.sum(t)) == 2.0 and float(np.mean(t)) == 1.0 and float(np.max(t)) == 1.0
    assert float(np.var(t)) == 0.0 and float(np.prod(t)) == 1.0
    assert t.sum(dtype=np.float32).dtype == np.float32
    with pytest.raises(TypeError, match="out= is not supported"):
        np.sum(t, out=np.zeros(()))
    assert "backward" in (tg.from_numpy.__doc__ or "")  # shared memory written before backward
    # softmax over an empty axis: empty, as log_softmax
    assert tg.softmax(tg.ones((2, 0)), axis=1).shape == (2, 0)
    assert tg.log_softmax(tg.ones((2, 0)), axis=1).shape == (2, 0)


# --- issue 21: what an adversarial pass found ------------------------------------------------


def test_a_checkpointed_function_cannot_close_a_tape_opened_outside_it() -> None:
    """Recomputed by a create_graph backward, a checkpointed function that closed the active tape's
    block left the thread's active tape on a tape nobody kept: the next op recorded on freed memory.
    Now closing a block opened outside the function raises ValueError there; blocks the function
    opens (and leaves open) are its own."""
    proc = run_child("""
        import gc, tapegrad as tg
        from tapegrad.utils.checkpoint import checkpoint
        A = tg.Tape(); A.__enter__()
        x = tg.tensor([1., 2.], requires_grad=True); st = {"r": False}
        def f(a):
            if st["r"]: tg.active_tape().__exit__(None, None, None)
            return a.sin()
        y = checkpoint(f, x * 1.0); st["r"] = True
        try:
            y.sum().backward(create_graph=True)
        except ValueError as e:
            assert "opened outside the function tapegrad is running now" in str(e), e
        else:
            raise AssertionError("no error")
        assert tg.active_tape() is A
        del y, A; gc.collect()
        (tg.tensor([1., 2.], requires_grad=True) * 2).sum().backward()
        # a function that opens tapes of its own, closes one and leaves one open
        B = tg.Tape()
        with B:
            x = tg.tensor([0.5, 1.5], requires_grad=True)
            def g(a):
                inner = tg.Tape(); inner.__enter__(); inner.__exit__(None, None, None)
                tg.Tape().__enter__()  # left open: closed when the function returns
                return a.exp()
            y = checkpoint(g, x * 1.0)
            (gx,) = tg.autograd.grad(y.sum(), x, create_graph=True)
            assert tg.active_tape() is B
        assert abs(gx.detach().numpy() - [1.6487212707001282, 4.4816890703380645]).max() < 1e-12
        gc.collect()
        print("ok")
    """)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-3000:]


def test_an_op_that_returns_its_operand_roots_it_only_on_its_own_tape() -> None:
    """astype to the same dtype returns the tensor itself; the binding rooted it on a tape at a
    record index of an earlier generation, and the next collect() wrote past its scratch array."""
    proc = run_child("""
        import tapegrad as tg
        x = tg.tensor([1., 2.], requires_grad=True); y = (x * 2).sum(); y.backward()
        T = tg.Tape()
        with T: z = y * 3
        del z
        for _ in range(3):
            with T:
                w = y.astype(y.dtype)
                T.collect()
                w2 = w * 2
                T.collect()
        assert w2.item() == 12.0
        print("ok")
    """)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-3000:]


def test_two_threads_whose_hooks_use_each_others_tapes_finish() -> None:
    """Each thread's backward ran a hook computing with a result of the other thread's tape: each
    sweep held its tape for the whole backward, so each waited for the other forever. The tapes are
    let go while a hook runs (PyTorch runs the same program); the gradients are the right ones."""
    proc = run_child("""
        import threading, tapegrad as tg
        for _ in range(20):
            b = threading.Barrier(2); res = {}
            T1, T2 = tg.Tape(), tg.Tape()
            with T1:
                x1 = tg.tensor([1., 2.], requires_grad=True); r1 = x1 * 2; y1 = (r1 * r1).sum()
            with T2:
                x2 = tg.tensor([3., 4.], requires_grad=True); r2 = x2 * 3; y2 = (r2 * r2).sum()
            def hook_for(other):
                def h(g):
                    b.wait(timeout=20)
                    return g + (other * 0.0).detach()   # an op recorded on the other thread's tape
                return h
            r1.register_hook(hook_for(r2)); r2.register_hook(hook_for(r1))
            def run(name, y):
                y.backward(); res[name] = True
            ts = [threading.Thread(target=run, args=("a", y1)), threading.Thread(target=run, args=("b", y2))]
            for t in ts: t.start()
            for t in ts: t.join(60)
            assert not any(t.is_alive() for t in ts) and res == {"a": True, "b": True}
            assert x1.grad.tolist() == [8.0, 16.0] and x2.grad.tolist() == [54.0, 72.0]
        print("ok")
    """)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-3000:]


def test_a_tensor_pickles_without_code_and_refuses_damaged_bytes() -> None:
    """A Tensor's pickle named builtins.eval (pybind11's pickling of a compiled function) and held
    NumPy objects, whose damaged states crashed NumPy. It names one function now,
    tapegrad._tensor._rebuild, with a shape, a dtype name and bytes: a restricted unpickler that
    allows only that name loads it, and damaged arguments raise errors naming the problem."""
    import io
    import pickle
    import pickletools

    class OnlyTensors(pickle.Unpickler):
        def find_class(self, module: str, name: str) -> object:
            if (module, name) == ("tapegrad._tensor", "_rebuild"):
                return super().find_class(module, name)
            raise pickle.UnpicklingError(f"{module}.{name} is not allowed")

    cases = [tg.tensor([[1.5, -2.0], [0.0, 3.25]], requires_grad=True), tg.tensor([1, -2, 3]),
             tg.tensor([True, False]), tg.tensor([1.0, 3.3, -0.0, float("inf")], dtype=tg.bfloat16),
             tg.tensor(2.5, dtype=np.float16), tg.tensor(np.zeros((0, 3), np.float32)),
             tg.tensor(np.arange(6.0).reshape(2, 3)).T * 2]
    for t in cases:
        blob = pickle.dumps(t)
        globals_named = [arg for op, arg, _ in pickletools.genops(blob) if op.name in ("GLOBAL", "STACK_GLOBAL")]
        assert b"eval" not in blob and b"numpy" not in blob, blob
        assert len(globals_named) <= 1
        r = OnlyTensors(io.BytesIO(blob)).load()
        assert r.dtype == t.dtype and r.shape == t.shape and r.requires_grad == (t.requires_grad and t.is_leaf)
        np.testing.assert_array_equal(r.astype(np.float64).numpy(), t.detach().astype(np.float64).numpy())
    rebuild = tg._tensor._rebuild
    for args, err, msg in [(((2,), "float128", b"\0" * 32, False), ValueError, "unknown dtype"),
                           (((2,), "float64", b"\0" * 15, False), ValueError, "needs 16 bytes"),
                           (((-1,), "float64", b"", False), ValueError, "invalid shape"),
                           ((2, "float64", b"\0" * 16, False), ValueError, "invalid shape"),
                           (((2,), "float64", "ab", False), TypeError, "must be bytes"),
                           (((2,), "float64", b"\0" * 16, 1), TypeError, "requires_grad must be a bool"),
                           (((2**40, 2**40), "float64", b"", False), ValueError, "needs")]:
        with pytest.raises(err, match=msg):
            rebuild(*args)


def test_mutated_tensor_pickles_raise_or_load_never_crash() -> None:
    """10,000 pickles of tensors with random bytes changed, loaded in a child process: each raises
    an exception or loads; none crashes the interpreter (the full run is scripts/fuzz.sh's)."""
    # A damaged memo index makes pickle itself size its memo to it (gigabytes, a minute): the child
    # gets at most 4 GiB, so that this is a MemoryError at once (under AddressSanitizer, which
    # reserves more address space than that, by its allocation limit instead).
    env = dict(os.environ)
    if "ASAN_OPTIONS" in env:
        env["ASAN_OPTIONS"] += ":max_allocation_size_mb=4096"
    code = """
        import os, pickle, random, resource, numpy as np, tapegrad as tg
        if "ASAN_OPTIONS" not in os.environ:
            resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))
        rng = random.Random(21)
        blobs = [pickle.dumps(t) for t in (tg.tensor([[1.5, -2.0], [0.0, 3.25]], requires_grad=True),
                 tg.tensor([1, 2, 3]), tg.tensor([1.0, 3.3], dtype=tg.bfloat16), tg.tensor(2.5, dtype=np.float16))]
        loaded = 0
        for i in range(10000):
            b = bytearray(rng.choice(blobs))
            for _ in range(rng.randint(1, 4)):
                b[rng.randrange(len(b))] = rng.randrange(256)
            try:
                pickle.loads(bytes(b)); loaded += 1
            except Exception:
                pass
        print("ok", loaded)
    """
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=300, env=env)
    assert proc.returncode == 0 and proc.stdout.startswith("ok"), proc.stderr[-3000:]


def test_a_leaf_whose_gradient_is_the_leaf_itself() -> None:
    """`x.grad = x` is refused (PyTorch: "can't assign Variable as its own grad"); a hook or a custom
    Function's backward that returns the leaf gives PyTorch's gradients (the next create_graph backward
    hung: accumulating into the leaf took the leaf's lock twice)."""
    proc = run_child("""
        import tapegrad as tg
        x = tg.tensor(1.5, requires_grad=True)
        try:
            x.grad = x
        except RuntimeError as e:
            assert "its own gradient" in str(e), e
        else:
            raise AssertionError("no error")
        x = tg.tensor(1.5, requires_grad=True)
        x.register_hook(lambda g: x)
        y = x + x
        y.backward(retain_graph=True)
        assert x.grad.item() == 1.5
        y.backward(create_graph=True)
        assert x.grad.item() == 3.0 and x.grad is not x

        class F(tg.autograd.Function):
            @staticmethod
            def forward(ctx, a):
                return a * 2.0

            @staticmethod
            def backward(ctx, g):
                return z

        z = tg.tensor(1.5, requires_grad=True)
        F.apply(z).backward(create_graph=True)
        assert z.grad.item() == 1.5 and z.grad is not z
        print("ok")
    """)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-3000:]


def test_scans_sorts_and_selections_with_hostile_arguments() -> None:
    """The core's scans, sorts and selections (tensor_ops._cumsum, _topk, _gather, ...) called
    directly, past _torch.py's checks, with every mix of 0-d, empty, integer, bool, bfloat16,
    NaN and out-of-range arguments: exceptions, never a crash (a 0-d tensor's topk(0) read an
    offset it never wrote)."""
    proc = run_child("""
        import numpy as np, tapegrad as tg
        ops = tg._core.tensor_ops
        vals = [tg.tensor(3.0), tg.zeros(0), tg.zeros((2, 0)), tg.zeros((0, 3)), tg.randn(3, 4),
                tg.tensor([1, 2, 3]), tg.tensor([True, False]), tg.randn(2, 3, requires_grad=True),
                tg.randn(2, 3).astype(tg.bfloat16), tg.tensor([[0, 5], [-7, 1]]), np.zeros((2, 2), dtype=np.int32),
                [[0, 1]], None, 1.5, -1, 2**40, -2**63, tg.tensor(np.array([np.nan, 1.0, np.inf])),
                tg.tensor([[1, 0]]), tg.randn(1, 1)]
        small = [0, 1, -1, 2, -3, 2**31 - 1, -2**31, None, True, False, 0.0, float("nan"), 10**30, [0, 1], [0, 0]]
        ok = 0
        for name, arity in [("_cumsum", 2), ("_cumprod", 2), ("_arg_extreme", 4), ("_extreme_along", 4),
                            ("_sort", 3), ("_topk", 4), ("_gather", 3), ("_scatter_add", 4), ("_vector_norm", 4)]:
            f = getattr(ops, name)
            rng = np.random.default_rng(0)
            for trial in range(1500):
                args = []
                for k in range(arity):
                    pool = vals if k == 0 or (name in ("_gather", "_scatter_add") and k >= 2) else small
                    args.append(pool[rng.integers(len(pool))])
                try:
                    r = f(*args)
                    r = r[0] if isinstance(r, tuple) else r
                    if r.requires_grad and r.numel() > 0:
                        r.sum().backward(create_graph=bool(trial % 2))
                    ok += 1
                except (TypeError, ValueError, IndexError, RuntimeError, OverflowError):
                    pass
        print("ok", ok)
    """)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert int(proc.stdout.split()[-1]) > 1000


def test_the_forward_sweep_at_new_inputs_with_hostile_arguments() -> None:
    """tapegrad._core._forward_at (the forward sweep at new inputs, replay's engine) fed random
    mixes of outputs, leaves and values: results, leaves, constants, stale and released results,
    custom functions' and checkpointed results, values of the wrong shape or dtype, None, strings,
    NaN; plain and recorded. Exceptions that name the problem, never a crash; the calls that
    succeed give the value a fresh run gives."""
    proc = run_child("""
        import numpy as np, tapegrad as tg
        class Twice(tg.autograd.Function):
            @staticmethod
            def forward(ctx, x):
                return x * 2
            @staticmethod
            def backward(ctx, g):
                return g * 2
        rng = np.random.default_rng(1)
        ok = errors = 0
        for trial in range(400):
            with tg.Tape() as t:
                t.keep_constants = bool(trial % 3)
                x = tg.tensor(rng.uniform(-1, 1, 3), requires_grad=True)
                w = tg.tensor(rng.uniform(-1, 1, (2, 3)), requires_grad=True)
                y = (w @ x.exp()).tanh()
                s = y.sum()
                c = Twice.apply(x).sum()
                k = tg.utils.checkpoint.checkpoint(lambda a: (a * a).sum(), x) if trial % 5 == 0 else s
                r = (x * 3).sum()
                if trial % 7 == 0:
                    r.backward()
                stale_tape = tg.Tape()
                with stale_tape:
                    z = tg.tensor([1.0], requires_grad=True)
                    zz = z * 2
                stale_tape.clear()
                outs = [y, s, c, k, r, zz, x, w, tg.tensor(1.0), None, 3.0]
                leaves = [x, w, y, tg.tensor([1.0, 2.0, 3.0]), z, None, "x"]
                vals = [np.zeros(3), np.ones((2, 3)), np.zeros(4), np.zeros(3, dtype=np.float32),
                        np.array([np.nan] * 3), None, "abc", x, tg.tensor(2.0), [1.0, 2.0, 3.0]]
                if trial % 4 < 2 and t.keep_constants:  # a valid call: the checks of its value below
                    xv = rng.uniform(-1, 1, 3)
                    args = ([s], [x], [xv])
                    if trial % 8 < 4:
                        args = ([s, y], [x, w], [xv, rng.uniform(-1, 1, (2, 3))])
                    got = tg._core._forward_at(*args, record=bool(trial % 2))
                    wv = args[2][1] if len(args[1]) == 2 else w.detach().numpy()
                    want = np.tanh(wv @ np.exp(xv))
                    first = got[0] if isinstance(got, tuple) else got
                    assert np.allclose(first.detach().numpy(), want.sum())
                    if isinstance(got, tuple):
                        assert np.allclose(got[1].detach().numpy(), want)
                    # a leaf among the outputs is its new value
                    same = tg._core._forward_at([x, s], [x], [xv], record=bool(trial % 2))
                    assert np.array_equal(same[0].detach().numpy(), xv)
                    ok += 1
                    continue
                n = int(rng.integers(0, 3))
                args = ([outs[int(i)] for i in rng.integers(len(outs), size=int(rng.integers(0, 3)))],
                        [leaves[int(i)] for i in rng.integers(len(leaves), size=n)],
                        [vals[int(i)] for i in rng.integers(len(vals), size=max(0, n + int(rng.integers(-1, 2))))])
                try:
                    got = tg._core._forward_at(*args, record=bool(trial % 2))
                    ok += 1
                except (TypeError, ValueError, IndexError, RuntimeError) as e:
                    assert str(e), type(e)
                    errors += 1
        print("ok", ok, errors)
    """)
    assert proc.returncode == 0, proc.stderr[-2000:]
    ok, errors = (int(v) for v in proc.stdout.split()[-2:])
    assert ok > 100 and errors > 100, (ok, errors)
