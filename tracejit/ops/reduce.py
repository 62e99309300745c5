"""Reductions, scans, softmax and sorting of SPEC §3.

Input: Tensors with ``dim``/``keepdim`` (or numpy's ``axis``/``keepdims``). Output: Tensors
built from the reduce, arg-reduce, scan and argsort primitives. Integer sums and products
accumulate in int64, as in PyTorch; ``max(x, dim)`` returns ``(values, indices)``.
"""

from __future__ import annotations

import builtins
import math
from collections import namedtuple

from .. import dtypes as D
from ..autograd.graph import torch_name
from ..errors import user_error
from ..trace import bind
from .common import cast, dim_arg, norm_axes, norm_axis, operand, to_float
from .elementwise import abs, add, div, exp, isinf, log, mul, neg, pow, sqrt, sub, where

__all__ = ["sum", "mean", "prod", "max", "min", "amax", "amin", "argmax", "argmin", "std", "var",
           "norm", "logsumexp", "any", "all", "cumsum", "cumprod", "softmax", "log_softmax",
           "topk", "sort", "argsort", "count_nonzero"]

MaxResult = namedtuple("max", ["values", "indices"])
MinResult = namedtuple("min", ["values", "indices"])
TopkResult = namedtuple("topk", ["values", "indices"])
SortResult = namedtuple("sort", ["values", "indices"])


def _keep(x, axes, keepdim: bool, ndim: int):
    if not keepdim:
        return x
    shape = list(x.shape)
    for a in axes:
        shape.insert(a, 1)
    return bind("reshape", x, shape=tuple(shape))


def _args(name, input, dim, axis, keepdim, keepdims):
    x = operand(input)
    if isinstance(dim, (tuple, list)) and len(dim) == 0:
        dim = None  # PyTorch: an empty dim list reduces every dim (numpy's axis=() reduces none)
    d = dim_arg(name, dim, axis)
    kd = bool(keepdim or keepdims)
    return x, norm_axes(d, x.shape, name), kd


def _reduce(prim, x, axes, keepdim):
    return _keep(bind(prim, x, axes=axes), axes, keepdim, x.ndim)


def _accum_dtype(x, dtype):
    if dtype is not None:
        return cast(x, D.as_dtype(dtype))
    return cast(x, D.int64) if not x.dtype.is_floating_point else x


def _by_dim(name):
    """PyTorch's names: ``SumBackward0`` for a full reduction, ``SumBackward1`` over dims."""
    def pick(input, dim=None, *args, axis=None, **kwargs):
        return f"{name}Backward{0 if dim is None and axis is None else 1}"
    return pick


@torch_name(_by_dim("Sum"))
def sum(input, dim=None, keepdim=False, *, dtype=None, axis=None, keepdims=None):
    """Sum over ``dim`` (int, tuple or None for all). Bool/int inputs sum in int64.

    >>> import tracejit as tj
    >>> tj.tensor([[1, 2], [3, 4]]).sum(dim=0)
    tensor([4, 6])
    """
    x, axes, kd = _args("sum", input, dim, axis, keepdim, keepdims)
    return _reduce("reduce_sum", _accum_dtype(x, dtype), axes, kd)


def prod(input, dim=None, keepdim=False, *, dtype=None, axis=None, keepdims=None):
    x, axes, kd = _args("prod", input, dim, axis, keepdim, keepdims)
    return _reduce("reduce_prod", _accum_dtype(x, dtype), axes, kd)


def _count(x, axes) -> int:
    return math.prod(x.shape[a] for a in axes)


@torch_name(_by_dim("Mean"))
def mean(input, dim=None, keepdim=False, *, dtype=None, axis=None, keepdims=None):
    x, axes, kd = _args("mean", input, dim, axis, keepdim, keepdims)
    if dtype is not None:
        x = cast(x, D.as_dtype(dtype))
    if not x.dtype.is_floating_point:
        raise user_error(TypeError, f"mean: input dtype must be floating point, got "
                         f"{x.dtype.name} (shape {list(x.shape)}); use x.float().mean() or "
                         "dtype=tj.float32")
    return div(_reduce("reduce_sum", x, axes, kd), float(_count(x, axes)))


