"""Batching: a Graph replayed with a batch axis, and the batching rule of every primitive.

Input: a `Graph`, one Tensor per graph input, and per input its batch dim (0: the Tensor carries
the batch axis in front; None: unbatched, the same for every example). Output: the outputs and
their batch dims. `batch_graph` walks the nodes like `autodiff.replay`, re-applying each one with
`bind` in the current trace: a node whose operands are all unbatched is replayed as it is (a
value that never depends on a batched input stays unbatched, with no wasted broadcast); any
other goes through its primitive's ``batch`` rule ``(xs, dims, **params) -> (out, out_dim)``.
`batch_subgraph` does the same Graph -> Graph for the closed sub-graphs of ``cond``/``while``.

Why the rules live here rather than next to each record in `primitives/`: they are generic by
trait, not by op. Every ``elementwise`` primitive (about sixty) batches with the same
rank-aligning rule; the reductions, scans and sorts share one axis-shifting rule; the shape
primitives are one line each. A table in one file states that once and makes the complete set
easy to audit; `install()` writes them into the `OpDef` records with `defrules` (a rule written
next to a record wins). The control rules need this module's walker anyway.

Inside the branches of a ``cond`` with a batched predicate, and inside the body of a ``while``
whose condition is batched, lanes compute values that the final ``select`` discards (the branch
not taken; the loop body of a lane that has already stopped). Such lanes must not fail: there
gather/scatter indices are clamped into range and integer divisors of zero replaced by one.
"""

from __future__ import annotations

import threading

from . import dtypes as D
from .ir.graph import Graph, TensorType
from .primitives import PRIMITIVES, defrules
from .primitives.elementwise import broadcast_shapes
from .tensor import Tensor
from .trace import at_location, bind, current_builder, trace_subgraph

__all__ = ["batch_graph", "batch_subgraph", "install", "live_lanes"]

_state = threading.local()


# -- the walker -------------------------------------------------------------------------------

def batch_graph(graph: Graph, args: list[Tensor], dims: list) -> tuple[list, list]:
    """Replays `graph` on `args` (batch dims `dims`, each 0 or None) in the current context.

    Returns ``(outputs, output_dims)``. Every batched value carries its batch axis in front.
    """
    env = {id(n): (a, d) for n, a, d in zip(graph.inputs, args, dims, strict=True)}
    for n in graph.nodes:
        xs = [env[id(i)][0] for i in n.inputs]
        ds = [env[id(i)][1] for i in n.inputs]
        with at_location(n.loc):
            env[id(n)] = apply_batched(n.op, xs, ds, n.params)
    return [env[id(o)][0] for o in graph.outputs], [env[id(o)][1] for o in graph.outputs]


def apply_batched(op: str, xs: list, dims: list, params: dict):
    """One primitive on operands with batch dims: ``(out, out_dim)``. (The operand of ``get``
    is a multi-result value: a tuple of Tensors, with a tuple of dims, so it takes its rule.)"""
    if _masked() and op in _GUARDS:
        xs = _GUARDS[op](xs, dims, **params)
    if all(d is None for d in dims):
        out = bind(op, *xs, **params)
        return out, (tuple(None for _ in out) if isinstance(out, tuple) else None)
    rule = PRIMITIVES[op].batch
    if rule is None:
        raise NotImplementedError(f"vmap: primitive {op!r} has no batching rule")
    out, d = rule(xs, dims, **params)
    if isinstance(out, tuple):
        return (tuple(_front(o, k) for o, k in zip(out, d)),
                tuple(None if k is None else 0 for k in d))
    return _front(out, d), (None if d is None else 0)


def _front(x: Tensor, d):
    """`x` with its batch axis `d` moved to the front (rules may return any position)."""
    if d is None or d == 0:
        return x
    return _moveaxis(x, d, 0)


def batch_subgraph(graph: Graph, batched: list[bool], size: int,
                   force: list[bool] | None = None) -> tuple[Graph, list[bool]]:
    """Graph -> Graph: `graph` with the inputs marked in `batched` given a leading batch axis of
    `size`. Returns the new closed graph and which of its outputs are batched; outputs marked in
    `force` are batched even when they do not depend on a batched input."""
    force = [False] * len(graph.outputs) if force is None else force
    in_types = [TensorType(((size,) if b else ()) + n.shape, n.dtype, n.weak)
                for n, b in zip(graph.inputs, batched, strict=True)]
    out_batched: list[bool] = []

    def fn(*ts):
        outs, ods = batch_graph(graph, list(ts), [0 if b else None for b in batched])
        res = []
        for o, d, f in zip(outs, ods, force, strict=True):
            if d is None and f:
                o, d = _bcast(o, size), 0
            out_batched.append(d is not None)
            res.append(o)
        return res

    g, _, captured = trace_subgraph(fn, in_types, [n.name for n in graph.inputs], graph.name)
    assert not captured, "a batching rule captured a value from outside its sub-graph"
    return g, out_batched


