"""The CPU runtime: a Schedule -> native code (LLVM via llvmlite) and the call path.

Input: an optimized `Graph`. Output: a callable ``(list of numpy arrays) -> list of arrays``.
The graph is scheduled into kernels (`schedule/fusion.py`), the kernels are generated as one LLVM
module (`codegen/llvm.py`), the math library is linked in, the module is optimized at O3 for the
host CPU (its real features: AVX2/AVX-512 where present) and compiled to object code, loaded by
MCJIT; a large module is compiled in parts on several threads (`compile.py`), linked into one
shared library and loaded with ctypes (MCJIT when there is no linker: then in one part); each kernel
becomes a ctypes function (ctypes releases the GIL while native code runs); so does each
matmul (`Gemm` step, `codegen/matmul.py`), split over its output rows. Extern steps run
their numpy reference. Large parallel kernels are split over `TRACEJIT_NUM_THREADS` threads
(default: all cores); small ones run inline on the calling thread. A module found in the disk
cache (`diskcache.py`) is loaded from its shared library with ctypes when it has one: then
llvmlite is never imported (`llvm` below is imported at its first use).
"""

from __future__ import annotations

import ctypes
import os
import threading
import weakref
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..errors import CheckError, located_check, user_error
from ..ir.graph import Graph
from ..primitives import PRIMITIVES
from ..profiler import events as _prof
from ..schedule.fusion import schedule
from ..schedule.kernel import Gemm, Kernel, RowKernel, step_outputs
from . import diskcache
from .compile import compile_parts, num_parts

__all__ = ["CPUProgram", "target_machine", "num_threads"]


class _Binding:
    """`llvmlite.binding`, imported at its first use (it then replaces this object as `llvm`):
    importing it loads LLVM (~20 ms), which a process whose code all comes from the disk
    cache's shared libraries never needs."""

    def __getattr__(self, name):
        import llvmlite.binding

        globals()["llvm"] = llvmlite.binding
        return getattr(llvmlite.binding, name)


llvm = _Binding()

_lock = threading.Lock()
_target = None
_TRIPLE = _LAYOUT = _CPU = _FEATURES = ""
PARALLEL_MIN = 1 << 18  # elements (16 multiply-adds count as one): smaller steps run inline,
# since handing a share to another thread costs tens of microseconds


def target_machine():
    """A new target machine for the host CPU. (An MCJIT engine takes ownership of the target
    machine it is given, so every engine gets its own.)

    Code is position-independent (``reloc="pic"``, with MCJIT's large code model): the object
    MCJIT emits is then also what the disk cache links into a shared library, with no second
    code generation. Measured: W1's loop is the same instructions (a GOT base is computed once
    per function, outside the loop); W1, W2, matmul and W7 timings within noise (±3%)."""
    global _target, _TRIPLE, _LAYOUT, _CPU, _FEATURES
    with _lock:
        if _target is None:
            llvm.initialize_native_target()
            llvm.initialize_native_asmprinter()
            _CPU, _FEATURES = llvm.get_host_cpu_name(), llvm.get_host_cpu_features().flatten()
            _TRIPLE = llvm.get_process_triple()
            _target = llvm.Target.from_triple(_TRIPLE)
        tm = _target.create_target_machine(cpu=_CPU, features=_FEATURES, opt=3,
                                           reloc="pic", codemodel="jitdefault")
        if not _LAYOUT:
            _LAYOUT = str(tm.target_data)
        return tm


def _host(live: bool = False) -> tuple[str, str, str, str]:
    """This host as the disk cache's key describes it: (triple, CPU name, feature string, LLVM
    version). LLVM's answers once LLVM is loaded in this process (or when `live`); before that
    the disk cache's record of LLVM's answers on this machine (`diskcache.host_record`), so that
    a disk hit never loads LLVM; without a record, LLVM's (then recorded for the next process)."""
    record = False
    if _target is None and not live:
        rec = diskcache.host_record()
        if rec is not None:
            return rec
        record = True
    target_machine()
    values = _TRIPLE, _CPU, _FEATURES, str(llvm.llvm_version_info)
    if record:
        diskcache.remember_host(*values)
    return values


def num_threads() -> int:
    v = os.environ.get("TRACEJIT_NUM_THREADS")
    if v:
        return max(1, int(v))
    from .host import available_cpus
    return available_cpus()


_pool = None


def _executor():
    global _pool
    with _lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=num_threads(), thread_name_prefix="tracejit")
        return _pool


