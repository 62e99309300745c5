"""`tj.nn.functional` losses against numpy references written here (loops over samples for
the class losses), in float32 and float64, over reductions, class weights, ignore_index, label
smoothing, spatial and probability targets; gradients against central differences (float64);
compiled against eager; PyTorch's error messages."""

import numpy as np
import pytest
from test_nn import (  # noqa: F401  (_reseed, numpy_eager: fixtures used here too)
    RNG,
    T,
    _reseed,
    close,
    err,
    fd_check,
    numpy_eager,
    rand,
    ref_log_softmax,
)

import tracejit as tj
import tracejit.nn.functional as F

# -- numpy references -------------------------------------------------------------------------

def ref_cross_entropy(x, t, weight=None, ignore_index=-100, reduction="mean",
                      label_smoothing=0.0):
    """Loops over samples; class dim 1 (0 for unbatched input)."""
    if x.ndim == 1:
        out = ref_cross_entropy(x[None], np.asarray(t)[None], weight, ignore_index, reduction,
                                label_smoothing)
        return out[0] if reduction == "none" else out
    c = x.shape[1]
    xs = np.moveaxis(x, 1, -1).reshape(-1, c)          # (M, C)
    lp = ref_log_softmax(xs, 1)
    w = np.ones(c) if weight is None else weight
    eps = label_smoothing
    if np.issubdtype(np.asarray(t).dtype, np.floating):  # class probabilities
        ts = np.moveaxis(t, 1, -1).reshape(-1, c) * (1 - eps) + eps / c
        losses = np.array([-(w * ts[m] * lp[m]).sum() for m in range(len(lp))])
        losses = losses.reshape((x.shape[0],) + x.shape[2:])
        return {"none": losses, "sum": losses.sum(), "mean": losses.mean()}[reduction]
    ts = np.asarray(t).reshape(-1)
    losses, wsum = np.zeros(len(ts)), 0.0
    for m, k in enumerate(ts):
        if k == ignore_index:
            continue
        nll = -w[k] * lp[m, k]
        smooth = -(w * lp[m]).sum() / c
        losses[m] = (1 - eps) * nll + eps * smooth
        wsum += w[k]
    losses = losses.reshape(np.shape(t))
    return {"none": losses, "sum": losses.sum(), "mean": losses.sum() / wsum}[reduction]


def ref_nll_loss(x, t, weight=None, ignore_index=-100, reduction="mean"):
    c = x.shape[1] if x.ndim > 1 else x.shape[0]
    w = np.ones(c) if weight is None else weight
    xs = np.moveaxis(x, 1, -1).reshape(-1, c) if x.ndim > 1 else x[None]
    ts = np.asarray(t).reshape(-1)
    losses = np.array([0.0 if k == ignore_index else -w[k] * xs[m, k] for m, k in enumerate(ts)])
    wsum = sum(w[k] for k in ts if k != ignore_index)
    losses = losses.reshape(np.shape(t))
    return {"none": losses, "sum": losses.sum(), "mean": losses.sum() / wsum}[reduction]


def ref_reduce(loss, reduction):
    return {"none": loss, "sum": loss.sum(), "mean": loss.mean()}[reduction]


def ref_bce(p, t, weight=None, reduction="mean"):
    loss = -(t * np.maximum(np.log(p), -100) + (1 - t) * np.maximum(np.log(1 - p), -100))
    return ref_reduce(loss if weight is None else loss * weight, reduction)


def ref_bce_logits(x, t, weight=None, reduction="mean", pos_weight=None):
    sig = 1 / (1 + np.exp(-x))
    pw = 1.0 if pos_weight is None else pos_weight
    loss = -(pw * t * np.log(sig) + (1 - t) * np.log(1 - sig))
    return ref_reduce(loss if weight is None else loss * weight, reduction)


# -- losses ------------------------------------------------------------------------------------

CE_CASES = [
    # (input shape, target kind)
    ((5, 4), "index"),
    ((3, 4, 2, 3), "index"),  # spatial targets (N, d1, d2)
    ((4,), "index"),  # unbatched
    ((5, 4), "prob"),
    ((3, 4, 2), "prob"),
]


