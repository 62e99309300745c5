"""`Parameter`: a Tensor that a `Module` registers as one of its parameters.

Input: a Tensor (or array data). Output: a `Parameter` sharing that tensor's data (writes to
either are seen by both), with ``requires_grad=True`` by default. Ops on a Parameter give plain
Tensors, as in PyTorch.

>>> import tracejit as tj
>>> p = tj.nn.Parameter(tj.ones(2))
>>> p
Parameter containing:
tensor([1., 1.], requires_grad=True)
>>> type(p * 2).__name__
'Tensor'
"""

from __future__ import annotations

import copy

import numpy as np

from ..tensor import Tensor, as_tensor

__all__ = ["Parameter", "Buffer"]


class Parameter(Tensor):
    """``Parameter(data=None, requires_grad=True)``: `data` wrapped as a module parameter.

    `data` is shared, not copied; None gives an empty float32 tensor.
    """

    def __new__(cls, data=None, requires_grad: bool = True):
        src = as_tensor(np.zeros((0,), np.float32) if data is None else data)
        if src._is_tracer:
            p = cls._tracer(src._node, src._builder, src._value)
        else:
            p = cls._wrap(src._value)  # `_wrap` of the subclass: same buffer, fresh grad state
        p.requires_grad_(bool(requires_grad))
        return p

    def __init__(self, data=None, requires_grad: bool = True):
        pass  # everything happens in __new__ (Tensor.__init__ would copy the data)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()

    __str__ = __repr__

    def __deepcopy__(self, memo):
        if id(self) in memo:
            return memo[id(self)]
        out = type(self)(self.detach().clone(), self.requires_grad)  # (on this device)
        if self.grad is not None:
            out.grad = copy.deepcopy(self.grad, memo)
        memo[id(self)] = out
        return out

    def __reduce_ex__(self, protocol):
        dev = None if self.device.type == "cpu" else str(self.device)
        return (_rebuild_parameter, (np.array(self.numpy(), copy=True), self.requires_grad, dev))


def _rebuild_parameter(data, requires_grad, device=None):
    p = Parameter(data, requires_grad)
    if device is not None:
        from ..devices import to_device_array
        from ..tensor import _check_device
        p._val = to_device_array(p._val, _check_device(device))
    return p


class Buffer(Tensor):
    """``Buffer(data, persistent=True)``: a marker that makes a `Module` register `data` as a
    buffer when assigned as an attribute (PyTorch 2.5's ``nn.Buffer``). The module stores the
    plain tensor."""

    def __new__(cls, data=None, *, persistent: bool = True):
        src = as_tensor(np.zeros((0,), np.float32) if data is None else data)
        b = cls._wrap(src._value)
        b.persistent = persistent
        return b

    def __init__(self, data=None, *, persistent: bool = True):
        pass
