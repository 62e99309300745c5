"""Lazy eager execution: eager ops build a pending graph that is realized on demand through the
same passes, fusion and backends as `tj.compile`, cached by the graph's structure.

Input: primitive applications on realized Tensors outside any trace (`trace.bind`'s eager
branch). Output: *lazy* Tensors — their shape and dtype are known at once (type rules and their
errors run at the op, at the user's line), their values when first needed: printing,
``.numpy()``, ``.item()``, ``float()``, an in-place write into a buffer they read, a call of a
compiled function, or more than `MAX_PENDING` pending ops. Then every live lazy Tensor of the
thread's pending segment is computed in one graph: its structure (ops, params, wiring, input
types) is the cache key, so a training loop, whose every step has the same structure, runs the
same compiled program each step. A structure seen for the first time runs on the numpy
interpreter (most eager code runs once); from its `COMPILE_AFTER`-th realization on (its `HOT`-th
when it computes fewer than `SMALL_WORK` elements: there numpy's per-op cost is small) it is
optimized, fused and compiled for the CPU, and stays cached (`CACHE_SIZE` structures).

Inputs of the pending graph are the realized Tensors the ops read. Their buffers are read when
the segment is realized, so every in-place write into a realized buffer (`ops/inplace.py`)
first realizes pending work, and a buffer shared with numpy (``from_numpy``, ``numpy()``) is
copied when captured (a write through numpy cannot reach pending work).

``tj.config.lazy = False`` (or ``TRACEJIT_LAZY=0``) evaluates each op at once on numpy; so do
``debug``/``debug_nans`` mode, control flow, effects and constants.

Ops on CUDA tensors always take this path, in a segment of their device (`device_of` picks it;
a 0-d CPU tensor may join them, as in PyTorch; other mixtures raise): their structures are
compiled for the device at once (never interpreted) and the results stay there. With
``tj.config.lazy`` off each such op is realized at once, as its own small program; ops the
lazy path does not take (control flow, effects) run on host copies (`run_on_host`).
"""

from __future__ import annotations

import math
import threading
import weakref
from collections import OrderedDict

import numpy as np

from . import dtypes as D
from .errors import user_error
from .ir.graph import Graph, Node, TensorType, freeze_params
from .profiler import events as _prof

__all__ = ["record", "alias", "realize_pending", "eligible", "stats", "clear_cache",
           "device_of", "run_on_host", "on_device", "default_device"]

COMPILE_AFTER = 2  # realizations of a structure before it is compiled ...
SMALL_WORK = 1 << 14  # ... when it computes at least this many elements in all (sum over ops)
HOT = 8  # realizations after which even a small structure is compiled (per-op overhead wins)
MAX_PENDING = 4000
CACHE_SIZE = 512
_EAGER_ONLY = frozenset({"constant", "cond", "while"})

_tls = threading.local()
_cache: OrderedDict = OrderedDict()  # structure key -> _Entry
_cache_lock = threading.Lock()
_stats = {"realizations": 0, "interpreted": 0, "compiled_runs": 0, "compiles": 0}


def eligible(name: str, op, device: bool = False) -> bool:
    """Whether eager `name` is recorded lazily now (on a CUDA `device`: whenever it can)."""
    from .config import config
    if device:
        return name not in _EAGER_ONLY and not op.has("effect")
    return (config.lazy and name not in _EAGER_ONLY and not op.has("effect")
            and not config.debug and not config.debug_nans)


def precheck(name: str, operands: tuple) -> None:
    """Raises now, at the user's line, the errors the op would raise when realized: indices
    out of bounds (gather, scatter) and integer division by zero. Reads the index or divisor
    values (realizing them when they are pending themselves)."""
    if name in ("gather", "scatter"):
        from .primitives.structure import _check_bounds
        x, idx = operands[0], operands[1 if name == "gather" else 2:]
        _check_bounds(_Shaped(x.shape), [i._value for i in idx], name)
    elif name in ("floordiv", "rem") and operands[0].dtype.is_integer:
        if np.any(operands[1]._value == 0):
            what = "floor_divide" if name == "floordiv" else "remainder"
            raise ZeroDivisionError(f"{what}: integer division by zero")