def _extreme(prim, name, input, dim, keepdim, axis, keepdims):
    x, axes, kd = _args(name, input, dim, axis, keepdim, keepdims)
    if x.numel() == 0 and builtins.any(x.shape[a] == 0 for a in axes):  # `any` is ours
        raise user_error(IndexError, f"{name}: cannot reduce a zero-size dimension (operand "
                         f"shape {list(x.shape)}); the operation has no identity")
    return _reduce(prim, x, axes, kd)


def amax(input, dim=None, keepdim=False, *, axis=None, keepdims=None):
    return _extreme("reduce_max", "amax", input, dim, keepdim, axis, keepdims)


def amin(input, dim=None, keepdim=False, *, axis=None, keepdims=None):
    return _extreme("reduce_min", "amin", input, dim, keepdim, axis, keepdims)


def _arg(prim, name, input, dim, keepdim):
    x = operand(input)
    if dim is None:
        flat = bind("reshape", x, shape=(x.numel(),))
        if x.numel() == 0:
            raise user_error(IndexError, f"{name}: expected a non-empty tensor")
        r = bind(prim, flat, axis=0)
        return bind("reshape", r, shape=(1,) * x.ndim) if keepdim else r
    a = norm_axis(dim, x.shape, name)
    if x.ndim == 0:
        return bind("constant", value=0, dtype=D.int64)
    if x.shape[a] == 0:
        raise user_error(IndexError, f"{name}: cannot reduce a zero-size dimension {a} of "
                         f"shape {list(x.shape)}")
    return _keep(bind(prim, x, axis=a), (a,), keepdim, x.ndim)


def argmax(input, dim=None, keepdim=False, *, axis=None):
    return _arg("argmax", "argmax", input, dim_arg("argmax", dim, axis), keepdim)


def argmin(input, dim=None, keepdim=False, *, axis=None):
    return _arg("argmin", "argmin", input, dim_arg("argmin", dim, axis), keepdim)


def max(input, dim=None, keepdim=False, *, axis=None, keepdims=None):
    """The maximum; with ``dim`` (an int) the namedtuple ``(values, indices)``.

    ``max(a, b)`` with a Tensor second argument is the elementwise maximum, as in PyTorch.
    """
    from .elementwise import maximum
    if dim is not None and not isinstance(dim, int) and hasattr(dim, "shape"):
        return maximum(input, dim)
    d = dim_arg("max", dim, axis)
    if d is None or isinstance(d, (tuple, list)):
        return _extreme("reduce_max", "max", input, d, keepdim, None, keepdims)
    kd = bool(keepdim or keepdims)
    return MaxResult(*_pick(input, argmax(input, d, True), d, kd))


def min(input, dim=None, keepdim=False, *, axis=None, keepdims=None):
    from .elementwise import minimum
    if dim is not None and not isinstance(dim, int) and hasattr(dim, "shape"):
        return minimum(input, dim)
    d = dim_arg("min", dim, axis)
    if d is None or isinstance(d, (tuple, list)):
        return _extreme("reduce_min", "min", input, d, keepdim, None, keepdims)
    kd = bool(keepdim or keepdims)
    return MinResult(*_pick(input, argmin(input, d, True), d, kd))


def _pick(input, idx, d, keepdim):
    """Values at `idx` along dim `d` (so, like PyTorch, the gradient flows to the returned index
    only, not shared among ties) and the indices, with or without the kept dim."""
    from .index import take_along_dim
    from .shape import squeeze
    x = operand(input)
    if x.ndim == 0:
        return x, idx
    vals = take_along_dim(x, idx, d)
    return (vals, idx) if keepdim else (squeeze(vals, d), squeeze(idx, d))


