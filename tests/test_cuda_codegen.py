"""CUDA C rendering of loop kernels (issue 8, first increment): the text names every kernel step
and compiles with nvcc to PTX for sm_80 and sm_90 (skipped where nvcc is not on PATH)."""

from __future__ import annotations

import functools
import os
import re
import shutil
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from cuda_tools import nvcc_ptx as _nvcc

import tracejit as tj
from tracejit import dtypes as D
from tracejit.codegen.cuda import HEADER_DIR, schedule_to_cuda
from tracejit.schedule.fusion import schedule
from tracejit.schedule.kernel import Access, BufferInfo, Expr, Kernel, Schedule

NVCC = shutil.which("nvcc")
ARCHS = ("sm_80", "sm_90")

rng = np.random.default_rng(0)
f32 = rng.standard_normal((3, 4)).astype(np.float32)
f64 = rng.standard_normal((3, 4))
f16 = f32.astype(np.float16)
i32 = rng.integers(-9, 9, (3, 4)).astype(np.int32)
i64 = i32.astype(np.int64)
u8 = rng.integers(0, 200, (3, 4)).astype(np.uint8)
b = f32 > 0
row = rng.standard_normal((4,)).astype(np.float32)
sq = rng.standard_normal((4, 4)).astype(np.float32)
t3 = rng.standard_normal((2, 3, 4)).astype(np.float32)

