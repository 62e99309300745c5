"""The on-disk cache of compiled machine code (`tracejit/runtime/diskcache.py`).

Every test points ``TRACEJIT_CACHE_DIR`` at its own temporary directory; in-process tests also
start from an empty in-memory cache, so that each compilation really asks the disk cache.
Entries come in two kinds: with a shared library (a linker was found when storing: a hit loads
it with ctypes, and never imports llvmlite), and object code only (no linker: MCJIT loads it);
the `no_linker` fixture makes the second kind.
"""

import hashlib
import json
import os
import pathlib
import stat
import subprocess
import sys
import textwrap
import time
import warnings
from collections import OrderedDict

import numpy as np
import pytest

import tracejit as tj
from tracejit.runtime import cpu, diskcache

ROOT = pathlib.Path(__file__).resolve().parent.parent
IS_ROOT = hasattr(os, "getuid") and os.getuid() == 0


def fn(x, y):
    """Uses the math library (tanh, exp), a reduction and broadcasting: several kernels."""
    return (tj.tanh(x * 0.5 + 1.0) * tj.exp(-y)).sum(dim=1) + x.max()


def fn_np(x, y):
    return (np.tanh(x * 0.5 + 1.0) * np.exp(-y)).sum(axis=1) + x.max()


X = np.linspace(-2, 2, 24, dtype=np.float32).reshape(4, 6)
Y = np.linspace(0, 1, 24, dtype=np.float32).reshape(4, 6)


HAVE_LINKER = bool(diskcache.find_linkers())
needs_linker = pytest.mark.skipif(not HAVE_LINKER, reason="no system linker (cc, gcc, clang, ld)")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A fresh cache directory for this test, fresh counters and an empty in-memory cache."""
    d = tmp_path / "cache"
    monkeypatch.setenv("TRACEJIT_CACHE_DIR", str(d))
    monkeypatch.delenv("TRACEJIT_DISK_CACHE", raising=False)
    monkeypatch.setattr(cpu, "_NATIVE", OrderedDict())
    monkeypatch.setattr(diskcache, "stats", dict.fromkeys(diskcache.stats, 0))
    return d


@pytest.fixture
def no_linker(monkeypatch):
    """As on a machine without a linker: entries hold object code only."""
    monkeypatch.setattr(diskcache, "find_linkers", lambda: [])


@pytest.fixture
def dlopened(monkeypatch):
    """The sha256 of every file the disk cache hands to the dynamic loader, taken at the moment
    it does (what is loaded is what was checked)."""
    seen = []
    real = diskcache._dlopen

    def spy(path):
        with open(path, "rb") as f:
            seen.append(hashlib.sha256(f.read()).hexdigest())
        return real(path)
    monkeypatch.setattr(diskcache, "_dlopen", spy)
    return seen


def run_fn():
    """Compiles `fn` anew (new CompiledFunction, empty in-memory cache) and checks its result."""
    cpu._NATIVE.clear()
    out = tj.compile(fn)(X, Y).numpy()
    np.testing.assert_allclose(out, fn_np(X, Y), rtol=1e-5, atol=1e-6)
    return out


def entries(d: pathlib.Path) -> list[pathlib.Path]:
    return sorted(p for p in d.glob("*.tjc") if not p.name.startswith(".tmp-"))


def only_entry(d: pathlib.Path) -> pathlib.Path:
    es = entries(d)
    assert len(es) == 1, es
    return es[0]


def assert_valid(path: pathlib.Path) -> None:
    assert diskcache.decode(path.read_bytes(), path.stem) is not None


def meta_of(path: pathlib.Path) -> dict:
    return diskcache.decode(path.read_bytes(), path.stem)[0]


def library_of(path: pathlib.Path) -> pathlib.Path:
    return path.with_suffix(diskcache.LIB_SUFFIX)


def assert_library_matches(path: pathlib.Path) -> str:
    """The entry records a library, and the library file is what it records; its sha256."""
    want = meta_of(path)["lib"]
    data = library_of(path).read_bytes()
    assert hashlib.sha256(data).hexdigest() == want["sha256"] and len(data) == want["size"]
    return want["sha256"]


def native():
    (nat,) = cpu._NATIVE.values()
    return nat


# -- a fresh process loads the object code instead of running LLVM -----------------------------

CHILD = textwrap.dedent("""
    import json, os, sys, time
    import numpy as np
    import tracejit as tj
    from tracejit.runtime import cpu, diskcache

    if os.environ.get("TJ_TEST_NO_LINKER"):
        diskcache.find_linkers = lambda: []
    calls = {"optimize": 0, "build_ir": 0}
    def counted(name, f):
        def wrapper(*a, **k):
            calls[name] += 1
            return f(*a, **k)
        return wrapper
    cpu._optimize = counted("optimize", cpu._optimize)
    cpu._Native._compile_ir = counted("build_ir", cpu._Native._compile_ir)

    start = float(sys.argv[1]) if len(sys.argv) > 1 else 0.0
    while time.time() < start:  # concurrent writers: start compiling together
        time.sleep(0.001)

    def fn(x, y):
        return (tj.tanh(x * 0.5 + 1.0) * tj.exp(-y)).sum(dim=1) + x.max()
    x = np.linspace(-2, 2, 24, dtype=np.float32).reshape(4, 6)
    y = np.linspace(0, 1, 24, dtype=np.float32).reshape(4, 6)
    f = tj.compile(fn)
    out = f(x, y).numpy()
    res = {"out": out.tolist(), "stats": dict(diskcache.stats), "calls": dict(calls)}
    res["llvmlite"] = sorted(m for m in sys.modules  # (not llvmlite itself: its version)
                             if m.startswith(("llvmlite.binding", "llvmlite.ir")))
    res["llvm_has_kernels"] = "define" in f.lower(x, y).as_text("llvm")
    res["calls_with_text"] = dict(calls)
    print(json.dumps(res))
