"""Zero-copy exchange of tensors with other array libraries (DLPack, ``__cuda_array_interface__``).

Input: a tracejit `Tensor` (export) or another library's array (import: anything with
``__dlpack__``, a DLPack capsule, or an object with ``__cuda_array_interface__``). Output: a
DLPack capsule / a ``__cuda_array_interface__`` dict (export), or a `Tensor` sharing the
producer's memory (import, `from_dlpack`). No data is copied: a write through one side is seen
by the other.

* CPU tensors hold numpy arrays, so both directions are numpy's own DLPack support
  (``ndarray.__dlpack__``, ``np.from_dlpack``); strided views stay strided.
* CUDA tensors hold `runtime.cuda.DeviceArray`s. Export builds a ``DLManagedTensor`` (DLPack's C
  ABI) with ctypes, wrapped in a capsule named ``"dltensor"``; the exported array stays alive in
  `_exports` (keyed by the struct's address) until a consumer calls the deleter, or until the
  capsule dies unconsumed. Import reads the struct and wraps its pointer in a DeviceArray whose
  block (`_ForeignBlock`) calls the producer's deleter when the DeviceArray is freed. tracejit's
  CUDA arrays are dense row-major: a strided CUDA producer is refused (BufferError naming its
  strides), never copied behind the caller's back.
* Streams: tracejit runs its kernels on the legacy default stream. Exporting to a consumer
  stream other than the legacy default (1) or "no sync" (-1) synchronizes the device first;
  importing asks the producer for stream 1.
* The host emulation of CUDA (``tj.cuda.emulate``): its "device memory" is host memory, which
  must never reach another library as GPU memory. To `from_dlpack` itself an emulated tensor
  is ``(kDLCUDA, index)`` and exports a ``"dltensor"`` capsule (a tracejit to tracejit round
  trip through the same C ABI code, which is how that code is tested without a GPU). To any
  other consumer it is ``(kDLCPU, 0)`` and ``__dlpack__`` gives a host *copy*, as
  ``np.asarray`` does (``copy=False`` raises a BufferError): ``torch.tensor(t)``,
  ``torch.as_tensor(t)``, ``np.from_dlpack(t)`` keep working, without sharing.
  ``__cuda_array_interface__`` is an AttributeError there, as on CPU tensors.

>>> import numpy as np, tracejit as tj
>>> t = tj.zeros(3)
>>> a = np.from_dlpack(t)          # shares t's memory
>>> a[0] = 5.0
>>> t
tensor([5., 0., 0.])
>>> u = tj.from_dlpack(a)          # and back, still the same memory
>>> u.add_(1)
tensor([6., 1., 1.])
>>> t
tensor([6., 1., 1.])
"""

from __future__ import annotations

import ctypes
import threading
import weakref
from contextlib import contextmanager

import numpy as np

from . import dtypes as D
from .tensor import Tensor

__all__ = ["from_dlpack", "to_dlpack", "dlpack_device", "cuda_array_interface"]

# -- DLPack's C ABI (dlpack.h, unversioned DLManagedTensor) -------------------------------------
kDLCPU, kDLCUDA, kDLCUDAHost, kDLCUDAManaged = 1, 2, 3, 13
_HOST_READABLE = (kDLCPU, kDLCUDAHost, kDLCUDAManaged)  # what np.from_dlpack accepts

# DLDataType code -> numpy kind, and back (lanes are always 1 here)
_CODE_KIND = {0: "i", 1: "u", 2: "f", 6: "b"}
_KIND_CODE = {k: c for c, k in _CODE_KIND.items()}


class DLDevice(ctypes.Structure):
    _fields_ = [("device_type", ctypes.c_int32), ("device_id", ctypes.c_int32)]


class DLDataType(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint8), ("bits", ctypes.c_uint8), ("lanes", ctypes.c_uint16)]


class DLTensor(ctypes.Structure):
    _fields_ = [("data", ctypes.c_void_p), ("device", DLDevice), ("ndim", ctypes.c_int32),
                ("dtype", DLDataType), ("shape", ctypes.POINTER(ctypes.c_int64)),
                ("strides", ctypes.POINTER(ctypes.c_int64)), ("byte_offset", ctypes.c_uint64)]


