"""Memory: long chains, training loops without clear(), automatic clearing and compaction,
and no reference cycles per op.

The policy under test (python/bindings/core.hpp, PyTape): a tape is cleared (O(1)) when no
non-leaf Var recorded on it is alive, and compacted (mark-compact from the live Vars) when
it reaches max(2^18 records, 2 x its size after the last compaction).
"""

from __future__ import annotations

import gc
import math
import os
import random
import sys
from typing import Any, List

import numpy as np
import pytest
from numpy.testing import assert_allclose

import tapegrad as tg

MIN_COLLECT = 1 << 18  # Tape::kMinCollect (the core's collection policy)
RECORD_BYTES = 12 + 8  # a record and its value
CONSTANT_BYTES = 8


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


# --- long chains ----------------------------------------------------------------------------

def test_million_op_chain_of_muls_and_adds():
    n = 1_000_000
    c, b = 0.999999, 1e-7
    with tg.Tape() as t:
        x = tg.Var(1.0)
        y = x
        for _ in range(n):
            y = y * c + b
        assert t.stats()["records"] == 2 * n + 1  # the leaf and two records per step
        y.backward()  # one loop over 2M records: no recursion
    # the same arithmetic in Python floats, in the order the sweep does it
    value, grad = 1.0, 1.0
    for _ in range(n):
        value = value * c + b
        grad = grad * c
    assert y.data == value
    assert x.grad == grad
    assert math.isclose(x.grad, c**n, rel_tol=1e-9)  # (1 - 1e-6)^1e6 ~ 1/e
    del y
    assert t.stats()["records"] == 0


def test_million_op_chain_of_adds():
    n = 1_000_000
    with tg.Tape() as t:
        x = tg.Var(0.5)
        y = x
        for _ in range(n):
            y = y + x
        y.backward()
        assert y.data == (n + 1) * 0.5
        assert x.grad == float(n + 1)
        assert t.stats()["constants"] == 0  # no constants in this chain
        del y
        assert t.stats()["records"] == 0


def test_deep_chain_does_not_recurse():
    # backward of a 100k-deep chain with a recursion limit far below its depth
    with tg.Tape():
        x = tg.Var(0.1)
        y = x
        for _ in range(100_000):
            y = tg.sin(y)
        depth = 0
        frame = sys._getframe()
        while frame is not None:
            depth, frame = depth + 1, frame.f_back
        old = sys.getrecursionlimit()
        sys.setrecursionlimit(depth + 50)
        try:
            y.backward()
        finally:
            sys.setrecursionlimit(old)
    assert 0.0 < x.grad < 1.0


# --- a training loop without clear() -------------------------------------------------------

