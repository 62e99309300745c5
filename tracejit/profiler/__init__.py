"""`tj.profiler`: where the time of compiled and eager code goes, kernel by kernel.

Input: everything tracejit runs while a `profile` is active: compiled calls (`jit.py`), their
compilations, the steps of the CPU runtime (and its worker threads), CUDA launches, eager
realizations (`lazy.py`), and `record_function` ranges. Output: the events (`events.py`),
aggregated into a PyTorch-like table (`table.py`) or written as a Chrome trace (`chrome.py`).

>>> import numpy as np, tracejit as tj
>>> f = tj.compile(lambda x: tj.exp(x * 2).sum())
>>> with tj.profiler.profile() as prof:
...     _ = f(np.ones(16, np.float32))
>>> rows = prof.key_averages()
>>> sorted({r.cat for r in rows} & {"function", "compile", "kernel"})
['compile', 'function', 'kernel']
>>> print(rows.table(sort_by="self_cpu_time_total", row_limit=5))  # doctest: +SKIP

While profiling, the CPU runtime runs every schedule step by step (never its one-call fast
path) so that each kernel is timed, and the CUDA runtime synchronizes around every launch (so
launches do not overlap with the host or each other): the profiled program runs somewhat slower
than it otherwise would. Off, the only cost is one flag read per call.
"""

from __future__ import annotations

from . import events as _events
from .events import Event, record_function
from .table import EventAvg, EventList, FunctionStats, function_stats, key_averages, summary

__all__ = ["profile", "record_function", "Event", "EventAvg", "EventList", "FunctionStats",
           "is_profiling"]


def is_profiling() -> bool:
    return _events.ON


class profile:
    """Records what tracejit runs while active (``with profile() as prof:``, or ``start()`` /
    ``stop()``): one `Event` per compiled call (``call: f``, with whether its signature cache
    hit), compilation (``compile: f``, with its phases ``trace``, ``passes``, ``codegen: cpu``),
    kernel (its schedule name, e.g. ``k1_mul_exp``, with the primitives fused into it and the
    user's ``file:line``), extern (``extern: sort``), CUDA launch and host step, eager
    realization (``eager: 12 ops``) and `record_function` range.

    Args:
        record_shapes: also record the shapes of compiled calls' arguments (``args["shapes"]``;
            ``key_averages(group_by_input_shape=True)`` groups by them).

    >>> import numpy as np, tracejit as tj
    >>> f = tj.compile(lambda x: x * 2 + 1)
    >>> with tj.profiler.profile() as prof:
    ...     for _ in range(3):
    ...         _ = f(np.ones(16, np.float32))
    >>> prof.function_stats()["<lambda>"].calls, prof.function_stats()["<lambda>"].misses
    (3, 1)

    Only one profile is active at a time (in the whole process: worker threads record into it).
    """

    def __init__(self, record_shapes: bool = False, enabled: bool = True):
        self.record_shapes, self.enabled = record_shapes, enabled
        self._events: list = []
        self._origin = 0
        self._threads: dict[int, str] = {}
        self._running = False

    def start(self) -> "profile":
        if self.enabled and not self._running:
            self._origin = _events.clock()
            _events.start(self._events, record_shapes=self.record_shapes)
            self._running = True
        return self

    def stop(self) -> None:
        if self._running:
            self._threads.update(_events.thread_names())
            _events.stop()
            self._running = False

    def __enter__(self) -> "profile":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def events(self) -> list:
        """The recorded `Event`s, in the order they finished."""
        return list(self._events)

    def key_averages(self, group_by_input_shape: bool = False) -> EventList:
        """Events aggregated by name, category and source line: an `EventList` of `EventAvg`
        rows, printed by ``.table(sort_by=..., row_limit=...)``."""
        return key_averages(self.events(), group_by_input_shape)

    def function_stats(self) -> dict[str, FunctionStats]:
        """`FunctionStats` by compiled function name (``"eager"`` for eager realizations)."""
        return function_stats(self.events())

    def summary(self) -> str:
        """Per compiled function: calls, time, compile time, cache hits/misses, kernels."""
        return summary(self.events())

    def export_chrome_trace(self, path) -> None:
        """Writes the events as Chrome trace-event JSON (open it in chrome://tracing or
        https://ui.perfetto.dev)."""
        from .chrome import export_chrome_trace
        names = dict(self._threads)
        if self._running:
            names.update(_events.thread_names())
        export_chrome_trace(path, self.events(), self._origin, names)
