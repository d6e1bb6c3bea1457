"""tapegrad.random: PyTorch's RNG API on NumPy's PCG64 (reproducibility, independence, shapes,
dtypes, distributions, errors). The distribution checks draw 10^5 samples at a fixed seed and
allow 5 standard errors or more, so they cannot fail by chance."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

import tapegrad as tg
import tapegrad.random as tgr

N = 100_000


def default_float() -> np.dtype:
    return np.dtype(tg.get_default_dtype())


def draws(g: tgr.Generator) -> list:
    """One value of every sampler, from generator g."""
    return [
        tgr.rand(3, generator=g).numpy(),
        tgr.randn(2, 2, generator=g).numpy(),
        tgr.randint(0, 100, (4,), generator=g).numpy(),
        tgr.randperm(7, generator=g).numpy(),
        tgr.normal(tg.zeros(3), 2.0, generator=g).numpy(),
        tgr.bernoulli(tg.full((5,), 0.5), generator=g).numpy(),
        tgr.multinomial(tg.tensor([1.0, 2.0, 3.0]), 2, generator=g).numpy(),
    ]


def same(a: list, b: list) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(a, b))


# --- generators and seeds --------------------------------------------------------------------------


def test_same_seed_same_numbers():
    assert same(draws(tgr.Generator(5)), draws(tgr.Generator(5)))
    assert not same(draws(tgr.Generator(5)), draws(tgr.Generator(6)))


def test_manual_seed_restarts_the_stream():
    g = tgr.Generator(1)
    first = draws(g)
    assert not same(first, draws(g))  # the stream moves on
    assert g.manual_seed(1) is g
    assert same(first, draws(g))
    assert g.initial_seed() == 1


def test_global_manual_seed_reseeds_the_default_generator():
    with tgr.fork_rng():
        assert tgr.manual_seed(11) is tgr.default_generator
        assert tgr.initial_seed() == 11
        first = draws(None)
        tgr.manual_seed(11)
        assert same(first, draws(None))
        assert same(first, draws(tgr.Generator(11)))


def test_generators_are_independent():
    g1, g2 = tgr.Generator(3), tgr.Generator(3)
    default_before = tgr.get_rng_state()
    draws(g1)
    draws(g1)
    assert same(draws(g2), draws(tgr.Generator(3)))  # g1's draws did not move g2
    assert tgr.get_rng_state() == default_before  # nor the default generator


def test_seeds_and_initial_seed_match_torch():
    torch = pytest.importorskip("torch")
    assert tgr.Generator().initial_seed() == torch.Generator().initial_seed() == 67280421310721
    for seed in (0, 1, 2**63, 2**64 - 1, -1, -(2**63)):
        tg_gen, torch_gen = tgr.Generator(), torch.Generator()
        tg_gen.manual_seed(seed)
        torch_gen.manual_seed(seed)
        assert tg_gen.initial_seed() == torch_gen.initial_seed()
    assert tgr.Generator(np.int64(9)).initial_seed() == 9


def test_seed_is_fresh_and_reproducible():
    g = tgr.Generator(0)
    s1 = g.seed()
    assert g.initial_seed() == s1 and 0 <= s1 < 2**64
    after = draws(g)
    assert same(after, draws(tgr.Generator(s1)))
    assert g.seed() != s1
    with tgr.fork_rng():
        s = tgr.seed()
        assert tgr.initial_seed() == s


def test_state_round_trips_exactly():
    g = tgr.Generator(21)
    draws(g)
    state = g.get_state()
    after = draws(g)
    assert not same(after, draws(g))
    assert g.set_state(state) is g
    assert same(after, draws(g))
    restored = tgr.Generator(0).set_state(pickle.loads(pickle.dumps(state)))  # picklable
    g.set_state(state)
    assert same(draws(restored), draws(g))
    assert restored.initial_seed() == 21


def test_get_state_is_a_snapshot():
    g = tgr.Generator(2)
    state = g.get_state()
    copy = pickle.loads(pickle.dumps(state))
    draws(g)
    assert state == copy


def test_rng_state_of_the_default_generator():
    with tgr.fork_rng():
        state = tgr.get_rng_state()
        first = tgr.rand(5).numpy().copy()
        tgr.set_rng_state(state)
        assert np.array_equal(tgr.rand(5).numpy(), first)


def test_fork_rng_restores_the_default_state():
    before = tgr.get_rng_state()
    with tgr.fork_rng():
        tgr.manual_seed(0)
        tgr.rand(10)
    assert tgr.get_rng_state() == before
    with tgr.fork_rng(enabled=False):
        tgr.rand(10)
    assert tgr.get_rng_state() != before


def test_generator_pickles_with_its_stream():
    g = tgr.Generator(8)
    draws(g)
    clone = pickle.loads(pickle.dumps(g))
    assert same(draws(clone), draws(g))


# --- shapes and dtypes ---------------------------------------------------------------------------


@pytest.mark.parametrize("size", [(2, 3), ((2, 3),), ([2, 3],), ((),), (0,), (4, 0, 2), (5,)])
def test_size_spellings_as_torch(size):
    torch = pytest.importorskip("torch")
    expected = tuple(torch.rand(*size).shape)
    for fn in (tgr.rand, tgr.randn):
        t = fn(*size)
        assert t.shape == expected
        assert t.dtype == default_float()
    assert tgr.randint(5, expected).shape == expected


def test_dtypes():
    for fn in (tgr.rand, tgr.randn):
        assert fn(3, dtype=tg.float32).dtype == np.float32
        assert fn(3, dtype=tg.float64).dtype == np.float64
    assert tgr.randint(3, (2,)).dtype == np.int64
    assert tgr.randint(3, (2,), dtype=tg.float32).dtype == np.float32
    assert tgr.randperm(4).dtype == np.int64
    assert tgr.randperm(4, dtype=tg.float64).dtype == np.float64
    assert tgr.normal(0.0, 1.0, (2,)).dtype == default_float()
    assert tgr.normal(tg.zeros(2, dtype=tg.float32), 1.0).dtype == np.float32
    assert tgr.bernoulli(tg.full((2,), 0.5, dtype=tg.float32)).dtype == np.float32
    assert tgr.multinomial(tg.ones(3), 2).dtype == np.int64


def test_default_dtype_is_followed():
    previous = tg.get_default_dtype()
    try:
        tg.set_default_dtype(tg.float32)
        assert tgr.rand(2).dtype == np.float32
        assert tgr.normal(0.0, 1.0, (2,)).dtype == np.float32
    finally:
        tg.set_default_dtype(previous)


def test_requires_grad():
    for fn in (tgr.rand, tgr.randn):
        t = fn(2, 3, requires_grad=True)
        assert t.requires_grad and t.is_leaf
        assert not fn(2).requires_grad
    assert tgr.normal(0.0, 1.0, (2,), requires_grad=True).requires_grad


def test_like_functions_follow_the_input():
    x = tg.zeros((2, 3), dtype=tg.float32)
    for fn in (tgr.rand_like, tgr.randn_like):
        assert fn(x).shape == (2, 3) and fn(x).dtype == np.float32
        assert fn(x, dtype=tg.float64).dtype == np.float64
        assert fn(x, requires_grad=True).requires_grad
    r = tgr.randint_like(x, 4)
    assert r.shape == (2, 3) and r.dtype == np.float32
    assert set(r.numpy().ravel()) <= {0.0, 1.0, 2.0, 3.0}
    r = tgr.randint_like(tg.zeros(1000, dtype=tg.int64), 5, 7)
    assert r.dtype == np.int64 and set(r.numpy().tolist()) == {5, 6}
    g1, g2 = tgr.Generator(4), tgr.Generator(4)
    expected = tgr.rand(2, 3, dtype=tg.float32, generator=g2).numpy()
    assert np.array_equal(tgr.rand_like(x, generator=g1).numpy(), expected)


# --- distributions -------------------------------------------------------------------------------


def test_rand_is_uniform_on_0_1():
    g = tgr.Generator(0)
    for dtype in (tg.float64, tg.float32):
        u = tgr.rand(N, generator=g, dtype=dtype).numpy()
        assert u.min() >= 0.0 and u.max() < 1.0
        assert abs(u.mean() - 0.5) < 0.005  # standard error 9e-4
        assert abs(u.var() - 1 / 12) < 0.0015  # standard error 2.4e-4
        assert abs(np.mean(u < 0.25) - 0.25) < 0.007  # standard error 1.4e-3


def test_randn_is_standard_normal():
    g = tgr.Generator(0)
    for dtype in (tg.float64, tg.float32):
        z = tgr.randn(N, generator=g, dtype=dtype).numpy()
        assert abs(z.mean()) < 0.02  # standard error 3.2e-3
        assert abs(z.std() - 1) < 0.015  # standard error 2.2e-3
        assert abs(np.mean(z < -1.0) - 0.158655) < 0.006  # standard error 1.2e-3


def test_randint_bounds_and_frequencies():
    r = tgr.randint(-3, 4, (N,), generator=tgr.Generator(0)).numpy()
    assert r.min() == -3 and r.max() == 3
    counts = np.bincount(r + 3)
    assert len(counts) == 7
    assert np.all(np.abs(counts - N / 7) < 1000)  # standard deviation 111


@pytest.mark.parametrize("call, low, high", [
    (lambda g: tgr.randint(5, (200,), generator=g), 0, 5),
    (lambda g: tgr.randint(2, 5, (200,), generator=g), 2, 5),
    (lambda g: tgr.randint(5, size=(200,), generator=g), 0, 5),
    (lambda g: tgr.randint(low=2, high=5, size=(200,), generator=g), 2, 5),
    (lambda g: tgr.randint(high=3, size=200, generator=g), 0, 3),
])
def test_randint_forms(call, low, high):
    r = call(tgr.Generator(1)).numpy()
    assert set(r.tolist()) == set(range(low, high))


def test_randperm_is_a_permutation():
    g = tgr.Generator(0)
    for n in (0, 1, 2, 1000):
        p = tgr.randperm(n, generator=g).numpy()
        assert p.shape == (n,)
        assert np.array_equal(np.sort(p), np.arange(n))
    assert not np.array_equal(tgr.randperm(1000, generator=g).numpy(), np.arange(1000))


def test_normal_forms_and_broadcasting():
    torch = pytest.importorskip("torch")
    cases = [
        ((tg.zeros(4), 1.0), (torch.zeros(4), 1.0)),
        ((0.0, tg.ones(4)), (0.0, torch.ones(4))),
        ((tg.zeros((2, 1)), tg.ones(3)), (torch.zeros(2, 1), torch.ones(3))),
        ((0.0, 1.0, (2, 5)), (0.0, 1.0, (2, 5))),
    ]
    for ours, theirs in cases:
        assert tgr.normal(*ours).shape == tuple(torch.normal(*theirs).shape)


def test_normal_statistics():
    g = tgr.Generator(0)
    z = tgr.normal(3.0, 2.0, (N,), generator=g).numpy()
    assert abs(z.mean() - 3) < 0.04 and abs(z.std() - 2) < 0.03  # standard errors 6.3e-3, 4.5e-3
    mean = tg.tensor(np.repeat([[-10.0], [10.0]], N // 2, axis=1))
    std = tg.tensor([[0.5], [3.0]])
    z = tgr.normal(mean, std, generator=g).numpy()
    assert np.all(np.abs(z.mean(axis=1) - [-10, 10]) < [0.02, 0.1])  # standard errors 2.2e-3, 1.3e-2
    assert np.all(np.abs(z.std(axis=1) - [0.5, 3.0]) < [0.01, 0.06])
    assert np.array_equal(tgr.normal(tg.full((3,), 7.0), 0.0).numpy(), [7.0, 7.0, 7.0])


def test_bernoulli():
    g = tgr.Generator(0)
    b = tgr.bernoulli(tg.full((N,), 0.3), generator=g).numpy()
    assert set(np.unique(b).tolist()) == {0.0, 1.0}
    assert abs(b.mean() - 0.3) < 0.01  # standard error 1.4e-3
    p = tg.tensor([0.0, 1.0] * 50)
    assert np.array_equal(tgr.bernoulli(p, generator=g).numpy(), p.numpy())
    b = tgr.bernoulli(tg.zeros(N), 0.8, generator=g).numpy()
    assert abs(b.mean() - 0.8) < 0.01


def test_multinomial_with_replacement():
    g = tgr.Generator(0)
    probs = tg.tensor([1.0, 0.0, 2.0, 3.0, 4.0])  # unnormalised, with a zero
    s = tgr.multinomial(probs, N, replacement=True, generator=g).numpy()
    assert s.shape == (N,)
    freq = np.bincount(s, minlength=5) / N
    assert freq[1] == 0
    assert np.all(np.abs(freq - [0.1, 0.0, 0.2, 0.3, 0.4]) < 0.01)  # standard errors <= 1.6e-3
    rows = tgr.multinomial(tg.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 5.0]]), 4, replacement=True, generator=g)
    assert np.array_equal(rows.numpy(), [[0, 0, 0, 0], [2, 2, 2, 2]])


def test_multinomial_without_replacement():
    g = tgr.Generator(0)
    probs = tg.tensor(np.ones((50, 10)))
    s = tgr.multinomial(probs, 10, generator=g).numpy()
    assert s.shape == (50, 10)
    assert all(np.array_equal(np.sort(row), np.arange(10)) for row in s)  # each row a permutation
    s = tgr.multinomial(tg.tensor([0.0, 1.0, 0.0, 1.0, 1.0]), 3, generator=g).numpy()
    assert sorted(s.tolist()) == [1, 3, 4]  # zero probabilities never drawn
    first = [tgr.multinomial(tg.tensor([0.9, 0.1]), 1, generator=g).item() for _ in range(2000)]
    assert abs(np.mean(first) - 0.1) < 0.035  # standard error 6.7e-3


# --- in-place initialisers -----------------------------------------------------------------------


def test_uniform_in_place():
    t = tg.zeros(N, dtype=tg.float32, requires_grad=True)
    view = t.numpy()
    with tg.no_grad():  # (a leaf that requires grad is changed in place under no_grad, as in torch)
        assert t.uniform_(-2.0, 3.0, tgr.Generator(0)) is t
    assert t.dtype == np.float32 and t.requires_grad and t.is_leaf
    assert view.min() >= -2 and view.max() < 3  # written in place
    assert abs(view.mean() - 0.5) < 0.03  # standard error 4.6e-3
    again = tg.zeros(N, dtype=tg.float32).uniform_(-2.0, 3.0, tgr.Generator(0))
    assert np.array_equal(again.numpy(), view)


def test_normal_in_place():
    t = tg.zeros((N // 100, 100), requires_grad=True)
    with tg.no_grad():
        assert t.normal_(5.0, 0.1, tgr.Generator(0)) is t
    v = t.numpy()
    assert t.requires_grad and t.is_leaf
    assert abs(v.mean() - 5) < 0.002 and abs(v.std() - 0.1) < 0.0015  # standard errors 3.2e-4, 2.2e-4
    with tgr.fork_rng():
        tgr.manual_seed(3)
        a = tg.zeros(4).normal_(0.0, 1.0).numpy().copy()
        tgr.manual_seed(3)
        assert np.array_equal(tgr.randn(4).numpy(), a)


# --- errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize("call, error, match", [
    (lambda: tgr.rand(2, generator=np.random.default_rng()), TypeError, "numpy.random._generator.Generator"),
    (lambda: tgr.randn(2, generator=3), TypeError, "got builtins.int"),
    (lambda: tgr.rand(2, -1), ValueError, "negative dimension"),
    (lambda: tgr.randn((3, -2)), ValueError, "negative dimension"),
    (lambda: tgr.rand(2.5), TypeError, "size must be an integer, got float"),
    (lambda: tgr.rand(True), TypeError, "size must be an integer, got bool"),
    (lambda: tgr.rand(2, dtype=tg.int64), TypeError, "floating dtype"),
    (lambda: tgr.randn_like(tg.zeros(2, dtype=tg.int64)), TypeError, "floating dtype"),
    (lambda: tgr.rand_like(np.zeros(2)), TypeError, "Tensor, got ndarray"),
    (lambda: tgr.randint(3, 3, (1,)), ValueError, r"high \(3\) must be greater than low \(3\)"),
    (lambda: tgr.randint(5, 2, (1,)), ValueError, "greater than low"),
    (lambda: tgr.randint(0, (2,)), ValueError, "greater than low"),
    (lambda: tgr.randint(5), TypeError, "needs a size"),
    (lambda: tgr.randint(0.5, 3, (2,)), TypeError, "low must be an integer"),
    (lambda: tgr.randint(10, (2, -1)), ValueError, "negative dimension"),
    (lambda: tgr.randperm(2.5), TypeError, "n must be an integer, got float"),
    (lambda: tgr.randperm(-1), ValueError, "n must be >= 0"),
    (lambda: tgr.normal(0.0, -1.0, (2,)), ValueError, "std must be >= 0"),
    (lambda: tgr.normal(tg.zeros(2), tg.tensor([1.0, np.nan])), ValueError, "std must be >= 0"),
    (lambda: tgr.normal(0.0, 1.0), TypeError, "give a size"),
    (lambda: tgr.normal(tg.zeros(2), 1.0, (3,)), ValueError, "do not broadcast"),
    (lambda: tgr.normal(tg.zeros(2, dtype=tg.int64), 1.0), TypeError, "floating dtype"),
    (lambda: tgr.bernoulli(tg.tensor([0.5, 1.5])), ValueError, r"in \[0, 1\]"),
    (lambda: tgr.bernoulli(tg.tensor([-0.1])), ValueError, r"in \[0, 1\]"),
    (lambda: tgr.bernoulli(tg.zeros(2), 2.0), ValueError, r"in \[0, 1\]"),
    (lambda: tgr.multinomial(tg.zeros(3), 1), ValueError, "sum to 0"),
    (lambda: tgr.multinomial(tg.tensor([[1.0, 1.0], [0.0, 0.0]]), 1), ValueError, "row 1 sum to 0"),
    (lambda: tgr.multinomial(tg.tensor([1.0, -1.0, 2.0]), 1), ValueError, "non-negative"),
    (lambda: tgr.multinomial(tg.tensor([1.0, np.inf]), 1), ValueError, "finite"),
    (lambda: tgr.multinomial(tg.tensor([1.0, 0.0, 1.0]), 3), ValueError, "without replacement"),
    (lambda: tgr.multinomial(tg.ones(3), 0), ValueError, "num_samples must be positive"),
    (lambda: tgr.multinomial(tg.ones(3), 1.0), TypeError, "num_samples must be an integer"),
    (lambda: tgr.multinomial(tg.ones((2, 2, 2)), 1), ValueError, "1-d or 2-d"),
    (lambda: tgr.multinomial(tg.ones(0), 1), ValueError, "1-d or 2-d"),
    (lambda: tgr.Generator(1.5), TypeError, "seed must be an integer, got float"),
    (lambda: tgr.manual_seed("1"), TypeError, "seed must be an integer, got str"),
    (lambda: tgr.Generator(2**64), ValueError, "seed must be in"),
    (lambda: tgr.Generator(-(2**63) - 1), ValueError, "seed must be in"),
    (lambda: tgr.Generator().set_state("state"), TypeError, "get_state"),
    (lambda: tg.zeros(2).uniform_(3.0, 1.0), ValueError, "a <= b"),
    (lambda: tg.zeros(2, dtype=tg.int64).uniform_(0.0, 1.0), TypeError, "floating dtype"),
    (lambda: tg.zeros(2).normal_(0.0, -1.0), ValueError, "std must be >= 0"),
])
def test_bad_arguments_raise_clear_errors(call, error, match):
    with tgr.fork_rng():
        with pytest.raises(error, match=match):
            call()
