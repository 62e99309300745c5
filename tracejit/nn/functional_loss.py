"""Loss functions: ``cross_entropy``, ``nll_loss``, ``mse_loss``, ``l1_loss``,
``smooth_l1_loss``, ``huber_loss``, ``binary_cross_entropy``,
``binary_cross_entropy_with_logits``.

Input: predictions and targets as Tensors, PyTorch's keyword arguments (``weight``,
``ignore_index``, ``reduction``, ``label_smoothing``, ...). Output: a 0-d Tensor (``'mean'``,
``'sum'``) or the per-element losses (``'none'``), built from existing ops so they differentiate
and compile. Class-index targets pick log-probabilities with ``take_along_dim``; ignored targets
are masked with ``where`` (never multiplied by 0, which would turn an infinite log-probability
into NaN).

>>> import tracejit as tj
>>> import tracejit.nn.functional as F
>>> logits = tj.tensor([[2.0, 0.0], [0.0, 2.0]])
>>> round(float(F.cross_entropy(logits, tj.tensor([0, 1]))), 4)
0.1269
"""

from __future__ import annotations

import warnings

from .. import dtypes as D
from ..autograd.graph import torch_name
from ..errors import user_error
from ..ops import elementwise as E
from ..ops import index as I
from ..ops import reduce as R
from ..ops import shape as S
from ..ops.common import cast, operand, promote, to_float
from ._args import NNError, check_reduction, legacy_reduction, size_str

__all__ = ["cross_entropy", "nll_loss", "mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss",
           "binary_cross_entropy", "binary_cross_entropy_with_logits"]


def _reduce(loss, reduction: str):
    if reduction == "mean":
        return R.mean(loss)
    if reduction == "sum":
        return R.sum(loss)
    return loss


def _class_targets(name, x, t, weight, ignore_index):
    """Checks input ``(N, C, d...)``/``(C,)`` against target ``(N, d...)``/``()``; returns the
    class dim and the weight (or None)."""
    if x.ndim == 0:
        raise user_error(NNError, f"{name}: input must have at least 1 dim (the classes), got a "
                         "0-d tensor")
    if not (t.dtype.is_integer or t.dtype == D.uint8):
        raise user_error(NNError, f"{name}: expected target dtype to be Long or Byte, but got "
                         f"{t.dtype.name} (target shape {size_str(t.shape)})")
    cdim = 1 if x.ndim >= 2 else 0
    if x.ndim <= 2 and t.ndim > 1:
        raise user_error(NNError, f"{name}: 0D or 1D target tensor expected, multi-target not "
                         f"supported (input {size_str(x.shape)}, target {size_str(t.shape)})")
    if x.ndim >= 2 and (t.ndim == 0 or t.shape[0] != x.shape[0]):
        tb = t.shape[0] if t.ndim else "none"
        raise user_error(ValueError, f"Expected input batch_size ({x.shape[0]}) to match target "
                         f"batch_size ({tb}).")
    want = x.shape[:1] + x.shape[2:] if x.ndim >= 2 else ()
    if t.shape != want:
        raise user_error(NNError, f"{name}: Expected target size {size_str(want)}, got "
                         f"{size_str(t.shape)} (input {size_str(x.shape)})")
    n_cls = x.shape[cdim]
    w = None
    if weight is not None:
        w = operand(weight)
        if w.shape != (n_cls,):
            raise user_error(NNError, f"{name}: weight tensor should be defined either for all "
                             f"{n_cls} classes or no classes but got weight tensor of shape: "
                             f"{size_str(w.shape)}")
    if not t._is_tracer and t.numel():
        v = t.numpy()
        bad = (v != ignore_index) & ((v < 0) | (v >= n_cls))
        if bad.any():
            raise user_error(IndexError, f"{name}: Target {v[bad].flat[0]} is out of bounds "
                             f"(there are {n_cls} classes).")
    return cdim, w


def _nll(logp, t, cdim, w, ignore_index):
    """Per-element ``-w[t] * logp[t]`` (0 where ignored) and the weights ``w[t]`` (0 where
    ignored)."""
    t = cast(t, D.int64)  # (uint8 targets could not even compare with ignore_index=-100)
    valid = E.ne(t, ignore_index)
    safe = E.where(valid, t, 0)
    picked = S.squeeze(I.take_along_dim(logp, S.unsqueeze(safe, cdim), cdim), cdim)
    if w is None:
        wt = cast(valid, logp.dtype)
        loss = E.where(valid, E.neg(picked), 0.0)
    else:
        w = cast(w, logp.dtype)
        wt = E.where(valid, I.getitem(w, safe), 0.0)
        loss = E.where(valid, E.neg(E.mul(picked, wt)), 0.0)
    return loss, wt


