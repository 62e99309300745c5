"""The eager autograd tape: one `BackwardNode` per differentiable op applied to Tensors that
require grad.

Input: a primitive application (`trace.bind`): its name, params, operand Tensors and result
Tensors. Output: the results marked ``requires_grad`` with a ``grad_fn`` recording how to
differentiate them: the primitive (whose `vjp` rule — the same rule the symbolic transform uses
— gives the operands' cotangents), the operands and result it needs (saved with their version
counters), and one *edge* per operand: the node that produced it, or for a leaf its
`AccumulateGrad`. `engine.py` walks these nodes backwards.

The tape works on realized Tensors and on tracers alike, so ``loss.backward()`` inside
`tj.compile` records backward graph nodes like any other op.
"""

from __future__ import annotations

import itertools
import weakref

from ..primitives import PRIMITIVES
from .grad_mode import is_grad_enabled

__all__ = ["BackwardNode", "AccumulateGrad", "record", "grad_edge", "needs_grad"]

_seq = itertools.count()

# What each primitive's vjp rule reads: ``(operand positions, result?)``. The default is
# everything. Values a rule never reads are not saved, so modifying them in place after the op
# does not invalidate its gradient (as in PyTorch, which saves the same things).
_OUT_ONLY = ((), True)
_INPUTS_ONLY = (None, False)
SAVED = {
    **{op: ((), False) for op in (
        "add", "sub", "neg", "reshape", "broadcast", "transpose", "reduce_sum", "convert", "pad",
        "slice", "concatenate", "rev", "get", "cumsum")},
    **{op: _OUT_ONLY for op in ("exp", "exp2", "expm1", "sqrt", "rsqrt", "tan", "tanh",
                                "sigmoid")},
    **{op: _INPUTS_ONLY for op in (
        "abs", "log", "log2", "log10", "log1p", "sin", "cos", "asin", "acos", "atan", "sinh",
        "cosh", "erf", "mul", "rem", "maximum", "minimum", "atan2", "dot_general", "spmm_csr",
        "sddmm_csr")},
    "div": ((1,), True),
    "select": ((0,), False),
}
SAVES_NOTHING = frozenset(op for op, (ins, out) in SAVED.items() if ins == () and not out)

_TORCH_NAMES = {
    "reduce_sum": "Sum", "reduce_max": "Max", "reduce_min": "Min", "reduce_prod": "Prod",
    "broadcast": "Expand", "reshape": "View", "transpose": "Permute", "convert": "ToCopy",
    "select": "Where", "concatenate": "Cat", "pad": "ConstantPadNd", "rev": "Flip",
    "maximum": "Maximum", "minimum": "Minimum", "rem": "Remainder", "floordiv": "FloorDivide",
    "atan2": "Atan2", "cumsum": "Cumsum", "cumprod": "Cumprod", "custom_vjp": "Custom",
    "gather": "Gather", "scatter": "Scatter", "slice": "Slice", "expm1": "Expm1",
    "log1p": "Log1P", "rsqrt": "Rsqrt", "sigmoid": "Sigmoid", "cond": "Cond", "while": "While",
}


def _torch_name(op: str, params: dict, xs) -> str:
    if op == "dot_general":
        nd = [x.ndim for x in xs]
        base = {(1, 1): "Dot", (2, 2): "Mm", (2, 1): "Mv"}.get(tuple(nd), "Bmm")
    else:
        base = _TORCH_NAMES.get(op) or "".join(p.capitalize() for p in op.split("_"))
    return base + "Backward0"


class BackwardNode:
    """A ``grad_fn``: how to send a result's gradient back to the op's operands.

    >>> import tracejit as tj
    >>> x = tj.ones(2, requires_grad=True)
    >>> (x * 3).grad_fn
    <MulBackward0>
    """

    __slots__ = ("op", "params", "edges", "inputs", "out", "versions", "n_out", "name",
                 "seq", "freed", "retained", "__weakref__")

    def __init__(self, op: str, params: dict, xs: tuple, edges: list, n_out: int):
        self.op, self.params, self.edges, self.n_out = op, params, edges, n_out
        self.name = _torch_name(op, params, xs)
        self.seq = next(_seq)
        self.freed = False
        self.retained = None  # output index -> weakref of a Tensor that called retain_grad()
        self.out = None
        keep, _ = SAVED.get(op, (None, True))
        if keep is None:
            self.inputs = xs
            self.versions = tuple(x._version for x in xs)
        elif not keep:
            self.inputs, self.versions = tuple(_Shape(x) for x in xs), None
        else:
            self.inputs = tuple(x if i in keep else _Shape(x) for i, x in enumerate(xs))
            self.versions = tuple(x._version if i in keep else None for i, x in enumerate(xs))

    def __repr__(self):
        return f"<{self.name}>"

    def name_(self) -> str:
        return self.name

    @property
    def next_functions(self) -> tuple:
        return tuple((None, 0) if e is None else e for e in self.edges)


class _Shape:
    """Stands for an operand whose value a rule never reads (only its shape and dtype)."""

    __slots__ = ("shape", "dtype", "ndim")

    def __init__(self, x):
        self.shape, self.dtype, self.ndim = x.shape, x.dtype, x.ndim


