"""Stochastic gradient descent, with momentum, dampening, Nesterov and weight decay.

Input: parameters with `.grad`. Output: the parameters (and momentum buffers) updated in place
by PyTorch's `torch.optim.SGD` rule, written with tracejit ops so the step can be traced.
"""

from __future__ import annotations

from typing import Any

from ..ops.creation import zeros_like
from ..ops.elementwise import add, where
from ..tensor import Tensor, tensor
from .optimizer import Optimizer

__all__ = ["SGD"]


class SGD(Optimizer):
    r"""Stochastic gradient descent (optionally with momentum), PyTorch's `torch.optim.SGD`.

    Per parameter, with gradient :math:`g`, learning rate :math:`\gamma`, weight decay
    :math:`\lambda`, momentum :math:`\mu` and dampening :math:`\tau`::

        g <- -g                      if maximize   (before weight decay, as PyTorch does)
        g <- g + lambda * p          if weight_decay != 0
        b <- g                       on the first step      } if momentum != 0
        b <- mu * b + (1 - tau) * g  on later steps         }
        g <- g + mu * b if nesterov else b                  }
        p <- p - gamma * g

    State per parameter (allocated when the group is added, only when momentum != 0):
    ``momentum_buffer`` (zeros like the parameter) and ``step`` (a float32 0-d count of the
    steps taken) that selects the first-step rule with `tj.where`, so `step()` stays traceable.
    Parameters whose `.grad` is None are skipped (their step count does not advance).

    Args:
        params: Tensors, or dicts defining parameter groups.
        lr: learning rate.
        momentum: momentum factor.
        dampening: dampening of the momentum.
        weight_decay: L2 penalty.
        nesterov: Nesterov momentum (needs momentum > 0 and dampening == 0).
        maximize: maximize the objective instead of minimizing it.

    Example:
        >>> import tracejit as tj
        >>> p = tj.tensor([1.0, -1.0], requires_grad=True)
        >>> opt = tj.optim.SGD([p], lr=0.1, momentum=0.9)
        >>> for _ in range(2):
        ...     p.grad = tj.tensor([1.0, 2.0])
        ...     opt.step()
        >>> p  # b1 = g, b2 = 0.9 * g + g
        tensor([ 0.7100, -1.5800], requires_grad=True)
    """

    def __init__(self, params, lr: float = 1e-3, momentum: float = 0, dampening: float = 0,
                 weight_decay: float = 0, nesterov: bool = False, *, maximize: bool = False):
        if lr < 0.0:
            raise ValueError(f"Invalid learning rate: {lr}")
        if momentum < 0.0:
            raise ValueError(f"Invalid momentum value: {momentum}")
        if weight_decay < 0.0:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening,
                        weight_decay=weight_decay, nesterov=nesterov, maximize=maximize)
        super().__init__(params, defaults)

    def _init_state(self, p: Tensor, group: dict[str, Any], state: dict[str, Any]) -> None:
        if group["momentum"] == 0:
            return
        # a buffer loaded without a count (e.g. saved by PyTorch) has been stepped already
        state.setdefault("step", tensor(1.0 if "momentum_buffer" in state else 0.0))
        state.setdefault("momentum_buffer", zeros_like(p))

    def _update(self, p: Tensor, grad: Tensor, state: dict[str, Any],
                group: dict[str, Any]) -> None:
        momentum, dampening = group["momentum"], group["dampening"]
        g = -grad if group["maximize"] else grad
        if group["weight_decay"] != 0:
            g = add(g, p, alpha=group["weight_decay"])
        if momentum != 0:
            if "momentum_buffer" not in state:  # momentum switched on after construction
                self._init_state(p, group, state)
            buf, step = state["momentum_buffer"], state["step"]
            buf.copy_(where(step == 0, g, add(buf * momentum, g, alpha=1 - dampening)))
            step.add_(1)
            g = add(g, buf, alpha=momentum) if group["nesterov"] else buf
        p.add_(g, alpha=-group["lr"])
