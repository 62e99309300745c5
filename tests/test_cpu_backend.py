"""The LLVM CPU backend beyond value conformance (which tests/test_ops_conformance.py checks for
every op): what fuses, that strided inputs are read in place, that kernels vectorize and thread,
and that native code is shared between graphs of the same structure."""

import numpy as np
import pytest

import tracejit as tj
from tracejit.passes.pipeline import optimize
from tracejit.runtime.cpu import CPUProgram
from tracejit.schedule.fusion import schedule

rng = np.random.default_rng(0)


def sched_of(fn, *args):
    return schedule(optimize(tj.make_graph(fn)(*args)))


def test_elementwise_chain_is_one_kernel_and_vectorizes():
    f = lambda x: tj.tanh(x * 0.5 + 1) * tj.sigmoid(x) + tj.exp(-x * x)  # noqa: E731
    x = rng.standard_normal(4096).astype(np.float32)
    s = sched_of(f, x)
    assert len(s.kernels) == 1 and len(s.steps) == 1
    lowered = tj.compile(f).lower(x)
    assert "<16 x float>" in lowered.as_text("llvm") or "<8 x float>" in lowered.as_text("llvm")
    asm = lowered.as_text("asm")
    assert "zmm" in asm or "ymm" in asm
    out = tj.compile(f)(x).numpy()
    ref = np.tanh(x * 0.5 + 1) / (1 + np.exp(-x)) + np.exp(-x * x)
    np.testing.assert_allclose(out, ref, rtol=2e-6, atol=1e-6)


def test_views_are_read_in_place():
    def f(x, y):
        return x.T[::2] + y[None, ::-1] * 2 + x[0:4:2, 1:3].sum()

    x = rng.standard_normal((6, 8)).astype(np.float32)
    y = rng.standard_normal(6).astype(np.float32)
    s = sched_of(f, x, y)
    assert not [st for st in s.steps if not hasattr(st, "domain")]  # no extern copies
    out = tj.compile(f)(x, y).numpy()
    np.testing.assert_allclose(out, x.T[::2] + y[None, ::-1] * 2 + x[0:4:2, 1:3].sum(),
                               rtol=1e-6)


def test_non_contiguous_arguments():
    x = rng.standard_normal((64, 32)).astype(np.float64)
    f = tj.compile(lambda a: tj.exp(a) + 1)
    np.testing.assert_allclose(f(x.T).numpy(), np.exp(x.T) + 1, rtol=1e-14)
    np.testing.assert_allclose(f(x[::2, ::3].T.copy()).numpy(), np.exp(x[::2, ::3].T) + 1)


def test_reductions_fuse_their_producers():
    def softmax(x):
        return tj.softmax(x, dim=-1)

    x = rng.standard_normal((32, 100)).astype(np.float32)
    s = sched_of(softmax, x)
    assert len(s.kernels) <= 3 and not [st for st in s.steps if not hasattr(st, "domain")]
    for axes in [0, 1, (0, 1), None]:
        f = tj.compile(lambda v, a=axes: (tj.exp(v) * 2).sum(dim=a))
        np.testing.assert_allclose(f(x).numpy(), (np.exp(x) * 2).sum(axis=axes), rtol=2e-5)
    xn = x.copy()
    xn[3, 7] = np.nan
    np.testing.assert_array_equal(np.isnan(tj.compile(lambda v: v.amax(1))(xn).numpy()),
                                  np.isnan(xn.max(1)))
    b = x > 0
    assert int(tj.compile(lambda v: v.sum())(b)) == int(b.sum())


def test_threads_split_large_kernels(monkeypatch):
    x = rng.standard_normal(1 << 20).astype(np.float32)
    monkeypatch.setenv("TRACEJIT_NUM_THREADS", "2")
    g = optimize(tj.make_graph(lambda v: tj.sin(v) * 2 + v.sum())(x))
    par = CPUProgram(g)
    monkeypatch.setenv("TRACEJIT_NUM_THREADS", "1")
    seq = CPUProgram(g)
    assert any(p for _, _, _, p in par.steps)
    np.testing.assert_array_equal(par([x])[0], seq([x])[0])


