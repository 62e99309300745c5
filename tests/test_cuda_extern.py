"""CUDA kernels of extern steps (codegen/cuda_extern.py): scans, argmax/argmin, gather, scatter,
pad, concatenate, integer floordiv/rem/pow and dot, and the Philox RNG.

Each case is a traced function. Its CUDA C must compile with nvcc for sm_80 and sm_90 (skipped
where nvcc is missing), and it must compute what the interpreter computes when run through the
host emulation (skipped where there is no C++ compiler): exactly, except floating-point sums in
a different order (scatter-add atomics, block scans of long lines), checked to a tolerance.
"""

from __future__ import annotations

import shutil
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from cuda_tools import nvcc_ptx as _nvcc

import tracejit as tj
from tracejit.codegen.cuda import render_schedule
from tracejit.codegen.cuda_extern import RENDERED_EXTERNS
from tracejit.passes.pipeline import optimize
from tracejit.runtime.interpreter import run_graph
from tracejit.schedule.fusion import schedule
from tracejit.schedule.kernel import Extern
from tracejit.trace import bind

NVCC = shutil.which("nvcc")
ARCHS = ("sm_80", "sm_90")

rng = np.random.default_rng(7)
f32 = rng.standard_normal((3, 5, 4)).astype(np.float32)
f64 = rng.standard_normal((4, 6))
f16 = rng.standard_normal((4, 6)).astype(np.float16)
i32 = rng.integers(-50, 50, (4, 6)).astype(np.int32)
big32 = rng.integers(-2**31, 2**31 - 1, (3, 7), dtype=np.int64).astype(np.int32)
big32[0, :2] = -2**31
div32 = rng.integers(1, 100, (3, 7)).astype(np.int32) * rng.choice([-1, 1], (3, 7)).astype(np.int32)
div32[0, 0] = -1  # MIN // -1 wraps to MIN
i64 = rng.integers(-9, 9, (4, 6)).astype(np.int64)
u8 = rng.integers(0, 255, (4, 6)).astype(np.uint8)
i8 = rng.integers(-128, 127, (4, 6)).astype(np.int8)
bools = rng.random((4, 6)) < 0.4
nan_rows = np.array([[1.0, np.nan, 3.0, np.nan, 3.0], [2.0, 5.0, 5.0, -1.0, 5.0],
                     [-np.inf, -np.inf, 0.0, 0.0, -np.inf], [np.nan] * 5], np.float32)
long_i = rng.integers(-1000, 1000, (3, 1000)).astype(np.int32)
long_f = rng.standard_normal((3, 1000)).astype(np.float32)
long_nan = rng.integers(0, 5, (2, 1500)).astype(np.float32)  # many ties
long_nan[1, 700] = long_nan[1, 1200] = np.nan
idx = np.array([3, 0, 3, 1, 3], np.int64)  # repeats
idx2 = np.array([[0, 2], [4, 4]], np.int32)
take = rng.integers(0, 6, (4, 3)).astype(np.int64)
key = np.array([2**62 + 12345, 2**32 - 2], np.int64)  # the counter's low word carries


def _scans(a, b, c, d, e, f, g):
    return (tj.cumsum(a, 0), tj.cumsum(a, 1), tj.cumprod(a * 0.5, 2),
            bind("cumsum", a, axis=1, reverse=True), bind("cumprod", b, axis=0, reverse=True),
            tj.cumsum(c, 1), tj.cumsum(d, 1), tj.cumprod(d, 0), bind("cumsum", e, axis=1),
            bind("cumprod", f, axis=1), bind("cumsum", g, axis=0), bind("cumprod", g, axis=1))


def _long_scans(a, b):
    return (tj.cumsum(a, 1), bind("cumsum", a, axis=1, reverse=True), tj.cumprod(a % 3 - 1, 1),
            tj.cumsum(a.T, 0), tj.cumsum(b, 1), bind("cumsum", b.T, axis=0, reverse=True))


def _args(a, b, c, d):
    return (tj.argmax(a, 1), tj.argmin(a, 1), tj.argmax(a, 0), tj.argmin(a, 0),
            tj.argmax(b, 1), tj.argmin(b, 0), tj.argmax(c, 0), tj.argmax(d, 1))


def _long_args(a, b):
    return tj.argmax(a, 1), tj.argmin(a, 1), tj.argmax(b, 1), tj.argmin(b, 1)


def _gathers(x, i, j, t, h, m):
    return (x[i], x[:, j], tj.gather(x, 1, t), x[i[:2], j], x[i.reshape(5, 1), j[0]],
            h[i], m[:, j], x[-i - 1])


