"""Elementwise ops of SPEC §3: arithmetic, comparison, logic, math and activations.

Input: Tensors, arrays and Python scalars. Output: Tensors, built from the elementwise
primitives after PyTorch-style promotion (`common.promote`); math functions turn integer inputs
into float32 first, as PyTorch does.
"""

from __future__ import annotations

import math

from .. import dtypes as D
from ..autograd.graph import torch_name
from ..errors import user_error
from ..trace import bind
from .common import cast, describe, is_scalar, operand, promote, to_float

_UNARY_FLOAT = ["exp", "exp2", "expm1", "log", "log2", "log10", "log1p", "sqrt", "rsqrt", "sin",
                "cos", "tan", "asin", "acos", "atan", "sinh", "cosh", "tanh", "sigmoid", "erf"]
__all__ = _UNARY_FLOAT + [
    "add", "sub", "subtract", "mul", "multiply", "div", "divide", "true_divide", "floor_divide",
    "remainder", "pow", "neg", "negative", "abs", "sign", "square", "minimum", "maximum",
    "atan2", "eq", "ne", "lt", "le", "gt", "ge", "logical_and", "logical_or", "logical_xor",
    "logical_not", "where", "clamp", "clip", "isnan", "isinf", "isfinite", "floor", "ceil",
    "round", "trunc", "relu", "gelu", "softplus", "reciprocal", "arcsin", "arccos", "arctan",
    "arctan2", "fmax", "fmin", "equal", "not_equal", "less", "less_equal", "greater",
    "greater_equal", "bitwise_not", "stop_gradient", "isclose", "allclose",
]


def _binary(name: str, a, b):
    return bind(name, *promote(a, b, name=name))


def add(input, other, *, alpha=1):
    """``input + alpha * other`` with broadcasting and PyTorch promotion."""
    if not is_scalar(alpha) or alpha != 1:
        other = mul(other, alpha)
    return _binary("add", input, other)


def _is_bool(x) -> bool:
    return isinstance(x, bool) or (not is_scalar(x) and operand(x).dtype.is_bool)


def sub(input, other, *, alpha=1):
    """``input - alpha * other``; like PyTorch, a bool operand (tensor or scalar) is an error."""
    if _is_bool(input) or _is_bool(other):
        raise user_error(TypeError, "sub: subtraction with a bool tensor or scalar is not "
                         f"supported; use logical_xor or `~` instead {describe(input, other)}")
    if not is_scalar(alpha) or alpha != 1:
        other = mul(other, alpha)
    return bind("sub", *promote(input, other))


def mul(input, other):
    return _binary("mul", input, other)


def div(input, other, *, rounding_mode=None):
    """True division (integers give float32); ``rounding_mode`` 'floor' or 'trunc'."""
    if rounding_mode == "floor":
        return floor_divide(input, other)
    if rounding_mode == "trunc":
        a, b = promote(input, other)
        if a.dtype.is_floating_point:
            return trunc(bind("div", a, b))
        q = bind("floordiv", a, b)
        fix = logical_and(ne(bind("rem", a, b), 0), logical_xor(lt(a, 0), lt(b, 0)))
        return add(q, cast(fix, q.dtype))
    if rounding_mode is not None:
        raise user_error(ValueError, f"div: rounding_mode must be None, 'floor' or 'trunc', got "
                         f"{rounding_mode!r}")
    a, b = promote(input, other)
    if not a.dtype.is_floating_point:
        a, b = cast(a, D.float32), cast(b, D.float32)
    return bind("div", a, b)


def floor_divide(input, other):
    return _binary("floordiv", input, other)


def remainder(input, other):
    """Python's ``%``: the result has the sign of the divisor."""
    return _binary("rem", input, other)


def pow(input, exponent):
    a, b = promote(input, exponent)
    if a.dtype.is_bool:
        a, b = cast(a, D.int64), cast(b, D.int64)
    return bind("pow", a, b)


def _unary(name: str, x, allow_bool=False):
    x = operand(x)
    if x.dtype.is_bool and not allow_bool:
        raise user_error(TypeError, f"{name}: not supported for bool tensors {describe(x)}")
    return bind(name, x)


def neg(input):
    return _unary("neg", input)


def abs(input):
    return _unary("abs", input)


def sign(input):
    x = operand(input)
    return x if x.dtype.is_bool else bind("sign", x)


def square(input):
    """``input * input``; bool tensors give int64, as in PyTorch."""
    x = operand(input)
    if x.dtype.is_bool:
        x = cast(x, D.int64)
    return mul(x, x)


def reciprocal(input):
    return div(1.0, to_float(operand(input)))


def minimum(input, other):
    return _binary("minimum", input, other)


def maximum(input, other):
    return _binary("maximum", input, other)


def atan2(input, other):
    a, b = promote(input, other)
    return bind("atan2", to_float(a), to_float(b))


def _compare(name):
    def f(input, other):
        return _binary(name, input, other)
    f.__name__ = name
    f.__doc__ = f"Elementwise ``{name}`` comparison; the result is bool."
    return f


eq, ne, lt, le, gt, ge = (_compare(n) for n in ("eq", "ne", "lt", "le", "gt", "ge"))


def _as_bool(x):
    x = operand(x) if not is_scalar(x) else operand(bool(x))
    return x if x.dtype.is_bool and not x._weak else cast(x, D.bool_)


def logical_and(input, other):
    return bind("logical_and", _as_bool(input), _as_bool(other))


def logical_or(input, other):
    return bind("logical_or", _as_bool(input), _as_bool(other))


def logical_xor(input, other):
    return bind("logical_xor", _as_bool(input), _as_bool(other))


def logical_not(input):
    return bind("logical_not", _as_bool(input))


