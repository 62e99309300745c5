"""The IR verifier: re-checks every node of a Graph against its primitive's type rule.

Input: a `Graph`. Output: nothing, or an `AssertionError` naming the first bad node: an unknown
op, an operand defined later or outside the graph, a wrong arity, a result type that differs
from what the type rule says, or a node with effects missing from `Graph.effects`. Sub-graphs of
control-flow nodes are verified too.
"""

from __future__ import annotations

from ..primitives import PRIMITIVES, RuleError
from .graph import Graph, has_effect

__all__ = ["verify"]


def verify(graph: Graph) -> None:
    defined = {id(n) for n in graph.inputs}
    for i, n in enumerate(graph.inputs):
        assert n.op == "input" and n.params.get("index") == i, f"bad input {i}: {n!r}"
    for n in graph.nodes:
        where = f"{graph.name}: node {n.op} at {n.loc}"
        op = PRIMITIVES.get(n.op)
        assert op is not None, f"{where}: unknown op"
        assert op.arity is None or op.arity == len(n.inputs), (
            f"{where}: takes {op.arity} operands, has {len(n.inputs)}")
        for x in n.inputs:
            assert id(x) in defined, f"{where}: operand {x!r} is not defined before use"
        types = [x.type if x.type is not None else x.types for x in n.inputs]
        try:
            t = op.rule(*types, **n.params)
        except RuleError as e:
            raise AssertionError(f"{where}: type rule rejects operands: {e}") from None
        got = n.types if n.types is not None else n.type
        assert t == got, f"{where}: rule gives {t}, node says {got}"
        for v in n.params.values():
            for g in (v if isinstance(v, tuple) else (v,)):
                if isinstance(g, Graph):
                    verify(g)
        defined.add(id(n))
    for o in graph.outputs:
        assert id(o) in defined, f"{graph.name}: output {o!r} is not defined"
    listed = {id(e) for e in graph.effects}
    for e in graph.effects:
        assert id(e) in defined and has_effect(e), f"{graph.name}: bad effect {e!r}"
    for n in graph.nodes:  # else it could run out of order, or be dropped
        assert not has_effect(n) or id(n) in listed, (
            f"{graph.name}: node {n.op} at {n.loc} has effects but is not in graph.effects")
