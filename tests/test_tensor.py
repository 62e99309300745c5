"""The Tensor API of SPEC §1: attributes, creation, conversions, copies, repr, in-place ops and
devices. Values are checked against numpy; repr strings are PyTorch's own output for the same
data (with ``torch.`` spelled ``tracejit.``)."""

import numpy as np
import pytest

import tracejit as tj

# -- attributes -------------------------------------------------------------------------------


def test_attributes():
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    t = tj.tensor(a)
    assert t.shape == (2, 3) and isinstance(t.shape, tuple)
    assert t.dtype == tj.float32
    assert t.device == tj.device("cpu") and t.device == "cpu" and str(t.device) == "cpu"
    assert t.ndim == 2 and t.dim() == 2
    np.testing.assert_array_equal(t.T.numpy(), a.T)
    assert t.T.shape == (3, 2)
    assert t.grad is None and t.grad_fn is None
    assert t.requires_grad is False and t.is_leaf
    assert t.numel() == 6
    assert t.size() == (2, 3) and t.size(0) == 2 and t.size(1) == 3 and t.size(-1) == 3
    assert len(t) == 2


def test_zero_dim_attributes():
    t = tj.tensor(3.5)
    assert t.shape == () and t.ndim == 0 and t.numel() == 1 and t.size() == ()
    with pytest.raises(TypeError):
        len(t)


def test_size_with_a_bad_dim_raises_index_error():
    with pytest.raises(IndexError, match="out of range"):
        tj.ones(2, 3).size(2)


def test_requires_grad_flag():
    t = tj.tensor([1.0, 2.0], requires_grad=True)
    assert t.requires_grad and t.is_leaf and t.grad is None
    assert t.requires_grad_(False) is t and not t.requires_grad
    with pytest.raises(RuntimeError, match="floating point"):
        tj.tensor([1, 2], requires_grad=True)
    with pytest.raises(RuntimeError, match="floating point"):
        tj.ones(2, dtype=tj.int64).requires_grad_()


# -- creation ---------------------------------------------------------------------------------


def test_shape_spellings_agree():
    want = np.zeros((2, 3), np.float32)
    for t in (tj.zeros(2, 3), tj.zeros((2, 3)), tj.zeros([2, 3])):
        assert t.dtype == tj.float32
        np.testing.assert_array_equal(t.numpy(), want)
    np.testing.assert_array_equal(tj.ones(2, 3).numpy(), np.ones((2, 3), np.float32))


@pytest.mark.parametrize("make", [
    lambda: tj.zeros(size=(2, 3)), lambda: tj.ones(size=(2, 3)), lambda: tj.empty(size=(2, 3)),
    lambda: tj.full(size=(2, 3), fill_value=1.0),
])
def test_size_keyword(make):
    assert make().shape == (2, 3)


def test_full_infers_dtype_from_the_fill_value():
    for value, dt, npdt in [(7, tj.int64, np.int64), (1.5, tj.float32, np.float32),
                            (True, tj.bool, np.bool_)]:
        t = tj.full((2, 2), value)
        assert t.dtype == dt
        np.testing.assert_array_equal(t.numpy(), np.full((2, 2), value, npdt))
    t = tj.full((3,), 2, dtype=tj.float64)
    assert t.dtype == tj.float64
    np.testing.assert_array_equal(t.numpy(), np.full(3, 2.0))


def test_ones_empty_eye_with_dtypes():
    t = tj.ones(2, 3, dtype=tj.int32)
    assert t.dtype == tj.int32
    np.testing.assert_array_equal(t.numpy(), np.ones((2, 3), np.int32))
    assert tj.empty(4, 2).shape == (4, 2) and tj.empty(4, 2).dtype == tj.float32
    np.testing.assert_array_equal(tj.eye(3).numpy(), np.eye(3, dtype=np.float32))
    np.testing.assert_array_equal(tj.eye(2, 4).numpy(), np.eye(2, 4, dtype=np.float32))
    assert tj.eye(3, dtype=tj.int64).dtype == tj.int64
    assert tj.zeros(()).shape == () and tj.zeros(0).shape == (0,)


