"""Concurrency: compiling and calling compiled functions from many threads at once.

Every test starts `THREADS` threads behind a `threading.Barrier`, so they really enter tracejit
together (the first call of a fresh `CompiledFunction` races on its signature cache, on the
in-memory cache of loaded modules `cpu._NATIVE`, on the disk cache and on LLVM), checks every
thread's results against numpy, and joins with a timeout: a deadlock fails the test instead of
hanging the suite. Several *processes* writing the same disk cache entry at once is covered by
`test_diskcache.py::test_concurrent_writers_leave_one_valid_entry` (4 processes); here a
different-entries variant (several processes, each compiling its own functions into one cache
directory) completes it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

import tracejit as tj
from tracejit.runtime import cpu

THREADS = 8
TIMEOUT = 120.0  # seconds for all threads together: far more than the work takes


def run_threads(work, n: int = THREADS, timeout: float = TIMEOUT) -> list:
    """Runs ``work(i)`` on `n` threads that start together; returns the results in order.
    Re-raises the first exception of any thread; fails if a thread is still running after
    `timeout` seconds (a deadlock)."""
    barrier = threading.Barrier(n, timeout=timeout)
    results: list = [None] * n
    errors: list = []

    def body(i):
        try:
            barrier.wait()
            results[i] = work(i)
        except BaseException as e:  # noqa: BLE001 (reported below, on the test's thread)
            errors.append((i, e))

    ts = [threading.Thread(target=body, args=(i,), daemon=True) for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(timeout)
    stuck = [i for i, t in enumerate(ts) if t.is_alive()]
    assert not stuck, f"threads {stuck} still running after {timeout} s: deadlock?"
    if errors:
        i, e = errors[0]
        raise AssertionError(f"thread {i} raised {type(e).__name__}: {e}") from e
    return results


def _fn(x, y):
    return (tj.tanh(x * 0.5 + 1.0) * tj.exp(-y)).sum(dim=1) + x.max()


def _fn_np(x, y):
    x, y = x.astype(np.float64), y.astype(np.float64)
    return (np.tanh(x * 0.5 + 1.0) * np.exp(-y)).sum(axis=1) + x.max()


def _data(i, shape=(4, 6), dtype=np.float32):
    r = np.random.default_rng(i)
    return r.standard_normal(shape).astype(dtype), r.random(shape).astype(dtype)


@pytest.mark.parametrize("device", ["cpu", "interpreter"])
def test_first_call_race_on_one_compiled_function(device):
    """8 threads make the very first call of one fresh CompiledFunction at once (same
    signature, different values): every result is right, and the function is traced and
    compiled once (the others wait for it; before the fix all 8 traced and compiled)."""
    f = tj.compile(lambda x, y: _fn(x, y), device=device)

    def work(i):
        x, y = _data(i)
        outs = [f(x, y).numpy() for _ in range(5)]
        return x, y, outs

    for x, y, outs in run_threads(work):
        for o in outs:
            np.testing.assert_allclose(o, _fn_np(x, y), rtol=2e-5, atol=2e-6)
    info = f.cache_info()
    assert len(info.signatures) == 1
    assert info.misses == 1, "one thread traces and compiles, the others wait for it"


def test_one_function_many_signatures_at_once():
    """One CompiledFunction, each thread with its own shape and dtype: 8 signatures traced and
    compiled into the same cache at once, each called again afterwards from every thread."""
    f = tj.compile(_fn)
    shapes = [(2 + i, 3 + (i % 3)) for i in range(THREADS)]
    dtypes = [np.float32 if i % 2 else np.float64 for i in range(THREADS)]

    def work(i):
        x, y = _data(i, shapes[i], dtypes[i])
        return x, y, f(x, y).numpy()

    for x, y, o in run_threads(work):
        tol = 2e-5 if x.dtype == np.float32 else 1e-10
        np.testing.assert_allclose(o, _fn_np(x, y), rtol=tol, atol=tol)
    assert len(f.cache_info().signatures) == THREADS

    def again(i):  # every signature from every thread: hits only
        x, y = _data(i + 100, shapes[(i + 3) % THREADS], dtypes[(i + 3) % THREADS])
        return x, y, f(x, y).numpy()

    misses = f.cache_info().misses
    for x, y, o in run_threads(again):
        tol = 2e-5 if x.dtype == np.float32 else 1e-10
        np.testing.assert_allclose(o, _fn_np(x, y), rtol=tol, atol=tol)
    assert f.cache_info().misses == misses


def _programs():
    """Eight different functions (structures, control flow, matmul, gradients)."""
    def p0(x, y):
        return tj.exp(x) - y
    def p1(x, y):
        return (x @ y.T).sum(dim=0)
    def p2(x, y):
        return tj.where(x > y, tj.sin(x), tj.cos(y)).mean(dim=0, keepdim=True)
    def p3(x, y):
        return tj.fori_loop(0, 3, lambda i, c: c * 0.5 + y, x)
    def p4(x, y):
        return tj.cond(x.sum() > 0, lambda a, b: a + b, lambda a, b: a - b, x, y)
    def p5(x, y):
        return tj.cat([x, y.flip(0)], dim=1).reshape(-1)[::2]
    def p6(x, y):
        return tj.grad(lambda a: (tj.tanh(a) * y).sum())(x)
    def p7(x, y):
        return x.max(dim=1).values + tj.log(tj.abs(y) + 1).sum()
    refs = [
        lambda x, y: np.exp(x) - y,
        lambda x, y: (x @ y.T).sum(axis=0),
        lambda x, y: np.where(x > y, np.sin(x), np.cos(y)).mean(axis=0, keepdims=True),
        lambda x, y: ((x * 0.5 + y) * 0.5 + y) * 0.5 + y,
        lambda x, y: x + y if x.sum() > 0 else x - y,
        lambda x, y: np.concatenate([x, y[::-1]], axis=1).reshape(-1)[::2],
        lambda x, y: (1 - np.tanh(x) ** 2) * y,
        lambda x, y: x.max(axis=1) + np.log(np.abs(y) + 1).sum(),
    ]
    return [p0, p1, p2, p3, p4, p5, p6, p7], refs


def test_different_functions_at_once():
    """8 threads, each compiling and calling its own function, all at once; then each thread
    calls every function (compiled on other threads) again."""
    progs, refs = _programs()
    fs = [tj.compile(p) for p in progs]

    def work(i):
        x, y = _data(i, (5, 4), np.float64)
        return [(x, y, fs[i](x, y).numpy())] + [(x, y, fs[(i + k) % THREADS](x, y).numpy())
                                                for k in range(1, THREADS)]

    for i, res in enumerate(run_threads(work)):
        for k, (x, y, o) in enumerate(res):
            j = (i + k) % THREADS
            np.testing.assert_allclose(o, refs[j](x, y), rtol=1e-10, atol=1e-12,
                                       err_msg=f"function {j} on thread {i}")


def test_same_structure_in_different_functions_at_once():
    """Eight distinct CompiledFunctions of one structure: they share one loaded module through
    the in-memory cache of modules (`cpu._native`), which is filled from 8 threads at once."""
    def make(k):
        return tj.compile(lambda x, y: tj.sqrt(x * x + y * y + 0.125).sum(dim=0) * 3.0)
    fs = [make(k) for k in range(THREADS)]
    x0, y0 = _data(0, (7, 9), np.float64)
    cpu._NATIVE.clear()  # (the structure may have been compiled by an earlier test)

    def work(i):
        x, y = _data(i, (7, 9), np.float64)
        return x, y, fs[i](x, y).numpy()

    for x, y, o in run_threads(work):
        np.testing.assert_allclose(o, np.sqrt(x * x + y * y + 0.125).sum(axis=0) * 3.0,
                                   rtol=1e-12)
    nat = {id(f._cache[next(iter(f._cache))].runner.native) for f in fs}
    assert len(nat) == 1, "one structure, one loaded module (was 8: each thread built it)"
    assert fs[0](x0, y0).shape == (9,)


def test_hot_calls_of_a_program_with_temporaries():
    """Many concurrent calls of one compiled program that runs step by step (a `cond` between
    kernels, so no single entry function): each call takes its own scratch arena."""
    def fn(x):
        t = tj.exp(x) * 2.0 + 1.0
        u = tj.cond(t.sum() > 0, lambda a: a * 3.0, lambda a: a - 1.0, t)
        return (u * t).sum(dim=0)
    f = tj.compile(fn)
    prog = None

    def work(i):
        x = np.random.default_rng(i).standard_normal((64, 32))
        outs = [f(x).numpy() for _ in range(200)]
        t = np.exp(x) * 2.0 + 1.0
        want = (t * 3.0 * t).sum(axis=0)
        for o in outs:
            np.testing.assert_allclose(o, want, rtol=1e-12)
        return True

    assert all(run_threads(work))
    prog = f._cache[next(iter(f._cache))].runner
    assert prog._entry is None, "the test is meant to use the arena path"
    assert len(prog._arenas) <= 4


def test_grad_compiled_from_threads():
    """`tj.compile(tj.grad(f))` first called from 8 threads at once."""
    g = tj.compile(tj.grad(lambda w, x: (tj.tanh(x @ w) ** 2).sum()))

    def work(i):
        r = np.random.default_rng(i)
        w, x = r.standard_normal((3, 2)), r.standard_normal((4, 3))
        return w, x, g(w, x).numpy()

    for w, x, o in run_threads(work):
        h = np.tanh(x @ w)
        np.testing.assert_allclose(o, x.T @ (2 * h * (1 - h * h)), rtol=1e-10, atol=1e-12)


# -- several processes, each writing its own entries into one disk cache ---------------------

CHILD = textwrap.dedent("""
    import json, sys, time
    import numpy as np
    import tracejit as tj
    from tracejit.runtime import diskcache
    k, start = int(sys.argv[1]), float(sys.argv[2])
    while time.time() < start:
        time.sleep(0.001)
    outs = []
    for j in range(3):  # one function shared by all processes, two of this process's own
        c = 1.0 if j == 0 else float(k * 10 + j)
        f = tj.compile(lambda x, c=c: (tj.exp(x * 0.25) + c).sum(dim=0) * (j + 1))
        x = np.linspace(-1, 1, 12).reshape(3, 4)
        outs.append(f(x).numpy().tolist())
    print(json.dumps({"outs": outs, "stats": dict(diskcache.stats)}))
