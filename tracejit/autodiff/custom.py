"""Custom derivative rules, mirroring ``torch.autograd.Function``.

Input: a subclass with static ``forward(ctx, *args)`` and ``backward(ctx, *grads)``. Output: one
``custom_vjp`` node per ``.apply(...)`` call, holding the traced forward and backward as closed
sub-graphs. The node runs the forward; reverse mode replays the user's backward on the saved
tensors (residuals, which the forward sub-graph returns as extra results) instead of
differentiating the forward. Forward mode and higher orders differentiate the forward sub-graph
(the user's backward is assumed to be its derivative).

    class Exp(tj.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            y = tj.exp(x)
            ctx.save_for_backward(y)
            return y

        @staticmethod
        def backward(ctx, g):
            (y,) = ctx.saved_tensors
            return g * y
"""

from __future__ import annotations

from .. import tree
from ..errors import user_error
from ..ir.graph import TensorType
from ..tensor import Tensor, as_tensor
from ..trace import bind, current_builder, trace_subgraph
from .staging import Staged, in_trace

__all__ = ["Function", "FunctionCtx"]


class FunctionCtx:
    """The ``ctx`` passed to ``forward`` and ``backward``."""

    def __init__(self, needs_input_grad: tuple[bool, ...]):
        self._saved: tuple = ()
        self.needs_input_grad = needs_input_grad
        self.materialize_grads = True
        self._non_differentiable: set[int] = set()

    def save_for_backward(self, *tensors) -> None:
        for t in tensors:
            if t is not None and not isinstance(t, Tensor):
                raise user_error(TypeError, "save_for_backward can only save Tensors (or None), "
                                 f"got {type(t).__name__}")
        self._saved = tensors

    @property
    def saved_tensors(self) -> tuple:
        return self._saved

    def mark_non_differentiable(self, *tensors) -> None:
        self._non_differentiable |= {id(t) for t in tensors}

    def set_materialize_grads(self, value: bool) -> None:
        self.materialize_grads = bool(value)


class Function:
    """Base class for functions with a hand-written backward (``torch.autograd.Function``)."""

    @staticmethod
    def forward(ctx, *args):
        raise NotImplementedError("subclasses of tj.autograd.Function must define forward")

    @staticmethod
    def backward(ctx, *grads):
        raise NotImplementedError("subclasses of tj.autograd.Function must define backward")

    @classmethod
    def apply(cls, *args):
        if in_trace(args):
            return _apply_traced(cls, args)
        from ..autograd.graph import needs_grad
        if needs_grad([a for a in args if isinstance(a, Tensor)]):
            return _apply_eager(cls, args)
        stage = cls.__dict__.get("_tj_staged")
        if stage is None:
            stage = Staged(lambda *a: _apply_traced(cls, a), cls.__name__)
            cls._tj_staged = stage
        return stage(*args)