""")


def child(cache_dir, *args, linker=True) -> subprocess.Popen:
    env = dict(os.environ, TRACEJIT_CACHE_DIR=str(cache_dir), PYTHONPATH=str(ROOT))
    env.pop("TRACEJIT_DISK_CACHE", None)
    env.pop("TJ_TEST_NO_LINKER", None)
    if not linker:
        env["TJ_TEST_NO_LINKER"] = "1"
    return subprocess.Popen([sys.executable, "-c", CHILD, *map(str, args)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def result(p: subprocess.Popen) -> dict:
    out, err = p.communicate(timeout=120)
    assert p.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


@needs_linker
def test_fresh_process_reuses_entry_without_llvm(tmp_path):
    d = tmp_path / "cache"
    first = result(child(d))
    assert first["stats"]["stores"] == 1 and first["stats"]["hits"] == 0
    assert first["stats"]["libs_linked"] == 1
    assert first["calls"]["optimize"] == 1 and first["calls"]["build_ir"] == 1
    path = only_entry(d)
    assert_valid(path)
    assert_library_matches(path)
    assert len(list(d.glob("*" + diskcache.HOST_SUFFIX))) == 1  # what LLVM said of this host

    second = result(child(d))
    assert second["stats"]["hits"] == second["stats"]["libs_loaded"] == 1
    assert second["stats"]["misses"] == second["stats"]["stores"] == 0
    assert second["stats"]["libs_rejected"] == 0
    assert second["calls"] == {"optimize": 0, "build_ir": 0}  # no LLVM IR at all
    # ... and no LLVM: neither llvmlite.binding (LLVM itself) nor llvmlite.ir was imported
    assert second["llvmlite"] == [], second["llvmlite"]
    # as_text("llvm") is what needs the IR: it is rebuilt then, on demand
    assert second["calls_with_text"] == {"optimize": 1, "build_ir": 1}
    assert second["llvm_has_kernels"]
    np.testing.assert_array_equal(second["out"], first["out"])
    np.testing.assert_allclose(second["out"], fn_np(X, Y), rtol=1e-5, atol=1e-6)
    assert only_entry(d) == path


def test_fresh_process_without_a_linker_uses_mcjit(tmp_path):
    d = tmp_path / "cache"
    first = result(child(d, linker=False))
    assert first["stats"]["stores"] == 1 and first["stats"]["libs_linked"] == 0
    path = only_entry(d)
    assert "lib" not in meta_of(path) and not library_of(path).exists()

    second = result(child(d, linker=False))
    assert second["stats"]["hits"] == 1 and second["stats"]["libs_loaded"] == 0
    assert second["calls"] == {"optimize": 0, "build_ir": 0}  # object code, loaded by MCJIT
    assert "llvmlite.binding" in second["llvmlite"]
    np.testing.assert_array_equal(second["out"], first["out"])
    if HAVE_LINKER:  # an entry stored without a library stays one (no linking at load time)
        third = result(child(d))
        assert third["stats"]["hits"] == 1 and third["stats"]["libs_linked"] == 0
        np.testing.assert_array_equal(third["out"], first["out"])


def test_concurrent_writers_leave_one_valid_entry(tmp_path):
    d = tmp_path / "cache"
    start = time.time() + 3.0  # after every child has imported tracejit
    procs = [child(d, start) for _ in range(4)]
    outs = [result(p) for p in procs]
    for r in outs:
        np.testing.assert_allclose(r["out"], fn_np(X, Y), rtol=1e-5, atol=1e-6)
        assert r["stats"]["rejected"] == r["stats"]["errors"] == 0
    path = only_entry(d)
    assert_valid(path)
    assert not [p for p in d.iterdir() if p.name.startswith(".tmp-")]
    again = result(child(d))
    assert again["stats"]["hits"] == 1 and again["calls"]["optimize"] == 0
    if HAVE_LINKER:  # the entry and its library are a matching pair, loaded without LLVM
        assert_library_matches(path)
        assert again["stats"]["libs_loaded"] == 1 and again["stats"]["libs_rejected"] == 0
        assert again["llvmlite"] == []


# -- in-process: hits, corrupt entries ----------------------------------------------------------

def test_entry_written_then_hit(cache):
    run_fn()
    assert diskcache.stats["stores"] == 1 and diskcache.stats["misses"] == 1
    run_fn()
    assert diskcache.stats["hits"] == 1
    assert cpu._NATIVE and "define" in native().llvm_ir
    if HAVE_LINKER:
        assert diskcache.stats["libs_loaded"] == 1
        assert native().lib is not None and native().engine is None
        assert "tj_entry" in native().asm  # (rebuilt on demand, as the IR)


def test_entry_without_linker_is_loaded_by_mcjit(cache, no_linker):
    run_fn()
    path = only_entry(cache)
    assert "lib" not in meta_of(path) and not library_of(path).exists()
    run_fn()
    assert diskcache.stats["hits"] == 1 and diskcache.stats["libs_loaded"] == 0
    assert native().engine is not None and native().lib is None


def _flip(data: bytes, i: int) -> bytes:
    b = bytearray(data)
    b[i] ^= 0xFF
    return bytes(b)


CORRUPTIONS = {
    "magic": lambda d, k: _flip(d, 0),
    "format": lambda d, k: _flip(d, 8),
    "digest": lambda d, k: _flip(d, 30),
    "meta": lambda d, k: _flip(d, diskcache._HEADER.size + 3),
    "object": lambda d, k: _flip(d, len(d) - 5),
    "truncated": lambda d, k: d[: len(d) // 2],
    "header only": lambda d, k: d[: diskcache._HEADER.size],
    "appended": lambda d, k: d + b"\0",
    "empty": lambda d, k: b"",
    "garbage": lambda d, k: np.random.default_rng(0).bytes(len(d)),
    "other key": lambda d, k: diskcache.encode("0" * 64, *diskcache.decode(d, k)),
    "non-json meta": lambda d, k: _with_meta(d, k, b"\xff\xfe not json"),
    # well formed (its digest right), but written in the previous format (another tracejit)
    "older format": lambda d, k: _with_meta(d, k, json.dumps({**diskcache.decode(d, k)[0],
                                                              "key": k}).encode(),
                                            fmt=diskcache.FORMAT_VERSION - 1),
    "json list meta": lambda d, k: _with_meta(d, k, b"[1, 2]"),
    # valid file, but its metadata names kernels this schedule does not have
    "wrong kernels": lambda d, k: diskcache.encode(k, {"outer": {"k0_nope": [4, True]}},
                                                   diskcache.decode(d, k)[1]),
    # valid file whose object code lacks the kernels (an empty module's object), and no library
    # (with a library that checks out, the object is not used at all)
    "wrong object": lambda d, k: diskcache.encode(k, _no_lib(diskcache.decode(d, k)[0]),
                                                  _empty_object()),
}


def _no_lib(meta: dict) -> dict:
    return {k: v for k, v in meta.items() if k != "lib"}


def _with_meta(data: bytes, key: str, meta: bytes, fmt: int | None = None) -> bytes:
    import hashlib
    obj = diskcache.decode(data, key)[1]
    h = diskcache._HEADER
    fmt = diskcache.FORMAT_VERSION if fmt is None else fmt
    return h.pack(diskcache.MAGIC, fmt, len(meta), len(obj),
                  hashlib.sha256(meta + obj).digest()) + meta + obj


def _empty_object() -> bytes:
    import llvmlite.binding as llvm
    cpu.target_machine()
    mod = llvm.parse_assembly(f'target triple = "{cpu._TRIPLE}"\n'
                              'define void @unrelated() {\n  ret void\n}\n')
    return cpu.target_machine().emit_object(mod)


@pytest.mark.parametrize("linker", [True, False], ids=["library", "object"])
@pytest.mark.parametrize("how", sorted(CORRUPTIONS))
def test_corrupt_entry_is_rebuilt(cache, monkeypatch, how, linker):
    if not linker:
        monkeypatch.setattr(diskcache, "find_linkers", lambda: [])
    elif not HAVE_LINKER:
        pytest.skip("no system linker")
    good = run_fn()
    path = only_entry(cache)
    path.write_bytes(CORRUPTIONS[how](path.read_bytes(), path.stem))
    np.testing.assert_array_equal(run_fn(), good)
    assert diskcache.stats["rejected"] == 1 and diskcache.stats["hits"] == 0
    assert diskcache.stats["stores"] == 2
    assert only_entry(cache) == path
    assert_valid(path)
    np.testing.assert_array_equal(run_fn(), good)  # and the rebuilt entry is used
    assert diskcache.stats["hits"] == 1


@pytest.mark.parametrize("what", ["object", "library"])
def test_matmul_entry_reused_and_checked(cache, what):
    """Gemm steps have no metadata, but their functions must be in the object (or the shared
    library) all the same."""
    import llvmlite.binding as llvm

    if what == "library" and not HAVE_LINKER:
        pytest.skip("no system linker")

    def mm(a, b):
        return tj.tanh(a @ b + 1.0).sum(dim=0)
    a = np.linspace(-1, 1, 6 * 40, dtype=np.float32).reshape(6, 40)
    b = np.linspace(1, -1, 40 * 24, dtype=np.float32).reshape(40, 24)
    want = np.tanh(a @ b + 1.0).sum(axis=0)

    def run():
        cpu._NATIVE.clear()
        out = tj.compile(mm)(a, b).numpy()
        np.testing.assert_allclose(out, want, rtol=1e-4, atol=1e-5)
        return next(iter(cpu._NATIVE.values()))._sched

    sched = run()
    assert sched.gemms, "the schedule should have a Gemm step"
    run()
    assert diskcache.stats["hits"] == 1
    path = only_entry(cache)
    meta, _ = diskcache.decode(path.read_bytes(), path.stem)
    cpu.target_machine()
    stubs = "".join(f"define void @{k.name}() {{\n  ret void\n}}\n" for k in sched.kernels)
    obj = cpu.target_machine().emit_object(
        llvm.parse_assembly(f'target triple = "{cpu._TRIPLE}"\n' + stubs))
    meta = _no_lib(meta)
    if what == "library":  # a library that checks out (its digest is recorded), gemm missing
        lib = diskcache.link(obj)
        library_of(path).write_bytes(lib)
        meta["lib"] = {"sha256": hashlib.sha256(lib).hexdigest(), "size": len(lib)}
    path.write_bytes(diskcache.encode(path.stem, meta, obj))  # kernels there, gemm missing
    run()
    assert diskcache.stats["rejected"] == 1 and diskcache.stats["hits"] == 1
    assert diskcache.stats["libs_rejected"] == (what == "library")
    assert_valid(path)


# -- shared libraries: only ever loaded when they match their entry -------------------------------

LIB_CORRUPTIONS = {
    "flipped byte": lambda d: _flip(d, len(d) // 2),
    "truncated": lambda d: d[: len(d) // 2],
    "appended": lambda d: d + b"\0",
    "empty": lambda d: b"",
    "garbage": lambda d: np.random.default_rng(1).bytes(len(d)),
    "missing": None,
    # a valid library, of another module: loadable, and wrong
    "another module": lambda d: _other_library(),
}


def _other_library() -> bytes:
    import llvmlite.binding as llvm
    cpu.target_machine()
    mod = llvm.parse_assembly(f'target triple = "{cpu._TRIPLE}"\n'
                              'define void @tj_entry() {\n  ret void\n}\n')
    return diskcache.link(cpu.target_machine().emit_object(mod))


@needs_linker
@pytest.mark.parametrize("how", sorted(LIB_CORRUPTIONS))
def test_corrupt_library_is_never_loaded_and_relinked(cache, monkeypatch, dlopened, how):
    good = run_fn()
    path = only_entry(cache)
    lib = library_of(path)
    digest = assert_library_matches(path)
    assert dlopened == [digest]  # checked once, when it was stored
    if LIB_CORRUPTIONS[how] is None:
        lib.unlink()
    else:
        lib.write_bytes(LIB_CORRUPTIONS[how](lib.read_bytes()))
    bad = hashlib.sha256(lib.read_bytes()).hexdigest() if lib.exists() else None
    compiled = []
    monkeypatch.setattr(cpu._Native, "_compile_ir",
                        lambda self: compiled.append(1) or pytest.fail("compiled"))

    np.testing.assert_array_equal(run_fn(), good)
    s = diskcache.stats
    assert s["hits"] == 1 and s["rejected"] == 0 and s["misses"] == 1  # (the first run's)
    assert s["libs_rejected"] == 1 and s["libs_linked"] == 2 and s["libs_loaded"] == 1
    assert compiled == []  # relinked from the entry's object: no LLVM
    assert bad not in dlopened  # the file that did not match was never loaded
    assert set(dlopened) == {assert_library_matches(path)} == {digest}  # (the linker is
    assert native().lib is not None  # deterministic: the same library again)

    np.testing.assert_array_equal(run_fn(), good)  # and the relinked library is used
    assert s["libs_loaded"] == 2 and s["libs_rejected"] == 1 and s["libs_linked"] == 2
    assert not [p for p in cache.iterdir() if p.name.startswith(".tmp-")]


@needs_linker
def test_corrupt_library_without_a_linker_falls_back_to_mcjit(cache, monkeypatch, dlopened):
    good = run_fn()
    path = only_entry(cache)
    library_of(path).write_bytes(b"\x7fELF not really")
    monkeypatch.setattr(diskcache, "find_linkers", lambda: [])
    np.testing.assert_array_equal(run_fn(), good)
    s = diskcache.stats
    assert s["hits"] == 1 and s["libs_rejected"] == 1 and s["libs_loaded"] == 0
    assert native().engine is not None and len(dlopened) == 1  # (at the store)
    assert "lib" not in meta_of(path)  # rewritten: later processes go straight to MCJIT
    np.testing.assert_array_equal(run_fn(), good)
    assert s["hits"] == 2 and s["libs_rejected"] == 1 and len(dlopened) == 1


@needs_linker
def test_library_the_loader_refuses_falls_back_to_mcjit(cache, monkeypatch):
    """E.g. a cache directory on a noexec mount: the library checks out but cannot be mapped."""
    good = run_fn()

    def refuse(path):
        raise OSError(f"{path}: failed to map segment from shared object")
    monkeypatch.setattr(diskcache, "_dlopen", refuse)
    np.testing.assert_array_equal(run_fn(), good)
    s = diskcache.stats
    assert s["hits"] == 1 and s["libs_rejected"] == 1 and s["rejected"] == 0
    assert native().engine is not None
    assert not [p for p in cache.iterdir() if p.name.startswith(".tmp-")]


@needs_linker
def test_library_not_stored_when_it_does_not_load(cache, monkeypatch):
    real = diskcache._dlopen

    def refuse(path):
        raise OSError(f"{path}: cannot open shared object file")
    monkeypatch.setattr(diskcache, "_dlopen", refuse)
    good = run_fn()
    path = only_entry(cache)
    assert "lib" not in meta_of(path) and not library_of(path).exists()
    assert diskcache.stats["libs_linked"] == 0 and diskcache.stats["stores"] == 1
    monkeypatch.setattr(diskcache, "_dlopen", real)
    np.testing.assert_array_equal(run_fn(), good)
    assert diskcache.stats["hits"] == 1 and native().engine is not None


@pytest.mark.parametrize("output", ["fails", "garbage"])
def test_linker_that_fails_leaves_object_code(cache, monkeypatch, tmp_path, output):
    fake = tmp_path / "fake-ld"
    fake.write_text("#!/bin/sh\n" + ("exit 1\n" if output == "fails" else
                    'while [ "$1" != "-o" ]; do shift; done; echo junk > "$2"\n'))
    fake.chmod(0o700)
    monkeypatch.setattr(diskcache, "find_linkers", lambda: [[str(fake)]])
    good = run_fn()
    path = only_entry(cache)
    assert "lib" not in meta_of(path) and not library_of(path).exists()
    np.testing.assert_array_equal(run_fn(), good)
    assert diskcache.stats["hits"] == 1 and diskcache.stats["libs_linked"] == 0


def test_host_record(cache, monkeypatch):
    """What LLVM said of this host, kept for processes that have not loaded LLVM: the key of a
    hit is computed from it."""
    monkeypatch.setattr(diskcache, "_host_seen", {})
    if diskcache._host_fingerprint() is None:
        pytest.skip("no host fingerprint without LLVM here (not Linux)")
    assert diskcache.host_record() is None
    live = cpu._host(live=True)
    diskcache.remember_host(*live)
    (rec,) = cache.glob("*" + diskcache.HOST_SUFFIX)
    assert rec.stem == diskcache._host_fingerprint()
    monkeypatch.setattr(diskcache, "_host_seen", {})  # as a new process
    assert diskcache.host_record() == live
    monkeypatch.setattr(cpu, "_target", None)  # as a process that has not loaded LLVM
    assert cpu._host() == live
    data = json.loads(rec.read_text())
    for bad in ({**data, "fingerprint": "0" * 64}, {**data, "cpu": 7}, [1], "x"):
        rec.write_text(json.dumps(bad))
        monkeypatch.setattr(diskcache, "_host_seen", {})
        assert diskcache.host_record() is None
    rec.write_bytes(b"\xff not json")
    monkeypatch.setattr(diskcache, "_host_seen", {})
    assert diskcache.host_record() is None
    monkeypatch.setattr(diskcache, "_host_fp", None)  # no way to identify the host: ask LLVM
    assert diskcache.host_record() is None


def test_stale_host_record_is_corrected(cache, monkeypatch):
    """A record that disagrees with LLVM (it should not happen) only costs a compilation: the
    entry is stored under LLVM's answers, and the record rewritten."""
    monkeypatch.setattr(diskcache, "_host_seen", {})
    if diskcache._host_fingerprint() is None:
        pytest.skip("no host fingerprint without LLVM here (not Linux)")
    live = cpu._host(live=True)
    diskcache.remember_host(live[0], "some-other-cpu", live[2], live[3])
    monkeypatch.setattr(cpu, "_target", None)
    monkeypatch.setattr(diskcache, "_host_seen", {})
    good = run_fn()
    assert diskcache.stats["misses"] == 1 and diskcache.stats["stores"] == 1
    assert diskcache.host_record() == live
    monkeypatch.setattr(cpu, "_target", None)
    monkeypatch.setattr(diskcache, "_host_seen", {})
    np.testing.assert_array_equal(run_fn(), good)
    assert diskcache.stats["hits"] == 1


