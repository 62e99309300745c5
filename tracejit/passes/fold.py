"""Constant folding: Graph -> Graph with every node computable from constants alone replaced by
its value.

Input: a `Graph`. Output: an equivalent `Graph`. A node whose operands are all constants (after
folding) is evaluated once, at compile time, with its numpy reference, and becomes a ``constant``
node holding the result — for instance the identity basis that `jacobian` builds from ``iota``
nodes. Results above `FOLD_LIMIT` elements stay computed at run time (a huge literal would cost
more memory than the work it saves); control-flow and multi-result nodes, and effects (a
`tj.debug.print` of constants prints at every call, not once at compile time), are left alone.
"""

from __future__ import annotations

import math

import numpy as np

from ..ir.graph import Graph, Literal, Node, has_effect
from ..primitives import PRIMITIVES
from .rewrite import rebuild

__all__ = ["fold", "FOLD_LIMIT"]

FOLD_LIMIT = 1 << 20  # elements


def _value(n: Node):
    v = n.params["value"]
    return np.asarray(v.value if isinstance(v, Literal) else v, dtype=n.dtype.np)


def fold(graph: Graph) -> Graph:
    def replace(n: Node, ins):
        op = PRIMITIVES[n.op]
        if (n.op == "constant" or n.type is None or op.has("control") or has_effect(n)
                or not all(i.op == "constant" for i in ins)
                or math.prod(n.shape) > FOLD_LIMIT):
            return None
        if not ins and n.op != "iota":
            return None
        try:
            out = np.asarray(op.ref(*(_value(i) for i in ins), **n.params), dtype=n.dtype.np)
        except Exception:  # noqa: BLE001 - an error at run time stays an error at run time
            return None
        value = out.reshape(()).item() if out.ndim == 0 else Literal(out)
        return Node("constant", (), {"value": value, "dtype": n.dtype, "weak": n.weak}, n.type,
                    n.loc)
    return rebuild(graph, replace)