# void (*deleter)(DLManagedTensor*): the argument is taken as a plain address
_Deleter = ctypes.CFUNCTYPE(None, ctypes.c_void_p)


class DLManagedTensor(ctypes.Structure):
    _fields_ = [("dl_tensor", DLTensor), ("manager_ctx", ctypes.c_void_p),
                ("deleter", _Deleter)]


# The Python C API, through private prototypes (setting argtypes on ctypes.pythonapi's shared
# function objects would change them for every other user in the process). The capsule
# destructor gets a dying object (refcount 0): it must only see it as a raw address.
_api = ctypes.pythonapi
_CapsuleDestructor = ctypes.CFUNCTYPE(None, ctypes.c_void_p)
_capsule_new = ctypes.PYFUNCTYPE(ctypes.py_object, ctypes.c_void_p, ctypes.c_char_p,
                                 _CapsuleDestructor)(("PyCapsule_New", _api))
_capsule_get = ctypes.PYFUNCTYPE(ctypes.c_void_p, ctypes.py_object, ctypes.c_char_p)(
    ("PyCapsule_GetPointer", _api))
_capsule_name = ctypes.PYFUNCTYPE(ctypes.c_char_p, ctypes.py_object)(("PyCapsule_GetName", _api))
_capsule_set_name = ctypes.PYFUNCTYPE(ctypes.c_int, ctypes.py_object, ctypes.c_char_p)(
    ("PyCapsule_SetName", _api))
_capsule_valid_raw = ctypes.PYFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_char_p)(
    ("PyCapsule_IsValid", _api))
_capsule_get_raw = ctypes.PYFUNCTYPE(ctypes.c_void_p, ctypes.c_void_p, ctypes.c_char_p)(
    ("PyCapsule_GetPointer", _api))

# A capsule keeps a pointer to its name, not a copy: these live as long as the module.
_NAME = b"dltensor"
_USED = b"used_dltensor"


# -- export -----------------------------------------------------------------------------------
_exports: dict[int, tuple] = {}  # struct address -> (struct, shape, strides, DeviceArray)
_exports_lock = threading.Lock()
_consuming = threading.local()  # set while from_dlpack asks a producer for its capsule


def _release(addr: int) -> None:
    """Drops an exported array's record: the DeviceArray may now be freed."""
    with _exports_lock:
        _exports.pop(addr, None)


def _delete_export(addr) -> None:  # the DLManagedTensor deleter of every tracejit capsule
    if addr:
        _release(addr)


def _destroy_capsule(cap) -> None:  # PyCapsule destructor: only an unconsumed capsule owns it
    try:
        if cap and _capsule_valid_raw(cap, _NAME):
            _call_deleter(_capsule_get_raw(cap, _NAME))
    except Exception:  # noqa: BLE001  (no Python error may escape a destructor)
        pass


def _call_deleter(addr: int) -> None:
    fn = DLManagedTensor.from_address(addr).deleter
    if fn:
        fn(addr)


# module-level, so the C function pointers outlive every capsule and struct that holds them
_DELETER = _Deleter(_delete_export)
_DESTRUCTOR = _CapsuleDestructor(_destroy_capsule)


@contextmanager
def _as_consumer():
    """Marks this thread as tracejit's own DLPack consumer (see the module docstring)."""
    prev = getattr(_consuming, "on", False)
    _consuming.on = True
    try:
        yield
    finally:
        _consuming.on = prev


def _realized(t: Tensor, what: str):
    if t._node is not None:
        from .trace import concretization_error
        raise concretization_error(what, t._type())
    return t._value


def dlpack_device(t: Tensor) -> tuple[int, int]:
    """``(device_type, device_id)`` of `t` in DLPack's terms: (1, 0) on the CPU, (2, i) on
    ``cuda:i``; on the host emulation (2, i) only to `from_dlpack` (see the module docstring)."""
    d = t.device
    if d.type != "cuda" or (_emulated(t) and not getattr(_consuming, "on", False)):
        return (kDLCPU, 0)
    return (kDLCUDA, d.index or 0)


