"""The functional derivative API with the exact shape of ``torch.autograd.functional``:
`vjp`, `jvp`, `jacobian`, `hessian`, `hvp`, `vhp`.

Input: a function of Tensors and its inputs (a Tensor or a tuple of Tensors), plus vectors.
Output: PyTorch's return structures (a Tensor for a single Tensor input/output, tuples
otherwise; Jacobians shaped ``out.shape + in.shape``). Each call traces the function into a
graph, transforms it (`vjp_graph`/`jvp_graph`), and runs the result through `Staged`: compiled
and cached per signature, or — for functions whose Python control flow depends on values —
traced with concrete values and specialised to the path taken. Jacobians and Hessians are one
batched (vmapped) graph over a basis of vectors, never a Python loop of backward passes;
`hvp`/`vhp` never build the Hessian.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Callable

from .. import tree
from ..errors import user_error
from ..ops import shape as S
from ..ops.creation import eye, zeros_like
from ..tensor import Tensor, as_tensor
from ..trace import bind
from .api import trace_flat
from .jvp import jvp_graph
from .staging import Staged
from .vjp import vjp_graph

__all__ = ["vjp", "jvp", "jacobian", "hessian", "hvp", "vhp"]

_STAGED: OrderedDict = OrderedDict()
_STAGED_MAX = 512


def _function_key(func):
    """Identifies a function by its code and what it closes over, so the idiomatic
    ``jacobian(lambda v: f(W, v), x)`` — a new lambda object at every call, over the same
    objects — finds its cached derivative. (The cache holds the first such lambda, which keeps
    the closed-over objects alive: equal ids then mean identical objects.)"""
    code = getattr(func, "__code__", None)
    if code is None:
        return ("obj", id(func))
    cells = tuple(id(c.cell_contents) for c in (func.__closure__ or ()))
    defaults = tuple(id(d) for d in (func.__defaults__ or ()))
    return ("fn", code, cells, defaults, id(func.__globals__))


def _staged(func: Callable, key: tuple, impl: Callable) -> Staged:
    """One cached `Staged` per (function, kind of derivative, options); least recently used
    entries are dropped past `_STAGED_MAX`."""
    k = (_function_key(func), key)
    entry = _STAGED.get(k)
    if entry is None:
        entry = _STAGED[k] = (Staged(impl, key[0]), func)
        if len(_STAGED) > _STAGED_MAX:
            _STAGED.popitem(last=False)
    else:
        _STAGED.move_to_end(k)
    return entry[0]


def _as_tuple(x, what: str, fname: str) -> tuple[bool, tuple]:
    if isinstance(x, (tuple, list)):
        return True, tuple(x)
    return False, (x,)


def _inputs(inputs, fname: str) -> tuple[bool, tuple[Tensor, ...]]:
    is_tuple, xs = _as_tuple(inputs, "inputs", fname)
    out = []
    for i, x in enumerate(xs):
        if not isinstance(x, Tensor):
            try:
                x = as_tensor(x)
            except TypeError:
                raise user_error(TypeError, f"{fname}: inputs[{i}] must be a Tensor, got "
                                 f"{type(x).__name__}") from None
        out.append(x)
    return is_tuple, tuple(out)


def _detach(x, create_graph: bool):
    if create_graph:
        return x
    return tree.tree_map(lambda t: bind("stop_gradient", t) if isinstance(t, Tensor) else t, x)


def _trace(func, xs: tuple, fname: str):
    """Traces func over the inputs; returns (graph, is_out_tuple, primals, wrt)."""
    graph, out_tree, tensors, slots, captured = trace_flat(lambda *a: func(*a), xs, {}, fname)
    if out_tree.kind == "leaf":
        out_tuple = False
    elif out_tree.kind in (tuple, list) and all(c.kind == "leaf" for c in out_tree.children):
        out_tuple = True
    else:
        raise user_error(TypeError, f"{fname}: the function must return a Tensor or a tuple of "
                         f"Tensors, got structure {out_tree!r}")
    wrt = [t.dtype.is_floating_point for t in tensors] + [False] * len(captured)
    return graph, out_tuple, list(tensors) + list(captured), wrt


def _pack(is_tuple: bool, xs):
    xs = tuple(xs)
    return xs if is_tuple else xs[0]


def _strict_check(cts, fname: str, out_index: str = "") -> None:
    for i, c in enumerate(cts):
        if c is None:
            raise user_error(RuntimeError, f"{fname}: the output{out_index} of the user-provided "
                             f"function is independent of input {i}. This is not allowed in "
                             "strict mode.")


def _vectors(v, like: list, what: str, fname: str) -> list:
    """Checks user vectors against the outputs/inputs they pair with (PyTorch's messages)."""
    _, vs = _as_tuple(v, what, fname)
    if len(vs) != len(like):
        raise user_error(RuntimeError, f"{fname}: v has {len(vs)} tensors but there are "
                         f"{len(like)} {what}")
    out = []
    for i, (a, b) in enumerate(zip(vs, like)):
        a = a if isinstance(a, Tensor) else as_tensor(a)
        if tuple(a.shape) != tuple(b.shape):
            raise user_error(RuntimeError, f"{fname}: mismatch in shape: v[{i}] has a shape of "
                             f"{list(a.shape)} and {what}[{i}] has a shape of {list(b.shape)}")
        out.append(a if a.dtype == b.dtype else a.astype(b.dtype))
    return out


def _ones_for(outs, what: str, fname: str) -> list:
    if len(outs) != 1 or outs[0].numel() != 1:
        raise user_error(RuntimeError, f"{fname}: the vector v can only be None if the "
                         f"{what} is a single Tensor with a single element")
    from ..ops.creation import ones
    return [ones(tuple(outs[0].shape), dtype=outs[0].dtype)]


# -- vjp / jvp --------------------------------------------------------------------------------

def vjp(func: Callable, inputs, v=None, create_graph: bool = False, strict: bool = False):
    """``(func(inputs), v^T J)``, like ``torch.autograd.functional.vjp``.

    >>> import tracejit as tj
    >>> out, g = tj.vjp(lambda x: x ** 2, tj.tensor([1.0, 2.0]), tj.tensor([1.0, 1.0]))
    >>> g.tolist()
    [2.0, 4.0]
    """
    is_tuple, xs = _inputs(inputs, "vjp")
    v_given = v is not None
    v_is_tuple, vs = _as_tuple(v, "v", "vjp") if v_given else (False, ())

    def impl(xs, vs):
        graph, out_tuple, primals, wrt = _trace(func, xs, "vjp")
        outs_types = [n for n in graph.outputs]
        cts = _vectors(vs, outs_types, "outputs", "vjp") if v_given else None
        outs, in_cts = vjp_graph(graph, primals, cts if cts is not None else
                                 _ones_for([_T(n) for n in outs_types], "output", "vjp"), wrt)
        in_cts = in_cts[:len(xs)]
        if strict:
            _strict_check(in_cts, "vjp")
        in_cts = [zeros_like(x) if c is None else c for x, c in zip(xs, in_cts)]
        return (_detach(_pack(out_tuple, outs), create_graph),
                _detach(_pack(is_tuple, in_cts), create_graph))

    return _staged(func, ("vjp", create_graph, strict, v_given), impl)(xs, vs)


class _T:
    """The shape of a graph output, for messages and ones_like."""

    def __init__(self, node):
        self.shape, self.dtype = node.shape, node.dtype

    def numel(self):
        n = 1
        for s in self.shape:
            n *= s
        return n


def jvp(func: Callable, inputs, v=None, create_graph: bool = False, strict: bool = False):
    """``(func(inputs), J v)``, like ``torch.autograd.functional.jvp`` (computed in forward
    mode, not with PyTorch's double-backward trick).

    >>> import tracejit as tj
    >>> out, t = tj.jvp(lambda x: x ** 2, tj.tensor([1.0, 2.0]), tj.tensor([1.0, 0.0]))
    >>> t.tolist()
    [2.0, 0.0]
    """
    is_tuple, xs = _inputs(inputs, "jvp")
    v_given = v is not None
    _, vs = _as_tuple(v, "v", "jvp") if v_given else (False, ())

    def impl(xs, vs):
        tans = _vectors(vs, list(xs), "inputs", "jvp") if v_given else _ones_for(
            list(xs), "input", "jvp")
        graph, out_tuple, primals, wrt = _trace(func, xs, "jvp")
        outs, out_t = jvp_graph(graph, primals, tans + [None] * (len(primals) - len(xs)))
        if strict:
            for i, t in enumerate(out_t):
                if t is None:
                    raise user_error(RuntimeError, f"jvp: output {i} of the user-provided "
                                     "function is independent of the inputs. This is not "
                                     "allowed in strict mode.")
        out_t = [zeros_like(o) if t is None else t for o, t in zip(outs, out_t)]
        return (_detach(_pack(out_tuple, outs), create_graph),
                _detach(_pack(out_tuple, out_t), create_graph))

    return _staged(func, ("jvp", create_graph, strict, v_given), impl)(xs, vs)


# -- jacobian ----------------------------------------------------------------------------------

def _basis(sizes: list[int], like: list, dtype) -> list[Tensor]:
    """Rows of the identity of size sum(sizes), split per block and shaped like `like[i]`:
    block i has shape ``(total,) + like[i].shape``."""
    total = sum(sizes)
    e = eye(total, dtype=dtype)
    out, off = [], 0
    for n, x in zip(sizes, like):
        out.append(S.reshape(S.narrow(e, 1, off, n), (total,) + tuple(x.shape)))
        off += n
    return out


def _jacobian_of_graph(graph, primals, wrt, n_in: int, strategy: str, fname: str, strict: bool):
    """J[i][j] = d out_i / d in_j, shaped out_i.shape + in_j.shape, as one vmapped graph."""
    from ..vmap import vmap
    outs_nodes = list(graph.outputs)
    ins = primals[:n_in]
    out_sizes = [_T(o).numel() for o in outs_nodes]
    in_sizes = [x.numel() for x in ins]
    dt = next((x.dtype for x in ins if x.dtype.is_floating_point), None)
    if dt is None:
        raise user_error(TypeError, f"{fname}: no floating-point input to differentiate")
    if strategy == "reverse-mode":
        def row(*cts):
            _, in_cts = vjp_graph(graph, primals, list(cts), wrt)
            if strict:
                _strict_check(in_cts[:n_in], fname)
            return tuple(zeros_like(x) if c is None else c for x, c in zip(ins, in_cts[:n_in]))
        cols = vmap(row)(*_basis(out_sizes, [_T(o) for o in outs_nodes], dt))
        J = []
        for i, o in enumerate(outs_nodes):
            start = sum(out_sizes[:i])
            J.append([S.reshape(S.narrow(cols[j], 0, start, out_sizes[i]),
                                tuple(o.shape) + tuple(ins[j].shape)) for j in range(n_in)])
        return J
    if strategy == "forward-mode":
        def col(*tans):
            _, out_t = jvp_graph(graph, primals, list(tans) + [None] * (len(primals) - n_in))
            if strict and any(t is None for t in out_t):
                raise user_error(RuntimeError, f"{fname}: an output of the user-provided "
                                 "function is independent of the inputs (strict mode)")
            return tuple(zeros_like(_zero_of(o)) if t is None else t
                         for o, t in zip(outs_nodes, out_t))
        rows = vmap(col)(*_basis(in_sizes, ins, dt))  # rows[i]: (N_in, *out_i.shape)
        J = []
        for i, o in enumerate(outs_nodes):
            Ji = []
            for j in range(n_in):
                start = sum(in_sizes[:j])
                block = S.narrow(rows[i], 0, start, in_sizes[j])  # (n_j, *out_i)
                moved = S.moveaxis(block, 0, -1) if o.ndim else block
                Ji.append(S.reshape(moved, tuple(o.shape) + tuple(ins[j].shape)))
            J.append(Ji)
        return J
    raise user_error(ValueError, f"{fname}: strategy must be 'reverse-mode' or 'forward-mode', "
                     f"got {strategy!r}")


def _zero_of(node):
    from ..ops.creation import zeros
    return zeros(node.shape, dtype=node.dtype)


def _structure(J, out_tuple: bool, in_tuple: bool):
    if out_tuple and in_tuple:
        return tuple(tuple(r) for r in J)
    if out_tuple:
        return tuple(r[0] for r in J)
    if in_tuple:
        return tuple(J[0])
    return J[0][0]


def jacobian(func: Callable, inputs, create_graph: bool = False, strict: bool = False,
             vectorize: bool = True, strategy: str = "reverse-mode"):
    """The Jacobian, like ``torch.autograd.functional.jacobian``: ``out.shape + in.shape`` for
    one input and one output; tuples (of tuples) otherwise. Always computed as one batched
    graph (`vectorize` is accepted for compatibility).

    >>> import tracejit as tj
    >>> J = tj.jacobian(lambda x: x ** 2, tj.tensor([1.0, 2.0, 3.0]))
    >>> J.tolist()
    [[2.0, 0.0, 0.0], [0.0, 4.0, 0.0], [0.0, 0.0, 6.0]]
    """
    is_tuple, xs = _inputs(inputs, "jacobian")

    def impl(xs):
        graph, out_tuple, primals, wrt = _trace(func, xs, "jacobian")
        J = _jacobian_of_graph(graph, primals, wrt, len(xs), strategy, "jacobian", strict)
        return _detach(_structure(J, out_tuple, is_tuple), create_graph)

    return _staged(func, ("jacobian", create_graph, strict, strategy), impl)(xs)


def _grad_fn(func, n_in: int, fname: str, with_value: bool = False):
    """``xs -> (value?, *grads)`` of a scalar function, as a traceable Python function."""
    def g(*xs):
        graph, _, primals, wrt = _trace(func, xs, fname)
        if len(graph.outputs) != 1 or _T(graph.outputs[0]).numel() != 1:
            raise user_error(RuntimeError, f"{fname}: the function given to {fname} must "
                             "return a single-element Tensor")
        out = graph.outputs[0]
        seed = _ones_for([_T(out)], "output", fname)
        outs, cts = vjp_graph(graph, primals, seed, wrt)
        grads = tuple(zeros_like(x) if c is None else c for x, c in zip(xs, cts[:n_in]))
        return ((outs[0],) + grads) if with_value else grads
    return g


def hessian(func: Callable, inputs, create_graph: bool = False, strict: bool = False,
            vectorize: bool = True, outer_jacobian_strategy: str = "reverse-mode"):
    """The Hessian of a scalar function, like ``torch.autograd.functional.hessian``: shape
    ``in.shape + in.shape`` for one input, a tuple of tuples ``H[i][j]`` otherwise.

    >>> import tracejit as tj
    >>> A = tj.tensor([[1.0, 2.0], [0.0, 3.0]])
    >>> tj.hessian(lambda x: x @ A @ x, tj.tensor([1.0, 1.0])).tolist()
    [[2.0, 2.0], [2.0, 6.0]]
    """
    is_tuple, xs = _inputs(inputs, "hessian")

    def impl(xs):
        g = _grad_fn(func, len(xs), "hessian")
        graph, _, primals, wrt = _trace(g, xs, "hessian")
        H = _jacobian_of_graph(graph, primals, wrt, len(xs), outer_jacobian_strategy,
                               "hessian", strict)
        return _detach(_structure(H, is_tuple, is_tuple), create_graph)

    return _staged(func, ("hessian", create_graph, strict, outer_jacobian_strategy), impl)(xs)


def vhp(func: Callable, inputs, v=None, create_graph: bool = False, strict: bool = False):
    """``(func(inputs), v^T H)`` by reverse-over-reverse, without forming H."""
    return _hv("vhp", func, inputs, v, create_graph, strict)


def hvp(func: Callable, inputs, v=None, create_graph: bool = False, strict: bool = False):
    """``(func(inputs), H v)`` by forward-over-reverse, without forming H.

    >>> import tracejit as tj
    >>> out, hv = tj.hvp(lambda x: (x ** 3).sum(), tj.tensor([1.0, 2.0]), tj.tensor([1.0, 1.0]))
    >>> hv.tolist()
    [6.0, 12.0]
    """
    return _hv("hvp", func, inputs, v, create_graph, strict)


def _hv(kind: str, func, inputs, v, create_graph, strict):
    is_tuple, xs = _inputs(inputs, kind)
    v_given = v is not None
    _, vs = _as_tuple(v, "v", kind) if v_given else (False, ())

    def impl(xs, vs):
        vv = _vectors(vs, list(xs), "inputs", kind) if v_given else _ones_for(
            list(xs), "input", kind)
        g = _grad_fn(func, len(xs), kind, with_value=True)
        graph, _, primals, wrt = _trace(g, xs, kind)
        n = len(xs)
        if kind == "hvp":
            outs, out_t = jvp_graph(graph, primals, vv + [None] * (len(primals) - n))
            res = [zeros_like(x) if t is None else t for x, t in zip(xs, out_t[1:])]
        else:
            outs, cts = vjp_graph(graph, primals, [None] + vv, wrt)
            res = [zeros_like(x) if c is None else c for x, c in zip(xs, cts[:n])]
        if strict and any(t is None for t in (out_t[1:] if kind == "hvp" else cts[:n])):
            raise user_error(RuntimeError, f"{kind}: the output of the user-provided function "
                             "is independent of an input. This is not allowed in strict mode.")
        return (_detach(outs[0], create_graph), _detach(_pack(is_tuple, res), create_graph))

    return _staged(func, (kind, create_graph, strict, v_given), impl)(xs, vs)
