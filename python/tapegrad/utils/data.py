"""Datasets, samplers and batch loading with PyTorch's API (``torch.utils.data``).

``DataLoader`` always loads in the calling process: ``num_workers``, ``pin_memory``, ``timeout``,
``worker_init_fn``, ``multiprocessing_context``, ``prefetch_factor`` and ``persistent_workers``
are accepted (and checked as torch checks them) but change nothing. Shuffling draws from a
``tapegrad.random.Generator`` (``tapegrad.random.default_generator`` by default). A batch of a
``TensorDataset`` (or of ``Subset``s of one) under the default collate is one fancy index per
tensor, not a stack of single samples.
"""

from __future__ import annotations

import collections.abc
import copy
import itertools
import math
import warnings
from typing import Any, Callable, Generic, Iterator, List, Optional, Sequence, Sized, Tuple, TypeVar, Union

import numpy as np

import tapegrad as tg

from .. import random as _random
from .._core import Tensor

T_co = TypeVar("T_co", covariant=True)


def _positive_int(value: Any, what: str) -> int:
    """``value`` checked to be a positive integer (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{what} should be a positive integer value, but got {what}={value!r}")
    return int(value)


# --- datasets ------------------------------------------------------------------------------------


class Dataset(Generic[T_co]):
    """A map-style dataset (``__getitem__`` and ``__len__``): ``torch.utils.data.Dataset``."""

    def __getitem__(self, index: Any) -> T_co:
        raise NotImplementedError(f"{type(self).__name__} must define __getitem__")


class TensorDataset(Dataset[Tuple[Tensor, ...]]):
    """Samples ``(t[i] for t in tensors)``: ``torch.utils.data.TensorDataset``."""

    def __init__(self, *tensors: Tensor) -> None:
        if not tensors:
            raise ValueError("TensorDataset needs at least one tensor")
        for t in tensors:
            if not isinstance(t, Tensor) or t.ndim == 0:
                raise TypeError(f"TensorDataset takes tensors of at least one dimension, got {t!r}")
        sizes = [t.shape[0] for t in tensors]
        if len(set(sizes)) > 1:
            raise ValueError(f"TensorDataset: the tensors' first dimensions differ: {sizes}")
        self.tensors = tensors

    def __getitem__(self, index: Any) -> Tuple[Tensor, ...]:
        return tuple(t[index] for t in self.tensors)

    def __len__(self) -> int:
        return self.tensors[0].shape[0]


class Subset(Dataset[T_co]):
    """The samples of ``dataset`` at ``indices``: ``torch.utils.data.Subset``."""

    def __init__(self, dataset: Dataset[T_co], indices: Sequence[int]) -> None:
        self.dataset = dataset
        self.indices = indices

    def __getitem__(self, idx: Any) -> T_co:
        if isinstance(idx, list):
            return self.dataset[[self.indices[i] for i in idx]]
        return self.dataset[self.indices[idx]]

    def __len__(self) -> int:
        return len(self.indices)


def random_split(dataset: Any, lengths: Sequence[Union[int, float]],
                 generator: Optional[_random.Generator] = None) -> List[Subset[Any]]:
    """Random disjoint Subsets of ``lengths`` (counts, or fractions summing to 1): ``torch.utils.data.random_split``."""
    n = len(dataset)
    if math.isclose(sum(lengths), 1) and sum(lengths) <= 1:
        counts = []
        for i, frac in enumerate(lengths):
            if not 0 <= frac <= 1:
                raise ValueError(f"random_split(): fraction {frac} at index {i} is not between 0 and 1")
            counts.append(math.floor(n * frac))
        for i in range(n - sum(counts)):  # the remainder, round-robin
            counts[i % len(counts)] += 1
        for i, count in enumerate(counts):
            if count == 0:
                warnings.warn(f"Length of split at index {i} is 0. This might result in an empty dataset.",
                              stacklevel=2)
    else:
        if any(isinstance(c, bool) or not isinstance(c, (int, np.integer)) or c < 0 for c in lengths):
            raise ValueError(f"random_split(): lengths must be non-negative integers or fractions summing to 1, "
                             f"got {list(lengths)}")
        counts = [int(c) for c in lengths]
    if sum(counts) != n:
        raise ValueError(f"random_split(): the lengths {counts} sum to {sum(counts)}, not to the dataset's length {n}")
    indices = _random.randperm(n, generator=generator).tolist()
    return [Subset(dataset, indices[end - count:end]) for end, count in zip(itertools.accumulate(counts), counts)]


# --- samplers ------------------------------------------------------------------------------------


class Sampler(Generic[T_co]):
    """An iterable of dataset indices (or of batches of them): ``torch.utils.data.Sampler``."""

    def __iter__(self) -> Iterator[T_co]:
        raise NotImplementedError(f"{type(self).__name__} must define __iter__")


class SequentialSampler(Sampler[int]):
    """0, 1, ..., len(data_source) - 1: ``torch.utils.data.SequentialSampler``."""

    def __init__(self, data_source: Sized) -> None:
        self.data_source = data_source

    def __iter__(self) -> Iterator[int]:
        return iter(range(len(self.data_source)))

    def __len__(self) -> int:
        return len(self.data_source)


class RandomSampler(Sampler[int]):
    """A fresh random order each pass (or draws with replacement): ``torch.utils.data.RandomSampler``."""

    def __init__(self, data_source: Sized, replacement: bool = False, num_samples: Optional[int] = None,
                 generator: Optional[_random.Generator] = None) -> None:
        if not isinstance(replacement, bool):
            raise TypeError(f"replacement should be a boolean value, but got replacement={replacement!r}")
        if len(data_source) == 0:
            raise ValueError("RandomSampler: cannot sample from an empty dataset")
        self.data_source = data_source
        self.replacement = replacement
        self._num_samples = num_samples
        self.generator = generator
        _positive_int(self.num_samples, "num_samples")
        _random._gen(generator)  # a bad generator fails here, not at the first pass

    @property
    def num_samples(self) -> int:
        """``num_samples``, or the dataset's length when it was None."""
        return len(self.data_source) if self._num_samples is None else self._num_samples

    def __iter__(self) -> Iterator[int]:
        g, n, count = _random._gen(self.generator), len(self.data_source), self.num_samples
        if self.replacement:
            order = g.integers(0, n, count)
        else:
            order = np.concatenate([g.permutation(n) for _ in range(-(-count // n))])[:count]
        return iter(order.tolist())

    def __len__(self) -> int:
        return self.num_samples


class BatchSampler(Sampler[List[int]]):
    """Lists of ``batch_size`` indices from ``sampler``: ``torch.utils.data.BatchSampler``."""

    def __init__(self, sampler: Any, batch_size: int, drop_last: bool) -> None:
        self.batch_size = _positive_int(batch_size, "batch_size")
        if not isinstance(drop_last, bool):
            raise TypeError(f"drop_last should be a boolean value, but got drop_last={drop_last!r}")
        self.sampler = sampler
        self.drop_last = drop_last

    def __iter__(self) -> Iterator[List[int]]:
        batch: List[int] = []
        for i in self.sampler:
            batch.append(i)
            if len(batch) == self.batch_size:
                yield batch
                batch = []
        if batch and not self.drop_last:
            yield batch

    def __len__(self) -> int:
        n = len(self.sampler)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)


# --- batching ------------------------------------------------------------------------------------


def default_collate(batch: Sequence[Any]) -> Any:
    """A list of samples as one batch, field by field (tensors stacked): ``torch.utils.data.default_collate``."""
    elem = batch[0]
    if isinstance(elem, Tensor):
        return tg.stack(batch)
    if isinstance(elem, np.ndarray):
        return tg.from_numpy(np.stack(batch))
    if isinstance(elem, (np.bool_, np.number)):
        return tg.from_numpy(np.array(batch))
    if isinstance(elem, float):
        return tg.tensor(batch, dtype=tg.float64)
    if isinstance(elem, int):
        return tg.tensor(batch)
    if isinstance(elem, (str, bytes)):
        return batch
    if isinstance(elem, collections.abc.Mapping):
        collated = {key: default_collate([d[key] for d in batch]) for key in elem}
        if isinstance(elem, collections.abc.MutableMapping):  # keep the mapping's type, as torch
            clone = copy.copy(elem)
            clone.update(collated)
            return clone
        return collated
    if isinstance(elem, tuple) and hasattr(elem, "_fields"):  # a namedtuple
        return type(elem)(*(default_collate(field) for field in zip(*batch)))
    if isinstance(elem, collections.abc.Sequence):
        if any(len(sample) != len(elem) for sample in batch):
            raise RuntimeError("each element in list of batch should be of equal size")
        return [default_collate(field) for field in zip(*batch)]
    raise TypeError(f"default_collate: batch must contain tensors, numpy arrays, numbers, dicts or lists; "
                    f"found {type(elem)}")


def _rows(t: Tensor, idx: np.ndarray[Any, Any]) -> Tensor:
    """``t[idx]``; through NumPy when no gradient is needed (Tensor indexing builds offsets of t's whole size)."""
    return t[idx] if t.requires_grad else tg.from_numpy(t.numpy()[idx])


def _tensor_batches(dataset: Any) -> Optional[Callable[[Sequence[int]], List[Tensor]]]:
    """For a TensorDataset (or Subsets of one): indices -> default_collate's batch, one fancy index per tensor."""
    index_map: Optional[np.ndarray[Any, Any]] = None
    while getattr(type(dataset), "__getitem__", None) is Subset.__getitem__:
        outer = np.asarray(dataset.indices, dtype=np.int64)
        index_map = outer if index_map is None else outer[index_map]
        dataset = dataset.dataset
    if getattr(type(dataset), "__getitem__", None) is not TensorDataset.__getitem__:
        return None
    tensors = dataset.tensors

    def batch(indices: Sequence[int]) -> List[Tensor]:
        idx = np.asarray(indices, dtype=np.int64)
        if index_map is not None:
            idx = index_map[idx]
        return [_rows(t, idx) for t in tensors]

    return batch


class DataLoader:
    """Batches of a dataset, in order or reshuffled each pass (in-process): ``torch.utils.data.DataLoader``."""

    def __init__(self, dataset: Any, batch_size: Optional[int] = 1, shuffle: Optional[bool] = None,
                 sampler: Any = None, batch_sampler: Any = None, num_workers: int = 0,
                 collate_fn: Optional[Callable[[List[Any]], Any]] = None, pin_memory: bool = False,
                 drop_last: bool = False, timeout: float = 0, worker_init_fn: Optional[Callable[[int], None]] = None,
                 multiprocessing_context: Any = None, generator: Optional[_random.Generator] = None, *,
                 prefetch_factor: Optional[int] = None, persistent_workers: bool = False) -> None:
        if isinstance(num_workers, bool) or not isinstance(num_workers, (int, np.integer)) or num_workers < 0:
            raise ValueError(f"num_workers option should be a non-negative integer, got {num_workers!r}")
        if timeout < 0:
            raise ValueError(f"timeout option should be non-negative, got {timeout!r}")
        if num_workers == 0 and (prefetch_factor is not None or persistent_workers):
            raise ValueError("prefetch_factor and persistent_workers need num_workers > 0")
        if sampler is not None and shuffle:
            raise ValueError("sampler option is mutually exclusive with shuffle")
        if batch_sampler is not None:
            if batch_size != 1 or shuffle or sampler is not None or drop_last:
                raise ValueError("batch_sampler option is mutually exclusive with batch_size, shuffle, sampler, "
                                 "and drop_last")
            batch_size = None
        if sampler is None:
            sampler = RandomSampler(dataset, generator=generator) if shuffle else SequentialSampler(dataset)
        if batch_sampler is None:
            if batch_size is None:
                raise ValueError("batch_size=None (no automatic batching) is not supported: give a batch size")
            batch_sampler = BatchSampler(sampler, batch_size, drop_last)
        self.dataset = dataset
        self.batch_size = batch_size
        self.drop_last = drop_last
        self.sampler = sampler
        self.batch_sampler = batch_sampler
        self.num_workers = int(num_workers)
        self.collate_fn = collate_fn
        self.generator = generator

    def __len__(self) -> int:
        return len(self.batch_sampler)

    def __iter__(self) -> Iterator[Any]:
        fast = _tensor_batches(self.dataset) if self.collate_fn is None else None
        collate = self.collate_fn or default_collate
        for indices in self.batch_sampler:
            yield fast(indices) if fast is not None else collate([self.dataset[i] for i in indices])


__all__ = [
    "Dataset", "TensorDataset", "Subset", "random_split", "Sampler", "SequentialSampler", "RandomSampler",
    "BatchSampler", "default_collate", "DataLoader",
]