def _optimize(mod_ref, tm, unlocked: bool = False):
    from .compile import optimize
    optimize(mod_ref, tm, unlocked)


_LINK_FAILED = False  # a module compiled in parts could not be loaded: no more parts


class _Native:
    """An optimized, loaded LLVM module: shared by every graph with the same structure.

    With a `key` (the structural text), the machine code comes from the disk cache when it has
    it (`diskcache.py`): from the entry's shared library, loaded with ctypes (then llvmlite is
    not even imported), else from its object code, loaded by MCJIT; either way no LLVM IR is
    built or optimized, and `llvm_ir` is rebuilt only if asked for. Otherwise it is compiled
    here (MCJIT) and stored there. `address` finds a function in either."""

    def __init__(self, sched, name: str, key: str = ""):
        self._sched, self._name, self._ir, self._asm = sched, name, None, None
        self._ir_parts: list[str] = []
        self.engine = self.lib = None  # the MCJIT engine, or the cache's shared library
        host = _host() if key else None
        dkey = diskcache.entry_key(key, *host) if key else None
        if dkey and self._load(diskcache.load(dkey), dkey):
            self._unload_when_freed()
            return
        if dkey and _host(live=True) != host:  # the cache's record of this host was stale
            host = _host(live=True)
            dkey = diskcache.entry_key(key, *host)
        # A large module is compiled in parts, on several threads, when a linker can join
        # them into one shared library (MCJIT cannot load several objects: `_mcjit`).
        global _LINK_FAILED
        parts = 1
        if not _LINK_FAILED and diskcache.find_linkers():
            parts = num_parts(self._sched, num_threads())
        objs, linked = self._compile_ir(emit=True, parts=parts), None
        if len(objs) > 1:
            made = diskcache.link_and_load(objs, self._functions())
            if made is None:  # no usable library after all (e.g. a `noexec` directory):
                _LINK_FAILED = True  # compile again, as one part, as from now on
                objs = self._compile_ir(emit=True, parts=1)
            else:
                linked, self.lib = made
        if self.lib is None:
            self.engine = self._mcjit(objs)
            if self.engine is None:  # (never seen: these are the objects LLVM just made)
                raise RuntimeError("tracejit: MCJIT could not load the code it compiled")
        self.outer = {k.name: (k.outer_extent, k.parallel_ok) for k in sched.kernels}
        if dkey and diskcache.store(dkey, {"outer": self.outer}, objs, self._functions(),
                                    linked=linked):
            diskcache.remember_host(*host)
        self._unload_when_freed()

    def _unload_when_freed(self) -> None:
        """Unloads the shared library (dlclose) when this object is freed: nothing can call
        its code then, since every `CPUProgram` (and every thread running a step of one:
        `_share`) holds its `_Native`. (ctypes never unloads a library by itself: ~22 KB each
        of the structures evicted from `_NATIVE`. An MCJIT engine frees its code when it is
        freed.) Not at interpreter exit, when other threads may still run."""
        if self.lib is not None:
            weakref.finalize(self, diskcache._close, self.lib).atexit = False

    def _functions(self) -> set[str]:
        """The generated functions the call path looks up: a loaded module must define all."""
        return {st.name for st in self._sched.steps if isinstance(st, (Kernel, Gemm, RowKernel))}

    def _load(self, entry, dkey: str) -> bool:
        """Loads a disk cache entry: its shared library if it has one that loads (no LLVM),
        else its object code with MCJIT; False (and counted) if it is not usable."""
        if entry is None:
            return False
        meta, obj = entry
        outer = meta.get("outer")
        names = {k.name for k in self._sched.kernels}
        functions = self._functions()
        if not isinstance(outer, dict) or set(outer) != names or not all(
                isinstance(v, list) and len(v) == 2 for v in outer.values()):
            diskcache.reject()
            return False
        self.lib = diskcache.library(dkey, meta, obj, functions)
        if self.lib is None:
            objs = diskcache.split_objects(meta, obj)
            self.engine = self._mcjit(objs) if len(objs) == 1 else None
            if self.engine is None:
                diskcache.reject()
                return False
        self.outer = {n: (int(e), bool(p)) for n, (e, p) in outer.items()}
        return True

    def _mcjit(self, objs: list[bytes]):
        """One MCJIT engine with the object of `objs` loaded, checked to define every function
        the call path looks up; else None. One object only: the code of a second object added
        to the same engine crashes when called (measured with llvmlite 0.50 / LLVM 22; MCJIT's
        loader mislinks it), so a module compiled in parts is loaded as a shared library."""
        if len(objs) != 1:
            return None
        tm = target_machine()  # (first: it sets _LAYOUT)
        empty = llvm.parse_assembly(f'target triple = "{_TRIPLE}"\n'
                                    f'target datalayout = "{_LAYOUT}"\n')
        engine = llvm.create_mcjit_compiler(empty, tm)
        try:
            for obj in objs:
                engine.add_object_file(llvm.ObjectFileRef.from_data(obj))
            engine.finalize_object()
            ok = all(engine.get_function_address(n) for n in self._functions())
        except RuntimeError:
            ok = False
        return engine if ok else None

    def address(self, name: str) -> int:
        """The address of the module's function `name` (0 if it has none)."""
        if self.lib is not None:
            return diskcache.symbol_address(self.lib, name)
        return self.engine.get_function_address(name)

    def _compile_ir(self, emit: bool = False, parts: int | None = None) -> list[bytes] | None:
        """Generates, optimizes and (with `emit`) compiles the module, in `parts` parts on as
        many threads (default: by its size, `compile.num_parts`): returns the parts' object
        code, in schedule order (with `emit`). Keeps the IR text (`llvm_ir`,
        `llvm_ir_unoptimized`): the parts', one after the other, in schedule order."""
        target_machine()  # (sets _TRIPLE, _LAYOUT, _CPU, _FEATURES)
        if parts is None:
            parts = num_parts(self._sched, num_threads())
        res = compile_parts(self._sched, self._name, _TRIPLE, _LAYOUT, _CPU, _FEATURES,
                            target_machine, _optimize, parts=parts, emit=emit, want_ir=True)
        self._ir = (_join(res.unoptimized), _join(res.optimized))
        self._ir_parts = res.optimized
        return res.objects if emit else None

    @property
    def llvm_ir(self) -> str:
        """The optimized LLVM IR of the whole module (of each part, one after the other)."""
        if self._ir is None:
            self._compile_ir()
        return self._ir[1]

    @property
    def llvm_ir_unoptimized(self) -> str:
        if self._ir is None:
            self._compile_ir()
        return self._ir[0]

    @property
    def asm(self) -> str:
        """The machine code of the whole module (of each part, one after the other)."""
        if self._asm is None:
            if self._ir is None:
                self._compile_ir()
            tm = target_machine()
            self._asm = _join([tm.emit_assembly(llvm.parse_assembly(t)) for t in self._ir_parts])
        return self._asm


