"""Compiling a schedule's generated code in parts, on several threads.

Input: a `Schedule` (its steps not yet generated), the module name, the host's target triple,
data layout, CPU name and feature string, a factory of target machines (`cpu.target_machine`),
the optimizer (`cpu._optimize`) and the number of parts (`num_parts`). Output: `Parts`: for
each part, in schedule order, its unoptimized LLVM IR, its optimized IR, and its
position-independent relocatable object code (what MCJIT would have emitted for those
functions). With one part this is the whole module, compiled on the calling thread in LLVM's
global context, exactly as before parts existed. With several, the last part also holds the
entry function (`codegen/entry.py`), which declares the other parts' kernels as external
functions: the caller links all objects into one shared library, which resolves those calls
(`diskcache.link_and_load`; MCJIT cannot load several objects into one engine, see
`cpu._Native._mcjit`).

How: the steps are cut into `P` contiguous runs of about equal estimated cost (`partition`; a
matmul costs about eight loop kernels to optimize and compile: measured 80-210 ms against
10-30 ms). The Python side (building each part's `llvmlite.ir` module with `build_module` and
printing it) runs on the calling thread, part after part; each part's text goes to a worker
thread as soon as it is built, and the calling thread compiles the last part itself. Each
thread parses its part into its own LLVM context (`llvm.create_context`: an LLVMContext must
never be used by two threads at once; each thread keeps one, with its own parsed copy of the
math library), links the math library in, verifies, optimizes at O3 and emits the object.
llvmlite releases the GIL in its ctypes calls but serializes them with one lock of its own;
the two long calls (the pass pipeline, object emission) are made without that lock
(`_unlocked`), so the parts really compile in parallel: W7 (8 matmuls, 8 loop kernels) takes
~0.77 s on 2 cores against ~1.35 s in one part.
"""

from __future__ import annotations

import sys
import threading
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

from ..schedule.kernel import Gemm, Kernel, RowKernel

__all__ = ["Parts", "compile_parts", "partition", "num_parts", "MAX_PARTS", "PARALLEL_MIN_COST"]

MAX_PARTS = 8
GEMM_COST = 8  # a matmul's optimization and code generation, in loop kernels (measured: 6-15)
PARALLEL_MIN_COST = 12  # below this estimated cost, one part (threads cost more than they save)

_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None
_local = threading.local()  # per thread: its `_ThreadLLVM`


@dataclass
class Parts:
    objects: list = field(default_factory=list)  # bytes per part, in schedule order
    unoptimized: list = field(default_factory=list)  # LLVM IR text per part
    optimized: list = field(default_factory=list)  # (with `want_ir`; else None per part)


def cost(step) -> int:
    return GEMM_COST if isinstance(step, Gemm) else 1


def num_parts(sched, cpus: int) -> int:
    """How many parts to compile `sched` in, with `cpus` cores to do it."""
    steps = [s for s in sched.steps if isinstance(s, (Kernel, Gemm, RowKernel))]
    total = sum(cost(s) for s in steps)
    if cpus <= 1 or total < PARALLEL_MIN_COST:
        return 1
    return max(1, min(cpus, MAX_PARTS, len(steps)))


def partition(steps: list, parts: int) -> list[list]:
    """`steps` cut into at most `parts` contiguous, non-empty runs of about equal total cost
    (each cut where the running cost crosses the next multiple of total/parts)."""
    total = sum(cost(s) for s in steps)
    out: list[list] = [[]]
    acc = 0
    for s in steps:
        c = cost(s)
        # start a new run if this step's midpoint lies past the current run's share
        if out[-1] and len(out) < parts and (acc + c / 2) > total * len(out) / parts:
            out.append([])
        out[-1].append(s)
        acc += c
    return out


def _executor() -> ThreadPoolExecutor:
    """The compile threads: one pool, never replaced (a part in flight always has its pool);
    it starts a thread only when no idle one is there, so it holds as many threads as the
    most parts ever compiled at once, less one (the calling thread compiles one itself)."""
    global _pool
    with _lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=MAX_PARTS - 1,
                                       thread_name_prefix="tracejit-compile")
        return _pool


class _ThreadLLVM:
    """One thread's own LLVM context and its parsed copy of the math library (made at the
    thread's first part; disposed with the thread: the module before its context)."""

    def __init__(self):
        import llvmlite.binding as llvm
        self.ctx = llvm.create_context()
        self.mathlib = None

    def math(self):
        if self.mathlib is None:
            import llvmlite.binding as llvm

            from ..codegen import mathlib
            mod = llvm.parse_assembly(mathlib.source_text(), context=self.ctx)
            mod.verify()
            mod.name = "tracejit.mathlib"
            self.mathlib = mod
        return self.mathlib

    def __del__(self):
        if sys.is_finalizing():  # (as llvmlite: nothing is disposed at interpreter exit)
            return
        try:
            if self.mathlib is not None:
                self.mathlib.close()
            self.ctx.close()
        except Exception:  # noqa: BLE001 (a destructor: never raise)
            pass


def _thread_llvm() -> _ThreadLLVM:
    own = getattr(_local, "llvm", None)
    if own is None:
        own = _local.llvm = _ThreadLLVM()
    return own


