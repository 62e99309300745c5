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


