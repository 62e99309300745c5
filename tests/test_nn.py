"""`tj.nn.functional`: each op against a numpy reference written here (direct loops for
convolution and pooling), in float32 and float64; gradients against central differences of the
reference (float64, inner-product form); compiled (cpu, interpreter) against eager; PyTorch's
error messages. Losses are in test_nn_loss.py, modules in test_nn_module.py; where PyTorch is
installed it is a second oracle (test_nn_torch.py). The helpers here are shared by those."""

import math
import zlib

import numpy as np
import pytest

import tracejit as tj
import tracejit.nn.functional as F

RNG = np.random.default_rng(1234)


@pytest.fixture(autouse=True)
def _reseed(request):
    """Each test draws the same data however tests are ordered or split across workers."""
    seed = zlib.crc32(request.node.nodeid.encode())
    RNG.bit_generator.state = np.random.default_rng(seed).bit_generator.state


def rand(*shape, dtype=np.float64):
    return RNG.standard_normal(shape).astype(dtype)


def T(a):
    return tj.tensor(a)


def close(got, want, dtype=np.float64):
    tol = 1e-10 if dtype == np.float64 else 2e-5
    got = np.asarray(got.numpy() if hasattr(got, "numpy") else got)
    assert got.shape == np.shape(want), (got.shape, np.shape(want))
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol)


# -- numpy references -------------------------------------------------------------------------

def ref_conv2d(x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
    """Direct loops over output positions; ``padding`` may be 'same'/'valid'."""
    sh, sw = (stride, stride) if isinstance(stride, int) else stride
    dh, dw = (dilation, dilation) if isinstance(dilation, int) else dilation
    unbatched = x.ndim == 3
    if unbatched:
        x = x[None]
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    if padding == "valid":
        pads = (0, 0, 0, 0)
    elif padding == "same":
        th, tw = dh * (kh - 1), dw * (kw - 1)
        pads = (th // 2, th - th // 2, tw // 2, tw - tw // 2)
    else:
        ph, pw = (padding, padding) if isinstance(padding, int) else padding
        pads = (ph, ph, pw, pw)
    xp = np.pad(x, ((0, 0), (0, 0), pads[:2], pads[2:]))
    ho = (h + pads[0] + pads[1] - dh * (kh - 1) - 1) // sh + 1
    wo = (wd + pads[2] + pads[3] - dw * (kw - 1) - 1) // sw + 1
    out = np.zeros((n, o, ho, wo), dtype=np.result_type(x, w))
    per_group = o // groups
    for oc in range(o):
        g = oc // per_group
        for i in range(ho):
            for j in range(wo):
                patch = xp[:, g * cg:(g + 1) * cg, i * sh:i * sh + dh * (kh - 1) + 1:dh,
                           j * sw:j * sw + dw * (kw - 1) + 1:dw]
                out[:, oc, i, j] = (patch * w[oc]).sum(axis=(1, 2, 3))
        if b is not None:
            out[:, oc] += b[oc]
    return out[0] if unbatched else out


def ref_out_size(n, k, s, p, d, ceil_mode):
    """PyTorch's documented pooling output size (with the ceil-mode rule that the last window
    must start inside the input or its left padding)."""
    q = (n + 2 * p - d * (k - 1) - 1) / s
    out = (math.ceil(q) if ceil_mode else math.floor(q)) + 1
    if ceil_mode and (out - 1) * s >= n + p:
        out -= 1
    return out


def _pool_args(kernel_size, stride, padding, dilation):
    two = lambda v: (v, v) if isinstance(v, int) else tuple(v)
    k = two(kernel_size)
    return k, two(k if stride is None else stride), two(padding), two(dilation)


def ref_max_pool2d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    """Values and PyTorch-style flat indices (first maximum in window order)."""
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = _pool_args(kernel_size, stride, padding, dilation)
    unbatched = x.ndim == 3
    if unbatched:
        x = x[None]
    n, c, h, w = x.shape
    ho = ref_out_size(h, kh, sh, ph, dh, ceil_mode)
    wo = ref_out_size(w, kw, sw, pw, dw, ceil_mode)
    out = np.zeros((n, c, ho, wo), x.dtype)
    idx = np.zeros((n, c, ho, wo), np.int64)
    for b in range(n):
        for ch in range(c):
            for i in range(ho):
                for j in range(wo):
                    best, arg = -np.inf, -1
                    for ki in range(kh):
                        r = i * sh - ph + ki * dh
                        for kj in range(kw):
                            col = j * sw - pw + kj * dw
                            if 0 <= r < h and 0 <= col < w and x[b, ch, r, col] > best:
                                best, arg = x[b, ch, r, col], r * w + col
                    out[b, ch, i, j], idx[b, ch, i, j] = best, arg
    return (out[0], idx[0]) if unbatched else (out, idx)


def ref_avg_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False,
                   count_include_pad=True, divisor_override=None):
    (kh, kw), (sh, sw), (ph, pw), _ = _pool_args(kernel_size, stride, padding, 1)
    unbatched = x.ndim == 3
    if unbatched:
        x = x[None]
    n, c, h, w = x.shape
    ho = ref_out_size(h, kh, sh, ph, 1, ceil_mode)
    wo = ref_out_size(w, kw, sw, pw, 1, ceil_mode)
    out = np.zeros((n, c, ho, wo), x.dtype)
    for i in range(ho):
        for j in range(wo):
            r0, c0 = i * sh - ph, j * sw - pw
            r1, c1 = min(r0 + kh, h + ph), min(c0 + kw, w + pw)
            size = (r1 - r0) * (c1 - c0)
            r0, c0, r1, c1 = max(r0, 0), max(c0, 0), min(r1, h), min(c1, w)
            if not count_include_pad:
                size = (r1 - r0) * (c1 - c0)
            div = divisor_override or size
            out[:, :, i, j] = x[:, :, r0:r1, c0:c1].sum(axis=(2, 3)) / div
    return out[0] if unbatched else out


def ref_log_softmax(x, axis):
    m = x.max(axis=axis, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=axis, keepdims=True))


