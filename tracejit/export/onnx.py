"""ONNX export: a `Graph` as an ``onnx.ModelProto`` (opset 18, IR version 8).

Input: a `tj.Graph` (from `tj.make_graph`, a transform, or a loader). Output: an
``onnx.ModelProto`` built with the ``onnx`` package's helper API (an optional dependency:
``pip install tracejit[onnx]``). Graph inputs keep the graph's input names; outputs are named
``out0``, ``out1``, ... Every primitive with an ONNX equivalent is mapped so that the model
computes what tracejit's numpy reference (the primitive's ``ref``) computes; where ONNX's
semantics differ (integer floor division and remainder, NaN in max/min/argmax/sort, ``sign(nan)``,
duplicate indices of scatter-set, stable descending sorts, ...) extra nodes make them agree.
Constants become initializers; ``cond`` becomes ``If`` and ``while`` becomes ``Loop`` with
sub-graphs that read the outer values by name; ``custom_vjp`` exports its forward graph.
A primitive without an equivalent (``random_bits``, ``debug_check``, the sparse products) raises
`NotImplementedError` naming the first such node and its source line, before anything is
built. ``tj.debug.print`` calls (``debug_print``) are left out with a warning: ONNX cannot
print. Details: docs/export.md, "ONNX".
"""

from __future__ import annotations

import math
import warnings
from typing import Callable

import numpy as np

from ..dtypes import DType
from ..ir.graph import Graph, Node

__all__ = ["graph_to_onnx", "OPSET", "IR_VERSION", "SUPPORTED", "UNSUPPORTED"]

OPSET = 18
IR_VERSION = 8  # the IR version that goes with opset 18
INT64_MIN = -(1 << 63)

# Primitives that have no ONNX equivalent, with the reason the error gives.
UNSUPPORTED = {
    "random_bits": "Philox-4x32-10 needs 32x32->64-bit multiplies and bit operations on "
                   "unsigned words; pass random numbers in as an input instead",
    "debug_check": "ONNX has no assertion operator; export a version of the function without "
                   "its tj.debug.check calls",
    **{op: "ONNX has no sparse matrix operators; export a version of the function that calls "
           "to_dense() on its sparse tensors" for op in ("spmm_csr", "sddmm_csr")},
}


def _onnx():
    try:
        import onnx
        from onnx import helper, numpy_helper
    except ImportError as e:  # pragma: no cover - exercised only without the extra
        raise ImportError("ONNX export needs the 'onnx' package: pip install tracejit[onnx] "
                          f"(or pip install onnx) ({e})") from None
    return onnx, helper, numpy_helper


def graph_to_onnx(graph: Graph, name: str | None = None):
    """The ONNX model (opset 18) of `graph`: inputs named like the graph's, outputs ``out0``...

    Raises `NotImplementedError` naming the first primitive without an ONNX equivalent and its
    source line, and `ImportError` (saying ``pip install tracejit[onnx]``) without ``onnx``.
    """
    bad = _first_unsupported(graph)
    if bad is not None:
        n = bad
        where = f" at {n.loc}" if n.loc is not None else ""
        why = UNSUPPORTED.get(n.op, "no ONNX mapping is defined for it")
        raise NotImplementedError(f"ONNX export: primitive {n.op!r}{where} has no ONNX "
                                  f"equivalent ({why})")
    prints = _prints(graph)
    if prints:
        loc = f" (the first at {prints[0].loc})" if prints[0].loc is not None else ""
        warnings.warn(f"ONNX export: {len(prints)} tj.debug.print call(s){loc} left out: ONNX "
                      "has no printing operator", stacklevel=3)
    onnx, helper, _ = _onnx()
    ex = _Exporter(graph)
    top = _Scope(ex, None)
    ins = []
    for n in graph.inputs:
        ins.append(helper.make_tensor_value_info(n.name, _onnx_dtype(n.dtype), list(n.shape)))
    outs = top.emit(graph, [n.name for n in graph.inputs])
    out_infos = []
    for i, (o, nm) in enumerate(zip(graph.outputs, outs)):
        final = ex.reserve(f"out{i}")
        top.add("Identity", [nm], [final])
        out_infos.append(helper.make_tensor_value_info(final, _onnx_dtype(o.dtype),
                                                       list(o.shape)))
    g = helper.make_graph(top.nodes, name or graph.name, ins, out_infos,
                          initializer=ex.initializers)
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="tracejit", ir_version=IR_VERSION)
    model.doc_string = f"tracejit graph {graph.name!r}"
    return model


# -- what can be exported ------------------------------------------------------------------------

def _subgraphs(n: Node) -> list[Graph]:
    if n.op == "cond":
        return list(n.params["branches"])
    if n.op == "while":
        return [n.params["cond"], n.params["body"]]
    if n.op == "custom_vjp":
        return [n.params["fwd"]]  # exported as its forward computation
    return []


