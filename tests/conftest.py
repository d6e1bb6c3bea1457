"""Shared helpers of tapegrad's pytest suite."""

from __future__ import annotations

import math
import os
import pathlib
import subprocess
import sys
from typing import Callable, Iterator, Tuple

import pytest

import tapegrad as tg

# The suite compares runs bit for bit (a checkpointed run against a plain one, a replayed
# sweep against a fresh one): the matrix products' thread count is fixed, as a user who needs
# repeatable results fixes it. (Left dynamic, a product uses fewer threads when other processes
# keep the cores busy, and OpenBLAS may then sum in another order.)
tg.set_num_threads(tg.get_num_threads())

#: The op table's rows by name (tg.op_table: name, arity, reads, domain).
OPS = {row.name: row for row in tg.op_table}


def op_domain(name: str, k: int = 0) -> tuple[float, float]:
    """Where operand k of op `name` is sampled: its domain in the op table (ops.def)."""
    return OPS[name].domain[k]


def any_operand_domain(name: str) -> tuple[float, float]:
    """An interval inside the domain of every operand of op `name`: for a value that a test
    passes as either operand (``op(x, c) + op(c, x)``)."""
    row = OPS[name]
    return max(lo for lo, _ in row.domain), min(hi for _, hi in row.domain)


def fd_step(x: float) -> float:
    """The finite-difference step at x: relative to x, absolute at 0."""
    return 1e-6 if x == 0 else 1e-5 * abs(x)


def central_difference(f: Callable[[float], float], x: float, h: float | None = None) -> float:
    """f'(x) by the five-point central stencil (truncation error O(h^4)).

    f'(x) ~ (-f(x + 2h) + 8 f(x + h) - 8 f(x - h) + f(x - 2h)) / (12 h)
    """
    if h is None:
        h = fd_step(x)
    return (-f(x + 2 * h) + 8 * f(x + h) - 8 * f(x - h) + f(x - 2 * h)) / (12 * h)


def close(a: float, b: float, rel: float, abs_: float = 0.0) -> bool:
    """|a - b| <= rel * max(|a|, |b|) + abs_, with NaN equal to NaN and equal infinities equal."""
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    if math.isinf(a) or math.isinf(b):
        return a == b
    return abs(a - b) <= rel * max(abs(a), abs(b)) + abs_


def assert_close(actual: float, expected: float, rel: float, abs_: float = 0.0, what: str = "") -> None:
    assert close(actual, expected, rel, abs_), (
        f"{what}: got {actual!r}, expected {expected!r} "
        f"(difference {actual - expected!r}, rel tolerance {rel}, abs tolerance {abs_})"
    )


@pytest.fixture(scope="module")
def torch_one_thread() -> Iterator[None]:
    """torch on one thread for a module: its thread pool only slows small problems down on a
    busy machine."""
    torch = pytest.importorskip("torch")
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


@pytest.fixture
def torch():
    """PyTorch, or a skip where it is not installed."""
    return pytest.importorskip("torch")


def micrograd_more_ops() -> Tuple[tg.Var, tg.Var, tg.Var, tg.Var]:
    """micrograd's README example (its test_engine.py::test_more_ops) on tg.Value, after g.backward():
    (a, b, f, g) with g = 24.7041, dg/da = 138.8338, dg/db = 645.5773."""
    a = tg.Value(-4.0)
    b = tg.Value(2.0)
    c = a + b
    d = a * b + b**3
    c += c + 1
    c += 1 + c + (-a)
    d += d * 2 + (b + a).relu()
    d += 3 * d + (b - a).relu()
    e = c - d
    f = e**2
    g = f / 2.0
    g += 10.0 / f
    g.backward()
    return a, b, f, g


def run_fuzz_worker(script: str, seed: int, n: int, tmp_path: pathlib.Path) -> Tuple[int, int]:
    """Runs a fuzz worker (a script taking a seed and a count that ends by printing
    ``done <results> <errors>``) in a child process, so that a crash is reported instead of
    ending the test run; returns (results, errors)."""
    path = tmp_path / "fuzz.py"
    path.write_text(script)
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    proc = subprocess.run([sys.executable, str(path), str(seed), str(n)], capture_output=True, text=True, env=env,
                          timeout=120, cwd=tmp_path)  # (in its own folder: a fuzzed tg.save writes files)
    lines = proc.stdout.strip().splitlines()
    assert proc.returncode == 0 and lines and lines[-1].startswith("done"), (
        f"fuzz seed {seed} ended with exit code {proc.returncode} at: {lines[-1] if lines else '(nothing)'}\n"
        f"stderr:\n{proc.stderr[-3000:]}"
    )
    _, results, errors = lines[-1].split()
    return int(results), int(errors)