def test_arange():
    i = tj.arange(5)
    assert i.dtype == tj.int64
    np.testing.assert_array_equal(i.numpy(), np.arange(5))
    np.testing.assert_array_equal(tj.arange(1, 10, 3).numpy(), np.arange(1, 10, 3))
    np.testing.assert_array_equal(tj.arange(10, 0, -3).numpy(), np.arange(10, 0, -3))
    f = tj.arange(1.0, 2.0, 0.25)
    assert f.dtype == tj.float32
    np.testing.assert_array_equal(f.numpy(), np.arange(1.0, 2.0, 0.25, dtype=np.float32))
    g = tj.arange(0, 1, 0.1)
    assert g.dtype == tj.float32 and g.shape == (10,)
    np.testing.assert_allclose(g.numpy(), np.arange(10) * 0.1, rtol=1e-6)
    assert tj.arange(4.0).dtype == tj.float32
    assert tj.arange(5, dtype=tj.float64).dtype == tj.float64


def test_linspace():
    t = tj.linspace(0, 1, 7)
    assert t.dtype == tj.float32
    np.testing.assert_allclose(t.numpy(), np.linspace(0, 1, 7), rtol=1e-6)
    assert float(t[0]) == 0.0 and float(t[-1]) == 1.0
    d = tj.linspace(-1, 1, 5, dtype=tj.float64)
    np.testing.assert_array_equal(d.numpy(), np.linspace(-1, 1, 5))
    assert tj.linspace(0, 1, 1).tolist() == [0.0]
    assert tj.linspace(0, 1, 0).shape == (0,)


def test_like_functions():
    x = tj.tensor(np.arange(6, dtype=np.int32).reshape(2, 3))
    for fn, want in [(tj.zeros_like, np.zeros((2, 3), np.int32)),
                     (tj.ones_like, np.ones((2, 3), np.int32))]:
        t = fn(x)
        assert t.dtype == tj.int32
        np.testing.assert_array_equal(t.numpy(), want)
    assert tj.ones_like(x, dtype=tj.float64).dtype == tj.float64
    f = tj.full_like(x, 7)
    assert f.dtype == tj.int32
    np.testing.assert_array_equal(f.numpy(), np.full((2, 3), 7, np.int32))
    e = tj.empty_like(x)
    assert e.shape == (2, 3) and e.dtype == tj.int32
    z = tj.zeros_like(np.ones(3))  # numpy input: its dtype
    assert z.dtype == tj.float64


# -- dtypes and inference ---------------------------------------------------------------------


def test_dtype_aliases():
    assert tj.float == tj.float32 and tj.double == tj.float64
    assert tj.long == tj.int64 and tj.int == tj.int32
    assert tj.bool.name == "bool" and tj.tensor([True]).dtype == tj.bool


@pytest.mark.parametrize("data, want", [
    ([1.0, 2.0], "float32"), ([1, 2], "int64"), ([True, False], "bool"), (1.5, "float32"),
    (3, "int64"), (True, "bool"), ([1, 2.5], "float32"), ([True, 2], "int64"),
    ([[1, 2], [3, 4]], "int64"), ([], "float32"),
    (np.array([1.0, 2.0]), "float64"), (np.array([1, 2], np.int32), "int32"),
    (np.array([1.0], np.float16), "float16"),
    # numpy scalars keep their dtype (they are not Python numbers), as in PyTorch
    (np.float64(1.5), "float64"), (np.int32(3), "int32"), ([np.float64(1.5), 2.0], "float64"),
    ([np.int32(1), np.int16(2)], "int32"), ([np.float32(1.0), 2], "float32"),
])
def test_tensor_dtype_inference(data, want):
    t = tj.tensor(data)
    assert t.dtype.name == want
    np.testing.assert_array_equal(t.numpy(), np.asarray(data, dtype=want))


def test_tensor_rejects_bad_data():
    with pytest.raises(TypeError):
        tj.tensor("abc")
    with pytest.raises(TypeError, match="ragged"):
        tj.tensor([[1, 2], [3]])
    with pytest.raises(TypeError, match="complex64"):
        tj.tensor(np.ones(2, np.complex64))


# -- conversions to Python and numpy ------------------------------------------------------------


def test_numpy_item_tolist():
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    t = tj.tensor(a)
    n = t.numpy()
    assert isinstance(n, np.ndarray) and n.dtype == np.float32
    np.testing.assert_array_equal(n, a)
    assert t.tolist() == a.tolist()
    assert tj.tensor([2.5]).item() == 2.5 and isinstance(tj.tensor([2.5]).item(), float)
    assert tj.tensor([[7]]).item() == 7 and isinstance(tj.tensor([[7]]).item(), int)
    assert tj.tensor(True).item() is True
    assert tj.tensor(4).tolist() == 4


