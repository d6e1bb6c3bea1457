"""tapegrad.utils.data: datasets, samplers, DataLoader, default_collate and random_split,
checked against torch.utils.data where the behaviour is deterministic."""

from __future__ import annotations

import collections

import numpy as np
import pytest

import tapegrad as tg
import tapegrad.random as tgr
from tapegrad.utils.data import (
    BatchSampler,
    DataLoader,
    Dataset,
    RandomSampler,
    SequentialSampler,
    Subset,
    TensorDataset,
    default_collate,
    random_split,
)


def make_dataset(n: int, features: int = 3) -> TensorDataset:
    """Sample i is (x[i] = [i, i + 0.5, ...], y[i] = i), so a batch shows which samples it holds."""
    x = np.arange(n, dtype=np.float64)[:, None] + 0.5 * np.arange(features)
    return TensorDataset(tg.tensor(x), tg.arange(n))


def labels(loader) -> list:
    """The y of every batch of one pass, in order."""
    return [y.numpy().tolist() for _, y in loader]


# --- datasets ------------------------------------------------------------------------------------


def test_tensor_dataset():
    ds = make_dataset(5)
    assert len(ds) == 5
    x, y = ds[3]
    assert np.array_equal(x.numpy(), [3.0, 3.5, 4.0]) and y.item() == 3
    with pytest.raises(ValueError, match=r"first dimensions differ: \[5, 4\]"):
        TensorDataset(tg.zeros(5), tg.zeros(4))
    with pytest.raises(ValueError, match="at least one tensor"):
        TensorDataset()
    with pytest.raises(TypeError, match="at least one dimension"):
        TensorDataset(tg.tensor(1.0))
    with pytest.raises(TypeError, match="at least one dimension"):
        TensorDataset(np.zeros(3))


def test_subset():
    ds = make_dataset(10)
    sub = Subset(ds, [7, 2, 9])
    assert len(sub) == 3
    assert sub[0][1].item() == 7 and sub[-1][1].item() == 9
    assert sub[[0, 1]][1].numpy().tolist() == [7, 2]


def test_dataset_base_needs_getitem():
    with pytest.raises(NotImplementedError, match="must define __getitem__"):
        Dataset()[0]


# --- DataLoader: batches -------------------------------------------------------------------------


@pytest.mark.parametrize("n", [0, 1, 10, 11, 12])
@pytest.mark.parametrize("batch_size", [1, 3, 4, 12, 20])
@pytest.mark.parametrize("drop_last", [False, True])
def test_batch_counts_and_shapes_as_torch(n, batch_size, drop_last):
    torch = pytest.importorskip("torch")
    ours = DataLoader(make_dataset(n), batch_size=batch_size, drop_last=drop_last)
    theirs = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(torch.zeros(n, 3), torch.arange(n)), batch_size=batch_size, drop_last=drop_last)
    assert len(ours) == len(theirs)
    ours_batches, their_batches = list(ours), list(theirs)
    assert len(ours_batches) == len(their_batches) == len(ours)
    for (x, y), (tx, ty) in zip(ours_batches, their_batches):
        assert x.shape == tuple(tx.shape) and y.shape == tuple(ty.shape)
        assert y.numpy().tolist() == ty.tolist()  # sequential: the same samples
        assert np.array_equal(x.numpy()[:, 0], y.numpy())


def test_batches_are_lists_of_tensors_as_torch():
    batch = next(iter(DataLoader(make_dataset(6), batch_size=4)))
    assert isinstance(batch, list) and len(batch) == 2
    x, y = batch
    assert x.dtype == np.float64 and y.dtype == np.int64
    assert np.array_equal(x.numpy(), make_dataset(6).tensors[0].numpy()[:4])


def test_fast_path_equals_collating_samples():
    ds = make_dataset(23)
    for shuffle in (False, True):
        fast = list(DataLoader(ds, batch_size=5, shuffle=shuffle, generator=tgr.Generator(3)))
        slow = list(DataLoader(ds, batch_size=5, shuffle=shuffle, generator=tgr.Generator(3),
                               collate_fn=default_collate))
        assert len(fast) == len(slow) == 5
        for a, b in zip(fast, slow):
            assert type(a) is type(b) is list
            for ta, tb in zip(a, b):
                assert ta.dtype == tb.dtype and np.array_equal(ta.numpy(), tb.numpy())