class _Shaped:
    __slots__ = ("shape",)

    def __init__(self, shape):
        self.shape = shape


_default_device: list = [None]  # tj.set_default_device (process-wide)


def default_device():
    """Where ops without tensor operands (constants, iota) create their results: this thread's
    `on_device` context, else `tj.set_default_device`'s; None is the CPU."""
    d = getattr(_tls, "device", False)
    return _default_device[0] if d is False else d


class on_device:
    """``with on_device(dev):`` ops without tensor operands create their results on `dev` (a
    CUDA `tj.device`, or None for the CPU) in this thread."""

    def __init__(self, dev):
        self.dev = dev

    def __enter__(self):
        self.prev = getattr(_tls, "device", False)
        _tls.device = self.dev
        return self

    def __exit__(self, *exc):
        _tls.device = self.prev


def device_of(name: str, operands: tuple):
    """The CUDA device the op runs on (None: the CPU). All operands must be on one device,
    except 0-d CPU tensors (Python numbers), which join a CUDA op; an op without operands
    runs on the `default_device`."""
    if not operands:
        return default_device()
    dev = None
    for x in operands:
        d = _device(x)
        if d is not None and dev is None:
            dev = d
        elif d is not None and d != dev:
            raise user_error(RuntimeError, f"{name}: expected all tensors to be on the same "
                             f"device, but found at least two devices, {dev} and {d}!")
    if dev is not None:
        for x in operands:
            if _device(x) is None and x.ndim and not _movable(x):
                raise user_error(RuntimeError, f"{name}: expected all tensors to be on the same "
                                 f"device, but found at least two devices, {dev} and cpu! (a "
                                 f"{tuple(x.shape)} CPU tensor; move it with "
                                 f".to({str(dev)!r}))")
    return dev


def _movable(x) -> bool:
    """Whether CPU tensor `x` is pending work made from scalars only (``iota``, a broadcast
    constant: what library code builds beside its operands): `record` rebuilds it on the
    device instead of refusing the mixture."""
    if x._lazy is None or x._lazy_seg.done:
        return False
    memo: dict[int, bool] = {}

    def ok(n) -> bool:
        r = memo.get(id(n))
        if r is None:
            r = memo[id(n)] = (n.type is not None and n.type.shape == ()) if n.op == "input" \
                else all(ok(i) for i in n.inputs)
        return r
    return ok(x._lazy)


def scalar_only(name: str, op, operands: tuple) -> bool:
    """Ops on scalars only (or none) are recorded lazily even with ``config.lazy`` off once a
    CUDA device is in use, so what they build can join device ops (`_movable`)."""
    from . import cuda
    if not cuda._drivers or name in _EAGER_ONLY or op.has("effect"):
        return False
    from .config import config
    return not config.debug and not config.debug_nans and all(x.ndim == 0 for x in operands)


def _replay(node: Node, src: "_Segment", dst: "_Segment", memo: dict) -> Node:
    """`node` of segment `src` (made from scalars: `_movable`) rebuilt in segment `dst`."""
    r = memo.get(id(node))
    if r is None:
        if node.op == "input":
            from .tensor import Tensor
            r = dst.capture(Tensor._wrap(src.values[node.params["index"]]))
        else:
            ins = tuple(_replay(i, src, dst, memo) for i in node.inputs)
            r = dst.add(node.op, ins, node.params, node.type if node.type is not None
                        else node.types, node.loc)
        memo[id(node)] = r
    return r


def _device(x):
    if x._lazy is not None:
        return x._lazy_seg.device
    v = x._val
    if v is not None and type(v) is not np.ndarray and getattr(v, "_tj_device", False):
        from .tensor import device
        return device("cuda", v.driver.index)
    return None


