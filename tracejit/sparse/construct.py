"""Sparse tensor constructors: ``tj.sparse_coo_tensor``, ``tj.sparse_csr_tensor``, and dense ->
sparse conversions (``Tensor.to_sparse()``, ``Tensor.to_sparse_csr()``).

Input: index and value arrays (numbers, numpy arrays or Tensors), or a dense Tensor. Output: a
validated `SparseTensor` (`tensor.py`). Concrete indices are checked here (shapes, ranges,
monotone ``crow_indices``: a ValueError naming what is wrong, at the user's line).
"""

from __future__ import annotations

import numpy as np

from ..errors import ConcretizationError, user_error
from ..tensor import Tensor
from .layout import sparse_coo, sparse_csr, strided
from .tensor import (
    SparseTensor,
    _concrete,
    _index_tensor,
    _need,
    _on,
    _shape_str,
    _values_tensor,
    unsupported,
)

__all__ = ["sparse_coo_tensor", "sparse_csr_tensor", "dense_to_sparse", "dense_to_sparse_csr"]


def _size_arg(size, op: str) -> tuple[int, ...] | None:
    if size is None:
        return None
    if isinstance(size, int):
        size = (size,)
    try:
        out = tuple(int(s) for s in size)
    except (TypeError, ValueError):
        raise user_error(TypeError, f"{op}: size must be a sequence of ints, got {size!r}") \
            from None
    if any(s < 0 for s in out):
        raise user_error(ValueError, f"{op}: size {list(out)} has a negative dimension")
    return out


def _check_values(vals: Tensor, nnz: int, op: str, what: str) -> None:
    if vals.ndim != 1:
        raise user_error(ValueError, f"{op}: values must be 1-d (hybrid sparse tensors with "
                         f"dense dimensions are not supported), got shape "
                         f"{_shape_str(vals.shape)}")
    if vals.shape[0] != nnz:
        raise user_error(ValueError, f"{op}: values has {vals.shape[0]} entries but {what} "
                         f"gives nnz = {nnz}")


def sparse_coo_tensor(indices, values, size=None, *, dtype=None, device=None,
                      requires_grad: bool = False, is_coalesced: bool | None = None,
                      check_invariants: bool = True) -> SparseTensor:
    """A COO sparse tensor: ``values[k]`` at position ``indices[:, k]`` (like
    ``torch.sparse_coo_tensor``). Duplicate positions are allowed (summed when coalesced or
    densified); the result is uncoalesced unless `is_coalesced`.

    Args:
        indices: integer array ``(ndim, nnz)``.
        values: ``(nnz,)``.
        size: the dense shape; inferred as ``max(indices) + 1`` per dimension when omitted.
        requires_grad: make the values a leaf that requires grad (``s.grad`` is then sparse).

    >>> import tracejit as tj
    >>> s = tj.sparse_coo_tensor([[0, 1, 1], [2, 0, 0]], [1.0, 2.0, 3.0], (2, 3))
    >>> s.coalesce().values().tolist()
    [1.0, 5.0]
    """
    op = "sparse_coo_tensor"
    if device is not None and str(device) != "cpu":
        raise unsupported(f"{op} on device {device!r}", sparse_coo)
    idx = _index_tensor(indices, "indices", op)
    vals = _values_tensor(values, dtype)
    if idx.ndim != 2:
        raise user_error(ValueError, f"{op}: indices must be 2-d (ndim, nnz), got shape "
                         f"{_shape_str(idx.shape)}")
    _check_values(vals, idx.shape[1], op, "indices")
    size = _size_arg(size, op)
    i = _concrete(idx)
    if size is None:
        if i is None:
            raise user_error(ConcretizationError, f"{op}: give `size` when the indices are "
                             "traced values")
        size = tuple(int(v) + 1 for v in i.max(1)) if i.shape[1] else (0,) * i.shape[0]
    if len(size) != idx.shape[0]:
        raise user_error(ValueError, f"{op}: indices have {idx.shape[0]} rows (sparse dims) but "
                         f"size {list(size)} has {len(size)} dimensions")
    if len(size) == 0:
        raise user_error(ValueError, f"{op}: 0-d sparse tensors are not supported")
    if i is not None and check_invariants and i.shape[1]:
        for d, n in enumerate(size):
            lo, hi = int(i[d].min()), int(i[d].max())
            if lo < 0 or hi >= n:
                bad = lo if lo < 0 else hi
                raise user_error(ValueError, f"{op}: size is inconsistent with indices: for "
                                 f"dim {d}, size is {n} but found index {bad}")
    coalesced = bool(is_coalesced)
    if is_coalesced is None and i is not None and i.shape[1] <= 1:
        coalesced = True  # (one entry or none: trivially)
    if requires_grad:
        vals = vals.detach().requires_grad_(True)
    return SparseTensor(sparse_coo, (idx, vals), size, coalesced)


