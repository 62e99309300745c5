"""Tracing: turning Python calls on Tensors into Graph nodes.

Input: a Python function and example arguments. Output: a `Graph`. Every op in tracejit ends in
`bind(primitive, *operands, **params)`. With no trace active, `bind` evaluates the primitive's
numpy reference at once (eager mode). Inside a trace it checks the type rule, records a node
with the user's source location in the innermost `Builder`, and returns a tracer (a `Tensor`
holding a node instead of a buffer). Identical nodes are hash-consed, so CSE is nearly free.

Values from outside a trace are lifted on first use: a realized Tensor becomes an implicit
*captured* input, read again at every call; a tracer of an enclosing trace (inside a `cond`
branch or loop body) becomes a captured input of the inner graph, which the control-flow node
receives as an extra operand.

Effects (`tj.debug.print`, `tj.debug.check`, and control flow whose sub-graphs hold them) are
never hash-consed; the `Builder` lists them in program order as the graph's `effects`. Within
`effects_dropped()` (the backward pass of `vjp_graph`, the tangent rules of `jvp_graph`, the
derivative rules of control flow: work that recomputes the forward pass) an effect primitive
records nothing, so each effect runs once per call.
"""

from __future__ import annotations

import os
import threading
from typing import Any, Callable

import numpy as np

from . import dtypes as D
from . import lazy as _lazy
from .config import config as _config
from .errors import (
    CheckError,
    ConcretizationError,
    SourceLoc,
    TraceError,
    located_check,
    user_error,
    user_location,
)
from .ir.graph import Graph, Node, TensorType, effectful, freeze_params
from .primitives import PRIMITIVES, RuleError
from .primitives.debug import quiet

__all__ = ["Builder", "bind", "current_builder", "trace_graph", "trace_subgraph",
           "concretization_error", "effects_dropped", "effects_are_dropped"]

_state = threading.local()


def _stack() -> list[Builder]:
    s = getattr(_state, "stack", None)
    if s is None:
        s = _state.stack = []
    return s


def current_builder() -> Builder | None:
    s = _stack()
    return s[-1] if s else None


class Builder:
    """Collects the nodes of one graph under construction."""

    def __init__(self, name: str = "f", parent: Builder | None = None, concrete: bool = False):
        self.name = name
        self.parent = parent
        self.concrete = concrete  # tracers also carry values; Python may branch on them
        self.guards: list[tuple[str, Node, bytes]] = []
        self.inputs: list[Node] = []
        self.captured: list[Any] = []  # the outer Tensor each captured input stands for
        self._capture_index: dict[int, Node] = {}
        self._table: dict[tuple, Node] = {}
        self.effects: list[Node] = []  # effectful nodes, in program order
        self.active = False

    def __enter__(self):
        _stack().append(self)
        self.active = True
        return self

    def __exit__(self, *exc):
        self.active = False
        popped = _stack().pop()
        assert popped is self, "trace contexts exited out of order"

    def guard(self, t, what: str) -> None:
        """Records that Python read the value of tracer `t` (the trace is specialised to it)."""
        v = np.ascontiguousarray(t._value)
        self.guards.append((what, t._node, v.dtype.str.encode() + v.tobytes()))

    # -- inputs ---------------------------------------------------------------------------
    def add_input(self, t: TensorType, name: str, kind: str = "arg") -> Node:
        names = {n.name for n in self.inputs}
        base, k = _sanitize(name), 1
        unique = base
        while unique in names:
            unique, k = f"{base}_{k}", k + 1
        node = Node("input", (), {"index": len(self.inputs), "kind": kind}, t, name=unique)
        self.inputs.append(node)
        return node

    def lift(self, x) -> Node:
        """The node standing for operand `x` (a Tensor, realized or traced) in this graph."""
        from .tensor import Tensor
        assert isinstance(x, Tensor)
        if x._node is not None:
            if x._builder is self:
                return x._node
            if not x._builder.active or not self._is_ancestor(x._builder):
                raise user_error(TraceError, "a traced value escaped the function it was "
                                 "traced in (it was stored in a global or closure and used "
                                 "after, or outside, that trace); return it instead")
            outer = x._node if x._builder is self.parent else self.parent.lift(x)
            return self._capture(outer, x, outer.type, "c")
        if self.parent is not None:  # realized Tensor: capture at the outermost graph
            return self._capture(self.parent.lift(x), x, x._type(), "c")
        key = id(x)
        if key not in self._capture_index:
            self._capture_index[key] = self.add_input(x._type(), "capture", kind="capture")
            self.captured.append(x)
        return self._capture_index[key]

    def _capture(self, outer: Node, x, t: TensorType, name: str) -> Node:
        """A captured input standing for the enclosing graph's node `outer` (Tensor `x`)."""
        key = id(outer)
        if key not in self._capture_index:
            self._capture_index[key] = self.add_input(t, name, kind="capture")
            self.captured.append(x)
        return self._capture_index[key]

    def _is_ancestor(self, b: Builder) -> bool:
        p = self.parent
        while p is not None:
            if p is b:
                return True
            p = p.parent
        return False

    # -- nodes ----------------------------------------------------------------------------
    def add(self, op: str, inputs: tuple[Node, ...], params: dict, t, loc: SourceLoc | None):
        multi = isinstance(t, tuple)
        effect = effectful(op, params)  # never merged: each tj.debug.print call prints
        key = None
        if not effect:
            key = (op, tuple(id(n) for n in inputs), freeze_params(params))
            hit = self._table.get(key)
            if hit is not None:
                return hit
        node = Node(op, inputs, params, None if multi else t, loc, types=t if multi else None)
        if key is not None:
            self._table[key] = node
        else:
            self.effects.append(node)
        return node

    def finish(self, outputs: list[Node]) -> Graph:
        return Graph(self.inputs, outputs, self.name, effects=self.effects)


