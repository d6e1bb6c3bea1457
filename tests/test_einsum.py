"""tapegrad.einsum (tapegrad/_einsum.py): values and gradients of each equation against
central finite differences in float64 and, where it is installed, against torch.einsum on the
same inputs; second derivatives through it; the errors for equations that do not fit.
"""

from __future__ import annotations

from typing import List, Tuple

import numpy as np
import pytest
from numpy.testing import assert_allclose

import tapegrad as tg

# (equation, operand shapes): products, batches, attention, traces and diagonals, ellipses,
# implicit outputs, broadcasting of length-1 subscripts, chains, empty dimensions
CASES: List[Tuple[str, List[Tuple[int, ...]]]] = [
    ("ij,jk->ik", [(2, 3), (3, 4)]), ("ij,jk", [(2, 3), (3, 4)]), ("ij,kj->ik", [(2, 3), (4, 3)]),
    ("ii", [(3, 3)]), ("ii->i", [(3, 3)]), ("iij->j", [(3, 3, 2)]), ("iji->j", [(2, 3, 2)]),
    ("ij->ji", [(2, 3)]), ("ijk->kji", [(2, 3, 4)]), ("ij->", [(2, 3)]), ("i,i->", [(4,), (4,)]),
    ("i,j->ij", [(2,), (3,)]), ("a,b,c->abc", [(2,), (3,), (2,)]), ("ij,ij->ij", [(2, 3), (2, 3)]),
    ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)]), ("bhqd,bhkd->bhqk", [(2, 3, 4, 5), (2, 3, 6, 5)]),
    ("bhqk,bhkd->bhqd", [(2, 2, 3, 4), (2, 2, 4, 5)]), ("ijk,jil->kl", [(2, 3, 4), (3, 2, 5)]),
    ("ab,bc,cd->ad", [(2, 3), (3, 4), (4, 5)]), ("bn,anm,bm->ba", [(2, 3), (4, 3, 5), (2, 5)]),
    ("...ij,...jk->...ik", [(2, 3, 4), (4, 5)]), ("...i,...i->...", [(2, 3, 4), (3, 4)]), ("...", [(2, 3)]),
    ("i...->...", [(2, 3, 4)]), ("ij,j->i", [(3, 4), (1,)]), ("ab,ab,ab->ab", [(2, 3), (2, 3), (2, 3)]),
    ("i->", [(0,)]), ("ij,jk->ik", [(2, 0), (0, 3)]), (" ij , jk -> ik ", [(2, 3), (3, 4)]),
]


def _arrays(shapes: List[Tuple[int, ...]], seed: int) -> List[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s) for s in shapes]


@pytest.mark.parametrize("k", range(len(CASES)))
def test_einsum_values_and_gradients_against_finite_differences(k: int) -> None:
    eq, shapes = CASES[k]
    arrays = _arrays(shapes, k)
    ts = [tg.tensor(a, requires_grad=True) for a in arrays]
    out = tg.einsum(eq, *ts)
    assert_allclose(out.numpy(), np.einsum(eq.replace(" ", ""), *arrays), rtol=1e-12, atol=1e-12)
    w = np.random.default_rng(100 + k).standard_normal(out.shape)
    (out * tg.tensor(w)).sum().backward()

    def f(xs: List[np.ndarray]) -> float:
        return float((np.einsum(eq.replace(" ", ""), *xs) * w).sum())

    h = 1e-6
    for i, a in enumerate(arrays):
        fd = np.zeros_like(a)
        for idx in np.ndindex(a.shape):
            up = [x.copy() for x in arrays]
            dn = [x.copy() for x in arrays]
            up[i][idx] += h
            dn[i][idx] -= h
            fd[idx] = (f(up) - f(dn)) / (2 * h)
        assert_allclose(ts[i].grad.numpy(), fd, rtol=1e-6, atol=1e-8, err_msg=f"{eq}: operand {i}")


@pytest.mark.parametrize("k", range(len(CASES)))
def test_einsum_against_pytorch(k: int) -> None:
    torch = pytest.importorskip("torch")
    eq, shapes = CASES[k]
    arrays = _arrays(shapes, k)
    ts = [tg.tensor(a, requires_grad=True) for a in arrays]
    us = [torch.tensor(a, requires_grad=True) for a in arrays]
    out, ref = tg.einsum(eq, *ts), torch.einsum(eq, *us)
    assert out.shape == tuple(ref.shape)
    assert_allclose(out.numpy(), ref.detach().numpy(), rtol=1e-12, atol=1e-12)
    w = np.random.default_rng(100 + k).standard_normal(out.shape)
    (out * tg.tensor(w)).sum().backward()
    (ref * torch.tensor(w)).sum().backward()
    for t, u in zip(ts, us):
        assert_allclose(t.grad.numpy(), u.grad.numpy(), rtol=1e-12, atol=1e-12)
    assert_allclose(tg.einsum(eq, ts).numpy(), out.numpy())  # the list form


def test_einsum_second_derivative_and_float32() -> None:
    x = np.array([[1.0, 2.0], [3.0, -1.5]])
    a = tg.tensor(x, requires_grad=True)
    y = tg.einsum("ij,kj,kl,il->", a, a, a, a)  # tr(a a^T a a^T): its gradient is 4 a a^T a
    (g,) = tg.autograd.grad([y], [a], create_graph=True)
    assert_allclose(g.numpy(), 4 * (x @ x.T @ x), rtol=1e-12)
    (gg,) = tg.autograd.grad([g.sum()], [a])  # through the recorded einsum again
    assert_allclose(gg.numpy(), _grad_of_sum_xxtx(x), rtol=1e-7)
    f32 = tg.einsum("ij,jk->ik", tg.ones(2, 3, dtype=tg.float32), tg.ones(3, 2, dtype=tg.float32))
    assert f32.dtype == np.float32 and f32.numpy().tolist() == [[3.0, 3.0], [3.0, 3.0]]


def _grad_of_sum_xxtx(x: np.ndarray) -> np.ndarray:
    """d/dx of 4 * sum(x x^T x), by central differences."""
    h = 1e-6
    g = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        up, dn = x.copy(), x.copy()
        up[idx] += h
        dn[idx] -= h
        g[idx] = 4 * ((up @ up.T @ up).sum() - (dn @ dn.T @ dn).sum()) / (2 * h)
    return g


@pytest.mark.parametrize("eq,shapes,exc,word", [
    ("ij,jk", [(2, 3)], ValueError, "2 operand subscripts for 1"),
    ("ij->k", [(2, 3)], ValueError, "'k' is in no operand"),
    ("ij", [(2,)], ValueError, "names 2 dimensions"),
    ("i,i", [(2,), (3,)], ValueError, "size 2 in one operand and 3"),
    ("ii", [(2, 3)], ValueError, "sizes 2 and 3"),
    ("i1", [(2, 3)], ValueError, "letters"),
    ("......", [(2,)], ValueError, "more than one ellipsis"),
    ("ij->ii", [(2, 2)], ValueError, "repeats"),
    ("i.j", [(2, 2)], ValueError, "letters"),
    ("i", [], ValueError, "at least one operand"),
])
def test_einsum_errors_name_the_problem(eq: str, shapes: List[Tuple[int, ...]], exc: type, word: str) -> None:
    with pytest.raises(exc, match=word):
        tg.einsum(eq, *[tg.ones(*s) for s in shapes])
    with pytest.raises(TypeError, match="equation is a str"):
        tg.einsum(3, tg.ones(2))