def _emulated(t: Tensor) -> bool:
    v = t._value if t._node is None else None
    return v is not None and type(v) is not np.ndarray and v.driver.emulated


def to_dlpack(t: Tensor, *, stream=None, max_version=None, dl_device=None, copy=None):
    """`Tensor.__dlpack__`: a DLPack capsule sharing `t`'s memory (or a copy: ``copy=True``,
    or a CUDA tensor asked for ``dl_device=(1, 0)``)."""
    v = _realized(t, "Tensor.__dlpack__()")
    t._exposed = True  # another library may now write to the buffer
    if type(v) is np.ndarray:
        return _numpy_dlpack(v, stream, max_version, dl_device, copy)
    index = t.device.index or 0
    if v.driver.emulated and not getattr(_consuming, "on", False):
        if copy is False:
            raise BufferError("Tensor.__dlpack__: this tensor lives on tracejit's host emulation "
                              "of CUDA (tj.cuda.emulate), whose memory is shared with "
                              "tj.from_dlpack only; other libraries get a host copy (copy=None)")
        if dl_device is not None and tuple(dl_device) != (kDLCPU, 0):
            raise BufferError(f"Tensor.__dlpack__: a tensor on tracejit's host emulation of "
                              f"CUDA cannot be exported to DLPack device {tuple(dl_device)}; "
                              f"other libraries get a host copy")
        dl_device = (kDLCPU, 0)
    if dl_device is not None and tuple(dl_device) != (kDLCUDA, index):
        if tuple(dl_device) == (kDLCPU, 0) and copy is not False:
            return _numpy_dlpack(v.get(), None, max_version, None, None)
        raise BufferError(f"Tensor.__dlpack__: cannot export a tensor on cuda:{index} to "
                          f"DLPack device {tuple(dl_device)}"
                          + (" without a copy" if tuple(dl_device) == (kDLCPU, 0) else ""))
    if stream not in (None, 1, -1):  # the consumer's stream may not wait for the legacy one
        v.driver.synchronize()
    return _capsule(v.copy() if copy else v, index)


def _numpy_dlpack(a: np.ndarray, stream, max_version, dl_device, copy):
    kw = {k: x for k, x in (("max_version", max_version), ("dl_device", dl_device),
                            ("copy", copy)) if x is not None}
    try:
        return a.__dlpack__(stream=stream, **kw)
    except TypeError:  # numpy < 2.1 knows only `stream`
        if kw.get("copy"):
            a = a.copy()
        return a.__dlpack__(stream=stream)


def _capsule(v, index: int):
    """A ``"dltensor"`` capsule for DeviceArray `v` (dense row-major) on device `index`."""
    n = max(v.ndim, 1)  # (never NULL arrays, even 0-d)
    shape = (ctypes.c_int64 * n)(*v.shape)
    strides = (ctypes.c_int64 * n)(*_row_major(v.shape))
    m = DLManagedTensor()
    dt = v.dtype
    m.dl_tensor.data = v.ptr
    m.dl_tensor.device = DLDevice(kDLCUDA, index)
    m.dl_tensor.ndim = v.ndim
    m.dl_tensor.dtype = DLDataType(_KIND_CODE[dt.kind], dt.itemsize * 8, 1)
    m.dl_tensor.shape = ctypes.cast(shape, ctypes.POINTER(ctypes.c_int64))
    m.dl_tensor.strides = ctypes.cast(strides, ctypes.POINTER(ctypes.c_int64))
    m.dl_tensor.byte_offset = 0
    m.deleter = _DELETER
    addr = ctypes.addressof(m)
    m.manager_ctx = addr
    with _exports_lock:
        _exports[addr] = (m, shape, strides, v)
    return _capsule_new(addr, _NAME, _DESTRUCTOR)


def _row_major(shape) -> list[int]:
    out, step = [], 1
    for s in reversed(shape):
        out.append(step)
        step *= max(int(s), 1)
    return out[::-1]


