"""The CUDA runtime: a graph's schedule compiled to CUDA C and run on a device.

Input: an optimized `Graph` and a driver: `PyCudaDriver` (a GPU through pycuda) or
`cuda_emu.EmulatedDriver` (the host emulation). Output: `CUDAProgram`, called with numpy arrays
or `DeviceArray`s, returning `DeviceArray`s that stay on the device until read (``.get()``,
``np.asarray``).

* Code: `codegen/cuda.py` renders the schedule (`render_schedule`); the driver compiles it once
  per source text (pycuda's `SourceModule` with nvcc, cached in memory here, and on disk by
  pycuda under the disk cache's ``cuda/`` folder; the emulation caches its libraries beside).
* Bad input a kernel detects (a gather index out of bounds, an integer division by zero) sets
  its step's flag; the flags are read once per call, after every launch is queued, and a set
  one reruns that step's numpy reference on the host to raise the CPU backend's error.
* Launches: each step's `Launch`es in order on the device's default stream; a grid-stride
  launch (``grid == 0``) gets ``ceil(work / block)`` blocks, at most 32 per multiprocessor.
* Memory: a caching allocator per device (`Pool`): freed blocks are kept by size class and
  reused, so a training loop stops calling the driver's allocator after its first step
  (``tj.cuda.memory_allocated()``, ``memory_reserved()``, ``empty_cache()``).
* Steps the CUDA code generator does not render (control flow, debug effects, sorting, ...)
  run on the host: their operands are copied to the host, their numpy reference runs, the
  results are copied back (`CudaSource.steps` says which; ``CUDAProgram.host_steps`` lists
  them).
"""

from __future__ import annotations

import os
import threading
import weakref

import numpy as np

from ..codegen.cuda import SCRATCH, render_schedule
from ..errors import CheckError, located_check, user_error
from ..ir.graph import Graph
from ..primitives import PRIMITIVES
from ..profiler import events as _prof
from ..schedule.fusion import schedule
from ..schedule.kernel import Extern, Gemm, step_outputs

__all__ = ["CUDAProgram", "DeviceArray", "Pool", "PyCudaDriver", "to_device", "pool", "describe",
           "run_host_step"]