def _nll_reduce(loss, wt, reduction):
    if reduction == "mean":
        return E.div(R.sum(loss), R.sum(wt))
    return _reduce(loss, reduction)


@torch_name("NllLossBackward0")
def nll_loss(input, target, weight=None, size_average=None, ignore_index: int = -100,
             reduce=None, reduction: str = "mean"):
    """The negative log-likelihood of class indices under log-probabilities ``input``.

    ``input`` is ``(N, C)``, ``(N, C, d1, ...)`` or ``(C,)``; ``target`` holds class indices of
    shape ``(N,)``, ``(N, d1, ...)`` or ``()``. ``weight`` (``(C,)``) scales each class;
    ``'mean'`` divides by the summed weights of the non-ignored targets, as PyTorch does.

    >>> import tracejit as tj
    >>> import tracejit.nn.functional as F
    >>> F.nll_loss(tj.tensor([[-1.0, -2.0], [-3.0, -4.0]]), tj.tensor([1, 0])).item()
    2.5
    """
    reduction = legacy_reduction(size_average, reduce, reduction)
    x, t = operand(input), operand(target)
    cdim, w = _class_targets("nll_loss", x, t, weight, ignore_index)
    x = to_float(x)
    loss, wt = _nll(x, t, cdim, w, ignore_index)
    return _nll_reduce(loss, wt, reduction)


@torch_name("NllLossBackward0")
def cross_entropy(input, target, weight=None, size_average=None, ignore_index: int = -100,
                  reduce=None, reduction: str = "mean", label_smoothing: float = 0.0):
    """Cross entropy between logits ``input`` and ``target``, like
    ``torch.nn.functional.cross_entropy``.

    ``input`` is ``(N, C)``, ``(N, C, d1, ...)`` or unbatched ``(C,)``. ``target`` is either
    class indices (an integer tensor of shape ``(N,)``, ``(N, d1, ...)`` or ``()``; entries
    equal to ``ignore_index`` are skipped) or class probabilities (a float tensor of
    ``input``'s shape). ``weight`` (``(C,)``) rescales each class; with class indices and
    ``'mean'`` the result is divided by the summed weights of the counted targets.
    ``label_smoothing`` in [0, 1] mixes the target with the uniform distribution.

    >>> import tracejit as tj
    >>> import tracejit.nn.functional as F
    >>> x = tj.zeros(3, 4)
    >>> round(F.cross_entropy(x, tj.tensor([0, 1, 3])).item(), 4)   # log(4)
    1.3863
    >>> round(F.cross_entropy(x, tj.full((3, 4), 0.25)).item(), 4)
    1.3863
    """
    reduction = legacy_reduction(size_average, reduce, reduction)
    x, t = operand(input), operand(target)
    if not 0.0 <= label_smoothing <= 1.0:
        raise user_error(NNError, f"cross_entropy: label_smoothing must be between 0.0 and 1.0. "
                         f"Got: {label_smoothing}")
    if x.ndim == 0:
        raise user_error(NNError, "cross_entropy: input must have at least 1 dim (the classes), "
                         "got a 0-d tensor")
    cdim = 1 if x.ndim >= 2 else 0
    n_cls = x.shape[cdim]
    if t.dtype.is_floating_point:
        return _cross_entropy_probs(x, t, weight, reduction, label_smoothing, cdim)
    cdim, w = _class_targets("cross_entropy", x, t, weight, ignore_index)
    logp = R.log_softmax(to_float(x), cdim)
    loss, wt = _nll(logp, t, cdim, w, ignore_index)
    out = _nll_reduce(loss, wt, reduction)
    if label_smoothing == 0.0:
        return out
    # the smoothing term: -sum_c w_c logp_c per element, 0 where ignored; 'mean' divides by the
    # same total as the nll term (summed weights of counted targets, or their count)
    if w is not None:
        shape = [1] * logp.ndim
        shape[cdim] = n_cls
        lp = E.mul(logp, S.reshape(cast(w, logp.dtype), tuple(shape)))
    else:
        lp = logp
    smooth = E.where(E.ne(t, ignore_index), E.neg(R.sum(lp, cdim)), 0.0)
    smooth = _nll_reduce(smooth, wt, reduction)
    return E.add(E.mul(out, 1.0 - label_smoothing), E.mul(smooth, label_smoothing / n_cls))


