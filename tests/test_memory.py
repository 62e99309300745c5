"""Memory: resident set size stays flat over many calls, over compile-and-discard cycles and
over structures evicted from the in-memory module cache; a collected compiled function frees
its program, its loaded module and (shared-library path) unloads the library.

RSS is read from /proc/self/statm (Linux only), after `gc.collect()` and glibc's
`malloc_trim(0)` (so memory the allocator merely keeps for reuse does not count). Each test
warms up first (first-call allocations, caches, arenas), then measures growth over the loop
against a stated tolerance — far below what a leak of one buffer, one module or one library
per iteration would add.

`python -m pytest tests/test_memory.py -m slow` (or TRACEJIT_SLOW_TESTS=1) adds the long
measurement of LLVM compilations (see docs/reliability.md, "Memory").
"""

from __future__ import annotations

import ctypes
import gc
import os
import sys
import weakref
from collections import OrderedDict

import numpy as np
import pytest

import tracejit as tj
from tracejit.runtime import cpu, diskcache

pytestmark = pytest.mark.skipif(not os.path.exists("/proc/self/statm"),
                                reason="needs /proc/self/statm (Linux)")

MB = 1 << 20


def _trim() -> None:
    gc.collect()
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (AttributeError, OSError):
        pass


def rss() -> int:
    """This process's resident set size in bytes, after collecting and trimming."""
    _trim()
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def mapped() -> str:
    """This process's memory map (which files are loaded)."""
    with open("/proc/self/maps") as f:
        return f.read()