# -- memory -----------------------------------------------------------------------------------
def _size_class(nbytes: int) -> int:
    """Bytes actually reserved for a request: multiples of 512 B below 1 MiB, of 2 MiB above."""
    nbytes = max(nbytes, 1)
    unit = 512 if nbytes < (1 << 20) else (2 << 20)
    return -(-nbytes // unit) * unit


class Pool:
    """A caching allocator over a driver's ``mem_alloc``/``mem_free``: blocks freed by their
    `DeviceArray`s are kept by size class and handed out again."""

    def __init__(self, driver):
        self.driver = driver
        self._free: dict[int, list[int]] = {}
        self._lock = threading.Lock()
        self.allocated = 0  # bytes in live blocks
        self.reserved = 0  # bytes obtained from the driver (live + cached)

    def alloc(self, nbytes: int) -> "_Block":
        size = _size_class(nbytes)
        with self._lock:
            free = self._free.get(size)
            ptr = free.pop() if free else None
            self.allocated += size
        if ptr is None:
            try:
                ptr = self.driver.mem_alloc(size)
            except Exception:  # noqa: BLE001  (out of memory: drop the cache and retry once)
                self.empty_cache()
                ptr = self.driver.mem_alloc(size)
            with self._lock:
                self.reserved += size
        return _Block(self, ptr, size)

    def release(self, ptr: int, size: int) -> None:
        with self._lock:
            self._free.setdefault(size, []).append(ptr)
            self.allocated -= size

    def empty_cache(self) -> None:
        with self._lock:
            blocks = [(p, s) for s, ps in self._free.items() for p in ps]
            self._free.clear()
            self.reserved -= sum(s for _, s in blocks)
        for p, _ in blocks:
            self.driver.mem_free(p)


class _Block:
    __slots__ = ("ptr", "size", "__weakref__")

    def __init__(self, pool: Pool, ptr: int, size: int):
        self.ptr, self.size = ptr, size
        weakref.finalize(self, pool.release, ptr, size)


class DeviceArray:
    """A dense row-major array in device memory (what CUDA tensors hold).

    ``get()`` / ``np.asarray(a)`` copy it to the host; ``__cuda_array_interface__`` (on a GPU)
    shares it with CuPy, PyTorch and Numba without a copy."""

    __slots__ = ("shape", "dtype", "driver", "block", "__weakref__")
    _tj_device = True  # (what Tensor checks without importing this module)

    def __init__(self, shape, dtype, driver, block: _Block):
        self.shape, self.dtype, self.driver, self.block = tuple(shape), np.dtype(dtype), \
            driver, block

    @classmethod
    def empty(cls, shape, dtype, driver) -> "DeviceArray":
        n = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
        return cls(shape, dtype, driver, pool(driver).alloc(n))

    @property
    def ptr(self) -> int:
        return self.block.ptr

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def get(self) -> np.ndarray:
        """A host copy."""
        out = np.empty(self.shape, self.dtype)
        self.driver.dtoh(out, self.ptr)
        return out

    def __array__(self, dtype=None, copy=None):
        out = self.get()
        return out if dtype is None else out.astype(dtype, copy=False)

    def copy(self) -> "DeviceArray":
        out = DeviceArray.empty(self.shape, self.dtype, self.driver)
        self.driver.dtod(out.ptr, self.ptr, self.nbytes)
        return out

    @property
    def __cuda_array_interface__(self) -> dict:
        if getattr(self.driver, "emulated", False):
            raise AttributeError("__cuda_array_interface__: this array lives on the host "
                                 "emulation of a CUDA device, not on a GPU")
        return {"shape": self.shape, "typestr": self.dtype.str, "data": (self.ptr, False),
                "version": 3, "strides": None}

    def __repr__(self) -> str:
        return f"DeviceArray(shape={self.shape}, dtype={self.dtype}, on {self.driver.name})"


_pools: dict[int, Pool] = {}
_pools_lock = threading.Lock()


def pool(driver) -> Pool:
    with _pools_lock:
        p = _pools.get(id(driver))
        if p is None:
            p = _pools[id(driver)] = Pool(driver)
        return p


def to_device(a, driver, dtype=None) -> DeviceArray:
    """`a` (a numpy array, a scalar or a `DeviceArray`) as a dense `DeviceArray` on `driver`
    (a DeviceArray of the right dtype on that device is returned as is)."""
    if isinstance(a, DeviceArray):
        if a.driver is not driver:
            a = a.get()
        elif dtype is None or a.dtype == np.dtype(dtype):
            return a
        else:
            a = a.get()
    h = np.asarray(a, dtype=dtype, order="C")  # (not ascontiguousarray: it makes 0-d 1-d)
    out = DeviceArray.empty(h.shape, h.dtype, driver)
    driver.htod(out.ptr, h)
    return out


# -- the GPU driver (pycuda) ------------------------------------------------------------------
class PyCudaDriver:
    """One NVIDIA GPU through pycuda (imported when the first GPU is used)."""

    emulated = False

    def __init__(self, index: int = 0):
        import pycuda.driver as drv
        drv.init()
        self.drv = drv
        self.index = index
        self.device = drv.Device(index)
        self.context = self.device.retain_primary_context()
        self._tls = threading.local()
        self._ctx()
        a = drv.device_attribute
        self.name = self.device.name()
        self.multiprocessors = self.device.get_attribute(a.MULTIPROCESSOR_COUNT)
        self.max_threads_per_block = self.device.get_attribute(a.MAX_THREADS_PER_BLOCK)
        self.warp_size = self.device.get_attribute(a.WARP_SIZE)
        self.compute_capability = self.device.compute_capability()
        self.total_memory = self.device.total_memory()
        self._allocs: dict[int, object] = {}
        self._modules: dict[str, object] = {}
        self._lock = threading.Lock()
        self._prepared: dict = {}

    def _ctx(self):
        """Makes the device's primary context current in this thread (pushed once per thread:
        pycuda keeps a per-thread stack of contexts)."""
        if not getattr(self._tls, "pushed", False):
            self.context.push()
            self._tls.pushed = True

    activate = _ctx  # (a program's call: once, before its launches)

    def module(self, text: str):
        with self._lock:
            m = self._modules.get(text)
            if m is None:
                self._ctx()
                from pycuda.compiler import SourceModule

                from ..codegen.cuda import HEADER_DIR
                from . import diskcache
                major, minor = self.compute_capability
                d = diskcache.directory()  # (pycuda keys its cubins by source and options)
                cache = os.path.join(d, "cuda") if d else None
                if cache:
                    os.makedirs(cache, mode=0o700, exist_ok=True)
                m = SourceModule(text, no_extern_c=True, include_dirs=[HEADER_DIR],
                                 arch=f"sm_{major}{minor}", options=["-std=c++17"],
                                 cache_dir=cache)
                self._modules[text] = m
            return m

    def launch(self, mod, name: str, grid: int, block: int, ptrs: list[int]) -> None:
        key = (id(mod), name)
        fn = self._prepared.get(key)
        if fn is None:
            fn = mod.get_function(name)
            fn.prepare("P" * len(ptrs))
            self._prepared[key] = fn
        fn.prepared_call((grid, 1, 1), (block, 1, 1), *ptrs)  # (context: `activate`)

    def mem_alloc(self, nbytes: int) -> int:
        self._ctx()
        a = self.drv.mem_alloc(nbytes)
        with self._lock:
            self._allocs[int(a)] = a
        return int(a)

    def mem_free(self, ptr: int) -> None:
        with self._lock:
            a = self._allocs.pop(ptr, None)
        if a is not None:
            a.free()

    def htod(self, ptr: int, host: np.ndarray) -> None:
        if host.nbytes:
            self._ctx()
            self.drv.memcpy_htod(ptr, np.ascontiguousarray(host))

    def dtoh(self, host: np.ndarray, ptr: int) -> None:
        if host.nbytes:
            self._ctx()
            self.drv.memcpy_dtoh(host, ptr)

    def dtod(self, dst: int, src: int, nbytes: int) -> None:
        if nbytes:
            self._ctx()
            self.drv.memcpy_dtod(dst, src, nbytes)

    def memset(self, ptr: int, byte: int, nbytes: int) -> None:
        if nbytes:
            self._ctx()
            self.drv.memset_d8(ptr, byte, nbytes)

    def synchronize(self) -> None:
        self._ctx()
        self.drv.Context.synchronize()


# -- programs ---------------------------------------------------------------------------------
def run_host_step(node, arrays: list[np.ndarray], dtypes: list) -> list[np.ndarray]:
    """A graph node's numpy reference on host arrays, with the CPU backend's errors (the
    user's line); one array per result, converted to the buffers' dtypes."""
    try:
        res = PRIMITIVES[node.op].ref(*arrays, **node.params)
    except (IndexError, ZeroDivisionError, ValueError) as e:
        msg = str(e) if str(e).startswith(node.op) else f"{node.op}: {e}"
        raise user_error(type(e), msg, node.loc) from None
    except CheckError as e:  # a failed tj.debug.check
        raise located_check(e, node.loc) from None
    res = res if node.type is None else (res,)
    return [np.asarray(np.asarray(r).astype(dt, copy=False), order="C")
            for r, dt in zip(res, dtypes)]


class _View:
    """A region of a larger block (a temporary in the call's arena): a `DeviceArray`'s block
    that keeps the arena alive and frees nothing itself."""

    __slots__ = ("ptr", "owner")

    def __init__(self, ptr: int, owner):
        self.ptr, self.owner = ptr, owner


def _aligned(n: int) -> int:
    return -(-n // 256) * 256


class CUDAProgram:
    """A graph compiled for a CUDA device (a GPU, or the host emulation).

    A call allocates its outputs, and one arena block for every temporary (placed by
    `schedule/buffers.py`: temporaries not alive together share memory) and every step's
    scratch; each step's launches were resolved once (kernel, grid, block, parameter buffers),
    so a call is a loop of launches. On the emulated device the arena is refilled with 0xFF
    bytes at every call, so a kernel that reads a temporary nobody wrote still sees poison."""

    def __init__(self, graph: Graph, driver):
        self.graph, self.driver = graph, driver
        self.schedule = s = schedule(graph)
        self.source = render_schedule(s)
        self.module = driver.module(self.source.text)
        self.consts = {b: to_device(v, driver, s.buffers[b].dtype.np)
                       for b, v in s.consts.items()}
        self.host_steps = []
        for st, c in zip(s.steps, self.source.steps):
            if c is not None:
                continue
            if not isinstance(st, Extern):
                raise NotImplementedError(f"CUDA backend: no CUDA rendering of the "
                                          f"{type(st).__name__} step {st.name!r}")
            self.host_steps.append(st.node.op)
        self._in_dtypes = [s.buffers[b].dtype.np for b in s.inputs]
        self._prepare()

    @property
    def text(self) -> str:
        return self.source.text

    def _grid(self, ln) -> int:
        if ln.grid:
            return ln.grid
        return max(1, min(-(-ln.work // ln.block), 32 * self.driver.multiprocessors))

    def _prepare(self) -> None:
        from ..schedule.buffers import plan_buffers
        s = self.schedule
        plan = plan_buffers(s)
        self._temps = plan.offsets
        self._arena = _aligned(plan.size)
        scratch = 0
        self._plan = []  # per step: (st, None) on the host, else (st, (own, at, launches, flag))
        for st, cst in zip(s.steps, self.source.steps):
            if cst is None:
                self._plan.append((st, None))
                continue
            outs = list(step_outputs(st))
            if isinstance(st, Gemm) and st.raw is not None:
                outs.append(st.raw)
            own = [(b, s.buffers[b].shape, s.buffers[b].dtype.np) for b in outs
                   if b not in plan.offsets]
            at = None
            if cst.scratch:
                at, scratch = self._arena + scratch, scratch + _aligned(cst.scratch)
            launches = [(ln, ln.name, self._grid(ln), ln.block, ln.params)
                        for ln in cst.launches if not (ln.grid == 0 and ln.work == 0)]
            self._plan.append((st, (own, at, launches, cst.error_flag)))
        self._block_size = self._arena + scratch

    def __call__(self, args: list) -> list[DeviceArray]:
        s, drv = self.schedule, self.driver
        bufs = s.buffers
        keep: dict = {}  # buffer -> DeviceArray (arguments, constants, outputs, host results)
        ptr = [0] * len(bufs)
        for b, a, want in zip(s.inputs, args, self._in_dtypes, strict=True):
            keep[b] = d = to_device(a, drv, want)
            ptr[b] = d.ptr
        for b, v in self.consts.items():
            keep[b] = v
            ptr[b] = v.ptr
        arena = pool(drv).alloc(self._block_size) if self._block_size else None
        base = arena.ptr if arena is not None else 0
        if arena is not None and drv.emulated:
            drv.memset(base, 0xFF, self._block_size)
        for b, off in self._temps.items():
            ptr[b] = base + off
        activate = getattr(drv, "activate", None)
        if activate is not None:
            activate()
        flagged = []  # steps whose kernels report bad input (gather bounds, division by 0)
        prof = _prof.ON  # profiling: each launch timed, with a synchronize before and after
        mod, launch = self.module, drv.launch
        for st, step in self._plan:
            if step is None:
                if prof:
                    _prof.cuda_host(self._host, st, (ptr, keep, arena))
                else:
                    self._host(st, (ptr, keep, arena))
                continue
            own, at, launches, flag = step
            for b, shape, dt in own:
                keep[b] = d = DeviceArray.empty(shape, dt, drv)
                ptr[b] = d.ptr
            sc = base + at if at is not None else 0
            if flag:
                drv.memset(sc, 0, 4)
                flagged.append((st, sc))
            for ln, name, grid, block, params in launches:
                p = [sc if q == SCRATCH else ptr[q] for q in params]
                if prof:
                    _prof.cuda_launch(drv, mod, ln, grid, p, st)
                else:
                    launch(mod, name, grid, block, p)
        for st, sc in flagged:  # read once the call's work is queued: one sync per call
            flag = np.zeros(1, np.int32)
            drv.dtoh(flag, sc)
            if flag[0]:  # bad input: the reference raises the CPU backend's error
                self._host(st, (ptr, keep, arena))
        out, seen = [], set()
        for b in s.outputs:
            v = keep[b] if b in keep else self._view(b, ptr, arena)
            if b in seen or bufs[b].kind in ("input", "const") or b not in keep:
                v = v.copy()  # a result never aliases an argument, a constant or a result
            seen.add(b)
            out.append(v)
        return out

    def _view(self, b: int, ptr, arena) -> DeviceArray:
        info = self.schedule.buffers[b]
        return DeviceArray(info.shape, info.dtype.np, self.driver, _View(ptr[b], arena))

    def _host(self, st, state) -> None:
        ptr, keep, arena = state
        s = self.schedule
        arrays = [(keep[b] if b in keep else self._view(b, ptr, arena)).get() for b in st.inputs]
        dts = [s.buffers[b].dtype.np for b in st.outputs]
        for b, r in zip(st.outputs, run_host_step(st.node, arrays, dts)):
            keep[b] = d = to_device(r, self.driver)
            ptr[b] = d.ptr


def describe(driver) -> str:
    """One line about a device, for errors and docs."""
    cc = ".".join(map(str, getattr(driver, "compute_capability", ())))
    return f"{driver.name} ({driver.multiprocessors} SMs, compute capability {cc})"

