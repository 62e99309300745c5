"""CUDA C rendering of `Gemm` steps (`codegen/cuda_gemm.py`): the kernels compile with nvcc to
PTX for sm_80 and sm_90 (skipped where nvcc is not on PATH), and their results through the host
emulation (`runtime/cuda_emu.py`, skipped without a C++ compiler) match numpy on odd sizes,
transposed, broadcast (stride 0) and reversed operands, batches, epilogues and `raw` results,
in both thread orders and with both float32 tilings."""

from __future__ import annotations

import shutil
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from cuda_tools import nvcc_ptx as _nvcc

import tracejit as tj
from tracejit.codegen import cuda_gemm
from tracejit.codegen.cuda import render_schedule
from tracejit.passes.pipeline import optimize
from tracejit.schedule.fusion import schedule
from tracejit.schedule.kernel import Gemm

NVCC = shutil.which("nvcc")
ARCHS = ("sm_80", "sm_90")

rng = np.random.default_rng(0)


def _r(*shape, dt=np.float32):
    return rng.standard_normal(shape).astype(dt)


def _loss_grads(w, x, b):
    """Gradients of a linear layer's loss: the weight gradient is ``x.T @ g`` (A read
    transposed), the input gradient ``g @ w.T``."""
    return tj.grad(lambda w, x, b: tj.sum(tj.tanh(x @ w + b) ** 2), argnums=(0, 1, 2))(w, x, b)


def _np_loss_grads(w, x, b):
    y = np.tanh(x @ w + b)
    g = 2 * y * (1 - y * y)
    return x.T @ g, g @ w.T, g.sum(0)


# name -> (function, arguments, numpy reference)
CASES = {
    "matmul": (lambda x, w: x @ w, (_r(3, 5), _r(5, 7)), lambda x, w: x @ w),
    "matmul_wT": (lambda x, w: x @ w.T, (_r(9, 6), _r(4, 6)), lambda x, w: x @ w.T),
    "matmul_xT": (lambda x, w: x.T @ w, (_r(6, 9), _r(6, 4)), lambda x, w: x.T @ w),
    "one": (lambda x, w: tj.relu(x @ w), (_r(1, 1), _r(1, 1)), lambda x, w: np.maximum(x @ w, 0)),
    "odd_bias_relu": (lambda x, w, b: tj.relu(x @ w + b), (_r(65, 33), _r(33, 17), _r(17)),
                      lambda x, w, b: np.maximum(x @ w + b, 0)),
    "k0": (lambda x, w: x @ w, (_r(3, 0), _r(0, 4)), lambda x, w: x @ w),
    "k0_epilogue": (lambda x, w, b: x @ w + b, (_r(3, 0), _r(0, 4), _r(4)),
                    lambda x, w, b: x @ w + b),
    "batched": (lambda x, w: x @ w, (_r(3, 5, 7), _r(3, 7, 6)), lambda x, w: x @ w),
    "batched_epilogue": (lambda x, w, c: tj.tanh(x @ w) * c, (_r(2, 33, 9), _r(2, 9, 70),
                                                              _r(2, 33, 70)),
                         lambda x, w, c: np.tanh(x @ w) * c),
    "batch_broadcast_a": (lambda x, w: x @ w, (_r(5, 7), _r(3, 7, 4)), lambda x, w: x @ w),
    "batch_broadcast_b": (lambda x, w: x.transpose(1, 2) @ w, (_r(3, 7, 5), _r(7, 4)),
                          lambda x, w: np.swapaxes(x, 1, 2) @ w),
    "batch_reversed": (lambda x, w, b: tj.relu(x[::-1] @ w + b), (_r(3, 5, 7), _r(3, 7, 4),
                                                                  _r(3, 1, 4)),
                       lambda x, w, b: np.maximum(x[::-1] @ w + b, 0)),
    "batch_folded": (lambda x, w: x @ w, (_r(3, 5, 7), _r(7, 4)), lambda x, w: x @ w),
    "rows_broadcast": (lambda r, w: tj.broadcast_to(r, (6, 7)) @ w, (_r(1, 7), _r(7, 5)),
                       lambda r, w: np.broadcast_to(r, (6, 7)) @ w),
    "reversed": (lambda x, w: x[::-1] @ w[:, ::-1].T, (_r(5, 7), _r(3, 7)),
                 lambda x, w: x[::-1] @ w[:, ::-1].T),
    "strided": (lambda x, w: x[::2, 1::3] @ w[::-2], (_r(13, 30), _r(20, 6)),
                lambda x, w: x[::2, 1::3] @ w[::-2]),
    "raw": (lambda x, w: (x @ w, tj.relu(x @ w) * 2), (_r(5, 7), _r(7, 3)),
            lambda x, w: (x @ w, np.maximum(x @ w, 0) * 2)),
    "f64": (lambda x, w, b: tj.tanh(x @ w + b), (_r(37, 19, dt=np.float64),
                                                 _r(19, 70, dt=np.float64), _r(70, dt=np.float64)),
            lambda x, w, b: np.tanh(x @ w + b)),
    "f64_batched_T": (lambda x, w: x @ w.transpose(1, 2), (_r(2, 5, 9, dt=np.float64),
                                                              _r(2, 11, 9, dt=np.float64)),
                      lambda x, w: x @ np.swapaxes(w, 1, 2)),
    "grad_linear": (_loss_grads, (_r(9, 6), _r(33, 9), _r(6)), _np_loss_grads),
    "bool_epilogue": (lambda x, w: (x @ w) > 0, (_r(4, 6), _r(6, 5)), lambda x, w: (x @ w) > 0),
}