def _sanitize(name: str) -> str:
    out = "".join(c if (c.isalnum() or c in "_.") else "." for c in name)
    out = ".".join(p for p in out.split(".") if p) or "arg"
    return out if not out[0].isdigit() else "a" + out


def _describe(types) -> str:
    return ", ".join(str(t) for t in types)


def bind(name: str, *operands, **params):
    """Applies primitive `name` to Tensors: evaluates eagerly, or records a node in a trace.
    When an operand requires grad (and grad mode is on) the result goes on the eager autograd
    tape (`autograd/graph.py`)."""
    for x in operands:
        if x._requires_grad:
            from .autograd.graph import needs_grad, record
            if needs_grad(operands):
                return record(name, params, operands, _apply(name, operands, params))
            break
    return _apply(name, operands, params)


def _apply(name: str, operands: tuple, params: dict):
    from .tensor import Tensor
    op = PRIMITIVES[name]
    if op.has("effect") and effects_are_dropped():  # recomputing work: its prints ran
        return Tensor._wrap(np.asarray(True))  # the token, recorded nowhere
    types = [x._type() for x in operands]
    try:
        t = op.rule(*types, **params)
    except RuleError as e:
        raise user_error(e.kind, f"{name}: {e} (operands: {_describe(types) or 'none'})") from None
    b = current_builder()
    if b is None:
        if any(x._node is not None for x in operands):
            raise user_error(TraceError, f"{name}: a traced value escaped the function it was "
                             "traced in (it was stored in a global or closure and used after "
                             "that trace ended); return it from the function instead")
        _check_size(name, t)
        dev = _lazy.device_of(name, operands)
        if dev is not None:  # on a CUDA device: compiled there (lazy.py)
            if _lazy.eligible(name, op, device=True):
                return _lazy.record(name, operands, params, t, _location(), dev)
            return _lazy.run_on_host(name, op, operands, params, t, dev)
        if _lazy.eligible(name, op) or _lazy.scalar_only(name, op, operands):
            try:
                _lazy.precheck(name, operands)
            except (IndexError, ZeroDivisionError) as e:
                raise user_error(type(e), str(e)) from None
            return _lazy.record(name, operands, params, t, _location())
        vals = [x._value for x in operands]
        try:
            out = op.ref(*vals, **params)
            if isinstance(t, tuple):
                out = tuple(_coerce(o, tt) for o, tt in zip(out, t))
            else:
                out = _coerce(out, t)
        except (IndexError, ZeroDivisionError, ValueError) as e:
            raise user_error(type(e), str(e)) from None
        except MemoryError as e:
            raise user_error(MemoryError, f"{name}: out of memory for the result "
                             f"{_describe(t if isinstance(t, tuple) else [t])}: {e}") from None
        if _config.debug_nans:
            _check_eager_nan(name, out, vals)
        if isinstance(t, tuple):
            return tuple(Tensor._wrap(o, weak=tt.weak) for o, tt in zip(out, t))
        return Tensor._wrap(out, weak=t.weak)
    node = b.add(name, tuple(b.lift(x) for x in operands), params, t, _location())
    value = None
    if b.concrete and all(x._value is not None for x in operands):
        # The values a concrete trace computes are the call's results. Its outermost trace
        # is what runs: a concrete sub-trace's effects print there again, when it is replayed.
        try:
            with quiet(b.parent is not None and effectful(name, params)):
                value = op.ref(*[x._value for x in operands], **params)
        except CheckError as e:
            raise located_check(e, node.loc) from None
        value = (tuple(_coerce(v, tt) for v, tt in zip(value, t)) if isinstance(t, tuple)
                 else _coerce(value, t))
    if isinstance(t, tuple):
        multi = Tensor._tracer(node, b, value)
        return tuple(bind("get", multi, index=i) for i in range(len(t)))
    return Tensor._tracer(node, b, value)


