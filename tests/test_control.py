"""Structured control flow: cond, while_loop, fori_loop, scan — eager and compiled, checked
against plain numpy loops, and compiled as one node (never unrolled)."""

import numpy as np
import pytest

import tracejit as tj

rng = np.random.default_rng(0)


def _ops(g):
    return [n.op for n in g.nodes]


# -- cond ---------------------------------------------------------------------------------------

def branchy(x, w):
    return tj.cond(x.sum() > 0, lambda a, b: a * b + 1.0, lambda a, b: a - b, x, w)


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_cond_compiled_matches_numpy(sign):
    x = (np.abs(rng.standard_normal(5)) * sign).astype(np.float32)
    w = rng.standard_normal(5).astype(np.float32)
    ref = x * w + 1.0 if x.sum() > 0 else x - w
    f = tj.compile(branchy)
    np.testing.assert_allclose(f(x, w).numpy(), ref, rtol=1e-6)
    np.testing.assert_allclose(branchy(tj.tensor(x), tj.tensor(w)).numpy(), ref, rtol=1e-6)
    assert f.cache_info().misses == 1


def test_cond_is_one_node_with_two_closed_subgraphs():
    g = tj.make_graph(branchy)(tj.ones(3), tj.ones(3))
    g.verify()
    assert _ops(g).count("cond") == 1
    node = next(n for n in g.nodes if n.op == "cond")
    then, orelse = node.params["branches"]
    assert [n.op for n in then.nodes] == ["mul", "constant", "add"]
    assert [n.op for n in orelse.nodes] == ["sub"]
    assert "graph true_fn" in str(g) and "graph false_fn" in str(g)


def test_cond_captures_outer_values_and_tensors():
    scale = tj.tensor([2.0, 3.0])

    @tj.compile
    def f(x, p):
        y = x * 10
        return tj.cond(p > 0, lambda: y * scale, lambda: y + scale)

    x = tj.tensor([1.0, 1.0])
    np.testing.assert_allclose(f(x, 1).numpy(), [20.0, 30.0])
    np.testing.assert_allclose(f(x, -1).numpy(), [12.0, 13.0])
    scale.copy_(tj.tensor([1.0, 0.0]))  # captured tensors are read at every call
    np.testing.assert_allclose(f(x, 1).numpy(), [10.0, 0.0])
    assert f.cache_info().misses == 1


def test_cond_promotes_branch_dtypes_and_pytrees():
    @tj.compile
    def f(x):
        return tj.cond(x[0] > 0, lambda v: {"a": v, "b": v.sum()},
                       lambda v: {"a": v.double(), "b": 0.0}, x)

    out = f(tj.tensor([1.0, 2.0]))
    assert out["a"].dtype == tj.float64 and out["b"].dtype == tj.float32
    np.testing.assert_allclose(out["b"].numpy(), 3.0)
    out = f(tj.tensor([-1.0, 2.0]))
    assert float(out["b"]) == 0.0


def test_cond_errors():
    with pytest.raises(TypeError, match="shape"):
        tj.compile(lambda x: tj.cond(x[0] > 0, lambda v: v, lambda v: v.sum(), x))(tj.ones(2))
    with pytest.raises(TypeError, match="scalar"):
        tj.compile(lambda x: tj.cond(x > 0, lambda v: v, lambda v: v, x))(tj.ones(2))
    with pytest.raises(TypeError, match="structures"):
        tj.compile(lambda x: tj.cond(x[0] > 0, lambda v: (v, v), lambda v: v, x))(tj.ones(2))


def test_cond_python_bool_is_static():
    g = tj.make_graph(lambda x: tj.cond(True, lambda v: v * 2, lambda v: v, x))(tj.ones(2))
    assert "cond" not in _ops(g)


# -- while_loop ---------------------------------------------------------------------------------

def doubling(x):
    return tj.while_loop(lambda v: v.norm() < 1000, lambda v: v * 2, x)


