"""Products with identity matrices: Graph -> Graph where ``X @ diag(s)`` is a scaling, not a matmul.

Input: a `Graph` after constant folding. Output: an equivalent `Graph`. The derivative API builds
Jacobians by pushing an identity basis through the backward graph (one row of the identity per
output, all at once), so its graphs contain products with a folded identity constant ``E`` —
``A @ E`` — and with a scaled one, ``A @ (E * s)`` where `s` is the derivative of an elementwise
op (``1 - tanh(x)**2``). Each is a transpose of `A`, times `s` along one axis: an elementwise
kernel over the result instead of an ``n**3`` matmul.

Recognised: a ``dot_general`` without batch axes one of whose operands is, up to reshapes that
only add or drop size-1 axes, an identity constant (square, ones on the diagonal, zeros
elsewhere) optionally multiplied by a vector along one of its two axes (or by a scalar), and
that contracts exactly one of the identity's two axes. The rewrite is exact: each result element
is one product ``a * s`` (or ``a``), where the matmul summed it with zeros.
"""

from __future__ import annotations

import numpy as np

from ..ir.graph import Graph, Literal, Node
from ..primitives import PRIMITIVES
from .rewrite import rebuild

__all__ = ["diagonal"]

_IS_EYE: dict = {}


def _nonunit(shape) -> list[int]:
    return [i for i, d in enumerate(shape) if d != 1]


def _is_eye(n: Node) -> bool:
    if n.op != "constant" or not isinstance(n.params["value"], Literal):
        return False
    lit = n.params["value"]
    hit = _IS_EYE.get(lit)
    if hit is None:
        v = lit.value
        axes = _nonunit(v.shape)
        hit = False
        if len(axes) == 2 and v.shape[axes[0]] == v.shape[axes[1]] and v.shape[axes[0]] > 1:
            m = v.reshape(v.shape[axes[0]], v.shape[axes[1]])
            hit = bool(np.array_equal(m, np.eye(m.shape[0], dtype=m.dtype)))
        if len(_IS_EYE) > 64:
            _IS_EYE.clear()
        _IS_EYE[lit] = hit
    return hit


def _diag(d: Node):
    """``(scale, axes)`` when `d` is a (scaled) identity: `scale` a vector node of the diagonal's
    length, a scalar node, or None; `axes` d's two non-unit axes. Else None."""
    inner = d
    while inner.op == "reshape" and _nonunit_sizes(inner.inputs[0].shape) == \
            _nonunit_sizes(inner.shape):
        inner = inner.inputs[0]
    scale = None
    if inner.op == "mul":
        a, b = inner.inputs
        e, v = (a, b) if _is_eye(a) else (b, a) if _is_eye(b) else (None, None)
        if e is None or v.ndim > e.ndim or e.shape != inner.shape or v.dtype != d.dtype:
            return None
        pos = [e.ndim - v.ndim + i for i in _nonunit(v.shape)]
        if len(pos) > 1 or (pos and pos[0] not in _nonunit(e.shape)):
            return None
        scale = v
    elif not _is_eye(inner):
        return None
    axes = _nonunit(d.shape)
    return (scale, axes) if len(axes) == 2 else None


def _nonunit_sizes(shape) -> list[int]:
    return [s for s in shape if s != 1]


def _mk(op: str, ins: tuple, loc, **params) -> Node:
    t = PRIMITIVES[op].rule(*(i.type for i in ins), **params)
    return Node(op, ins, params, t, loc)


def _rewrite(n: Node, ins: tuple):
    if n.op != "dot_general" or any(n.params["batch"]):
        return None
    (ca, cb), loc = n.params["contract"], n.loc
    for side in (1, 0):  # the diagonal operand: b (the usual case), then a
        dg = _diag(ins[side])
        if dg is None:
            continue
        scale, (p, q) = dg
        x = ins[1 - side]
        cx, cd = (ca, cb) if side == 1 else (cb, ca)
        hit = [k for k, ax in enumerate(cd) if ax in (p, q)]
        if len(hit) != 1:
            continue
        a = cx[hit[0]]  # x's axis paired with the contracted diagonal axis
        free_x = [i for i in range(x.ndim) if i not in cx]
        rest = [i for i in cx if i != a]  # other contracted axes: all of size 1
        if any(x.shape[i] != 1 for i in rest):
            continue
        perm = tuple(free_x + [a] + rest) if side == 1 else tuple([a] + rest + free_x)
        t = x if perm == tuple(range(x.ndim)) else _mk("transpose", (x,), loc, perm=perm)
        out = _mk("reshape", (t,), loc, shape=tuple(n.shape))
        if scale is not None:
            # the diagonal's axis that stays free, at its place among the result's axes
            keep = q if cd[hit[0]] == p else p
            free_d = [i for i in range(ins[side].ndim) if i not in cd]
            at = (len(free_x) if side == 1 else 0) + free_d.index(keep)
            shape = [1] * n.ndim
            if int(np.prod(scale.shape)) != 1:
                shape[at] = n.shape[at]
            s = _mk("reshape", (scale,), loc, shape=tuple(shape))
            out = _mk("mul", (out, s), loc)
        if out.type != n.type:
            continue
        return out
    return None


def diagonal(graph: Graph) -> Graph:
    return rebuild(graph, _rewrite)
