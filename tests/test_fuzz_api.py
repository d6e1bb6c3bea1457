"""An API fuzzer: every public function, class, method and property of tapegrad (found by
introspection, so a new one is fuzzed without editing this file) called with hostile
arguments, in child processes. A Python exception is a pass; a death by a signal (segfault,
abort, SIGFPE), a hang or a worker that does not finish is a failure, reported with the exact
call that did it and a minimal reproducer found by bisection.

Targets: the public callables of ``tapegrad``, ``tapegrad.autograd``,
``tapegrad.functional``, ``tapegrad.nn``, ``tapegrad.utils.checkpoint``,
``tapegrad.utils.hooks``, ``tapegrad.viz`` and ``tapegrad.amp``; every public method and property, and the
dunders tapegrad defines, of
``Tensor``, ``Var`` and ``Tape`` bound to live instances (a leaf that requires grad, a
recorded result, a stale tensor whose tape was cleared, 0-d, empty, int64, bool, a
transposed view, float32, a tensor of another tape, Var leaves, recorded and stale Vars, ...)
and of the other classes (``nn`` modules, ``no_grad``, ``OpRow``); the classes' constructors.

Arguments (0-4 positional, sometimes keywords named after the target's parameters): wrong
types, NaN/inf/-0.0, huge and negative ints, empty, 0-d, ragged, self-referencing and deeply
nested containers, non-contiguous, read-only, unaligned, zero-stride and big-endian arrays,
float16/complex/object/uint64/int8/datetime/structured arrays, generators, objects whose
``__float__``/``__index__``/``__len__``/``__iter__``/``__array__`` raise, objects (some
registered as ``numbers.Real``, so that tapegrad converts them as numbers) whose conversion
clears the active tape or the tape of a recorded tensor, closes the active ``with Tape()``
block, enters a tape and turns grad mode off, or uses a recorded tensor from another thread,
before returning a value; functions that do the same inside a transformation; and the live
tensors, Vars and tapes themselves. A callable result (``tg.grad(f)``, ...) is called in turn;
every result is printed, converted and pickled; garbage is collected after each call.

Sizes: only small (<= 3), mid (2**20) and impossible (> 2**48 elements) sizes are in the
pool; a call of an allocating function whose sizes multiply to between 2**26 and 2**48 is
not made (counted as guarded), nor an ``nn`` constructor with a size above 1000 (a Python
loop), so nothing can really allocate more than ~1 GiB; a worker also runs under an 8 GiB
address-space limit and a per-call watchdog (20 s: a hang is reported as the call's).

Profiles: by default FAST_SEEDS x FAST_CALLS calls (well under a minute).
``TAPEGRAD_FUZZ_PROFILE=long`` runs ``TAPEGRAD_FUZZ_CALLS`` calls (200000 by default) from
seed ``TAPEGRAD_FUZZ_SEED`` (0 by default), split into child processes of
``TAPEGRAD_FUZZ_CHUNK`` calls (4000) run ``TAPEGRAD_FUZZ_JOBS`` at a time (half the CPUs), and
prints how many calls were tried. ``TAPEGRAD_FUZZ_AVOID_KNOWN=1`` leaves out the hostile
arguments of the crashes in KNOWN_CRASHES (to look for others while they are open).

A worker runs ``python fuzz.py SEED N``: calls FIRST .. FIRST+N-1 (``TG_FUZZ_FIRST``, 0 by
default; ``TG_FUZZ_INDICES=i,j,...``: those calls only). Call i is drawn from its own
generator, ``default_rng([SEED, i])`` (the same call for the same SEED, i and version of this
file), and needs nothing from the calls before it but the state they leave (tapes entered and
grad mode are reset after each call), so any set of calls can be rerun alone. Before each
step it prints ``@@ <i> <target> :: <code>`` (flushed), so the last line before a death names
the call; with ``TG_FUZZ_VERBOSE=1`` it also prints, prefixed with ``| ``, the code it runs,
each call as a function: a script that does what the worker did. It ends by printing
``done <results> <errors>`` and writing its statistics (and the errors whose messages look
unclear: pybind11 signature dumps, private names, SystemError, ...) to ``fuzz.json``.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import signal
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import run_fuzz_worker

WORKER = textwrap.dedent(r'''
    import faulthandler
    import gc
    import inspect
    import math
    import os
    import re
    import resource
    import sys
    import textwrap

    faulthandler.enable()
    try:  # a runaway allocation is a MemoryError, never the machine's memory
        resource.setrlimit(resource.RLIMIT_AS, (8 << 30, 8 << 30))
    except (ValueError, OSError):
        pass

    import numpy as np

    for attempt in range(12):  # tapegrad being rebuilt meanwhile: its module is back within a minute
        try:
            import tapegrad
            break
        except ImportError:
            if attempt == 11:
                raise
            import time
            time.sleep(10)
    import tapegrad as tg
    import tapegrad.autograd
    import tapegrad.functional
    try:
        import tapegrad.nn
    except ImportError:
        pass

    seed, n = int(sys.argv[1]), int(sys.argv[2])
    FIRST = int(os.environ.get("TG_FUZZ_FIRST", "0"))
    VERBOSE = os.environ.get("TG_FUZZ_VERBOSE") == "1"
    LIST = os.environ.get("TG_FUZZ_LIST") == "1"
    WATCHDOG = float(os.environ.get("TG_FUZZ_WATCHDOG", "20"))  # seconds a call may take
    STATS = os.path.splitext(os.path.abspath(__file__))[0] + ".json"
    out = sys.stdout

    # --- the pool: each entry is code defining one name (other entries it names are defined first) ---

    RECIPES = {}
    LIVE = {}      # class name -> names of live instances (the receivers of its methods)
    POOL = {}      # category -> names of hostile arguments

    EXTRA_DEPS = {}

    def recipe(name, code, cls=None, cat=None, by=None):
        """Code defining `name` (or, with `by`, defined by that recipe), a live instance of
        class `cls` and/or an argument of category `cat`."""
        RECIPES[name] = textwrap.dedent(code).strip("\n")
        if by:
            EXTRA_DEPS[name] = [by]
        if cls:
            LIVE.setdefault(cls, []).append(name)
        if cat:
            POOL.setdefault(cat, []).append(name)

    # helpers
    recipe("_touch", """
        import pickle
        def _touch(r, depth=0):
            # Uses a result: repr, str, its values, a pickle round trip.
            if depth > 2:
                return
            repr(r), str(r)
            if isinstance(r, tg.Tensor):
                r.shape, r.dtype, r.requires_grad, r.is_leaf, r.grad
                a = r.numpy()
                if r.size == 1:
                    r.item()
                if r.size < 1000:
                    r.tolist()
                    pickle.loads(pickle.dumps(r))
            elif isinstance(r, tg.Var):
                float(r.data), r.grad, r.is_leaf, r.tape
                pickle.loads(pickle.dumps(r))
            elif isinstance(r, (list, tuple)):
                for x in r[:8]:
                    _touch(x, depth + 1)
            elif isinstance(r, dict):
                for x in list(r.values())[:8]:
                    _touch(x, depth + 1)
    """)
    recipe("_reset", """
        _BASE_TAPE = tg.active_tape()
        def _reset():
            # Leaves the tapes a call entered and turns grad mode back on.
            for _ in range(64):
                if tg.active_tape() is _BASE_TAPE:
                    break
                try:
                    tg.active_tape().__exit__(None, None, None)
                except Exception:
                    break
            tg._core._set_grad_enabled(True)
    """)

    # live tensors, Vars and tapes
    recipe("t_leaf", "t_leaf = tg.tensor([1.0, 2.0, 3.0], requires_grad=True)", "Tensor", "live")
    recipe("t_rec", "t_rec = t_leaf * t_leaf + 1.0", "Tensor", "live")
    recipe("tape_cleared", """
        tape_cleared = tg.Tape()
        with tape_cleared:
            t_stale_leaf = tg.tensor([0.5, -1.0], requires_grad=True)
            t_stale = t_stale_leaf * 2.0
            v_stale_leaf = tg.Var(1.25)
            v_stale = v_stale_leaf * 2.0
        tape_cleared.clear()
    """, "Tape", "live")
    recipe("t_stale", "", by="tape_cleared", cls="Tensor", cat="live")
    recipe("t_stale_leaf", "", by="tape_cleared", cls="Tensor", cat="live")
    recipe("t_0d", "t_0d = tg.tensor(2.5, requires_grad=True)", "Tensor", "live")
    recipe("t_empty", "t_empty = tg.zeros((0,), requires_grad=True)", "Tensor", "live")
    recipe("t_empty2", "t_empty2 = tg.ones((2, 0, 3))", "Tensor", "live")
    recipe("t_i64", "t_i64 = tg.tensor([3, -1, 0])", "Tensor", "live")
    recipe("t_bool", "t_bool = tg.tensor([True, False, True])", "Tensor", "live")
    recipe("t_2d", "t_2d = tg.tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)", "Tensor", "live")
    recipe("t_T", "t_T = t_2d.T", "Tensor", "live")
    recipe("t_f32", "t_f32 = tg.tensor([1.0, -2.0], dtype='float32', requires_grad=True)", "Tensor", "live")
    recipe("t_f16", "t_f16 = tg.tensor([1.5, -2.0, 65504.0], dtype='float16', requires_grad=True)", "Tensor", "live")
    recipe("t_bf16", "t_bf16 = tg.tensor([[0.5, -3.0], [1e30, 2.0]], dtype='bfloat16', requires_grad=True)",
           "Tensor", "live")
    recipe("t_loss", "t_loss = (t_rec * 2.0).sum()", "Tensor", "live")
    recipe("t_gleaf", """
        t_gleaf = tg.tensor([1.0, 2.0], requires_grad=True)
        (t_gleaf ** 3).sum().backward(create_graph=True)
    """, "Tensor", "live")
    recipe("t_nograd", "t_nograd = tg.tensor([[1.0, 2.0], [3.0, 4.0]])", "Tensor", "live")
    recipe("tape_rec", """
        tape_rec = tg.Tape()
        with tape_rec:
            t_other = tg.tensor([0.5, 1.5], requires_grad=True).sin()
            v_other = tg.Var(1.5) * 2.0
    """, "Tape", "live")
    recipe("t_other", "", by="tape_rec", cls="Tensor", cat="live")
    recipe("v_other", "", by="tape_rec", cls="Var", cat="live")
    recipe("v_leaf", "v_leaf = tg.Var(1.5)", "Var", "live")
    recipe("v_rec", "v_rec = v_leaf * v_leaf + v_leaf.sin()", "Var", "live")
    recipe("v_const", "v_const = tg.Var(2.0, requires_grad=False)", "Var", "live")
    recipe("v_stale", "", by="tape_cleared", cls="Var", cat="live")
    recipe("v_stale_leaf", "", by="tape_cleared", cls="Var", cat="live")
    recipe("v_gleaf", """
        v_gleaf = tg.Var(2.0)
        (v_gleaf ** 3).backward(create_graph=True)
    """, "Var", "live")
    recipe("tape_fresh", "tape_fresh = tg.Tape()", "Tape", "live")
    recipe("tape_active", "tape_active = tg.active_tape()", "Tape", "live")
    recipe("tape_entered", """
        tape_entered = tg.Tape()
        tape_entered.__enter__()
    """, "Tape", "live")
    recipe("mlp", "mlp = tg.nn.MLP(2, [3, 1])", "MLP")
    recipe("layer", "layer = tg.nn.Layer(2, 2)", "Layer")
    recipe("neuron", "neuron = tg.nn.Neuron(2)", "Neuron")
    recipe("module", "module = tg.nn.Module()", "Module")
    recipe("no_grad_cm", "no_grad_cm = tg.no_grad()", "no_grad", "misc")
    recipe("enable_grad_cm", "enable_grad_cm = tg.enable_grad()", "enable_grad")
    recipe("op_row", "op_row = tg.op_table[0]", "OpRow")

    # numbers
    for name, code in [("none", "None"), ("true", "True"), ("zero", "0"), ("one", "1"), ("two", "2"), ("three", "3"),
                       ("neg1", "-1"), ("neg3", "-3"), ("mid_int", "2**20"), ("big50", "2**50"),
                       ("int63m1", "2**63 - 1"), ("int63", "2**63"), ("int64max", "2**64"), ("negbig", "-2**62"),
                       ("huge", "10**400"), ("f_half", "0.5"), ("f_onehalf", "1.5"), ("nan", "float('nan')"),
                       ("inf", "float('inf')"), ("ninf", "-float('inf')"), ("negzero", "-0.0"), ("fbig", "1e300"),
                       ("fnbig", "-1e300"), ("ftiny", "5e-324"), ("cplx", "complex(1, 2)"),
                       ("np_f32", "np.float32(2.0)"), ("np_i64", "np.int64(-1)"), ("np_u64", "np.uint64(2**64 - 1)"),
                       ("np_f16nan", "np.float16('nan')"), ("np_bool", "np.bool_(True)"), ("np_i8", "np.int8(-128)")]:
        recipe(name, f"{name} = {code}", cat="number")

    # strings, dtypes, other objects
    for name, code in [("s_x", "'x'"), ("s_empty", "''"), ("s_f32", "'float32'"), ("s_i64", "'int64'"),
                       ("s_nul", "'\\x00'"), ("s_fmt", "'>10.3f'"), ("b_ab", "b'ab'"), ("obj", "object()"),
                       ("a_dict", "{'a': 1.0}"), ("a_set", "{1, 2}"), ("lam", "lambda *a, **k: None"),
                       ("dt_f32", "np.float32"), ("dt_obj", "np.dtype(object)"), ("dt_be", "np.dtype('>f8')"),
                       ("dt_c", "np.complex128"), ("dt_struct", "np.dtype([('a', 'f8')])"), ("dt_bogus", "'bogus'"),
                       ("dt_f16", "'float16'"), ("dt_bf16", "'bfloat16'"), ("dt_i32", "np.int32"),
                       ("pytype_int", "int"), ("ellipsis", "..."),
                       ("sl_rev", "slice(None, None, -1)"), ("sl_big", "slice(0, 2**63, 2**62)"),
                       ("sl_zero", "slice(0, 3, 0)"), ("idx_mixed", "(0, None, ...)"),
                       ("idx_bool", "[True, False, True]"), ("idx_arr", "np.array([0, -1])"),
                       ("idx_2arr", "(np.array([0, 1]), np.array([[0], [1]]))"),
                       ("idx_bigarr", "np.array([2**62])"), ("rng3", "range(3)"),
                       ("module_np", "np"), ("tg_func", "tg.sin")]:
        recipe(name, f"{name} = {code}", cat="misc")

    # containers
    for name, code in [("empty_list", "[]"), ("empty_tuple", "()"), ("list3", "[1.0, 2.0, 3.0]"),
                       ("shape23", "(2, 3)"), ("shape_neg", "[-1, 2]"), ("shape_huge", "[2**40, 2**40]"),
                       ("shape_big", "(2**50,)"), ("shape_zero_big", "[0, 2**62]"), ("shape_mid", "(2**20, 1)"),
                       ("shape_float", "(2.5, 1)"), ("shape_str", "('2', 3)"), ("shape_many", "(1,) * 70"),
                       ("ragged", "[[1.0, 2.0], [3.0]]"), ("nested4", "[[[[1.0]]]]"), ("list_none", "[None]"),
                       ("list_mixed", "[1.0, 'a']"), ("list_nan", "[float('nan'), float('inf'), -0.0]"),
                       ("list_big", "[2**63, -2**63 - 1]"), ("list_bools", "[True, False]"),
                       ("tuple_empty_lists", "([], [])"), ("dict_arr", "{'a': np.ones(2), 'b': [1.0, 2.0]}"),
                       ("list_cplx", "[1j, 2.0]"), ("list_of_lists_of_str", "[['a']]")]:
        recipe(name, f"{name} = {code}", cat="container")
    recipe("selfref", "selfref = []\nselfref.append(selfref)", cat="container")
    recipe("selfref_dict", "selfref_dict = {}\nselfref_dict['a'] = selfref_dict", cat="container")
    recipe("deep", "deep = [1.0]\nfor _ in range(100000):\n    deep = [deep]", cat="container")
    recipe("list_tensors", "list_tensors = [t_leaf, t_rec]", cat="container")
    recipe("list_mixed_t", "list_mixed_t = [t_leaf, t_stale, 1.0, np.ones(3)]", cat="container")
    recipe("list_vars", "list_vars = [v_leaf, v_rec]", cat="container")
    recipe("list_mixed_v", "list_mixed_v = [v_leaf, v_stale, v_other, t_leaf]", cat="container")

    # arrays
    for name, code in [("arr3", "np.arange(3.0)"), ("arr23", "np.ones((2, 3))"), ("arr0d", "np.array(1.5)"),
                       ("arr_empty", "np.ones((0,))"), ("arr_empty2", "np.ones((0, 3))"),
                       ("arr_nc", "np.arange(10.0)[::2]"), ("arr_T", "np.arange(6.0).reshape(2, 3).T"),
                       ("arr_neg", "np.arange(4.0)[::-1]"), ("arr_zero_stride", "np.broadcast_to(np.ones(1), (4,))"),
                       ("arr_be", "np.arange(3, dtype='>f8')"), ("arr_be_i", "np.arange(3, dtype='>i8')"),
                       ("arr_f16", "np.ones(3, dtype=np.float16)"), ("arr_c", "np.ones(3, dtype=complex)"),
                       ("arr_obj", "np.array([1.0, 'a', None], dtype=object)"),
                       ("arr_obj_num", "np.array([1.0, 2.0], dtype=object)"),
                       ("arr_u64", "np.array([2**64 - 1, 0], dtype=np.uint64)"),
                       ("arr_i8", "np.array([-1, 2, 127], dtype=np.int8)"), ("arr_bool", "np.array([True, False])"),
                       ("arr_i64", "np.array([0, 1, -1], dtype=np.int64)"),
                       ("arr_nan", "np.array([np.nan, np.inf, -np.inf])"), ("arr_str", "np.array(['a', 'b'])"),
                       ("arr_dt", "np.array(['2020-01-01'], dtype='datetime64[D]')"),
                       ("arr_struct", "np.zeros(2, dtype=[('a', 'f8')])"), ("arr_many_dims", "np.ones((1,) * 40)"),
                       ("arr_f32_2d", "np.ones((3, 2), dtype=np.float32)"),
                       ("arr_f16", "np.array([1.0, np.inf, -0.0], dtype=np.float16)"),
                       ("arr_unaligned", "np.frombuffer(b'\\x00' * 33, dtype='f8', count=4, offset=1)"),
                       ("arr_masked", "np.ma.masked_array([1.0, 2.0], mask=[0, 1])"),
                       ("arr_matrix_like", "np.ones((2, 2, 2, 2))")]:
        recipe(name, f"{name} = {code}", cat="array")
    recipe("arr_ro", "arr_ro = np.arange(3.0)\narr_ro.setflags(write=False)", cat="array")

    # generators and iterators
    recipe("gen3", "gen3 = (float(i) for i in range(3))", cat="container")
    recipe("gen_t", "gen_t = (t_leaf * 2.0 for _ in range(2))", cat="container")
    recipe("RaisingGen", """
        def RaisingGen():
            yield 1.0
            raise ValueError('generator failed')
    """)
    recipe("gen_raise", "gen_raise = RaisingGen()", cat="container")
    recipe("gen_clear", """
        def _gen_clear():
            yield t_rec
            tg.active_tape().clear()
            yield t_rec
        gen_clear = _gen_clear()
    """, cat="hostile")
    recipe("iter_list", "iter_list = iter([1.0, 2.0])", cat="container")

    # hostile objects
    recipe("HostileError", "class HostileError(Exception):\n    pass")
    recipe("Bad", """
        class Bad:
            # Every conversion raises.
            def __float__(self): raise HostileError('__float__ failed')
            def __index__(self): raise HostileError('__index__ failed')
            def __int__(self): raise HostileError('__int__ failed')
            def __len__(self): raise HostileError('__len__ failed')
            def __iter__(self): raise HostileError('__iter__ failed')
            def __getitem__(self, i): raise HostileError('__getitem__ failed')
            def __array__(self, dtype=None, copy=None): raise HostileError('__array__ failed')
            def __bool__(self): raise HostileError('__bool__ failed')
    """)
    recipe("bad", "bad = Bad()", cat="hostile")
    for name, body in [("BadFloat", "def __float__(self): raise HostileError('__float__ failed')"),
                       ("BadIndex", "def __index__(self): raise HostileError('__index__ failed')"),
                       ("BadLen", "def __len__(self): raise HostileError('__len__ failed')\n"
                                  "    def __getitem__(self, i):\n"
                                  "        if i >= 3: raise IndexError(i)\n"
                                  "        return 1.0"),
                       ("BadIter", "def __iter__(self): raise HostileError('__iter__ failed')"),
                       ("BadArray", "def __array__(self, dtype=None, copy=None):\n"
                                    "        raise HostileError('__array__ failed')"),
                       ("WrongFloat", "def __float__(self): return 'x'"),
                       ("WrongArray", "def __array__(self, dtype=None, copy=None): return 'x'"),
                       ("HugeLen", "def __len__(self): return 2**62\n"
                                   "    def __getitem__(self, i):\n"
                                   "        if i >= 3: raise IndexError(i)\n"
                                   "        return 1.0"),
                       ("IdxHuge", "def __index__(self): return 2**62")]:
        recipe(name, f"class {name}:\n    {body}")
        recipe(name.lower(), f"{name.lower()} = {name}()", cat="hostile")
    recipe("Clearing", """
        class Clearing:
            # Each conversion clears a tape (the active one by default) before it returns a value.
            def __init__(self, tape=None):
                self.tape = tape
            def _clear(self):
                (self.tape or tg.active_tape()).clear()
            def __float__(self):
                self._clear()
                return 1.5
            def __index__(self):
                self._clear()
                return 1
            def __len__(self):
                self._clear()
                return 2
            def __getitem__(self, i):
                self._clear()
                if i >= 2:
                    raise IndexError(i)
                return 1.0
            def __iter__(self):
                self._clear()
                return iter([1.0, 2.0])
            def __array__(self, dtype=None, copy=None):
                self._clear()
                return np.ones(3) if dtype is None else np.ones(3, dtype=dtype)
    """)
    recipe("clear_active", "clear_active = Clearing()", cat="hostile")
    recipe("clear_other", "clear_other = Clearing(tape_rec)", cat="hostile")
    for name, method, ret in [("ClearFloat", "__float__", "1.5"), ("ClearIndex", "__index__", "1"),
                              ("ClearArray", "__array__", "np.ones(3)")]:
        args = "self, dtype=None, copy=None" if method == "__array__" else "self"
        recipe(name, f"class {name}:\n    def {method}({args}):\n        tg.active_tape().clear()\n"
                     f"        return {ret}")
        recipe(name.lower(), f"{name.lower()} = {name}()", cat="hostile")
    recipe("ClearRecFloat", """
        class ClearRecFloat:
            # __float__ clears the tape of t_other and v_other (tape_rec).
            def __float__(self):
                tape_rec.clear()
                return 2.0
    """)
    recipe("clear_rec_float", "clear_rec_float = ClearRecFloat()", cat="hostile")
    recipe("ClearReal", """
        import numbers
        class ClearReal:
            # A number (registered as numbers.Real, so converted by __float__) that clears the active tape.
            def __float__(self):
                tg.active_tape().clear()
                return 1.5
        numbers.Real.register(ClearReal)
    """)
    recipe("clear_real", "clear_real = ClearReal()", cat="hostile")
    recipe("ClearRecReal", """
        import numbers
        class ClearRecReal:
            # A number that clears tape_rec (the tape of t_other and v_other).
            def __float__(self):
                tape_rec.clear()
                return 1.5
        numbers.Real.register(ClearRecReal)
    """)
    recipe("clear_rec_real", "clear_rec_real = ClearRecReal()", cat="hostile")
    recipe("Exiting", """
        import numbers
        class Exiting:
            # Each conversion closes the active `with Tape()` block (by __exit__) before it returns.
            def _exit(self):
                try:
                    tg.active_tape().__exit__(None, None, None)
                except ValueError:
                    pass
            def __float__(self):
                self._exit()
                return 1.5
            def __index__(self):
                self._exit()
                return 1
            def __len__(self):
                self._exit()
                return 2
            def __getitem__(self, i):
                self._exit()
                if i >= 2:
                    raise IndexError(i)
                return 1.0
            def __array__(self, dtype=None, copy=None):
                self._exit()
                return np.ones(3) if dtype is None else np.ones(3, dtype=dtype)
    """)
    recipe("ExitReal", """
        import numbers
        class ExitReal(Exiting):
            pass
        numbers.Real.register(ExitReal)
    """)
    # the active tape is an entered one that no name refers to: closing it frees it
    recipe("exit_active", "tg.Tape().__enter__()\nexit_active = Exiting()", cat="hostile")
    recipe("exit_real", "tg.Tape().__enter__()\nexit_real = ExitReal()", cat="hostile")
    recipe("EnterFloat", """
        class EnterFloat:
            # __float__ enters a fresh tape and turns grad mode off, then returns a value.
            def __float__(self):
                tg.Tape().__enter__()
                tg.no_grad().__enter__()
                return 0.5
    """)
    recipe("enter_float", "enter_float = EnterFloat()", cat="hostile")
    recipe("list_clear", "list_clear = [t_rec, clear_real, t_leaf]", cat="hostile")
    recipe("list_clear_arr", "list_clear_arr = [t_rec, clear_active]", cat="hostile")
    recipe("list_exit", "list_exit = [t_leaf, exit_real, v_leaf]", cat="hostile")
    recipe("list_clear_vars", "list_clear_vars = [v_rec, clear_real]", cat="hostile")
    recipe("nested_clear", "nested_clear = [[1.0, clear_real], [clear_active, 2.0]]", cat="hostile")
    recipe("Threading", """
        import numbers
        import threading
        class Threading:
            # A conversion that uses t_rec (recorded on the default tape) from another thread and
            # waits for it (for a second at most: while this thread's op holds the tape, it waits).
            def _use(self):
                th = threading.Thread(target=lambda: (t_rec * 2.0).sum().backward(), daemon=True)
                th.start()
                th.join(1.0)
            def __float__(self):
                self._use()
                return 1.5
            def __array__(self, dtype=None, copy=None):
                self._use()
                return np.ones(3) if dtype is None else np.ones(3, dtype=dtype)
    """)
    recipe("ThreadReal", """
        import numbers
        class ThreadReal(Threading):
            pass
        numbers.Real.register(ThreadReal)
    """)
    recipe("thread_array", "thread_array = Threading()", cat="hostile")
    recipe("thread_real", "thread_real = ThreadReal()", cat="hostile")
    recipe("ArrSub", """
        class ArrSub(np.ndarray):
            def __array_finalize__(self, obj):
                pass
    """)
    recipe("arr_sub", "arr_sub = np.arange(3.0).view(ArrSub)", cat="array")

    # functions, for the transformations and no_grad
    recipe("leaked", "leaked = []")
    for name, code in [("fn_id", "lambda *a, **k: a[0]"), ("fn_sum", "lambda *a, **k: (a[0] * a[0]).sum()"),
                       ("fn_sin", "lambda *a, **k: tg.sin(a[0])"), ("fn_tuple", "lambda *a, **k: (a[0], a[-1])"),
                       ("fn_const", "lambda *a, **k: 3.0"), ("fn_none", "lambda *a, **k: None"),
                       ("fn_dict", "lambda *a, **k: {'k': a[0] * 2.0}"),
                       ("fn_aux", "lambda *a, **k: ((a[0] * a[0]).sum(), a[0])"),
                       ("fn_var", "lambda *a, **k: tg.Var(1.0) * 2.0"),
                       ("fn_matmul", "lambda *a, **k: a[0] @ a[0]"),
                       ("fn_reshape", "lambda *a, **k: a[0].reshape((1, -1))"),
                       ("fn_nested", "lambda *a, **k: tg.grad(lambda y: (y * y).sum())(a[0]).sum()"),
                       ("fn_clear", "lambda *a, **k: (tg.active_tape().clear(), a[0] * 2.0)[1]"),
                       ("fn_clear_after", "lambda *a, **k: (a[0] * 2.0, tg.active_tape().clear())[0]"),
                       ("fn_enter", "lambda *a, **k: (tg.Tape().__enter__(), a[0] * 2.0)[1]"),
                       ("fn_nograd", "lambda *a, **k: (tg.no_grad().__enter__(), a[0] * 2.0)[1]"),
                       ("fn_exit", "lambda *a, **k: (tg.active_tape().__exit__(None, None, None), a[0] * 2.0)[1]"),
                       ("fn_stale", "lambda *a, **k: t_stale"),
                       ("fn_outer_rec", "lambda *a, **k: a[0] * t_rec.sum()"),
                       ("fn_leak", "lambda *a, **k: (leaked.append(a[0]), (a[0] * a[0]).sum())[1]")]:
        recipe(name, f"{name} = {code}", cat="function")
    recipe("fn_raise", "def fn_raise(*a, **k):\n    raise HostileError('fn_raise')", cat="function")

    # arguments left out (TG_FUZZ_AVOID: the hostile objects of known crashes, to look for others)
    AVOID = set(filter(None, os.environ.get("TG_FUZZ_AVOID", "").split(",")))

    # a name in the code of a recipe is a dependency
    DEPS = {name: EXTRA_DEPS.get(name, []) + [d for d in RECIPES if d != name and EXTRA_DEPS.get(d) != [name] and
                                              re.search(r"(?<![\w.])" + re.escape(d) + r"\b", code)]
            for name, code in RECIPES.items()}

    def needs_avoided(name, depth=0):
        return name in AVOID or (depth < 20 and any(needs_avoided(d, depth + 1) for d in DEPS[name]))

    for cat in POOL:
        POOL[cat] = [name for name in POOL[cat] if not needs_avoided(name)]

    # --- the targets, by introspection ----------------------------------------------------------

    MODULES = [("tg", tg), ("tg.autograd", tg.autograd), ("tg.functional", tg.functional)]
    if hasattr(tg, "nn"):
        MODULES.append(("tg.nn", tg.nn))
    import tapegrad.utils.checkpoint
    import tapegrad.utils.hooks
    MODULES += [("tg.utils.checkpoint", tg.utils.checkpoint), ("tg.utils.hooks", tg.utils.hooks)]
    if hasattr(tg, "viz"):
        MODULES.append(("tg.viz", tg.viz))
    MODULES.append(("tg.amp", tg.amp))
    NOT_FUZZED_DUNDERS = {"__new__", "__class__", "__getattribute__", "__setattr__", "__delattr__", "__dir__",
                          "__init_subclass__", "__subclasshook__", "__sizeof__", "__reduce_ex__", "__getstate__",
                          "__doc__", "__module__", "__dict__", "__weakref__", "__slots__", "__annotations__",
                          "__array_priority__", "__array_ufunc__", "__firstlineno__", "__static_attributes__",
                          "__match_args__", "__orig_bases__", "__parameters__", "__qualname__", "__field_defaults__",
                          "__fields__", "_fields", "__getnewargs__", "__class_getitem__"}
    COMMON_KWARGS = ["axis", "keepdims", "dtype", "requires_grad", "create_graph", "allow_unused", "batched",
                     "argnums", "has_aux"]

    OP_ARITY = {row.name: row.arity for row in tg.op_table}

    def param_names(obj, method=False):
        """The target's keyword names and how many positional arguments it takes (lo, hi; None
        where unknown): from inspect.signature, a pybind11 docstring, or the op table."""
        try:
            sig = inspect.signature(obj)
            ps = [p for p in sig.parameters.values() if p.name != "self"]
            names = [p.name for p in ps if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
            pos = [p for p in ps if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
            lo = sum(1 for p in pos if p.default is p.empty)
            hi = 4 if any(p.kind == p.VAR_POSITIONAL for p in ps) else len(pos)
            return names, (lo, hi)
        except (TypeError, ValueError):
            pass
        names, arity = [], None
        for line in (getattr(obj, "__doc__", None) or "").splitlines()[:8]:
            m = re.match(r"\s*(?:\d+\.\s*)?[\w.]+\((.*)\)\s*->", line)
            if m:
                ps = [p.strip() for p in m.group(1).split(",") if p.strip()]
                ps = [p for p in ps if not p.startswith("self")]
                lo = sum(1 for p in ps if "=" not in p and not p.startswith("*"))
                hi = 4 if any(p.startswith("*") for p in ps) else len(ps)
                arity = arity or (lo, hi)
                for p in ps:
                    pm = re.match(r"\s*(\w+)\s*:", p)
                    if pm and pm.group(1) not in ("self", "args", "kwargs") and pm.group(1) not in names:
                        names.append(pm.group(1))
        if isinstance(obj, type) and arity is None and "__init__" in vars(obj):
            return param_names(obj.__init__, method=True)
        name = getattr(obj, "__name__", "")
        if arity is None and name in OP_ARITY:
            arity = (OP_ARITY[name] - method, OP_ARITY[name] - method)
        return names, arity

    TARGETS = []   # dicts: name, kind (call/method/prop), expr or attr, receivers, params
    CLASSES = []
    seen = set()
    for mname, mod in MODULES:
        # an object under its own name first (tg.Var before its alias tg.Value)
        for attr in sorted(dir(mod), key=lambda a: (getattr(getattr(mod, a), "__name__", None) != a, a)):
            if attr.startswith("_"):
                continue
            obj = getattr(mod, attr)
            if inspect.ismodule(obj) or not callable(obj):
                continue
            if not (getattr(obj, "__module__", None) or "").startswith("tapegrad"):
                continue  # typing's names, NumPy's scalar types
            if id(obj) in seen:
                continue
            seen.add(id(obj))
            params, arity = param_names(obj)
            TARGETS.append(dict(name=f"{mname}.{attr}", kind="call", expr=f"{mname}.{attr}", params=params,
                                arity=arity))
            if isinstance(obj, type):
                CLASSES.append((f"{mname}.{attr}", obj))

    NO_LIVE = []
    FUZZED: set = set()  # (the attribute objects already targeted: an inherited method is fuzzed once)
    for cname, cls in CLASSES:
        receivers = LIVE.get(cls.__name__)
        if not receivers:  # a class this file does not know: an instance made without arguments
            try:
                cls()
            except Exception:
                NO_LIVE.append(cname)
                continue
            inst = "inst_" + cname.replace(".", "_")
            recipe(inst, f"{inst} = {cname}()", cls=cls.__name__)
            DEPS[inst] = []
            receivers = LIVE[cls.__name__]
        names = [a for a in dir(cls) if not a.startswith("_")]
        names += [a for c in cls.__mro__ if c.__module__.startswith("tapegrad") for a in vars(c)
                  if a.startswith("__") and a not in NOT_FUZZED_DUNDERS]
        for attr in sorted(set(names)):
            try:
                raw = inspect.getattr_static(cls, attr)
            except AttributeError:
                continue
            if id(raw) in FUZZED and not isinstance(raw, (int, float, bool, str)):
                continue
            FUZZED.add(id(raw))
            if isinstance(raw, (property,)) or inspect.isdatadescriptor(raw) or inspect.isgetsetdescriptor(raw):
                TARGETS.append(dict(name=f"{cname}.{attr}", kind="prop", attr=attr, receivers=receivers, params=[],
                                    arity=None))
            elif callable(getattr(cls, attr, None)):
                params, arity = param_names(getattr(cls, attr), method=True)
                TARGETS.append(dict(name=f"{cname}.{attr}", kind="method", attr=attr, receivers=receivers,
                                    params=params, arity=arity))

    if LIST:
        for t in TARGETS:
            print("target", t["name"], t["kind"])
        for c in NO_LIVE:
            print("nolive", c)
        print("done 0 0", flush=True)
        sys.exit(0)

    # --- guards against legitimate long runs and huge allocations --------------------------------

    ALLOCATORS = re.compile(r"(^|\.)(zeros|ones|full|eye|arange|empty|broadcast_to|reshape|zeros_like|ones_like|"
                            r"full_like|Tensor|tensor|__init__|expand_dims|unsqueeze)$")
    LOOPS = re.compile(r"^tg\.nn\.(Neuron|Layer|MLP)(\.__init__)?$")
    BAND = (2**26, 2**48)

    def ints_in(x, depth=0):
        """The integer values that could be sizes, in an argument (not calling anything of it)."""
        if depth > 3:
            return []
        if isinstance(x, bool):
            return []
        if isinstance(x, (int, np.integer)):
            return [int(x)]
        if type(x).__name__ == "IdxHuge":
            return [2**62]
        if isinstance(x, np.ndarray) and x.dtype.kind in "iu" and x.size <= 64:
            return [int(v) for v in x.ravel()]
        if isinstance(x, (list, tuple)) and len(x) <= 128:
            return [v for e in x for v in ints_in(e, depth + 1)]
        return []

    def guarded(target, args, kwargs):
        """Whether a call could run for a very long time or really allocate more than ~1 GiB."""
        vals = [v for a in list(args) + list(kwargs.values()) for v in ints_in(a)]
        if LOOPS.search(target["name"]):  # Python loops over range(size)
            return any(abs(v) > 1000 for v in vals)
        if not ALLOCATORS.search(target["name"]):
            return False
        if any(v == 0 for v in vals):
            return False
        size = 1
        for v in vals:
            size *= max(1, abs(v))
        if BAND[0] < size <= BAND[1]:
            return True
        if target["name"].endswith("arange"):  # an element count from floats: (stop - start) / step
            given = dict(zip(("start", "stop", "step"), args[:3]))
            given.update({k: v for k, v in kwargs.items() if k in ("start", "stop", "step")})
            real = (int, float, np.integer, np.floating)
            if not all(isinstance(v, real) and not isinstance(v, bool) for v in given.values()):
                return False
            try:
                start, stop, step = (float(given.get(k, d)) for k, d in (("start", 0), ("stop", 0), ("step", 1)))
            except OverflowError:
                return False
            if "stop" not in given:
                start, stop = 0.0, start
            if step != 0 and all(math.isfinite(v) for v in (start, stop, step)):
                return BAND[0] < (stop - start) / step <= BAND[1]
        return False

    # --- unclear errors --------------------------------------------------------------------------

    UNCLEAR = re.compile(r"incompatible function arguments|Unable to cast|unable to convert|std::|bad_alloc|"
                         r"basic_string|vector::|unknown exception|Unknown internal error|pybind11|"
                         r"returned a result with an exception set|returned NULL|bad any_cast|"
                         r"Invoked with|Unable to convert|detail::|nullptr|abi::", re.I)
    # exception types tapegrad should not raise (the pool's own exceptions are HostileError)
    ODD_TYPES = {"SystemError", "AttributeError", "KeyError", "AssertionError", "NameError", "UnboundLocalError",
                 "ZeroDivisionError", "RecursionError", "StopIteration", "NotImplementedError", "SystemExit",
                 "UnicodeDecodeError", "BufferError", "ArithmeticError", "FloatingPointError"}

    # --- the calls ---------------------------------------------------------------------------------

    ORDER = np.random.default_rng(seed).permutation(len(TARGETS))
    CATS = ["live", "number", "container", "array", "hostile", "misc", "function"]
    CAT_P = np.array([0.30, 0.18, 0.13, 0.13, 0.12, 0.08, 0.06])
    results = errors = guards = followups = touch_errors = setup_errors = 0
    exc_types = {}
    unclear = {}
    hit = set()

    INDENT = [""]  # inside a call's function in the printed script

    def emit(code):
        if VERBOSE:
            for line in code.splitlines():
                out.write("| " + INDENT[0] + line + "\n")
            out.flush()

    SANE = [n for n in POOL["live"] if n.startswith(("t_", "v_"))] + [
        "zero", "one", "two", "neg1", "f_half", "f_onehalf", "true", "none", "list3", "shape23", "arr3", "arr23",
        "arr0d", "s_f32", "dt_f32", "idx_arr", "ellipsis", "list_tensors", "list_vars", "fn_id", "fn_sum", "fn_aux"]

    def pick_arg(rng, mode="hostile", cat=None):
        """A pool name: any category (hostile), a plausible argument (sane), or one of `cat`."""
        if cat is None and mode == "sane":
            return SANE[int(rng.integers(len(SANE)))]
        if cat is None:
            cat = CATS[int(rng.choice(len(CATS), p=CAT_P / CAT_P.sum()))]
        names = POOL[cat]
        return names[int(rng.integers(len(names)))]

    HELPERS = ("_touch", "_reset")  # printed once, at the top of a script

    def ensure(name, ns):
        if name in ns:
            return
        for d in DEPS[name]:
            ensure(d, ns)
        if name in ns:  # defined by one of them
            return
        if name not in HELPERS and RECIPES[name]:  # a hostile call before may make it fail (a cleared tape)
            emit(try_block(RECIPES[name]))
        exec(RECIPES[name], ns)


    def run_step(i, target, code, ns, uses):
        """Prints the step, defines what it uses, runs it; returns the exception or None."""
        out.write(f"@@ {i} {target} :: {code}\n")
        out.flush()
        try:
            for u in uses:
                ensure(u, ns)
            emit(try_block(code))
            exec(code, ns)
        except KeyboardInterrupt:
            raise
        except BaseException as e:  # a Python exception of any kind is a pass
            return e
        return None

    def try_block(code):
        """code in a try block that prints the exception (as a reproducer runs it)."""
        return "try:\n" + textwrap.indent(code, "    ") + "\nexcept Exception as e:\n    print(type(e).__name__, e)"

    def error_kind(tname, msg):
        """Why an error message may be unclear or wrong (None: it is not)."""
        if "incompatible function arguments" in msg or "incompatible constructor arguments" in msg:
            return "pybind11 signature dump"
        if UNCLEAR.search(msg):
            return "C++/pybind11 internals or a C-API error in the message"
        if re.search(r"(^|[^\w.])_[a-zA-Z]\w*\(\)", msg):
            return "names a private function"
        if "_core" in msg:
            return "names the private module tapegrad._core"
        if not msg.strip():
            return "empty message"
        if tname in ODD_TYPES:
            return f"unexpected exception type {tname}"
        return None

    def record_error(target, code, e):
        tname = type(e).__name__
        exc_types[tname] = exc_types.get(tname, 0) + 1
        msg = str(e)
        if tname == "AttributeError" and ("\nR = None" in code):  # setting or deleting a property
            return
        kind = error_kind(tname, msg)
        if kind:
            key = (target, kind, tname)
            if key not in unclear:
                unclear[key] = dict(target=target, kind=kind, type=tname, message=msg[:600], code=code, count=0)
            unclear[key]["count"] += 1

    def call_code(target, rng):
        """The code of one call of the target, and the names it uses."""
        # hostile: every argument from the whole pool; sane: plausible ones; mixed: plausible but one
        mode = ("hostile", "sane", "mixed")[int(rng.choice(3, p=[0.4, 0.35, 0.25]))]
        params = target["params"]
        if mode != "hostile" and rng.uniform() < 0.7:  # as many as the target takes, when known
            lo, hi = target["arity"] or (0, 2)
            nargs = int(rng.integers(min(lo, 4), min(hi, 4) + 1))
        else:
            nargs = int(rng.integers(0, 5))
        args = [pick_arg(rng, "hostile" if mode == "hostile" else "sane") for _ in range(nargs)]
        if mode == "mixed" and args:
            args[int(rng.integers(len(args)))] = pick_arg(rng, cat="hostile" if rng.uniform() < 0.6 else None)
        if args and params and params[0] in ("fun", "func", "fn", "f") and rng.uniform() < 0.7:
            args[0] = pick_arg(rng, cat="function")
        kwargs = {}
        if rng.uniform() < 0.3:
            names = params if params and rng.uniform() < 0.7 else COMMON_KWARGS
            for _ in range(int(rng.integers(1, 3))):
                kwargs[names[int(rng.integers(len(names)))]] = pick_arg(rng, "hostile" if mode == "hostile"
                                                                         or rng.uniform() < 0.3 else "sane")
        uses = list(args) + list(kwargs.values())
        argstr = ", ".join(args + [f"{k}={v}" for k, v in kwargs.items()])
        if target["kind"] == "call":
            return f"R = {target['expr']}({argstr})", uses, args, kwargs
        recv = target["receivers"][int(rng.integers(len(target["receivers"])))]
        uses.append(recv)
        if target["kind"] == "method":
            return f"R = {recv}.{target['attr']}({argstr})", uses, args, kwargs
        action = rng.uniform()
        if action < 0.5:
            return f"R = {recv}.{target['attr']}", uses, [], {}
        if action < 0.9:
            value = args[0] if args else pick_arg(rng)
            if value not in uses:
                uses.append(value)
            return f"{recv}.{target['attr']} = {value}\nR = None", uses, [value], {}
        return f"del {recv}.{target['attr']}\nR = None", uses, [], {}

    def one_call(i):
        rng = np.random.default_rng([seed, i])
        target = TARGETS[ORDER[i % len(TARGETS)]]
        hit.add(target["name"])
        code, uses, args, kwargs = call_code(target, rng)
        ns = {"np": np, "tg": tg, "math": math, "__name__": "__fuzz__"}
        out.write(f"@@ {i} {target['name']} :: (setup)\n")
        out.flush()
        # printed (verbose) as a function, so that what the call made dies when it returns, as here
        emit(f"# call {i}: {target['name']}\ndef call_{i}():\n    pass")
        INDENT[0] = "    "
        try:
            one_call_body(i, target, code, uses, args, kwargs, ns, rng)
        finally:
            INDENT[0] = ""
            emit(f"call_{i}()")

    def one_call_body(i, target, code, uses, args, kwargs, ns, rng):
        global results, errors, guards, followups, touch_errors, setup_errors
        try:
            for u in ["_touch", "_reset"] + uses:
                ensure(u, ns)
        except Exception as e:  # a thread of a call before used the tape meanwhile, ...
            setup_errors += 1
            record_error(target["name"] + " (setup)", "", e)
            return
        if guarded(target, [ns[a] for a in args], {k: ns[v] for k, v in kwargs.items()}):
            guards += 1
            return
        e = run_step(i, target["name"], code, ns, [])
        if e is not None:
            errors += 1
            record_error(target["name"], code, e)
            return
        results += 1
        if run_step(i, target["name"], "_touch(R)", ns, []) is not None:
            touch_errors += 1
        r = ns.get("R")
        if callable(r) and not isinstance(r, type) and rng.uniform() < 0.9:
            fargs = [pick_arg(rng, "sane" if rng.uniform() < 0.6 else "hostile")
                     for _ in range(int(rng.integers(0, 4)))]
            fcode = f"R2 = R({', '.join(fargs)})"
            followups += 1
            e = run_step(i, target["name"] + "(...)", fcode, ns, fargs)
            if e is None:
                if run_step(i, target["name"] + "(...)", "_touch(R2)", ns, []) is not None:
                    touch_errors += 1
            else:
                record_error(target["name"] + "(...)", fcode, e)
        if ns.get("leaked"):
            run_step(i, "leaked", "_touch(leaked[0] * 2.0)", ns, [])
            run_step(i, "leaked", "leaked[0].sum().backward()", ns, [])

    BASE_TAPE = tg.active_tape()
    for h in HELPERS:
        emit(RECIPES[h])
    INDICES = os.environ.get("TG_FUZZ_INDICES")  # these calls only (bisection)
    for i in ([int(k) for k in INDICES.split(",")] if INDICES else range(FIRST, FIRST + n)):
        faulthandler.dump_traceback_later(WATCHDOG, exit=True)
        one_call(i)
        # what a call leaves behind: tapes entered, grad mode off (the next call starts clean),
        # garbage (collected now, so that a crash in the collector is the call's)
        out.write(f"@@ {i} (collect) :: gc.collect(1)\n")
        out.flush()
        emit("gc.collect(1)\n_reset()")
        gc.collect(1)
        for _ in range(64):
            if tg.active_tape() is BASE_TAPE:
                break
            try:
                tg.active_tape().__exit__(None, None, None)
            except Exception:
                break
        tg._core._set_grad_enabled(True)
    faulthandler.cancel_dump_traceback_later()

    import json
    with open(STATS, "w") as f:
        json.dump(dict(results=results, errors=errors, guarded=guards, followups=followups, setup_errors=setup_errors,
                       touch_errors=touch_errors, exc_types=exc_types, targets=len(TARGETS), hit=sorted(hit),
                       no_live=NO_LIVE, unclear=list(unclear.values())), f)
    print("done", results, errors, flush=True)
''')


# Crashes (and a hang) this fuzzer found, fixed: their minimal reproducers run every time
# (test_found_crash_is_fixed). A crash found and not yet fixed goes into KNOWN_CRASHES, its
# reproducer skipped until it is fixed; it is not avoided: the fuzz tests keep calling what
# crashes and fail when they hit it. With TAPEGRAD_FUZZ_AVOID_KNOWN=1 the hostile arguments
# named in its `avoid` are left out of the pool (the functions all stay), to look for other
# crashes while it is open.
FIXED_CRASHES = [
    dict(
        name="leaf-grad-outlives-tape",
        signal="SIGSEGV",
        what="Tensor.backward(create_graph=True) in a `with Tape()` block: the leaf's recorded .grad does not "
             "keep the block's tape alive; the tape is freed when the block ends and the .grad handle reads it "
             "(a new Tape reuses the memory: SIGSEGV; valgrind: invalid reads in TensorImpl::~TensorImpl)",
        avoid=[],
        code="""
            import tapegrad as tg

            with tg.Tape():
                x = tg.tensor([1.0, 2.0], requires_grad=True)
                (x ** 3).sum().backward(create_graph=True)  # x.grad: recorded on the block's tape
            t = tg.Tape()                                    # takes the freed tape's memory
            print(x.grad)
        """,
    ),
    dict(
        name="tape-exited-during-conversion",
        signal="SIGSEGV",
        what="an operand's conversion (__array__, __float__) closes the active `with Tape()` block; the op "
             "goes on recording on the freed tape (tensor_type.cpp Call: the active tape is borrowed, not held)",
        avoid=["exit_active", "exit_real"],
        code="""
            import numpy as np
            import tapegrad as tg

            class ExitArray:
                def __array__(self, dtype=None, copy=None):
                    tg.active_tape().__exit__(None, None, None)  # frees it: no name refers to it
                    return np.array(1.5)

            v = tg.Var(1.5)
            tg.Tape().__enter__()
            tg.stack([ExitArray(), v])
            tg.Tape().__enter__()
            tg.where(True, ExitArray(), v)
            x = tg.tensor([1.0], requires_grad=True)
            tg.Tape().__enter__()
            x * ExitArray()
        """,
    ),
    dict(
        name="conversion-waits-on-a-thread-using-the-tape",
        signal="hang",
        what="an operand's conversion starts a thread that uses the same tape and joins it: the op held the tape "
             "while converting, so the thread waited for it forever",
        avoid=[],
        code="""
            import threading
            import numpy as np
            import tapegrad as tg

            r = tg.tensor([1.0, 2.0], requires_grad=True) ** 2

            class T:
                def __array__(self, dtype=None, copy=None):
                    th = threading.Thread(target=lambda: (r * 2.0).sum())
                    th.start()
                    th.join()
                    return np.ones(2)

            r + T(), r * T(), tg.stack([r, T()])
            r.sum().backward(T() if False else None)
        """,
    ),
]
KNOWN_CRASHES: list = []
AVOID_KNOWN = os.environ.get("TAPEGRAD_FUZZ_AVOID_KNOWN") == "1"

LONG = os.environ.get("TAPEGRAD_FUZZ_PROFILE") == "long"
FAST_SEEDS = range(4)
FAST_CALLS = 1500  # per seed; at least the number of targets, so that each seed calls every one


def _run_worker(seed: int, first: int, n: int, tmp_path: pathlib.Path, **env: str) -> subprocess.CompletedProcess:
    """Runs calls first .. first+n-1 of the worker (verbose: printing the code it runs)."""
    path = tmp_path / "fuzz_rerun.py"
    path.write_text(WORKER)
    full_env = dict(os.environ, PYTHONWARNINGS="ignore", TG_FUZZ_FIRST=str(first), **env)
    try:
        return subprocess.run([sys.executable, str(path), str(seed), str(n)], capture_output=True, text=True,
                              env=full_env, timeout=300)
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        return subprocess.CompletedProcess(e.cmd, -9999, out, "timed out")


def _died(proc: subprocess.CompletedProcess) -> bool:
    lines = proc.stdout.strip().splitlines()
    return proc.returncode != 0 or not lines or not lines[-1].startswith("done")


def _how(proc: subprocess.CompletedProcess) -> str:
    if proc.returncode == -9999:
        return "hang (no result in 300 s)"
    if proc.returncode < 0:
        try:
            return f"signal {signal.Signals(-proc.returncode).name}"
        except ValueError:
            return f"signal {-proc.returncode}"
    if "Timeout" in proc.stderr and "faulthandler" not in proc.stderr:
        return "hang (watchdog)"
    return f"exit code {proc.returncode}"


def _bisect(seed: int, first: int, last: int, tmp_path: pathlib.Path) -> str:
    """The calls first..last of seed end in a death at call `last`: the shortest run lo..last
    that still dies, then the fewest of its calls that do (each dropped in turn), as a script
    that is run once more on its own."""
    def dies(calls: list[int]) -> subprocess.CompletedProcess | None:
        proc = _run_worker(seed, 0, 0, tmp_path, TG_FUZZ_VERBOSE="1", TG_FUZZ_INDICES=",".join(map(str, calls)))
        return proc if _died(proc) else None

    proc = dies([last])
    calls = [last]
    if proc is None:
        proc = dies(list(range(first, last + 1)))
        if proc is None:
            return f"calls {first}..{last} of seed {seed} do not die when rerun (not reproducible)"
        good, bad = first, last  # calls good..last die, bad..last do not
        while bad - good > 1:
            mid = (good + bad) // 2
            p = dies(list(range(mid, last + 1)))
            if p is not None:
                good, proc = mid, p
            else:
                bad = mid
        calls = list(range(good, last + 1))
        # then drop the calls it does not need: halves, quarters, ... single calls (the last one stays)
        size, budget = max(1, (len(calls) - 1) // 2), 80
        while size >= 1 and budget > 0:
            i = 0
            while i < len(calls) - 1 and budget > 0:
                trial = calls[:i] + calls[min(i + size, len(calls) - 1):]
                budget -= 1
                p = dies(trial)
                if p is not None:
                    calls, proc = trial, p
                else:
                    i += size
            size //= 2
    code = "\n".join(line[2:] for line in proc.stdout.splitlines() if line.startswith("| "))
    opened = re.findall(r"^def (call_\d+)\(\):", code, re.M)
    if opened and not re.search(rf"^{opened[-1]}\(\)", code, re.M):  # it died inside that call
        code += f"\n{opened[-1]}()"
    script = ("import gc\nimport math\nimport numpy as np\nimport tapegrad as tg\n"
              "import tapegrad.autograd, tapegrad.functional, tapegrad.nn\n\n" + code + "\n")
    repro = tmp_path / f"reproducer_{seed}_{last}.py"
    repro.write_text(script)
    check = subprocess.run([sys.executable, str(repro)], capture_output=True, text=True, timeout=300,
                           env=dict(os.environ, PYTHONWARNINGS="ignore"))
    verdict = f"the script alone: {_how(check)}" if check.returncode != 0 else "the script alone does not die"
    lines = script.splitlines()
    shown = "\n".join(lines if len(lines) <= 200 else lines[:40] + ["..."] + lines[-150:])
    return (f"seed {seed}, calls {calls}: {_how(proc)} ({verdict}); reproducer ({repro}):\n{shown}\n"
            f"stderr:\n{proc.stderr[-2000:]}")


def _fuzz(seed: int, n: int, tmp_path: pathlib.Path) -> dict:
    """Runs n calls of seed in a child process; on a death, fails with the bisected reproducer."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    try:
        run_fuzz_worker(WORKER, seed, n, tmp_path)
    except (AssertionError, subprocess.TimeoutExpired) as failure:
        text = str(failure)
        if isinstance(failure, subprocess.TimeoutExpired):
            out = failure.stdout.decode(errors="replace") if isinstance(failure.stdout, bytes) else failure.stdout
            lines = (out or "").strip().splitlines()
            text = f"timed out at: {lines[-1] if lines else '(nothing)'}"
        m = re.search(r"at: @@ (\d+) ", text)
        detail = _bisect(seed, 0, int(m.group(1)), tmp_path) if m else "(no call was started)"
        raise AssertionError(f"{text}\n\nbisected: {detail}") from None
    return json.loads((tmp_path / "fuzz.json").read_text())