# -- directories and files: modes, trust, errors -------------------------------------------------

def test_modes_even_with_umask_zero(tmp_path, cache, monkeypatch):
    d = tmp_path / "new" / "nested"
    monkeypatch.setenv("TRACEJIT_CACHE_DIR", str(d))
    old = os.umask(0)
    try:
        run_fn()
    finally:
        os.umask(old)
    assert stat.S_IMODE(d.stat().st_mode) == 0o700
    assert stat.S_IMODE(only_entry(d).stat().st_mode) == 0o600
    files = list(d.iterdir())
    assert len(files) == 2 + HAVE_LINKER  # entry, host record, library
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in files), files


def test_existing_directory_kept_as_is(cache):
    cache.mkdir(mode=0o755)
    os.chmod(cache, 0o755)  # readable by others, writable only by us: trusted
    run_fn()
    assert diskcache.stats["stores"] == 1
    assert stat.S_IMODE(cache.stat().st_mode) == 0o755


@pytest.mark.parametrize("mode", [0o770, 0o707, 0o777])
def test_group_or_world_writable_directory_not_trusted(cache, mode):
    cache.mkdir()
    os.chmod(cache, mode)
    with pytest.warns(RuntimeWarning, match="writable by group or others"):
        run_fn()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # warned once per directory, not at every compile
        run_fn()
    assert entries(cache) == []
    assert diskcache.stats["stores"] == diskcache.stats["hits"] == 0
    assert diskcache.info()["problem"] and not diskcache.info()["trusted"]
    assert diskcache.clear() == 0