def _cross_entropy_probs(x, t, weight, reduction, label_smoothing, cdim):
    if t.shape != x.shape:
        raise user_error(NNError, f"cross_entropy: class-probability targets must have the "
                         f"input's shape {size_str(x.shape)}, got target of shape "
                         f"{size_str(t.shape)} (class-index targets must be integers)")
    x, t = promote(to_float(x), t, name="cross_entropy")
    n_cls = x.shape[cdim]
    logp = R.log_softmax(x, cdim)
    if label_smoothing > 0.0:
        t = E.add(E.mul(t, 1.0 - label_smoothing), label_smoothing / n_cls)
    prod = E.mul(logp, t)
    if weight is not None:
        w = operand(weight)
        if w.shape != (n_cls,):
            raise user_error(NNError, f"cross_entropy: weight tensor should be defined either "
                             f"for all {n_cls} classes or no classes but got weight tensor of "
                             f"shape: {size_str(w.shape)}")
        shape = [1] * x.ndim
        shape[cdim] = n_cls
        prod = E.mul(prod, S.reshape(cast(w, x.dtype), tuple(shape)))
    loss = E.neg(R.sum(prod, cdim))
    return _reduce(loss, reduction)  # 'mean' averages over the N * d1 * ... elements


# -- regression and binary losses -------------------------------------------------------------

def _weighted(loss, weight):
    return loss if weight is None else E.mul(loss, weight)


def _pointwise_args(name, input, target, reduction):
    x, t = operand(input), operand(target)
    if x.shape != t.shape:
        warnings.warn(f"{name}: Using a target size ({size_str(t.shape)}) that is different to "
                      f"the input size ({size_str(x.shape)}). This will likely lead to incorrect "
                      "results due to broadcasting. Please ensure they have the same size.",
                      UserWarning, stacklevel=3)
    x, t = promote(x, t, name=name)
    x, t = S.broadcast_tensors(to_float(x), to_float(t))
    return x, t, check_reduction(reduction)


@torch_name("MseLossBackward0")
def mse_loss(input, target, size_average=None, reduce=None, reduction: str = "mean",
             weight=None):
    """Mean squared error ``(input - target) ** 2``, reduced.

    >>> import tracejit as tj
    >>> import tracejit.nn.functional as F
    >>> F.mse_loss(tj.tensor([1.0, 2.0]), tj.tensor([0.0, 0.0])).item()
    2.5
    """
    reduction = legacy_reduction(size_average, reduce, reduction)
    x, t, reduction = _pointwise_args("mse_loss", input, target, reduction)
    d = E.sub(x, t)
    return _reduce(_weighted(E.mul(d, d), weight), reduction)


def l1_loss(input, target, size_average=None, reduce=None, reduction: str = "mean",
            weight=None):
    """Mean absolute error ``|input - target|``, reduced."""
    reduction = legacy_reduction(size_average, reduce, reduction)
    x, t, reduction = _pointwise_args("l1_loss", input, target, reduction)
    return _reduce(_weighted(E.abs(E.sub(x, t)), weight), reduction)


def smooth_l1_loss(input, target, size_average=None, reduce=None, reduction: str = "mean",
                   beta: float = 1.0):
    """``0.5 d^2 / beta`` where ``|d| < beta``, else ``|d| - 0.5 beta`` (``d = input -
    target``)."""
    reduction = legacy_reduction(size_average, reduce, reduction)
    if beta < 0:
        raise user_error(NNError, f"smooth_l1_loss does not support negative values for beta, "
                         f"got {beta}")
    x, t, reduction = _pointwise_args("smooth_l1_loss", input, target, reduction)
    a = E.abs(E.sub(x, t))
    if beta == 0:
        return _reduce(a, reduction)
    return _reduce(E.where(E.lt(a, beta), E.div(E.mul(E.mul(a, a), 0.5), beta),
                           E.sub(a, 0.5 * beta)), reduction)


