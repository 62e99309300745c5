"""Pytrees: nested containers of arrays.

Input: any Python value. Output: a flat list of leaves and a hashable `TreeDef` that rebuilds
the structure. Containers are tuple, list, dict (keys sorted), OrderedDict (keys in order),
namedtuple, None (no leaves) and classes registered with `register`; everything else is a leaf.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Callable

__all__ = ["TreeDef", "flatten", "unflatten", "register", "tree_map", "leaf_paths"]

_REGISTRY: dict[type, tuple[Callable, Callable]] = {}


def register(cls: type, flatten_fn: Callable, unflatten_fn: Callable) -> type:
    """Registers `cls` as a pytree container.

    Args:
        cls: the class.
        flatten_fn: ``obj -> (children, aux)``; `aux` must be hashable.
        unflatten_fn: ``(aux, children) -> obj``.

    >>> class Pair:
    ...     def __init__(self, a, b): self.a, self.b = a, b
    >>> _ = register(Pair, lambda p: ((p.a, p.b), None), lambda aux, ch: Pair(*ch))
    >>> flatten(Pair(1, (2, 3)))[0]
    [1, 2, 3]
    """
    _REGISTRY[cls] = (flatten_fn, unflatten_fn)
    return cls


def _is_namedtuple(x) -> bool:
    return isinstance(x, tuple) and hasattr(type(x), "_fields")


class TreeDef:
    """The structure of a pytree, without its leaves. Hashable and comparable."""

    __slots__ = ("kind", "aux", "children", "num_leaves", "_hash")

    def __init__(self, kind, aux, children: tuple[TreeDef, ...]):
        self.kind = kind  # "leaf", "none", tuple, list, dict, or a class
        self.aux = aux
        self.children = children
        self.num_leaves = 1 if kind == "leaf" else sum(c.num_leaves for c in children)
        self._hash = hash((kind, aux, children))

    def __hash__(self):
        return self._hash

    def __eq__(self, other):
        return (isinstance(other, TreeDef) and self._hash == other._hash
                and self.kind == other.kind and self.aux == other.aux
                and self.children == other.children)

    def __repr__(self):
        if self.kind == "leaf":
            return "*"
        if self.kind == "none":
            return "None"
        inner = ", ".join(map(repr, self.children))
        if self.kind is tuple:
            return f"({inner}{',' if len(self.children) == 1 else ''})"
        if self.kind is list:
            return f"[{inner}]"
        if self.kind is dict or self.kind is OrderedDict:
            items = "{" + ", ".join(f"{k!r}: {c!r}" for k, c in zip(self.aux, self.children)) + "}"
            return items if self.kind is dict else f"OrderedDict({items})"
        return f"{getattr(self.kind, '__name__', self.kind)}({inner})"


LEAF = TreeDef("leaf", None, ())


def flatten(tree, is_leaf: Callable[[Any], bool] | None = None) -> tuple[list, TreeDef]:
    """Returns ``(leaves, treedef)``."""
    leaves: list = []
    return leaves, _flatten(tree, leaves, is_leaf)


def _flatten(x, leaves: list, is_leaf) -> TreeDef:
    if is_leaf is not None and is_leaf(x):
        leaves.append(x)
        return LEAF
    if x is None:
        return TreeDef("none", None, ())
    t = type(x)
    if t in _REGISTRY:
        children, aux = _REGISTRY[t][0](x)
        return TreeDef(t, aux, tuple(_flatten(c, leaves, is_leaf) for c in children))
    if _is_namedtuple(x):
        return TreeDef(t, None, tuple(_flatten(c, leaves, is_leaf) for c in x))
    if t is tuple or t is list:
        return TreeDef(t, None, tuple(_flatten(c, leaves, is_leaf) for c in x))
    if t is dict:
        try:
            keys = tuple(sorted(x))
        except TypeError:
            keys = tuple(x)
        return TreeDef(dict, keys, tuple(_flatten(x[k], leaves, is_leaf) for k in keys))
    if t is OrderedDict:
        keys = tuple(x)
        return TreeDef(OrderedDict, keys, tuple(_flatten(x[k], leaves, is_leaf) for k in keys))
    leaves.append(x)
    return LEAF


def unflatten(treedef: TreeDef, leaves) -> Any:
    """Rebuilds the tree described by `treedef` from `leaves`."""
    it = iter(leaves)
    out = _unflatten(treedef, it)
    if next(it, _SENTINEL) is not _SENTINEL:
        raise ValueError(f"unflatten: too many leaves for tree {treedef!r}")
    return out


_SENTINEL = object()


def _unflatten(td: TreeDef, it):
    if td.kind == "leaf":
        v = next(it, _SENTINEL)
        if v is _SENTINEL:
            raise ValueError("unflatten: too few leaves")
        return v
    if td.kind == "none":
        return None
    children = [_unflatten(c, it) for c in td.children]
    if td.kind is tuple:
        return tuple(children)
    if td.kind is list:
        return children
    if td.kind is dict or td.kind is OrderedDict:
        return td.kind(zip(td.aux, children))
    if td.kind in _REGISTRY:
        return _REGISTRY[td.kind][1](td.aux, children)
    return td.kind(*children)  # namedtuple


def tree_map(fn: Callable, tree, *rest, is_leaf=None):
    """Applies `fn` to every leaf (and the matching leaves of `rest`)."""
    leaves, td = flatten(tree, is_leaf)
    others = [flatten(r, is_leaf) for r in rest]
    for _, otd in others:
        if otd != td:
            raise ValueError(f"tree_map: tree structures differ: {td!r} vs {otd!r}")
    return unflatten(td, [fn(*xs) for xs in zip(leaves, *(o[0] for o in others))])


def leaf_paths(tree, prefix: str = "", is_leaf=None) -> list[str]:
    """Human-readable paths of the leaves, in flatten order (``x[0]``, ``params['w']``)."""
    out: list[str] = []
    _paths(tree, prefix, out, is_leaf)
    return out


def _paths(x, p: str, out: list, is_leaf):
    if is_leaf is not None and is_leaf(x):
        out.append(p)
    elif x is None:
        pass
    elif type(x) in _REGISTRY:
        for i, c in enumerate(_REGISTRY[type(x)][0](x)[0]):
            _paths(c, f"{p}[{i}]", out, is_leaf)
    elif _is_namedtuple(x):
        for f, c in zip(x._fields, x):
            _paths(c, f"{p}.{f}", out, is_leaf)
    elif type(x) in (tuple, list):
        for i, c in enumerate(x):
            _paths(c, f"{p}[{i}]", out, is_leaf)
    elif type(x) is dict or type(x) is OrderedDict:
        try:
            keys = sorted(x) if type(x) is dict else list(x)
        except TypeError:
            keys = list(x)
        for k in keys:
            _paths(x[k], f"{p}[{k!r}]", out, is_leaf)
    else:
        out.append(p)
