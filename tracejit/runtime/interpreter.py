"""The numpy interpreter: executes any Graph node by node with each primitive's reference.

Input: a `Graph` and one numpy array per graph input. Output: one numpy array per graph output.
It is the living definition of every op's semantics and the oracle every backend is tested
against. Errors raised by a reference (an out-of-bounds index, an integer division by zero)
are re-raised with the source line of the node that raised them (so is a failed
`tj.debug.check`, as a `tj.CheckError`); effects (`Graph.effects`) run in program order. Each
intermediate is released right after its last use, so memory stays bounded by the live set and
allocations stay warm.
"""

from __future__ import annotations

import numpy as np

from ..errors import CheckError, located_check, user_error
from ..ir.graph import Graph
from ..primitives import PRIMITIVES

__all__ = ["run_graph"]


def _plan(graph: Graph):
    """Per node: (ref, params, operand slots, slots to free after it). Cached on the graph."""
    plan = getattr(graph, "_interp_plan", None)
    if plan is not None:
        return plan
    slot = {id(n): i for i, n in enumerate(graph.inputs)}
    for n in graph.nodes:
        slot[id(n)] = len(slot)
    last = {}
    for i, n in enumerate(graph.nodes):
        for x in n.inputs:
            last[slot[id(x)]] = i
    keep = {slot[id(o)] for o in graph.outputs}
    frees: list[list[int]] = [[] for _ in graph.nodes]
    for s, i in last.items():
        if s not in keep:
            frees[i].append(s)
    plan = [(PRIMITIVES[n.op].ref, n.params, [slot[id(x)] for x in n.inputs], frees[i], n)
            for i, n in enumerate(graph.nodes)]
    graph._interp_plan = plan = (plan, [slot[id(o)] for o in graph.outputs], len(slot))
    return plan


def run_graph(graph: Graph, args: list) -> list[np.ndarray]:
    steps, out_slots, nslots = _plan(graph)
    env: list = [None] * nslots
    args = [np.asarray(a) for a in args]
    for i, (node, a) in enumerate(zip(graph.inputs, args, strict=True)):
        if a.shape != node.shape:
            raise ValueError(f"graph {graph.name}: input {node.name} expects shape "
                             f"{list(node.shape)}, got {list(a.shape)}")
        env[i] = a if a.dtype == node.dtype.np else a.astype(node.dtype.np)
    base = len(graph.inputs)
    for k, (ref, params, ins, frees, node) in enumerate(steps):
        try:
            out = ref(*[env[s] for s in ins], **params)
        except (IndexError, ZeroDivisionError, ValueError) as e:
            msg = str(e) if str(e).startswith(node.op) else f"{node.op}: {e}"
            raise user_error(type(e), msg, node.loc) from None
        except CheckError as e:  # a failed tj.debug.check: its message, at its line
            raise located_check(e, node.loc) from None
        if node.type is not None:
            out = np.asarray(out)
            if out.dtype != node.dtype.np:
                out = out.astype(node.dtype.np)
        env[base + k] = out
        for s in frees:
            env[s] = None
    # Results own their memory: never a view of an argument (a reshape of an input), of another
    # result, or of a read-only broadcast, so writing into one never changes anything else.
    results = []
    for s in out_slots:
        v = env[s]
        if not v.flags.writeable or any(np.may_share_memory(v, x) for x in args + results
                                        if isinstance(x, np.ndarray)):
            v = np.array(v, copy=True)
        results.append(v)
    return results
