"""Samplers: which sample indices a ``DataLoader`` reads, in which order, in which batches.

Input: a dataset's length (or explicit indices, weights), a ``tj.Generator``. Output: iterables
of ints (``Sampler``) or of lists of ints (``BatchSampler``). Random samplers draw from the
given generator, or from tracejit's global one (so ``tj.manual_seed`` makes them
reproducible); a new permutation is drawn at every ``iter()``, so each epoch has its own order.

    SequentialSampler      0, 1, ..., n-1
    RandomSampler          a permutation (or draws with replacement, or num_samples of them)
    SubsetRandomSampler    the given indices, permuted
    WeightedRandomSampler  indices drawn with probability proportional to weights
    BatchSampler           groups another sampler's indices into lists of batch_size
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Generic, TypeVar

import numpy as np

from ... import generator as G
from ...tensor import Tensor

__all__ = ["Sampler", "SequentialSampler", "RandomSampler", "SubsetRandomSampler",
           "WeightedRandomSampler", "BatchSampler"]

T_co = TypeVar("T_co", covariant=True)


def _positive_int(value, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{name} should be a positive integer value, but got "
                         f"{name}={value}")


def _boolean(value, name: str) -> None:
    if not isinstance(value, bool):
        raise ValueError(f"{name} should be a boolean value, but got {name}={value}")


class Sampler(Generic[T_co]):
    """Base class: subclasses define ``__iter__`` (and ``__len__`` when they know it)."""

    def __init__(self, data_source=None):
        pass

    def __iter__(self) -> Iterator:
        raise NotImplementedError


class SequentialSampler(Sampler):
    """``0, 1, ..., len(data_source) - 1``.

    >>> from tracejit.utils.data import SequentialSampler
    >>> list(SequentialSampler(range(4)))
    [0, 1, 2, 3]
    """

    def __init__(self, data_source):
        self.data_source = data_source

    def __iter__(self) -> Iterator[int]:
        return iter(range(len(self.data_source)))

    def __len__(self) -> int:
        return len(self.data_source)


class RandomSampler(Sampler):
    """A random order of ``data_source``'s indices, new at each ``iter()``.

    Args:
        data_source: the dataset (only its ``len`` is used).
        replacement: draw ``num_samples`` indices independently (repeats allowed).
        num_samples: how many indices per epoch (default ``len(data_source)``); without
            replacement, more than the length means whole permutations one after another.
        generator: a ``tj.Generator``; default tracejit's global generator.

    >>> import tracejit as tj
    >>> from tracejit.utils.data import RandomSampler
    >>> s = RandomSampler(range(5), generator=tj.Generator().manual_seed(0))
    >>> sorted(s)
    [0, 1, 2, 3, 4]
    """

    def __init__(self, data_source, replacement: bool = False, num_samples: int | None = None,
                 generator=None):
        self.data_source = data_source
        self.replacement = replacement
        self._num_samples = num_samples
        self.generator = generator
        _boolean(replacement, "replacement")
        _positive_int(self.num_samples, "num_samples")

    @property
    def num_samples(self) -> int:
        return len(self.data_source) if self._num_samples is None else self._num_samples

    def __iter__(self) -> Iterator[int]:
        n, m = len(self.data_source), self.num_samples
        if self.replacement:
            yield from G.randint(0, n, (m,), generator=self.generator).tolist()
            return
        for _ in range(m // n):
            yield from G.randperm(n, generator=self.generator).tolist()
        if m % n:
            yield from G.randperm(n, generator=self.generator).tolist()[:m % n]

    def __len__(self) -> int:
        return self.num_samples


class SubsetRandomSampler(Sampler):
    """The given indices in a random order, new at each ``iter()``.

    >>> import tracejit as tj
    >>> from tracejit.utils.data import SubsetRandomSampler
    >>> sorted(SubsetRandomSampler([7, 3, 9], generator=tj.Generator().manual_seed(1)))
    [3, 7, 9]
    """

    def __init__(self, indices: Sequence[int], generator=None):
        self.indices = indices
        self.generator = generator

    def __iter__(self) -> Iterator[int]:
        for i in G.randperm(len(self.indices), generator=self.generator).tolist():
            yield self.indices[i]

    def __len__(self) -> int:
        return len(self.indices)


class WeightedRandomSampler(Sampler):
    """``num_samples`` indices in ``[0, len(weights))``, each drawn with probability
    proportional to its weight (with replacement by default; without, no index twice).

    >>> import tracejit as tj
    >>> from tracejit.utils.data import WeightedRandomSampler
    >>> list(WeightedRandomSampler([0.0, 1.0, 0.0], 3, generator=tj.Generator().manual_seed(0)))
    [1, 1, 1]
    """

    def __init__(self, weights, num_samples: int, replacement: bool = True, generator=None):
        _positive_int(num_samples, "num_samples")
        _boolean(replacement, "replacement")
        w = np.asarray(weights.numpy() if isinstance(weights, Tensor) else weights,
                       dtype=np.float64)
        if w.ndim != 1:
            raise ValueError(f"weights should be a 1d sequence but given weights have shape "
                             f"{tuple(w.shape)}")
        if (w < 0).any() or not np.isfinite(w).all() or w.sum() <= 0:
            raise ValueError("WeightedRandomSampler: weights must be finite, non-negative "
                             "and not all zero")
        if not replacement and num_samples > np.count_nonzero(w):
            raise RuntimeError(f"cannot sample n_sample > prob_dist.size(-1) samples without "
                               f"replacement (num_samples={num_samples}, "
                               f"{np.count_nonzero(w)} non-zero weights)")
        self.weights = Tensor._wrap(w)
        self.num_samples = int(num_samples)
        self.replacement = replacement
        self.generator = generator

    def __iter__(self) -> Iterator[int]:
        w = self.weights.numpy()
        u = G.rand(self.num_samples if self.replacement else len(w), generator=self.generator,
                   dtype="float64").numpy()
        if self.replacement:  # inverse CDF
            cdf = np.cumsum(w)
            idx = np.searchsorted(cdf, u * cdf[-1], side="right")
            yield from np.minimum(idx, len(w) - 1).tolist()
        else:  # exponential race: the num_samples smallest -log(u)/w, in order of arrival
            with np.errstate(divide="ignore"):
                keys = -np.log1p(-u) / w
            yield from np.argsort(keys, kind="stable")[:self.num_samples].tolist()

    def __len__(self) -> int:
        return self.num_samples


class BatchSampler(Sampler):
    """Groups another sampler's indices into lists of `batch_size` (the last one shorter unless
    `drop_last`).

    >>> from tracejit.utils.data import BatchSampler, SequentialSampler
    >>> list(BatchSampler(SequentialSampler(range(5)), batch_size=2, drop_last=False))
    [[0, 1], [2, 3], [4]]
    >>> list(BatchSampler(range(5), batch_size=2, drop_last=True))
    [[0, 1], [2, 3]]
    """

    def __init__(self, sampler: Sampler | Iterable[int], batch_size: int, drop_last: bool):
        _positive_int(batch_size, "batch_size")
        _boolean(drop_last, "drop_last")
        self.sampler = sampler
        self.batch_size = int(batch_size)
        self.drop_last = drop_last

    def __iter__(self) -> Iterator[list[int]]:
        batch = []
        for idx in self.sampler:
            batch.append(idx)
            if len(batch) == self.batch_size:
                yield batch
                batch = []
        if batch and not self.drop_last:
            yield batch

    def __len__(self) -> int:
        n = len(self.sampler)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)
