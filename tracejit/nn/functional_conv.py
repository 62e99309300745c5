"""Convolution and pooling over NCHW images: ``conv2d``, ``max_pool2d``, ``avg_pool2d``,
``adaptive_avg_pool2d``, ``adaptive_max_pool2d``.

Input: Tensors of shape ``(N, C, H, W)`` (or unbatched ``(C, H, W)``) and PyTorch's static
arguments. Output: Tensors built from existing ops only, so they differentiate and compile like
any other code. There is no convolution primitive: a 2-d window operation takes one strided
``slice`` of the padded input per kernel offset. ``conv2d`` stacks them into ``(N, C, kh*kw, Ho,
Wo)`` ("im2col") and contracts that with the weight in one matmul (one ``einsum`` batch entry per
group); pooling folds the slices elementwise (a running maximum, a sum), which fuses into a
single loop kernel and never materializes the stacked windows.

>>> import tracejit as tj
>>> import tracejit.nn.functional as F
>>> x = tj.arange(16.0).reshape(1, 1, 4, 4)
>>> F.conv2d(x, tj.ones(1, 1, 2, 2), stride=2).tolist()
[[[[10.0, 18.0], [42.0, 50.0]]]]
>>> F.max_pool2d(x, 2).tolist()
[[[[5.0, 7.0], [13.0, 15.0]]]]
"""

from __future__ import annotations

import math

import numpy as np

from ..autograd.graph import torch_name
from ..errors import user_error
from ..ops import elementwise as E
from ..ops import linalg as L
from ..ops import reduce as R
from ..ops import shape as S
from ..ops.common import operand, promote
from ..trace import bind
from ._args import NNError, pair, size_str

__all__ = ["conv2d", "max_pool2d", "avg_pool2d", "adaptive_avg_pool2d", "adaptive_max_pool2d"]


def _batched(input, name: str, empty_msg: bool = False):
    """``(x, unbatched)``: a 3-d input gains a batch dim of 1 (removed again at the end)."""
    x = operand(input)
    if x.ndim == 3:
        return S.reshape(x, (1,) + x.shape), True
    if x.ndim == 4:
        return x, False
    if empty_msg:  # PyTorch's pooling message
        raise user_error(NNError, f"{name}: non-empty 3D or 4D (batch mode) tensor expected for "
                         f"input, but got input of size: {size_str(x.shape)}")
    raise user_error(NNError, f"Expected 3D (unbatched) or 4D (batched) input to {name}, but got "
                     f"input of size: {size_str(x.shape)}")


def _unbatch(y, unbatched: bool):
    return S.reshape(y, y.shape[1:]) if unbatched else y


def _positive(name: str, what: str, v: tuple[int, ...]):
    if any(a <= 0 for a in v):
        raise user_error(NNError, f"{name}: non-positive {what} is not supported, got {what}="
                         f"{v}")


def _slices(xp, kernel, stride, dilation, out_hw):
    """One strided slice ``(N, C, Ho, Wo)`` of the padded input `xp` per kernel offset, in
    row-major offset order (as the weight's ``(kh, kw)`` flattens)."""
    n, c = xp.shape[:2]
    (kh, kw), (sh, sw), (dh, dw), (ho, wo) = kernel, stride, dilation, out_hw
    out = []
    for i in range(kh):
        for j in range(kw):
            h0, w0 = i * dh, j * dw
            out.append(bind("slice", xp, start=(0, 0, h0, w0),
                            stop=(n, c, h0 + sh * (ho - 1) + 1, w0 + sw * (wo - 1) + 1),
                            step=(1, 1, sh, sw)))
    return out


def _windows(xp, kernel, stride, dilation, out_hw):
    """The slices of `_slices` stacked: ``(N, C, kh*kw, Ho, Wo)`` ("im2col")."""
    cols = _slices(xp, kernel, stride, dilation, out_hw)
    return S.stack(cols, 2) if len(cols) > 1 else S.unsqueeze(cols[0], 2)