def _prints(graph: Graph) -> list[Node]:
    """The ``debug_print`` nodes of `graph` and its sub-graphs, in order."""
    out = []
    for n in graph.nodes:
        if n.op == "debug_print":
            out.append(n)
        for sub in _subgraphs(n):
            out += _prints(sub)
    return out


def _first_unsupported(graph: Graph) -> Node | None:
    for n in graph.nodes:
        if n.op in UNSUPPORTED or n.op not in _HANDLERS:
            return n
        for sub in _subgraphs(n):
            bad = _first_unsupported(sub)
            if bad is not None:
                return bad
    return None


# -- dtypes --------------------------------------------------------------------------------------

def _onnx_dtype(dt: DType) -> int:
    from onnx import TensorProto as T
    return {"bool": T.BOOL, "uint8": T.UINT8, "int8": T.INT8, "int16": T.INT16,
            "int32": T.INT32, "int64": T.INT64, "float16": T.FLOAT16, "float32": T.FLOAT,
            "float64": T.DOUBLE}[dt.name]


# -- building ------------------------------------------------------------------------------------

class _Exporter:
    """Model-wide state: unique value names and the initializers (shared by all sub-graphs,
    which read them from the outer scope)."""

    def __init__(self, graph: Graph):
        self.used: set[str] = set()
        self.counter = 0
        self.initializers: list = []
        self.consts: dict[tuple, str] = {}
        self._reserve_inputs(graph)

    def _reserve_inputs(self, graph: Graph):
        for n in graph.inputs:
            if n.name in self.used:
                raise ValueError(f"ONNX export: two graph inputs are named {n.name!r}")
            self.used.add(n.name)

    def reserve(self, want: str) -> str:
        name, k = want, 0
        while name in self.used:
            k += 1
            name = f"{want}_{k}"
        self.used.add(name)
        return name

    def fresh(self, hint: str = "t") -> str:
        while True:
            self.counter += 1
            name = f"{hint}{self.counter}"
            if name not in self.used:
                self.used.add(name)
                return name

    def const(self, value: np.ndarray) -> str:
        _, _, numpy_helper = _onnx()
        v = np.array(value, order="C")  # (ascontiguousarray would make 0-d arrays 1-d)
        key = (v.dtype.str, v.shape, v.tobytes())
        if key not in self.consts:
            name = self.fresh("c")
            self.initializers.append(numpy_helper.from_array(v, name))
            self.consts[key] = name
        return self.consts[key]


class _Scope:
    """One ONNX graph under construction (the model's, or a branch or loop body)."""

    def __init__(self, ex: _Exporter, loc):
        self.ex = ex
        self.nodes: list = []
        self.loc = loc  # the source location of the tracejit node being exported

    # emitting
    def add(self, op_type: str, inputs: list[str], outputs: list[str], **attrs):
        _, helper, _ = _onnx()
        node = helper.make_node(op_type, inputs, outputs, name=self.ex.fresh(op_type + "_"),
                                **attrs)
        if self.loc is not None:
            node.doc_string = str(self.loc)
        self.nodes.append(node)

    def op(self, op_type: str, *inputs: str, n_out: int = 1, **attrs):
        outs = [self.ex.fresh() for _ in range(n_out)]
        self.add(op_type, list(inputs), outs, **attrs)
        return outs[0] if n_out == 1 else outs

    def const(self, value, dtype=None) -> str:
        return self.ex.const(np.asarray(value, dtype=dtype))

    def scalar(self, value, dt: DType) -> str:
        return self.const(np.array(value, dtype=dt.np))

    def ints(self, values) -> str:
        return self.const(np.asarray(list(values), dtype=np.int64).reshape(-1))

    def cast(self, x: str, dt: DType) -> str:
        return self.op("Cast", x, to=_onnx_dtype(dt))

    # graphs
    def emit(self, graph: Graph, input_names: list[str]) -> list[str]:
        """Emits `graph`'s nodes into this scope with its inputs bound to `input_names`;
        returns the names of its outputs."""
        env: dict[int, object] = {id(n): nm for n, nm in zip(graph.inputs, input_names)}
        saved = self.loc
        # only what the outputs need: effects (prints; branches that print) are left out
        nodes = Graph(graph.inputs, graph.outputs).nodes if graph.effects else graph.nodes
        for n in nodes:
            self.loc = n.loc
            if n.type is not None and 0 in n.type.shape and n.op != "get":
                # an empty result is a constant (and runtimes' shape inference can misjudge
                # zero-size dimensions, e.g. onnxruntime's Expand of [3,1] to [3,0])
                env[id(n)] = self.const(np.zeros(n.shape, n.dtype.np))
                continue
            ins = [env[id(i)] for i in n.inputs]
            env[id(n)] = _HANDLERS[n.op](self, n, ins)
        self.loc = saved
        return [env[id(o)] for o in graph.outputs]

    def subgraph(self, graph: Graph, input_names: list[str], formal_inputs: list,
                 extra_outputs: Callable | None = None, gname: str = "sub"):
        """An ONNX GraphProto for `graph` with its inputs bound to `input_names` (outer-scope
        names or names in `formal_inputs`); `extra_outputs(scope, outs)` may prepend outputs
        (the loop condition)."""
        _, helper, _ = _onnx()
        sub = _Scope(self.ex, self.loc)
        outs = sub.emit(graph, input_names)
        pairs = [(nm, o.type) for nm, o in zip(outs, graph.outputs)]
        if extra_outputs is not None:
            pairs = extra_outputs(sub, outs) + pairs
        infos = []
        for nm, t in pairs:
            final = self.ex.fresh("o")
            sub.add("Identity", [nm], [final])
            infos.append(helper.make_tensor_value_info(final, _onnx_dtype(t.dtype),
                                                       list(t.shape)))
        return helper.make_graph(sub.nodes, self.ex.fresh(gname), formal_inputs, infos)