def test_training_loop_memory_is_bounded():
    """10,000 SGD steps of a micrograd-style MLP; nothing is cleared by hand.

    Each step builds a new graph while the previous loss is still alive, so the tape is
    never empty and never auto-cleared: it grows until it reaches 2^18 records, is compacted
    down to what the live Vars reach (about two steps' graphs), and grows again. The policy
    therefore guarantees:
      - records <= 2^18 + 2 at all times (compaction runs after the op that reaches the
        threshold; one op pushes at most a leaf record and its own);
      - once the first compaction has happened, the arena never needs more capacity than it
        had then, up to one doubling (the +2 above can cross a power of two): bytes_reserved
        at step 10000 <= 2 x bytes_reserved at step 1000;
      - so RSS stays flat between step 1000 and step 10000.
    """
    state = random.getstate()
    random.seed(1234)
    try:
        model = tg.nn.MLP(2, [6, 1])
        xs = [(random.uniform(-1, 1), random.uniform(-1, 1)) for _ in range(8)]
    finally:
        random.setstate(state)
    ys = [a - 2 * b for a, b in xs]
    params = model.parameters()
    assert len(params) == 6 * 3 + 7
    records_per_step = None

    with tg.Tape() as t:
        assert tg.active_tape() is t

        def step():
            loss = sum(((model(x) - y) ** 2 for x, y in zip(xs, ys)), 0.0) * (1.0 / len(xs))
            model.zero_grad()
            loss.backward()
            for p in params:
                p.data -= 0.05 * p.grad
            return loss

        losses = []
        loss = step()
        records_per_step = t.stats()["records"]
        assert 300 < records_per_step < 1000  # so 2^18 records are reached before step 1000
        losses.append(loss.data)
        max_records = 0
        at = {}
        for k in range(2, 10_001):
            loss = step()
            s = tg.active_tape().stats()
            max_records = max(max_records, s["records"])
            if k in (1000, 10_000):
                at[k] = dict(s, rss=rss_bytes(), loss=loss.data)
            if k % 1000 == 0:
                losses.append(loss.data)

    # the tape was compacted at least once before step 1000, and never grew past the threshold
    assert records_per_step * 1000 > MIN_COLLECT
    assert max_records <= MIN_COLLECT + 2, max_records
    for k in (1000, 10_000):
        s = at[k]
        assert s["records"] <= MIN_COLLECT + 2
        assert s["bytes_in_use"] <= s["records"] * RECORD_BYTES + s["constants"] * CONSTANT_BYTES
        assert s["bytes_in_use"] <= (MIN_COLLECT + 2) * (RECORD_BYTES + CONSTANT_BYTES)
        assert s["bytes_in_use"] <= s["bytes_reserved"]
    assert at[10_000]["bytes_reserved"] <= 2 * at[1000]["bytes_reserved"], at
    # a hard ceiling from the same reasoning: arena (records, values, constants) of at most
    # 2^19 entries, adjoints of at most 2 x 2^18, collect()'s scratch, the roots: < 24 MiB
    assert at[10_000]["bytes_reserved"] < 24 * 2**20, at
    rss_growth = at[10_000]["rss"] - at[1000]["rss"]
    assert rss_growth < 4 * 2**20, f"RSS grew by {rss_growth / 2**20:.1f} MiB between steps 1000 and 10000"

    # the parameters are leaves that survived every compaction, and the model trained
    for p in params:
        assert p.is_leaf and p.requires_grad and math.isfinite(p.data) and math.isfinite(p.grad)
    assert losses[-1] < 1e-2 * losses[0], losses
    assert at[10_000]["loss"] < at[1000]["loss"]
    final = sum((model(x) - y) ** 2 for x, y in zip(xs, ys)).data / len(xs)
    assert final < 1e-2 * losses[0]


# --- automatic clearing ----------------------------------------------------------------------

def test_tape_is_cleared_when_the_last_non_leaf_dies():
    with tg.Tape() as t:
        x = tg.Var(2.0)
        w = tg.Var(3.0)
        y = x * w
        z = tg.exp(y) + 1.0
        s = t.stats()
        assert s["records"] == 5  # x, w, mul, exp, add
        assert s["constants"] == 1
        assert s["roots"] == 4  # x, w, y, z
        del y
        assert t.stats()["records"] == 5  # z still needs everything
        assert t.stats()["roots"] == 3
        reserved = t.stats()["bytes_reserved"]
        del z
        s = t.stats()
        assert s["records"] == 0 and s["constants"] == 0 and s["roots"] == 0 and s["bytes_in_use"] == 0
        assert s["bytes_reserved"] == reserved  # the memory is kept for reuse
        # the leaves still work, on the same tape
        y = x * w
        y.backward()
        assert x.grad == 3.0 and w.grad == 2.0
        assert t.stats()["records"] == 3


def test_leaves_alone_do_not_keep_a_tape_alive():
    with tg.Tape() as t:
        x = tg.Var(2.0)
        (x * x).backward()  # the result dies at once
        assert x.grad == 4.0
        assert t.stats()["records"] == 0
        assert len(t) == 0


def test_automatic_clear_resets_the_compaction_threshold():
    def churn(t, n):
        x = tg.Var(0.5)
        prev = x * 1.0
        most = 0
        for _ in range(n):
            cur = x * 0.5 + x  # a new graph while the previous one is alive
            prev = cur  # noqa: F841
            most = max(most, t.stats()["records"])
        return most

    with tg.Tape() as t:
        x = tg.Var(1.0)
        y = x
        for _ in range(300_000):
            y = y + 1.0  # all live: compacted at 2^18, to ~2^18: next threshold 2^19
        del y
        assert t.stats()["records"] == 0  # cleared automatically
        assert churn(t, 300_000) <= MIN_COLLECT + 2


