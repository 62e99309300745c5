"""Tensor methods and operators, bound to the op library.

Input: the functions of `tracejit.ops`. Output: `Tensor` gains PyTorch's methods (``x.sum()``,
``x.reshape(...)``) and Python operators (``+``, ``@``, ``[]``, ``+=``, ...). In-place forms
write into an eager Tensor's buffer (keeping its dtype, as PyTorch does) or rebind a tracer.
"""

from __future__ import annotations

import numpy as np

from .. import dtypes as D
from ..errors import user_error
from ..tensor import Tensor
from . import creation
from . import elementwise as E
from . import index as I
from . import linalg as L
from . import reduce as R
from . import shape as S
from .common import cast, operand
from .inplace import store

_METHODS = {
    # elementwise
    **{n: getattr(E, n) for n in E.__all__ if n not in ("where",)},
    "where": lambda self, condition, other: E.where(condition, self, other),
    # reductions
    **{n: getattr(R, n) for n in R.__all__},
    # shape
    **{n: getattr(S, n) for n in ("reshape", "view", "flatten", "unflatten", "squeeze",
                                  "unsqueeze", "expand", "expand_as", "repeat", "tile",
                                  "transpose", "permute", "swapaxes", "moveaxis", "movedim",
                                  "chunk", "split", "unbind", "flip", "roll", "narrow", "t",
                                  "ravel", "fliplr", "flipud")},
    "broadcast_to": S.broadcast_to,
    # indexing
    "gather": I.gather, "take_along_dim": I.take_along_dim, "index_select": I.index_select,
    "nonzero": I.nonzero, "masked_fill": I.masked_fill, "take": I.take,
    # linear algebra
    **{n: getattr(L, n) for n in ("matmul", "dot", "mv", "mm", "bmm", "outer", "inner")},
    # creation
    "new_zeros": lambda self, *s, dtype=None: creation.zeros(*s, dtype=dtype or self.dtype),
    "new_ones": lambda self, *s, dtype=None: creation.ones(*s, dtype=dtype or self.dtype),
    "new_full": lambda self, size, fill_value, dtype=None: creation.full(
        size, fill_value=fill_value, dtype=dtype or self.dtype),
    "new_tensor": lambda self, data, dtype=None: operand(np.asarray(data)).astype(
        dtype or self.dtype),
    "type_as": lambda self, other: self.astype(other.dtype),
    "is_floating_point": lambda self: self.dtype.is_floating_point,
    "element_size": lambda self: self.dtype.itemsize,
}

for _name, _fn in _METHODS.items():
    setattr(Tensor, _name, _fn)

Tensor.T = property(lambda self: S.transpose(self))
Tensor.mT = property(lambda self: S.transpose(self, -2, -1))
Tensor.at = property(lambda self: I.At(self))
Tensor.__getitem__ = I.getitem
Tensor.__setitem__ = I.setitem


def _rev(fn):
    return lambda self, other: fn(other, self)


_OPERATORS = {
    "add": E.add, "sub": E.sub, "mul": E.mul, "truediv": E.div, "floordiv": E.floor_divide,
    "mod": E.remainder, "pow": E.pow, "matmul": L.matmul, "and": E.logical_and,
    "or": E.logical_or, "xor": E.logical_xor,
}


def _bitwise_check(fn, name):
    def op(a, b):
        for v in (a, b):
            if isinstance(v, Tensor) and not v.dtype.is_bool:
                raise user_error(TypeError, f"operator {name}: integer bitwise ops are not "
                                 f"supported, got {v.dtype.name}")
        return fn(a, b)
    return op


for _name, _fn in _OPERATORS.items():
    if _name in ("and", "or", "xor"):
        _fn = _bitwise_check(_fn, {"and": "&", "or": "|", "xor": "^"}[_name])
    setattr(Tensor, f"__{_name}__", _fn)
    setattr(Tensor, f"__r{_name}__", _rev(_fn))

Tensor.__neg__ = E.neg
Tensor.__pos__ = lambda self: self
Tensor.__abs__ = E.abs
Tensor.__invert__ = E.bitwise_not
Tensor.__eq__ = E.eq
Tensor.__ne__ = E.ne
Tensor.__lt__ = E.lt
Tensor.__le__ = E.le
Tensor.__gt__ = E.gt
Tensor.__ge__ = E.ge
Tensor.__hash__ = lambda self: id(self)


_TORCH_NAME = {"float16": "Half", "float32": "Float", "float64": "Double", "int8": "Char",
               "uint8": "Byte", "int16": "Short", "int32": "Int", "int64": "Long",
               "bool": "Bool"}


class CastError(RuntimeError, TypeError):
    """An in-place op whose result dtype cannot be stored in its target (PyTorch raises
    RuntimeError; it is a TypeError too)."""


def _assign(self: Tensor, new: Tensor, name: str) -> Tensor:
    """Stores `new` into `self` in place, keeping self's dtype and shape (PyTorch's rule)."""
    if new.shape != self.shape:
        raise user_error(ValueError, f"{name}: output with shape {list(self.shape)} doesn't "
                         f"match the broadcast shape {list(new.shape)}")
    if D.promote_types(self.dtype, new.dtype) != self.dtype and new.dtype.category > \
            self.dtype.category:
        raise user_error(CastError, f"{name}: result type {_TORCH_NAME[new.dtype.name]} can't be "
                         f"cast to the desired output type {_TORCH_NAME[self.dtype.name]}")
    return store(self, cast(new, self.dtype), name)


def _inplace(fn, name):
    def method(self, *args, **kwargs):
        return _assign(self, fn(self, *args, **kwargs), name)
    method.__name__ = name
    return method


for _name in ("add", "sub", "mul", "div", "pow", "clamp", "neg", "abs", "exp", "log", "sqrt",
              "relu", "sigmoid", "tanh", "floor", "ceil", "round", "trunc", "remainder",
              "square", "sign", "maximum", "minimum"):
    setattr(Tensor, _name + "_", _inplace(getattr(E, _name), _name + "_"))

for _op, _fn in {"add": E.add, "sub": E.sub, "mul": E.mul, "truediv": E.div,
                 "floordiv": E.floor_divide, "mod": E.remainder, "pow": E.pow,
                 "matmul": L.matmul}.items():
    setattr(Tensor, f"__i{_op}__", _inplace(_fn, f"__i{_op}__"))
for _op, _fn in {"and": E.logical_and, "or": E.logical_or, "xor": E.logical_xor}.items():
    setattr(Tensor, f"__i{_op}__", _inplace(_bitwise_check(_fn, _op), f"__i{_op}__"))


def _fill_(self, value):
    return _assign(self, creation.full(self.shape, fill_value=value, dtype=self.dtype), "fill_")


def _zero_(self):
    return _fill_(self, 0)


def _copy_(self, src):
    return _assign(self, cast(S.broadcast_to(operand(src), self.shape), self.dtype), "copy_")


Tensor.fill_ = _fill_
Tensor.zero_ = _zero_
Tensor.copy_ = _copy_
Tensor.clamp_min = lambda self, min: E.clamp(self, min=min)
Tensor.clamp_max = lambda self, max: E.clamp(self, max=max)
Tensor.clip = E.clamp