def _dt(n: Node, i: int = 0) -> DType:
    return n.inputs[i].dtype


def _isfloat(dt: DType) -> bool:
    return dt.is_floating_point


# -- elementwise ---------------------------------------------------------------------------------

_DIRECT_UNARY = {"exp": "Exp", "log": "Log", "sqrt": "Sqrt", "sin": "Sin", "cos": "Cos",
                 "tan": "Tan", "asin": "Asin", "acos": "Acos", "atan": "Atan", "sinh": "Sinh",
                 "cosh": "Cosh", "tanh": "Tanh", "erf": "Erf"}


def _direct_unary(onnx_op):
    def h(s: _Scope, n: Node, ins):
        return s.op(onnx_op, ins[0])
    return h


def _int_identity(onnx_op):
    """floor/ceil/round: identity on integers."""
    def h(s: _Scope, n: Node, ins):
        if not _isfloat(_dt(n)):
            return s.op("Identity", ins[0])
        return s.op(onnx_op, ins[0])
    return h


def _neg(s, n, ins):
    if _dt(n).kind == "u":  # wraps, as numpy's
        return s.op("Sub", s.scalar(0, _dt(n)), ins[0])
    return s.op("Neg", ins[0])


def _abs(s, n, ins):
    return s.op("Identity", ins[0]) if _dt(n).kind == "u" else s.op("Abs", ins[0])


def _sign(s, n, ins):
    dt = _dt(n)
    y = s.op("Sign", ins[0])
    if _isfloat(dt):  # sign(nan) = 0 (PyTorch)
        y = s.op("Where", s.op("IsNaN", ins[0]), s.scalar(0, dt), y)
    return y


def _by_const(fn_op, k):
    """x -> fn(x) * k  (log2, log10)."""
    def h(s, n, ins):
        return s.op("Mul", s.op(fn_op, ins[0]), s.scalar(k, _dt(n)))
    return h


def _exp2(s, n, ins):
    return s.op("Pow", s.scalar(2, _dt(n)), ins[0])


def _expm1(s, n, ins):
    """Kahan's accurate expm1: u = exp(x); u == 1 -> x; u - 1 == -1 -> -1; u == inf -> inf;
    else (u - 1) * x / log(u)."""
    dt, x = _dt(n), ins[0]
    one = s.scalar(1, dt)
    u = s.op("Exp", x)
    um1 = s.op("Sub", u, one)
    r = s.op("Div", s.op("Mul", um1, x), s.op("Log", u))
    r = s.op("Where", s.op("Equal", um1, s.scalar(-1, dt)), s.scalar(-1, dt), r)
    r = s.op("Where", _isinf(s, dt, u), u, r)
    return s.op("Where", s.op("Equal", u, one), x, r)


def _log1p(s, n, ins):
    """Accurate log1p: u = 1 + x; u == 1 -> x; u == inf -> inf; else log(u) * x / (u - 1)."""
    dt, x = _dt(n), ins[0]
    one = s.scalar(1, dt)
    u = s.op("Add", x, one)
    r = s.op("Div", s.op("Mul", s.op("Log", u), x), s.op("Sub", u, one))
    r = s.op("Where", s.op("Equal", u, s.scalar(np.inf, dt)), u, r)
    r = s.op("Where", s.op("Equal", u, s.scalar(0, dt)), s.op("Log", u), r)  # x = -1: -inf
    return s.op("Where", s.op("Equal", u, one), x, r)


def _sigmoid(s, n, ins):
    """1 / (1 + exp(-x)), tracejit's formula: full relative accuracy on both tails (ONNX
    Sigmoid in onnxruntime is accurate only in absolute terms far below zero)."""
    one = s.scalar(1, _dt(n))
    return s.op("Div", one, s.op("Add", one, s.op("Exp", s.op("Neg", ins[0]))))


