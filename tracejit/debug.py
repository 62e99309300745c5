"""`tj.debug.print` and `tj.debug.check`: printing and asserting inside compiled code.

Input: a format string and Tensors (traced or realized). Output: a ``debug_print`` or
``debug_check`` node (`primitives/debug.py`) in the graph being traced, or, in eager code, the
print or the check at once. The node is an *effect*: it runs at every call of the compiled
function, on every backend, inside ``cond`` branches and loop bodies, under `tj.grad` (once per
call, with the forward values) and `tj.vmap` (with the batched values). See
docs/reliability.md, "Printing and checking inside compiled code".

(This module defines `print`: the builtin is `builtins.print` here.)
"""

from __future__ import annotations

import numpy as np

from . import dtypes as D
from .errors import CheckError, located_check, user_error, user_location

__all__ = ["print", "check"]


def print(fmt: str, *args, **kwargs) -> None:  # noqa: A001  (tj.debug.print, like jax.debug)
    """Prints ``fmt.format(*args, **kwargs)`` and a newline to ``sys.stdout`` whenever this line
    runs: at each call of a compiled function, not once while tracing.

    Args:
        fmt: a `str.format` string: ``{}``/``{0}`` take positional arguments, ``{name}`` keyword
            ones. Values show as Tensors (``tensor([1., 2.])``); a 0-d value takes a format spec
            (``{:.3f}``). Write ``{{``/``}}`` for literal braces.
        *args, **kwargs: Tensors, numpy arrays or Python numbers.

    Raises:
        TypeError: an argument is not an array (the text belongs in `fmt`).
        ValueError: `fmt` names a field no argument fills, or has a bad spec.

    Inside `tj.compile`, a ``cond`` branch or a loop body the print is a node of the graph: it
    shows the values of each call (each iteration; the branch taken). Under `tj.grad` it shows
    the forward values once per call; under `tj.vmap`, the batched values at once.

    >>> import tracejit as tj
    >>> @tj.compile
    ... def f(x):
    ...     tj.debug.print("x = {}, total = {t:.2f}", x, t=x.sum())
    ...     return x * 2
    >>> y = f(tj.tensor([1.0, 2.0]))
    x = tensor([1., 2.]), total = 3.00
    >>> y = f(tj.tensor([3.0, 4.0]))
    x = tensor([3., 4.]), total = 7.00
    """
    xs, names = _operands("print", fmt, args, kwargs)
    _validate("print", fmt, xs, names)
    from .trace import bind
    bind("debug_print", *xs, fmt=fmt, names=names)


def check(cond, msg: str = "debug check failed", *args, **kwargs) -> None:
    """Raises `tj.CheckError` unless every element of the bool tensor `cond` is true: eagerly
    at once, and inside compiled code when the compiled function runs (at each call).

    Args:
        cond: a bool Tensor of any shape (``(x > 0).all()``, or ``x > 0`` itself).
        msg: the error message, a `str.format` string like `print`'s, filled from `args` and
            `kwargs` when the check fails.

    The error is an `AssertionError` (and a `tj.TraceError`) whose message is `msg` followed
    by the ``file:line`` of this call. Under `tj.vmap` every example must pass (lanes that a
    batched `tj.cond` or loop discards are not checked).

    >>> import tracejit as tj
    >>> @tj.compile(device="interpreter")
    ... def safe_log(x):
    ...     tj.debug.check(x > 0, "log of a non-positive value: min is {:.1f}", x.min())
    ...     return tj.log(x)
    >>> float(safe_log(tj.tensor([1.0])))
    0.0
    >>> safe_log(tj.tensor([1.0, -2.0]))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
        ...
    tracejit.errors.CheckError: log of a non-positive value: min is -2.0
      at ...
    """
    if isinstance(cond, bool):
        cond = np.asarray(cond)
    (c,), _ = _operands("check", "", (cond,), {})
    if not c.dtype.is_bool:
        raise user_error(TypeError, f"tj.debug.check: the condition must be a bool tensor (a "
                         f"comparison such as x > 0), got {c.dtype.name}{list(c.shape)}")
    if not isinstance(msg, str):
        raise user_error(TypeError, f"tj.debug.check: msg must be a str, got "
                         f"{type(msg).__name__}")
    xs, names = _operands("check", msg, args, kwargs)
    _validate("check", msg, xs, names)
    from .trace import bind
    try:
        bind("debug_check", c, *xs, msg=msg, names=names)
    except CheckError as e:  # failed eagerly: at the caller's line
        raise located_check(e, user_location()) from None


# -- helpers ----------------------------------------------------------------------------------

def _operands(what: str, fmt, args: tuple, kwargs: dict):
    """The Tensors to pass (positional, then keyword) and the keyword names."""
    if not isinstance(fmt, str):
        raise user_error(TypeError, f"tj.debug.{what}: the format string must be a str, got "
                         f"{type(fmt).__name__}")
    xs = [_operand(what, a, f"argument {i}") for i, a in enumerate(args)]
    xs += [_operand(what, v, f"argument {k!r}") for k, v in kwargs.items()]
    return xs, tuple(kwargs)


def _operand(what: str, x, name: str):
    from .tensor import Tensor, as_tensor
    if isinstance(x, Tensor):
        return x
    if isinstance(x, (bool, int, float)) and not isinstance(x, np.generic):
        # a Python number shows as the default dtype's tensor, eagerly and compiled alike
        dt = {0: D.bool_, 1: D.int64, 2: D.float32}[D.scalar_dtype(x).category]
        return as_tensor(np.asarray(x, dtype=dt.np))
    if isinstance(x, (np.ndarray, np.generic, list)):
        try:
            return as_tensor(x)
        except (TypeError, ValueError):
            pass
    raise user_error(TypeError, f"tj.debug.{what}: {name} is a {type(x).__name__} "
                     f"({x!r:.60}), not an array; put text in the format string itself")


def _validate(what: str, fmt: str, xs: list, names: tuple) -> None:
    """Formats `fmt` once with placeholders of the arguments' types, so that a bad field fails
    here, at the caller's line, and never when the compiled code runs."""
    from .primitives.debug import render
    from .tensor import Tensor
    stand_ins = [Tensor._wrap(np.broadcast_to(np.zeros((), x.dtype.np), x.shape)) for x in xs]
    try:
        render(fmt, stand_ins, names)
    except (IndexError, KeyError) as e:
        given = f"{len(xs) - len(names)} positional argument(s)" + (
            f" and the keyword argument(s) {', '.join(names)}" if names else "")
        need = (f"a keyword field {{{e.args[0]}}}" if isinstance(e, KeyError)
                else "more positional fields {} than there are positional arguments")
        raise user_error(ValueError, f"tj.debug.{what}: the format string {fmt!r} has {need}; "
                         f"it was given {given} (write {{{{ and }}}} for literal braces)"
                         ) from None
    except (ValueError, TypeError, AttributeError) as e:
        raise user_error(ValueError, f"tj.debug.{what}: cannot format {fmt!r} with these "
                         f"arguments: {e} (a format spec such as {{:.3f}} applies to 0-d "
                         "values only)") from None
