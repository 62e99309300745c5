"""Derivative rules at the points the conformance table avoids: kinks, ties, zeros, duplicate
indices, strides, every dot_general layout, casts, and derivatives of order three.

Expected values are written from the math (and PyTorch's documented conventions), or computed
with numpy from explicit Jacobians; never copied from tracejit. Each vjp is evaluated twice,
eagerly (the transform replays the graph on realized Tensors) and as a traced, verified graph run
on the interpreter, and the two must agree.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

import tracejit as tj
from tracejit.autodiff.jvp import jvp_graph
from tracejit.autodiff.vjp import vjp_graph
from tracejit.trace import bind, trace_graph


def _types(arrays):
    return [tj.from_numpy(np.asarray(a))._type() for a in arrays]


def graph(fn, *arrays):
    """The verified graph of `fn` (which must not capture outside arrays)."""
    g, _, b = trace_graph(fn, _types(arrays), [f"a{i}" for i in range(len(arrays))], "f")
    assert not b.captured, "test functions build constants with ops, not tj.tensor"
    g.verify()
    return g


def _or_zeros(ts, like):
    return [tj.zeros(r.shape, dtype=r.dtype) if t is None else t for t, r in zip(ts, like)]


def _np(ts):
    return [t.numpy() for t in (ts if isinstance(ts, (tuple, list)) else (ts,))]


def vjp(fn, xs, ct):
    """``J^T ct`` for every input of `fn` (float64 arrays), eagerly and traced: they agree."""
    xs = [np.asarray(x, dtype=np.float64) for x in xs]
    ct = np.asarray(ct, dtype=np.float64)
    G = graph(fn, *xs)
    _, eager = vjp_graph(G, [tj.from_numpy(x) for x in xs], [tj.from_numpy(ct)])
    eager = _np(_or_zeros(eager, [tj.from_numpy(x) for x in xs]))
    n = len(xs)
    B = graph(lambda *a: tuple(_or_zeros(vjp_graph(G, list(a[:n]), [a[n]])[1], a[:n])), *xs, ct)
    traced = _np(B(*xs, ct))
    for e, t in zip(eager, traced):
        np.testing.assert_allclose(e, t, rtol=1e-14, atol=0)
    return traced


def jvp(fn, xs, ts):
    """``J t`` with tangents `ts` (None for none), eagerly and traced: they agree."""
    xs = [np.asarray(x, dtype=np.float64) for x in xs]
    G = graph(fn, *xs)
    n = len(xs)
    given = [i for i, t in enumerate(ts) if t is not None]
    tv = [np.asarray(ts[i], dtype=np.float64) for i in given]

    def tangents(vals):
        out = [None] * n
        for i, v in zip(given, vals):
            out[i] = v
        return out

    _, (e,) = jvp_graph(G, [tj.from_numpy(x) for x in xs],
                        tangents([tj.from_numpy(v) for v in tv]))
    e = np.zeros(G.outputs[0].shape) if e is None else e.numpy()
    B = graph(lambda *a: tuple(_or_zeros(jvp_graph(G, list(a[:n]), tangents(a[n:]))[1],
                                         G.outputs)), *xs, *tv)
    (t,) = _np(B(*xs, *tv))
    np.testing.assert_allclose(e, t, rtol=1e-14, atol=0)
    return t


def d(fn):
    """x -> J(x)^T 1 (the derivative of an elementwise or scalar-valued function), as a
    function that can be traced and differentiated again."""
    def deriv(x):
        G = graph(fn, np.zeros(x.shape))
        ones = tj.broadcast_to(x.sum() * 0.0 + 1.0, G.outputs[0].shape)
        return vjp_graph(G, [x], [ones])[1][0]
    return deriv


def f64(*v):
    return np.array(v, dtype=np.float64)


# -- kinks and ties (PyTorch's conventions) ---------------------------------------------------

def test_abs_at_zero_is_zero():
    (g,) = vjp(tj.abs, [f64(-2.0, 0.0, 3.0, -0.0)], f64(1, 1, 1, 1))
    np.testing.assert_array_equal(g, f64(-1, 0, 1, 0))


@pytest.mark.parametrize("op,a_wins", [(tj.maximum, [0.0, 1.0]), (tj.minimum, [1.0, 0.0])])
def test_maximum_minimum_split_ties_like_torch(op, a_wins):
    """torch.maximum: a tie gives each operand half the gradient; NaN gives both all of it."""
    a, b = f64(1.0, 2.0, 3.0, 4.0, np.nan), f64(1.0, 5.0, 0.0, 4.0, 1.0)
    ga, gb = vjp(op, [a, b], f64(1, 1, 1, 1, 1))
    want_a = f64(0.5, *a_wins, 0.5, 1.0)
    want_b = f64(0.5, *(1.0 - f64(*a_wins)), 0.5, 1.0)
    np.testing.assert_array_equal(ga, want_a)
    np.testing.assert_array_equal(gb, want_b)
    t = jvp(op, [a, b], [f64(1, 1, 1, 1, 1), None])  # the jvp uses the same weights
    np.testing.assert_array_equal(t, want_a)


def test_relu_away_from_zero():
    (g,) = vjp(tj.relu, [f64(-1.5, 2.0)], f64(3, 3))
    np.testing.assert_array_equal(g, f64(0, 3))


def test_relu_at_zero_is_zero():
    (g,) = vjp(tj.relu, [f64(0.0)], f64(1.0))
    assert g == 0.0


def test_clamp_passes_gradient_at_bounds():
    (g,) = vjp(lambda x: tj.clamp(x, -1.0, 2.0), [f64(-1.0, 2.0)], f64(1, 1))
    np.testing.assert_array_equal(g, f64(1, 1))


def test_softplus_at_zero_is_sigmoid():
    """softplus = log1p(exp(-|x|)) + relu(x): at 0 the exact derivative 1/2 relies on
    abs'(0) = 0 and relu'(0) = 1/2 together."""
    (g,) = vjp(tj.softplus, [f64(0.0, 1.0)], f64(1, 1))
    np.testing.assert_allclose(g, 1 / (1 + np.exp(-f64(0.0, 1.0))), rtol=1e-15)


def test_pow_special_points():
    a = f64(0.0, 0.0, 0.0, 2.0, -2.0)
    b = f64(0.0, 2.0, 2.5, 3.0, 2.0)
    ga, gb = vjp(tj.pow, [a, b], np.ones(5))
    # d/da = b a^(b-1) (0 where a == b == 0); d/db = a^b log a (0 where a == 0 and b >= 0)
    np.testing.assert_allclose(ga, f64(0.0, 0.0, 0.0, 12.0, -4.0), rtol=1e-15)
    np.testing.assert_allclose(gb[:4], f64(0.0, 0.0, 0.0, 8 * math.log(2)), rtol=1e-15)
    assert np.isnan(gb[4])  # log of a negative base: NaN, as in PyTorch


def test_pow_second_derivatives_are_finite_at_zero():
    """The masked branches use safe operands, so differentiating again gives no NaN:
    d2/da2 a^2 = 2 at a = 0, and the mixed and exponent derivatives stay finite."""
    x = f64(0.0, 0.0)

    def f(x):
        return tj.pow(x[0], x[1] + 2.0)  # a^b at a = 0, b = 2

    G = graph(f, x)
    H = graph(lambda x: vjp_graph(G, [x], [x[0] * 0.0 + 1.0])[1][0], x)
    hess = np.stack([vjp(lambda y: _apply(H, y), [x], e)[0] for e in np.eye(2)])
    assert np.all(np.isfinite(hess)), hess
    assert hess[0, 0] == 2.0


def _apply(g, *xs):
    """Replays graph `g` on tracers (so it can be differentiated as part of another trace)."""
    from tracejit.autodiff.replay import replay
    out = replay(g, list(xs))
    return out[0] if len(out) == 1 else tuple(out)


def test_remainder():
    a, b = f64(5.5, -5.5, 7.0), f64(2.0, 2.0, -3.0)
    ga, gb = vjp(tj.remainder, [a, b], np.ones(3))
    np.testing.assert_array_equal(ga, np.ones(3))
    np.testing.assert_array_equal(gb, -np.floor(a / b))


def test_atan2_and_div():
    a, b = f64(1.0, -2.0), f64(3.0, 0.5)
    ga, gb = vjp(tj.atan2, [a, b], np.ones(2))
    np.testing.assert_allclose(ga, b / (a * a + b * b), rtol=1e-15)
    np.testing.assert_allclose(gb, -a / (a * a + b * b), rtol=1e-15)
    ga, gb = vjp(tj.div, [a, b], np.ones(2))
    np.testing.assert_allclose(ga, 1 / b, rtol=1e-15)
    np.testing.assert_allclose(gb, -a / (b * b), rtol=1e-15)


# -- reductions: ties, NaN, zeros ------------------------------------------------------------

@pytest.mark.parametrize("fn,x,want", [
    (tj.amax, f64(1, 3, 3, 2), f64(0, 0.5, 0.5, 0)),
    (tj.amin, f64(1, 3, 1, 2), f64(0.5, 0, 0.5, 0)),
    (tj.amax, f64(1, np.nan, 3, np.nan), f64(0, 0.5, 0, 0.5)),  # NaN is the maximum
    (tj.amax, np.array([[3.0, 1.0], [3.0, 3.0]]), np.array([[1, 0], [1, 1]]) / 3),
])
def test_amax_amin_share_ties_evenly(fn, x, want):
    (g,) = vjp(fn, [x], f64(1.0))
    np.testing.assert_allclose(g, want, rtol=1e-15)
    t = np.arange(1.0, x.size + 1).reshape(x.shape)
    assert jvp(fn, [x], [t]) == pytest.approx(float(np.sum(want * t)), rel=1e-15)


def _others(x):
    """prod of x without entry i, for each i (numpy, by deletion)."""
    f = x.reshape(-1)
    return np.array([np.prod(np.delete(f, i)) for i in range(f.size)]).reshape(x.shape)


def _others2(x):
    """H[i, j] = prod of x without entries i and j (0 on the diagonal)."""
    f = x.reshape(-1)
    n = f.size
    return np.array([[0.0 if i == j else np.prod(np.delete(f, [i, j])) for j in range(n)]
                     for i in range(n)])


@pytest.mark.parametrize("x", [f64(2, 0, 3, 4), f64(2, 0, 3, 0), f64(0, 0, 0, 0),
                               f64(1.5, -2, 0.5, 3), f64(0, 2, 3, 5)])
def test_prod_with_zeros_first_and_second_order(x):
    (g,) = vjp(tj.prod, [x], f64(1.0))
    np.testing.assert_allclose(g, _others(x), rtol=1e-14, atol=0)
    v = np.arange(1.0, 5.0)
    hv = jvp(lambda y: d(tj.prod)(y), [x], [v])
    np.testing.assert_allclose(hv, _others2(x) @ v, rtol=1e-14, atol=1e-14)


def test_prod_over_several_axes_with_zeros():
    x = np.array([[[2.0, 0.0], [3.0, 1.5]], [[0.5, 2.0], [4.0, -1.0]]])
    (g,) = vjp(lambda y: tj.prod(y, dim=(0, 2)), [x], f64(1.0, 2.0))
    want = np.zeros_like(x)
    for j, c in enumerate((1.0, 2.0)):
        want[:, j, :] = c * _others(x[:, j, :])
    np.testing.assert_allclose(g, want, rtol=1e-14)


def _cumprod_jacobian(x):
    """J[i, j] = d y_i / d x_j = prod_{k <= i, k != j} x_k for j <= i."""
    n = x.size
    return np.array([[np.prod(np.delete(x[:i + 1], j)) if j <= i else 0.0 for j in range(n)]
                     for i in range(n)])


def _cumprod_hessian(x):
    """T[i, j, l] = prod_{k <= i, k not in {j, l}} x_k for j != l, both <= i."""
    n = x.size
    T = np.zeros((n, n, n))
    for i, j, l in itertools.product(range(n), repeat=3):
        if j != l and j <= i and l <= i:
            T[i, j, l] = np.prod(np.delete(x[:i + 1], [j, l]))
    return T


CUMPROD_POINTS = [f64(2, 0, 3, 0.5, 4), f64(0, 1.5, 2, 3, 0.5), f64(1.5, 2, 3, 0.5, 0),
                  f64(0, 0, 2, 3, 1), f64(1.5, -2, 0.5, 3, 1.25), f64(3, 0, 0, 2, 0)]


@pytest.mark.parametrize("x", CUMPROD_POINTS)
@pytest.mark.parametrize("reverse", [False, True])
def test_cumprod_with_zeros_first_and_second_order(x, reverse):
    """cumprod never divides by its operand: exact at zeros, and so are its second
    derivatives (the Jacobian is polynomial in x). reverse=True is the mirrored scan."""
    def fn(y):
        return bind("cumprod", y, axis=0, reverse=reverse)

    xr = x[::-1] if reverse else x
    J = _cumprod_jacobian(xr)
    T = _cumprod_hessian(xr)
    if reverse:  # y = flip(cumprod(flip(x)))
        J = J[::-1, ::-1]
        T = T[::-1, ::-1, ::-1]
    u, v = f64(1.0, -2.0, 0.5, 3.0, 1.5), f64(0.25, 1.0, -1.0, 2.0, 0.5)
    (g,) = vjp(fn, [x], u)
    np.testing.assert_allclose(g, J.T @ u, rtol=1e-14, atol=1e-14)
    np.testing.assert_allclose(jvp(fn, [x], [v]), J @ v, rtol=1e-14, atol=1e-14)

    def grad_u(y):
        return vjp_graph(graph(fn, x), [y], [_const(u, y)])[1][0]

    hv = jvp(grad_u, [x], [v])
    np.testing.assert_allclose(hv, np.einsum("i,ijl,l->j", u, T, v), rtol=1e-13, atol=1e-13)


def _const(values, like):
    """`values` as a graph constant of `like`'s dtype, built from ops (no capture)."""
    parts = [like[0] * 0.0 + float(v) for v in values]
    return tj.stack(parts)