def test_subclass_with_its_own_getitem_is_honoured():
    class Doubled(TensorDataset):
        def __getitem__(self, index):
            x, y = super().__getitem__(index)
            return x * 2, y

    x, y = next(iter(DataLoader(Doubled(*make_dataset(4).tensors), batch_size=4)))
    assert np.array_equal(x.numpy()[:, 0], [0.0, 2.0, 4.0, 6.0])


def test_batches_of_a_tensor_that_requires_grad_carry_the_gradient():
    x = tg.tensor(np.arange(6.0), requires_grad=True)
    loader = DataLoader(TensorDataset(x), batch_size=4, shuffle=True, generator=tgr.Generator(0))
    (batch,) = next(iter(loader))
    assert batch.requires_grad
    (batch * batch).sum().backward()
    expected = np.zeros(6)
    expected[batch.numpy().astype(int)] = 2 * batch.numpy()
    assert np.array_equal(x.grad.numpy(), expected)


def test_batches_of_subsets_of_a_tensor_dataset():
    ds = make_dataset(30)
    inner = Subset(ds, list(range(29, -1, -1)))  # reversed
    outer = Subset(inner, [0, 5, 10, 15, 20, 25, 29])
    assert labels(DataLoader(outer, batch_size=3)) == [[29, 24, 19], [14, 9, 4], [0]]
    x, _ = next(iter(DataLoader(outer, batch_size=2)))
    assert np.array_equal(x.numpy(), ds.tensors[0].numpy()[[29, 24]])


def test_a_custom_dataset_of_dicts():
    class Squares(Dataset):
        def __len__(self):
            return 5

        def __getitem__(self, i):
            return {"x": tg.tensor([float(i), float(i * i)]), "label": i, "name": f"s{i}"}

    batches = list(DataLoader(Squares(), batch_size=2))
    assert len(batches) == 3
    assert np.array_equal(batches[1]["x"].numpy(), [[2.0, 4.0], [3.0, 9.0]])
    assert batches[1]["label"].numpy().tolist() == [2, 3] and batches[1]["label"].dtype == np.int64
    assert batches[2]["name"] == ["s4"]


def test_a_plain_list_as_dataset():
    assert [b.numpy().tolist() for b in DataLoader([1.5, 2.5, 3.5], batch_size=2)] == [[1.5, 2.5], [3.5]]


# --- DataLoader: shuffling -----------------------------------------------------------------------


def test_shuffle_sees_every_sample_once_per_epoch_and_reshuffles():
    loader = DataLoader(make_dataset(100), batch_size=8, shuffle=True, generator=tgr.Generator(0))
    epochs = [sum(labels(loader), []) for _ in range(3)]
    for order in epochs:
        assert sorted(order) == list(range(100))
    assert epochs[0] != list(range(100))
    assert epochs[0] != epochs[1] != epochs[2]


def test_shuffle_is_reproducible_for_a_seeded_generator():
    def orders(seed):
        loader = DataLoader(make_dataset(50), batch_size=7, shuffle=True, generator=tgr.Generator(seed))
        return [labels(loader) for _ in range(2)]

    assert orders(1) == orders(1)
    assert orders(1) != orders(2)


def test_shuffle_uses_the_default_generator():
    loader = DataLoader(make_dataset(50), batch_size=10, shuffle=True)
    with tgr.fork_rng():
        tgr.manual_seed(5)
        first = labels(loader)
        tgr.manual_seed(5)
        assert labels(loader) == first
        assert first == labels(DataLoader(make_dataset(50), batch_size=10, shuffle=True,
                                          generator=tgr.Generator(5)))


def test_shuffle_with_drop_last():
    loader = DataLoader(make_dataset(50), batch_size=8, shuffle=True, drop_last=True, generator=tgr.Generator(0))
    batches = labels(loader)
    assert len(batches) == len(loader) == 6
    assert all(len(b) == 8 for b in batches)
    seen = sum(batches, [])
    assert len(set(seen)) == 48


def test_num_workers_runs_in_process():
    ds = make_dataset(20)
    assert labels(DataLoader(ds, batch_size=6, num_workers=2)) == labels(DataLoader(ds, batch_size=6))
    loader = DataLoader(ds, batch_size=6, num_workers=3, pin_memory=True, persistent_workers=True, prefetch_factor=2)
    assert loader.num_workers == 3 and len(list(loader)) == 4


