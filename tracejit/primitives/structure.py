"""Structural primitives: broadcast, reshape, transpose, slice, rev, pad, concatenate, iota,
gather and scatter.

Input: operand types and static params. Output: OpDef records. Params are already normalized by
the op library (non-negative axes, in-range slice bounds, positive steps); the rules re-check
them so a hand-built or deserialized graph cannot smuggle in a bad one.
"""

from __future__ import annotations

import math

import numpy as np

from ..ir.graph import TensorType
from .registry import OpDef, RuleError, register


def _axis_ok(axis: int, ndim: int, what: str = "axis"):
    if not (0 <= axis < ndim):
        raise RuleError(f"{what} {axis} is out of range for a {ndim}-d operand", IndexError)


# -- broadcast ------------------------------------------------------------------------------

def _broadcast_rule(x: TensorType, *, shape):
    shape = tuple(shape)
    if x.ndim > len(shape):
        raise RuleError(f"cannot broadcast shape {list(x.shape)} to {list(shape)}")
    for a, b in zip(x.shape[::-1], shape[::-1]):
        if a != b and a != 1:
            raise RuleError(f"cannot broadcast shape {list(x.shape)} to {list(shape)}")
    return TensorType(shape, x.dtype, x.weak)


register(OpDef("broadcast", 1, _broadcast_rule, lambda x, *, shape: np.broadcast_to(x, shape),
               doc="broadcast(x) {shape}: numpy-style expansion (size-1 or missing leading dims)"))


# -- reshape, transpose ---------------------------------------------------------------------

def _reshape_rule(x: TensorType, *, shape):
    if any(s < 0 for s in shape) or math.prod(shape) != math.prod(x.shape):
        raise RuleError(f"cannot reshape {list(x.shape)} ({math.prod(x.shape)} elements) "
                        f"to {list(shape)}")
    return TensorType(tuple(shape), x.dtype, x.weak)


register(OpDef("reshape", 1, _reshape_rule, lambda x, *, shape: np.reshape(x, shape)))


def _transpose_rule(x: TensorType, *, perm):
    if sorted(perm) != list(range(x.ndim)):
        raise RuleError(f"perm {list(perm)} is not a permutation of {x.ndim} axes", IndexError)
    return TensorType(tuple(x.shape[p] for p in perm), x.dtype, x.weak)


register(OpDef("transpose", 1, _transpose_rule, lambda x, *, perm: np.transpose(x, perm)))


# -- slice, rev, pad, concatenate -----------------------------------------------------------

