"""Moving Tensors between devices (``t.to("cuda")``, ``t.cpu()``, ``module.to(device)``).

Input: a realized or lazy Tensor and a target `tj.device`. Output: a Tensor on that device
holding a copy of the data: a numpy array on the CPU, a `runtime.cuda.DeviceArray` on a CUDA
device. The move is differentiable: on the autograd tape, its backward moves the gradient back
to the source device (as PyTorch's ``to``). Inside a trace a move is the identity: where a
compiled function runs is its ``device=`` (its arguments are copied there).
"""

from __future__ import annotations

import numpy as np

from .autodiff.custom import Function
from .tensor import Tensor, device

__all__ = ["move", "to_device_array", "is_device_array"]


def is_device_array(v) -> bool:
    return type(v) is not np.ndarray and getattr(v, "_tj_device", False)


def to_device_array(v, d: device):
    """`v` (a numpy array or a DeviceArray) as the value of a Tensor on device `d`."""
    if d.type == "cpu":
        return v.get() if is_device_array(v) else v
    from . import cuda
    from .runtime.cuda import to_device
    drv = cuda.driver(d.index)
    return to_device(v, drv) if not (is_device_array(v) and v.driver is drv) else v.copy()


def _moved(t: Tensor, d: device) -> Tensor:
    return Tensor._wrap(to_device_array(t._value, d))


class _Move(Function):
    @staticmethod
    def forward(ctx, x, dst):
        ctx.src = x.device
        return _moved(x, dst)

    @staticmethod
    def backward(ctx, g):
        return _moved(g, ctx.src), None


def move(t: Tensor, d: device) -> Tensor:
    """`t` on device `d` (a new Tensor; `t` itself when it is a tracer)."""
    if t._node is not None:
        return t
    from .autograd.graph import needs_grad
    if needs_grad([t]):
        return _Move.apply(t, d)
    return _moved(t, d)