class _masking:
    """Within this context, batched lanes may compute values that are discarded later."""

    def __enter__(self):
        _state.masked = getattr(_state, "masked", 0) + 1

    def __exit__(self, *exc):
        _state.masked -= 1


def _masked() -> bool:
    return getattr(_state, "masked", 0) > 0


class _live:
    """Within this context, only the lanes where the batched bool `mask` (shape ``(B,)``) holds
    keep the values computed in the current trace; the others are discarded."""

    def __init__(self, mask: Tensor):
        self.entry = (current_builder(), mask)

    def __enter__(self):
        if not hasattr(_state, "lanes"):
            _state.lanes = []
        _state.lanes.append(self.entry)

    def __exit__(self, *exc):
        _state.lanes.pop()


def live_lanes() -> Tensor | None:
    """The batched bool ``(B,)`` of the lanes whose values are kept, or None when all are: set
    inside the branches of a ``cond`` with a batched predicate and the body of a loop whose
    condition is batched. (Only masks of the current trace apply: a sub-graph traced inside
    such a region, e.g. a nested ``cond`` with an unbatched predicate, does not see them.)"""
    b = current_builder()
    masks = [m for bb, m in getattr(_state, "lanes", ()) if bb is b]
    if not masks:
        return None
    out = masks[0]
    for m in masks[1:]:
        out = bind("logical_and", out, m)
    return out


# -- helpers ----------------------------------------------------------------------------------

def sequential(op: str, xs, dims, **params):
    """The fallback batching rule: `op` applied to each batch element in turn, the results
    stacked along a new leading axis (correct for any primitive; B times the nodes, so only
    for primitives whose batched form has no better rule)."""
    size = _size(xs, dims)
    outs = []
    for i in range(size):
        args = []
        for x, d in zip(xs, dims):
            if d is not None:
                lo, hi = [0] * x.ndim, list(x.shape)
                lo[0], hi[0] = i, i + 1
                x = bind("reshape", bind("slice", x, start=tuple(lo), stop=tuple(hi),
                                         step=(1,) * x.ndim), shape=tuple(x.shape[1:]))
            args.append(x)
        y = bind(op, *args, **params)
        outs.append(bind("reshape", y, shape=(1,) + tuple(y.shape)))
    if outs:
        return (outs[0] if size == 1 else bind("concatenate", *outs, axis=0)), 0
    types = [TensorType(_example_shape(x, d), x.dtype, x._weak) for x, d in zip(xs, dims)]
    t = PRIMITIVES[op].rule(*types, **params)  # an empty batch: zeros of the result's type
    return bind("broadcast", _const(0, t.dtype), shape=(0,) + tuple(t.shape)), 0


def _size(xs, dims) -> int:
    return next(x.shape[0] for x, d in zip(xs, dims) if d is not None)


def _bcast(x: Tensor, size: int) -> Tensor:
    return bind("broadcast", x, shape=(size,) + tuple(x.shape))


def _batched(x: Tensor, d, size: int) -> Tensor:
    return x if d is not None else _bcast(x, size)


def _lift(x: Tensor, rank: int) -> Tensor:
    """A batched `x` of per-example rank r <= `rank` as ``(B, 1, .., 1, *shape)``, so numpy
    broadcasting against per-example rank-`rank` operands keeps the batch axis in front."""
    r = x.ndim - 1
    if r >= rank:
        return x
    return bind("reshape", x, shape=(x.shape[0],) + (1,) * (rank - r) + tuple(x.shape[1:]))


def _moveaxis(x: Tensor, src: int, dst: int) -> Tensor:
    if src == dst:
        return x
    perm = [i for i in range(x.ndim) if i != src]
    perm.insert(dst, src)
    return bind("transpose", x, perm=tuple(perm))


def _const(value, dtype: D.DType) -> Tensor:
    return bind("constant", value=value, dtype=dtype, weak=False)