# -- gradient checking -------------------------------------------------------------------------

def fd_check(fn, ref, args, wrt=(0,), h=1e-6, tol=1e-6, via="interpreter"):
    """``<v^T J, d>`` from tracejit against central differences of the numpy reference along a
    random direction ``d`` (float64). `via`: 'interpreter' compiles the gradient there (fast),
    'vjp' uses the eager ``tj.vjp``."""
    v = RNG.standard_normal(np.shape(ref(*args)))
    if via == "vjp":
        _, grads = tj.vjp(lambda *xs: fn(*xs), tuple(T(a) for a in args), T(v))
    else:
        def loss(*xs):
            return (fn(*xs) * T(v)).sum()
        grads = tj.compile(tj.grad(loss, argnums=tuple(range(len(args)))), device=via)(
            *[T(a) for a in args])
    for i in wrt:
        d = RNG.standard_normal(np.shape(args[i]))
        plus, minus = list(args), list(args)
        plus[i], minus[i] = args[i] + h * d, args[i] - h * d
        fd = ((ref(*plus) - ref(*minus)) * v).sum() / (2 * h)
        an = float((grads[i].numpy() * d).sum())
        assert abs(fd - an) <= tol * max(1.0, abs(fd)), (i, fd, an)


# -- conv2d ------------------------------------------------------------------------------------

