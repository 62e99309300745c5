"""`tj.nn` against PyTorch itself, where it is installed (a second oracle after the numpy
references of test_nn.py): functional values and gradients, layer ``repr`` text, ``state_dict``
names, and a PyTorch model's weights loaded into the same tracejit model."""

import numpy as np
import pytest

import tracejit as tj
import tracejit.nn as nn
import tracejit.nn.functional as F

torch = pytest.importorskip("torch")
TF = torch.nn.functional
RNG = np.random.default_rng(99)


def check(tj_fn, torch_fn, *arrays, wrt=(0,), gtol=1e-9):
    """Same values, and the same gradient of ``sum(out * v)`` for the arguments `wrt`."""
    tjs = [tj.tensor(a) for a in arrays]
    ths = [torch.tensor(a, requires_grad=i in wrt) for i, a in enumerate(arrays)]
    want = torch_fn(*ths)
    got = tj_fn(*tjs)
    np.testing.assert_allclose(got.numpy(), want.detach().numpy(), rtol=1e-10, atol=1e-10)
    v = RNG.standard_normal(tuple(want.shape))
    (want * torch.tensor(v)).sum().backward()
    gs = tj.compile(tj.grad(lambda *xs: (tj_fn(*xs) * tj.tensor(v)).sum(), argnums=wrt),
                    device="interpreter")(*tjs)
    for i, g in zip(wrt, gs):
        np.testing.assert_allclose(g.numpy(), ths[i].grad.numpy(), rtol=gtol, atol=gtol)


def rand(*shape):
    return RNG.standard_normal(shape)