def test_manual_clear_resets_the_compaction_threshold():
    with tg.Tape() as t:
        x = tg.Var(1.0)
        y = x
        for _ in range(300_000):
            y = y + 1.0
        del y
        t.clear()
        x = tg.Var(0.5)
        prev = x * 1.0
        most = 0
        for _ in range(300_000):
            cur = x * 0.5 + x
            prev = cur  # noqa: F841
            most = max(most, t.stats()["records"])
        assert most <= MIN_COLLECT + 2


# --- compaction ------------------------------------------------------------------------------

def test_collect_keeps_what_live_vars_reach():
    with tg.Tape() as t:
        x = tg.Var(2.0)
        keep = tg.sin(x) * x
        mid = keep + 1.0
        mid.retain_grad()
        out = mid * 3.0
        for i in range(1000):
            g = x * float(i)  # dead right away, but the tape is not empty
        del g
        assert t.stats()["records"] == 5 + 1000
        t.collect()
        s = t.stats()
        assert s["records"] == 5  # x, sin, mul, add, mul
        assert s["constants"] == 2
        # the live Vars are still valid and differentiate correctly
        out.backward()
        assert mid.grad == 3.0
        assert math.isclose(x.grad, 3.0 * (math.cos(2.0) * 2.0 + math.sin(2.0)), rel_tol=1e-13)
        more = keep * keep
        assert more.data == keep.data**2


def test_automatic_compaction_keeps_live_vars_valid():
    with tg.Tape() as t:
        x = tg.Var(1.5)
        w = tg.Var(-0.5)
        keep = tg.exp(x * w)
        keep.retain_grad()
        out = keep * keep
        most = 0
        for i in range(3 * MIN_COLLECT // 2):
            g = x * w + float(i)  # noqa: F841 - garbage, made while `out` is alive
            most = max(most, t.stats()["records"])
        assert most <= MIN_COLLECT + 2
        assert t.stats()["records"] < MIN_COLLECT  # compacted at least once
        out.backward()
        e = math.exp(1.5 * -0.5)
        assert keep.grad == 2 * keep.data
        assert math.isclose(x.grad, 2 * e * e * -0.5, rel_tol=1e-14)
        assert math.isclose(w.grad, 2 * e * e * 1.5, rel_tol=1e-14)


# --- no reference cycles, no leaked references ---------------------------------------------

def test_vars_are_not_tracked_by_the_cyclic_gc():
    x = tg.Var(1.0)
    y = x * x + 1.0
    assert not gc.is_tracked(x)
    assert not gc.is_tracked(y)
    assert not gc.is_tracked(tg.exp(y))


def test_ops_create_no_reference_cycles():
    x = tg.Var(0.3)
    w = tg.Var(1.7)
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        n_before = len(gc.get_objects())
        for _ in range(10_000):
            y = tg.tanh(x * w + 1.0) ** 2 - x / w
            y.backward()
        del y
        n_after = len(gc.get_objects())
        assert gc.collect() == 0  # nothing unreachable: no cycles were made
    finally:
        if was_enabled:
            gc.enable()
    assert n_after - n_before < 100, (n_before, n_after)


def test_no_leaked_references():
    def work():
        y = tg.sin(x) * x + 2.0
        y.backward()
        y.retain_grad()
        (y * y).backward()

    x = tg.Var(0.3)
    with tg.Tape() as t:
        work()  # x is now recorded on t, and holds a reference to it
        rc_tape, rc_x = sys.getrefcount(t), sys.getrefcount(x)
        for _ in range(1000):
            work()
        assert sys.getrefcount(t) == rc_tape
        assert sys.getrefcount(x) == rc_x
        assert t.stats()["records"] == 0


# --- records keep only what their rules read (issue 22, part 6) --------------------------------------------


def _torch_saved_bytes(forward: Any, params: Any) -> int:
    """The distinct storages PyTorch's graph saves during ``forward()`` (the parameters', and
    their transposed views', excluded), as bench/bench_amp.py counts them."""
    torch = pytest.importorskip("torch")
    seen: dict = {}
    skip = {p.untyped_storage().data_ptr() for p in params}

    def pack(t: Any) -> Any:
        s = t.untyped_storage()
        if s.data_ptr() not in skip:
            seen[s.data_ptr()] = max(seen.get(s.data_ptr(), 0), s.nbytes())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        forward()
    return sum(seen.values())


@pytest.mark.parametrize("mixed", [False, True])
def test_a_models_graph_keeps_the_bytes_pytorchs_saves(mixed: bool) -> None:
    """An MLP (Linear, ReLU, Linear, ReLU, Linear, cross_entropy), float32 and under bfloat16
    autocast: the graph keeps exactly the bytes PyTorch's saves. A Linear's result is read by
    no rule (relu's reads its own output) and goes once nothing holds it; a product keeps each
    operand only where the other needs a gradient (the input needs none: the first layer keeps
    no 16-bit copy of its weight)."""
    torch = pytest.importorskip("torch")
    import tapegrad.nn as tnn

    rng = np.random.default_rng(3)
    sizes = [64, 48, 32, 10]
    ws = [(rng.standard_normal((o, i)).astype(np.float32) / 8, rng.standard_normal(o).astype(np.float32))
          for i, o in zip(sizes[:-1], sizes[1:])]
    X, y = rng.standard_normal((40, 64)).astype(np.float32), rng.integers(0, 10, 40)
    tg_layers: List[Any] = []
    pt_layers: List[Any] = []
    for w, b in ws:
        lin = tnn.Linear(w.shape[1], w.shape[0]).float()
        lin.weight.data, lin.bias.data = tg.tensor(w), tg.tensor(b)
        plin = torch.nn.Linear(w.shape[1], w.shape[0])
        with torch.no_grad():
            plin.weight.copy_(torch.from_numpy(w))
            plin.bias.copy_(torch.from_numpy(b))
        tg_layers += [lin, tnn.ReLU()]
        pt_layers += [plin, torch.nn.ReLU()]
    model, pmodel = tnn.Sequential(*tg_layers[:-1]), torch.nn.Sequential(*pt_layers[:-1])
    with tg.Tape() as tape:
        with tg.autocast(dtype=tg.bfloat16, enabled=mixed):
            loss = tnn.functional.cross_entropy(model(tg.tensor(X)), tg.tensor(y))
        kept = tape.stats()["saved_bytes"]

    def forward() -> Any:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=mixed):
            return torch.nn.functional.cross_entropy(pmodel(torch.from_numpy(X)), torch.from_numpy(y))

    # (the loss's few bytes differ: PyTorch's nll_loss saves its int64 target and a total weight,
    # tapegrad's the picked log-probabilities and two 0-d values: 8 bytes more, here)
    assert abs(kept - _torch_saved_bytes(forward, pmodel.parameters())) <= 12
    del loss