CONV_CASES = [
    # (x shape, w shape, kwargs)
    ((2, 3, 7, 6), (4, 3, 3, 3), {}),
    ((2, 3, 7, 6), (4, 3, 3, 2), {"stride": 2}),
    ((2, 3, 7, 6), (4, 3, 3, 3), {"padding": 1}),
    ((1, 4, 8, 7), (6, 2, 3, 3), {"groups": 2, "padding": (2, 1), "dilation": 2}),
    ((2, 4, 9, 9), (4, 1, 3, 3), {"groups": 4, "stride": (2, 3), "padding": 1}),  # depthwise
    ((2, 3, 6, 5), (2, 3, 4, 2), {"padding": "same"}),  # even kernel: extra pad bottom/right
    ((2, 3, 6, 5), (2, 3, 3, 3), {"padding": "same", "dilation": (1, 2)}),
    ((2, 3, 6, 5), (2, 3, 2, 2), {"padding": "valid", "stride": 3}),
    ((6, 5, 4), (4, 3, 1, 1), {"groups": 2}),  # unbatched, 1x1 kernel
    ((1, 2, 5, 5), (3, 2, 5, 5), {}),  # kernel covers the input
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("xs,ws,kw", CONV_CASES)
def test_conv2d_forward(xs, ws, kw, dtype):
    x, w, b = rand(*xs, dtype=dtype), rand(*ws, dtype=dtype), rand(ws[0], dtype=dtype)
    close(F.conv2d(T(x), T(w), T(b), **kw), ref_conv2d(x, w, b, **kw), dtype)
    out = F.conv2d(T(x), T(w), **kw)
    close(out, ref_conv2d(x, w, None, **kw), dtype)
    assert out.dtype == (tj.float32 if dtype == np.float32 else tj.float64)


@pytest.mark.parametrize("xs,ws,kw", [CONV_CASES[1], CONV_CASES[3], CONV_CASES[4],
                                      CONV_CASES[5], CONV_CASES[8]])
def test_conv2d_grad(xs, ws, kw):
    x, w, b = rand(*xs), rand(*ws), rand(ws[0])
    fd_check(lambda x, w, b: F.conv2d(x, w, b, **kw),
             lambda x, w, b: ref_conv2d(x, w, b, **kw), (x, w, b), wrt=(0, 1, 2))


def test_conv2d_grad_eager_vjp():
    x, w = rand(1, 2, 5, 5), rand(3, 2, 3, 3)
    kw = {"stride": 2, "padding": 1}
    fd_check(lambda x, w: F.conv2d(x, w, **kw), lambda x, w: ref_conv2d(x, w, **kw), (x, w),
             wrt=(0, 1), via="vjp")


@pytest.fixture
def numpy_eager(monkeypatch):
    """Eager ops run one by one on numpy (not through the lazy compiler): the plain eager
    values the compiled ones are compared with, without compiling them a second time."""
    monkeypatch.setattr(tj.config, "lazy", False)


@pytest.mark.parametrize("device", ["cpu", "interpreter"])
def test_conv2d_compiled_matches_eager(device, numpy_eager):
    cases = [CONV_CASES[i] for i in (1, 3, 4, 5, 8)]
    args = [(rand(*xs, dtype=np.float32), rand(*ws, dtype=np.float32),
             rand(ws[0], dtype=np.float32)) for xs, ws, _ in cases]

    def f(args):
        return [F.conv2d(x, w, b, **kw) for (x, w, b), (_, _, kw) in zip(args, cases)]

    tj_args = [tuple(T(a) for a in trip) for trip in args]
    for got, want in zip(tj.compile(f, device=device)(tj_args), f(tj_args)):
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-5, atol=1e-5)


# -- pooling -----------------------------------------------------------------------------------

