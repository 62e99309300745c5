"""Checking runners: differential checking against the interpreter, and NaN checks.

Input: a backend's runner (a `CPUProgram`, or ``functools.partial(run_graph, graph)``) and the
switches of `tj.config`. Output: the same runner, or a callable that runs it and then checks:

* ``debug`` (cpu backend): the optimized graph is also run on the interpreter with the same
  inputs, keeping every node's value; each output must have the same shape and dtype and agree
  within a tolerance derived from the ops that computed it (`_tolerances`): exactly for integer
  and bool results; for floats ``|got - want| <= R * eps * (|want| + M)``, with ``R`` a count of
  roundings (each math-library op 4 ulp for f32 / 8 for f64 plus numpy's own, each arithmetic op
  one, a reduction or product of length ``L`` L of them, amplified by ``exp``/``pow``'s
  argument) and ``M`` the magnitude the result was computed from (the inputs of an addition, ``L *
  max|x|`` for a sum of length L): cancellation is judged against it. NaN positions and infinities
  must agree. On a disagreement each compiled step of the schedule is run alone on the
  interpreter's values of its inputs, and the first one whose result disagrees is named in the
  `DebugCheckError` with the graph nodes and user source lines fused into it.
* ``debug_nans``: an output holding a NaN makes the graph run again node by node on the
  interpreter; the first node that produces a NaN from NaN-free operands is named in a
  ``FloatingPointError`` with its source line.

Nothing here runs unless a switch is on: `wrap` returns the runner itself otherwise. The re-runs
on the interpreter are quiet (`primitives.debug.quiet`): a `tj.debug.print` shows once per call.
"""

from __future__ import annotations

import ctypes

import numpy as np

from ..errors import where
from ..ir.graph import Graph
from ..primitives import PRIMITIVES
from ..primitives.debug import quiet

__all__ = ["DebugCheckError", "wrap", "reference_values", "first_nan_node"]


class DebugCheckError(AssertionError):
    """A compiled call's result disagrees with the interpreter's (``tj.config.debug``).

    An AssertionError: it reports a broken internal invariant (the backend and the reference
    must agree), like the IR verifier's errors, not a mistake in the user's program."""


def wrap(runner, device: str):
    """`runner` itself when no checking switch is on, else a checking runner around it."""
    from ..config import config
    differential = config.debug and hasattr(runner, "schedule")  # a compiled backend
    nans = config.debug_nans
    if not (differential or nans):
        return runner
    graph = runner.graph if hasattr(runner, "graph") else runner.args[0]
    return _Checking(runner, graph, device, differential, nans)


class _Checking:
    def __init__(self, base, graph: Graph, device: str, differential: bool, nans: bool):
        self.base, self.graph, self.device = base, graph, device
        self.differential, self.nans = differential, nans

    def __getattr__(self, name):  # schedule, llvm_ir, ... of the program checked
        return getattr(self.base, name)

    def __call__(self, args: list) -> list:
        outs = self.base(args)
        vals = None
        with quiet():  # the call printed already: the re-runs below print nothing
            if self.differential:
                vals = reference_values(self.graph, args)
                _check_outputs(self, outs, vals, args)
            if self.nans:
                bad = [i for i, o in enumerate(outs) if _has_nan(o)]
                if bad:
                    raise_first_nan(self.graph, args, vals, bad[0], self.device)
        return outs


# -- the reference, node by node ------------------------------------------------------------

def _inputs(graph: Graph, args: list) -> list[np.ndarray]:
    res = []
    for node, a in zip(graph.inputs, args, strict=True):
        a = np.asarray(a)
        res.append(a if a.dtype == node.dtype.np else a.astype(node.dtype.np))
    return res


def reference_values(graph: Graph, args: list, stop_at_nan: bool = False) -> dict:
    """``id(node) -> value`` of every input and node (a tuple for a multi-result node), by the
    interpreter. With `stop_at_nan`, stops after the first node that makes a NaN from NaN-free
    operands; ``vals["nan_node"]`` is that node."""
    from ..errors import user_error
    vals: dict = {}
    for node, a in zip(graph.inputs, _inputs(graph, args), strict=True):
        vals[id(node)] = a
    for n in graph.nodes:
        ins = [vals[id(x)] for x in n.inputs]
        try:
            out = PRIMITIVES[n.op].ref(*ins, **n.params)
        except (IndexError, ZeroDivisionError, ValueError) as e:
            msg = str(e) if str(e).startswith(n.op) else f"{n.op}: {e}"
            raise user_error(type(e), msg, n.loc) from None
        if n.type is not None:
            out = np.asarray(out)
            if out.dtype != n.dtype.np:
                out = out.astype(n.dtype.np)
        vals[id(n)] = out
        if stop_at_nan and n.op != "get" and _has_nan(out) and not any(_has_nan(x)
                                                                       for x in ins):
            vals["nan_node"] = n
            return vals
    return vals


