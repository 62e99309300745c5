"""The pass pipeline: Graph -> optimized Graph, one named pass after another.

Input: a traced `Graph`. Output: an equivalent `Graph`. The passes, in order (each a function
Graph -> Graph in its own module, tested on its own in tests/test_passes.py):

* ``simplify`` — algebraic identities (x*1, x+0, -(-x), transpose/reshape/broadcast chains, ...);
* ``fold`` — evaluates subgraphs of constants once, at compile time;
* ``diagonal`` — a product with a (scaled) identity matrix, as Jacobians build them, becomes a
  transpose and a scaling;
* ``simplify`` again — folding exposes new identities (a multiply by a folded ``1``);
* ``cse`` — computes equal nodes once;
* ``dce`` — drops unused results and carries of control flow (unreachable nodes vanish anyway).

With ``TRACEJIT_DEBUG=1`` (or ``tj.config.debug = True``) the IR is verified before and after
every pass, and a pass that breaks it is named in the error.
"""

from __future__ import annotations

from typing import Callable

from ..ir.graph import Graph

__all__ = ["PASSES", "optimize"]


def _passes() -> list[tuple[str, Callable[[Graph], Graph]]]:
    from .cse import cse
    from .dce import dce
    from .diagonal import diagonal
    from .fold import fold
    from .simplify import simplify
    return [("simplify", simplify), ("fold", fold), ("diagonal", diagonal),
            ("simplify", simplify), ("cse", cse), ("dce", dce)]


PASSES: list[tuple[str, Callable[[Graph], Graph]]] = _passes()


def debug_enabled() -> bool:
    """``tj.config.debug``; while that was never assigned, also ``TRACEJIT_DEBUG`` set after
    import."""
    from ..config import _ENV, _env_flag, config
    return config.debug or (not config.is_set("debug") and _env_flag(_ENV["debug"]))


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
