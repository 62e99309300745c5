"""PyTorch-style `repr` of Tensors.

Input: a Tensor. Output: ``tensor([...])`` text formatted like PyTorch's: floats with 4 decimals
(or as ``1.`` when all are whole numbers, or in scientific notation when their range is wide),
aligned columns, summarized past 1000 elements, and ``dtype=``/``requires_grad=`` suffixes where
they differ from the defaults.
"""

from __future__ import annotations

import numpy as np

from . import dtypes as D

__all__ = ["tensor_repr"]

_DEFAULT_SHOWN = {D.float32, D.int64, D.bool_}


def _float_formatter(a: np.ndarray):
    finite = a[np.isfinite(a)].astype(np.float64)
    nonzero = np.abs(finite[finite != 0])
    if nonzero.size == 0:
        fmt = "{:.0f}."
    else:
        lo, hi = nonzero.min(), nonzero.max()
        whole = bool(np.all(np.ceil(finite) == finite))
        if whole:
            fmt = "{:.4e}" if hi > 1e8 else "{:.0f}."
        elif hi / lo > 1000.0 or hi > 1e8 or lo < 1e-4:
            fmt = "{:.4e}"
        else:
            fmt = "{:.4f}"

    def one(v):
        if np.isnan(v):
            return "nan"
        if np.isinf(v):
            return "inf" if v > 0 else "-inf"
        return fmt.format(float(v))
    return one


def _body(a: np.ndarray) -> str:
    if a.dtype == np.bool_:
        one = lambda v: "True" if v else "False"  # noqa: E731
    elif a.dtype.kind == "f":
        one = _float_formatter(a)
    else:
        one = lambda v: str(int(v))  # noqa: E731
    sample = a if a.size <= 1000 else np.concatenate([a.reshape(-1)[:3], a.reshape(-1)[-3:]])
    width = max((len(one(v)) for v in sample.reshape(-1)), default=0)
    return np.array2string(a, separator=", ", prefix="tensor(", max_line_width=80,
                           threshold=1000, edgeitems=3,
                           formatter={"all": lambda v: one(v).rjust(width)})


def tensor_repr(t) -> str:
    if t._is_tracer:
        n = t._node
        return f"Tracer({n.type if n.type is not None else n.types}, op={n.op})"
    a = t._value
    suffix = []
    if a.size == 0 and a.shape != (0,):
        suffix.append(f"size={tuple(a.shape)}")
    if t.dtype not in _DEFAULT_SHOWN:
        suffix.append(f"dtype={t.dtype!r}")
    if getattr(t, "grad_fn", None) is not None:
        suffix.append(f"grad_fn=<{type(t.grad_fn).__name__}>")
    elif getattr(t, "requires_grad", False):
        suffix.append("requires_grad=True")
    body = "[]" if a.size == 0 else _body(a)
    return "tensor(" + body + "".join(", " + s for s in suffix) + ")"