def _slice_rule(x: TensorType, *, start, stop, step):
    if not (len(start) == len(stop) == len(step) == x.ndim):
        raise RuleError(f"slice needs start/stop/step for each of {x.ndim} axes")
    shape = []
    for a, b, s, n in zip(start, stop, step, x.shape):
        if s <= 0 or not (0 <= a <= n) or not (a <= b <= n):
            raise RuleError(f"bad slice {a}:{b}:{s} of an axis of size {n}", IndexError)
        shape.append(-(-(b - a) // s))
    return TensorType(tuple(shape), x.dtype, x.weak)


register(OpDef("slice", 1, _slice_rule,
               lambda x, *, start, stop, step: x[tuple(map(slice, start, stop, step))]))


def _rev_rule(x: TensorType, *, axes):
    for a in axes:
        _axis_ok(a, x.ndim)
    return x


register(OpDef("rev", 1, _rev_rule, lambda x, *, axes: np.flip(x, axes).copy(),  # no alias
               doc="rev(x) {axes}: reverse the order of elements along axes"))


def _pad_rule(x: TensorType, *, lo, hi, value):
    if not (len(lo) == len(hi) == x.ndim) or any(p < 0 for p in (*lo, *hi)):
        raise RuleError(f"pad needs non-negative lo/hi for each of {x.ndim} axes")
    return TensorType(tuple(n + a + b for n, a, b in zip(x.shape, lo, hi)), x.dtype, x.weak)


register(OpDef("pad", 1, _pad_rule, lambda x, *, lo, hi, value: np.pad(
    x, list(zip(lo, hi)), constant_values=np.array(value, x.dtype)),
    doc="pad(x) {lo, hi, value}: constant padding"))


def _concat_rule(*xs: TensorType, axis):
    if not xs:
        raise RuleError("concatenate needs at least one operand")
    nd = xs[0].ndim
    _axis_ok(axis, nd)
    if len({x.dtype for x in xs}) != 1:
        raise RuleError("operands must share one dtype", TypeError)
    for x in xs:
        if x.ndim != nd or any(a != b for i, (a, b) in enumerate(zip(x.shape, xs[0].shape))
                               if i != axis):
            raise RuleError("shapes " + ", ".join(str(list(x.shape)) for x in xs)
                            + f" differ outside axis {axis}")
    shape = list(xs[0].shape)
    shape[axis] = sum(x.shape[axis] for x in xs)
    return TensorType(tuple(shape), xs[0].dtype, all(x.weak for x in xs))


register(OpDef("concatenate", None, _concat_rule,
               lambda *xs, axis: np.concatenate(xs, axis=axis)))


def _iota_rule(*, shape, axis, dtype):
    _axis_ok(axis, len(shape))
    return TensorType(tuple(shape), dtype)


def _iota_ref(*, shape, axis, dtype):
    r = np.arange(shape[axis], dtype=dtype.np).reshape(
        [n if i == axis else 1 for i, n in enumerate(shape)])
    return np.broadcast_to(r, shape)


register(OpDef("iota", 0, _iota_rule, _iota_ref, traits={"nondiff"},
               doc="iota {shape, axis, dtype}: the index along `axis` at every position"))


# -- gather, scatter ------------------------------------------------------------------------

def _index_types(x: TensorType, idx: tuple[TensorType, ...]):
    from .elementwise import broadcast_shapes
    if len(idx) > x.ndim:
        raise RuleError(f"too many indices ({len(idx)}) for a {x.ndim}-d operand", IndexError)
    for i in idx:
        if not i.dtype.is_integer:
            raise RuleError(f"indices must be integers, got {i.dtype.name}", IndexError)
    return broadcast_shapes(*(i.shape for i in idx)) + x.shape[len(idx):]


def _check_bounds(x, idx, op):
    for ax, i in enumerate(idx):
        n = x.shape[ax]
        if i.size and (i.min() < 0 or i.max() >= n):
            bad = i[(i < 0) | (i >= n)].flat[0]
            raise IndexError(f"{op}: index {bad} is out of bounds for dimension {ax} "
                             f"with size {n}")


def _gather_rule(x: TensorType, *idx: TensorType):
    return TensorType(_index_types(x, idx), x.dtype, x.weak)


def _gather_ref(x, *idx):
    _check_bounds(x, idx, "gather")
    return x[tuple(idx)] if idx else x.copy()


register(OpDef("gather", None, _gather_rule, _gather_ref,
               doc="gather(x, i0..ik) = x[i0, .., ik, :, ..]: indices broadcast together and "
                   "index the leading k axes"))


def _scatter_rule(x: TensorType, upd: TensorType, *idx: TensorType, mode):
    if mode not in ("set", "add"):
        raise RuleError(f"scatter mode must be 'set' or 'add', got {mode!r}")
    want = _index_types(x, idx)
    if upd.dtype != x.dtype:
        raise RuleError(f"updates dtype {upd.dtype.name} != operand dtype {x.dtype.name}",
                        TypeError)
    if upd.shape != want:
        raise RuleError(f"updates shape {list(upd.shape)} != indexed shape {list(want)}")
    return TensorType(x.shape, x.dtype, x.weak)


def _scatter_ref(x, upd, *idx, mode):
    _check_bounds(x, idx, "scatter")
    out = np.array(x, copy=True)
    if mode == "add":
        np.add.at(out, tuple(idx), upd)
    else:
        out[tuple(idx)] = upd
    return out


register(OpDef("scatter", None, _scatter_rule, _scatter_ref,
               doc="scatter(x, u, i0..ik) {mode}: x with u set/added at the gathered positions "
                   "(add accumulates duplicates; set keeps the last)"))




# ===========================================================================================
# Derivative rules (vjp / jvp)
# ===========================================================================================
# All of these primitives are linear in their differentiable operands, so each jvp applies the
# primitive itself (or its zero-filled variant) to the tangents and each vjp is the transpose,
# written with graph ops. Cotangents have exactly the operand's shape. Index operands of
# gather/scatter get none.

from .. import dtypes as _D  # noqa: E402
from .elementwise import _bind, _k  # noqa: E402
from .registry import defrules  # noqa: E402


def _zeros(shape, like):
    return _bind("broadcast", _k(0, like), shape=tuple(shape))


def _reshape(x, shape):
    shape = tuple(shape)
    return x if x.shape == shape else _bind("reshape", x, shape=shape)


def _sum_to(x, shape):
    """Undoes `broadcast`: sums the added leading axes and the expanded size-1 axes."""
    shape = tuple(shape)
    lead = x.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(lead + i for i, n in enumerate(shape)
                                      if n == 1 and x.shape[lead + i] != 1)
    return _reshape(_bind("reduce_sum", x, axes=axes) if axes else x, shape)


def _linear(prim):
    """jvp of a primitive that is linear in its one operand: the primitive of the tangent."""
    def jvp(tangents, out, x, **params):
        (t,) = tangents
        return None if t is None else _bind(prim, t, **params)
    return jvp


def _broadcast_vjp(ct, out, x, *, shape):
    return (_sum_to(ct, x.shape),)


def _reshape_vjp(ct, out, x, *, shape):
    return (_reshape(ct, x.shape),)


def _transpose_vjp(ct, out, x, *, perm):
    inv = [0] * len(perm)
    for i, p in enumerate(perm):
        inv[p] = i
    return (_bind("transpose", ct, perm=tuple(inv)),)


def _slice_vjp(ct, out, x, *, start, stop, step):
    """Places ct back at positions start, start+step, ... of zeros. A strided axis is spread
    by reshaping it to (m, 1), padding to (m, step) and merging: m*step entries with the values
    at multiples of step; then one slice trims what overhangs and one pad places the block."""
    n = x.shape
    if 0 in ct.shape:
        return (_zeros(n, ct),)
    g = ct
    strided = [a for a in range(ct.ndim) if step[a] > 1 and ct.shape[a] > 1]
    if strided:
        split, hi = [], []
        for a, m in enumerate(ct.shape):
            split += [m, 1] if a in strided else [m]
            hi += [0, step[a] - 1] if a in strided else [0]
        g = _bind("pad", _reshape(g, split), lo=(0,) * len(split), hi=tuple(hi), value=0.0)
        g = _reshape(g, [m * step[a] if a in strided else m for a, m in enumerate(ct.shape)])
    keep = [min(g.shape[a], n[a] - start[a]) for a in range(ct.ndim)]
    if list(g.shape) != keep:
        g = _bind("slice", g, start=(0,) * g.ndim, stop=tuple(keep), step=(1,) * g.ndim)
    hi = tuple(n[a] - start[a] - keep[a] for a in range(ct.ndim))
    if any(start) or any(hi):
        g = _bind("pad", g, lo=tuple(start), hi=hi, value=0.0)
    return (g,)


def _rev_vjp(ct, out, x, *, axes):
    return (_bind("rev", ct, axes=axes),)


def _pad_vjp(ct, out, x, *, lo, hi, value):
    stop = tuple(a + n for a, n in zip(lo, x.shape))
    return (_bind("slice", ct, start=tuple(lo), stop=stop, step=(1,) * x.ndim),)


def _pad_jvp(tangents, out, x, *, lo, hi, value):
    (t,) = tangents
    return None if t is None else _bind("pad", t, lo=lo, hi=hi, value=0.0)


def _concat_vjp(ct, out, *xs, axis):
    cts, off = [], 0
    for x in xs:
        start, stop = [0] * ct.ndim, list(ct.shape)
        start[axis], stop[axis] = off, off + x.shape[axis]
        off += x.shape[axis]
        cts.append(_bind("slice", ct, start=tuple(start), stop=tuple(stop),
                         step=(1,) * ct.ndim))
    return cts


def _concat_jvp(tangents, out, *xs, axis):
    if all(t is None for t in tangents):
        return None
    ts = [_zeros(x.shape, out) if t is None else t for t, x in zip(tangents, xs)]
    return _bind("concatenate", *ts, axis=axis)


def _gather_vjp(ct, out, x, *idx):
    if not idx:
        return (ct,)
    return (_bind("scatter", _zeros(x.shape, ct), ct, *idx, mode="add"),) + (None,) * len(idx)


def _gather_jvp(tangents, out, x, *idx):
    t = tangents[0]
    return None if t is None else _bind("gather", t, *idx)


def _last_writes(x, u, idx):
    """For scatter-set: a bool mask over the update positions (the indices' broadcast shape)
    that is true where that update is the one kept (the last write to its position), found by
    scattering each update's ordinal with the same 'set' semantics and reading it back."""
    k = len(idx)
    bshape = u.shape[:u.ndim - (x.ndim - k)]
    ids = _reshape(_bind("iota", shape=(math.prod(bshape),), axis=0, dtype=_D.int64), bshape)
    slots = _bind("broadcast", _bind("constant", value=0, dtype=_D.int64), shape=x.shape[:k])
    winner = _bind("scatter", slots, ids, *idx, mode="set")
    return _bind("eq", _bind("gather", winner, *idx), ids)


def _scatter_vjp(ct, out, x, u, *idx, mode):
    """add: x gets ct, u gets ct at its positions. set: x gets ct with the overwritten
    positions zeroed; u gets ct at its positions, and where several updates write one position
    only the last one (the one kept) gets it, the others get 0."""
    none = (None,) * len(idx)
    ct_u = _bind("gather", ct, *idx) if idx else ct
    if mode == "add":
        return (ct, ct_u) + none
    ct_x = _bind("scatter", ct, _zeros(u.shape, ct), *idx, mode="set")
    if math.prod(u.shape[:u.ndim - (x.ndim - len(idx))]) > 1:  # duplicates are possible
        kept = _last_writes(x, u, idx)
        kept = _reshape(kept, kept.shape + (1,) * (u.ndim - kept.ndim))
        ct_u = _bind("select", kept, ct_u, _k(0, ct_u))
    return (ct_x, ct_u) + none


def _scatter_jvp(tangents, out, x, u, *idx, mode):
    tx, tu = tangents[0], tangents[1]
    if tx is None and tu is None:
        return None
    if tu is None and mode == "add":
        return tx
    tx = _zeros(x.shape, out) if tx is None else tx
    tu = _zeros(u.shape, out) if tu is None else tu
    return _bind("scatter", tx, tu, *idx, mode=mode)


defrules("broadcast", vjp=_broadcast_vjp, jvp=_linear("broadcast"))
defrules("reshape", vjp=_reshape_vjp, jvp=_linear("reshape"))
defrules("transpose", vjp=_transpose_vjp, jvp=_linear("transpose"))
defrules("slice", vjp=_slice_vjp, jvp=_linear("slice"))
defrules("rev", vjp=_rev_vjp, jvp=_linear("rev"))
defrules("pad", vjp=_pad_vjp, jvp=_pad_jvp)
defrules("concatenate", vjp=_concat_vjp, jvp=_concat_jvp)
defrules("gather", vjp=_gather_vjp, jvp=_gather_jvp)
defrules("scatter", vjp=_scatter_vjp, jvp=_scatter_jvp)