def _join(texts: list[str]) -> str:
    """The texts of a module's parts as one: as they are when there is one part."""
    if len(texts) == 1:
        return texts[0]
    return "\n".join(f"; ---- part {i + 1} of {len(texts)} ----\n{t}"
                      for i, t in enumerate(texts))


_NATIVE: OrderedDict = OrderedDict()
NATIVE_CACHE_SIZE = 512


_BUILDING: dict[str, threading.Lock] = {}  # structure -> held while one thread builds it


def _native(graph: Graph, sched) -> _Native:
    """The loaded module of `graph`'s structure: from `_NATIVE`, else built (or loaded from the
    disk cache) once. Threads that ask for a structure another thread is building wait for it
    (a lock per structure, taken without `_lock` held) instead of building it again; different
    structures build in parallel."""
    from ..ir.printer import structural_text
    key = structural_text(graph)
    with _lock:
        hit = _NATIVE.get(key)
        if hit is not None:
            _NATIVE.move_to_end(key)
            return hit
        building = _BUILDING.setdefault(key, threading.Lock())
    with building:
        with _lock:
            hit = _NATIVE.get(key)
            if hit is not None:  # built by the thread we waited for
                _NATIVE.move_to_end(key)
                return hit
        nat = None
        try:
            nat = _Native(sched, graph.name, key)
        finally:  # (on failure too: a waiting thread then tries itself)
            with _lock:
                if nat is not None:
                    _NATIVE[key] = nat
                    if len(_NATIVE) > NATIVE_CACHE_SIZE:
                        _NATIVE.popitem(last=False)
                if _BUILDING.get(key) is building:
                    del _BUILDING[key]
    return nat


def _share(par, ptrs, addr, n, chunk, state):
    """A worker's part of a shared step. `state` (the counters at `addr`, and the `_Native`
    whose code `par` is) is held until it returns; a worker that starts after the step is
    finished takes no chunk and touches no buffer (but still runs the module's code, which must
    not be unloaded before)."""
    par(*ptrs, addr, n, chunk, 0)
    del state