def _lanes(size: int, rank: int, dtype: D.DType = D.int64) -> Tensor:
    """The lane number ``(B, 1, .., 1)``: a leading gather/scatter index over the batch."""
    return bind("iota", shape=(size,) + (1,) * rank, axis=0, dtype=dtype)


def _shift(axes) -> tuple:
    return tuple(a + 1 for a in axes)


def _example_shape(x: Tensor, d) -> tuple:
    return tuple(x.shape[1:]) if d is not None else tuple(x.shape)


# -- rules ------------------------------------------------------------------------------------

def _elementwise(name: str):
    def rule(xs, dims, **params):
        rank = max(len(_example_shape(x, d)) for x, d in zip(xs, dims))
        ys = [x if d is None else _lift(x, rank) for x, d in zip(xs, dims)]
        return bind(name, *ys, **params), 0
    return rule


def _nullary(name: str):
    def rule(xs, dims, **params):  # never batched: there is no operand to carry a batch axis
        return bind(name, **params), None
    return rule


def _axes_param(name: str, key: str):
    """Reductions, scans and sorts: the axis params move up by one past the batch axis."""
    def rule(xs, dims, **params):
        v = params[key]
        params[key] = _shift(v) if isinstance(v, (tuple, list)) else v + 1
        return bind(name, xs[0], **params), 0
    return rule


def _broadcast(xs, dims, *, shape):
    x = _lift(xs[0], len(shape))
    return bind("broadcast", x, shape=(x.shape[0],) + tuple(shape)), 0


def _reshape(xs, dims, *, shape):
    return bind("reshape", xs[0], shape=(xs[0].shape[0],) + tuple(shape)), 0


def _transpose(xs, dims, *, perm):
    return bind("transpose", xs[0], perm=(0,) + _shift(perm)), 0


def _slice(xs, dims, *, start, stop, step):
    b = xs[0].shape[0]
    return bind("slice", xs[0], start=(0,) + tuple(start), stop=(b,) + tuple(stop),
                step=(1,) + tuple(step)), 0


def _rev(xs, dims, *, axes):
    return bind("rev", xs[0], axes=_shift(axes)), 0


def _pad(xs, dims, *, lo, hi, value):
    return bind("pad", xs[0], lo=(0,) + tuple(lo), hi=(0,) + tuple(hi), value=value), 0


def _concatenate(xs, dims, *, axis):
    size = _size(xs, dims)
    return bind("concatenate", *(_batched(x, d, size) for x, d in zip(xs, dims)),
                axis=axis + 1), 0


def _dot_general(xs, dims, *, contract, batch):
    """Both batched: the batch axis joins the dot's batch axes. One batched: it is a free axis
    of that operand (an unbatched weight is never copied per example), moved to the front."""
    (ca, cb), (ba, bb) = contract, batch
    a, b = xs
    da, db = dims
    if da is not None and db is not None:
        return bind("dot_general", a, b, contract=(_shift(ca), _shift(cb)),
                    batch=((0,) + _shift(ba), (0,) + _shift(bb))), 0
    if da is not None:  # a's axis 0 is its first free axis: after the dot's batch axes
        out = bind("dot_general", a, b, contract=(_shift(ca), tuple(cb)),
                   batch=(_shift(ba), tuple(bb)))
        return _moveaxis(out, len(ba), 0), 0
    out = bind("dot_general", a, b, contract=(tuple(ca), _shift(cb)),
               batch=(tuple(ba), _shift(bb)))
    return _moveaxis(out, len(ba) + (a.ndim - len(ca) - len(ba)), 0), 0  # after a's free axes


def _index_rank(idx, dims) -> int:
    return len(broadcast_shapes(*(_example_shape(i, d) for i, d in zip(idx, dims))))


def _indices(x_batched: bool, idx, dims, size: int) -> list:
    """Index arrays for gather/scatter on batched operands: batched indices are lifted to the
    common index rank (batch axis in front), and a batched operand is indexed by its lane first.
    Together they broadcast to ``(B, *I)``, I the per-example index shape."""
    rank = _index_rank(idx, dims)
    out = [i if d is None else _lift(i, rank) for i, d in zip(idx, dims)]
    dtype = idx[0].dtype if idx else D.int64  # (one index dtype, as the op library makes)
    return ([_lanes(size, rank, dtype)] if x_batched else []) + out


