"""Eager autograd (PyTorch's semantics): the tutorial's printed values and errors, gradient
accumulation, leaf/non-leaf .grad, create_graph, in-place ops and version counters, grad mode,
and the compiled training step writing parameters, optimizer state and .grad back."""

from __future__ import annotations

import numpy as np
import pytest

import tracejit as tj


def fd_grad(f, x: np.ndarray, eps=1e-6) -> np.ndarray:
    """Central finite differences of scalar f at float64 x."""
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        d = np.zeros_like(x)
        d[i] = eps
        g[i] = (f(x + d) - f(x - d)) / (2 * eps)
    return g


# -- the tutorial ----------------------------------------------------------------------------

def test_tutorial_dot():
    x = tj.arange(4.0, requires_grad=True)
    y = 2 * tj.dot(x, x)
    assert repr(y) == "tensor(28., grad_fn=<MulBackward0>)"
    y.backward()
    assert repr(x.grad) == "tensor([ 0.,  4.,  8., 12.])"
    np.testing.assert_array_equal(x.grad.numpy(), 4 * np.arange(4.0))


def test_tutorial_detach():
    x = tj.arange(4.0, requires_grad=True)
    (2 * tj.dot(x, x)).backward()
    x.grad.zero_()
    y = x * x
    u = y.detach()
    z = u * x
    z.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), u.numpy())
    assert not u.requires_grad and u.grad_fn is None
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), u.numpy() + 2 * x.detach().numpy())


def test_no_grad_and_modes():
    a = tj.ones(2, requires_grad=True)
    b = tj.ones(2)
    with tj.no_grad():
        c = a + b
        with tj.enable_grad():
            d = a * 2
    assert c.requires_grad is False and c.grad_fn is None
    assert d.requires_grad and d.grad_fn.name == "MulBackward0"

    @tj.no_grad()
    def f(t):
        return t * 3
    assert not f(a).requires_grad
    with tj.set_grad_enabled(False):
        assert not (a * 2).requires_grad
    assert tj.is_grad_enabled()
    tj.set_grad_enabled(False)
    try:
        assert not (a * 2).requires_grad
    finally:
        tj.set_grad_enabled(True)


def test_grad_fn_names_and_leaves():
    x = tj.tensor([1.0, 2.0], requires_grad=True)
    assert x.is_leaf and x.grad_fn is None
    assert repr(x) == "tensor([1., 2.], requires_grad=True)"
    assert (x + 1).grad_fn.name == "AddBackward0"
    assert tj.exp(x).grad_fn.name == "ExpBackward0"
    assert x.sum().grad_fn.name == "SumBackward0"
    y = x * 2
    assert not y.is_leaf
    (n, i), = [e for e in y.grad_fn.next_functions if e[0] is not None]
    assert n.name == "AccumulateGrad" and n.variable is x
    # integer results and comparisons are not differentiable
    assert not (x > 1).requires_grad
    assert not x.argmax().requires_grad


def test_accumulation_and_retain_graph():
    x = tj.tensor([1.0, -2.0, 3.0], requires_grad=True)
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), 4 * x.detach().numpy())
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        y.backward()
    # a graph whose ops save nothing can be run again, as in PyTorch
    z = (x + 1).sum()
    z.backward()
    z.backward()


def test_non_leaf_grad_and_retain_grad():
    x = tj.tensor([1.0, 2.0], requires_grad=True)
    h = x * 3
    h.retain_grad()
    k = x * 5
    (h * h + k).sum().backward()
    np.testing.assert_allclose(h.grad.numpy(), 2 * h.detach().numpy())
    np.testing.assert_allclose(x.grad.numpy(), 18 * x.detach().numpy() + 5)
    with pytest.warns(UserWarning, match="not a leaf Tensor"):
        assert k.grad is None


