"""`tj.cuda`: querying, choosing and using NVIDIA GPUs, as ``torch.cuda``.

Input: the environment (pycuda installed? a driver and a GPU present? ``CUDA_VISIBLE_DEVICES``,
``TRACEJIT_CUDA_EMULATE``). Output: ``is_available()``, ``device_count()``,
``current_device()``, ``set_device(i)``, ``synchronize()``, ``get_device_name(i)``,
``get_device_properties(i)``, ``memory_allocated()``, ``memory_reserved()``,
``empty_cache()``, and `driver(i)`, the object the CUDA runtime (`runtime/cuda.py`) runs on.

Importing tracejit never imports pycuda: it is imported at the first question, and its absence
(or a machine without a driver or GPU) is an answer — ``is_available()`` is False and
``device_count()`` 0 — never an import error. Asking to *use* a device that is not there raises
a RuntimeError saying what is missing and how to install it (see docs/gpu.md).

The host emulation (``TRACEJIT_CUDA_EMULATE=1``, or ``tj.cuda.emulate(True)``) stands in for
one GPU on machines without one: the same generated CUDA C, compiled as C++ and run with every
CUDA thread emulated (`runtime/cuda_emu.py`). It is how the CUDA backend is tested here; it is
slow (thousands of times slower than a GPU) and not meant for real work.

>>> import tracejit as tj
>>> isinstance(tj.cuda.is_available(), bool)
True
"""

from __future__ import annotations

import os
import threading
from collections import namedtuple

__all__ = ["is_available", "device_count", "current_device", "set_device", "synchronize",
           "get_device_name", "get_device_properties", "memory_allocated", "memory_reserved",
           "empty_cache", "emulate", "is_emulated", "driver"]

_lock = threading.RLock()
_state: dict = {}
_drivers: dict[int, object] = {}
_current = threading.local()
_emulate: list = [None]  # None: from TRACEJIT_CUDA_EMULATE


def is_emulated() -> bool:
    """Whether "cuda" means the host emulation (``TRACEJIT_CUDA_EMULATE=1`` or `emulate`)."""
    if _emulate[0] is not None:
        return _emulate[0]
    return os.environ.get("TRACEJIT_CUDA_EMULATE", "").strip().lower() in ("1", "true", "yes",
                                                                             "on")


def emulate(flag: bool | None = True) -> None:
    """Makes "cuda" the host emulation (True) or real GPUs (False) from now on, in this
    process (None: as ``TRACEJIT_CUDA_EMULATE`` says). Tensors already on a device stay where
    they are."""
    with _lock:
        _emulate[0] = None if flag is None else bool(flag)
        _state.clear()


def _probe() -> tuple[object, int, str]:
    """``(pycuda.driver or "emulated" or None, number of visible devices, why none)``,
    computed once."""
    with _lock:
        if "driver" not in _state:
            drv, n, why = None, 0, ""
            if is_emulated():
                from .runtime.cuda_emu import compiler
                if compiler() is None:
                    why = "the CUDA host emulation needs a C++ compiler (c++, g++ or clang++)"
                else:
                    drv, n = "emulated", 1
            elif os.environ.get("CUDA_VISIBLE_DEVICES", None) == "":
                why = "CUDA_VISIBLE_DEVICES is empty"
            else:
                try:
                    import pycuda.driver as drv  # noqa: F811
                    drv.init()
                    n = drv.Device.count()
                    if n == 0:
                        why = "the CUDA driver reports no GPU"
                except ImportError:
                    drv, why = None, ("pycuda is not installed (pip install 'tracejit[cuda]'; "
                                      "it needs the CUDA toolkit and an NVIDIA driver)")
                except Exception as e:  # noqa: BLE001  (pycuda.driver.Error: no driver, ...)
                    drv, why = None, f"the CUDA driver could not start: {e}"
            _state.update(driver=drv, count=n, why=why)
        return _state["driver"], _state["count"], _state["why"]


def is_available() -> bool:
    """Whether a GPU can be used: pycuda installed, a driver, and at least one visible GPU
    (or the host emulation is on)."""
    return _probe()[1] > 0


def device_count() -> int:
    """The number of visible GPUs (0 when none can be used)."""
    return _probe()[1]


def _need(index: int | None = None) -> int:
    _, n, why = _probe()
    if n == 0:
        raise RuntimeError(f"CUDA is not available: {why}. See docs/gpu.md.")
    if index is not None and not 0 <= index < n:
        raise RuntimeError(f"CUDA device {index} does not exist: {n} device(s) are visible "
                           "(CUDA_VISIBLE_DEVICES selects and renumbers them)")
    return n


def _index(device) -> int:
    if device is None:
        return current_device()
    if isinstance(device, int) and not isinstance(device, bool):
        return device
    from .tensor import device as Device
    d = Device(device)
    if d.type != "cuda":
        raise ValueError(f"expected a CUDA device, got {d}")
    return current_device() if d.index is None else d.index


def driver(device=None):
    """The runtime driver of a CUDA device (`runtime.cuda.PyCudaDriver`, or the emulated
    device), created at first use."""
    index = _index(device)
    _need(index)
    with _lock:
        d = _drivers.get((is_emulated(), index))
        if d is None:
            if is_emulated():
                from .runtime.cuda_emu import emulated_driver
                d = emulated_driver()
            else:
                from .runtime.cuda import PyCudaDriver
                d = PyCudaDriver(index)
            d.index = index
            _drivers[(is_emulated(), index)] = d
        return d


def current_device() -> int:
    """The index of the device this thread uses (0 unless `set_device` chose another)."""
    _need()
    return getattr(_current, "index", 0)


def set_device(device) -> None:
    """Makes `device` (an index, ``"cuda:N"`` or a `tj.device`) this thread's device."""
    from .tensor import device as Device
    d = Device(device) if not isinstance(device, int) else Device("cuda", device)
    if d.type != "cuda":
        raise ValueError(f"set_device: expected a CUDA device, got {d}")
    index = d.index or 0
    _need(index)
    _current.index = index


def synchronize(device=None) -> None:
    """Waits for the work queued on `device` (default: the current one) to finish."""
    driver(device).synchronize()


def get_device_name(device=None) -> str:
    return driver(device).name


DeviceProperties = namedtuple("DeviceProperties", "name major minor total_memory "
                              "multi_processor_count")


def get_device_properties(device=None) -> DeviceProperties:
    d = driver(device)
    major, minor = d.compute_capability
    return DeviceProperties(d.name, major, minor, d.total_memory, d.multiprocessors)


def memory_allocated(device=None) -> int:
    """Bytes of device memory held by live tensors (as the caching allocator counts them)."""
    from .runtime.cuda import pool
    return pool(driver(device)).allocated


def memory_reserved(device=None) -> int:
    """Bytes obtained from the driver: held by tensors, or cached for reuse."""
    from .runtime.cuda import pool
    return pool(driver(device)).reserved


def empty_cache() -> None:
    """Returns the caching allocator's unused blocks to the driver (every device used)."""
    from .runtime.cuda import pool
    with _lock:
        drivers = list(_drivers.values())
    for d in drivers:
        pool(d).empty_cache()
