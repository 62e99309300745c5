"""Running a transform from eager code: compiled and cached, or traced with concrete values.

Input: an implementation that must run inside a trace (it traces the user's function as a
sub-graph and transforms it), and call arguments. Output: its results as Tensors.

* Inside a trace (under `compile`, `make_graph`, another transform): the implementation simply
  runs, adding nodes to the enclosing graph.
* In eager code: the implementation is wrapped in `tj.compile`, so each signature is traced,
  transformed and compiled once and cached ("keyed like compile").
* If the user's function branches in Python on a traced value (``while y.norm() < 1000``), that
  first trace raises `ConcretizationError`; the function is then remembered as value-dependent and
  every call traces it with *concrete* values (tracers that also carry their data), so Python
  takes the real path and the derivative graph is specialised to it. Results are the values
  computed along the way.
"""

from __future__ import annotations

import functools
from typing import Callable

from .. import tree
from ..errors import ConcretizationError
from ..tensor import Tensor
from ..trace import Builder, current_builder

__all__ = ["Staged", "in_trace"]


def in_trace(*trees) -> bool:
    if current_builder() is not None:
        return True
    return any(isinstance(x, Tensor) and x._is_tracer for t in trees for x in tree.flatten(t)[0])


class Staged:
    """Calls `impl(*args, **kwargs)` in a trace: the caller's, a cached compile, or a concrete one.
    """

    def __init__(self, impl: Callable, name: str):
        self.impl = impl
        self.name = name
        self.value_dependent = False
        self._compiled = None

    def __call__(self, *args, **kwargs):
        if in_trace(args, kwargs):
            return self.impl(*args, **kwargs)
        if not self.value_dependent:
            if self._compiled is None:
                from ..jit import compile
                self._compiled = compile(self.impl)  # the default device
                self._compiled._graph_name = self.name
            try:
                return self._compiled(*args, **kwargs)
            except ConcretizationError:
                self.value_dependent = True
        return run_concrete(self.impl, args, kwargs, self.name)

    def cache_info(self):
        return None if self._compiled is None else self._compiled.cache_info()


def run_concrete(impl: Callable, args: tuple, kwargs: dict, name: str):
    """Traces ``impl(*args, **kwargs)`` with tracers that carry values; returns the values."""
    from ..jit import _flatten_args, _leaf_names
    treedef, vals, types, _ = _flatten_args(args, kwargs, name)
    names = _leaf_names(args, kwargs)
    b = Builder(name, concrete=True)
    with b:
        tracers = [Tensor._tracer(b.add_input(t, n), b, v) for t, n, v in zip(types, names, vals)]
        a, kw = tree.unflatten(treedef, tracers)
        out = impl(*a, **kw)
    leaves, out_tree = tree.flatten(out)
    result = []
    for leaf in leaves:
        if isinstance(leaf, Tensor) and leaf._is_tracer:
            assert leaf._value is not None, "a concrete trace produced a value-less tracer"
            result.append(Tensor._wrap(leaf._value.copy(), weak=leaf._weak))
        else:
            result.append(leaf)
    return tree.unflatten(out_tree, result)


def staged(name: str):
    """Decorator form of `Staged`."""
    def wrap(impl):
        return functools.wraps(impl)(Staged(impl, name))
    return wrap
