"""Mutable state inside `tj.compile`: in-place updates of captured tensors and ``.grad``.

Input: a function traced by `jit.CompiledFunction` that writes to tensors it did not create —
``optimizer.step()`` updating parameters and momentum buffers with ``p.add_(...)`` /
``buf.copy_(...)``, ``loss.backward()`` setting ``p.grad``, ``optimizer.zero_grad()`` clearing
it, a random generator advancing its counter. Output: a graph whose extra results are the new
values, and a `WriteBack` plan that the compiled function applies after every call (copying
new values into the tensors' buffers, setting or clearing ``.grad``), so a compiled training
step leaves the model and optimizer exactly as the eager step would.

During the trace, a realized tensor written in place keeps its buffer; later reads of it in the
same trace see the new (traced) value. ``.grad`` writes are logged and undone when the trace
ends (no tracer leaks into a Python object). Reading a ``.grad`` that holds a tensor from an
earlier call makes that ``.grad`` an input read at every call; whether it was None when traced
is a guard: a call where that changes traces again.

Arguments are written back too: a Tensor argument modified in place inside the function is
updated after the call, and one that requires grad is traced as a leaf that does, whose
gradient from ``backward()`` inside the function is accumulated into its ``.grad`` after the
call (inside the function its ``.grad`` holds only this call's gradient).
"""

from __future__ import annotations

import sys
import weakref

import numpy as np

from .tensor import Tensor
from .trace import Builder, current_builder

__all__ = ["StateBuilder", "WriteBack", "state_builder"]


class _GradOf:
    """A captured input standing for ``t.grad`` as it is at each call."""

    __slots__ = ("t",)
    _is_tracer = False

    def __init__(self, t: Tensor):
        self.t = t

    @property
    def _value(self):
        return self.t._grad._value

    def numpy(self):
        return self.t._grad._value

    def _type(self):
        return self.t._grad._type()


class _ItemOf:
    """A captured input standing for the Python number ``container[key]`` as it is at each call
    (an optimizer's learning rate, which schedulers change between steps)."""

    __slots__ = ("container", "key")
    _is_tracer = False

    def __init__(self, container, key):
        self.container, self.key = container, key

    @property
    def _value(self):
        return np.asarray(self.container[self.key], dtype=np.float64)

    def numpy(self):
        return self._value

    def _type(self):
        from . import dtypes as D
        from .ir.graph import TensorType
        return TensorType((), D.float64, weak=True)


class StateBuilder(Builder):
    """The top-level builder of a compiled function: tracks writes to outside tensors."""

    def __init__(self, name: str = "f", parent: Builder | None = None, concrete: bool = False):
        super().__init__(name, parent, concrete)
        self.updated: dict[int, tuple[Tensor, Tensor]] = {}  # id -> (target, new value)
        self.grads: dict[int, tuple[Tensor, object]] = {}  # id -> (tensor, .grad before)
        self.grad_guards: dict[int, tuple[Tensor, bool]] = {}  # id -> (tensor, was None)
        self.grad_inputs: dict[int, Tensor] = {}  # id -> tracer reading t.grad
        self.final_grads: dict[int, object] = {}
        self.item_inputs: dict = {}
        self.keep_alive: list = []
        self.value_guards: list = []

    # -- writes of values ----------------------------------------------------------------
    def write_back(self, target: Tensor, new: Tensor) -> None:
        self.updated[id(target)] = (target, new)

    def lift(self, x):
        hit = self.updated.get(id(x))
        if hit is not None and hit[0] is x:
            return super().lift(hit[1])
        return super().lift(x)

    # -- Python values -------------------------------------------------------------------
    def read_item(self, container, key) -> Tensor:
        """A weakly typed scalar input holding ``container[key]`` at each call."""
        k = (id(container), key)
        tr = self.item_inputs.get(k)
        if tr is None:
            src = _ItemOf(container, key)
            node = self.add_input(src._type(), str(key), kind="capture")
            self.captured.append(src)
            self.keep_alive.append(container)
            tr = self.item_inputs[k] = Tensor._tracer(node, self)
        return tr

    def guard_item(self, container, key) -> None:
        """The trace depends on ``container[key]``: a call where it changed traces again."""
        self.value_guards.append((container, key, container[key]))

    # -- .grad ---------------------------------------------------------------------------
    def read_grad(self, t: Tensor):
        """What ``t.grad`` reads as inside the trace."""
        if id(t) in self.grads:
            return t._grad
        if id(t) not in self.grad_guards:
            self.grad_guards[id(t)] = (t, t._grad is None)
        if t._grad is None or t._grad._is_tracer:
            return t._grad
        tr = self.grad_inputs.get(id(t))
        if tr is None:
            src = _GradOf(t)
            node = self.add_input(src._type(), "grad", kind="capture")
            self.captured.append(src)
            tr = self.grad_inputs[id(t)] = Tensor._tracer(node, self)
        return tr

    def write_grad(self, t: Tensor) -> None:
        if id(t) not in self.grads:  # (a write before any read needs no guard)
            self.grads[id(t)] = (t, t._grad)

    def __exit__(self, *exc):
        for key, (t, before) in self.grads.items():
            self.final_grads[key] = t._grad
            t._grad = before
        return super().__exit__(*exc)

    def finish(self, outputs: list):
        """The graph with the written values and ``.grad``s as extra outputs, in `plan`."""
        outs = list(outputs)
        plan = WriteBack(len(outs))
        for target, new in self.updated.values():
            plan.values.append((target, len(outs)))
            outs.append(Builder.lift(self, new) if new._builder is not self else new._node)
        for key, (t, _) in self.grads.items():
            g = self.final_grads.get(key, t._grad)
            if g is None:
                plan.grads.append((t, None))
                continue
            if not isinstance(g, Tensor):
                raise TypeError(f".grad must be a Tensor or None, got {type(g).__name__}")
            plan.grads.append((t, len(outs)))
            outs.append(self.lift(g))
        for i, (tr, inp) in enumerate(zip(getattr(self, "arg_tracers", ()), self.inputs)):
            if tr._node is not inp:  # written in place: write back into the argument
                plan.arg_values.append((i, len(outs)))
                outs.append(tr._node)
            if tr._grad is not None:  # loss.backward() reached an argument that requires grad
                plan.arg_grads.append((i, len(outs)))
                outs.append(self.lift(tr._grad))
        plan.guards = [(weakref.ref(t), was_none) for t, was_none in self.grad_guards.values()]
        plan.value_guards = list(self.value_guards)
        self.plan = plan
        return super().finish(outs)