def test_a_busy_worker_never_blocks_a_shared_step(monkeypatch):
    """Steps are shared by chunks: when the worker threads are all busy (here: asleep in
    another task) the calling thread takes every chunk itself instead of waiting."""
    import threading
    import time

    from tracejit.runtime import cpu

    monkeypatch.setattr(cpu, "PARALLEL_MIN", 1)
    monkeypatch.setenv("TRACEJIT_NUM_THREADS", "2")
    x = rng.standard_normal((300, 70)).astype(np.float32)
    w = rng.standard_normal((70, 90)).astype(np.float32)
    g = optimize(tj.make_graph(lambda a, b: tj.softmax(tj.tanh(a @ b) * 2, dim=-1))(x, w))
    par = CPUProgram(g)
    assert sum(1 for _, _, _, p in par.steps if p not in (False, True)) >= 2
    release = threading.Event()
    pool = cpu._executor()
    blockers = [pool.submit(release.wait, 30) for _ in range(8)]
    try:
        t = time.perf_counter()
        out = par([x, w])[0]
        assert time.perf_counter() - t < 10  # did not wait for the blocked pool
    finally:
        release.set()
        for b in blockers:
            b.result()
    monkeypatch.setenv("TRACEJIT_NUM_THREADS", "1")
    np.testing.assert_array_equal(out, CPUProgram(g)([x, w])[0])


def test_native_code_is_shared_by_graphs_of_the_same_structure():
    x = np.ones(7, np.float32)
    g1 = optimize(tj.make_graph(lambda a: tj.exp(a) + 3.0)(x))
    g2 = optimize(tj.make_graph(lambda b: tj.exp(b) + 3.0)(x))
    g3 = optimize(tj.make_graph(lambda b: tj.exp(b) + 4.0)(x))
    assert CPUProgram(g1).native is CPUProgram(g2).native
    assert CPUProgram(g1).native is not CPUProgram(g3).native


def test_runtime_errors_name_the_users_line():
    f = tj.compile(lambda x, i: x[i] * 2)
    with pytest.raises(IndexError, match="test_cpu_backend.py"):
        f(np.ones(3, np.float32), np.array([5]))


def test_schedule_text_lists_kernels_and_their_source():
    x = np.ones((4, 5), np.float32)
    text = tj.compile(lambda v: tj.softmax(v * 2, dim=1)).lower(x).as_text("schedule")
    assert "kernel" in text and "reduce max" in text and "test_cpu_backend.py" in text


# -- row fusion (softmax-like chains) ----------------------------------------------------------

def _softmax_np(x, axis=-1):
    x = x.astype(np.float64)
    e = np.exp(x - x.max(axis, keepdims=True))
    return e / e.sum(axis, keepdims=True)


def test_softmax_is_one_row_kernel_with_registers_for_max_and_sum():
    x = rng.standard_normal((64, 300)).astype(np.float32)
    s = sched_of(lambda v: tj.softmax(v, dim=-1), x)
    assert len(s.steps) == 1 and len(s.row_kernels) == 1
    r = s.row_kernels[0]
    assert [st.reduce_op for st in r.stages] == ["max", "sum", None]
    assert [st.out for st in r.stages][:2] == [None, None]  # max and sum never reach memory
    assert r.stages[1].spill == r.stages[2].out  # exp(x - max) is computed once, kept in the row
    assert "exp" not in str(r.stages[2].body.kind) and "kept in" in str(s)
    assert "row kernel" in str(s) and "stage0" in str(s)
    out = tj.compile(lambda v: tj.softmax(v, dim=-1))(x).numpy()
    np.testing.assert_allclose(out, _softmax_np(x), rtol=3e-6, atol=1e-9)


@pytest.mark.parametrize("dtype,rtol", [(np.float32, 3e-6), (np.float64, 1e-13),
                                        (np.float16, 2e-3)])
@pytest.mark.parametrize("shape,dim", [((3, 4, 37), -1), ((5, 9, 16), (1, 2)), ((2, 1000), 1),
                                       ((7, 8), -1), ((1, 64), -1)])
def test_row_fused_chains_match_numpy(dtype, rtol, shape, dim):
    x = (rng.standard_normal(shape) * 3).astype(dtype)
    axes = dim if isinstance(dim, tuple) else (dim,)

    def f(v):
        m = v.amax(dim=dim, keepdim=True)
        e = tj.exp(v - m)
        return e / e.sum(dim=dim, keepdim=True), tj.logsumexp(v, dim=dim), m

    outs = tj.compile(f)(x)
    x64 = x.astype(np.float64)
    m = x64.max(axes, keepdims=True)
    e = np.exp(x64 - m)
    lse = np.log(e.sum(axes)) + m.squeeze(axes)
    refs = (e / e.sum(axes, keepdims=True), lse, m)
    for o, r in zip(outs, refs):
        assert o.numpy().dtype == dtype
        np.testing.assert_allclose(o.numpy().astype(np.float64), r, rtol=rtol,
                                   atol=rtol * np.abs(r).max())


