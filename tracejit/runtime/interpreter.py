"""The numpy interpreter: executes any Graph node by node with each primitive's reference.

Input: a `Graph` and one numpy array per graph input. Output: one numpy array per graph output.
It is the living definition of every op's semantics and the oracle every backend is tested
against. Errors raised by a reference (an out-of-bounds index, an integer division by zero)
are re-raised with the source line of the node that raised them.
"""

from __future__ import annotations

import numpy as np

from ..errors import user_error
from ..ir.graph import Graph
from ..primitives import PRIMITIVES

__all__ = ["run_graph"]


def run_graph(graph: Graph, args: list) -> list[np.ndarray]:
    env: dict[int, object] = {}
    for node, a in zip(graph.inputs, args, strict=True):
        a = np.asarray(a)
        if a.shape != node.shape:
            raise ValueError(f"graph {graph.name}: input {node.name} expects shape "
                             f"{list(node.shape)}, got {list(a.shape)}")
        env[id(node)] = a if a.dtype == node.dtype.np else a.astype(node.dtype.np)
    for node in graph.nodes:
        op = PRIMITIVES[node.op]
        try:
            out = op.ref(*(env[id(i)] for i in node.inputs), **node.params)
        except (IndexError, ZeroDivisionError, ValueError) as e:
            raise user_error(type(e), f"{e} (in {node.op})", node.loc) from None
        if node.type is not None:
            out = np.asarray(out)
            if out.dtype != node.dtype.np:
                out = out.astype(node.dtype.np)
        env[id(node)] = out
    results = []
    for o in graph.outputs:
        v = env[id(o)]
        if o.op == "input" or not v.flags.writeable or any(v is r for r in results):
            v = np.array(v, copy=True)
        results.append(v)
    return results
