"""An API fuzzer: every public function, class, method and property of tapegrad (found by
introspection, so a new one is fuzzed without editing this file) called with hostile
arguments, in child processes. A Python exception is a pass; a death by a signal (segfault,
abort, SIGFPE), a hang or a worker that does not finish is a failure, reported with the exact
call that did it and a minimal reproducer found by bisection.

Targets: the public callables of ``tapegrad``, ``tapegrad.autograd``,
``tapegrad.functional``, ``tapegrad.nn``, ``tapegrad.nn.functional``, ``tapegrad.utils.checkpoint``,
``tapegrad.utils.hooks``, ``tapegrad.viz``, ``tapegrad.amp`` and the device modules (``tapegrad.cuda``,
``tapegrad.cuda.amp``, ``tapegrad.accelerator``, ``tapegrad.backends.*``); every public method and property, and the
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

The stateful mode (``STATEFUL_WORKER``, test_stateful_fuzz_*) runs SEQUENCES of 10-30 steps that
share state instead of single calls: tapes made, entered and exited (``with``, and
``__enter__``/``__exit__`` by hand, out of order, twice), cleared and collected; tensor, Var and
post-accumulate hooks that compute, run backward, touch other tapes, enter or exit tapes, raise,
start threads, return other dtypes, shapes and types; ``checkpoint`` of functions that misbehave
when they are recomputed (exit or clear the active tape, raise, enter tapes, change shape or dtype,
start a thread); custom ``autograd.Function``s whose forward or backward misbehaves;
``astype``/``.to`` to the same dtype; ``backward(create_graph=True)`` then ``del`` and
``gc.collect()``; threads running backward on their own tapes with hooks that use other threads'
tensors (joined with a timeout: a deadlock is reported, not waited for). A sequence ends by dropping
every name it made, collecting garbage and running a fresh backward (where a use-after-free
shows). A Python exception is a pass; a signal, a deadlocked thread (exit code ``HANG_EXIT``) or a
sequence past its watchdog is a failure, shrunk to the fewest steps that still fail and written out
as a standalone script. Sequence i of seed s is drawn from ``default_rng([s, i])`` as code, from
names only (nothing is run to draw it), so any steps of it can be rerun alone
(``TG_SF_INDICES=i``, ``TG_SF_KEEP=ids``; ``TG_SF_VERBOSE=1`` prints the script). Each step has
ingredients (its kind and ``kind:variant``); the ``steps`` of a crash in KNOWN_CRASHES name the
ingredients that reach it, left out of the draws (``TG_SF_AVOID``) while it is known: always in
the fast profile (STATEFUL_FAST_SEEDS x STATEFUL_FAST_SEQUENCES, about 10 s), and in the long one
(``TAPEGRAD_FUZZ_PROFILE=long``: ``TAPEGRAD_FUZZ_SECONDS`` seconds, else
``TAPEGRAD_FUZZ_SEQUENCES``, from ``TAPEGRAD_FUZZ_SEED``) unless ``TAPEGRAD_FUZZ_AVOID_KNOWN=0``.
"""

from __future__ import annotations

import itertools
import json
import os
import pathlib
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import List, Tuple

import pytest

from conftest import run_fuzz_worker

# What both workers (the single-call one and the stateful one) start with, in their child process.
WORKER_PREAMBLE = textwrap.dedent(r'''
    import faulthandler
    import gc
    import os
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
''')