CASES = {
    "f32_math": (lambda x: tj.exp(x) * tj.tanh(x) + tj.sqrt(tj.abs(x)) - tj.log(x * x + 1)
                 + tj.floor(x) + tj.ceil(x) + tj.round(x) + tj.trunc(x) + tj.sigmoid(x), (f32,)),
    "f32_more": (lambda x: tj.rsqrt(tj.abs(x) + 1) + tj.erf(x) + x ** 2.5 + tj.sin(x)
                 + tj.sign(x), (f32,)),
    "f64_math": (lambda x: tj.exp(x) / (tj.abs(x) + 1) + tj.tanh(x) + tj.round(x), (f64,)),
    "f16": (lambda x: tj.exp(x) * 2 + x, (f16,)),
    "i32_arith": (lambda x, y: x * y - x + (-y) + tj.abs(x), (i32, i32)),
    "i64_arith": (lambda x: x * 3 + tj.maximum(x, 0) - tj.minimum(x, 1), (i64,)),
    "u8": (lambda x: x + x * 2, (u8,)),
    "bool_logic": (lambda p, q: (p & ~q) | (p ^ q), (b, b)),
    "broadcast": (lambda x, r: x * r + 1.0, (f32, row)),
    "transposed": (lambda x: x + x.T * 2, (sq,)),
    "strided": (lambda x: x[:, ::2] * 3 + x[::-1, 1::2], (f32,)),
    "reductions": (lambda x: (x.sum(axis=0), tj.amax(x, axis=1), x.min(), x.prod(axis=2),
                              x.sum()), (t3,)),
    "int_reductions": (lambda x: (x.sum(axis=0), x.max(), tj.amin(x, axis=1)), (i32,)),
    "bool_reduce": (lambda p: (p.sum(axis=0), tj.any(p), tj.all(p, axis=1)), (b,)),
    "casts": (lambda x, n: (x.astype(np.int32), x.astype(np.float16), n.astype(np.float64),
                            x.astype(np.uint8), (x > 0).astype(np.float32), n.astype(bool),
                            x.astype(np.int64), n.astype(np.int8)), (f32, i32)),
    "where": (lambda x, y: tj.where(x > y, x, y * 2) + tj.where(tj.isnan(x), 0.0, 1.0),
              (f32, f32)),
    "nan_maximum": (lambda x, y: tj.maximum(x, y) + tj.minimum(x, y) + tj.amax(x, axis=0),
                    (f32, f32)),
    "floordiv_remainder": (lambda x, y: x // y + x % y, (i32, i32 * 0 + 3)),
    "float_floordiv": (lambda x, y: x // y + x % y, (f32, f32 + 3)),
}


def _text(name):
    """``tj.compile(fn).lower(*args).as_text("cuda")``, which must equal the schedule's
    rendering."""
    fn, args = CASES[name]
    text = tj.compile(fn).lower(*args).as_text("cuda")
    assert text == schedule_to_cuda(_sched(name))
    return text


def _sched(name):
    from tracejit.passes.pipeline import optimize
    fn, args = CASES[name]
    return schedule(optimize(tj.compile(fn).lower(*args).graph))


def _manual_divmod() -> Schedule:
    """floordiv/rem never fuse today (they run as Externs), so their renderings are checked on
    a hand-built schedule: one kernel per dtype computing ``x // y + x % y``."""
    bufs, steps = [], []
    for dt in (D.int32, D.int64, D.uint8, D.int8, D.float32, D.float64, D.float16):
        base = len(bufs)
        bufs += [BufferInfo((5,), dt, "input"), BufferInfo((5,), dt, "input"),
                 BufferInfo((5,), dt, "output")]
        x = Expr("load", dt, attrs=Access(base, 0, (1,)))
        y = Expr("load", dt, attrs=Access(base + 1, 0, (1,)))
        body = Expr("add", dt, (Expr("floordiv", dt, (x, y), {}), Expr("rem", dt, (x, y), {})),
                    {})
        steps.append(Kernel(f"k{len(steps)}_divmod_{dt.name}", (5,), body, base + 2,
                            [base, base + 1]))
    return Schedule(bufs, steps, [], [], {})




@pytest.fixture(scope="module")
def compiled():
    """(case, arch) -> (returncode, stderr, ptx, source, kernel names): every case compiled by
    nvcc once per architecture, in parallel."""
    if NVCC is None:
        pytest.skip("nvcc is not on PATH: the CUDA C is only checked where the toolkit exists")
    srcs = {}
    for name in CASES:
        srcs[name] = (_text(name), [k.name for k in _sched(name).kernels])
    man = _manual_divmod()
    srcs["manual_divmod"] = (schedule_to_cuda(man), [k.name for k in man.kernels])
    jobs = [(n, a) for n in srcs for a in ARCHS]
    with ThreadPoolExecutor(4) as ex:
        res = list(ex.map(lambda j: _nvcc(srcs[j[0]][0], j[1]), jobs))
    return {j: r + srcs[j[0]] for j, r in zip(jobs, res)}


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("name", list(CASES) + ["manual_divmod"])
def test_nvcc_compiles(compiled, name, arch):
    rc, err, ptx, src, kernels = compiled[(name, arch)]
    assert rc == 0, f"nvcc -arch={arch} failed:\n{err}\n--- source ---\n{src}"
    for k in kernels:
        assert f".entry {k}(" in ptx, f"{k} missing from the PTX"


@pytest.mark.parametrize("name", list(CASES))
def test_text_names_every_step(name):
    """Pure text: needs neither nvcc nor pycuda."""
    src = _text(name)
    sched = _sched(name)
    assert '#include "tj_cuda.h"' in src
    assert sched.kernels or sched.steps
    for st in sched.steps:
        if isinstance(st, Kernel):
            assert f'TJ_KERNEL void {st.name}(' in src and f"TJ_EMU_ENTRY({st.name})" in src
        else:
            assert getattr(st, "name", "") in src or "runs on the host" in src


def test_semantics_in_text():
    src = _text("nan_maximum")
    assert "tj_max(" in src and "tj_min(" in src and "fmaxf" not in src
    assert "rintf(" in _text("f32_math")  # round half to even
    assert "tj_h2f(" in _text("f16") and "__half*" in _text("f16")
    man = schedule_to_cuda(_manual_divmod())
    assert "tj_floordiv_s<int32_t, uint32_t>" in man and "tj_rem_u<uint8_t>" in man
    assert os.path.exists(os.path.join(HEADER_DIR, "tj_cuda.h"))


# -- every kernel of the op conformance table -----------------------------------------------
_INCLUDE = re.compile(r'^\s*#include\s+"[^"]+"\s*$', re.M)
_ENTRY = re.compile(r"TJ_EMU_ENTRY\((\w+)\)")


@functools.cache
def _table_sources() -> list[str]:
    """The distinct CUDA C modules of every compiled case of tests/op_cases.py."""
    from op_cases import INSTANCES

    from tracejit.codegen.cuda import render_schedule
    from tracejit.passes.pipeline import optimize
    texts = []
    for inst in INSTANCES:
        if inst.case.eager_only:
            continue
        args = [tj.from_numpy(a) if isinstance(a, np.ndarray) else a for a in inst.args()]
        g = tj.make_graph(inst.case.fn)(*args)
        texts.append(render_schedule(schedule(optimize(g))).text)
    return list(dict.fromkeys(texts))


@pytest.mark.parametrize("arch", ARCHS)
def test_conformance_table_compiles_with_nvcc(arch):
    """Every kernel the whole op conformance table produces compiles with nvcc to PTX: the
    modules in batches, each in its own namespace (``TJ_BATCH``: C++ linkage), every kernel's
    entry found in the PTX under its module's namespace."""
    if NVCC is None:
        pytest.skip("nvcc is not on PATH: the CUDA C is only checked where the toolkit exists")
    srcs = _table_sources()
    assert len(srcs) > 1000
    step = 500
    for lo in range(0, len(srcs), step):
        chunk = srcs[lo:lo + step]
        includes = sorted({m.group(0).strip() for t in chunk for m in _INCLUDE.finditer(t)})
        parts = ["#define TJ_BATCH", '#include "tj_cuda.h"', *includes]
        for i, t in enumerate(chunk):
            parts += [f"namespace tj_m{lo + i} {{", _INCLUDE.sub("", t), "}"]
        rc, err, ptx = _nvcc("\n".join(parts), arch)
        assert rc == 0, f"nvcc -arch={arch} failed on modules {lo}..:\n{err[-3000:]}"
        for i, t in enumerate(chunk):
            ns = f"tj_m{lo + i}"
            for name in _ENTRY.findall(t):
                assert f".entry _ZN{len(ns)}{ns}{len(name)}{name}E" in ptx, \
                    f"{name} of module {lo + i} missing from the PTX:\n{t}"