POOL_CASES = [
    # (x shape, kwargs) — kwargs valid for both max (with dilation) and avg (without)
    ((2, 3, 6, 6), {"kernel_size": 2}),
    ((2, 3, 7, 6), {"kernel_size": 3, "stride": 2}),
    ((2, 3, 7, 6), {"kernel_size": 3, "stride": 2, "padding": 1}),
    ((2, 3, 7, 6), {"kernel_size": 3, "stride": 2, "ceil_mode": True}),
    ((1, 2, 8, 7), {"kernel_size": (3, 2), "stride": (2, 3), "padding": (1, 1),
                    "ceil_mode": True}),
    ((2, 5, 5), {"kernel_size": 2, "stride": 1}),  # unbatched
    ((1, 1, 4, 4), {"kernel_size": 4}),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("xs,kw", POOL_CASES)
def test_max_pool2d_forward_and_indices(xs, kw, dtype):
    x = rand(*xs, dtype=dtype)
    want, want_idx = ref_max_pool2d(x, **kw)
    close(F.max_pool2d(T(x), **kw), want, dtype)
    out, idx = F.max_pool2d(T(x), return_indices=True, **kw)
    close(out, want, dtype)
    assert idx.dtype == tj.int64
    np.testing.assert_array_equal(idx.numpy(), want_idx)


@pytest.mark.parametrize("kw", [{"kernel_size": 3, "stride": 2, "padding": 1, "dilation": 2},
                                {"kernel_size": (2, 3), "dilation": (2, 1), "ceil_mode": True,
                                 "stride": 2}])
def test_max_pool2d_dilation(kw):
    x = rand(2, 2, 9, 8)
    want, want_idx = ref_max_pool2d(x, **kw)
    out, idx = F.max_pool2d(T(x), return_indices=True, **kw)
    close(out, want)
    np.testing.assert_array_equal(idx.numpy(), want_idx)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("xs,kw", POOL_CASES)
@pytest.mark.parametrize("count_include_pad", [True, False])
def test_avg_pool2d_forward(xs, kw, dtype, count_include_pad):
    x = rand(*xs, dtype=dtype)
    close(F.avg_pool2d(T(x), count_include_pad=count_include_pad, **kw),
          ref_avg_pool2d(x, count_include_pad=count_include_pad, **kw), dtype)


def test_avg_pool2d_divisor_override():
    x = rand(2, 3, 7, 6)
    kw = {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True}
    close(F.avg_pool2d(T(x), divisor_override=5, **kw),
          ref_avg_pool2d(x, divisor_override=5, **kw))


@pytest.mark.parametrize("xs,kw", [POOL_CASES[2], POOL_CASES[4]])
def test_pool_grads(xs, kw):
    x = rand(*xs)
    fd_check(lambda x: F.max_pool2d(x, **kw), lambda x: ref_max_pool2d(x, **kw)[0], (x,))
    fd_check(lambda x: F.avg_pool2d(x, count_include_pad=False, **kw),
             lambda x: ref_avg_pool2d(x, count_include_pad=False, **kw), (x,))


def test_max_pool2d_gradient_goes_to_first_maximum_of_a_tie():
    x = np.zeros((1, 1, 2, 2))  # e.g. after a ReLU: all equal
    g = tj.grad(lambda x: F.max_pool2d(x, 2).sum())(T(x))
    np.testing.assert_array_equal(g.numpy(), [[[[1.0, 0.0], [0.0, 0.0]]]])


def test_max_pool2d_integer_input_and_nan():
    x = np.arange(16).reshape(1, 1, 4, 4)[..., ::-1].copy()
    np.testing.assert_array_equal(F.max_pool2d(T(x), 2, padding=1).numpy(),
                                  ref_max_pool2d(x.astype(np.float64), 2, padding=1)[0])
    y = np.ones((1, 1, 2, 2))
    y[0, 0, 1, 0] = np.nan
    assert np.isnan(F.max_pool2d(T(y), 2).item())  # NaN propagates, like PyTorch


@pytest.mark.parametrize("device", ["cpu", "interpreter"])
def test_pool_compiled_matches_eager(device, numpy_eager):
    xs = [rand(*s, dtype=np.float32) for s, _ in POOL_CASES]

    def f(xs):
        out = []
        for x, (_, kw) in zip(xs, POOL_CASES):
            out += list(F.max_pool2d(x, return_indices=True, **kw))
            out.append(F.avg_pool2d(x, count_include_pad=False, **kw))
        return out

    args = [T(x) for x in xs]
    for got, want in zip(tj.compile(f, device=device)(args), f(args)):
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-6, atol=1e-6)


def test_adaptive_pools():
    x = rand(2, 3, 7, 5)
    want = np.zeros((2, 3, 3, 2))
    want_max = np.zeros((2, 3, 3, 2))
    for i in range(3):
        for j in range(2):
            r0, r1 = (i * 7) // 3, -(-(i + 1) * 7 // 3)
            c0, c1 = (j * 5) // 2, -(-(j + 1) * 5 // 2)
            want[:, :, i, j] = x[:, :, r0:r1, c0:c1].mean(axis=(2, 3))
            want_max[:, :, i, j] = x[:, :, r0:r1, c0:c1].max(axis=(2, 3))
    close(F.adaptive_avg_pool2d(T(x), (3, 2)), want)
    close(F.adaptive_max_pool2d(T(x), (3, 2)), want_max)
    close(F.adaptive_avg_pool2d(T(x), 1), x.mean(axis=(2, 3), keepdims=True))
    close(F.adaptive_avg_pool2d(T(x), (None, 1)), x.mean(axis=3, keepdims=True))


