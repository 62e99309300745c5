"""`tj.cuda`: querying and choosing NVIDIA GPUs, as ``torch.cuda``.

Input: the environment (pycuda installed? a driver and a GPU present? ``CUDA_VISIBLE_DEVICES``).
Output: ``is_available()``, ``device_count()``, ``current_device()``, ``set_device(i)``,
``synchronize()``, ``get_device_name(i)``. Importing tracejit never imports pycuda: it is
imported at the first question, and its absence (or a machine without a driver or GPU) is an
answer — ``is_available()`` is False and ``device_count()`` 0 — never an import error. Asking to
*use* a device that is not there raises a RuntimeError saying what is missing and how to
install it (see docs/gpu.md). Running code on the GPU lands with the rest of issue 8.

>>> import tracejit as tj
>>> isinstance(tj.cuda.is_available(), bool)
True
"""

from __future__ import annotations

import os
import threading

__all__ = ["is_available", "device_count", "current_device", "set_device", "synchronize",
           "get_device_name"]

_lock = threading.Lock()
_state: dict = {}
_current = threading.local()


def _probe() -> tuple[object, int, str]:
    """``(pycuda.driver or None, number of visible devices, why none)``, computed once."""
    with _lock:
        if "driver" not in _state:
            drv, n, why = None, 0, ""
            if os.environ.get("CUDA_VISIBLE_DEVICES", None) == "":
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
    """Whether a GPU can be used: pycuda installed, a driver, and at least one visible GPU."""
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
    """Waits for the work queued on `device` to finish (there is none until kernels run on
    the GPU: it checks the device exists)."""
    if device is not None:
        set_device(device)
    _need()


def get_device_name(device=None) -> str:
    drv, _, _ = _probe()
    index = 0 if device is None else (device if isinstance(device, int) else
                                       (getattr(device, "index", None) or 0))
    _need(index)
    return drv.Device(index).name()