def cuda_array_interface(t: Tensor) -> dict:
    """`Tensor.__cuda_array_interface__` (version 3) of a tensor on a GPU; AttributeError for
    CPU tensors, tracers and the host emulation, so ``hasattr`` answers False there."""
    v = t._value if t._node is None else None
    if v is None or type(v) is np.ndarray:
        raise AttributeError("__cuda_array_interface__: only tensors on a CUDA GPU have one "
                             "(this one is on the CPU); use np.asarray(t) or __dlpack__")
    if v.driver.emulated:
        raise AttributeError("__cuda_array_interface__: this tensor lives on tracejit's host "
                             "emulation of CUDA, not on a GPU")
    t._exposed = True
    # (stream 1: the legacy default stream, where tracejit's kernels run)
    return {**v.__cuda_array_interface__, "stream": 1}


# -- import -----------------------------------------------------------------------------------
class _ForeignBlock:
    """Device memory owned by another library, in place of a pool block in a DeviceArray:
    `owner` is kept alive and `deleter` (a DLManagedTensor address) called when it dies."""

    __slots__ = ("ptr", "size", "owner", "__weakref__")

    def __init__(self, ptr: int, size: int, owner=None, managed: int | None = None):
        self.ptr, self.size, self.owner = ptr, size, owner
        if managed is not None:
            weakref.finalize(self, _call_deleter, managed)


def from_dlpack(x, *, device=None, copy: bool | None = None) -> Tensor:
    """A Tensor sharing memory with `x`: an object with ``__dlpack__`` (numpy, PyTorch, CuPy,
    JAX, a tracejit Tensor), a DLPack capsule, or an object with ``__cuda_array_interface__``.

    CPU data goes through ``np.from_dlpack`` (strided views stay strided). CUDA data becomes a
    CUDA tensor on the producer's device; it must be dense row-major (a BufferError names the
    strides otherwise: call ``.contiguous()`` on the producer first). ``copy=True`` returns a
    copy; ``device=`` moves the result (a copy, refused with ``copy=False``).

    >>> import numpy as np, tracejit as tj
    >>> a = np.arange(4, dtype=np.float32)
    >>> t = tj.from_dlpack(a)
    >>> t.add_(1)
    tensor([1., 2., 3., 4.])
    >>> a
    array([1., 2., 3., 4.], dtype=float32)
    """
    if hasattr(x, "__dlpack__"):
        with _as_consumer():
            dev = tuple(x.__dlpack_device__())
        if dev[0] in _HOST_READABLE:
            out = _from_host(x, copy)
        elif dev[0] == kDLCUDA:
            with _as_consumer():
                try:
                    cap = x.__dlpack__(stream=1)  # tracejit's kernels use the legacy stream
                except TypeError:
                    cap = x.__dlpack__()
            out = _from_capsule(cap)
        else:
            raise BufferError(f"from_dlpack: DLPack device type {dev[0]} is not supported "
                              "(only CPU and CUDA)")
    elif type(x).__name__ == "PyCapsule":
        out = _from_capsule(x)
    elif hasattr(x, "__cuda_array_interface__"):
        out = _from_cai(x)
    else:
        raise TypeError(f"from_dlpack: expected an array with __dlpack__ or "
                        f"__cuda_array_interface__ (or a DLPack capsule), got {type(x).__name__}")
    if copy and out.is_cuda:  # (numpy made the copy of CPU data)
        out = out.clone()
    if device is not None and out.device != device:
        if copy is False:
            raise BufferError(f"from_dlpack: the data is on {out.device}; moving it to "
                              f"{device} needs a copy (copy=False)")
        out = out.to(device)
    return out


def _from_host(x, copy) -> Tensor:
    try:
        a = np.from_dlpack(x, copy=copy) if copy is not None else np.from_dlpack(x)
    except TypeError:  # numpy < 2.1
        a = np.from_dlpack(x)
        a = a.copy() if copy else a
    D.as_dtype(a.dtype)  # a clear TypeError for dtypes tracejit lacks
    t = Tensor._wrap(a)
    t._exposed = True
    return t


