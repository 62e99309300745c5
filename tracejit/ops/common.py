"""Shared machinery of the op library: operand conversion, type promotion, axis normalization.

Input: user arguments (Tensors, numpy arrays, Python scalars, nested lists). Output: Tensors of
one promoted dtype, ready for `bind`. Python scalars become constants of the promoted dtype
directly (they are weakly typed), so ``x * 2.0`` records no cast.
"""

from __future__ import annotations

import operator

import numpy as np

from .. import dtypes as D
from ..errors import user_error
from ..tensor import Tensor, as_tensor
from ..trace import bind

__all__ = ["norm_axis", "norm_axes", "promote", "cast", "operand", "scalar_const", "is_scalar",
           "to_float", "dim_arg", "shape_arg", "describe"]


def is_scalar(x) -> bool:
    return isinstance(x, (bool, int, float)) and not isinstance(x, np.generic)


def operand(x) -> Tensor:
    """Any array-like as a Tensor (Python scalars stay weakly typed)."""
    return x if isinstance(x, Tensor) else as_tensor(x)


def cast(x: Tensor, dtype: D.DType) -> Tensor:
    if x.dtype == dtype and not x._weak:
        return x
    return bind("convert", x, dtype=dtype, weak=False)


def scalar_const(value, dtype: D.DType, weak: bool = False) -> Tensor:
    return bind("constant", value=value, dtype=dtype, weak=weak)


def describe(*xs) -> str:
    """``(operands: f32[2,3], bool[3])`` for error messages, like the tracer's."""
    return "(operands: " + ", ".join(str(operand(x)._type()) for x in xs) + ")"


def _type_of(x):
    if is_scalar(x):
        return (D.scalar_dtype(x), 0, True)
    return (x.dtype, x.ndim, x._weak)


def promote(*args, name: str = "op") -> list[Tensor]:
    """Converts `args` to Tensors of their PyTorch-promoted dtype."""
    xs = [a if (isinstance(a, Tensor) or is_scalar(a)) else operand(a) for a in args]
    dt = D.result_type(*(_type_of(x) for x in xs))
    weak = all(is_scalar(x) or x._weak for x in xs)
    if weak:  # only weak operands: keep the widest weak representation
        dt = {0: D.bool_, 1: D.int64, 2: D.float64}[dt.category]
    out = []
    for x in xs:
        if is_scalar(x):
            out.append(scalar_const(_cast_scalar(x, dt), dt, weak))
        elif x.dtype != dt:
            out.append(bind("convert", x, dtype=dt, weak=weak))
        else:
            out.append(x)
    return out


def _cast_scalar(v, dt: D.DType):
    if dt.is_bool:
        return bool(v)
    if dt.is_integer:
        if not isinstance(v, (bool, int)):
            return v
        info = np.iinfo(dt.np)
        if not info.min <= v <= info.max:
            raise user_error(OverflowError, f"value {v} cannot be converted to {dt.name} "
                             "without overflow")
        return int(v)
    return float(v)


def to_float(x: Tensor) -> Tensor:
    """Integer and bool Tensors become float32 (PyTorch's rule for math functions)."""
    return x if x.dtype.is_floating_point else cast(x, D.float32)


def _rank(ndim) -> tuple[int, str]:
    """`ndim` may be an int or the operand's shape (which then appears in messages)."""
    if isinstance(ndim, tuple):
        return len(ndim), f" for a tensor of shape {list(ndim)}"
    return ndim, ""


def norm_axis(axis, ndim, name: str = "op") -> int:
    """`axis` in ``[-ndim, ndim)`` as a non-negative int; `ndim` may be the operand's shape."""
    ndim, of = _rank(ndim)
    try:
        a = operator.index(axis)
    except TypeError:
        raise user_error(TypeError, f"{name}: dim must be an int, got {type(axis).__name__}") \
            from None
    lo, hi = (-1, 0) if ndim == 0 else (-ndim, ndim - 1)
    if not lo <= a <= hi:
        raise user_error(IndexError, f"{name}: Dimension out of range (expected to be in range "
                         f"of [{lo}, {hi}], but got {a}){of}")
    return a % ndim if ndim else 0


def norm_axes(axes, ndim, name: str = "op") -> tuple[int, ...]:
    """`None` means every axis; an int or a sequence of ints otherwise."""
    nd, _ = _rank(ndim)
    if axes is None:
        return tuple(range(nd))
    if isinstance(axes, (list, tuple)):
        out = tuple(norm_axis(a, ndim, name) for a in axes)
    else:
        out = (norm_axis(axes, ndim, name),)
    if nd == 0:
        return ()
    if len(set(out)) != len(out):
        raise user_error(IndexError, f"{name}: dim {list(out)} appears more than once")
    return tuple(sorted(out))


def dim_arg(name: str, dim, axis, default=None):
    """Accepts PyTorch's `dim` or numpy's `axis` (not both)."""
    if dim is not None and axis is not None:
        raise user_error(TypeError, f"{name}: pass dim or axis, not both")
    return dim if dim is not None else (axis if axis is not None else default)


def shape_arg(name: str, shape, size=None) -> tuple[int, ...]:
    """Shapes as varargs, a tuple/list, or ``size=``: (2, 3), ((2, 3),) and size=(2, 3)."""
    if size is not None:
        if shape:
            raise user_error(TypeError, f"{name}: pass the shape or size=, not both")
        shape = (size,)
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    try:
        out = tuple(operator.index(s) for s in shape)
    except TypeError:
        raise user_error(TypeError, f"{name}: shape must be ints, got {shape!r}") from None
    if any(s < 0 for s in out):
        raise user_error(ValueError, f"{name}: negative dimension in shape {list(out)}")
    n = 1
    for d in out:
        n *= d
    if n > _MAX_NUMEL:
        raise user_error(ValueError, f"{name}: shape {list(out)} has {n} elements, more than "
                         f"64-bit indexing allows ({_MAX_NUMEL})")
    return out


_MAX_NUMEL = 2 ** 63 - 1