def test_errors_like_pytorch():
    x = tj.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="grad can be implicitly created only for scalar"):
        (x * 2).backward()
    with pytest.raises(RuntimeError, match="does not require grad and does not have a grad_fn"):
        tj.ones(2).sum().backward()
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad is being used in "
                                           "an in-place operation"):
        x.add_(1)
    with pytest.raises(RuntimeError, match="leaf Variable"):
        x[0] = 3.0
    with pytest.raises(RuntimeError, match="floating point dtype can require gradients"):
        tj.tensor([1, 2]).requires_grad_()
    y = x * 2
    with pytest.raises(RuntimeError, match="only change requires_grad flags of leaf"):
        y.requires_grad = False
    with pytest.raises(RuntimeError, match="Mismatch in shape"):
        y.backward(tj.ones(3))
    with tj.no_grad():
        x.add_(1)  # allowed: optimizers do this
    np.testing.assert_array_equal(x.detach().numpy(), [2.0, 3.0])


def test_version_counter():
    a = tj.tensor([1.0, 2.0], requires_grad=True)
    b = a * 2
    c = b * b
    b.add_(1)
    with pytest.raises(RuntimeError, match=r"modified by an inplace operation: "
                       r"\[torch.FloatTensor \[2\]\], which is an operand of MulBackward0, is "
                       r"at version 1; expected version 0"):
        c.sum().backward()
    # a value the rule never reads may change (add saves nothing)
    d = b + 1
    b.mul_(2)
    d.sum().backward()
    np.testing.assert_array_equal(a.grad.numpy(), [2.0, 2.0])
    # a saved result modified through a detached alias is caught too
    a.grad = None
    e = tj.exp(a)
    e.detach().add_(1)
    with pytest.raises(RuntimeError, match="output 0 of ExpBackward0"):
        e.sum().backward()


def test_inplace_ops_gradients():
    a = tj.tensor([1.0, 2.0, 3.0], requires_grad=True)
    b = a * 2
    b.mul_(b)  # 4 a^2
    b.sum().backward()
    np.testing.assert_allclose(a.grad.numpy(), 8 * a.detach().numpy())
    a.grad = None
    b = a * 2
    b[1] = 0.0
    b.sum().backward()
    np.testing.assert_array_equal(a.grad.numpy(), [2.0, 0.0, 2.0])
    a.grad = None
    b = a * 1.0
    b += a
    b *= a  # 2 a^2
    b.sum().backward()
    np.testing.assert_allclose(a.grad.numpy(), 4 * a.detach().numpy())
    v = tj.tensor(2.0, requires_grad=True)
    z = tj.zeros(3)
    z[1] = v
    (z * tj.tensor([1.0, 5.0, 1.0])).sum().backward()
    assert float(v.grad) == 5.0
    w = tj.tensor([1.0, 1.0], requires_grad=True)
    t = tj.zeros(2)
    t.copy_(w * 3)
    assert t.grad_fn is not None
    t.sum().backward()
    np.testing.assert_array_equal(w.grad.numpy(), [3.0, 3.0])


def test_create_graph_higher_order():
    x0 = np.array([0.3, -1.2, 2.0])
    x = tj.tensor(x0, dtype=tj.float64, requires_grad=True)
    y = (tj.sin(x) * x ** 3).sum()
    (g,) = tj.autograd.grad(y, x, create_graph=True)
    assert g.requires_grad
    np.testing.assert_allclose(g.numpy(), np.cos(x0) * x0 ** 3 + 3 * x0 ** 2 * np.sin(x0))
    g.sum().backward()

    def first(v):
        return np.sum(np.cos(v) * v ** 3 + 3 * v ** 2 * np.sin(v))
    np.testing.assert_allclose(x.grad.numpy(), fd_grad(first, x0), rtol=1e-6, atol=1e-6)
    # backward(create_graph=True) then differentiate x.grad again
    x2 = tj.tensor(x0, dtype=tj.float64, requires_grad=True)
    (tj.exp(x2) * x2).sum().backward(create_graph=True)
    gx = x2.grad
    assert gx.requires_grad
    (h,) = tj.autograd.grad(gx.sum(), x2)
    np.testing.assert_allclose(h.numpy(), np.exp(x0) * (x0 + 2))


