"""Sparse tensors: `SparseTensor`, a sparse matrix (COO or CSR) held as its component Tensors.

Input: index and value arrays (or a dense Tensor to convert). Output: a `SparseTensor` whose
components are ordinary Tensors (so they are eager values, lazy values or tracers, and carry
autograd like any Tensor), and conversions between the layouts and to dense.

| layout              | components                                     | ndim |
|---------------------|------------------------------------------------|------|
| ``tj.sparse_coo``   | ``indices`` (int64, ``(ndim, nnz)``), values   | >= 1 |
| ``tj.sparse_csr``   | ``crow_indices``, ``col_indices`` (int64), values | 2  |

Values are 1-d (no hybrid dense dimensions). Conversions that depend on where the nonzeros are
(``to_sparse`` of a dense tensor, ``coalesce``, inferring ``size``) need concrete index data and
raise `ConcretizationError` inside `tj.compile` on traced inputs; everything else (``to_dense``,
COO -> CSR, ``tj.sparse.mm``) is written with graph ops and primitives, so it traces, compiles
and differentiates. Constructors validate concrete indices (shapes, ranges, monotone
``crow_indices``) and raise ValueError naming what is wrong.

A SparseTensor supports only what is listed here; any other Tensor method, operator or op
applied to one raises `SparseNotSupportedError` naming the op and suggesting ``to_dense()``.
"""

from __future__ import annotations

import os
import sys

import numpy as np

from .. import dtypes as D
from ..errors import ConcretizationError, user_error
from ..tensor import Tensor, as_tensor
from .layout import sparse_coo, sparse_csr

__all__ = ["SparseTensor", "SparseNotSupportedError", "unsupported"]

_PKG = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # .../tracejit
_HERE = os.path.dirname(os.path.abspath(__file__))


class SparseNotSupportedError(NotImplementedError, TypeError):
    """An op that has no sparse implementation was applied to a sparse tensor."""


_GENERIC = {"f", "op", "fn", "wrapper", "inner", "method", "run", "call"}
_PLUMBING = {"as_tensor", "operand", "promote", "__init__", "cast", "to_float", "describe"}


def _calling_op() -> str | None:
    """The public tracejit op the user called that reached here (found on the call stack: the
    outermost frame inside the tracejit package, outside this sub-package, before user code)."""
    f = sys._getframe(1)
    name = None
    while f is not None:
        path = os.path.abspath(f.f_code.co_filename)
        if path.startswith(_HERE):
            f = f.f_back
            continue
        if not path.startswith(_PKG + os.sep):
            break
        co = f.f_code.co_name
        if co in _PLUMBING:
            pass
        elif not co.startswith("<") and co not in _GENERIC and \
                (not co.startswith("_") or (co.startswith("__") and co.endswith("__"))):
            name = co
        elif name is None and isinstance(f.f_locals.get("name"), str) and \
                f.f_locals["name"].isidentifier():
            name = f.f_locals["name"]  # an op made by a factory (its closure names it)
        f = f.f_back
    return name


def unsupported(op: str | None, layout=sparse_coo) -> SparseNotSupportedError:
    """The error for `op` applied to a sparse tensor of `layout`."""
    what = f"{op}: " if op else ""
    return user_error(
        SparseNotSupportedError,
        f"{what}not supported for sparse tensors (layout={layout}); convert with .to_dense() "
        "first (sparse tensors support tj.sparse.mm / `sparse @ dense`, to_dense, to_sparse, "
        "to_sparse_csr, coalesce, indices/values, crow_indices/col_indices)")


# -- helpers -------------------------------------------------------------------------------------

def _concrete(t: Tensor) -> np.ndarray | None:
    """`t`'s values when known now (an eager Tensor, or a traced constant); else None."""
    if not t._is_tracer:
        return np.asarray(t.detach().numpy())
    node = t._node
    if node.op == "constant":
        v = node.params.get("value")
        v = getattr(v, "value", v)
        return np.broadcast_to(np.asarray(v), node.shape) if v is not None else None
    return None


def _index_tensor(x, what: str, op: str) -> Tensor:
    t = x if isinstance(x, Tensor) else as_tensor(x)
    if not (t.dtype.is_integer or (t.numel() == 0 and not isinstance(x, Tensor))):
        raise user_error(TypeError, f"{op}: {what} must be integers, got {t.dtype.name}")
    return t if t.dtype == D.int64 else t.astype(D.int64)


def _values_tensor(x, dtype) -> Tensor:
    t = x if isinstance(x, Tensor) else as_tensor(x)
    return t if dtype is None or t.dtype == D.as_dtype(dtype) else t.astype(dtype)


def _need(t: Tensor, op: str, what: str) -> np.ndarray:
    v = _concrete(t)
    if v is None:
        raise user_error(ConcretizationError, f"{op}: needs the concrete {what} (where the "
                         "nonzeros are decides the result's shape); call it outside tj.compile, "
                         "or pass the sparse tensor as an argument built outside")
    return v