WORKER = WORKER_PREAMBLE + textwrap.dedent(r'''
    import inspect
    import math
    import re

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
        import tapegrad.nn.functional
        MODULES += [("tg.nn", tg.nn), ("tg.nn.functional", tg.nn.functional)]
    import tapegrad.utils.checkpoint
    import tapegrad.utils.hooks
    MODULES += [("tg.utils.checkpoint", tg.utils.checkpoint), ("tg.utils.hooks", tg.utils.hooks)]
    if hasattr(tg, "viz"):
        MODULES.append(("tg.viz", tg.viz))
    MODULES.append(("tg.amp", tg.amp))
    if hasattr(tg, "cuda"):  # the device boilerplate (tapegrad/_device.py and its modules)
        import tapegrad.backends.cuda
        import tapegrad.backends.cudnn
        import tapegrad.backends.mps
        import tapegrad.cuda.amp
        MODULES += [("tg.cuda", tg.cuda), ("tg.cuda.amp", tg.cuda.amp), ("tg.accelerator", tg.accelerator),
                    ("tg.backends.mps", tg.backends.mps), ("tg.backends.cudnn", tg.backends.cudnn),
                    ("tg.backends.cuda", tg.backends.cuda)]
    NOT_FUZZED_DUNDERS = {"__new__", "__class__", "__getattribute__", "__setattr__", "__delattr__", "__dir__",
                          "__init_subclass__", "__subclasshook__", "__sizeof__", "__reduce_ex__", "__getstate__",
                          "__doc__", "__module__", "__dict__", "__weakref__", "__slots__", "__annotations__",
                          "__array_priority__", "__array_ufunc__", "__firstlineno__", "__static_attributes__",
                          "__match_args__", "__orig_bases__", "__parameters__", "__qualname__", "__field_defaults__",
                          "__fields__", "_fields", "__getnewargs__", "__class_getitem__"}
    COMMON_KWARGS = ["axis", "keepdims", "dtype", "requires_grad", "create_graph", "allow_unused", "batched",
                     "argnums", "has_aux", "device"]

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


# Crashes (and hangs) the fuzzers found, fixed: their minimal reproducers run every time
# (test_found_crash_is_fixed). A crash found and not yet fixed goes into KNOWN_CRASHES, its
# reproducer expected to fail (xfail, strict: once it runs clean, that test fails until the entry
# moves here). The single-call fuzzer does not avoid it: its fuzz tests keep calling what crashes
# and fail when they hit it; with TAPEGRAD_FUZZ_AVOID_KNOWN=1 the hostile arguments named in its
# `avoid` are left out of the pool (the functions all stay), to look for other crashes while it is
# open. The stateful mode leaves out the steps named in its `steps` (see the module docstring).
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
    # Issue 21 (2026-12-07): found by the adversarial pass and the stateful mode, fixed the same day.
    dict(
        name="checkpoint-recompute-exits-the-tape",
        signal="SIGABRT",
        what="a checkpointed function closes the active `with Tape()` block when it is recomputed by "
             "backward(create_graph=True); the tape is freed while the recorded gradients still use it "
             "(use-after-free: 'double free or corruption' at the next backward)",
        avoid=[],
        steps=["checkpoint:exit"],
        code="""
            import gc
            import tapegrad as tg
            from tapegrad.utils.checkpoint import checkpoint

            A = tg.Tape()
            A.__enter__()
            x = tg.tensor([1.0, 2.0], requires_grad=True)
            state = {"recompute": False}

            def f(a):
                if state["recompute"]:
                    tg.active_tape().__exit__(None, None, None)
                return a.sin()

            y = checkpoint(f, x * 1.0)
            state["recompute"] = True
            y.sum().backward(create_graph=True)
            del y, A
            gc.collect()
            (tg.tensor([1.0, 2.0], requires_grad=True) * 2).sum().backward()
        """,
    ),
    dict(
        name="collect-after-astype-to-the-same-dtype",
        signal="SIGSEGV",
        what="Tape.collect() (inside the block or after it) on a tape where astype(its own dtype) copied a "
             "tensor whose graph a backward() has freed: an out-of-bounds write in Tape.collect()",
        avoid=[],
        steps=["astype_same", "hook:astype_same", "checkpoint:astype_same", "function_forward:astype_same"],
        code="""
            import tapegrad as tg

            x = tg.tensor([1.0, 2.0], requires_grad=True)
            y = (x * 2).sum()
            y.backward()
            T = tg.Tape()
            with T:
                z = y * 3
            del z
            with T:
                w = y.astype(y.dtype)
                T.collect()
        """,
    ),
    dict(
        name="hooks-on-two-threads-use-each-others-tapes",
        signal="hang",
        what="two threads each run backward() on a graph of their own tape, each with a tensor hook that "
             "computes with a result recorded on the other thread's tape: each sweep holds its own tape and "
             "waits for the other's (a deadlock; the reproducer exits with HANG_EXIT after 5 s)",
        avoid=[],
        steps=["thread_cross"],
        code="""
            import faulthandler
            import os
            import threading
            import tapegrad as tg

            bar = threading.Barrier(2, timeout=3)
            mine = {}

            def run(me):
                x = tg.tensor([1.0, 2.0], requires_grad=True)
                mine[me] = x * 3.0            # recorded on this thread's tape
                bar.wait()
                y = x * 2.0

                def hook(g):
                    bar.wait()                # both threads are inside backward() now
                    return g * mine[1 - me]   # a result recorded on the other thread's tape

                y.register_hook(hook)
                (y * y).sum().backward()

            threads = [threading.Thread(target=run, args=(k,), daemon=True) for k in range(2)]
            for th in threads:
                th.start()
            for th in threads:
                th.join(5)
            if any(th.is_alive() for th in threads):
                print("HANG: the threads did not finish in 5 s")
                faulthandler.dump_traceback(all_threads=True)
                os._exit(86)  # HANG_EXIT
        """,
    ),
    # Found by the stateful mode (test_stateful_fuzz_*) on the build of 2026-12-07 02:14.
    dict(
        name="grad-set-to-another-dtype-that-requires-grad",
        signal="hang",
        what="`leaf.grad = t` with t of another floating dtype (float32 or float16 into a float64 leaf) that "
             "requires grad: the converted gradient stored in .grad deadlocks its own thread the first time it "
             "is read (repr, grad_fn, backward; and at interpreter exit). No other thread: a self-deadlock "
             "(PyTorch raises 'assigned grad has data of a different type')",
        avoid=[],
        steps=["grad_reset:tensor"],
        code="""
            import signal
            import tapegrad as tg

            signal.alarm(5)  # a hang: killed by SIGALRM
            x = tg.tensor([1.0, 2.0], requires_grad=True)
            x.grad = tg.tensor([0.25, -0.5], dtype="float32", requires_grad=True)
            print(x.grad)  # hangs here: x.grad.grad_fn waits for a lock its own thread holds
        """,
    ),
    dict(
        name="checkpoint-recompute-under-create-graph-waits-on-a-thread",
        signal="hang",
        what="a checkpointed function, recomputed by backward(create_graph=True), starts a thread that computes "
             "with its input and joins it: the recomputation holds the graph's tape, the thread waits for it "
             "forever (without create_graph, and in a tensor hook, the same thread runs)",
        avoid=[],
        steps=["checkpoint:thread"],
        code="""
            import os
            import threading
            import tapegrad as tg
            from tapegrad.utils.checkpoint import checkpoint

            calls = []

            def f(a):
                calls.append(1)
                if len(calls) > 1:  # the recomputation, in the backward pass
                    th = threading.Thread(target=lambda: (a * 2.0).sum(), daemon=True)
                    th.start()
                    th.join(5)
                    if th.is_alive():
                        print("HANG: the thread did not finish in 5 s")
                        os._exit(86)  # HANG_EXIT
                return a.sin() * 2.0

            x = tg.tensor([1.0, 2.0], requires_grad=True)
            y = checkpoint(f, x * 1.0)
            y.sum().backward(create_graph=True)
        """,
    ),
    dict(
        name="leaf-gradient-is-the-leaf-itself",
        signal="hang",
        what="a leaf whose accumulated gradient is the leaf itself (`x.grad = x`, which PyTorch refuses: "
             "\"can't assign Variable as its own grad\"; a tensor hook returning the leaf; a custom Function's "
             "backward returning its leaf input): the next backward(create_graph=True) never returns (a futex "
             "wait with the GIL held: no other thread runs either). PyTorch gives x.grad = 3.0 for the hook and "
             "the Function",
        avoid=[],
        steps=["function:other", "hook:other", "grad_reset:tensor"],
        code="""
            import signal
            import tapegrad as tg

            signal.alarm(5)  # a hang: killed by SIGALRM (the GIL is held: no Python watchdog runs)

            def grad_set_to_the_leaf():
                x = tg.tensor(1.5, requires_grad=True)
                x.grad = x
                (x * 2.0).backward(create_graph=True)  # never returns

            def hook_returns_the_leaf():
                x = tg.tensor(1.5, requires_grad=True)
                x.register_hook(lambda g: x)
                y = x + x
                y.backward(retain_graph=True)
                y.backward(create_graph=True)  # never returns

            def function_backward_returns_its_leaf_input():
                x = tg.tensor(1.5, requires_grad=True)

                class F(tg.autograd.Function):
                    @staticmethod
                    def forward(ctx, a):
                        return a * 2.0

                    @staticmethod
                    def backward(ctx, g):
                        return x

                y = F.apply(x)
                y.backward(create_graph=True)
                y.backward(create_graph=True)  # never returns

            for case in (grad_set_to_the_leaf, hook_returns_the_leaf, function_backward_returns_its_leaf_input):
                try:
                    case()
                except Exception as e:  # (a fix may refuse x.grad = x, as PyTorch: the next case runs)
                    print(case.__name__, type(e).__name__, e)
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
                              env=full_env, timeout=300, cwd=tmp_path)  # (tg.save may write files named by a string)
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
                           env=dict(os.environ, PYTHONWARNINGS="ignore"), cwd=tmp_path)
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
    pytest.param(c, id=c["name"], marks=pytest.mark.xfail(strict=True, reason=f"known crash {c['name']}: {c['what']}"))
    for c in KNOWN_CRASHES])
def test_found_crash_is_fixed(crash: dict, tmp_path: pathlib.Path) -> None:
    """A crash the fuzzers found, as its minimal reproducer: it must end without a signal (a Python
    exception is fine), without a deadlocked thread (exit code HANG_EXIT) and in time. A known
    crash is expected to fail (strict: once it passes, move it to FIXED_CRASHES)."""
    path = tmp_path / "reproducer.py"
    path.write_text(textwrap.dedent(crash["code"]))
    try:
        proc = subprocess.run([sys.executable, str(path)], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"{crash['name']}: hang (no end in 60 s)") from None
    assert proc.returncode >= 0 and proc.returncode != HANG_EXIT, (
        f"{crash['name']}: {_sf_how(proc)}\n{proc.stdout[-1000:]}\n{proc.stderr[-3000:]}")


# --- the stateful mode: sequences of calls that share state -------------------------------------
#
# The worker above fuzzes one call at a time. This one runs SEQUENCES of steps over shared state
# (see the module docstring): tapes entered and exited (with, and __enter__/__exit__ by hand, out of
# order, twice), cleared and collected; tensor, Var and post-accumulate hooks that compute, run
# backward, touch other tapes, change dtypes and shapes, raise; checkpointed functions and custom
# autograd.Functions that misbehave when they run again; astype/.to to the same dtype;
# backward(create_graph=True) then del + gc.collect(); threads running backward on their own tapes
# with hooks that use other threads' tensors. Every name a step makes is dropped at the end of its
# sequence, garbage is collected, and a fresh backward runs (a use-after-free shows there).

STATEFUL_WORKER = WORKER_PREAMBLE + textwrap.dedent(r'''
    import json

    import tapegrad.utils.checkpoint

    seed, n = int(sys.argv[1]), int(sys.argv[2])
    FIRST = int(os.environ.get("TG_SF_FIRST", "0"))
    INDICES = os.environ.get("TG_SF_INDICES")       # these sequences only
    KEEP = os.environ.get("TG_SF_KEEP")             # these steps only (of the last sequence run)
    VERBOSE = os.environ.get("TG_SF_VERBOSE") == "1"
    AVOID = set(filter(None, os.environ.get("TG_SF_AVOID", "").split(",")))
    WATCHDOG = float(os.environ.get("TG_SF_WATCHDOG", "30"))  # seconds a sequence may take
    JOIN_S = float(os.environ.get("TG_SF_JOIN", "10"))        # seconds a thread may take
    STATE_EXIT = 87  # the exit code when a fresh backward fails after a sequence
    STATS = os.path.splitext(os.path.abspath(__file__))[0] + ".json"
    out = sys.stdout

    # --- what every sequence starts from (a reproducer's first lines) ------------------------------

    PREAMBLE = textwrap.dedent("""
        import faulthandler
        import gc
        import os
        import re
        import threading
        import numpy as np
        import tapegrad as tg
        from tapegrad.utils.checkpoint import checkpoint

        JOIN_S = @JOIN_S@   # a thread that takes longer is deadlocked
        HANG_EXIT = 86
        _BASE = tg.active_tape()
        _keep = []    # what hooks and threads computed, and their exceptions
        _calls = {}  # how many times each checkpointed function ran
        _errors = []  # the exceptions the steps raised (their types)
        _spawned = []  # the threads _spawn started

        def _join(*threads):
            # Waits for the threads; one still running after JOIN_S seconds is a deadlock: the
            # stacks of every thread, then exit code HANG_EXIT.
            for th in threads:
                th.join(JOIN_S)
            if any(th.is_alive() for th in threads):
                print("HANG: a thread did not finish in", JOIN_S, "s", flush=True)
                faulthandler.dump_traceback(all_threads=True)
                os._exit(HANG_EXIT)

        def _spawn(fn, *args):
            # fn(*args) on a new thread; its exception is kept in _keep. At most 32 threads a
            # sequence: a hook that starts a thread whose backward calls the hook again would
            # start threads without end (each joining the next), a hang that is not tapegrad's.
            if len(_spawned) >= 32:
                raise RuntimeError("_spawn: 32 threads started in this sequence already")
            def run():
                try:
                    fn(*args)
                except Exception as e:
                    _keep.append(e)
            th = threading.Thread(target=run, daemon=True)
            _spawned.append(th)
            th.start()
            return th

        def _err(e, *names):
            # A step raised e (fine): printed, counted; the names it was to make get stand-ins.
            g = globals()
            missing = [k for k in names if k not in g]
            print(type(e).__name__, e, f"(stand-ins: {', '.join(missing)})" if missing else "")
            _errors.append(type(e).__name__)
            for k in missing:
                g[k] = {"t": lambda: tg.tensor([1.0, 2.0], requires_grad=True), "v": lambda: tg.Var(1.5),
                        "T": tg.Tape}[k[0]]()

        def _touch(x):
            repr(x)
            if isinstance(x, tg.Tensor):
                x.numpy(), x.grad, x.is_leaf, x.requires_grad, x.dtype
            elif isinstance(x, tg.Var):
                float(x.data), x.grad, x.tape
            elif isinstance(x, tg.Tape):
                x.stats(), len(x)

        def _reset():
            # Leaves the tapes entered (back to this thread's own) and turns grad mode back on.
            for _ in range(64):
                if tg.active_tape() is _BASE:
                    break
                try:
                    tg.active_tape().__exit__(None, None, None)
                except Exception:
                    break
            tg._core._set_grad_enabled(True)

        def _end():
            # The end of a sequence: its threads joined (a step that raised before its _join left
            # one running), the tapes left, every name the steps made dropped, garbage collected,
            # then a fresh computation and backward (which reuses what was freed).
            _join(*_spawned)
            _reset()
            g = globals()
            for k in [k for k in g if re.fullmatch(r"[A-Za-z]+[0-9]+(_[a-z]+)?", k)]:
                del g[k]
            _keep.clear()
            _calls.clear()
            _spawned.clear()
            gc.collect()
            (tg.tensor([1.0, 2.0], requires_grad=True) * 2.0).sum().backward()
            gc.collect()
    """).strip("\n").replace("@JOIN_S@", repr(JOIN_S))

    # --- the steps ------------------------------------------------------------------------------------
    #
    # A step is code over the names earlier steps made (t1, v2, T3, ...): it is generated from a
    # symbolic state only (nothing is run), so that sequence i of a seed is the same steps whatever
    # happens when they run; a step whose name is gone raises NameError, which is fine. Each step
    # has ingredients, `kind` and `kind:variant`: TG_SF_AVOID leaves out the steps with one of them.

    # tensor hooks: `hook(g)`, g the gradient (a Tensor; recorded under create_graph=True)
    HOOKS = {
        "none": "return None",
        "scale": "return g * 2.0",
        "compute": "_keep.append(g * {b} + {b}.sin())",
        "compute_return": "return g * 0.5 + ({b} * 0.0).sum()",
        "backward": "({b} * 1.0).sum().backward(retain_graph=True)",
        "backward_g": "(g * g).sum().backward()",
        "grad": "_keep.append(tg.autograd.grad(({b} * {b}).sum(), [{b}], allow_unused=True))",
        "clear": "{T}.clear()",
        "clear_active": "tg.active_tape().clear()",
        "collect": "{T}.collect()",
        "collect_active": "tg.active_tape().collect()",
        "enter": "{T}.__enter__()",
        "enter_new": "tg.Tape().__enter__()",
        "exit": "tg.active_tape().__exit__(None, None, None)",
        "exit_tape": "{T}.__exit__(None, None, None)",
        "raise": "raise ValueError('hook raised')",
        "dtype": "return g.astype('float32')",
        "dtype16": "return g.to('float16')",
        "dtype_int": "return g.astype('int64')",
        "shape": "return tg.ones((3,))",
        "shape_sum": "return g.sum()",
        "shape_grow": "return tg.stack([g, g])",
        "string": "return 'x'",
        "number": "return 1.5",
        "ndarray": "return np.ones(2)",
        "var": "return tg.Var(2.0)",
        "other": "return {b}",
        "gc": "gc.collect()",
        "del": "globals().pop('{b}', None)\ngc.collect()",
        "register": "{b}.register_hook(lambda h: h * 0.5)",
        "register_self": "g.register_hook(lambda h: h * 0.5)",
        "remove_self": "globals()['{h}'].remove()",
        "var_compute": "_keep.append({v} * 2.0 + {v}.sin())",
        "var_backward": "({v} * {v}).backward()",
        "nograd": "tg.no_grad().__enter__()",
        "checkpoint": "return checkpoint(lambda a: a * 2.0, g)",
        "inplace": "g.mul_(2.0)",
        "astype_same": "return g.astype(g.dtype)",
        "to_same": "return g.to(g.dtype)",
        "retain": "g.retain_grad()\n_keep.append(g)",
        "thread": "_keep.append(g)\n_join(_spawn(lambda: _keep.append(({b} * 2.0).sum())))",
        "thread_backward": "_join(_spawn(lambda: ({b} * 2.0).sum().backward()))",
        "thread_g": "_join(_spawn(lambda: _keep.append((g * 2.0).sum())))",
    }
    # Var hooks: g a float (a Var under create_graph=True)
    VAR_HOOKS = {
        "none": "return None",
        "scale": "return g * 2",
        "compute": "_keep.append({v} * g)",
        "backward": "({v} * 2.0).backward()",
        "clear": "{T}.clear()",
        "clear_active": "tg.active_tape().clear()",
        "collect": "{T}.collect()",
        "enter": "{T}.__enter__()",
        "exit": "tg.active_tape().__exit__(None, None, None)",
        "raise": "raise ValueError('hook raised')",
        "string": "return 'x'",
        "tensor": "return tg.ones(2)",
        "other": "return {v}",
        "tensor_compute": "_keep.append({b} * 2.0)",
        "tensor_backward": "({b} * 1.0).sum().backward(retain_graph=True)",
        "gc": "globals().pop('{v}', None)\ngc.collect()",
        "register": "{v}.register_hook(lambda h: h * 0.5)",
        "thread": "_join(_spawn(lambda: _keep.append({v} * 2.0)))",
    }
    # checkpointed functions: they misbehave from their second run (the recomputation) on
    CHECKPOINT_FNS = {
        "plain": None,
        "exit": "tg.active_tape().__exit__(None, None, None)",
        "clear": "tg.active_tape().clear()",
        "clear_tape": "{T}.clear()",
        "collect": "tg.active_tape().collect()",
        "raise": "raise ValueError('recompute raised')",
        "enter": "tg.Tape().__enter__()",
        "nograd": "tg.no_grad().__enter__()",
        "shape": "return a.sum()",
        "dtype": "return a.astype('float32')",
        "outer": "return a * {b}",
        "backward": "({b} * 1.0).sum().backward(retain_graph=True)",
        "nested": "return checkpoint(lambda c: c.exp(), a)",
        "gc": "gc.collect()",
        "astype_same": "a = a.astype(a.dtype)",
        "thread": "_join(_spawn(lambda: _keep.append((a * 2.0).sum())))",
    }
    # custom autograd.Function: its forward and its backward
    FUNCTION_FORWARDS = {"scale": "return x * 2.0", "same": "return x", "detach": "return x.detach()",
                         "tuple": "return x * 2.0, x.sin()", "other": "return x * {b}",
                         "astype_same": "return x.astype(x.dtype)", "clear": "tg.active_tape().clear()\nreturn x * 2.0",
                         "exit": "tg.active_tape().__exit__(None, None, None)\nreturn x * 2.0",
                         "grad_inside": "with tg.enable_grad():\n    (x * 1.0).sum().backward()\nreturn x * 2.0"}
    FUNCTION_BACKWARDS = {
        "right": "return g * 2.0",
        "shape": "return g.sum()",
        "dtype": "return g.astype('float32')",
        "none": "return None",
        "raise": "raise ValueError('backward raised')",
        "many": "return g, g",
        "number": "return 1.0",
        "string": "return 'x'",
        "clear": "tg.active_tape().clear()\nreturn g",
        "clear_tape": "{T}.clear()\nreturn g",
        "exit": "tg.active_tape().__exit__(None, None, None)\nreturn g",
        "backward": "({b} * 1.0).sum().backward(retain_graph=True)\nreturn g",
        "saved": "return g * x",
        "other": "return {b}",
        "collect": "tg.active_tape().collect()\nreturn g * 2.0",
    }

    OPS = ["{a} * {b}", "{a} + {b}", "{a} * 2.0 + 1.0", "{a}.sin()", "{a}.exp() * {b}", "({a} * {a}).sum()",
           "{a}.tanh() - {b}.cos()", "tg.where({a} > 0, {a}, {b})", "{a}.sum() * {b}", "{a}.mean()",
           "{a}.reshape(-1)", "{a}[0]", "{a} @ {b}", "({a} ** 2).sum()", "{a}.T", "{a} / ({b} * {b} + 1.0)",
           "tg.stack([{a}, {a}])", "{a} * {v}"]
    VAR_OPS = ["{v} * {w}", "{v} + {w}.sin()", "{v} ** 2", "{v}.exp() * 0.5", "{v} * 3.0 - {w}", "{v} * {a}"]
    LEAVES = ["[1.0, 2.0]", "[0.25, -0.5]", "[[0.5, -1.0], [2.0, 3.0]]", "1.5"]

    WEIGHTS = {
        "leaf": 5, "op": 10, "var_leaf": 2, "var_op": 4, "tape_new": 3, "with": 7, "enter": 3, "exit": 3,
        "exit_active": 2, "exit_twice": 1, "enter_twice": 1, "clear": 3, "collect": 4, "hook": 7, "var_hook": 3,
        "post_hook": 1, "retain_grad": 1, "remove_hook": 1, "backward": 9, "var_backward": 3, "grad": 3,
        "create_graph_del": 3, "checkpoint": 5, "function": 4, "astype_same": 2, "to_same": 2, "cast": 1,
        "detach": 1, "del": 3, "gc": 2, "no_grad": 2, "inplace": 2, "grad_reset": 1, "touch": 2, "del_tape": 1,
        "thread": 3, "thread_cross": 1,
    }
    INNER = ["leaf", "op", "var_op", "backward", "var_backward", "grad", "clear", "collect", "hook", "var_hook",
             "checkpoint", "function", "astype_same", "to_same", "exit_active", "enter", "exit", "create_graph_del",
             "thread", "thread_cross", "del", "gc"]
    THREADS = ["own", "own_tape", "main_graph", "clear", "collect", "enter", "exit", "concurrent", "concurrent_hook"]
    CROSS = ["mul", "backward", "grad", "main"]


    def indent(code, k=1):
        return textwrap.indent(code, "    " * k)


    class Gen:
        """Draws the steps of one sequence from a symbolic state: the names of the tensors, Vars,
        tapes and hook handles made so far (the recent ones drawn more often)."""

        def __init__(self, rng):
            self.rng = rng
            self.t, self.v, self.T, self.h = [], [], [], []
            self.count = 0
            self.made = []  # the names of tensors, Vars and tapes the step being drawn makes

        def new(self, prefix, into):
            self.count += 1
            name = f"{prefix}{self.count}"
            into.append(name)
            if prefix in ("t", "v", "T"):
                self.made.append(name)
            return name

        def pick(self, names, fallback):
            if not names:
                return fallback
            if self.rng.uniform() < 0.5:
                return names[-1 - int(self.rng.integers(min(2, len(names))))]
            return names[int(self.rng.integers(len(names)))]

        def a(self):
            return self.pick(self.t, "tg.tensor([1.0, 2.0], requires_grad=True)")

        def var(self):
            return self.pick(self.v, "tg.Var(1.5)")

        def tape(self):
            return self.pick(self.T, "tg.active_tape()") if self.rng.uniform() < 0.8 else "tg.active_tape()"

        def choice(self, seq):
            return seq[int(self.rng.integers(len(seq)))]

        def variant(self, kind, table):
            names = [k for k in table if f"{kind}:{k}" not in AVOID]
            return self.choice(names) if names else None

        def fill(self, code, **extra):
            return code.format(a=self.a(), b=self.a(), v=self.var(), w=self.var(), T=self.tape(), **extra)

        # each returns (code, variant) or None (when it cannot be made)
        def s_leaf(self):
            dtype = ", dtype='float32'" if self.rng.uniform() < 0.15 else ""
            rg = self.rng.uniform() < 0.85
            return f"{self.new('t', self.t)} = tg.tensor({self.choice(LEAVES)}{dtype}, requires_grad={rg})", None

        def s_op(self):
            code = self.fill(self.choice(OPS))
            return f"{self.new('t', self.t)} = {code}", None

        def s_var_leaf(self):
            return f"{self.new('v', self.v)} = tg.Var({self.choice(['1.5', '-0.5', '2.0'])})", None

        def s_var_op(self):
            code = self.fill(self.choice(VAR_OPS))
            return f"{self.new('v', self.v)} = {code}", None

        def s_tape_new(self):
            return f"{self.new('T', self.T)} = tg.Tape()", None

        def s_enter(self):
            return f"{self.tape()}.__enter__()", None

        def s_exit(self):
            return f"{self.tape()}.__exit__(None, None, None)", None

        def s_exit_active(self):
            return "tg.active_tape().__exit__(None, None, None)", None

        def s_exit_twice(self):
            t = self.tape()
            return f"{t}.__exit__(None, None, None)\n{t}.__exit__(None, None, None)", None

        def s_enter_twice(self):
            t = self.tape()
            return f"{t}.__enter__()\n{t}.__enter__()", None

        def s_clear(self):
            return f"{self.tape()}.clear()", None

        def s_collect(self):
            return f"{self.tape()}.collect()", None

        def s_del_tape(self):
            if not self.T:
                return None
            t = self.pick(self.T, None)
            self.T.remove(t)
            return f"del {t}\ngc.collect()", None

        def s_touch(self):
            return f"_touch({self.choice([self.a(), self.var(), self.tape()])})", None

        def s_hook(self):
            v = self.variant("hook", HOOKS)
            if v is None:
                return None
            a = self.a()
            h = self.new("h", self.h)
            self.count += 1
            fn = f"hook{self.count}"
            body = self.fill(HOOKS[v], h=h)
            return f"def {fn}(g):\n{indent(body)}\n{h} = {a}.register_hook({fn})", v

        def s_var_hook(self):
            v = self.variant("var_hook", VAR_HOOKS)
            if v is None:
                return None
            self.count += 1
            fn = f"vhook{self.count}"
            body = self.fill(VAR_HOOKS[v])
            return f"def {fn}(g):\n{indent(body)}\n{self.new('h', self.h)} = {self.var()}.register_hook({fn})", v

        def s_post_hook(self):
            body = self.fill(self.choice(["p.grad = None", "_keep.append(p.grad * 2.0)", "tg.active_tape().clear()",
                                          "({b} * 1.0).sum().backward(retain_graph=True)", "p.grad.mul_(0.5)"]))
            self.count += 1
            fn = f"post{self.count}"
            return f"def {fn}(p):\n{indent(body)}\n{self.new('h', self.h)} = " \
                   f"{self.a()}.register_post_accumulate_grad_hook({fn})", None

        def s_retain_grad(self):
            return f"{self.a()}.retain_grad()", None

        def s_remove_hook(self):
            if not self.h:
                return None
            return f"{self.pick(self.h, None)}.remove()", None

        def s_backward(self):
            a = self.a()
            v = self.choice(["sum", "retain", "create", "gradient", "grad_of_grad"])
            if v == "sum":
                return f"{a}.sum().backward()", v
            if v == "retain":
                return f"{a}.sum().backward(retain_graph=True)", v
            if v == "create":
                return f"{a}.sum().backward(create_graph=True)", v
            if v == "gradient":
                return f"{a}.backward(gradient=np.ones({a}.shape))", v
            return f"{a}.grad.sum().backward()", v

        def s_var_backward(self):
            v = self.var()
            kw = self.choice(["", "retain_graph=True", "create_graph=True", "2.0"])
            return f"{v}.backward({kw})", None

        def s_grad(self):
            a, b = self.a(), self.a()
            v = self.choice(["grad", "create", "leaf_grad", "var", "jvp"])
            if v == "grad":
                code = f"tg.autograd.grad({a}.sum(), [{b}], allow_unused=True)[0]"
            elif v == "create":
                code = f"tg.autograd.grad(({a} * {a}).sum(), [{b}], create_graph=True, allow_unused=True)[0]"
            elif v == "leaf_grad":
                code = f"{b}.grad"
            elif v == "var":
                w = self.var()
                return f"{self.new('v', self.v)} = tg.autograd.grad({w}, [{self.var()}], allow_unused=True)[0]", v
            else:
                code = f"tg.autograd.jvp({a}, [{b}], [np.ones({b}.shape)])[0]"
            return f"{self.new('t', self.t)} = {code}", v

        def s_create_graph_del(self):
            if not self.t:
                return None
            a = self.pick(self.t, None)
            self.t.remove(a)
            v = self.choice(["loss", "leaf_grad"])
            if v == "loss":
                return f"{a}.sum().backward(create_graph=True)\ndel {a}\ngc.collect()", v
            n = self.new("t", self.t)
            return f"({a} ** 3).sum().backward(create_graph=True)\n{n} = {a}.grad\ndel {a}\ngc.collect()", v

        def s_checkpoint(self):
            v = self.variant("checkpoint", CHECKPOINT_FNS)
            if v is None:
                return None
            self.count += 1
            fn = f"ck{self.count}"
            bad = CHECKPOINT_FNS[v]
            lines = f"_calls['{fn}'] = _calls.get('{fn}', 0) + 1\n"
            if bad:
                lines += f"if _calls['{fn}'] > 1:\n{indent(self.fill(bad))}\n"
            lines += "return a.sin() * 2.0"
            arg = self.a() + (" * 1.0" if self.rng.uniform() < 0.5 else "")
            return f"def {fn}(a):\n{indent(lines)}\n{self.new('t', self.t)} = checkpoint({fn}, {arg})", v

        def s_function(self):
            fv = self.variant("function_forward", FUNCTION_FORWARDS)
            bv = self.variant("function", FUNCTION_BACKWARDS)
            if fv is None or bv is None:
                return None
            self.count += 1
            cls = f"Fn{self.count}"
            fwd = self.fill(FUNCTION_FORWARDS[fv])
            bwd = self.fill(FUNCTION_BACKWARDS[bv])
            save = "ctx.save_for_backward(x)\n" if self.rng.uniform() < 0.7 else ""
            unpack = "(x,) = ctx.saved_tensors\n" if save else "x = None\n"
            g = "g, *rest" if fv == "tuple" else "g"
            code = (f"class {cls}(tg.autograd.Function):\n"
                    f"    @staticmethod\n    def forward(ctx, x):\n{indent(save + fwd, 2)}\n"
                    f"    @staticmethod\n    def backward(ctx, {g}):\n{indent(unpack + bwd, 2)}\n"
                    f"{self.new('t', self.t)} = {cls}.apply({self.a()})")
            if fv == "tuple":
                code += f"[{self.choice(['0', '1'])}]"
            return code, bv

        def s_astype_same(self):
            a = self.a()
            return f"{self.new('t', self.t)} = {a}.astype({a}.dtype)", None

        def s_to_same(self):
            a = self.a()
            how = self.choice([f"{a}.dtype", "'float64'", f"dtype={a}.dtype"])
            return f"{self.new('t', self.t)} = {a}.to({how})", None

        def s_cast(self):
            a = self.a()
            how = self.choice(["astype(np.float32)", "to('float16')", "double()", "float()"])
            return f"{self.new('t', self.t)} = {a}.{how}", None

        def s_detach(self):
            return f"{self.new('t', self.t)} = {self.a()}.detach()", None

        def s_del(self):
            pool = self.t + self.v
            if not pool:
                return None
            name = self.pick(pool, None)
            (self.t if name in self.t else self.v).remove(name)
            return f"del {name}", None

        def s_gc(self):
            return "gc.collect()", None

        def s_no_grad(self):
            return f"with tg.no_grad():\n    {self.new('t', self.t)} = {self.fill(self.choice(OPS))}", None

        def s_inplace(self):
            a = self.a()
            op = self.choice(["add_(1.0)", "mul_(2.0)", "zero_()", "copy_(" + self.a() + ")", "requires_grad_(False)"])
            if self.rng.uniform() < 0.5:
                return f"with tg.no_grad():\n    {a}.{op}", None
            return f"{a}.{op}", None

        def s_grad_reset(self):
            v = self.variant("grad_reset", {"none": 0, "ones": 0, "tensor": 0})
            value = {"none": "None", "ones": "tg.ones(2)", "tensor": self.a()}[v] if v else None
            return (f"{self.a()}.grad = {value}", v) if v else None

        def s_thread(self):
            v = self.variant("thread", {k: None for k in THREADS})
            if v is None:
                return None
            a, T = self.a(), self.tape()
            self.count += 1
            fn = f"th{self.count}"
            if v in ("own", "own_tape"):
                body = ("x = tg.tensor([1.0, 2.0], requires_grad=True)\ny = x * 3.0\n"
                        f"y.register_hook(lambda g: g * {a}.sum())\n(y * y).sum().backward()\n_keep.append(x.grad)")
                if v == "own_tape":
                    body = "with tg.Tape():\n" + indent(body)
                return f"def {fn}():\n{indent(body)}\n_join(_spawn({fn}))", v
            if v == "main_graph":
                return f"_join(_spawn(lambda: ({a} * 2.0).sum().backward(retain_graph=True)))", v
            if v in ("clear", "collect", "enter"):
                return f"_join(_spawn(lambda: {T}.{v}()))".replace(".enter()", ".__enter__()"), v
            if v == "exit":
                return f"_join(_spawn(lambda: {T}.__exit__(None, None, None)))", v
            if v == "concurrent":
                return (f"{fn} = _spawn(lambda: ({a} * 2.0).sum().backward(retain_graph=True))\n"
                        f"({a} * 3.0).sum().backward(retain_graph=True)\n_join({fn})"), v
            # concurrent_hook: the thread runs backward on the graph of `a` while this thread's
            # backward (on the same graph) is in a hook
            b = self.a()
            return (f"{fn} = None\n"
                    f"def {fn}_hook(g):\n    global {fn}\n"
                    f"    {fn} = _spawn(lambda: ({b} * 2.0).sum().backward(retain_graph=True))\n"
                    f"    return g\n"
                    f"{fn}_y = {a} * 1.0\n{fn}_y.register_hook({fn}_hook)\n"
                    f"{fn}_y.sum().backward(retain_graph=True)\n_join({fn})"), v

        def s_thread_cross(self):
            v = self.variant("thread_cross", {k: None for k in CROSS})
            if v is None:
                return None
            self.count += 1
            k = self.count
            use = {"mul": "return g * other", "backward": "other.sum().backward(retain_graph=True)",
                   "grad": "tg.autograd.grad(other.sum(), [other])", "main": "return g * other"}[v]
            code = (f"bar{k} = threading.Barrier(2, timeout=JOIN_S / 2)\nmine{k} = {{}}\n"
                    f"def cross{k}(me):\n"
                    f"    x = tg.tensor([1.0, 2.0], requires_grad=True)\n"
                    f"    mine{k}[me] = x * 3.0      # recorded on this thread's tape\n"
                    f"    bar{k}.wait()\n"
                    f"    y = x * 2.0\n"
                    f"    def hook(g):\n"
                    f"        bar{k}.wait()          # both threads are inside backward()\n"
                    f"        other = mine{k}[1 - me]  # recorded on the other thread's tape\n"
                    f"        {use}\n"
                    f"    y.register_hook(hook)\n"
                    f"    (y * y).sum().backward()\n")
            if v == "main":  # this thread is one of the two
                code += f"th{k} = _spawn(cross{k}, 1)\ncross{k}(0)\n_join(th{k})"
            else:
                code += f"_join(_spawn(cross{k}, 0), _spawn(cross{k}, 1))"
            return code, v

        def s_with(self, depth):
            t = self.tape() if self.rng.uniform() < 0.75 else None
            if t is None:
                head = f"with tg.Tape() as {self.new('T', self.T)}:"
            else:
                head = f"with {t}:"
            inner = [self.step(depth + 1) for _ in range(int(self.rng.integers(1, 4)))]
            return head, inner

        def step(self, depth=0, kind=None):
            outer, self.made = self.made, []
            if kind:
                code, variant = getattr(self, "s_" + kind)()
                s = dict(kind=kind, variant=variant, code=code)
            else:
                s = self.draw_step(depth)
            s["made"] = self.made
            self.made = outer + self.made
            return s

        def draw_step(self, depth):
            kinds = [k for k in WEIGHTS if k not in AVOID and (depth == 0 or k in INNER)]
            w = np.array([WEIGHTS[k] for k in kinds], dtype=float)
            for _ in range(50):
                kind = kinds[int(self.rng.choice(len(kinds), p=w / w.sum()))]
                if kind == "with":
                    if depth >= 2:
                        continue
                    head, inner = self.s_with(depth)
                    return dict(kind=kind, variant=None, head=head, inner=inner)
                made = getattr(self, "s_" + kind)()
                if made is None:
                    continue
                code, variant = made
                return dict(kind=kind, variant=variant, code=code)
            return dict(kind="gc", variant=None, code="gc.collect()")


    def sequence(i):
        rng = np.random.default_rng([seed, i])
        g = Gen(rng)
        steps = [g.step(kind="leaf"), g.step(kind="op")] + [g.step() for _ in range(int(rng.integers(8, 30)))]
        # step ids: "k" for the top level, "k.j" inside a `with` block
        for k, s in enumerate(steps):
            s["id"] = str(k)
            for j, s2 in enumerate(s.get("inner", [])):
                s2["id"] = f"{k}.{j}"
        return steps


    def ingredients(s):
        out = {s["kind"]} | ({f"{s['kind']}:{s['variant']}"} if s["variant"] else set())
        for s2 in s.get("inner", []):
            out |= ingredients(s2)
        return out


    def code_of(s, keep):
        """The step's code (a `with` block: of the inner steps kept; None: the step is not kept)."""
        if keep is not None and s["id"] not in keep:
            return None
        if "inner" not in s:
            return s["code"]
        inner = [c for c in (code_of(s2, keep) for s2 in s["inner"]) if c is not None]
        return s["head"] + "\n" + indent("\n".join(inner) or "pass")


    def emit(code):
        if VERBOSE:
            for line in code.splitlines():
                out.write("| " + line + "\n")
            out.flush()


    def try_block(code, made):
        args = ", ".join(["e"] + [repr(m) for m in made])
        return "try:\n" + indent(code) + f"\nexcept Exception as e:\n    _err({args})"


    steps_run = errors = 0
    exc_types = {}
    hit = {}
    keep = set(KEEP.split(",")) if KEEP is not None else None
    emit(PREAMBLE + f"\nfaulthandler.dump_traceback_later({WATCHDOG!r}, exit=True)  # a hang: exit code 1\n")
    indices = [int(k) for k in INDICES.split(",")] if INDICES else list(range(FIRST, FIRST + n))
    if os.environ.get("TG_SF_LIST") == "1":  # the step ids of each sequence
        for i in indices:
            ids = [x["id"] for s in sequence(i) for x in [s] + s.get("inner", [])]
            print("ids", i, ",".join(ids))
        print("done 0 0", flush=True)
        sys.exit(0)
    for i in indices:
        steps = sequence(i)
        ns = {"__name__": "__stateful__"}
        exec(PREAMBLE, ns)
        faulthandler.dump_traceback_later(WATCHDOG, exit=True)
        emit(f"\n# sequence {i} of seed {seed}")
        for s in steps:
            code = code_of(s, keep if i == indices[-1] else None)
            if code is None:
                continue
            ing = sorted(ingredients(s))
            out.write(f"@@ {i} {s['id']} {','.join(ing)} :: {code.splitlines()[0]}\n")
            out.flush()
            block = try_block(code, s["made"])
            emit(block)
            for x in ing:
                hit[x] = hit.get(x, 0) + 1
            steps_run += 1
            exec(block, ns)
        errors += len(ns["_errors"])
        for e in ns["_errors"]:
            exc_types[e] = exc_types.get(e, 0) + 1
        out.write(f"@@ {i} end :: _end()\n")
        out.flush()
        emit("_end()")
        try:
            exec("_end()", ns)
        except Exception as e:  # the state the sequence left breaks a fresh backward: a failure
            import traceback
            traceback.print_exc()
            print(f"BROKEN: after sequence {i}: {type(e).__name__}: {e}", flush=True)
            sys.stderr.flush()
            os._exit(STATE_EXIT)
        ns.clear()
        gc.collect()
        faulthandler.cancel_dump_traceback_later()

    with open(STATS, "w") as f:
        json.dump(dict(steps=steps_run, errors=errors, exc_types=exc_types, hit=hit,
                       kinds=[k for k in WEIGHTS if k not in AVOID], sequences=len(indices)), f)
    print("done", steps_run, errors, flush=True)
''')

HANG_EXIT = 86  # a worker's or a reproducer's exit code when a thread did not finish (_join in its preamble)
STATE_EXIT = 87  # the stateful worker's exit code when a fresh backward fails after a sequence
STATEFUL_FAST_SEEDS = range(2)
STATEFUL_FAST_SEQUENCES = 120  # per seed (each seed draws every kind of step)
# The long profile leaves out the steps of KNOWN_CRASHES too (to look for other crashes while they
# are open); TAPEGRAD_FUZZ_AVOID_KNOWN=0 puts them back. The fast profile always leaves them out.
STATEFUL_HIT_KNOWN = LONG and os.environ.get("TAPEGRAD_FUZZ_AVOID_KNOWN") == "0"


def _stateful_avoid() -> str:
    """The ingredients (step kinds and kind:variant) of the known crashes, for TG_SF_AVOID."""
    return "" if STATEFUL_HIT_KNOWN else ",".join(s for c in KNOWN_CRASHES for s in c.get("steps", []))


def _sf_run(seed: int, n: int, tmp_path: pathlib.Path, timeout: float = 600, **env: str) -> subprocess.CompletedProcess:
    """Runs the stateful worker: sequences 0..n-1 of seed (TG_SF_INDICES, TG_SF_KEEP: those only)."""
    path = tmp_path / "stateful.py"
    path.write_text(STATEFUL_WORKER)
    full_env = dict(os.environ, PYTHONWARNINGS="ignore", TG_SF_AVOID=_stateful_avoid(), **env)
    try:
        return subprocess.run([sys.executable, str(path), str(seed), str(n)], capture_output=True, text=True,
                              env=full_env, timeout=timeout, cwd=tmp_path)
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        err = e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else (e.stderr or "")
        return subprocess.CompletedProcess(e.cmd, -9999, out, err + f"\n(no end in {timeout:.0f} s)")


def _sf_died(proc: subprocess.CompletedProcess) -> bool:
    lines = proc.stdout.strip().splitlines()
    return proc.returncode != 0 or not lines or not lines[-1].startswith("done")


def _sf_how(proc: subprocess.CompletedProcess) -> str:
    if proc.returncode == STATE_EXIT:
        return "broken state: a fresh backward raised after the sequence (its traceback is in stderr)"
    if proc.returncode == HANG_EXIT:
        return "hang (a thread did not finish: a deadlock; the worker prints every thread's stack to stderr)"
    if proc.returncode == -9999:
        return "hang (the process did not end)"
    if proc.returncode == -signal.SIGALRM:
        return "hang (killed by the reproducer's signal.alarm)"
    if proc.returncode < 0:
        try:
            return f"signal {signal.Signals(-proc.returncode).name}"
        except ValueError:
            return f"signal {-proc.returncode}"
    if "Timeout (" in proc.stderr:
        return "hang (watchdog: a sequence ran past TG_SF_WATCHDOG seconds)"
    return f"exit code {proc.returncode}"


def _sf_last(proc: subprocess.CompletedProcess) -> Tuple[int, str] | None:
    """The sequence and the step the worker was in when it died (the last "@@ i id" line)."""
    marks = [line.split() for line in proc.stdout.splitlines() if line.startswith("@@ ")]
    return (int(marks[-1][1]), marks[-1][2]) if marks else None


def _sf_shrink(seed: int, first: int, proc: subprocess.CompletedProcess, tmp_path: pathlib.Path,
               budget_s: float = 240.0) -> str:
    """A death in sequence `last` of seed (run from `first`): the sequence alone (or the fewest
    sequences before it that it needs), then the fewest of its steps that still die (steps after
    the one that died dropped; then halves, quarters, ... single steps, nested ones included),
    written out as a script that is run once more on its own."""
    where = _sf_last(proc)
    if where is None:
        return "(no sequence was started)"
    last, step = where
    # quick reruns: a deadlocked thread is given 3 s, a sequence 10 s
    quick = dict(TG_SF_JOIN="3", TG_SF_WATCHDOG="10")
    deadline = time.monotonic() + budget_s

    def dies(seqs: List[int], keep: List[str] | None) -> subprocess.CompletedProcess | None:
        env = dict(quick, TG_SF_INDICES=",".join(map(str, seqs)), TG_SF_VERBOSE="1")
        if keep is not None:
            env["TG_SF_KEEP"] = ",".join(keep)
        p = _sf_run(seed, 0, tmp_path, timeout=120, **env)
        return p if _sf_died(p) else None

    seqs = [last]
    p = dies(seqs, None)
    if p is None:  # it needs the state earlier sequences left: the shortest run lo..last that dies
        p = dies(list(range(first, last + 1)), None)
        if p is None:
            return f"sequences {first}..{last} of seed {seed} do not die when rerun (not reproducible)"
        good, bad = first, last
        while bad - good > 1 and time.monotonic() < deadline:
            mid = (good + bad) // 2
            q = dies(list(range(mid, last + 1)), None)
            if q is not None:
                good, p = mid, q
            else:
                bad = mid
        seqs = list(range(good, last + 1))
    listing = _sf_run(seed, 0, tmp_path, timeout=120, TG_SF_LIST="1", TG_SF_INDICES=str(last)).stdout
    ids = next(line.split()[2].split(",") for line in listing.splitlines() if line.startswith(f"ids {last} "))
    proc_best = p
    died_at = _sf_last(p)
    keep = ids
    if died_at and died_at[1] != "end" and died_at[1] in ids:  # the steps after the one that died go
        top = int(died_at[1].split(".")[0])
        trial = [i for i in ids if int(i.split(".")[0]) <= top]
        q = dies(seqs, trial)
        if q is not None:
            keep, proc_best = trial, q
    size = max(1, len(keep) // 2)
    while size >= 1 and time.monotonic() < deadline:
        i = 0
        while i < len(keep) and time.monotonic() < deadline:
            trial = keep[:i] + keep[i + size:]
            q = dies(seqs, trial) if trial else None
            if q is not None:
                keep, proc_best = trial, q
            else:
                i += size
        size //= 2
    script = "\n".join(line[2:] for line in proc_best.stdout.splitlines() if line.startswith("| ")) + "\n"
    repro = tmp_path / f"stateful_reproducer_{seed}_{last}.py"
    repro.write_text(script)
    try:
        check = subprocess.run([sys.executable, str(repro)], capture_output=True, text=True, timeout=120,
                               env=dict(os.environ, PYTHONWARNINGS="ignore"), cwd=tmp_path)
        verdict = f"the script alone: {_sf_how(check)}" if check.returncode != 0 else "the script alone does not die"
    except subprocess.TimeoutExpired:
        verdict = "the script alone: hang (no end in 120 s)"
    lines = script.splitlines()
    shown = "\n".join(lines if len(lines) <= 250 else lines[:80] + ["..."] + lines[-160:])
    return (f"seed {seed}, sequences {seqs}, steps {keep} of sequence {last}: {_sf_how(proc_best)} ({verdict}); "
            f"rerun: TG_SF_INDICES={last} python {tmp_path / 'stateful.py'} {seed} 1\nreproducer ({repro}):\n{shown}\n"
            f"stderr:\n{proc_best.stderr[-2500:]}")


def _stateful(seed: int, n: int, tmp_path: pathlib.Path) -> dict:
    """Runs n sequences of seed in a child process; on a death (signal, deadlock, watchdog),
    fails with the shrunk reproducer."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    proc = _sf_run(seed, n, tmp_path)
    if _sf_died(proc):
        where = _sf_last(proc)
        text = (f"stateful fuzz seed {seed}: {_sf_how(proc)} at: "
                f"{next((ln for ln in reversed(proc.stdout.splitlines()) if ln.startswith('@@ ')), '(nothing)')}")
        detail = _sf_shrink(seed, 0, proc, tmp_path) if where else proc.stderr[-3000:]
        raise AssertionError(f"{text}\n\nshrunk: {detail}")
    return json.loads((tmp_path / "stateful.json").read_text())


@pytest.mark.parametrize("seed", STATEFUL_FAST_SEEDS)
def test_stateful_fuzz_never_crashes(seed: int, tmp_path: pathlib.Path) -> None:
    """STATEFUL_FAST_SEQUENCES sequences of tape, hook, checkpoint, Function, backward and thread
    steps over shared state: each step returns or raises a Python exception; none kills the
    process, deadlocks a thread or hangs, and a fresh backward works after each sequence (else the
    worker exits with STATE_EXIT)."""
    if LONG:
        pytest.skip("TAPEGRAD_FUZZ_PROFILE=long runs test_stateful_fuzz_long instead")
    stats = _stateful(seed, STATEFUL_FAST_SEQUENCES, tmp_path)
    print(f"stateful seed {seed}: {stats['sequences']} sequences, {stats['steps']} steps, {stats['errors']} raised "
          f"({stats['exc_types']})")
    # both outcomes happen, so the test cannot pass vacuously
    assert stats["steps"] > 10 * STATEFUL_FAST_SEQUENCES
    assert stats["steps"] // 20 < stats["errors"] < stats["steps"] // 2
    assert not set(stats["kinds"]) - set(stats["hit"]), "every kind of step is drawn"


def test_stateful_fuzz_long(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    """TAPEGRAD_FUZZ_PROFILE=long: sequences from TAPEGRAD_FUZZ_SEED in child processes of
    TAPEGRAD_FUZZ_CHUNK_SEQUENCES sequences (300), TAPEGRAD_FUZZ_JOBS at a time, for
    TAPEGRAD_FUZZ_SECONDS seconds (else TAPEGRAD_FUZZ_SEQUENCES sequences, 20000); every death is shrunk."""
    if not LONG:
        pytest.skip("the long profile: TAPEGRAD_FUZZ_PROFILE=long [TAPEGRAD_FUZZ_SEED=s] [TAPEGRAD_FUZZ_SECONDS=t]")
    seed = int(os.environ.get("TAPEGRAD_FUZZ_SEED", "0"))
    chunk = int(os.environ.get("TAPEGRAD_FUZZ_CHUNK_SEQUENCES", "300"))
    seconds = float(os.environ["TAPEGRAD_FUZZ_SECONDS"]) if os.environ.get("TAPEGRAD_FUZZ_SECONDS") else None
    total = int(os.environ.get("TAPEGRAD_FUZZ_SEQUENCES", "20000"))
    jobs = int(os.environ.get("TAPEGRAD_FUZZ_JOBS", str(max(1, (os.cpu_count() or 2) // 2))))
    start = time.monotonic()
    parts = itertools.count()
    lock = threading.Lock()
    outcomes: List[Tuple[int, int, dict | str]] = []

    def worker() -> None:
        while True:
            with lock:
                k = next(parts)
            if seconds is not None and time.monotonic() - start >= seconds:
                return
            if seconds is None and k * chunk >= total:
                return
            count = chunk if seconds is not None else min(chunk, total - k * chunk)
            child_seed = 10**6 * (seed + 1) + k  # none is one of the fast run's
            try:
                result: dict | str = _stateful(child_seed, count, tmp_path / f"seed{child_seed}")
            except AssertionError as failure:
                result = str(failure)
            with lock:
                outcomes.append((child_seed, count, result))

    threads = [threading.Thread(target=worker) for _ in range(jobs)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    stats = [o for _, _, o in outcomes if isinstance(o, dict)]
    failures = [o for _, _, o in outcomes if isinstance(o, str)]
    tried = sum(s["sequences"] for s in stats)
    with capsys.disabled():
        print(f"\ntapegrad stateful fuzz, long profile: seed {seed}: {tried} sequences "
              f"({sum(s['steps'] for s in stats)} steps, {sum(s['errors'] for s in stats)} raised) completed in "
              f"{len(stats)} processes, {len(failures)} processes died, {time.monotonic() - start:.0f} s; "
              f"left out: {_stateful_avoid() or 'nothing'}")
    assert not failures, "\n\n".join(failures)
