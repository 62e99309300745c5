"""Common-subexpression elimination: Graph -> Graph where equal nodes are computed once.

Input: a `Graph`. Output: an equivalent `Graph` in which no two nodes have the same op,
operands, params and type. Tracing already hash-conses the nodes it records, but the other passes
create new duplicates (two constants folded to the same value, two expressions that become equal
once an identity is simplified away, sub-graphs transformed separately), and graphs loaded from
text or JSON were never hash-consed. Constants compare by value (``0.0`` and ``-0.0`` differ);
sub-graphs compare by identity after their own CSE. Nodes with effects are never merged.
"""

from __future__ import annotations

from ..ir.graph import Graph, Node, freeze_params, has_effect
from .rewrite import map_subgraphs, rebuild, with_inputs

__all__ = ["cse"]


def cse(graph: Graph) -> Graph:
    table: dict[tuple, Node] = {}

    def replace(n: Node, ins: tuple):
        n = with_inputs(map_subgraphs(n, cse), ins)
        if has_effect(n):  # a print (or a branch that prints) runs as often as it was called
            return n
        t = n.type if n.type is not None else n.types
        key = (n.op, tuple(id(i) for i in ins), freeze_params(n.params), t)
        return table.setdefault(key, n)
    return rebuild(graph, replace)