def test_python_scalar_conversions():
    assert float(tj.tensor([2.5])) == 2.5
    assert int(tj.tensor([[3.9]])) == 3  # truncation, as int(3.9)
    assert int(tj.tensor(-7)) == -7
    assert bool(tj.tensor([0.0])) is False and bool(tj.tensor(2)) is True
    assert [1, 2, 3][tj.tensor(1)] == 2  # __index__ on integer tensors


@pytest.mark.parametrize("convert", [float, int, bool, lambda t: t.item()])
def test_multi_element_conversions_raise(convert):
    with pytest.raises((ValueError, RuntimeError), match="element|one"):
        convert(tj.ones(2, 3))


def test_from_numpy_shares_memory_both_ways():
    a = np.zeros(3)
    t = tj.from_numpy(a)
    assert t.dtype == tj.float64
    a[0] = 5.0
    assert t.tolist() == [5.0, 0.0, 0.0]
    t[1] = 7.0
    assert a.tolist() == [5.0, 7.0, 0.0]
    t.add_(1)
    assert a.tolist() == [6.0, 8.0, 1.0]
    with pytest.raises(TypeError, match="np.ndarray"):
        tj.from_numpy([1, 2])


def test_asarray_and_numpy_are_zero_copy_but_tensor_copies():
    a = np.arange(4.0)
    t = tj.tensor(a)
    assert not np.shares_memory(t.numpy(), a)
    a[0] = 100.0
    assert t.tolist()[0] == 0.0
    assert np.shares_memory(tj.asarray(a).numpy(), a)
    assert np.shares_memory(np.asarray(t), t.numpy())
    assert np.shares_memory(t.numpy(), t.numpy())
    np.asarray(t)[1] = -1.0
    assert t.tolist()[1] == -1.0
    assert np.asarray(t, dtype=np.float32).dtype == np.float32


# -- casts and copies ---------------------------------------------------------------------------


def test_casts():
    t = tj.tensor([[1.7, -2.2], [0.0, 3.5]])
    a = t.numpy()
    cases = [(t.to(tj.float64), np.float64), (t.float(), np.float32), (t.double(), np.float64),
             (t.long(), np.int64), (t.int(), np.int32), (t.bool(), np.bool_),
             (t.astype(tj.int32), np.int32), (t.astype("float64"), np.float64),
             (t.astype(np.int16), np.int16), (t.to(dtype=tj.int64), np.int64),
             (t.to("cpu", tj.float64), np.float64)]
    for out, npdt in cases:
        assert out.dtype.np == npdt
        np.testing.assert_array_equal(out.numpy(), a.astype(npdt))
    assert t.dtype == tj.float32  # casts return new tensors
    assert t.to(tj.float32) is t and t.to("cpu") is t and t.cpu() is t


def test_clone_is_independent():
    t = tj.tensor([1.0, 2.0])
    c = t.clone()
    c[0] = 100.0
    c.add_(1)
    assert t.tolist() == [1.0, 2.0]
    assert not np.shares_memory(c.numpy(), t.numpy())
    d = t.to(tj.float32, copy=True)
    assert d is not t and not np.shares_memory(d.numpy(), t.numpy())


def test_detach_shares_data():
    t = tj.tensor([1.0, 2.0], requires_grad=True)
    d = t.detach()
    assert not d.requires_grad and d.is_leaf
    assert np.shares_memory(d.numpy(), t.numpy())  # as in PyTorch: same storage


def test_contiguous():
    a = np.arange(12.0).reshape(3, 4).T
    t = tj.from_numpy(a)
    assert not t.is_contiguous()
    c = t.contiguous()
    assert c.is_contiguous() and c.numpy().flags.c_contiguous
    np.testing.assert_array_equal(c.numpy(), a)
    assert c.contiguous() is c


# -- repr ---------------------------------------------------------------------------------------

