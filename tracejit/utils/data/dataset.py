"""Datasets, PyTorch's ``torch.utils.data`` kinds.

Input: the user's data (Tensors, or any indexable or iterable object). Output: objects a
``DataLoader`` reads samples from — map-style (``dataset[i]``, ``len(dataset)``) or iterable
(``iter(dataset)``):

    Dataset          map-style base class; ``a + b`` is a ConcatDataset
    IterableDataset  iterable base class; ``a + b`` is a ChainDataset
    TensorDataset    sample i is ``tuple(t[i] for t in tensors)``
    ConcatDataset    map-style datasets one after another
    ChainDataset     iterable datasets one after another
    Subset           the samples of a dataset at given indices
    random_split     non-overlapping random Subsets, by lengths or fractions
"""

from __future__ import annotations

import bisect
import math
import warnings
from collections.abc import Iterable, Sequence
from typing import Generic, TypeVar

import numpy as np

from ... import generator as G
from ...tensor import Tensor

__all__ = ["Dataset", "IterableDataset", "TensorDataset", "ConcatDataset", "ChainDataset",
           "Subset", "random_split"]

T_co = TypeVar("T_co", covariant=True)


class Dataset(Generic[T_co]):
    """A map-style dataset: subclasses define ``__getitem__(index)`` and usually ``__len__``.

    >>> from tracejit.utils.data import Dataset
    >>> class Squares(Dataset):
    ...     def __len__(self):
    ...         return 4
    ...     def __getitem__(self, i):
    ...         return i * i
    >>> ds = Squares() + Squares()
    >>> len(ds), ds[5]
    (8, 1)
    """

    def __getitem__(self, index):
        raise NotImplementedError("Subclasses of Dataset should implement __getitem__.")

    def __add__(self, other: Dataset) -> ConcatDataset:
        return ConcatDataset([self, other])


class IterableDataset(Dataset[T_co]):
    """A dataset that is a stream: subclasses define ``__iter__``. With ``num_workers > 0``
    every worker thread iterates its own ``iter(dataset)``; split the work with
    ``get_worker_info()`` (as with PyTorch, an unsplit dataset is read once per worker).

    >>> from tracejit.utils.data import DataLoader, IterableDataset
    >>> class Count(IterableDataset):
    ...     def __iter__(self):
    ...         return iter(range(5))
    >>> [b.tolist() for b in DataLoader(Count(), batch_size=2)]
    [[0, 1], [2, 3], [4]]
    """

    def __iter__(self):
        raise NotImplementedError("Subclasses of IterableDataset should implement __iter__.")

    def __getitem__(self, index):
        raise TypeError(f"{type(self).__name__} is an IterableDataset: it has no "
                        "__getitem__; iterate over it instead")

    def __add__(self, other: Dataset) -> ChainDataset:
        return ChainDataset([self, other])


def _take(t: Tensor, index):
    """``t[index]`` for one integer index. For a realized CPU tensor outside autograd this is a
    numpy copy of the row (what tracejit's indexing gives, without a pending graph per
    sample: `collate._stack_tensors` then stacks the rows with numpy)."""
    if (isinstance(index, (int, np.integer)) and type(t) is Tensor and t._node is None
            and not t._requires_grad):
        v = t._value  # realizes a lazy tensor once; later samples read the buffer
        if type(v) is np.ndarray:
            return Tensor._wrap(np.array(v[index]))
    return t[index]


class TensorDataset(Dataset):
    """Samples are slices of tensors along their first dimension: ``ds[i]`` is
    ``tuple(t[i] for t in tensors)``.

    Args:
        *tensors: Tensors with the same size in dimension 0.

    Raises:
        ValueError: the first dimensions differ (the message lists them).

    >>> import tracejit as tj
    >>> from tracejit.utils.data import TensorDataset
    >>> ds = TensorDataset(tj.arange(6.0).reshape(3, 2), tj.tensor([0, 1, 0]))
    >>> len(ds), ds[1]
    (3, (tensor([2., 3.]), tensor(1)))
    """

    def __init__(self, *tensors: Tensor):
        if not tensors:
            raise ValueError("TensorDataset needs at least one tensor")
        for k, t in enumerate(tensors):
            if not isinstance(t, Tensor):
                raise TypeError(f"TensorDataset: argument {k} is a {type(t).__name__}, "
                                "expected a Tensor (convert numpy arrays with tj.from_numpy)")
            if t.ndim == 0:
                raise ValueError(f"TensorDataset: tensor {k} is 0-dimensional; samples are "
                                 "taken along dimension 0, so each tensor needs one")
        sizes = [t.shape[0] for t in tensors]
        if len(set(sizes)) != 1:
            raise ValueError(f"Size mismatch between tensors: TensorDataset needs the same "
                             f"size in dimension 0, got sizes {sizes} (shapes "
                             f"{[list(t.shape) for t in tensors]})")
        self.tensors = tensors

    def __getitem__(self, index):
        return tuple(_take(t, index) for t in self.tensors)

    def __len__(self) -> int:
        return self.tensors[0].shape[0]