def test_valid_entries_in_a_directory_writable_by_others_are_not_loaded(cache):
    """A directory that was this user's when the entries were written, then made group- and
    world-writable: a new process loads none of them (anyone could have replaced them) and
    compiles instead, writing nothing there."""
    good = run_fn()
    path = only_entry(cache)
    before = {p.name: p.read_bytes() for p in cache.iterdir()}
    os.chmod(cache, 0o777)
    try:
        r = result(child(cache))
    finally:
        os.chmod(cache, 0o700)
    assert r["stats"]["hits"] == r["stats"]["stores"] == r["stats"]["libs_loaded"] == 0
    assert r["calls"]["optimize"] == 1  # compiled, not loaded
    np.testing.assert_array_equal(r["out"], good)
    assert {p.name: p.read_bytes() for p in cache.iterdir()} == before and path.exists()


def test_directory_of_another_user_not_trusted(cache, monkeypatch):
    cache.mkdir(mode=0o700)
    if IS_ROOT:
        os.chown(cache, 4321, -1)
    else:
        uid = os.getuid()
        monkeypatch.setattr(os, "getuid", lambda: uid + 1)
    with pytest.warns(RuntimeWarning, match="owned by uid"):
        run_fn()
    assert entries(cache) == [] and diskcache.stats["stores"] == 0


