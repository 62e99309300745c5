"""Kernel IR: the backend-neutral loop-level program a schedule is made of.

Input: built by `schedule/fusion.py`. Output: read by the code generators (`codegen/llvm.py`)
and printed by `Schedule.__str__` (``f.lower(...).as_text("schedule")``).

A `Schedule` is a list of steps over numbered buffers (row-major, contiguous):

* `Kernel`: one loop nest over an iteration `domain`; its body is a scalar expression DAG (`Expr`)
  of loads from input buffers through affine accesses, constants, loop indices and primitive ops.
  An elementwise kernel stores the body at every point of the domain; a reduction kernel folds it
  over the `reduce_axes` of the domain into an output over the remaining axes.
* `Gemm`: a (batched) matrix product ``C[b] = A[b] @ B[b]`` of float32/float64 operands read in
  place through strided `Operand` layouts (so transposed operands are not copied), with an optional
  *epilogue*: the elementwise consumers of the product (``+ bias``, an activation), an `Expr` over
  the domain ``(batch, M, N)`` whose ``acc`` leaf is the product's element; it is applied to each
  output element before it is stored. Code: `codegen/matmul.py`.
* `RowKernel`: consecutive kernels over one domain that reduce along, or run along, the same
  rows, fused row by row (`schedule/rows.py`): one pass over memory for softmax-like code.
* `Extern`: a graph node the compiled code does not generate yet (other dot dtypes, gathers,
  sorting, control flow, ...), run by its library routine on whole buffers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..dtypes import DType
from ..errors import SourceLoc
from ..ir.graph import Node

__all__ = ["Expr", "Access", "Kernel", "Operand", "Gemm", "RowKernel", "RowStage", "Extern",
           "Schedule", "BufferInfo", "step_outputs", "walk"]


@dataclass(frozen=True)
class Access:
    """Element ``offset + sum(strides[a] * i[a])`` of a buffer, `i` the domain index."""

    buffer: int
    offset: int
    strides: tuple[int, ...]


class Expr:
    """A scalar expression. `kind` is ``load`` (attrs: Access), ``const`` (attrs: value),
    ``index`` (attrs: (axis, scale, offset)), ``acc`` (a `Gemm` epilogue's product element), or
    a primitive name (attrs: its params)."""

    __slots__ = ("kind", "dtype", "args", "attrs", "_key")

    def __init__(self, kind: str, dtype: DType, args: tuple = (), attrs=None):
        self.kind, self.dtype, self.args, self.attrs = kind, dtype, tuple(args), attrs
        self._key = (kind, dtype.name, tuple(id(a) for a in self.args), _hashable(attrs))

    def __repr__(self):
        return f"Expr({self.kind}, {self.dtype.short})"


def walk(e: Expr, seen: set | None = None):
    """Every distinct expression of the DAG under `e` (each once), `e` first."""
    seen = set() if seen is None else seen
    if id(e) not in seen:
        seen.add(id(e))
        yield e
        for a in e.args:
            yield from walk(a, seen)


def _hashable(v):
    if isinstance(v, dict):
        return tuple(sorted((k, _hashable(x)) for k, x in v.items()))
    if isinstance(v, (list, tuple)):
        return tuple(_hashable(x) for x in v)
    return v


@dataclass
class BufferInfo:
    shape: tuple[int, ...]
    dtype: DType
    kind: str  # "input", "const", "temp", "output"
    label: str = ""


@dataclass
class Kernel:
    name: str
    domain: tuple[int, ...]
    body: Expr
    out: int  # buffer written
    inputs: list[int]  # buffers read
    reduce_op: str | None = None  # "sum", "prod", "max", "min"
    reduce_axes: tuple[int, ...] = ()
    nodes: list[Node] = field(default_factory=list)  # graph nodes fused into this kernel
    loc: SourceLoc | None = None

    @property
    def work(self) -> int:
        """Elements computed (what the runtime weighs before splitting it across threads)."""
        n = 1
        for d in self.domain:
            n *= d
        return n


@dataclass(frozen=True)
class Operand:
    """A strided matrix in a buffer: element ``(b, r, c)`` is at
    ``offset + b*batch_stride + r*row_stride + c*col_stride`` (any stride may be 0 or negative:
    broadcasts and reversals are read in place too)."""

    buffer: int
    offset: int
    batch_stride: int
    row_stride: int
    col_stride: int


@dataclass
class Gemm:
    """``out[b, i, j] = epilogue(sum_k A[b, i, k] * B[b, k, j])`` for b < batch, i < m, j < n;
    `out` is contiguous ``(batch, m, n)``, `a` is (m x k) and `b` (k x n) per batch. Without an
    epilogue the stored value is the sum itself. `inputs` lists the buffers read (operands first,
    then the epilogue's loads), each once. The runtime splits the ``batch * m`` output rows across
    threads (`outer_extent`), or the columns when there are few rows (`col_split`)."""

    name: str
    batch: int
    m: int
    n: int
    k: int
    a: Operand
    b: Operand
    out: int
    dtype: DType
    inputs: list[int]
    epilogue: Expr | None = None
    nodes: list[Node] = field(default_factory=list)
    loc: SourceLoc | None = None
    col_split: int = 0  # > 0: threads split the columns in blocks of this many, not the rows
    raw: int | None = None  # a buffer that also receives the plain product (a graph result
    # that the epilogue consumes too, e.g. a weight gradient kept as .grad and used by the
    # update); listed last in `inputs` so it is passed like the epilogue's operands

    @property
    def outer_extent(self) -> int:
        if self.col_split:
            return -(-self.n // self.col_split)
        return self.batch * self.m

    parallel_ok = True

    @property
    def work(self) -> int:
        """Elementwise-equivalent cost: 16 multiply-adds weigh about one element of a loop
        kernel, so a product is split across threads from about 2^22 multiply-adds on."""
        return self.batch * self.m * self.n * max(self.k, 1) // 16


@dataclass
class RowStage:
    """One pass over a row of a `RowKernel`: a reduction of `body` over the row's columns (its
    value is then a register, read by later stages as ``Expr("stage", attrs=index)``), or, with
    `reduce_op` None, `body` stored at every element of the row. `out` is the buffer written, or
    None for a reduction that never leaves the kernel."""

    body: Expr
    reduce_op: str | None
    out: int | None
    spill: int | None = None  # a reduction stage also stores its body here (see rows.py)


@dataclass
class RowKernel:
    """Several kernels over one domain fused row by row: for each row (the first `n_outer` axes
    of `domain`) the stages run in order over the row's columns (the other axes), so a row read
    by a reduction is still in cache when the next stage reads it — softmax's max, sum and
    normalization make one pass over memory instead of three. Outer rows are split across
    threads."""

    name: str
    domain: tuple[int, ...]
    n_outer: int
    stages: list[RowStage]
    outs: list[int]
    inputs: list[int]
    nodes: list[Node] = field(default_factory=list)
    loc: SourceLoc | None = None
    parallel_ok = True

    @property
    def out(self) -> int:
        return self.outs[0]

    @property
    def outer_extent(self) -> int:
        return self.domain[0] if self.n_outer else 1

    @property
    def work(self) -> int:
        n = len(self.stages)
        for d in self.domain:
            n *= d
        return n


def step_outputs(st) -> list[int]:
    """The buffers a step writes."""
    if isinstance(st, RowKernel):
        return list(st.outs)
    if isinstance(st, Extern):
        return list(st.outputs)
    return [st.out]  # (a Gemm's `raw` buffer travels with its inputs)


@dataclass
class Extern:
    node: Node
    inputs: list[int]
    outputs: list[int]  # one per result (a multi-result node has several)


@dataclass
class Schedule:
    buffers: list[BufferInfo]
    steps: list  # Kernel | Gemm | Extern
    inputs: list[int]  # graph inputs -> buffers
    outputs: list[int]  # graph outputs -> buffers
    consts: dict[int, object]  # buffer -> numpy value
    # buffer -> (graph node, result index or None) whose value it holds (differential checks)
    node_of: dict[int, tuple] = field(default_factory=dict)

    @property
    def kernels(self) -> list[Kernel]:
        return [s for s in self.steps if isinstance(s, Kernel)]

    @property
    def gemms(self) -> list[Gemm]:
        return [s for s in self.steps if isinstance(s, Gemm)]

    @property
    def row_kernels(self) -> list[RowKernel]:
        return [s for s in self.steps if isinstance(s, RowKernel)]

    def __str__(self) -> str:
        from .printer import schedule_to_text
        return schedule_to_text(self)
