"""Dtypes and type promotion.

Input: numpy dtypes, Python scalars and tracejit values. Output: `DType` objects and the
promoted result dtype of an operation, following PyTorch's rules:

* categories are ordered bool < integer < floating;
* operands are ranked by priority: tensors with dimensions, then zero-dimensional tensors,
  then *weak* values (Python scalars, and values computed only from them). A lower-priority
  operand changes the result only when its category is higher (``int32_tensor * 2.5`` is
  float32, ``float16_tensor * 2.5`` stays float16, ``int32_tensor + 7`` stays int32);
* within a category the wider type wins; mixing signed and unsigned integers widens.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "DType", "bool_", "uint8", "int8", "int16", "int32", "int64", "float16", "float32",
    "float64", "ALL_DTYPES", "FLOAT_DTYPES", "INT_DTYPES", "as_dtype", "promote_types",
    "result_type", "default_float", "default_int", "scalar_dtype",
]


class DType:
    """A tracejit element type. Compare with ``==``; ``dtype.np`` is the numpy dtype."""

    __slots__ = ("name", "short", "np", "kind", "itemsize")

    def __init__(self, name: str, short: str, npdtype, kind: str):
        self.name = name
        self.short = short  # the spelling used in the IR text: f32, i64, ...
        self.np = np.dtype(npdtype)
        self.kind = kind  # "b" bool, "u" unsigned, "i" signed, "f" floating
        self.itemsize = self.np.itemsize

    @property
    def is_floating_point(self) -> bool:
        return self.kind == "f"

    @property
    def is_integer(self) -> bool:
        return self.kind in "ui"

    @property
    def is_bool(self) -> bool:
        return self.kind == "b"

    @property
    def category(self) -> int:
        return {"b": 0, "u": 1, "i": 1, "f": 2}[self.kind]

    def __repr__(self) -> str:
        return f"tracejit.{self.name}"

    def __reduce__(self):
        return (as_dtype, (self.name,))


bool_ = DType("bool", "bool", np.bool_, "b")
uint8 = DType("uint8", "u8", np.uint8, "u")
int8 = DType("int8", "i8", np.int8, "i")
int16 = DType("int16", "i16", np.int16, "i")
int32 = DType("int32", "i32", np.int32, "i")
int64 = DType("int64", "i64", np.int64, "i")
float16 = DType("float16", "f16", np.float16, "f")
float32 = DType("float32", "f32", np.float32, "f")
float64 = DType("float64", "f64", np.float64, "f")

ALL_DTYPES = (bool_, uint8, int8, int16, int32, int64, float16, float32, float64)
FLOAT_DTYPES = (float16, float32, float64)
INT_DTYPES = (uint8, int8, int16, int32, int64)

_BY_NAME = {d.name: d for d in ALL_DTYPES}
_BY_NAME.update({d.short: d for d in ALL_DTYPES})
_BY_NAME.update({"float": float32, "double": float64, "half": float16, "int": int32,
                 "long": int64, "short": int16, "bool_": bool_})
_BY_NP = {d.np: d for d in ALL_DTYPES}


def default_float() -> DType:
    return float32


def default_int() -> DType:
    return int64


def as_dtype(x) -> DType:
    """Converts a DType, its name, a numpy dtype or a Python type to a `DType`."""
    if isinstance(x, DType):
        return x
    if isinstance(x, str) and x in _BY_NAME:
        return _BY_NAME[x]
    if x is float:
        return float32
    if x is int:
        return int64
    if x is bool:
        return bool_
    try:
        npd = np.dtype(x)
    except TypeError:
        raise TypeError(f"dtype: {x!r} is not a dtype tracejit knows") from None
    if npd not in _BY_NP:
        supported = ", ".join(d.name for d in ALL_DTYPES)
        raise TypeError(f"dtype: numpy dtype {npd} is not supported (supported: {supported})")
    return _BY_NP[npd]


def scalar_dtype(value) -> DType:
    """The dtype a Python scalar takes when it must become a tensor on its own."""
    if isinstance(value, (bool, np.bool_)):
        return bool_
    if isinstance(value, (int, np.integer)):
        return int64
    if isinstance(value, (float, np.floating)):
        return float32
    raise TypeError(f"expected a Python bool, int or float, got {type(value).__name__}")


def promote_types(a: DType, b: DType) -> DType:
    """The smallest dtype both `a` and `b` convert to without losing their category."""
    if a == b:
        return a
    if a.category != b.category:
        return a if a.category > b.category else b
    if a.kind == "f":
        return a if a.itemsize >= b.itemsize else b
    if a.kind == "b":
        return a
    if a.kind == b.kind:  # both signed or both unsigned
        return a if a.itemsize >= b.itemsize else b
    # signed with unsigned: a signed type wider than the unsigned one
    u, s = (a, b) if a.kind == "u" else (b, a)
    if s.itemsize > u.itemsize:
        return s
    return {1: int16, 2: int32, 4: int64, 8: int64}[u.itemsize]


def _combine(higher: DType | None, lower: DType | None) -> DType | None:
    """PyTorch's rule for letting a lower-priority group raise the result's category."""
    if higher is None:
        return lower
    if lower is None:
        return higher
    if higher.kind == "f":
        return higher
    if higher.kind == "b" or lower.kind == "f":
        return promote_types(higher, lower)
    return higher


def result_type(*operands) -> DType:
    """The promoted dtype of `operands`, each a ``(dtype, ndim, weak)`` triple.

    >>> result_type((int32, 1, False), (float32, 0, True))
    tracejit.float32
    """
    groups: list[DType | None] = [None, None, None]  # dim tensors, 0-dim tensors, weak
    for dtype, ndim, weak in operands:
        g = 2 if weak else (1 if ndim == 0 else 0)
        if weak:  # a weak value counts only by its category, at its default width
            dtype = {0: bool_, 1: int64, 2: float32}[dtype.category]
        groups[g] = dtype if groups[g] is None else promote_types(groups[g], dtype)
    out = _combine(groups[0], _combine(groups[1], groups[2]))
    assert out is not None, "result_type needs at least one operand"
    return out
