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
