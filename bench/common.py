"""Pieces shared by tapegrad's scalar benchmarks (see bench_scalar.py).

The two-moons data set and the demo's loss are tapegrad.demo's (written once for any
micrograd-style scalar type: micrograd's ``Value``, ``tapegrad.Var``); here: the data as
plain lists, copying weights between two MLPs of the same shape, and comparisons.
"""

from __future__ import annotations

import math
from typing import List, Sequence, Tuple

from tapegrad.demo import loss, make_moons


def moons_lists(n: int = 100, noise: float = 0.1, seed: int = 1337) -> Tuple[List[List[float]], List[int]]:
    """The demo's data as plain Python numbers: rows of floats, labels mapped to -1/+1."""
    X, y = make_moons(n, noise, seed)
    return [[float(a), float(b)] for a, b in X], [int(v) * 2 - 1 for v in y]


# micrograd demo's loss, written once for any scalar type (``value`` wraps the inputs).
svm_loss = loss


def copy_weights(src, dst) -> None:
    """Copy every parameter's ``.data`` of ``src`` into ``dst`` (same architecture)."""
    ps, pd = src.parameters(), dst.parameters()
    if len(ps) != len(pd):
        raise ValueError(f"copy_weights: {len(ps)} parameters in source, {len(pd)} in destination")
    for a, b in zip(ps, pd):
        b.data = float(a.data)


def max_rel_diff(a: Sequence[float], b: Sequence[float]) -> float:
    """Largest ``|a_i - b_i| / max(|a_i|, |b_i|, 1e-300)`` (0 where both are 0)."""
    worst = 0.0
    for u, v in zip(a, b):
        u, v = float(u), float(v)
        if u == v:
            continue
        if not (math.isfinite(u) and math.isfinite(v)):
            return math.inf
        worst = max(worst, abs(u - v) / max(abs(u), abs(v), 1e-300))
    return worst


def allclose_rel(a: Sequence[float], b: Sequence[float], rtol: float = 1e-9, atol: float = 1e-12) -> Tuple[bool, int]:
    """Elementwise ``|a-b| <= atol + rtol*max(|a|,|b|)``; returns (all agree, index of worst)."""
    if len(a) != len(b):
        return False, -1
    ok, worst_i, worst_excess = True, -1, 0.0
    for i, (u, v) in enumerate(zip(a, b)):
        u, v = float(u), float(v)
        excess = abs(u - v) - (atol + rtol * max(abs(u), abs(v)))
        if not (excess <= 0):  # also catches NaN
            ok = False
            if worst_i < 0 or not (excess <= worst_excess):
                worst_i, worst_excess = i, excess
    return ok, worst_i
