"""Differentiation: grad/value_and_grad, the torch.autograd.functional-shaped API (mirroring
PyTorch's documented examples), reverse mode through control flow, custom Functions,
value-dependent Python control flow, and the printed backward graph. References are numpy
formulas and central finite differences, never tracejit's own output."""

import numpy as np
import pytest

import tracejit as tj

rng = np.random.default_rng(0)


def f64(*shape):
    return tj.tensor(rng.standard_normal(shape), dtype=tj.float64)


def fd_grad(f, x: np.ndarray, eps=1e-6) -> np.ndarray:
    """Central differences of a scalar numpy function."""
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[i] = eps
        g[i] = (f(x + e) - f(x - e)) / (2 * eps)
    return g


# -- grad / value_and_grad --------------------------------------------------------------------

def test_grad_matches_finite_differences_and_composes():
    def f(x):
        return (tj.sin(x) * x).sum()

    x = f64(5)
    xn = x.numpy()
    np.testing.assert_allclose(tj.grad(f)(x).numpy(), np.cos(xn) * xn + np.sin(xn), rtol=1e-10)
    g2 = tj.grad(lambda v: tj.grad(f)(v).sum())(x)  # second derivative, elementwise here
    np.testing.assert_allclose(g2.numpy(), 2 * np.cos(xn) - xn * np.sin(xn), rtol=1e-9)
    compiled = tj.compile(tj.grad(f))
    np.testing.assert_allclose(compiled(x).numpy(), tj.grad(f)(x).numpy())
    assert compiled.cache_info().misses == 1


