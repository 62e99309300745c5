"""Sparse primitives: products of a CSR matrix (given by its dense component arrays) and dense
matrices, never densifying the sparse operand.

Input: operand types and static params. Output: the OpDef records of

| primitive                                          | result                                  |
|----------------------------------------------------|-----------------------------------------|
| ``spmm_csr(crow, col, values, b) {shape}``         | ``S @ b``, ``(n_rows, k)``              |
| ``spmm_csr(crow, col, values, b) {shape, transpose}`` | ``S.T @ b``, ``(n_cols, k)``         |
| ``sddmm_csr(crow, col, a, b)``                     | ``a[row(p)] · b[col[p]]`` per nonzero p |

where S is the ``shape = (n_rows, n_cols)`` matrix with ``S[row(p), col[p]] = values[p]`` (CSR:
the nonzeros of row i are positions ``crow[i]:crow[i+1]``). Index operands are int64 and never
differentiated. Each primitive's derivative is the other one (or itself transposed), so the
rules close under repeated differentiation:

    d spmm / d values = sddmm(crow, col, G, b)      d spmm / d b = spmm(..., G, transpose=True)
    d sddmm / d a     = spmm(crow, col, c, b)       d sddmm / d b = spmm(..., c, a, transpose)

The numpy references call native kernels built with llvmlite (`tracejit/sparse/native.py`), so
eager mode, the interpreter and the CPU backend's extern steps all run real sparse code.
"""

from __future__ import annotations

from ..ir.graph import TensorType
from .registry import OpDef, RuleError, defrules, register


def _ints(t: TensorType, what: str, op: str) -> None:
    if t.ndim != 1 or not t.dtype.is_integer:
        raise RuleError(f"{what} must be a 1-d integer array, got {t}", TypeError)


def _floats(t: TensorType, what: str, ndim: int) -> None:
    if t.ndim != ndim:
        raise RuleError(f"{what} must be {ndim}-d, got {list(t.shape)}")
    if not t.dtype.is_floating_point or t.dtype.name == "float16":
        raise RuleError(f"{what} must be float32 or float64, got {t.dtype.name}", TypeError)


def _spmm_rule(crow: TensorType, col: TensorType, values: TensorType, b: TensorType, *,
               shape, transpose=False):
    n_rows, n_cols = shape
    _ints(crow, "crow_indices", "spmm_csr")
    _ints(col, "col_indices", "spmm_csr")
    _floats(values, "values", 1)
    _floats(b, "the dense operand", 2)
    if crow.shape[0] != n_rows + 1:
        raise RuleError(f"crow_indices has {crow.shape[0]} entries; a matrix of shape "
                        f"{list(shape)} needs {n_rows + 1}")
    if values.shape != col.shape:
        raise RuleError(f"values {list(values.shape)} and col_indices {list(col.shape)} "
                        "differ in length")
    inner, outer = (n_rows, n_cols) if transpose else (n_cols, n_rows)
    if b.shape[0] != inner:
        raise RuleError(f"cannot multiply a sparse {list(shape[::-1] if transpose else shape)}"
                        f" matrix by a dense {list(b.shape)} one")
    if b.dtype != values.dtype:
        raise RuleError(f"values dtype {values.dtype.name} != dense dtype {b.dtype.name}",
                        TypeError)
    return TensorType((outer, b.shape[1]), b.dtype)


def _spmm_ref(crow, col, values, b, *, shape, transpose=False):
    from ..sparse.native import spmm
    return spmm(crow, col, values, b, shape[0], shape[1], transpose)


register(OpDef("spmm_csr", 4, _spmm_rule, _spmm_ref,
               doc="spmm_csr(crow, col, values, b) {shape, transpose}: CSR matrix (or its "
                   "transpose) times a dense matrix"))


def _sddmm_rule(crow: TensorType, col: TensorType, a: TensorType, b: TensorType):
    _ints(crow, "crow_indices", "sddmm_csr")
    _ints(col, "col_indices", "sddmm_csr")
    _floats(a, "a", 2)
    _floats(b, "b", 2)
    if crow.shape[0] != a.shape[0] + 1:
        raise RuleError(f"crow_indices has {crow.shape[0]} entries; a has {a.shape[0]} rows")
    if a.shape[1] != b.shape[1] or a.dtype != b.dtype:
        raise RuleError(f"a {a} and b {b} must share their last dimension and dtype")
    return TensorType(col.shape, a.dtype)


def _sddmm_ref(crow, col, a, b):
    from ..sparse.native import sddmm
    return sddmm(crow, col, a, b)


register(OpDef("sddmm_csr", 4, _sddmm_rule, _sddmm_ref,
               doc="sddmm_csr(crow, col, a, b): a[row(p)] . b[col[p]] at each stored position "
                   "p of a CSR pattern"))


# -- derivative and batching rules ------------------------------------------------------------

def _bind(name, *xs, **params):
    from ..trace import bind  # trace.py imports this package: resolve at call time
    return bind(name, *xs, **params)


def _plus(a, b):
    return b if a is None else a if b is None else _bind("add", a, b)


def _spmm_vjp(ct, out, crow, col, values, b, *, shape, transpose=False):
    if transpose:  # out = S^T b: b has n_rows rows, ct has n_cols rows
        dv = _bind("sddmm_csr", crow, col, b, ct)
    else:
        dv = _bind("sddmm_csr", crow, col, ct, b)
    db = _bind("spmm_csr", crow, col, values, ct, shape=shape, transpose=not transpose)
    return (None, None, dv, db)


def _spmm_jvp(tangents, out, crow, col, values, b, *, shape, transpose=False):
    _, _, tv, tb = tangents
    p = dict(shape=shape, transpose=transpose)
    return _plus(None if tv is None else _bind("spmm_csr", crow, col, tv, b, **p),
                 None if tb is None else _bind("spmm_csr", crow, col, values, tb, **p))


def _sddmm_vjp(ct, out, crow, col, a, b):
    shape = (a.shape[0], b.shape[0])
    return (None, None, _bind("spmm_csr", crow, col, ct, b, shape=shape, transpose=False),
            _bind("spmm_csr", crow, col, ct, a, shape=shape, transpose=True))


def _sddmm_jvp(tangents, out, crow, col, a, b):
    _, _, ta, tb = tangents
    return _plus(None if ta is None else _bind("sddmm_csr", crow, col, ta, b),
                 None if tb is None else _bind("sddmm_csr", crow, col, a, tb))


def _spmm_batch(xs, dims, *, shape, transpose=False):
    """Only the dense operand batched: its batch joins its columns, ``(B, n, k) -> (n, B*k)``,
    one product, and the result is split back; batched sparse operands: one product per batch
    element (`batching.sequential`)."""
    crow, col, values, b = xs
    if any(d is not None for d in dims[:3]):  # a batch of sparse matrices: one product each
        from ..batching import sequential
        return sequential("spmm_csr", xs, dims, shape=shape, transpose=transpose)
    nb, n, k = b.shape
    flat = _bind("reshape", _bind("transpose", b, perm=(1, 0, 2)), shape=(n, nb * k))
    y = _bind("spmm_csr", crow, col, values, flat, shape=shape, transpose=transpose)
    return _bind("reshape", y, shape=(y.shape[0], nb, k)), 1


def _sddmm_batch(xs, dims):
    from ..batching import sequential
    return sequential("sddmm_csr", xs, dims)


defrules("spmm_csr", vjp=_spmm_vjp, jvp=_spmm_jvp, batch=_spmm_batch)
defrules("sddmm_csr", vjp=_sddmm_vjp, jvp=_sddmm_jvp, batch=_sddmm_batch)
