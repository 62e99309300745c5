"""Creation functions of SPEC §1: zeros, ones, full, empty, eye, arange, linspace and the
``*_like`` variants.

Input: shapes (varargs, a tuple or ``size=``), fill values, dtypes. Output: Tensors. Inside a
trace they become ``constant``/``iota`` nodes broadcast to the shape (never a large literal);
outside they are realized at once.
"""

from __future__ import annotations

import functools
import math

from .. import dtypes as D
from ..errors import user_error
from ..lazy import on_device
from ..tensor import _check_device
from ..trace import bind
from .common import cast, operand, shape_arg

__all__ = ["zeros", "ones", "full", "empty", "eye", "arange", "linspace", "zeros_like",
           "ones_like", "full_like", "empty_like", "logspace"]


def _placed(fn):
    """Runs a creation function with its ``device=`` as the default device of the ops it
    binds, so a CUDA tensor is computed on the device instead of copied there."""
    @functools.wraps(fn)
    def f(*args, device=None, **kw):
        if device is None:
            return fn(*args, **kw)
        d = _check_device(device)
        with on_device(d if d.type == "cuda" else None):
            return fn(*args, device=d, **kw)
    return f


def _finish(t, requires_grad, device=None):
    if device is not None:  # (built where `on_device` said: on a device, no copy is made)
        t = t.to(device)
    if requires_grad:
        t.requires_grad_(True)
    return t


@_placed
def full(*args, size=None, fill_value=None, dtype=None, device=None, requires_grad=False):
    """A tensor of ``size`` filled with ``fill_value`` (dtype inferred from it by default):
    ``full((2, 3), 7)``, ``full(size=(2, 3), fill_value=7)``.

    >>> import tracejit as tj
    >>> tj.full((2, 2), 7)
    tensor([[7, 7],
            [7, 7]])
    """
    args = list(args)
    if fill_value is None:
        if not args or (size is None and len(args) < 2):
            raise user_error(TypeError, "full: missing fill_value")
        fill_value = args.pop()
    shape = shape_arg("full", tuple(args), size)
    if hasattr(fill_value, "shape"):
        v = operand(fill_value)
        if v.ndim:
            raise user_error(ValueError, "full: fill_value must be a scalar")
        dt = D.as_dtype(dtype) if dtype is not None else v.dtype
        c = cast(v, dt)
    else:
        dt = D.as_dtype(dtype) if dtype is not None else D.scalar_dtype(fill_value)
        v = fill_value
        if dt.is_integer and isinstance(v, float) and not math.isfinite(v):
            raise user_error(ValueError, f"full: cannot fill an integer tensor with {v}")
        c = bind("constant", value=v, dtype=dt)
    return _finish(c if c.shape == shape else bind("broadcast", c, shape=shape), requires_grad,
                   device)


def _filled(name, value):
    def f(*shape, size=None, dtype=None, device=None, requires_grad=False):
        shape = shape_arg(name, shape, size)
        dt = D.as_dtype(dtype) if dtype is not None else D.float32
        return full(shape, fill_value=bool(value) if dt.is_bool else value, dtype=dt,
                    device=device, requires_grad=requires_grad)
    f.__name__ = name
    f.__doc__ = f"A float32 (or ``dtype``) tensor of {value}s; shape as varargs, tuple or size=."
    return f


zeros = _filled("zeros", 0)
ones = _filled("ones", 1)


def empty(*shape, size=None, dtype=None, device=None, requires_grad=False):
    """Like `zeros` (tracejit never hands out uninitialized memory)."""
    return zeros(*shape, size=size, dtype=dtype, device=device, requires_grad=requires_grad)


def _like(name, maker):
    def f(input, dtype=None, device=None, requires_grad=False, **kw):
        x = operand(input)
        if device is None and not x._is_tracer and x.device.type != "cpu":
            device = x.device  # (PyTorch: on the input's device)
        return maker(x.shape, dtype=dtype or x.dtype, device=device, requires_grad=requires_grad)
    f.__name__ = name
    return f