def _ce_args(shape, kind, dtype=np.float64):
    x = rand(*shape, dtype=dtype) * 2
    cdim = 1 if len(shape) > 1 else 0
    c = shape[cdim]
    if kind == "prob":
        t = RNG.random(shape).astype(dtype)
        return x, t / t.sum(axis=cdim, keepdims=True), c
    tshape = shape[:1] + shape[2:] if len(shape) > 1 else ()
    t = RNG.integers(0, c, tshape)
    if t.ndim:
        t.flat[0] = -100 if t.size > 2 else t.flat[0]  # one ignored target
    return x, t, c


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape,kind", CE_CASES)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.25])
def test_cross_entropy(shape, kind, reduction, weighted, label_smoothing, dtype):
    x, t, c = _ce_args(shape, kind, dtype)
    w = RNG.random(c).astype(dtype) + 0.5 if weighted else None
    got = F.cross_entropy(T(x), T(t), weight=None if w is None else T(w), reduction=reduction,
                          label_smoothing=label_smoothing)
    want = ref_cross_entropy(x.astype(np.float64), t, None if w is None else w.astype(np.float64),
                             reduction=reduction, label_smoothing=label_smoothing)
    close(got, want, dtype)


def test_cross_entropy_ignore_index_and_all_ignored():
    x = rand(4, 3)
    t = np.array([0, 7, 2, 7])
    close(F.cross_entropy(T(x), T(t), ignore_index=7), ref_cross_entropy(x, t, ignore_index=7))
    close(F.cross_entropy(T(x), T(t), ignore_index=7, reduction="none"),
          ref_cross_entropy(x, t, ignore_index=7, reduction="none"))
    assert np.isnan(F.cross_entropy(T(x), T(np.full(4, -100))).item())  # 0 / 0, like PyTorch


def test_cross_entropy_ignored_rows_stay_finite_with_infinite_logits():
    x = np.array([[-np.inf, 0.0], [1.0, 2.0]])
    t = np.array([-100, 1])
    loss = F.cross_entropy(T(x), T(t))
    close(loss, ref_log_softmax(x[1:], 1)[0, 1] * -1)
    g = tj.grad(lambda x: F.cross_entropy(x, T(t)))(T(x))
    assert np.isfinite(g.numpy()).all()


@pytest.mark.parametrize("shape,kind", CE_CASES)
def test_cross_entropy_grad(shape, kind):
    x, t, c = _ce_args(shape, kind)
    w = RNG.random(c) + 0.5
    fd_check(lambda x: F.cross_entropy(x, T(t), weight=T(w), label_smoothing=0.1,
                                       reduction="none"),
             lambda x: ref_cross_entropy(x, t, w, label_smoothing=0.1, reduction="none"), (x,))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("shape", [(5, 4), (3, 4, 2), (4,)])