def _gather(xs, dims):
    x, idx = xs[0], xs[1:]
    size = _size(xs, dims)
    return bind("gather", x, *_indices(dims[0] is not None, idx, dims[1:], size)), 0


def _scatter(xs, dims, *, mode):
    x, upd, idx = xs[0], xs[1], xs[2:]
    size = _size(xs, dims)
    x = _batched(x, dims[0], size)  # the result differs per example: it must be batched
    upd = _batched(upd, dims[1], size)
    return bind("scatter", x, upd, *_indices(True, idx, dims[2:], size), mode=mode), 0


def _random_bits(xs, dims, *, shape, words=1):
    """A batch of keys: one ``random_bits`` per key in a loop (each lane's numbers are exactly
    those of its own key), written into a ``(B, *shape)`` result."""
    from .control import fori_loop
    keys = xs[0]
    size = keys.shape[0]
    out_shape = (size,) + tuple(shape) + ((2,) if words == 2 else ())
    init = bind("broadcast", _const(0, D.int64), shape=out_shape)

    def body(i, out):
        bits = bind("random_bits", bind("gather", keys, i), shape=shape, words=words)
        return bind("scatter", out, bits, i, mode="set")
    return fori_loop(_const(0, D.int64), _const(size, D.int64), body, init), 0


def _get(xs, dims, *, index):
    return xs[0][index], dims[0][index]


def _select_lanes(p: Tensor, a: Tensor, da, b: Tensor, db, size: int) -> Tensor:
    """Lane-wise ``p ? a : b`` for a batched bool `p` of shape ``(B,)``."""
    a, b = _batched(a, da, size), _batched(b, db, size)
    pm = bind("reshape", p, shape=(size,) + (1,) * (a.ndim - 1))
    return bind("select", pm, a, b)


def _cond(xs, dims, *, branches):
    pred, ops = xs[0], xs[1:]
    size = _size(xs, dims)
    if dims[0] is None:  # one branch for every lane: a cond of the batched branches
        batched = [d is not None for d in dims[1:]]
        (gt, bt), (gf, bf) = (batch_subgraph(g, batched, size) for g in branches)
        out_b = [p or q for p, q in zip(bt, bf)]
        if bt != out_b:
            gt, _ = batch_subgraph(branches[0], batched, size, force=out_b)
        if bf != out_b:
            gf, _ = batch_subgraph(branches[1], batched, size, force=out_b)
        outs = bind("cond", pred, *ops, branches=(gt, gf))
        return outs, tuple(0 if b else None for b in out_b)
    # a batched predicate: both branches run on every lane, and each lane picks its result
    with _masking(), _live(pred):
        t, td = batch_graph(branches[0], list(ops), list(dims[1:]))
    with _masking(), _live(bind("logical_not", pred)):
        f, fd = batch_graph(branches[1], list(ops), list(dims[1:]))
    outs = tuple(_select_lanes(pred, a, da, b, db, size) for a, da, b, db in zip(t, td, f, fd))
    return outs, (0,) * len(outs)


def _while(xs, dims, *, cond, body):
    k = len(body.outputs)
    size = _size(xs, dims)
    cb = [d is not None for d in dims[:k]]
    kb = [d is not None for d in dims[k:]]
    while True:  # a carry the body makes batched is batched from the start (a fixpoint)
        gb, ob = batch_subgraph(body, cb + kb, size)
        grown = [c or o for c, o in zip(cb, ob)]
        if grown == cb:
            break
        cb = grown
    gc, (pb,) = batch_subgraph(cond, cb + kb, size)
    if pb:  # lanes stop at different times: run while any lane goes on, update only those
        cb = [True] * k
        gc, gb = _masked_loop(cond, body, cb + kb, size)
    elif ob != cb:
        gb, _ = batch_subgraph(body, cb + kb, size, force=cb)
    carry = [_batched(x, d, size) if c else x for x, d, c in zip(xs[:k], dims[:k], cb)]
    outs = bind("while", *carry, *xs[k:], cond=gc, body=gb)
    return outs, tuple(0 if c else None for c in cb)