# --- samplers ------------------------------------------------------------------------------------


def test_sequential_sampler():
    s = SequentialSampler(range(5))
    assert list(s) == [0, 1, 2, 3, 4] and len(s) == 5


def test_random_sampler():
    ds = range(20)
    s = RandomSampler(ds, generator=tgr.Generator(0))
    a, b = list(s), list(s)
    assert sorted(a) == sorted(b) == list(range(20)) and a != b and len(s) == 20
    s = RandomSampler(ds, num_samples=50, generator=tgr.Generator(0))  # whole permutations, then part of one
    drawn = list(s)
    assert len(drawn) == len(s) == 50
    assert sorted(drawn[:40]) == sorted(list(range(20)) * 2)
    counts = np.bincount(drawn, minlength=20)
    assert counts.min() >= 2 and counts.max() <= 3
    s = RandomSampler(ds, replacement=True, num_samples=1000, generator=tgr.Generator(0))
    drawn = list(s)
    assert len(drawn) == 1000 and set(drawn) == set(range(20))  # P(one index missed) < 20 * 0.95**1000


@pytest.mark.parametrize("n, batch_size, drop_last", [(10, 3, False), (10, 3, True), (9, 3, True), (2, 5, False),
                                                      (2, 5, True)])
def test_batch_sampler_as_torch(n, batch_size, drop_last):
    torch = pytest.importorskip("torch")
    ours = BatchSampler(SequentialSampler(range(n)), batch_size, drop_last)
    theirs = torch.utils.data.BatchSampler(torch.utils.data.SequentialSampler(range(n)), batch_size, drop_last)
    assert list(ours) == list(theirs)
    assert len(ours) == len(theirs)


def test_custom_sampler_and_batch_sampler():
    ds = make_dataset(10)
    assert labels(DataLoader(ds, batch_size=2, sampler=[9, 0, 5])) == [[9, 0], [5]]
    loader = DataLoader(ds, batch_sampler=[[1, 2, 3], [0], [8, 8]])
    assert labels(loader) == [[1, 2, 3], [0], [8, 8]] and len(loader) == 3
    assert loader.batch_size is None


# --- default_collate -----------------------------------------------------------------------------