def test_value_and_grad_argnums_has_aux_and_pytrees():
    def loss(params, x, scale):
        y = tj.tanh(x @ params["w"] + params["b"]) * scale
        return (y * y).sum(), {"y": y}

    params = {"w": f64(3, 2), "b": f64(2)}
    x = f64(4, 3)
    (val, aux), (g_params, g_x) = tj.value_and_grad(loss, argnums=(0, 1), has_aux=True)(
        params, x, 2.0)
    w, b, xn = params["w"].numpy(), params["b"].numpy(), x.numpy()
    ref = lambda w_, b_, x_: ((np.tanh(x_ @ w_ + b_) * 2) ** 2).sum()  # noqa: E731
    assert abs(float(val) - ref(w, b, xn)) < 1e-10
    np.testing.assert_allclose(aux["y"].numpy(), np.tanh(xn @ w + b) * 2, rtol=1e-12)
    np.testing.assert_allclose(g_params["w"].numpy(), fd_grad(lambda v: ref(v, b, xn), w),
                               rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(g_params["b"].numpy(), fd_grad(lambda v: ref(w, v, xn), b),
                               rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(g_x.numpy(), fd_grad(lambda v: ref(w, b, v), xn), rtol=1e-6,
                               atol=1e-8)


def test_grad_errors():
    with pytest.raises(TypeError, match="one float scalar"):
        tj.grad(lambda x: x * 2)(tj.ones(3))
    with pytest.raises(TypeError, match="floating point"):
        tj.grad(lambda x: x.sum().float())(tj.tensor([1, 2]))
    with pytest.raises(TypeError, match="pair"):
        tj.grad(lambda x: x.sum(), has_aux=True)(tj.ones(2))


def test_backward_graph_points_at_forward_lines():
    def f(x):
        y = tj.exp(x)          # the line the exp derivative points at
        return (y * x).sum()

    g = tj.make_graph(tj.grad(f))(tj.ones(3))
    g.verify()
    import inspect
    line = inspect.getsourcelines(f)[1] + 1
    backward_exp_uses = [n for n in g.nodes if n.op == "mul" and n.loc and n.loc.line == line]
    assert backward_exp_uses, str(g)
    assert all(n.loc.file == __file__ for n in g.nodes if n.loc)


# -- the functional API, mirroring PyTorch's documented examples --------------------------------

def exp_adder(x, y):
    return 2 * x.exp() + 3 * y


def test_jacobian_of_exp_adder_matches_pytorch_doc():
    x, y = f64(2), f64(2)
    jx, jy = tj.jacobian(exp_adder, (x, y))
    np.testing.assert_allclose(jx.numpy(), np.diag(2 * np.exp(x.numpy())), rtol=1e-12)
    np.testing.assert_allclose(jy.numpy(), np.diag([3.0, 3.0]))
    jx_f, jy_f = tj.jacobian(exp_adder, (x, y), strategy="forward-mode")
    np.testing.assert_allclose(jx_f.numpy(), jx.numpy(), rtol=1e-12)
    np.testing.assert_allclose(jy_f.numpy(), jy.numpy())


def exp_reducer(x):
    return x.exp().sum(dim=1)


def test_jacobian_shapes_and_structures_follow_pytorch():
    x = f64(2, 2)
    J = tj.jacobian(exp_reducer, x)
    assert J.shape == (2, 2, 2)
    expect = np.zeros((2, 2, 2))
    for i in range(2):
        expect[i, i, :] = np.exp(x.numpy()[i])
    np.testing.assert_allclose(J.numpy(), expect, rtol=1e-12)

    def two_out(a, b):
        return a * b, a.sum() + b
    a, b = f64(3), f64(3)
    J = tj.jacobian(two_out, (a, b))
    assert isinstance(J, tuple) and all(isinstance(r, tuple) and len(r) == 2 for r in J)
    assert [[t.shape for t in r] for r in J] == [[(3, 3), (3, 3)], [(3, 3), (3, 3)]]
    np.testing.assert_allclose(J[0][0].numpy(), np.diag(b.numpy()))
    np.testing.assert_allclose(J[1][0].numpy(), np.ones((3, 3)))
    np.testing.assert_allclose(J[1][1].numpy(), np.eye(3))
    single_in = tj.jacobian(lambda a: (a * 2, a.sum()), a)
    assert isinstance(single_in, tuple) and [t.shape for t in single_in] == [(3, 3), (3,)]


def test_jacobian_is_one_batched_graph():
    """Node counts do not grow with the output size: no Python loop of backward passes."""
    W = tj.tensor(rng.standard_normal((50, 50)))

    def f(x):
        return tj.tanh(W[: x.shape[0], : x.shape[0]] @ x + 1.0)

    counts = []
    for n in (3, 40):
        g = tj.make_graph(lambda x: tj.jacobian(f, x))(tj.ones(n, dtype=tj.float64))
        counts.append(len(g.nodes))
    assert counts[0] == counts[1]
    x = f64(4)
    J = tj.jacobian(f, x).numpy()
    Wn = W.numpy()[:4, :4]
    np.testing.assert_allclose(J, (1 - np.tanh(Wn @ x.numpy() + 1) ** 2)[:, None] * Wn,
                               rtol=1e-10)


def test_vjp_and_jvp_follow_pytorch():
    x = f64(4, 4)
    v = tj.ones(4, dtype=tj.float64)
    out, g = tj.vjp(exp_reducer, x, v)
    np.testing.assert_allclose(out.numpy(), np.exp(x.numpy()).sum(1), rtol=1e-12)
    np.testing.assert_allclose(g.numpy(), np.exp(x.numpy()), rtol=1e-12)
    out, t = tj.jvp(exp_reducer, x, tj.ones(4, 4, dtype=tj.float64))
    np.testing.assert_allclose(t.numpy(), np.exp(x.numpy()).sum(1), rtol=1e-12)
    outs, gs = tj.vjp(exp_adder, (f64(2), f64(2)), tj.ones(2, dtype=tj.float64))
    assert isinstance(gs, tuple) and len(gs) == 2
    np.testing.assert_allclose(gs[1].numpy(), [3.0, 3.0])
    with pytest.raises(RuntimeError, match="v can only be None"):
        tj.vjp(exp_reducer, x)
    with pytest.raises(RuntimeError, match="shape"):
        tj.vjp(exp_reducer, x, tj.ones(3, dtype=tj.float64))


def test_vjp_of_doubling_while_loop_gives_powers_of_two():
    def doubler(x):  # the tutorial's value-dependent loop, plain Python
        y = x * 2
        while y.norm() < 1000:
            y = y * 2
        return y

    for start, k in ((0.5, 11), (3.0, 8)):
        x = tj.tensor([start, start, start], dtype=tj.float64)
        y = np.array([start] * 3) * 2
        factor = 2
        while np.linalg.norm(y) < 1000:
            y, factor = y * 2, factor * 2
        out, g = tj.vjp(doubler, x, tj.tensor([0.1, 1.0, 0.0001], dtype=tj.float64))
        np.testing.assert_allclose(out.numpy(), y)
        np.testing.assert_allclose(g.numpy(), np.array([0.1, 1.0, 0.0001]) * factor)
        assert np.log2(factor) == k
    with pytest.raises(tj.ConcretizationError):  # under compile, the same code cannot trace
        tj.compile(doubler)(tj.ones(3))


def test_value_dependent_branch_is_specialised_per_path():
    def f(a, b):
        if b.sum() > 0:
            return a * b
        return a - b

    a = f64(3)
    for sign in (1.0, -1.0):
        b = tj.tensor(np.abs(rng.standard_normal(3)) * sign)
        ja, jb = tj.jacobian(f, (a, b))
        if sign > 0:
            np.testing.assert_allclose(ja.numpy(), np.diag(b.numpy()))
        else:
            np.testing.assert_allclose(ja.numpy(), np.eye(3))
            np.testing.assert_allclose(jb.numpy(), -np.eye(3))


def test_hessian_of_quadratic_forms_is_a_plus_a_transpose():
    A = tj.tensor(rng.standard_normal((4, 4)))
    x = f64(4)
    H = tj.hessian(lambda v: v @ A @ v, x)
    np.testing.assert_allclose(H.numpy(), A.numpy() + A.numpy().T, rtol=1e-12)
    H_fwd = tj.hessian(lambda v: v @ A @ v, x, outer_jacobian_strategy="forward-mode")
    np.testing.assert_allclose(H_fwd.numpy(), H.numpy(), rtol=1e-12)
    B = tj.tensor(rng.standard_normal((4, 3)))
    y = f64(3)
    Hs = tj.hessian(lambda u, w: u @ B @ w + (u * u).sum(), (x, y))
    assert isinstance(Hs, tuple) and [[t.shape for t in r] for r in Hs] == [
        [(4, 4), (4, 3)], [(3, 4), (3, 3)]]
    np.testing.assert_allclose(Hs[0][0].numpy(), 2 * np.eye(4))
    np.testing.assert_allclose(Hs[0][1].numpy(), B.numpy())
    np.testing.assert_allclose(Hs[1][0].numpy(), B.numpy().T)
    np.testing.assert_allclose(Hs[1][1].numpy(), np.zeros((3, 3)))


def test_hvp_and_vhp_agree_with_hessian_times_v():
    def f(x):
        return (tj.log1p(tj.exp(x @ M)) ** 2).sum()

    M = tj.tensor(rng.standard_normal((5, 3)))
    x, v = f64(5), f64(5)
    H = tj.hessian(f, x).numpy()
    out, hv = tj.hvp(f, x, v)
    out2, vh = tj.vhp(f, x, v)
    np.testing.assert_allclose(hv.numpy(), H @ v.numpy(), rtol=1e-9)
    np.testing.assert_allclose(vh.numpy(), v.numpy() @ H, rtol=1e-9)
    assert float(out) == float(out2) == pytest.approx(float(f(x)))


def test_hvp_does_not_build_the_hessian():
    def f(x):
        return (tj.tanh(x) ** 2).sum()
    g = tj.make_graph(lambda x, v: tj.hvp(f, x, v)[1])(tj.ones(30), tj.ones(30))
    assert all(np.prod(n.shape) < 30 * 30 for n in g.nodes if n.type is not None)


def test_strict_mode_and_create_graph():
    with pytest.raises(RuntimeError, match="independent of input 1"):
        tj.vjp(lambda a, b: a * 2, (f64(2), f64(2)), tj.ones(2, dtype=tj.float64), strict=True)
    # create_graph=False results are cut off from outer differentiation; True keeps them
    x = f64(3)
    inner = lambda v: tj.jacobian(lambda u: (u ** 3).sum(), v, create_graph=True).sum()  # noqa
    np.testing.assert_allclose(tj.grad(inner)(x).numpy(), 6 * x.numpy(), rtol=1e-12)
    cut = lambda v: tj.jacobian(lambda u: (u ** 3).sum(), v).sum()  # noqa: E731
    np.testing.assert_allclose(tj.grad(cut)(x).numpy(), np.zeros(3))


def test_functional_api_caches_its_compiled_derivative():
    def f(x):
        return tj.sin(x).sum()

    from tracejit.autodiff.functional import _staged
    tj.jacobian(f, f64(3))
    tj.jacobian(f, f64(3))
    info = _staged(f, ("jacobian", False, False, "reverse-mode"), None).cache_info()
    assert info.misses == 1 and info.hits == 1
    W = f64(3, 3)

    def make():
        return lambda v: W @ v

    for _ in range(3):  # a new lambda object each time, over the same W: one trace
        tj.jacobian(make(), f64(3))
    info = _staged(make(), ("jacobian", False, False, "reverse-mode"), None).cache_info()
    assert info.misses == 1 and info.hits == 2


# -- reverse mode through control flow, against finite differences ------------------------------

CONTROL = {
    "cond": lambda x: tj.cond(x.sum() > 0, lambda v: tj.sin(v) * v, lambda v: v ** 3, x).sum(),
    "while": lambda x: tj.while_loop(lambda c: c[1] < 4, lambda c: (tj.sin(c[0]) + c[0] * 0.5,
                                                                    c[1] + 1), (x, 0))[0].sum(),
    "while_value_dependent_trip_count": lambda x: tj.while_loop(
        lambda v: (v * v).sum() < 50.0, lambda v: v * 1.5 + 0.1, x).sum(),
    "fori_loop": lambda x: tj.fori_loop(0, 5, lambda i, v: tj.tanh(v) * (i + 1), x).sum(),
    "scan": lambda x: tj.scan(lambda c, e: (c * e + tj.sin(c), c * 2), x[0], x)[1].sum(),
}


@pytest.mark.parametrize("name", sorted(CONTROL))
@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_reverse_and_forward_mode_through_control_flow(name, sign):
    f = CONTROL[name]
    x = tj.tensor(np.abs(rng.standard_normal(4)) * 0.5 * sign + 0.1 * sign, dtype=tj.float64)

    def fn(v):
        return float(f(tj.tensor(v)))

    expect = fd_grad(fn, x.numpy())
    np.testing.assert_allclose(tj.grad(f)(x).numpy(), expect, rtol=1e-6, atol=1e-8)
    _, t = tj.jvp(f, x, tj.ones(4, dtype=tj.float64))
    np.testing.assert_allclose(float(t), expect.sum(), rtol=1e-6, atol=1e-8)


def test_while_reverse_mode_checkpoints_many_iterations(monkeypatch):
    from tracejit.primitives import control
    monkeypatch.setattr(control, "WHILE_CHECKPOINTS", 4)  # force recomputation segments
    f = lambda x: tj.while_loop(lambda c: c[1] < 23, lambda c: (tj.sin(c[0]) * 1.1,  # noqa
                                                                c[1] + 1), (x, 0))[0].sum()
    x = f64(3)
    np.testing.assert_allclose(tj.grad(f)(x).numpy(), fd_grad(lambda v: float(f(tj.tensor(v))),
                                                              x.numpy()), rtol=1e-6)


# -- custom Functions ---------------------------------------------------------------------------

class ScaledExp(tj.autograd.Function):
    """exp with a deliberately scaled backward, so tests see that the custom rule is used."""

    @staticmethod
    def forward(ctx, x, k):
        y = tj.exp(x)
        ctx.save_for_backward(y)
        ctx.k = k
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        return g * y * ctx.k, None


def test_custom_function_everywhere():
    x = f64(3)
    e = np.exp(x.numpy())
    np.testing.assert_allclose(ScaledExp.apply(x, 10.0).numpy(), e)
    np.testing.assert_allclose(tj.grad(lambda v: ScaledExp.apply(v, 10.0).sum())(x).numpy(),
                               10 * e)
    compiled = tj.compile(tj.grad(lambda v: ScaledExp.apply(v, 3.0).sum()))
    np.testing.assert_allclose(compiled(x).numpy(), 3 * e)
    _, g = tj.vjp(lambda v: ScaledExp.apply(v, 2.0), x, tj.ones(3, dtype=tj.float64))
    np.testing.assert_allclose(g.numpy(), 2 * e)
    J = tj.jacobian(lambda v: ScaledExp.apply(v, 5.0), x)
    np.testing.assert_allclose(J.numpy(), np.diag(5 * e))
    batched = tj.vmap(lambda v: ScaledExp.apply(v, 1.0))(tj.ones(4, 3))
    np.testing.assert_allclose(batched.numpy(), np.full((4, 3), np.e))
    g = tj.make_graph(tj.grad(lambda v: ScaledExp.apply(v, 10.0).sum()))(x)
    custom = [n for n in g.nodes if n.op == "custom_vjp"]
    assert len(custom) == 1 and "ScaledExp_backward" in str(g)


# -- gradcheck ---------------------------------------------------------------------------------

def test_gradcheck_and_gradgradcheck():
    x, y = f64(3), f64(3)
    assert tj.testing.gradcheck(lambda a, b: tj.tanh(a) * b + a.exp(), (x, y))
    assert tj.testing.gradgradcheck(lambda a: (a.sin() * a).sum(), (x,))
    with pytest.raises(tj.testing.GradcheckError, match="mismatch"):
        tj.testing.gradcheck(lambda v: ScaledExp.apply(v, 2.0), (x,), check_forward_ad=False)
    assert not tj.testing.gradcheck(lambda v: ScaledExp.apply(v, 2.0), (x,),
                                    raise_exception=False, check_forward_ad=False)


# -- PyTorch's derivative conventions at kinks, defined in the op library ------------------------

def test_pytorch_conventions_at_kinks():
    x = tj.tensor([-1.0, 0.0, 2.0], dtype=tj.float64)
    np.testing.assert_array_equal(tj.grad(lambda v: tj.relu(v).sum())(x).numpy(), [0, 0, 1])
    np.testing.assert_array_equal(
        tj.grad(lambda v: v.clamp(0.0, 2.0).sum())(x).numpy(), [0, 1, 1])  # bounds pass
    z = tj.zeros(3, dtype=tj.float64)
    np.testing.assert_array_equal(tj.grad(lambda v: v.norm())(z).numpy(), [0, 0, 0])
    np.testing.assert_array_equal(tj.grad(lambda v: v.norm(p=3))(z).numpy(), [0, 0, 0])
    ties = tj.tensor([[1.0, 3.0, 3.0]], dtype=tj.float64)
    g = tj.grad(lambda v: v.max(dim=1).values.sum())(ties)  # to the returned index only
    np.testing.assert_array_equal(g.numpy(), [[0, 1, 0]])
    g = tj.grad(lambda v: v.amax(dim=1).sum())(ties)  # amax shares ties evenly
    np.testing.assert_array_equal(g.numpy(), [[0, 0.5, 0.5]])


def test_eager_replay_keeps_recorded_dtypes():
    from tracejit.autodiff.replay import replay
    x = f64(2)
    G = tj.make_graph(lambda v: v * tj.add(2.0, 3.0))(x)
    (out,) = replay(G, [x])
    assert out.dtype == tj.float64
    np.testing.assert_allclose(out.numpy(), x.numpy() * 5.0)


def test_transforms_compose_with_compile_and_vmap_in_any_order():
    W = f64(3, 4)

    def f(x):
        return tj.tanh(W @ x)

    xs = f64(5, 4)
    Js = tj.compile(tj.vmap(lambda x: tj.jacobian(f, x)))(xs)
    assert Js.shape == (5, 3, 4)
    for b in range(5):
        t = np.tanh(W.numpy() @ xs.numpy()[b])
        np.testing.assert_allclose(Js.numpy()[b], (1 - t ** 2)[:, None] * W.numpy(), rtol=1e-10)
    per_example = tj.vmap(tj.grad(lambda x: f(x).sum()))(xs)
    np.testing.assert_allclose(per_example.numpy(), Js.numpy().sum(1), rtol=1e-10)
    H = tj.jacobian(lambda x: tj.grad(lambda y: (f(y) ** 2).sum())(x), xs[0])
    H_ref = tj.hessian(lambda y: (f(y) ** 2).sum(), xs[0])
    np.testing.assert_allclose(H.numpy(), H_ref.numpy(), rtol=1e-10)
    g3 = tj.grad(lambda x: tj.grad(lambda y: tj.grad(lambda z: tj.sin(z).sum())(y).sum())(x)
                 .sum())(xs[0])
    np.testing.assert_allclose(g3.numpy(), -np.cos(xs.numpy()[0]), rtol=1e-10)