def test_cumprod_along_an_inner_axis():
    x = np.array([[2.0, 0.0, 3.0], [1.5, 2.0, 0.0]])
    ct = np.array([[1.0, 2.0, 3.0], [-1.0, 0.5, 2.0]])
    (g,) = vjp(lambda y: tj.cumprod(y, 1), [x], ct)
    want = np.stack([_cumprod_jacobian(r).T @ c for r, c in zip(x, ct)])
    np.testing.assert_allclose(g, want, rtol=1e-14)


# -- indexing: duplicates, strides ---------------------------------------------------------

def test_gather_duplicates_accumulate():
    x = f64(1, 2, 3)

    def fn(y):
        i = bind("iota", shape=(3,), axis=0, dtype=tj.int64) // 2  # [0, 0, 1]
        return bind("gather", y, i)

    (g,) = vjp(fn, [x], f64(1, 2, 4))
    np.testing.assert_array_equal(g, f64(3, 4, 0))


def _dup_index():
    # [0, 2, 0, 0] from ops (iota), so no array is captured
    i = bind("iota", shape=(4,), axis=0, dtype=tj.int64)
    return tj.where(i == 1, i * 2, i * 0)


def test_scatter_set_duplicates_last_write_gets_the_cotangent():
    """x.at[[0, 2, 0, 0]].set(u): position 0 keeps u[3] (the last write), so only u[3] has a
    derivative there; x's entries that were overwritten have none."""
    x, u = np.arange(5.0), f64(10, 20, 30, 40)

    def fn(x, u):
        return bind("scatter", x, u, _dup_index(), mode="set")

    G = graph(fn, x, u)
    np.testing.assert_array_equal(G(x, u).numpy(), f64(40, 1, 20, 3, 4))  # last write wins
    ct = f64(1, 2, 3, 4, 5)
    gx, gu = vjp(fn, [x, u], ct)
    np.testing.assert_array_equal(gx, f64(0, 2, 0, 4, 5))
    np.testing.assert_array_equal(gu, f64(0, 3, 0, 1))
    t = jvp(fn, [x, u], [np.ones(5), f64(1, 2, 3, 4)])  # consistent forward mode
    np.testing.assert_array_equal(t, f64(4, 1, 2, 1, 1))


