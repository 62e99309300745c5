"""In-place writes: storing a new value into an existing Tensor.

Input: a target Tensor and a Tensor with its new value (same shape and dtype, already computed
by an ordinary op). Output: the target, holding the value — its buffer overwritten when it is a
realized Tensor (so numpy arrays sharing it see the write), or rebound to the new node when it
is a tracer. Autograd follows PyTorch: the target's version counter advances (so a value saved
for backward that is later overwritten raises instead of giving a wrong gradient), a target that
is a leaf requiring grad is refused while grad mode is on, and the target takes over the new
value's ``grad_fn``. When the op that computed the new value saved the target itself for its
backward, a snapshot of the old value is saved in its place.
"""

from __future__ import annotations

import numpy as np

from ..autograd.grad_mode import is_grad_enabled
from ..errors import user_error
from ..tensor import Tensor

__all__ = ["store"]


def store(self: Tensor, new: Tensor, name: str) -> Tensor:
    if self._requires_grad and self.grad_fn is None and is_grad_enabled():
        raise user_error(RuntimeError, "a leaf Variable that requires grad is being used in an "
                         f"in-place operation ({name}).")
    fn = new.grad_fn
    if fn is not None and getattr(fn, "versions", None) is not None and \
            any(x is self for x in fn.inputs):
        snap = _snapshot(self)
        fn.inputs = tuple(snap if x is self else x for x in fn.inputs)
        fn.versions = tuple(snap._version if x is snap else v
                            for x, v in zip(fn.inputs, fn.versions))
    if self._is_tracer:
        self._rebind(new)
    elif new._is_tracer:
        from ..trace import current_builder
        b = current_builder()
        if b is None or not hasattr(b, "write_back"):
            raise user_error(TypeError, f"{name}: cannot write a traced value into a realized "
                             "tensor inside this trace; return the new value instead")
        b.write_back(self, new)
    else:
        if self._lazy is None:  # pending work may read this buffer: run it before the write
            from ..lazy import realize_pending
            realize_pending()
        _store(self, new)
    self._bump_version()
    if fn is not None:
        self.grad_fn, self._out_index, self._requires_grad = fn, new._out_index, True
    return self


def _store(dst: Tensor, src: Tensor) -> None:
    """Writes `src`'s value (broadcast and cast already) into `dst`'s buffer."""
    d, v = dst._value, src._value
    if type(d) is np.ndarray:
        np.copyto(d, np.asarray(v))  # (a CUDA `src` is copied to the host)
        return
    from ..devices import to_device_array  # `dst` is on a CUDA device
    v = to_device_array(v, dst.device)
    d.driver.dtod(d.ptr, v.ptr, d.nbytes)


def _snapshot(t: Tensor) -> Tensor:
    """The current value of `t` as a separate Tensor on the same autograd edge."""
    if t._is_tracer:
        s = Tensor._tracer(t._node, t._builder, t._value)
    else:
        s = t.clone()
    s.grad_fn, s._out_index, s._requires_grad = t.grad_fn, t._out_index, t._requires_grad
    if t.grad_fn is None and t._requires_grad:
        s._accum, s._accum_strong = t._accum, getattr(t, "_accum_strong", None)
    return s