class ConcatDataset(Dataset):
    """Map-style datasets one after another; ``cumulative_sizes[i]`` is the total length of the
    first ``i + 1``.

    >>> from tracejit.utils.data import ConcatDataset
    >>> ds = ConcatDataset([[1, 2], [3, 4, 5]])
    >>> len(ds), ds[2], ds[-1], ds.cumulative_sizes
    (5, 3, 5, [2, 5])
    """

    def __init__(self, datasets: Iterable[Dataset]):
        self.datasets = list(datasets)
        if not self.datasets:
            raise ValueError("datasets should not be an empty iterable")
        for d in self.datasets:
            if isinstance(d, IterableDataset):
                raise TypeError("ConcatDataset does not support IterableDataset (use "
                                "ChainDataset)")
        self.cumulative_sizes = []
        total = 0
        for d in self.datasets:
            total += len(d)
            self.cumulative_sizes.append(total)

    def __len__(self) -> int:
        return self.cumulative_sizes[-1]

    def __getitem__(self, idx):
        if idx < 0:
            if -idx > len(self):
                raise ValueError("absolute value of index should not exceed dataset length")
            idx = len(self) + idx
        if idx >= len(self):
            raise IndexError(f"index {idx} is out of range for a ConcatDataset of length "
                             f"{len(self)}")
        k = bisect.bisect_right(self.cumulative_sizes, idx)
        return self.datasets[k][idx - (self.cumulative_sizes[k - 1] if k else 0)]


class ChainDataset(IterableDataset):
    """Iterable datasets one after another.

    >>> from tracejit.utils.data import ChainDataset
    >>> list(ChainDataset([range(2), range(3)]))
    [0, 1, 0, 1, 2]
    """

    def __init__(self, datasets: Iterable[Dataset]):
        self.datasets = datasets

    def __iter__(self):
        for d in self.datasets:
            yield from d

    def __len__(self) -> int:
        return sum(len(d) for d in self.datasets)


class Subset(Dataset):
    """The samples of `dataset` at `indices`, in that order.

    >>> from tracejit.utils.data import Subset
    >>> s = Subset(["a", "b", "c", "d"], [3, 0])
    >>> len(s), s[0], s[1]
    (2, 'd', 'a')
    """

    def __init__(self, dataset, indices: Sequence[int]):
        self.dataset = dataset
        self.indices = indices

    def __getitem__(self, idx):
        if isinstance(idx, list):
            return self.dataset[[self.indices[i] for i in idx]]
        return self.dataset[self.indices[idx]]

    def __getitems__(self, indices: list[int]) -> list:
        # forwards DataLoader's batched fetch when the wrapped dataset has one
        getitems = getattr(self.dataset, "__getitems__", None)
        if callable(getitems):
            return getitems([self.indices[i] for i in indices])
        return [self.dataset[self.indices[i]] for i in indices]

    def __len__(self) -> int:
        return len(self.indices)


def random_split(dataset, lengths: Sequence[int | float], generator=None) -> list[Subset]:
    """Splits `dataset` into non-overlapping random Subsets of the given lengths.

    Args:
        dataset: a map-style dataset (anything with ``len`` and ``[]``).
        lengths: lengths summing to ``len(dataset)``, or fractions summing to 1: each split
            then gets ``floor(fraction * len(dataset))`` samples and what remains is dealt out
            one at a time from the first split on (PyTorch's rule).
        generator: the ``tj.Generator`` of the permutation; by default tracejit's global one
            (so ``tj.manual_seed`` fixes the split).

    >>> import tracejit as tj
    >>> from tracejit.utils.data import random_split
    >>> train, val = random_split(range(10), [0.75, 0.25], generator=tj.Generator().manual_seed(0))
    >>> len(train), len(val), sorted(list(train) + list(val)) == list(range(10))
    (8, 2, True)
    """
    lengths = list(lengths)
    n = len(dataset)
    if lengths and math.isclose(sum(lengths), 1) and sum(lengths) <= 1:
        sizes = []
        for i, frac in enumerate(lengths):
            if frac < 0 or frac > 1:
                raise ValueError(f"Fraction at index {i} is not between 0 and 1")
            sizes.append(math.floor(n * frac))
        for i in range(n - sum(sizes)):
            sizes[i % len(sizes)] += 1
        for i, size in enumerate(sizes):
            if size == 0:
                warnings.warn(f"Length of split at index {i} is 0. This might result in an "
                              "empty dataset.", stacklevel=2)
        lengths = sizes
    for i, size in enumerate(lengths):
        if not isinstance(size, (int, np.integer)) or size < 0:
            raise ValueError(f"random_split: lengths must be non-negative integers or "
                             f"fractions summing to 1; got {size!r} at index {i}")
    if sum(lengths) != n:
        raise ValueError(f"Sum of input lengths does not equal the length of the input "
                         f"dataset! (lengths {lengths} sum to {sum(lengths)}, the dataset "
                         f"has {n})")
    perm = G.randperm(n, generator=generator).tolist()
    out, start = [], 0
    for size in lengths:
        out.append(Subset(dataset, perm[start:start + size]))
        start += size
    return out