@pytest.mark.parametrize("where", ["a file", "under a file"])
def test_directory_that_cannot_exist_degrades(cache, monkeypatch, where):
    cache.parent.mkdir(exist_ok=True)
    f = cache.parent / "plain-file"
    f.write_text("not a directory")
    monkeypatch.setenv("TRACEJIT_CACHE_DIR", str(f if where == "a file" else f / "sub"))
    run_fn()
    run_fn()
    assert diskcache.stats["errors"] >= 1 and diskcache.stats["stores"] == 0
    assert f.read_text() == "not a directory"


def test_entry_path_is_a_directory(cache):
    run_fn()
    path = only_entry(cache)
    path.unlink()
    path.mkdir()  # neither readable as a file nor replaceable by one
    run_fn()
    assert diskcache.stats["errors"] >= 2 and diskcache.stats["hits"] == 0


@pytest.mark.skipif(IS_ROOT, reason="permission bits do not stop root")
def test_unreadable_directory_degrades(cache):
    run_fn()
    os.chmod(cache, 0)
    try:
        run_fn()
        assert diskcache.stats["errors"] >= 1
    finally:
        os.chmod(cache, 0o700)


@pytest.mark.skipif(IS_ROOT, reason="permission bits do not stop root")
def test_unreadable_entry_degrades(cache):
    run_fn()
    os.chmod(only_entry(cache), 0)
    run_fn()
    assert diskcache.stats["errors"] >= 1


