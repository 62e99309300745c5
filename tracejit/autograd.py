"""`tj.autograd`: PyTorch's autograd namespace — `Function` for custom rules and `functional`
(the `torch.autograd.functional` API). Eager `backward()`/`autograd.grad` arrive with the
[tensor] issue."""

from .autodiff import functional
from .autodiff.custom import Function, FunctionCtx

__all__ = ["Function", "FunctionCtx", "functional"]
