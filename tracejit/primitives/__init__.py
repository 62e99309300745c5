"""The primitives: every op's semantics in one record each (see `registry.OpDef`).

Input: nothing. Output: `PRIMITIVES`, filled by importing the modules below.
"""

from . import (  # noqa: F401  (register records)
    control,
    custom,
    debug,
    elementwise,
    random,
    reduce,
    sparse,
    structure,
)
from .registry import PRIMITIVES, OpDef, RuleError, defrules, get, register

__all__ = ["PRIMITIVES", "OpDef", "RuleError", "defrules", "get", "register"]
