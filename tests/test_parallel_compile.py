"""Compiling a module in parts on several threads (`tracejit/runtime/compile.py`).

Parts are forced here (`PARALLEL_MIN_COST = 0`, two threads) on graphs small enough to
compile quickly: the code must compute the same bits as the module compiled whole, be loaded
as one shared library (the entry function calls kernels of other parts), be stored in and
loaded from the disk cache, and never be handed to MCJIT (which cannot load several objects).
"""

from collections import OrderedDict

import numpy as np
import pytest

import tracejit as tj
from tracejit.passes.pipeline import optimize
from tracejit.runtime import compile as C
from tracejit.runtime import cpu, diskcache
from tracejit.runtime.cpu import CPUProgram
from tracejit.schedule.kernel import Gemm, Kernel

HAVE_LINKER = bool(diskcache.find_linkers())
needs_linker = pytest.mark.skipif(not HAVE_LINKER, reason="no system linker (cc, gcc, clang, ld)")

rng = np.random.default_rng(3)
A = rng.standard_normal((40, 30)).astype(np.float32)
B = rng.standard_normal((30, 20)).astype(np.float32)
Cm = rng.standard_normal((20, 10)).astype(np.float32)


def f(a, b, c):
    """Two matmuls (one with a tanh epilogue: the math library), row kernels, reductions."""
    return tj.softmax(tj.tanh(a @ b) @ c, dim=-1).sum(0) + tj.exp(a).mean()


def f_np(a, b, c):
    z = np.tanh(a.astype(np.float64) @ b) @ c
    e = np.exp(z - z.max(-1, keepdims=True))
    return (e / e.sum(-1, keepdims=True)).sum(0) + np.exp(a.astype(np.float64)).mean()