def test_nll_loss(shape, reduction):
    x, t, c = _ce_args(shape, "index")
    lp = ref_log_softmax(x, 1 if len(shape) > 1 else 0)
    w = RNG.random(c) + 0.5
    close(F.nll_loss(T(lp), T(t), reduction=reduction), ref_nll_loss(lp, t, reduction=reduction))
    close(F.nll_loss(T(lp), T(t), T(w), reduction=reduction),
          ref_nll_loss(lp, t, w, reduction=reduction))
    fd_check(lambda x: F.nll_loss(x, T(t), T(w), reduction=reduction),
             lambda x: np.asarray(ref_nll_loss(x, t, w, reduction=reduction)), (lp,))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_regression_losses(reduction, dtype):
    x, t, w = rand(3, 4, dtype=dtype), rand(3, 4, dtype=dtype), RNG.random(4).astype(dtype)
    x64, t64 = x.astype(np.float64), t.astype(np.float64)
    d = x64 - t64
    close(F.mse_loss(T(x), T(t), reduction=reduction), ref_reduce(d * d, reduction), dtype)
    close(F.mse_loss(T(x), T(t), reduction=reduction, weight=T(w)),
          ref_reduce(d * d * w, reduction), dtype)
    close(F.l1_loss(T(x), T(t), reduction=reduction), ref_reduce(np.abs(d), reduction), dtype)
    a = np.abs(d)
    close(F.smooth_l1_loss(T(x), T(t), reduction=reduction, beta=0.5),
          ref_reduce(np.where(a < 0.5, 0.5 * a * a / 0.5, a - 0.25), reduction), dtype)
    close(F.huber_loss(T(x), T(t), reduction=reduction, delta=0.5),
          ref_reduce(np.where(a <= 0.5, 0.5 * a * a, 0.5 * (a - 0.25)), reduction), dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_binary_losses(reduction, dtype):
    p = RNG.uniform(0.05, 0.95, (3, 4)).astype(dtype)
    t = RNG.random((3, 4)).astype(dtype)
    w, pw = RNG.random(4).astype(dtype), RNG.random(4).astype(dtype) + 0.5
    x = rand(3, 4, dtype=dtype) * 4
    p64, t64, x64 = (a.astype(np.float64) for a in (p, t, x))
    close(F.binary_cross_entropy(T(p), T(t), reduction=reduction), ref_bce(p64, t64, None,
                                                                           reduction), dtype)
    close(F.binary_cross_entropy(T(p), T(t), T(w), reduction=reduction),
          ref_bce(p64, t64, w, reduction), dtype)
    close(F.binary_cross_entropy_with_logits(T(x), T(t), reduction=reduction),
          ref_bce_logits(x64, t64, None, reduction), dtype)
    close(F.binary_cross_entropy_with_logits(T(x), T(t), T(w), reduction=reduction,
                                             pos_weight=T(pw)),
          ref_bce_logits(x64, t64, w, reduction, pw), dtype)


def test_binary_losses_edges():
    # log clamped at -100, and a finite gradient at p = 0 and 1, like PyTorch
    p, t = np.array([0.0, 1.0, 0.5]), np.array([1.0, 0.0, 1.0])
    close(F.binary_cross_entropy(T(p), T(t), reduction="none"), [100.0, 100.0, np.log(2)])
    g = tj.grad(lambda p: F.binary_cross_entropy(p, T(np.array([0.0, 1.0, 1.0]))))(T(p))
    assert np.isfinite(g.numpy()).all()
    x = np.array([-200.0, 200.0, 0.0])
    close(F.binary_cross_entropy_with_logits(T(x), T(t), reduction="none"),
          [200.0, 200.0, np.log(2)])


def test_loss_grads():
    x, t, w = rand(3, 4), rand(3, 4), RNG.random(4)
    p = RNG.uniform(0.05, 0.95, (3, 4))
    tp = RNG.random((3, 4))
    fd_check(lambda x, t: F.mse_loss(x, t), lambda x, t: ((x - t) ** 2).mean(), (x, t), (0, 1))
    fd_check(lambda x, t: F.smooth_l1_loss(x, t, reduction="none"),
             lambda x, t: np.where(np.abs(x - t) < 1, 0.5 * (x - t) ** 2, np.abs(x - t) - 0.5),
             (x, t), (0, 1))
    fd_check(lambda x, t: F.l1_loss(x, t, reduction="sum"), lambda x, t: np.abs(x - t).sum(),
             (x, t), (0, 1))
    fd_check(lambda p: F.binary_cross_entropy(p, T(tp), T(w)), lambda p: ref_bce(p, tp, w), (p,))
    fd_check(lambda x, t: F.binary_cross_entropy_with_logits(x, t, pos_weight=T(w + 0.5),
                                                             reduction="none"),
             lambda x, t: ref_bce_logits(x, t, None, "none", w + 0.5), (x * 4, tp), (0, 1))


@pytest.mark.usefixtures("numpy_eager")
@pytest.mark.parametrize("device", ["cpu", "interpreter"])
def test_losses_compiled_match_eager(device):
    x4, t4 = rand(3, 4, 2, 3, dtype=np.float32), RNG.integers(0, 4, (3, 2, 3))
    t4[0, 0, 0] = -100
    x, t = rand(5, 4, dtype=np.float32), RNG.integers(0, 4, 5)
    w = RNG.random(4).astype(np.float32) + 0.5
    prob = RNG.random((5, 4)).astype(np.float32)
    p = RNG.uniform(0.1, 0.9, (5, 4)).astype(np.float32)

    def f(x4, t4, x, t, w, prob, p):
        return [F.cross_entropy(x4, t4, weight=w, label_smoothing=0.1),
                F.cross_entropy(x, t, reduction="none"),
                F.cross_entropy(x, prob, weight=w, label_smoothing=0.2),
                F.nll_loss(F.log_softmax(x, 1), t, w, reduction="sum"),
                F.mse_loss(x, prob), F.l1_loss(x, prob, reduction="none"),
                F.binary_cross_entropy(p, prob), F.binary_cross_entropy_with_logits(x, prob, w),
                F.smooth_l1_loss(x, prob, beta=0.3), F.huber_loss(x, prob, delta=0.4)]

    args = [T(a) for a in (x4, t4, x, t, w, prob, p)]
    for got, want in zip(tj.compile(f, device=device)(*args), f(*args)):
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-5, atol=1e-6)


