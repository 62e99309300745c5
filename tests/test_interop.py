"""Zero-copy interop (`tracejit/interop.py`): DLPack both ways with numpy and PyTorch on the CPU,
the DLPack C ABI through the host emulation of CUDA (a tracejit -> tracejit round trip, and a
hand-built foreign producer), ``__cuda_array_interface__``, and, on a real GPU, exchanges with
PyTorch and CuPy. Sharing is checked by writing through one side and reading the other."""

from __future__ import annotations

import ctypes
import gc
import pathlib
import re

import numpy as np
import pytest

import tracejit as tj
from tracejit import interop

DTYPES = ["float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "bool"]


def _values(dtype: str, shape=(2, 3)) -> np.ndarray:
    a = np.arange(int(np.prod(shape))).reshape(shape) % 5
    return (a % 2 == 1) if dtype == "bool" else a.astype(dtype)


def _real_gpu() -> bool:
    return not tj.cuda.is_emulated() and tj.cuda.is_available()


# -- CPU: numpy ---------------------------------------------------------------------------------
def test_numpy_from_dlpack_shares_a_tensors_memory():
    t = tj.zeros(2, 3)
    a = np.from_dlpack(t)
    assert t.__dlpack_device__() == (1, 0)
    a[0, 1] = 5.0
    assert t[0, 1].item() == 5.0
    t.add_(1)
    np.testing.assert_array_equal(a, [[1, 6, 1], [1, 1, 1]])


def test_from_dlpack_of_numpy_shares_memory_both_ways():
    a = np.arange(6.0).reshape(2, 3)
    t = tj.from_dlpack(a)
    assert isinstance(t, tj.Tensor) and t.shape == (2, 3) and t.dtype == tj.float64
    t.mul_(2)
    np.testing.assert_array_equal(a, np.arange(6.0).reshape(2, 3) * 2)
    a[:] = -1
    np.testing.assert_array_equal(t.numpy(), -np.ones((2, 3)))


@pytest.mark.parametrize("dtype", DTYPES)
def test_dtypes_round_trip_through_numpy(dtype):
    a = _values(dtype)
    t = tj.from_dlpack(a)
    assert t.dtype == tj.dtypes.as_dtype(np.dtype(dtype))
    assert np.shares_memory(t.numpy(), a)
    b = np.from_dlpack(t)
    assert b.dtype == np.dtype(dtype) and np.shares_memory(a, b)
    np.testing.assert_array_equal(b, a)
    u = tj.from_dlpack(t)  # tracejit -> tracejit on the CPU
    assert u.dtype == t.dtype and np.shares_memory(u.numpy(), a)


def test_zero_dim():
    t = tj.tensor(3.5)
    a = np.from_dlpack(t)
    assert a.shape == () and a[()] == 3.5
    a[()] = 1.0
    assert t.item() == 1.0
    u = tj.from_dlpack(np.array(2, dtype=np.int32))
    assert u.shape == () and u.dtype == tj.int32 and u.item() == 2


def test_strided_views_stay_views():
    base = np.arange(12.0).reshape(3, 4)
    view = base[:, ::2]
    t = tj.from_dlpack(view)  # zero-copy, strides kept
    assert np.shares_memory(t.numpy(), base)
    np.testing.assert_array_equal(t.numpy(), view)
    t.add_(100)
    assert base[0, 0] == 100 and base[0, 1] == 1 and base[2, 2] == 110
    ft = tj.from_numpy(base.T)  # a non-contiguous tensor exported
    b = np.from_dlpack(ft)
    assert b.strides == base.T.strides and np.shares_memory(b, base)


def test_lazy_tensors_are_realized_first():
    t = tj.arange(4.0) * 2
    a = np.from_dlpack(t)
    np.testing.assert_array_equal(a, [0, 2, 4, 6])
    a[0] = 9
    assert t[0].item() == 9
    u = tj.from_dlpack(tj.arange(3.0) + 1)
    np.testing.assert_array_equal(u.numpy(), [1, 2, 3])


def test_exported_buffer_is_copied_by_pending_work():
    # numpy may write to an exported buffer: a pending result computed from it must not change
    a = np.zeros(3, np.float32)
    t = tj.from_dlpack(a)
    y = t + 1
    a[:] = 5
    np.testing.assert_array_equal(y.numpy(), [1, 1, 1])


def test_copy_flag():
    a = np.arange(3.0)
    t = tj.from_dlpack(a, copy=True)
    assert not np.shares_memory(t.numpy(), a)
    b = np.from_dlpack(tj.from_numpy(a), copy=True)
    assert not np.shares_memory(b, a)


def test_bad_inputs():
    with pytest.raises(TypeError, match="__dlpack__"):
        tj.from_dlpack([1.0, 2.0])
    with pytest.raises(TypeError, match="complex64"):
        tj.from_dlpack(np.zeros(2, np.complex64))


def test_dlpack_of_a_tracer_needs_a_concrete_value():
    @tj.compile
    def f(x):
        np.from_dlpack(x)
        return x

    with pytest.raises(tj.ConcretizationError, match="__dlpack__"):
        f(tj.zeros(2))


def test_cpu_tensors_have_no_cuda_array_interface():
    t = tj.zeros(2)
    assert not hasattr(t, "__cuda_array_interface__")
    with pytest.raises(AttributeError, match="CPU"):
        t.__cuda_array_interface__  # noqa: B018


# -- CPU: PyTorch -------------------------------------------------------------------------------
def test_torch_cpu_round_trip_shares_memory():
    torch = pytest.importorskip("torch")
    t = tj.zeros(2, 3)
    x = torch.from_dlpack(t)
    x[1, 2] = 7.0
    assert t[1, 2].item() == 7.0
    t.add_(1)
    assert x[0, 0].item() == 1.0
    y = torch.arange(6.0).reshape(2, 3)
    u = tj.from_dlpack(y)
    u.mul_(2)
    assert torch.equal(y, torch.arange(6.0).reshape(2, 3) * 2)
    z = torch.arange(12.0).reshape(3, 4).t()  # non-contiguous: still a view
    v = tj.from_dlpack(z)
    np.testing.assert_array_equal(v.numpy(), z.numpy())
    z[0, 0] = -5
    assert v[0, 0].item() == -5


@pytest.mark.parametrize("dtype", DTYPES)
def test_torch_cpu_dtypes(dtype):
    torch = pytest.importorskip("torch")
    t = tj.from_numpy(_values(dtype))
    x = torch.from_dlpack(t)
    assert str(x.dtype) == f"torch.{dtype}"
    np.testing.assert_array_equal(x.numpy(), t.numpy())
    u = tj.from_dlpack(x)
    assert u.dtype == t.dtype and np.shares_memory(u.numpy(), t.numpy())


def test_documented_interop_example_runs():
    text = (pathlib.Path(__file__).parent.parent / "docs" / "tensor.md").read_text()
    section = text[text.index("## Interop"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    exec(compile(code, "docs/tensor.md#interop", "exec"), {})


# -- the host emulation of CUDA: the C ABI path -------------------------------------------------
@pytest.fixture
def emulated():
    from tracejit.runtime.cuda_emu import compiler
    if compiler() is None:
        pytest.skip("the CUDA host emulation needs a C++ compiler")
    tj.cuda.emulate(True)
    try:
        yield
    finally:
        tj.cuda.emulate(None)


@pytest.fixture
def deletions(monkeypatch):
    """How many tracejit capsules' deleters have run since the test started."""
    count = [0]
    release = interop._release

    def counting(addr):
        count[0] += 1
        release(addr)
    monkeypatch.setattr(interop, "_release", counting)
    return count


def test_emulated_round_trip_shares_memory(emulated):
    t = tj.randn(3, 4, device="cuda")
    before = t.cpu().numpy().copy()
    with interop._as_consumer():
        assert t.__dlpack_device__() == (2, 0)
    u = tj.from_dlpack(t)
    assert u.device == tj.device("cuda:0") and u.shape == (3, 4) and u.dtype == tj.float32
    assert isinstance(u._value.block, interop._ForeignBlock)
    assert u._value.ptr == t._value.ptr
    u.add_(1)
    np.testing.assert_allclose(t.cpu().numpy(), before + 1)
    t.mul_(0)
    np.testing.assert_array_equal(u.cpu().numpy(), np.zeros((3, 4)))


def test_emulated_deleter_runs_once_when_the_consumer_drops_it(emulated, deletions):
    t = tj.randn(3, 4, device="cuda")
    n = len(interop._exports)
    u = tj.from_dlpack(t)
    gc.collect()  # (the consumed capsule is gone: its destructor must not call the deleter)
    assert deletions[0] == 0 and len(interop._exports) == n + 1
    del u
    gc.collect()
    assert deletions[0] == 1 and len(interop._exports) == n


def test_emulated_unconsumed_capsule_calls_the_deleter(emulated, deletions):
    t = tj.randn(2, device="cuda")
    with interop._as_consumer():
        cap = t.__dlpack__()
    del cap
    gc.collect()
    assert deletions[0] == 1


def test_emulated_capsule_consumed_twice_raises(emulated, deletions):
    t = tj.randn(2, 2, device="cuda")
    with interop._as_consumer():
        cap = t.__dlpack__()
    u = tj.from_dlpack(cap)
    with pytest.raises(BufferError, match="already consumed"):
        tj.from_dlpack(cap)
    del cap
    gc.collect()
    assert deletions[0] == 0
    np.testing.assert_array_equal(u.cpu().numpy(), t.cpu().numpy())
    del u
    gc.collect()
    assert deletions[0] == 1


def test_emulated_memory_outlives_the_producer(emulated):
    t = tj.randn(64, device="cuda")
    want = t.cpu().numpy().copy()
    allocated = tj.cuda.memory_allocated()
    u = tj.from_dlpack(t)
    assert tj.cuda.memory_allocated() == allocated  # nothing new: the same block
    del t
    gc.collect()
    others = [tj.full((64,), 7.0, device="cuda") for _ in range(4)]  # may reuse freed blocks
    np.testing.assert_array_equal(u.cpu().numpy(), want)
    held = tj.cuda.memory_allocated()
    del u
    gc.collect()
    assert tj.cuda.memory_allocated() < held  # freed once the consumer let go
    del others


@pytest.mark.parametrize("dtype", DTYPES)
def test_emulated_dtypes(emulated, dtype):
    a = _values(dtype)
    t = tj.from_numpy(a).to("cuda")
    u = tj.from_dlpack(t)
    assert u.dtype == t.dtype and u._value.ptr == t._value.ptr
    np.testing.assert_array_equal(u.cpu().numpy(), a)


def test_emulated_zero_dim_and_copy(emulated):
    t = tj.tensor(2.5, device="cuda")
    u = tj.from_dlpack(t)
    assert u.shape == () and u.item() == 2.5
    c = tj.from_dlpack(t, copy=True)
    assert c._value.ptr != t._value.ptr and c.item() == 2.5


def test_emulated_memory_reaches_other_consumers_only_as_a_host_copy(emulated):
    t = tj.randn(3, device="cuda")
    want = t.cpu().numpy()
    assert t.__dlpack_device__() == (1, 0)  # (2, 0) only to tj.from_dlpack
    a = np.from_dlpack(t)
    np.testing.assert_array_equal(a, want)
    a[:] = 0  # a copy: the tensor keeps its values
    np.testing.assert_array_equal(t.cpu().numpy(), want)
    with pytest.raises(BufferError, match="host emulation"):
        np.from_dlpack(t, copy=False)
    with pytest.raises(BufferError, match="host emulation"):
        t.__dlpack__(dl_device=(2, 0))
    assert not hasattr(t, "__cuda_array_interface__")
    with pytest.raises(AttributeError, match="emulation"):
        t.__cuda_array_interface__  # noqa: B018
    try:
        import torch
    except ImportError:
        return
    np.testing.assert_array_equal(torch.tensor(t).numpy(), want)
    np.testing.assert_array_equal(torch.as_tensor(t).numpy(), want)


# -- a foreign producer, built by hand with the C ABI -------------------------------------------
class _Producer:
    """A non-tracejit DLPack producer of kDLCUDA capsules over host memory (numpy), with its own
    deleter; usable only where "device memory" is host memory (the emulation)."""

    def __init__(self, a: np.ndarray, strides=None, byte_offset: int = 0, code=None):
        self.a, self.deleted = a, 0
        n = max(a.ndim, 1)
        self.shape = (ctypes.c_int64 * n)(*a.shape)
        self.strides = None if strides is None else (ctypes.c_int64 * n)(*strides)
        m = self.m = interop.DLManagedTensor()
        m.dl_tensor.data = a.ctypes.data - byte_offset
        m.dl_tensor.byte_offset = byte_offset
        m.dl_tensor.device = interop.DLDevice(interop.kDLCUDA, 0)
        m.dl_tensor.ndim = a.ndim
        kind = {"f": 2, "i": 0, "u": 1, "b": 6}[a.dtype.kind] if code is None else code
        m.dl_tensor.dtype = interop.DLDataType(kind, a.dtype.itemsize * 8, 1)
        m.dl_tensor.shape = ctypes.cast(self.shape, ctypes.POINTER(ctypes.c_int64))
        if self.strides is not None:
            m.dl_tensor.strides = ctypes.cast(self.strides, ctypes.POINTER(ctypes.c_int64))

        def deleter(addr):
            self.deleted += 1
        self.deleter = interop._Deleter(deleter)
        m.deleter = self.deleter

    def capsule(self):
        return interop._capsule_new(ctypes.addressof(self.m), interop._NAME,
                                    interop._DESTRUCTOR)


def test_foreign_capsule_is_refused_on_the_emulation(emulated):
    p = _Producer(np.zeros(3, np.float32))
    cap = p.capsule()
    with pytest.raises(BufferError, match="another library"):
        tj.from_dlpack(cap)
    del cap
    gc.collect()
    assert p.deleted == 1  # not consumed: the capsule's destructor released it


@pytest.fixture
def foreign_ok(emulated, monkeypatch):
    """Lets foreign capsules in, onto the emulated device (its memory is host memory)."""
    monkeypatch.setattr(interop, "_driver_for", lambda addr, device_id: tj.cuda.driver(0))


def test_foreign_capsule_is_shared_and_released_once(foreign_ok):
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    p = _Producer(a, strides=(4, 1))
    u = tj.from_dlpack(p.capsule())
    gc.collect()
    assert p.deleted == 0 and u.device == tj.device("cuda:0")
    np.testing.assert_array_equal(u.cpu().numpy(), a)
    u.add_(1)
    np.testing.assert_array_equal(a, np.arange(12).reshape(3, 4) + 1)
    del u
    gc.collect()
    assert p.deleted == 1


def test_foreign_capsule_byte_offset_and_null_strides(foreign_ok):
    a = np.arange(8, dtype=np.int32)
    p = _Producer(a[2:], byte_offset=8)
    u = tj.from_dlpack(p.capsule())
    np.testing.assert_array_equal(u.cpu().numpy(), [2, 3, 4, 5, 6, 7])


def test_foreign_strided_capsule_names_its_strides(foreign_ok):
    a = np.zeros((4, 3), np.float32)
    p = _Producer(a, strides=(1, 4))  # a transposed view
    with pytest.raises(BufferError, match=r"strides \(1, 4\).*contiguous"):
        tj.from_dlpack(p.capsule())
    gc.collect()
    assert p.deleted == 1  # refused, so not consumed: released with the capsule
    ok = _Producer(np.zeros((1, 3), np.float32), strides=(99, 1))  # size-1 dims: any stride
    assert tj.from_dlpack(ok.capsule()).shape == (1, 3)


def test_foreign_unsupported_dtype(foreign_ok):
    p = _Producer(np.zeros(2, np.uint16), code=4)  # bfloat16
    with pytest.raises(BufferError, match="code=4"):
        tj.from_dlpack(p.capsule())


# -- a real GPU -----------------------------------------------------------------------------
@pytest.mark.gpu
@pytest.mark.skipif(not _real_gpu(), reason="needs a CUDA GPU")
def test_gpu_cuda_array_interface():
    t = tj.arange(6.0).to("cuda")
    cai = t.__cuda_array_interface__
    assert cai["version"] == 3 and cai["shape"] == (6,) and cai["typestr"] == "<f4"
    assert cai["data"] == (t._value.ptr, False) and cai["strides"] is None


@pytest.mark.gpu
@pytest.mark.skipif(not _real_gpu(), reason="needs a CUDA GPU")
def test_gpu_torch_round_trip():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch without CUDA")
    t = tj.arange(12.0).reshape(3, 4).to("cuda")
    x = torch.from_dlpack(t)
    assert x.is_cuda and tuple(x.shape) == (3, 4) and x.dtype == torch.float32
    assert x.data_ptr() == t._value.ptr
    x.add_(1)
    torch.cuda.synchronize()
    np.testing.assert_array_equal(t.cpu().numpy(), np.arange(12.0).reshape(3, 4) + 1)
    t.mul_(2)
    tj.cuda.synchronize()
    assert torch.equal(x.cpu(), (torch.arange(12.0).reshape(3, 4) + 1) * 2)
    del t
    gc.collect()
    assert x.sum().item() == 2 * (66 + 12)  # the memory outlives the producer

    y = torch.arange(12.0, device="cuda").reshape(3, 4)
    u = tj.from_dlpack(y)
    assert u.device == tj.device("cuda", y.device.index) and u._value.ptr == y.data_ptr()
    u.add_(1)
    tj.cuda.synchronize()
    assert torch.equal(y.cpu(), torch.arange(12.0).reshape(3, 4) + 1)
    with pytest.raises(BufferError, match="strides"):
        tj.from_dlpack(y.t())
    z = torch.as_tensor(u, device="cuda")  # through __cuda_array_interface__
    assert z.data_ptr() == y.data_ptr()


@pytest.mark.gpu
@pytest.mark.skipif(not _real_gpu(), reason="needs a CUDA GPU")
def test_gpu_cuda_array_interface_only_producer():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch without CUDA")
    y = torch.zeros(5, device="cuda", dtype=torch.int32)

    class Only:
        __cuda_array_interface__ = y.__cuda_array_interface__

    u = tj.from_dlpack(Only())
    assert u.dtype == tj.int32 and u._value.ptr == y.data_ptr()
    u.fill_(3)
    tj.cuda.synchronize()
    assert y.cpu().tolist() == [3] * 5


@pytest.mark.gpu
@pytest.mark.skipif(not _real_gpu(), reason="needs a CUDA GPU")
def test_gpu_cupy_round_trip():
    cupy = pytest.importorskip("cupy")
    t = tj.zeros(4).to("cuda")
    c = cupy.from_dlpack(t)
    c += 1
    cupy.cuda.runtime.deviceSynchronize()
    np.testing.assert_array_equal(t.cpu().numpy(), np.ones(4))
    assert cupy.asarray(t).data.ptr == t._value.ptr  # __cuda_array_interface__
    d = cupy.arange(6, dtype=cupy.float32)
    u = tj.from_dlpack(d)
    u.mul_(2)
    tj.cuda.synchronize()
    np.testing.assert_array_equal(cupy.asnumpy(d), np.arange(6) * 2)