@pytest.fixture(autouse=True)
def _avoid_known(monkeypatch: pytest.MonkeyPatch) -> None:
    """TAPEGRAD_FUZZ_AVOID_KNOWN=1: the workers leave out the hostile arguments of KNOWN_CRASHES."""
    if AVOID_KNOWN:
        monkeypatch.setenv("TG_FUZZ_AVOID", ",".join(a for c in KNOWN_CRASHES for a in c["avoid"]))


@pytest.mark.parametrize("seed", FAST_SEEDS)
def test_fuzz_api_never_crashes(seed: int, tmp_path: pathlib.Path) -> None:
    """FAST_CALLS calls of every public function, constructor, method and property with hostile
    arguments: each returns or raises a Python exception; none kills the process."""
    if LONG:
        pytest.skip("TAPEGRAD_FUZZ_PROFILE=long runs test_fuzz_api_long instead")
    stats = _fuzz(seed, FAST_CALLS, tmp_path)
    print(f"seed {seed}: {FAST_CALLS} calls, {stats['results']} returned, {stats['errors']} raised, "
          f"{stats['guarded']} guarded, {stats['followups']} calls of callable results, {stats['targets']} targets")
    # both outcomes happen, so the test cannot pass vacuously
    assert stats["results"] > FAST_CALLS // 20 and stats["errors"] > FAST_CALLS // 4, stats
    assert len(stats["hit"]) == stats["targets"], "every target is called"


