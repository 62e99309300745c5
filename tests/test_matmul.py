"""Native matmul (`Gemm` steps, `codegen/matmul.py`) against numpy: shapes at and around the
register tile and cache blocks, K = 0, batches, operands read in place through transposes,
slices and reversals (as autodiff's backward graphs produce them), float32/float64, threads,
and epilogue fusion (bias + activation) in both the schedule text and the values."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tracejit as tj
from tracejit.codegen.matmul import gemm_config
from tracejit.passes.pipeline import optimize
from tracejit.runtime.cpu import CPUProgram
from tracejit.schedule.fusion import schedule
from tracejit.schedule.kernel import Extern, Gemm, Kernel

rng = np.random.default_rng(0)
DTYPES = [np.float32, np.float64]


def sched_of(fn, *args):
    return schedule(optimize(tj.make_graph(fn)(*args)))


def rand(*shape, dtype=np.float32):
    return rng.standard_normal(shape).astype(dtype)


def check(out, ref, k, dtype):
    """Within the rounding error of length-k dot products of standard normal numbers in
    `dtype` (about eps * sum|a||b| ~ eps * k; the reference may be as rounded)."""
    eps = np.finfo(dtype).eps
    assert out.dtype == dtype and out.shape == ref.shape
    np.testing.assert_allclose(out, ref, rtol=8 * eps * np.sqrt(max(k, 1)),
                               atol=4 * eps * max(k, 1))


SHAPES = [(1, 1, 1), (1, 1, 7), (1, 9, 1), (7, 1, 3), (2, 3, 4), (5, 5, 0), (0, 4, 3),
          (4, 0, 3), (12, 32, 16), (13, 33, 17), (11, 31, 5), (25, 47, 129), (97, 65, 33),
          (300, 70, 520), (64, 1030, 9), (1, 300, 300), (257, 1, 300)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m,n,k", SHAPES)
def test_matmul_shapes(m, n, k, dtype):
    a, b = rand(m, k, dtype=dtype), rand(k, n, dtype=dtype)
    s = sched_of(lambda p, q: p @ q, a, b)
    if (m == 1 or n == 1) and k > 0:  # a matrix-vector product: one reduction loop, no packing
        assert [type(x) for x in s.steps] == [Kernel] and s.steps[0].reduce_op == "sum"
    else:
        assert [type(x) for x in s.steps] == [Gemm]
    out = tj.compile(lambda p, q: p @ q)(a, b).numpy()
    check(out, a.astype(np.float64) @ b, k, dtype)
    if k == 0:
        assert not out.any()


@settings(max_examples=30, deadline=None)
@given(m=st.integers(1, 40), n=st.integers(1, 70), k=st.integers(0, 50),
       batch=st.integers(1, 3), ta=st.booleans(), tb=st.booleans(),
       f64=st.booleans())
def test_matmul_random_shapes(m, n, k, batch, ta, tb, f64):
    dtype = np.float64 if f64 else np.float32
    a = rand(batch, k, m, dtype=dtype) if ta else rand(batch, m, k, dtype=dtype)
    b = rand(batch, n, k, dtype=dtype) if tb else rand(batch, k, n, dtype=dtype)

    def f(p, q):
        return (p.transpose(1, 2) if ta else p) @ (q.transpose(1, 2) if tb else q)

    ref = (np.swapaxes(a, 1, 2) if ta else a).astype(np.float64) @ (
        np.swapaxes(b, 1, 2) if tb else b)
    check(tj.compile(f)(a, b).numpy(), ref, k, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_bmm_and_broadcast_batch(dtype):
    a, b = rand(4, 13, 20, dtype=dtype), rand(4, 20, 9, dtype=dtype)
    check(tj.compile(tj.bmm)(a, b).numpy(), a.astype(np.float64) @ b, 20, dtype)
    x, w = rand(3, 7, 20, dtype=dtype), rand(20, 11, dtype=dtype)
    s = sched_of(lambda p, q: p @ q, x, w)
    (g,) = s.steps
    assert (g.batch, g.m) == (1, 21)  # w is packed once: the batch folds into the rows
    check(tj.compile(lambda p, q: p @ q)(x, w).numpy(), x.astype(np.float64) @ w, 20, dtype)
    y = rand(2, 1, 7, 20, dtype=dtype)
    z = rand(5, 20, 3, dtype=dtype)
    check(tj.compile(lambda p, q: p @ q)(y, z).numpy(), y.astype(np.float64) @ z, 20, dtype)


def test_vectors_einsum_tensordot():
    a, b, v = rand(6, 5), rand(5, 4), rand(5)
    np.testing.assert_allclose(tj.compile(lambda p, q: p @ q)(a, v).numpy(), a @ v, rtol=1e-5)
    np.testing.assert_allclose(tj.compile(tj.dot)(v, v).numpy(), v @ v, rtol=1e-5)
    x, y = rand(3, 4, 5), rand(5, 3, 2)
    ein = tj.compile(lambda p, q: tj.einsum("bij,jbk->bik", p, q))
    np.testing.assert_allclose(ein(x, y).numpy(), np.einsum("bij,jbk->bik", x, y), rtol=1e-5,
                               atol=1e-6)
    # free axes of `t` around its contracted axis: not one stride, so copied by a loop kernel
    t = rand(3, 5, 4)
    s = sched_of(lambda p, q: tj.tensordot(p, q, dims=([1], [0])), t, b)
    assert [type(x) for x in s.steps] == [Kernel, Gemm]
    td = tj.compile(lambda p, q: tj.tensordot(p, q, dims=([1], [0])))
    np.testing.assert_allclose(td(t, b).numpy(), np.tensordot(t, b, axes=([1], [0])),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", DTYPES)
def test_views_are_read_in_place(dtype):
    a, b = rand(40, 30, dtype=dtype), rand(50, 40, dtype=dtype)

    def f(p, q):
        return (p.T @ q.T, p[::2, 1:] @ q[::-1, :29][:29], p[::-1].T[:, ::3] @ q[:14],
                tj.broadcast_to(p[3], (7, 30)) @ q[:30, ::-2], q[:30, 5:6] @ p[:1])

    s = sched_of(f, a, b)
    assert all(isinstance(x, Gemm) for x in s.steps), str(s)
    outs = tj.compile(f)(a, b)
    a64 = a.astype(np.float64)
    refs = (a64.T @ b.T, a64[::2, 1:] @ b[::-1, :29][:29], a64[::-1].T[:, ::3] @ b[:14],
            np.broadcast_to(a64[3], (7, 30)) @ b[:30, ::-2], b[:30, 5:6] @ a64[:1])
    assert len(outs) == len(refs)
    for o, r in zip(outs, refs):
        check(o.numpy(), r, 40, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_backward_graph_transposed_operands(dtype):
    def loss(x, w, c):
        return tj.tanh(x @ w.T + c).sum()

    x, w, c = rand(33, 20, dtype=dtype), rand(17, 20, dtype=dtype), rand(17, dtype=dtype)
    g = tj.grad(loss, argnums=(0, 1, 2))
    s = sched_of(g, x, w, c)
    assert not [x for x in s.steps if isinstance(x, Extern)]
    gemms = s.gemms
    assert len(gemms) == 3
    # every operand is read where it lies and dW = (x.T @ t).T is computed as t.T @ x: the only
    # loop kernel left is dc's reduction
    assert [k.reduce_op for k in s.kernels] == ["sum"], str(s)
    assert any(gm.b.row_stride == 1 and gm.b.col_stride != 1 for gm in gemms)  # w.T in place
    assert any(gm.a.row_stride == 1 and gm.a.col_stride != 1 for gm in gemms)  # t.T in place
    assert gemms[0].epilogue is not None  # the forward's tanh and its derivative
    gx, gw, gc = tj.compile(g)(x, w, c)
    x64 = x.astype(np.float64)
    t = 1 - np.tanh(x64 @ w.T + c) ** 2
    check(gx.numpy(), t @ w, 17, dtype)
    check(gw.numpy(), t.T @ x64, 33, dtype)
    check(gc.numpy(), t.sum(0), 33, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m,k,n", [(70, 45, 37), (33, 900, 50)])  # 1 and several K blocks
def test_epilogue_bias_relu(dtype, m, k, n):
    x, w, c = rand(m, k, dtype=dtype), rand(k, n, dtype=dtype), rand(n, dtype=dtype)

    def f(p, q, r):
        return tj.relu(p @ q + r)

    text = tj.compile(f).lower(x, w, c).as_text("schedule")
    gemm_lines = [ln for ln in text.splitlines() if "gemm " in ln]
    assert text.startswith("schedule: 0 kernels, 1 gemms, 0 externs"), text
    assert len(gemm_lines) == 1 and "\n  kernel " not in text, text
    assert "fuses: dot_general, add" in text and "epilogue = " in text, text
    epi = text[text.index("fuses: dot_general"):]
    assert "acc" in epi and "add(" in epi and "select(" in epi
    out = tj.compile(f)(x, w, c).numpy()
    check(out, np.maximum(x.astype(np.float64) @ w + c, 0), k, dtype)
    assert (out == 0).any() and (out > 0).any()


@pytest.mark.parametrize("act,ref", [
    (tj.tanh, np.tanh), (tj.sigmoid, lambda v: 1 / (1 + np.exp(-v))),
    (lambda v: tj.exp(v * 0.25) - 1.5, lambda v: np.exp(v * 0.25) - 1.5)])
def test_epilogue_activations(act, ref):
    x, w, c = rand(2, 19, 30), rand(30, 21), rand(1, 21)
    f = tj.compile(lambda p, q, r: act(p @ q + r))
    s = sched_of(lambda p, q, r: act(p @ q + r), x, w, c)
    assert [type(x) for x in s.steps] == [Gemm] and s.steps[0].epilogue is not None
    np.testing.assert_allclose(f(x, w, c).numpy(), ref(x.astype(np.float64) @ w + c),
                               rtol=2e-5, atol=2e-6)


def test_epilogue_only_for_a_single_consumer_chain():
    x, w = rand(8, 6), rand(6, 5)
    y = x.astype(np.float64) @ w
    # the product is also returned: the Gemm stores it (raw) and its epilogue's result
    f = lambda p, q: (p @ q, tj.relu(p @ q))  # noqa: E731
    (g,) = sched_of(f, x, w).gemms
    assert g.epilogue is not None and g.raw is not None
    for o, r in zip(tj.compile(f)(x, w), (y, np.maximum(y, 0))):
        np.testing.assert_allclose(o.numpy(), r, rtol=1e-5, atol=1e-5)
    # the product is also reduced: it is stored, its consumers are separate kernels
    cases = [(lambda p, q: (tj.relu(p @ q) + (p @ q).sum(),), (np.maximum(y, 0) + y.sum(),)),
             (lambda p, q: ((p @ q) * 2 + (p @ q).T.sum(),), (y * 2 + y.sum(),))]
    for f, refs in cases:
        s = sched_of(f, x, w)
        assert [g.epilogue for g in s.gemms] == [None], str(s)
        for o, r in zip(tj.compile(f)(x, w), refs):
            np.testing.assert_allclose(o.numpy(), r, rtol=1e-5, atol=1e-5)
    # a bias whose strides do not collapse over the product's row axes: stored, then a kernel
    t, b = rand(3, 4, 6), rand(3, 1, 5)
    g = lambda p, q, r: tj.relu(tj.tensordot(p, q, dims=([2], [0])) + r)  # noqa: E731
    s = sched_of(g, t, w, b)
    assert [type(x) for x in s.steps] == [Gemm, Kernel]
    np.testing.assert_allclose(tj.compile(g)(t, w, b).numpy(),
                               np.maximum(np.tensordot(t, w, axes=([2], [0])) + b, 0),
                               rtol=1e-5, atol=1e-6)
    # two products meeting in one chain: one of them is the epilogue's, the other is loaded
    v = rand(6, 5)
    s = sched_of(lambda p, q, r: tj.tanh(p @ q + p @ r), x, w, v)
    assert [g.epilogue is not None for g in s.gemms] == [False, True], str(s)
    np.testing.assert_allclose(tj.compile(lambda p, q, r: tj.tanh(p @ q + p @ r))(x, w, v).numpy(),
                               np.tanh(y + x.astype(np.float64) @ v), rtol=1e-5, atol=1e-6)
    # a dtype-changing end of chain (a comparison) is not an epilogue
    h = lambda p, q: (p @ q) > 0  # noqa: E731
    assert [g.epilogue for g in sched_of(h, x, w).gemms] == [None]
    np.testing.assert_array_equal(tj.compile(h)(x, w).numpy(), (x @ w) > 0)


@pytest.mark.parametrize("m,n,k,split", [(150, 170, 300, 0), (5, 1000, 300, 64),
                                         (3, 200, 0, 64)])
def test_threads_split_bitwise(monkeypatch, m, n, k, split):
    """Rows (or, for few rows, column blocks) split across threads: the same bits as one."""
    a, b, c = rand(2, m, k), rand(k, n), rand(n)
    g = optimize(tj.make_graph(lambda p, q, r: tj.relu(p @ q + r))(a, b, c))
    monkeypatch.setattr("tracejit.runtime.cpu.PARALLEL_MIN", 1)
    monkeypatch.setenv("TRACEJIT_NUM_THREADS", "2")
    par = CPUProgram(g)
    (gm,) = par.schedule.gemms
    assert gm.col_split == split
    monkeypatch.setenv("TRACEJIT_NUM_THREADS", "1")
    seq = CPUProgram(g)
    if k:
        assert any(p for _, _, _, p in par.steps)
    np.testing.assert_array_equal(par([a, b, c])[0], seq([a, b, c])[0])
    check(par([a, b, c])[0], np.maximum(a.astype(np.float64) @ b + c, 0), k, np.float32)


def test_other_dtypes_stay_extern():
    a = rng.integers(-5, 5, (4, 3)).astype(np.int32)
    s = sched_of(lambda p: p @ p.T, a)
    assert [type(x) for x in s.steps if not isinstance(x, Kernel)] == [Extern]
    np.testing.assert_array_equal(tj.compile(lambda p: p @ p.T)(a).numpy(), a @ a.T)


def test_vector_width_from_features():
    assert gemm_config(4, "+avx2,+avx512f,+fma").lanes == 16
    assert gemm_config(8, "+avx2,+avx512f,+fma").lanes == 8
    assert gemm_config(4, "+avx,+avx2,-avx512f,+fma").lanes == 8
    assert gemm_config(4, "+sse2,-avx2").lanes == 4
    assert not gemm_config(4, "+sse2").fma
    x = rand(20, 20)
    ir_text = tj.compile(lambda p: p @ p).lower(x).as_text("llvm")
    import llvmlite.binding as llvm
    lanes = 16 if "+avx512f" in llvm.get_host_cpu_features().flatten() else 8
    assert f"<{lanes} x float>" in ir_text and "fma" in ir_text


@pytest.mark.parametrize("level", ["avx2", "sse"])
def test_narrower_vector_paths(monkeypatch, level):
    """The 256- and 128-bit configurations (6 x 2-vector tiles), generated and run on this CPU
    by compiling for a feature string without AVX-512 (and, for sse, without AVX)."""
    from collections import OrderedDict

    import llvmlite.binding as llvm

    from tracejit.runtime import cpu
    cpu.target_machine()
    off = ("avx512", "avx10", "amx") + (("avx", "fma", "f16c", "vaes", "vpclmul")
                                        if level == "sse" else ())
    feats = ",".join("-" + f[1:] if f[1:].startswith(off) else f
                     for f in llvm.get_host_cpu_features().flatten().split(","))
    monkeypatch.setattr(cpu, "_FEATURES", feats)
    monkeypatch.setattr(cpu, "_NATIVE", OrderedDict())
    monkeypatch.setenv("TRACEJIT_DISK_CACHE", "0")
    lanes = 8 if level == "avx2" else 4
    for dtype in DTYPES:
        for m, n, k in [(37, 45, 29), (130, 70, 300), (6, 8, 1)]:
            a, b, c = rand(m, k, dtype=dtype), rand(k, n, dtype=dtype), rand(n, dtype=dtype)
            g = optimize(tj.make_graph(lambda p, q, r: tj.relu(p @ q + r))(a, b, c))
            prog = CPUProgram(g)
            want = lanes if dtype == np.float32 else lanes // 2
            fma = "fma" if level == "avx2" else "fmuladd"
            suffix = "f32" if dtype == np.float32 else "f64"
            assert f"llvm.{fma}.v{want}{suffix}" in prog.llvm_ir_unoptimized
            assert "zmm" not in prog.asm and ("ymm" in prog.asm) == (level == "avx2")
            check(prog([a, b, c])[0], np.maximum(a.astype(np.float64) @ b + c, 0), k, dtype)