def _physical_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return 1 << 62


_PHYS_MEM = _physical_memory()


def _check_size(name: str, t) -> None:
    """An eager result larger than the machine's physical memory raises `MemoryError` before
    anything is allocated (rather than whatever the allocator or the OOM killer does)."""
    for tt in (t if isinstance(t, tuple) else (t,)):
        n = tt.dtype.itemsize
        for d in tt.shape:
            n *= d
        if n > _PHYS_MEM:
            raise user_error(MemoryError, f"{name}: the result {tt} needs {n} bytes, more "
                             f"than this machine's physical memory ({_PHYS_MEM} bytes)")


def _has_nan(v) -> bool:
    if isinstance(v, (tuple, list)):
        return any(_has_nan(x) for x in v)
    v = np.asarray(v)
    return v.dtype.kind in "fc" and bool(np.isnan(v).any())


def _check_eager_nan(name: str, out, operands) -> None:
    """``tj.config.debug_nans``: an eager op that made a NaN from NaN-free operands raises."""
    if _has_nan(out) and not any(_has_nan(v) for v in operands):
        raise user_error(FloatingPointError, f"{name}: produced NaN from NaN-free operands "
                         "(tj.config.debug_nans)")


class effects_dropped:
    """Within this context, effect primitives record nothing (`bind` returns a token), and a
    replayed node (`autodiff.replay.replay_node`) loses the effects of its sub-graphs. For work
    that recomputes what a forward pass already did: its prints and checks ran there. With
    ``drop=False``, effects are kept again (a custom backward runs only here)."""

    def __init__(self, drop: bool = True):
        self.drop = drop

    def __enter__(self):
        self.saved = getattr(_state, "drop_effects", False)
        _state.drop_effects = self.drop
        return self

    def __exit__(self, *exc):
        _state.drop_effects = self.saved


def effects_are_dropped() -> bool:
    return getattr(_state, "drop_effects", False)


def _location() -> SourceLoc | None:
    override = getattr(_state, "loc", None)
    return override if override is not None else user_location()


class at_location:
    """Within this context, new nodes take `loc` as their source location (the backward nodes
    of a derivative point at the forward line they differentiate)."""

    def __init__(self, loc: SourceLoc | None):
        self.loc = loc

    def __enter__(self):
        self.saved = getattr(_state, "loc", None)
        if self.loc is not None:
            _state.loc = self.loc
        return self

    def __exit__(self, *exc):
        _state.loc = self.saved


def _coerce(v, t: TensorType) -> np.ndarray:
    v = np.asarray(v)
    if v.dtype != t.dtype.np:
        v = v.astype(t.dtype.np)
    if not v.flags.writeable:
        v = np.array(v, copy=True)
    assert v.shape == t.shape, f"reference produced {v.shape}, rule says {t.shape}"
    return v