def _scatter_add(x, i, u, h, b, q, f, c):
    v = tj.ones((5, 6), dtype=tj.int32) * 3
    return (x.at[i].add(v), x.at[:, i].add(x[:, :5]), u.at[i].add(u[i] * 0 + 200),
            h.at[i].add(h[i]), b.at[i].add(b[i]), x.at[i, i].add(x[0, :5]),
            q.at[i].add(q[i] * 2**40), f.at[i].add(f[i]), c.at[:, i].add(c[:, i] * 3))


def _scatter_set(x, i, f):
    return (x.at[i].set(x[i] * 10 + tj.arange(5).reshape(5, 1).astype(tj.int32)),
            f.at[i].set(f[i] + 1), x.at[:, i].set(7))


def _padcat(x, y, b, h):
    return (tj.pad(x, (1, 2)), tj.pad(x, (2, 0, 0, 3), value=-5),
            tj.nn.functional.pad(y, (-1, 2, 1, -2), value=1.5), tj.pad(b, (1, 1), value=1),
            tj.pad(h, (0, 1, 2, 0), value=0.1), tj.cat([x, x * 2, x[:, :1]], 1),
            tj.cat([y, y[:0], y], 0), tj.cat([b, b], 1))


def _divmod(a, b, c, d, e, f, g):
    return (a // b, a % b, a // 3, a % -4, c // 7, c % 7, d // e, d % e, f // g, f % g,
            -7 // a.clamp(1, 5))


def _pows(a, b, c, d):
    return a ** (b % 7 - 2), (a % 3 - 1) ** (b % 9 - 4), c ** 3, d ** (b % 5)


def _dots(a, b, c, d, e):
    return a @ b, tj.bmm(c, c.transpose(1, 2)), d @ d.T, tj.matmul(e, e.T), (a.T @ a)[1:3]


def _rng(k):
    return (tj.random.uniform(k, (7, 3)), tj.random.uniform(k, (5,), dtype=tj.float64),
            tj.random.normal(k, (9,)), tj.random.randint(k, (4, 2), 0, 10),
            bind("random_bits", k, shape=(3, 5), words=1),
            bind("random_bits", k, shape=(3,), words=2), tj.random.split(k, 3))


def _empty(a, b, i):
    return (tj.cumsum(a, 0), tj.argmax(a, 1), a[i], tj.cat([a, a], 0), tj.pad(a, (1, 1)),
            b.at[i].add(b[:0]))


#  name           function       arguments                                   exact
CASES = {
    "scans":       (_scans, (f32, f64, f16, i32, big32, i8, bools), False),
    "long_scans":  (_long_scans, (long_i, long_f), False),
    "args":        (_args, (nan_rows, i32, bools, f16), True),
    "long_args":   (_long_args, (long_nan, long_i), True),
    "gathers":     (_gathers, (f64, idx, idx2, take, f16, bools), True),
    "scatter_add": (_scatter_add, (i32, idx, u8, f16, bools, i64, f32[0], i8), True),
    "scatter_set": (_scatter_set, (i32, idx, f64), True),
    "pad_cat":     (_padcat, (i32, f32[0], bools, f16), True),
    "divmod":      (_divmod, (big32, div32, i8, u8, u8 // 3 + 1, f32[0],
                              f32[1] + 2), True),
    "pow":         (_pows, (i32 % 9 - 4, i32, u8, i64), True),
    "dots":        (_dots, (i32, i32.T.copy(), i64.reshape(2, 3, 4), i8, f16), True),
    "rng":         (_rng, (key,), True),
    "empty":       (_empty, (np.zeros((0, 3), np.float32), np.zeros((4, 2), np.float32),
                             np.zeros((0,), np.int64)), True),
}


def _graph(name):
    fn, args, _ = CASES[name]
    return tj.make_graph(fn)(*args)


def _source(name):
    return render_schedule(schedule(optimize(_graph(name))))




@pytest.fixture(scope="module")
def compiled():
    """(case, arch) -> (returncode, stderr, ptx, source, launched kernel names)."""
    if NVCC is None:
        pytest.skip("nvcc is not on PATH: the CUDA C is only compiled where the toolkit exists")
    srcs = {n: _source(n) for n in CASES}
    jobs = [(n, a) for n in srcs for a in ARCHS]
    with ThreadPoolExecutor(2) as ex:
        res = list(ex.map(lambda j: _nvcc(srcs[j[0]].text, j[1]), jobs))
    return {j: r + (srcs[j[0]].text, [ln.name for ln in srcs[j[0]].launches])
            for j, r in zip(jobs, res)}


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("name", list(CASES))
def test_nvcc_compiles(compiled, name, arch):
    rc, err, ptx, src, kernels = compiled[(name, arch)]
    assert rc == 0, f"nvcc -arch={arch} failed:\n{err}\n--- source ---\n{src}"
    for k in kernels:
        assert f".entry {k}(" in ptx, f"{k} missing from the PTX"


@pytest.mark.parametrize("name", list(CASES))
def test_every_extern_rendered(name):
    """Pure text: each extern of a rendered primitive is a device step, under the name rules."""
    sched = schedule(optimize(_graph(name)))
    src = render_schedule(sched)
    assert any(isinstance(st, Extern) for st in sched.steps)
    for i, (st, cst) in enumerate(zip(sched.steps, src.steps)):
        if isinstance(st, Extern):
            assert st.node.op in RENDERED_EXTERNS and cst is not None, st.node.op
            for ln in cst.launches:
                assert ln.name.startswith(f"x{i}_{st.node.op}") and ln.block % 32 == 0
                assert f"TJ_EMU_ENTRY({ln.name})" in src.text
    assert "__shared__" not in src.text and '#include "tj_extern.h"' in src.text


def test_host_keeps_the_rest():
    """argsort (and control flow) stay on the host."""
    g = tj.make_graph(lambda x: tj.argsort(x, dim=1) + tj.argmax(x, 1).reshape(-1, 1))(long_f)
    sched = schedule(optimize(g))
    src = render_schedule(sched)
    ops = {st.node.op: c for st, c in zip(sched.steps, src.steps) if isinstance(st, Extern)}
    assert ops["argsort"] is None and ops["argmax"] is not None


# -- numerics through the host emulation -----------------------------------------------------------
@pytest.fixture(scope="module")
def emu():
    from tracejit.runtime import cuda_emu
    if cuda_emu.compiler() is None:
        pytest.skip("the CUDA host emulation needs a C++ compiler")
    cuda_emu.compile_many([_source(n).text for n in CASES])  # one compiler run for all
    return cuda_emu.emulate_graph


def _check(emulate, name, order="ascending"):
    from tracejit.runtime.cuda_emu import thread_order
    fn, args, exact = CASES[name]
    g = _graph(name)
    want = run_graph(optimize(g), list(args))
    with thread_order(order):
        got = emulate(g, list(args))
    assert len(want) == len(got)
    for k, (w, v) in enumerate(zip(want, got)):
        w = np.asarray(w)
        assert v.dtype == w.dtype and v.shape == w.shape, (name, k)
        if exact or w.dtype.kind not in "fc":
            np.testing.assert_array_equal(v, w, err_msg=f"{name}: result {k}")
        else:
            np.testing.assert_allclose(v, w, rtol=2e-3, atol=1e-4, err_msg=f"{name}: result {k}")


@pytest.mark.parametrize("name", list(CASES))
def test_emulated_matches_interpreter(emu, name):
    _check(emu, name)


@pytest.mark.parametrize("name", ["long_scans", "long_args"])
def test_block_kernels_race_free(emu, name):
    """Threads run last-to-first: a read of shared memory before its write would show."""
    _check(emu, name, "descending")


def test_short_float_scans_exact(emu):
    """One thread per line sums left to right, like numpy: bit-identical."""
    g = _graph("scans")
    want = run_graph(optimize(g), list(CASES["scans"][1]))
    got = emu(g, list(CASES["scans"][1]))
    for w, v in zip(want, got):
        np.testing.assert_array_equal(v, np.asarray(w))


def test_rng_bits_match_reference(emu):
    from tracejit.primitives.random import philox
    g = tj.make_graph(lambda k: bind("random_bits", k, shape=(11,), words=1))(key)
    (bits,) = emu(g, [key])
    seed = int(key[0])
    words = philox(seed, np.arange(3, dtype=np.uint64) + np.uint64(int(key[1])))
    np.testing.assert_array_equal(bits, words.reshape(-1)[:11].astype(np.int64))


@pytest.mark.parametrize("fn,args,err", [
    (lambda x, i: x[i], (f64, np.array([0, 6], np.int64)), IndexError),
    (lambda x, i: tj.gather(x, 1, i), (f64, take + 3), IndexError),
    (lambda x, i: x.at[i].add(x[:2]), (f64, np.array([1, 4], np.int64)), IndexError),
    (lambda x, i: x.at[i].set(x[:2]), (f64, np.array([9, 1], np.int64)), IndexError),
    (lambda a, b: a // b, (i32, i32 * 0 + np.eye(4, 6, dtype=np.int32)), ZeroDivisionError),
    (lambda a, b: a % b, (i32, i32 * 0), ZeroDivisionError),
])
def test_bad_input_raises_like_cpu(emu, fn, args, err):
    """The kernel sets the error flag instead of reading out of bounds; the runtime reruns the
    reference on the host, which raises the CPU backend's error."""
    g = tj.make_graph(fn)(*args)
    with pytest.raises(err):
        run_graph(optimize(g), list(args))
    with pytest.raises(err):
        emu(g, list(args))