def _rsqrt(s, n, ins):
    return s.op("Reciprocal", s.op("Sqrt", ins[0]))


def _trunc(s, n, ins):
    if not _isfloat(_dt(n)):
        return s.op("Identity", ins[0])
    x = ins[0]
    return s.op("Where", s.op("Less", x, s.scalar(0, _dt(n))), s.op("Ceil", x), s.op("Floor", x))


def _arith(onnx_op, bool_op=None):
    def h(s, n, ins):
        if _dt(n).is_bool:
            return s.op(bool_op, *ins)
        return s.op(onnx_op, *ins)
    return h


def _ordered(s, dt, x):
    """`x` in a dtype the ordering comparisons accept (bool -> int32)."""
    return s.cast(x, _int32()) if dt.is_bool else x


def _int32():
    from .. import dtypes as D
    return D.int32


def _float32():
    from .. import dtypes as D
    return D.float32


def _isinf(s, dt, x):
    if dt.itemsize == 2:  # opset 18's IsInf has no float16
        x = s.cast(x, _float32())
    return s.op("IsInf", x)


def _select(s, n, ins):
    c, a, b = ins
    if n.dtype.is_bool:  # onnxruntime has no bool Where: (c and a) or (not c and b)
        return s.op("Or", s.op("And", c, a), s.op("And", s.op("Not", c), b))
    return s.op("Where", c, a, b)


def _float_mod(s, dt, a, b):
    """numpy's remainder and floor_divide of floats (npy_divmod), from fmod."""
    zero, one = s.scalar(0, dt), s.scalar(1, dt)
    mod = s.op("Mod", a, b, fmod=1)
    div = s.op("Div", s.op("Sub", a, mod), b)
    fix = s.op("And", s.op("Not", s.op("Equal", mod, zero)),
               s.op("Xor", s.op("Less", b, zero), s.op("Less", mod, zero)))
    mod_f = s.op("Where", fix, s.op("Add", mod, b), mod)
    # mod == 0 -> copysign(0, b)
    zero_b = s.op("Mul", zero, s.op("Where", s.op("Less", b, zero), s.scalar(-1, dt), one))
    mod_f = s.op("Where", s.op("Equal", mod, zero), zero_b, mod_f)
    div_f = s.op("Where", fix, s.op("Sub", div, one), div)
    fl = s.op("Floor", div_f)
    fl = s.op("Where", s.op("Greater", s.op("Sub", div_f, fl), s.scalar(0.5, dt)),
              s.op("Add", fl, one), fl)
    q = s.op("Div", a, b)
    # div == 0 -> copysign(0, a / b)
    sgn0 = s.op("Mul", zero, s.op("Where", s.op("Less", q, zero), s.scalar(-1, dt), one))
    fl = s.op("Where", s.op("Equal", div_f, zero), sgn0, fl)
    # b == 0: floordiv = a / b, remainder = fmod(a, b) (nan)
    bz = s.op("Equal", b, zero)
    return s.op("Where", bz, mod, mod_f), s.op("Where", bz, q, fl)


def _floordiv(s, n, ins):
    dt, (a, b) = _dt(n), ins
    if _isfloat(dt):
        return _float_mod(s, dt, a, b)[1]
    # integers: ONNX Div truncates toward zero; step down by one where the C remainder is
    # nonzero and its sign differs from the divisor's (no intermediate overflows)
    zero = s.scalar(0, dt)
    q = s.op("Div", a, b)
    r = s.op("Mod", a, b, fmod=1)
    fix = s.op("And", s.op("Not", s.op("Equal", r, zero)),
               s.op("Xor", s.op("Less", r, zero), s.op("Less", b, zero)))
    return s.op("Sub", q, s.cast(fix, dt))


def _rem(s, n, ins):
    dt, (a, b) = _dt(n), ins
    if _isfloat(dt):
        return _float_mod(s, dt, a, b)[0]
    return s.op("Mod", a, b, fmod=0)  # integers: the sign of the divisor, as numpy


def _pow(s, n, ins):
    dt, (a, b) = _dt(n), ins
    if _isfloat(dt):
        return s.op("Pow", a, b)
    # integers; a negative exponent gives PyTorch's 1 -> 1, -1 -> +-1, else 0
    zero, one = s.scalar(0, dt), s.scalar(1, dt)
    neg = s.op("Less", b, zero)
    out = s.op("Pow", a, s.op("Where", neg, zero, b))
    odd = s.op("Not", s.op("Equal", s.op("Mod", b, s.scalar(2, dt), fmod=0), zero))
    minus = s.op("Where", odd, s.scalar(-1, dt), one)
    special = s.op("Where", s.op("Equal", a, one), one,
                   s.op("Where", s.op("Equal", a, s.scalar(-1, dt)), minus, zero))
    return s.op("Where", neg, special, out)