def _has_nan(v) -> bool:
    if isinstance(v, tuple):
        return any(_has_nan(x) for x in v)
    v = np.asarray(v)
    return v.dtype.kind in "fc" and bool(np.isnan(v).any())


def first_nan_node(graph: Graph, args: list):
    """The first node of `graph` that produces a NaN from NaN-free operands, or None."""
    return reference_values(graph, args, stop_at_nan=True).get("nan_node")


def nan_message(node, where_: str = "") -> str:
    return (f"NaN produced by {node.op} ({_type_text(node)}) from NaN-free operands "
            f"(tj.config.debug_nans){where_}{where(node.loc)}")


def raise_first_nan(graph: Graph, args: list, vals, out_index: int, device: str):
    node = first_nan_node(graph, args)
    if node is not None:
        raise FloatingPointError(nan_message(node, f" in graph {graph.name} on {device}"))
    if vals is None:
        vals = reference_values(graph, args)
    ins = [n.name for n, a in zip(graph.inputs, _inputs(graph, args)) if _has_nan(a)]
    if ins:
        raise FloatingPointError(f"graph {graph.name} on {device}: output {out_index} holds "
                                 f"NaN, which comes from input(s) {', '.join(ins)} "
                                 "(tj.config.debug_nans)")
    raise FloatingPointError(f"graph {graph.name} on {device}: output {out_index} holds NaN, "
                             "but the interpreter computes none (a backend bug: run with "
                             "tj.config.debug = True to find the kernel)")


# -- tolerances -----------------------------------------------------------------------------

_MATH = {"exp", "exp2", "expm1", "log", "log2", "log10", "log1p", "sqrt", "rsqrt", "sin",
         "cos", "tan", "asin", "acos", "atan", "sinh", "cosh", "tanh", "sigmoid", "erf", "pow",
         "atan2"}
_AMPLIFY = {"exp", "exp2", "expm1", "sinh", "cosh", "pow"}  # relative error times |x|
_ADDITIVE = {"add", "sub", "select", "maximum", "minimum", "concatenate", "pad", "cumsum",
             "reduce_sum", "dot_general"}
_EXACT = {"broadcast", "transpose", "slice", "rev", "reshape", "stop_gradient", "get",
          "constant", "iota", "neg", "abs", "select", "maximum", "minimum", "concatenate", "pad",
          "gather", "scatter", "reduce_max", "reduce_min", "sign", "floor", "ceil", "trunc",
          "round", "argmax", "argmin", "argsort"}


def _absmax(v) -> float:
    v = np.asarray(v)
    if v.dtype.kind not in "fciub" or v.size == 0:
        return 0.0
    a = np.abs(v.astype(np.float64) if v.dtype.kind != "f" else v)
    a = a[np.isfinite(a)]
    return float(a.max()) if a.size else 0.0


def _length(n) -> int:
    """How many terms each element of a reduction, cumulation or product combines."""
    if n.op in ("reduce_sum", "reduce_prod"):
        shape = n.inputs[0].shape
        return max(1, int(np.prod([shape[a] for a in n.params["axes"]])))
    if n.op in ("cumsum", "cumprod"):
        return max(1, n.inputs[0].shape[n.params["axis"]] if n.inputs[0].ndim else 1)
    if n.op == "dot_general":
        ca = n.params["contract"][0]
        shape = n.inputs[0].shape
        return max(1, int(np.prod([shape[a] for a in ca])))
    return 1