def test_fuzz_targets_are_the_whole_api(tmp_path: pathlib.Path) -> None:
    """The worker finds its targets by introspection: every public callable of tapegrad and its
    submodules, and the methods and properties of the classes on live instances."""
    proc = _run_worker(0, 0, 0, tmp_path, TG_FUZZ_LIST="1")
    assert not _died(proc), proc.stderr[-3000:]
    names = {line.split()[1] for line in proc.stdout.splitlines() if line.startswith("target ")}
    import tapegrad as tg

    for mname, mod in [("tg", tg), ("tg.autograd", tg.autograd), ("tg.functional", tg.functional)]:
        for attr in dir(mod):
            obj = getattr(mod, attr)
            if attr.startswith("_") or not callable(obj) or not getattr(obj, "__module__", "").startswith("tapegrad"):
                continue
            aliases = {f"{m}.{a}" for m, md in [("tg", tg), ("tg.autograd", tg.autograd),
                                                ("tg.functional", tg.functional), ("tg.nn", tg.nn)]
                       for a in dir(md) if getattr(md, a) is obj}
            assert names & aliases, f"{mname}.{attr} is not fuzzed"
    for cls, attrs in [("Tensor", ["reshape", "backward", "T", "grad", "data", "__getitem__", "__init__",
                                   "__iadd__", "numpy", "item"]),
                       ("Var", ["backward", "data", "grad", "tape", "__add__", "__round__"]),
                       ("Tape", ["clear", "collect", "stats", "__enter__", "__exit__", "__len__"])]:
        for attr in attrs:
            assert f"tg.{cls}.{attr}" in names, f"tg.{cls}.{attr} is not fuzzed"
    assert {"tg.nn.MLP", "tg.nn.MLP.parameters", "tg.no_grad", "tg.autograd.grad", "tg.sin"} <= names
    assert len(names) <= FAST_CALLS, "FAST_CALLS must reach every target in each seed"