def _np_doubling(x):
    while np.linalg.norm(x) < 1000:
        x = x * 2
    return x


@pytest.mark.parametrize("start", [[1.0, 2.0], [0.001, 0.0], [2000.0, 0.0]])
def test_while_loop_matches_numpy(start):
    x = np.array(start, np.float32)
    np.testing.assert_allclose(tj.compile(doubling)(x).numpy(), _np_doubling(x))
    np.testing.assert_allclose(doubling(tj.tensor(x)).numpy(), _np_doubling(x))


def test_while_loop_is_not_unrolled():
    g = tj.make_graph(doubling)(tj.ones(2))
    assert _ops(g) == ["while", "get"]
    g.verify()


def test_while_loop_pytree_carry_and_weak_counter():
    @tj.compile
    def f(x):
        def body(c):
            i, acc = c
            return i + 1, acc + x * i
        return tj.while_loop(lambda c: c[0] < 5, body, (0, tj.zeros_like(x)))

    i, acc = f(tj.tensor([1.0, 2.0]))
    assert int(i) == 5 and i.dtype == tj.int64
    np.testing.assert_allclose(acc.numpy(), np.array([1.0, 2.0]) * sum(range(5)))


def test_while_loop_dtype_change_is_an_error():
    with pytest.raises(TypeError, match="carry element 0"):
        tj.compile(lambda x: tj.while_loop(lambda v: v.sum() < 10, lambda v: v.double() * 2,
                                           x))(tj.ones(2))


# -- fori_loop ------------------------------------------------------------------------------------

def test_fori_loop_static_and_traced_bounds():
    f = tj.compile(lambda x, n: tj.fori_loop(0, n, lambda i, v: v + i * x, tj.zeros_like(x)))
    x = np.array([1.0, -2.0], np.float32)
    for n in (0, 1, 7):
        np.testing.assert_allclose(f(x, n).numpy(), x * sum(range(n)))
    assert f.cache_info().misses == 1  # the trip count is data, not part of the signature
    eager = tj.fori_loop(2, 5, lambda i, v: v * i, tj.ones(2))
    np.testing.assert_allclose(eager.numpy(), [24.0, 24.0])


# -- scan -----------------------------------------------------------------------------------------

def test_scan_cumulative_sum_matches_numpy():
    xs = rng.standard_normal((6, 3)).astype(np.float32)

    def f(xs):
        return tj.scan(lambda c, x: (c + x, c * 2), tj.zeros(3), xs)

    for impl in (f, tj.compile(f)):
        c, ys = impl(xs if impl is not f else tj.tensor(xs))
        csum = np.cumsum(xs, axis=0)
        np.testing.assert_allclose(c.numpy(), csum[-1], rtol=1e-5)
        prev = np.concatenate([np.zeros((1, 3), np.float32), csum[:-1]])
        np.testing.assert_allclose(ys.numpy(), prev * 2, rtol=1e-5)
    assert _ops(tj.make_graph(f)(tj.tensor(xs))).count("while") == 1


def test_scan_reverse_pytrees_and_empty():
    xs = {"a": tj.arange(4.0), "b": tj.ones(4, 2)}

    def f(c, x):
        return c + x["a"], (x["b"] * c, c)

    c, (ys1, ys2) = tj.scan(f, 0.0, xs, reverse=True)
    carry, seen = 0.0, np.zeros(4)
    for i in reversed(range(4)):  # the numpy loop scan(reverse=True) stands for
        seen[i] = carry
        carry += i
    assert float(c) == carry == 6.0
    np.testing.assert_allclose(ys2.numpy(), seen)
    np.testing.assert_allclose(ys1.numpy(), seen[:, None] * np.ones((4, 2)))
    c, ys = tj.scan(lambda c, x: (c, x * 2), tj.zeros(()), tj.zeros(0, 3))
    assert ys.shape == (0, 3)
