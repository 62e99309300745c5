"""Effect primitives: ``debug_print`` and ``debug_check`` (`tj.debug.print` / `tj.debug.check`).

Input: operand types and static params. Output: OpDef records with the ``effect`` trait: running
the node does something besides computing its value, so a graph keeps it although nothing reads
its result (`Graph.effects`), passes never fold, merge or drop it, and every call of a compiled
function runs it again. Each returns a *token*, a ``bool[]`` nobody reads.

* ``debug_print(*xs) {fmt, names}``: writes ``fmt.format(*pos, **kw)`` and a newline to
  ``sys.stdout`` (looked up at each call) and flushes; the last ``len(names)`` operands are the
  keyword fields ``names``, the others the positional ones. Values show as `tj.Tensor`s
  (``tensor([1., 2.])``); a 0-d value with a format spec (``{:.3f}``) formats its number.
* ``debug_check(cond, *xs) {msg, names}``: raises `tj.CheckError` with ``msg`` formatted the same
  way when any element of the bool `cond` is false. The reference raises it without a source
  location; the runner that ran the node adds the node's (`errors.located_check`).

Under `quiet()` (a thread-local switch) the print reference prints nothing: the interpreter
re-runs that only check a compiled result (`runtime/debugcheck.py`) and evaluations that repeat
one already done (`trace.bind` in a concrete sub-trace) use it. Batching (vmap): a print shows
the batched values as they are; a check holds when it holds for every example, except in lanes
that a batched ``cond`` or loop discards (`batching.live_lanes`). The token is never batched.
"""

from __future__ import annotations

import sys
import threading

import numpy as np

from .. import dtypes as D
from ..errors import CheckError
from ..ir.graph import TensorType
from .registry import OpDef, RuleError, defrules, register

__all__ = ["quiet", "is_quiet", "render", "TOKEN"]

TOKEN = TensorType((), D.bool_)
_state = threading.local()


class quiet:
    """Within this context (when `on`), ``debug_print`` references print nothing."""

    def __init__(self, on: bool = True):
        self.on = on

    def __enter__(self):
        self.saved = getattr(_state, "quiet", False)
        _state.quiet = self.saved or self.on
        return self

    def __exit__(self, *exc):
        _state.quiet = self.saved


def is_quiet() -> bool:
    return getattr(_state, "quiet", False)


def render(fmt: str, values: list, names: tuple) -> str:
    """`fmt` with its fields filled: the last ``len(names)`` `values` are the keyword fields
    `names`, the others the positional ones; each value (a numpy array, or a Tensor) shows as a
    `tj.Tensor`."""
    from ..tensor import Tensor
    shown = [v if isinstance(v, Tensor) else Tensor._wrap(np.asarray(v)) for v in values]
    k = len(shown) - len(names)
    return fmt.format(*shown[:k], **dict(zip(names, shown[k:])))


def _token() -> np.ndarray:
    return np.asarray(True)


def _check_params(n_values: int, text, names, what: str) -> None:
    if not isinstance(text, str):
        raise RuleError(f"{what} must be a string, got {type(text).__name__}", TypeError)
    if not isinstance(names, tuple) or not all(isinstance(s, str) for s in names):
        raise RuleError("names must be a tuple of strings", TypeError)
    if len(names) > n_values:
        raise RuleError(f"{len(names)} keyword fields but only {n_values} values")


def _print_rule(*xs: TensorType, fmt, names):
    _check_params(len(xs), fmt, names, "fmt")
    return TOKEN


def _print_ref(*xs, fmt, names):
    if not is_quiet():
        out = sys.stdout  # looked up now: pytest's capsys, contextlib.redirect_stdout
        out.write(render(fmt, list(xs), names) + "\n")
        out.flush()
    return _token()


def _check_rule(cond: TensorType, *xs: TensorType, msg, names):
    if not cond.dtype.is_bool:
        raise RuleError(f"the condition must be a bool tensor, got {cond}", TypeError)
    _check_params(len(xs), msg, names, "msg")
    return TOKEN


def _check_ref(cond, *xs, msg, names):
    if not np.all(cond):
        raise CheckError(render(msg, list(xs), names))
    return _token()


register(OpDef("debug_print", None, _print_rule, _print_ref, traits={"effect", "nondiff"},
               doc="debug_print(*xs) {fmt, names}: prints fmt.format(...) (an effect)"))
register(OpDef("debug_check", None, _check_rule, _check_ref, traits={"effect", "nondiff"},
               doc="debug_check(cond, *xs) {msg, names}: raises tj.CheckError unless all(cond) "
                   "(an effect)"))


# -- batching ---------------------------------------------------------------------------------

def _print_batch(xs, dims, *, fmt, names):
    from ..trace import bind
    return bind("debug_print", *xs, fmt=fmt, names=names), None


def _check_batch(xs, dims, *, msg, names):
    """All examples must pass, except in lanes whose result a batched branch or loop discards
    (the check then holds there by definition: ``cond or not live``)."""
    from ..batching import live_lanes
    from ..trace import bind
    cond, d = xs[0], dims[0]
    live = live_lanes()
    if live is not None:
        size = live.shape[0]
        if d is None:
            cond = bind("broadcast", cond, shape=(size,) + tuple(cond.shape))
        m = bind("reshape", live, shape=(size,) + (1,) * (cond.ndim - 1))
        cond = bind("logical_or", cond, bind("logical_not", m))
    return bind("debug_check", cond, *xs[1:], msg=msg, names=names), None


defrules("debug_print", batch=_print_batch)
defrules("debug_check", batch=_check_batch)