def _from_capsule(cap) -> Tensor:
    name = _capsule_name(cap)
    if name != _NAME:
        if name == _USED:
            raise BufferError("from_dlpack: this DLPack capsule was already consumed (a capsule "
                              "can be used once; call __dlpack__ again)")
        raise BufferError(f"from_dlpack: expected a capsule named 'dltensor', got {name!r}")
    addr = _capsule_get(cap, _NAME)
    dl = DLManagedTensor.from_address(addr).dl_tensor
    kind = dl.device.device_type
    if kind != kDLCUDA:
        raise BufferError(f"from_dlpack: a DLPack capsule on device type {kind} cannot be taken "
                          "(pass the array itself for CPU data)")
    dtype = _np_dtype(dl.dtype)
    shape = tuple(dl.shape[i] for i in range(dl.ndim))
    if dl.strides:
        strides = tuple(dl.strides[i] for i in range(dl.ndim))
        _check_dense(shape, strides, 1, "elements")
    driver = _driver_for(addr, dl.device.device_id)
    ptr = (dl.data or 0) + dl.byte_offset
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if _capsule_set_name(cap, _USED) != 0:
        raise BufferError("from_dlpack: could not mark the capsule as consumed")
    block = _ForeignBlock(ptr, nbytes, managed=addr)  # owns the producer's deleter from here
    return _device_tensor(shape, dtype, driver, block)


def _np_dtype(dt: DLDataType) -> np.dtype:
    kind = _CODE_KIND.get(dt.code)
    if kind is None or dt.lanes != 1 or (kind == "b" and dt.bits != 8):
        raise BufferError(f"from_dlpack: DLPack dtype (code={dt.code}, bits={dt.bits}, "
                          f"lanes={dt.lanes}) is not supported")
    out = np.dtype(f"{kind}{dt.bits // 8}" if kind != "b" else "?")
    D.as_dtype(out)
    return out


def _check_dense(shape, strides, itemsize: int, unit: str) -> None:
    # (a size-1 dimension may carry any stride; a zero-size array is dense)
    want = [w * itemsize for w in _row_major(shape)]
    if 0 in shape or all(s == w for n, s, w in zip(shape, strides, want) if n != 1):
        return
    raise BufferError(f"from_dlpack: a CUDA array of shape {tuple(shape)} with strides "
                      f"{tuple(strides)} ({unit}) is not dense row-major, which tracejit's CUDA "
                      f"tensors must be; make it contiguous first (x.contiguous() in PyTorch, "
                      f"cupy.ascontiguousarray(x))")


def _driver_for(addr: int, device_id: int):
    """The driver of the device the capsule's memory is on; emulated memory is taken only
    from tracejit's own capsules, and foreign pointers never go to the emulation."""
    with _exports_lock:
        rec = _exports.get(addr)
    if rec is not None:
        return rec[3].driver
    from . import cuda
    drv = cuda.driver(device_id)
    if drv.emulated:
        raise BufferError("from_dlpack: CUDA memory from another library cannot be used while "
                          "tracejit's 'cuda' is the host emulation (tj.cuda.emulate)")
    return drv


def _device_tensor(shape, dtype, driver, block) -> Tensor:
    from .runtime.cuda import DeviceArray
    t = Tensor._wrap(DeviceArray(shape, dtype, driver, block))
    t._exposed = True
    return t


def _from_cai(x) -> Tensor:
    cai = x.__cuda_array_interface__
    from . import cuda
    drv = cuda.driver(None)  # (the interface does not name a device: the current one)
    if drv.emulated:
        raise BufferError("from_dlpack: CUDA memory from another library cannot be used while "
                          "tracejit's 'cuda' is the host emulation (tj.cuda.emulate)")
    if cai.get("mask") is not None:
        raise BufferError("from_dlpack: masked __cuda_array_interface__ arrays are not supported")
    dtype = np.dtype(cai["typestr"])
    D.as_dtype(dtype)
    shape = tuple(int(s) for s in cai["shape"])
    if cai.get("strides") is not None:
        _check_dense(shape, tuple(cai["strides"]), dtype.itemsize, "bytes")
    stream = cai.get("stream")
    if stream is not None and stream != 1:  # its work may still be running on that stream
        drv.synchronize()
    ptr = int(cai["data"][0] or 0)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    return _device_tensor(shape, dtype, drv, _ForeignBlock(ptr, nbytes, owner=x))