zeros_like = _like("zeros_like", zeros)
ones_like = _like("ones_like", ones)
empty_like = _like("empty_like", empty)


def full_like(input, fill_value, dtype=None, device=None, requires_grad=False):
    x = operand(input)
    if device is None and not x._is_tracer and x.device.type != "cpu":
        device = x.device
    return full(x.shape, fill_value=fill_value, dtype=dtype or x.dtype, device=device,
                requires_grad=requires_grad)


@_placed
def eye(n, m=None, *, dtype=None, device=None, requires_grad=False):
    m = n if m is None else m
    shape = shape_arg("eye", (n, m))
    r = bind("iota", shape=shape, axis=0, dtype=D.int64)
    c = bind("iota", shape=shape, axis=1, dtype=D.int64)
    dt = D.as_dtype(dtype) if dtype is not None else D.float32
    return _finish(cast(bind("eq", r, c), dt), requires_grad, device)


def _ramp(n: int, start, step, dt: D.DType):
    """``start + i * step`` for i < n, computed in float64 (or int64) and cast to `dt`."""
    wide = D.float64 if (dt.is_floating_point or isinstance(start, float)
                         or isinstance(step, float)) else D.int64
    i = bind("iota", shape=(n,), axis=0, dtype=wide)
    v = bind("add", bind("mul", i, bind("constant", value=step, dtype=wide)),
             bind("constant", value=start, dtype=wide))
    return cast(v, dt)


@_placed
def arange(start, end=None, step=1, *, dtype=None, device=None, requires_grad=False):
    """``[start, start + step, ...)`` up to ``end``; int64 for ints, float32 otherwise.

    >>> import tracejit as tj
    >>> tj.arange(4.0)
    tensor([0., 1., 2., 3.])
    """
    if end is None:
        start, end = 0, start
    vals = [float(v) if hasattr(v, "item") else v for v in (start, end, step)]
    start, end, step = vals
    if step == 0:
        raise user_error(ValueError, "arange: step must be nonzero")
    if not all(math.isfinite(v) for v in vals):
        raise user_error(ValueError, f"arange: bounds must be finite, got {vals}")
    n = max(math.ceil((end - start) / step), 0)
    if dtype is None:
        dt = D.int64 if all(isinstance(v, int) for v in vals) else D.float32
    else:
        dt = D.as_dtype(dtype)
    return _finish(_ramp(n, start, step, dt), requires_grad, device)


@_placed
def linspace(start, end, steps, *, dtype=None, device=None, requires_grad=False):
    """``steps`` evenly spaced values from ``start`` to ``end`` inclusive."""
    if steps < 0:
        raise user_error(ValueError, f"linspace: number of steps must be non-negative, got "
                         f"{steps}")
    dt = D.as_dtype(dtype) if dtype is not None else D.float32
    start, end = float(start), float(end)
    if steps <= 1:
        return _finish(full((steps,), fill_value=start, dtype=dt), requires_grad, device)
    step = (end - start) / (steps - 1)
    half = steps // 2  # PyTorch's symmetric formula: exact at both ends
    i = bind("iota", shape=(steps,), axis=0, dtype=D.float64)
    lo = bind("add", bind("mul", i, bind("constant", value=step, dtype=D.float64)),
              bind("constant", value=start, dtype=D.float64))
    hi = bind("sub", bind("constant", value=end, dtype=D.float64),
              bind("mul", bind("sub", bind("constant", value=float(steps - 1), dtype=D.float64),
                               i), bind("constant", value=step, dtype=D.float64)))
    pick = bind("lt", i, bind("constant", value=float(half), dtype=D.float64))
    return _finish(cast(bind("select", pick, lo, hi), dt), requires_grad, device)


@_placed
def logspace(start, end, steps, base=10.0, *, dtype=None, device=None, requires_grad=False):
    from .elementwise import pow
    dt = D.as_dtype(dtype) if dtype is not None else D.float32
    return _finish(cast(pow(base, linspace(start, end, steps, dtype=D.float64)), dt),
                   requires_grad)