def _graph(name):
    fn, args, _ = CASES[name]
    return tj.make_graph(fn)(*args)


def _source(name):
    return render_schedule(schedule(optimize(_graph(name))))


def _gemms(name) -> list[Gemm]:
    return schedule(optimize(_graph(name))).gemms


@pytest.fixture
def large_tiles(monkeypatch):
    """Every float32 product takes the 128x128 tiling (8x8 per thread), however small."""
    monkeypatch.setattr(cuda_gemm, "FILL_BLOCKS", 0)


# -- rendering ------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(CASES))
def test_every_gemm_is_rendered(name):
    src = _source(name)
    gemms = _gemms(name)
    assert gemms, "the case should schedule a Gemm step"
    for g in gemms:
        assert f") {g.name}(" in src.text
        assert f"TJ_EMU_ENTRY({g.name})" in src.text
    sched = schedule(optimize(_graph(name)))
    for i, st in enumerate(sched.steps):
        if isinstance(st, Gemm):
            text, cst = cuda_gemm.render_gemm(sched, st, i)
            (ln,) = cst.launches
            assert ln.block % 32 == 0 and ln.grid >= 1
            assert ln.params[0] == st.out and set(ln.params) == {st.out, *st.inputs}
            assert "__shared__" not in text and "return" not in text


def test_tilings():
    big = Gemm("g", 1, 4096, 4096, 4096, None, None, 0, tj.float32, [])
    small = Gemm("g", 1, 100, 100, 100, None, None, 0, tj.float32, [])
    f64 = Gemm("g", 1, 4096, 4096, 4096, None, None, 0, tj.float64, [])
    for g, tm in ((big, 8), (small, 4), (f64, 4)):
        t = cuda_gemm.tiling(g)
        assert t.tm == t.tn == tm and t.threads == 256
        assert t.vw * g.dtype.itemsize == 16  # one 16-byte shared load per vector
    src = _source("matmul")
    assert "tj_gemm_lds(" in src.text and '#include "tj_gemm.h"' in src.text


def test_guards_only_where_needed():
    """A product whose extents the tiles divide renders no bounds checks."""
    x, w = np.zeros((128, 64), np.float32), np.zeros((64, 192), np.float32)
    text = render_schedule(schedule(optimize(tj.make_graph(lambda x, w: x @ w)(x, w)))).text
    assert "? " not in text and "const bool" not in text and "if (r <" not in text
    odd = _source("odd_bias_relu").text
    assert "? " in odd and "< 65;" in odd and "r < 65 && c < 17" in odd


# -- nvcc -----------------------------------------------------------------------------------
NVCC_CASES = ["matmul", "matmul_wT", "batched", "odd_bias_relu", "f64", "grad_linear", "raw",
              "k0", "bool_epilogue"]




@pytest.fixture(scope="module")
def compiled():
    """arch -> (returncode, stderr, ptx, source, kernel names): the Gemm kernels of every case
    (both float32 tilings) in one translation unit, compiled once per architecture."""
    if NVCC is None:
        pytest.skip("nvcc is not on PATH: the CUDA C is only checked where the toolkit exists")
    parts, names = ['#include "tj_cuda.h"'], []
    with pytest.MonkeyPatch.context() as mp:
        for fill in (cuda_gemm.FILL_BLOCKS, 0):
            mp.setattr(cuda_gemm, "FILL_BLOCKS", fill)
            for case in NVCC_CASES:
                sched = schedule(optimize(_graph(case)))
                for i, g in enumerate(sched.steps):
                    if isinstance(g, Gemm):  # unique names across the cases and tilings
                        g.name = f"{g.name}_{case}_{fill}"
                        names.append(g.name)
                        parts.append(cuda_gemm.render_gemm(sched, g, i)[0])
    src = "\n".join(parts)
    with ThreadPoolExecutor(2) as ex:
        res = list(ex.map(lambda a: _nvcc(src, a), ARCHS))
    return {a: r + (src, names) for a, r in zip(ARCHS, res)}


@pytest.mark.parametrize("arch", ARCHS)
def test_nvcc_compiles(compiled, arch):
    rc, err, ptx, src, names = compiled[arch]
    assert rc == 0, f"nvcc -arch={arch} failed:\n{err}\n--- source ---\n{src}"
    for k in names:
        assert f".entry {k}(" in ptx, f"{k} missing from the PTX"
    # the multiply reads shared memory as 16-byte vectors
    assert "ld.shared.v4.f32" in ptx and "ld.shared.v2.f64" in ptx
    shared = [ln for ln in ptx.splitlines() if ln.strip().startswith(".shared")]
    assert shared and all(".align 16" in ln for ln in shared)  # what the vector loads need