def trace_graph(fn: Callable, flat_types: list[TensorType], names: list[str], name: str,
                parent: Builder | None = None, unflatten: Callable | None = None,
                strong_outputs: bool = False, builder: type | None = None):
    """Traces `fn` on tracers of `flat_types`; returns ``(graph, out_tree, builder)``.

    `unflatten` turns the flat list of tracers back into `fn`'s arguments. With
    `strong_outputs`, weakly typed results are cast to their default dtype (a Python float
    result comes back as float32, as ``torch.tensor(0.5)`` would). `builder` is the Builder
    class to trace with (`state.StateBuilder` for compiled functions).
    """
    from . import tree
    from .tensor import Tensor, as_tensor
    b = (builder or Builder)(name, parent)
    with b:
        tracers = [Tensor._tracer(b.add_input(t, n), b) for t, n in zip(flat_types, names)]
        out = fn(*(unflatten(tracers) if unflatten else tracers))
        leaves, out_tree = tree.flatten(out)
        nodes = []
        for i, leaf in enumerate(leaves):
            if not isinstance(leaf, Tensor):
                try:
                    leaf = as_tensor(leaf)
                except TypeError:
                    raise user_error(TypeError, f"{name}: output {i} is a "
                                     f"{type(leaf).__name__}, not an array") from None
            if strong_outputs and leaf._weak:
                leaf = bind("convert", leaf, dtype={0: D.bool_, 1: D.int64, 2: D.float32}[
                    leaf.dtype.category], weak=False)
            nodes.append(b.lift(leaf))
    return b.finish(nodes), out_tree, b


def trace_subgraph(fn: Callable, in_types: list[TensorType], names: list[str], name: str,
                   seeds: list = (), out_dtypes: list | None = None, values: list | None = None):
    """Traces `fn` as a closed sub-graph of the current trace (a branch or loop body).

    The sub-graph's inputs are `fn`'s arguments, then one captured input per seed (outer nodes
    captured by a sibling sub-graph, so siblings share one input list), then whatever else `fn`
    closes over. `out_dtypes` casts the outputs. With `values` (one array per input, inside a
    concrete trace) the sub-graph is traced concretely too, so `fn` may branch on values.
    Returns ``(graph, out_tree, captured)`` where
    `captured` lists the outer Tensors that feed the captured inputs, in order (pass them as
    operands of the node that uses the sub-graph).
    """
    from . import tree
    from .tensor import Tensor, as_tensor
    parent = current_builder()
    assert parent is not None, "sub-graphs are traced inside an enclosing trace"
    concrete = values is not None and parent.concrete
    b = Builder(name, parent, concrete=concrete)
    with b:
        vals = values if concrete else [None] * len(in_types)
        tracers = [Tensor._tracer(b.add_input(t, n), b, v)
                   for t, n, v in zip(in_types, names, vals)]
        for s in seeds:
            b.lift(s)
        leaves, out_tree = tree.flatten(fn(*tracers))
        nodes = []
        for i, leaf in enumerate(leaves):
            if not isinstance(leaf, Tensor):
                try:
                    leaf = as_tensor(leaf)
                except TypeError:
                    raise user_error(TypeError, f"{name}: output {i} is a "
                                     f"{type(leaf).__name__}, not an array") from None
            if out_dtypes is not None and leaf.dtype != out_dtypes[i]:
                leaf = bind("convert", leaf, dtype=out_dtypes[i], weak=False)
            nodes.append(b.lift(leaf))
    return b.finish(nodes), out_tree, list(b.captured)


def concretization_error(what: str, t: TensorType) -> ConcretizationError:
    return user_error(ConcretizationError, (
        f"{what} needs the concrete value of a traced {t}, which is only known when the "
        "compiled code runs: Python control flow cannot depend on traced values.\n"
        "Fixes: use tj.where(c, a, b) or tj.cond(pred, true_fn, false_fn, *operands) for "
        "branches; tj.while_loop / tj.fori_loop for loops; or pass the value as a static "
        "argument (static_argnums / static_argnames) if it is configuration, not data."))
