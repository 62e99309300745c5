"""`tj.vmap`: vectorizing a function over a batch axis, as a graph transform.

Input: a function of pytrees of Tensors, with `in_dims`/`out_dims` saying where each argument
and result carries the batch axis. Output: a function that runs it on the whole batch at once.
At each call the function is traced once on per-example (unbatched) shapes into a `Graph`
(inside an enclosing trace as a sub-graph, so the tensors and tracers it closes over become
unbatched inputs), then the graph is replayed through the batching rules of `batching.py`:
batched values carry the batch axis in front, unbatched ones stay as they are. Called outside
any trace, the whole transform runs inside a `tj.compile`d function, so repeated calls with
the same shapes reuse one compiled graph and never retrace.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any, Callable

import numpy as np

from . import dtypes as D
from . import tree
from .batching import batch_graph  # (importing batching installs the batching rules)
from .errors import user_error
from .ir.graph import TensorType
from .jit import _numeric_list
from .jit import compile as _compile
from .ops.common import is_scalar, scalar_const
from .tensor import Tensor, as_tensor
from .trace import bind, current_builder, trace_subgraph

__all__ = ["vmap"]


def vmap(fn: Callable, in_dims: Any = 0, out_dims: Any = 0, axis_size: int | None = None, *,
         in_axes: Any = None, out_axes: Any = None) -> Callable:
    """Vectorizes `fn` over a batch axis of its arguments (JAX's ``vmap``, PyTorch's
    ``torch.vmap``): ``vmap(f)(xs)[i] == f(xs[i])``, computed as one batched graph.

    Args:
        fn: a function of pytrees of Tensors (numpy arrays and Python scalars are accepted).
        in_dims: where each positional argument carries the batch axis: an int (negative
            counts from the end), None (not batched: shared by every example), or a tuple with
            one entry per positional argument, each a pytree prefix of that argument (``(0,
            None)``, ``({"w": None, "b": 0},)``). Keyword arguments are batched along axis 0.
        out_dims: where each result gets the batch axis: an int, None (the result must not
            depend on a batched input), or a pytree prefix of the results.
        axis_size: the batch size; needed only when no argument is batched.
        in_axes, out_axes: JAX's spellings of `in_dims` and `out_dims`.

    Returns:
        The batched function. It composes with `tj.compile` in both orders, with itself
        (nested vmap), with `tj.grad`, and works on `cond`/`while_loop`/`fori_loop`/`scan`
        (a batched predicate runs both branches and selects per example; a batched loop
        condition runs until every example is done, updating only the examples still going).

    Raises:
        ValueError: an in_dim or out_dim out of range, batch sizes that disagree, in_dims or
            out_dims that do not match the arguments' or results' structure, or a batched
            result whose out_dim is None. Each names the argument, its shape and your line.

    >>> import tracejit as tj
    >>> x = tj.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    >>> w = tj.tensor([10.0, -1.0])
    >>> tj.vmap(lambda row, w: (row * w).sum(), in_dims=(0, None))(x, w).tolist()
    [8.0, 26.0, 44.0]
    >>> tj.vmap(tj.outer)(x, x).shape
    (3, 2, 2)
    >>> tj.vmap(lambda col: col.sum(), in_dims=1)(x).tolist()
    [9.0, 12.0]
    >>> tj.vmap(tj.vmap(lambda a, b: a * b, in_dims=(None, 0)), in_dims=(0, None))(
    ...     tj.tensor([1.0, 2.0]), tj.tensor([3.0, 4.0, 5.0])).tolist()
    [[3.0, 4.0, 5.0], [6.0, 8.0, 10.0]]
    """
    if in_axes is not None:
        if in_dims != 0:
            raise TypeError("vmap: pass in_dims or in_axes, not both")
        in_dims = in_axes
    if out_axes is not None:
        if out_dims != 0:
            raise TypeError("vmap: pass out_dims or out_axes, not both")
        out_dims = out_axes
    if not callable(fn):
        raise TypeError(f"vmap: expected a function, got {type(fn).__name__}")
    if axis_size is not None and (not isinstance(axis_size, (int, np.integer))
                                  or isinstance(axis_size, bool) or axis_size < 0):
        raise TypeError(f"vmap: axis_size must be a non-negative int, got {axis_size!r}")
    return Vmapped(fn, in_dims, out_dims, None if axis_size is None else int(axis_size))


class Vmapped:
    """The function `vmap` returns: batched `fn`, compiled and cached when called eagerly."""

    def __init__(self, fn: Callable, in_dims, out_dims, axis_size: int | None):
        functools.update_wrapper(self, fn, updated=())
        self.fn, self.in_dims, self.out_dims, self.axis_size = fn, in_dims, out_dims, axis_size
        self._compiled = None
        self._fname = getattr(fn, "__qualname__", getattr(fn, "__name__", type(fn).__name__))
        try:
            params = inspect.signature(fn).parameters.values()
            self._pos_names = tuple(p.name for p in params
                                    if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD))
        except (TypeError, ValueError):
            self._pos_names = ()

    def __repr__(self):
        return f"<vmap of {self._fname} in_dims={self.in_dims!r} out_dims={self.out_dims!r}>"

    def __call__(self, *args, **kwargs):
        if current_builder() is not None:  # inside a trace: batch into it
            return self._batched(args, kwargs)
        leaves = tree.flatten((args, kwargs), is_leaf=_numeric_list)[0]
        for i, x in enumerate(leaves):
            if not isinstance(x, (Tensor, np.ndarray, np.generic, list)) and not is_scalar(x):
                _operand(x, self._leaf_names(args, kwargs)[i], self._fname)  # raises
        if self._compiled is None:
            @functools.wraps(self.fn)
            def batched(*a, **kw):
                return self._batched(a, kw)
            batched.__name__ = "vmap_" + getattr(self.fn, "__name__", "f").strip("<>")
            self._compiled = _compile(batched)
        return self._compiled(*args, **kwargs)

    def cache_info(self):
        """The eager path's compile cache (see `CompiledFunction.cache_info`)."""
        return None if self._compiled is None else self._compiled.cache_info()

    # -- the transform ---------------------------------------------------------------------------
    def _batched(self, args: tuple, kwargs: dict):
        leaves, treedef = tree.flatten((args, kwargs), is_leaf=_numeric_list)
        names = self._leaf_names(args, kwargs)
        dims = self._in_leaf_dims(args, kwargs)
        xs = [_operand(x, n, self._fname) for x, n in zip(leaves, names)]
        dims = [_norm_in_dim(x, d, n, self._fname) for x, d, n in zip(xs, dims, names)]
        size = self._batch_size(xs, dims, names)
        moved = [x if d in (None, 0) else _moveaxis(x, d, 0) for x, d in zip(xs, dims)]
        types = [TensorType(x.shape[1:] if d is not None else x.shape, x.dtype, x._weak)
                 for x, d in zip(moved, dims)]

        def per_example(*ts):
            a, kw = tree.unflatten(treedef, ts)
            return self.fn(*a, **kw)

        graph, out_tree, captured = trace_subgraph(
            per_example, types, names, _graph_name(self.fn))
        b = current_builder()  # captures: outer Tensors (or, from older tracers, Nodes)
        caps = [c if isinstance(c, Tensor) else Tensor._tracer(c, b) for c in captured]
        outs, odims = batch_graph(graph, moved + caps,
                                  [None if d is None else 0 for d in dims] + [None] * len(caps))
        want = _prefix_dims(self.out_dims, out_tree, "out_dims", "the function's results",
                            self._fname)

        def path(i: int) -> str:  # for messages only
            try:
                return "output" + tree.leaf_paths(tree.unflatten(out_tree, range(len(outs))))[i]
            except Exception:  # noqa: BLE001  (a registered class that rejects int leaves)
                return f"output {i}"
        results = [_place_output(o, d, w, functools.partial(path, i), size, self._fname)
                   for i, (o, d, w) in enumerate(zip(outs, odims, want))]
        return tree.unflatten(out_tree, results)

    def _leaf_names(self, args, kwargs) -> list[str]:
        out = []
        for p in tree.leaf_paths((args, kwargs), is_leaf=_numeric_list):
            head, _, rest = p[1:].partition("]")
            rest = rest[1:] if rest.startswith("[") else rest
            idx, _, tail = rest.partition("]")
            if head == "0":
                i = int(idx)
                out.append((self._pos_names[i] if i < len(self._pos_names) else f"arg{i}")
                           + tail)
            else:
                out.append(idx.strip("'\"") + tail)
        return out

    def _in_leaf_dims(self, args, kwargs) -> list:
        in_dims = tuple(self.in_dims) if isinstance(self.in_dims, list) else self.in_dims
        if _is_dim(in_dims):
            per_arg = [in_dims] * len(args)
        elif type(in_dims) is tuple:
            if len(in_dims) != len(args):
                raise user_error(ValueError, f"vmap of {self._fname}: in_dims {in_dims!r} has "
                                 f"{len(in_dims)} entries but the function was called with "
                                 f"{len(args)} positional arguments (in_dims needs one entry "
                                 f"per positional argument)")
            per_arg = list(in_dims)
        else:
            raise user_error(TypeError, f"vmap of {self._fname}: in_dims must be an int, None, "
                             f"or a tuple with one entry per positional argument, got "
                             f"{in_dims!r}")
        out = []
        for i, (a, d) in enumerate(zip(args, per_arg)):
            name = self._pos_names[i] if i < len(self._pos_names) else f"arg{i}"
            td = tree.flatten(a, is_leaf=_numeric_list)[1]
            out += _prefix_dims(d, td, f"in_dims entry for argument {name}",
                                f"argument {name}", self._fname)
        return out + [0] * tree.flatten(kwargs, is_leaf=_numeric_list)[1].num_leaves

    def _batch_size(self, xs, dims, names) -> int:
        sizes = [(n, x, d) for x, d, n in zip(xs, dims, names) if d is not None]
        found = {x.shape[d] for _, x, d in sizes}
        if self.axis_size is not None:
            found.add(self.axis_size)
        if len(found) > 1:
            parts = [f"argument {n} has size {x.shape[d]} (dim {d} of shape {list(x.shape)})"
                     for n, x, d in sizes]
            if self.axis_size is not None:
                parts.append(f"axis_size={self.axis_size}")
            raise user_error(ValueError, f"vmap of {self._fname}: the batched arguments "
                             "disagree on the batch size: " + "; ".join(parts))
        if not found:
            raise user_error(ValueError, f"vmap of {self._fname}: no argument is batched (every "
                             "in_dim is None, or there are no arguments): pass axis_size= to "
                             "say how many examples there are")
        return found.pop()


