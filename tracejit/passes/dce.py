"""Dead-code elimination: Graph -> Graph without work whose result is never used.

Input: a `Graph`. Output: an equivalent `Graph`. A `Graph` only ever holds the nodes reachable
from its outputs, so unreachable nodes vanish on any rebuild; this pass also removes dead work
*inside* control flow, which reachability alone cannot see:

* a ``cond`` result no ``get`` reads is dropped from both branches, and so is a ``cond``
  operand that neither branch reads;
* a ``while`` carry is dropped when nothing reads its final value and neither the condition nor
  any live carry's update depends on it (found as a fixed point over the loop body), and so is a
  loop-invariant operand nothing live reads;
* sub-graphs are cleaned recursively.

Effects (`Graph.effects`: prints, checks, control flow that holds them) are never removed: what
they read stays live, a ``cond`` keeps the operands its branches' effects read, and a ``while``
keeps the carries its effects depend on (and, as always, those its condition does, so it runs
as many times). A ``cond`` or ``while`` kept only for its effects loses every result nobody reads.
"""

from __future__ import annotations

from ..ir.graph import Graph, Node
from .rewrite import fresh_inputs, map_subgraphs, rebuild

__all__ = ["dce"]


def _depends(g: Graph, outputs) -> set[int]:
    """Positions of `g`'s inputs that `outputs` (nodes of `g`) depend on."""
    pos = {id(n): i for i, n in enumerate(g.inputs)}
    seen: set[int] = set()
    found: set[int] = set()
    stack = list(outputs)
    while stack:
        n = stack.pop()
        if id(n) in seen:
            continue
        seen.add(id(n))
        if id(n) in pos:
            found.add(pos[id(n)])
        stack.extend(n.inputs)
    return found


def _restrict(g: Graph, keep_in: list[int], keep_out: list[int]) -> Graph:
    """`g` reading only inputs `keep_in` and returning only outputs `keep_out` (its effects
    stay: `keep_in` must hold what they read)."""
    g = Graph(g.inputs, [g.outputs[i] for i in keep_out], g.name,  # prunes what they don't use
              effects=g.effects)
    return rebuild(g, lambda n, ins: None, inputs=fresh_inputs(g, keep_in))


def _needs(g: Graph, outputs: list[int]) -> set[int]:
    """Positions of `g`'s inputs that its outputs `outputs` and its effects depend on."""
    return _depends(g, [g.outputs[i] for i in outputs] + list(g.effects))


def _live_cond(n: Node, used: list[int]):
    then, other = n.params["branches"]
    xs = n.inputs[1:]
    reads = sorted(_needs(then, used) | _needs(other, used))
    if len(used) == len(n.types) and len(reads) == len(xs):
        return None
    branches = tuple(_restrict(g, reads, used) for g in (then, other))
    return Node("cond", (n.inputs[0], *(xs[i] for i in reads)), {**n.params,
                "branches": branches}, None, n.loc, types=tuple(n.types[i] for i in used))


def _live_while(n: Node, used: list[int]):
    cond, body = n.params["cond"], n.params["body"]
    k = len(body.outputs)
    live = set(used) | _needs(cond, [0]) | _needs(body, [])
    while True:
        more = live | _needs(body, [i for i in live if i < k])
        if more == live:
            break
        live = more
    carries = sorted(i for i in live if i < k)
    consts = sorted(i for i in live if i >= k)
    if len(carries) == k and len(consts) == len(n.inputs) - k:
        return None
    keep = carries + consts
    new = Node("while", tuple(n.inputs[i] for i in keep),
               {**n.params, "cond": _restrict(cond, keep, [0]),
                "body": _restrict(body, keep, carries)}, None, n.loc,
               types=tuple(n.types[i] for i in carries))
    return new, {old: j for j, old in enumerate(carries)}


def dce(graph: Graph) -> Graph:
    graph = rebuild(graph, lambda n, ins: None)  # drops the unreachable (defensive: cheap)
    used: dict[int, set[int]] = {}
    for n in graph.nodes:
        if n.op == "get":
            used.setdefault(id(n.inputs[0]), set()).add(n.params["index"])
    renumber: dict[int, dict[int, int]] = {}

    def replace(n: Node, ins: tuple):
        if n.op == "get" and id(n.inputs[0]) in renumber:
            idx = renumber[id(n.inputs[0])][n.params["index"]]
            return Node("get", ins, {**n.params, "index": idx}, n.type, n.loc)
        n2 = map_subgraphs(n, dce)
        if n2 is not n or ins != n.inputs:
            n2 = Node(n.op, ins, n2.params, n.type, n.loc, types=n.types)
        if n.op in ("cond", "while"):
            u = sorted(used.get(id(n), ()))
            res = (_live_cond(n2, u) if n.op == "cond" else _live_while(n2, u))
            if res is not None:
                new = res if n.op == "cond" else res[0]
                renumber[id(n)] = {old: j for j, old in enumerate(u)} if n.op == "cond" \
                    else res[1]
                return new
        return n2 if n2 is not n else None
    return rebuild(graph, replace)
