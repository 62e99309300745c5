"""The text form of a Graph (grammar in docs/ir.md).

Input: a `Graph`. Output: text, one line per node: its name, result type, op, operands,
static params and the user's source location::

    graph f(%x: f32[3,4], %w: f32[4]) -> (f32[3]) {
      %0: f32[3,4] = mul(%x, %w)                          # model.py:12
      %1: f32[3] = reduce_sum(%0) {axes=(1,)}             # model.py:12
      return (%1)
    }
"""

from __future__ import annotations

from ..dtypes import DType
from .graph import Graph, Literal, Node

__all__ = ["graph_to_text", "format_param", "structural_text"]


class _Anon:
    """A view of a graph whose inputs are named by position and whose name is blank."""

    def __init__(self, g: Graph):
        self.name, self.nodes, self.outputs = "g", g.nodes, g.outputs
        self.inputs = [_AnonInput(n, i) for i, n in enumerate(g.inputs)]


class _AnonInput:
    def __init__(self, node, i):
        self.node, self.name, self.type, self.params = node, f"in{i}", node.type, node.params

COMMENT_COLUMN = 64


def format_param(v) -> str:
    if isinstance(v, DType):
        return v.short
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, (tuple, list)):
        inner = ", ".join(format_param(x) for x in v)
        return f"({inner},)" if len(v) == 1 else f"({inner})"
    if isinstance(v, Literal):
        return repr(v)
    if isinstance(v, Graph):
        return f"@{v.name}"
    if isinstance(v, str):
        return repr(v)
    return repr(v)


def _implied(n: Node, key: str, value) -> bool:
    """Params the printed result type already shows (the parser restores them from it)."""
    if key == "weak":
        return True
    return key == "dtype" and n.op in ("constant", "convert", "iota")


def _type_text(n: Node) -> str:
    if n.type is not None:
        return str(n.type)
    return "(" + ", ".join(str(t) for t in n.types) + ")"


def structural_text(graph: Graph) -> str:
    """The text form without names and source locations: equal for graphs that compute the same
    thing the same way (a key for caches of compiled code)."""
    return graph_to_text(graph, structural=True)


def graph_to_text(graph: Graph, indent: str = "", structural: bool = False) -> str:
    names: dict[int, str] = {}
    if structural:
        graph = _Anon(graph)
    for n in graph.inputs:
        names[id(getattr(n, "node", n))] = "%" + n.name
    for i, n in enumerate(graph.nodes):
        names[id(n)] = f"%{i}"
    ins = ", ".join(f"%{n.name}: {n.type}" + (" captured" if n.params.get("kind") == "capture"
                                              else "") for n in graph.inputs)
    outs = ", ".join(_type_text(n) for n in graph.outputs)
    lines = [f"{indent}graph {graph.name}({ins}) -> ({outs}) {{"]
    for n in graph.nodes:
        args = ", ".join(names[id(i)] for i in n.inputs)
        params = {k: v for k, v in n.params.items() if not _implied(n, k, v)}
        ptxt = (" {" + ", ".join(f"{k}={format_param(v)}" for k, v in params.items()) + "}"
                ) if params else ""
        line = f"{indent}  {names[id(n)]}: {_type_text(n)} = {n.op}({args}){ptxt}"
        if n.loc is not None and not structural:
            line = line.ljust(COMMENT_COLUMN - 1) + f"  # {n.loc}"
        lines.append(line)
        for v in params.values():
            if isinstance(v, Graph):
                lines.append(graph_to_text(v, indent + "    ", structural))
            elif isinstance(v, tuple) and v and all(isinstance(g, Graph) for g in v):
                lines += [graph_to_text(g, indent + "    ", structural) for g in v]
    lines.append(f"{indent}  return (" + ", ".join(names[id(o)] for o in graph.outputs) + ")")
    lines.append(f"{indent}}}")
    return "\n".join(lines)