def bitwise_not(input):
    x = operand(input)
    if x.dtype.is_bool:
        return logical_not(x)
    raise user_error(TypeError, f"bitwise_not (~): integer bitwise ops are not supported, got "
                     f"{x.dtype.name}")


def where(condition, input=None, other=None):
    """``input`` where ``condition`` holds, else ``other`` (broadcast together)."""
    if input is None and other is None:
        raise user_error(NotImplementedError, "where(condition) with one argument (nonzero) has a "
                         "data-dependent shape; use tj.nonzero in eager code")
    a, b = promote(input, other, name="where")
    return bind("select", _as_bool(condition), a, b)


def clamp(input, min=None, max=None):
    """Limits values to ``[min, max]`` (either may be None or a Tensor); NaN stays NaN."""
    if min is None and max is None:
        raise user_error(ValueError, "clamp: at least one of min and max must be given")
    x0 = x = operand(input)
    inside = None
    if min is not None:
        x = maximum(x, min)
        inside = ge(x0, min)
    if max is not None:
        x = minimum(x, max)
        inside = le(x0, max) if inside is None else logical_and(inside, le(x0, max))
    # where x is within the bounds it passes through unchanged, so its derivative is 1 there
    # (PyTorch's convention at the bounds themselves), not the 1/2 of a maximum/minimum tie
    return where(inside, x0, x) if x0.dtype == x.dtype else x


clip = clamp


def isnan(input):
    return bind("isnan", operand(input))


def isinf(input):
    return bind("isinf", operand(input))


def isfinite(input):
    x = operand(input)
    return logical_not(logical_or(isnan(x), isinf(x)))


def isclose(input, other, rtol=1e-05, atol=1e-08, equal_nan=False):
    """``|input - other| <= atol + rtol * |other|`` elementwise (infinities equal themselves;
    NaNs equal each other only with `equal_nan`), as ``torch.isclose``."""
    a, b = operand(input), operand(other)
    if not (a.dtype.is_floating_point or b.dtype.is_floating_point):
        return eq(a, b)
    dt = D.promote_types(a.dtype, b.dtype)
    a, b = cast(a, dt), cast(b, dt)
    near = le(abs(sub(a, b)), add(mul(abs(b), rtol), atol))
    close = logical_or(eq(a, b), logical_and(near, logical_and(isfinite(a), isfinite(b))))
    if equal_nan:
        close = logical_or(close, logical_and(isnan(a), isnan(b)))
    return close


def allclose(input, other, rtol=1e-05, atol=1e-08, equal_nan=False) -> bool:
    """Whether `isclose` holds everywhere (a Python bool, as ``torch.allclose``)."""
    return bool(isclose(input, other, rtol, atol, equal_nan).all())


def _rounding(name):
    def f(input):
        x = operand(input)
        if x.dtype.is_bool:
            raise user_error(TypeError, f"{name}: not supported for bool tensors {describe(x)}")
        return bind(name, x)
    f.__name__ = name
    return f


floor, ceil, trunc = _rounding("floor"), _rounding("ceil"), _rounding("trunc")


def round(input, *, decimals: int = 0):
    """Rounds half to even, like PyTorch and numpy; ``decimals`` may be negative."""
    x = operand(input)
    if decimals == 0:
        return _rounding("round")(x)
    x = to_float(x)
    s = 10.0 ** decimals
    return div(bind("round", mul(x, s)), s)


def _make_float_unary(name):
    def f(input):
        return bind(name, to_float(operand(input)))
    f.__name__ = name
    f.__doc__ = f"Elementwise ``{name}``; integer inputs are computed in float32."
    return f


for _n in _UNARY_FLOAT:
    globals()[_n] = _make_float_unary(_n)
exp = globals()["exp"]
tanh = globals()["tanh"]
log1p = globals()["log1p"]
erf = globals()["erf"]
arcsin, arccos, arctan, arctan2 = (globals()["asin"], globals()["acos"], globals()["atan"], atan2)
subtract, multiply, divide, true_divide, negative = sub, mul, div, div, neg
fmax, fmin = maximum, minimum
equal, not_equal, less, less_equal, greater, greater_equal = eq, ne, lt, le, gt, ge


def stop_gradient(input):
    """The same values with a zero derivative (``x.detach()`` in PyTorch terms)."""
    return bind("stop_gradient", operand(input))


@torch_name("ReluBackward0")
def relu(input):
    """``max(x, 0)`` with PyTorch's derivative 0 at x = 0 (a maximum tie would give 1/2)."""
    x = operand(input)
    return where(le(x, 0), 0, x)


def gelu(input, approximate: str = "none"):
    """``x * Phi(x)``; ``approximate='tanh'`` uses the tanh formula like PyTorch."""
    x = to_float(operand(input))
    if approximate == "none":
        return mul(mul(x, 0.5), add(erf(mul(x, 1 / math.sqrt(2.0))), 1.0))
    if approximate == "tanh":
        inner = mul(add(x, mul(mul(mul(x, x), x), 0.044715)), math.sqrt(2.0 / math.pi))
        return mul(mul(x, 0.5), add(tanh(inner), 1.0))
    raise user_error(ValueError, f"gelu: approximate must be 'none' or 'tanh', got "
                     f"{approximate!r}")


def softplus(input, beta: float = 1.0, threshold: float = 20.0):
    """``log(1 + exp(beta x)) / beta``, linear above ``threshold`` (PyTorch's definition)."""
    x = to_float(operand(input))
    bx = mul(x, beta)
    smooth = div(add(log1p(exp(neg(abs(bx)))), maximum(bx, 0)), beta)
    return where(gt(bx, threshold), x, smooth)
