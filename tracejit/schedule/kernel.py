"""Kernel IR: the backend-neutral loop-level program a schedule is made of.

Input: built by `schedule/fusion.py`. Output: read by the code generators (`codegen/llvm.py`)
and printed by `Schedule.__str__` (``f.lower(...).as_text("schedule")``).

A `Schedule` is a list of steps over numbered buffers (row-major, contiguous):

* `Kernel`: one loop nest over an iteration `domain`; its body is a scalar expression DAG (`Expr`)
  of loads from input buffers through affine accesses, constants, loop indices and primitive ops.
  An elementwise kernel stores the body at every point of the domain; a reduction kernel folds it
  over the `reduce_axes` of the domain into an output over the remaining axes.
* `Extern`: a graph node the compiled code does not generate yet (matmul, gathers, sorting, control
  flow, ...), run by its library routine on whole buffers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..dtypes import DType
from ..errors import SourceLoc
from ..ir.graph import Node

__all__ = ["Expr", "Access", "Kernel", "Extern", "Schedule", "BufferInfo"]


@dataclass(frozen=True)
class Access:
    """Element ``offset + sum(strides[a] * i[a])`` of a buffer, `i` the domain index."""

    buffer: int
    offset: int
    strides: tuple[int, ...]


class Expr:
    """A scalar expression. `kind` is ``load`` (attrs: Access), ``const`` (attrs: value),
    ``index`` (attrs: (axis, scale, offset)), or a primitive name (attrs: its params)."""

    __slots__ = ("kind", "dtype", "args", "attrs", "_key")

    def __init__(self, kind: str, dtype: DType, args: tuple = (), attrs=None):
        self.kind, self.dtype, self.args, self.attrs = kind, dtype, tuple(args), attrs
        self._key = (kind, dtype.name, tuple(id(a) for a in self.args), _hashable(attrs))

    def __repr__(self):
        return f"Expr({self.kind}, {self.dtype.short})"


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


@dataclass
class Extern:
    node: Node
    inputs: list[int]
    outputs: list[int]  # one per result (a multi-result node has several)


@dataclass
class Schedule:
    buffers: list[BufferInfo]
    steps: list  # Kernel | Extern
    inputs: list[int]  # graph inputs -> buffers
    outputs: list[int]  # graph outputs -> buffers
    consts: dict[int, object]  # buffer -> numpy value

    @property
    def kernels(self) -> list[Kernel]:
        return [s for s in self.steps if isinstance(s, Kernel)]

    def __str__(self) -> str:
        from .printer import schedule_to_text
        return schedule_to_text(self)