# -- helpers ----------------------------------------------------------------------------------

def _is_dim(v) -> bool:
    return v is None or (isinstance(v, (int, np.integer)) and not isinstance(v, bool))


def _graph_name(fn) -> str:
    name = getattr(fn, "__name__", None) or type(fn).__name__
    name = "".join(c if c.isalnum() or c == "_" else "_" for c in name).strip("_") or "f"
    return "vmap_" + name


def _prefix_dims(prefix, td: tree.TreeDef, what: str, of: str, fname: str) -> list:
    """One dim per leaf of `td`, from `prefix`: a dim (int/None) covers a whole subtree."""
    leaves, ptd = tree.flatten(prefix, is_leaf=_is_dim)
    it = iter(leaves)
    out: list = []

    def walk(p: tree.TreeDef, t: tree.TreeDef):
        if p.kind == "leaf":
            d = next(it)
            if not _is_dim(d):
                raise user_error(TypeError, f"vmap of {fname}: {what} must be ints or None, got "
                                 f"{d!r}")
            out.extend([None if d is None else int(d)] * t.num_leaves)
            return
        if p.kind != t.kind or p.aux != t.aux or len(p.children) != len(t.children):
            raise user_error(ValueError, f"vmap of {fname}: {what} {prefix!r} does not match "
                             f"the structure of {of}, {t!r}: it must be an int, None, or a "
                             "pytree prefix of it")
        for pc, tc in zip(p.children, t.children):
            walk(pc, tc)
    walk(ptd, td)
    return out


