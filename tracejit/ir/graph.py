"""The IR: an immutable, typed SSA graph.

Input: nodes built by the tracer (`trace.py`) or by transforms. Output: `Graph`, the object every
later stage reads. A `Node` is ``(op, inputs, params)`` with a result shape and dtype (or, for the
few multi-result primitives such as ``while``, a tuple of types read through ``get`` nodes) and
the user's source location. Nodes never change after construction; a transform builds new ones.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any, Iterable

import numpy as np

from ..dtypes import DType
from ..errors import SourceLoc

__all__ = ["Node", "Graph", "Literal", "TensorType", "freeze_params", "has_effect", "effectful",
           "subgraphs", "without_effects"]


class TensorType:
    """The static type of a value: shape, dtype, and whether it is weakly typed."""

    __slots__ = ("shape", "dtype", "weak")

    def __init__(self, shape: tuple[int, ...], dtype: DType, weak: bool = False):
        self.shape, self.dtype, self.weak = tuple(shape), dtype, weak

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __eq__(self, other):
        return (isinstance(other, TensorType) and self.shape == other.shape
                and self.dtype == other.dtype and self.weak == other.weak)

    def __hash__(self):
        return hash((self.shape, self.dtype.name, self.weak))

    def __str__(self):
        return ("~" if self.weak else "") + f"{self.dtype.short}[{','.join(map(str, self.shape))}]"

    __repr__ = __str__


class Literal:
    """An array constant stored in a node's params, hashed and compared by value."""

    __slots__ = ("value", "_key")

    def __init__(self, value: np.ndarray):
        v = np.array(value, copy=True)
        v.flags.writeable = False
        self.value = v
        self._key = (v.dtype.str, v.shape, hashlib.sha1(np.ascontiguousarray(v).tobytes()).digest())

    def __eq__(self, other):
        return isinstance(other, Literal) and self._key == other._key

    def __hash__(self):
        return hash(self._key)

    def __repr__(self):
        v = self.value
        if v.size <= 16:
            return repr(v.tolist())
        return f"<{v.dtype}{list(v.shape)} sha1:{self._key[2].hex()[:12]}>"


def freeze_params(params: dict) -> tuple:
    """A hashable key for a params dict (sub-graphs hash by identity)."""
    def fz(v):
        if isinstance(v, dict):
            return tuple(sorted((k, fz(x)) for k, x in v.items()))
        if isinstance(v, (list, tuple)):
            return tuple(fz(x) for x in v)
        if isinstance(v, np.ndarray):
            return Literal(v)
        if isinstance(v, Graph):
            return ("graph", id(v))
        if isinstance(v, float):  # 0.0 == -0.0 (and hash alike) but are different constants
            return ("float", v, math.copysign(1.0, v))
        return v
    return tuple(sorted((k, fz(v)) for k, v in params.items()))


class Node:
    """One SSA value. `inputs` are Nodes; `params` are static (ints, tuples, dtypes, graphs)."""

    __slots__ = ("op", "inputs", "params", "type", "types", "loc", "name", "__weakref__")

    def __init__(self, op: str, inputs: Iterable[Node], params: dict, type: TensorType | None,
                 loc: SourceLoc | None = None, name: str | None = None,
                 types: tuple[TensorType, ...] | None = None):
        self.op = op
        self.inputs = tuple(inputs)
        self.params = params
        self.type = type  # None for multi-result nodes
        self.types = types  # the result types of a multi-result node
        self.loc = loc
        self.name = name  # set for graph inputs

    @property
    def shape(self) -> tuple[int, ...]:
        return self.type.shape

    @property
    def dtype(self) -> DType:
        return self.type.dtype

    @property
    def weak(self) -> bool:
        return self.type.weak

    @property
    def ndim(self) -> int:
        return len(self.type.shape)

    def __repr__(self):
        t = self.type if self.type is not None else self.types
        return f"<Node {self.op} {t}>"


def subgraphs(n: Node) -> list[Graph]:
    """The sub-graphs in `n`'s params (cond branches, loop bodies, custom-rule graphs)."""
    out = []
    for v in n.params.values():
        if isinstance(v, Graph):
            out.append(v)
        elif isinstance(v, tuple):
            out += [g for g in v if isinstance(g, Graph)]
    return out