def test_permission_denied_degrades(cache, monkeypatch):
    """What an unreadable, unwritable directory does for a non-root user, simulated so that it
    also runs as root: every read and write fails with PermissionError."""
    run_fn()

    def denied(*a, **k):
        raise PermissionError(13, "Permission denied")
    monkeypatch.setattr(diskcache, "open", denied, raising=False)
    monkeypatch.setattr(diskcache.tempfile, "mkstemp", denied)
    monkeypatch.setattr(diskcache.os, "scandir", denied)
    run_fn()
    assert diskcache.stats["errors"] == 2 and diskcache.stats["hits"] == 0
    assert diskcache.info()["problem"] and diskcache.clear() == 0


def test_oserror_while_writing_degrades(cache, monkeypatch):
    def fail(*a, **k):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(diskcache.os, "replace", fail)
    run_fn()
    assert diskcache.stats["errors"] == 1 and diskcache.stats["stores"] == 0
    assert entries(cache) == [] and list(cache.iterdir()) == []  # the temp file is gone


@pytest.mark.parametrize("linker", [True, False], ids=["library", "object"])
def test_read_only_directory_loads_and_compiles(cache, monkeypatch, linker):
    """A read-only directory (a read-only mount, or one without write permission), simulated
    so that it also runs as root: reading works, creating any file fails with EROFS. An entry
    that is there is still used — its object code, by MCJIT, since loading the library needs a
    private copy written into the directory — and a structure that is not there compiles,
    counting an error and writing nothing."""
    if not linker:
        monkeypatch.setattr(diskcache, "find_linkers", lambda: [])
    elif not HAVE_LINKER:
        pytest.skip("no system linker")
    good = run_fn()
    files = sorted(p.name for p in cache.iterdir())

    def read_only(*a, **k):
        raise OSError(30, "Read-only file system")
    monkeypatch.setattr(diskcache.tempfile, "mkstemp", read_only)
    monkeypatch.setattr(diskcache.os, "replace", read_only)
    stats = dict(diskcache.stats)
    np.testing.assert_array_equal(run_fn(), good)
    assert diskcache.stats["hits"] - stats["hits"] == 1
    assert diskcache.stats["libs_loaded"] == stats["libs_loaded"]  # (the copy cannot be made)
    assert native().engine is not None and native().lib is None

    def other(x, y):  # a structure that is not in the cache
        return tj.exp(x) - y
    out = tj.compile(other)(X, Y).numpy()
    np.testing.assert_allclose(out, np.exp(X) - Y, rtol=1e-6)
    assert diskcache.stats["stores"] == stats["stores"] and diskcache.stats["errors"] > 0
    assert sorted(p.name for p in cache.iterdir()) == files