def _operand(x, name: str, fname: str) -> Tensor:
    if isinstance(x, Tensor):
        return x
    if is_scalar(x):  # a Python number stays weakly typed, as a constant in the graph
        dt = {0: D.bool_, 1: D.int64, 2: D.float64}[D.scalar_dtype(x).category]
        return scalar_const(x, dt, weak=True)
    try:
        return as_tensor(x)
    except (TypeError, ValueError) as e:
        raise user_error(TypeError, f"vmap of {fname}: argument {name} ({type(x).__name__}) is "
                         f"not an array: {str(e).splitlines()[0]}") from None


def _norm_in_dim(x: Tensor, d, name: str, fname: str):
    if d is None:
        return None
    nd = x.ndim
    if not -nd <= d < nd:
        why = ("a 0-d tensor has no axis to map over" if nd == 0 else
               f"expected a dim in [{-nd}, {nd - 1}]")
        raise user_error(ValueError, f"vmap of {fname}: in_dims {d} is out of range for "
                         f"argument {name} of shape {list(x.shape)} ({why})")
    return d % nd


def _moveaxis(x: Tensor, src: int, dst: int) -> Tensor:
    perm = [i for i in range(x.ndim) if i != src]
    perm.insert(dst, src)
    return bind("transpose", x, perm=tuple(perm))


def _place_output(o: Tensor, d, want, path: Callable[[], str], size: int, fname: str):
    """A batched result (batch dim `d`: 0 or None) with its batch axis where out_dims says."""
    if want is None:
        if d is not None:
            raise user_error(ValueError, f"vmap of {fname}: {path()} (per-example shape "
                             f"{list(o.shape[1:])}) depends on a batched argument, but its "
                             "out_dims entry is None; give it an int to stack the examples")
        return o
    if d is None:
        o = bind("broadcast", o, shape=(size,) + tuple(o.shape))
    nd = o.ndim
    if not -nd <= want < nd:
        raise user_error(ValueError, f"vmap of {fname}: out_dims {want} is out of range for "
                         f"{path()} of batched shape {list(o.shape)} (expected a dim in "
                         f"[{-nd}, {nd - 1}])")
    return _moveaxis(o, 0, want % nd) if want % nd else o
