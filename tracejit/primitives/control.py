"""Control-flow primitives: ``cond``, ``while`` and ``get`` (the projection that reads one result
of a multi-result node).

Input: operand types and closed sub-graphs (`Graph` params). Output: OpDef records. Sub-graphs
receive every value they use as an operand, so each is closed and can be printed, transformed and
compiled on its own:

* ``cond(pred, *xs) {branches=(then, else)}``: runs ``then(*xs)`` when `pred` is true, else
  ``else(*xs)``; both sub-graphs take `xs` and return the same types.
* ``while(*carry, *consts) {cond, body}``: while ``cond(*carry, *consts)`` holds, ``carry =
  body(*carry, *consts)``; `body` returns the carry types; the result is the final carry.

Their references run the sub-graphs on the interpreter.
"""

from __future__ import annotations

from .. import dtypes as D
from ..ir.graph import TensorType
from .registry import OpDef, RuleError, register


def _get_rule(x, *, index):
    if not isinstance(x, tuple) or not 0 <= index < len(x):
        raise RuleError(f"get {index}: operand is not a multi-result node with that result")
    return x[index]


register(OpDef("get", 1, _get_rule, lambda x, *, index: x[index], traits={"nondiff"},
               doc="get(t) {index}: one result of a multi-result node"))


def _strip(t: TensorType) -> tuple:
    return (t.shape, t.dtype)


def _check_inputs(g, types, what):
    want = [_strip(t) for t in types]
    got = [_strip(n.type) for n in g.inputs]
    if want != got:
        raise RuleError(f"{what} takes {[str(n.type) for n in g.inputs]}, operands are "
                        f"{[str(t) for t in types]}")


def _cond_rule(pred: TensorType, *xs: TensorType, branches):
    if pred.shape != () or not pred.dtype.is_bool:
        raise RuleError(f"predicate must be a bool scalar, got {pred}", TypeError)
    if len(branches) != 2:
        raise RuleError("cond needs exactly two branches")
    for g in branches:
        _check_inputs(g, xs, f"branch {g.name}")
    a, b = ([n.type for n in g.outputs] for g in branches)
    if [_strip(t) for t in a] != [_strip(t) for t in b]:
        raise RuleError(f"branches return different types: {[str(t) for t in a]} vs "
                        f"{[str(t) for t in b]}", TypeError)
    return tuple(TensorType(x.shape, x.dtype, x.weak and y.weak) for x, y in zip(a, b))


def _cond_ref(pred, *xs, branches):
    from ..runtime.interpreter import run_graph
    return tuple(run_graph(branches[0] if bool(pred) else branches[1], list(xs)))


register(OpDef("cond", None, _cond_rule, _cond_ref, traits={"multi_result", "control"},
               doc="cond(pred, *xs) {branches=(then, else)}"))


def _while_rule(*xs: TensorType, cond, body):
    k = len(body.outputs)
    if k > len(xs):
        raise RuleError(f"body returns {k} values but the loop has {len(xs)} operands")
    _check_inputs(cond, xs, f"loop condition {cond.name}")
    _check_inputs(body, xs, f"loop body {body.name}")
    if len(cond.outputs) != 1 or cond.outputs[0].type.shape != () or \
            cond.outputs[0].type.dtype != D.bool_:
        raise RuleError("loop condition must return one bool scalar", TypeError)
    outs = [n.type for n in body.outputs]
    if [_strip(t) for t in outs] != [_strip(t) for t in xs[:k]]:
        raise RuleError(f"loop body returns {[str(t) for t in outs]} but the carry is "
                        f"{[str(t) for t in xs[:k]]}", TypeError)
    return tuple(xs[:k])


def _while_ref(*xs, cond, body):
    from ..runtime.interpreter import run_graph
    k = len(body.outputs)
    carry, consts = list(xs[:k]), list(xs[k:])
    while bool(run_graph(cond, carry + consts)[0]):
        carry = run_graph(body, carry + consts)
    return tuple(carry)


register(OpDef("while", None, _while_rule, _while_ref, traits={"multi_result", "control"},
               doc="while(*carry, *consts) {cond, body}: the final carry"))