def test_a_result_no_rule_reads_is_freed_once_nothing_holds_it() -> None:
    x = tg.randn(100, 100, requires_grad=True)
    with tg.Tape() as tape:
        h = x @ x.T  # (the product keeps x: x needs a gradient)
        held = tape.stats()["saved_bytes"]
        y = h.relu()  # relu reads its output: y's value kept, h's not
        assert tape.stats()["saved_bytes"] == held + 100 * 100 * 8
        del h
        gc.collect()
        assert tape.stats()["saved_bytes"] == held + 100 * 100 * 8
        y.sum().backward()
    assert_allclose(x.grad.numpy(), _relu_matmul_grad(x.detach().numpy()), rtol=1e-12)


def _relu_matmul_grad(a: np.ndarray) -> np.ndarray:
    m = (a @ a.T > 0).astype(np.float64)
    return m @ a + m.T @ a


def test_hooks_and_retain_grad_of_a_freed_result_still_run() -> None:
    """PyTorch keeps a tensor's hooks with its graph: a hook registered on a result no rule reads
    runs even after the tensor is dropped (its record holds it again once a hook is registered)."""
    x = tg.tensor([1.0, -2.0, 3.0], requires_grad=True)
    seen: List[np.ndarray] = []
    h = x * 2.0  # (mul keeps x, not its result)
    h.register_hook(lambda g: seen.append(g.numpy().copy()) or g * 10)
    z = (h.exp()).sum()
    del h
    gc.collect()
    z.backward()
    assert_allclose(seen[0], np.exp(2 * np.array([1.0, -2.0, 3.0])))
    assert_allclose(x.grad.numpy(), 20 * np.exp(2 * np.array([1.0, -2.0, 3.0])))
    r = x + 1.0
    r.retain_grad()
    (r * r).sum().backward()
    assert_allclose(r.grad.numpy(), 2 * (x.detach().numpy() + 1.0))
