"""tj.optim: optimizers and lr schedules against hand-written numpy updates (and torch.optim
where torch is installed), state handling, argument errors, and traceability of step()."""

import copy
import math
import warnings

import numpy as np
import pytest

import tracejit as tj
from tracejit.optim import lr_scheduler

TOL = {np.float32: dict(rtol=2e-5, atol=2e-6), np.float64: dict(rtol=1e-12, atol=1e-13)}
TJ_DTYPE = {np.float32: tj.float32, np.float64: tj.float64}


# -- numpy references (the algorithm boxes of PyTorch's docs, in plain numpy) ----------------

def sgd_ref(p, grads, lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False,
            maximize=False):
    p, buf = p.copy(), None
    for g in grads:
        g = -g if maximize else g  # PyTorch negates before the weight decay
        if weight_decay:
            g = g + weight_decay * p
        if momentum:
            buf = g.copy() if buf is None else momentum * buf + (1 - dampening) * g
            g = g + momentum * buf if nesterov else buf
        p = p - lr * g
    return p, buf


def adam_ref(p, grads, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
             amsgrad=False, maximize=False, decoupled=False):
    b1, b2 = betas
    p = p.copy()
    m, v, vmax = np.zeros_like(p), np.zeros_like(p), np.zeros_like(p)
    for t, g in enumerate(grads, 1):
        g = -g if maximize else g
        if weight_decay and decoupled:
            p = p * (1 - lr * weight_decay)
        elif weight_decay:
            g = g + weight_decay * p
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        if amsgrad:
            vmax = np.maximum(vmax, v)
        m_hat = m / (1 - b1 ** t)
        v_hat = (vmax if amsgrad else v) / (1 - b2 ** t)
        p = p - lr * m_hat / (np.sqrt(v_hat) + eps)
    return p, m, v


def _data(dtype, shape=(3, 4), steps=5, seed=0):
    rng = np.random.default_rng(seed)
    p0 = rng.standard_normal(shape).astype(dtype)
    grads = [rng.standard_normal(shape).astype(dtype) for _ in range(steps)]
    return p0, grads


def _run(opt_cls, p0, grads, **kw):
    p = tj.tensor(p0, requires_grad=True)
    opt = opt_cls([p], **kw)
    for g in grads:
        p.grad = tj.tensor(g)
        opt.step()
    return p, opt


def _ids(kw):
    return ",".join(f"{k}={v}" for k, v in kw.items())