def run_on_host(name: str, op, operands: tuple, params: dict, t, dev):
    """An op the device cannot run lazily (control flow, effects): computed on host copies of
    its operands, its results copied to device `dev`."""
    from .devices import to_device_array
    from .tensor import Tensor
    from .trace import _coerce
    out = op.ref(*[x.numpy() for x in operands], **params)
    if isinstance(t, tuple):
        return tuple(Tensor._wrap(to_device_array(_coerce(o, tt), dev), weak=False)
                     for o, tt in zip(out, t))
    return Tensor._wrap(to_device_array(_coerce(out, t), dev))


class _Segment:
    """The pending graph of one thread (on one device: `device` None is the CPU)."""

    device = None

    def __init__(self):
        self.inputs: list[Node] = []
        self.values: list[np.ndarray] = []
        self.captured: dict[int, Node] = {}
        self.keep: list = []  # the captured Tensors (their ids stay valid)
        self.index: dict[int, int] = {}  # node id -> position in the structure
        self.key: list = []
        self.work = 0  # elements computed by the pending ops
        self.live: list = []  # weakrefs to lazy Tensors of this segment
        self.lock = threading.Lock()
        self.done = False

    def ref(self, n: Node) -> int:
        return self.index[id(n)]

    def capture(self, x) -> Node:
        node = self.captured.get(id(x))
        if node is not None:
            return node
        v = x._value  # a lazy Tensor of another thread's segment is realized here
        if type(v) is not np.ndarray:
            if self.device is None:
                v = v.get()
        elif x._exposed or not v.flags.writeable:
            v = np.array(v, copy=True)  # numpy may write to it before this segment runs
        t = x._type()
        node = Node("input", (), {"index": len(self.inputs), "kind": "arg"}, t,
                    name=f"in{len(self.inputs)}")
        self.index[id(node)] = -1 - len(self.inputs)
        self.inputs.append(node)
        self.values.append(v)
        self.captured[id(x)] = node
        self.keep.append(x)
        self.key.append(("in", t))
        return node

    def add(self, op: str, ins: tuple, params: dict, t, loc) -> Node:
        # (no hash-consing: Tensors of one node are aliases, sharing one buffer; the optimizer's
        # CSE merges equal work when the structure is compiled)
        fz = freeze_params(params)
        multi = isinstance(t, tuple)
        node = Node(op, ins, params, None if multi else t, loc, types=t if multi else None)
        self.index[id(node)] = len(self.index) - len(self.inputs)
        self.key.append((op, tuple(self.ref(i) for i in ins), fz, t))
        for tt in (t if multi else (t,)):
            self.work += math.prod(tt.shape)
        return node


def _segment(device=None) -> _Segment:
    if device is not None:
        segs = _device_segments()
        seg = segs.get(device)
        if seg is None or seg.done:
            seg = segs[device] = _Segment()
            seg.device = device
            seg.key.append(("device", str(device)))
        return seg
    seg = getattr(_tls, "seg", None)
    if seg is None or seg.done:
        seg = _tls.seg = _Segment()
    return seg


def _device_segments() -> dict:
    segs = getattr(_tls, "dev_segs", None)
    if segs is None:
        segs = _tls.dev_segs = {}
    return segs


def alias(x):
    """A new lazy Tensor for the same pending value as lazy `x` (``x.detach()``)."""
    return _lazy_tensor(x._lazy, x._lazy_seg)


def _lazy_tensor(node: Node, seg: _Segment):
    from .tensor import Tensor
    t = object.__new__(Tensor)
    t._val, t._node, t._builder, t._weak = None, None, None, False
    t._lazy, t._lazy_seg = node, seg
    seg.live.append(weakref.ref(t))
    return t