REPRS = [
    (lambda: tj.tensor([1.0, 2.0]), "tensor([1., 2.])"),
    (lambda: tj.tensor([1.5, 2.0]), "tensor([1.5000, 2.0000])"),
    (lambda: tj.tensor([1, 2]), "tensor([1, 2])"),
    (lambda: tj.tensor([1.0, 2.0], dtype=tj.float64), "tensor([1., 2.], dtype=tracejit.float64)"),
    (lambda: tj.tensor([[1.0, 2.0], [3.0, 4.0]]), "tensor([[1., 2.],\n        [3., 4.]])"),
    (lambda: tj.tensor([True, False]), "tensor([ True, False])"),
    (lambda: tj.tensor(3.5), "tensor(3.5000)"),
    (lambda: tj.tensor(2.0), "tensor(2.)"),
    (lambda: tj.tensor(-3), "tensor(-3)"),
    (lambda: tj.tensor([]), "tensor([])"),
    (lambda: tj.tensor([], dtype=tj.int64), "tensor([], dtype=tracejit.int64)"),
    (lambda: tj.zeros(2, 0), "tensor([], size=(2, 0))"),
    (lambda: tj.tensor([1, 2], dtype=tj.int32), "tensor([1, 2], dtype=tracejit.int32)"),
    (lambda: tj.tensor([-1.5, 2.25]), "tensor([-1.5000,  2.2500])"),
    (lambda: tj.tensor([[1, 2], [3, 40]]), "tensor([[ 1,  2],\n        [ 3, 40]])"),
    (lambda: tj.tensor([1e-5, 1.0]), "tensor([1.0000e-05, 1.0000e+00])"),
    (lambda: tj.tensor([1e8, 1.0]), "tensor([1.0000e+08, 1.0000e+00])"),
    (lambda: tj.tensor([0.1, 100.0]), "tensor([  0.1000, 100.0000])"),
    (lambda: tj.tensor([float("nan"), 1.0]), "tensor([nan, 1.])"),
    (lambda: tj.tensor([float("inf"), 1.5]), "tensor([   inf, 1.5000])"),
    (lambda: tj.tensor([-0.0, 1.0]), "tensor([-0., 1.])"),
    (lambda: tj.tensor([1.0, 2.0], requires_grad=True), "tensor([1., 2.], requires_grad=True)"),
    (lambda: tj.arange(2000),
     "tensor([   0,    1,    2,  ..., 1997, 1998, 1999])"),
    (lambda: tj.arange(2000.0),
     "tensor([0.0000e+00, 1.0000e+00, 2.0000e+00,  ..., 1.9970e+03, 1.9980e+03,\n"
     "        1.9990e+03])"),
    (lambda: tj.arange(12.0).reshape(2, 2, 3),
     "tensor([[[ 0.,  1.,  2.],\n         [ 3.,  4.,  5.]],\n\n"
     "        [[ 6.,  7.,  8.],\n         [ 9., 10., 11.]]])"),
    (lambda: tj.arange(10.0).reshape(1, 10) / 7,
     "tensor([[0.0000, 0.1429, 0.2857, 0.4286, 0.5714, 0.7143, 0.8571, 1.0000, 1.1429,\n"
     "         1.2857]])"),
]


@pytest.mark.parametrize("make, want", REPRS, ids=[w.splitlines()[0][:40] for _, w in REPRS])
def test_repr_matches_pytorch(make, want):
    t = make()
    assert repr(t) == want
    assert str(t) == want


def test_repr_of_big_tensors_is_summarized_and_fast():
    text = repr(tj.zeros(1000, 1000))
    assert text.count("\n") < 10 and "..." in text


# -- in-place operations --------------------------------------------------------------------------


def test_inplace_ops_write_the_buffer():
    x = tj.tensor([1.0, 2.0, 3.0])
    buf = x.numpy()
    alias = x
    x += 1
    assert x is alias
    np.testing.assert_array_equal(buf, [2.0, 3.0, 4.0])
    assert x.add_(1) is x and x.mul_(2) is x
    np.testing.assert_array_equal(buf, [6.0, 8.0, 10.0])
    x -= 2
    x /= 2
    np.testing.assert_array_equal(buf, [2.0, 3.0, 4.0])
    x.zero_()
    np.testing.assert_array_equal(buf, [0.0, 0.0, 0.0])
    x.fill_(2.5)
    np.testing.assert_array_equal(buf, [2.5, 2.5, 2.5])
    x.copy_(tj.tensor([7, 8, 9]))  # int source: cast into the float buffer
    np.testing.assert_array_equal(buf, [7.0, 8.0, 9.0])
    assert x.dtype == tj.float32 and x.numpy() is buf