def _on(x, like: Tensor) -> Tensor:
    """Host-computed data `x` (index arrays) as a Tensor on `like`'s device: a sparse tensor on a
    CUDA device keeps all its components there."""
    t = as_tensor(x)
    if t._is_tracer or like._is_tracer:
        return t
    dev = like.device
    return t if dev.type == "cpu" else t.to(dev)


def _rows_of(crow: Tensor, nnz: int) -> Tensor:
    """The row of every stored entry of a CSR pattern (int64, ``(nnz,)``)."""
    c = _concrete(crow)
    if c is not None:
        return _on(np.repeat(np.arange(c.shape[0] - 1, dtype=np.int64), np.diff(c)), crow)
    from .. import ops
    n = crow.shape[0] - 1
    marks = ops.zeros(nnz + 1, dtype=D.int64).at[crow[1:n]].add(1)  # a 1 where a row starts
    return ops.cumsum(marks, 0)[:nnz]


def _crow_of(rows: Tensor, n_rows: int) -> Tensor:
    """crow_indices of entries sorted by row `rows`."""
    r = _concrete(rows)
    if r is not None:
        crow = np.zeros(n_rows + 1, np.int64)
        np.cumsum(np.bincount(r, minlength=n_rows), out=crow[1:])
        return _on(crow, rows)
    from .. import ops
    counts = ops.zeros(n_rows + 1, dtype=D.int64).at[rows + 1].add(1)
    return ops.cumsum(counts, 0)


def _shape_str(s) -> str:
    return str(list(s))


# -- the sparse tensor ---------------------------------------------------------------------------