def to_plain(batch):
    """A collated batch (tapegrad's or torch's) as plain Python: tensors become (dtype name, values)."""
    if hasattr(batch, "numpy") and not isinstance(batch, np.ndarray):
        a = batch.numpy()
        return (a.dtype.name, a.tolist())
    if isinstance(batch, dict):
        return {k: to_plain(v) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return (type(batch).__name__, [to_plain(v) for v in batch])
    return batch


Point = collections.namedtuple("Point", ["x", "y"])


def test_default_collate_as_torch():
    torch = pytest.importorskip("torch")
    samples = [
        [1.5, 2.5],
        [1, 2],
        [True, False],
        [np.float32(1.5), np.float32(2.0)],
        [np.array([1, 2]), np.array([3, 4])],
        [(1.0, 2), (3.0, 4)],
        [[1.0, 2.0], [3.0, 4.0]],
        [{"a": 1.0, "b": (1, "u")}, {"a": 2.0, "b": (2, "v")}],
        ["s", "t"],
        [Point(1.0, 2), Point(3.0, 4)],
    ]
    for batch in samples:
        assert to_plain(default_collate(batch)) == to_plain(torch.utils.data.default_collate(batch)), batch
    ours = default_collate([(tg.tensor([1.0, 2.0]), tg.tensor(3)), (tg.tensor([4.0, 5.0]), tg.tensor(6))])
    theirs = torch.utils.data.default_collate([(torch.tensor([1.0, 2.0], dtype=torch.float64), torch.tensor(3)),
                                               (torch.tensor([4.0, 5.0], dtype=torch.float64), torch.tensor(6))])
    assert to_plain(ours) == to_plain(theirs)
    assert isinstance(default_collate([Point(1.0, 2), Point(3.0, 4)]), Point)
    ordered = default_collate([collections.OrderedDict(a=1), collections.OrderedDict(a=2)])
    assert type(ordered) is collections.OrderedDict


def test_default_collate_errors():
    with pytest.raises(RuntimeError, match="equal size"):
        default_collate([[1, 2], [3]])
    with pytest.raises(TypeError, match="found <class 'object'>"):
        default_collate([object(), object()])


# --- random_split --------------------------------------------------------------------------------


@pytest.mark.parametrize("n, lengths", [(10, [3, 7]), (10, [0.3, 0.3, 0.4]), (11, [0.5, 0.5]), (7, [0.2, 0.3, 0.5]),
                                        (100, [0.8, 0.2])])
def test_random_split_lengths_as_torch(n, lengths):
    torch = pytest.importorskip("torch")
    ours = random_split(make_dataset(n), lengths, generator=tgr.Generator(0))
    theirs = torch.utils.data.random_split(range(n), lengths, generator=torch.Generator().manual_seed(0))
    assert [len(s) for s in ours] == [len(s) for s in theirs]
    indices = sum((list(s.indices) for s in ours), [])
    assert sorted(indices) == list(range(n))  # disjoint, covering


def test_random_split_is_reproducible_and_random():
    ds = make_dataset(40)
    a = [s.indices for s in random_split(ds, [10, 30], generator=tgr.Generator(1))]
    b = [s.indices for s in random_split(ds, [10, 30], generator=tgr.Generator(1))]
    c = [s.indices for s in random_split(ds, [10, 30], generator=tgr.Generator(2))]
    assert a == b and a != c
    assert sorted(a[0] + a[1]) == list(range(40)) and a[0] + a[1] != list(range(40))


def test_random_split_errors_and_warnings():
    ds = make_dataset(10)
    with pytest.raises(ValueError, match="sum to 9, not to the dataset's length 10"):
        random_split(ds, [4, 5])
    with pytest.raises(ValueError, match="non-negative integers"):
        random_split(ds, [-1, 11])
    with pytest.raises(ValueError, match="non-negative integers"):
        random_split(ds, [2.5, 7.5])
    with pytest.warns(UserWarning, match="Length of split at index 1 is 0"):
        parts = random_split(make_dataset(2), [0.9, 0.1], generator=tgr.Generator(0))
    assert [len(p) for p in parts] == [2, 0]
    with pytest.raises(TypeError, match="tapegrad.random.Generator"):
        random_split(ds, [5, 5], generator=np.random.default_rng(0))


# --- bad arguments -------------------------------------------------------------------------------


@pytest.mark.parametrize("call, error, match", [
    (lambda ds: DataLoader(ds, shuffle=True, sampler=[0, 1]), ValueError, "mutually exclusive with shuffle"),
    (lambda ds: DataLoader(ds, batch_size=2, batch_sampler=[[0]]), ValueError, "mutually exclusive"),
    (lambda ds: DataLoader(ds, drop_last=True, batch_sampler=[[0]]), ValueError, "mutually exclusive"),
    (lambda ds: DataLoader(ds, batch_size=0), ValueError, "batch_size should be a positive integer"),
    (lambda ds: DataLoader(ds, batch_size=2.0), ValueError, "batch_size should be a positive integer"),
    (lambda ds: DataLoader(ds, batch_size=None), ValueError, "batch_size=None"),
    (lambda ds: DataLoader(ds, num_workers=-1), ValueError, "num_workers"),
    (lambda ds: DataLoader(ds, timeout=-1), ValueError, "timeout"),
    (lambda ds: DataLoader(ds, prefetch_factor=2), ValueError, "num_workers > 0"),
    (lambda ds: DataLoader(ds, shuffle=True, generator=3), TypeError, "tapegrad.random.Generator, got builtins.int"),
    (lambda ds: DataLoader(make_dataset(0), shuffle=True), ValueError, "empty dataset"),
    (lambda ds: RandomSampler(ds, num_samples=0), ValueError, "num_samples should be a positive integer"),
    (lambda ds: RandomSampler(ds, replacement=1), TypeError, "replacement should be a boolean"),
    (lambda ds: BatchSampler(SequentialSampler(ds), 2, drop_last=None), TypeError, "drop_last should be a boolean"),
    (lambda ds: BatchSampler(SequentialSampler(ds), True, drop_last=False), ValueError, "batch_size"),
])
def test_bad_arguments_raise_clear_errors(call, error, match):
    with pytest.raises(error, match=match):
        call(make_dataset(4))