def sparse_csr_tensor(crow_indices, col_indices, values, size=None, *, dtype=None, device=None,
                      requires_grad: bool = False, check_invariants: bool = True
                      ) -> SparseTensor:
    """A CSR sparse matrix (like ``torch.sparse_csr_tensor``): the entries of row i are
    ``values[crow_indices[i]:crow_indices[i+1]]`` at columns ``col_indices[...]``.

    >>> import tracejit as tj
    >>> s = tj.sparse_csr_tensor([0, 1, 1, 3], [2, 0, 1], [1.0, 2.0, 3.0], (3, 3))
    >>> s.to_dense().tolist()
    [[0.0, 0.0, 1.0], [0.0, 0.0, 0.0], [2.0, 3.0, 0.0]]
    """
    op = "sparse_csr_tensor"
    if device is not None and str(device) != "cpu":
        raise unsupported(f"{op} on device {device!r}", sparse_csr)
    crow = _index_tensor(crow_indices, "crow_indices", op)
    col = _index_tensor(col_indices, "col_indices", op)
    vals = _values_tensor(values, dtype)
    if crow.ndim != 1 or col.ndim != 1:
        raise user_error(ValueError, f"{op}: crow_indices and col_indices must be 1-d, got "
                         f"shapes {_shape_str(crow.shape)} and {_shape_str(col.shape)}")
    if crow.shape[0] < 1:
        raise user_error(ValueError, f"{op}: crow_indices needs at least one entry (0)")
    _check_values(vals, col.shape[0], op, "col_indices")
    size = _size_arg(size, op)
    c, cr = _concrete(col), _concrete(crow)
    if size is None:
        if c is None:
            raise user_error(ConcretizationError, f"{op}: give `size` when the indices are "
                             "traced values")
        size = (crow.shape[0] - 1, int(c.max()) + 1 if c.size else 0)
    if len(size) != 2:
        raise user_error(ValueError, f"{op}: a CSR tensor is 2-d, got size {list(size)}")
    if crow.shape[0] != size[0] + 1:
        raise user_error(ValueError, f"{op}: crow_indices has {crow.shape[0]} entries; size "
                         f"{list(size)} needs {size[0] + 1}")
    if check_invariants and c is not None and cr is not None:
        from .native import check_csr
        try:
            check_csr(cr, c, size[0], size[1], op)
        except (ValueError, IndexError) as e:
            raise user_error(ValueError, str(e)) from None
    if requires_grad:
        vals = vals.detach().requires_grad_(True)
    return SparseTensor(sparse_csr, (crow, col, vals), size)


def dense_to_sparse(x: Tensor, sparse_dim: int | None = None) -> SparseTensor:
    """``x.to_sparse()``: COO of the nonzero entries of `x` (coalesced); the values are a
    gather of `x`, so gradients flow back to it."""
    if sparse_dim not in (None, x.ndim):
        raise user_error(ValueError, f"to_sparse: sparse_dim={sparse_dim} (hybrid sparse "
                         "tensors) is not supported")
    if x.ndim == 0:
        raise user_error(ValueError, "to_sparse: 0-d sparse tensors are not supported")
    v = _need(x, "to_sparse", "values")
    nz = np.nonzero(v)
    idx = np.stack(nz).astype(np.int64) if nz else np.zeros((x.ndim, 0), np.int64)
    vals = x[tuple(_on(k.astype(np.int64), x) for k in nz)]
    return SparseTensor(sparse_coo, (_on(idx, x), vals), x.shape, True)


def dense_to_sparse_csr(x: Tensor) -> SparseTensor:
    """``x.to_sparse_csr()``: CSR of the nonzero entries of a 2-d `x`."""
    if x.ndim != 2:
        raise user_error(ValueError, f"to_sparse_csr: only 2-d tensors have a CSR layout, got "
                         f"shape {_shape_str(x.shape)}")
    v = _need(x, "to_sparse_csr", "values")
    r, c = np.nonzero(v)
    crow = np.zeros(x.shape[0] + 1, np.int64)
    np.cumsum(np.bincount(r, minlength=x.shape[0]), out=crow[1:])
    vals = x[_on(r.astype(np.int64), x), _on(c.astype(np.int64), x)]
    return SparseTensor(sparse_csr, (_on(crow, x), _on(c.astype(np.int64), x), vals), x.shape)


STRIDED = strided  # (re-exported for tensor.py's `layout`)
