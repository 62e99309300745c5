"""Sparse tensors (SPEC §6): COO and CSR layouts, conversions, and sparse x dense products that
run real sparse kernels (never densifying).

Input: index/value arrays or dense Tensors. Output: `SparseTensor`s and dense products.
``tj.sparse.mm`` and ``sampled_addmm`` are the products (`ops.py`); the layouts live in
`layout.py`, the tensor class in `tensor.py`, its constructors in `construct.py`, the native
CPU kernels (llvmlite) in `native.py`; the primitives are `primitives/sparse.py`.
"""

from .construct import sparse_coo_tensor, sparse_csr_tensor
from .layout import layout, sparse_coo, sparse_csr, strided
from .ops import mm, sampled_addmm
from .tensor import SparseNotSupportedError, SparseTensor

__all__ = ["SparseTensor", "SparseNotSupportedError", "layout", "mm", "sampled_addmm",
           "sparse_coo", "sparse_csr", "sparse_coo_tensor", "sparse_csr_tensor", "strided"]