def has_effect(n: Node) -> bool:
    """Does running `n` do something besides computing its value (print, check)? True for a
    primitive with the ``effect`` trait and for a node with a sub-graph that has effects (a
    ``cond`` whose branch prints): such nodes are kept in program order by `Graph.effects`."""
    return effectful(n.op, n.params)


def effectful(op: str, params: dict) -> bool:
    """`has_effect` of a node ``op(...) {params}`` before it is built."""
    global _EFFECT_OPS
    if _EFFECT_OPS is None:
        from ..primitives import PRIMITIVES
        _EFFECT_OPS = frozenset(k for k, o in PRIMITIVES.items() if o.has("effect"))
    if op in _EFFECT_OPS:
        return True
    for v in params.values():
        if isinstance(v, Graph):
            if v.effects:
                return True
        elif isinstance(v, tuple) and any(isinstance(g, Graph) and g.effects for g in v):
            return True
    return False


def without_effects(params: dict) -> dict:
    """`params` with every sub-graph replaced by one that has no effects (recursively): the
    same computation, printing and checking nothing. `params` itself when nothing changes."""
    out, changed = {}, False
    for k, v in params.items():
        if isinstance(v, Graph):
            nv = _strip(v)
        elif isinstance(v, tuple) and any(isinstance(g, Graph) for g in v):
            nv = tuple(_strip(g) if isinstance(g, Graph) else g for g in v)
        else:
            nv = v
        changed |= nv is not v and nv != v
        out[k] = nv
    return out if changed else params


def _strip(g: Graph) -> Graph:
    if not g.effects:
        return g
    new: dict[int, Node] = {id(n): n for n in g.inputs}
    for n in _toposort(g.inputs, g.outputs):
        ins = tuple(new[id(i)] for i in n.inputs)
        params = without_effects(n.params)
        new[id(n)] = n if (ins == n.inputs and params is n.params) else Node(
            n.op, ins, params, n.type, n.loc, types=n.types)
    return Graph(g.inputs, [new[id(o)] for o in g.outputs], g.name)


_EFFECT_OPS: frozenset | None = None  # names of the primitives with the "effect" trait