def test_row_fusion_special_rows():
    x = rng.standard_normal((6, 40)).astype(np.float32)
    x[1, 3] = np.nan          # a NaN row stays NaN
    x[2, :] = -np.inf         # all -inf: 0/0 -> NaN, as in numpy and PyTorch
    x[3, 7] = np.inf          # +inf: exp(inf - inf) -> NaN
    x[4, :] = 0               # ties
    f = tj.compile(lambda v: tj.softmax(v, dim=-1))
    with np.errstate(invalid="ignore"):
        ref = _softmax_np(x)
    np.testing.assert_allclose(f(x).numpy(), ref, rtol=3e-6, atol=1e-9, equal_nan=True)


def test_row_fusion_keeps_reductions_read_elsewhere():
    x = rng.standard_normal((32, 50)).astype(np.float32)

    def f(v):
        m = v.amax(-1, keepdim=True)
        s = tj.exp(v - m).sum(-1, keepdim=True)
        return (tj.exp(v - m) / s), m * 2, s

    s = sched_of(f, x)
    r = s.row_kernels[0]
    assert r.stages[0].out is not None and r.stages[1].out is not None
    a, b, c = tj.compile(f)(x)
    m = x.max(-1, keepdims=True)
    e = np.exp(x - m)
    np.testing.assert_allclose(a.numpy(), e / e.sum(-1, keepdims=True), rtol=3e-6)
    np.testing.assert_allclose(b.numpy(), 2 * m)
    np.testing.assert_allclose(c.numpy(), e.sum(-1, keepdims=True), rtol=3e-6)


def test_row_kernels_split_across_threads(monkeypatch):
    monkeypatch.setattr("tracejit.runtime.cpu.PARALLEL_MIN", 1)
    x = rng.standard_normal((301, 64)).astype(np.float32)
    f = tj.compile(lambda v: tj.log_softmax(v, dim=-1))
    ref = np.log(_softmax_np(x))
    np.testing.assert_allclose(f(x).numpy(), ref, rtol=1e-5, atol=1e-6)


# -- buffer planning ---------------------------------------------------------------------------

def test_temporaries_share_one_arena_and_calls_from_threads_do_not_collide():
    from concurrent.futures import ThreadPoolExecutor

    from tracejit.schedule.buffers import plan_buffers

    def f(x):
        a = tj.exp(x).sum(-1, keepdim=True)      # temporaries: each reduction result...
        b = (x * a).amax(0, keepdim=True)
        c = tj.sin(x - b).sum(0, keepdim=True)
        d = (x + c).amin(-1, keepdim=True)
        return x * d + 1

    x0 = rng.standard_normal((257, 300)).astype(np.float32)
    s = sched_of(f, x0)
    plan = plan_buffers(s)
    from tracejit.schedule.kernel import step_outputs
    written = {b for st in s.steps for b in step_outputs(st)}
    temps = [b for b, info in enumerate(s.buffers) if info.kind == "temp" and b in written]
    assert sorted(plan.offsets) == temps and len(temps) >= 3
    assert plan.size < plan.naive  # lifetimes that do not overlap share memory
    for b in plan.offsets:
        assert plan.offsets[b] % 64 == 0

    def ref(x):
        x = x.astype(np.float64)
        a = np.exp(x).sum(-1, keepdims=True)
        b = (x * a).max(0, keepdims=True)
        c = np.sin(x - b).sum(0, keepdims=True)
        d = (x + c).min(-1, keepdims=True)
        return x * d + 1

    g = tj.compile(f)
    xs = [rng.standard_normal((257, 300)).astype(np.float32) for _ in range(16)]
    with ThreadPoolExecutor(8) as ex:
        outs = list(ex.map(lambda x: g(x).numpy(), xs * 3))
    for x, o in zip(xs * 3, outs):
        np.testing.assert_allclose(o, ref(x), rtol=2e-4, atol=1e-3)
