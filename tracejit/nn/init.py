"""`tj.nn.init`: PyTorch's parameter initializers, writing in place.

Input: a Tensor (usually a Parameter) and distribution arguments. Output: the same Tensor, its
data overwritten under ``tj.no_grad()`` with values drawn from tracejit's generator (the global
one unless ``generator=`` is given), so ``tj.manual_seed`` makes every initialization
reproducible. Also binds ``Tensor.uniform_``/``normal_`` (for ``m.weight.data.uniform_(-a, a)``)
where the Tensor class does not define them.

>>> import tracejit as tj
>>> w = tj.empty(3, 5)
>>> _ = tj.nn.init.uniform_(w, -0.1, 0.1)
>>> bool((w.abs() <= 0.1).all())
True
"""

from __future__ import annotations

import math
import numbers
import warnings

from .. import dtypes as D
from ..autograd.grad_mode import no_grad
from ..ops import creation as C
from ..ops import elementwise as E
from ..tensor import Tensor

__all__ = ["calculate_gain", "uniform_", "normal_", "trunc_normal_", "constant_", "ones_",
           "zeros_", "eye_", "xavier_uniform_", "xavier_normal_", "kaiming_uniform_",
           "kaiming_normal_"]


def calculate_gain(nonlinearity: str, param=None) -> float:
    """The recommended gain for a nonlinearity (PyTorch's table).

    >>> import tracejit as tj
    >>> tj.nn.init.calculate_gain("tanh")
    1.6666666666666667
    """
    linear = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
              "conv_transpose3d")
    if nonlinearity in linear or nonlinearity == "sigmoid":
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            slope = 0.01
        elif isinstance(param, numbers.Real) and not isinstance(param, bool):
            slope = param
        else:
            raise ValueError(f"negative_slope {param} not a valid number")
        return math.sqrt(2.0 / (1 + slope ** 2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"Unsupported nonlinearity {nonlinearity}")


def _fill(tensor: Tensor, value) -> Tensor:
    with no_grad():
        tensor.copy_(value)
    return tensor


def _float(tensor: Tensor, name: str) -> D.DType:
    if not tensor.dtype.is_floating_point:
        raise TypeError(f"{name}: expected a floating point tensor, got {tensor.dtype.name}")
    return tensor.dtype


def uniform_(tensor: Tensor, a: float = 0.0, b: float = 1.0, generator=None) -> Tensor:
    """Fills ``tensor`` with samples from U(a, b)."""
    from ..generator import rand
    dt = _float(tensor, "uniform_")
    u = rand(tensor.shape, dtype=dt, generator=generator)
    return _fill(tensor, E.add(E.mul(u, float(b) - float(a)), float(a)))


def normal_(tensor: Tensor, mean: float = 0.0, std: float = 1.0, generator=None) -> Tensor:
    """Fills ``tensor`` with samples from N(mean, std^2)."""
    from ..generator import randn
    dt = _float(tensor, "normal_")
    z = randn(tensor.shape, dtype=dt, generator=generator)
    return _fill(tensor, E.add(E.mul(z, float(std)), float(mean)))


def trunc_normal_(tensor: Tensor, mean: float = 0.0, std: float = 1.0, a: float = -2.0,
                  b: float = 2.0, generator=None) -> Tensor:
    """Fills ``tensor`` with N(mean, std^2) samples conditioned on [a, b] (redrawing the ones
    that fall outside; eager only)."""
    import numpy as np

    from ..generator import randn
    dt = _float(tensor, "trunc_normal_")
    if not a < b:
        raise ValueError(f"trunc_normal_: expected a < b, got a={a}, b={b}")
    out = np.full(tensor.shape, np.nan)
    todo = np.ones(tensor.shape, bool)
    for _ in range(1000):
        if not todo.any():
            break
        z = randn(tensor.shape, dtype=D.float64, generator=generator).numpy() * std + mean
        ok = todo & (z >= a) & (z <= b)
        out[ok] = z[ok]
        todo &= ~ok
    else:
        raise ValueError(f"trunc_normal_: [{a}, {b}] is too unlikely under N({mean}, {std}^2)")
    return _fill(tensor, Tensor._wrap(out.astype(dt.np)))


def constant_(tensor: Tensor, val: float) -> Tensor:
    """Fills ``tensor`` with ``val``."""
    return _fill(tensor, C.full(tensor.shape, fill_value=val, dtype=tensor.dtype))


def ones_(tensor: Tensor) -> Tensor:
    return constant_(tensor, 1)


def zeros_(tensor: Tensor) -> Tensor:
    return constant_(tensor, 0)


def eye_(tensor: Tensor) -> Tensor:
    """Fills a 2-d ``tensor`` with the identity matrix."""
    if tensor.ndim != 2:
        raise ValueError("Only tensors with 2 dimensions are supported")
    return _fill(tensor, C.eye(*tensor.shape, dtype=tensor.dtype))


def _calculate_fan_in_and_fan_out(tensor: Tensor) -> tuple[int, int]:
    if tensor.ndim < 2:
        raise ValueError("Fan in and fan out can not be computed for tensor with fewer than 2 "
                         "dimensions")
    receptive = math.prod(tensor.shape[2:])
    return tensor.shape[1] * receptive, tensor.shape[0] * receptive


def _calculate_correct_fan(tensor: Tensor, mode: str) -> int:
    mode = mode.lower()
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"Mode {mode} not supported, please use one of ['fan_in', 'fan_out']")
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return fan_in if mode == "fan_in" else fan_out


