"""Graph export and import: the text form and JSON, loaded back exactly.

Input: a `Graph` (to save) or a document (to load). Output: text or JSON, or a `Graph` whose
every node was re-checked against its primitive's type rule. Loading never evaluates, imports
or unpickles anything; bad input raises `tj.GraphFormatError`. Formats and limits: docs/ir.md.
"""

from __future__ import annotations

import os

from ..ir.graph import Graph
from .jsonio import graph_from_json, graph_to_json
from .text import graph_from_text

__all__ = ["graph_from_json", "graph_from_text", "graph_to_json", "save_graph"]

# Formats other exporters will add (DOT/SVG/ONNX): `save` names them until they land.
_PENDING: dict[str, str] = {}


def save_graph(graph: Graph, path: str | os.PathLike) -> None:
    """Writes `graph` to `path` in the format its extension names (``.txt``, ``.json``,
    ``.dot``, ``.svg``, ``.onnx``)."""
    ext = os.path.splitext(os.fspath(path))[1].lower()
    if ext == ".txt":
        data = str(graph) + "\n"
    elif ext == ".json":
        data = graph_to_json(graph)
    elif ext in (".dot", ".svg"):  # Graphviz: export/dot.py
        from .dot import save_dot
        return save_dot(graph, path, ext)
    elif ext == ".onnx":  # export/onnx.py (needs the onnx extra)
        from .onnx import graph_to_onnx
        data = graph_to_onnx(graph).SerializeToString()
        with open(path, "wb") as f:
            f.write(data)
        return
    elif ext in _PENDING:
        raise NotImplementedError(f"Graph.save({os.fspath(path)!r}): the {_PENDING[ext]} format "
                                  f"({ext}) is not implemented yet; use .txt or .json")
    else:
        raise ValueError(f"Graph.save({os.fspath(path)!r}): unknown extension {ext!r}; use .txt "
                         f"or .json, .dot, .svg or .onnx")
    with open(path, "w", encoding="utf-8") as f:
        f.write(data)
