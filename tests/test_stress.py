"""Random programs over Vars, tapes, clears, value updates and backward passes.

Whatever the sequence, tapegrad either computes or raises a clear Python exception: it never
crashes, and every gradient it computes matches the one recomputed from scratch.
"""

from __future__ import annotations

import math
import random

import pytest

import tapegrad as tg

UNARY = ["exp", "sin", "tanh", "sigmoid", "softplus", "relu", "abs", "atan", "erf", "neg"]
BINARY = ["add", "sub", "mul", "max", "min", "atan2"]


def build(rng: random.Random, leaves: list, depth: int):
    """A random expression over the leaves; returns it."""
    pool = list(leaves) + [rng.uniform(-2, 2) for _ in range(2)]
    for _ in range(depth):
        if rng.random() < 0.4:
            x = rng.choice(pool)
            pool.append(getattr(tg, rng.choice(UNARY))(x))
        else:
            a, b = rng.choice(pool), rng.choice(pool)
            pool.append(getattr(tg, rng.choice(BINARY))(a, b))
    out = pool[-1]
    return out if isinstance(out, tg.Var) else leaves[0] * out


def reference_grad(expr_seed: int, values: list[float], depth: int) -> list[float]:
    """The same expression rebuilt on fresh leaves, on a fresh tape."""
    with tg.Tape():
        leaves = [tg.Var(v) for v in values]
        y = build(random.Random(expr_seed), leaves, depth)
        y.backward()
        return [leaf.grad for leaf in leaves]


@pytest.mark.parametrize("seed", range(40))
def test_random_programs_never_crash_and_agree(seed: int) -> None:
    rng = random.Random(seed)
    leaves = [tg.Var(rng.uniform(-2, 2)) for _ in range(4)]
    live: list = []
    tapes = [tg.Tape() for _ in range(2)]
    for _ in range(60):
        action = rng.random()
        try:
            if action < 0.35:
                expr_seed = rng.randrange(1 << 30)
                depth = rng.randrange(1, 12)
                tape = rng.choice(tapes + [None])
                if tape is None:
                    y = build(random.Random(expr_seed), leaves, depth)
                else:
                    with tape:
                        y = build(random.Random(expr_seed), leaves, depth)
                for leaf in leaves:
                    leaf.grad = 0.0
                y.backward()
                want = reference_grad(expr_seed, [leaf.data for leaf in leaves], depth)
                got = [leaf.grad for leaf in leaves]
                for g, w in zip(got, want):
                    assert g == w or (math.isnan(g) and math.isnan(w)) or abs(g - w) <= 1e-12 * max(1.0, abs(w))
                live.append(y)
            elif action < 0.5 and live:
                y = rng.choice(live)
                z = y * rng.choice(live + leaves) + 1.0  # may be stale, or from two tapes
                live.append(z)
            elif action < 0.6:
                rng.choice(tapes).clear()
            elif action < 0.7:
                rng.choice(leaves).data = rng.uniform(-2, 2)
            elif action < 0.8 and live:
                live.pop(rng.randrange(len(live)))
            elif action < 0.9 and live:
                rng.choice(live).backward(gradient=rng.uniform(-1, 1))
            else:
                rng.choice(tapes).collect()
        except RuntimeError as e:
            assert "stale" in str(e) or "different tapes" in str(e)
