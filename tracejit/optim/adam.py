"""Adam and AdamW.

Input: parameters with `.grad`. Output: the parameters and their moment estimates updated in
place by PyTorch's `torch.optim.Adam` / `torch.optim.AdamW` rules, written with tracejit ops
(the step count is a tensor, so the bias corrections are too) so the step can be traced.
"""

from __future__ import annotations

from typing import Any

from ..dtypes import float64
from ..ops.creation import zeros_like
from ..ops.elementwise import add, maximum, sqrt
from ..tensor import Tensor, tensor
from .optimizer import Optimizer

__all__ = ["Adam", "AdamW"]


def _lerp(start: Tensor, end: Tensor, weight: float) -> Tensor:
    """``start + weight * (end - start)``, in the form PyTorch's `lerp` evaluates (the one that
    is exact at the nearer endpoint)."""
    if weight < 0.5:
        return start + (end - start) * weight
    return end - (end - start) * (1 - weight)


class Adam(Optimizer):
    r"""Adam (Kingma & Ba), PyTorch's `torch.optim.Adam`.

    Per parameter, with gradient :math:`g` and step count :math:`t` (after incrementing)::

        g <- -g                               if maximize
        g <- g + weight_decay * p             if weight_decay != 0   (L2; AdamW decouples it)
        m <- beta1 * m + (1 - beta1) * g
        v <- beta2 * v + (1 - beta2) * g^2
        v_max <- max(v_max, v)                if amsgrad (and v_max replaces v below)
        p <- p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)

    State per parameter (allocated when the group is added): ``step`` (float32 0-d),
    ``exp_avg``, ``exp_avg_sq`` and, with amsgrad, ``max_exp_avg_sq``. The bias corrections are
    computed from the step tensor in float64 (as PyTorch computes them in Python floats), then
    cast to the parameter's dtype. Parameters whose `.grad` is None are skipped.

    Args:
        params: Tensors, or dicts defining parameter groups.
        lr: learning rate.
        betas: decay rates of the first and second moment estimates.
        eps: added to the denominator for numerical stability.
        weight_decay: L2 penalty.
        amsgrad: use the maximum of past second moments (AMSGrad).
        maximize: maximize the objective instead of minimizing it.

    Example:
        >>> import tracejit as tj
        >>> p = tj.tensor([1.0, -1.0], requires_grad=True)
        >>> opt = tj.optim.Adam([p], lr=0.1)
        >>> p.grad = tj.tensor([3.0, -0.5])
        >>> opt.step()
        >>> p  # the first step moves each entry by lr against the sign of its gradient
        tensor([ 0.9000, -0.9000], requires_grad=True)
        >>> opt.state[p]["step"]
        tensor(1.)
    """

    _decoupled = False

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0, amsgrad: bool = False, *,
                 maximize: bool = False):
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 <= eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        if not 0.0 <= betas[0] < 1.0:
            raise ValueError(f"Invalid beta parameter at index 0: {betas[0]}")
        if not 0.0 <= betas[1] < 1.0:
            raise ValueError(f"Invalid beta parameter at index 1: {betas[1]}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                        amsgrad=amsgrad, maximize=maximize)
        super().__init__(params, defaults)

    def _init_state(self, p: Tensor, group: dict[str, Any], state: dict[str, Any]) -> None:
        state.setdefault("step", tensor(0.0))
        state.setdefault("exp_avg", zeros_like(p))
        state.setdefault("exp_avg_sq", zeros_like(p))
        if group["amsgrad"]:
            state.setdefault("max_exp_avg_sq", zeros_like(p))

    def _update(self, p: Tensor, grad: Tensor, state: dict[str, Any],
                group: dict[str, Any]) -> None:
        lr, (beta1, beta2), eps = group["lr"], group["betas"], group["eps"]
        weight_decay = group["weight_decay"]
        if group["amsgrad"] and "max_exp_avg_sq" not in state:  # switched on after construction
            self._init_state(p, group, state)
        step, exp_avg, exp_avg_sq = state["step"], state["exp_avg"], state["exp_avg_sq"]
        g = -grad if group["maximize"] else grad
        step.add_(1)
        if weight_decay != 0:
            if self._decoupled:
                p.mul_(1 - lr * weight_decay)
            else:
                g = add(g, p, alpha=weight_decay)
        exp_avg.copy_(_lerp(exp_avg, g, 1 - beta1))
        exp_avg_sq.copy_(add(exp_avg_sq * beta2, g * g, alpha=1 - beta2))
        t = step.to(float64)
        step_size = (lr / (1 - beta1 ** t)).to(p.dtype)
        bias_correction2_sqrt = sqrt(1 - beta2 ** t).to(p.dtype)
        if group["amsgrad"]:
            v = state["max_exp_avg_sq"]
            v.copy_(maximum(v, exp_avg_sq))
        else:
            v = exp_avg_sq
        denom = sqrt(v) / bias_correction2_sqrt + eps
        p.sub_(exp_avg / denom * step_size)


class AdamW(Adam):
    r"""Adam with decoupled weight decay (Loshchilov & Hutter), PyTorch's `torch.optim.AdamW`.

    The same as `Adam`, except that weight decay shrinks the parameter directly,
    ``p <- p * (1 - lr * weight_decay)``, before the Adam update, instead of adding
    ``weight_decay * p`` to the gradient; and the default weight decay is 1e-2.

    Example:
        >>> import tracejit as tj
        >>> p = tj.tensor([1.0], requires_grad=True)
        >>> opt = tj.optim.AdamW([p], lr=0.1, weight_decay=0.5)
        >>> p.grad = tj.tensor([2.0])
        >>> opt.step()
        >>> p  # 1 * (1 - 0.1 * 0.5) - 0.1
        tensor([0.8500], requires_grad=True)
    """

    _decoupled = True

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2, amsgrad: bool = False, *,
                 maximize: bool = False):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         amsgrad=amsgrad, maximize=maximize)
