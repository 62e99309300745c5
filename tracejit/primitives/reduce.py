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


# ===========================================================================================
# Derivative rules (vjp / jvp)
# ===========================================================================================
# Written with graph ops so they can be differentiated again. Cotangents have exactly the
# operand's shape. Conventions follow PyTorch: amax/amin share the derivative evenly among the
# tied extremes (NaNs count as the extreme when the result is NaN); prod and cumprod never
# divide by an operand, so zeros are exact (and so are their higher derivatives).

import math  # noqa: E402

from .elementwise import _bind, _k, _sel, _sum_tangents  # noqa: E402
from .registry import defrules  # noqa: E402


def _reshape(x, shape):
    shape = tuple(shape)
    return x if x.shape == shape else _bind("reshape", x, shape=shape)


def _transpose(x, perm):
    perm = tuple(perm)
    return x if perm == tuple(range(x.ndim)) else _bind("transpose", x, perm=perm)


def _inverse(perm):
    inv = [0] * len(perm)
    for i, p in enumerate(perm):
        inv[p] = i
    return inv


def _expand(y, shape, axes):
    """A reduction's result (or cotangent) `y` broadcast back over the reduced `axes`."""
    kept = _reshape(y, [1 if i in axes else n for i, n in enumerate(shape)])
    return kept if kept.shape == tuple(shape) else _bind("broadcast", kept, shape=tuple(shape))


def _sum_vjp(ct, out, x, *, axes):
    return (_expand(ct, x.shape, axes),)


def _sum_jvp(tangents, out, x, *, axes):
    (t,) = tangents
    return None if t is None else _bind("reduce_sum", t, axes=axes)


def _ties(out, x, axes):
    """The positions that attain the extreme, and how many there are per result."""
    mask = _bind("logical_or", _bind("eq", x, _expand(out, x.shape, axes)), _bind("isnan", x))
    count = _bind("reduce_sum", _bind("convert", mask, dtype=x.dtype, weak=False), axes=axes)
    return mask, count


def _extreme_vjp(ct, out, x, *, axes):
    mask, count = _ties(out, x, axes)
    share = _expand(_bind("div", ct, count), x.shape, axes)
    return (_sel(mask, share, _k(0, share)),)


def _extreme_jvp(tangents, out, x, *, axes):
    (t,) = tangents
    if t is None:
        return None
    mask, count = _ties(out, x, axes)
    picked = _sel(mask, t, _k(0, t))
    return _bind("div", _bind("reduce_sum", picked, axes=axes), count)


def _shift(x, axis, d, fill):
    """`x` moved `d` places along `axis` (towards higher indices when d > 0), `fill` coming in."""
    n = x.shape[axis]
    d = max(-n, min(n, d))
    start, stop, lo, hi = [0] * x.ndim, list(x.shape), [0] * x.ndim, [0] * x.ndim
    if d > 0:
        stop[axis], lo[axis] = n - d, d
    else:
        start[axis], hi[axis] = -d, -d
    y = _bind("slice", x, start=tuple(start), stop=tuple(stop), step=(1,) * x.ndim)
    return _bind("pad", y, lo=tuple(lo), hi=tuple(hi), value=fill)


def _linear_scan(a, b, axis, direction):
    """Solves ``T[j] = a[j] * T[j - direction] + b[j]`` along `axis` (T beyond the edge is 0)
    in ceil(log2 n) steps (Hillis-Steele on the affine maps (a, b)), without dividing."""
    n, d = a.shape[axis], 1
    while d < n:
        b = _bind("add", b, _bind("mul", a, _shift(b, axis, d * direction, 0.0)))
        if 2 * d < n:
            a = _bind("mul", a, _shift(a, axis, d * direction, 1.0))
        d *= 2
    return b


def _excluded_products(x, axes):
    """For each element, the product over `axes` of the other elements: an exclusive cumprod
    from each side of the flattened reduced axes, multiplied (exact with zeros)."""
    rest = [i for i in range(x.ndim) if i not in axes]
    perm = rest + sorted(axes)
    xt = _transpose(x, perm)
    n = math.prod(x.shape[a] for a in axes)
    flat = _reshape(xt, [x.shape[i] for i in rest] + [n])
    ax = len(rest)
    left = _bind("cumprod", _shift(flat, ax, 1, 1.0), axis=ax)
    right = _bind("cumprod", _shift(flat, ax, -1, 1.0), axis=ax, reverse=True)
    others = _reshape(_bind("mul", left, right), xt.shape)
    return _transpose(others, _inverse(perm))


def _prod_vjp(ct, out, x, *, axes):
    if math.prod(x.shape) == 0:
        return (_bind("broadcast", _k(0, ct), shape=x.shape),)
    return (_bind("mul", _expand(ct, x.shape, axes), _excluded_products(x, axes)),)


