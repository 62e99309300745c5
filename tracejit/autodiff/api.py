"""`tj.grad` and `tj.value_and_grad`: function transforms built on the reverse-mode graph
transform.

Input: a Python function and the positions of the arguments to differentiate. Output: a function
returning gradients (and the value). The function is traced into a sub-graph of whatever is
being traced (or, in eager code, of a cached compiled trace), the graph is transformed by
`vjp_graph`, and the backward nodes join the same graph — so `tj.make_graph(tj.grad(f))(x)` shows
them, and `grad(grad(f))` differentiates an ordinary graph again.
"""

from __future__ import annotations

import functools
from typing import Callable

import numpy as np

from .. import tree
from ..errors import user_error
from ..ir.graph import TensorType
from ..ops.creation import zeros_like
from ..tensor import Tensor, as_tensor
from ..trace import trace_subgraph
from .staging import Staged
from .vjp import vjp_graph

__all__ = ["grad", "value_and_grad", "trace_flat"]


def _is_array(x) -> bool:
    return isinstance(x, (Tensor, np.ndarray, np.generic, float, int, bool))


def trace_flat(fun: Callable, args: tuple, kwargs: dict, name: str):
    """Traces ``fun(*args, **kwargs)`` as a sub-graph over the array leaves of `args`.

    Returns ``(graph, out_tree, arg_leaves, slots, captured)``: `arg_leaves` are the argument
    Tensors feeding the graph's first inputs, `slots[i]` maps flat leaf i of `args` to its graph
    input (None for a non-array leaf, which is closed over), `captured` the outer Tensors the
    graph's remaining inputs stand for.
    """
    leaves, treedef = tree.flatten(args)
    slots, tensors = [], []
    for x in leaves:
        if _is_array(x):
            slots.append(len(tensors))
            tensors.append(x if isinstance(x, Tensor) else as_tensor(x))
        else:
            slots.append(None)
    types = [t._type() for t in tensors]

    def flat_fun(*ts):
        rebuilt = [x if s is None else ts[s] for x, s in zip(leaves, slots)]
        return fun(*tree.unflatten(treedef, rebuilt), **kwargs)

    values = [t._value for t in tensors]
    graph, out_tree, captured = trace_subgraph(
        flat_fun, types, [f"a{i}" for i in range(len(types))], name,
        values=values if all(v is not None for v in values) else None)
    return graph, out_tree, tensors, slots, captured


def _argnum_leaves(args, argnums, fname):
    """Flat leaf positions (within ``tree.flatten(args)``) of the differentiated arguments."""
    nums = (argnums,) if isinstance(argnums, int) else (
        tuple(argnums) if isinstance(argnums, (tuple, list)) else None)
    if nums is None or not all(isinstance(a, int) and not isinstance(a, bool) for a in nums):
        raise user_error(TypeError, f"{fname}: argnums must be an int or a tuple of ints, "
                         f"got {argnums!r}")
    for a in nums:
        if not -len(args) <= a < len(args):
            raise user_error(ValueError, f"{fname}: argnums {a} is out of range for "
                             f"{len(args)} positional arguments")
    nums = tuple(a % len(args) for a in nums)
    offsets = [0]
    for a in args:
        offsets.append(offsets[-1] + len(tree.flatten(a)[0]))
    return nums, {a: range(offsets[a], offsets[a + 1]) for a in nums}


def _value_and_grad_impl(fun, argnums, has_aux, fname, args, kwargs):
    nums, ranges = _argnum_leaves(args, argnums, fname)
    graph, out_tree, tensors, slots, captured = trace_flat(fun, args, kwargs, fname)
    out_types = [n.type for n in graph.outputs]
    if has_aux:
        if out_tree.kind is not tuple or len(out_tree.children) != 2:
            raise user_error(TypeError, f"{fname}: with has_aux=True the function must return "
                             f"a pair (output, aux), got structure {out_tree!r}")
        n_main = out_tree.children[0].num_leaves
    else:
        n_main = len(out_types)
    if n_main != 1 or out_types[0].shape != () or not out_types[0].dtype.is_floating_point:
        got = ", ".join(str(t) for t in out_types[:n_main])
        raise user_error(TypeError, f"{fname}: grad needs a function returning one float scalar "
                         f"(use tj.vjp or tj.jacobian for other outputs); it returned {got}")
    flat_leaves = tree.flatten(args)[0]
    wrt = [False] * len(tensors)
    for a in nums:
        for i in ranges[a]:
            s = slots[i]
            if s is None or not tensors[s].dtype.is_floating_point:
                t = tensors[s]._type() if s is not None else type(flat_leaves[i]).__name__
                raise user_error(TypeError, f"{fname}: argument {a} must be floating point to be "
                                 f"differentiated, got {t}")
            wrt[s] = True
    seed = [ones_like_type(out_types[0])] + [None] * (len(out_types) - 1)
    outs, cts = vjp_graph(graph, tensors + list(captured), seed, wrt + [False] * len(captured))
    grads = []
    for a in nums:
        g_leaves = []
        for i in ranges[a]:
            s = slots[i]
            g = cts[s]
            g_leaves.append(zeros_like(tensors[s]) if g is None else g)
        grads.append(tree.unflatten(tree.flatten(args[a])[1], g_leaves))
    grads = grads[0] if isinstance(argnums, int) else tuple(grads)
    value = tree.unflatten(out_tree, outs)
    return value, grads


def ones_like_type(t: TensorType) -> Tensor:
    from ..ops.creation import full
    return full(t.shape, fill_value=1.0, dtype=t.dtype)


def value_and_grad(fun: Callable, argnums=0, has_aux: bool = False) -> Callable:
    """A function returning ``(fun(*args), gradient)``; with ``has_aux``, ``((out, aux), grad)``.

    Args:
        fun: returns a float scalar (and auxiliary data with `has_aux`).
        argnums: which positional argument(s) to differentiate: an int gives one gradient
            (shaped like that argument's pytree), a tuple gives a tuple of them.

    >>> import tracejit as tj
    >>> v, g = tj.value_and_grad(lambda x: (x * x).sum())(tj.tensor([1.0, 2.0]))
    >>> float(v), g.tolist()
    (5.0, [2.0, 4.0])
    """
    fname = f"value_and_grad({getattr(fun, '__name__', 'f')})"
    staged = Staged(lambda *a, **k: _value_and_grad_impl(fun, argnums, has_aux, fname, a, k),
                    "value_and_grad")

    @functools.wraps(fun)
    def wrapper(*args, **kwargs):
        return staged(*args, **kwargs)
    wrapper.cache_info = staged.cache_info
    return wrapper


def grad(fun: Callable, argnums=0, has_aux: bool = False) -> Callable:
    """The gradient of a scalar function, as a function (JAX's ``grad``).

    >>> import tracejit as tj
    >>> df = tj.grad(lambda x: tj.sin(x).sum())
    >>> round(float(df(tj.tensor([0.0]))[0]), 6)
    1.0
    >>> ddf = tj.grad(lambda x: tj.grad(lambda y: tj.sin(y).sum())(x).sum())
    >>> round(float(ddf(tj.tensor([0.5]))[0]), 6) == round(-float(tj.sin(tj.tensor(0.5))), 6)
    True
    """
    vg = value_and_grad(fun, argnums, has_aux)

    @functools.wraps(fun)
    def wrapper(*args, **kwargs):
        value, g = vg(*args, **kwargs)
        return (g, value[1]) if has_aux else g
    wrapper.cache_info = vg.cache_info
    return wrapper