# -- numerics through the host emulation ----------------------------------------------------
def _emu():
    try:
        from tracejit.runtime import cuda_emu
    except ImportError:
        pytest.skip("the CUDA host emulation (tracejit.runtime.cuda_emu) is not there yet")
    if cuda_emu.compiler() is None:
        pytest.skip("no C++ compiler: the CUDA host emulation cannot run")
    return cuda_emu


@pytest.fixture(scope="module")
def emu():
    """The emulation, with every case's modules (both tilings) built as one library."""
    cuda_emu = _emu()
    texts = []
    with pytest.MonkeyPatch.context() as mp:
        for fill in (cuda_gemm.FILL_BLOCKS, 0):
            mp.setattr(cuda_gemm, "FILL_BLOCKS", fill)
            texts += [_source(name).text for name in CASES]
    cuda_emu.compile_many(texts)
    return cuda_emu


def _check(emu, name, order="ascending"):
    fn, args, ref = CASES[name]
    with emu.thread_order(order):
        got = emu.emulate_graph(_graph(name), list(args))
    want = ref(*args)
    want = list(want) if isinstance(want, tuple) else [want]
    assert len(got) == len(want)
    for g, w in zip(got, want):
        w = np.asarray(w)
        assert g.shape == w.shape and g.dtype == w.dtype, (g.shape, g.dtype, w.shape, w.dtype)
        tol = 1e-12 if w.dtype == np.float64 else 1e-5
        np.testing.assert_allclose(g, w, rtol=tol * 10, atol=tol * 10)


@pytest.mark.parametrize("name", list(CASES))
def test_emulated(emu, name):
    _check(emu, name)


@pytest.mark.parametrize("name", ["odd_bias_relu", "batched_epilogue", "strided", "raw",
                                  "grad_linear", "k0_epilogue", "one"])
def test_emulated_large_tiles(emu, large_tiles, name):
    _check(emu, name)


@pytest.mark.parametrize("name", ["odd_bias_relu", "f64", "batched"])
def test_emulated_descending_threads(emu, name):
    """Threads run last to first: a shared tile read before it is written would show."""
    _check(emu, name, "descending")


def test_emulated_empty_product(emu):
    """m == 0: a kernel that is never launched (grid 0, no work), and an empty result."""
    x, w = _r(0, 7), _r(7, 3)
    g = tj.make_graph(lambda x, w: x @ w)(x, w)
    src = render_schedule(schedule(optimize(g)))
    (ln,) = src.steps[0].launches
    assert ln.grid == 0 and ln.work == 0
    (got,) = emu.emulate_graph(g, [x, w])
    assert got.shape == (0, 3)


def test_emulated_multi_tile(emu):
    """Several tiles in both directions and several k steps, the grouped block order with a
    partial last group (9 tile rows of 64 > GROUP), and two batches."""
    x, w = _r(2, 9 * 64 - 3, 20), _r(2, 20, 70)
    g = tj.make_graph(lambda x, w: x @ w)(x, w)
    (got,) = emu.emulate_graph(g, [x, w])
    np.testing.assert_allclose(got, x @ w, rtol=1e-4, atol=1e-4)


def test_emulated_multi_tile_large(emu, large_tiles):
    """The 128x128 tiling over several tiles each way, a partial last group of tile rows, and
    several k steps, threads run last to first."""
    x, w = _r(9 * 128 - 3, 20), _r(20, 130)
    g = tj.make_graph(lambda x, w: x @ w)(x, w)
    with emu.thread_order("descending"):
        (got,) = emu.emulate_graph(g, [x, w])
    np.testing.assert_allclose(got, x @ w, rtol=1e-4, atol=1e-4)


# -- a real GPU -----------------------------------------------------------------------------
def _gpu() -> bool:
    try:
        return tj.cuda.is_available() and not tj.cuda.is_emulated()
    except Exception:  # noqa: BLE001 (no driver, no pycuda: no GPU)
        return False


@pytest.mark.gpu
@pytest.mark.skipif(not _gpu(), reason="needs a CUDA GPU and pycuda")
@pytest.mark.parametrize("tiles", ["auto", "large"])
def test_gpu_matches_numpy(monkeypatch, tiles):
    from tracejit.runtime.cuda import CUDAProgram
    if tiles == "large":
        monkeypatch.setattr(cuda_gemm, "FILL_BLOCKS", 0)
    x, w, b = _r(2, 1000, 300), _r(2, 300, 517), _r(517)
    g = tj.make_graph(lambda x, w, b: tj.relu(x @ w + b))(x, w, b)
    prog = CUDAProgram(optimize(g), tj.cuda.driver())
    (got,) = [d.get() for d in prog([x, w, b])]
    want = np.maximum(x.astype(np.float64) @ w + b, 0)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-3)