def test_entries_of_other_versions_are_not_used(cache, monkeypatch):
    """Entries written by another tracejit version, or in another format version, are under
    other keys: never loaded, left alone; this version compiles and stores its own."""
    for module, attr, value in [(tj, "__version__", "0.0.0-other"),
                                (diskcache, "FORMAT_VERSION", diskcache.FORMAT_VERSION - 1)]:
        with monkeypatch.context() as m:
            m.setattr(module, attr, value)
            run_fn()
    foreign = {p: p.read_bytes() for p in entries(cache)}
    assert len(foreign) == 2 and diskcache.stats["stores"] == 2
    good = run_fn()
    assert diskcache.stats["hits"] == 0 and diskcache.stats["rejected"] == 0
    assert diskcache.stats["stores"] == 3 and len(entries(cache)) == 3
    assert all(p.read_bytes() == data for p, data in foreign.items())
    np.testing.assert_array_equal(run_fn(), good)
    assert diskcache.stats["hits"] == 1


def test_disabled(tmp_path, cache, monkeypatch):
    monkeypatch.setenv("TRACEJIT_DISK_CACHE", "0")
    run_fn()
    assert not cache.exists()
    assert diskcache.entry_key("g", "t", "c", "f") is None
    assert diskcache.info()["enabled"] is False
    assert sum(diskcache.stats.values()) == 0


