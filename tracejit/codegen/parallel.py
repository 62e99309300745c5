"""Work-sharing wrappers: one `kN_par` per parallel step, so threads share a step by chunks.

Input: an LLVM module whose step functions ``kN(ptr out..., ptr in..., i64 lo, i64 hi)`` were
emitted by `llvm.py`, `matmul.py` and `rows.py`. Output: next to each step that can be split, a
function ``kN_par(ptr out..., ptr in..., ptr state, i64 n, i64 chunk, i64 wait)``: it takes
chunks ``[i, min(i + chunk, n))`` of the step's outer range by an atomic add on ``state[0]``
until none is left, adds what it finished to ``state[1]``, and, with ``wait`` set, spins until
``state[1] == n`` (every chunk finished, by whichever thread took it).

The runtime calls it on the calling thread with ``wait=1`` and hands the same call with
``wait=0`` to its worker threads. A worker that starts late finds fewer chunks, or none, left:
the caller never waits for a thread to wake up, only for chunks already in progress.
"""

from __future__ import annotations

import llvmlite.ir as ir

from ..schedule.kernel import Gemm, Kernel, RowKernel, Schedule, step_outputs

__all__ = ["emit_parallel_wrappers", "PAR_SUFFIX"]

PAR_SUFFIX = "_par"
I64 = ir.IntType(64)


def emit_parallel_wrappers(mod: ir.Module, sched: Schedule) -> None:
    for st in sched.steps:
        if isinstance(st, (Kernel, Gemm, RowKernel)) and getattr(st, "parallel_ok", False):
            _emit(mod, st, len(step_outputs(st)) + len(st.inputs))


def _emit(mod: ir.Module, st, nptr: int) -> None:
    ptr = ir.PointerType()
    callee = mod.get_global(st.name)
    fn = ir.Function(mod, ir.FunctionType(ir.VoidType(), [ptr] * nptr + [ptr, I64, I64, I64]),
                     name=st.name + PAR_SUFFIX)
    fn.attributes.add("nounwind")
    args = list(fn.args[:nptr])
    state, n, chunk, wait = fn.args[nptr:]
    entry = fn.append_basic_block("entry")
    grab = fn.append_basic_block("grab")
    work = fn.append_basic_block("work")
    drained = fn.append_basic_block("drained")
    spin = fn.append_basic_block("spin")
    done = fn.append_basic_block("done")
    b = ir.IRBuilder(entry)
    next_ptr = state
    done_ptr = b.gep(state, [ir.Constant(I64, 1)], source_etype=I64)
    b.branch(grab)

    b.position_at_end(grab)
    lo = b.atomic_rmw("add", next_ptr, chunk, "monotonic")
    b.cbranch(b.icmp_signed("<", lo, n), work, drained)

    b.position_at_end(work)
    end = b.add(lo, chunk)
    hi = b.select(b.icmp_signed("<", end, n), end, n)
    b.call(callee, args + [lo, hi])
    b.atomic_rmw("add", done_ptr, b.sub(hi, lo), "release")
    b.branch(grab)

    b.position_at_end(drained)
    b.cbranch(b.icmp_signed("!=", wait, ir.Constant(I64, 0)), spin, done)

    b.position_at_end(spin)
    finished = b.load_atomic(done_ptr, "acquire", 8, typ=I64)
    b.cbranch(b.icmp_signed("<", finished, n), spin, done)

    b.position_at_end(done)
    b.ret_void()
