"""Memory layouts: `strided` (dense Tensors), `sparse_coo` and `sparse_csr` (`SparseTensor`).

Input: nothing. Output: three singleton `layout` objects, compared by identity and printed the
way tracejit prints dtypes (``tracejit.sparse_coo``, as PyTorch prints ``torch.sparse_coo``).
"""

from __future__ import annotations

__all__ = ["layout", "strided", "sparse_coo", "sparse_csr"]


class layout:  # noqa: N801  (PyTorch's spelling: torch.layout)
    """A Tensor's memory layout; see `Tensor.layout`."""

    __slots__ = ("name",)
    _all: dict[str, "layout"] = {}

    def __new__(cls, name: str):
        got = cls._all.get(name)
        if got is None:
            got = super().__new__(cls)
            got.name = name
            cls._all[name] = got
        return got

    def __repr__(self) -> str:
        return f"tracejit.{self.name}"

    __str__ = __repr__

    def __reduce__(self):  # pickles as the same singleton
        return (layout, (self.name,))


strided = layout("strided")
sparse_coo = layout("sparse_coo")
sparse_csr = layout("sparse_csr")