def record(name: str, operands: tuple, params: dict, t, loc, device=None):
    """Applies primitive `name` lazily (on `device`: None is the CPU); returns lazy Tensor(s)
    of type(s) `t`."""
    seg = _segment(device)
    ins = []
    for x in operands:
        if x._lazy is not None and x._lazy_seg is seg:
            ins.append(x._lazy)
        elif device is not None and x._lazy is not None and x._lazy_seg.device is None:
            ins.append(_replay(x._lazy, x._lazy_seg, seg, {}))  # (device_of checked it)
        else:
            ins.append(seg.capture(x))
    node = seg.add(name, tuple(ins), params, t, loc)
    if isinstance(t, tuple):
        outs = tuple(_strong(seg, seg.add("get", (node,), {"index": i}, ti, loc), ti, loc)
                     for i, ti in enumerate(t))
        res = tuple(_lazy_tensor(o, seg) for o in outs)
    else:
        res = _lazy_tensor(_strong(seg, node, t, loc), seg)
    if len(seg.index) - len(seg.inputs) > MAX_PENDING:
        realize_pending(seg)
    elif device is not None:
        from .config import config
        if not config.lazy:
            realize_pending(seg)
    return res


def _strong(seg: _Segment, node: Node, t: TensorType, loc) -> Node:
    """Eager results take their default dtype when weakly typed (as `Tensor._wrap` does)."""
    if not t.weak:
        return node
    dt = {0: D.bool_, 1: D.int64, 2: D.float32}[t.dtype.category]
    return seg.add("convert", (node,), {"dtype": dt, "weak": False},
                   TensorType(t.shape, dt, False), loc)


class _Entry:
    __slots__ = ("seen", "runner")

    def __init__(self):
        self.seen, self.runner = 0, None


def realize_pending(seg: _Segment | None = None) -> None:
    """Computes every live lazy Tensor of `seg` (default: this thread's segments, on every
    device)."""
    if seg is None:
        for s in [getattr(_tls, "seg", None), *_device_segments().values()]:
            if s is not None:
                realize_pending(s)
        return
    with seg.lock:
        if seg.done:
            return
        seg.done = True
        if getattr(_tls, "seg", None) is seg:
            _tls.seg = None
        if seg.device is not None and _device_segments().get(seg.device) is seg:
            del _device_segments()[seg.device]
        _run(seg)


def _run(seg: _Segment) -> None:
    targets, outs, pos = [], [], {}
    for r in seg.live:
        t = r()
        if t is None or t._lazy_seg is not seg:
            continue
        n = t._lazy
        if id(n) not in pos:
            pos[id(n)] = len(outs)
            outs.append(n)
        targets.append((t, pos[id(n)]))
    if not outs:
        return
    key = (tuple(seg.key), tuple(seg.ref(n) for n in outs))
    with _cache_lock:
        entry = _cache.get(key)
        if entry is None:
            entry = _cache[key] = _Entry()
            if len(_cache) > CACHE_SIZE:
                _cache.popitem(last=False)
        else:
            _cache.move_to_end(key)
        entry.seen += 1
        runner = entry.runner
    graph = None
    t0 = _prof.clock() if _prof.ON else 0  # (profiling: this realization is an event)
    if runner is None and (seg.device is not None or entry.seen >= HOT or
                           entry.seen >= COMPILE_AFTER and seg.work >= SMALL_WORK):
        from .jit import _backend_runner
        graph = Graph(seg.inputs, outs, "eager")
        runner = entry.runner = _backend_runner(graph, str(seg.device or "cpu"))
        _stats["compiles"] += 1
    t1 = _prof.clock() if t0 else 0
    _stats["realizations"] += 1
    if runner is None:
        from .runtime.interpreter import run_graph
        results = run_graph(Graph(seg.inputs, outs, "eager"), seg.values)
        _stats["interpreted"] += 1
    else:
        results = runner(list(seg.values))
        _stats["compiled_runs"] += 1
    if t0:
        _prof.eager(seg, outs, t0, t1, runner is None, graph is not None)
    for t, i in targets:  # Tensors of one node are aliases (detach()): one buffer
        t._val = results[i]
        t._lazy = t._lazy_seg = None


def stats() -> dict:
    """Counts of realizations, interpreted and compiled runs, compilations; cached structures."""
    return {**_stats, "cached_structures": len(_cache)}


def clear_cache() -> None:
    with _cache_lock:
        _cache.clear()