""")


def test_processes_writing_different_entries_at_once(tmp_path):
    """4 processes start together on one empty cache directory; each compiles one function
    that all of them share and constants of its own (constants are part of the structure, so
    two entries of its own). Every result is right; a fifth process then finds every entry."""
    import time
    d = tmp_path / "cache"
    env = dict(os.environ, TRACEJIT_CACHE_DIR=str(d))
    env.pop("TRACEJIT_DISK_CACHE", None)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = root

    def spawn(k, start):
        return subprocess.Popen([sys.executable, "-c", CHILD, str(k), str(start)], cwd=root,
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)

    def result(p):
        out, err = p.communicate(timeout=180)
        assert p.returncode == 0, err
        return json.loads(out.strip().splitlines()[-1])

    start = time.time() + 3.0
    res = [result(p) for p in [spawn(k, start) for k in range(4)]]
    x = np.linspace(-1, 1, 12).reshape(3, 4)
    for k, r in enumerate(res):
        for j, o in enumerate(r["outs"]):
            c = 1.0 if j == 0 else float(k * 10 + j)
            np.testing.assert_allclose(o, (np.exp(x * 0.25) + c).sum(axis=0) * (j + 1),
                                       rtol=1e-12)
        assert r["stats"]["rejected"] == r["stats"]["errors"] == 0
    assert not [p for p in d.iterdir() if p.name.startswith(".tmp-")]
    again = result(spawn(0, 0.0))
    assert again["stats"]["misses"] == 0 and again["stats"]["hits"] >= 1