def _tolerances(graph: Graph, vals: dict) -> dict:
    """``id(node) -> (R, M)``: a float result may differ by ``R * eps * (|want| + M)``."""
    tol: dict = {}
    for n in graph.inputs:
        tol[id(n)] = (0.0, 0.0)
    for n in graph.nodes:
        ins = [tol.get(id(x), (0.0, 0.0)) for x in n.inputs]
        r_in = max((r for r, _ in ins), default=0.0)
        m_in = max((m for _, m in ins), default=0.0)
        dt = n.dtype if n.type is not None else None
        f32 = dt is None or dt.np.itemsize <= 4
        if n.op in _MATH:
            own = (4 if f32 else 8) + 1.0
            if n.op in ("pow", "sigmoid", "atan2"):
                own *= 2
        elif n.op in _EXACT:
            own = 0.0
        elif n.op in ("cumprod", "reduce_prod", "cumsum", "reduce_sum", "dot_general"):
            own = float(_length(n))
        elif n.op in ("while", "cond", "custom_vjp", "scatter"):
            own = 16.0
        else:
            own = 1.0
        amp = 1.0
        if n.op in _AMPLIFY:
            amp = max(1.0, max(_absmax(vals.get(id(x), 0)) for x in n.inputs))
        r = own + amp * r_in
        m = m_in  # an absolute error carried from the operands
        if n.op in ("mul", "div"):
            m *= max([1.0] + [_absmax(vals.get(id(x), 0)) for x in n.inputs])
        if n.op in _ADDITIVE or n.op in _MATH or n.op in ("while", "cond", "custom_vjp"):
            m = max([m] + [_absmax(vals.get(id(x), 0)) for x in n.inputs])
            if n.op in ("reduce_sum", "cumsum"):
                m *= _length(n)
            elif n.op == "dot_general" and len(n.inputs) == 2:
                m = max(m, _length(n) * _absmax(vals.get(id(n.inputs[0]), 0))
                        * _absmax(vals.get(id(n.inputs[1]), 0)))
        if n.op in _MATH:
            m = max(m, 1.0)
        tol[id(n)] = (r, m)
    return tol


def compare(got, want, rm: tuple[float, float]):
    """None if `got` agrees with `want`, else ``(max error, index, got, want, tolerance)``."""
    got, want = np.asarray(got), np.asarray(want)
    if got.shape != want.shape or got.dtype != want.dtype:
        return (f"shape/dtype {got.dtype}{list(got.shape)}, expected "
                f"{want.dtype}{list(want.shape)}", None, None, None, 0.0)
    if got.size == 0:
        return None
    if want.dtype.kind not in "fc":
        bad = got != want
        if not bad.any():
            return None
        idx = np.unravel_index(int(np.argmax(bad)), got.shape)
        err = abs(int(got[idx]) - int(want[idx])) if want.dtype.kind in "iu" else 1
        return (err, idx, got[idx], want[idx], 0)
    g, w = got.astype(np.float64), want.astype(np.float64)
    gn, wn = np.isnan(g), np.isnan(w)
    bad = gn != wn
    gi, wi = np.isinf(g), np.isinf(w)
    bad |= (gi | wi) & ~(gn | wn) & (g != w)
    r, m = rm
    eps = float(np.finfo(want.dtype).eps)
    rtol = 2.0 * max(r, 2.0) * eps  # twice the estimate, at least 4 roundings
    fin = ~(gn | wn | gi | wi)
    err = np.where(fin, np.abs(g - w), 0.0)
    allowed = rtol * (np.abs(np.where(fin, w, 0.0)) + m)
    bad |= fin & (err > allowed)
    if not bad.any():
        return None
    score = np.where(bad, np.where(fin, err, np.inf), -1.0)
    idx = np.unravel_index(int(np.argmax(score)), got.shape)
    return (float(err[idx]) if fin[idx] else float("nan"), idx, got[idx], want[idx],
            float(allowed[idx]) if fin[idx] else 0.0)


# -- reporting -------------------------------------------------------------------------------

def _type_text(n) -> str:
    return str(n.type) if n.type is not None else "(" + ", ".join(map(str, n.types)) + ")"


def _node_lines(graph: Graph, nodes, indent: str = "      ") -> list[str]:
    index = {id(n): i for i, n in enumerate(graph.nodes)}
    names = {id(n): "%" + n.name for n in graph.inputs}
    out = []
    for n in sorted(dict.fromkeys(nodes), key=lambda n: index.get(id(n), -1)):
        args = ", ".join(names.get(id(x), f"%{index.get(id(x), '?')}") for x in n.inputs)
        line = f"{indent}%{index.get(id(n), '?')}: {_type_text(n)} = {n.op}({args})"
        if n.loc is not None:
            text = n.loc.source_text()
            line += f"    at {n.loc}" + (f": {text}" if text else "")
        out.append(line)
    return out