# -- linear, activations, dropout -------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_linear(dtype):
    x, w, b = rand(2, 5, 3, dtype=dtype), rand(4, 3, dtype=dtype), rand(4, dtype=dtype)
    close(F.linear(T(x), T(w), T(b)), x @ w.T + b, dtype)
    close(F.linear(T(x[0, 0]), T(w)), x[0, 0] @ w.T, dtype)
    fd_check(F.linear, lambda x, w, b: x @ w.T + b, (x.astype(np.float64),
                                                     w.astype(np.float64), b.astype(np.float64)),
             wrt=(0, 1, 2))


ACTIVATIONS = [
    (F.relu, lambda x: np.maximum(x, 0)),
    (F.relu6, lambda x: np.clip(x, 0, 6)),
    (lambda x: F.leaky_relu(x, 0.2), lambda x: np.where(x > 0, x, 0.2 * x)),
    (lambda x: F.elu(x, 0.7), lambda x: np.where(x > 0, x, 0.7 * np.expm1(x))),
    (F.selu, lambda x: 1.0507009873554804934 * np.where(x > 0, x,
                                                        1.6732632423543772848 * np.expm1(x))),
    (F.silu, lambda x: x / (1 + np.exp(-x))),
    (F.mish, lambda x: x * np.tanh(np.log1p(np.exp(x)))),
    (F.sigmoid, lambda x: 1 / (1 + np.exp(-x))),
    (F.tanh, np.tanh),
    (F.softsign, lambda x: x / (1 + np.abs(x))),
    (F.logsigmoid, lambda x: -np.log1p(np.exp(-x))),
    (F.hardswish, lambda x: x * np.clip(x / 6 + 0.5, 0, 1)),
    (lambda x: F.softmax(x, dim=1), lambda x: np.exp(ref_log_softmax(x, 1))),
    (lambda x: F.softmin(x, dim=0), lambda x: np.exp(ref_log_softmax(-x, 0))),
    (lambda x: F.log_softmax(x, dim=-1), lambda x: ref_log_softmax(x, -1)),
    (lambda x: F.normalize(x, dim=1), lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("fn,ref", ACTIVATIONS)
def test_activations(fn, ref, dtype):
    x = rand(3, 4, dtype=dtype) * 3
    close(fn(T(x)), ref(x.astype(np.float64)), dtype)


def test_activation_grads_and_compiled():
    x = rand(3, 4) * 3
    fns = [fn for fn, _ in ACTIVATIONS]
    refs = [ref for _, ref in ACTIVATIONS]
    fd_check(lambda x: tj.stack([f(x) for f in fns]), lambda x: np.stack([r(x) for r in refs]),
             (x,))
    got = tj.compile(lambda x: [f(x) for f in fns])(T(x.astype(np.float32)))
    for g, r in zip(got, refs):
        np.testing.assert_allclose(g.numpy(), r(x.astype(np.float32)), rtol=2e-5, atol=2e-5)


def test_softmax_implicit_dim_warns_like_pytorch():
    x = rand(2, 3)
    with pytest.warns(UserWarning, match="Implicit dimension choice for softmax"):
        y = F.softmax(T(x))
    close(y, np.exp(ref_log_softmax(x, 1)))


def test_dropout_eager():
    tj.manual_seed(0)
    x = np.ones((200, 50), np.float32)
    y = F.dropout(T(x), p=0.3).numpy()
    kept = y != 0
    assert abs(kept.mean() - 0.7) < 0.02
    np.testing.assert_allclose(y[kept], 1 / 0.7, rtol=1e-6)
    tj.manual_seed(0)
    np.testing.assert_array_equal(F.dropout(T(x), p=0.3).numpy(), y)  # reproducible
    np.testing.assert_array_equal(F.dropout(T(x), 0.3, training=False).numpy(), x)
    np.testing.assert_array_equal(F.dropout(T(x), 1.0).numpy(), 0 * x)
    np.testing.assert_array_equal(F.dropout(T(x), 0.0).numpy(), x)
    z = F.dropout2d(T(np.ones((20, 30, 2, 2))), 0.5).numpy()
    assert ((z == 0).all(axis=(2, 3)) | (z == 2).all(axis=(2, 3))).all()
    with pytest.raises(ValueError, match="dropout probability has to be between 0 and 1, but "
                                         "got 1.5"):
        F.dropout(T(x), 1.5)


def test_dropout_gradient_is_the_scaled_mask():
    x = tj.tensor(rand(50), requires_grad=True)
    y = F.dropout(x, 0.5)
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), np.where(y.detach().numpy() != 0, 2.0, 0.0))