def slow_requested(request) -> bool:
    return "slow" in (request.config.getoption("markexpr") or "") or bool(
        os.environ.get("TRACEJIT_SLOW_TESTS"))


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    """Its own disk cache directory and an empty in-memory module cache."""
    monkeypatch.setenv("TRACEJIT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("TRACEJIT_DISK_CACHE", raising=False)
    monkeypatch.setattr(cpu, "_NATIVE", OrderedDict())
    return tmp_path / "cache"


def several_kernels(x, w):
    """Elementwise with the math library, a reduction, a small matmul, broadcasting."""
    h = tj.tanh(x @ w + 1.0)
    return (h * tj.exp(-x.sum(dim=1, keepdim=True))).sum(dim=0), h.max()


def several_kernels_np(x, w):
    h = np.tanh(x @ w + 1.0)
    return (h * np.exp(-x.sum(axis=1, keepdims=True))).sum(axis=0), h.max()


X = np.linspace(-1, 1, 8 * 16, dtype=np.float32).reshape(8, 16)
W = np.linspace(-0.5, 0.5, 16 * 8, dtype=np.float32).reshape(16, 8)

CALLS = 10_000
CALLS_TOLERANCE = 2 * MB  # one leaked 32-byte output per call would already be 320 KB + headers


def test_calls_keep_rss_flat():
    f = tj.compile(several_kernels)
    want = several_kernels_np(X, W)
    for _ in range(200):  # warm up: compile, arenas, numpy's small-array caches
        out = f(X, W)
    np.testing.assert_allclose(out[0].numpy(), want[0], rtol=1e-5, atol=1e-5)
    before = rss()
    for _ in range(CALLS):
        out = f(X, W)
    grown = rss() - before
    np.testing.assert_allclose(out[0].numpy(), want[0], rtol=1e-5, atol=1e-5)
    assert grown < CALLS_TOLERANCE, f"{CALLS} calls grew RSS by {grown / MB:.2f} MB"


CYCLES = 1_000
CYCLES_TOLERANCE = 3 * MB  # a leaked CompiledFunction + graph + program is several KB each


def test_compile_and_discard_cycles_keep_rss_flat():
    """A new `tj.compile(lambda ...)` each cycle, called, then dropped (one structure: the
    loaded module is shared; what must not pile up is everything else)."""
    x = np.linspace(-1, 1, 32, dtype=np.float32).reshape(4, 8)

    def cycle():
        f = tj.compile(lambda a: (tj.tanh(a * 0.5) + 1.0).sum(dim=1) + a.max())
        out = f(x).numpy()
        del f
        return out

    for _ in range(50):
        cycle()
    before = rss()
    for _ in range(CYCLES):
        out = cycle()
    grown = rss() - before
    np.testing.assert_allclose(out, (np.tanh(x * 0.5) + 1.0).sum(axis=1) + x.max(), rtol=1e-5)
    assert grown < CYCLES_TOLERANCE, f"{CYCLES} cycles grew RSS by {grown / MB:.2f} MB"


@pytest.mark.parametrize("linker", [True, False], ids=["library", "mcjit"])
def test_collected_function_frees_its_program_and_module(fresh_cache, monkeypatch, linker):
    if not linker:
        monkeypatch.setattr(diskcache, "find_linkers", lambda: [])
    elif not diskcache.find_linkers():
        pytest.skip("no system linker")
    c = 0.125 + np.random.default_rng().integers(1 << 20)  # a structure of its own
    f = tj.compile(lambda a: tj.exp(a * c).sum())
    f(X)  # compiled and stored on disk: a library (linker) or object code (MCJIT)
    cpu._NATIVE.clear()
    f = tj.compile(lambda a: tj.exp(a * c).sum())
    f(X)  # loaded from disk
    prog = next(iter(f._cache.values())).base
    assert isinstance(prog, cpu.CPUProgram)
    nat = prog.native
    assert (nat.lib is not None) == linker and (nat.engine is not None) == (not linker)
    refs = [weakref.ref(o) for o in (f, prog, nat)]
    path = nat.lib._name if linker else None
    assert not linker or path in mapped()
    del f, prog, nat
    cpu._NATIVE.clear()  # (as an eviction does)
    gc.collect()
    assert [r() for r in refs] == [None, None, None]
    assert not linker or path not in mapped()  # the library is unloaded (dlclose)


@pytest.mark.parametrize("linker", [True, False], ids=["library", "mcjit"])
def test_evicted_structures_keep_rss_flat(fresh_cache, monkeypatch, linker):
    """Distinct structures cycling through a small in-memory module cache, loaded from the disk
    cache each time (shared library with ctypes; object code with MCJIT): evicted modules are
    freed — the engine, or the library (dlclose; before, ~22 KB each stayed)."""
    if not linker:
        monkeypatch.setattr(diskcache, "find_linkers", lambda: [])
    elif not diskcache.find_linkers():
        pytest.skip("no system linker")
    monkeypatch.setattr(cpu, "NATIVE_CACHE_SIZE", 4)
    n, rounds = 40, 5
    x = np.linspace(-1, 1, 32, dtype=np.float32).reshape(4, 8)

    def run(i):
        c = float(i) + 0.25
        f = tj.compile(lambda a: (tj.tanh(a * c) + 1.0).sum(dim=1) + a.max())
        return f(x).numpy()

    for i in range(n):  # compiled and stored
        run(i)
    run(0)  # warm up the loading path
    before = rss()
    stats = dict(diskcache.stats)
    for _ in range(rounds):
        for i in range(n):
            out = run(i)
    grown = rss() - before
    # every one loaded again (but the first: it is still among the 4 in memory)
    assert diskcache.stats["hits"] - stats["hits"] == n * rounds - 1
    assert len(cpu._NATIVE) == 4
    np.testing.assert_allclose(out, (np.tanh(x * (n - 0.75)) + 1.0).sum(axis=1) + x.max(),
                               rtol=1e-5)
    loads = n * rounds
    assert grown < 2 * MB, f"{loads} loads grew RSS by {grown / MB:.2f} MB"


COMPILE_LEAK = 400 * 1024  # bytes per LLVM compilation (llvmlite 0.50: ~180 KB measured)


@pytest.mark.slow
def test_llvm_compilations_leak_at_most_a_bounded_amount(fresh_cache, monkeypatch, request):
    """Known, upstream: each LLVM compilation leaks inside llvmlite's new-pass-manager wrapper
    (`LLVMPY_CreatePassBuilder` allocates PassInstrumentationCallbacks it never frees, and
    `LLVMPY_RunNewModulePassManager` registers instrumentation into them on every run):
    ~30 KB for an empty module, ~180 KB for this one; the same with a fresh LLVM context per
    compilation. Compiling happens once per structure and process (a miss in both caches), so
    this bounds it, at the cost of ~0.1 s per structure."""
    if not slow_requested(request):
        pytest.skip("long: run with -m slow")
    monkeypatch.setenv("TRACEJIT_DISK_CACHE", "0")
    monkeypatch.setattr(cpu, "NATIVE_CACHE_SIZE", 4)
    x = np.linspace(-1, 1, 32, dtype=np.float32).reshape(4, 8)

    def run(i):
        c = float(i) + 0.25
        tj.compile(lambda a: (tj.tanh(a * c) + 1.0).sum(dim=1) + a.max())(x)

    for i in range(20):
        run(i)
    n = 150
    before = rss()
    for i in range(20, 20 + n):
        run(i)
    per = (rss() - before) / n
    print(f"\nLLVM compilation: {per / 1024:.1f} KB of RSS each", file=sys.stderr)
    assert per < COMPILE_LEAK
