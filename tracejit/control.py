"""Structured control flow: `cond`, `while_loop`, `fori_loop`, `scan`.

Input: Python callables and pytrees of operands. Output: their results. Inside a trace each
callable is traced once into a closed sub-graph and the whole construct becomes one ``cond`` or
``while`` node, compiled as a branch or a loop and never unrolled. In eager code, `cond`,
`while_loop` and `fori_loop` simply run Python's ``if``/``while`` — checking what compiled code
requires (both branches of `cond` return the same structure and shapes: the other branch is
traced, not run; a loop body keeps its carry's structure and shapes) so eager code that works
also compiles; `scan` traces its body so the stacked outputs have a shape even for zero
iterations.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from . import dtypes as D
from . import tree
from .errors import user_error
from .ir.graph import TensorType
from .ops.common import cast, operand
from .tensor import Tensor
from .trace import bind, current_builder, trace_subgraph

__all__ = ["cond", "while_loop", "fori_loop", "scan"]


def _fname(fn, default: str) -> str:
    n = getattr(fn, "__name__", default)
    return default if n.startswith("<") else n


def _tensors(leaves) -> list[Tensor]:
    return [operand(x) for x in leaves]


def _traced(*tensors) -> bool:
    return current_builder() is not None or any(t._is_tracer for t in tensors)


def _as_pred(pred) -> Tensor:
    p = operand(pred)
    if p.numel() != 1:
        raise user_error(TypeError, f"cond: the predicate must be a scalar, got shape "
                         f"{list(p.shape)}")
    if p.ndim:
        p = bind("reshape", p, shape=())
    return p if p.dtype.is_bool and not p._weak else cast(p, D.bool_)


def _common_dtypes(a, b, what: str):
    """Per-output dtypes both branches can return (PyTorch promotion), or a TypeError."""
    out = []
    for i, (x, y) in enumerate(zip(a, b)):
        if x.shape != y.shape:
            raise user_error(TypeError, f"{what}: output {i} has shape {list(x.shape)} in one "
                             f"branch and {list(y.shape)} in the other")
        dt = D.result_type((x.dtype, len(x.shape), x.weak), (y.dtype, len(y.shape), y.weak))
        out.append(x.dtype if x.dtype == y.dtype else dt)
    return out


def cond(pred, true_fn: Callable, false_fn: Callable, *operands):
    """``true_fn(*operands)`` if `pred` else ``false_fn(*operands)``, as one branch node.

    Both functions must return the same structure with the same shapes (dtypes are promoted).

    >>> import tracejit as tj
    >>> f = tj.compile(lambda x: tj.cond(x.sum() > 0, lambda v: v * 2, lambda v: -v, x))
    >>> f(tj.tensor([1.0, 2.0])).tolist(), f(tj.tensor([-1.0, -2.0])).tolist()
    ([2.0, 4.0], [1.0, 2.0])
    """
    if isinstance(pred, bool):  # a static Python condition
        return true_fn(*operands) if pred else false_fn(*operands)
    leaves, in_tree = tree.flatten(operands)
    xs = _tensors(leaves)
    p = _as_pred(pred)
    if not _traced(p, *xs):
        taken, other = (true_fn, false_fn) if bool(p) else (false_fn, true_fn)
        out = taken(*operands)
        _check_other_branch(other, xs, in_tree, out)
        return out
    types = [x._type() for x in xs]
    names = [f"x{i}" for i in range(len(xs))]

    def call(fn):
        return lambda *ts: fn(*tree.unflatten(in_tree, ts))

    tname, fname = _fname(true_fn, "true_fn"), _fname(false_fn, "false_fn")
    gt, tt, ct = trace_subgraph(call(true_fn), types, names, tname)
    gf, tf, cf = trace_subgraph(call(false_fn), types, names, fname, seeds=ct)
    if tt != tf:
        raise user_error(TypeError, f"cond: the branches return different structures: "
                         f"{tt!r} vs {tf!r}")
    a, b = [n.type for n in gt.outputs], [n.type for n in gf.outputs]
    dts = _common_dtypes(a, b, "cond")
    if len(cf) > len(ct) or [t.dtype for t in a] != dts:
        gt, _, ct = trace_subgraph(call(true_fn), types, names, tname, seeds=cf, out_dtypes=dts)
    if [t.dtype for t in b] != dts:
        gf, _, cf = trace_subgraph(call(false_fn), types, names, fname, seeds=ct,
                                   out_dtypes=dts)
    outs = bind("cond", p, *xs, *ct, branches=(gt, gf))
    return tree.unflatten(tt, outs)


def _check_other_branch(other: Callable, xs: list, in_tree, out) -> None:
    """Eager `cond` runs only the branch taken; the other is traced (not run: its effects and
    random draws are not executed) to check it returns the same structure and shapes, so code
    that works eagerly also compiles. A branch that cannot be traced is not checked."""
    from .trace import trace_graph
    try:
        g, other_tree, _ = trace_graph(lambda *ts: other(*tree.unflatten(in_tree, ts)),
                                       [x._type() for x in xs],
                                       [f"x{i}" for i in range(len(xs))], "other_branch")
    except Exception:  # noqa: BLE001  (value-dependent Python code, ...: nothing to compare)
        return
    leaves, out_tree = tree.flatten(out)
    if out_tree != other_tree:
        raise user_error(TypeError, f"cond: the branches return different structures: "
                         f"{out_tree!r} vs {other_tree!r}")
    got = [tuple(operand(x).shape) for x in leaves]
    want = [tuple(n.type.shape) for n in g.outputs]
    if got != want:
        raise user_error(TypeError, "cond: the branches return different shapes: "
                         f"{[list(s) for s in got]} vs {[list(s) for s in want]}")


def _check_carry(val, carry_tree, shapes, what: str) -> None:
    """Eager loops: the body must keep the carry's structure and shapes, as compiled loops
    require."""
    leaves, t = tree.flatten(val)
    if t != carry_tree:
        raise user_error(TypeError, f"{what}: the body returns {t!r}, but the carry is "
                         f"{carry_tree!r}")
    for i, (x, want) in enumerate(zip(leaves, shapes)):
        got = tuple(operand(x).shape)
        if got != want:
            raise user_error(TypeError, f"{what}: carry element {i} has shape {list(want)} on "
                             f"entry but the body returns shape {list(got)}")


def _loop_graphs(cond_fun, body_fun, carry: list[Tensor], carry_tree, cname, bname):
    """Traces the condition and body of a loop over `carry` with one shared input list."""
    types = [c._type() for c in carry]
    names = [f"c{i}" for i in range(len(carry))]

    def body(*ts):
        out = body_fun(tree.unflatten(carry_tree, ts))
        leaves, t = tree.flatten(out)
        if t != carry_tree:
            raise user_error(TypeError, f"while_loop: the body returns {t!r}, but the carry is "
                             f"{carry_tree!r}")
        return leaves

    def cond_(*ts):
        return cond_fun(tree.unflatten(carry_tree, ts))

    gb, _, cb = trace_subgraph(body, types, names, bname)
    upgraded = False
    for i, (want, got) in enumerate(zip(types, (n.type for n in gb.outputs))):
        if want.weak and want.shape == got.shape and (want.dtype != got.dtype or not got.weak):
            carry[i] = cast(carry[i], got.dtype)  # a weak (Python scalar) carry adopts the
            types[i] = carry[i]._type()           # body's dtype, as JAX does
            upgraded = True
    if upgraded:
        gb, _, cb = trace_subgraph(body, types, names, bname)
    casts = []
    for i, (want, got) in enumerate(zip(types, (n.type for n in gb.outputs))):
        if want.shape != got.shape or (want.dtype != got.dtype and not got.weak):
            raise user_error(TypeError, f"while_loop: carry element {i} is {want} on entry but "
                             f"the body returns {got}; cast it so both agree")
        casts.append(want.dtype)
    gc, _, cc = trace_subgraph(cond_, types, names, cname, seeds=cb, out_dtypes=[D.bool_])
    if gc.outputs[0].type.shape != ():
        raise user_error(TypeError, f"while_loop: the condition must return a scalar, got "
                         f"{gc.outputs[0].type}")
    if len(cc) > len(cb) or any(n.type.dtype != d for n, d in zip(gb.outputs, casts)):
        gb, _, cb = trace_subgraph(body, types, names, bname, seeds=cc, out_dtypes=casts)
    return gc, gb, cb


def while_loop(cond_fun: Callable, body_fun: Callable, init_val):
    """``val = init_val; while cond_fun(val): val = body_fun(val)``, as one loop node.

    The body must keep the carry's structure, shapes and dtypes.

    >>> import tracejit as tj
    >>> f = tj.compile(lambda x: tj.while_loop(lambda v: v.norm() < 1000, lambda v: v * 2, x))
    >>> f(tj.tensor([1.0, 1.0])).tolist()
    [1024.0, 1024.0]
    """
    leaves, carry_tree = tree.flatten(init_val)
    carry = _tensors(leaves)
    if not _traced(*carry):
        val = init_val
        shapes = [tuple(c.shape) for c in carry]
        while bool(cond_fun(val)):
            val = body_fun(val)
            _check_carry(val, carry_tree, shapes, "while_loop")
        return val
    gc, gb, caps = _loop_graphs(cond_fun, body_fun, carry, carry_tree,
                                _fname(cond_fun, "cond_fun"), _fname(body_fun, "body_fun"))
    outs = bind("while", *carry, *caps, cond=gc, body=gb)
    return tree.unflatten(carry_tree, outs)


def fori_loop(lower, upper, body_fun: Callable, init_val):
    """``val = body_fun(i, val)`` for ``i`` in ``range(lower, upper)``, as one loop node.

    >>> import tracejit as tj
    >>> tj.compile(lambda x: tj.fori_loop(0, 3, lambda i, v: v + i, x))(tj.zeros(2)).tolist()
    [3.0, 3.0]
    """
    lo, hi = operand(lower), operand(upper)
    for name, v in (("lower", lo), ("upper", hi)):
        if v.ndim or not (v.dtype.is_integer):
            raise user_error(TypeError, f"fori_loop: {name} must be an integer scalar, got {v}")
    leaves, carry_tree = tree.flatten(init_val)
    if not _traced(lo, hi, *_tensors(leaves)):
        val = init_val
        shapes = [tuple(operand(x).shape) for x in leaves]
        for i in range(int(lo), int(hi)):
            val = body_fun(Tensor._wrap(np.asarray(i, dtype=np.int64)), val)
            _check_carry(val, carry_tree, shapes, "fori_loop")
        return val
    i0 = cast(lo, D.int64)
    _, val = while_loop(lambda c: c[0] < hi,
                        lambda c: (c[0] + 1, body_fun(c[0], c[1])), (i0, init_val))
    return val


def scan(f: Callable, init, xs=None, length: int | None = None, reverse: bool = False):
    """JAX's scan: ``carry, y = f(carry, x)`` over the leading axis of `xs`; returns
    ``(carry, ys)`` with the `y`s stacked. A loop node, not an unrolled chain.

    >>> import tracejit as tj
    >>> c, ys = tj.scan(lambda c, x: (c + x, c * x), 0.0, tj.tensor([1.0, 2.0, 3.0]))
    >>> float(c), ys.tolist()
    (6.0, [0.0, 2.0, 9.0])
    """
    from .jit import compile as _compile
    x_leaves, x_tree = tree.flatten(xs)
    x_ts = _tensors(x_leaves)
    sizes = {x.shape[0] if x.ndim else None for x in x_ts}
    if None in sizes:
        raise user_error(ValueError, "scan: every leaf of xs needs a leading axis to scan over")
    if length is not None:
        sizes.add(length)
    if len(sizes) != 1:
        raise user_error(ValueError, f"scan: xs leaves have different leading sizes {sorted(sizes)}"
                         if sizes else "scan: give xs or length")
    n = sizes.pop()
    c_leaves, c_tree = tree.flatten(init)
    if not _traced(*x_ts, *_tensors(c_leaves)):
        return _compile(lambda c, x: scan(f, c, x, n, reverse), device="interpreter")(init, xs)

    def step(c, i):
        idx = (n - 1 - i) if reverse else i
        x = tree.unflatten(x_tree, [xl[idx] for xl in x_ts])
        return f(c, x)

    # learn the type of y from one abstract trace of the body
    c_ts = _tensors(c_leaves)
    probe_types = [t._type() for t in c_ts] + [TensorType((), D.int64)]
    g, out_tree, _ = trace_subgraph(
        lambda *ts: step(tree.unflatten(c_tree, ts[:-1]), ts[-1]), probe_types,
        [f"c{i}" for i in range(len(c_ts))] + ["i"], "scan_probe")
    if out_tree.kind is not tuple or len(out_tree.children) != 2:
        raise user_error(TypeError, f"scan: f must return a pair (carry, y), got {out_tree!r}")
    y_tree = out_tree.children[1]
    y_types = [o.type for o in g.outputs[out_tree.children[0].num_leaves:]]
    from .ops.creation import zeros
    ys0 = [zeros((n,) + t.shape, dtype=t.dtype) for t in y_types]

    def body(carry):
        i, c, ys = carry
        c2, y = step(c, i)
        idx = (n - 1 - i) if reverse else i
        y_leaves = tree.flatten(y)[0]
        return (i + 1, c2, [b.at[idx].set(v) for b, v in zip(ys, y_leaves)])

    i0 = bind("constant", value=0, dtype=D.int64)
    _, c, ys = while_loop(lambda carry: carry[0] < n, body, (i0, init, ys0))
    return c, tree.unflatten(y_tree, ys)