def _extreme(onnx_op, bool_op):
    def h(s, n, ins):
        dt, (a, b) = _dt(n), ins
        if dt.is_bool:
            return s.op(bool_op, a, b)
        y = s.op(onnx_op, a, b)
        if _isfloat(dt):  # NaN propagates, as numpy's maximum/minimum
            nan = s.op("Or", s.op("IsNaN", a), s.op("IsNaN", b))
            y = s.op("Where", nan, s.op("Add", a, b), y)
        return y
    return h


def _signbit(s, dt, x):
    """x < 0, or x is -0.0."""
    zero = s.scalar(0, dt)
    negzero = s.op("And", s.op("Equal", x, zero),
                   s.op("Less", s.op("Div", s.scalar(1, dt), x), zero))
    return s.op("Or", s.op("Less", x, zero), negzero)


def _atan2(s, n, ins):
    """atan(y / x) moved to the right quadrant, with the zero and infinite cases of C's atan2."""
    dt, (y, x) = _dt(n), ins
    pi = s.scalar(math.pi, dt)
    base = s.op("Atan", s.op("Div", y, x))
    negx, negy = _signbit(s, dt, x), _signbit(s, dt, y)
    shift = s.op("Where", negx, s.op("Where", negy, s.op("Neg", pi), pi), s.scalar(0, dt))
    r = s.op("Where", negx, s.op("Add", base, shift), base)  # (keeps atan(-0) = -0)
    zero = s.scalar(0, dt)
    # y == 0 and x == 0: +-0 or +-pi by the signs
    both0 = s.op("And", s.op("Equal", y, zero), s.op("Equal", x, zero))
    r = s.op("Where", both0, s.op("Where", negx, s.op("Where", negy, s.op("Neg", pi), pi), y), r)
    # both infinite: +-pi/4 or +-3pi/4
    binf = s.op("And", _isinf(s, dt, y), _isinf(s, dt, x))
    q = s.op("Where", negx, s.scalar(3 * math.pi / 4, dt), s.scalar(math.pi / 4, dt))
    r = s.op("Where", binf, s.op("Where", negy, s.op("Neg", q), q), r)
    return r


def _compare(onnx_op, negate=False):
    def h(s, n, ins):
        dt = _dt(n)
        a, b = ins
        if onnx_op != "Equal":
            a, b = _ordered(s, dt, a), _ordered(s, dt, b)
        y = s.op(onnx_op, a, b)
        return s.op("Not", y) if negate else y
    return h


def _predicate(onnx_op):
    def h(s, n, ins):
        dt = _dt(n)
        if _isfloat(dt):
            return _isinf(s, dt, ins[0]) if onnx_op == "IsInf" else s.op(onnx_op, ins[0])
        return s.op("Expand", s.const(False, np.bool_), s.ints(n.shape))
    return h


def _binary(onnx_op):
    def h(s, n, ins):
        return s.op(onnx_op, *ins)
    return h


def _convert(s, n, ins):
    if n.dtype == _dt(n):
        return s.op("Identity", ins[0])
    return s.cast(ins[0], n.dtype)


def _alias(s, n, ins):
    return ins[0]


def _constant(s, n, ins):
    from ..primitives.registry import get
    return s.const(np.asarray(get("constant").ref(**n.params)))


# -- structure -----------------------------------------------------------------------------------

def _broadcast(s, n, ins):
    if tuple(n.inputs[0].shape) == tuple(n.shape):
        return s.op("Identity", ins[0])
    return s.op("Expand", ins[0], s.ints(n.shape))


def _reshape_to(s, x: str, shape) -> str:
    return s.op("Reshape", x, s.ints(shape), allowzero=1)


def _reshape(s, n, ins):
    return _reshape_to(s, ins[0], n.shape)


def _transpose(s, n, ins):
    perm = list(n.params["perm"])
    if perm == sorted(perm):
        return s.op("Identity", ins[0])
    return s.op("Transpose", ins[0], perm=perm)


def _slice(s, n, ins):
    x = n.inputs[0]
    p = n.params
    axes = [a for a in range(x.ndim)
            if not (p["start"][a] == 0 and p["stop"][a] == x.shape[a] and p["step"][a] == 1)]
    if not axes:
        return s.op("Identity", ins[0])
    return s.op("Slice", ins[0], s.ints(p["start"][a] for a in axes),
                s.ints(p["stop"][a] for a in axes), s.ints(axes),
                s.ints(p["step"][a] for a in axes))


def _rev(s, n, ins):
    x = n.inputs[0]
    axes = [a for a in n.params["axes"] if x.shape[a] > 1]
    if not axes:
        return s.op("Identity", ins[0])
    k = len(axes)
    return s.op("Slice", ins[0], s.ints([-1] * k), s.ints([INT64_MIN] * k), s.ints(axes),
                s.ints([-1] * k))


