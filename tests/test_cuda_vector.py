"""Vectorized elementwise CUDA kernels (issue 8): which kernels take 16-byte vector loads and
stores (`codegen/cuda.py`, `_vector_plan`), their launch sizes, the PTX nvcc makes of them
(``ld.global[.nc].v4.f32`` / ``st.global.v4.f32``), and their results through the host
emulation, element for element equal to the interpreter's — sizes that are multiples of the
vector width and not, broadcasts, transposed and sliced inputs, every dtype, zero-size."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile

import numpy as np
import pytest

import tracejit as tj
from tracejit import dtypes as D
from tracejit.codegen.cuda import HEADER_DIR, render_schedule
from tracejit.passes.pipeline import optimize
from tracejit.runtime.interpreter import run_graph
from tracejit.schedule.fusion import schedule
from tracejit.schedule.kernel import Access, BufferInfo, Expr, Kernel, Schedule

NVCC = shutil.which("nvcc")
rng = np.random.default_rng(8)


def _f32(*shape):
    x = rng.standard_normal(shape).astype(np.float32)
    if x.size > 2:
        x.reshape(-1)[1] = np.nan  # NaN semantics ride along
    return x


def _f64(*shape):
    return rng.standard_normal(shape)


def _i32(*shape):
    return rng.integers(-1000, 1000, shape).astype(np.int32)


# (out of range and NaN convert by saturating on the compiled backends; numpy's astype, the
# interpreter's reference, is undefined there: in-range values only)
frac32 = np.array([2e9, -2e9, -0.5, 0.99, -0.99, 1.5, -2.5, 7.0] * 4, np.float32)

# name -> (fn, args, vector width of its (first) kernel or 0 for a scalar kernel)
CASES = {
    "f32_multiple": (lambda x, y: x * y + 1.0, (_f32(6, 8), _f32(6, 8)), 4),
    "f32_tail_1d": (lambda x, y: x * y - y, (_f32(31), _f32(31)), 4),
    "f32_tail_2d": (lambda x, y: x / y, (_f32(3, 5), _f32(3, 5)), 4),  # one run of 15
    "f32_small": (lambda x: x * 2.0, (_f32(3),), 0),  # fewer elements than a vector
    "row_broadcast": (lambda x, r: tj.maximum(x, r) * r, (_f32(5, 8), _f32(8)), 4),
    "col_broadcast": (lambda x, c: x - c, (_f32(5, 8), _f32(5, 1)), 4),
    "scalar_broadcast": (lambda x, s: x * s + s, (_f32(4, 12), _f32(1, 1)), 4),
    "row_broadcast_odd": (lambda x, r: x + r, (_f32(3, 5), _f32(5)), 0),
    "transposed": (lambda x: x + x.T * 2.0, (_f32(8, 8),), 0),
    "aligned_slice": (lambda x: x[:, 4:12] * 3.0, (_f32(3, 16),), 4),
    "misaligned_slice": (lambda x: x[:, 1:9] * 3.0, (_f32(3, 16),), 0),
    "reversed_rows": (lambda x: x[::-1] + x, (_f32(4, 8),), 4),
    "f64": (lambda x, y: tj.minimum(x, y) * x + 0.5, (_f64(4, 6), _f64(4, 6)), 2),
    "f64_tail": (lambda x: x * x - 1.0, (_f64(7),), 2),
    "i32": (lambda x, y: x * y - x + tj.maximum(x, y), (_i32(4, 8), _i32(4, 8)), 4),
    "i32_tail": (lambda x: -x * 7, (_i32(13),), 4),
    "i64": (lambda x: x * 3 + tj.abs(x), (_i32(9).astype(np.int64),), 2),
    "i32_to_f32": (lambda x: x.astype(np.float32) * 0.5, (_i32(2, 8),), 4),
    "f32_to_i32": (lambda x: x.astype(np.int32) + 1, (frac32,), 4),  # truncation
    "f64_from_f32": (lambda x: x.astype(np.float64) * 3.0, (_f32(8),), 0),  # sizes differ
    "f16": (lambda x: x * 2 + x, (_f32(4, 8).astype(np.float16),), 0),
    "f16_broadcast": (lambda x, h: x + h.astype(np.float32),
                      (_f32(4, 8), _f32(4, 1).astype(np.float16)), 4),
    "bool": (lambda p, q: (p & ~q) | (p ^ q), (_f32(4, 8) > 0, _f32(4, 8) > 0), 0),
    "bool_to_f32": (lambda p: p.astype(np.float32) + 1.0, (_f32(4, 8) > 0,), 0),
    "compare_select": (lambda x, y: tj.where(x > y, x, y * 2.0), (_f32(2, 8), _f32(2, 8)), 4),
    "zero_size": (lambda x, y: x * y + 1.0, (_f32(0, 8), _f32(0, 8)), 0),
    "zero_size_1d": (lambda x: x * 2.0, (_f32(0),), 0),
}


def _graph(name):
    fn, args, _ = CASES[name]
    return tj.make_graph(fn)(*args)


def _source(name):
    return render_schedule(schedule(optimize(_graph(name))))


def _width(text: str) -> int:
    m = re.search(r"// vectorized: (\d+) elements per thread", text)
    return int(m.group(1)) if m else 0


# -- which kernels vectorize, and their launches (pure text) ----------------------------------
@pytest.mark.parametrize("name", list(CASES))
def test_vectorization_decision(name):
    fn, args, want = CASES[name]
    src = _source(name)
    sched = schedule(optimize(_graph(name)))
    ks = [k for k in sched.kernels if k.reduce_op is None]
    assert ks, "expected an elementwise kernel"
    assert _width(src.text) == want, src.text
    if want:
        assert "tj_ldv(" in src.text and "tj_stv(" in src.text
    (launch,) = [ln for ln in src.launches if ln.name == ks[0].name]
    n = int(np.prod(ks[0].domain))
    assert launch.work == (-(-n // want) if want else n)  # the number of vectors


def test_tail_loop_only_when_needed():
    assert "the tail" in _source("f32_tail_1d").text
    assert "the tail" not in _source("f32_multiple").text
    assert "the tail" not in _source("row_broadcast").text


# -- PTX ----------------------------------------------------------------------------------------
def _ptx(src: str, arch: str = "sm_80") -> str:
    with tempfile.TemporaryDirectory() as d:
        cu, ptx = os.path.join(d, "k.cu"), os.path.join(d, "k.ptx")
        with open(cu, "w") as f:
            f.write(src)
        r = subprocess.run([NVCC, f"-arch={arch}", "-ptx", "-I", HEADER_DIR, cu, "-o", ptx],
                           capture_output=True, text=True, timeout=180)
        assert r.returncode == 0, f"nvcc failed:\n{r.stderr}\n--- source ---\n{src}"
        return open(ptx).read()


@pytest.mark.skipif(NVCC is None, reason="nvcc is not on PATH")
def test_ptx_has_vector_loads_and_stores():
    """One nvcc run over the kernels of every case (renamed to be unique per case) and the
    hand-built index kernels: all compile; the vector ones use vector instructions."""
    names = list(CASES)
    body = []
    for i, name in enumerate(names):
        text = _source(name).text.replace('#include "tj_cuda.h"', "")
        body.append(re.sub(r"\bk(\d+)_", rf"c{i}_k\1_", text))  # unique kernel names
    body.append(render_schedule(_index_schedule()[0]).text.replace('#include "tj_cuda.h"', ""))
    ptx = _ptx('#include "tj_cuda.h"\n' + "\n".join(body))
    entries = re.split(r"\.entry ", ptx)[1:]
    by_case = {name: "".join(e for e in entries if e.startswith(f"c{i}_"))
               for i, name in enumerate(names)}
    for name in ("f32_multiple", "row_broadcast", "f32_tail_1d"):
        assert re.search(r"ld\.global(\.nc)?\.v4\.f32", by_case[name]), by_case[name]
        assert "st.global.v4.f32" in by_case[name], by_case[name]
    assert re.search(r"ld\.global(\.nc)?\.v2\.f64", by_case["f64"])
    assert "st.global.v2.f64" in by_case["f64"]
    assert re.search(r"ld\.global(\.nc)?\.v4\.[su]32", by_case["i32"])
    assert re.search(r"st\.global\.v4\.[bsu]32", by_case["i32"])
    assert re.search(r"ld\.global(\.nc)?\.v2\.[su]64", by_case["i64"])
    for name, (_, _, width) in CASES.items():
        if width == 0:  # a scalar kernel has no vector access
            assert not re.search(r"\.global(\.nc)?\.v[24]\.", by_case[name]), by_case[name]


# -- results through the host emulation ----------------------------------------------------------
@pytest.fixture(scope="module")
def emu():
    from tracejit.runtime import cuda_emu
    if cuda_emu.compiler() is None:
        pytest.skip("no C++ compiler: the CUDA host emulation cannot run")
    cuda_emu.compile_many([_source(n).text for n in CASES])  # one compiler run for all
    return cuda_emu


@pytest.mark.parametrize("order", ["ascending", "descending"])
@pytest.mark.parametrize("name", list(CASES))
def test_emulation_equals_interpreter(emu, name, order):
    fn, args, _ = CASES[name]
    g = _graph(name)
    with emu.thread_order(order):
        got = emu.emulate_graph(g, list(args))
    want = run_graph(optimize(g), list(args))
    assert len(got) == len(want)
    for a, b in zip(got, want):
        b = np.asarray(b)
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b)  # exact, NaNs in the same places


# -- index expressions inside a vector (hand-built kernels: iota folds to constants) -----------
def _index_schedule():
    """``out = x + i_a * 2 + 1 + i_b`` over three domains: the run is one axis (row
    broadcast), the whole domain (several axes), and the last two axes of three."""
    bufs, steps = [], []
    layouts = [((3, 8), (0, 1), 8), ((3, 8), (8, 1), 24), ((4, 2, 4), (16, 4, 1), 64)]
    for dims, strides, size in layouts:
        base = len(bufs)
        bufs += [BufferInfo((size,), D.float32, "input"),
                 BufferInfo(dims, D.float32, "output")]
        x = Expr("load", D.float32, attrs=Access(base, 0, strides))
        body = x
        for ax in range(len(dims)):
            ix = Expr("index", D.float32, attrs=(ax, 2 if ax % 2 else 1, ax + 1))
            body = Expr("add", D.float32, (body, ix), {})
        steps.append(Kernel(f"k{len(steps)}_index", dims, body, base + 1, [base]))
    return Schedule(bufs, steps, [], [], {}), layouts


def _aligned(n: int, dtype=np.float32) -> np.ndarray:
    raw = np.empty(n * np.dtype(dtype).itemsize + 64, np.uint8)
    off = (-raw.ctypes.data) % 64
    return raw[off:off + n * np.dtype(dtype).itemsize].view(dtype)


def test_index_expressions_in_vectors(emu):
    sched, layouts = _index_schedule()
    src = render_schedule(sched)
    assert src.text.count("// vectorized: 4 elements") == 3, src.text
    mod = emu.module(src.text)
    for k, ln, (dims, strides, size) in zip(sched.kernels, src.launches, layouts):
        x = _aligned(size)
        x[:] = rng.standard_normal(size)
        out = _aligned(int(np.prod(dims)))
        out[:] = np.nan
        mod.launch(k.name, -(-ln.work // 32), 32, [out, x])  # a thread per vector
        view = np.lib.stride_tricks.as_strided(x, dims, [s * 4 for s in strides])
        want = view.astype(np.float32)
        for ax in range(len(dims)):
            shape = [1] * len(dims)
            shape[ax] = dims[ax]
            i = np.arange(dims[ax], dtype=np.float32).reshape(shape)
            want = want + (i * (2 if ax % 2 else 1) + (ax + 1)).astype(np.float32)
        np.testing.assert_array_equal(out.reshape(dims), want)