class AccumulateGrad:
    """The edge target of a leaf Tensor: adds the gradient arriving there into ``leaf.grad``."""

    __slots__ = ("leaf", "seq", "__weakref__")
    name = "AccumulateGrad"
    n_out = 1
    edges = ()

    def __init__(self, leaf):
        self.leaf = leaf
        self.seq = next(_seq)

    def __repr__(self):
        return "<AccumulateGrad>"

    @property
    def variable(self):
        return self.leaf

    next_functions = ()


def grad_edge(t):
    """``(node, output index)`` that `t`'s gradient flows into, or None if it needs none."""
    fn = t.grad_fn
    if fn is not None:
        return fn, t._out_index
    if not t.requires_grad:
        return None
    acc = t._accum() if t._accum is not None else None
    if acc is None:
        acc = AccumulateGrad(t)
        t._accum = weakref.ref(acc)
        t._accum_strong = acc  # the leaf keeps its accumulator (and PyTorch's hooks) alive
    return acc, 0


def needs_grad(operands) -> bool:
    """Whether applying an op to `operands` must be recorded."""
    for x in operands:
        if x.requires_grad:
            return is_grad_enabled()
    return False


def record(op: str, params: dict, xs: tuple, out):
    """Marks result(s) `out` of primitive `op` on operands `xs` as differentiable."""
    from ..tensor import Tensor
    opdef = PRIMITIVES[op]
    outs = out if isinstance(out, tuple) else (out,)
    if opdef.has("nondiff") or opdef.has("effect") or \
            not any(o.dtype.is_floating_point for o in outs):
        return out
    edges = [grad_edge(x) if x.dtype.is_floating_point else None for x in xs]
    if all(e is None for e in edges):
        return out
    node = BackwardNode(op, params, xs, edges, len(outs))
    if SAVED.get(op, (None, True))[1]:
        # the rule reads the result: keep a handle on its value through which in-place writes
        # to the result itself are detected (a shared version counter), and which stays
        # connected to this node for higher-order derivatives
        saved = tuple(_saved_result(o, node, i) for i, o in enumerate(outs))
        node.out = saved if isinstance(out, tuple) else saved[0]
    for i, o in enumerate(outs):
        if o.dtype.is_floating_point:
            assert isinstance(o, Tensor)
            o._requires_grad = True
            o.grad_fn, o._out_index = node, i
    return out


def _saved_result(o, node, i):
    from ..tensor import Tensor
    s = Tensor._tracer(o._node, o._builder, o._value) if o._node is not None \
        else Tensor._wrap(o._value)
    s._vc = o._counter()
    s._saved_version = o._version
    if o.dtype.is_floating_point:
        s._requires_grad, s.grad_fn, s._out_index = True, node, i
    return s


class CustomBackward:
    """The ``grad_fn`` of an eager `tj.autograd.Function.apply`: runs the user's ``backward``."""

    __slots__ = ("cls", "ctx", "edges", "inputs", "n_out", "name", "seq", "freed", "retained",
                 "out", "versions", "op", "arg_pos", "__weakref__")

    def __init__(self, cls, ctx, tensors: list, arg_pos: list, n_out: int):
        self.cls, self.ctx, self.n_out = cls, ctx, n_out
        self.op = "custom"
        self.name = f"{cls.__name__}Backward"
        self.edges = [grad_edge(t) if t.dtype.is_floating_point else None for t in tensors]
        self.inputs = tuple(_Shape(t) for t in tensors)
        self.arg_pos = arg_pos  # position of each tensor among the forward's arguments
        self.seq = next(_seq)
        self.freed, self.retained, self.out, self.versions = False, None, None, None

    def __repr__(self):
        return f"<{self.name}>"

    @property
    def next_functions(self) -> tuple:
        return tuple((None, 0) if e is None else e for e in self.edges)

    def run(self, cts: list) -> list:
        from ..errors import user_error
        from ..ops.creation import zeros
        if self.ctx.materialize_grads:
            cts = [zeros(o.shape, dtype=o.dtype) if g is None else g
                   for g, o in zip(cts, self.ctx._out_types)]
        got = self.cls.backward(self.ctx, *cts)
        got = got if isinstance(got, tuple) else (got,)
        n_args = self.ctx._n_args
        if len(got) != n_args:
            raise user_error(TypeError, f"{self.cls.__name__}.backward returned {len(got)} "
                             f"gradients, but forward took {n_args} arguments")
        out = []
        for pos, x in zip(self.arg_pos, self.inputs):
            g = got[pos]
            if g is not None and tuple(g.shape) != tuple(x.shape):
                raise user_error(ValueError, f"{self.cls.__name__}.backward: gradient {pos} "
                                 f"has shape {list(g.shape)}, but the input has shape "
                                 f"{list(x.shape)}")
            out.append(g)
        return out


def torch_name(name):
    """Decorates a public op built from several primitives so its result's ``grad_fn`` carries
    PyTorch's name (``MeanBackward0`` rather than the last primitive's ``DivBackward0``).
    `name` is a string or a function of the op's arguments returning one (or None to keep)."""
    import functools

    def deco(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            start = next(_seq)
            out = fn(*args, **kwargs)
            node = getattr(out, "grad_fn", None)
            if node is not None and node.seq > start:
                n = name(*args, **kwargs) if callable(name) else name
                if n is not None:
                    node.name = n
            return out
        return wrapper
    return deco