def _step_title(st) -> str:
    from ..schedule.kernel import Extern, Gemm, RowKernel
    if isinstance(st, Extern):
        return f"extern {st.node.op}"
    kind = "gemm" if isinstance(st, Gemm) else "row kernel" if isinstance(st, RowKernel) \
        else "kernel"
    return f"{kind} {st.name}"


def _step_nodes(st) -> list:
    return [st.node] if hasattr(st, "node") else list(st.nodes)


def _describe_step(graph: Graph, st) -> list[str]:
    return [f"    {_step_title(st)}, which fuses these graph nodes:"] + _node_lines(
        graph, _step_nodes(st))


def _fmt_bad(bad) -> str:
    err, idx, got, want, allowed = bad
    if idx is None:
        return f"has {err}"
    at = tuple(int(i) for i in idx)
    got, want = np.asarray(got).item(), np.asarray(want).item()
    return (f"max error {err:.6g} at index {list(at)}: got {got!r}, expected {want!r} "
            f"(tolerance {allowed:.3g})")


def _value_of(vals: dict, key: tuple):
    node, k = key
    v = vals[id(node)]
    return v[k] if k is not None else v


def _check_outputs(chk: _Checking, outs: list, vals: dict, args: list) -> None:
    graph = chk.graph
    tol = None
    for i, (o, node) in enumerate(zip(outs, graph.outputs, strict=True)):
        want = vals[id(node)]
        if tol is None:
            tol = _tolerances(graph, vals)
        bad = compare(o, want, tol.get(id(node), (0.0, 0.0)))
        if bad is None:
            continue
        lines = [f"tracejit debug check (tj.config.debug): graph {graph.name} on "
                 f"{chk.device}: output {i} ({_type_text(node)}) disagrees with the "
                 f"interpreter: {_fmt_bad(bad)}"]
        s = chk.base.schedule
        b = s.outputs[i]
        from ..schedule.kernel import step_outputs
        writers = [st for st in s.steps if b in step_outputs(st)]
        if writers:
            lines.append("  the output is written by")
            for st in writers:
                lines += _describe_step(graph, st)
        first = _first_bad_step(chk.base, graph, vals, tol, args)
        if first is not None:
            st, buf, key, why = first
            node_i = {id(n): j for j, n in enumerate(graph.nodes)}.get(id(key[0]), "?")
            lines.append(f"  the first step that disagrees when run alone on the interpreter's "
                         f"values of its inputs: {_step_title(st)}, buffer b{buf} "
                         f"(node %{node_i} {key[0].op}): {_fmt_bad(why)}")
            lines += _describe_step(graph, st)
        else:
            lines.append("  every step agrees when run alone on the interpreter's values of its "
                         "inputs: the error accumulated across steps beyond the estimate")
        raise DebugCheckError("\n".join(lines))


def _first_bad_step(prog, graph: Graph, vals: dict, tol: dict, args: list):
    """Runs each compiled step of `prog` alone on the reference values of its inputs; the first
    ``(step, buffer, (node, k), mismatch)`` whose result disagrees, or None."""
    s = prog.schedule
    env: dict = {}
    for b, key in s.node_of.items():
        try:
            v = _value_of(vals, key)
        except (KeyError, IndexError, TypeError):
            continue
        info = s.buffers[b]
        env[b] = np.ascontiguousarray(np.asarray(v).astype(info.dtype.np, copy=False)
                                      ).reshape(info.shape)
    for b, v in s.consts.items():
        env[b] = np.ascontiguousarray(v)
    from ..schedule.kernel import step_outputs
    for kind, st, fn, _par in prog.steps:
        if kind != "k":
            continue  # externs run the numpy reference itself
        outs = []
        for b in step_outputs(st):
            info = s.buffers[b]
            outs.append((b, np.zeros(info.shape, info.dtype.np)))
        ins = [env[b] for b in st.inputs]
        ptrs = [ctypes.c_void_p(a.ctypes.data) for _, a in outs]
        ptrs += [ctypes.c_void_p(a.ctypes.data) for a in ins]
        fn(*ptrs, 0, st.outer_extent)
        for b, got in outs:
            key = s.node_of.get(b)
            if key is None:
                env[b] = got  # a buffer of the schedule's own (a row kernel's spill)
                continue
            want = env.get(b)
            if want is None:
                continue
            bad = compare(got, want, tol.get(id(key[0]), (0.0, 0.0)))
            if bad is not None:
                return st, b, key, bad
    return None
