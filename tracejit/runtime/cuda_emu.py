"""The host emulation of a CUDA device: generated CUDA C compiled as C++ and run on the CPU.

Input: CUDA C translation units from `codegen/cuda.py` (`render_schedule`). Output: loaded
modules whose kernels launch with a grid and block over host memory (`EmuModule.launch`), and
`EmulatedDriver`, the device the CUDA runtime (`runtime/cuda.py`) runs on when there is no GPU
and ``TRACEJIT_CUDA_EMULATE=1`` (or `tj.cuda.emulate`): the same code path as a GPU, with
host memory as device memory.

Every CUDA thread runs as a cooperative fiber; barriers, warp shuffles and atomics are real
(``kernels/cuda/tj_emu.h`` says how). Shared memory and newly allocated device buffers start
filled with 0xFF bytes, so a race, a missing barrier or an element never written changes the
result instead of passing by luck.

The system C++ compiler (``$CXX``, else ``c++``/``g++``/``clang++``) builds each module, with
``-DTJ_EMULATE``, into a shared library cached by the sha256 of its source, the headers and
the compiler (in memory, and on disk beside the CPU backend's cache: `diskcache.directory`).
`compile_many` builds several modules as one library (each in its own C++ namespace), which is
what makes running a test table of thousands of small programs affordable.

    >>> from tracejit.runtime.cuda_emu import EmuModule
    >>> import numpy as np
    >>> src = '#include "tj_cuda.h"\\nTJ_KERNEL void twice(float* o, const float* a) {\\n' \\
    ...       '  long long t = tj_thread_index(); if (t < 5) o[t] = 2 * a[t]; }\\n' \\
    ...       'TJ_EMU_ENTRY(twice)\\n'
    >>> out = np.zeros(5, np.float32)
    >>> EmuModule(src).launch("twice", 1, 32, [out, np.arange(5, dtype=np.float32)])
    >>> out
    array([0., 2., 4., 6., 8.], dtype=float32)
"""

from __future__ import annotations

import ctypes
import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import threading

import numpy as np

from ..codegen.cuda import HEADER_DIR

__all__ = ["EmuModule", "compile_many", "compiler", "EmulatedDriver", "emulate_graph",
           "thread_order"]

_lock = threading.Lock()
_modules: dict[str, "EmuModule"] = {}  # sha256 of the source -> module
_compiler: list | None = None


def compiler() -> str | None:
    """The C++ compiler the emulation uses, or None when there is none."""
    global _compiler
    if _compiler is None:
        cands = [os.environ.get("CXX")] if os.environ.get("CXX") else []
        cands += ["c++", "g++", "clang++"]
        path = next((shutil.which(c) for c in cands if shutil.which(c)), None)
        version = ""
        if path:
            try:
                version = subprocess.run([path, "--version"], capture_output=True, text=True,
                                         timeout=30).stdout.splitlines()[0]
            except (OSError, subprocess.SubprocessError, IndexError):
                path = None
        _compiler = [path, version]
    return _compiler[0]


def _headers_digest() -> str:
    h = hashlib.sha256()
    for n in sorted(os.listdir(HEADER_DIR)):
        if n.endswith(".h"):
            with open(os.path.join(HEADER_DIR, n), "rb") as f:
                h.update(n.encode() + b"\0" + f.read())
    return h.hexdigest()


def _key(text: str) -> str:
    compiler()
    return hashlib.sha256(f"{_compiler[1]}\0{_headers_digest()}\0{text}".encode()).hexdigest()


def _cache_dir() -> str | None:
    from . import diskcache
    d = diskcache.directory()
    if d is None:
        return None
    d = os.path.join(d, "cuda-emu")
    try:
        os.makedirs(d, mode=0o700, exist_ok=True)
    except OSError:
        return None
    return d


FLAGS = ["-std=c++17", "-O1", "-shared", "-fPIC", "-DTJ_EMULATE", "-w"]


