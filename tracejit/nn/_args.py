"""Argument checking shared by `tj.nn.functional` and the layers.

Input: user arguments (ints or tuples for sizes, reduction names, legacy loss flags). Output:
canonical Python values, or PyTorch's error for a bad one, raised with the user's source line.

>>> from tracejit.nn._args import pair
>>> pair(3, "kernel_size"), pair((1, 2), "stride")
((3, 3), (1, 2))
"""

from __future__ import annotations

import operator
import warnings

from ..errors import user_error

__all__ = ["NNError", "pair", "check_reduction", "legacy_reduction", "size_str"]


class NNError(RuntimeError, ValueError):
    """A bad shape or argument: PyTorch raises RuntimeError here, tracejit's ops ValueError, so
    this is both."""


def pair(v, name: str, n: int = 2) -> tuple[int, ...]:
    """An int or an n-sequence of ints as an n-tuple of ints."""
    if isinstance(v, (tuple, list)):
        if len(v) == 1:
            v = tuple(v) * n
        if len(v) != n:
            raise user_error(NNError, f"expected {name} to be a single integer value or a list "
                             f"of {n} values to match the convolution dimensions, but got "
                             f"{name}={list(v)}")
        try:
            return tuple(operator.index(x) for x in v)
        except TypeError:
            raise user_error(TypeError, f"{name} must be ints, got {v!r}") from None
    try:
        return (operator.index(v),) * n
    except TypeError:
        raise user_error(TypeError, f"{name} must be an int or a tuple of {n} ints, got "
                         f"{v!r}") from None


_REDUCTIONS = ("none", "mean", "sum")


def check_reduction(reduction: str) -> str:
    if reduction not in _REDUCTIONS:
        raise user_error(ValueError, f"{reduction} is not a valid value for reduction")
    return reduction


def legacy_reduction(size_average, reduce, reduction: str) -> str:
    """PyTorch's deprecated ``size_average``/``reduce`` flags mapped to ``reduction``."""
    if size_average is None and reduce is None:
        return check_reduction(reduction)
    size_average = True if size_average is None else size_average
    reduce = True if reduce is None else reduce
    out = "none" if not reduce else ("mean" if size_average else "sum")
    warnings.warn(f"size_average and reduce args will be deprecated, please use "
                  f"reduction='{out}' instead.", UserWarning, stacklevel=3)
    return out


def size_str(shape) -> str:
    """A shape as PyTorch prints it in messages: ``[2, 3]``."""
    return str(list(shape))
