"""The public op library (SPEC §3), composed from primitives.

Input: user arguments. Output: Tensors, through `trace.bind`. Importing this package also binds
the ops to `Tensor` as methods and operators (`methods.py`).
"""

from . import methods  # noqa: F401  (binds Tensor methods)
from .creation import *  # noqa: F401,F403
from .elementwise import *  # noqa: F401,F403
from .index import *  # noqa: F401,F403
from .linalg import *  # noqa: F401,F403
from .reduce import *  # noqa: F401,F403
from .shape import *  # noqa: F401,F403