@pytest.fixture
def fresh(tmp_path, monkeypatch):
    monkeypatch.setenv("TRACEJIT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("TRACEJIT_DISK_CACHE", raising=False)
    monkeypatch.setenv("TRACEJIT_NUM_THREADS", "2")
    monkeypatch.setattr(cpu, "_NATIVE", OrderedDict())
    monkeypatch.setattr(diskcache, "stats", dict.fromkeys(diskcache.stats, 0))
    return tmp_path / "cache"


def _parts(monkeypatch, on: bool):
    monkeypatch.setattr(C, "PARALLEL_MIN_COST", 0 if on else 10**9)
    cpu._NATIVE.clear()


def _graph():
    return optimize(tj.make_graph(f)(A, B, Cm))


def test_partition_is_contiguous_and_balanced():
    class G(Gemm):
        def __init__(self):
            pass

    class K(Kernel):
        def __init__(self):
            pass

    steps = [G(), K(), K(), G(), K(), G(), G(), K()]
    for p in (1, 2, 3, 4, 8, 20):
        runs = C.partition(steps, p)
        assert [s for r in runs for s in r] == steps and all(runs) and len(runs) <= p
    costs = [sum(C.cost(s) for s in r) for r in C.partition(steps, 2)]
    assert max(costs) - min(costs) <= C.GEMM_COST
    assert C.partition(steps, 1) == [steps]


def test_small_modules_compile_in_one_part():
    g = optimize(tj.make_graph(lambda x: tj.exp(x) + 1.0)(A))
    from tracejit.schedule.fusion import schedule
    assert C.num_parts(schedule(g), 8) == 1
    assert C.num_parts(schedule(_graph()), 1) == 1


@needs_linker
@pytest.mark.parametrize("disk", [True, False], ids=["disk-cache", "no-disk-cache"])
def test_parts_compute_the_same_bits(fresh, monkeypatch, disk):
    if not disk:
        monkeypatch.setenv("TRACEJIT_DISK_CACHE", "0")
    g = _graph()
    _parts(monkeypatch, False)
    whole = CPUProgram(g)
    assert whole.native.engine is not None or whole.native.lib is not None
    _parts(monkeypatch, True)
    monkeypatch.setenv("TRACEJIT_CACHE_DIR", str(fresh) + "-2")  # (else: the whole one's entry)
    parted = CPUProgram(g)
    nat = parted.native
    assert nat.lib is not None and nat.engine is None  # one shared library, not MCJIT
    assert len(nat._ir_parts) == 2
    assert parted._entry is not None  # tj_entry (last part) calls the other part's kernels
    want = whole([A, B, Cm])[0]
    np.testing.assert_allclose(want, f_np(A, B, Cm), rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(parted([A, B, Cm])[0], want)
    parted._entry = None  # the per-step path: every kernel through its own address
    np.testing.assert_array_equal(parted([A, B, Cm])[0], want)
    # the whole program's text: every function, part after part, in schedule order
    text = nat.llvm_ir
    assert "part 1 of 2" in text and "part 2 of 2" in text
    names = [st.name for st in parted.schedule.steps]
    at = [text.index(f"@{n}(") for n in names]
    assert at == sorted(at)
    assert "tj_entry" in nat.asm and all(n in nat.asm for n in names)


@needs_linker
def test_parts_in_the_disk_cache(fresh, monkeypatch):
    _parts(monkeypatch, True)
    out = tj.compile(f)(A, B, Cm).numpy()
    (path,) = fresh.glob("*.tjc")
    meta, blob = diskcache.decode(path.read_bytes(), path.stem)
    sizes = meta["objects"]
    assert len(sizes) == 2 and sum(sizes) == len(blob) and "lib" in meta
    assert diskcache.stats["libs_linked"] == 1 and diskcache.stats["stores"] == 1
    cpu._NATIVE.clear()
    again = tj.compile(f)(A, B, Cm).numpy()
    assert diskcache.stats["hits"] == 1 and diskcache.stats["libs_loaded"] == 1
    np.testing.assert_array_equal(again, out)
    # the library is relinked from the entry's objects when it does not match
    path.with_suffix(diskcache.LIB_SUFFIX).write_bytes(b"not a library")
    cpu._NATIVE.clear()
    np.testing.assert_array_equal(tj.compile(f)(A, B, Cm).numpy(), out)
    assert diskcache.stats["libs_rejected"] == 1 and diskcache.stats["libs_loaded"] == 2


@needs_linker
def test_parts_without_a_library_are_never_given_to_mcjit(fresh, monkeypatch):
    _parts(monkeypatch, True)
    out = tj.compile(f)(A, B, Cm).numpy()
    (path,) = fresh.glob("*.tjc")
    path.with_suffix(diskcache.LIB_SUFFIX).unlink()
    monkeypatch.setattr(diskcache, "find_linkers", lambda: [])  # cannot relink it either
    cpu._NATIVE.clear()
    again = tj.compile(f)(A, B, Cm).numpy()
    assert diskcache.stats["rejected"] == 1  # compiled again, as one part (MCJIT)
    np.testing.assert_array_equal(again, out)
    assert "objects" not in diskcache.decode(path.read_bytes(), path.stem)[0]
    assert cpu._NATIVE and next(iter(cpu._NATIVE.values())).engine is not None


def test_no_linker_means_one_part(fresh, monkeypatch):
    monkeypatch.setattr(diskcache, "find_linkers", lambda: [])
    _parts(monkeypatch, True)
    prog = CPUProgram(_graph())
    assert prog.native.engine is not None and len(prog.native._ir_parts) == 1
    np.testing.assert_allclose(prog([A, B, Cm])[0], f_np(A, B, Cm), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("sizes", [[1], [5, -1], "x", [1, 2], [0, 0]])
def test_entries_with_bad_part_sizes_are_rejected(sizes):
    obj = b"\x7fELF" + bytes(60)
    good = diskcache.encode("k", {"outer": {}, "objects": [30, 34]}, obj)
    assert diskcache.decode(good, "k") is not None
    assert diskcache.split_objects(diskcache.decode(good, "k")[0], obj) == [obj[:30], obj[30:]]
    assert diskcache.decode(diskcache.encode("k", {"outer": {}, "objects": sizes}, obj),
                            "k") is None


@needs_linker
def test_threads_compiling_in_parts_at_once(fresh, monkeypatch):
    """Several user threads, each compiling a module in parts: each part has its own context
    and target machine, so nothing is shared but the pool."""
    import threading
    _parts(monkeypatch, True)
    monkeypatch.setenv("TRACEJIT_DISK_CACHE", "0")
    shapes = [(40, 30, 20, 10), (33, 17, 9, 5), (24, 31, 12, 7), (50, 8, 16, 3)]
    res, errs = {}, []

    def work(i, m, k, n, p):
        try:
            r = np.random.default_rng(i)
            a, b, c = (r.standard_normal(s).astype(np.float32) for s in ((m, k), (k, n), (n, p)))
            prog = CPUProgram(optimize(tj.make_graph(f)(a, b, c)))
            assert prog.native.lib is not None and len(prog.native._ir_parts) == 2
            res[i] = (prog([a, b, c])[0], f_np(a, b, c))
        except Exception as e:  # noqa: BLE001
            errs.append(e)
    ts = [threading.Thread(target=work, args=(i, *s)) for i, s in enumerate(shapes)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errs, errs
    for got, want in res.values():
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


@needs_linker
def test_a_library_the_loader_refuses_means_one_part(fresh, monkeypatch):
    def refuse(path):
        raise OSError(f"{path}: failed to map segment from shared object")
    monkeypatch.setattr(diskcache, "_dlopen", refuse)  # as on a `noexec` cache directory
    monkeypatch.setattr(cpu, "_LINK_FAILED", False)
    _parts(monkeypatch, True)
    prog = CPUProgram(_graph())
    assert prog.native.engine is not None and len(prog.native._ir_parts) == 1
    assert cpu._LINK_FAILED  # (no more parts in this process)
    np.testing.assert_allclose(prog([A, B, Cm])[0], f_np(A, B, Cm), rtol=1e-4, atol=1e-4)
    (path,) = fresh.glob("*.tjc")
    meta = diskcache.decode(path.read_bytes(), path.stem)[0]
    assert "objects" not in meta and "lib" not in meta  # one object, for MCJIT