SGD_CASES = [
    dict(lr=0.1),
    dict(lr=0.1, weight_decay=0.05),
    dict(lr=0.05, momentum=0.9),
    dict(lr=0.05, momentum=0.9, dampening=0.5),
    dict(lr=0.05, momentum=0.8, nesterov=True),
    dict(lr=0.05, momentum=0.9, weight_decay=0.1, nesterov=True, maximize=True),
    dict(lr=0.1, weight_decay=0.5, maximize=True),
    dict(lr=0.05, momentum=0.5, dampening=0.9, weight_decay=0.01, maximize=True),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kw", SGD_CASES, ids=_ids)
def test_sgd_matches_numpy(kw, dtype):
    p0, grads = _data(dtype)
    p, opt = _run(tj.optim.SGD, p0, grads, **kw)
    ref, buf = sgd_ref(p0, grads, **kw)
    assert p.dtype == TJ_DTYPE[dtype]
    np.testing.assert_allclose(p.numpy(), ref, **TOL[dtype])
    if kw.get("momentum"):
        np.testing.assert_allclose(opt.state[p]["momentum_buffer"].numpy(), buf, **TOL[dtype])
        assert float(opt.state[p]["step"]) == len(grads)
    else:
        assert opt.state[p] == {}


ADAM_CASES = [
    dict(lr=0.01),
    dict(lr=0.05, betas=(0.5, 0.9), eps=1e-6),
    dict(lr=0.01, weight_decay=0.1),
    dict(lr=0.01, amsgrad=True),
    dict(lr=0.01, maximize=True, weight_decay=0.05),
    dict(lr=0.02, betas=(0.3, 0.7), amsgrad=True, maximize=True, weight_decay=0.2),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("decoupled", [False, True], ids=["Adam", "AdamW"])
@pytest.mark.parametrize("kw", ADAM_CASES, ids=_ids)
def test_adam_matches_numpy(kw, decoupled, dtype):
    p0, grads = _data(dtype, steps=6)
    cls = tj.optim.AdamW if decoupled else tj.optim.Adam
    p, opt = _run(cls, p0, grads, **kw)
    ref_kw = {"weight_decay": 1e-2 if decoupled else 0.0, **kw}  # AdamW's default decays
    ref, m, v = adam_ref(p0, grads, decoupled=decoupled, **ref_kw)
    np.testing.assert_allclose(p.numpy(), ref, **TOL[dtype])
    st = opt.state[p]
    np.testing.assert_allclose(st["exp_avg"].numpy(), m, **TOL[dtype])
    np.testing.assert_allclose(st["exp_avg_sq"].numpy(), v, **TOL[dtype])
    assert st["step"].dtype == tj.float32 and st["step"].shape == () and float(st["step"]) == 6
    assert ("max_exp_avg_sq" in st) == kw.get("amsgrad", False)


def test_adamw_default_weight_decay_is_decoupled_one_percent():
    p0, grads = _data(np.float64)
    p, opt = _run(tj.optim.AdamW, p0, grads, lr=0.1)
    assert opt.defaults["weight_decay"] == 1e-2
    assert tj.optim.Adam([tj.zeros(1, requires_grad=True)]).defaults["weight_decay"] == 0
    np.testing.assert_allclose(p.numpy(), adam_ref(p0, grads, lr=0.1, weight_decay=1e-2,
                                                   decoupled=True)[0], rtol=1e-12)


# -- state: eager, in place, skipped without grad ----------------------------------------------

def test_state_is_allocated_eagerly_and_updated_in_place():
    a = np.arange(4.0, dtype=np.float32)
    p = tj.from_numpy(a).requires_grad_()
    opt = tj.optim.Adam([p], lr=0.1, amsgrad=True)
    st = opt.state[p]
    assert sorted(st) == ["exp_avg", "exp_avg_sq", "max_exp_avg_sq", "step"]
    before = {k: v for k, v in st.items()}
    for _ in range(3):
        p.grad = tj.ones(4)
        opt.step()
    assert all(opt.state[p][k] is before[k] for k in before)  # the same buffers, updated
    np.testing.assert_allclose(a, np.arange(4.0) - 0.3, rtol=1e-5)  # p shares a's memory
    sgd = tj.optim.SGD([tj.zeros(2, requires_grad=True)], momentum=0.9)
    (st,) = sgd.state.values()
    assert st["momentum_buffer"].shape == (2,) and float(st["step"]) == 0.0


def test_params_without_grad_are_skipped():
    a = tj.tensor([1.0, 2.0], requires_grad=True)
    b = tj.tensor([3.0], requires_grad=True)
    opt = tj.optim.SGD([a, b], lr=0.1, momentum=0.9, dampening=0.5)
    a.grad = tj.tensor([1.0, 1.0])
    opt.step()
    opt.step()
    assert b.tolist() == [3.0] and float(opt.state[b]["step"]) == 0.0
    assert opt.state[b]["momentum_buffer"].tolist() == [0.0]
    # b's first step comes later and still uses buf = grad (no dampening on the first step)
    a.grad, b.grad = None, tj.tensor([2.0])
    opt.step()
    np.testing.assert_allclose(b.numpy(), [3.0 - 0.1 * 2.0], rtol=1e-6)
    np.testing.assert_allclose(a.numpy(), sgd_ref(np.array([1.0, 2.0]), [np.ones(2)] * 2,
                                                  lr=0.1, momentum=0.9, dampening=0.5)[0],
                               rtol=1e-6)
    adam = tj.optim.Adam([a, b])
    a.grad, b.grad = tj.ones(2), None
    adam.step()
    assert float(adam.state[a]["step"]) == 1 and float(adam.state[b]["step"]) == 0


def test_zero_grad_to_none_and_to_zeros():
    p, q = tj.ones(2, requires_grad=True), tj.ones(3, requires_grad=True)
    opt = tj.optim.SGD([p, q], lr=0.1)
    p.grad = tj.tensor([1.0, 2.0])
    g = p.grad
    opt.zero_grad(set_to_none=False)
    assert p.grad is g and p.grad.tolist() == [0.0, 0.0] and q.grad is None
    opt.zero_grad()
    assert p.grad is None and q.grad is None


def test_param_groups_with_their_own_lr():
    p0, grads = _data(np.float64, steps=3)
    a, b = tj.tensor(p0, requires_grad=True), tj.tensor(p0, requires_grad=True)
    opt = tj.optim.SGD([{"params": [a]}, {"params": b, "lr": 0.5, "momentum": 0.5}],
                       lr=0.1, momentum=0.9)
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.5]
    assert [g["momentum"] for g in opt.param_groups] == [0.9, 0.5]
    assert opt.param_groups[1]["params"][0] is b  # a lone Tensor becomes a one-item list
    for g in grads:
        a.grad, b.grad = tj.tensor(g), tj.tensor(g)
        opt.step()
    np.testing.assert_allclose(a.numpy(), sgd_ref(p0, grads, 0.1, momentum=0.9)[0], rtol=1e-12)
    np.testing.assert_allclose(b.numpy(), sgd_ref(p0, grads, 0.5, momentum=0.5)[0], rtol=1e-12)
    c = tj.zeros(2, requires_grad=True)
    opt.add_param_group({"params": [c], "lr": 1.0})
    assert opt.param_groups[2]["momentum"] == 0.9 and "momentum_buffer" in opt.state[c]


def test_changed_lr_takes_effect():
    p = tj.tensor([1.0], requires_grad=True)
    opt = tj.optim.SGD([p], lr=0.1)
    p.grad = tj.tensor([1.0])
    opt.step()
    opt.param_groups[0]["lr"] = 0.5
    opt.step()
    np.testing.assert_allclose(p.numpy(), [1.0 - 0.1 - 0.5], rtol=1e-6)


def test_step_closure_returns_the_loss_with_grad_enabled():
    p = tj.tensor([2.0], requires_grad=True)
    opt = tj.optim.SGD([p], lr=0.25)

    def closure():
        assert tj.is_grad_enabled()
        p.grad = p.detach() * 2  # d/dp p^2
        return (p.detach() ** 2).sum()

    with tj.no_grad():
        loss = opt.step(closure)
    assert float(loss) == 4.0 and p.tolist() == [1.0]
    assert opt.step() is None


# -- state dicts -------------------------------------------------------------------------------

@pytest.mark.parametrize("make", [
    lambda ps: tj.optim.SGD(ps, lr=0.1, momentum=0.9, dampening=0.2),
    lambda ps: tj.optim.Adam(ps, lr=0.01, amsgrad=True),
    lambda ps: tj.optim.AdamW([{"params": ps[:1]}, {"params": ps[1:], "lr": 0.1}], lr=0.01),
], ids=["SGD", "Adam", "AdamW-groups"])
def test_state_dict_round_trip_resumes_identically(make):
    rng = np.random.default_rng(3)
    p0 = [rng.standard_normal(s) for s in ((3,), (2, 2))]
    grads = [[rng.standard_normal(s) for s in ((3,), (2, 2))] for _ in range(6)]
    ps = [tj.tensor(x, requires_grad=True) for x in p0]
    opt = make(ps)
    for gs in grads[:3]:
        for p, g in zip(ps, gs):
            p.grad = tj.tensor(g)
        opt.step()
    sd = opt.state_dict()
    saved = copy.deepcopy(sd)
    assert sorted(sd["state"]) == [0, 1]
    assert [g["params"] for g in sd["param_groups"]] in ([[0, 1]], [[0], [1]])
    qs = [tj.tensor(p.numpy().copy(), requires_grad=True) for p in ps]
    other = make(qs)
    buffers = {k: v for k, v in other.state[qs[0]].items()}
    other.load_state_dict(sd)
    assert all(other.state[qs[0]][k] is v for k, v in buffers.items())  # kept, filled
    for gs in grads[3:]:
        for p, q, g in zip(ps, qs, gs):
            p.grad, q.grad = tj.tensor(g), tj.tensor(g)
        opt.step()
        other.step()
    for p, q in zip(ps, qs):
        np.testing.assert_array_equal(p.numpy(), q.numpy())
    # the saved dict is a snapshot: later steps changed neither it nor what was loaded from it
    for i, st in saved["state"].items():
        for k, v in st.items():
            np.testing.assert_array_equal(sd["state"][i][k].numpy(), v.numpy())


def test_load_state_dict_restores_hyper_parameters_and_checks_sizes():
    p = tj.zeros(2, requires_grad=True)
    opt = tj.optim.Adam([p], lr=0.1)
    sd = opt.state_dict()
    sd["param_groups"][0]["lr"] = 0.5
    opt.load_state_dict(sd)
    assert opt.param_groups[0]["lr"] == 0.5 and opt.param_groups[0]["params"][0] is p
    with pytest.raises(ValueError, match="different number of parameter groups"):
        tj.optim.Adam([{"params": [p]}, {"params": [tj.zeros(1, requires_grad=True)]}]
                      ).load_state_dict(sd)
    with pytest.raises(ValueError, match="doesn't match the size of optimizer's group"):
        tj.optim.Adam([p, tj.zeros(1, requires_grad=True)]).load_state_dict(sd)
    # state tensors take the parameter's dtype, except the step count
    q = tj.zeros(2, dtype=tj.float64, requires_grad=True)
    opt64 = tj.optim.Adam([q])
    opt64.load_state_dict(sd)
    assert opt64.state[q]["exp_avg"].dtype == tj.float64
    assert opt64.state[q]["step"].dtype == tj.float32


def test_sgd_loads_a_buffer_without_a_step_count_as_already_stepped():
    p = tj.tensor([1.0], requires_grad=True)
    opt = tj.optim.SGD([p], lr=0.1, momentum=0.5, dampening=0.5)
    opt.load_state_dict({"state": {0: {"momentum_buffer": tj.tensor([2.0])}},
                         "param_groups": [dict(opt.param_groups[0], params=[0])]})
    p.grad = tj.tensor([1.0])
    opt.step()  # buf = 0.5 * 2 + 0.5 * 1, not the first-step rule
    np.testing.assert_allclose(p.numpy(), [1.0 - 0.1 * 1.5], rtol=1e-6)


# -- traceability ------------------------------------------------------------------------------

def test_step_never_reads_tensor_values(monkeypatch):
    p = tj.tensor([1.0, 2.0], requires_grad=True)
    opts = [tj.optim.SGD([p], lr=0.1, momentum=0.9, dampening=0.1, nesterov=False),
            tj.optim.Adam([p], amsgrad=True, weight_decay=0.1), tj.optim.AdamW([p])]

    def boom(*a, **k):
        raise AssertionError("step() read a tensor's value")
    for name in ("__bool__", "__float__", "__int__", "item", "tolist", "numpy"):
        monkeypatch.setattr(tj.Tensor, name, boom)
    for opt in opts:
        p.grad = tj.ones(2)
        opt.step()


@pytest.mark.parametrize("make", [
    lambda p: tj.optim.SGD([p], lr=0.1, momentum=0.9, dampening=0.3, weight_decay=0.01),
    lambda p: tj.optim.SGD([p], lr=0.1, momentum=0.9, nesterov=True),
    lambda p: tj.optim.Adam([p], lr=0.1, amsgrad=True),
    lambda p: tj.optim.AdamW([p], lr=0.1, maximize=True),
], ids=["SGD-dampening", "SGD-nesterov", "Adam-amsgrad", "AdamW"])
def test_steps_trace_into_one_graph(make):
    """A function that builds an optimizer over its argument and steps it traces without
    concretizing anything, and the graph computes what the eager steps compute."""

    def train(p, g1, g2, g3):
        opt = make(p)
        for g in (g1, g2, g3):
            p.grad = g
            opt.step()
        return p

    p0, grads = _data(np.float32, shape=(5,), steps=3)
    graph = tj.make_graph(train)(*(tj.zeros(5) for _ in range(4)))
    eager = train(tj.tensor(p0), *(tj.tensor(g) for g in grads))
    np.testing.assert_allclose(graph(p0, *grads).numpy(), eager.numpy(), rtol=1e-6, atol=1e-7)


# -- lr schedules ------------------------------------------------------------------------------

def _lrs(sched, opt, n):
    out = [sched.get_last_lr()]
    for _ in range(n):
        opt.step()
        sched.step()
        out.append(sched.get_last_lr())
        assert out[-1] == [g["lr"] for g in opt.param_groups]
    return np.array(out)


def _two_groups(lr0=0.1, lr1=0.02):
    return tj.optim.SGD([{"params": [tj.zeros(1, requires_grad=True)]},
                         {"params": [tj.zeros(1, requires_grad=True)], "lr": lr1}], lr=lr0)


@pytest.mark.parametrize("name", ["step", "exp", "cos", "lambda"])
def test_schedules_match_closed_forms(name):
    opt = _two_groups()
    base = np.array([0.1, 0.02])
    e = np.arange(26)[:, None]
    if name == "step":
        sched = lr_scheduler.StepLR(opt, step_size=3, gamma=0.5)
        ref = base * 0.5 ** (e // 3)
    elif name == "exp":
        sched = lr_scheduler.ExponentialLR(opt, gamma=0.9)
        ref = base * 0.9 ** e
    elif name == "cos":
        sched = lr_scheduler.CosineAnnealingLR(opt, T_max=10, eta_min=0.001)
        ref = 0.001 + (base - 0.001) * (1 + np.cos(np.pi * e / 10)) / 2
    else:
        sched = lr_scheduler.LambdaLR(opt, [lambda k: 0.95 ** k, lambda k: 1 / (k + 1)])
        ref = base * np.concatenate([0.95 ** e, 1 / (e + 1)], axis=1)
    np.testing.assert_allclose(_lrs(sched, opt, 25), ref, rtol=1e-9, atol=1e-12)
    assert all(g["initial_lr"] == b for g, b in zip(opt.param_groups, base))


def test_scheduled_lr_drives_the_optimizer():
    p = tj.tensor([0.0], dtype=tj.float64, requires_grad=True)
    opt = tj.optim.SGD([p], lr=1.0)
    sched = lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    for _ in range(4):
        p.grad = tj.tensor([1.0], dtype=tj.float64)
        opt.step()
        sched.step()
    assert p.tolist() == [-(1 + 0.5 + 0.25 + 0.125)]


def test_scheduler_errors_and_warnings():
    opt = tj.optim.SGD([tj.zeros(1, requires_grad=True)], lr=0.1)
    with pytest.raises(KeyError, match=r"param 'initial_lr' is not specified in param_groups\[0\]"):
        lr_scheduler.StepLR(opt, step_size=2, last_epoch=3)
    with pytest.raises(ValueError, match="Expected 1 lr_lambdas, but got 2"):
        lr_scheduler.LambdaLR(opt, [lambda e: 1.0, lambda e: 1.0])
    sched = lr_scheduler.ExponentialLR(opt, gamma=0.5)
    with pytest.warns(UserWarning, match=r"before `optimizer.step\(\)`"):
        sched.step()
    with pytest.warns(UserWarning, match="get_last_lr"):
        sched.get_lr()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        opt.step()
        sched.step()


def test_resumed_schedule_continues():
    opt = tj.optim.SGD([tj.zeros(1, requires_grad=True)], lr=1.0)
    sched = lr_scheduler.CosineAnnealingLR(opt, T_max=8)
    _lrs(sched, opt, 3)
    state = sched.state_dict()
    assert "optimizer" not in state and state["last_epoch"] == 3
    again = lr_scheduler.CosineAnnealingLR(opt, T_max=8, last_epoch=3)  # closed form at 4
    assert again.last_epoch == 4
    assert math.isclose(again.get_last_lr()[0], (1 + math.cos(math.pi * 4 / 8)) / 2)
    again.load_state_dict(state)
    assert again.last_epoch == 3


# -- argument errors and the rest of the surface -----------------------------------------------

P = [tj.zeros(1, requires_grad=True)]


@pytest.mark.parametrize("make,exc,msg", [
    (lambda: tj.optim.SGD(P, lr=-1), ValueError, "Invalid learning rate: -1"),
    (lambda: tj.optim.SGD(P, momentum=-0.5), ValueError, "Invalid momentum value: -0.5"),
    (lambda: tj.optim.SGD(P, weight_decay=-1e-3), ValueError, "Invalid weight_decay value"),
    (lambda: tj.optim.SGD(P, nesterov=True), ValueError,
     "Nesterov momentum requires a momentum and zero dampening"),
    (lambda: tj.optim.SGD(P, momentum=0.9, dampening=0.1, nesterov=True), ValueError,
     "Nesterov momentum requires a momentum and zero dampening"),
    (lambda: tj.optim.Adam(P, lr=-0.1), ValueError, "Invalid learning rate: -0.1"),
    (lambda: tj.optim.Adam(P, eps=-1.0), ValueError, "Invalid epsilon value: -1.0"),
    (lambda: tj.optim.Adam(P, betas=(1.0, 0.9)), ValueError,
     r"Invalid beta parameter at index 0: 1.0"),
    (lambda: tj.optim.AdamW(P, betas=(0.9, -0.1)), ValueError,
     r"Invalid beta parameter at index 1: -0.1"),
    (lambda: tj.optim.AdamW(P, weight_decay=-1), ValueError, "Invalid weight_decay value: -1"),
    (lambda: tj.optim.SGD(P[0]), TypeError,
     "should be an iterable of Tensors or dicts, but got tracejit.Tensor"),
    (lambda: tj.optim.SGD([]), ValueError, "optimizer got an empty parameter list"),
    (lambda: tj.optim.SGD([{"params": {P[0]}}]), TypeError, "ordered collections"),
    (lambda: tj.optim.SGD([1.0]), TypeError, "can only optimize Tensors, but one of the params"),
    (lambda: tj.optim.SGD([{"params": P}, {"params": P}]), ValueError,
     "some parameters appear in more than one parameter group"),
    (lambda: tj.optim.SGD(P).add_param_group([P]), TypeError, "param_group must be a dict"),
])
def test_argument_errors(make, exc, msg):
    with pytest.raises(exc, match=msg):
        make()


def test_non_leaf_and_required_parameters():
    class Opt(tj.optim.Optimizer):
        def __init__(self, params, lr=tj.optim.required):
            super().__init__(params, dict(lr=lr))

    with pytest.raises(ValueError, match="didn't specify a value of required optimization "
                                         "parameter lr"):
        Opt(P)
    assert Opt([{"params": P, "lr": 0.3}]).param_groups[0]["lr"] == 0.3
    p = tj.ones(2, requires_grad=True)
    q = p * 2
    if not q.is_leaf:  # once eager autograd records grad_fn
        with pytest.raises(ValueError, match="can't optimize a non-leaf Tensor"):
            tj.optim.SGD([q])


def test_repr_lists_groups():
    opt = tj.optim.SGD(P, lr=0.1, momentum=0.9)
    text = repr(opt)
    assert text.startswith("SGD (\nParameter Group 0\n") and "    lr: 0.1\n" in text
    assert "    momentum: 0.9\n" in text and text.endswith(")")


def test_docstring_examples():
    import doctest
    import importlib

    attempted = 0
    for name in ("", ".optimizer", ".sgd", ".adam", ".lr_scheduler"):
        mod = importlib.import_module("tracejit.optim" + name)
        res = doctest.testmod(mod, optionflags=doctest.NORMALIZE_WHITESPACE)
        assert res.failed == 0, name
        attempted += res.attempted
    assert attempted >= 40


# -- against torch.optim -----------------------------------------------------------------------

TORCH_CASES = [
    ("SGD", dict(lr=0.05, momentum=0.9, dampening=0.3, weight_decay=0.01), "StepLR"),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True, maximize=True, weight_decay=0.1), None),
    ("Adam", dict(lr=0.01, amsgrad=True, weight_decay=0.1), "CosineAnnealingLR"),
    ("Adam", dict(lr=0.02, betas=(0.8, 0.95), maximize=True), "ExponentialLR"),
    ("AdamW", dict(lr=0.01, weight_decay=0.05), "LambdaLR"),
]
SCHED = {"StepLR": dict(step_size=2, gamma=0.5), "CosineAnnealingLR": dict(T_max=4),
         "ExponentialLR": dict(gamma=0.8), "LambdaLR": dict(lr_lambda=lambda e: 1 / (1 + e))}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name,kw,sched", TORCH_CASES)
