"""`tj.nn.functional`: PyTorch's functional neural-network API over the op library.

Input: Tensors (or arrays) and PyTorch's arguments. Output: Tensors built from `tracejit.ops`
only, so every function works eagerly, under `tj.compile` and under the derivative transforms.
Activations, ``linear``, dropout and normalization live here; convolution and pooling in
`functional_conv`, losses in `functional_loss` (re-exported here).

>>> import tracejit as tj
>>> import tracejit.nn.functional as F
>>> F.relu(tj.tensor([-1.0, 2.0]))
tensor([0., 2.])
>>> F.linear(tj.ones(2, 3), tj.ones(4, 3), tj.zeros(4)).shape
(2, 4)
"""

from __future__ import annotations

import math
import warnings

from .. import dtypes as D
from ..autograd.grad_mode import no_grad
from ..autograd.graph import torch_name
from ..errors import user_error
from ..ops import elementwise as E
from ..ops import index as I
from ..ops import linalg as L
from ..ops import reduce as R
from ..ops import shape as S
from ..ops.common import cast, norm_axis, operand, promote, to_float
from ._args import NNError, size_str
from .functional_conv import (
    adaptive_avg_pool2d,
    adaptive_max_pool2d,
    avg_pool2d,
    conv2d,
    max_pool2d,
)
from .functional_loss import (
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    cross_entropy,
    huber_loss,
    l1_loss,
    mse_loss,
    nll_loss,
    smooth_l1_loss,
)

__all__ = [
    # activations
    "relu", "relu6", "leaky_relu", "elu", "selu", "celu", "silu", "mish", "gelu", "sigmoid",
    "tanh", "softplus", "softsign", "logsigmoid", "hardtanh", "hardsigmoid", "hardswish",
    "softmax", "softmin", "log_softmax", "normalize",
    # layers
    "linear", "dropout", "dropout2d", "embedding", "layer_norm", "batch_norm", "flatten",
    "pad", "one_hot",
    "conv2d", "max_pool2d", "avg_pool2d", "adaptive_avg_pool2d", "adaptive_max_pool2d",
    # losses
    "cross_entropy", "nll_loss", "mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss",
    "binary_cross_entropy", "binary_cross_entropy_with_logits",
]

pad = S.pad
one_hot = I.one_hot
flatten = S.flatten
sigmoid = E.sigmoid
tanh = E.tanh
softplus = E.softplus


# -- activations ----------------------------------------------------------------------------
# `inplace=True` is accepted for PyTorch compatibility; the result is always a new tensor
# (what code that uses the return value sees either way).

def relu(input, inplace: bool = False):
    """``max(x, 0)``, with derivative 0 at 0 as in PyTorch."""
    return E.relu(input)


def relu6(input, inplace: bool = False):
    return hardtanh(input, 0.0, 6.0)


def hardtanh(input, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False):
    return E.clamp(to_float(operand(input)), min_val, max_val)


def leaky_relu(input, negative_slope: float = 0.01, inplace: bool = False):
    """``x`` for x > 0, else ``negative_slope * x``."""
    x = to_float(operand(input))
    return E.where(E.gt(x, 0), x, E.mul(x, negative_slope))


def _neg_expm1(x):
    """``expm1(min(x, 0))``: the negative branch of ELU-like functions, finite (with a finite
    derivative) where the positive branch is taken."""
    return E.expm1(E.minimum(x, 0.0))


def elu(input, alpha: float = 1.0, inplace: bool = False):
    """``x`` for x > 0, else ``alpha * (exp(x) - 1)``."""
    x = to_float(operand(input))
    return E.where(E.gt(x, 0), x, E.mul(_neg_expm1(x), alpha))


def celu(input, alpha: float = 1.0, inplace: bool = False):
    x = to_float(operand(input))
    return E.where(E.gt(x, 0), x, E.mul(_neg_expm1(E.div(x, alpha)), alpha))


_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


def selu(input, inplace: bool = False):
    return E.mul(elu(input, _SELU_ALPHA), _SELU_SCALE)


def silu(input, inplace: bool = False):
    """``x * sigmoid(x)`` (swish)."""
    x = to_float(operand(input))
    return E.mul(x, E.sigmoid(x))


def mish(input, inplace: bool = False):
    x = to_float(operand(input))
    return E.mul(x, E.tanh(E.softplus(x)))


def gelu(input, approximate: str = "none"):
    """``x * Phi(x)``; ``approximate='tanh'`` uses PyTorch's tanh formula."""
    return E.gelu(input, approximate=approximate)


def softsign(input):
    x = to_float(operand(input))
    return E.div(x, E.add(E.abs(x), 1.0))


def logsigmoid(input):
    """``log(sigmoid(x)) = -softplus(-x)``, stable for large ``|x|``."""
    x = to_float(operand(input))
    return E.neg(E.add(E.log1p(E.exp(E.neg(E.abs(x)))), E.maximum(E.neg(x), 0.0)))


