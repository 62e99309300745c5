"""The profiler's recorder: the on/off flag the runtimes read, and the events they record.

Input: calls from the hooks in `jit.py` (compiled calls, compilation phases), `lazy.py` (eager
realizations), `runtime/cpu.py` (steps, and worker threads' shares of split steps) and
`runtime/cuda.py` (launches, host steps). Output: `Event`s appended to the active profile's list.

`ON` is the only thing a hook reads when no profile is active: one module attribute, so the call
paths cost one read more than without a profiler. Everything else here runs only while a
profile is active. Recording is thread-safe: worker threads of the CPU runtime append under a
lock, each event carrying its thread's id.
"""

from __future__ import annotations

import contextlib
import threading
import time

__all__ = ["ON", "Event", "clock", "phase", "record_function"]

ON = False  # a profile is active (set only by `start` / `stop`)
clock = time.perf_counter_ns

_lock = threading.Lock()
_events: list | None = None  # the active profile's events
_opts: dict = {}
_tls = threading.local()
_infos: dict[int, tuple] = {}  # id(step) -> (step, name, cat, args): static facts per step


class Event:
    """One timed range: `name`, category `cat`, start `ts` and duration `dur` (ns, from
    `time.perf_counter_ns`), the thread `tid` that ran it (its OS id), and `args` (what it
    came from: ``source``, ``ops``, ``kind``, ``cache``, ...)."""

    __slots__ = ("name", "cat", "ts", "dur", "tid", "args")

    def __init__(self, name: str, cat: str, ts: int, dur: int, tid: int, args: dict):
        self.name, self.cat, self.ts, self.dur, self.tid, self.args = name, cat, ts, dur, tid, \
            args

    @property
    def end(self) -> int:
        return self.ts + self.dur

    @property
    def source(self) -> str:
        return self.args.get("source", "")

    def __repr__(self) -> str:
        return f"Event({self.name!r}, {self.cat}, {self.dur / 1e3:.1f} us, tid={self.tid})"


def start(events: list, **opts) -> None:
    global ON, _events
    with _lock:
        if ON:
            raise RuntimeError("tj.profiler: a profile is already active (profiles do not "
                               "nest; record_function marks ranges inside one)")
        _events, ON = events, True
        _opts.clear()
        _opts.update(opts)


def stop() -> None:
    global ON, _events
    with _lock:
        ON, _events = False, None
        _infos.clear()


def _add(name: str, cat: str, t0: int, t1: int, args: dict) -> None:
    ev = Event(name, cat, t0, t1 - t0, threading.get_native_id(), args)
    with _lock:
        if _events is not None:  # (the profile may have stopped while this ran)
            _events.append(ev)


# -- static facts of a schedule step ------------------------------------------------------
def _ops(nodes) -> str:
    seen: dict[str, None] = {}
    for n in nodes:
        if n.op not in ("reshape", "get") or len(nodes) == 1:
            seen.setdefault(n.op, None)
    return ",".join(seen)


def _in_order(step) -> list:
    """A step's graph nodes, producers first (a `Kernel` lists its root first: fusion.py)."""
    return step.nodes[::-1] if type(step).__name__ == "Kernel" else step.nodes


def _short(file: str) -> str:
    from ..errors import SourceLoc
    return SourceLoc(file, 0).short_file


def _loc(step) -> str:
    loc = getattr(step, "loc", None)
    if loc is None:
        nodes = [step.node] if hasattr(step, "node") else getattr(step, "nodes", ())
        loc = next((n.loc for n in nodes if n.loc is not None), None)
    return "" if loc is None else str(loc)


def step_info(step) -> tuple[str, str, dict]:
    """``(name, category, args)`` of a schedule step, computed once per step per profile."""
    info = _infos.get(id(step))
    if info is None or info[0] is not step:
        if hasattr(step, "node"):  # an Extern: a library routine, named by its op
            op = step.node.op
            info = (step, f"extern: {op}", "extern", {"ops": op, "source": _loc(step)})
        else:
            info = (step, step.name, "kernel",
                    {"kind": type(step).__name__, "ops": _ops(_in_order(step)),
                     "source": _loc(step)})
        _infos[id(step)] = info
    return info[1], info[2], info[3]


# -- hooks ----------------------------------------------------------------------------------
def cpu_step(step, t0: int, threads: int) -> None:
    """`runtime/cpu.py`: one step of a `CPUProgram` ran from `t0` to now."""
    t1 = clock()
    name, cat, args = step_info(step)
    if threads > 1:
        args = {**args, "threads": threads}
    _add(name, cat, t0, t1, args)


def worker(fn, step):
    """`fn` (a worker thread's share of `step`), timed as an event on the worker's thread."""
    name, _, args = step_info(step)

    def share(*a):
        t0 = clock()
        try:
            return fn(*a)
        finally:
            _add(name + " [worker]", "worker", t0, clock(), args)
    return share


