"""Derivative conformance: every differentiable case of `op_cases.py`, in float64.

For each float64 instance (every input set) the traced graph G of the op is transformed with
`vjp_graph` and `jvp_graph` directly, and the derivative graphs are traced, verified and run on
the interpreter. With random directions v (one per float input) and cotangents u (one per float64
output):

* first order: the jvp ``J v`` matches central finite differences ``(f(x+eps v) - f(x-eps v))
  / 2 eps``, and the vjp passes the inner-product test ``<u, J v> == <J^T u, v>``;
* second order: ``h(x) = J(x)^T u`` (the vjp, as a graph) is differentiated again, forwards
  (jvp of vjp, checked against finite differences of h) and backwards (vjp of vjp, checked by
  the inner-product test against that jvp).

Only float inputs are differentiated (indices, masks and Python scalars are held fixed) and only
float64 outputs are compared (a float32 result rounds away what finite differences measure).
Cases whose op is piecewise constant are checked to have zero derivatives instead; a point that
lies within eps of a kink (finite differences at two step sizes disagree) is skipped, never
silently passed. In float32/float16 the derivative graphs are only built and type-checked.
Completeness: every primitive is nondiff, control flow, or has both rules, and every rule is
exercised by some case.
"""

from __future__ import annotations

import functools
import zlib

import numpy as np
import pytest
from op_cases import F64, INSTANCES, Idx, Instance, Mask, Py

import tracejit as tj
from tracejit.autodiff.jvp import jvp_graph
from tracejit.autodiff.vjp import vjp_graph
from tracejit.primitives import PRIMITIVES
from tracejit.trace import trace_graph

EPS = 1e-6
RTOL_FD = 1e-6      # finite differences against the jvp (relative to the largest entry)
RTOL_DOT = 1e-10    # <u, Jv> against <J^T u, v>: both exact, only rounding differs

# Ops whose result is piecewise constant in the float inputs: the derivative is zero wherever
# it exists, and the case domains ("halves") put points right on the jumps, so finite
# differences are meaningless there. Their vjp/jvp must give zeros.
ZERO_DERIVATIVE = {"floor", "ceil", "round", "trunc", "sign", "floor_divide", "__floordiv__",
                   "div.fn.floor", "div.fn.trunc", "stop_gradient"}
# Cases whose points are not differentiable by construction (NaN/inf inputs).
NOT_AT_THESE_POINTS = {"special"}

# Derivatives that are wrong today because of how the op library composes the op (not a rule
# bug); strict, so fixing the op turns these into failures until the entry is removed.
KNOWN_ISSUES: dict[str, str] = {}


def _is_float_array(a) -> bool:
    return isinstance(a, np.ndarray) and a.dtype == np.float64


def _chosen() -> list[Instance]:
    """Every float64 instance (all input sets); data-dependent shapes (eager only) left out."""
    return [inst for inst in INSTANCES if inst.dtype == F64 and not inst.case.eager_only]


CHOSEN = _chosen()


# -- tracing and running graphs -------------------------------------------------------------

def _types(arrays):
    return [tj.from_numpy(np.asarray(a))._type() for a in arrays]


def stage(fn, arrays):
    """Traces `fn` on tracers shaped like `arrays`; returns (graph, captured arrays)."""
    g, _, b = trace_graph(fn, _types(arrays), [f"a{i}" for i in range(len(arrays))], "f")
    g.verify()
    return g, [c.numpy() for c in b.captured]


def run(graph, arrays) -> list[np.ndarray]:
    out = graph(*arrays)
    out = out if isinstance(out, tuple) else (out,)
    return [o.numpy() for o in out]


def _or_zeros(ts, like):
    return [tj.zeros(ref.shape, dtype=ref.dtype) if t is None else t for t, ref in zip(ts, like)]