def xavier_uniform_(tensor: Tensor, gain: float = 1.0, generator=None) -> Tensor:
    """U(-a, a) with ``a = gain * sqrt(6 / (fan_in + fan_out))`` (Glorot)."""
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    a = math.sqrt(3.0) * gain * math.sqrt(2.0 / float(fan_in + fan_out))
    return uniform_(tensor, -a, a, generator)


def xavier_normal_(tensor: Tensor, gain: float = 1.0, generator=None) -> Tensor:
    """N(0, std^2) with ``std = gain * sqrt(2 / (fan_in + fan_out))``."""
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return normal_(tensor, 0.0, gain * math.sqrt(2.0 / float(fan_in + fan_out)), generator)


def _kaiming_std(tensor, a, mode, nonlinearity):
    if 0 in tensor.shape:
        warnings.warn("Initializing zero-element tensors is a no-op", UserWarning, stacklevel=3)
        return None
    fan = _calculate_correct_fan(tensor, mode)
    return calculate_gain(nonlinearity, a) / math.sqrt(fan)


def kaiming_uniform_(tensor: Tensor, a: float = 0, mode: str = "fan_in",
                     nonlinearity: str = "leaky_relu", generator=None) -> Tensor:
    """U(-bound, bound) with ``bound = gain * sqrt(3 / fan)`` (He). ``Linear`` and ``Conv2d``
    use ``a=sqrt(5)``, which gives ``bound = 1 / sqrt(fan_in)``.

    >>> import tracejit as tj
    >>> w = tj.nn.init.kaiming_uniform_(tj.empty(8, 4), a=5 ** 0.5)
    >>> bool((w.abs() <= 0.5).all())
    True
    """
    std = _kaiming_std(tensor, a, mode, nonlinearity)
    if std is None:
        return tensor
    bound = math.sqrt(3.0) * std
    return uniform_(tensor, -bound, bound, generator)


def kaiming_normal_(tensor: Tensor, a: float = 0, mode: str = "fan_in",
                    nonlinearity: str = "leaky_relu", generator=None) -> Tensor:
    """N(0, std^2) with ``std = gain / sqrt(fan)`` (He)."""
    std = _kaiming_std(tensor, a, mode, nonlinearity)
    if std is None:
        return tensor
    return normal_(tensor, 0.0, std, generator)


# In-place random fills as Tensor methods (PyTorch's ``t.uniform_(a, b)``), unless the Tensor
# class already has its own.
def _method_uniform_(self, from_: float = 0.0, to: float = 1.0, *, generator=None):
    return uniform_(self, from_, to, generator)


def _method_normal_(self, mean: float = 0.0, std: float = 1.0, *, generator=None):
    return normal_(self, mean, std, generator)


for _name, _fn in (("uniform_", _method_uniform_), ("normal_", _method_normal_)):
    if not hasattr(Tensor, _name):
        setattr(Tensor, _name, _fn)