class SparseTensor:
    """A sparse tensor (layout `tj.sparse_coo` or `tj.sparse_csr`) made of dense component
    Tensors. Build one with `tj.sparse_coo_tensor`, `tj.sparse_csr_tensor`,
    ``Tensor.to_sparse()`` or ``Tensor.to_sparse_csr()``.

    >>> import tracejit as tj
    >>> s = tj.tensor([[0.0, 2.0], [3.0, 0.0]]).to_sparse()
    >>> s._nnz(), s.layout
    (2, tracejit.sparse_coo)
    >>> (s @ tj.ones(2, 1)).tolist()
    [[2.0], [3.0]]
    """

    __slots__ = ("_layout", "_size", "_parts", "_coalesced", "_csr_cache")
    is_sparse_csr = property(lambda self: self._layout is sparse_csr)
    is_sparse = property(lambda self: self._layout is sparse_coo)

    def __init__(self, layout, parts: tuple, size: tuple, coalesced: bool = False):
        # (no validation: the constructors below validate; this also rebuilds traced copies)
        self._layout, self._parts, self._size = layout, tuple(parts), tuple(size)
        self._coalesced = bool(coalesced)
        self._csr_cache = None

    # -- attributes --------------------------------------------------------------------------
    @property
    def layout(self):
        return self._layout

    @property
    def shape(self) -> tuple[int, ...]:
        return self._size

    def size(self, dim: int | None = None):
        return self._size if dim is None else self._size[dim]

    @property
    def ndim(self) -> int:
        return len(self._size)

    def dim(self) -> int:
        return len(self._size)

    def __len__(self) -> int:
        return self._size[0]

    def numel(self) -> int:
        return int(np.prod(self._size))

    @property
    def dtype(self) -> D.DType:
        return self._parts[-1].dtype

    @property
    def device(self):
        return self._parts[-1].device

    @property
    def is_cuda(self) -> bool:
        return self.device.type == "cuda"

    def sparse_dim(self) -> int:
        return self.ndim

    def dense_dim(self) -> int:
        return 0

    def _nnz(self) -> int:
        return self._parts[-1].shape[0]

    # -- components --------------------------------------------------------------------------
    def _indices(self) -> Tensor:
        self._want(sparse_coo, "_indices")
        return self._parts[0]

    def _values(self) -> Tensor:
        return self._parts[-1]

    def indices(self) -> Tensor:
        self._want(sparse_coo, "indices")
        if not self._coalesced:
            raise user_error(RuntimeError, "indices: cannot get the indices of an uncoalesced "
                             "sparse tensor; call .coalesce() first (or ._indices())")
        return self._parts[0]

    def values(self) -> Tensor:
        if self._layout is sparse_coo and not self._coalesced:
            raise user_error(RuntimeError, "values: cannot get the values of an uncoalesced "
                             "sparse tensor; call .coalesce() first (or ._values())")
        return self._parts[-1]

    def crow_indices(self) -> Tensor:
        self._want(sparse_csr, "crow_indices")
        return self._parts[0]

    def col_indices(self) -> Tensor:
        self._want(sparse_csr, "col_indices")
        return self._parts[1]

    def _want(self, layout, op: str) -> None:
        if self._layout is not layout:
            raise user_error(RuntimeError, f"{op}: expected a {layout} tensor, got layout "
                             f"{self._layout}")

    # -- COO coalescing ----------------------------------------------------------------------
    def is_coalesced(self) -> bool:
        self._want(sparse_coo, "is_coalesced")
        return self._coalesced

    def coalesce(self) -> SparseTensor:
        """Duplicate indices summed, entries sorted (row-major); a no-op when coalesced."""
        self._want(sparse_coo, "coalesce")
        if self._coalesced:
            return self
        idx, vals = self._parts
        i = _need(idx, "coalesce", "indices")
        if i.shape[1] == 0:
            return SparseTensor(sparse_coo, (idx, vals), self._size, True)
        lin = np.ravel_multi_index(tuple(i), self._size)
        uniq, inv = np.unique(lin, return_inverse=True)
        new = np.stack(np.unravel_index(uniq, self._size)).astype(np.int64)
        summed = _on(np.zeros(len(uniq), vals.dtype.np), vals).at[
            _on(inv.reshape(-1), vals)].add(vals)
        return SparseTensor(sparse_coo, (_on(new, vals), summed), self._size, True)

    # -- conversions -------------------------------------------------------------------------
    def to_dense(self) -> Tensor:
        """The dense Tensor (duplicates of an uncoalesced COO tensor summed); differentiable
        with respect to the values."""
        from .. import ops
        vals = self._parts[-1]
        out = ops.zeros(self._size, dtype=vals.dtype)
        if self._layout is sparse_coo:
            idx = self._parts[0]
            return out.at[tuple(idx[d] for d in range(self.ndim))].add(vals)
        crow, col = self._parts[:2]
        return out.at[_rows_of(crow, col.shape[0]), col].add(vals)

    def to_sparse(self, sparse_dim: int | None = None) -> SparseTensor:
        """As COO (a CSR tensor's entries keep their order; coalesced when known sorted)."""
        if sparse_dim not in (None, self.ndim):
            raise user_error(ValueError, f"to_sparse: sparse_dim={sparse_dim} (hybrid sparse "
                             "tensors) is not supported")
        if self._layout is sparse_coo:
            return self
        crow, col, vals = self._parts
        rows = _rows_of(crow, col.shape[0])
        from .. import ops
        idx = ops.stack([rows, col])
        c, cr = _concrete(col), _concrete(crow)
        ok = False
        if c is not None and cr is not None:  # sorted, unique columns within each row
            r = np.repeat(np.arange(len(cr) - 1), np.diff(cr))
            lin = r * self._size[1] + c
            ok = bool(np.all(lin[1:] > lin[:-1]))
        return SparseTensor(sparse_coo, (idx, vals), self._size, ok)

    def to_sparse_coo(self) -> SparseTensor:
        return self.to_sparse()

    def to_sparse_csr(self) -> SparseTensor:
        """As CSR (2-d only): entries stably sorted by row; duplicates are kept (every consumer
        sums them)."""
        if self._layout is sparse_csr:
            return self
        if self.ndim != 2:
            raise user_error(ValueError, f"to_sparse_csr: only 2-d tensors have a CSR layout, "
                             f"got shape {_shape_str(self._size)}")
        crow, col, vals = self._csr_parts()
        return SparseTensor(sparse_csr, (crow, col, vals), self._size)

    def _csr_parts(self) -> tuple[Tensor, Tensor, Tensor]:
        """(crow, col, values) of this 2-d tensor, values in CSR order (a gather of ours, so
        gradients flow back to them)."""
        if self._layout is sparse_csr:
            return self._parts
        idx, vals = self._parts
        cache = self._csr_cache
        if cache is not None:
            crow, col, perm = cache
            return crow, col, vals if perm is None else vals[perm]
        i = _concrete(idx)
        if i is not None:
            row, col = i[0], i[1]
            perm = None
            if not self._coalesced and row.size > 1 and np.any(row[1:] < row[:-1]):
                perm = np.argsort(row, kind="stable")
                row, col = row[perm], col[perm]
                perm = _on(perm, vals)
            crow = _crow_of(_on(row, vals), self._size[0])
            col = _on(np.ascontiguousarray(col), vals)
            self._csr_cache = (crow, col, perm)
            return crow, col, vals if perm is None else vals[perm]
        row, col = idx[0], idx[1]
        if not self._coalesced:
            from .. import ops
            perm = ops.argsort(row, stable=True)
            row, col, vals = row[perm], col[perm], vals[perm]
        return _crow_of(row, self._size[0]), col, vals

    # -- autograd ----------------------------------------------------------------------------
    @property
    def requires_grad(self) -> bool:
        return self._parts[-1].requires_grad

    def requires_grad_(self, requires_grad: bool = True) -> SparseTensor:
        self._parts[-1].requires_grad_(requires_grad)
        return self

    @property
    def grad(self) -> SparseTensor | None:
        """The gradient of a leaf's values, as a sparse tensor of the same pattern."""
        g = self._parts[-1].grad
        if g is None:
            return None
        return SparseTensor(self._layout, self._parts[:-1] + (g,), self._size, self._coalesced)

    def detach(self) -> SparseTensor:
        return SparseTensor(self._layout, tuple(p.detach() for p in self._parts), self._size,
                            self._coalesced)

    # -- dtype -------------------------------------------------------------------------------
    def to(self, *args, dtype=None, device=None, copy: bool = False) -> SparseTensor:
        """The values cast to `dtype` and/or every component moved to `device` (the products
        then run on that device: CUDA kernels for a CUDA tensor)."""
        for a in args:
            if isinstance(a, D.DType) or (isinstance(a, str) and a in D.__dict__):
                dtype = a
            else:
                device = a
        parts = self._parts
        if dtype is not None:
            parts = parts[:-1] + (parts[-1].astype(dtype),)
        if device is not None:
            parts = tuple(p.to(device) for p in parts)
        if copy and parts is self._parts:
            parts = tuple(p.clone() for p in parts)
        return SparseTensor(self._layout, parts, self._size, self._coalesced)

    def double(self) -> SparseTensor:
        return self.to(D.float64)

    def float(self) -> SparseTensor:
        return self.to(D.float32)

    def cpu(self) -> SparseTensor:
        return self.to("cpu")

    def cuda(self, device=None) -> SparseTensor:
        return self.to("cuda" if device is None else device)

    # -- products ----------------------------------------------------------------------------
    def __matmul__(self, other):
        from .ops import mm
        return mm(self, other)

    def mm(self, other):
        from .ops import mm
        return mm(self, other)

    matmul = mm

    # -- printing ----------------------------------------------------------------------------
    def __repr__(self) -> str:
        names = ("indices", "values") if self._layout is sparse_coo else (
            "crow_indices", "col_indices", "values")
        pad = " " * len("tensor(")
        lines = []
        for n, p in zip(names, self._parts):
            body = repr(p.detach())
            body = body.split(", dtype=")[0].rstrip(")") + ")" if ", dtype=" in body else body
            body = body.replace("\n", "\n" + " " * (len(pad) + len(n) + 1))
            lines.append(f"{n}={body}")
        tail = f"size={self._size}, nnz={self._nnz()}"
        if self.dtype != D.float32:
            tail += f", dtype={self.dtype!r}"
        tail += f", layout={self._layout}"
        vals = self._parts[-1]
        if vals.grad_fn is not None:
            tail += f", grad_fn=<{type(vals.grad_fn).__name__}>" if not hasattr(
                vals.grad_fn, "name") else f", grad_fn=<{vals.grad_fn.name()}>"
        elif vals.requires_grad:
            tail += ", requires_grad=True"
        return "tensor(" + (",\n" + pad).join(lines + [tail]) + ")"

    __str__ = __repr__

    # -- everything else: a clear error ------------------------------------------------------
    def __getattr__(self, name: str):
        if not (name.startswith("__") and name.endswith("__")) and (
                hasattr(Tensor, name) or name in _TENSOR_FIELDS):
            raise unsupported(name, object.__getattribute__(self, "_layout"))
        raise AttributeError(f"'SparseTensor' object has no attribute {name!r}")

    def __array__(self, *args, **kwargs):
        raise unsupported(_calling_op() or "conversion to a numpy array", self._layout)

    def numpy(self):
        raise unsupported("numpy", self._layout)

    __hash__ = object.__hash__


_TENSOR_FIELDS = {"_weak", "_node", "_builder", "_requires_grad", "_val", "grad_fn"}
_BLOCKED = """add radd sub rsub mul rmul truediv rtruediv floordiv rfloordiv mod rmod pow rpow
neg pos abs invert and rand or ror xor rxor lt le gt ge getitem setitem iadd isub imul itruediv
rmatmul bool float int index iter contains lshift rshift complex""".split()


def _blocked(name: str):
    def method(self, *args, **kwargs):
        raise unsupported(name, self._layout)
    method.__name__ = name
    return method


for _n in _BLOCKED:
    setattr(SparseTensor, f"__{_n}__", _blocked(f"__{_n}__"))


def _tree_register() -> None:
    from .. import tree

    def flatten(s):
        return s._parts, (s._layout, s._size, s._coalesced)

    def unflatten(aux, parts):
        layout, size, coalesced = aux
        return SparseTensor(layout, tuple(parts), size, coalesced)
    tree.register(SparseTensor, flatten, unflatten)


_tree_register()