def _pad(s, n, ins):
    lo, hi = list(n.params["lo"]), list(n.params["hi"])
    if not any(lo) and not any(hi):
        return s.op("Identity", ins[0])
    dt = _dt(n)
    return s.op("Pad", ins[0], s.ints(lo + hi), s.scalar(n.params["value"], dt), mode="constant")


def _concatenate(s, n, ins):
    if len(ins) == 1:
        return s.op("Identity", ins[0])
    return s.op("Concat", *ins, axis=n.params["axis"])


_RANGE_DTYPES = {"int16", "int32", "int64", "float32", "float64"}


def _iota(s, n, ins):
    from .. import dtypes as D
    shape, axis, dt = tuple(n.params["shape"]), n.params["axis"], n.params["dtype"]
    size = shape[axis]
    rdt = dt if dt.name in _RANGE_DTYPES else D.int64
    r = s.op("Range", s.scalar(0, rdt), s.scalar(size, rdt), s.scalar(1, rdt))
    if rdt != dt:
        r = s.cast(r, dt)
    col = tuple(m if i == axis else 1 for i, m in enumerate(shape))
    if col != (size,):
        r = _reshape_to(s, r, col)
    if col != shape:
        r = s.op("Expand", r, s.ints(shape))
    return r


def _index_tensor(s, n: Node, idx_nodes, idx_names):
    """The indices i0..ik broadcast together and stacked on a last axis: int64 [*B, k]."""
    from .. import dtypes as D
    from ..primitives.elementwise import broadcast_shapes
    bshape = broadcast_shapes(*(i.shape for i in idx_nodes))
    cols = []
    for node, nm in zip(idx_nodes, idx_names):
        if node.dtype != D.int64:
            nm = s.cast(nm, D.int64)
        if tuple(node.shape) != bshape:
            nm = s.op("Expand", nm, s.ints(bshape))
        cols.append(s.op("Unsqueeze", nm, s.ints([-1])))
    stacked = cols[0] if len(cols) == 1 else s.op("Concat", *cols, axis=-1)
    return stacked, bshape


def _gather(s, n, ins):
    x, idx = ins[0], ins[1:]
    if not idx:
        return s.op("Identity", x)
    if len(idx) == 1:
        from .. import dtypes as D
        i = idx[0] if n.inputs[1].dtype == D.int64 else s.cast(idx[0], D.int64)
        return s.op("Gather", x, i, axis=0)
    stacked, _ = _index_tensor(s, n, n.inputs[1:], idx)
    return s.op("GatherND", x, stacked)


def _scatter(s, n, ins):
    from .. import dtypes as D
    x, u, idx = ins[0], ins[1], ins[2:]
    mode, dt = n.params["mode"], _dt(n)
    if not idx:  # the whole operand
        if mode == "set":
            return s.op("Identity", u)
        return s.op("Or" if dt.is_bool else "Add", x, u)
    stacked, bshape = _index_tensor(s, n, n.inputs[2:], idx)
    if mode == "add":
        return s.op("ScatterND", x, stacked, u, reduction="add")
    nb = math.prod(bshape)
    if nb > 1:
        # ONNX leaves duplicate indices of ScatterND undefined; tracejit keeps the last write.
        # Every update takes the value of the last update to its position, so the order of
        # the (now equal) writes no longer matters.
        k = len(idx)
        x_shape = n.inputs[0].shape
        ids = _reshape_to(s, s.op("Range", s.scalar(0, D.int64), s.scalar(nb, D.int64),
                                  s.scalar(1, D.int64)), bshape)
        slots = s.op("Expand", s.scalar(-1, D.int64), s.ints(x_shape[:k]))
        winner = s.op("ScatterND", slots, stacked, ids, reduction="max")
        last = s.op("GatherND", winner, stacked)
        rest = tuple(n.inputs[1].shape[len(bshape):])
        u_flat = _reshape_to(s, u, (nb,) + rest)
        u = s.op("Gather", u_flat, last, axis=0)
    return s.op("ScatterND", x, stacked, u)


# -- reductions, scans, sorting, contraction -----------------------------------------------------

def _reduce(onnx_op, bool_op):
    def h(s, n, ins):
        axes, dt, x = list(n.params["axes"]), _dt(n), ins[0]
        if not axes:
            return s.op("Identity", x)
        if dt.is_bool:  # sum = any, prod = all
            y = s.op(bool_op, s.cast(x, _int32()), s.ints(axes), keepdims=0)
            return s.cast(y, dt)
        y = s.op(onnx_op, x, s.ints(axes), keepdims=0)
        if onnx_op in ("ReduceMax", "ReduceMin") and _isfloat(dt):
            # numpy's max/min propagate NaN
            has = s.op("ReduceMax", s.cast(s.op("IsNaN", x), dt), s.ints(axes), keepdims=0)
            y = s.op("Where", s.op("Greater", has, s.scalar(0, dt)), s.scalar(np.nan, dt), y)
        return y
    return h


