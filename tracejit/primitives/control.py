"""Control-flow primitives: ``cond``, ``while`` and ``get`` (the projection that reads one result
of a multi-result node).

Input: operand types and closed sub-graphs (`Graph` params). Output: OpDef records. Sub-graphs
receive every value they use as an operand, so each is closed and can be printed, transformed and
compiled on its own. Their references run the sub-graphs on the interpreter.
"""

from __future__ import annotations

from ..ir.graph import TensorType
from .registry import OpDef, RuleError, register


def _get_rule(x, *, index):
    if not isinstance(x, tuple) or not 0 <= index < len(x):
        raise RuleError(f"get {index}: operand is not a multi-result node with that result")
    return x[index]


register(OpDef("get", 1, _get_rule, lambda x, *, index: x[index], traits={"nondiff"},
               doc="get(t) {index}: one result of a multi-result node"))

__all__ = ["TensorType"]
