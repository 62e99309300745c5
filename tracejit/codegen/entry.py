"""The entry function: one native call that runs a whole small schedule.

Input: a `Schedule` whose kernels were emitted into an LLVM module (`codegen/llvm.py`). Output:
a function ``void tj_entry(PyObject *b0, ..., PyObject *bN)`` added to that module, taking one
numpy array object per buffer and calling every kernel over its whole range in schedule order.

It exists for the call path: a compiled call on small inputs would otherwise spend most of its
time in Python, turning each array into a pointer and calling each kernel through ctypes. The
entry reads each array's data pointer straight from the array object (`PyArrayObject`'s ``data``
field, at `DATA_OFFSET` in NumPy's stable C ABI; the runtime checks the offset once at start-up
and falls back to the per-kernel path if it ever differs), so the runtime makes one ctypes call
with the arrays as they are.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..schedule.kernel import Gemm, Kernel, RowKernel, Schedule, step_outputs

__all__ = ["emit_entry", "ENTRY", "DATA_OFFSET", "supports_entry"]

ENTRY = "tj_entry"
DATA_OFFSET = 16  # bytes: PyObject_HEAD (refcount, type) comes first, then `char *data`

if TYPE_CHECKING:  # imported where used: the runtime reads ENTRY and DATA_OFFSET on the path
    import llvmlite.ir as ir  # of a disk cache hit, which must not load llvmlite


def supports_entry(sched: Schedule) -> bool:
    """Only schedules made entirely of generated code (loop kernels and matmuls, no externs)
    get an entry function; not a part of one (``part_of`` set: `runtime/compile.py` adds the
    entry of the whole schedule to its last part)."""
    if getattr(sched, "part_of", None) is not None:
        return False
    return bool(sched.steps) and all(isinstance(s, (Kernel, Gemm, RowKernel))
                                     for s in sched.steps)


def emit_entry(mod: ir.Module, sched: Schedule, declare_missing: bool = False) -> None:
    """Adds the entry function to `mod`. With `declare_missing`, the kernels that `mod` does not
    define (compiled in other modules, `runtime/compile.py`) are declared as external functions
    of their signature, ``void (ptr x buffers, i64, i64)``: whoever loads the modules' code
    together (MCJIT, or the linker) resolves the calls."""
    import llvmlite.ir as ir

    I64 = ir.IntType(64)
    ptr = ir.PointerType()
    n = len(sched.buffers)
    fn = ir.Function(mod, ir.FunctionType(ir.VoidType(), [ptr] * n), name=ENTRY)
    fn.attributes.add("nounwind")
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    used = sorted({x for k in sched.steps for x in [*step_outputs(k), *k.inputs]})
    data = {}
    for i in used:
        field = b.gep(fn.args[i], [ir.Constant(I64, DATA_OFFSET)], source_etype=ir.IntType(8))
        data[i] = b.load(field, typ=ptr)
    for k in sched.steps:
        if declare_missing and k.name not in mod.globals:
            nargs = len(step_outputs(k)) + len(k.inputs)
            ty = ir.FunctionType(ir.VoidType(), [ptr] * nargs + [I64, I64])
            decl = ir.Function(mod, ty, name=k.name)
            decl.attributes.add("nounwind")
        callee = mod.get_global(k.name)
        b.call(callee, [*(data[i] for i in step_outputs(k)), *(data[i] for i in k.inputs),
                        ir.Constant(I64, 0), ir.Constant(I64, k.outer_extent)])
    b.ret_void()
