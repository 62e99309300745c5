"""Random numbers with explicit keys (JAX-style), and the bit-to-distribution transforms.

Input: keys ``i64[2]`` = (seed, counter offset), shapes, dtypes. Output: Tensors. Everything
draws from the counter-based ``random_bits`` primitive (Philox-4x32-10): the numbers depend on
the key and nothing else, so they are identical on every backend, inside or outside compiled
code. ``key``, ``split``, ``uniform``, ``normal``, ``randint`` and ``bernoulli`` work anywhere,
including inside `tj.compile`. PyTorch's generator API (``tj.manual_seed``, ``tj.rand``, ...) is
in `tracejit/generator.py` and uses the same transforms.

>>> import tracejit as tj
>>> k1, k2 = tj.random.split(tj.random.key(0))
>>> tj.random.uniform(k1, (2,)).shape
(2,)
"""

from __future__ import annotations

import math

import numpy as np

from . import dtypes as D
from .errors import user_error
from .ops import elementwise as E
from .ops.common import cast, operand, shape_arg
from .tensor import Tensor
from .trace import bind

__all__ = ["key", "split", "uniform", "normal", "randint", "bernoulli"]

SEED_MASK = (1 << 63) - 1


# -- from bits to distributions (graph ops, so they compile) -----------------------------------

def _uniform01(k: Tensor, shape, dt: D.DType) -> Tensor:
    """Uniform [0, 1) in `dt`, with as many random mantissa bits as `dt` holds exactly."""
    if dt == D.float64:
        w = bind("random_bits", k, shape=shape, words=2)
        hi = E.floor_divide(w[..., 0], 32)          # 27 bits
        lo = E.floor_divide(w[..., 1], 64)          # 26 bits
        return E.mul(cast(E.add(E.mul(hi, 2**26), lo), D.float64), 2.0**-53)
    bits = bind("random_bits", k, shape=shape)
    keep = 11 if dt == D.float16 else 24
    return cast(E.mul(cast(E.floor_divide(bits, 2 ** (32 - keep)), D.float64), 2.0 ** -keep), dt)


def _normal01(k: Tensor, shape, dt: D.DType) -> Tensor:
    """Box-Muller over two uniforms; computed in float64, rounded to `dt`."""
    w = bind("random_bits", k, shape=tuple(shape) + (2,), words=1)
    u1 = E.mul(cast(E.add(w[..., 0], 1), D.float64), 2.0**-32)   # (0, 1]: log is finite
    u2 = E.mul(cast(w[..., 1], D.float64), 2.0**-32)
    r = E.sqrt(E.mul(E.log(u1), -2.0))
    return cast(E.mul(r, E.cos(E.mul(u2, 2 * math.pi))), dt)


def _float_dtype(dtype, name):
    dt = D.as_dtype(dtype) if dtype is not None else D.float32
    if not dt.is_floating_point:
        raise user_error(TypeError, f"{name}: dtype must be floating point, got {dt.name}")
    return dt



def key(seed) -> Tensor:
    """A key: ``i64[2]`` holding (seed, counter offset 0). `seed` may be a traced integer."""
    if isinstance(seed, Tensor):
        from .ops.shape import cat, reshape
        s = reshape(cast(seed, D.int64), 1)
        return cat([s, E.mul(s, 0)])
    return operand(np.array([int(seed) & SEED_MASK, 0], dtype=np.int64))


def _check_key(k, name) -> Tensor:
    k = operand(k)
    if k.shape != (2,) or k.dtype != D.int64:
        raise user_error(TypeError, f"{name}: expected a key from tj.random.key (i64[2]), got "
                         f"{k.dtype.name}{list(k.shape)}")
    return k


def split(k, num: int = 2) -> Tensor:
    """`num` new independent keys, stacked as ``i64[num, 2]``."""
    from .ops.shape import stack
    k = _check_key(k, "split")
    w = bind("random_bits", k, shape=(num,), words=2)
    seeds = E.add(E.mul(E.remainder(w[..., 0], 2**31), 2**32), w[..., 1])
    return stack([seeds, E.mul(seeds, 0)], dim=1)


def uniform(k, shape=(), dtype=None, minval=0.0, maxval=1.0) -> Tensor:
    """Uniform samples in ``[minval, maxval)`` drawn with key `k`."""
    k = _check_key(k, "uniform")
    u = _uniform01(k, shape_arg("uniform", (shape,)), _float_dtype(dtype, "uniform"))
    if (minval, maxval) == (0.0, 1.0):
        return u
    return E.add(E.mul(u, E.sub(maxval, minval)), minval)


def normal(k, shape=(), dtype=None) -> Tensor:
    """Standard normal samples drawn with key `k`."""
    k = _check_key(k, "normal")
    return _normal01(k, shape_arg("normal", (shape,)), _float_dtype(dtype, "normal"))


def randint(k, shape, minval, maxval, dtype=None) -> Tensor:
    """Integers uniform in ``[minval, maxval)`` drawn with key `k`."""
    k = _check_key(k, "randint")
    u = _uniform01(k, shape_arg("randint", (shape,)), D.float64)
    return cast(E.add(E.floor(E.mul(u, E.sub(maxval, minval))), minval),
                D.as_dtype(dtype) if dtype is not None else D.int64)


def bernoulli(k, p=0.5, shape=None) -> Tensor:
    """Booleans that are True with probability `p`."""
    k = _check_key(k, "bernoulli")
    shape = operand(p).shape if shape is None else shape_arg("bernoulli", (shape,))
    return E.lt(_uniform01(k, shape, D.float32), p)