class Problem:
    """One instance as a function of its float inputs: ``f(*xs) -> float64 outputs``."""

    def __init__(self, inst: Instance):
        args = inst.args()
        self.pos = [i for i, a in enumerate(args) if _is_float_array(a)]
        self.xs = [args[i] for i in self.pos]
        self.fixed = [i for i, a in enumerate(args) if isinstance(a, np.ndarray)
                      and i not in self.pos]
        self.others = [args[i] for i in self.fixed]

        def f(*flat):
            full = list(args)
            for i, t in zip(self.pos + self.fixed, flat):
                full[i] = t
            out = inst.case.fn(*full)
            leaves = out if isinstance(out, (tuple, list)) else [out]
            return tuple(o for o in leaves if isinstance(o, tj.Tensor) and o.dtype == tj.float64)

        self.G, self.caps = stage(f, self.xs + self.others)
        self.consts = self.others + self.caps  # graph inputs held fixed
        self.outs = [np.zeros(o.shape) for o in self.G.outputs]

    def f(self, xs) -> list[np.ndarray]:
        return run(self.G, list(xs) + self.consts)

    # -- derivative graphs (each traced with the float inputs first, constants after) -----
    @functools.cached_property
    def jvp(self):
        return self.jvp_of(range(len(self.xs)))

    def jvp_of(self, which):
        """The jvp graph ``(xs, consts, vs) -> J v`` with tangents for the inputs in `which`
        only (the others' are None: every rule must handle any subset)."""
        nx, nc, which = len(self.xs), len(self.consts), set(which)

        def fn(*a):
            xs, consts, vs = a[:nx], a[nx:nx + nc], a[nx + nc:]
            ts = [v if k in which else None for k, v in enumerate(vs)]
            _, ts = jvp_graph(self.G, list(xs) + list(consts), ts + [None] * nc)
            return tuple(_or_zeros(ts, self.G.outputs))
        return stage(fn, self.xs + self.consts + self.xs)[0]

    @functools.cached_property
    def vjp(self):
        """h(xs, consts, us) = J^T u, one per float input."""
        nx, nc = len(self.xs), len(self.consts)

        def fn(*a):
            xs, consts, us = a[:nx], a[nx:nx + nc], a[nx + nc:]
            _, cts = vjp_graph(self.G, list(xs) + list(consts), list(us),
                               wrt=[True] * nx + [False] * nc)
            return tuple(_or_zeros(cts[:nx], xs))
        return stage(fn, self.xs + self.consts + self.outs)[0]


def _dot(a, b) -> float:
    return float(sum(np.sum(x * y) for x, y in zip(a, b)))


def _absdot(a, b) -> float:
    return float(sum(np.sum(np.abs(x * y)) for x, y in zip(a, b)))


def _fd(fun, xs, vs, eps):
    plus = fun([x + eps * v for x, v in zip(xs, vs)])
    minus = fun([x - eps * v for x, v in zip(xs, vs)])
    return [(p - m) / (2 * eps) for p, m in zip(plus, minus)]


def _max_abs(arrs) -> float:
    return max((float(np.max(np.abs(a))) for a in arrs if a.size), default=0.0)


def check_fd(name, got, fun, xs, vs, rtol, what):
    """`got` (a directional derivative) against central differences of `fun`; skips the point
    when differences at eps and eps/2 disagree (a kink within eps). Errors are measured against
    the largest entry (and at least 1e-3 of the function's size: rounding in f(x +- eps v) is
    amplified by 1/eps, which matters when the derivative itself is ~0)."""
    fd = _fd(fun, xs, vs, EPS)
    scale = max(_max_abs(fd), _max_abs(got), 1e-3 * max(1.0, _max_abs(fun(xs))))
    fd2 = _fd(fun, xs, vs, EPS / 2)
    if any(not np.allclose(a, b, rtol=0, atol=rtol * scale) for a, b in zip(fd, fd2)):
        pytest.skip(f"{name}: a kink within eps of the sample point ({what})")
    for k, (g, e) in enumerate(zip(got, fd)):
        np.testing.assert_allclose(g, e, rtol=0, atol=rtol * scale,
                                   err_msg=f"{name}: {what}, output {k}")


def check_dot(name, us, jv, jtu, vs, size, what):
    """``<u, Jv> == <J^T u, v>`` up to rounding: relative to the sums of |terms|, plus a floor
    for when both are ~0 by cancellation (rounding of entries of magnitude `size`)."""
    lhs, rhs = _dot(us, jv), _dot(jtu, vs)
    norm = np.sqrt(_dot(us, us) * _dot(vs, vs))
    tol = RTOL_DOT * (_absdot(us, jv) + _absdot(jtu, vs)) + 1e-12 * max(1.0, size) * norm
    assert abs(lhs - rhs) <= tol, f"{name}: {what}: <u, Jv> = {lhs!r} but <J^T u, v> = {rhs!r}"


def _rng(inst: Instance):
    return np.random.default_rng(zlib.crc32(("d/" + inst.id).encode()))


def _skip_reason(inst: Instance) -> str | None:
    dom = inst.case.domain
    doms = dom if isinstance(dom, tuple) else (dom,)
    if any(d in NOT_AT_THESE_POINTS for d in doms):
        return "NaN/inf inputs: not differentiable there"
    if any(isinstance(s, (Idx, Mask, Py)) for s in inst.specs) and not any(
            not isinstance(s, (Idx, Mask, Py)) for s in inst.specs):
        return "no float input"
    return None


