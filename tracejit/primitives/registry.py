"""The primitive registry: one `OpDef` record per primitive.

Input: the records in this package's modules. Output: `PRIMITIVES`, name -> OpDef, read by the
tracer (type rules), the interpreter (numpy references), the verifier, and later by the
autodiff transforms (`vjp`/`jvp` slots) and code generators (`llvm`/`cuda` slots).

A type rule takes the operands' `TensorType`s and the params and returns the result
`TensorType` (or a tuple of them for multi-result primitives); it raises `RuleError` when the
operands are not acceptable, and the tracer turns that into a user-facing error that names the
op, the operand types and the user's source line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from ..dtypes import DType
from ..ir.graph import TensorType

__all__ = ["OpDef", "register", "defrules", "PRIMITIVES", "RuleError", "get"]


class RuleError(Exception):
    """Raised by a type rule; `kind` is the exception type the user sees."""

    def __init__(self, msg: str, kind: type[BaseException] = ValueError):
        super().__init__(msg)
        self.kind = kind


@dataclass(eq=False)
class OpDef:
    """Everything tracejit knows about one primitive.

    Attributes:
        name: the op name printed in the IR.
        arity: number of operands, or None when variadic.
        rule: ``(*in_types, **params) -> TensorType`` (or tuple of them).
        ref: ``(*arrays, **params) -> ndarray``: the numpy reference, the op's definition.
        vjp: reverse-mode rule ``(ct, out, *xs, **params) -> [ct_x, ...]``: one cotangent per
            operand (None for a zero one or an operand without gradient). `ct` is the output's
            cotangent (a list, entries possibly None, for multi-result primitives) and `out`
            the primal output. For ``elementwise`` primitives a cotangent may keep the
            broadcast output shape: the transform sums it down to the operand's shape.
        jvp: forward-mode rule ``(tangents, out, *xs, **params) -> t_out``: `tangents` has one
            entry per operand (None for zero); returns the output tangent or None (a list for
            multi-result primitives). A result of smaller (broadcastable) shape is broadcast
            to the output's shape by the transform.
        batch: vmap rule ``(xs, dims, **params) -> (out, out_dim)``: each of `dims` is 0 (the
            operand carries the batch axis in front) or None (unbatched); `out_dim` likewise
            (a tuple of them for multi-result primitives).
        Rules are written with tracejit ops (graph ops), so derivatives of derivatives work.
        llvm, cuda: scalar lowerings (filled in by the code generators).
        traits: ``elementwise``, ``nondiff`` (no derivative: zero cotangents and tangents),
            ``multi_result``, ``control``, ``effect``.
        doc: one line for the generated op reference.
    """

    name: str
    arity: int | None
    rule: Callable[..., TensorType | tuple[TensorType, ...]]
    ref: Callable
    vjp: Callable | None = None
    jvp: Callable | None = None
    batch: Callable | None = None
    llvm: object = None
    cuda: object = None
    traits: frozenset = field(default_factory=frozenset)
    doc: str = ""

    def __post_init__(self):
        self.traits = frozenset(self.traits)

    def has(self, trait: str) -> bool:
        return trait in self.traits

    def __repr__(self):
        return f"<OpDef {self.name}>"


PRIMITIVES: dict[str, OpDef] = {}


def register(op: OpDef) -> OpDef:
    if op.name in PRIMITIVES:
        raise ValueError(f"primitive {op.name!r} registered twice")
    PRIMITIVES[op.name] = op
    return op


def defrules(name: str, *, vjp: Callable | None = None, jvp: Callable | None = None,
             batch: Callable | None = None) -> None:
    """Attaches derivative and batching rules to the record of primitive `name` (they are
    written next to the record, in the same file)."""
    op = PRIMITIVES[name]
    for slot, fn in (("vjp", vjp), ("jvp", jvp), ("batch", batch)):
        if fn is not None:
            if getattr(op, slot) is not None:
                raise ValueError(f"{slot} rule of {name!r} defined twice")
            setattr(op, slot, fn)


def get(name: str) -> OpDef:
    try:
        return PRIMITIVES[name]
    except KeyError:
        raise KeyError(f"unknown primitive {name!r}") from None


def check_dtype(t: TensorType, allowed: Callable[[DType], bool], what: str) -> None:
    if not allowed(t.dtype):
        raise RuleError(f"expected {what} operands, got {t.dtype.name}", TypeError)
