"""The optimizer base class: parameter groups, per-parameter state, state dicts.

Input: parameters (Tensors, or dicts of them with per-group hyper-parameters) and a subclass's
`defaults`. Output: an `Optimizer` whose `step()` updates the parameters in place from their
`.grad`, as PyTorch's `torch.optim.Optimizer` does.

Invariants that make a whole training step compilable (SPEC §6):
- every piece of state is a `Tensor` allocated eagerly, when a parameter group is added (never
  lazily in `step()`), and is updated in place (`copy_`, `add_`), so a compiled step sees the
  same buffers on every call;
- `step()` never reads a tensor's value in Python (no `float()`, `.item()`, `bool()`): rules
  that depend on state, like SGD's "the first step sets the momentum buffer to the gradient",
  are `tj.where` selects on a step-count tensor;
- hyper-parameters are read from the param group as Python numbers on every step, so a changed
  `group["lr"]` (e.g. by an `lr_scheduler`) takes effect.
"""

from __future__ import annotations

import copy
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterable
from itertools import chain
from typing import Any

from ..autograd.grad_mode import enable_grad, no_grad
from ..ops.creation import zeros_like
from ..tensor import Tensor

__all__ = ["Optimizer", "required"]


class _RequiredParameter:
    """Marks a default that every param group must give (PyTorch's `required`)."""

    def __repr__(self) -> str:
        return "<required parameter>"


required = _RequiredParameter()


def _typename(obj) -> str:
    if isinstance(obj, Tensor):
        return "tracejit.Tensor"
    t = type(obj)
    return t.__name__ if t.__module__ == "builtins" else f"{t.__module__}.{t.__qualname__}"


