"""Checked construction of loaded graphs, shared by the text and JSON loaders.

Input: the pieces a loader has decoded (op names, operand nodes, params, declared result types,
source locations), each with a ``where`` string naming its place in the document. Output:
`Node`s and `Graph`s whose every node passed its primitive's type rule with the declared type
(as `Graph.verify` checks), or a `GraphFormatError` that says what is wrong and where. Nothing
here evaluates, imports or unpickles anything: a type rule only looks at types and params.

The limits below bound what a document may ask for, so hostile input fails fast instead of
exhausting memory, the stack or time (documented in docs/ir.md, "Limits").
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ..dtypes import ALL_DTYPES, DType
from ..errors import GraphFormatError, SourceLoc
from ..ir.graph import Graph, Literal, Node, TensorType, has_effect

__all__ = ["MAX_INPUT_CHARS", "MAX_GRAPH_DEPTH", "MAX_PARAM_DEPTH", "MAX_RANK", "MAX_ELEMENTS",
           "MAX_LITERAL_BYTES", "MAX_STRING_CHARS", "MAX_TUPLE_LEN", "INT_MIN", "INT_MAX",
           "DTYPES_BY_NAME", "DTYPES_BY_SHORT", "fail", "check_int", "check_str", "make_type",
           "make_literal", "make_loc", "make_input", "make_node", "make_graph"]

# -- limits ----------------------------------------------------------------------------------
MAX_INPUT_CHARS = 1 << 28      # characters of one text or JSON document (256 Mi)
MAX_GRAPH_DEPTH = 32           # sub-graphs nested inside sub-graphs
MAX_PARAM_DEPTH = 32           # tuples (and literal lists) nested inside one param
MAX_RANK = 32                  # dimensions of a type or array literal
MAX_ELEMENTS = 1 << 48         # elements of any declared type (its shape's product)
MAX_LITERAL_BYTES = 1 << 28    # bytes of one array literal (256 MiB)
MAX_STRING_CHARS = 1 << 16     # one string param, name or source file path
MAX_TUPLE_LEN = 1 << 16        # items of one tuple param
INT_MIN, INT_MAX = -(1 << 63), (1 << 64) - 1  # int params: what int64 or uint64 can hold

DTYPES_BY_NAME: dict[str, DType] = {d.name: d for d in ALL_DTYPES}   # JSON: "float32"
DTYPES_BY_SHORT: dict[str, DType] = {d.short: d for d in ALL_DTYPES}  # text: "f32"

# Params the text form leaves out because the result type states them (printer._implied).
IMPLIED_DTYPE = frozenset({"constant", "convert", "iota"})


def fail(where: str, msg: str) -> GraphFormatError:
    """The error to raise: ``<where>: <msg>``."""
    return GraphFormatError(f"{where}: {msg}" if where else msg)


def check_int(v: Any, where: str, lo: int = INT_MIN, hi: int = INT_MAX) -> int:
    if type(v) is not int:
        raise fail(where, f"expected an integer, got {_kind(v)}")
    if not lo <= v <= hi:
        raise fail(where, f"integer {_clip(repr(v))} is out of range [{lo}, {hi}]")
    return v


def check_str(v: Any, where: str, what: str = "string", empty: bool = True) -> str:
    if not isinstance(v, str):
        raise fail(where, f"expected a {what}, got {_kind(v)}")
    if len(v) > MAX_STRING_CHARS:
        raise fail(where, f"{what} of {len(v)} characters exceeds the limit of "
                   f"{MAX_STRING_CHARS}")
    if not empty and not v:
        raise fail(where, f"{what} is empty")
    return v


def check_name(v: Any, where: str, what: str) -> str:
    """A graph or input name: non-empty, without control characters (which could forge lines
    of the text form)."""
    check_str(v, where, what, empty=False)
    if any(ord(c) < 32 or ord(c) == 127 for c in v):
        raise fail(where, f"{what} {_clip(repr(v))} contains control characters")
    return v


def make_type(shape: Any, dtype: DType, weak: bool, where: str) -> TensorType:
    """A TensorType after checking rank, dimensions and element count."""
    if not isinstance(shape, (list, tuple)):
        raise fail(where, f"shape must be a list of integers, got {_kind(shape)}")
    if len(shape) > MAX_RANK:
        raise fail(where, f"rank {len(shape)} exceeds the limit of {MAX_RANK}")
    count = 1
    for k, d in enumerate(shape):
        check_int(d, f"{where}: shape[{k}]", 0, MAX_ELEMENTS)
        count *= d
        if count > MAX_ELEMENTS:
            raise fail(where, f"shape {list(shape)} has more than {MAX_ELEMENTS} elements "
                       "(the limit for a declared type)")
    return TensorType(tuple(shape), dtype, bool(weak))


def make_literal(arr: np.ndarray, where: str) -> Literal:
    if arr.nbytes > MAX_LITERAL_BYTES:
        raise fail(where, f"array literal of {arr.nbytes} bytes exceeds the limit of "
                   f"{MAX_LITERAL_BYTES}")
    return Literal(arr)


def make_loc(file: Any, line: Any, func: Any, where: str, absolute: bool = False) -> SourceLoc:
    """A SourceLoc. With `absolute`, a relative path (as the text form prints paths below the
    working directory) is made absolute, so the loaded location equals the traced one."""
    check_str(file, f"{where}: loc file", "file path", empty=False)
    check_int(line, f"{where}: loc line", 0, (1 << 31) - 1)
    check_str(func, f"{where}: loc func", "function name")
    if absolute and not os.path.isabs(file) and not file.startswith("<"):
        file = os.path.abspath(file)
    return SourceLoc(file, line, func)


def make_input(name: Any, t: TensorType, kind: Any, index: int, where: str,
               loc: SourceLoc | None = None, extra: dict | None = None) -> Node:
    check_name(name, where, "input name")
    if kind not in ("arg", "capture"):
        raise fail(where, f"input kind must be 'arg' or 'capture', got {_clip(repr(kind))}")
    params = {"index": index, "kind": kind}
    for k, v in (extra or {}).items():
        if k in params:
            raise fail(where, f"input param {k!r} is set by the loader")
        params[k] = v
    return Node("input", (), params, t, loc, name=name)


def make_node(op: str, inputs: list[Node], params: dict, declared, loc: SourceLoc | None,
              where: str) -> Node:
    """A node of primitive `op`, after its type rule accepts the operands and params and gives
    exactly the `declared` type (a TensorType, or a tuple of them for multi-result nodes)."""
    from ..primitives import PRIMITIVES
    opdef = PRIMITIVES.get(op) if isinstance(op, str) else None
    if opdef is None:
        raise fail(where, f"unknown op {_clip(repr(op))}")
    if opdef.arity is not None and opdef.arity != len(inputs):
        raise fail(where, f"{op} takes {opdef.arity} operands, got {len(inputs)}")
    if op == "constant":
        v = params.get("value")
        if not isinstance(v, (bool, int, float, Literal)):
            raise fail(where, f"constant value must be a number, bool or array literal, got "
                       f"{_kind(v)}")
    types = [x.type if x.type is not None else x.types for x in inputs]
    try:
        got = opdef.rule(*types, **params)
    except Exception as e:  # noqa: BLE001  (a hostile param may upset a rule in any way)
        raise fail(where, f"type rule rejects operands {_types_text(types)} with params "
                   f"{_clip(_params_text(params))}: {type(e).__name__}: {_clip(str(e))}"
                   ) from None
    if got != declared:
        raise fail(where, f"declared type {_rtype_text(declared)} differs from "
                   f"{_rtype_text(got)}, the type its rule gives")
    if isinstance(declared, tuple):
        return Node(op, inputs, params, None, loc, types=declared)
    return Node(op, inputs, params, declared, loc)


def make_graph(inputs: list[Node], outputs: list[Node], name: Any, where: str,
               nodes: list[Node] = ()) -> Graph:
    """The graph; every node of `nodes` (all the document lists, in its order) that has effects
    (`tj.debug.print`, ...) is one of its effects, in that order."""
    check_name(name, where, "graph name")
    seen: dict[str, int] = {}
    for i, n in enumerate(inputs):
        if n.name in seen:
            raise fail(where, f"inputs {seen[n.name]} and {i} are both named {n.name!r}")
        seen[n.name] = i
    return Graph(inputs, outputs, name, effects=[n for n in nodes if has_effect(n)])


# -- message helpers -------------------------------------------------------------------------

def _clip(s: str, n: int = 120) -> str:
    return s if len(s) <= n else s[:n] + "..."


def _kind(v: Any) -> str:
    if isinstance(v, bool):
        return f"bool {v}"
    if isinstance(v, (int, float)):
        return f"{type(v).__name__} {_clip(repr(v), 40)}"
    if isinstance(v, str):
        return f"string {_clip(repr(v), 40)}"
    return {list: "a list", tuple: "a tuple", dict: "an object", type(None): "null"}.get(
        type(v), type(v).__name__)


def _rtype_text(t) -> str:
    if isinstance(t, tuple):
        return "(" + ", ".join(str(x) for x in t) + ")"
    return str(t)


def _types_text(types) -> str:
    return "(" + ", ".join(_rtype_text(t) for t in types) + ")"


def _params_text(params: dict) -> str:
    from ..ir.printer import format_param
    try:
        return "{" + ", ".join(f"{k}={format_param(v)}" for k, v in params.items()) + "}"
    except Exception:  # noqa: BLE001  (only for a message)
        return "{...}"
