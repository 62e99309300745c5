"""The JSON form of a Graph: `Graph.to_json` and `Graph.from_json`.

Input: a `Graph` (to encode) or JSON text (to decode). Output: JSON text with
``"format": "tracejit.graph"`` and ``"version": 1`` (schema in docs/ir.md), or a `Graph` that
prints the same text and computes the same values, every node re-checked against its primitive's
type rule. Decoding uses `json.loads` on text whose nesting depth was checked first (so the JSON
scanner cannot recurse deeply), then walks the data with explicit checks: nothing is evaluated,
imported or unpickled, and every problem raises `GraphFormatError` naming its path in the
document (``graph.nodes[3].params.axes``).
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from typing import Any

import numpy as np

from ..dtypes import DType
from ..errors import GraphFormatError, SourceLoc
from ..ir.graph import Graph, Literal, Node, TensorType
from . import build as B

__all__ = ["graph_to_json", "graph_from_json", "FORMAT", "VERSION", "MAX_JSON_DEPTH"]

FORMAT, VERSION = "tracejit.graph", 1
MAX_JSON_DEPTH = 320  # nesting of JSON arrays and objects (~7 per sub-graph level)

_NONFINITE = {"inf": math.inf, "-inf": -math.inf, "nan": math.nan}


# == encoding ================================================================================

def graph_to_json(graph: Graph, indent: int | None = None) -> str:
    """The JSON text of `graph` (see docs/ir.md for the schema).

    >>> import tracejit as tj
    >>> g = tj.make_graph(lambda x: tj.exp(x) * 2.0)(tj.ones(3))
    >>> str(tj.Graph.from_json(g.to_json())) == str(g)
    True
    """
    doc = {"format": FORMAT, "version": VERSION, "graph": _enc_graph(graph)}
    sep = (",", ":") if indent is None else (",", ": ")
    return json.dumps(doc, indent=indent, separators=sep, allow_nan=False, ensure_ascii=False)


def _enc_type(t: TensorType) -> dict:
    return {"dtype": t.dtype.name, "shape": list(t.shape), "weak": bool(t.weak)}


def _enc_loc(loc: SourceLoc | None):
    if loc is None:
        return None
    return {"file": loc.file, "line": loc.line, "func": loc.func or ""}


def _enc_graph(g: Graph) -> dict:
    index = {id(n): i for i, n in enumerate(g.inputs)}
    inputs = []
    for n in g.inputs:
        d = {"name": n.name, "kind": n.params.get("kind", "arg"), "type": _enc_type(n.type)}
        extra = {k: v for k, v in n.params.items() if k not in ("index", "kind")}
        if extra:
            d["params"] = {k: _enc_param(v, f"input {n.name} param {k}") for k, v in extra.items()}
        if n.loc is not None:
            d["loc"] = _enc_loc(n.loc)
        inputs.append(d)
    nodes = []
    for j, n in enumerate(g.nodes):
        d = {"op": n.op, "inputs": [index[id(x)] for x in n.inputs],
             "params": {k: _enc_param(v, f"node {j} ({n.op}) param {k}")
                        for k, v in n.params.items()}}
        if n.type is not None:
            d["type"] = _enc_type(n.type)
        else:
            d["types"] = [_enc_type(t) for t in n.types]
        d["loc"] = _enc_loc(n.loc)
        nodes.append(d)
        index[id(n)] = len(g.inputs) + j
    return {"name": g.name, "inputs": inputs, "nodes": nodes,
            "outputs": [index[id(o)] for o in g.outputs]}


def _enc_param(v: Any, what: str) -> dict:
    if isinstance(v, (bool, np.bool_)):
        return {"t": "bool", "v": bool(v)}
    if isinstance(v, (int, np.integer)):
        return {"t": "int", "v": int(v)}
    if isinstance(v, (float, np.floating)):
        v = float(v)
        if math.isfinite(v):
            return {"t": "float", "v": v}
        return {"t": "float", "v": "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")}
    if isinstance(v, str):
        return {"t": "str", "v": v}
    if isinstance(v, DType):
        return {"t": "dtype", "v": v.name}
    if isinstance(v, tuple):
        return {"t": "tuple", "v": [_enc_param(x, what) for x in v]}
    if isinstance(v, Literal):
        a = v.value
        if a.dtype.name not in B.DTYPES_BY_NAME:
            raise TypeError(f"to_json: {what}: array literal of dtype {a.dtype} is not a "
                            "tracejit dtype")
        raw = np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<")).tobytes()
        return {"t": "array", "dtype": a.dtype.name, "shape": list(a.shape),
                "data": base64.b64encode(raw).decode("ascii")}
    if isinstance(v, Graph):
        return {"t": "graph", "v": _enc_graph(v)}
    raise TypeError(f"to_json: {what}: cannot encode a {type(v).__name__} param")


# == decoding ================================================================================

def graph_from_json(text: str | bytes) -> Graph:
    """Loads a graph from the JSON text `graph_to_json` writes; raises `GraphFormatError`."""
    if isinstance(text, (bytes, bytearray)):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as e:
            raise GraphFormatError(f"graph JSON is not UTF-8: {e}") from None
    if not isinstance(text, str):
        raise GraphFormatError(f"graph JSON must be a str, got {type(text).__name__}")
    if len(text) > B.MAX_INPUT_CHARS:
        raise GraphFormatError(f"graph JSON of {len(text)} characters exceeds the limit of "
                               f"{B.MAX_INPUT_CHARS}")
    depth = _nesting_depth(text)
    if depth > MAX_JSON_DEPTH:
        raise GraphFormatError(f"graph JSON nests arrays/objects {depth} deep; the limit is "
                               f"{MAX_JSON_DEPTH}")
    try:
        doc = json.loads(text, parse_constant=_reject_constant)
    except GraphFormatError:
        raise
    except json.JSONDecodeError as e:
        raise GraphFormatError(f"not valid JSON: {e.msg} at line {e.lineno}, column {e.colno}"
                               ) from None
    except (ValueError, RecursionError) as e:  # e.g. an integer of more than 4300 digits
        raise GraphFormatError(f"not valid JSON: {B._clip(str(e))}") from None
    if not isinstance(doc, dict):
        raise GraphFormatError(f"graph JSON must be an object, got {B._kind(doc)}")
    _keys(doc, "document", {"format", "version", "graph"})
    if doc["format"] != FORMAT:
        raise GraphFormatError(f"format: expected {FORMAT!r}, got {B._clip(repr(doc['format']))}")
    if type(doc["version"]) is not int or doc["version"] != VERSION:
        raise GraphFormatError(f"version: this tracejit reads version {VERSION}, got "
                               f"{B._clip(repr(doc['version']))}")
    return _Decoder().graph(doc["graph"], "graph", 0)


_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")


def _nesting_depth(text: str) -> int:
    """The deepest nesting of ``[`` and ``{`` outside strings (checked before `json.loads`,
    whose scanner recurses once per level)."""
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    if not brackets:
        return 0
    a = np.frombuffer(brackets.encode("ascii"), dtype=np.uint8)
    step = np.where((a == ord("[")) | (a == ord("{")), 1, -1)
    return int(np.cumsum(step).max())


def _reject_constant(name: str):
    raise GraphFormatError(f"not valid JSON: {name} is not allowed (non-finite floats are "
                           "written as the strings \"inf\", \"-inf\", \"nan\")")


def _keys(d: dict, where: str, allowed: set, optional: frozenset = frozenset()) -> None:
    missing = sorted(allowed - optional - set(d))
    if missing:
        raise B.fail(where, f"missing key {missing[0]!r}")
    extra = sorted(set(d) - allowed)
    if extra:
        raise B.fail(where, f"unknown key {B._clip(repr(extra[0]))}")


def _obj(v: Any, where: str) -> dict:
    if not isinstance(v, dict):
        raise B.fail(where, f"expected an object, got {B._kind(v)}")
    return v


def _list(v: Any, where: str) -> list:
    if not isinstance(v, list):
        raise B.fail(where, f"expected a list, got {B._kind(v)}")
    return v


def _dtype(v: Any, where: str) -> DType:
    if not isinstance(v, str) or v not in B.DTYPES_BY_NAME:
        raise B.fail(where, f"unknown dtype {B._clip(repr(v))} (known: "
                     f"{', '.join(B.DTYPES_BY_NAME)})")
    return B.DTYPES_BY_NAME[v]


class _Decoder:
    def graph(self, d: Any, where: str, depth: int) -> Graph:
        if depth > B.MAX_GRAPH_DEPTH:
            raise B.fail(where, f"sub-graphs nested deeper than {B.MAX_GRAPH_DEPTH}")
        _keys(_obj(d, where), where, {"name", "inputs", "nodes", "outputs"})
        name = B.check_name(d["name"], f"{where}.name", "graph name")
        values: list[Node] = []
        for i, x in enumerate(_list(d["inputs"], f"{where}.inputs")):
            w = f"{where}.inputs[{i}]"
            _keys(_obj(x, w), w, {"name", "kind", "type", "params", "loc"},
                  frozenset({"params", "loc"}))
            extra = {k: self.param(v, f"{w}.params.{k}", depth, 0)
                     for k, v in self.params(x.get("params", {}), f"{w}.params").items()}
            loc = self.loc(x.get("loc"), f"{w}.loc")
            values.append(B.make_input(x["name"], self.type(x["type"], f"{w}.type"),
                                       x["kind"], i, w, loc, extra))
        n_in = len(values)
        for j, x in enumerate(_list(d["nodes"], f"{where}.nodes")):
            values.append(self.node(x, f"{where}.nodes[{j}]", values, depth))
        outputs = []
        for k, r in enumerate(_list(d["outputs"], f"{where}.outputs")):
            outputs.append(values[self.ref(r, f"{where}.outputs[{k}]", len(values))])
        return B.make_graph(values[:n_in], outputs, name, where, values[n_in:])

    def node(self, x: Any, where: str, values: list[Node], depth: int) -> Node:
        _keys(_obj(x, where), where, {"op", "inputs", "params", "type", "types", "loc"},
              frozenset({"type", "types", "loc"}))
        op = x["op"]
        if not isinstance(op, str):
            raise B.fail(f"{where}.op", f"expected an op name, got {B._kind(op)}")
        where_op = f"{where} ({B._clip(op, 40)})"
        args = [values[self.ref(r, f"{where}.inputs[{k}]", len(values))]
                for k, r in enumerate(_list(x["inputs"], f"{where}.inputs"))]
        params = {k: self.param(v, f"{where}.params.{k}", depth, 0)
                  for k, v in self.params(x["params"], f"{where}.params").items()}
        if ("type" in x) == ("types" in x):
            raise B.fail(where, "a node has either 'type' or 'types' (multi-result), not "
                         + ("both" if "type" in x else "neither"))
        if "type" in x:
            declared = self.type(x["type"], f"{where}.type")
        else:
            ts = _list(x["types"], f"{where}.types")
            if len(ts) > B.MAX_TUPLE_LEN:
                raise B.fail(f"{where}.types", f"more than {B.MAX_TUPLE_LEN} result types")
            declared = tuple(self.type(t, f"{where}.types[{k}]") for k, t in enumerate(ts))
        return B.make_node(op, args, params, declared, self.loc(x.get("loc"), f"{where}.loc"),
                           where_op)

    @staticmethod
    def ref(r: Any, where: str, n_defined: int) -> int:
        if type(r) is not int:
            raise B.fail(where, f"a value reference is an integer index, got {B._kind(r)}")
        if r < 0:
            raise B.fail(where, f"value reference {r} is negative")
        if r >= n_defined:
            raise B.fail(where, f"value reference {r} is not defined before this use (only "
                         f"{n_defined} values are: inputs first, then nodes in order)")
        return r

    @staticmethod
    def params(d: Any, where: str) -> dict:
        _obj(d, where)
        for k in d:
            if not re.fullmatch(r"[A-Za-z_]\w*", k) or len(k) > 100:
                raise B.fail(where, f"param name {B._clip(repr(k))} is not an identifier")
        return d

    @staticmethod
    def type(d: Any, where: str) -> TensorType:
        _keys(_obj(d, where), where, {"dtype", "shape", "weak"}, frozenset({"weak"}))
        weak = d.get("weak", False)
        if not isinstance(weak, bool):
            raise B.fail(f"{where}.weak", f"expected a bool, got {B._kind(weak)}")
        return B.make_type(d["shape"], _dtype(d["dtype"], f"{where}.dtype"), weak, where)

    @staticmethod
    def loc(d: Any, where: str):
        if d is None:
            return None
        _keys(_obj(d, where), where, {"file", "line", "func"}, frozenset({"func"}))
        return B.make_loc(d["file"], d["line"], d.get("func", ""), where)

    def param(self, p: Any, where: str, depth: int, nest: int):
        if nest > B.MAX_PARAM_DEPTH:
            raise B.fail(where, f"tuples nested deeper than {B.MAX_PARAM_DEPTH}")
        _obj(p, where)
        t = p.get("t")
        if t == "array":
            _keys(p, where, {"t", "dtype", "shape", "data"})
            return self.array(p, where)
        _keys(p, where, {"t", "v"})
        v = p["v"]
        if t == "int":
            return B.check_int(v, f"{where}.v")
        if t == "float":
            if type(v) in (int, float) and not isinstance(v, bool):
                return float(v)
            if isinstance(v, str) and v in _NONFINITE:
                return _NONFINITE[v]
            raise B.fail(f"{where}.v", f"expected a float (a number, \"inf\", \"-inf\" or "
                         f"\"nan\"), got {B._kind(v)}")
        if t == "bool":
            if not isinstance(v, bool):
                raise B.fail(f"{where}.v", f"expected true or false, got {B._kind(v)}")
            return v
        if t == "str":
            return B.check_str(v, f"{where}.v")
        if t == "dtype":
            return _dtype(v, f"{where}.v")
        if t == "tuple":
            items = _list(v, f"{where}.v")
            if len(items) > B.MAX_TUPLE_LEN:
                raise B.fail(f"{where}.v", f"tuple of {len(items)} items exceeds the limit of "
                             f"{B.MAX_TUPLE_LEN}")
            return tuple(self.param(x, f"{where}.v[{k}]", depth, nest + 1)
                         for k, x in enumerate(items))
        if t == "graph":
            return self.graph(v, f"{where}.v", depth + 1)
        raise B.fail(f"{where}.t", f"unknown param kind {B._clip(repr(t))} (known: int, float, "
                     "bool, str, dtype, tuple, array, graph)")

    @staticmethod
    def array(p: dict, where: str) -> Literal:
        dtype = _dtype(p["dtype"], f"{where}.dtype")
        t = B.make_type(p["shape"], dtype, False, f"{where}.shape")
        count = math.prod(t.shape)
        nbytes = count * dtype.itemsize
        if nbytes > B.MAX_LITERAL_BYTES:
            raise B.fail(where, f"array literal of {nbytes} bytes exceeds the limit of "
                         f"{B.MAX_LITERAL_BYTES}")
        data = p["data"]
        if not isinstance(data, str):
            raise B.fail(f"{where}.data", f"expected a base64 string, got {B._kind(data)}")
        if len(data) != 4 * ((nbytes + 2) // 3):
            raise B.fail(f"{where}.data", f"{len(data)} base64 characters cannot hold the "
                         f"{nbytes} bytes of a {dtype.name}{list(t.shape)} array")
        try:
            raw = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError) as e:
            raise B.fail(f"{where}.data", f"bad base64: {e}") from None
        if len(raw) != nbytes:
            raise B.fail(f"{where}.data", f"holds {len(raw)} bytes, a {dtype.name}"
                         f"{list(t.shape)} array needs {nbytes}")
        if dtype.is_bool and raw.translate(None, b"\x00\x01"):
            raise B.fail(f"{where}.data", "bool array bytes must be 0 or 1")
        arr = np.frombuffer(raw, dtype=dtype.np.newbyteorder("<")).astype(dtype.np)
        return B.make_literal(arr.reshape(t.shape), where)
