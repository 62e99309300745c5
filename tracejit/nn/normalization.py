"""Normalization layers: ``BatchNorm1d``, ``BatchNorm2d``, ``LayerNorm``.

Input: PyTorch's constructor arguments. Output: Modules with PyTorch's parameters (``weight``
ones, ``bias`` zeros) and, for batch norm, buffers ``running_mean``, ``running_var`` and
``num_batches_tracked``, updated in place by ``forward`` in training mode.

>>> import tracejit as tj
>>> bn = tj.nn.BatchNorm2d(3)
>>> y = bn(tj.randn(4, 3, 5, 5))
>>> [round(float(v), 4) for v in y.mean(dim=(0, 2, 3))]
[0.0, 0.0, 0.0]
>>> list(bn.state_dict())
['weight', 'bias', 'running_mean', 'running_var', 'num_batches_tracked']
"""

from __future__ import annotations

import numpy as np

from .. import dtypes as D
from ..autograd.grad_mode import no_grad
from ..errors import user_error
from ..ops import elementwise as E
from ..tensor import Tensor
from . import functional as F
from .layers import empty_parameter
from .module import Module

__all__ = ["BatchNorm1d", "BatchNorm2d", "LayerNorm"]


class _BatchNorm(Module):
    _ndims: tuple[int, ...] = ()

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = True, track_running_stats: bool = True, device=None,
                 dtype=None, *, bias: bool = True):
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        self._has_bias = affine and bias
        if affine:
            self.weight = empty_parameter((num_features,), device, dtype)
        else:
            self.register_parameter("weight", None)
        if self._has_bias:
            self.bias = empty_parameter((num_features,), device, dtype)
        else:
            self.register_parameter("bias", None)
        dt = (D.float32 if dtype is None else D.as_dtype(dtype)).np
        if track_running_stats:
            self.register_buffer("running_mean", Tensor._wrap(np.zeros(num_features, dt)))
            self.register_buffer("running_var", Tensor._wrap(np.ones(num_features, dt)))
            self.register_buffer("num_batches_tracked", Tensor._wrap(np.zeros((), np.int64)))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)
        self.reset_parameters()

    def reset_running_stats(self) -> None:
        if self.track_running_stats:
            with no_grad():
                self.running_mean.zero_()
                self.running_var.fill_(1)
                self.num_batches_tracked.zero_()

    def reset_parameters(self) -> None:
        self.reset_running_stats()
        with no_grad():
            if self.weight is not None:
                self.weight.fill_(1)
            if self.bias is not None:
                self.bias.zero_()

    def _check_input_dim(self, x) -> None:
        if x.ndim not in self._ndims:
            want = " or ".join(f"{d}D" for d in self._ndims)
            raise user_error(ValueError, f"expected {want} input (got {x.ndim}D input)")

    def forward(self, input):
        self._check_input_dim(input)
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats and self.num_batches_tracked is not None:
            with no_grad():
                self.num_batches_tracked.add_(1)
            if self.momentum is None:  # cumulative moving average (a tensor: may be traced)
                factor = E.div(1.0, self.num_batches_tracked)
        use_batch = self.training or (self.running_mean is None and self.running_var is None)
        track = not self.training or self.track_running_stats
        return F.batch_norm(input, self.running_mean if track else None,
                            self.running_var if track else None, self.weight, self.bias,
                            use_batch, factor, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                f"affine={self.affine}, bias={self._has_bias}, "
                f"track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    """Batch norm over ``(N, C)`` or ``(N, C, L)`` input (statistics per channel C)."""

    _ndims = (2, 3)


class BatchNorm2d(_BatchNorm):
    """Batch norm over ``(N, C, H, W)`` input (statistics per channel C)."""

    _ndims = (4,)


class LayerNorm(Module):
    """Normalizes over the trailing ``normalized_shape`` dims, then applies an elementwise
    affine map (``weight`` ones, ``bias`` zeros)."""

    def __init__(self, normalized_shape, eps: float = 1e-5, elementwise_affine: bool = True,
                 bias: bool = True, device=None, dtype=None):
        super().__init__()
        if isinstance(normalized_shape, int):
            normalized_shape = (normalized_shape,)
        self.normalized_shape = tuple(normalized_shape)
        self.eps, self.elementwise_affine = eps, elementwise_affine
        self._has_bias = elementwise_affine and bias
        if elementwise_affine:
            self.weight = empty_parameter(self.normalized_shape, device, dtype)
            with no_grad():
                self.weight.fill_(1)
        else:
            self.register_parameter("weight", None)
        if self._has_bias:
            self.bias = empty_parameter(self.normalized_shape, device, dtype)
        else:
            self.register_parameter("bias", None)

    def forward(self, input):
        return F.layer_norm(input, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.normalized_shape}, eps={self.eps}, "
                f"elementwise_affine={self.elementwise_affine}, bias={self._has_bias}")
