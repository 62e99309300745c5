"""`tj.compile` and `tj.make_graph`: from a Python function to a cached, executable graph.

Input: a Python function and its call arguments (pytrees of Tensors, arrays, scalars).
Output: results as Tensors in the function's output structure. Each new *signature* (tree
structure, every leaf's shape/dtype/weakness, static argument values, the types of captured
tensors) is traced once into a `Graph`, passed through the pass pipeline, and handed to a
backend; later calls with the same signature go straight to the compiled artifact.
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
import threading
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from . import dtypes as D
from . import tree
from .captures import GONE, find_places
from .config import config as _config
from .errors import user_error
from .ir.graph import Graph, TensorType
from .profiler import events as _prof
from .state import StateBuilder
from .tensor import Tensor, _list_to_numpy
from .tensor import device as Device
from .trace import current_builder, trace_graph

__all__ = ["compile", "make_graph", "CompiledFunction", "Lowered", "CacheInfo"]

log = logging.getLogger("tracejit")

BACKENDS = ("interpreter", "cpu", "cuda")


def _numeric_list(x) -> bool:
    """A list of numbers (or of such lists): array data, not a pytree container."""
    if not isinstance(x, list) or not x:
        return False
    return all(isinstance(v, (bool, int, float)) and not isinstance(v, np.generic)
               or _numeric_list(v) for v in x)


def _leaf_value(x, path: str, fname: str):
    """``(numpy value or None, TensorType)`` for one argument leaf."""
    if isinstance(x, Tensor):
        return x.numpy(), x._type()
    if isinstance(x, (bool, int, float)) and not isinstance(x, np.generic):
        dt = {0: D.bool_, 1: D.int64, 2: D.float64}[D.scalar_dtype(x).category]
        if dt == D.int64 and not -2**63 <= x < 2**63:
            raise user_error(OverflowError, f"{fname}: argument {path} = {x} does not fit int64")
        return np.asarray(x, dtype=dt.np), TensorType((), dt, weak=True)
    if isinstance(x, (np.ndarray, np.generic)):
        a = np.asarray(x)
        try:
            dt = D.as_dtype(a.dtype)
        except TypeError as e:
            raise user_error(TypeError, f"{fname}: argument {path}: {e}") from None
        return a, TensorType(a.shape, dt)
    if isinstance(x, list):
        try:
            a = _list_to_numpy(x, None)
        except TypeError as e:
            raise user_error(TypeError, f"{fname}: argument {path} is not array data: {e}; pass "
                             "a Tensor or a rectangular list of numbers") from None
        return a, TensorType(a.shape, D.as_dtype(a.dtype))
    raise user_error(TypeError, f"{fname}: argument {path} has type {type(x).__name__} "
                     f"({x!r:.60}), which is not an array; pass Tensors, numpy arrays, Python "
                     f"numbers or pytrees of them, or mark it static with static_argnums / "
                     f"static_argnames")


def _flatten_args(args: tuple, kwargs: dict, fname: str, pos_names=()):
    """``(treedef, values, types, leaves)`` of the dynamic arguments."""
    leaves, treedef = tree.flatten((args, kwargs), is_leaf=_numeric_list)
    vals, types = [], []
    for i, leaf in enumerate(leaves):
        try:
            v, t = _leaf_value(leaf, "", fname)
        except (TypeError, OverflowError):  # redo with the argument's name in the message
            name = _leaf_names(args, kwargs, pos_names)[i]
            _leaf_value(leaf, name, fname)
            raise
        vals.append(v)
        types.append(t)
    return treedef, vals, types, leaves


def _leaf_names(args: tuple, kwargs: dict, pos_names=()) -> list[str]:
    paths = tree.leaf_paths((args, kwargs), is_leaf=_numeric_list)
    return [_pretty_path(p, pos_names) for p in paths]


def _pretty_path(p: str, pos_names=()) -> str:
    """``[0][1]['w']`` (args, then kwargs) -> ``w['w']`` (the parameter's name) or ``arg1``."""
    head, _, rest = p[1:].partition("]")
    rest = rest[1:] if rest.startswith("[") else rest
    idx, _, tail = rest.partition("]")
    if head == "0":
        i = int(idx)
        return (pos_names[i] if i < len(pos_names) else f"arg{i}") + tail
    return idx.strip("'\"") + tail


@dataclass
class CacheInfo:
    """What `CompiledFunction.cache_info()` reports."""

    hits: int
    misses: int
    signatures: list[str]

    @property
    def currsize(self) -> int:
        return len(self.signatures)


@dataclass
class _Entry:
    graph: Graph
    out_tree: Any
    captured: list  # realized Tensors read at every call
    places: list  # per capture, the _Place it was found at (checked at every call), or None
    runner: Callable  # `base`, or a checking runner around it (`tj.config`)
    signature: str
    base: Callable | None = None  # the backend's runner
    writes: Any = None  # state.WriteBack: in-place updates and .grad written after each call

    def current_captures(self) -> tuple[list | None, str | None]:
        """The tensors to read at this call: what each capture's place holds now.

        A place rebound to another realized tensor of the same shape and dtype is simply read
        (a new value never retraces); anything else returns ``(None, why)`` and retraces.
        """
        if self.writes is not None and (why := self.writes.stale()) is not None:
            return None, why
        for i, (old, place) in enumerate(zip(self.captured, self.places, strict=True)):
            if place is None:
                continue
            now = place.read()
            if now is old:
                continue
            if isinstance(now, Tensor) and not now._is_tracer and now._type() == old._type() \
                    and not (self.writes is not None and self.writes.targets(old)):
                self.captured[i] = now
                continue
            what = (f"a tensor {now._type()}" if isinstance(now, Tensor) else "nothing"
                    if now is GONE else f"a {type(now).__name__}")
            return None, (f"captured variable {place.desc} now holds {what} (traced with a "
                          f"tensor {old._type()})")
        return self.captured, None


def _check_output_sizes(graph: Graph) -> None:
    """A result larger than physical memory raises `MemoryError` naming the line that made
    it, before the call allocates anything (intermediates may be fused away; results not)."""
    from .trace import _PHYS_MEM
    for o in graph.outputs:
        n = o.dtype.itemsize
        for d in o.shape:
            n *= d
        if n > _PHYS_MEM:
            raise user_error(MemoryError, f"compiled result {o.dtype.short}{list(o.shape)} "
                             f"needs {n} bytes, more than this machine's physical memory "
                             f"({_PHYS_MEM} bytes)", o.loc)


@dataclass
class _Call:
    key: tuple
    treedef: Any
    vals: list
    types: list
    static: dict = field(default_factory=dict)
    dyn: tuple = ((), {})  # the dynamic (args, kwargs), for naming graph inputs
    pos_names: tuple = ()
    leaves: list = field(default_factory=list)  # the argument leaves (write-back targets)

    @property
    def names(self) -> list[str]:
        return _leaf_names(*self.dyn, self.pos_names)


class Lowered:
    """A traced function at one signature: ``.graph`` and ``.as_text(stage)``."""

    STAGES = ("graph", "optimized", "schedule", "llvm", "asm", "cuda")

    def __init__(self, graph: Graph, out_tree, device: str):
        self.graph, self.out_tree, self.device = graph, out_tree, device
        self.writes = None  # state.WriteBack: extra results written back after each call

    def as_text(self, stage: str = "graph") -> str:
        """The text of one compilation stage: ``graph`` (as traced), ``optimized`` (after the
        pass pipeline), ``schedule`` (the fused kernels), ``llvm`` (optimized LLVM IR), ``asm``
        (machine code for this CPU), ``cuda``."""
        from .passes.pipeline import optimize
        if stage == "graph":
            return str(self.graph)
        if stage == "optimized":
            return str(optimize(self.graph))
        if stage == "schedule":
            from .schedule.fusion import schedule
            return str(schedule(optimize(self.graph)))
        if stage in ("llvm", "asm"):
            from .runtime.cpu import CPUProgram
            prog = CPUProgram(optimize(self.graph))
            return prog.llvm_ir if stage == "llvm" else prog.asm
        if stage == "cuda":  # CUDA C of the fused kernels (issue 8: loop kernels so far)
            from .codegen.cuda import schedule_to_cuda
            from .schedule.fusion import schedule
            return schedule_to_cuda(schedule(optimize(self.graph)))
        raise ValueError(f"as_text: unknown stage {stage!r}; expected one of {self.STAGES}")


def _backend_runner(graph: Graph, device: str) -> Callable:
    from .passes.pipeline import optimize
    from .runtime.interpreter import run_graph
    with _prof.phase("passes"):
        g = optimize(graph)
    with _prof.phase(f"codegen: {device}"):  # scheduling, code generation, LLVM (profiling)
        if device.startswith("cuda"):
            from . import cuda
            from .runtime.cuda import CUDAProgram
            return CUDAProgram(g, cuda.driver(device))
        if device == "interpreter":
            return functools.partial(run_graph, g)
        from .runtime.cpu import CPUProgram
        return CPUProgram(g)


def _checked(runner: Callable, device: str) -> Callable:
    """`runner`, or a runner that also checks its results when `tj.config` asks for it
    (``debug``: against the interpreter; ``debug_nans``: for NaN). runtime/debugcheck.py."""
    if not _config.checking():
        return runner
    from .runtime.debugcheck import wrap
    return wrap(runner, device)


class CompiledFunction:
    """A function traced and compiled once per signature. Made by `tj.compile`."""

    def __init__(self, fn: Callable, device: str, static_argnums, static_argnames,
                 donate_argnums):
        functools.update_wrapper(self, fn, updated=())
        self.fn = fn
        self.device = device
        self.static_argnums = tuple(static_argnums)
        self.static_argnames = tuple(static_argnames)
        self.donate_argnums = tuple(donate_argnums)
        self._cache: dict[tuple, _Entry] = {}
        self._fast: dict[tuple, _Entry] = {}
        self._building: dict[tuple, threading.Lock] = {}  # signature -> held while compiling
        self._fast_ok = not self.static_argnums and not self.static_argnames
        self._hits = self._misses = 0
        self._cfg = _config.version  # the switches the runners were chosen for
        self._fname = getattr(fn, "__qualname__", getattr(fn, "__name__", "f"))
        self._graph_name = _graph_name(fn)
        try:
            self._sig = inspect.signature(fn)
        except (TypeError, ValueError):
            self._sig = None
        self._name_to_pos = {}
        if self._sig is not None:
            for i, p in enumerate(self._sig.parameters.values()):
                if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
                    self._name_to_pos[p.name] = i
        self._pos_names = tuple(self._name_to_pos)
        params = self._sig.parameters.values() if self._sig is not None else ()
        if self._sig is not None and not any(p.kind == p.VAR_POSITIONAL for p in params):
            npos = len(self._pos_names)
            for i in self.static_argnums:
                if not -npos <= i < npos:
                    raise ValueError(f"compile: static_argnums {i} is out of range for "
                                     f"{self._fname}, which takes {npos} positional "
                                     "argument(s)")
        for n in self.static_argnames:
            if self._sig is not None and n not in self._sig.parameters and not any(
                    p.kind == p.VAR_KEYWORD for p in self._sig.parameters.values()):
                raise ValueError(f"compile: static_argnames names {n!r}, which is not a "
                                 f"parameter of {self._fname}")

    # -- methods -----------------------------------------------------------------------------
    def __set_name__(self, owner, name: str) -> None:
        self._attr_name = name

    def __get__(self, obj, objtype=None):
        """``@tj.compile`` on a method: ``obj.f`` is compiled with ``self`` bound (its tensors
        are captured like closed-over ones), once per object. Argument numbers keep counting
        ``self`` as 0, as in the method's definition."""
        if obj is None:
            return self
        name = getattr(self, "_attr_name", None)
        cached = getattr(obj, "__dict__", {}).get(name) if name else None
        if isinstance(cached, CompiledFunction) and cached.fn.__func__ is self.fn:
            return cached
        shift = lambda ns: tuple(n - 1 if n > 0 else n for n in ns if n != 0)  # noqa: E731
        bound = CompiledFunction(self.fn.__get__(obj, objtype), self.device,
                                 shift(self.static_argnums), self.static_argnames,
                                 shift(self.donate_argnums))
        if name and isinstance(getattr(obj, "__dict__", None), dict):
            obj.__dict__[name] = bound  # later lookups find it first (like cached_property)
        return bound

    # -- signatures --------------------------------------------------------------------------
    def _split(self, args: tuple, kwargs: dict):
        static_pos = set(self.static_argnums) | {self._name_to_pos[n] for n in
                                                 self.static_argnames if n in self._name_to_pos}
        static = {}
        dyn_args = []
        for i, a in enumerate(args):
            if i in static_pos or (i - len(args)) in static_pos:
                static[i] = a
                dyn_args.append(None)
            else:
                dyn_args.append(a)
        dyn_kwargs = {}
        for k, v in kwargs.items():
            if k in self.static_argnames or self._name_to_pos.get(k, -1) in static_pos:
                static[k] = v
            else:
                dyn_kwargs[k] = v
        for k, v in static.items():
            try:
                hash(v)
            except TypeError:
                name = _static_name(k, self._pos_names)
                raise user_error(TypeError, f"{self._fname}: static argument {name!r} must be "
                                 f"hashable, got {type(v).__name__} ({v!r:.60})") from None
        return tuple(dyn_args), dyn_kwargs, static

    def _signature(self, args, kwargs) -> _Call:
        dyn_args, dyn_kwargs, static = self._split(args, kwargs)
        treedef, vals, types, leaves = _flatten_args(dyn_args, dyn_kwargs, self._fname,
                                                     self._pos_names)
        skey = tuple(sorted(((str(k), _static_key(v)) for k, v in static.items())))
        # arguments that require grad are traced as leaves that do (loss.backward() inside)
        rg = tuple(i for i, x in enumerate(leaves) if isinstance(x, Tensor) and x._requires_grad)
        return _Call((treedef, tuple(types), skey, rg), treedef, vals, types, static,
                     (dyn_args, dyn_kwargs), self._pos_names, leaves)

    # -- tracing -----------------------------------------------------------------------------
    def _trace(self, call: _Call):
        if self._sig is not None:  # a wrong number of arguments: the caller's line, not ours
            try:
                self._sig.bind(*call.dyn[0], **call.dyn[1])
            except TypeError as e:
                a, kw = call.dyn
                raise user_error(TypeError, f"{self._fname}{self._sig}: {e} (called with "
                                 f"{len(a)} positional and {len(kw)} keyword argument(s))"
                                 ) from None

        def rebuild(tracers):
            for tr, leaf in zip(tracers, call.leaves):
                if isinstance(leaf, Tensor) and leaf._requires_grad:
                    tr._requires_grad = True
            current_builder().arg_tracers = list(tracers)
            leaves = iter(tracers)
            args, kwargs = tree.unflatten(call.treedef, leaves)
            args = list(args)
            for k, v in call.static.items():
                if isinstance(k, int):
                    args[k] = v
                else:
                    kwargs[k] = v
            return (tuple(args), kwargs)

        graph, out_tree, b = trace_graph(
            lambda a, kw: self.fn(*a, **kw), call.types, call.names, self._graph_name,
            unflatten=rebuild, strong_outputs=True, builder=StateBuilder)
        return graph, out_tree, b.captured, (None if b.plan.empty else b.plan)

    def lower(self, *args, **kwargs) -> Lowered:
        """Traces at these arguments' signature without running; see `Lowered`."""
        call = self._signature(args, kwargs)
        graph, out_tree, _, writes = self._trace(call)
        low = Lowered(graph, out_tree, self.device)
        low.writes = writes
        return low

    def __call__(self, *args, **kwargs):
        if current_builder() is not None:  # called while tracing: inline
            return self.fn(*args, **kwargs)
        if _prof.ON and _prof.outer_call(self):  # profiling: this call timed, as an event
            return _prof.compiled_call(self, args, kwargs)
        if self._cfg != _config.version:  # tj.config changed: choose the runners again
            self._rechoose()
        if not kwargs and self._fast_ok:
            fast = self._fast_call(args)
            if fast is not None:  # (a 1-tuple: the result itself may be None)
                return fast[0]
        call = self._signature(args, kwargs)
        entry = self._cache.get(call.key)
        if entry is None:
            self._explain(call)
        else:
            _, why = entry.current_captures()
            if why is not None:
                entry = None
                self._explain(call, why)
        if entry is None:
            entry = self._compile(call, args, kwargs)
        else:
            self._hits += 1
        outs = entry.runner(list(call.vals) + [c.numpy() for c in entry.captured])
        if entry.writes is not None:
            outs = entry.writes.apply(outs, call.leaves)
        return tree.unflatten(entry.out_tree, [Tensor._wrap(o) for o in outs])

    def _compile(self, call: _Call, args, kwargs) -> _Entry:
        """A cache miss: traces and compiles `call`'s signature. Threads that miss on the same
        signature at once take turns on a lock of that signature: the first compiles, the
        others then find its entry (different signatures compile in parallel)."""
        stale = self._cache.get(call.key)  # (an entry whose captured tensors changed)
        with _BUILD_LOCK:
            lock = self._building.setdefault(call.key, threading.Lock())
        with lock:
            entry = self._cache.get(call.key)
            if entry is not None and entry is not stale and entry.current_captures()[1] is None:
                self._hits += 1  # compiled by the thread we waited for
                return entry
            self._misses += 1
            with _prof.phase(f"compile: {self._fname}", "compile", device=self.device,
                             signature=_describe(call) if _prof.ON else ""):
                with _prof.phase("trace"):
                    graph, out_tree, captured, writes = self._trace(call)
                _check_output_sizes(graph)
                if any(c._is_tracer for c in captured):
                    raise AssertionError("top-level captures must be realized tensors")
                base = _backend_runner(graph, self.device)
            entry = _Entry(graph, out_tree, captured, find_places(self.fn, captured),
                           _checked(base, self.device), _describe(call), base, writes)
            self._cache[call.key] = entry
            if dump := os.environ.get("TRACEJIT_DUMP"):  # every stage to files: export/dump.py
                from .export.dump import dump_compilation
                dump_compilation(dump, self._graph_name, entry.signature, graph, self.device,
                                 entry.base, self._fname)
            if not kwargs and all(type(a) in _FAST_TYPES for a in args):
                self._fast[_fast_key(args)] = entry
        return entry

    def _fast_call(self, args):
        """The cache-hit path for the common call: positional Tensors and arrays only. Returns
        ``(result,)``, or None when the call needs the general path."""
        vals, key = [], []
        for a in args:
            t = type(a)
            if t is Tensor:
                if a._node is not None or a._requires_grad:
                    return None
                a = a._value
            elif t is not np.ndarray:
                return None
            vals.append(a)
            key.append(a.shape)
            key.append(a.dtype.char)
        entry = self._fast.get(tuple(key))
        if entry is None:
            return None
        if entry.captured:
            caps, why = entry.current_captures()
            if why is not None:
                return None
            vals += [c._value for c in caps]
        self._hits += 1
        outs = entry.runner(vals)
        if entry.writes is not None:
            del vals  # (the write-back may take over buffers that nothing else holds)
            outs = entry.writes.apply(outs, args)
        if entry.out_tree.kind == "leaf":
            return (Tensor._wrap(outs[0]),)
        return (tree.unflatten(entry.out_tree, [Tensor._wrap(o) for o in outs]),)

    def _rechoose(self) -> None:
        self._cfg = _config.version
        for e in list(self._cache.values()):
            e.runner = _checked(e.base, self.device)

    def cache_info(self) -> CacheInfo:
        return CacheInfo(self._hits, self._misses, [e.signature for e in self._cache.values()])

    def cache_clear(self) -> None:
        self._cache.clear()
        self._fast.clear()
        self._hits = self._misses = 0

    def _explain(self, call: _Call, reason: str | None = None) -> None:
        if os.environ.get("TRACEJIT_EXPLAIN_CACHE_MISSES", "") in ("", "0") or not self._cache:
            return
        if reason is None:
            reason = min((_diff(call, e, k) for k, e in self._cache.items()), key=len)
        log.warning("tracejit: retracing %s: %s", self._fname, reason)


_FAST_TYPES = (np.ndarray, Tensor)
_BUILD_LOCK = threading.Lock()  # guards every CompiledFunction's `_building`


def _fast_key(args) -> tuple:
    """Shapes and dtypes of positional realized arrays: enough to find the trace they take
    (the same key `CompiledFunction._fast_call` builds inline)."""
    key = []
    for a in args:
        a = a._value if type(a) is Tensor else a
        key.append(a.shape)
        key.append(a.dtype.char)
    return tuple(key)


def _graph_name(fn) -> str:
    """An identifier for the graph: the function's name (``lambda`` for lambdas)."""
    name = getattr(fn, "__name__", None) or type(fn).__name__
    name = "".join(c if c.isalnum() or c == "_" else "_" for c in name).strip("_") or "f"
    return "f_" + name if name[0].isdigit() else name


def _static_key(v):
    return (type(v).__qualname__, v)


def _static_name(k, pos_names=()) -> str:
    """A static argument's parameter name (its key is a position or a keyword)."""
    if isinstance(k, int) or k.lstrip("-").isdigit():
        i = int(k)
        return pos_names[i] if 0 <= i < len(pos_names) else f"arg{i}"
    return k


def _describe(call: _Call) -> str:
    parts = [f"{n}: {t}" for n, t in zip(call.names, call.types)]
    parts += [f"{_static_name(k, call.pos_names)}={v!r} (static)"
              for k, v in call.static.items()]
    return "(" + ", ".join(parts) + ")"


def _diff(call: _Call, entry: _Entry, key: tuple) -> str:
    treedef, types, skey, rg = key
    if treedef != call.treedef:
        return f"the argument structure changed: {treedef!r} -> {call.treedef!r}"
    if skey != call.key[2]:
        old, new = dict(skey), dict(call.key[2])
        ks = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        show = lambda d, k: repr(d[k][1]) if k in d else "(not passed)"  # noqa: E731
        return ", ".join(f"static argument {_static_name(k, call.pos_names)} changed: "
                         f"{show(old, k)} -> {show(new, k)}" for k in ks)
    changes = [f"{n} changed {a} -> {b}" for n, a, b in zip(call.names, types, call.types)
               if a != b]
    if rg != call.key[3]:
        changes.append("which arguments require grad changed")
    return ", ".join(changes) or "unknown change"


def compile(fn: Callable | None = None, *, device: str | None = None, static_argnums=(),
            static_argnames=(), donate_argnums=()):
    """Traces `fn` once per signature into a graph and runs the compiled graph.

    Args:
        fn: a function of pytrees of Tensors, numpy arrays and Python scalars.
        device: ``"cpu"`` (the default), ``"cuda"`` or ``"interpreter"`` (numpy reference).
            Until the LLVM backend lands, ``"cpu"`` executes on the interpreter too.
        static_argnums / static_argnames: arguments that are configuration, not data: their
            values are part of the signature and Python code may branch on them.
        donate_argnums: arguments whose buffers the call may reuse (a hint).

    >>> import tracejit as tj
    >>> @tj.compile
    ... def f(x, w):
    ...     return tj.tanh(x @ w).sum(dim=0)
    >>> f(tj.ones(2, 3), tj.zeros(3, 4)).tolist()
    [0.0, 0.0, 0.0, 0.0]
    >>> f.cache_info().misses
    1
    """
    def wrap(f):
        if not callable(f):
            raise TypeError(f"compile: expected a function, got {type(f).__name__}")
        dev = "cpu" if device is None else device
        d = Device(dev)
        nums = (static_argnums,) if isinstance(static_argnums, int) else tuple(static_argnums)
        names = (static_argnames,) if isinstance(static_argnames, str) else tuple(
            static_argnames)
        donate = (donate_argnums,) if isinstance(donate_argnums, int) else tuple(donate_argnums)
        for v in nums + donate:
            if not isinstance(v, int):
                raise TypeError(f"compile: argnums must be ints, got {v!r}")
        return CompiledFunction(f, str(d) if d.type == "cuda" else d.type, nums, names, donate)
    return wrap if fn is None else wrap(fn)


def make_graph(fn: Callable, static_argnums=(), static_argnames=()) -> Callable[..., Graph]:
    """``make_graph(fn)(*example_args)`` returns the traced `Graph` of `fn`.

    >>> import tracejit as tj
    >>> g = tj.make_graph(lambda x: (x * 2).sum())(tj.ones(3))
    >>> [n.op for n in g.nodes]
    ['constant', 'mul', 'reduce_sum']
    """
    cf = compile(fn, device="interpreter", static_argnums=static_argnums,
                 static_argnames=static_argnames)

    @functools.wraps(fn)
    def graph_of(*args, **kwargs) -> Graph:
        low = cf.lower(*args, **kwargs)
        g = low.graph
        if low.writes is not None:  # the function's own results (compile also returns the
            # values it writes back into captured tensors and arguments: Lowered.graph)
            g = Graph(g.inputs, g.outputs[:low.writes.n_user], g.name, effects=g.effects)
        return g
    return graph_of