def _apply_traced(cls, args: tuple):
    name = cls.__name__
    is_arr = [isinstance(a, Tensor) or hasattr(a, "__array__") and not isinstance(a, str)
              for a in args]
    tensors = [a if isinstance(a, Tensor) else as_tensor(a) for a, k in zip(args, is_arr) if k]
    needs = tuple(bool(k) and t.dtype.is_floating_point
                  for k, t in zip(is_arr, _expand(tensors, is_arr)))
    ctx = FunctionCtx(needs)
    info = {}

    def rebuild(ts):
        it = iter(ts)
        return [next(it) if k else a for a, k in zip(args, is_arr)]

    def fwd(*ts):
        out = cls.forward(ctx, *rebuild(ts))
        leaves, out_tree = tree.flatten(out)
        if not all(isinstance(x, Tensor) for x in leaves):
            raise user_error(TypeError, f"{name}.forward must return Tensors (or a tuple of "
                             "them)")
        saved = [s for s in ctx._saved]
        # Tensors stored as ctx attributes (ctx.k = x * 2) are residuals too
        here = current_builder()
        attrs, extra = [], []
        for attr, val in list(vars(ctx).items()):
            if attr.startswith("_"):
                continue
            vals, td = tree.flatten(val)
            mask = [isinstance(v, Tensor) and v._is_tracer and v._builder is here for v in vals]
            if any(mask):
                attrs.append((attr, td, vals, mask))
                extra += [v for v, m in zip(vals, mask) if m]
        info.update(out_tree=out_tree, n_out=len(leaves), saved_none=[s is None for s in saved],
                    attrs=attrs, n_extra=len(extra))
        return list(leaves) + [s for s in saved if s is not None] + extra

    types = [t._type() for t in tensors]
    g_f, _, caps_f = trace_subgraph(fwd, types, [f"x{i}" for i in range(len(types))],
                                    f"{name}_forward")
    n_out = info["n_out"]
    out_types = [n.type for n in g_f.outputs[:n_out]]
    res_types = [n.type for n in g_f.outputs[n_out:]]

    def bwd(*ts):
        res, grads = list(ts[:len(res_types)]), list(ts[len(res_types):])
        it = iter(res)
        ctx._saved = tuple(None if none else next(it) for none in info["saved_none"])
        for attr, td, vals, mask in info["attrs"]:
            setattr(ctx, attr, tree.unflatten(td, [next(it) if m else v
                                                   for v, m in zip(vals, mask)]))
        got = cls.backward(ctx, *grads)
        got = got if isinstance(got, tuple) else (got,)
        if len(got) != len(args):
            raise user_error(TypeError, f"{name}.backward returned {len(got)} gradients, but "
                             f"forward took {len(args)} arguments")
        out = []
        for i, (g, k) in enumerate(zip(got, is_arr)):
            if not k:
                if g is not None:
                    raise user_error(TypeError, f"{name}.backward: argument {i} is not a Tensor, "
                                     "so its gradient must be None")
                continue
            t = tensors[len(out)]
            if g is None or not t.dtype.is_floating_point:
                from ..ops.creation import zeros_like
                g = zeros_like(t)
            elif tuple(g.shape) != tuple(t.shape):
                raise user_error(ValueError, f"{name}.backward: gradient {i} has shape "
                                 f"{list(g.shape)}, but the input has shape {list(t.shape)}")
            out.append(g if g.dtype == t.dtype else g.astype(t.dtype))
        return out

    g_b, _, caps_b = trace_subgraph(bwd, res_types + [_float_ct(t) for t in out_types],
                                    [f"r{i}" for i in range(len(res_types))]
                                    + [f"g{i}" for i in range(n_out)], f"{name}_backward")
    outs = bind("custom_vjp", *tensors, *caps_f, *caps_b, fwd=g_f, bwd=g_b,
                n_args=len(tensors), n_fwd_caps=len(caps_f), n_out=n_out)
    return tree.unflatten(info["out_tree"], list(outs[:n_out]))


def _expand(tensors, is_arr):
    it = iter(tensors)
    return [next(it) if k else None for k in is_arr]


def _float_ct(t: TensorType) -> TensorType:
    return TensorType(t.shape, t.dtype)


def _apply_eager(cls, args: tuple):
    """``apply`` on eager Tensors that require grad: runs ``forward`` now (without recording
    its ops) and puts one node on the autograd tape whose backward is the user's."""
    from ..autograd.grad_mode import no_grad
    from ..autograd.graph import CustomBackward
    pos = [i for i, a in enumerate(args) if isinstance(a, Tensor)]
    tensors = [args[i] for i in pos]
    ctx = FunctionCtx(tuple(isinstance(a, Tensor) and a.requires_grad for a in args))
    with no_grad():
        out = cls.forward(ctx, *args)
    leaves, out_tree = tree.flatten(out)
    if not all(isinstance(x, Tensor) for x in leaves):
        raise user_error(TypeError, f"{cls.__name__}.forward must return Tensors (or a tuple "
                         "of them)")
    leaves = [x.detach() if any(x is t for t in tensors) else x for x in leaves]
    ctx._n_args, ctx._out_types = len(args), [x._type() for x in leaves]
    node = CustomBackward(cls, ctx, tensors, pos, len(leaves))
    for i, x in enumerate(leaves):
        if x.dtype.is_floating_point and id(x) not in ctx._non_differentiable:
            x._requires_grad, x.grad_fn, x._out_index = True, node, i
    return tree.unflatten(out_tree, leaves)
