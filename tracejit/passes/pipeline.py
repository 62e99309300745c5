"""The pass pipeline: Graph -> optimized Graph, one named pass after another.

Input: a traced `Graph`. Output: an equivalent `Graph`. Tracing already hash-conses identical
nodes (CSE) and `Graph` keeps only nodes reachable from the outputs (DCE); `fold` evaluates
constant subgraphs once. More simplification passes join this list with the LLVM backend.
With ``TRACEJIT_DEBUG=1`` the IR is verified before and after every pass.
"""

from __future__ import annotations

import os
from typing import Callable

from ..ir.graph import Graph

__all__ = ["PASSES", "optimize"]

def _passes() -> list[tuple[str, Callable[[Graph], Graph]]]:
    from .fold import fold
    return [("fold", fold)]


PASSES: list[tuple[str, Callable[[Graph], Graph]]] = _passes()


def debug_enabled() -> bool:
    return os.environ.get("TRACEJIT_DEBUG", "") not in ("", "0")


def optimize(graph: Graph) -> Graph:
    check = debug_enabled()
    if check:
        graph.verify()
    for name, run in PASSES:
        graph = run(graph)
        if check:
            try:
                graph.verify()
            except AssertionError as e:
                raise AssertionError(f"pass {name} produced an invalid graph: {e}") from None
    return graph
