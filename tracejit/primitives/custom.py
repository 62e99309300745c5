"""The ``custom_vjp`` primitive: a call of a ``tj.autograd.Function`` subclass.

Input: the call's Tensor arguments plus captured values, and two closed sub-graphs: `fwd`
(arguments -> outputs + saved residuals) and `bwd` (residuals + output cotangents -> argument
cotangents). Output: the OpDef record. The reference runs `fwd`; reverse mode replays `bwd`
(the user's backward) instead of differentiating `fwd`; forward mode differentiates `fwd`.
"""

from __future__ import annotations

from ..ir.graph import TensorType
from .registry import OpDef, RuleError, defrules, register


def _rule(*xs: TensorType, fwd, bwd, n_args, n_fwd_caps, n_out):
    n_f = n_args + n_fwd_caps
    if [(t.shape, t.dtype) for t in xs[:n_f]] != [(n.shape, n.dtype) for n in fwd.inputs]:
        raise RuleError("operands do not match the forward sub-graph's inputs")
    if len(xs) - n_f != len(bwd.inputs) - (len(fwd.outputs)):
        raise RuleError("operands do not match the backward sub-graph's captures")
    return tuple(n.type for n in fwd.outputs)


def _ref(*xs, fwd, bwd, n_args, n_fwd_caps, n_out):
    from ..runtime.interpreter import run_graph
    return tuple(run_graph(fwd, list(xs[:n_args + n_fwd_caps])))


register(OpDef("custom_vjp", None, _rule, _ref, traits={"multi_result", "control"},
               doc="custom_vjp(*args, *captures) {fwd, bwd}: a tj.autograd.Function call"))


def _vjp(cts, out, *xs, fwd, bwd, n_args, n_fwd_caps, n_out):
    from ..autodiff.replay import replay
    from ..ops.creation import zeros_like
    if all(c is None for c in cts[:n_out]):
        return [None] * len(xs)
    res = list(out[n_out:])
    grads = [zeros_like(o) if c is None else c for o, c in zip(out[:n_out], cts[:n_out])]
    caps_b = list(xs[n_args + n_fwd_caps:])
    from ..trace import effects_dropped
    with effects_dropped(False):  # the user's backward runs here, once: its prints show
        in_cts = replay(bwd, res + grads + caps_b)
    return list(in_cts) + [None] * (len(xs) - n_args)


def _jvp(tangents, out, *xs, fwd, bwd, n_args, n_fwd_caps, n_out):
    from ..autodiff.jvp import jvp_graph
    n_f = n_args + n_fwd_caps
    _, ts = jvp_graph(fwd, list(xs[:n_f]), list(tangents[:n_f]))
    return ts


defrules("custom_vjp", vjp=_vjp, jvp=_jvp)
