"""`tj.autograd`: PyTorch's autograd namespace — grad mode (`no_grad`, `enable_grad`,
`set_grad_enabled`), the eager engine (`backward`, `grad`; the tape is `graph.py`), `Function`
for custom rules and `functional` (the `torch.autograd.functional` API)."""

from ..autodiff import functional
from ..autodiff.custom import Function, FunctionCtx
from .engine import backward, grad
from .grad_mode import enable_grad, inference_mode, is_grad_enabled, no_grad, set_grad_enabled

__all__ = ["backward", "grad", "Function", "FunctionCtx", "functional", "no_grad", "enable_grad",
           "set_grad_enabled", "is_grad_enabled", "inference_mode"]
