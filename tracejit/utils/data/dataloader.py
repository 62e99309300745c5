"""``DataLoader``: a dataset, a sampler and a collate function -> an iterable of batches.

Input: a map-style or iterable dataset and PyTorch's ``DataLoader`` arguments. Output: per
epoch (each ``iter(loader)``), the batches ``collate_fn([dataset[i] for i in batch])`` for the
index batches of the batch sampler — or, for an iterable dataset, the next ``batch_size``
samples of its iterator. ``batch_size=None`` turns batching off: each sample goes through
``collate_fn`` (by default ``default_convert``) alone.

``num_workers > 0`` loads in that many background threads (`worker.py`), prefetching
``prefetch_factor`` batches per worker; batches still come out in the sampler's order.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

from ... import generator as G
from .collate import default_collate, default_convert
from .dataset import IterableDataset
from .sampler import BatchSampler, RandomSampler, Sampler, SequentialSampler
from .worker import ThreadedIter

__all__ = ["DataLoader"]


class _InfiniteConstantSampler(Sampler):
    """The index sampler of an iterable dataset: None, forever (the dataset decides)."""

    def __iter__(self):
        while True:
            yield None


class _MapFetcher:
    def __init__(self, dataset, auto_collation: bool, collate_fn):
        self.dataset, self.auto, self.collate_fn = dataset, auto_collation, collate_fn

    def fetch(self, index):
        if not self.auto:
            return self.collate_fn(self.dataset[index])
        getitems = getattr(self.dataset, "__getitems__", None)
        data = getitems(index) if callable(getitems) else [self.dataset[i] for i in index]
        return self.collate_fn(data)


class _IterFetcher:
    def __init__(self, dataset, auto_collation: bool, collate_fn, drop_last: bool):
        self.it = iter(dataset)
        self.auto, self.collate_fn, self.drop_last = auto_collation, collate_fn, drop_last
        self.ended = False

    def fetch(self, index):
        if self.ended:
            raise StopIteration
        if not self.auto:
            try:
                return self.collate_fn(next(self.it))
            except StopIteration:
                self.ended = True
                raise
        data = []
        for _ in index:
            try:
                data.append(next(self.it))
            except StopIteration:
                self.ended = True
                break
        if not data or (self.drop_last and len(data) < len(index)):
            self.ended = True
            raise StopIteration
        return self.collate_fn(data)


class _SingleIter:
    """One epoch in the calling thread (``num_workers=0``)."""

    def __init__(self, loader):
        self._sampler_iter = iter(loader._index_sampler)
        self._fetcher = loader._make_fetcher()

    def __iter__(self):
        return self

    def __next__(self):
        index = next(self._sampler_iter)
        return self._fetcher.fetch(index)


class DataLoader:
    """Batches of a dataset, PyTorch's ``torch.utils.data.DataLoader``.

    Args:
        dataset: a map-style dataset (``__getitem__`` and ``__len__``: a `Dataset`, a list, a
            `TensorDataset`, ...) or an `IterableDataset`.
        batch_size: samples per batch; None turns automatic batching off.
        shuffle: a new random order every epoch (a `RandomSampler` on `generator`).
        sampler: the order of indices (exclusive with `shuffle`).
        batch_sampler: yields lists of indices (exclusive with batch_size, shuffle, sampler
            and drop_last).
        num_workers: 0 loads in the calling thread; n > 0 loads in n background *threads*
            with prefetching, batches in the same order (see `tracejit.utils.data.worker`).
        collate_fn: list of samples -> batch; default `default_collate` (or `default_convert`
            when batch_size is None).
        pin_memory: accepted for compatibility; tracejit's host buffers are used as they are.
        drop_last: drop the last batch when it is smaller than batch_size.
        timeout: seconds to wait for a worker's batch (0: forever).
        worker_init_fn: called with the worker id in each worker thread before it loads.
        multiprocessing_context: accepted and ignored (workers are threads).
        generator: the ``tj.Generator`` of the shuffle order and of the workers' base seed;
            default tracejit's global generator, so ``tj.manual_seed`` makes it reproducible.
        prefetch_factor: batches loaded ahead per worker (default 2 with workers).
        persistent_workers: accepted (needs num_workers > 0); threads are restarted each epoch.
        pin_memory_device: accepted and ignored.
        in_order: with workers, False yields batches as soon as they are ready.

    >>> import tracejit as tj
    >>> from tracejit.utils.data import DataLoader, TensorDataset
    >>> ds = TensorDataset(tj.arange(10.0), tj.arange(10))
    >>> loader = DataLoader(ds, batch_size=4, shuffle=True, generator=tj.Generator().manual_seed(0))
    >>> len(loader), [len(y) for x, y in loader]
    (3, [4, 4, 2])
    >>> [x.tolist() for x, y in DataLoader(ds, batch_size=4, drop_last=True)]
    [[0.0, 1.0, 2.0, 3.0], [4.0, 5.0, 6.0, 7.0]]
    """

    _FROZEN = ("batch_size", "batch_sampler", "sampler", "drop_last", "dataset",
               "persistent_workers")
    __initialized = False

    def __init__(self, dataset, batch_size: int | None = 1, shuffle: bool | None = None,
                 sampler: Sampler | Iterable | None = None,
                 batch_sampler: Sampler | Iterable | None = None, num_workers: int = 0,
                 collate_fn: Callable | None = None, pin_memory: bool = False,
                 drop_last: bool = False, timeout: float = 0,
                 worker_init_fn: Callable | None = None, multiprocessing_context=None,
                 generator=None, *, prefetch_factor: int | None = None,
                 persistent_workers: bool = False, pin_memory_device: str = "",
                 in_order: bool = True):
        if isinstance(num_workers, bool) or not isinstance(num_workers, int):
            raise TypeError(f"num_workers should be an int, got {type(num_workers).__name__}")
        if num_workers < 0:
            raise ValueError("num_workers option should be non-negative; use num_workers=0 to "
                             "disable multiprocessing.")
        if timeout < 0:
            raise ValueError("timeout option should be non-negative")
        if num_workers == 0 and prefetch_factor is not None:
            raise ValueError("prefetch_factor option could only be specified in "
                             "multiprocessing.let num_workers > 0 to enable multiprocessing, "
                             "otherwise set prefetch_factor to None.")
        if num_workers > 0 and prefetch_factor is None:
            prefetch_factor = 2
        if prefetch_factor is not None and (isinstance(prefetch_factor, bool) or
                                            not isinstance(prefetch_factor, int) or
                                            prefetch_factor <= 0):
            raise ValueError(f"prefetch_factor should be a positive integer, got "
                             f"{prefetch_factor!r}")
        if persistent_workers and num_workers == 0:
            raise ValueError("persistent_workers option needs num_workers > 0")
        if generator is not None and not isinstance(generator, G.Generator):
            raise TypeError(f"DataLoader: generator must be a tj.Generator, got "
                            f"{type(generator).__module__}.{type(generator).__name__}")
        if collate_fn is not None and not callable(collate_fn):
            raise TypeError(f"DataLoader: collate_fn must be callable, got {collate_fn!r}")

        self._iterable = isinstance(dataset, IterableDataset)
        if self._iterable:
            if shuffle not in {False, None}:
                raise ValueError(f"DataLoader with IterableDataset: expected unspecified "
                                 f"shuffle option, but got shuffle={shuffle}")
            if sampler is not None:
                raise ValueError(f"DataLoader with IterableDataset: expected unspecified "
                                 f"sampler option, but got sampler={sampler}")
            if batch_sampler is not None:
                raise ValueError(f"DataLoader with IterableDataset: expected unspecified "
                                 f"batch_sampler option, but got batch_sampler={batch_sampler}")
        shuffle = bool(shuffle)
        if sampler is not None and shuffle:
            raise ValueError("sampler option is mutually exclusive with shuffle")
        if batch_sampler is not None:
            if batch_size != 1 or shuffle or sampler is not None or drop_last:
                raise ValueError("batch_sampler option is mutually exclusive with batch_size, "
                                 "shuffle, sampler, and drop_last")
            batch_size, drop_last = None, False
        elif batch_size is None and drop_last:
            raise ValueError("batch_size=None option disables auto-batching and is mutually "
                             "exclusive with drop_last")
        if sampler is None:
            if self._iterable:
                sampler = _InfiniteConstantSampler()
            elif shuffle:
                sampler = RandomSampler(dataset, generator=generator)
            else:
                sampler = SequentialSampler(dataset)
        if batch_size is not None and batch_sampler is None:
            batch_sampler = BatchSampler(sampler, batch_size, drop_last)  # checks both
        if collate_fn is None:
            collate_fn = default_collate if batch_sampler is not None else default_convert

        self.dataset = dataset
        self.batch_size = batch_size
        self.drop_last = drop_last
        self.sampler = sampler
        self.batch_sampler = batch_sampler
        self.num_workers = num_workers
        self.collate_fn = collate_fn
        self.pin_memory = pin_memory
        self.pin_memory_device = pin_memory_device
        self.timeout = timeout
        self.worker_init_fn = worker_init_fn
        self.multiprocessing_context = multiprocessing_context
        self.generator = generator
        self.prefetch_factor = prefetch_factor
        self.persistent_workers = persistent_workers
        self.in_order = in_order
        self.__initialized = True

    def __setattr__(self, attr, value):
        if self.__initialized and attr in self._FROZEN:
            raise ValueError(f"{attr} attribute should not be set after "
                             f"{type(self).__name__} is initialized")
        super().__setattr__(attr, value)

    @property
    def _auto_collation(self) -> bool:
        return self.batch_sampler is not None

    @property
    def _index_sampler(self):
        return self.batch_sampler if self._auto_collation else self.sampler

    def _make_fetcher(self):
        if self._iterable:
            return _IterFetcher(self.dataset, self._auto_collation, self.collate_fn,
                                self.drop_last)
        return _MapFetcher(self.dataset, self._auto_collation, self.collate_fn)

    def __iter__(self):
        """One epoch: a fresh iterator (and, when shuffling, a fresh order)."""
        # The workers' base seed, drawn as PyTorch draws it: from the loader's generator (or
        # the global one) at every epoch, with or without workers, so that the shuffle order
        # for a given seed does not depend on num_workers.
        base_seed = int(G.randint(0, 2**62, (1,), generator=self.generator).tolist()[0])
        if self.num_workers == 0:
            return _SingleIter(self)
        return ThreadedIter(self, self._make_fetcher, base_seed)

    def __len__(self) -> int:
        if self._iterable:
            n = len(self.dataset)  # a TypeError when the dataset has no __len__, as in PyTorch
            if self.batch_size is not None:
                n = n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)
            return n
        return len(self._index_sampler)