def _build(text: str, key: str) -> ctypes.CDLL:
    """The shared library of `text` (from the disk cache, or compiled and stored there)."""
    cxx = compiler()
    if cxx is None:
        raise RuntimeError("the CUDA host emulation needs a C++ compiler (c++, g++ or clang++ "
                           "on PATH, or $CXX); none was found")
    d = _cache_dir()
    so = os.path.join(d, key + ".so") if d else None
    if so and os.path.exists(so):
        try:
            return ctypes.CDLL(so)
        except OSError:
            pass
    if so is None:
        return _compile(cxx, text, None)
    # one process compiles a module at a time; others wanting it wait, then load its library
    # (pytest-xdist workers share the test tables' batches this way)
    try:
        lock = open(so + ".lock", "a")
    except OSError:
        return _compile(cxx, text, so)
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if os.path.exists(so):
                try:
                    return ctypes.CDLL(so)
                except OSError:
                    pass
            return _compile(cxx, text, so)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _compile(cxx: str, text: str, so: str | None) -> ctypes.CDLL:
    with tempfile.TemporaryDirectory(prefix="tj-emu-") as tmp:
        src, out = os.path.join(tmp, "m.cpp"), os.path.join(tmp, "m.so")
        with open(src, "w") as f:
            f.write(text)
        r = subprocess.run([cxx, *FLAGS, "-I", HEADER_DIR, src, "-o", out],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"the CUDA host emulation could not compile the generated CUDA C "
                               f"({cxx}):\n{r.stderr[-4000:]}")
        if so:
            try:
                part = f"{so}.{os.getpid()}.tmp"
                shutil.copyfile(out, part)
                os.replace(part, so)
                return ctypes.CDLL(so)
            except OSError:
                pass
        return ctypes.CDLL(out)  # (the file may go: the loaded mapping stays)


_GEOM = ctypes.c_longlong * 6


class EmuModule:
    """A translation unit of generated CUDA C, compiled for the host emulation."""

    def __init__(self, text: str, _lib=None, _prefix: str = "tj_launch_"):
        self.text = text
        self._lib = _lib if _lib is not None else _build(text, _key(text))
        self._prefix = _prefix
        self._fns: dict = {}
        self._lock = threading.Lock()

    def function(self, name: str):
        fn = self._fns.get(name)
        if fn is None:
            try:
                fn = getattr(self._lib, self._prefix + name)
            except AttributeError:
                raise KeyError(f"kernel {name!r} is not in this module (no TJ_EMU_ENTRY)") \
                    from None
            fn.restype = ctypes.c_char_p
            fn.argtypes = [ctypes.POINTER(ctypes.c_longlong), ctypes.POINTER(ctypes.c_void_p)]
            self._fns[name] = fn
        return fn

    def launch(self, name: str, grid, block, args) -> None:
        """Runs kernel `name` with `grid` and `block` (ints or up-to-3-tuples); `args` are
        the pointer parameters: numpy arrays, integer addresses, or None (a null pointer)."""
        g = tuple(grid) if isinstance(grid, (tuple, list)) else (grid,)
        b = tuple(block) if isinstance(block, (tuple, list)) else (block,)
        geom = _GEOM(*(g + (1,) * (3 - len(g))), *(b + (1,) * (3 - len(b))))
        ptrs = (ctypes.c_void_p * max(1, len(args)))(
            *[a.ctypes.data if isinstance(a, np.ndarray) else a for a in args])
        fn = self.function(name)
        with self._lock:
            _set_order(self._lib)
            err = fn(geom, ptrs)
        if err is not None:
            raise RuntimeError(f"CUDA emulation: kernel {name}: {err.decode()}")


_order = threading.local()


_DEFAULT_DESC = os.environ.get("TRACEJIT_EMU_ORDER", "ascending").strip() == "descending"


def _set_order(lib) -> None:
    desc = int(getattr(_order, "descending", _DEFAULT_DESC))
    try:
        lib.tj_emu_set_order(desc)
    except AttributeError:
        pass


class thread_order:
    """``with thread_order("descending"):`` runs each block's emulated threads from the last
    to the first (default "ascending", or ``$TRACEJIT_EMU_ORDER``): the two orders between them
    expose a read of shared memory before the thread that writes it has run, in either
    direction."""

    def __init__(self, order: str):
        if order not in ("ascending", "descending"):
            raise ValueError(f"thread_order: expected 'ascending' or 'descending', got {order!r}")
        self.desc = order == "descending"

    def __enter__(self):
        self.prev = getattr(_order, "descending", _DEFAULT_DESC)
        _order.descending = self.desc
        return self

    def __exit__(self, *exc):
        _order.descending = self.prev


