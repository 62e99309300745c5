"""Replaying a Graph through `bind`: the engine under every transform.

Input: a `Graph` and one Tensor per graph input (realized, or tracers of the current trace).
Output: one Tensor per graph output. Each node is re-applied with `bind` in the current context,
so replaying evaluates the graph in eager code and copies (inlines) it into the graph being
traced otherwise. Replayed nodes keep their original source locations. The transforms walk the
same loop and add a tangent or a cotangent per node. A replay that recomputes forward work
(`trace.effects_dropped`) runs no effects: no print, check, or branch that prints.
"""

from __future__ import annotations

from ..ir.graph import Graph, Node, without_effects
from ..tensor import Tensor
from ..trace import at_location, bind, effects_are_dropped

__all__ = ["replay", "replay_node", "sum_to_shape", "is_float"]


def is_float(n: Node) -> bool:
    return n.type is not None and n.type.dtype.is_floating_point


def replay_node(n: Node, env: dict) -> None:
    """Applies node `n` to the Tensors of its operands in `env` and stores the result there."""
    if n.op == "get":
        env[id(n)] = env[id(n.inputs[0])][n.params["index"]]
        return
    # recomputed forward work (`trace.effects_dropped`) runs the node without its effects
    params = without_effects(n.params) if effects_are_dropped() else n.params
    with at_location(n.loc):
        out = bind(n.op, *(env[id(i)] for i in n.inputs), **params)
    if isinstance(out, Tensor) and not out._is_tracer and out.dtype != n.dtype:
        # eager evaluation realizes weakly typed values in their default dtype; a replayed
        # graph must keep the dtypes it recorded, since its later nodes were typed against them
        out = Tensor._wrap(out.numpy().astype(n.dtype.np))
    env[id(n)] = out


def replay(graph: Graph, args: list[Tensor]) -> list[Tensor]:
    env = {id(n): a for n, a in zip(graph.inputs, args, strict=True)}
    for n in graph.nodes:
        replay_node(n, env)
    return [env[id(o)] for o in graph.outputs]


def sum_to_shape(x: Tensor, shape: tuple[int, ...]) -> Tensor:
    """Undoes numpy broadcasting: sums `x` down to `shape`."""
    if x.shape == tuple(shape):
        return x
    lead = x.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(lead + i for i, s in enumerate(shape)
                                      if s == 1 and x.shape[lead + i] != 1)
    y = bind("reduce_sum", x, axes=axes) if axes else x
    return bind("reshape", y, shape=tuple(shape)) if y.shape != tuple(shape) else y