@pytest.mark.parametrize("device", ["cpu", "interpreter"])
def test_dropout_compiled_draws_fresh_masks(device):
    f = tj.compile(lambda x: F.dropout(x, 0.5), device=device)
    x = T(np.ones(64, np.float32))
    a, b = f(x).numpy(), f(x).numpy()
    assert set(np.unique(a)) <= {0.0, 2.0} and (a != b).any()
    assert 10 < (a == 0).sum() < 54


def test_embedding_layer_norm_batch_norm():
    w = rand(6, 3)
    idx = np.array([[0, 2], [5, 2]])
    close(F.embedding(T(idx), T(w)), w[idx])
    g = tj.grad(lambda w: (F.embedding(T(idx), w, padding_idx=2) ** 2).sum())(T(w))
    assert (g.numpy()[2] == 0).all() and (g.numpy()[0] != 0).all()
    x, lw, lb = rand(2, 3, 4), rand(3, 4), rand(3, 4)
    mu, var = x.mean(axis=(1, 2), keepdims=True), x.var(axis=(1, 2), keepdims=True)
    close(F.layer_norm(T(x), (3, 4), T(lw), T(lb)), (x - mu) / np.sqrt(var + 1e-5) * lw + lb)
    xb = rand(4, 3, 2, 2)
    rm, rv = tj.zeros(3, dtype=tj.float64), tj.ones(3, dtype=tj.float64)
    y = F.batch_norm(T(xb), rm, rv, training=True, momentum=0.1)
    m, v = xb.mean(axis=(0, 2, 3)), xb.var(axis=(0, 2, 3))
    close(y, (xb - m[:, None, None]) / np.sqrt(v[:, None, None] + 1e-5))
    close(rm, 0.1 * m)
    close(rv, 0.9 + 0.1 * v * 16 / 15)
    close(F.batch_norm(T(xb), rm, rv), (xb - rm.numpy()[:, None, None])
          / np.sqrt(rv.numpy()[:, None, None] + 1e-5))


@pytest.mark.parametrize("device", ["cpu", "interpreter"])
def test_layers_compiled_match_eager(device, numpy_eager):
    x, w, b = rand(2, 3, 4, dtype=np.float32), rand(5, 4, dtype=np.float32), rand(5)
    idx = RNG.integers(0, 5, (2, 3))
    rm, rv = np.zeros(3, np.float32), np.ones(3, np.float32)

    def f(x, w, b, idx, rm, rv):
        return [F.linear(x, w, b), F.layer_norm(x, (4,), w[0], w[1]),
                F.embedding(idx, w, padding_idx=0), F.batch_norm(x, rm, rv, w[0, :3], b[:3]),
                F.batch_norm(x, None, None, training=True), F.normalize(x, dim=-1)]

    args = [T(a) for a in (x, w, b, idx, rm, rv)]
    for got, want in zip(tj.compile(f, device=device)(*args), f(*args)):
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-5, atol=1e-6)


