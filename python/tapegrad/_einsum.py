"""``tapegrad.einsum``: Einstein summation, as ``torch.einsum`` and ``numpy.einsum`` spell it,
computed with the core's recorded ops (sums, permutations, reshapes, broadcasts, products and
batched matrix products), so its gradients of every order are theirs and a recorded einsum
replays like any other op.

The operands are contracted left to right, two at a time: each letter that no later operand
and not the output needs is summed out first, the letters both share and still need become a
batch, the ones only the pair shares are the inner dimension of one batched matrix product.
"""

from __future__ import annotations

import string
from typing import Any, Dict, List, Sequence, Tuple

import numpy as np

from . import _core
from ._core import Tensor

_ops = _core.tensor_ops
_LETTERS = string.ascii_letters


def _error(equation: str, why: str) -> ValueError:
    return ValueError(f"tapegrad.einsum({equation!r}): {why}")


def _parse(equation: str, ndims: Sequence[int]) -> Tuple[List[str], str]:
    """Each operand's subscripts and the output's, with an ellipsis spelled out as letters that
    the equation does not use (one per dimension it covers, aligned to the right)."""
    eq = equation.replace(" ", "")
    lhs, arrow, rhs = eq.partition("->")
    inputs = lhs.split(",")
    if len(inputs) != len(ndims):
        raise _error(equation, f"{len(inputs)} operand subscripts for {len(ndims)} operands")
    for part in inputs + ([rhs] if arrow else []):
        rest = part.replace("...", "")
        if "." in rest or any(c not in _LETTERS for c in rest):
            raise _error(equation, f"subscripts are letters and '...', not {part!r}")
        if part.count("...") > 1:
            raise _error(equation, f"{part!r} has more than one ellipsis")
    spare = [c for c in _LETTERS if c not in eq]
    ell_dims = 0
    for part, n in zip(inputs, ndims):
        letters = len(part.replace("...", ""))
        if "..." in part:
            if letters > n:
                raise _error(equation, f"{part!r} names {letters} dimensions of an operand with {n}")
            ell_dims = max(ell_dims, n - letters)
        elif letters != n:
            raise _error(equation, f"{part!r} names {letters} dimensions of an operand with {n}")
    ell = "".join(spare[:ell_dims])
    spelled = []
    for part, n in zip(inputs, ndims):
        k = n - len(part.replace("...", ""))
        spelled.append(part.replace("...", ell[len(ell) - k:] if k else ""))
    if arrow:
        out = rhs.replace("...", ell)
        if len(set(out)) != len(out):
            raise _error(equation, f"the output {rhs!r} repeats a subscript")
        every = set("".join(spelled))
        for c in out:
            if c not in every:
                raise _error(equation, f"the output subscript {c!r} is in no operand")
    else:  # implicit: the ellipsis, then the letters used once, in alphabetical order
        counts: Dict[str, int] = {}
        for c in "".join(p.replace("...", "") for p in inputs):
            counts[c] = counts.get(c, 0) + 1
        out = ell + "".join(sorted(c for c, k in counts.items() if k == 1))
    return spelled, out


def _diagonals(x: Tensor, sub: str) -> Tuple[Tensor, str]:
    """x with each repeated subscript taken once (its diagonal: 'ii' -> 'i')."""
    while len(set(sub)) != len(sub):
        c = next(c for c in sub if sub.count(c) > 1)
        p = sub.index(c)
        q = sub.index(c, p + 1)
        n, m = x.shape[p], x.shape[q]
        if n != m:
            raise ValueError(f"tapegrad.einsum: subscript {c!r} is repeated on dimensions of sizes {n} and {m}")
        mask_shape = [1] * len(sub)
        mask_shape[p], mask_shape[q] = n, n
        mask = _core.tensor(np.eye(n).reshape(mask_shape), x.dtype)
        x = (x * mask).sum(q)
        sub = sub[:q] + sub[q + 1:]
    return x, sub


def _sum_out(x: Tensor, sub: str, keep: str) -> Tuple[Tensor, str]:
    """x summed over the subscripts not in `keep`."""
    axes = tuple(i for i, c in enumerate(sub) if c not in keep)
    if not axes:
        return x, sub
    return x.sum(axis=axes), "".join(c for c in sub if c in keep)