def test_scatter_set_duplicates_with_trailing_axes():
    x, u = np.zeros((3, 2)), np.arange(1.0, 7.0).reshape(3, 2)

    def fn(x, u):
        i = bind("iota", shape=(3,), axis=0, dtype=tj.int64)
        return bind("scatter", x, u, tj.where(i == 0, i + 2, i * 0 + 1), mode="set")  # [2,1,1]

    ct = np.arange(10.0, 16.0).reshape(3, 2)
    gx, gu = vjp(fn, [x, u], ct)
    np.testing.assert_array_equal(gx, np.array([[10.0, 11.0], [0, 0], [0, 0]]))
    np.testing.assert_array_equal(gu, np.array([[14.0, 15.0], [0, 0], [12.0, 13.0]]))


def test_scatter_add_duplicates():
    x, u = np.arange(5.0), f64(10, 20, 30, 40)
    ct = f64(1, 2, 3, 4, 5)
    gx, gu = vjp(lambda x, u: bind("scatter", x, u, _dup_index(), mode="add"), [x, u], ct)
    np.testing.assert_array_equal(gx, ct)
    np.testing.assert_array_equal(gu, f64(1, 3, 1, 1))


SLICES = [
    ((7,), (1,), (7,), (3,)),          # entries 1, 4: the spread block ends exactly at the end
    ((8,), (1,), (8,), (3,)),          # entries 1, 4, 7: the spread block overhangs
    ((5, 6), (0, 1), (5, 6), (2, 2)),
    ((4,), (2,), (2,), (2,)),          # empty
    ((6,), (5,), (6,), (4,)),          # one entry at the end
    ((3, 9, 2), (1, 0, 0), (3, 9, 1), (1, 4, 1)),
    ((10,), (0,), (10,), (9,)),
]