_DATA_OK = None


def _data_offset_ok() -> bool:
    """Does a numpy array object hold its data pointer where `codegen/entry.py` reads it?"""
    global _DATA_OK
    if _DATA_OK is None:
        from ..codegen.entry import DATA_OFFSET
        a = np.empty(3)
        _DATA_OK = ctypes.c_void_p.from_address(id(a) + DATA_OFFSET).value == a.ctypes.data
    return _DATA_OK


class CPUProgram:
    """A graph compiled for the host CPU."""

    def __init__(self, graph: Graph):
        self.graph = graph
        self.schedule = schedule(graph)
        self._in_dtypes = [n.dtype.np for n in graph.inputs]
        self._threads = num_threads()
        self.native = nat = _native(graph, self.schedule)
        self.steps = []
        for st in self.schedule.steps:
            if isinstance(st, (Kernel, Gemm, RowKernel)):  # Gemm, RowKernel: extents fixed
                if isinstance(st, Kernel):
                    st.outer_extent, st.parallel_ok = nat.outer[st.name]
                addr = nat.address(st.name)
                n = len(step_outputs(st)) + len(st.inputs)
                proto = ctypes.CFUNCTYPE(None, *([ctypes.c_void_p] * n),
                                         ctypes.c_int64, ctypes.c_int64)
                size = st.work
                st_par = st.parallel_ok and size >= PARALLEL_MIN and st.outer_extent > 1
                if st_par:  # shared by chunks (codegen/parallel.py), else split evenly
                    par_addr = nat.address(st.name + "_par")
                    if par_addr:
                        st_par = ctypes.CFUNCTYPE(None, *([ctypes.c_void_p] * (n + 1)),
                                                  ctypes.c_int64, ctypes.c_int64,
                                                  ctypes.c_int64)(par_addr)
                self.steps.append(("k", st, proto(addr), st_par))
            else:
                self.steps.append(("x", st, PRIMITIVES[st.node.op], False))
        self._entry = self._make_entry()
        from ..schedule.buffers import plan_buffers
        self.buffer_plan = plan_buffers(self.schedule)
        self._arenas: list = []  # free arenas of this program (one per concurrent call)

    def _make_entry(self):
        """The one-call path for small schedules (`codegen/entry.py`): every buffer is passed as
        the array object itself; None when the schedule has externs or a kernel large enough to
        split across threads."""
        from ..codegen.entry import ENTRY
        s = self.schedule
        if any(kind != "k" or par for kind, _, _, par in self.steps) or not _data_offset_ok():
            return None
        addr = self.native.address(ENTRY)
        if not addr:
            return None
        fn = ctypes.CFUNCTYPE(None, *([ctypes.py_object] * len(s.buffers)))(addr)
        slots: list = [None] * len(s.buffers)
        for b, v in s.consts.items():
            slots[b] = v
        self._slots = slots
        self._in_spec = list(zip(s.inputs, self._in_dtypes))
        written = {b for st in s.steps for b in step_outputs(st)}
        written |= {st.raw for st in s.steps if isinstance(st, Gemm) and st.raw is not None}
        self._alloc = [(b, s.buffers[b].shape, s.buffers[b].dtype.np) for b in sorted(written)]
        seen: set[int] = set()
        self._out_spec = []  # (buffer, copy?): never hand out an input, a constant, or twice
        for b in s.outputs:
            self._out_spec.append((b, b not in written or b in seen))
            seen.add(b)
        return fn

    def _call_entry(self, args: list):
        objs = self._slots.copy()
        for (b, want), a in zip(self._in_spec, args, strict=True):
            if type(a) is not np.ndarray or a.dtype != want or not a.flags.c_contiguous:
                return None
            objs[b] = a
        for b, shape, dt in self._alloc:
            objs[b] = np.empty(shape, dt)
        self._entry(*objs)
        return [np.array(objs[b], copy=True) if cp else objs[b] for b, cp in self._out_spec]

    @property
    def asm(self) -> str:
        return self.native.asm

    @property
    def llvm_ir(self) -> str:
        return self.native.llvm_ir

    @property
    def llvm_ir_unoptimized(self) -> str:
        return self.native.llvm_ir_unoptimized

    def __call__(self, args: list) -> list[np.ndarray]:
        if self._entry is not None and not _prof.ON:  # (profiling: step by step, each timed)
            out = self._call_entry(args)
            if out is not None:
                return out
        s = self.schedule
        env: list = [None] * len(s.buffers)
        for b, a, want in zip(s.inputs, args, self._in_dtypes, strict=True):
            if type(a) is not np.ndarray:
                a = np.asarray(a)
            if a.dtype != want:
                a = a.astype(want)
            env[b] = a if a.flags.c_contiguous else np.ascontiguousarray(a)
        for b, v in s.consts.items():
            env[b] = v
        bufs = s.buffers
        threads = self._threads
        plan = self.buffer_plan
        try:  # (one pop, not a test then a pop: another thread may take the last arena)
            arena = self._arenas.pop()
        except IndexError:
            arena = np.empty(plan.size + 64, np.uint8)
        base = (-arena.ctypes.data) % 64
        try:
            return self._run(args, env, arena, base, plan.offsets, bufs, threads)
        finally:
            if len(self._arenas) < 4:
                self._arenas.append(arena)

    def _run(self, args, env, arena, base, offsets, bufs, threads):
        s = self.schedule
        prof = _prof.ON
        for kind, st, fn, par in self.steps:
            if prof:
                t0 = _prof.clock()
            if kind == "k":
                ptrs = []
                for b in step_outputs(st):
                    info = bufs[b]
                    if b in offsets:  # a temporary: its planned place in the arena
                        at = base + offsets[b]
                        out = arena[at:at + info.dtype.itemsize * int(np.prod(info.shape))]
                        out = out.view(info.dtype.np).reshape(info.shape)
                    else:
                        out = np.empty(info.shape, info.dtype.np)
                    env[b] = out
                    ptrs.append(out.ctypes.data)
                if isinstance(st, Gemm) and st.raw is not None:  # a result it also stores
                    info = bufs[st.raw]
                    env[st.raw] = np.empty(info.shape, info.dtype.np)
                ptrs += [env[b].ctypes.data for b in st.inputs]
                if par and threads > 1 and par is not True:
                    n = st.outer_extent
                    # chunks: a GEMM packs per call, so it gets one per thread; loops get more,
                    # so a thread that starts late takes fewer
                    chunk = max(1, -(-n // (threads * (1 if isinstance(st, Gemm) else 4))))
                    state = (ctypes.c_int64 * 2)()
                    addr = ctypes.addressof(state)
                    share = _prof.worker(_share, st) if prof else _share
                    for _ in range(threads - 1):
                        _executor().submit(share, par, ptrs, addr, n, chunk,
                                           (state, self.native))
                    par(*ptrs, addr, n, chunk, 1)  # returns when every chunk is finished
                elif par and threads > 1:
                    n = st.outer_extent
                    cuts = [n * t // threads for t in range(threads + 1)]
                    # the calling thread takes the first share itself: one hand-off fewer
                    run = _prof.worker(fn, st) if prof else fn
                    futs = [_executor().submit(run, *ptrs, cuts[t], cuts[t + 1])
                            for t in range(1, threads) if cuts[t] < cuts[t + 1]]
                    try:
                        fn(*ptrs, cuts[0], cuts[1])
                    finally:
                        for f in futs:
                            f.result()
                else:
                    fn(*ptrs, 0, st.outer_extent)
            else:
                node = st.node
                try:
                    res = fn.ref(*(env[b] for b in st.inputs), **node.params)
                except (IndexError, ZeroDivisionError, ValueError) as e:
                    msg = str(e) if str(e).startswith(node.op) else f"{node.op}: {e}"
                    raise user_error(type(e), msg, node.loc) from None
                except CheckError as e:  # a failed tj.debug.check
                    raise located_check(e, node.loc) from None
                res = res if node.type is None else (res,)
                for b, r in zip(st.outputs, res):
                    r = np.asarray(r)
                    dt = bufs[b].dtype.np
                    if r.dtype != dt:
                        r = r.astype(dt)
                    if not r.flags.c_contiguous or np.may_share_memory(r, arena):
                        r = np.array(r, order="C")  # a view of a temporary: its own memory
                    env[b] = r
            if prof:
                _prof.cpu_step(st, t0, threads if par else 1)
        results = []
        for b in s.outputs:
            v = env[b]
            if not v.flags.writeable or any(np.may_share_memory(v, x) for x in list(args) + results
                                            if isinstance(x, np.ndarray)):
                v = np.array(v, copy=True)
            results.append(v)
        return results
