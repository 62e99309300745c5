"""CUDA reductions and row kernels (issue 8, `codegen/cuda_reduce.py`): the generated text
compiles with nvcc to PTX for sm_80 and sm_90 (skipped where nvcc is not on PATH), and runs
through the host emulation (`runtime/cuda_emu.py`, skipped without a C++ compiler) to the
interpreter's results, on sizes that reach every kernel shape: a group of lanes or a warp per
output, a block per output, split reductions with a second launch over scratch partials,
column reductions (a thread per output, or tiles of outputs), row kernels per lane group and
per block; 0-size, 1-element, NaN and wrapping-integer inputs."""

from __future__ import annotations

import re
import shutil
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from cuda_tools import nvcc_ptx as _nvcc

import tracejit as tj
from tracejit.codegen.cuda import render_schedule
from tracejit.codegen.cuda_reduce import _orders
from tracejit.passes.pipeline import optimize
from tracejit.runtime.interpreter import run_graph
from tracejit.schedule.fusion import schedule
from tracejit.schedule.kernel import Kernel, RowKernel

NVCC = shutil.which("nvcc")
ARCHS = ("sm_80", "sm_90")
rng = np.random.default_rng(7)

INT_DTYPES = (np.int8, np.int16, np.int32, np.int64, np.uint8)
FLOAT_DTYPES = (np.float32, np.float64, np.float16)


def _data(shape, dt):
    dt = np.dtype(dt)
    if dt == np.bool_:
        return rng.random(shape) < 0.7
    if dt.kind in "iu":
        lo = 0 if dt.kind == "u" else -50
        return rng.integers(lo, 50, shape).astype(dt)
    return rng.standard_normal(shape).astype(dt)


def _near_one(shape, dt):
    """Factors for products that neither overflow nor vanish."""
    return (1 + 0.02 * rng.standard_normal(shape)).astype(dt)


def _layouts(x, w, t3):
    """Reductions of every layout: `x` is tall (columns), `w` wide (rows), `t3` 3-d."""
    return (x.sum(axis=0),             # column: tiles of outputs, split over blocks
            tj.amax(x, axis=1),        # short rows: a group of 8 lanes per output
            w.sum(axis=1),             # long rows: a block per output, split
            tj.amin(w, axis=0),        # many short columns: a thread per output
            w.sum(),                   # full: split over blocks, then a final launch
            tj.amax(t3, axis=1),       # middle axis
            tj.amin(t3, axis=(0, 2)),  # outer and inner axes
            tj.amax(w.T, axis=0))      # a transposed operand: the fast axis is reduced


def _prods(x, w):
    return x.prod(axis=0), w.prod(axis=1), x.prod()


def _softmax(x):
    return tj.softmax(x, axis=-1)


def _log_softmax(x):
    return tj.log_softmax(x, axis=-1)


def _layer_norm(x, g, b):
    m = x.mean(axis=-1, keepdims=True)
    v = ((x - m) ** 2).mean(axis=-1, keepdims=True)
    return (x - m) / tj.sqrt(v + 1e-5) * g + b, m


def _bools(p, q):
    return tj.any(p, axis=0), tj.all(p, axis=1), tj.any(q), tj.all(q, axis=0), \
        tj.any(p.T, axis=1)


# name -> (function, argument shapes and dtypes (or arrays), tolerance)
def _case_table():
    cases = {}
    shapes = [(3000, 5), (2, 9000), (4, 50, 6)]
    for dt in INT_DTYPES + FLOAT_DTYPES:
        name = np.dtype(dt).name
        x, w, t3 = (_data(s, dt) for s in shapes)
        tol = {"float16": 2e-2, "float32": 1e-4}.get(name, 1e-9)
        cases[f"layouts_{name}"] = (_layouts, (x, w, t3), tol)
        if np.dtype(dt).kind == "f":
            cases[f"prod_{name}"] = (_prods, (_near_one((400, 7), dt), _near_one((3, 500), dt)),
                                     tol * 5)
        else:  # wraps like numpy
            cases[f"prod_{name}"] = (_prods, (_data((400, 7), dt), _data((3, 500), dt)), 0)
    cases["bool"] = (_bools, (_data((300, 40), bool), _data((5, 2000), bool)), 0)
    f32 = np.float32
    cases["softmax_short"] = (_softmax, (_data((37, 20), f32),), 1e-5)
    cases["softmax_long"] = (_softmax, (_data((5, 700), f32),), 1e-5)
    cases["softmax_f64"] = (_softmax, (_data((6, 3, 300), np.float64),), 1e-12)
    cases["softmax_f16"] = (_softmax, (_data((9, 300), np.float16),), 2e-3)
    cases["log_softmax"] = (_log_softmax, (_data((70, 33), f32),), 1e-5)
    cases["log_softmax_long"] = (_log_softmax, (_data((3, 1000), f32),), 1e-5)
    cases["layer_norm"] = (_layer_norm, (_data((40, 64), f32), _data((64,), f32),
                                         _data((64,), f32)), 1e-4)
    cases["layer_norm_long"] = (_layer_norm, (_data((3, 600), f32), _data((600,), f32),
                                              _data((600,), f32)), 1e-4)
    return cases


