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


# ===========================================================================================
# Derivative rules (vjp / jvp)
# ===========================================================================================
# Written with graph ops (`bind`), never numpy, so a derivative is a graph that can itself be
# differentiated. Every elementwise Jacobian is diagonal (after broadcasting), so each rule is
# one "partial" per operand, ``g * dy/dx`` for any g: the vjp applies it to the cotangent, the
# jvp to each tangent and adds. Cotangents keep the broadcast shape (the transform sums them
# down). Non-smooth points follow PyTorch: abs'(0) = 0 (sign); maximum/minimum split the
# derivative equally between tied operands (torch.maximum), NaN operands take all of it;
# pow's exponent derivative is 0 where base == 0 and exponent >= 0, its base derivative 0 where
# both are 0; rem: d/da = 1, d/db = -floor(a / b). Masked branches use "safe" operands (the
# double-where trick) so a second derivative never meets log(0) or 0 * inf.


from .registry import defrules  # noqa: E402  (the rules section reads top to bottom)


def _bind(name, *xs, **params):
    from ..trace import bind  # trace.py imports this package: resolve at call time
    return bind(name, *xs, **params)


def _k(value, like):
    """A scalar constant of `like`'s dtype (strong: eager weak constants change dtype)."""
    return _bind("constant", value=value, dtype=like.dtype)


def _add(a, b):
    return _bind("add", a, b)


def _sub(a, b):
    return _bind("sub", a, b)


def _mul(a, b):
    return _bind("mul", a, b)


def _div(a, b):
    return _bind("div", a, b)


def _neg(a):
    return _bind("neg", a)


def _sel(c, a, b):
    return _bind("select", c, a, b)


def _zero_where(c, g):
    """`g` with zeros where `c` holds."""
    return _sel(c, _k(0, g), g)


def _sum_tangents(*ts):
    """The sum of the non-None entries (None when all are None)."""
    out = None
    for t in ts:
        if t is not None:
            out = t if out is None else _add(out, t)
    return out


_LN2, _LN10 = math.log(2.0), math.log(10.0)
_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)

#   name        g * f'(x), from g, the operand x and the result y
_UNARY_PARTIAL = {
    "neg":      lambda g, x, y: _neg(g),
    "abs":      lambda g, x, y: _mul(g, _bind("sign", x)),
    "exp":      lambda g, x, y: _mul(g, y),
    "exp2":     lambda g, x, y: _mul(g, _mul(y, _k(_LN2, y))),
    "expm1":    lambda g, x, y: _mul(g, _add(y, _k(1.0, y))),
    "log":      lambda g, x, y: _div(g, x),
    "log2":     lambda g, x, y: _div(g, _mul(x, _k(_LN2, x))),
    "log10":    lambda g, x, y: _div(g, _mul(x, _k(_LN10, x))),
    "log1p":    lambda g, x, y: _div(g, _add(x, _k(1.0, x))),
    "sqrt":     lambda g, x, y: _div(g, _mul(y, _k(2.0, y))),
    "rsqrt":    lambda g, x, y: _mul(g, _mul(_mul(y, _k(-0.5, y)), _mul(y, y))),
    "sin":      lambda g, x, y: _mul(g, _bind("cos", x)),
    "cos":      lambda g, x, y: _neg(_mul(g, _bind("sin", x))),
    "tan":      lambda g, x, y: _mul(g, _add(_k(1.0, y), _mul(y, y))),
    "asin":     lambda g, x, y: _mul(g, _bind("rsqrt", _sub(_k(1.0, x), _mul(x, x)))),
    "acos":     lambda g, x, y: _neg(_mul(g, _bind("rsqrt", _sub(_k(1.0, x), _mul(x, x))))),
    "atan":     lambda g, x, y: _div(g, _add(_k(1.0, x), _mul(x, x))),
    "sinh":     lambda g, x, y: _mul(g, _bind("cosh", x)),
    "cosh":     lambda g, x, y: _mul(g, _bind("sinh", x)),
    "tanh":     lambda g, x, y: _mul(g, _sub(_k(1.0, y), _mul(y, y))),
    "sigmoid":  lambda g, x, y: _mul(g, _mul(y, _sub(_k(1.0, y), y))),
    "erf":      lambda g, x, y: _mul(g, _mul(_k(_TWO_OVER_SQRT_PI, x),
                                             _bind("exp", _neg(_mul(x, x))))),
}


def _unary_rules(partial):
    def vjp(ct, out, x):
        return (partial(ct, x, out),)

    def jvp(tangents, out, x):
        (t,) = tangents
        return None if t is None else partial(t, x, out)
    return vjp, jvp