@pytest.mark.parametrize("shape,start,stop,step", SLICES)
def test_slice_with_steps(shape, start, stop, step):
    x = np.arange(float(math.prod(shape))).reshape(shape)
    sl = tuple(map(slice, start, stop, step))

    def fn(y):
        return bind("slice", y, start=start, stop=stop, step=step)

    ct = np.arange(1.0, 1.0 + x[sl].size).reshape(x[sl].shape)
    (g,) = vjp(fn, [x], ct)
    want = np.zeros(shape)
    want[sl] = ct
    np.testing.assert_array_equal(g, want)
    np.testing.assert_array_equal(jvp(fn, [x], [x * 2]), (x * 2)[sl])


# -- dot_general: every layout ---------------------------------------------------------------

DOTS = [
    ((2, 3), (3, 4), ((1,), (0,)), ((), ())),
    ((3, 2), (4, 3), ((0,), (1,)), ((), ())),
    ((2, 3, 4), (2, 4, 5), ((2,), (1,)), ((0,), (0,))),
    ((3, 2, 4), (4, 5, 2), ((2,), (0,)), ((1,), (2,))),       # batch axes not in front
    ((2, 3, 4), (4, 3, 5), ((1, 2), (1, 0)), ((), ())),       # contracted in another order
    ((2,), (3,), ((), ()), ((), ())),                         # outer product
    ((2, 3), (2, 3), ((0, 1), (0, 1)), ((), ())),             # to a scalar
    ((2, 3, 4), (3, 2, 4), ((2,), (2,)), ((0, 1), (1, 0))),   # two batch axes, swapped
    ((2, 0), (0, 3), ((1,), (0,)), ((), ())),                 # empty contraction
]