def test_autograd_grad_options():
    x = tj.tensor([1.0, 2.0], requires_grad=True)
    z = tj.tensor([3.0], requires_grad=True)
    y = (x * x).sum()
    with pytest.raises(RuntimeError, match="appears to not have been used"):
        tj.autograd.grad(y, [x, z], retain_graph=True)
    gx, gz = tj.autograd.grad(y, [x, z], allow_unused=True, retain_graph=True)
    assert gz is None and x.grad is None  # grad() never accumulates
    np.testing.assert_array_equal(gx.numpy(), [2.0, 4.0])
    _, gz = tj.autograd.grad(y, [x, z], materialize_grads=True)
    np.testing.assert_array_equal(gz.numpy(), [0.0])
    with pytest.raises(RuntimeError, match="does not require grad"):
        tj.autograd.grad((x * 2).sum(), tj.ones(2))
    # vector output with grad_outputs; gradient w.r.t. a non-leaf
    h = x * 3
    out = h * h
    (gh,) = tj.autograd.grad(out, h, grad_outputs=tj.tensor([1.0, 10.0]))
    np.testing.assert_allclose(gh.numpy(), [6.0, 120.0])


CASES = {
    "matmul_bias_tanh": (lambda w, x: tj.tanh(x @ w + 0.5).sum(), [(3, 4), (5, 3)]),
    "softmax_ce": (lambda w, x: -tj.log_softmax(x @ w, dim=1)[:, 0].mean(), [(3, 4), (5, 3)]),
    "broadcast_mul_max": (lambda a, b: (a * b).max(dim=0).values.sum(), [(4, 1), (1, 3)]),
    "index_where": (lambda a, b: tj.where(a > 0, a * b, b ** 2)[1:, ::2].sum(),
                    [(3, 4), (3, 4)]),
    "cat_reshape_t": (lambda a, b: (tj.cat([a, b], dim=0).reshape(4, 3).T ** 3).mean(),
                      [(2, 3), (2, 3)]),
    "norm_div": (lambda a, b: (a / (b.abs() + 1.0)).norm(), [(6,), (6,)]),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_backward_matches_finite_differences(name):
    f, shapes = CASES[name]
    rng = np.random.default_rng(0)
    vals = [rng.standard_normal(s) for s in shapes]
    ts = [tj.tensor(v, dtype=tj.float64, requires_grad=True) for v in vals]
    f(*ts).backward()
    for i, v in enumerate(vals):
        def fi(xi, i=i):
            args = [tj.tensor(u, dtype=tj.float64) for u in vals]
            args[i] = tj.tensor(xi, dtype=tj.float64)
            return float(f(*args))
        np.testing.assert_allclose(ts[i].grad.numpy(), fd_grad(fi, v), rtol=1e-5, atol=1e-7)
        # and the symbolic transform agrees
        g = tj.grad(f, argnums=i)(*[tj.tensor(u, dtype=tj.float64) for u in vals])
        np.testing.assert_allclose(ts[i].grad.numpy(), g.numpy(), rtol=1e-10, atol=1e-12)


def test_float32_grad_dtype_and_broadcast_reduction():
    w = tj.ones(3, requires_grad=True)
    (tj.ones(4, 3) * w).sum().backward()
    assert w.grad.dtype == tj.float32 and w.grad.shape == (3,)
    np.testing.assert_array_equal(w.grad.numpy(), [4.0, 4.0, 4.0])


# -- compiled training step ------------------------------------------------------------------

def _sgd_momentum_step(w, b, buf_w, buf_b, x, y, lr=0.1, mom=0.9):
    w.grad = None
    b.grad = None
    loss = ((tj.tanh(x @ w + b) - y) ** 2).mean()
    loss.backward()
    with tj.no_grad():
        for p, buf in ((w, buf_w), (b, buf_b)):
            buf.mul_(mom).add_(p.grad)
            p.sub_(lr * buf)
    return loss


def _fresh():
    rng = np.random.default_rng(1)
    w = tj.tensor(rng.standard_normal((4, 2)), dtype=tj.float32, requires_grad=True)
    b = tj.zeros(2, requires_grad=True)
    return w, b, tj.zeros(4, 2), tj.zeros(2)


@pytest.mark.parametrize("device", ["cpu", "interpreter"])
def test_compiled_step_equals_eager_step(device):
    rng = np.random.default_rng(2)
    x = tj.tensor(rng.standard_normal((8, 4)), dtype=tj.float32)
    y = tj.tensor(rng.standard_normal((8, 2)), dtype=tj.float32)
    eager = _fresh()
    comp = _fresh()

    def step(x, y):
        return _sgd_momentum_step(*comp, x, y)
    cstep = tj.compile(step, device=device)
    for _ in range(4):
        le = _sgd_momentum_step(*eager, x, y)
        lc = cstep(x, y)
        np.testing.assert_allclose(float(lc), float(le), rtol=1e-5)
        for a, b in zip(eager, comp):
            np.testing.assert_allclose(b.detach().numpy(), a.detach().numpy(), rtol=1e-5,
                                       atol=1e-6)
        for a, b in zip(eager[:2], comp[:2]):
            np.testing.assert_allclose(b.grad.numpy(), a.grad.numpy(), rtol=1e-5, atol=1e-6)
            assert not b.grad._is_tracer
    assert cstep.cache_info().misses == 1


def test_compiled_step_grad_state_guard():
    """Accumulating into .grad across calls: a call whose .grad state differs from the traced
    one traces again instead of using the wrong program."""
    w = tj.tensor([1.0, 2.0], requires_grad=True)

    @tj.compile
    def acc(x):
        (w * x).sum().backward()
        return w.grad * 1.0

    x = tj.tensor([3.0, 4.0])
    np.testing.assert_array_equal(acc(x).numpy(), [3.0, 4.0])
    np.testing.assert_array_equal(acc(x).numpy(), [6.0, 8.0])  # .grad set: accumulates
    np.testing.assert_array_equal(acc(x).numpy(), [9.0, 12.0])
    w.grad = None
    np.testing.assert_array_equal(acc(x).numpy(), [3.0, 4.0])
    # traced with .grad None, then set (retrace), hit, then None again (retrace: one entry per
    # signature is kept)
    assert acc.cache_info().misses == 3 and acc.cache_info().hits == 1


def test_compiled_global_random_advances():
    tj.manual_seed(123)
    f = tj.compile(lambda x: x + tj.rand(4))
    a, b = f(tj.zeros(4)), f(tj.zeros(4))
    assert not np.array_equal(a.numpy(), b.numpy())
    tj.manual_seed(123)
    np.testing.assert_array_equal(a.numpy(), tj.rand(4).numpy())
    np.testing.assert_array_equal(b.numpy(), tj.rand(4).numpy())
    g = tj.Generator().manual_seed(5)
    h = tj.compile(lambda: tj.randn(3, generator=g))
    first = h().numpy()
    g.manual_seed(5)
    np.testing.assert_array_equal(h().numpy(), first)


def test_inplace_on_outside_tensor_inside_other_traces_is_refused():
    t = tj.zeros(2)
    with pytest.raises(TypeError, match="cannot write a traced value into a realized tensor"):
        tj.grad(lambda x: (t.copy_(x) * x).sum())(tj.ones(2))


def test_custom_function_eager_backward():
    class Cube(tj.autograd.Function):
        @staticmethod
        def forward(ctx, x, k):
            ctx.save_for_backward(x)
            ctx.k = k
            return x ** 3 * k

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return g * 3 * x ** 2 * ctx.k, None

    x = tj.tensor([1.0, -2.0], requires_grad=True)
    y = Cube.apply(x, 2.0)
    assert y.grad_fn.name == "CubeBackward"
    (y * tj.tensor([1.0, 10.0])).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [6.0, 240.0])
    with tj.no_grad():
        assert not Cube.apply(x, 2.0).requires_grad


