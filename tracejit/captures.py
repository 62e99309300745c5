"""Where captured tensors live: finding, at trace time, the variable and attribute/item path
through which a compiled function reached each tensor it closed over.

Input: the traced function and its captured Tensors. Output: one `Place` per capture (or None),
which `jit.CompiledFunction` reads at every call to notice a rebinding (``w = w - lr * g``,
``model.w = ...``, ``params["w"] = ...``) instead of silently reading the old object.
"""

from __future__ import annotations

import functools
import inspect
import types
from typing import Any, Callable

import numpy as np

from .tensor import Tensor

__all__ = ["Place", "GONE", "find_places"]


def _is_compiled(f) -> bool:
    from .jit import CompiledFunction
    return isinstance(f, CompiledFunction)


class Place:
    """Where a captured tensor was found: a global or closure variable, then attribute and item
    steps (``params['w']``, ``model.layer.w``). `read` fetches what the place holds now."""

    __slots__ = ("desc", "root", "steps")

    def __init__(self, desc: str, root: Callable[[], Any], steps: tuple = ()):
        self.desc, self.root, self.steps = desc, root, steps

    def child(self, kind: str, key) -> Place:
        desc = self.desc + (f".{key}" if kind == "attr" else f"[{key!r}]")
        return Place(desc, self.root, self.steps + ((kind, key),))

    def read(self):
        """The object at this place now, or `GONE` when the path no longer resolves."""
        try:
            obj = self.root()
            for kind, key in self.steps:
                obj = getattr(obj, key) if kind == "attr" else obj[key]
            return obj
        except Exception:  # noqa: BLE001  (a deleted name, a missing key: the place is gone)
            return GONE


GONE = object()
_SEARCH_DEPTH = 6  # attribute/item steps below a variable
_SEARCH_LIMIT = 20000  # objects visited per search; a bound, never reached by normal code
_CONTAINER_LIMIT = 256  # lists, tuples and dicts up to this size are searched whole


def _code_names(code) -> tuple[set, set]:
    """Names (globals and attributes) and constant keys that a code object and its nested
    functions mention."""
    names, consts = set(), set()
    stack = [code]
    while stack:
        c = stack.pop()
        names.update(c.co_names)
        for k in c.co_consts:
            if inspect.iscode(k):
                stack.append(k)
            elif isinstance(k, (str, int)) and not isinstance(k, bool):
                consts.add(k)
    return names, consts


def find_places(fn, captured: list) -> list:
    """A `Place` (or None where none is found) for each captured tensor.

    Searches the global and closure variables that `fn` reads, and those of the user functions
    it refers to (helpers, methods), following only the attributes and items its code names.
    Each call checks that these places still hold the same tensors, so rebinding
    ``W = new_tensor``, ``params['w'] = ...`` or ``model.w = ...`` after compiling retraces
    instead of silently reading the old object.
    """
    want = {id(c) for c in captured}
    if not want:
        return []
    search = _Search(want)
    search.add_function(fn)
    for _ in range(4):  # again while new code widens the names to follow
        size = (len(search.names), len(search.consts), len(search.funcs))
        search.run()
        if size == (len(search.names), len(search.consts), len(search.funcs)):
            break
    return [search.found.get(id(c)) for c in captured]


class _Search:
    """The breadth-first search of `_find_places` (shortest paths first)."""

    def __init__(self, want: set):
        self.want = want
        self.found: dict[int, Place] = {}
        self.names: set = set()  # globals and attributes the code mentions
        self.consts: set = set()  # str/int constants: the dict keys it may use
        self.funcs: set = set()
        self.roots: list[tuple[Place, Any]] = []

    def add_function(self, f) -> None:
        from .errors import _PKG_DIR
        self_obj = None
        while True:  # unwrap compiled functions, bound methods and partials
            if _is_compiled(f):
                f = f.fn
            elif inspect.ismethod(f):
                f, self_obj = f.__func__, f.__self__
            elif isinstance(f, functools.partial):
                f = f.func
            else:
                break
        code = getattr(f, "__code__", None)
        if code is None or id(f) in self.funcs or code.co_filename.startswith(_PKG_DIR):
            return
        self.funcs.add(id(f))
        names, consts = _code_names(code)
        self.names |= names
        self.consts |= consts
        if self_obj is not None and code.co_varnames:
            self.roots.append((Place(code.co_varnames[0], lambda o=self_obj: o), self_obj))
        g = getattr(f, "__globals__", {})
        for n in sorted(names):
            if n in g:
                self.roots.append((Place(n, lambda g=g, n=n: g[n]), g[n]))
        cells = getattr(f, "__closure__", None) or ()
        for n, cell in zip(code.co_freevars, cells, strict=False):
            try:
                v = cell.cell_contents
            except ValueError:  # an empty cell: the variable is not bound yet
                continue
            self.roots.append((Place(n, lambda cell=cell: cell.cell_contents), v))

    def run(self) -> None:
        visited: set = set()
        budget = _SEARCH_LIMIT
        frontier = [(p, o, 0) for p, o in self.roots]
        while frontier and budget > 0 and len(self.found) < len(self.want):
            nxt = []
            for place, obj, depth in frontier:
                budget -= 1
                if id(obj) in self.want:
                    self.found.setdefault(id(obj), place)
                    continue
                if id(obj) in visited or isinstance(obj, _ATOMS):
                    continue
                visited.add(id(obj))
                if isinstance(obj, _FUNCTIONS) or _is_compiled(obj) or inspect.ismethod(obj):
                    before = len(self.roots)
                    self.add_function(obj)
                    nxt += [(p, o, 0) for p, o in self.roots[before:]]
                elif depth < _SEARCH_DEPTH:
                    nxt += [(p, o, depth + 1) for p, o in self._children(place, obj)]
            frontier = nxt

    def _children(self, place: Place, obj) -> list:
        out = []
        if isinstance(obj, dict):
            keys = list(obj) if len(obj) <= _CONTAINER_LIMIT else [
                k for k in self.consts if k in obj]
            out += [(place.child("item", k), obj[k]) for k in keys if isinstance(k, (str, int))]
        elif isinstance(obj, (list, tuple)) and len(obj) <= _CONTAINER_LIMIT:
            out += [(place.child("item", i), v) for i, v in enumerate(obj)]
        for n in sorted(self._attributes(obj)):
            try:
                static = inspect.getattr_static(obj, n, None)
                if isinstance(static, (property, staticmethod, classmethod)):
                    continue  # computed on each access: not a place that holds a tensor
                out.append((place.child("attr", n), getattr(obj, n)))
            except Exception:  # noqa: BLE001  (an attribute that fails to read is no place)
                continue
        return out

    def _attributes(self, obj) -> set:
        """The attribute names the code mentions that `obj` may have."""
        own = getattr(obj, "__dict__", None)
        keys = set(own) if isinstance(own, (dict, types.MappingProxyType)) else set()
        if not (inspect.isclass(obj) or inspect.ismodule(obj)):
            if getattr(type(obj), "__getattr__", None) is not None:
                return self.names  # attributes computed by __getattr__ (nn.Module style)
            for c in type(obj).__mro__[:-1]:  # class attributes read through the instance
                keys |= c.__dict__.keys()
        return self.names & keys


_ATOMS = (Tensor, np.ndarray, np.generic, str, bytes, int, float, complex, type(None))
_FUNCTIONS = (types.FunctionType, functools.partial)