class Graph:
    """A traced function: inputs, nodes in topological order, outputs, and effects.

    Inputs are nodes with op ``input``; ``params["kind"]`` is ``"arg"`` for the function's
    arguments and ``"capture"`` for tensors it closed over. `effects` are the nodes that must run
    even though no output reads them (`tj.debug.print`, `tj.debug.check`, and control-flow nodes
    whose sub-graphs hold such nodes), in program order; `nodes` holds what the effects and the
    outputs need, the effects' dependencies first. Calling a Graph runs it on the numpy
    interpreter.

    >>> import tracejit as tj
    >>> g = tj.make_graph(lambda x: tj.exp(x) * 2.0)(tj.ones(3))
    >>> [n.op for n in g.nodes]
    ['exp', 'constant', 'mul']
    >>> g(tj.zeros(3)).tolist()
    [2.0, 2.0, 2.0]
    """

    def __init__(self, inputs: Iterable[Node], outputs: Iterable[Node], name: str = "f",
                 effects: Iterable[Node] = ()):
        self.inputs = tuple(inputs)
        self.outputs = tuple(outputs)
        self.name = name
        self.effects = tuple(effects)
        self.nodes = _toposort(self.inputs, self.effects + self.outputs)

    def __str__(self) -> str:
        from .printer import graph_to_text
        return graph_to_text(self)

    def __repr__(self) -> str:
        ins = ", ".join(str(n.type) for n in self.inputs)
        outs = ", ".join(str(n.type) for n in self.outputs)
        return f"<Graph {self.name}({ins}) -> ({outs}), {len(self.nodes)} nodes>"

    def to_text(self) -> str:
        return str(self)

    @classmethod
    def from_text(cls, text: str) -> Graph:
        """Loads the text form `str(graph)` back; raises `tj.GraphFormatError` on bad input.

        >>> import tracejit as tj
        >>> g = tj.make_graph(lambda x: tj.exp(x) * 2.0)(tj.ones(3))
        >>> str(tj.Graph.from_text(str(g))) == str(g)
        True

        Array literals of more than 16 elements print by digest only and cannot be loaded from
        text (the error says so); `to_json` round-trips them. See docs/ir.md.
        """
        from ..export.text import graph_from_text
        return graph_from_text(text)

    def to_json(self, indent: int | None = None) -> str:
        """The graph as JSON (``"format": "tracejit.graph"``, schema in docs/ir.md): an exact
        round trip through `Graph.from_json`, large array literals included."""
        from ..export.jsonio import graph_to_json
        return graph_to_json(self, indent)

    @classmethod
    def from_json(cls, text: str | bytes) -> Graph:
        """Loads `to_json` output; never evaluates or unpickles anything, re-checks every
        node's type rule, and raises `tj.GraphFormatError` on bad input.

        >>> import tracejit as tj
        >>> g = tj.make_graph(lambda x: tj.exp(x) * 2.0)(tj.ones(3))
        >>> g2 = tj.Graph.from_json(g.to_json())
        >>> g2(tj.zeros(3)).tolist()
        [2.0, 2.0, 2.0]
        """
        from ..export.jsonio import graph_from_json
        return graph_from_json(text)

    def to_dot(self, schedule=None) -> str:
        """Graphviz DOT text drawing every node (op, result type, source ``file:line``), the
        inputs and outputs, and sub-graphs as nested clusters. With a `Schedule` built from this
        graph, or ``schedule=True`` (optimize, schedule, and draw the optimized graph), each
        fused kernel is a cluster labelled with its name and kind. See docs/export.md.

        >>> import tracejit as tj
        >>> dot = tj.make_graph(lambda x: tj.exp(x) * 2.0)(tj.ones(3)).to_dot()
        >>> dot.startswith('digraph "lambda" {') and "<B>exp</B>" in dot
        True
        """
        from ..export.dot import graph_to_dot
        return graph_to_dot(self, schedule)

    def save(self, path) -> None:
        """Writes the graph to `path` in the format its extension names: ``.txt`` (the text
        form), ``.json``, ``.dot`` (Graphviz DOT), ``.svg`` (rendered by Graphviz's ``dot``,
        which must be installed) or ``.onnx`` (`to_onnx`, which needs the ``onnx`` extra)."""
        from ..export import save_graph
        save_graph(self, path)

    def to_onnx(self):
        """The graph as an ``onnx.ModelProto`` (opset 18; needs ``pip install tracejit[onnx]``).
        Inputs keep their names, outputs are ``out0``, ``out1``, ...; a primitive without an
        ONNX equivalent (``random_bits``) raises `NotImplementedError` naming it and its source
        line. See docs/export.md, "ONNX"."""
        from ..export.onnx import graph_to_onnx
        return graph_to_onnx(self)

    @property
    def captures(self) -> tuple[Node, ...]:
        return tuple(n for n in self.inputs if n.params.get("kind") == "capture")

    def verify(self) -> None:
        """Re-checks every node's shape and dtype rule; raises `AssertionError` on a mismatch."""
        from .verify import verify
        verify(self)

    def __call__(self, *args) -> Any:
        """Runs the graph on the numpy interpreter; one value per input, flat."""
        from ..runtime.interpreter import run_graph
        from ..tensor import Tensor, to_numpy_arg
        if len(args) != len(self.inputs):
            raise TypeError(f"graph {self.name} takes {len(self.inputs)} inputs "
                            f"({', '.join(n.name for n in self.inputs)}), got {len(args)}")
        vals = [to_numpy_arg(a, n) for a, n in zip(args, self.inputs)]
        outs = [Tensor._wrap(v) for v in run_graph(self, vals)]
        return outs[0] if len(outs) == 1 else tuple(outs)


def _toposort(inputs: tuple[Node, ...], outputs: tuple[Node, ...]) -> tuple[Node, ...]:
    """Nodes reachable from `outputs` (the effects, then the outputs: the effects' work comes
    first, in their order), each after its inputs; graph inputs excluded."""
    order: list[Node] = []
    seen = {id(n) for n in inputs}
    stack: list[tuple[Node, bool]] = [(n, False) for n in reversed(outputs)]
    while stack:
        node, done = stack.pop()
        if done:
            order.append(node)
            continue
        if id(node) in seen:
            continue
        seen.add(id(node))
        if node.op == "input":
            raise ValueError(f"graph output depends on input {node.name!r} not listed in inputs")
        stack.append((node, True))
        for i in reversed(node.inputs):
            if id(i) not in seen:
                stack.append((i, False))
    return tuple(order)