def _arg(onnx_op):
    def h(s, n, ins):
        axis, dt = n.params["axis"], _dt(n)
        x = _ordered(s, dt, ins[0])
        y = s.op(onnx_op, x, axis=axis, keepdims=0, select_last_index=0)
        if _isfloat(dt):  # NaN counts as the extreme: the first NaN wins
            isn = s.cast(s.op("IsNaN", ins[0]), _int32())
            first = s.op("ArgMax", isn, axis=axis, keepdims=0, select_last_index=0)
            has = s.op("ReduceMax", isn, s.ints([axis]), keepdims=0)
            y = s.op("Where", s.op("Greater", has, s.scalar(0, _int32())), first, y)
        return y
    return h


def _cumsum(s, n, ins):
    from .. import dtypes as D
    dt, x = _dt(n), ins[0]
    rev = int(bool(n.params.get("reverse", False)))
    ax = s.const(np.array(n.params["axis"], dtype=np.int64))
    if dt.is_bool:  # an or-scan
        y = s.op("CumSum", s.cast(x, D.int32), ax, reverse=rev)
        return s.cast(y, dt)
    return s.op("CumSum", x, ax, reverse=rev)


def _cumprod(s, n, ins):
    """ONNX has no CumProd: y[..., i] = prod_j (j <= i ? x[..., j] : 1) over a triangular mask
    (j >= i when reversed), with the scanned axis moved last; O(n^2) memory along the axis."""
    dt, x = _dt(n), ins[0]
    axis, rev = n.params["axis"], bool(n.params.get("reverse", False))
    nd, size = n.inputs[0].ndim, n.inputs[0].shape[axis]
    work = dt
    if dt.is_bool:
        work = _int32()
        x = s.cast(x, work)
    perm = [i for i in range(nd) if i != axis] + [axis]
    moved = perm != list(range(nd))
    if moved:
        x = s.op("Transpose", x, perm=perm)
    i, j = np.arange(size)[:, None], np.arange(size)[None, :]
    tri = s.const((j >= i) if rev else (j <= i), np.bool_)
    u = s.op("Unsqueeze", x, s.ints([-2]))
    w = s.op("Where", tri, u, s.scalar(1, work))
    y = s.op("ReduceProd", w, s.ints([-1]), keepdims=0)
    if moved:
        inv = [0] * nd
        for k, p in enumerate(perm):
            inv[p] = k
        y = s.op("Transpose", y, perm=inv)
    if work != dt:
        y = s.cast(y, dt)
    return y


def _argsort(s, n, ins):
    """TopK with k = the axis length is stable (ties keep the lower index first, both ways).
    Floats sort twice so NaN sorts as the largest value: the values with NaN replaced, then
    (stably) by isnan."""
    from .. import dtypes as D
    axis, desc, dt = n.params["axis"], int(bool(n.params.get("descending", False))), _dt(n)
    size = n.inputs[0].shape[axis]
    k = s.ints([size])
    x = _ordered(s, dt, ins[0])
    if not _isfloat(dt):
        return s.op("TopK", x, k, axis=axis, largest=desc, sorted=1, n_out=2)[1]
    isn = s.op("IsNaN", x)
    filled = s.op("Where", isn, s.scalar(0, dt), x)
    p1 = s.op("TopK", filled, k, axis=axis, largest=desc, sorted=1, n_out=2)[1]
    key = s.op("GatherElements", s.cast(isn, D.int32), p1, axis=axis)
    p2 = s.op("TopK", key, k, axis=axis, largest=desc, sorted=1, n_out=2)[1]
    return s.op("GatherElements", p1, p2, axis=axis)


def _dot_general(s, n, ins):
    a, b = n.inputs
    (ca, cb), (ba, bb) = n.params["contract"], n.params["batch"]
    fa = [i for i in range(a.ndim) if i not in ca and i not in ba]
    fb = [i for i in range(b.ndim) if i not in cb and i not in bb]
    nb = math.prod(a.shape[i] for i in ba)
    m = math.prod(a.shape[i] for i in fa)
    k = math.prod(a.shape[i] for i in ca)
    nn = math.prod(b.shape[i] for i in fb)

    def prep(x, node, perm, shape3):
        if list(perm) != list(range(node.ndim)):
            x = s.op("Transpose", x, perm=list(perm))
        return _reshape_to(s, x, shape3)

    at = prep(ins[0], a, [*ba, *fa, *ca], (nb, m, k))
    bt = prep(ins[1], b, [*bb, *cb, *fb], (nb, k, nn))
    return _reshape_to(s, s.op("MatMul", at, bt), n.shape)


# -- control flow --------------------------------------------------------------------------------