CASES = _case_table()


def _nan_input():
    x = _data((6, 40), np.float32)
    x[1, 3] = np.nan
    x[4, :] = np.nan
    x[:, 7] = np.nan
    return x


# inputs that only the emulation runs (edge sizes and values)
EDGE = {
    "nan_max_min": (lambda x: (tj.amax(x, axis=1), tj.amin(x, axis=0), tj.amax(x),
                               tj.softmax(x, axis=1)), (_nan_input(),), 1e-5),
    "empty_rows": (lambda x: x.sum(axis=1), (np.zeros((0, 5), np.float32),), 0),
    "empty_reduction": (lambda x: (x.sum(axis=1), x.prod(axis=0)),
                        (np.zeros((5, 0), np.float32),), 0),
    "one_element": (lambda x: (x.sum(), tj.amax(x, axis=0), tj.softmax(x, axis=1)),
                    (np.full((1, 1), 2.5, np.float32),), 1e-6),
    "many_rows": (lambda x: (x.sum(axis=1), tj.softmax(x, axis=1)),
                  (_data((5000, 9), np.float32),), 1e-5),
    "odd_sizes": (lambda x, y: (x.sum(axis=1), x.sum(axis=0), y.sum(), tj.amax(y, axis=0)),
                  (_data((33, 1025), np.float32), _data((4097, 3), np.float32)), 1e-4),
    "int_wrap": (lambda x: (x.sum(axis=1), x.sum(), tj.amax(x, axis=0)),
                 (np.full((3, 700), 100, np.int8),), 0),
}


def _graph(name, table=None):
    fn, args, _ = (table or CASES)[name]
    return tj.make_graph(fn)(*args)


def _sched(name, table=None):
    return schedule(optimize(_graph(name, table)))


# -- the kernel shapes ------------------------------------------------------------------------
def _names(src: str) -> list[str]:
    return re.findall(r"TJ_KERNEL void (\w+)\(", src)


def test_every_step_rendered_on_device():
    """Every reduction and row kernel of the table gets a device rendering (none falls back to
    the one-thread-per-output renderer or the host)."""
    seen_rows = 0
    for name in CASES:
        sched = _sched(name)
        src = render_schedule(sched)
        for st, cst in zip(sched.steps, src.steps):
            if isinstance(st, (Kernel, RowKernel)) and (isinstance(st, RowKernel)
                                                       or st.reduce_op):
                assert cst is not None and cst.launches, (name, st.name)
                assert cst.launches[0].name == st.name
                assert all(ln.block % 32 == 0 for ln in cst.launches)
            seen_rows += isinstance(st, RowKernel)
        assert "__shared__" not in src.text and "atomic" not in src.text
    assert seen_rows >= 6


def test_kernel_shapes():
    """The layouts of `_layouts` reach each kernel shape (read off the generated text)."""
    src = render_schedule(_sched("layouts_float32")).text
    assert "tj_warp_allreduce(acc, tj_op_" in src and ", 8);" in src  # 8 lanes per output
    assert "_final(" in src and "partials[o * " in src                # split + second launch
    assert "tj_warp_fold_rows(acc" in src and ", 8);" in src          # a tile of 8 columns
    assert "tj_warp_fold_rows(acc" in src and ", 1);" in src          # a block per output
    rows = render_schedule(_sched("softmax_long")).text
    assert "tj_block_allreduce(" in rows and "TJ_SHARED(float, tj_part_0" in rows
    short = render_schedule(_sched("softmax_short")).text
    assert "tj_warp_allreduce(acc0, " in short and "TJ_SHARED" not in short


def test_fast_axis_follows_the_loads():
    sched = _sched("layouts_float32")
    red = [k for k in sched.kernels if k.reduce_op]
    transposed = red[-1]  # amax(w.T, axis=0): the loads walk the reduced axis contiguously
    assert _orders(transposed)[2]
    assert not _orders(red[0])[2]  # x.sum(axis=0): the kept axis is contiguous


