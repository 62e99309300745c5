"""Optimizers and learning-rate schedules, as in PyTorch's `torch.optim`.

Input: parameters (leaf Tensors) whose `.grad` is set. Output: in-place updates of the
parameters and of the optimizer's state tensors. All state is allocated eagerly and every
update is a tracejit op, so `step()` can be traced into a compiled training step (SPEC §6).

>>> import tracejit as tj
>>> w = tj.tensor([1.0, 2.0], requires_grad=True)
>>> opt = tj.optim.SGD([w], lr=0.5)
>>> w.grad = tj.tensor([1.0, -1.0])
>>> opt.step()
>>> w
tensor([0.5000, 2.5000], requires_grad=True)
"""

from . import lr_scheduler
from .adam import Adam, AdamW
from .optimizer import Optimizer, required
from .sgd import SGD

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "lr_scheduler", "required"]
