"""The primitives: every op's semantics in one record each (see `registry.OpDef`).

Input: nothing. Output: `PRIMITIVES`, filled by importing the modules below.
"""

from . import control, custom, elementwise, random, reduce, structure  # noqa: F401  (register records)
from .registry import PRIMITIVES, OpDef, RuleError, defrules, get, register

__all__ = ["PRIMITIVES", "OpDef", "RuleError", "defrules", "get", "register"]