# -- nvcc ---------------------------------------------------------------------------------------
def _unit(names) -> str:
    """All cases in one translation unit: each in its own namespace, kernels renamed."""
    parts = ['#include "tj_cuda.h"', '#include "tj_reduce.h"']
    for j, name in enumerate(names):
        text = render_schedule(_sched(name)).text
        text = re.sub(r'^\s*#include\s+"[^"]+"\s*$', "", text, flags=re.M)
        for k in _names(text):
            text = re.sub(rf"\b{k}\b", f"c{j}_{k}", text)
        parts += [f"namespace case{j} {{", text, "}"]
    return "\n".join(parts) + "\n"




@pytest.fixture(scope="module")
def ptx():
    if NVCC is None:
        pytest.skip("nvcc is not on PATH: the CUDA C is only checked where the toolkit exists")
    src = _unit(list(CASES))
    with ThreadPoolExecutor(2) as ex:
        res = list(ex.map(lambda a: _nvcc(src, a), ARCHS))
    return src, dict(zip(ARCHS, res))


@pytest.mark.parametrize("arch", ARCHS)
def test_nvcc_compiles(ptx, arch):
    src, res = ptx
    rc, err, out = res[arch]
    assert rc == 0, f"nvcc -arch={arch} failed:\n{err[-6000:]}"
    for k in _names(src):
        assert f".entry {k}(" in out, f"{k} missing from the PTX"
    assert "shfl.sync.bfly" in out and "bar.sync" in out


# -- the emulation --------------------------------------------------------------------------------
def _emulate(graph, args):
    try:
        from tracejit.runtime.cuda_emu import compiler, emulate_graph
    except ImportError:
        pytest.skip("the CUDA host emulation (tracejit.runtime.cuda_emu) is not there yet")
    if compiler() is None:
        pytest.skip("the CUDA host emulation needs a C++ compiler")
    return emulate_graph(graph, list(args))


def _compare(graph, args, tol, fn=None):
    """The emulation's results against the interpreter's. float16 accumulates in float32 on
    the device, so (given `fn`) float16 results are checked against the interpreter run on
    float32 copies of the arguments: numpy's float16 sums along a strided axis round every
    partial sum to half precision and are much further off than the device."""
    got = _emulate(graph, args)
    want = run_graph(optimize(graph), list(args))
    if fn is not None and any(np.asarray(a).dtype == np.float16 for a in args):
        up = [np.asarray(a).astype(np.float32) if np.asarray(a).dtype == np.float16 else a
              for a in args]
        wide = run_graph(optimize(tj.make_graph(fn)(*up)), up)
        want = [np.asarray(x).astype(np.asarray(w).dtype) for x, w in zip(wide, want)]
    assert len(got) == len(want)
    for j, (g, w) in enumerate(zip(got, want)):
        w = np.asarray(w)
        assert g.shape == w.shape and g.dtype == w.dtype, (j, g.shape, w.shape, g.dtype)
        if tol == 0 or w.dtype.kind in "biu":
            np.testing.assert_array_equal(g, w, err_msg=f"result {j}")
        else:
            w64 = w.astype(np.float64)
            _close(g.astype(np.float64), w64, np.maximum(1.0, np.abs(w64)) * tol, j)


def _close(g, w, tol, j):
    nan = np.isnan(w)
    assert np.array_equal(nan, np.isnan(g)), f"result {j}: NaN in other places"
    bad = np.abs(g - w)[~nan] > np.broadcast_to(tol, w.shape)[~nan]
    assert not bad.any(), f"result {j}: {bad.sum()} of {w.size} differ\n{g}\n{w}"


@pytest.mark.parametrize("name", list(CASES))
def test_emulated(name):
    fn, args, tol = CASES[name]
    _compare(_graph(name), args, tol, fn)


@pytest.mark.parametrize("name", list(EDGE))
def test_emulated_edges(name):
    fn, args, tol = EDGE[name]
    _compare(_graph(name, EDGE), args, tol)


def test_deterministic_and_order_free():
    """The same launch twice gives the same bits, and so does running each block's threads in
    the other order (a race or missing barrier would change them)."""
    from tracejit.runtime.cuda_emu import thread_order
    fn, args, _ = CASES["layouts_float32"]
    g = _graph("layouts_float32")
    a = _emulate(g, args)
    with thread_order("descending"):
        b = _emulate(g, args)
    for x, y in zip(a, b):
        assert x.tobytes() == y.tobytes()