def hardsigmoid(input, inplace: bool = False):
    x = to_float(operand(input))
    return E.clamp(E.add(E.div(x, 6.0), 0.5), 0.0, 1.0)


def hardswish(input, inplace: bool = False):
    x = to_float(operand(input))
    return E.mul(x, hardsigmoid(x))


def _implicit_dim(name: str, ndim: int, stacklevel: int) -> int:
    warnings.warn(f"Implicit dimension choice for {name} has been deprecated. Change the call to "
                  "include dim=X as an argument.", UserWarning, stacklevel=stacklevel)
    return 0 if ndim in (0, 1, 3) else 1


def softmax(input, dim=None, _stacklevel: int = 3, dtype=None):
    """``exp(x) / sum(exp(x))`` along ``dim`` (PyTorch's legacy implicit dim, with its warning,
    when ``dim`` is None)."""
    x = operand(input)
    if dim is None:
        dim = _implicit_dim("softmax", x.ndim, _stacklevel)
    return R.softmax(x, dim, dtype=dtype)


def softmin(input, dim=None, _stacklevel: int = 3, dtype=None):
    x = operand(input)
    if dim is None:
        dim = _implicit_dim("softmin", x.ndim, _stacklevel)
    return R.softmax(E.neg(to_float(x)), dim, dtype=dtype)


def log_softmax(input, dim=None, _stacklevel: int = 3, dtype=None):
    """``x - logsumexp(x)`` along ``dim``."""
    x = operand(input)
    if dim is None:
        dim = _implicit_dim("log_softmax", x.ndim, _stacklevel)
    return R.log_softmax(x, dim, dtype=dtype)


def normalize(input, p: float = 2.0, dim: int = 1, eps: float = 1e-12):
    """``x / max(||x||_p, eps)`` along ``dim``."""
    x = to_float(operand(input))
    return E.div(x, E.clamp(R.norm(x, p, dim, keepdim=True), min=eps))


# -- layers ---------------------------------------------------------------------------------

def _linear_name(input, weight, bias=None):
    return "AddmmBackward0" if bias is not None and getattr(input, "ndim", 0) == 2 else None


@torch_name(_linear_name)
def linear(input, weight, bias=None):
    """``input @ weight.T + bias``: ``input`` ``(*, in)``, ``weight`` ``(out, in)``.

    >>> import tracejit as tj
    >>> import tracejit.nn.functional as F
    >>> F.linear(tj.tensor([1.0, 2.0]), tj.tensor([[1.0, 1.0], [0.0, 1.0]])).tolist()
    [3.0, 2.0]
    """
    x, w = operand(input), operand(weight)
    if w.ndim not in (1, 2):
        raise user_error(NNError, f"linear: weight must be 1-d or 2-d (out_features, "
                         f"in_features), got weight of size {size_str(w.shape)}")
    if x.ndim == 0 or x.shape[-1] != w.shape[-1]:
        rows = math.prod(x.shape[:-1]) if x.ndim else 1
        cols = x.shape[-1] if x.ndim else 1
        wt = w.shape[::-1] if w.ndim == 2 else (w.shape[0], 1)
        raise user_error(NNError, f"linear: mat1 and mat2 shapes cannot be multiplied "
                         f"({rows}x{cols} and {wt[0]}x{wt[1]}) (input {size_str(x.shape)}, "
                         f"weight {size_str(w.shape)})")
    out = L.matmul(x, S.transpose(w) if w.ndim == 2 else w)
    if bias is not None:
        out = E.add(out, bias)
    return out


def _check_p(p) -> float:
    if not 0.0 <= p <= 1.0:
        raise user_error(ValueError, f"dropout probability has to be between 0 and 1, but got "
                         f"{p}")
    return float(p)


def _dropout_mask(x, p: float, shape):
    from ..generator import rand
    dt = x.dtype if x.dtype.is_floating_point else D.float32
    return E.lt(rand(shape, dtype=dt), 1.0 - p)


def dropout(input, p: float = 0.5, training: bool = True, inplace: bool = False):
    """Zeroes each element with probability ``p`` and scales the rest by ``1 / (1 - p)``;
    the identity when ``training`` is False. Draws from tracejit's global generator
    (``tj.manual_seed`` makes it reproducible).

    >>> import tracejit as tj
    >>> import tracejit.nn.functional as F
    >>> F.dropout(tj.ones(3), 0.5, training=False).tolist()
    [1.0, 1.0, 1.0]
    """
    p = _check_p(p)
    x = operand(input)
    if not training or p == 0.0:
        return x
    if p == 1.0:
        return E.mul(x, 0.0)
    return E.where(_dropout_mask(x, p, x.shape), E.mul(x, 1.0 / (1.0 - p)), 0.0)


