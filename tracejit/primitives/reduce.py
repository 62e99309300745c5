"""Reductions, scans, sorting and contraction: reduce_{sum,prod,max,min}, argmax, argmin,
cumsum, cumprod, argsort, dot_general.

Input: operand types and static axes. Output: OpDef records. Reductions drop the reduced axes
(the op library re-inserts them for ``keepdim``); ``dot_general`` contracts and batches the
axes it is told to, like XLA's DotGeneral.
"""

from __future__ import annotations

import numpy as np

from .. import dtypes as D
from ..ir.graph import TensorType
from .registry import OpDef, RuleError, register


def _axes_ok(x: TensorType, axes):
    if len(set(axes)) != len(axes):
        raise RuleError(f"repeated axis in {list(axes)}", IndexError)
    for a in axes:
        if not 0 <= a < x.ndim:
            raise RuleError(f"axis {a} is out of range for a {x.ndim}-d operand", IndexError)


def _reduce_rule(x: TensorType, *, axes):
    _axes_ok(x, axes)
    return TensorType(tuple(n for i, n in enumerate(x.shape) if i not in axes), x.dtype, x.weak)


def _nonempty(name, fn):
    def ref(x, *, axes):
        if any(x.shape[a] == 0 for a in axes):
            raise ValueError(f"{name}: cannot reduce over a zero-size axis (it has no identity)")
        return fn(x, axis=tuple(axes))
    return ref


def _sum_ref(x, *, axes):
    return np.sum(x, axis=tuple(axes), dtype=x.dtype)


def _prod_ref(x, *, axes):
    return np.prod(x, axis=tuple(axes), dtype=x.dtype)


register(OpDef("reduce_sum", 1, _reduce_rule, _sum_ref))
register(OpDef("reduce_prod", 1, _reduce_rule, _prod_ref))
register(OpDef("reduce_max", 1, _reduce_rule, _nonempty("reduce_max", np.max)))
register(OpDef("reduce_min", 1, _reduce_rule, _nonempty("reduce_min", np.min)))


def _arg_rule(x: TensorType, *, axis):
    _axes_ok(x, (axis,))
    return TensorType(tuple(n for i, n in enumerate(x.shape) if i != axis), D.int64)


def _arg_ref(fn, name):
    def ref(x, *, axis):
        if x.shape[axis] == 0:
            raise ValueError(f"{name}: cannot reduce over a zero-size axis")
        return fn(x, axis=axis).astype(np.int64)
    return ref


register(OpDef("argmax", 1, _arg_rule, _arg_ref(np.argmax, "argmax"), traits={"nondiff"},
               doc="argmax(x) {axis}: first index of the maximum (NaN counts as maximal)"))
register(OpDef("argmin", 1, _arg_rule, _arg_ref(np.argmin, "argmin"), traits={"nondiff"}))


def _scan_rule(x: TensorType, *, axis, reverse=False):
    _axes_ok(x, (axis,))
    return x


def _scan_ref(fn):
    def ref(x, *, axis, reverse=False):
        if reverse:
            return np.flip(fn(np.flip(x, axis), axis=axis, dtype=x.dtype), axis)
        return fn(x, axis=axis, dtype=x.dtype)
    return ref


register(OpDef("cumsum", 1, _scan_rule, _scan_ref(np.cumsum)))
register(OpDef("cumprod", 1, _scan_rule, _scan_ref(np.cumprod)))


def _argsort_rule(x: TensorType, *, axis, descending=False):
    _axes_ok(x, (axis,))
    return TensorType(x.shape, D.int64)


def _argsort_ref(x, *, axis, descending=False):
    """Stable; NaN sorts as the largest value (first when descending), like PyTorch."""
    if not descending:
        return np.argsort(x, axis=axis, kind="stable").astype(np.int64)
    n = x.shape[axis]
    r = np.argsort(np.flip(x, axis), axis=axis, kind="stable")
    return (n - 1 - np.flip(r, axis)).astype(np.int64)


register(OpDef("argsort", 1, _argsort_rule, _argsort_ref, traits={"nondiff"},
               doc="argsort(x) {axis, descending}: stable sort permutation"))


def _dot_rule(a: TensorType, b: TensorType, *, contract, batch):
    (ca, cb), (ba, bb) = contract, batch
    if a.dtype != b.dtype:
        raise RuleError(f"operands must share one dtype, got {a.dtype.name} and {b.dtype.name}",
                        TypeError)
    if a.dtype.is_bool:
        raise RuleError("dot of bool operands is not supported", TypeError)
    _axes_ok(a, tuple(ca) + tuple(ba))
    _axes_ok(b, tuple(cb) + tuple(bb))
    if len(ca) != len(cb) or len(ba) != len(bb):
        raise RuleError("contracting/batch axis lists differ in length")
    for i, j in zip((*ca, *ba), (*cb, *bb)):
        if a.shape[i] != b.shape[j]:
            raise RuleError(f"size mismatch: axis {i} of {list(a.shape)} vs axis {j} of "
                            f"{list(b.shape)}")
    fa = [i for i in range(a.ndim) if i not in ca and i not in ba]
    fb = [i for i in range(b.ndim) if i not in cb and i not in bb]
    shape = tuple(a.shape[i] for i in ba) + tuple(a.shape[i] for i in fa) + tuple(
        b.shape[i] for i in fb)
    return TensorType(shape, a.dtype)


def _dot_ref(a, b, *, contract, batch):
    (ca, cb), (ba, bb) = contract, batch
    fa = [i for i in range(a.ndim) if i not in ca and i not in ba]
    fb = [i for i in range(b.ndim) if i not in cb and i not in bb]
    bshape = [a.shape[i] for i in ba]
    m = [a.shape[i] for i in fa]
    n = [b.shape[i] for i in fb]
    k = int(np.prod([a.shape[i] for i in ca], dtype=np.int64))
    at = np.transpose(a, [*ba, *fa, *ca]).reshape(
        int(np.prod(bshape, dtype=np.int64)), int(np.prod(m, dtype=np.int64)), k)
    bt = np.transpose(b, [*bb, *cb, *fb]).reshape(at.shape[0], k, int(np.prod(n, dtype=np.int64)))
    return np.matmul(at, bt).reshape(bshape + m + n).astype(a.dtype, copy=False)


register(OpDef("dot_general", 2, _dot_rule, _dot_ref,
               doc="dot_general(a, b) {contract, batch}: result axes are batch, a's free, b's "
                   "free"))
