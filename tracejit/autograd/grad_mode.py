"""Grad mode: whether eager ops record the autograd tape.

Input: nothing. Output: `no_grad`, `enable_grad`, `set_grad_enabled` (context managers and
decorators, as in PyTorch) and `is_grad_enabled()`. The mode is per thread, on by default.
"""

from __future__ import annotations

import functools
import threading

__all__ = ["no_grad", "enable_grad", "set_grad_enabled", "is_grad_enabled",
           "inference_mode"]

_state = threading.local()


def is_grad_enabled() -> bool:
    """Whether ops on Tensors that require grad record how to differentiate them."""
    return getattr(_state, "enabled", True)


def _set(flag: bool) -> None:
    _state.enabled = bool(flag)


class _Mode:
    """A context manager that is also a decorator (a fresh context per call)."""

    _flag = True

    def __enter__(self):
        self._prev = is_grad_enabled()
        _set(self._flag)
        return self

    def __exit__(self, *exc):
        _set(self._prev)
        return False

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with type(self)():
                return fn(*args, **kwargs)
        return wrapper


class no_grad(_Mode):
    """Disables gradient recording: results of ops inside never require grad.

    >>> import tracejit as tj
    >>> x = tj.ones(2, requires_grad=True)
    >>> with tj.no_grad():
    ...     y = x * 2
    >>> y.requires_grad
    False
    """

    _flag = False


class enable_grad(_Mode):
    """Re-enables gradient recording inside a `no_grad` block (or function)."""

    _flag = True


class inference_mode(no_grad):
    """PyTorch's `inference_mode`: here the same as `no_grad`."""

    def __init__(self, mode: bool = True):
        self._flag = not mode


class set_grad_enabled(_Mode):
    """``set_grad_enabled(False)`` as a context manager, decorator or plain call."""

    def __init__(self, mode: bool):
        self._flag = bool(mode)
        self._prev = is_grad_enabled()
        _set(self._flag)  # like PyTorch, calling it switches the mode at once

    def __enter__(self):
        return self

    def __call__(self, fn):
        flag = self._flag
        _set(self._prev)

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            prev = is_grad_enabled()
            _set(flag)
            try:
                return fn(*args, **kwargs)
            finally:
                _set(prev)
        return wrapper