@pytest.mark.parametrize("sa,sb,contract,batch", DOTS)
def test_dot_general_vjp_and_jvp(sa, sb, contract, batch):
    rng = np.random.default_rng(7)
    a, b = rng.standard_normal(sa), rng.standard_normal(sb)
    ref = tj.primitives.get("dot_general").ref

    def fn(x, y):
        return bind("dot_general", x, y, contract=contract, batch=batch)

    out = ref(a, b, contract=contract, batch=batch)
    ct = rng.standard_normal(out.shape)
    ga, gb = vjp(fn, [a, b], ct)
    # the map is linear in each operand: the transpose, entry by entry, from unit inputs
    want_a = np.array([np.sum(ct * ref(e.reshape(sa), b, contract=contract, batch=batch))
                       for e in np.eye(a.size)]).reshape(sa)
    want_b = np.array([np.sum(ct * ref(a, e.reshape(sb), contract=contract, batch=batch))
                       for e in np.eye(b.size)]).reshape(sb)
    np.testing.assert_allclose(ga, want_a, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(gb, want_b, rtol=1e-13, atol=1e-13)
    ta, tb = rng.standard_normal(sa), rng.standard_normal(sb)
    want = ref(ta, b, contract=contract, batch=batch) + ref(a, tb, contract=contract,
                                                            batch=batch)
    np.testing.assert_allclose(jvp(fn, [a, b], [ta, tb]), want, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(jvp(fn, [a, b], [None, tb]),
                               ref(a, tb, contract=contract, batch=batch), rtol=1e-13,
                               atol=1e-13)


# -- casts, select, broadcast ----------------------------------------------------------------

def test_convert_casts_the_cotangent_back():
    x = f64(1.0, 2.5)
    G = graph(lambda y: y.astype(tj.float32) * 2.0, x)
    _, (g,) = vjp_graph(G, [tj.from_numpy(x)], [tj.from_numpy(np.ones(2, np.float32))])
    assert g.dtype == tj.float64
    np.testing.assert_array_equal(g.numpy(), f64(2, 2))
    _, (t,) = jvp_graph(G, [tj.from_numpy(x)], [tj.from_numpy(f64(1, 3))])
    assert t.dtype == tj.float32
    np.testing.assert_array_equal(t.numpy(), np.array([2, 6], np.float32))


def test_cast_to_integer_has_no_derivative():
    x = f64(1.5, 2.5)
    G = graph(lambda y: y.astype(tj.int64).astype(tj.float64) + y, x)
    (g,) = vjp(lambda y: _apply(G, y), [x], f64(1, 1))
    np.testing.assert_array_equal(g, f64(1, 1))  # only the `+ y` path
    np.testing.assert_array_equal(jvp(lambda y: _apply(G, y), [x], [f64(1, 1)]), f64(1, 1))


def test_select_routes_to_the_chosen_branch():
    a, b = f64(1, 2, 3), f64(4.0)  # b broadcasts: its cotangent is summed
    ga, gb = vjp(lambda a, b: tj.where(a > 1.5, a, b), [a, b], f64(1, 2, 3))
    np.testing.assert_array_equal(ga, f64(0, 2, 3))
    np.testing.assert_array_equal(gb, f64(1))
    t = jvp(lambda a, b: tj.where(a > 1.5, a, b), [a, b], [None, f64(5.0)])
    np.testing.assert_array_equal(t, f64(5, 0, 0))


@pytest.mark.parametrize("src,dst", [((3, 1), (2, 3, 4)), ((1,), (0,)), ((), (2, 2)),
                                     ((2, 1, 1), (2, 3, 1))])
def test_broadcast_sums_back(src, dst):
    x = np.ones(src)
    ct = np.arange(float(math.prod(dst))).reshape(dst)
    (g,) = vjp(lambda y: tj.broadcast_to(y, dst), [x], ct)
    lead = len(dst) - len(src)
    want = ct.sum(axis=tuple(range(lead)))
    want = want.sum(axis=tuple(i for i, n in enumerate(src) if n == 1 and dst[lead + i] != 1),
                    keepdims=True) if src else want
    np.testing.assert_array_equal(g, want.reshape(src))


# -- any order -------------------------------------------------------------------------------

@pytest.mark.parametrize("fn,x,want", [
    (lambda x: x * x * x, 0.7, 6.0),                                   # (x^3)''' = 6
    (tj.tanh, 0.3, -2 * (1 - math.tanh(0.3) ** 2) * (1 - 3 * math.tanh(0.3) ** 2)),
    (tj.exp, 0.4, math.exp(0.4)),
    (lambda x: tj.pow(x, 3.5), 1.3, 3.5 * 2.5 * 1.5 * 1.3 ** 0.5),
    (tj.sigmoid, 0.2, None),                                          # checked by differences
])
def test_third_derivative(fn, x, want):
    x = f64(x)
    d3 = d(d(d(fn)))
    got = graph(d3, x)(x).numpy().item()
    if want is None:
        d2 = d(d(fn))
        g2 = graph(d2, x)
        eps = 1e-5
        want = ((g2(x + eps).numpy() - g2(x - eps).numpy()) / (2 * eps)).item()
        assert got == pytest.approx(want, rel=1e-8)
    else:
        assert got == pytest.approx(want, rel=1e-13)