def test_fuzz_api_long(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    """TAPEGRAD_FUZZ_PROFILE=long: TAPEGRAD_FUZZ_CALLS calls from TAPEGRAD_FUZZ_SEED, split into child
    processes of TAPEGRAD_FUZZ_CHUNK calls, TAPEGRAD_FUZZ_JOBS at a time; every death is bisected."""
    if not LONG:
        pytest.skip("the long profile: TAPEGRAD_FUZZ_PROFILE=long [TAPEGRAD_FUZZ_SEED=s] [TAPEGRAD_FUZZ_CALLS=n]")
    seed = int(os.environ.get("TAPEGRAD_FUZZ_SEED", "0"))
    calls = int(os.environ.get("TAPEGRAD_FUZZ_CALLS", "200000"))
    chunk = int(os.environ.get("TAPEGRAD_FUZZ_CHUNK", "4000"))
    jobs = int(os.environ.get("TAPEGRAD_FUZZ_JOBS", str(max(1, (os.cpu_count() or 2) // 2))))
    # the child seeds: seed s, chunk k -> 10**6 * (s + 1) + k (none is one of the fast run's)
    parts = [(10**6 * (seed + 1) + k, min(chunk, calls - k * chunk)) for k in range((calls + chunk - 1) // chunk)]
    start = time.monotonic()

    def run(part: tuple[int, int]) -> dict | str:
        child_seed, count = part
        try:
            return _fuzz(child_seed, count, tmp_path / f"seed{child_seed}")
        except AssertionError as failure:
            return str(failure)

    with ThreadPoolExecutor(jobs) as pool:
        outcomes = list(pool.map(run, parts))
    stats = [o for o in outcomes if isinstance(o, dict)]
    failures = [o for o in outcomes if isinstance(o, str)]

    def calls_tried(count: int, outcome: dict | str) -> int:
        if isinstance(outcome, dict):
            return count
        m = re.search(r"at: @@ (\d+)", outcome)  # a process that died: the calls up to the last one started
        return int(m.group(1)) + 1 if m else 0

    tried = sum(calls_tried(count, o) for (_, count), o in zip(parts, outcomes))
    with capsys.disabled():
        print(f"\ntapegrad API fuzz, long profile: seed {seed}: {tried} calls tried in {len(stats)} processes "
              f"({sum(s['results'] for s in stats)} returned, {sum(s['errors'] for s in stats)} raised, "
              f"{sum(s['guarded'] for s in stats)} guarded), {stats[0]['targets'] if stats else '?'} targets, "
              f"{len(failures)} processes died, {time.monotonic() - start:.0f} s")
    assert not failures, "\n\n".join(failures)
    assert sum(s["results"] for s in stats) > tried // 20 and sum(s["errors"] for s in stats) > tried // 4


@pytest.mark.parametrize("crash", [pytest.param(c, id=c["name"]) for c in FIXED_CRASHES] + [
    pytest.param(c, id=c["name"], marks=pytest.mark.skip(reason=f"known crash {c['name']}: {c['what']}"))
    for c in KNOWN_CRASHES])
def test_found_crash_is_fixed(crash: dict, tmp_path: pathlib.Path) -> None:
    """A crash the fuzzer found, as its minimal reproducer: it must end without a signal (a Python
    exception is fine) and in time."""
    path = tmp_path / "reproducer.py"
    path.write_text(textwrap.dedent(crash["code"]))
    proc = subprocess.run([sys.executable, str(path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode >= 0, f"{crash['name']}: {_how(proc)}\n{proc.stderr[-3000:]}"