def test_setitem_writes_the_buffer():
    a = np.arange(12.0, dtype=np.float32).reshape(3, 4)
    x = tj.tensor(a)
    buf = x.numpy()
    ops = [((1, 2), 0.5), ((slice(None), 1), -1.0), ((0,), np.array([9, 9, 9, 9], np.float32)),
           ((np.array([0, 2]), 3), 7.0)]
    for idx, v in ops:
        x[idx if len(idx) > 1 else idx[0]] = tj.tensor(v) if isinstance(v, np.ndarray) else v
        a[idx if len(idx) > 1 else idx[0]] = v
    np.testing.assert_array_equal(buf, a)
    mask = x > 5
    x[mask] = 0.0
    a[a > 5] = 0.0
    np.testing.assert_array_equal(buf, a)
    assert x.numpy() is buf


def test_copy_broadcasts():
    x = tj.zeros(2, 3)
    x.copy_(tj.tensor([1.0, 2.0, 3.0]))
    np.testing.assert_array_equal(x.numpy(), np.tile([1.0, 2.0, 3.0], (2, 1)))


def test_inplace_keeps_dtype():
    i = tj.tensor([1, 2, 3])
    i += 2
    i.mul_(3)
    assert i.dtype == tj.int64
    np.testing.assert_array_equal(i.numpy(), (np.array([1, 2, 3]) + 2) * 3)
    i32 = tj.tensor([1, 2], dtype=tj.int32)
    i32 += tj.tensor([1, 1])  # int64 result, same category: cast back to int32
    assert i32.dtype == tj.int32 and i32.tolist() == [2, 3]
    f = tj.tensor([1.0, 2.0])
    f += tj.tensor([0.5, 0.5], dtype=tj.float64)
    assert f.dtype == tj.float32 and f.tolist() == [1.5, 2.5]
    j = tj.tensor([1, 2, 3])
    j[0] = 2.7  # assignment casts, as in PyTorch
    j[1:] = tj.tensor([5.9, 6.1])
    assert j.dtype == tj.int64 and j.tolist() == [2, 5, 6]
    k = tj.ones(3, dtype=tj.int32)
    k.fill_(2.5)
    assert k.dtype == tj.int32 and k.tolist() == [2, 2, 2]


@pytest.mark.parametrize("op", [
    lambda t: t.__iadd__(1.5), lambda t: t.add_(1.5), lambda t: t.mul_(0.5),
    lambda t: t.div_(2),
])
def test_inplace_float_result_into_int_raises(op):
    i = tj.tensor([1, 2, 3])
    with pytest.raises((RuntimeError, TypeError), match="can't be cast"):
        op(i)
    assert i.tolist() == [1, 2, 3] and i.dtype == tj.int64


def test_inplace_cast_error_has_pytorch_wording():
    i = tj.tensor([1, 2, 3])
    with pytest.raises(RuntimeError,
                       match="result type Float can't be cast to the desired output type Long"):
        i += 1.5


def test_inplace_shape_mismatch_and_bool_promotion_raise():
    with pytest.raises(ValueError, match="shape"):
        tj.ones(3).add_(tj.ones(2, 3))
    b = tj.tensor([True, False])
    with pytest.raises((RuntimeError, TypeError), match="can't be cast"):
        b += 1
    assert b.tolist() == [True, False]


# -- devices ------------------------------------------------------------------------------------


def test_device_objects():
    d = tj.device("cpu")
    assert d.type == "cpu" and d.index is None and str(d) == "cpu"
    assert repr(d) == "device(type='cpu')"
    c = tj.device("cuda:1")
    assert (c.type, c.index, str(c)) == ("cuda", 1, "cuda:1")
    assert tj.device("cuda", 1) == c and tj.device(c) == c and hash(tj.device("cuda:1")) == hash(c)
    assert tj.device("cpu") != c
    with pytest.raises(ValueError, match="tpu"):
        tj.device("tpu")
    with pytest.raises(TypeError):
        tj.device(3)


@pytest.mark.parametrize("move", [
    lambda t: t.to("cuda"), lambda t: t.to(tj.device("cuda:0")), lambda t: t.cuda(),
    lambda t: t.to(device="cuda"), lambda t: tj.tensor([1.0], device="cuda"),
    lambda t: tj.zeros(2, device="cuda"),
])
def test_cuda_raises_a_clear_error_without_a_gpu(move):
    cuda = getattr(tj, "cuda", None)
    if cuda is not None and cuda.is_available():
        pytest.skip("a CUDA device is present")
    t = tj.ones(2)
    with pytest.raises(RuntimeError, match="CUDA"):
        move(t)