def test_batch_norm_running_stats_update_inside_compile():
    x = T(rand(4, 2, 3, dtype=np.float32))
    rm, rv = tj.zeros(2), tj.ones(2)
    f = tj.compile(lambda x: F.batch_norm(x, rm, rv, training=True, momentum=0.5))
    f(x)
    f(x)
    m = x.numpy().mean(axis=(0, 2))
    np.testing.assert_allclose(rm.numpy(), 0.75 * m, rtol=1e-5)


# -- errors ------------------------------------------------------------------------------------

def err(exc, match, fn, *args, **kw):
    with pytest.raises(exc, match=match):
        fn(*args, **kw)


def test_conv2d_errors():
    x, w = tj.zeros(2, 3, 5, 5), tj.zeros(4, 3, 3, 3)
    err(RuntimeError, r"Given groups=1, weight of size \[4, 2, 3, 3\], expected "
        r"input\[2, 3, 5, 5\] to have 2 channels, but got 3 channels instead",
        F.conv2d, x, tj.zeros(4, 2, 3, 3))
    err(ValueError, "expected input", F.conv2d, x, tj.zeros(4, 2, 3, 3))  # also a ValueError
    err(RuntimeError, r"Given groups=3, expected weight to be divisible by 3 at dimension 0, but "
        r"got weight of size \[4, 1, 3, 3\]", F.conv2d, x, tj.zeros(4, 1, 3, 3), groups=3)
    err(RuntimeError, r"Expected 3D \(unbatched\) or 4D \(batched\) input to conv2d, but got "
        r"input of size: \[3, 5\]", F.conv2d, tj.zeros(3, 5), w)
    err(RuntimeError, r"expected bias to be 1-dimensional with 4 elements, but got bias of "
        r"size \[3\]", F.conv2d, x, w, tj.zeros(3))
    err(RuntimeError, r"Calculated padded input size per channel: \(5 x 5\). Kernel size: "
        r"\(7 x 7\). Kernel size can't be greater than actual input size",
        F.conv2d, x, tj.zeros(4, 3, 7, 7))
    err(RuntimeError, "padding='same' is not supported for strided convolutions",
        F.conv2d, x, w, stride=2, padding="same")
    err(ValueError, "Invalid padding string 'foo'", F.conv2d, x, w, padding="foo")
    err(RuntimeError, "non-positive stride is not supported", F.conv2d, x, w, stride=0)
    err(RuntimeError, "negative padding is not supported", F.conv2d, x, w, padding=-1)
    err(RuntimeError, "expected weight to be 4-dimensional", F.conv2d, x, tj.zeros(4, 3, 3))
    err(RuntimeError, r"expected stride to be a single integer value or a list of 2 values",
        F.conv2d, x, w, stride=(1, 1, 1))


def test_pool_errors():
    x = tj.zeros(2, 3, 5, 5)
    err(RuntimeError, "pad should be at most half of effective kernel size, but got pad=2, "
        "kernel_size=3 and dilation=1", F.max_pool2d, x, 3, padding=2)
    err(RuntimeError, "pad should be at most half", F.avg_pool2d, x, 3, padding=2)
    err(RuntimeError, r"Given input size: \(3x5x5\). Calculated output size: \(3x0x0\). Output "
        r"size is too small", F.max_pool2d, x, 7)
    err(RuntimeError, "non-empty 3D or 4D", F.max_pool2d, tj.zeros(5, 5), 2)
    err(RuntimeError, "stride should be greater than zero", F.max_pool2d, x, 2, stride=0)
    err(RuntimeError, "divisor must be not zero", F.avg_pool2d, x, 2, divisor_override=0)


def test_errors_name_the_users_line():
    with pytest.raises(RuntimeError) as e:
        F.conv2d(tj.zeros(1, 3, 5, 5), tj.zeros(4, 2, 3, 3))
    assert "test_nn.py" in str(e.value)


def test_errors_inside_compile_raise_at_trace_time():
    f = tj.compile(lambda x, w: F.conv2d(x, w))
    with pytest.raises(RuntimeError, match="to have 2 channels, but got 3 channels"):
        f(tj.zeros(1, 3, 5, 5), tj.zeros(4, 2, 3, 3))
