"""PyTorch-style `repr` of Tensors.

Input: a Tensor. Output: ``tensor([...])`` text formatted the way PyTorch formats it: one
formatter per tensor chooses integer mode (``1.``), fixed point with 4 decimals, or scientific
notation (when the nonzero finite magnitudes span more than 1000x, exceed 1e8, or go below 1e-4,
judged on the elements that are shown); elements are right-aligned to the widest nonzero finite
one, lines wrap at 80 columns, tensors past 1000 elements are summarized to 3 edge items per
dimension, and ``size=``/``dtype=``/``requires_grad=`` suffixes appear where they differ from
the defaults (an empty tensor shows any dtype other than float32, since nothing else reveals it),
on a new line when they would pass 80 columns.

>>> import tracejit as tj
>>> tj.tensor([[1.5, 2.0], [3.0, 4.0]])
tensor([[1.5000, 2.0000],
        [3.0000, 4.0000]])
"""

from __future__ import annotations

import math

import numpy as np

from . import dtypes as D

__all__ = ["tensor_repr"]

PRECISION = 4  # digits after the point
THRESHOLD = 1000  # summarize tensors with more elements than this
EDGEITEMS = 3  # items shown at each end of a summarized dimension
LINEWIDTH = 80

_DEFAULT_SHOWN = {D.float32, D.int64, D.bool_}


class _Formatter:
    """PyTorch's `_Formatter`: picks one number format and width for a whole tensor."""

    def __init__(self, a: np.ndarray):
        self.floating = a.dtype.kind == "f"
        self.int_mode, self.sci_mode, self.max_width = True, False, 1
        flat = a.reshape(-1)
        if not self.floating:
            self.max_width = max((len(str(v)) for v in flat.tolist()), default=1)
            return
        vals = flat[np.isfinite(flat) & (flat != 0)].astype(np.float64)
        if vals.size == 0:
            return
        mags = np.abs(vals)
        lo, hi = float(mags.min()), float(mags.max())
        self.int_mode = bool(np.all(np.ceil(vals) == vals))
        if self.int_mode:
            self.sci_mode = hi / lo > 1000.0 or hi > 1.0e8
            widths = ([len(f"{v:.{PRECISION}e}") for v in vals.tolist()] if self.sci_mode
                      else [len(f"{v:.0f}") + 1 for v in vals.tolist()])
        else:
            self.sci_mode = hi / lo > 1000.0 or hi > 1.0e8 or lo < 1.0e-4
            spec = f".{PRECISION}{'e' if self.sci_mode else 'f'}"
            widths = [len(format(v, spec)) for v in vals.tolist()]
        self.max_width = max(widths)

    def format(self, v) -> str:
        if not self.floating:
            s = str(v)
        elif self.sci_mode:
            s = f"{v:.{PRECISION}e}"
        elif self.int_mode:
            s = f"{v:.0f}" + ("" if math.isinf(v) or math.isnan(v) else ".")
        else:
            s = f"{v:.{PRECISION}f}"
        return s.rjust(self.max_width)


def _summarized(a: np.ndarray) -> np.ndarray:
    """The elements a summarized print shows (the edges of every dimension)."""
    if a.ndim == 0:
        return a
    if a.shape[0] > 2 * EDGEITEMS:
        a = np.concatenate([a[:EDGEITEMS], a[-EDGEITEMS:]])
    if a.ndim == 1:
        return a
    return np.stack([_summarized(x) for x in a])


def _vector(a: np.ndarray, indent: int, summarize: bool, fmt: _Formatter) -> str:
    per_line = max(1, (LINEWIDTH - indent) // (fmt.max_width + 2))
    if summarize and a.shape[0] > 2 * EDGEITEMS:
        items = ([fmt.format(v) for v in a[:EDGEITEMS].tolist()] + [" ..."]
                 + [fmt.format(v) for v in a[-EDGEITEMS:].tolist()])
    else:
        items = [fmt.format(v) for v in a.tolist()]
    lines = [", ".join(items[i:i + per_line]) for i in range(0, len(items), per_line)]
    return "[" + (",\n" + " " * (indent + 1)).join(lines) + "]"


def _nested(a: np.ndarray, indent: int, summarize: bool, fmt: _Formatter) -> str:
    if a.ndim == 0:
        return fmt.format(a.item())
    if a.ndim == 1:
        return _vector(a, indent, summarize, fmt)
    n = a.shape[0]
    if summarize and n > 2 * EDGEITEMS:
        rows = ([_nested(a[i], indent + 1, summarize, fmt) for i in range(EDGEITEMS)] + ["..."]
                + [_nested(a[i], indent + 1, summarize, fmt) for i in range(n - EDGEITEMS, n)])
    else:
        rows = [_nested(a[i], indent + 1, summarize, fmt) for i in range(n)]
    return "[" + ("," + "\n" * (a.ndim - 1) + " " * (indent + 1)).join(rows) + "]"


def tensor_repr(t) -> str:
    if t._is_tracer:
        n = t._node
        return f"Tracer({n.type if n.type is not None else n.types}, op={n.op})"
    a = t._value
    if type(a) is not np.ndarray and getattr(a, "_tj_device", False):
        a = a.get()  # a CUDA tensor: printed from a host copy
    prefix = "tensor("
    suffix = []
    if str(t.device) != "cpu":
        suffix.append(f"device='{t.device}'")
    if a.size == 0:
        if a.ndim != 1:
            suffix.append(f"size={tuple(a.shape)}")
        if t.dtype != D.float32:  # nothing else shows an empty tensor's dtype
            suffix.append(f"dtype={t.dtype!r}")
        body = "[]"
    else:
        if t.dtype not in _DEFAULT_SHOWN:
            suffix.append(f"dtype={t.dtype!r}")
        if a.dtype == np.float16:
            a = a.astype(np.float32)
        summarize = a.size > THRESHOLD
        fmt = _Formatter(_summarized(a) if summarize else a)
        body = _nested(a, len(prefix), summarize, fmt)
    if getattr(t, "grad_fn", None) is not None:
        suffix.append(f"grad_fn=<{t.grad_fn.name}>")
    elif getattr(t, "requires_grad", False):
        suffix.append("requires_grad=True")
    return _add_suffixes(prefix + body, suffix, len(prefix))


def _add_suffixes(text: str, suffixes: list[str], indent: int) -> str:
    """Appends ``, suffix`` items, starting a new line where one would pass `LINEWIDTH`."""
    parts = [text]
    line_len = len(text) - text.rfind("\n") + 1  # PyTorch's count, kept for identical wrapping
    for s in suffixes:
        if line_len + len(s) + 2 > LINEWIDTH:
            parts.append(",\n" + " " * indent + s)
            line_len = indent + len(s)
        else:
            parts.append(", " + s)
            line_len += len(s) + 2
    return "".join(parts) + ")"