def test_legacy_reduction_flags():
    x, t = rand(3), rand(3)
    with pytest.warns(UserWarning, match="reduction='sum'"):
        close(F.mse_loss(T(x), T(t), size_average=False), ((x - t) ** 2).sum())
    with pytest.warns(UserWarning, match="reduction='none'"):
        close(F.l1_loss(T(x), T(t), reduce=False), np.abs(x - t))


# -- errors --------------------------------------------------------------------------------------

def test_loss_errors():
    x = tj.zeros(2, 3)
    err(IndexError, "Target 5 is out of bounds", F.cross_entropy, x, tj.tensor([0, 5]))
    err(ValueError, r"Expected input batch_size \(2\) to match target batch_size \(3\)",
        F.cross_entropy, x, tj.tensor([0, 1, 2]))
    err(ValueError, "foo is not a valid value for reduction", F.cross_entropy, x,
        tj.tensor([0, 1]), reduction="foo")
    err(RuntimeError, "expected target dtype to be Long or Byte", F.nll_loss, x,
        tj.tensor([0.0, 1.0]))
    err(RuntimeError, "class-probability targets must have the input's shape",
        F.cross_entropy, x, tj.zeros(2, 4))
    err(RuntimeError, r"weight tensor should be defined either for all 3 classes or no classes "
        r"but got weight tensor of shape: \[4\]", F.cross_entropy, x, tj.tensor([0, 1]),
        weight=tj.ones(4))
    err(RuntimeError, "multi-target not supported", F.nll_loss, x, tj.tensor([[0, 1]]))
    err(RuntimeError, r"Expected target size \[2, 5\], got \[2, 4\]", F.nll_loss,
        tj.zeros(2, 3, 5), tj.zeros(2, 4, dtype=tj.int64))
    err(RuntimeError, "label_smoothing must be between 0.0 and 1.0", F.cross_entropy, x,
        tj.tensor([0, 1]), label_smoothing=1.5)
    err(ValueError, r"Using a target size \(\[3\]\) that is different to the input size "
        r"\(\[2, 3\]\) is deprecated", F.binary_cross_entropy, tj.full((2, 3), 0.5),
        tj.zeros(3))
    err(RuntimeError, "all elements of input should be between 0 and 1",
        F.binary_cross_entropy, tj.full((2, 3), 1.5), tj.zeros(2, 3))
    err(ValueError, r"Target size \(\[3\]\) must be the same as input size \(\[2, 3\]\)",
        F.binary_cross_entropy_with_logits, x, tj.zeros(3))
    with pytest.warns(UserWarning, match="Using a target size"):
        F.mse_loss(x, tj.zeros(3))
    err(RuntimeError, r"linear: mat1 and mat2 shapes cannot be multiplied \(2x5 and 3x4\)",
        F.linear, tj.zeros(2, 5), tj.zeros(4, 3))