def _permuted(x: Tensor, sub: str, order: str) -> Tensor:
    if sub == order:
        return x
    return _ops.transpose(x, [sub.index(c) for c in order])


def _contract(a: Tensor, sa: str, b: Tensor, sb: str, needed: str) -> Tuple[Tensor, str]:
    """a and b contracted over the subscripts they share that `needed` does not hold."""
    batch = "".join(c for c in sa if c in sb and c in needed)
    inner = "".join(c for c in sa if c in sb and c not in needed)
    only_a = "".join(c for c in sa if c not in sb)
    only_b = "".join(c for c in sb if c not in sa)
    # a subscript of length 1 on one side only broadcasts (as torch's einsum does)
    for c in batch + inner:
        na, nb = a.shape[sa.index(c)], b.shape[sb.index(c)]
        if na != nb:
            if na == 1:
                a = _ops.broadcast_to(a, tuple(nb if s == c else a.shape[i] for i, s in enumerate(sa)))
            else:
                b = _ops.broadcast_to(b, tuple(na if s == c else b.shape[i] for i, s in enumerate(sb)))
    sizes = dict(zip(sa, a.shape))
    sizes.update(zip(sb, b.shape))
    nbatch = int(np.prod([sizes[c] for c in batch], dtype=np.int64))
    m = int(np.prod([sizes[c] for c in only_a], dtype=np.int64))
    k = int(np.prod([sizes[c] for c in inner], dtype=np.int64))
    n = int(np.prod([sizes[c] for c in only_b], dtype=np.int64))
    a2 = _permuted(a, sa, batch + only_a + inner).reshape(nbatch, m, k)
    b2 = _permuted(b, sb, batch + inner + only_b).reshape(nbatch, k, n)
    r = _ops.matmul(a2, b2)
    sub = batch + only_a + only_b
    return r.reshape(tuple(sizes[c] for c in sub)), sub


def einsum(equation: str, *operands: Any) -> Tensor:
    """Einstein summation over the operands' subscripts, as ``torch.einsum`` (and
    ``numpy.einsum``): ``einsum("ij,jk->ik", a, b)`` is ``a @ b``, ``einsum("bhqd,bhkd->bhqk",
    q, k)`` attention scores, ``einsum("ii", a)`` the trace; ``...`` stands for dimensions left
    unnamed, and without ``->`` the output is the subscripts used once, in alphabetical order.
    The operands may also be given as one list (``einsum(eq, [a, b])``). Differentiable to any
    order: it is computed with the core's recorded ops."""
    if not isinstance(equation, str):
        raise TypeError(f"tapegrad.einsum: the equation is a str (as 'ij,jk->ik'), not {type(equation).__name__} "
                        "(the sublist form einsum(a, [0, 1], b, [1, 2]) is not supported)")
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    if not operands:
        raise _error(equation, "needs at least one operand")
    ts = [x if isinstance(x, Tensor) else _core.tensor(x) for x in operands]
    subs, out = _parse(equation, [t.ndim for t in ts])
    sizes: Dict[str, int] = {}
    pairs = []
    for t, sub in zip(ts, subs):
        t, sub = _diagonals(t, sub)
        for c, n in zip(sub, t.shape):
            if c in sizes and sizes[c] != n and 1 not in (sizes[c], n):
                raise _error(equation, f"subscript {c!r} has size {sizes[c]} in one operand and {n} in another")
            if c not in sizes or sizes[c] == 1:
                sizes[c] = n
        pairs.append((t, sub))
    # each operand first sums what nothing after it needs
    x, sx = pairs[0]
    later = "".join(s for _, s in pairs[1:])
    x, sx = _sum_out(x, sx, out + later)
    for i in range(1, len(pairs)):
        y, sy = pairs[i]
        later = "".join(s for _, s in pairs[i + 1:])
        y, sy = _sum_out(y, sy, out + later + sx)
        x, sx = _contract(x, sx, y, sy, out + later)
    x, sx = _sum_out(x, sx, out)
    x = _permuted(x, sx, out)
    want = tuple(sizes[c] for c in out)
    if x.shape != want:  # (an output subscript of length 1 in every operand that broadcast elsewhere)
        x = _ops.broadcast_to(x, want)
    return x


__all__ = ["einsum"]