def test_trajectories_match_torch(name, kw, sched, dtype):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(7)
    shapes = [(4, 3), (3,)]
    p0 = [rng.standard_normal(s).astype(dtype) for s in shapes]
    tps = [torch.tensor(x, requires_grad=True) for x in p0]
    jps = [tj.tensor(x, requires_grad=True) for x in p0]
    # two groups, the second with its own lr; the third step leaves the bias without a grad
    topt = getattr(torch.optim, name)([{"params": tps[:1]}, {"params": tps[1:], "lr": 0.03}],
                                      **kw)
    jopt = getattr(tj.optim, name)([{"params": jps[:1]}, {"params": jps[1:], "lr": 0.03}], **kw)
    if sched:
        tsch = getattr(torch.optim.lr_scheduler, sched)(topt, **SCHED[sched])
        jsch = getattr(lr_scheduler, sched)(jopt, **SCHED[sched])
    for step in range(8):
        for tp, jp, s in zip(tps, jps, shapes):
            g = rng.standard_normal(s).astype(dtype)
            if step == 2 and len(s) == 1:
                tp.grad, jp.grad = None, None
            else:
                tp.grad, jp.grad = torch.tensor(g), tj.tensor(g)
        topt.step()
        jopt.step()
        if sched:
            tsch.step()
            jsch.step()
            np.testing.assert_allclose(jsch.get_last_lr(), tsch.get_last_lr(), rtol=1e-12)
    for tp, jp in zip(tps, jps):
        np.testing.assert_allclose(jp.numpy(), tp.detach().numpy(), **TOL[dtype])
    tsd, jsd = topt.state_dict(), jopt.state_dict()
    assert sorted(tsd["state"]) == sorted(jsd["state"])
    for i, st in tsd["state"].items():
        for k, v in st.items():
            np.testing.assert_allclose(jsd["state"][i][k].numpy(), v.numpy(), **TOL[dtype])
    for tg, jg in zip(tsd["param_groups"], jsd["param_groups"]):
        assert {k: v for k, v in tg.items() if k in jg} == jg
