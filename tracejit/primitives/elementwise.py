"""Elementwise primitives: unary math, binary arithmetic, comparisons, select, convert, constant.

Input: operand types. Output: OpDef records. Operands of a binary/ternary primitive share one
dtype (the op library inserts ``convert``); their shapes broadcast with numpy's rules, and
derivative rules undo that broadcasting. A result is weak only when every operand is.
"""

from __future__ import annotations

import math

import numpy as np

from .. import dtypes as D
from ..ir.graph import Literal, TensorType
from .registry import OpDef, RuleError, register

__all__ = ["broadcast_shapes", "UNARY", "BINARY", "COMPARE"]


def broadcast_shapes(*shapes: tuple[int, ...]) -> tuple[int, ...]:
    """Numpy broadcasting of shapes; raises `RuleError` when they are incompatible."""
    nd = max((len(s) for s in shapes), default=0)
    out = []
    for i in range(nd):
        dims = {s[len(s) - nd + i] for s in shapes if len(s) - nd + i >= 0} - {1}
        if len(dims) > 1:
            raise RuleError("shapes " + " and ".join(str(list(s)) for s in shapes)
                            + " cannot be broadcast together")
        out.append(dims.pop() if dims else 1)
    return tuple(out)


def _same_dtype(types) -> D.DType:
    dts = {t.dtype for t in types}
    if len(dts) != 1:
        raise RuleError("operands must share one dtype, got "
                        + ", ".join(t.dtype.name for t in types), TypeError)
    return types[0].dtype


def _weak(types) -> bool:
    return all(t.weak for t in types)


_PRED = {
    "float": (lambda d: d.is_floating_point, "floating-point"),
    "numeric": (lambda d: not d.is_bool, "numeric (non-bool)"),
    "any": (lambda d: True, "any"),
    "bool": (lambda d: d.is_bool, "bool"),
}


def _elementwise_rule(kind: str, out: str = "same"):
    pred, what = _PRED[kind]

    def rule(*types: TensorType, **_):
        dt = _same_dtype(types)
        if not pred(dt):
            raise RuleError(f"expected {what} operands, got {dt.name}", TypeError)
        shape = broadcast_shapes(*(t.shape for t in types))
        if out == "bool":
            return TensorType(shape, D.bool_)
        return TensorType(shape, dt, _weak(types))
    return rule


def _f64(fn):
    """Evaluates `fn` in float64 and rounds back (for functions numpy lacks in low precision)."""
    def ref(x):
        return fn(x.astype(np.float64)).astype(x.dtype)
    return ref


_erf = np.vectorize(math.erf, otypes=[np.float64])


def _sigmoid(x):
    # exp(-x) overflowing to inf for very negative x gives the right limit, 1 / inf = 0, and
    # the formula keeps full relative accuracy on both tails (no 1 - r cancellation).
    with np.errstate(over="ignore"):
        one = x.dtype.type(1)
        return one / (one + np.exp(-x))


def _int_checked(fn, name):
    def ref(a, b):
        if a.dtype.kind in "iu" and np.any(b == 0):
            raise ZeroDivisionError(f"{name}: integer division by zero")
        return fn(a, b)
    return ref


def _pow(a, b):
    """Integer powers with a negative exponent are PyTorch's: 1 -> 1, -1 -> +-1, else 0."""
    if a.dtype.kind not in "iu" or not np.any(b < 0):
        return np.power(a, b)
    neg = b < 0
    out = np.power(a, np.where(neg, 0, b))
    odd = (np.abs(b) % 2) == 1
    special = np.where(a == 1, 1, np.where(a == -1, np.where(odd, -1, 1), 0)).astype(out.dtype)
    return np.where(neg, special, out)


def _sign(x):
    """PyTorch's sign: sign(nan) is 0."""
    s = np.sign(x)
    return np.where(np.isnan(s), 0, s).astype(x.dtype) if x.dtype.kind == "f" else s


def _round(x):
    return np.round(x) if x.dtype.kind == "f" else x.copy()


