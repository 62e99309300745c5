"""Background loading for ``DataLoader(num_workers=n)``: n worker *threads* (not processes).

Input: a fetcher factory, the loader's index sampler. Output: an iterator over batches, in the
sampler's order (``in_order=True``) or as they are ready. The protocol is PyTorch's: each worker
has its own queue of batch indices, the main thread keeps ``prefetch_factor * n`` batches in
flight, handing them out round robin, and puts results back in order. An iterable dataset is
iterated by every worker (each thread calls ``iter(dataset)`` itself; split it with
``get_worker_info()``); a worker whose iterator ends drops out of the rotation.

Threads, not processes: the dataset is shared (not copied) between workers, nothing is
pickled, and tracejit's own work (numpy, compiled kernels) releases the GIL, so loading overlaps
training. Python-heavy ``__getitem__`` code still holds the GIL while it runs. The workers share
tracejit's global generator; ``get_worker_info().seed`` is ``base_seed + id`` as in PyTorch, for
datasets that seed their own generators with it.
"""

from __future__ import annotations

import itertools
import queue
import threading
from dataclasses import dataclass

__all__ = ["WorkerInfo", "get_worker_info"]

_local = threading.local()


@dataclass(frozen=True)
class WorkerInfo:
    """What a worker thread knows about itself: ``id``, ``num_workers``, ``seed`` and the
    ``dataset`` (the loader's own object, shared by all workers)."""

    id: int
    num_workers: int
    seed: int
    dataset: object


def get_worker_info() -> WorkerInfo | None:
    """In a DataLoader worker thread, its `WorkerInfo`; elsewhere None.

    >>> from tracejit.utils.data import get_worker_info
    >>> get_worker_info() is None
    True
    """
    return getattr(_local, "info", None)


@dataclass
class _Exhausted:  # an iterable dataset's iterator ended in this worker
    worker_id: int


@dataclass
class _Failure:  # an exception raised in a worker, raised again in the main thread
    error: BaseException
    worker_id: int


def _realize(data) -> None:
    """Computes the pending (lazy) Tensors of a batch here, in the worker, so that the work
    is done in the background rather than when the training loop first reads the batch."""
    from ...tensor import Tensor
    if isinstance(data, Tensor):
        if data._lazy is not None:
            data._value  # noqa: B018  (realizes it)
    elif isinstance(data, dict):
        for v in data.values():
            _realize(v)
    elif isinstance(data, (list, tuple)):
        for v in data:
            _realize(v)


def _worker_loop(info, make_fetcher, init_fn, index_queue, result_queue) -> None:
    _local.info = info
    try:
        if init_fn is not None:
            init_fn(info.id)
        fetcher = make_fetcher()
    except BaseException as e:  # noqa: BLE001  (reported to the main thread)
        fetcher, init_error = None, e
    else:
        init_error = None
    while True:
        task = index_queue.get()
        if task is None:
            return
        send_idx, index = task
        if init_error is not None:
            result_queue.put((send_idx, _Failure(init_error, info.id)))
            continue
        try:
            data = fetcher.fetch(index)
            _realize(data)
        except StopIteration:
            data = _Exhausted(info.id)
        except BaseException as e:  # noqa: BLE001
            data = _Failure(e, info.id)
        result_queue.put((send_idx, data))


class ThreadedIter:
    """One epoch of a DataLoader with worker threads (see the module docstring)."""

    def __init__(self, loader, make_fetcher, base_seed: int):
        n = loader.num_workers
        self._sampler_iter = iter(loader._index_sampler)
        self._timeout = loader.timeout
        self._in_order = loader.in_order
        self._prefetch = (loader.prefetch_factor or 2) * n  # num_workers may be set late
        self._result_queue = queue.Queue()
        self._index_queues = [queue.Queue() for _ in range(n)]
        self._active = [True] * n
        self._cycle = itertools.cycle(range(n))
        self._tasks = {}  # send index -> [worker id] or [worker id, data] once it arrived early
        self._send_idx = self._rcvd_idx = self._outstanding = 0
        self._closed = False
        self._threads = []
        for wid in range(n):
            info = WorkerInfo(wid, n, base_seed + wid, loader.dataset)
            t = threading.Thread(target=_worker_loop, name=f"tj-DataLoader-worker-{wid}",
                                 args=(info, make_fetcher, loader.worker_init_fn,
                                       self._index_queues[wid], self._result_queue),
                                 daemon=True)
            t.start()
            self._threads.append(t)
        for _ in range(self._prefetch):
            self._try_put_index()

    def __iter__(self):
        return self

    def _try_put_index(self) -> None:
        if self._outstanding >= self._prefetch:
            return
        for _ in range(len(self._active)):
            wid = next(self._cycle)
            if self._active[wid]:
                break
        else:
            return
        try:
            index = next(self._sampler_iter)
        except StopIteration:
            return
        self._index_queues[wid].put((self._send_idx, index))
        self._tasks[self._send_idx] = [wid]
        self._outstanding += 1
        self._send_idx += 1

    def _get(self):
        try:
            return self._result_queue.get(timeout=self._timeout if self._timeout > 0 else None)
        except queue.Empty:
            self._shutdown()
            raise RuntimeError(f"DataLoader timed out after {self._timeout} seconds") from None

    def _deliver(self, data):
        self._try_put_index()
        if isinstance(data, _Failure):
            self._shutdown()
            e = data.error
            if hasattr(e, "add_note"):
                e.add_note(f"(raised in DataLoader worker thread {data.worker_id})")
            raise e
        return data

    def __next__(self):
        if self._closed:
            raise StopIteration
        while True:
            # skip batches already handed out (out of order) and those of finished workers
            while self._rcvd_idx < self._send_idx:
                task = self._tasks.get(self._rcvd_idx)
                if task is not None and (len(task) == 2 or self._active[task[0]]):
                    break
                self._tasks.pop(self._rcvd_idx, None)
                self._rcvd_idx += 1
            else:
                self._shutdown()
                raise StopIteration
            if len(self._tasks[self._rcvd_idx]) == 2:  # arrived earlier
                data = self._tasks.pop(self._rcvd_idx)[1]
                self._rcvd_idx += 1
                return self._deliver(data)
            idx, data = self._get()
            self._outstanding -= 1
            if isinstance(data, _Exhausted):
                self._active[data.worker_id] = False
                self._index_queues[data.worker_id].put(None)
                self._try_put_index()
                continue
            if idx == self._rcvd_idx or not self._in_order or isinstance(data, _Failure):
                self._tasks.pop(idx, None)
                if idx == self._rcvd_idx:
                    self._rcvd_idx += 1
                return self._deliver(data)
            self._tasks[idx].append(data)

    def _shutdown(self) -> None:
        if self._closed:
            return
        self._closed = True
        for q in self._index_queues:
            q.put(None)

    def __del__(self):  # a loop left early: let the threads finish
        if hasattr(self, "_index_queues"):
            self._shutdown()