@torch_name("VarBackward0")
def var(input, dim=None, unbiased=None, keepdim=False, *, correction=None, axis=None,
        keepdims=None):
    """Variance with Bessel's correction by default (``correction=1``), like PyTorch."""
    x, axes, kd = _args("var", input, dim, axis, keepdim, keepdims)
    x = to_float(x)
    if correction is None:
        correction = 1 if unbiased is None or unbiased else 0
    n = _count(x, axes)
    m = mean(x, axes, keepdim=True)
    d = sub(x, m)
    ss = sum(mul(d, d), axes, keepdim=kd)
    denom = n - correction
    return div(ss, float(denom)) if denom > 0 else mul(ss, math.inf if n > 0 else math.nan)


@torch_name("StdBackward0")
def std(input, dim=None, unbiased=None, keepdim=False, *, correction=None, axis=None,
        keepdims=None):
    return sqrt(var(input, dim, unbiased, keepdim, correction=correction, axis=axis,
                    keepdims=keepdims))


@torch_name("LinalgVectorNormBackward0")
def norm(input, p="fro", dim=None, keepdim=False, *, axis=None, keepdims=None, dtype=None):
    """Vector norms: ``p`` in 2/'fro', 1, inf, -inf, 0 or any float; over ``dim``."""
    x, axes, kd = _args("norm", input, dim, axis, keepdim, keepdims)
    x = to_float(x) if dtype is None else cast(x, D.as_dtype(dtype))
    if p in ("fro", 2, 2.0, None):
        return _root(sum(mul(x, x), axes, keepdim=kd), sqrt)
    a = abs(x)
    if p in (1, 1.0):
        return sum(a, axes, keepdim=kd)
    if p == math.inf or p == "inf":
        return amax(a, axes, keepdim=kd) if x.numel() else sum(a, axes, keepdim=kd)
    if p == -math.inf:
        return amin(a, axes, keepdim=kd)
    if p == 0:
        return sum(cast(bind("ne", a, bind("constant", value=0.0, dtype=a.dtype)), x.dtype),
                   axes, keepdim=kd)
    if isinstance(p, (int, float)):
        return _root(sum(pow(a, float(p)), axes, keepdim=kd), lambda s: pow(s, 1.0 / p))
    raise user_error(ValueError, f"norm: unsupported p={p!r} (nuclear norms need an SVD)")


def _root(s, root):
    """``root(s)`` with derivative 0 where s == 0 (PyTorch's subgradient of a norm at 0), not the
    inf * 0 = NaN of differentiating the root there."""
    from .elementwise import eq
    zero = eq(s, 0)
    return where(zero, 0.0, root(where(zero, 1.0, s)))


def logsumexp(input, dim=None, keepdim=False, *, axis=None, keepdims=None):
    """``log(sum(exp(x)))`` computed stably (shifted by the maximum)."""
    x, axes, kd = _args("logsumexp", input, dim, axis, keepdim, keepdims)
    x = to_float(x)
    m = bind("reduce_max", x, axes=axes) if x.numel() else None
    if m is None:
        return log(sum(exp(x), axes, keepdim=kd))
    m = where(isinf(m), 0.0, m)
    mk = _keep(m, axes, True, x.ndim)
    s = log(sum(exp(sub(x, mk)), axes, keepdim=kd))
    return add(s, mk if kd else m)


def any(input, dim=None, keepdim=False, *, axis=None, keepdims=None):
    x, axes, kd = _args("any", input, dim, axis, keepdim, keepdims)
    b = cast(x, D.bool_)
    if x.numel() == 0:
        return _keep(bind("reduce_sum", cast(b, D.int64), axes=axes) > 0, axes, kd, x.ndim)
    return _reduce("reduce_max", b, axes, kd)