def _unlocked(name: str):
    """llvmlite's C function `name`, called without llvmlite's global lock.

    llvmlite serializes every call into LLVM with one process-wide lock (`ffi.lib`), which
    would make compiling on several threads no faster than on one. The two calls that do the
    work (running the O3 pipeline, emitting the object) are safe to make concurrently when
    every thread uses its own LLVM context, module, pass builder and target machine, as here
    (LLVM's own parallel code generation, e.g. ThinLTO's backends, relies on the same);
    everything else still goes through the lock. Where llvmlite's wrapper changes shape, the
    locked function is used (correct, only serial)."""
    from llvmlite.binding import ffi
    fn = getattr(ffi.lib, name)
    return getattr(fn, "_cfn", fn)


def optimize(ref, tm, unlocked: bool = False) -> None:
    """The O3 pipeline for `tm`'s CPU (loop and SLP vectorization on), run on module `ref`;
    `unlocked`: without llvmlite's lock (`_unlocked`; only in a thread's own context)."""
    import llvmlite.binding as llvm
    pto = llvm.PipelineTuningOptions(speed_level=3)
    pto.loop_vectorization = True
    pto.slp_vectorization = True
    pb = llvm.create_pass_builder(tm, pto)
    mpm = pb.getModulePassManager()
    if unlocked:
        _unlocked("LLVMPY_RunNewModulePassManager")(mpm, ref, pb)
    else:
        mpm.run(ref, pb)


def emit_object(tm, ref, unlocked: bool = False) -> bytes:
    """`tm.emit_object(ref)`; `unlocked` as for `optimize`."""
    if not unlocked:
        return tm.emit_object(ref)
    import ctypes

    from llvmlite.binding import ffi
    with ffi.OutputString() as err:
        mb = _unlocked("LLVMPY_TargetMachineEmitToMemory")(tm, ref, 1, err)
        if not mb:
            raise RuntimeError(str(err))
    try:
        return ctypes.string_at(ffi.lib.LLVMPY_GetBufferStart(mb), ffi.lib.LLVMPY_GetBufferSize(mb))
    finally:
        ffi.lib.LLVMPY_DisposeMemoryBuffer(mb)


def _compile(text: str, uses_mathlib: bool, tm, optimize, emit: bool, want_ir: bool,
             own_context: bool):
    """One part: its IR text -> (object code or None, optimized IR text or None). With
    `own_context`, in this thread's own LLVM context and without llvmlite's lock for the long
    calls; else in the global context, under the lock, as any other use of llvmlite."""
    import llvmlite.binding as llvm
    own = _thread_llvm() if own_context else None
    ref = llvm.parse_assembly(text, context=own.ctx if own else None)
    try:
        if uses_mathlib:
            if own is None:
                from ..codegen import mathlib
                mathlib.link_into(ref)
            else:
                src = own.math().clone()
                src.triple = ref.triple
                src.data_layout = ref.data_layout
                ref.link_in(src)
        ref.verify()
        optimize(ref, tm, own_context)
        ir_text = str(ref) if want_ir else None
        obj = emit_object(tm, ref, own_context) if emit else None
    finally:
        ref.close()
    return obj, ir_text


def compile_parts(sched, name: str, triple: str, layout: str, cpu: str, features: str,
                  target_machine, optimize, parts: int = 1, emit: bool = True,
                  want_ir: bool = False) -> Parts:
    """Generates, optimizes (`optimize(module_ref, tm, unlocked)`, `cpu._optimize`) and, with
    `emit`, compiles `sched` in `parts` parts (see the module docstring); `target_machine()`
    makes a new target machine. Returns each part's unoptimized IR, its object code (with
    `emit`) and its optimized IR (with `want_ir`). The first parts go to worker threads as soon
    as they are generated; the calling thread compiles the last one itself. One part is
    compiled on the calling thread in LLVM's global context, as before there were parts."""
    import dataclasses

    from ..codegen.entry import emit_entry, supports_entry
    from ..codegen.llvm import build_module, with_target_attributes

    steps = [s for s in sched.steps if isinstance(s, (Kernel, Gemm, RowKernel))]
    runs = partition(steps, parts) if steps else [[]]
    entry = supports_entry(sched)
    parallel = len(runs) > 1
    pool = _executor() if parallel else None
    out = Parts()
    results: list = []
    try:
        for i, run in enumerate(runs):
            if parallel:  # the part's steps, as a schedule of their own, without an entry
                part = dataclasses.replace(sched, steps=run)
                part.part_of = sched
                mod = build_module(part, f"{name}.part{i}", cpu, features)
            else:
                mod = build_module(sched, name, cpu, features)
            mod.triple, mod.data_layout = triple, layout
            last = i == len(runs) - 1
            if parallel and entry and last:  # (after every kernel: it reads their extents)
                emit_entry(mod, sched, declare_missing=True)
            text = with_target_attributes(str(mod), cpu, features)
            out.unoptimized.append(text)
            args = (text, bool(getattr(mod, "tj_uses_mathlib", False)), target_machine(),
                    optimize, emit, want_ir, parallel)
            results.append(_compile(*args) if last else pool.submit(_compile, *args))
    finally:  # (never return, or raise, with a worker still compiling a part)
        wait([r for r in results if isinstance(r, Future)])
    for r in results:
        obj, ir_text = r.result() if isinstance(r, Future) else r
        out.objects.append(obj)
        out.optimized.append(ir_text)
    return out
