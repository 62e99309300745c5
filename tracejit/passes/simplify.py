"""Algebraic simplification: Graph -> Graph with identities rewritten away.

Input: a `Graph`. Output: an equivalent `Graph` with fewer (or cheaper) nodes. Each rewrite
replaces a node by one of its operands or by one simpler node of the same type:

* neutral elements: ``x*1``, ``1*x``, ``x/1``, ``x+0``, ``0+x``, ``x-0``, ``x**1``, ``a & True``,
  ``a | False``;
* involutions: ``-(-x)``, ``not(not x)``;
* casts: ``convert`` to the operand's own dtype, and a widening cast undone by the narrowing one
  (``f32 -> f64 -> f32``, exact);
* layout: ``transpose`` by the identity permutation, ``transpose(transpose(x))`` (one transpose,
  or none), ``reshape`` to the same shape, reshape chains (one reshape), ``broadcast`` to the
  same shape, broadcast chains, full slices, ``rev`` of no axes, reductions over no axes;
* broadcast of a scalar (or any broadcast) feeding an elementwise op, which broadcasts its
  operands itself: the op reads the small operand directly;
* ``select(c, x, x)`` and selects on a constant condition;
* ``stop_gradient(x)``: the identity, since an optimized graph is only run, never differentiated
  (derivatives are taken on traced graphs, before the pipeline).

A rewrite happens only when the replacement has exactly the node's type (shape, dtype and weak
flag), so every consumer keeps its type. All rewrites are exact except one: ``x + 0.0`` for a
float ``x`` returns ``x``, so a ``-0.0`` stays ``-0.0`` where IEEE addition gives ``+0.0`` — the
same choice XLA and TorchInductor make. Sub-graphs of control flow are simplified too.
"""

from __future__ import annotations

from ..ir.graph import Graph, Literal, Node
from ..primitives import PRIMITIVES, RuleError
from .rewrite import map_subgraphs, rebuild

__all__ = ["simplify"]


def _scalar(n: Node):
    """The value of a constant that is the same everywhere (a scalar constant, possibly
    broadcast, reshaped or cast), else None. (Only compared with 0 and 1 below, which every
    cast preserves.)"""
    while n.op in ("broadcast", "reshape", "convert"):
        n = n.inputs[0]
    if n.op != "constant":
        return None
    v = n.params["value"]
    if isinstance(v, Literal):
        a = v.value
        if a.size == 0 or not (a == a.flat[0]).all():
            return None
        return a.flat[0].item()
    return v


def _is(n: Node, value) -> bool:
    v = _scalar(n)
    return v is not None and v == value


def _same(a: Node, n: Node) -> bool:
    return a.type is not None and a.type == n.type


def _bits(dt) -> tuple[int, int]:
    """(exactly representable integer bits, float exponent rank) of a dtype."""
    if dt.kind == "f":
        return {2: 11, 4: 24, 8: 53}[dt.itemsize], dt.itemsize
    if dt.kind == "b":
        return 1, 0
    return 8 * dt.itemsize - (dt.kind == "i"), 0


def _widens(small, big) -> bool:
    """Does a cast small -> big -> small give back every value of `small`?"""
    if small.kind == "f":
        return big.kind == "f" and big.itemsize >= small.itemsize
    if small.kind == "i" and big.kind == "u":
        return False
    return big.kind != "b" and _bits(big)[0] >= _bits(small)[0]


def _node(op: str, x: Node, params: dict, like: Node) -> Node:
    return Node(op, (x,), params, like.type, like.loc)


def _rewrite(n: Node, ins: tuple):
    op, p = n.op, n.params
    if n.type is None:
        return None
    x = ins[0] if ins else None
    if op == "stop_gradient":  # the identity once derivatives are taken (optimized graphs
        return x               # are only run, never differentiated)
    if op == "mul":
        a, b = ins
        if _is(b, 1) and _same(a, n):
            return a
        if _is(a, 1) and _same(b, n):
            return b
    elif op == "add":
        a, b = ins
        if _is(b, 0) and _same(a, n):
            return a
        if _is(a, 0) and _same(b, n):
            return b
    elif op in ("sub", "div", "pow"):
        a, b = ins
        if _is(b, 0 if op == "sub" else 1) and _same(a, n):
            return a
    elif op in ("logical_and", "logical_or"):
        a, b = ins
        keep = op == "logical_and"
        if _is(b, keep) and _same(a, n):
            return a
        if _is(a, keep) and _same(b, n):
            return b
    elif op in ("neg", "logical_not"):
        if x.op == op and _same(x.inputs[0], n):
            return x.inputs[0]
    elif op == "convert":
        if _same(x, n):
            return x
        if x.op == "convert" and _same(x.inputs[0], n) and _widens(n.dtype, x.dtype):
            return x.inputs[0]
    elif op == "transpose":
        perm = tuple(p["perm"])
        if x.op == "transpose":
            inner = tuple(x.params["perm"])
            perm = tuple(inner[k] for k in perm)
            x = x.inputs[0]
        if perm == tuple(range(len(perm))):
            return x if _same(x, n) else None
        if x is not ins[0]:
            return _node("transpose", x, {"perm": perm}, n)
    elif op in ("reshape", "broadcast"):
        if _same(x, n):
            return x
        if x.op == op:
            inner = x.inputs[0]
            return inner if _same(inner, n) else _node(op, inner, dict(p), n)
    elif op == "slice":
        if all(a == 0 and b == s and st == 1 for a, b, st, s in
               zip(p["start"], p["stop"], p["step"], x.shape)) and _same(x, n):
            return x
    elif op == "rev" or op.startswith("reduce_"):
        if not tuple(p["axes"]) and _same(x, n):
            return x
    elif op == "select":
        c, a, b = ins
        if a is b and _same(a, n):
            return a
        v = _scalar(c)
        if v is not None and _same(a if v else b, n):
            return a if v else b
    if PRIMITIVES[op].has("elementwise") and any(i.op == "broadcast" for i in ins):
        return _drop_broadcasts(n, ins)
    return None


def _drop_broadcasts(n: Node, ins: tuple):
    """An elementwise op broadcasts its operands itself: read them unexpanded when the op's
    type stays the same."""
    new = list(ins)
    for k, i in enumerate(ins):
        if i.op != "broadcast":
            continue
        trial = new[:k] + [i.inputs[0]] + new[k + 1:]
        try:
            t = PRIMITIVES[n.op].rule(*(x.type for x in trial), **n.params)
        except RuleError:
            continue
        if t == n.type:
            new = trial
    if new == list(ins):
        return None
    return Node(n.op, tuple(new), n.params, n.type, n.loc)


def simplify(graph: Graph) -> Graph:
    def replace(n: Node, ins: tuple):
        n2 = map_subgraphs(n, simplify)
        if n2 is n:
            return _rewrite(n, ins)
        n = Node(n.op, ins, n2.params, n.type, n.loc, types=n.types)
        out = _rewrite(n, ins)
        return n if out is None else out
    return rebuild(graph, replace)