def _value_info(name: str, t):
    _, helper, _ = _onnx()
    return helper.make_tensor_value_info(name, _onnx_dtype(t.dtype), list(t.shape))


def _cond(s, n, ins):
    pred, xs = ins[0], ins[1:]
    then_g, else_g = n.params["branches"]
    gt = s.subgraph(then_g, list(xs), [], gname="then")
    ge = s.subgraph(else_g, list(xs), [], gname="else")
    outs = s.op("If", pred, n_out=len(n.types), then_branch=gt, else_branch=ge)
    return [outs] if len(n.types) == 1 else list(outs)


def _while(s, n, ins):
    """``while`` as ``Loop``: the condition is evaluated once before the loop and again at the
    end of every body run (ONNX checks the condition carried into each iteration)."""
    from .. import dtypes as D
    from ..ir.graph import TensorType
    cond_g, body_g = n.params["cond"], n.params["body"]
    k = len(body_g.outputs)
    carry, consts = list(ins[:k]), list(ins[k:])
    first = s.emit(cond_g, carry + consts)[0]
    it, c_in = s.ex.fresh("iter"), s.ex.fresh("cond_in")
    formal = [_value_info(it, TensorType((), D.int64)), _value_info(c_in, TensorType((), D.bool_))]
    names = []
    for t in n.types:
        nm = s.ex.fresh("carry")
        names.append(nm)
        formal.append(_value_info(nm, t))

    def again(sub: _Scope, outs):
        c = sub.emit(cond_g, list(outs) + consts)[0]
        return [(c, TensorType((), D.bool_))]

    body = s.subgraph(body_g, names + consts, formal, extra_outputs=again, gname="body")
    outs = s.op("Loop", "", first, *carry, n_out=k, body=body)
    return [outs] if k == 1 else list(outs)


def _get(s, n, ins):
    return ins[0][n.params["index"]]


def _custom_vjp(s, n, ins):
    p = n.params
    return s.emit(p["fwd"], list(ins[:p["n_args"] + p["n_fwd_caps"]]))


def _left_out(s, n, ins):
    """``debug_print``: not exported (`emit` never reaches it; `graph_to_onnx` warns)."""
    return None


# -- the table -----------------------------------------------------------------------------------

_LN2, _LN10 = math.log(2.0), math.log(10.0)

_HANDLERS: dict[str, Callable] = {
    **{k: _direct_unary(v) for k, v in _DIRECT_UNARY.items()},
    "neg": _neg, "abs": _abs, "sign": _sign,
    "exp2": _exp2, "expm1": _expm1, "log1p": _log1p, "rsqrt": _rsqrt, "sigmoid": _sigmoid,
    "log2": _by_const("Log", 1 / _LN2), "log10": _by_const("Log", 1 / _LN10),
    "floor": _int_identity("Floor"), "ceil": _int_identity("Ceil"),
    "round": _int_identity("Round"), "trunc": _trunc,
    "add": _arith("Add", "Or"), "sub": _arith("Sub"), "mul": _arith("Mul", "And"),
    "div": _arith("Div"), "floordiv": _floordiv, "rem": _rem, "pow": _pow,
    "maximum": _extreme("Max", "Or"), "minimum": _extreme("Min", "And"), "atan2": _atan2,
    "eq": _compare("Equal"), "ne": _compare("Equal", negate=True), "lt": _compare("Less"),
    "le": _compare("LessOrEqual"), "gt": _compare("Greater"),
    "ge": _compare("GreaterOrEqual"),
    "logical_and": _binary("And"), "logical_or": _binary("Or"), "logical_xor": _binary("Xor"),
    "logical_not": lambda s, n, ins: s.op("Not", ins[0]),
    "isnan": _predicate("IsNaN"), "isinf": _predicate("IsInf"),
    "select": _select,
    "convert": _convert, "stop_gradient": _alias, "constant": _constant,
    "broadcast": _broadcast, "reshape": _reshape, "transpose": _transpose, "slice": _slice,
    "rev": _rev, "pad": _pad, "concatenate": _concatenate, "iota": _iota,
    "gather": _gather, "scatter": _scatter,
    "reduce_sum": _reduce("ReduceSum", "ReduceMax"),
    "reduce_prod": _reduce("ReduceProd", "ReduceMin"),
    "reduce_max": _reduce("ReduceMax", "ReduceMax"),
    "reduce_min": _reduce("ReduceMin", "ReduceMin"),
    "argmax": _arg("ArgMax"), "argmin": _arg("ArgMin"),
    "cumsum": _cumsum, "cumprod": _cumprod, "argsort": _argsort, "dot_general": _dot_general,
    "cond": _cond, "while": _while, "get": _get, "custom_vjp": _custom_vjp,
    "debug_print": _left_out,
}

SUPPORTED = frozenset(_HANDLERS)