def _conv_padding(padding, kernel, stride, dilation):
    """``((top, bottom), (left, right))`` for an int/tuple padding or 'same'/'valid'."""
    if isinstance(padding, str):
        if padding == "valid":
            return ((0, 0), (0, 0))
        if padding != "same":
            raise user_error(ValueError, f"Invalid padding string {padding!r}, should be one of "
                             "{'valid', 'same'}")
        if any(s != 1 for s in stride):
            raise user_error(NNError, "padding='same' is not supported for strided "
                             "convolutions")
        # PyTorch's split of the total d*(k-1): the extra element goes to the bottom/right
        tot = [d * (k - 1) for d, k in zip(dilation, kernel)]
        return tuple((t // 2, t - t // 2) for t in tot)
    p = pair(padding, "padding")
    if any(v < 0 for v in p):
        raise user_error(NNError, f"negative padding is not supported, got padding={p}")
    return tuple((v, v) for v in p)


@torch_name("ConvolutionBackward0")
def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups: int = 1):
    """2-d cross-correlation over ``(N, C_in, H, W)`` (or unbatched ``(C_in, H, W)``) input,
    like ``torch.nn.functional.conv2d``.

    Args:
        input: ``(N, C_in, H, W)`` or ``(C_in, H, W)``.
        weight: ``(C_out, C_in / groups, kH, kW)``.
        bias: ``(C_out,)`` or None.
        stride, dilation: an int or a pair.
        padding: an int, a pair, ``'valid'`` (no padding) or ``'same'`` (output size = input
            size; stride 1 only).
        groups: split the input channels into this many groups, each convolved with its own
            ``C_out / groups`` filters.

    Returns:
        ``(N, C_out, H_out, W_out)`` with ``H_out = (H + 2 pad - dil (kH - 1) - 1) // stride +
        1``.

    >>> import tracejit as tj
    >>> import tracejit.nn.functional as F
    >>> F.conv2d(tj.ones(2, 4, 5, 5), tj.ones(6, 2, 3, 3), padding=1, groups=2).shape
    (2, 6, 5, 5)
    """
    x, unbatched = _batched(input, "conv2d")
    w = operand(weight)
    if w.ndim != 4:
        raise user_error(NNError, f"conv2d: expected weight to be 4-dimensional (out_channels, "
                         f"in_channels / groups, kH, kW), but got weight of size "
                         f"{size_str(w.shape)}")
    if not isinstance(groups, int) or groups <= 0:
        raise user_error(NNError, f"non-positive groups is not supported, got groups={groups}")
    cout, cg, kh, kw = w.shape
    if cout % groups:
        raise user_error(NNError, f"Given groups={groups}, expected weight to be divisible by "
                         f"{groups} at dimension 0, but got weight of size {size_str(w.shape)} "
                         "instead")
    if x.shape[1] != cg * groups:
        shown = x.shape[1:] if unbatched else x.shape
        raise user_error(NNError, f"Given groups={groups}, weight of size {size_str(w.shape)}, "
                         f"expected input{size_str(shown)} to have {cg * groups} channels, but "
                         f"got {x.shape[1]} channels instead")
    stride, dilation = pair(stride, "stride"), pair(dilation, "dilation")
    _positive("conv2d", "stride", stride)
    _positive("conv2d", "dilation", dilation)
    pads = _conv_padding(padding, (kh, kw), stride, dilation)
    args = [x, w]
    if bias is not None:
        b = operand(bias)
        if b.shape != (cout,):
            raise user_error(NNError, f"Given weight of size {size_str(w.shape)}, expected bias "
                             f"to be 1-dimensional with {cout} elements, but got bias of size "
                             f"{size_str(b.shape)} instead")
        args.append(b)
    args = promote(*args, name="conv2d")
    if not args[0].dtype.is_floating_point:
        raise user_error(TypeError, f"conv2d: expected floating point input and weight, got "
                         f"{args[0].dtype.name}")
    x, w = args[0], args[1]
    (pt, pb), (pl, pr) = pads
    hp, wp = x.shape[2] + pt + pb, x.shape[3] + pl + pr
    ekh, ekw = dilation[0] * (kh - 1) + 1, dilation[1] * (kw - 1) + 1
    if hp < ekh or wp < ekw:
        raise user_error(NNError, f"Calculated padded input size per channel: ({hp} x {wp}). "
                         f"Kernel size: ({ekh} x {ekw}). Kernel size can't be greater than "
                         "actual input size")
    ho, wo = (hp - ekh) // stride[0] + 1, (wp - ekw) // stride[1] + 1
    xp = S.pad(x, (pl, pr, pt, pb)) if pt or pb or pl or pr else x
    n = x.shape[0]
    cols = _windows(xp, (kh, kw), stride, dilation, (ho, wo))        # (N, C, K, Ho, Wo)
    cols = S.reshape(cols, (n, groups, cg * kh * kw, ho * wo))
    wm = S.reshape(w, (groups, cout // groups, cg * kh * kw))
    if groups == 1:
        out = L.matmul(S.reshape(wm, wm.shape[1:]), S.reshape(cols, (n,) + cols.shape[2:]))
    else:
        out = L.einsum("ngkp,gok->ngop", cols, wm)
    out = S.reshape(out, (n, cout, ho, wo))
    if bias is not None:
        out = E.add(out, S.reshape(args[2], (cout, 1, 1)))
    return _unbatch(out, unbatched)


# -- pooling ----------------------------------------------------------------------------------

def _pool_args(name, kernel_size, stride, padding, dilation):
    k = pair(kernel_size, "kernel_size")
    s = k if stride is None or (isinstance(stride, (tuple, list)) and not stride) else \
        pair(stride, "stride")
    p, d = pair(padding, "padding"), pair(dilation, "dilation")
    if any(v <= 0 for v in k):
        raise user_error(NNError, f"{name}: kernel size should be greater than zero, but got "
                         f"kH: {k[0]} kW: {k[1]}")
    if any(v <= 0 for v in s):
        raise user_error(NNError, f"{name}: stride should be greater than zero, but got dH: "
                         f"{s[0]} dW: {s[1]}")
    if any(v <= 0 for v in d):
        raise user_error(NNError, f"{name}: dilation should be greater than zero, but got "
                         f"dilationH: {d[0]} dilationW: {d[1]}")
    for pv, kv, dv in zip(p, k, d):
        if pv < 0 or pv > kv // 2:
            raise user_error(NNError, f"{name}: pad should be at most half of effective kernel "
                             f"size, but got pad={pv}, kernel_size={kv} and dilation={dv}")
    return k, s, p, d


def _pool_out(n: int, k: int, s: int, p: int, d: int, ceil_mode: bool) -> int:
    """PyTorch's pooling output size; in ceil mode the last window must start inside the input
    or its left padding."""
    span = n + 2 * p - d * (k - 1) - 1
    out = (span + (s - 1 if ceil_mode else 0)) // s + 1
    if ceil_mode and (out - 1) * s >= n + p:
        out -= 1
    return out


def _pool_slices(name, x, k, s, p, d, ceil_mode, fill):
    """The window slices of a pooling op, `x` padded with `fill` (and, in ceil mode, with as
    much extra on the bottom/right as the last window needs), and the output size."""
    h, w = x.shape[2:]
    ho, wo = (_pool_out(n, *a, ceil_mode) for n, a in zip((h, w), zip(k, s, p, d)))
    if ho < 1 or wo < 1:
        raise user_error(NNError, f"{name}: Given input size: ({x.shape[1]}x{h}x{w}). "
                         f"Calculated output size: ({x.shape[1]}x{ho}x{wo}). Output size is too "
                         "small")
    need = [(o - 1) * st + dl * (kk - 1) + 1 for o, st, dl, kk in zip((ho, wo), s, d, k)]
    hi = [max(nd - n - pp, 0) for nd, n, pp in zip(need, (h, w), p)]
    if p[0] or p[1] or hi[0] or hi[1]:
        x = S.pad(x, (p[1], hi[1], p[0], hi[0]), value=fill)
    return _slices(x, k, s, d, (ho, wo)), (ho, wo)


@torch_name("MaxPool2DWithIndicesBackward0")
def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode: bool = False,
               return_indices: bool = False):
    """The maximum over each ``kernel_size`` window (padding counts as -inf), like
    ``torch.nn.functional.max_pool2d``.

    ``stride`` defaults to ``kernel_size``. The gradient goes to the first maximal element of
    each window, as in PyTorch. With ``return_indices=True`` also returns, for each output, the
    flat index ``row * W + col`` of the chosen element in its input plane (``max_unpool2d``'s
    format).

    >>> import tracejit as tj
    >>> import tracejit.nn.functional as F
    >>> F.max_pool2d(tj.arange(9.0).reshape(1, 3, 3), 2, stride=1).tolist()
    [[[4.0, 5.0], [7.0, 8.0]]]
    """
    x, unbatched = _batched(input, "max_pool2d", empty_msg=True)
    k, s, p, d = _pool_args("max_pool2d", kernel_size, stride, padding, dilation)
    if x.dtype.is_floating_point:
        fill = -math.inf
    elif x.dtype.is_bool:
        raise user_error(TypeError, "max_pool2d: not supported for bool tensors")
    else:
        fill = int(np.iinfo(x.dtype.np).min)
    parts, (ho, wo) = _pool_slices("max_pool2d", x, k, s, p, d, ceil_mode, fill)
    # a running maximum that takes a later element only when it is strictly greater (or NaN):
    # PyTorch's scan, so ties send the whole gradient to the first maximum and NaN propagates
    out = parts[0]
    for part in parts[1:]:
        take = E.gt(part, out)
        if x.dtype.is_floating_point:
            take = E.logical_or(take, E.isnan(part))
        out = E.where(take, part, out)
    if not return_indices:
        return _unbatch(out, unbatched)
    # the offset of the first element equal to the maximum (each test reads only the final
    # maximum, so the fused kernel stays linear in the window size)
    def is_max(part):
        hit = E.eq(part, out)
        return E.logical_or(hit, E.isnan(part)) if x.dtype.is_floating_point else hit

    arg = 0
    for i in range(len(parts) - 1, -1, -1):
        arg = E.where(is_max(parts[i]), i, arg)
    width = x.shape[3]
    base = ((np.arange(ho) * s[0] - p[0])[:, None] * width
            + (np.arange(wo) * s[1] - p[1])[None, :]).astype(np.int64)
    pos = E.add(E.add(E.mul(E.floor_divide(arg, k[1]), d[0] * width),
                      E.mul(E.remainder(arg, k[1]), d[1])), operand(base))
    return _unbatch(out, unbatched), _unbatch(pos, unbatched)


@torch_name("AvgPool2DBackward0")
def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
               count_include_pad: bool = True, divisor_override=None):
    """The mean over each ``kernel_size`` window, like ``torch.nn.functional.avg_pool2d``.

    Zero padding counts in the divisor when ``count_include_pad`` (the default); elements a
    ``ceil_mode`` window reads past the padding never count. ``divisor_override`` replaces the
    divisor.

    >>> import tracejit as tj
    >>> import tracejit.nn.functional as F
    >>> F.avg_pool2d(tj.ones(1, 1, 3, 3), 2, padding=1, count_include_pad=False).tolist()
    [[[[1.0, 1.0], [1.0, 1.0]]]]
    """
    x, unbatched = _batched(input, "avg_pool2d", empty_msg=True)
    k, s, p, d = _pool_args("avg_pool2d", kernel_size, stride, padding, 1)
    if not x.dtype.is_floating_point:
        raise user_error(TypeError, f"avg_pool2d: expected a floating point input, got "
                         f"{x.dtype.name} (shape {size_str(x.shape)})")
    parts, (ho, wo) = _pool_slices("avg_pool2d", x, k, s, p, d, ceil_mode, 0.0)
    total = parts[0]
    for part in parts[1:]:
        total = E.add(total, part)
    if divisor_override is not None:
        if not divisor_override:
            raise user_error(NNError, "avg_pool2d: divisor must be not zero")
        return _unbatch(E.div(total, float(divisor_override)), unbatched)
    div = np.outer(*(_window_counts(n, o, kk, st, pp, count_include_pad)
                     for n, o, kk, st, pp in zip(x.shape[2:], (ho, wo), k, s, p)))
    if np.all(div == div.flat[0]):
        return _unbatch(E.div(total, float(div.flat[0])), unbatched)
    return _unbatch(E.div(total, operand(div.astype(x.dtype.np))), unbatched)


def _window_counts(n, out, k, s, p, include_pad) -> np.ndarray:
    """Per output position along one axis: how many elements its window averages over."""
    start = np.arange(out) * s - p
    end = np.minimum(start + k, n + p)
    if include_pad:
        return (end - start).astype(np.float64)
    return (np.minimum(end, n) - np.maximum(start, 0)).astype(np.float64)


# -- adaptive pooling -------------------------------------------------------------------------

def _adaptive(name, input, output_size, reduce):
    """Separable adaptive pooling: output row i reduces input rows ``floor(i H / Ho)`` to
    ``ceil((i + 1) H / Ho)``, then the same over columns."""
    x, unbatched = _batched(input, name, empty_msg=True)
    if isinstance(output_size, (tuple, list)):
        size = tuple(x.shape[2 + i] if v is None else v for i, v in enumerate(output_size))
    else:
        size = (output_size, output_size)
    size = pair(size, "output_size")
    if any(v <= 0 for v in size):
        raise user_error(NNError, f"{name}: output_size must be positive, got {size}")
    for axis, out in ((2, size[0]), (3, size[1])):
        n = x.shape[axis]
        if n == out:
            continue
        parts = [reduce(S.slice_axis(x, axis, (i * n) // out, -((-(i + 1) * n) // out)), axis)
                 for i in range(out)]
        x = S.stack(parts, axis)
    return _unbatch(x, unbatched)


def adaptive_avg_pool2d(input, output_size):
    """Average pooling to a fixed ``output_size`` (an int, a pair, None keeps a dim).

    >>> import tracejit as tj
    >>> import tracejit.nn.functional as F
    >>> F.adaptive_avg_pool2d(tj.ones(2, 3, 7, 5), 1).shape
    (2, 3, 1, 1)
    """
    x = operand(input)
    if not x.dtype.is_floating_point:
        raise user_error(TypeError, f"adaptive_avg_pool2d: expected a floating point input, "
                         f"got {x.dtype.name}")
    return _adaptive("adaptive_avg_pool2d", x, output_size, lambda t, a: R.mean(t, a))


def adaptive_max_pool2d(input, output_size, return_indices: bool = False):
    """Max pooling to a fixed ``output_size``."""
    if return_indices:
        raise user_error(NotImplementedError, "adaptive_max_pool2d: return_indices=True is not "
                         "supported; use max_pool2d(..., return_indices=True) with an explicit "
                         "kernel")
    return _adaptive("adaptive_max_pool2d", input, output_size, lambda t, a: R.amax(t, a))
