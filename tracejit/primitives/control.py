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
from .registry import OpDef, RuleError, defrules, register


def _get_rule(x, *, index):
    if not isinstance(x, tuple) or not 0 <= index < len(x):
        raise RuleError(f"get {index}: operand is not a multi-result node with that result")
    return x[index]


register(OpDef("get", 1, _get_rule, lambda x, *, index: x[index], traits={"projection"},
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


# -- derivative rules -------------------------------------------------------------------------
# Written with the public control-flow functions, so a derivative of a branch is a branch and a
# derivative of a loop is a loop (never unrolled), and both can be differentiated again.

WHILE_CHECKPOINTS = 64  # carries stored by the reverse-mode rule of `while`; see docs/autodiff.md


def _recomputing(rule):
    """A derivative rule that re-runs forward work (a branch, a loop body): the effects in it
    (`tj.debug.print`) ran in the forward pass, so they are not recorded again here."""
    import functools

    @functools.wraps(rule)
    def wrapped(*args, **params):
        from ..trace import effects_dropped
        with effects_dropped():
            return rule(*args, **params)
    return wrapped


def _zeros(x):
    from ..ops.creation import zeros_like
    return zeros_like(x)


def _cond_jvp(tangents, out, pred, *xs, branches):
    from ..autodiff.jvp import jvp_graph
    from ..control import cond
    ts = list(tangents[1:])
    idx = [i for i, t in enumerate(ts) if t is not None]
    float_out = [k for k, t in enumerate(branches[0].outputs) if t.type.dtype.is_floating_point]

    def branch(g):
        def f(*args):
            tans = [None] * len(xs)
            for m, i in enumerate(idx):
                tans[i] = args[len(xs) + m]
            o, ot = jvp_graph(g, list(args[:len(xs)]), tans)
            return [ot[k] if ot[k] is not None else _zeros(o[k]) for k in float_out]
        return f

    res = cond(pred, branch(branches[0]), branch(branches[1]), *xs, *(ts[i] for i in idx))
    out_t = [None] * len(branches[0].outputs)
    for m, k in enumerate(float_out):
        out_t[k] = res[m]
    return out_t


def _cond_vjp(cts, out, pred, *xs, branches):
    from ..autodiff.vjp import vjp_graph
    from ..control import cond
    diff = [i for i, x in enumerate(xs) if x.dtype.is_floating_point]
    given = [k for k, c in enumerate(cts) if c is not None]
    if not diff:
        return [None] * (len(xs) + 1)
    wrt = [x.dtype.is_floating_point for x in xs]

    def branch(g):
        def f(*args):
            cs = [None] * len(g.outputs)
            for m, k in enumerate(given):
                cs[k] = args[len(xs) + m]
            _, in_cts = vjp_graph(g, list(args[:len(xs)]), cs, wrt)
            return [in_cts[i] if in_cts[i] is not None else _zeros(args[i]) for i in diff]
        return f

    res = cond(pred, branch(branches[0]), branch(branches[1]), *xs, *(cts[k] for k in given))
    out_cts = [None] * len(xs)
    for m, i in enumerate(diff):
        out_cts[i] = res[m]
    return [None] + out_cts


def _while_jvp(tangents, out, *xs, cond, body):
    from ..autodiff.jvp import jvp_graph
    from ..autodiff.replay import replay
    from ..control import while_loop
    k = len(body.outputs)
    carry, consts = list(xs[:k]), list(xs[k:])
    c_tans = list(tangents[k:])
    fl = [i for i in range(k) if carry[i].dtype.is_floating_point]
    init_t = [tangents[i] if tangents[i] is not None else _zeros(carry[i]) for i in fl]

    def cond_fn(state):
        return replay(cond, list(state[0]) + consts)[0]

    def body_fn(state):
        c, t = state
        tans = [None] * k
        for m, i in enumerate(fl):
            tans[i] = t[m]
        new_c, new_t = jvp_graph(body, list(c) + consts, tans + c_tans)
        return (new_c, [new_t[i] if new_t[i] is not None else _zeros(new_c[i]) for i in fl])

    _, final_t = while_loop(cond_fn, body_fn, (carry, init_t))
    out_t = [None] * k
    for m, i in enumerate(fl):
        out_t[i] = final_t[m]
    return out_t


def _while_vjp(cts, out, *xs, cond, body):
    """Reverse mode through a loop whose trip count is only known at run time.

    The forward loop is run again counting its trips `n`; a third run stores every `s`-th carry
    (``s = ceil(n / WHILE_CHECKPOINTS)``) in fixed-size checkpoint buffers. The backward loop
    then walks the iterations from last to first: it recomputes the carry of iteration t from
    the nearest checkpoint (at most s - 1 body evaluations) and applies the body's VJP. Memory:
    WHILE_CHECKPOINTS carries; time: O(n) body evaluations when n <= WHILE_CHECKPOINTS, O(n * s)
    otherwise.
    """
    from .. import dtypes as DT
    from ..autodiff.replay import replay
    from ..autodiff.vjp import vjp_graph
    from ..control import fori_loop, while_loop
    from ..ops import elementwise as E
    from ..ops.creation import zeros
    from ..trace import bind
    k = len(body.outputs)
    carry, consts = list(xs[:k]), list(xs[k:])
    wrt = [x.dtype.is_floating_point for x in xs]
    if not any(c is not None for c in cts) or not any(wrt):
        return [None] * len(xs)

    def cond_of(c):
        return replay(cond, list(c) + consts)[0]

    def step(c):
        return replay(body, list(c) + consts)

    zero = bind("constant", value=0, dtype=DT.int64)
    _, n = while_loop(lambda st: cond_of(st[0]), lambda st: (step(st[0]), st[1] + 1),
                      (carry, zero))
    K = WHILE_CHECKPOINTS
    s = E.maximum(E.floor_divide(E.add(n, K - 1), K), 1)
    bufs0 = [zeros((K,) + c.shape, dtype=c.dtype) for c in carry]

    def store(i, st):
        c, bufs = st
        slot = E.floor_divide(i, s)
        keep = E.eq(E.remainder(i, s), 0)
        bufs = [b.at[slot].set(E.where(keep, ci, b[slot])) for b, ci in zip(bufs, c)]
        return (step(c), bufs)

    _, bufs = fori_loop(0, n, store, (carry, bufs0))
    fl_carry = [i for i in range(k) if wrt[i]]
    fl_const = [j for j in range(len(consts)) if wrt[k + j]]
    ct_c0 = [cts[i] if cts[i] is not None else _zeros(carry[i]) for i in fl_carry]
    ct_k0 = [_zeros(consts[j]) for j in fl_const]

    def back(r, st):
        ct_c, ct_k = st
        t = E.sub(E.sub(n, 1), r)  # iteration t, from last to first
        seg = E.floor_divide(t, s)
        c_t = fori_loop(E.mul(seg, s), t, lambda _, c: step(c), [b[seg] for b in bufs])
        cs = [None] * k
        for m, i in enumerate(fl_carry):
            cs[i] = ct_c[m]
        _, in_cts = vjp_graph(body, list(c_t) + consts, cs, [wrt[i] for i in range(k)]
                              + [wrt[k + j] for j in range(len(consts))])
        new_c = [in_cts[i] if in_cts[i] is not None else _zeros(carry[i]) for i in fl_carry]
        new_k = [E.add(a, in_cts[k + j]) if in_cts[k + j] is not None else a
                 for a, j in zip(ct_k, fl_const)]
        return (new_c, new_k)

    ct_c, ct_k = fori_loop(0, n, back, (ct_c0, ct_k0))
    res = [None] * len(xs)
    for m, i in enumerate(fl_carry):
        res[i] = ct_c[m]
    for m, j in enumerate(fl_const):
        res[k + j] = ct_k[m]
    return res


defrules("cond", vjp=_recomputing(_cond_vjp), jvp=_recomputing(_cond_jvp))
defrules("while", vjp=_recomputing(_while_vjp), jvp=_recomputing(_while_jvp))
