"""Forward mode: the Jacobian-vector product of a Graph, as more graph.

Input: a `Graph`, one primal Tensor per input, and one tangent per input (None for zero).
Output: the graph's outputs and their tangents (None where a tangent is identically zero).
Every node is replayed, then its primitive's `jvp` rule adds the node's tangent, written with
graph ops — so the result can be differentiated again, batched, printed and compiled. The rules
record no effects (`trace.effects_dropped`): the replay of the primal node runs its prints and
checks, once.
"""

from __future__ import annotations

from ..ir.graph import Graph
from ..ops.shape import broadcast_to
from ..primitives import PRIMITIVES
from ..tensor import Tensor
from ..trace import at_location, bind, effects_dropped
from .replay import is_float, replay_node

__all__ = ["jvp_graph"]


def jvp_graph(graph: Graph, primals: list[Tensor], tangents: list[Tensor | None]):
    """Returns ``(outputs, output_tangents)``."""
    env = {id(n): x for n, x in zip(graph.inputs, primals, strict=True)}
    tan: dict[int, object] = {}
    for n, t in zip(graph.inputs, tangents, strict=True):
        if t is not None and is_float(n):
            tan[id(n)] = t
    for n in graph.nodes:
        replay_node(n, env)
        if n.op == "get":
            ts = tan.get(id(n.inputs[0]))
            if ts is not None and ts[n.params["index"]] is not None:
                tan[id(n)] = ts[n.params["index"]]
            continue
        ts = [tan.get(id(i)) for i in n.inputs]
        op = PRIMITIVES[n.op]
        if all(t is None for t in ts) or op.has("nondiff"):
            continue
        if n.type is not None and not n.type.dtype.is_floating_point:
            continue
        if op.jvp is None:
            raise NotImplementedError(f"forward-mode differentiation of {n.op!r} is not "
                                      f"implemented (at {n.loc})")
        with at_location(n.loc), effects_dropped():
            t = op.jvp(ts, env[id(n)], *(env[id(i)] for i in n.inputs), **n.params)
            if n.type is None:  # multi-result
                tan[id(n)] = [None if ti is None else _fit(ti, ty)
                              for ti, ty in zip(t, n.types)]
            elif t is not None:
                tan[id(n)] = _fit(t, n.type)
    return [env[id(o)] for o in graph.outputs], [tan.get(id(o)) for o in graph.outputs]


def _fit(t: Tensor, ty) -> Tensor:
    if t.shape != ty.shape:
        t = broadcast_to(t, ty.shape)
    if t.dtype != ty.dtype:
        t = bind("convert", t, dtype=ty.dtype, weak=False)
    return t