def module(text: str) -> EmuModule:
    """The module of `text`, compiled once per process (and cached on disk)."""
    key = hashlib.sha256(text.encode()).hexdigest()
    with _lock:
        m = _modules.get(key)
    if m is None:
        m = EmuModule(text)
        with _lock:
            m = _modules.setdefault(key, m)
    return m


_INCLUDE = re.compile(r'^\s*#include\s+"[^"]+"\s*$', re.M)


def compile_many(texts: list[str]) -> None:
    """Compiles the modules of `texts` that are not loaded yet as one library (each in its own
    namespace, its entry points prefixed), so that later `module(text)` calls find them."""
    todo = []
    with _lock:
        for t in dict.fromkeys(texts):
            if hashlib.sha256(t.encode()).hexdigest() not in _modules:
                todo.append(t)
    if not todo:
        return
    includes = sorted(set(m.group(0).strip() for t in todo for m in _INCLUDE.finditer(t)))
    parts = ['#include "tj_cuda.h"', *includes]
    for i, t in enumerate(todo):
        parts += [f"#define TJ_EMU_PREFIX tj_launch_m{i}_", f"namespace tj_m{i} {{",
                  _INCLUDE.sub("", t), "}", "#undef TJ_EMU_PREFIX"]
    text = "\n".join(parts) + "\n"
    lib = _build(text, _key(text))
    with _lock:
        for i, t in enumerate(todo):
            key = hashlib.sha256(t.encode()).hexdigest()
            _modules.setdefault(key, EmuModule(t, _lib=lib, _prefix=f"tj_launch_m{i}_"))


# -- the emulated device --------------------------------------------------------------------------
class EmulatedDriver:
    """A CUDA device emulated on the host: device memory is host memory (filled with 0xFF when
    allocated), modules compile with the C++ compiler, launches run `EmuModule.launch`."""

    name = "tracejit CUDA host emulation"
    emulated = True
    multiprocessors = 2
    max_threads_per_block = 1024
    warp_size = 32
    total_memory = 1 << 34
    compute_capability = (8, 0)

    def __init__(self):
        self._blocks: dict[int, np.ndarray] = {}
        self._lock = threading.Lock()

    def module(self, text: str) -> EmuModule:
        return module(text)

    def launch(self, mod: EmuModule, name: str, grid: int, block: int, ptrs: list[int]) -> None:
        mod.launch(name, grid, block, ptrs)

    def mem_alloc(self, nbytes: int) -> int:
        buf = np.full(max(nbytes, 1) + 64, 0xFF, np.uint8)
        ptr = buf.ctypes.data + (-buf.ctypes.data) % 64
        with self._lock:
            self._blocks[ptr] = buf
        return ptr

    def mem_free(self, ptr: int) -> None:
        with self._lock:
            self._blocks.pop(ptr, None)

    def _view(self, ptr: int, nbytes: int) -> np.ndarray:
        return np.ctypeslib.as_array((ctypes.c_uint8 * nbytes).from_address(ptr)) if nbytes \
            else np.empty(0, np.uint8)

    def htod(self, ptr: int, host: np.ndarray) -> None:
        if host.nbytes:
            self._view(ptr, host.nbytes)[:] = np.ascontiguousarray(host).reshape(-1).view(
                np.uint8)

    def dtoh(self, host: np.ndarray, ptr: int) -> None:
        if host.nbytes:
            host.reshape(-1).view(np.uint8)[:] = self._view(ptr, host.nbytes)

    def dtod(self, dst: int, src: int, nbytes: int) -> None:
        if nbytes:
            self._view(dst, nbytes)[:] = self._view(src, nbytes)

    def memset(self, ptr: int, byte: int, nbytes: int) -> None:
        if nbytes:
            self._view(ptr, nbytes)[:] = byte

    def synchronize(self) -> None:
        pass


def emulate_graph(graph, args: list) -> list[np.ndarray]:
    """Runs `graph` (optimized here) through the CUDA runtime on the emulated device: the
    schedule's CUDA C compiled as C++, every launch emulated; numpy results."""
    from ..passes.pipeline import optimize
    from .cuda import CUDAProgram
    prog = CUDAProgram(optimize(graph), driver=emulated_driver())
    return [d.get() for d in prog([np.asarray(a) for a in args])]


_driver = None


def emulated_driver() -> EmulatedDriver:
    global _driver
    with _lock:
        if _driver is None:
            _driver = EmulatedDriver()
        return _driver
