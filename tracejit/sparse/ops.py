"""Sparse products: `mm` (sparse x dense -> dense) and `sampled_addmm` (dense x dense sampled at
a sparse pattern -> sparse), as the ``spmm_csr`` / ``sddmm_csr`` primitives.

Input: a `SparseTensor` and dense Tensors (or array-likes). Output: a dense Tensor (`mm`) or a
CSR `SparseTensor` (`sampled_addmm`). A COO operand is converted to CSR first (entries stably
sorted by row: a gather of its values, so gradients reach them). Nothing is densified: the
primitives run native CSR kernels (`native.py`) on the CPU and their CUDA renderings
(`codegen/cuda_sparse.py`) on a GPU.
"""

from __future__ import annotations

from .. import dtypes as D
from ..errors import user_error
from ..tensor import Tensor, as_tensor
from ..trace import bind
from .layout import sparse_csr
from .tensor import SparseTensor, unsupported

__all__ = ["mm", "sampled_addmm"]


def _float_dtype(op: str, *dts) -> D.DType:
    dt = dts[0]
    for d in dts[1:]:
        dt = D.promote_types(dt, d)
    if dt not in (D.float32, D.float64):
        if dt == D.float16 or not dt.is_floating_point:
            raise user_error(TypeError, f"{op}: sparse products take float32 or float64 "
                             f"operands, got {', '.join(d.name for d in dts)}; cast first")
    return dt


def _dense(x, op: str) -> Tensor:
    if isinstance(x, SparseTensor):
        raise unsupported(f"{op} of two sparse tensors", x.layout)
    return x if isinstance(x, Tensor) else as_tensor(x)


def mm(mat1, mat2) -> Tensor:
    """``mat1 @ mat2`` for a sparse 2-d `mat1` (COO or CSR) and a dense `mat2` (2-d, or 1-d for
    a matrix-vector product): a dense result, differentiable with respect to `mat2` and the
    sparse values. (Like ``torch.sparse.mm``; two dense operands give ``tj.mm``.)

    >>> import tracejit as tj
    >>> s = tj.sparse_csr_tensor([0, 1, 2], [1, 0], [2.0, 3.0], (2, 2))
    >>> tj.sparse.mm(s, tj.tensor([[1.0], [10.0]])).tolist()
    [[20.0], [3.0]]
    """
    if not isinstance(mat1, SparseTensor):
        if isinstance(mat2, SparseTensor):
            raise unsupported("sparse.mm(dense, sparse)", mat2.layout)
        from ..ops import mm as dense_mm
        return dense_mm(mat1, mat2)
    b = _dense(mat2, "sparse.mm")
    if mat1.ndim != 2:
        raise user_error(ValueError, f"sparse.mm: the sparse operand must be 2-d, got shape "
                         f"{list(mat1.shape)}")
    vec = b.ndim == 1
    if vec:
        b = b.reshape(-1, 1)
    if b.ndim != 2 or b.shape[0] != mat1.shape[1]:
        raise user_error(ValueError, f"sparse.mm: cannot multiply a sparse {list(mat1.shape)} "
                         f"matrix by a dense {list(mat2.shape if vec else b.shape)} one")
    crow, col, vals = mat1._csr_parts()
    dt = _float_dtype("sparse.mm", vals.dtype, b.dtype)
    if vals.dtype != dt:
        vals = vals.astype(dt)
    if b.dtype != dt:
        b = b.astype(dt)
    out = bind("spmm_csr", crow, col, vals, b, shape=tuple(mat1.shape))
    return out.reshape(-1) if vec else out


def sampled_addmm(input: SparseTensor, mat1, mat2, *, beta: float = 1.0,
                  alpha: float = 1.0) -> SparseTensor:
    """``beta * input + alpha * (mat1 @ mat2)`` evaluated only at the stored positions of the
    sparse CSR matrix `input` (an SDDMM, like ``torch.sparse.sampled_addmm``): a CSR result with
    `input`'s pattern, differentiable with respect to its values, `mat1` and `mat2`.

    >>> import tracejit as tj
    >>> s = tj.sparse_csr_tensor([0, 1, 2], [1, 0], [0.0, 0.0], (2, 2))
    >>> a = tj.tensor([[1.0, 2.0], [3.0, 4.0]])
    >>> tj.sparse.sampled_addmm(s, a, a).values().tolist()  # (a @ a)[0, 1], (a @ a)[1, 0]
    [10.0, 15.0]
    """
    if not isinstance(input, SparseTensor) or input.layout is not sparse_csr:
        raise user_error(TypeError, "sampled_addmm: expected input to be a sparse CSR tensor "
                         "(convert with .to_sparse_csr())")
    a, b = _dense(mat1, "sampled_addmm"), _dense(mat2, "sampled_addmm")
    n, m = input.shape
    if a.ndim != 2 or b.ndim != 2 or a.shape[0] != n or b.shape[1] != m or \
            a.shape[1] != b.shape[0]:
        raise user_error(ValueError, f"sampled_addmm: mat1 {list(a.shape)} @ mat2 "
                         f"{list(b.shape)} does not give the input's shape {[n, m]}")
    crow, col, vals = input._parts
    dt = _float_dtype("sampled_addmm", vals.dtype, a.dtype, b.dtype)
    a, b = a.astype(dt), b.astype(dt)
    prod = bind("sddmm_csr", crow, col, a, b.T)
    if alpha != 1:
        prod = prod * alpha
    if beta != 0:
        v = vals.astype(dt)
        prod = prod + (v if beta == 1 else v * beta)
    return SparseTensor(sparse_csr, (crow, col, prod), input.shape)