def _prod_jvp(tangents, out, x, *, axes):
    (t,) = tangents
    if t is None:
        return None
    if math.prod(x.shape) == 0:
        return _bind("reduce_sum", t, axes=axes)
    return _bind("reduce_sum", _bind("mul", t, _excluded_products(x, axes)), axes=axes)


def _cumsum_vjp(ct, out, x, *, axis, reverse=False):
    return (_bind("cumsum", ct, axis=axis, reverse=not reverse),)


def _cumsum_jvp(tangents, out, x, *, axis, reverse=False):
    (t,) = tangents
    return None if t is None else _bind("cumsum", t, axis=axis, reverse=reverse)


# cumprod, y[i] = x[0] * ... * x[i]:  with L[i] = y[i-1] (1 at the start), the product of the
# entries before i,  dy[i] = x[i] * dy[i-1] + dx[i] * L[i]  (forward mode), and
# ct_x[j] = L[j] * S[j] with  S[j] = ct[j] + x[j+1] * S[j+1]  (reverse mode): two linear
# recurrences, solved by `_linear_scan`. reverse=True mirrors every direction.

def _cumprod_vjp(ct, out, x, *, axis, reverse=False):
    if x.shape[axis] <= 1:
        return (ct,)
    s = -1 if reverse else 1
    before = _shift(out, axis, s, 1.0)
    acc = _linear_scan(_shift(x, axis, -s, 0.0), ct, axis, -s)
    return (_bind("mul", before, acc),)


def _cumprod_jvp(tangents, out, x, *, axis, reverse=False):
    (t,) = tangents
    if t is None or x.shape[axis] <= 1:
        return t
    s = -1 if reverse else 1
    before = _shift(out, axis, s, 1.0)
    return _linear_scan(x, _bind("mul", t, before), axis, s)


def _dot_layout(a_ndim, b_ndim, contract, batch):
    (ca, cb), (ba, bb) = contract, batch
    fa = [i for i in range(a_ndim) if i not in ca and i not in ba]
    fb = [i for i in range(b_ndim) if i not in cb and i not in bb]
    return list(ca), list(cb), list(ba), list(bb), fa, fb


def _dot_vjp(ct, out, a, b, *, contract, batch):
    """ct's axes are (batch, a's free, b's free). Contracting ct with the other operand over
    the other operand's free axes gives (batch, own free, own contracted in the other's axis
    order); a transpose puts them back in the operand's own layout."""
    ca, cb, ba, bb, fa, fb = _dot_layout(a.ndim, b.ndim, contract, batch)
    nb, nfa, nfb = len(ba), len(fa), len(fb)
    cbatch = tuple(range(nb))
    cfa, cfb = tuple(range(nb, nb + nfa)), tuple(range(nb + nfa, nb + nfa + nfb))

    ga = _bind("dot_general", ct, b, contract=(cfb, tuple(fb)), batch=(cbatch, tuple(bb)))
    pos = {i: k for k, i in enumerate(ba)}
    pos.update({i: nb + k for k, i in enumerate(fa)})
    pos.update({i: nb + nfa + sorted(cb).index(j) for i, j in zip(ca, cb)})
    ga = _transpose(ga, [pos[i] for i in range(a.ndim)])

    gb = _bind("dot_general", a, ct, contract=(tuple(fa), cfa), batch=(tuple(ba), cbatch))
    pos = {j: k for k, j in enumerate(bb)}
    pos.update({j: nb + sorted(ca).index(i) for i, j in zip(ca, cb)})
    pos.update({j: nb + len(ca) + k for k, j in enumerate(fb)})
    gb = _transpose(gb, [pos[j] for j in range(b.ndim)])
    return ga, gb


def _dot_jvp(tangents, out, a, b, *, contract, batch):
    ta, tb = tangents
    return _sum_tangents(
        None if ta is None else _bind("dot_general", ta, b, contract=contract, batch=batch),
        None if tb is None else _bind("dot_general", a, tb, contract=contract, batch=batch))


defrules("reduce_sum", vjp=_sum_vjp, jvp=_sum_jvp)
defrules("reduce_max", vjp=_extreme_vjp, jvp=_extreme_jvp)
defrules("reduce_min", vjp=_extreme_vjp, jvp=_extreme_jvp)
defrules("reduce_prod", vjp=_prod_vjp, jvp=_prod_jvp)
defrules("cumsum", vjp=_cumsum_vjp, jvp=_cumsum_jvp)
defrules("cumprod", vjp=_cumprod_vjp, jvp=_cumprod_jvp)
defrules("dot_general", vjp=_dot_vjp, jvp=_dot_jvp)