#                name         kind       numpy reference
UNARY = {
    "neg":      ("numeric", np.negative),
    "abs":      ("numeric", np.abs),
    "sign":     ("numeric", _sign),
    "exp":      ("float",   np.exp),
    "exp2":     ("float",   np.exp2),
    "expm1":    ("float",   np.expm1),
    "log":      ("float",   np.log),
    "log2":     ("float",   np.log2),
    "log10":    ("float",   np.log10),
    "log1p":    ("float",   np.log1p),
    "sqrt":     ("float",   np.sqrt),
    "rsqrt":    ("float",   lambda x: (1 / np.sqrt(x)).astype(x.dtype)),
    "sin":      ("float",   np.sin),
    "cos":      ("float",   np.cos),
    "tan":      ("float",   np.tan),
    "asin":     ("float",   np.arcsin),
    "acos":     ("float",   np.arccos),
    "atan":     ("float",   np.arctan),
    "sinh":     ("float",   np.sinh),
    "cosh":     ("float",   np.cosh),
    "tanh":     ("float",   np.tanh),
    "sigmoid":  ("float",   _sigmoid),
    "erf":      ("float",   _f64(_erf)),
    "floor":    ("numeric", lambda x: np.floor(x) if x.dtype.kind == "f" else x.copy()),
    "ceil":     ("numeric", lambda x: np.ceil(x) if x.dtype.kind == "f" else x.copy()),
    "round":    ("numeric", _round),
    "trunc":    ("numeric", lambda x: np.trunc(x) if x.dtype.kind == "f" else x.copy()),
}
NONDIFF_UNARY = {"sign", "floor", "ceil", "round", "trunc"}

BINARY = {
    "add":      ("any",     np.add),
    "sub":      ("numeric", np.subtract),
    "mul":      ("any",     np.multiply),
    "div":      ("float",   np.true_divide),
    "floordiv": ("numeric", _int_checked(np.floor_divide, "floor_divide")),
    "rem":      ("numeric", _int_checked(np.remainder, "remainder")),
    "pow":      ("numeric", _pow),
    "maximum":  ("any",     np.maximum),
    "minimum":  ("any",     np.minimum),
    "atan2":    ("float",   np.arctan2),
}
NONDIFF_BINARY = {"floordiv"}

COMPARE = {"eq": np.equal, "ne": np.not_equal, "lt": np.less, "le": np.less_equal,
           "gt": np.greater, "ge": np.greater_equal}
LOGICAL = {"logical_and": np.logical_and, "logical_or": np.logical_or,
           "logical_xor": np.logical_xor}
PREDICATE = {"isnan": np.isnan, "isinf": np.isinf}


def _quiet(fn):
    def ref(*args, **params):
        with np.errstate(all="ignore"):
            return fn(*args, **params)
    return ref


for _name, (_kind, _ref) in UNARY.items():
    register(OpDef(_name, 1, _elementwise_rule(_kind), _quiet(_ref),
                   traits={"elementwise"} | ({"nondiff"} if _name in NONDIFF_UNARY else set())))
for _name, (_kind, _ref) in BINARY.items():
    register(OpDef(_name, 2, _elementwise_rule(_kind), _quiet(_ref),
                   traits={"elementwise"} | ({"nondiff"} if _name in NONDIFF_BINARY else set())))
for _name, _ref in COMPARE.items():
    register(OpDef(_name, 2, _elementwise_rule("any", "bool"), _ref,
                   traits={"elementwise", "nondiff"}))
for _name, _ref in LOGICAL.items():
    register(OpDef(_name, 2, _elementwise_rule("bool", "bool"), _ref,
                   traits={"elementwise", "nondiff"}))
for _name, _ref in PREDICATE.items():
    register(OpDef(_name, 1, _elementwise_rule("any", "bool"), _ref,
                   traits={"elementwise", "nondiff"}))
register(OpDef("logical_not", 1, _elementwise_rule("bool", "bool"), np.logical_not,
               traits={"elementwise", "nondiff"}))


def _select_rule(c: TensorType, a: TensorType, b: TensorType):
    if not c.dtype.is_bool:
        raise RuleError(f"condition must be bool, got {c.dtype.name}", TypeError)
    dt = _same_dtype((a, b))
    return TensorType(broadcast_shapes(c.shape, a.shape, b.shape), dt, _weak((a, b)))


register(OpDef("select", 3, _select_rule, lambda c, a, b: np.where(c, a, b),
               traits={"elementwise"}, doc="select(c, a, b) = c ? a : b"))


def _convert_rule(x: TensorType, *, dtype: D.DType, weak: bool = False):
    return TensorType(x.shape, dtype, weak)


def _convert_ref(x, *, dtype, weak=False):
    with np.errstate(all="ignore"):
        return x.astype(dtype.np)


register(OpDef("convert", 1, _convert_rule, _convert_ref, traits={"elementwise"},
               doc="convert(x) {dtype}: cast with C semantics (float->int truncates)"))


register(OpDef("stop_gradient", 1, lambda x: x, lambda x: x, traits={"elementwise", "nondiff"},
               doc="stop_gradient(x) = x, with zero derivative"))


def _constant_rule(*, value, dtype: D.DType, weak: bool = False):
    shape = value.value.shape if isinstance(value, Literal) else ()
    return TensorType(shape, dtype, weak)


def _constant_ref(*, value, dtype, weak=False):
    v = value.value if isinstance(value, Literal) else value
    return np.array(v, dtype=dtype.np)


register(OpDef("constant", 0, _constant_rule, _constant_ref, traits={"nondiff"},
               doc="constant {value, dtype}: a scalar or array literal"))