@pytest.mark.parametrize("inst", [
    pytest.param(i, marks=pytest.mark.xfail(reason=KNOWN_ISSUES[i.id], strict=True))
    if i.id in KNOWN_ISSUES else i for i in CHOSEN], ids=[i.id for i in CHOSEN])
def test_derivatives(inst: Instance):
    reason = _skip_reason(inst)
    if reason:
        pytest.skip(reason)
    p = Problem(inst)
    if not p.xs or not p.G.outputs:
        pytest.skip("no float input or no float64 output")
    if not all(np.all(np.isfinite(y)) for y in p.f(p.xs)):
        pytest.skip("a NaN/inf result: not differentiable there")
    name = inst.id
    rng = _rng(inst)
    vs = [rng.standard_normal(x.shape) for x in p.xs]
    us = [rng.standard_normal(o.shape) for o in p.outs]
    jv = run(p.jvp, p.xs + p.consts + vs)
    jtu = run(p.vjp, p.xs + p.consts + us)
    assert [a.shape for a in jv] == [o.shape for o in p.outs]
    assert [a.shape for a in jtu] == [x.shape for x in p.xs]
    zero = inst.case.op in ZERO_DERIVATIVE or inst.case.name in ZERO_DERIVATIVE
    if zero:
        assert _max_abs(jv) == 0 and _max_abs(jtu) == 0, f"{name}: nonzero derivative"
        return
    check_dot(name, us, jv, jtu, vs, _max_abs(p.f(p.xs)), "first order")
    rtol = RTOL_FD
    check_fd(name, jv, p.f, p.xs, vs, rtol, "jvp vs finite differences")
    if len(p.xs) > 1:  # a tangent for one operand only
        for k in range(len(p.xs)):
            vk = [v if i == k else np.zeros_like(v) for i, v in enumerate(vs)]
            check_fd(name, run(p.jvp_of([k]), p.xs + p.consts + vs), p.f, p.xs, vk, rtol,
                     f"jvp with a tangent for input {k} only")

    # second order: h(x) = J(x)^T u, differentiated forwards and backwards
    nx, nc = len(p.xs), len(p.consts)

    def h(xs):
        return run(p.vjp, list(xs) + p.consts + us)

    def h_jvp(*a):
        _, ts = jvp_graph(p.vjp, list(a[:nx + nc + len(us)]),
                          list(a[nx + nc + len(us):]) + [None] * (nc + len(us)))
        return tuple(_or_zeros(ts, p.vjp.outputs))

    def h_vjp(*a):
        k = nx + nc + len(us)
        _, cts = vjp_graph(p.vjp, list(a[:k]), list(a[k:]),
                           wrt=[True] * nx + [False] * (nc + len(us)))
        return tuple(_or_zeros(cts[:nx], a[:nx]))

    ws = [rng.standard_normal(x.shape) for x in p.xs]
    hjv = run(stage(h_jvp, p.xs + p.consts + us + vs)[0], p.xs + p.consts + us + vs)
    hjw = run(stage(h_vjp, p.xs + p.consts + us + ws)[0], p.xs + p.consts + us + ws)
    check_dot(name, ws, hjv, hjw, vs, _max_abs(jtu), "second order (vjp of vjp vs jvp of vjp)")
    check_fd(name, hjv, h, p.xs, vs, rtol, "jvp of vjp vs finite differences of the vjp")


# -- the derivative graphs compiled for the CPU ----------------------------------------------

RTOL_CPU = 1e-9  # compiled float64 math is within a few ulp per op of numpy's