def dropout2d(input, p: float = 0.5, training: bool = True, inplace: bool = False):
    """Zeroes whole channels: ``(N, C, H, W)`` (or ``(C, H, W)``) inputs keep or drop each
    ``[n, c]`` plane together."""
    p = _check_p(p)
    x = operand(input)
    if x.ndim not in (3, 4):
        raise user_error(NNError, f"dropout2d: expected a 3-d or 4-d input, got input of size "
                         f"{size_str(x.shape)}")
    if not training or p == 0.0:
        return x
    if p == 1.0:
        return E.mul(x, 0.0)
    shape = x.shape[:-2] + (1, 1)
    return E.where(_dropout_mask(x, p, shape), E.mul(x, 1.0 / (1.0 - p)), 0.0)


def embedding(input, weight, padding_idx=None, max_norm=None, norm_type=2.0,
              scale_grad_by_freq=False, sparse=False):
    """Rows of ``weight`` picked by the integer indices ``input``: shape ``input.shape +
    (embedding_dim,)``. The row ``padding_idx`` gets no gradient."""
    idx, w = operand(input), operand(weight)
    if not idx.dtype.is_integer:
        raise user_error(NNError, f"embedding: expected an integer index tensor, got "
                         f"{idx.dtype.name}")
    if w.ndim != 2:
        raise user_error(NNError, f"embedding: weight must be 2-d (num_embeddings, "
                         f"embedding_dim), got {size_str(w.shape)}")
    if max_norm is not None or scale_grad_by_freq or sparse:
        raise user_error(NotImplementedError, "embedding: max_norm, scale_grad_by_freq and "
                         "sparse are not supported")
    out = I.getitem(w, idx, op="embedding")
    if padding_idx is not None:
        pad_row = S.unsqueeze(E.eq(idx, norm_axis(padding_idx, w.shape[0], "embedding")), -1)
        out = E.where(pad_row, E.stop_gradient(out), out)
    return out


def layer_norm(input, normalized_shape, weight=None, bias=None, eps: float = 1e-5):
    """Normalizes over the trailing ``normalized_shape`` dims (biased variance), then scales by
    ``weight`` and shifts by ``bias``."""
    x = to_float(operand(input))
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    k = len(shape)
    if k == 0 or x.shape[x.ndim - k:] != shape or x.ndim < k:
        raise user_error(NNError, f"Given normalized_shape={list(shape)}, expected input with "
                         f"shape [*, {', '.join(map(str, shape))}], but got input of size"
                         f"{size_str(x.shape)}")
    dims = tuple(range(x.ndim - k, x.ndim))
    mean = R.mean(x, dims, keepdim=True)
    var = R.var(x, dims, keepdim=True, correction=0)
    out = E.mul(E.sub(x, mean), E.rsqrt(E.add(var, eps)))
    if weight is not None:
        out = E.mul(out, weight)
    if bias is not None:
        out = E.add(out, bias)
    return out


def batch_norm(input, running_mean, running_var, weight=None, bias=None,
               training: bool = False, momentum: float = 0.1, eps: float = 1e-5):
    """Normalizes each channel (dim 1) with the batch statistics (``training``) or the running
    ones. In training, ``running_mean``/``running_var`` (when given) are updated in place:
    ``(1 - momentum) * running + momentum * batch`` (unbiased variance), as in PyTorch."""
    x = to_float(operand(input))
    if x.ndim < 2:
        raise user_error(NNError, f"batch_norm: expected a 2-d or higher input (N, C, ...), got "
                         f"input of size {size_str(x.shape)}")
    c = x.shape[1]
    bshape = (1, c) + (1,) * (x.ndim - 2)
    dims = (0,) + tuple(range(2, x.ndim))
    for name, t in (("running_mean", running_mean), ("running_var", running_var),
                    ("weight", weight), ("bias", bias)):
        if t is not None and operand(t).shape != (c,):
            raise user_error(NNError, f"batch_norm: {name} should contain {c} elements not "
                             f"{operand(t).numel()}")
    if training:
        count = x.numel() // c
        if count <= 1:
            raise user_error(ValueError, f"Expected more than 1 value per channel when "
                             f"training, got input size {size_str(x.shape)}")
        mean = R.mean(x, dims)
        var = R.var(x, dims, correction=0)
        if running_mean is not None and running_var is not None:
            with no_grad():
                m, v = E.stop_gradient(mean), E.stop_gradient(var)
                unbiased = E.mul(v, count / (count - 1))
                running_mean.copy_(E.add(E.mul(running_mean, 1.0 - momentum),
                                         E.mul(m, momentum)))
                running_var.copy_(E.add(E.mul(running_var, 1.0 - momentum),
                                        E.mul(unbiased, momentum)))
    else:
        if running_mean is None or running_var is None:
            raise user_error(ValueError, "batch_norm: running_mean and running_var are needed "
                             "when training=False")
        mean, var = operand(running_mean), operand(running_var)
    mean, var = promote(mean, var)
    out = E.mul(E.sub(x, S.reshape(cast(mean, x.dtype), bshape)),
                S.reshape(E.rsqrt(E.add(cast(var, x.dtype), eps)), bshape))
    if weight is not None:
        out = E.mul(out, S.reshape(operand(weight), bshape))
    if bias is not None:
        out = E.add(out, S.reshape(operand(bias), bshape))
    return out