def test_compiled_arguments_requiring_grad_and_written_in_place():
    w = tj.tensor([1.0, 2.0], requires_grad=True)

    @tj.compile
    def f(w):
        (w * w).sum().backward()
        return w.grad * 1.0

    np.testing.assert_array_equal(f(w).numpy(), [2.0, 4.0])
    np.testing.assert_array_equal(w.grad.numpy(), [2.0, 4.0])
    f(w)
    np.testing.assert_array_equal(w.grad.numpy(), [4.0, 8.0])  # accumulated, as eager
    v = tj.tensor([1.0, 2.0])

    @tj.compile
    def g(v):
        v.add_(1)
        return v * 2

    np.testing.assert_array_equal(g(v).numpy(), [4.0, 6.0])
    np.testing.assert_array_equal(v.numpy(), [2.0, 3.0])  # written back, as eager would
    np.testing.assert_array_equal(g(v).numpy(), [6.0, 8.0])
    assert g.cache_info().misses == 1


@pytest.mark.parametrize("opt_name", ["SGD", "Adam"])
def test_compiled_module_step_equals_eager_step(opt_name):
    """nn.Module + tj.optim + loss.backward(), with dropout (global-state random numbers):
    the compiled step follows the eager trajectory exactly (same seeds, same draws)."""
    def build():
        tj.manual_seed(0)
        model = tj.nn.Sequential(tj.nn.Conv2d(1, 4, 3, padding=1), tj.nn.ReLU(),
                                 tj.nn.MaxPool2d(2), tj.nn.Flatten(), tj.nn.Dropout(0.25),
                                 tj.nn.Linear(4 * 4 * 4, 3))
        opt = (tj.optim.SGD(model.parameters(), lr=0.1, momentum=0.9) if opt_name == "SGD"
               else tj.optim.Adam(model.parameters(), lr=0.01))
        return model, opt

    rng = np.random.default_rng(5)
    x = tj.tensor(rng.standard_normal((6, 1, 8, 8)), dtype=tj.float32)
    y = tj.tensor(rng.integers(0, 3, 6))
    loss_fn = tj.nn.CrossEntropyLoss()

    def make_step(model, opt):
        def step(x, y):
            opt.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            opt.step()
            return loss
        return step

    model_e, opt_e = build()
    step_e = make_step(model_e, opt_e)
    eager = [float(step_e(x, y)) for _ in range(4)]
    model_c, opt_c = build()
    step_c = tj.compile(make_step(model_c, opt_c))
    comp = [float(step_c(x, y)) for _ in range(4)]
    np.testing.assert_allclose(comp, eager, rtol=1e-5, atol=1e-6)
    for (n, pe), (_, pc) in zip(model_e.named_parameters(), model_c.named_parameters()):
        np.testing.assert_allclose(pc.detach().numpy(), pe.detach().numpy(), rtol=1e-5,
                                   atol=1e-6, err_msg=n)
        np.testing.assert_allclose(pc.grad.numpy(), pe.grad.numpy(), rtol=1e-4, atol=1e-6)
    assert step_c.cache_info().misses == 1


def test_compiled_step_follows_lr_schedule_and_guards_other_hyperparameters():
    def run(compiled):
        p = tj.tensor([1.0], requires_grad=True)
        opt = tj.optim.SGD([p], lr=0.1, momentum=0.5)
        sched = tj.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=10.0)

        def step():
            opt.zero_grad()
            p.sum().backward()
            opt.step()
        f = tj.compile(step) if compiled else step
        f()
        sched.step()  # lr 0.1 -> 1.0: a runtime input of the compiled step, no retrace
        f()
        opt.param_groups[0]["momentum"] = 0.9  # a guarded constant: traces again
        f()
        return p.detach().numpy(), getattr(f, "cache_info", lambda: None)()

    (pe, _), (pc, info) = run(False), run(True)
    np.testing.assert_allclose(pc, pe, rtol=1e-6)
    np.testing.assert_allclose(pe, [1 - 0.1 - 1.5 - (0.9 * 1.5 + 1)], rtol=1e-6)
    assert info.misses == 2 and info.hits == 1