def _extreme_partials(loses):
    """maximum (`loses` = lt) / minimum (gt), as torch.maximum: a tie splits g in halves; an
    operand that loses gets nothing; NaN compares false, so both operands get all of it."""
    def split(g, a, b):
        return _sel(_bind("eq", a, b), _mul(g, _k(0.5, g)), g)

    def pa(g, a, b, y):
        return _zero_where(_bind(loses, a, b), split(g, a, b))

    def pb(g, a, b, y):
        return _zero_where(_bind(loses, b, a), split(g, a, b))
    return pa, pb


def _pow_partials():
    def pa(g, a, b, y):  # b * a^(b-1); 0 where a == b == 0 (PyTorch: 0 where b == 0)
        both0 = _bind("logical_and", _bind("eq", a, _k(0.0, a)), _bind("eq", b, _k(0.0, b)))
        e = _sel(both0, _k(1.0, b), _sub(b, _k(1.0, b)))
        return _zero_where(both0, _mul(g, _mul(b, _bind("pow", a, e))))

    def pb(g, a, b, y):  # a^b * log(a); 0 where a == 0 and b >= 0 (PyTorch)
        m = _bind("logical_and", _bind("eq", a, _k(0.0, a)), _bind("ge", b, _k(0.0, b)))
        safe_a = _sel(m, _k(1.0, a), a)
        return _zero_where(m, _mul(g, _mul(y, _bind("log", safe_a))))
    return pa, pb


def _atan2_partials():
    def r2(a, b):
        return _add(_mul(a, a), _mul(b, b))

    def pa(g, a, b, y):
        return _div(_mul(g, b), r2(a, b))

    def pb(g, a, b, y):
        return _neg(_div(_mul(g, a), r2(a, b)))
    return pa, pb


#   name        (g * dy/da, g * dy/db), from g, the operands a, b and the result y
_BINARY_PARTIALS = {
    "add":      (lambda g, a, b, y: g, lambda g, a, b, y: g),
    "sub":      (lambda g, a, b, y: g, lambda g, a, b, y: _neg(g)),
    "mul":      (lambda g, a, b, y: _mul(g, b), lambda g, a, b, y: _mul(g, a)),
    "div":      (lambda g, a, b, y: _div(g, b), lambda g, a, b, y: _neg(_div(_mul(g, y), b))),
    "rem":      (lambda g, a, b, y: g,
                 lambda g, a, b, y: _neg(_mul(g, _bind("floordiv", a, b)))),
    "pow":      _pow_partials(),
    "maximum":  _extreme_partials("lt"),
    "minimum":  _extreme_partials("gt"),
    "atan2":    _atan2_partials(),
}


def _binary_rules(pa, pb):
    def vjp(ct, out, a, b):
        return pa(ct, a, b, out), pb(ct, a, b, out)

    def jvp(tangents, out, a, b):
        ta, tb = tangents
        return _sum_tangents(None if ta is None else pa(ta, a, b, out),
                             None if tb is None else pb(tb, a, b, out))
    return vjp, jvp


def _select_vjp(ct, out, c, a, b):
    zero = _k(0, ct)
    return None, _sel(c, ct, zero), _sel(c, zero, ct)


def _select_jvp(tangents, out, c, a, b):
    _, ta, tb = tangents
    if ta is None and tb is None:
        return None
    zero = _k(0, out)
    return _sel(c, zero if ta is None else ta, zero if tb is None else tb)


def _cast(x, dtype):
    return x if x.dtype == dtype else _bind("convert", x, dtype=dtype, weak=False)


def _convert_vjp(ct, out, x, *, dtype, weak=False):
    """A cast back to the operand's dtype; casts from or to integers have no derivative."""
    if not (x.dtype.is_floating_point and dtype.is_floating_point):
        return (None,)
    return (_cast(ct, x.dtype),)


def _convert_jvp(tangents, out, x, *, dtype, weak=False):
    (t,) = tangents
    if t is None or not (x.dtype.is_floating_point and dtype.is_floating_point):
        return None
    return _cast(t, dtype)


for _name, _partial in _UNARY_PARTIAL.items():
    _v, _j = _unary_rules(_partial)
    defrules(_name, vjp=_v, jvp=_j)
for _name, (_pa, _pb) in _BINARY_PARTIALS.items():
    _v, _j = _binary_rules(_pa, _pb)
    defrules(_name, vjp=_v, jvp=_j)
defrules("select", vjp=_select_vjp, jvp=_select_jvp)
defrules("convert", vjp=_convert_vjp, jvp=_convert_jvp)
