"""`tj.nn.functional`: PyTorch's functional API over the op library.

Input: Tensors. Output: Tensors. These are the stateless functions of SPEC §6 that need no
autodiff or random numbers; each is a thin name for an op of `tracejit.ops`.
"""

from __future__ import annotations

from ..ops import elementwise as E
from ..ops import index as I
from ..ops import reduce as R
from ..ops import shape as S

__all__ = ["relu", "gelu", "sigmoid", "tanh", "softplus", "softmax", "log_softmax", "pad",
           "one_hot"]

relu = E.relu
gelu = E.gelu
sigmoid = E.sigmoid
tanh = E.tanh
softplus = E.softplus
softmax = R.softmax
log_softmax = R.log_softmax
pad = S.pad
one_hot = I.one_hot
