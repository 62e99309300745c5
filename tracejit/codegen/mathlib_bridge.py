"""Declares math-library functions in a kernel module, when the library provides them.

Input: a function name (``exp``, ``tanh``, ...) and a float type. Output: an LLVM declaration of
the library's function, whose definition `runtime/cpu.py` links in from `kernels/mathlib.ll`
(through `codegen/mathlib.py`) before optimizing; None when the library lacks it, so the lowering
falls back to an LLVM intrinsic or the C library.
"""

from __future__ import annotations

import llvmlite.ir as ir

__all__ = ["declare", "available"]


def available():
    try:
        from . import mathlib
        return mathlib
    except Exception:  # noqa: BLE001 - no library (or a broken one): use the fallbacks
        return None


def declare(mod: ir.Module, name: str, ty: str, arity: int):
    lib = available()
    if lib is None or lib.MATH_FUNCTIONS.get(name) != arity:
        return None
    fname = lib.function_name(name, "f32" if ty == "float" else "f64")
    fn = mod.globals.get(fname)
    if fn is None:
        t = ir.FloatType() if ty == "float" else ir.DoubleType()
        fn = ir.Function(mod, ir.FunctionType(t, [t] * arity), fname)
        mod.tj_uses_mathlib = True
    return fn