def test_default_location(monkeypatch, tmp_path):
    monkeypatch.delenv("TRACEJIT_DISK_CACHE", raising=False)
    monkeypatch.setenv("TRACEJIT_CACHE_DIR", "")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert diskcache.cache_dir() == str(tmp_path / "xdg" / "tracejit")
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert diskcache.cache_dir() == str(tmp_path / "home" / ".cache" / "tracejit")


# -- the key -------------------------------------------------------------------------------------

def test_key_covers_target_and_versions(cache, monkeypatch):
    import llvmlite.binding as llvm
    base = ("graph g() {}", "x86_64-unknown-linux-gnu", "znver4", "+avx2,+avx512f,-sse4a")
    k = diskcache.entry_key(*base)
    assert k == diskcache.entry_key(*base) and len(k) == 64
    variants = [
        (base[0] + " ", *base[1:]),
        (base[0], "aarch64-unknown-linux-gnu", *base[2:]),
        (*base[:2], "skylake", base[3]),
        (*base[:3], "+avx2,-avx512f,-sse4a"),
        (*base[:3], "+avx2,+avx512f"),
    ]
    keys = {diskcache.entry_key(*v) for v in variants}
    assert len(keys) == len(variants) and k not in keys
    others = set()
    for module, attr, value in [(diskcache, "FORMAT_VERSION", diskcache.FORMAT_VERSION + 1),
                                (llvm, "llvm_version_info", (1, 2, 3)),
                                (tj, "__version__", "0.0.0"),
                                (diskcache, "_fingerprint", "edited sources")]:
        old = getattr(module, attr)
        monkeypatch.setattr(module, attr, value)
        others.add(diskcache.entry_key(*base))
        monkeypatch.setattr(module, attr, old)
    assert len(others) == 4 and k not in others and k not in keys
    assert diskcache.entry_key(*base) == k


def test_host_features_select_the_entry(cache, monkeypatch):
    run_fn()
    monkeypatch.setattr(cpu, "_FEATURES", cpu._FEATURES + ",-avx512f")
    run_fn()  # a different feature string: a different entry, compiled anew
    assert len(entries(cache)) == 2
    assert diskcache.stats["stores"] == 2 and diskcache.stats["hits"] == 0


# -- info / clear / CLI --------------------------------------------------------------------------

def test_info_and_clear(cache):
    i = diskcache.info()
    assert i["dir"] == str(cache) and not i["exists"] and i["entries"] == 0
    assert not cache.exists()  # info creates nothing
    run_fn()
    (cache / ".tmp-leftover.tjc").write_bytes(b"x")
    (cache / "README").write_text("not ours")
    i = diskcache.info()
    assert i["exists"] and i["trusted"] and i["entries"] == 1
    assert i["libraries"] == HAVE_LINKER
    ours = [p for p in cache.iterdir() if p.suffix in diskcache._SUFFIXES
            and not p.name.startswith(".tmp-")]  # entry, library, host record
    assert len(ours) == 2 + HAVE_LINKER
    assert i["bytes"] == sum(p.stat().st_size for p in ours) > only_entry(cache).stat().st_size
    assert i["stats"]["stores"] == 1
    assert diskcache.clear() == 1
    assert sorted(p.name for p in cache.iterdir()) == ["README"]
    assert diskcache.info()["entries"] == 0 and diskcache.clear() == 0


def test_cli(cache, capsys):
    from tracejit.__main__ import main
    run_fn()
    assert main(["cache", "info"]) == 0
    out = capsys.readouterr().out
    assert str(cache) in out and "entries: 1" in out
    assert main(["cache", "clear"]) == 0
    assert "removed 1 entry" in capsys.readouterr().out
    assert entries(cache) == []
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "cache" in capsys.readouterr().out