def cuda_launch(drv, module, launch, grid: int, ptrs: list, step) -> None:
    """`runtime/cuda.py`: one launch, timed with a synchronize before and after it (so it
    serializes the device's queue while profiling)."""
    drv.synchronize()
    t0 = clock()
    drv.launch(module, launch.name, grid, launch.block, ptrs)
    drv.synchronize()
    t1 = clock()
    name, _, args = step_info(step)
    _add(launch.name, "cuda", t0, t1, {**args, "step": name, "grid": grid,
                                       "block": launch.block,
                                       "device": getattr(drv, "name", "cuda")})


def cuda_host(run, step, env) -> None:
    """`runtime/cuda.py`: a step run on the host (operands copied over and back)."""
    t0 = clock()
    run(step, env)
    op = step.node.op
    _add(f"host: {op}", "host", t0, clock(), {"ops": op, "source": _loc(step)})


def eager(seg, outs: list, t0: int, t1: int, interpreted: bool, compiled_now: bool) -> None:
    """`lazy.py`: a realization of pending segment `seg` (its results `outs`) began at `t0`
    and was compiled (when `compiled_now`) until `t1`."""
    n_ops = len(seg.index) - len(seg.inputs)
    mode = "interpreted" if interpreted else "compiled now" if compiled_now else "compiled"
    loc = next((n.loc for n in reversed(outs) if n.loc is not None), None)
    names = dict.fromkeys(k[0] for k in seg.key if k[0] not in ("in", "device", "get"))
    args = {"n_ops": n_ops, "ops": ",".join(names), "mode": mode,
            "device": str(seg.device or "cpu"), "source": "" if loc is None else str(loc)}
    if compiled_now:
        args["compile_us"] = round((t1 - t0) / 1e3, 3)
    _add(f"eager: {n_ops} ops", "eager", t0, clock(), args)


def outer_call(fn) -> bool:
    """Whether a call of compiled `fn` is not already inside `compiled_call` of itself."""
    return getattr(_tls, "fn", None) is not fn


def compiled_call(fn, args: tuple, kwargs: dict):
    """`jit.py`: calls compiled function `fn` (which then takes its usual path) as an event
    ``call: name``, with whether its signature cache hit."""
    prev, prev_miss = getattr(_tls, "fn", None), getattr(_tls, "missed", False)
    _tls.fn, _tls.missed = fn, False
    info = {"device": fn.device}
    if _opts.get("record_shapes"):
        info["shapes"] = [list(a.shape) if hasattr(a, "shape") else type(a).__name__
                          for a in args]
    code = getattr(fn.fn, "__code__", None)
    if code is not None:  # where the function is defined
        info["source"] = f"{_short(code.co_filename)}:{code.co_firstlineno}"
    t0 = clock()
    try:
        return fn(*args, **kwargs)
    finally:
        t1 = clock()
        info["cache"] = "miss" if _tls.missed else "hit"
        _tls.fn, _tls.missed = prev, prev_miss
        _add(f"call: {fn._fname}", "function", t0, t1, info)


class _Phase:
    """A compilation phase (``with phase("passes"):``), recorded when a profile is active."""

    __slots__ = ("name", "cat", "args", "t0", "disk")

    def __init__(self, name: str, cat: str, args: dict):
        self.name, self.cat, self.args = name, cat, args

    def __enter__(self):
        if self.cat == "compile":
            _tls.missed = True
            self.disk = _disk_hits()
        self.t0 = clock()
        return self

    def __exit__(self, *exc):
        t1 = clock()
        if self.cat == "compile":
            self.args["disk_cache_hits"] = _disk_hits() - self.disk
        _add(self.name, self.cat, self.t0, t1, self.args)


def _disk_hits() -> int:
    from ..runtime import diskcache
    return diskcache.stats.get("hits", 0)


_NULL = contextlib.nullcontext()


def phase(name: str, cat: str = "compile_phase", **args):
    """A context that records a compilation phase as an event while a profile is active
    (``cat="compile"``: a whole compilation, the signature cache missed). Off: a shared null
    context (compilation is not a hot path)."""
    return _Phase(name, cat, args) if ON else _NULL


class record_function(contextlib.ContextDecorator):
    """Marks a user range: ``with tj.profiler.record_function("label"):`` (or as a decorator)
    records an event named `label` around its body while a profile is active; ranges nest,
    and contain the compiled calls and kernels that run inside them.

    >>> import tracejit as tj
    >>> with tj.profiler.profile() as prof:
    ...     with tj.profiler.record_function("setup"):
    ...         x = tj.ones(4)
    >>> [e.name for e in prof.events()]
    ['setup']
    """

    def __init__(self, name: str, args: dict | None = None):
        self.name, self.args = name, dict(args or {})
        self._t0s: list = []  # a stack: one decorated function may recurse

    def __enter__(self):
        self._t0s.append(clock() if ON else None)
        return self

    def __exit__(self, *exc):
        t0 = self._t0s.pop()
        if t0 is not None:
            _add(self.name, "user_annotation", t0, clock(), self.args)
        return False


def thread_names() -> dict[int, str]:
    """Names of this process's live threads by OS thread id (the trace's thread tracks)."""
    return {t.native_id: t.name for t in threading.enumerate() if t.native_id is not None}