def all(input, dim=None, keepdim=False, *, axis=None, keepdims=None):
    x, axes, kd = _args("all", input, dim, axis, keepdim, keepdims)
    b = cast(x, D.bool_)
    if x.numel() == 0:
        return _keep(bind("reduce_sum", cast(b, D.int64), axes=axes) >= 0, axes, kd, x.ndim)
    return _reduce("reduce_min", b, axes, kd)


def count_nonzero(input, dim=None):
    x = operand(input)
    return sum(cast(x, D.bool_), dim)


def _scan(prim, name, input, dim, dtype):
    x = operand(input)
    if dim is None:
        raise user_error(TypeError, f"{name}: dim is required")
    if x.ndim == 0:
        return _accum_dtype(x, dtype)
    a = norm_axis(dim, x.shape, name)
    return bind(prim, _accum_dtype(x, dtype), axis=a)


def cumsum(input, dim=None, *, dtype=None, axis=None):
    return _scan("cumsum", "cumsum", input, dim_arg("cumsum", dim, axis), dtype)


def cumprod(input, dim=None, *, dtype=None, axis=None):
    return _scan("cumprod", "cumprod", input, dim_arg("cumprod", dim, axis), dtype)


@torch_name("SoftmaxBackward0")
def softmax(input, dim=None, dtype=None, *, axis=None):
    """``exp(x - max) / sum(exp(x - max))`` along ``dim``."""
    x = operand(input)
    x = to_float(x) if dtype is None else cast(x, D.as_dtype(dtype))
    d = dim_arg("softmax", dim, axis)
    if d is None:
        raise user_error(TypeError, "softmax: dim is required")
    a = norm_axes(d, x.shape, "softmax")
    if x.ndim == 0:  # exp(x - x) / itself: 1, or NaN for an infinite or NaN x
        e = exp(sub(x, x))
        return div(e, e)
    m = _keep(bind("reduce_max", x, axes=a), a, True, x.ndim) if x.numel() else 0.0
    e = exp(sub(x, m))
    return div(e, sum(e, a, keepdim=True))


@torch_name("LogSoftmaxBackward0")
def log_softmax(input, dim=None, dtype=None, *, axis=None):
    x = operand(input)
    x = to_float(x) if dtype is None else cast(x, D.as_dtype(dtype))
    d = dim_arg("log_softmax", dim, axis)
    if d is None:
        raise user_error(TypeError, "log_softmax: dim is required")
    if x.ndim == 0:
        return sub(x, x)
    return sub(x, logsumexp(x, d, keepdim=True))


def argsort(input, dim=-1, descending=False, stable=False, *, axis=None):
    x = operand(input)
    d = dim_arg("argsort", None if dim == -1 and axis is not None else dim, axis, -1)
    if x.ndim == 0:
        return bind("constant", value=0, dtype=D.int64)
    a = norm_axis(d, x.shape, "argsort")
    return bind("argsort", x, axis=a, descending=bool(descending))


def sort(input, dim=-1, descending=False, stable=False):
    """``(values, indices)``; stable; NaN sorts as the largest value, like PyTorch."""
    from .index import take_along_dim
    x = operand(input)
    if x.ndim == 0:
        return SortResult(x, argsort(x))
    i = argsort(x, dim, descending)
    return SortResult(take_along_dim(x, i, dim), i)


def topk(input, k, dim=-1, largest=True, sorted=True):
    """The ``k`` largest (or smallest) entries along ``dim`` and their indices."""
    from .index import take_along_dim
    from .shape import narrow
    x = operand(input)
    a = norm_axis(dim, x.shape, "topk") if x.ndim else 0
    n = x.shape[a] if x.ndim else 1
    if not 0 <= k <= n:
        raise user_error(IndexError, f"topk: k={k} is out of range for dimension {a} of size {n} "
                         f"(shape {list(x.shape)})")
    if x.ndim == 0:
        return TopkResult(x, bind("constant", value=0, dtype=D.int64))
    i = narrow(argsort(x, a, descending=largest), a, 0, k)
    return TopkResult(take_along_dim(x, i, a), i)


_ = neg  # re-exported helpers used by other modules
