"""The text-form loader: `Graph.from_text`.

Input: the text `str(graph)` prints (grammar in docs/ir.md). Output: a `Graph` that prints the
same text, built through `build.make_node`, so every node has passed its primitive's type rule
with its declared type; or a `GraphFormatError` naming the line and what is wrong. The parser is
a small hand-written scanner: it never evaluates anything (strings are unescaped here, numbers
read with `int`/`float`), and nesting is bounded by the limits of `build`.

What the text cannot restore (docs/ir.md, "Loading graphs back"): an array literal of more than
16 elements, which the printer shows only by its digest (the error says to use JSON), and the
distinction between a 0-d array literal and a Python scalar (both print as ``value=2.5``; the
loader reads a scalar, which has the same type and value).
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from ..errors import GraphFormatError
from ..ir.graph import Graph, Node, TensorType
from . import build as B

__all__ = ["graph_from_text"]

_NAME = re.compile(r"[^\s,(){}\[\]:=@%#<>'\"]+")
_PARAM_NAME = re.compile(r"[A-Za-z_]\w*")
_NUMBER = re.compile(r"-?(?:inf|nan|\d+(?:\.\d*)?(?:[eE][+-]?\d+)?)")
_WORD = re.compile(r"[A-Za-z_]\w*")
_ESCAPES = {"\\": "\\", "'": "'", '"': '"', "n": "\n", "r": "\r", "t": "\t", "a": "\a",
            "b": "\b", "f": "\f", "v": "\v", "0": "\0"}


class _Ref:
    """``@name``: a sub-graph printed after the node line."""

    def __init__(self, name: str):
        self.name = name


class _Digest:
    """``<float32[512, 512] sha1:...>``: a large array printed by digest only."""

    def __init__(self, text: str):
        self.text = text


class _List:
    """``[...]``: an array literal, made into a `Literal` once its dtype is known."""

    def __init__(self, items: list):
        self.items = items


def graph_from_text(text: str) -> Graph:
    """Parses the text form of a graph.

    >>> import tracejit as tj
    >>> g = tj.make_graph(lambda x: tj.exp(x) * 2.0)(tj.ones(3))
    >>> str(tj.Graph.from_text(str(g))) == str(g)
    True
    """
    if isinstance(text, (bytes, bytearray)):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as e:
            raise GraphFormatError(f"graph text is not UTF-8: {e}") from None
    if not isinstance(text, str):
        raise GraphFormatError(f"graph text must be a str, got {type(text).__name__}")
    if len(text) > B.MAX_INPUT_CHARS:
        raise GraphFormatError(f"graph text of {len(text)} characters exceeds the limit of "
                               f"{B.MAX_INPUT_CHARS}")
    lines = text.split("\n")
    p = _Parser(lines)
    i = p.skip_blank(0)
    if i >= len(lines):
        raise GraphFormatError("graph text is empty")
    g, i = p.graph(i, 0)
    i = p.skip_blank(i)
    if i < len(lines):
        raise GraphFormatError(f"line {i + 1}: unexpected text after the graph: "
                               f"{B._clip(lines[i].strip())!r}")
    return g


class _Parser:
    def __init__(self, lines: list[str]):
        self.lines = lines

    def skip_blank(self, i: int) -> int:
        while i < len(self.lines) and not self.lines[i].strip():
            i += 1
        return i

    # -- one graph -------------------------------------------------------------------------
    def graph(self, i: int, depth: int) -> tuple[Graph, int]:
        if depth > B.MAX_GRAPH_DEPTH:
            raise GraphFormatError(f"line {i + 1}: sub-graphs nested deeper than "
                                   f"{B.MAX_GRAPH_DEPTH}")
        header = i
        s = _Line(self.lines[i], i)
        s.keyword("graph")
        name = s.name("graph name")
        s.expect("(")
        inputs: list[Node] = []
        env: dict[str, Node] = {}
        if not s.take(")"):
            while True:
                s.expect("%")
                iname = s.name("input name")
                s.expect(":")
                t = s.type()
                kind = "capture" if s.take_word("captured") else "arg"
                if iname in env:
                    raise s.error(f"duplicate input name %{iname}")
                node = B.make_input(iname, t, kind, len(inputs), s.where())
                inputs.append(node)
                env[iname] = node
                if s.take(")"):
                    break
                s.expect(",")
        s.expect("->")
        s.expect("(")
        out_types = []
        if not s.take(")"):
            while True:
                out_types.append(s.rtype())
                if s.take(")"):
                    break
                s.expect(",")
        s.expect("{")
        s.end()
        i += 1
        while True:
            i = self.skip_blank(i)
            if i >= len(self.lines):
                raise GraphFormatError(f"line {header + 1}: graph {name} is not closed: the text "
                                       "ends before its 'return' and '}' (truncated?)")
            s = _Line(self.lines[i], i)
            if s.peek_word() == "return":
                s.keyword("return")
                outputs = s.values(env)
                s.end()
                i = self.skip_blank(i + 1)
                if i >= len(self.lines) or self.lines[i].strip() != "}":
                    raise GraphFormatError(f"line {i + 1}: expected '}}' closing graph {name}")
                got = [_rtype_of(n) for n in outputs]
                if got != [_text(t) for t in out_types]:
                    raise GraphFormatError(
                        f"line {header + 1}: graph {name} declares results "
                        f"({', '.join(_text(t) for t in out_types)}) but returns "
                        f"({', '.join(got)})")
                where = f"line {header + 1}: graph {name}"
                return B.make_graph(inputs, outputs, name, where, list(env.values())), i + 1
            if s.peek() == "%":
                i = self.node(s, env, depth)
                continue
            raise s.error("expected a node line '%N: type = op(...)' or 'return (...)'")

    def node(self, s: _Line, env: dict, depth: int) -> int:
        s.expect("%")
        nid = s.name("node id")
        if not nid.isdigit():
            raise s.error(f"node ids are integers (%0, %1, ...), got %{nid}")
        if nid in env:
            raise s.error(f"%{nid} is defined twice")
        s.expect(":")
        declared = s.rtype()
        s.expect("=")
        op = s.word("op name")
        where = s.where() + f": node %{nid} ({op})"
        s.expect("(")
        args = s.values(env, opened=True)
        params: dict[str, Any] = {}
        if s.take("{"):
            while True:
                k = s.param_name()
                if k in params:
                    raise s.error(f"param {k} is given twice")
                s.expect("=")
                params[k] = s.value(0)
                if s.take("}"):
                    break
                s.expect(",")
        loc = None
        if s.take("#"):
            loc = _loc(s.rest().strip(), where)
        s.end()
        # Sub-graphs follow the node line, one per `@name`, in param order (as printed).
        i = s.index + 1
        for k, v in params.items():
            if isinstance(v, _Ref):
                params[k], i = self.subgraph(v, i, depth, where)
            elif isinstance(v, tuple) and v and all(isinstance(x, _Ref) for x in v):
                subs = []
                for x in v:
                    g, i = self.subgraph(x, i, depth, where)
                    subs.append(g)
                params[k] = tuple(subs)
        for k, v in params.items():
            params[k] = _resolve(v, op, declared, f"{where}: param {k}")
        _restore_implied(op, params, declared)
        env[nid] = B.make_node(op, args, params, declared, loc, where)
        return i

    def subgraph(self, ref: _Ref, i: int, depth: int, where: str) -> tuple[Graph, int]:
        i = self.skip_blank(i)
        if i >= len(self.lines):
            raise GraphFormatError(f"{where}: the text ends before sub-graph @{ref.name} "
                                   "(truncated?)")
        if self.lines[i].lstrip()[:6] != "graph ":
            raise GraphFormatError(f"{where}: sub-graph @{ref.name} should follow on line "
                                   f"{i + 1}")
        g, i = self.graph(i, depth + 1)
        if g.name != ref.name:
            raise GraphFormatError(f"{where}: expected sub-graph @{ref.name}, found graph "
                                   f"{g.name}")
        return g, i


def _restore_implied(op: str, params: dict, declared) -> None:
    """Adds back the params the printer leaves out because the result type states them."""
    if isinstance(declared, TensorType):
        if op in B.IMPLIED_DTYPE and "dtype" not in params:
            params["dtype"] = declared.dtype
        if op == "convert" and "weak" not in params:
            params["weak"] = declared.weak
        elif op == "constant" and declared.weak and "weak" not in params:
            params["weak"] = True


def _resolve(v, op: str, declared, where: str):
    """Turns parsed placeholders into params: list literals into `Literal`s (a constant's take
    its result type's dtype and shape), stray ``@name``s and digests into errors."""
    if isinstance(v, tuple):
        return tuple(_resolve(x, op, declared, where) for x in v)
    if isinstance(v, _Ref):
        raise B.fail(where, f"@{v.name} is not printed as a sub-graph (only a param that is a "
                     "sub-graph or a tuple of them is)")
    if isinstance(v, _Digest):
        raise B.fail(where, f"array literal {v.text} is printed by its digest only, so the "
                     "text form cannot restore it; use Graph.to_json / Graph.from_json for an "
                     "exact round trip")
    if isinstance(v, _List):
        items = v.items
        if op == "constant" and isinstance(declared, TensorType):
            dtype, shape = declared.dtype.np, declared.shape
        else:
            dtype, shape = None, None
        try:
            with np.errstate(all="ignore"):
                arr = np.array(items, dtype=dtype)
        except (ValueError, TypeError, OverflowError) as e:
            raise B.fail(where, f"bad array literal: {e}") from None
        if shape is not None and arr.shape != shape:
            if arr.size == 0 and int(np.prod(shape)) == 0:
                arr = arr.reshape(shape)
            else:
                raise B.fail(where, f"array literal of shape {list(arr.shape)} does not match "
                             f"the result type {declared}")
        if arr.dtype not in {d.np for d in B.DTYPES_BY_NAME.values()}:
            raise B.fail(where, f"array literal has unsupported dtype {arr.dtype}")
        if repr(arr.tolist()) != repr(items):
            raise B.fail(where, f"array literal {B._clip(repr(items))} is not exactly "
                         f"representable as {arr.dtype}")
        return B.make_literal(arr, where)
    return v


def _loc(text: str, where: str):
    file, sep, line = text.rpartition(":")
    if not sep or not file or not line.isdigit() or len(line) > 10:
        raise B.fail(where, f"source location must be 'file:line', got {B._clip(text)!r}")
    return B.make_loc(file, int(line), "", where, absolute=True)


def _text(t) -> str:
    return "(" + ", ".join(str(x) for x in t) + ")" if isinstance(t, tuple) else str(t)


def _rtype_of(n: Node) -> str:
    return _text(n.type if n.type is not None else n.types)


class _Line:
    """A scanner over one line."""

    def __init__(self, line: str, index: int):
        self.s, self.i, self.index = line, 0, index

    def where(self) -> str:
        return f"line {self.index + 1}"

    def error(self, msg: str) -> GraphFormatError:
        return GraphFormatError(f"line {self.index + 1}, column {self.i + 1}: {msg}")

    def ws(self) -> None:
        s, i = self.s, self.i
        while i < len(s) and s[i] in " \t\r":
            i += 1
        self.i = i

    def peek(self) -> str:
        self.ws()
        return self.s[self.i:self.i + 1]

    def peek_word(self) -> str:
        self.ws()
        m = _WORD.match(self.s, self.i)
        return m.group() if m else ""

    def take(self, tok: str) -> bool:
        self.ws()
        if self.s.startswith(tok, self.i):
            self.i += len(tok)
            return True
        return False

    def take_word(self, word: str) -> bool:
        if self.peek_word() == word:
            self.i += len(word)
            return True
        return False

    def expect(self, tok: str) -> None:
        if not self.take(tok):
            raise self.error(f"expected {tok!r}, found {self._found()}")

    def keyword(self, word: str) -> None:
        if not self.take_word(word):
            raise self.error(f"expected {word!r}, found {self._found()}")

    def end(self) -> None:
        self.ws()
        if self.i < len(self.s):
            raise self.error(f"unexpected {self._found()} at the end of the line")

    def rest(self) -> str:
        r, self.i = self.s[self.i:], len(self.s)
        return r

    def _found(self) -> str:
        rest = self.s[self.i:self.i + 20]
        return repr(rest) if rest else "the end of the line"

    def name(self, what: str) -> str:
        self.ws()
        m = _NAME.match(self.s, self.i)
        if not m:
            raise self.error(f"expected a {what}, found {self._found()}")
        if len(m.group()) > B.MAX_STRING_CHARS:
            raise self.error(f"{what} longer than {B.MAX_STRING_CHARS} characters")
        self.i = m.end()
        return m.group()

    def word(self, what: str) -> str:
        self.ws()
        m = _WORD.match(self.s, self.i)
        if not m:
            raise self.error(f"expected {what}, found {self._found()}")
        self.i = m.end()
        return m.group()

    def param_name(self) -> str:
        self.ws()
        m = _PARAM_NAME.match(self.s, self.i)
        if not m:
            raise self.error(f"expected a param name, found {self._found()}")
        self.i = m.end()
        return m.group()

    def values(self, env: dict, opened: bool = False) -> list[Node]:
        """``(%a, %1, ...)``: operands, each defined earlier in this graph."""
        if not opened:
            self.expect("(")
        out: list[Node] = []
        if self.take(")"):
            return out
        while True:
            self.expect("%")
            ref = self.name("value name")
            if ref not in env:
                raise self.error(f"%{ref} is not defined before this use")
            out.append(env[ref])
            if self.take(")"):
                return out
            self.expect(",")

    # -- types -----------------------------------------------------------------------------
    def type(self) -> TensorType:
        weak = self.take("~")
        w = self.word("a dtype")
        dtype = B.DTYPES_BY_SHORT.get(w)
        if dtype is None:
            raise self.error(f"unknown dtype {w!r} (known: {', '.join(B.DTYPES_BY_SHORT)})")
        self.expect("[")
        dims: list[int] = []
        if not self.take("]"):
            while True:
                self.ws()
                m = re.compile(r"\d+").match(self.s, self.i)
                if not m or len(m.group()) > 20:
                    raise self.error(f"expected a dimension, found {self._found()}")
                self.i = m.end()
                dims.append(int(m.group()))
                if len(dims) > B.MAX_RANK:
                    raise self.error(f"rank exceeds the limit of {B.MAX_RANK}")
                if self.take("]"):
                    break
                self.expect(",")
        return B.make_type(dims, dtype, weak, self.where())

    def rtype(self):
        if self.peek() != "(":
            return self.type()
        self.expect("(")
        ts: list[TensorType] = []
        if self.take(")"):
            return ()
        while True:
            ts.append(self.type())
            if len(ts) > B.MAX_TUPLE_LEN:
                raise self.error(f"more than {B.MAX_TUPLE_LEN} result types")
            if self.take(")"):
                return tuple(ts)
            self.expect(",")

    # -- params ----------------------------------------------------------------------------
    def value(self, depth: int):
        if depth > B.MAX_PARAM_DEPTH:
            raise self.error(f"param nested deeper than {B.MAX_PARAM_DEPTH}")
        c = self.peek()
        if c == "(":
            self.i += 1
            items: list = []
            if self.take(")"):
                return ()
            while True:
                items.append(self.value(depth + 1))
                if len(items) > B.MAX_TUPLE_LEN:
                    raise self.error(f"tuple longer than {B.MAX_TUPLE_LEN}")
                if self.take(")"):
                    return tuple(items)
                self.expect(",")
                if self.take(")"):
                    return tuple(items)
        if c == "[":
            return _List(self.list_items(depth))
        if c == "@":
            self.i += 1
            return _Ref(self.name("sub-graph name"))
        if c == "<":
            j = self.s.find(">", self.i)
            if j < 0:
                raise self.error("unterminated '<...>'")
            tok, self.i = self.s[self.i:j + 1], j + 1
            return _Digest(tok)  # `_resolve` explains why it cannot load
        if c and c in "'\"":
            return self.string()
        if c == "-" or c.isdigit():
            return self.number()
        w = self.peek_word()
        if w in ("true", "false"):
            self.i += len(w)
            return w == "true"
        if w in ("inf", "nan"):
            return self.number()
        if w in B.DTYPES_BY_SHORT:
            self.i += len(w)
            return B.DTYPES_BY_SHORT[w]
        raise self.error(f"expected a param value, found {self._found()}")

    def list_items(self, depth: int) -> list:
        if depth > B.MAX_PARAM_DEPTH:
            raise self.error(f"array literal nested deeper than {B.MAX_PARAM_DEPTH}")
        self.expect("[")
        items: list = []
        if self.take("]"):
            return items
        while True:
            c = self.peek()
            if c == "[":
                items.append(self.list_items(depth + 1))
            elif self.peek_word() in ("True", "False"):
                w = self.peek_word()
                self.i += len(w)
                items.append(w == "True")
            else:
                items.append(self.number())
            if len(items) > B.MAX_TUPLE_LEN:
                raise self.error(f"array literal longer than {B.MAX_TUPLE_LEN}")
            if self.take("]"):
                return items
            self.expect(",")

    def number(self):
        self.ws()
        m = _NUMBER.match(self.s, self.i)
        if not m or len(m.group()) > 40:
            raise self.error(f"expected a number, found {self._found()}")
        tok = m.group()
        self.i = m.end()
        if any(c in tok for c in ".eEn"):  # '.', exponent, inf, nan: a float
            return float(tok)
        return B.check_int(int(tok), self.where())

    def string(self) -> str:
        q = self.s[self.i]
        i, out, s = self.i + 1, [], self.s
        while True:
            if i >= len(s):
                raise self.error("unterminated string")
            c = s[i]
            if c == q:
                break
            if c == "\\":
                e = s[i + 1:i + 2]
                if e in _ESCAPES:
                    out.append(_ESCAPES[e])
                    i += 2
                    continue
                n = {"x": 2, "u": 4, "U": 8}.get(e)
                digits = s[i + 2:i + 2 + n] if n else ""
                if not n or len(digits) != n or any(d not in "0123456789abcdefABCDEF"
                                                    for d in digits):
                    raise self.error(f"bad escape in string: {s[i:i + 4]!r}")
                code = int(digits, 16)
                if code > 0x10FFFF:
                    raise self.error(f"bad escape in string: {s[i:i + 2 + n]!r}")
                out.append(chr(code))
                i += 2 + n
                continue
            out.append(c)
            i += 1
            if len(out) > B.MAX_STRING_CHARS:
                raise self.error(f"string longer than {B.MAX_STRING_CHARS} characters")
        self.i = i + 1
        return "".join(out)
