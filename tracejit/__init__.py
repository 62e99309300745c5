"""tracejit: trace Python array code into a typed IR, differentiate it, compile it.

>>> import tracejit as tj
>>> @tj.compile
... def f(x):
...     return tj.tanh(x * 2.0).sum()
>>> float(f(tj.zeros(3)))
0.0
"""

from . import autograd, cuda, debug, nn, optim, profiler, random, testing, tree, utils
from . import ops as _ops  # noqa: F401  (binds Tensor methods)
from .autodiff.api import grad, value_and_grad
from .autodiff.functional import hessian, hvp, jacobian, jvp, vhp, vjp
from .autograd.grad_mode import (
    enable_grad,
    inference_mode,
    is_grad_enabled,
    no_grad,
    set_grad_enabled,
)
from .config import config
from .control import cond, fori_loop, scan, while_loop
from .dtypes import (
    DType,
    bool_,
    float16,
    float32,
    float64,
    int8,
    int16,
    int32,
    int64,
    promote_types,
    uint8,
)
from .errors import CheckError, ConcretizationError, GraphFormatError, SourceLoc, TraceError
from .generator import *  # noqa: F401,F403
from .generator import Generator
from .interop import from_dlpack
from .ir import Graph, Node, TensorType
from .jit import CompiledFunction, Lowered, compile, make_graph
from .ops import *  # noqa: F401,F403
from .runtime.debugcheck import DebugCheckError
from .sparse import (  # noqa: F401  (also binds tj.sparse, the sub-package: SPEC §6)
    layout,
    sparse_coo,
    sparse_coo_tensor,
    sparse_csr,
    sparse_csr_tensor,
    strided,
)
from .tensor import Tensor, asarray, device, from_numpy, tensor
from .vmap import vmap

bool = bool_  # noqa: A001  (tj.bool, like torch.bool)
float = float32  # noqa: A001
double = float64
half = float16
int = int32  # noqa: A001
long = int64
short = int16

__version__ = "0.1.0"


def is_tensor(obj):
    return isinstance(obj, Tensor)


def result_type(*tensors) -> DType:
    """The dtype PyTorch's promotion gives these operands."""
    from .dtypes import result_type as _rt
    from .ops.common import _type_of
    return _rt(*(_type_of(t) for t in tensors))
