"""Reverse mode: the vector-Jacobian product of a Graph, as more graph.

Input: a `Graph`, one primal Tensor per input, one cotangent per output (None for zero), and
which inputs want a cotangent. Output: the graph's outputs and one cotangent per input (None
where none flows). The forward graph is replayed once; then the nodes are walked backwards and
each primitive's `vjp` rule turns the node's accumulated cotangent into its operands'. The
backward nodes are created with the source location of the forward node they differentiate, so
a printed backward graph points at the user's lines. The backward walk records no effects
(`trace.effects_dropped`): `tj.debug.print` shows the forward values once per call, from the
replay, and is not run again by the rules that recompute forward work (control flow's).
"""

from __future__ import annotations

from ..ir.graph import Graph, Node
from ..primitives import PRIMITIVES
from ..tensor import Tensor
from ..trace import at_location, bind, effects_dropped
from .replay import is_float, replay_node, sum_to_shape

__all__ = ["vjp_graph"]


def _add(a: Tensor | None, b: Tensor) -> Tensor:
    return b if a is None else bind("add", a, b)


def vjp_graph(graph: Graph, primals: list[Tensor], cotangents: list[Tensor | None],
              wrt: list[bool] | None = None):
    """Returns ``(outputs, input_cotangents)``; `wrt[i]` False skips input i's cotangent."""
    wrt = [True] * len(graph.inputs) if wrt is None else wrt
    env = {id(n): x for n, x in zip(graph.inputs, primals, strict=True)}
    live = {id(n) for n, w in zip(graph.inputs, wrt) if w and is_float(n)}
    for n in graph.nodes:  # forward: replay, and mark what depends on a differentiated input
        replay_node(n, env)
        if any(id(i) in live for i in n.inputs) and not PRIMITIVES[n.op].has("nondiff"):
            live.add(id(n))
    outs = [env[id(o)] for o in graph.outputs]
    ct: dict[int, Tensor] = {}
    for o, c in zip(graph.outputs, cotangents, strict=True):
        if c is not None and id(o) in live and is_float(o):
            ct[id(o)] = _add(ct.get(id(o)), _fit(c, o))
    with effects_dropped():
        _backward(graph, env, live, ct)
    return outs, [ct.get(id(n)) if w else None for n, w in zip(graph.inputs, wrt)]


def _backward(graph: Graph, env: dict, live: set, ct: dict) -> None:
    """Walks the nodes backwards, turning `ct` (output cotangents) into input cotangents."""
    multi: dict[int, list] = {}
    for n in reversed(graph.nodes):
        if id(n) not in live:
            continue
        if n.op == "get":
            c = ct.pop(id(n), None)
            if c is not None:
                slot = multi.setdefault(id(n.inputs[0]), [None] * len(n.inputs[0].types))
                slot[n.params["index"]] = _add(slot[n.params["index"]], c)
            continue
        c = multi.pop(id(n), None) if n.type is None else ct.pop(id(n), None)
        if c is None or (n.type is None and all(x is None for x in c)):
            continue
        op = PRIMITIVES[n.op]
        if op.vjp is None:
            raise NotImplementedError(f"reverse-mode differentiation of {n.op!r} is not "
                                      f"implemented (at {n.loc})")
        with at_location(n.loc):
            in_cts = op.vjp(c, env[id(n)], *(env[id(i)] for i in n.inputs), **n.params)
            for i, ci in zip(n.inputs, in_cts, strict=True):
                if ci is None or id(i) not in live or not is_float(i):
                    continue
                ct[id(i)] = _add(ct.get(id(i)), _fit(ci, i))


def _fit(c: Tensor, n: Node) -> Tensor:
    if c.shape != n.shape:
        c = sum_to_shape(c, n.shape)
    if c.dtype != n.dtype:
        c = bind("convert", c, dtype=n.dtype, weak=False)
    return c