@pytest.mark.parametrize("inst", CHOSEN, ids=[i.id for i in CHOSEN])
def test_derivatives_compiled_for_cpu(inst: Instance):
    """The jvp and vjp graphs of every case, optimized, fused and compiled by the LLVM backend,
    give the interpreter's values (one compiled program per case computes both)."""
    from tracejit.passes.pipeline import optimize
    from tracejit.runtime.cpu import CPUProgram
    reason = _skip_reason(inst)
    if reason:
        pytest.skip(reason)
    p = Problem(inst)
    if not p.xs or not p.G.outputs:
        pytest.skip("no float input or no float64 output")
    nx, nc, no = len(p.xs), len(p.consts), len(p.outs)

    def both(*a):
        xs, consts = list(a[:nx]), list(a[nx:nx + nc])
        vs, us = list(a[nx + nc:2 * nx + nc]), list(a[2 * nx + nc:])
        _, ts = jvp_graph(p.G, xs + consts, vs + [None] * nc)
        _, cts = vjp_graph(p.G, xs + consts, us, wrt=[True] * nx + [False] * nc)
        return tuple(_or_zeros(ts, p.G.outputs)) + tuple(_or_zeros(cts[:nx], xs))

    rng = _rng(inst)
    vs = [rng.standard_normal(x.shape) for x in p.xs]
    us = [rng.standard_normal(o.shape) for o in p.outs]
    args = p.xs + p.consts + vs + us
    g = stage(both, args)[0]
    want = run(g, args)
    got = CPUProgram(optimize(g))([np.asarray(a) for a in args])
    assert len(got) == len(want) == no + nx
    for k, (a, b) in enumerate(zip(got, want)):
        assert a.shape == b.shape and a.dtype == b.dtype, f"result {k}"
        fin = np.isfinite(b)
        np.testing.assert_array_equal(np.isfinite(a), fin, err_msg=f"result {k}: non-finite")
        scale = max(_max_abs([b[fin]]) if fin.any() else 0.0, 1e-300)
        np.testing.assert_allclose(a[fin], b[fin], rtol=0, atol=RTOL_CPU * scale,
                                   err_msg=f"{inst.id}: result {k} (cpu vs interpreter)")


# -- lower precision: the rules build graphs of the operand's dtype -------------------------

LOW = [inst for inst in INSTANCES if inst.dtype in ("float32", "float16")
       and not inst.case.eager_only and inst.case.op not in ZERO_DERIVATIVE
       and _skip_reason(inst) is None]


@pytest.mark.parametrize("inst", LOW, ids=[i.id for i in LOW])
def test_rules_keep_low_precision(inst: Instance):
    """In float32/float16 the derivative graphs verify, and tangents and cotangents keep the
    dtypes of the outputs and inputs (no rule promotes to float64 or mixes dtypes)."""
    args = inst.args()
    pos = [i for i, a in enumerate(args) if isinstance(a, np.ndarray) and a.dtype.kind == "f"]
    if not pos:
        pytest.skip("no float input")
    rest = [i for i, a in enumerate(args) if isinstance(a, np.ndarray) and i not in pos]

    def f(*flat):
        full = list(args)
        for i, t in zip(pos + rest, flat):
            full[i] = t
        out = inst.case.fn(*full)
        leaves = out if isinstance(out, (tuple, list)) else [out]
        return tuple(o for o in leaves if o.dtype.is_floating_point)

    arrays = [args[i] for i in pos + rest]
    G, caps = stage(f, arrays)
    if not G.outputs:
        pytest.skip("no float output")
    prim = arrays + caps
    n = len(pos)

    def both(*a):
        xs, us = list(a[:len(prim)]), list(a[len(prim):])
        _, ts = jvp_graph(G, xs, xs[:n] + [None] * (len(prim) - n))
        _, cts = vjp_graph(G, xs, us, wrt=[True] * n + [False] * (len(prim) - n))
        return tuple(_or_zeros(ts, G.outputs)) + tuple(_or_zeros(cts[:n], xs[:n]))

    us = [np.ones(o.shape, o.dtype.np) for o in G.outputs]
    g, _ = stage(both, prim + us)
    got = [(o.shape, o.dtype) for o in g.outputs]
    assert got == [(o.shape, o.dtype) for o in G.outputs] + [
        (x.shape, tj.from_numpy(x).dtype) for x in arrays[:n]]


# -- completeness ---------------------------------------------------------------------------

def _checked_ops() -> set[str]:
    """The primitives in the graphs that `test_derivatives` differentiates."""
    ops: set[str] = set()
    for inst in CHOSEN:
        if _skip_reason(inst) is None:
            p = Problem(inst)
            if p.xs and p.G.outputs:
                ops |= {n.op for n in p.G.nodes}
    return ops


def test_every_rule_is_checked():
    """Each primitive with derivative rules appears in some differentiated case."""
    have = {name for name, op in PRIMITIVES.items() if op.vjp is not None and
            not op.has("control")}
    missing = sorted(have - _checked_ops())
    assert not missing, f"rules no derivative case exercises: {missing}"


def test_every_primitive_has_derivative_rules():
    missing = sorted(name for name, op in PRIMITIVES.items()
                     if not (op.has("nondiff") or op.has("control") or op.has("projection"))
                     and (op.vjp is None or op.jvp is None))
    assert not missing, f"primitives without a vjp and a jvp rule (or a nondiff mark): {missing}"
