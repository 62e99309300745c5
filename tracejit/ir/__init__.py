"""The IR: `Graph`, `Node`, its text printer and its verifier."""

from .graph import Graph, Literal, Node, TensorType

__all__ = ["Graph", "Literal", "Node", "TensorType"]