@pytest.mark.parametrize("kw", [
    {"stride": 2, "padding": 1},
    {"padding": "same", "dilation": 2, "groups": 2},
    {"stride": (1, 2), "padding": (2, 0), "dilation": (2, 1), "groups": 2},
])
def test_conv2d(kw):
    check(lambda x, w, b: F.conv2d(x, w, b, **kw), lambda x, w, b: TF.conv2d(x, w, b, **kw),
          rand(2, 4, 7, 6), rand(6, 4 // kw.get("groups", 1), 3, 2), rand(6), wrt=(0, 1, 2))


@pytest.mark.parametrize("kw", [
    {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True},
    {"kernel_size": (2, 3), "stride": (2, 1), "padding": (1, 0), "dilation": (2, 1)},
])
def test_pools(kw):
    x = rand(2, 3, 7, 6)
    check(lambda x: F.max_pool2d(x, **kw), lambda x: TF.max_pool2d(x, **kw), x)
    _, want = TF.max_pool2d(torch.tensor(x), return_indices=True, **kw)
    np.testing.assert_array_equal(F.max_pool2d(tj.tensor(x), return_indices=True, **kw)[1]
                                  .numpy(), want.numpy())
    kw.pop("dilation", None)
    for cip in (True, False):
        check(lambda x, cip=cip: F.avg_pool2d(x, count_include_pad=cip, **kw),
              lambda x, cip=cip: TF.avg_pool2d(x, count_include_pad=cip, **kw), x)
    check(lambda x: F.adaptive_avg_pool2d(x, (3, 4)), lambda x: TF.adaptive_avg_pool2d(x, (3, 4)),
          x)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_and_nll(reduction):
    x = rand(4, 5, 3)
    t = RNG.integers(0, 5, (4, 3))
    t[1, 1] = 2
    w = RNG.random(5) + 0.5
    for ls in (0.0, 0.3):
        check(lambda x, t, w, ls=ls: F.cross_entropy(x, t, w, ignore_index=2,
                                                     reduction=reduction, label_smoothing=ls),
              lambda x, t, w, ls=ls: TF.cross_entropy(x, t, w, ignore_index=2,
                                                      reduction=reduction, label_smoothing=ls),
              x, t, w)
        p = RNG.random((4, 5, 3))
        check(lambda x, p, w, ls=ls: F.cross_entropy(x, p, w, reduction=reduction,
                                                     label_smoothing=ls),
              lambda x, p, w, ls=ls: TF.cross_entropy(x, p, w, reduction=reduction,
                                                      label_smoothing=ls),
              x, p / p.sum(1, keepdims=True), w, wrt=(0, 1))
    check(lambda x, t: F.nll_loss(x, t, reduction=reduction),
          lambda x, t: TF.nll_loss(x, t, reduction=reduction), x, t)


def test_other_losses_and_activations():
    x, y = rand(3, 4), rand(3, 4)
    p = RNG.uniform(0.05, 0.95, (3, 4))
    w = RNG.random(4) + 0.5
    check(F.mse_loss, TF.mse_loss, x, y, wrt=(0, 1))
    check(lambda x, y: F.l1_loss(x, y, reduction="sum"),
          lambda x, y: TF.l1_loss(x, y, reduction="sum"), x, y, wrt=(0, 1))
    check(lambda x, y: F.smooth_l1_loss(x, y, beta=0.7), lambda x, y: TF.smooth_l1_loss(
        x, y, beta=0.7), x, y, wrt=(0, 1))
    check(lambda x, y: F.huber_loss(x, y, delta=0.7), lambda x, y: TF.huber_loss(
        x, y, delta=0.7), x, y, wrt=(0, 1))
    check(lambda p, y, w: F.binary_cross_entropy(p, y, w), lambda p, y, w:
          TF.binary_cross_entropy(p, y, w), p, RNG.random((3, 4)), w)
    check(lambda x, y, w: F.binary_cross_entropy_with_logits(x, y, pos_weight=w),
          lambda x, y, w: TF.binary_cross_entropy_with_logits(x, y, pos_weight=w),
          x * 10, RNG.random((3, 4)), w, wrt=(0, 1))
    for name in ("relu", "relu6", "elu", "selu", "celu", "silu", "mish", "gelu", "softsign",
                 "logsigmoid", "hardtanh", "hardsigmoid", "hardswish", "leaky_relu"):
        # (PyTorch's hardsigmoid derivative uses 1/6 rounded to float32)
        check(getattr(F, name), getattr(TF, name), x * 4,
              gtol=1e-7 if name == "hardsigmoid" else 1e-9)
    check(lambda x: F.softmax(x, 0), lambda x: TF.softmax(x, 0), x)
    check(lambda x: F.log_softmax(x, 1), lambda x: TF.log_softmax(x, 1), x)
    check(lambda x: F.normalize(x, dim=0), lambda x: TF.normalize(x, dim=0), x)
    check(lambda x, w, b: F.layer_norm(x, (4,), w, b), lambda x, w, b: TF.layer_norm(
        x, (4,), w, b), x, w, w - 1, wrt=(0, 1, 2))


def test_reprs_match_pytorch():
    pairs = [
        ("Linear", (4, 3), {"bias": False}),
        ("Conv2d", (4, 6, (3, 5)), {"stride": 2, "padding": 1, "dilation": 2, "groups": 2,
                                    "padding_mode": "circular"}),
        ("Conv2d", (4, 6, 3), {"padding": "same"}),
        ("Conv2d", (4, 6, 3), {"padding": "valid"}),
        ("MaxPool2d", (3,), {"stride": 1, "padding": 1, "ceil_mode": True}),
        ("AvgPool2d", ((2, 3),), {}),
        ("AdaptiveAvgPool2d", (1,), {}),
        ("Flatten", (0, 2), {}), ("Unflatten", (1, (2, 3)), {}),
        ("Dropout", (0.1,), {}), ("Dropout2d", (), {}), ("Identity", (), {}),
        ("ReLU", (), {}), ("ReLU6", (), {"inplace": True}), ("LeakyReLU", (0.2, True), {}),
        ("ELU", (), {}), ("CELU", (0.5,), {}), ("SELU", (), {}), ("SiLU", (), {}),
        ("Mish", (), {}), ("GELU", ("tanh",), {}), ("Sigmoid", (), {}), ("Tanh", (), {}),
        ("Softplus", (2, 10), {}), ("Softsign", (), {}), ("LogSigmoid", (), {}),
        ("Hardtanh", (), {}), ("Hardsigmoid", (), {}), ("Hardswish", (), {}),
        ("Softmax", (), {}), ("Softmax", (1,), {}), ("Softmin", (0,), {}),
        ("LogSoftmax", (), {"dim": -1}),
        ("Embedding", (10, 4), {"padding_idx": -1}),
        ("BatchNorm1d", (3,), {"affine": False}), ("BatchNorm2d", (3,), {"momentum": None}),
        ("LayerNorm", ([2, 3],), {"elementwise_affine": False}),
        ("CrossEntropyLoss", (), {"label_smoothing": 0.1}), ("NLLLoss", (), {}),
        ("MSELoss", (), {}), ("L1Loss", (), {}), ("SmoothL1Loss", (), {}), ("HuberLoss", (), {}),
        ("BCELoss", (), {}), ("BCEWithLogitsLoss", (), {}),
    ]
    for name, args, kw in pairs:
        assert repr(getattr(nn, name)(*args, **kw)) == repr(getattr(torch.nn, name)(*args, **kw))


def _models(lib):
    return lib.nn.Sequential(
        lib.nn.Conv2d(2, 4, 3, padding=1), lib.nn.BatchNorm2d(4), lib.nn.ReLU(),
        lib.nn.MaxPool2d(2), lib.nn.Conv2d(4, 4, 3, groups=2, padding="same"),
        lib.nn.AdaptiveAvgPool2d(1), lib.nn.Flatten(),
        lib.nn.Linear(4, 8),
        lib.nn.GELU(), lib.nn.LayerNorm(8), lib.nn.Linear(8, 3))


def test_pytorch_weights_load_into_the_same_model():
    ref, mine = _models(torch), _models(tj)
    assert repr(ref) == repr(mine)
    sd = ref.state_dict()
    assert list(sd) == list(mine.state_dict())
    mine.load_state_dict({k: v.numpy() for k, v in sd.items()})
    x = RNG.standard_normal((2, 2, 8, 8)).astype(np.float32)
    ref.eval()
    mine.eval()
    np.testing.assert_allclose(mine(tj.tensor(x)).numpy(),
                               ref(torch.tensor(x)).detach().numpy(), rtol=1e-4, atol=1e-5)
    ref.train()
    mine.train()
    np.testing.assert_allclose(mine(tj.tensor(x)).numpy(),
                               ref(torch.tensor(x)).detach().numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(mine[1].running_var.numpy(), ref[1].running_var.numpy(),
                               rtol=1e-5)


def test_default_init_has_pytorch_bounds():
    for lib_layer in ("Linear", "Conv2d"):
        args = (30, 20) if lib_layer == "Linear" else (6, 4, 3)
        mine, ref = getattr(nn, lib_layer)(*args), getattr(torch.nn, lib_layer)(*args)
        for a, b in zip(mine.parameters(), ref.parameters()):
            assert a.shape == tuple(b.shape)
            bound = float(b.detach().abs().max())
            assert float(a.abs().max()) <= 1 / np.sqrt(args[0] * (9 if len(args) == 3 else 1))
            assert float(a.abs().max()) > 0.5 * bound