def state_builder() -> StateBuilder | None:
    """The innermost builder when it is a compiled function's top level."""
    b = current_builder()
    return b if isinstance(b, StateBuilder) else None


class WriteBack:
    """What a compiled call writes back: `values` as ``(tensor, output index)``, `grads` as
    ``(tensor, output index or None)``; `guards` ``(weakref, grad was None)``."""

    def __init__(self, n_user: int):
        self.n_user = n_user
        self.values: list = []
        self.grads: list = []
        self.guards: list = []
        self.arg_values: list = []  # (argument leaf index, output index)
        self.arg_grads: list = []
        self.value_guards: list = []  # (container, key, value when traced)

    def targets(self, t) -> bool:
        return any(x is t for x, _ in self.values) or any(x is t for x, _ in self.grads)

    @property
    def empty(self) -> bool:
        return not (self.values or self.grads or self.guards or self.arg_values or
                    self.arg_grads or self.value_guards)

    def stale(self) -> str | None:
        """Why this plan no longer matches the tensors' state (None when it does)."""
        for container, key, value in self.value_guards:
            now = container.get(key) if isinstance(container, dict) else None
            if now != value:
                return f"{key!r} was {value!r} when traced and is {now!r} now"
        for ref, was_none in self.guards:
            t = ref()
            if t is None:
                return "a tensor whose .grad the function reads was garbage-collected"
            if (t._grad is None) != was_none:
                return (f".grad of a {t._type()} tensor was "
                        f"{'None' if was_none else 'set'} when traced and is "
                        f"{'None' if t._grad is None else 'set'} now")
        return None

    def apply(self, outs: list, leaves=()) -> list:
        """Writes the extra results back (`leaves`: this call's argument leaves); returns the
        function's own results."""
        for t, j in self.values:
            _store(t, outs[j])
        for t, j in self.grads:
            t._grad = None if j is None else Tensor._wrap(outs[j])
        for i, j in self.arg_values:
            a = leaves[i]
            if isinstance(a, Tensor):
                _store(a, outs[j])
            elif isinstance(a, np.ndarray) and a.flags.writeable:
                np.copyto(a, outs[j])
        for i, j in self.arg_grads:  # accumulates, as backward() does into a leaf's .grad
            a = leaves[i]
            if isinstance(a, Tensor):
                a._grad = Tensor._wrap(outs[j]) if a._grad is None else \
                    Tensor._wrap(a._grad._value + outs[j])
        return outs[:self.n_user]


def _store(t: Tensor, new: np.ndarray) -> None:
    """Writes `new` into `t`: by taking over the new buffer when nothing else holds `t`'s
    current one (no numpy array, view or alias Tensor can observe the difference), else by
    copying into it."""
    old = t._val
    if type(old) is not np.ndarray and old is not None:  # on a CUDA device
        if sys.getrefcount(old) <= 3 and type(new) is type(old) and old.driver is new.driver \
                and old.dtype == new.dtype and old.shape == new.shape:
            t._val = new
        else:
            from .devices import to_device_array
            src = to_device_array(new, t.device)
            old.driver.dtod(old.ptr, src.ptr, old.nbytes)
    elif old is not None and sys.getrefcount(old) <= 3 and old.base is None and \
            type(new) is np.ndarray and old.dtype == new.dtype and old.shape == new.shape \
            and new.flags.writeable:
        # (3: `old`, the attribute, getrefcount's argument)
        t._val = new
    else:
        np.copyto(t._value, np.asarray(new))
    t._bump_version()
