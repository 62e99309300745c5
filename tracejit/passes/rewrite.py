"""Rewriting helpers shared by the passes: Graph -> Graph with nodes substituted.

Input: a `Graph` and a per-node substitution. Output: a new `Graph` (the input is never mutated;
nodes that do not change are shared between the two).
"""

from __future__ import annotations

from typing import Callable

from ..ir.graph import Graph, Node, has_effect

__all__ = ["rebuild", "with_inputs", "map_subgraphs", "fresh_inputs"]


def with_inputs(n: Node, ins: tuple) -> Node:
    """`n` itself when its operands are `ins`, else a copy of `n` reading `ins`."""
    if ins == n.inputs:
        return n
    return Node(n.op, ins, n.params, n.type, n.loc, types=n.types)


def rebuild(graph: Graph, replace: Callable, inputs=None, outputs=None) -> Graph:
    """A copy of `graph` where ``replace(node, new_inputs)`` gives each node's substitute (or
    None to keep the node, with its operands remapped). `inputs` optionally maps old input
    nodes to new ones; `outputs` optionally selects which outputs the copy returns. The copy
    keeps the effects (their substitutes), in order."""
    if inputs is None:
        new: dict[int, Node] = {id(n): n for n in graph.inputs}
    else:  # inputs not in the mapping are dropped (they must be unused)
        new = {id(o): n for o, n in inputs.items()}
    for n in graph.nodes:
        ins = tuple(new[id(i)] for i in n.inputs)
        sub = replace(n, ins)
        new[id(n)] = with_inputs(n, ins) if sub is None else sub
    outs = graph.outputs if outputs is None else outputs
    new_inputs = graph.inputs if inputs is None else tuple(inputs.values())
    effects = [new[id(e)] for e in graph.effects]  # (a substitute may have lost its effects)
    return Graph(new_inputs, [new[id(o)] for o in outs], graph.name,
                 effects=[e for e in effects if has_effect(e)])


def fresh_inputs(graph: Graph, keep: list[int]) -> dict:
    """New input nodes for the inputs at positions `keep`, renumbered from 0 (the verifier wants
    ``params["index"]`` to be the position)."""
    out = {}
    for j, i in enumerate(keep):
        old = graph.inputs[i]
        out[old] = Node("input", (), {**old.params, "index": j}, old.type, old.loc, name=old.name)
    return out


def map_subgraphs(n: Node, run: Callable[[Graph], Graph]) -> Node:
    """`n` with `run` applied to every sub-graph in its params (cond branches, loop bodies, the
    graphs of custom rules); `n` itself when nothing changed."""
    params, changed = {}, False
    for k, v in n.params.items():
        if isinstance(v, Graph):
            nv = run(v)
        elif isinstance(v, tuple) and v and all(isinstance(g, Graph) for g in v):
            nv = tuple(run(g) for g in v)
        else:
            nv = v
        changed |= nv is not v and nv != v
        params[k] = nv
    if not changed:
        return n
    return Node(n.op, n.inputs, params, n.type, n.loc, types=n.types)