class Optimizer:
    """Base class of all optimizers.

    Subclasses set `defaults`, allocate each parameter's state in `_init_state` and update one
    parameter in `_update`; `step()`, `zero_grad()`, param groups and state dicts live here.

    Args:
        params: an iterable of Tensors, or of dicts (param groups) with a ``"params"`` entry and
            optional per-group hyper-parameters that override `defaults`.
        defaults: the hyper-parameters of a group that does not give its own.

    Example:
        >>> import tracejit as tj
        >>> w = tj.tensor([1.0, 2.0], requires_grad=True)
        >>> b = tj.tensor([0.5], requires_grad=True)
        >>> opt = tj.optim.SGD([{"params": [w]}, {"params": [b], "lr": 0.5}], lr=0.1)
        >>> [g["lr"] for g in opt.param_groups]
        [0.1, 0.5]
        >>> w.grad, b.grad = tj.tensor([1.0, 1.0]), tj.tensor([1.0])
        >>> opt.step()
        >>> w, b
        (tensor([0.9000, 1.9000], requires_grad=True), tensor([0.], requires_grad=True))
        >>> opt.zero_grad()
        >>> w.grad is None
        True
    """

    def __init__(self, params: Iterable[Tensor] | Iterable[dict], defaults: dict[str, Any]):
        self.defaults = defaults
        self.state: defaultdict[Tensor, dict[str, Any]] = defaultdict(dict)
        self.param_groups: list[dict[str, Any]] = []
        self._opt_called = False  # read by lr schedulers to warn about a wrong call order
        from ..trace import current_builder
        self._traced_here = current_builder() is not None  # built inside a trace: its
        # hyper-parameters are that trace's constants
        if isinstance(params, Tensor):
            raise TypeError("params argument given to the optimizer should be an iterable of "
                            f"Tensors or dicts, but got {_typename(params)}")
        groups = list(params)
        if len(groups) == 0:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    # -- param groups ------------------------------------------------------------------------
    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Adds a group of parameters with its own hyper-parameters (missing ones default to
        the optimizer's), and allocates the state of its parameters.

        >>> import tracejit as tj
        >>> opt = tj.optim.SGD([tj.zeros(2, requires_grad=True)], lr=0.1, momentum=0.9)
        >>> opt.add_param_group({"params": tj.zeros(3, requires_grad=True), "lr": 0.01})
        >>> opt.param_groups[1]["lr"], opt.param_groups[1]["momentum"]
        (0.01, 0.9)
        """
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group must be a dict, but got {type(param_group).__name__}")
        params = param_group["params"]
        if isinstance(params, Tensor):
            param_group["params"] = [params]
        elif isinstance(params, set):
            raise TypeError("optimizer parameters need to be organized in ordered collections, "
                            "but the ordering of tensors in sets will change between runs. "
                            "Please use a list instead.")
        else:
            param_group["params"] = list(params)
        for p in param_group["params"]:
            if not isinstance(p, Tensor):
                raise TypeError("optimizer can only optimize Tensors, but one of the params is "
                                + _typename(p))
            if not p.is_leaf:
                raise ValueError("can't optimize a non-leaf Tensor")
        for name, default in self.defaults.items():
            if default is required and name not in param_group:
                raise ValueError("parameter group didn't specify a value of required "
                                 f"optimization parameter {name}")
            param_group.setdefault(name, default)
        ids = [id(p) for p in param_group["params"]]  # Tensor `==` is elementwise: use ids
        if len(ids) != len(set(ids)):
            warnings.warn("optimizer contains a parameter group with duplicate parameters; in "
                          "future, this will cause an error", stacklevel=3)
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if not seen.isdisjoint(ids):
            raise ValueError("some parameters appear in more than one parameter group")
        self.param_groups.append(param_group)
        with no_grad():
            for p in param_group["params"]:
                self._init_state(p, param_group, self.state[p])

    # -- the subclass's part -----------------------------------------------------------------
    def _init_state(self, p: Tensor, group: dict[str, Any], state: dict[str, Any]) -> None:
        """Allocates `p`'s state tensors into `state`; keeps entries already there."""

    def _update(self, p: Tensor, grad: Tensor, state: dict[str, Any],
                group: dict[str, Any]) -> None:
        """Updates `p` and its `state` in place from `grad` (called under `no_grad`)."""
        raise NotImplementedError(f"{type(self).__name__} does not implement _update")

    # -- stepping ----------------------------------------------------------------------------
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Performs one optimization step on every parameter that has a `.grad`.

        Args:
            closure: optional; re-evaluates the model and returns the loss. It runs with
                gradients enabled, before the update.

        Returns:
            What `closure` returned, or None.
        """
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        self._opt_called = True
        from ..state import state_builder
        sb = state_builder()
        with no_grad():
            for group in self.param_groups:
                if sb is not None and not self._traced_here:
                    group = _traced_group(sb, group)
                for p in group["params"]:
                    if p.grad is None:
                        continue
                    self._update(p, p.grad, self.state[p], group)
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Resets the gradients of all parameters: to None (the default), or to zeros in place.

        >>> import tracejit as tj
        >>> p = tj.ones(2, requires_grad=True)
        >>> p.grad = tj.tensor([1.0, 2.0])
        >>> g = p.grad
        >>> tj.optim.SGD([p]).zero_grad(set_to_none=False)
        >>> p.grad is g, p.grad
        (True, tensor([0., 0.]))
        """
        for group in self.param_groups:
            for p in group["params"]:
                if set_to_none:  # (no read first: inside tj.compile a read is a guard)
                    p.grad = None
                    continue
                if p.grad is None:
                    continue
                elif p.grad.grad_fn is not None:  # a graph-connected grad: replace, detached
                    p.grad = zeros_like(p.grad)
                else:
                    p.grad.requires_grad_(False)
                    with no_grad():
                        p.grad.zero_()

    # -- state dicts -------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The optimizer's state as ``{"state": {index: {...}}, "param_groups": [...]}``.

        Parameters are referred to by their index over all groups in order (as in PyTorch), so
        the dict can be loaded into an optimizer built over other, same-shaped parameters. The
        state tensors are snapshots (copies): later steps do not change a saved dict.

        >>> import tracejit as tj
        >>> opt = tj.optim.Adam([tj.zeros(2, requires_grad=True)], lr=0.01)
        >>> sd = opt.state_dict()
        >>> sorted(sd["state"][0]), sd["param_groups"][0]["params"]
        (['exp_avg', 'exp_avg_sq', 'step'], [0])
        """
        index: dict[int, int] = {}
        groups = []
        for group in self.param_groups:
            packed = {k: v for k, v in group.items() if k != "params"}
            for p in group["params"]:
                index.setdefault(id(p), len(index))
            packed["params"] = [index[id(p)] for p in group["params"]]
            groups.append(packed)
        state = {}
        for key, value in self.state.items():
            k = index[id(key)] if isinstance(key, Tensor) else key
            state[k] = {n: (v.clone() if isinstance(v, Tensor) else v) for n, v in value.items()}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Loads a `state_dict()`: hyper-parameters per group and the state per parameter.

        The values are copied into this optimizer's own state tensors (cast to the parameter's
        dtype, except ``"step"``), which keep their identity; the loaded dict is not aliased.
        """
        groups = self.param_groups
        saved_groups = copy.deepcopy(state_dict["param_groups"])
        if len(groups) != len(saved_groups):
            raise ValueError("loaded state dict has a different number of parameter groups")
        if any(len(g["params"]) != len(s["params"]) for g, s in zip(groups, saved_groups)):
            raise ValueError("loaded state dict contains a parameter group that doesn't match "
                             "the size of optimizer's group")
        id_map = dict(zip(chain.from_iterable(s["params"] for s in saved_groups),
                          chain.from_iterable(g["params"] for g in groups)))
        loaded: dict[Any, dict[str, Any]] = {}
        for k, v in state_dict["state"].items():
            if k in id_map:
                p = id_map[k]
                loaded[p] = {n: _cast_state(p, n, x) for n, x in v.items()}
            else:
                loaded[k] = v
        for group, saved in zip(groups, saved_groups):
            saved["params"] = group["params"]
            for name, default in self.defaults.items():
                saved.setdefault(name, default)
        old_state, new_state = self.state, defaultdict(dict)
        with no_grad():
            for group in saved_groups:
                for p in group["params"]:
                    state = dict(loaded.pop(p, {}))
                    self._init_state(p, group, state)  # fills what the saved dict lacks
                    new_state[p] = _reuse_buffers(old_state.get(p, {}), state)
        new_state.update(loaded)  # entries not keyed by a parameter, kept as given
        self.param_groups[:] = saved_groups
        self.state = new_state

    def __repr__(self) -> str:
        lines = [type(self).__name__ + " ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines += [f"    {k}: {group[k]}" for k in sorted(group) if k != "params"]
        return "\n".join(lines) + "\n)"


def _cast_state(p: Tensor, name: str, value: Any) -> Any:
    """PyTorch's policy: a loaded state tensor takes its parameter's dtype, but ``step``
    keeps its own."""
    if isinstance(value, Tensor) and name != "step" and p.dtype.is_floating_point:
        return value.to(dtype=p.dtype)
    return value


def _reuse_buffers(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """`new`, with each tensor copied into the same-named, same-shaped, same-dtype tensor of
    `old` where there is one (so buffers a compiled step captured stay the live ones), and
    cloned otherwise (so the optimizer never aliases a caller's dict)."""
    out = {}
    for name, value in new.items():
        cur = old.get(name)
        if not isinstance(value, Tensor) or cur is value:
            out[name] = value
        elif (isinstance(cur, Tensor) and cur.shape == value.shape
              and cur.dtype == value.dtype):
            out[name] = cur.copy_(value)
        else:
            out[name] = value.clone()
    return out


def _traced_group(sb, group: dict) -> dict:
    """The hyper-parameters a step traced inside `tj.compile` sees: ``lr`` as a runtime input
    (read from the group at every call, so schedulers work without retracing); the others as
    constants guarded by their values (changing one traces again)."""
    out = dict(group)
    for k, v in group.items():
        if k == "params":
            continue
        if k == "lr" and isinstance(v, (int, float)) and not isinstance(v, bool):
            out[k] = sb.read_item(group, k)
        else:
            sb.guard_item(group, k)
    return out
