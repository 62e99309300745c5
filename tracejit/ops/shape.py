"""Shape ops of SPEC §3: reshape, views, broadcasting, transposes, joins, splits, flips, pads.

Input: Tensors and static shape arguments. Output: Tensors built from the structural primitives
(reshape, broadcast, transpose, slice, rev, pad, concatenate, gather). Every argument is
normalized here (negative dims, ``-1`` sizes), so primitives only ever see canonical params.
"""

from __future__ import annotations

import math
import operator

import numpy as np

from .. import dtypes as D
from ..errors import user_error
from ..tensor import Tensor
from ..trace import bind
from .common import dim_arg, norm_axes, norm_axis, operand, promote, shape_arg

__all__ = ["reshape", "view", "flatten", "unflatten", "squeeze", "unsqueeze", "expand",
           "expand_as", "broadcast_to", "repeat", "tile", "transpose", "permute", "swapaxes",
           "moveaxis", "cat", "concatenate", "concat", "stack", "hstack", "vstack", "chunk",
           "split", "unbind", "flip", "roll", "pad", "narrow", "slice_axis", "t",
           "atleast_1d", "ravel", "movedim", "broadcast_tensors", "fliplr", "flipud"]


def reshape(input, *shape):
    """A Tensor with the same data and a new shape; one dimension may be ``-1``."""
    x = operand(input)
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    try:
        shape = tuple(operator.index(s) for s in shape)
    except TypeError:
        raise user_error(TypeError, f"reshape: shape must be ints, got {shape!r}") from None
    n = x.numel()
    if shape.count(-1) > 1:
        raise user_error(ValueError, f"reshape: only one dimension can be -1, got {list(shape)}")
    if -1 in shape:
        rest = math.prod(s for s in shape if s != -1)
        if rest == 0 or n % rest:
            raise user_error(ValueError, f"reshape: shape {list(shape)} is invalid for input of "
                             f"size {n} (shape {list(x.shape)})")
        shape = tuple(n // rest if s == -1 else s for s in shape)
    if any(s < 0 for s in shape) or math.prod(shape) != n:
        raise user_error(ValueError, f"reshape: shape {list(shape)} is invalid for input of "
                         f"size {n} (shape {list(x.shape)})")
    return x if shape == x.shape else bind("reshape", x, shape=shape)


def view(input, *shape):
    if len(shape) == 1 and isinstance(shape[0], D.DType):
        raise user_error(NotImplementedError, "view(dtype) (bit reinterpretation) is not "
                         "supported")
    return reshape(input, *shape)


def ravel(input):
    return reshape(input, -1)


def flatten(input, start_dim=0, end_dim=-1):
    x = operand(input)
    if x.ndim == 0:
        return reshape(x, 1)
    s, e = norm_axis(start_dim, x.shape, "flatten"), norm_axis(end_dim, x.shape, "flatten")
    if s > e:
        raise user_error(ValueError, "flatten: start_dim cannot come after end_dim")
    return reshape(x, x.shape[:s] + (math.prod(x.shape[s:e + 1]),) + x.shape[e + 1:])


def unflatten(input, dim, sizes):
    x = operand(input)
    a = norm_axis(dim, x.shape, "unflatten")
    sizes = tuple(sizes)
    if -1 in sizes:
        rest = math.prod(s for s in sizes if s != -1)
        sizes = tuple(x.shape[a] // rest if s == -1 else s for s in sizes)
    if math.prod(sizes) != x.shape[a]:
        raise user_error(ValueError, f"unflatten: sizes {list(sizes)} don't multiply up to the "
                         f"size of dim {a} ({x.shape[a]}) of shape {list(x.shape)}")
    return reshape(x, x.shape[:a] + sizes + x.shape[a + 1:])


def squeeze(input, dim=None, *, axis=None):
    x = operand(input)
    d = dim_arg("squeeze", dim, axis)
    if d is None:
        return reshape(x, tuple(s for s in x.shape if s != 1))
    axes = norm_axes(d, x.shape, "squeeze")
    return reshape(x, tuple(s for i, s in enumerate(x.shape) if not (i in axes and s == 1)))


def unsqueeze(input, dim):
    x = operand(input)
    a = norm_axis(dim, x.ndim + 1, "unsqueeze")
    return reshape(x, x.shape[:a] + (1,) + x.shape[a:])


def atleast_1d(input):
    x = operand(input)
    return reshape(x, 1) if x.ndim == 0 else x


def _broadcast(x, shape: tuple[int, ...], name: str):
    ok = x.ndim <= len(shape) and all(a in (1, b) for a, b in zip(x.shape[::-1], shape[::-1]))
    if not ok:
        raise user_error(ValueError, f"{name}: cannot broadcast shape {list(x.shape)} to "
                         f"{list(shape)} (only size-1 dims expand, and dims can only be added "
                         "in front)")
    return x if x.shape == shape else bind("broadcast", x, shape=shape)


def broadcast_to(input, *shape):
    return _broadcast(operand(input), shape_arg("broadcast_to", shape), "broadcast_to")


def broadcast_tensors(*tensors):
    from ..primitives.elementwise import broadcast_shapes
    from ..primitives.registry import RuleError
    xs = [operand(t) for t in tensors]
    try:
        shape = broadcast_shapes(*(x.shape for x in xs))
    except RuleError as e:
        raise user_error(ValueError, f"broadcast_tensors: {e}") from None
    return tuple(broadcast_to(x, shape) for x in xs)


def expand(input, *sizes):
    """Broadcasts size-1 dims to ``sizes``; ``-1`` keeps a dimension's size."""
    x = operand(input)
    if len(sizes) == 1 and isinstance(sizes[0], (tuple, list)):
        sizes = tuple(sizes[0])
    lead = len(sizes) - x.ndim
    if lead < 0:
        raise user_error(ValueError, f"expand: the number of sizes ({len(sizes)}) must be at "
                         f"least the number of dims ({x.ndim})")
    shape = tuple(x.shape[i - lead] if s == -1 and i >= lead else s for i, s in enumerate(sizes))
    return _broadcast(x, shape_arg("expand", shape), "expand")


def expand_as(input, other):
    return _broadcast(operand(input), operand(other).shape, "expand_as")


def repeat(input, *repeats):
    """Tiles the tensor ``repeats`` times along each dimension (PyTorch's ``repeat``)."""
    x = operand(input)
    reps = shape_arg("repeat", repeats)
    if len(reps) < x.ndim:
        raise user_error(ValueError, f"repeat: number of repeat dims ({len(reps)}) can not be "
                         f"smaller than the number of tensor dims ({x.ndim})")
    x = reshape(x, (1,) * (len(reps) - x.ndim) + x.shape)
    inter = []
    for r, s in zip(reps, x.shape):
        inter += [r, s]
    y = bind("broadcast", reshape(x, tuple(v for s in x.shape for v in (1, s))),
             shape=tuple(inter))
    return reshape(y, tuple(r * s for r, s in zip(reps, x.shape)))


def tile(input, dims):
    x = operand(input)
    dims = tuple(dims) if isinstance(dims, (tuple, list)) else (dims,)
    return repeat(x, (1,) * (x.ndim - len(dims)) + dims)


def permute(input, *dims):
    x = operand(input)
    if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
        dims = tuple(dims[0])
    perm = tuple(norm_axis(d, x.shape, "permute") for d in dims)
    if sorted(perm) != list(range(x.ndim)):
        raise user_error(ValueError, f"permute: dims {list(dims)} are not a permutation of "
                         f"{x.ndim} dims")
    return x if perm == tuple(range(x.ndim)) else bind("transpose", x, perm=perm)


def transpose(input, dim0=None, dim1=None):
    """Swaps two dims (PyTorch); with no dims, reverses all of them (numpy)."""
    x = operand(input)
    if dim0 is None and dim1 is None:
        return permute(x, tuple(range(x.ndim))[::-1])
    if x.ndim == 0:
        return x
    a, b = norm_axis(dim0, x.shape, "transpose"), norm_axis(dim1, x.shape, "transpose")
    perm = list(range(x.ndim))
    perm[a], perm[b] = perm[b], perm[a]
    return permute(x, perm)


swapaxes = transpose


def t(input):
    x = operand(input)
    if x.ndim > 2:
        raise user_error(ValueError, f"t: expects a tensor with <= 2 dims, got {x.ndim}")
    return transpose(x)


def moveaxis(input, source, destination):
    x = operand(input)
    src = [norm_axis(s, x.shape, "moveaxis") for s in np.atleast_1d(source).tolist()]
    dst = [norm_axis(s, x.shape, "moveaxis") for s in np.atleast_1d(destination).tolist()]
    order = [i for i in range(x.ndim) if i not in src]
    for d, s in sorted(zip(dst, src)):
        order.insert(d, s)
    return permute(x, order)


movedim = moveaxis


def _seq(name, tensors):
    if isinstance(tensors, (list, tuple)) and tensors:
        return promote(*tensors, name=name)
    raise user_error(TypeError, f"{name}: expected a non-empty list or tuple of tensors")


def cat(tensors, dim=0, *, axis=None):
    """Joins tensors along an existing dim."""
    xs = _seq("cat", tensors)
    d = dim_arg("cat", None if dim == 0 and axis is not None else dim, axis, 0)
    xs = [x for x in xs if not (x.ndim == 1 and x.shape[0] == 0)] or xs[:1]  # torch's legacy
    a = norm_axis(d, xs[0].shape, "cat")
    for x in xs:
        if x.ndim != xs[0].ndim or any(s != r for i, (s, r) in enumerate(zip(x.shape, xs[0].shape))
                                      if i != a):
            raise user_error(ValueError, "cat: sizes of tensors must match except in dimension "
                             f"{a}; got shapes " + ", ".join(str(list(y.shape)) for y in xs))
    return _fresh(xs[0], *tensors) if len(xs) == 1 else bind("concatenate", *xs, axis=a)


concatenate = concat = cat


def stack(tensors, dim=0, *, axis=None):
    xs = _seq("stack", tensors)
    d = dim_arg("stack", None if dim == 0 and axis is not None else dim, axis, 0)
    if len({x.shape for x in xs}) != 1:
        raise user_error(ValueError, "stack: expects each tensor to be equal size, got "
                         + ", ".join(str(list(x.shape)) for x in xs))
    a = norm_axis(d, xs[0].ndim + 1, "stack")
    return cat([unsqueeze(x, a) for x in xs], a)


def hstack(tensors):
    xs = [atleast_1d(x) for x in _seq("hstack", tensors)]
    return cat(xs, 0 if xs[0].ndim == 1 else 1)


def vstack(tensors):
    xs = [operand(x) for x in _seq("vstack", tensors)]
    return cat([reshape(x, 1, -1) if x.ndim < 2 else x for x in xs], 0)


def _fresh(x, *inputs):
    """`x`, copied when it is one of the caller's own eager Tensors: like PyTorch's ``flip``,
    ``roll``, ``cat`` and ``pad``, these ops never return (or alias) an input."""
    if not any(x is t for t in inputs):
        return x
    if x._is_tracer:  # a new tracer object, so in-place ops on the result leave `x` alone
        return Tensor._tracer(x._node, x._builder, x._value)
    return x.clone()


def slice_axis(x, axis: int, start: int, stop: int, step: int = 1):
    """``x[..., start:stop:step, ...]`` along `axis` with Python slice semantics."""
    n = x.shape[axis]
    s, e, st = slice(start, stop, step).indices(n)
    if st < 0:  # reverse, then take the mirrored forward slice
        count = len(range(s, e, st))
        x = bind("rev", x, axes=(axis,))
        s, e, st = n - 1 - s, n - 1 - s + max(count - 1, 0) * (-st) + (1 if count else 0), -st
    if (s, e, st) == (0, n, 1):
        return x
    start_, stop_, step_ = [0] * x.ndim, list(x.shape), [1] * x.ndim
    start_[axis], stop_[axis], step_[axis] = s, max(e, s), st
    return bind("slice", x, start=tuple(start_), stop=tuple(stop_), step=tuple(step_))


def narrow(input, dim, start, length):
    x = operand(input)
    a = norm_axis(dim, x.shape, "narrow")
    if start < 0:
        start += x.shape[a]
    if not (0 <= start and length >= 0 and start + length <= x.shape[a]):
        raise user_error(IndexError, f"narrow: start ({start}) + length ({length}) exceeds "
                         f"dimension size ({x.shape[a]})")
    return slice_axis(x, a, start, start + length)


def split(tensor, split_size_or_sections, dim=0):
    x = operand(tensor)
    a = norm_axis(dim, x.shape, "split")
    n = x.shape[a]
    if isinstance(split_size_or_sections, int):
        s = split_size_or_sections
        if s <= 0:
            raise user_error(ValueError, f"split: split_size must be positive, got {s}")
        sizes = [min(s, n - i) for i in range(0, n, s)] or [0]
    else:
        sizes = list(split_size_or_sections)
        if sum(sizes) != n:
            raise user_error(ValueError, f"split: sections {sizes} don't sum to the size {n} "
                             f"of dim {a} (shape {list(x.shape)})")
    out, off = [], 0
    for s in sizes:
        out.append(slice_axis(x, a, off, off + s))
        off += s
    return tuple(out)


def chunk(input, chunks, dim=0):
    x = operand(input)
    a = norm_axis(dim, x.shape, "chunk")
    if chunks <= 0:
        raise user_error(ValueError, f"chunk: chunks must be positive, got {chunks}")
    if x.shape[a] == 0:  # PyTorch gives `chunks` empty pieces
        return split(x, [0] * chunks, a)
    return split(x, -(-x.shape[a] // chunks), a)


def unbind(input, dim=0):
    x = operand(input)
    a = norm_axis(dim, x.shape, "unbind")
    return tuple(squeeze(slice_axis(x, a, i, i + 1), a) for i in range(x.shape[a]))


def flip(input, dims=None, *, axis=None):
    x = operand(input)
    d = dim_arg("flip", dims, axis)
    axes = norm_axes(d, x.shape, "flip")
    return bind("rev", x, axes=axes) if axes else _fresh(x, input)


def fliplr(input):
    return flip(input, (1,))


def flipud(input):
    return flip(input, (0,))


def roll(input, shifts, dims=None):
    """Rotates elements along ``dims``; with no dims, over the flattened tensor."""
    x = operand(input)
    if dims is None:
        if not isinstance(shifts, int):
            raise user_error(ValueError, "roll: shifts must be an int when dims is None")
        return reshape(roll(reshape(x, -1), shifts, 0), x.shape)
    shifts = (shifts,) if isinstance(shifts, int) else tuple(shifts)
    dims = (dims,) if isinstance(dims, int) else tuple(dims)
    if len(shifts) != len(dims):
        raise user_error(ValueError, f"roll: shifts {shifts} and dims {dims} differ in length")
    for s, d in zip(shifts, dims):
        a = norm_axis(d, x.shape, "roll")
        n = x.shape[a]
        if n == 0 or s % n == 0:
            continue
        k = s % n
        x = cat([slice_axis(x, a, n - k, n), slice_axis(x, a, 0, n - k)], a)
    return _fresh(x, input)


def pad(input, pad, mode="constant", value=None):
    """PyTorch's ``F.pad``: ``pad`` lists (left, right) pairs starting from the last dim.

    Negative amounts crop. Modes: 'constant' (with ``value``), 'reflect', 'replicate',
    'circular'.
    """
    x = operand(input)
    pad = tuple(pad)
    if len(pad) % 2 or len(pad) // 2 > x.ndim:
        raise user_error(ValueError, f"pad: padding length {len(pad)} must be even and at most "
                         f"twice the number of dims ({x.ndim})")
    lo, hi = [0] * x.ndim, [0] * x.ndim
    for i in range(len(pad) // 2):
        lo[x.ndim - 1 - i], hi[x.ndim - 1 - i] = pad[2 * i], pad[2 * i + 1]
    for a in range(x.ndim):  # negative amounts crop first
        if lo[a] < 0 or hi[a] < 0:
            x = slice_axis(x, a, max(-lo[a], 0), x.shape[a] - max(-hi[a], 0))
            lo[a], hi[a] = max(lo[a], 0), max(hi[a], 0)
    if mode == "constant":
        v = 0 if value is None else value
        if not any(lo) and not any(hi):
            return _fresh(x, input)
        return bind("pad", x, lo=tuple(lo), hi=tuple(hi),
                    value=float(v) if x.dtype.is_floating_point else int(v))
    if mode not in ("reflect", "replicate", "circular"):
        raise user_error(ValueError, f"pad: unknown mode {mode!r}")
    from .index import index_select
    for a in range(x.ndim):
        if not (lo[a] or hi[a]):
            continue
        n = x.shape[a]
        pos = np.arange(-lo[a], n + hi[a])
        if mode == "replicate":
            idx = np.clip(pos, 0, n - 1)
        elif mode == "circular":
            if lo[a] > n or hi[a] > n:
                raise user_error(ValueError, f"pad: circular padding ({lo[a]}, {hi[a]}) exceeds "
                                 f"the size {n} of dim {a} (shape {list(x.shape)})")
            idx = pos % n
        else:
            if lo[a] >= n or hi[a] >= n:
                raise user_error(ValueError, f"pad: reflect padding ({lo[a]}, {hi[a]}) must be "
                                 f"less than the size {n} of dim {a} (shape {list(x.shape)})")
            period = 2 * (n - 1)
            m = np.abs(pos) % period
            idx = np.where(m >= n, period - m, m)
        x = index_select(x, a, idx.astype(np.int64))
    return _fresh(x, input)
