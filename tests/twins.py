"""The same code on tapegrad and on PyTorch: helpers for the suites that run a piece of code
on both engines (``run(tg)``, ``run(torch)``) and compare what comes out. Import it after
``pytest.importorskip("torch")``."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch
from numpy.testing import assert_allclose

import tapegrad as tg

TOL = dict(rtol=1e-12, atol=1e-12)


def npy(t: Any) -> Any:
    """A tensor of either engine (or None) as a NumPy array (a copy)."""
    if t is None:
        return None
    if isinstance(t, torch.Tensor):
        return t.detach().numpy().copy()
    if isinstance(t, tg.Tensor):
        return np.array(t.numpy(), copy=True)
    return t


def leaf(m: Any, a: Any, requires_grad: bool = True) -> Any:
    """A float64 leaf of engine m (tapegrad or torch)."""
    return m.tensor(np.array(a, dtype=np.float64), requires_grad=requires_grad)


def const(m: Any, a: Any) -> Any:
    return m.tensor(np.array(a, dtype=np.float64))


def same(ours: Any, theirs: Any, what: str = "") -> None:
    """Nested lists/tuples/dicts of arrays, numbers, strings, bools and None: the same structure,
    integer and bool arrays equal, floats to 1e-12."""
    if isinstance(theirs, dict):
        assert isinstance(ours, dict) and ours.keys() == theirs.keys(), f"{what}: keys {ours!r} != {theirs!r}"
        for k in theirs:
            same(ours[k], theirs[k], f"{what}[{k!r}]")
    elif isinstance(theirs, (list, tuple)):
        assert isinstance(ours, (list, tuple)), f"{what}: {type(ours).__name__}, torch a sequence"
        assert len(ours) == len(theirs), f"{what}: {len(ours)} items, torch {len(theirs)}: {ours!r} != {theirs!r}"
        for k, (a, b) in enumerate(zip(ours, theirs)):
            same(a, b, f"{what}[{k}]")
    elif theirs is None:
        assert ours is None, f"{what}: {ours!r}, torch None"
    elif isinstance(theirs, (str, bool)):
        assert ours == theirs, f"{what}: {ours!r} != torch's {theirs!r}"
    else:
        assert ours is not None, f"{what}: None, torch {theirs!r}"
        a, b = np.asarray(ours), np.asarray(theirs)
        assert a.shape == b.shape, f"{what}: shape {a.shape} != torch's {b.shape}"
        if b.dtype.kind in "biu":
            assert a.dtype.kind == b.dtype.kind and np.array_equal(a, b), f"{what}: {a!r} != {b!r}"
        else:
            assert_allclose(a.astype(np.float64), b.astype(np.float64), err_msg=what, **TOL)


def both(run: Callable[[Any], Any]) -> Any:
    """run(tapegrad) and run(torch): the same results (as ``same`` compares); returns tapegrad's."""
    ours, theirs = run(tg), run(torch)
    same(ours, theirs, "tapegrad vs torch")
    return ours
