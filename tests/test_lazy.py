"""Lazy eager execution (tracejit/lazy.py): pending graphs realized on demand, cached by
structure, compiled once a structure repeats; semantics identical to op-by-op evaluation."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import tracejit as tj
from tracejit import lazy


@pytest.fixture
def fresh():
    lazy.realize_pending()
    lazy.clear_cache()
    before = dict(lazy.stats())
    yield lambda: {k: v - before.get(k, 0) for k, v in lazy.stats().items()}
    tj.config.reset()


def _step(x, w):
    return tj.tanh(x @ w + 1.0).sum(dim=1) * 0.5


def test_results_are_pending_until_needed(fresh):
    x = tj.ones(64, 64)
    y = tj.exp(x) * 2
    assert y._lazy is not None and y.shape == (64, 64) and y.dtype == tj.float32
    assert fresh()["realizations"] == 0
    np.testing.assert_allclose(y.numpy(), 2 * np.exp(np.ones((64, 64))), rtol=1e-6)
    assert fresh()["realizations"] == 1 and y._lazy is None


def test_a_loop_compiles_its_structure_once_and_hits_after(fresh):
    rng = np.random.default_rng(0)
    w = tj.tensor(rng.standard_normal((128, 128)), dtype=tj.float32)
    for _ in range(5):
        x = tj.tensor(rng.standard_normal((128, 128)), dtype=tj.float32)
        got = _step(x, w).numpy()
        want = (np.tanh(x.numpy() @ w.numpy() + 1.0).sum(axis=1) * 0.5)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    s = fresh()
    assert s["realizations"] == 5
    assert s["interpreted"] == 1 and s["compiles"] == 1 and s["compiled_runs"] == 4


def test_type_errors_and_index_errors_raise_at_the_op():
    x = tj.ones(3, 4)
    with pytest.raises(ValueError, match="test_lazy.py"):
        x @ tj.ones(3, 4)
    with pytest.raises(IndexError, match="out of bounds"):
        tj.gather(x, 1, tj.tensor([[7], [0], [1]]))
    with pytest.raises(ZeroDivisionError, match="floor_divide"):
        tj.tensor([1, 2]) // tj.tensor([1, 0])


def test_detach_aliases_share_the_buffer():
    x = tj.ones(3, requires_grad=True)
    y = x * 2
    u = y.detach()
    u.add_(1)  # PyTorch: y sees the write (and autograd knows: same version counter)
    np.testing.assert_array_equal(y.detach().numpy(), [3.0, 3.0, 3.0])
    assert y._version == 1


def test_writes_through_numpy_do_not_reach_pending_results():
    a = np.ones(3)
    t = tj.from_numpy(a)
    u = t * 2
    a[0] = 5.0
    np.testing.assert_array_equal(u.numpy(), [2.0, 2.0, 2.0])
    b = tj.zeros(3)
    v = b + 1
    b.add_(10)  # an in-place op first realizes the pending work that reads b
    np.testing.assert_array_equal(v.numpy(), [1.0, 1.0, 1.0])
    np.testing.assert_array_equal(b.numpy(), [10.0, 10.0, 10.0])


def test_long_chains_are_flushed(fresh):
    x = tj.zeros(4)
    for _ in range(lazy.MAX_PENDING + 10):
        x = x + 1
    assert fresh()["realizations"] >= 1
    np.testing.assert_array_equal(x.numpy(), np.full(4, lazy.MAX_PENDING + 10.0))


def test_pending_values_cross_threads():
    y = tj.arange(10.0) * 3
    out = {}
    th = threading.Thread(target=lambda: out.setdefault("v", y.numpy().copy()))
    th.start()
    th.join()
    np.testing.assert_array_equal(out["v"], np.arange(10.0) * 3)


def test_switch_off_matches(fresh):
    rng = np.random.default_rng(1)
    a = rng.standard_normal((32, 32)).astype(np.float32)
    lazy_val = (tj.softmax(tj.tensor(a) * 3, dim=1) ** 2).numpy()
    tj.config.lazy = False
    try:
        t = tj.softmax(tj.tensor(a) * 3, dim=1) ** 2
        assert t._lazy is None
        np.testing.assert_allclose(t.numpy(), lazy_val, rtol=1e-6)
    finally:
        tj.config.reset()


def test_autograd_through_lazy_values_is_compiled_in_a_training_loop(fresh):
    rng = np.random.default_rng(2)
    w = tj.tensor(rng.standard_normal((16, 4)) * 0.1, dtype=tj.float32, requires_grad=True)
    x = tj.tensor(rng.standard_normal((32, 16)), dtype=tj.float32)
    y = tj.tensor(rng.integers(0, 4, 32))
    wn = w.detach().numpy().copy()
    losses = []
    for _ in range(10):  # small steps: compiled once a structure is hot (lazy.HOT)
        w.grad = None
        loss = tj.nn.functional.cross_entropy(x @ w, y)
        loss.backward()
        with tj.no_grad():
            w.sub_(0.5 * w.grad)
        losses.append(float(loss))
    # the same loop in numpy
    xn, yn = x.numpy().astype(np.float64), y.numpy()
    for k in range(10):
        z = xn @ wn
        p = np.exp(z - z.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        assert abs(-np.log(p[np.arange(32), yn]).mean() - losses[k]) < 1e-4
        p[np.arange(32), yn] -= 1
        wn = wn - 0.5 * xn.T @ p / 32
    np.testing.assert_allclose(w.detach().numpy(), wn, rtol=1e-4, atol=1e-5)
    assert fresh()["compiled_runs"] > 0