def huber_loss(input, target, reduction: str = "mean", delta: float = 1.0, weight=None):
    """``0.5 d^2`` where ``|d| <= delta``, else ``delta (|d| - 0.5 delta)``."""
    x, t, reduction = _pointwise_args("huber_loss", input, target, reduction)
    a = E.abs(E.sub(x, t))
    loss = E.where(E.le(a, delta), E.mul(E.mul(a, a), 0.5), E.mul(E.sub(a, 0.5 * delta), delta))
    return _reduce(_weighted(loss, weight), reduction)


def _same_size(name, x, t, deprecated: bool):
    if x.shape == t.shape:
        return
    if deprecated:
        raise user_error(ValueError, f"{name}: Using a target size ({size_str(t.shape)}) that "
                         f"is different to the input size ({size_str(x.shape)}) is deprecated. "
                         "Please ensure they have the same size.")
    raise user_error(ValueError, f"{name}: Target size ({size_str(t.shape)}) must be the same as "
                     f"input size ({size_str(x.shape)})")


def _safe_log(x):
    """``log(x)`` clamped below at -100 (PyTorch's BCE), with a finite derivative at x = 0."""
    pos = E.gt(x, 0.0)
    return E.where(pos, E.maximum(E.log(E.where(pos, x, 1.0)), -100.0), -100.0)


@torch_name("BinaryCrossEntropyBackward0")
def binary_cross_entropy(input, target, weight=None, size_average=None, reduce=None,
                         reduction: str = "mean"):
    """``-(t log(x) + (1 - t) log(1 - x))`` for probabilities ``input`` in [0, 1]; each log is
    clamped at -100, as in PyTorch.

    >>> import tracejit as tj
    >>> import tracejit.nn.functional as F
    >>> round(F.binary_cross_entropy(tj.tensor([0.5]), tj.tensor([1.0])).item(), 4)
    0.6931
    """
    reduction = legacy_reduction(size_average, reduce, reduction)
    x, t = operand(input), operand(target)
    _same_size("binary_cross_entropy", x, t, deprecated=True)
    if not x._is_tracer and x.numel():
        v = x.numpy()
        if not ((v >= 0) & (v <= 1)).all():
            raise user_error(NNError, "binary_cross_entropy: all elements of input should be "
                             "between 0 and 1")
    x, t = promote(to_float(x), t, name="binary_cross_entropy")
    loss = E.neg(E.add(E.mul(t, _safe_log(x)), E.mul(E.sub(1.0, t), _safe_log(E.sub(1.0, x)))))
    if weight is not None:
        loss = E.mul(loss, weight)
    return _reduce(loss, check_reduction(reduction))


def binary_cross_entropy_with_logits(input, target, weight=None, size_average=None, reduce=None,
                                     reduction: str = "mean", pos_weight=None):
    """``binary_cross_entropy(sigmoid(input), target)`` computed stably from the logits;
    ``pos_weight`` scales the positive term (per class, broadcast over the last dim).

    >>> import tracejit as tj
    >>> import tracejit.nn.functional as F
    >>> round(F.binary_cross_entropy_with_logits(tj.tensor([0.0]), tj.tensor([1.0])).item(), 4)
    0.6931
    """
    reduction = legacy_reduction(size_average, reduce, reduction)
    x, t = operand(input), operand(target)
    _same_size("binary_cross_entropy_with_logits", x, t, deprecated=False)
    x, t = promote(to_float(x), t, name="binary_cross_entropy_with_logits")
    # -log(sigmoid(x)) = log(1 + exp(-x)) = log1p(exp(-|x|)) + max(-x, 0), stable for any x;
    # the maximum's tie at x = 0 splits its derivative, which gives exactly -sigmoid(0) there
    sp = E.add(E.log1p(E.exp(E.neg(E.abs(x)))), E.maximum(E.neg(x), 0.0))
    if pos_weight is not None:
        lw = E.add(E.mul(E.sub(pos_weight, 1.0), t), 1.0)
        loss = E.add(E.mul(E.sub(1.0, t), x), E.mul(lw, sp))
    else:
        loss = E.add(E.mul(E.sub(1.0, t), x), sp)
    if weight is not None:
        loss = E.mul(loss, weight)
    return _reduce(loss, check_reduction(reduction))