def _masked_loop(cond: Graph, body: Graph, batched: list[bool], size: int):
    """The condition and body of a loop whose condition differs per lane (JAX's approach):
    loop while any lane's condition holds; lanes whose condition fails keep their carry."""
    k = len(body.outputs)
    types = [TensorType(((size,) if b else ()) + n.shape, n.dtype, n.weak)
             for n, b in zip(cond.inputs, batched)]
    names = [n.name for n in cond.inputs]
    dims = [0 if b else None for b in batched]

    def lanes_on(ts):
        (p,), (d,) = batch_graph(cond, list(ts), dims)
        return _batched(p, d, size)

    def any_on(*ts):
        return [bind("reduce_max", lanes_on(ts), axes=(0,))]

    def step(*ts):
        with _masking():
            p = lanes_on(ts)
            with _live(p):
                new, nd = batch_graph(body, list(ts), dims)
        return [_select_lanes(p, o, d, old, 0, size) for o, d, old in zip(new, nd, ts[:k])]

    gc, _, c1 = trace_subgraph(any_on, types, names, cond.name)
    gb, _, c2 = trace_subgraph(step, types, names, body.name)
    assert not c1 and not c2, "a batching rule captured a value from outside its sub-graph"
    return gc, gb


def _custom_vjp(xs, dims, *, fwd, bwd, n_args, n_fwd_caps, n_out):
    """A ``tj.autograd.Function`` call: its forward and backward sub-graphs batched. Every
    forward output (results and saved residuals) is batched, so the backward sees batched
    residuals and cotangents; its cotangent of a batched argument is batched too (one of an
    unbatched argument may come back batched: reverse mode sums it over the batch)."""
    size = _size(xs, dims)
    n_f = n_args + n_fwd_caps
    fwd2, _ = batch_subgraph(fwd, [d is not None for d in dims[:n_f]], size,
                             force=[True] * len(fwd.outputs))
    bwd2, _ = batch_subgraph(bwd, [True] * len(fwd.outputs)
                             + [d is not None for d in dims[n_f:]], size,
                             force=[d is not None for d in dims[:n_args]])
    outs = bind("custom_vjp", *xs, fwd=fwd2, bwd=bwd2, n_args=n_args, n_fwd_caps=n_fwd_caps,
                n_out=n_out)
    return outs, (0,) * len(outs)


# -- guards for discarded lanes ---------------------------------------------------------------

def _clamp_indices(x: Tensor, dx, idx) -> list:
    shape = _example_shape(x, dx)
    out = []
    for ax, i in enumerate(idx):
        n = shape[ax]
        if n > 0:
            i = bind("minimum", bind("maximum", i, _const(0, i.dtype)), _const(n - 1, i.dtype))
        out.append(i)
    return out


def _guard_gather(xs, dims):
    return [xs[0]] + _clamp_indices(xs[0], dims[0], xs[1:])


def _guard_scatter(xs, dims, *, mode):
    return [xs[0], xs[1]] + _clamp_indices(xs[0], dims[0], xs[2:])


def _guard_divisor(xs, dims):
    a, b = xs
    if not b.dtype.is_integer:
        return xs
    zero = bind("eq", b, _const(0, b.dtype))
    return [a, bind("select", zero, _const(1, b.dtype), b)]


_GUARDS = {"gather": _guard_gather, "scatter": _guard_scatter,
           "floordiv": _guard_divisor, "rem": _guard_divisor}

# -- the table --------------------------------------------------------------------------------

_AXIS_PARAM = {"reduce_sum": "axes", "reduce_prod": "axes", "reduce_max": "axes",
               "reduce_min": "axes", "argmax": "axis", "argmin": "axis", "cumsum": "axis",
               "cumprod": "axis", "argsort": "axis"}

RULES = {
    "broadcast":   _broadcast,
    "reshape":     _reshape,
    "transpose":   _transpose,
    "slice":       _slice,
    "rev":         _rev,
    "pad":         _pad,
    "concatenate": _concatenate,
    "dot_general": _dot_general,
    "gather":      _gather,
    "scatter":     _scatter,
    "random_bits": _random_bits,
    "get":         _get,
    "cond":        _cond,
    "while":       _while,
    "custom_vjp":  _custom_vjp,
}


def rule_for(name: str):
    """The batching rule of primitive `name`: by trait, then from the table."""
    op = PRIMITIVES[name]
    if op.has("elementwise"):
        return _elementwise(name)
    if op.arity == 0:
        return _nullary(name)
    if name in _AXIS_PARAM:
        return _axes_param(name, _AXIS_PARAM[name])
    return RULES.get(name)


def install() -> None:
    """Writes the rules into the primitives' records (where none is defined already)."""
    for name, op in PRIMITIVES.items():
        rule = rule_for(name)
        if op.batch is None and rule is not None:
            defrules(name, batch=rule)


install()
