"""`pycuda.driver` for tests (see __init__.py): devices, contexts, memory and copies."""

import ctypes
import threading

import numpy as np

CALLS: dict = {}  # name -> count, for the tests


def _count(name):
    CALLS[name] = CALLS.get(name, 0) + 1


class Error(Exception):
    pass


_inited = [False]


def init(flags=0):
    _inited[0] = True


def _need_init():
    if not _inited[0]:
        raise Error("cuInit has not been called")


class device_attribute:
    MULTIPROCESSOR_COUNT = "MULTIPROCESSOR_COUNT"
    MAX_THREADS_PER_BLOCK = "MAX_THREADS_PER_BLOCK"
    WARP_SIZE = "WARP_SIZE"


_ATTRS = {"MULTIPROCESSOR_COUNT": 4, "MAX_THREADS_PER_BLOCK": 1024, "WARP_SIZE": 32}


class Context:
    """Per-thread stacks of current contexts, as CUDA's."""

    _tls = threading.local()

    def __init__(self, device):
        self.device = device

    @classmethod
    def _stack(cls):
        if not hasattr(cls._tls, "stack"):
            cls._tls.stack = []
        return cls._tls.stack

    def push(self):
        self._stack().append(self)
        _count("push")

    @staticmethod
    def get_current():
        st = Context._stack()
        return st[-1] if st else None

    @staticmethod
    def synchronize():
        if Context.get_current() is None:
            raise Error("no current context")
        _count("synchronize")


class Device:
    def __init__(self, index):
        _need_init()
        if not 0 <= index < Device.count():
            raise Error(f"invalid device ordinal {index}")
        self.index = index
        self._ctx = Context(self)

    @staticmethod
    def count():
        _need_init()
        return 1

    def name(self):
        return "Fake GPU (tracejit emulation)"

    def compute_capability(self):
        return (9, 0)

    def total_memory(self):
        return 1 << 34

    def get_attribute(self, attr):
        return _ATTRS[attr]

    def retain_primary_context(self):
        return self._ctx


_live: dict = {}


class DeviceAllocation:
    def __init__(self, nbytes):
        self._buf = np.full(nbytes + 256, 0xFF, np.uint8)
        self._ptr = self._buf.ctypes.data + (-self._buf.ctypes.data) % 256
        self.nbytes = nbytes
        _live[self._ptr] = self

    def __int__(self):
        return self._ptr

    __index__ = __int__

    def free(self):
        _live.pop(self._ptr, None)
        _count("free")


def _current():
    if Context.get_current() is None:
        raise Error("no current context in this thread (push one first)")


def _region(ptr, nbytes):
    ptr = int(ptr)
    for base, a in _live.items():
        if base <= ptr and ptr + nbytes <= base + a.nbytes:
            return np.ctypeslib.as_array((ctypes.c_uint8 * nbytes).from_address(ptr))
    raise Error(f"invalid device pointer {ptr:#x} (+{nbytes} bytes)")


def mem_alloc(nbytes):
    _current()
    _count("mem_alloc")
    return DeviceAllocation(nbytes)


def memcpy_htod(dest, src):
    _current()
    src = np.asarray(src)
    if not src.flags.c_contiguous:
        raise Error("memcpy_htod: source must be contiguous")
    _region(dest, src.nbytes)[:] = src.reshape(-1).view(np.uint8)
    _count("memcpy_htod")


def memcpy_dtoh(dest, src):
    _current()
    if not dest.flags.c_contiguous:
        raise Error("memcpy_dtoh: destination must be contiguous")
    dest.reshape(-1).view(np.uint8)[:] = _region(src, dest.nbytes)
    _count("memcpy_dtoh")


def memcpy_dtod(dest, src, size):
    _current()
    _region(dest, size)[:] = _region(src, size)


def memset_d8(dest, data, count):
    _current()
    _region(dest, count)[:] = data
