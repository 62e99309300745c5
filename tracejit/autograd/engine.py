"""The eager autograd engine: ``Tensor.backward`` and ``tj.autograd.grad``.

Input: root Tensors with their output gradients, and the tape of `BackwardNode`s behind them
(`graph.py`). Output: gradients accumulated into the ``.grad`` of leaves (``backward``) or
returned for chosen inputs (``grad``). Nodes run once each, in reverse order of creation among
those whose gradient is complete (dependency counting), through each primitive's `vjp` rule.
With ``create_graph=True`` the rules run with grad mode on, so the gradients are themselves on
the tape and can be differentiated again; otherwise they run under `no_grad`. Unless
``retain_graph`` is set, the saved values of the nodes run are released, and running them
again raises PyTorch's error.
"""

from __future__ import annotations

import heapq

import numpy as np

from .. import lazy as _lazy
from ..primitives import PRIMITIVES
from ..trace import at_location, bind
from .grad_mode import set_grad_enabled
from .graph import SAVES_NOTHING, AccumulateGrad, BackwardNode, CustomBackward, _Shape, grad_edge

__all__ = ["backward", "grad"]

_FREED = ("Trying to backward through the graph a second time (or directly access saved tensors "
          "after they have already been freed). Saved intermediate values of the graph are freed "
          "when you call .backward() or autograd.grad(). Specify retain_graph=True if you need "
          "to backward through the graph a second time or if you need to access saved tensors "
          "after calling backward.")


def _type_name(t) -> str:
    from ..ops.methods import _TORCH_NAME
    return f"torch.{_TORCH_NAME[t.dtype.name]}Tensor"


def _check_versions(node: BackwardNode) -> None:
    if node.versions is not None:
        for x, v in zip(node.inputs, node.versions):
            if v is not None and x._version != v:
                _modified(node, x, x._version, v, f"an operand of {node.name}")
    outs = node.out if isinstance(node.out, tuple) else (node.out,)
    for i, o in enumerate(outs):
        if o is not None and o._version != o._saved_version:
            _modified(node, o, o._version, o._saved_version, f"output {i} of {node.name}")


def _modified(node, x, now, want, what):
    raise RuntimeError(
        "one of the variables needed for gradient computation has been modified by an inplace "
        f"operation: [{_type_name(x)} {list(x.shape)}], which is {what}, is at version {now}; "
        f"expected version {want} instead. Hint: the operation that failed was {node.name}; "
        "clone the tensor before modifying it in place, or modify it after backward().")


def _fit(g, shape, dtype):
    from ..autodiff.replay import sum_to_shape
    if g.shape != tuple(shape):
        g = sum_to_shape(g, tuple(shape))
    if g.dtype != dtype:
        g = bind("convert", g, dtype=dtype, weak=False)
    return g


def _add(a, b):
    return b if a is None else bind("add", a, b)


def _discover(roots):
    """Dependency counts of every node reachable from `roots` (edges into it)."""
    deps: dict[int, int] = {}
    nodes: dict[int, object] = {}
    stack = [n for n, _ in roots]
    for n in stack:
        nodes[id(n)] = n
    seen = {id(n) for n in stack}
    while stack:
        n = stack.pop()
        for e in n.edges:
            if e is None:
                continue
            c = e[0]
            deps[id(c)] = deps.get(id(c), 0) + 1
            if id(c) not in seen:
                seen.add(id(c))
                nodes[id(c)] = c
                stack.append(c)
    return deps, nodes


def _run(roots, grads, retain_graph: bool, create_graph: bool, capture=None):
    """The engine loop. `roots`: ``(node, index)`` edges, `grads` their gradients. With
    `capture` (edge -> slot, for ``autograd.grad``) the gradients arriving at those edges are
    returned instead of accumulated into leaves."""
    deps, nodes = _discover(roots)
    buf: dict[int, list] = {}
    for (n, i), g in zip(roots, grads):
        slot = buf.setdefault(id(n), [None] * n.n_out)
        slot[i] = _add(slot[i], g)
    captured = {} if capture is not None else None
    ready = [(-n.seq, id(n)) for n, _ in roots if deps.get(id(n), 0) == 0]
    ready = list(dict.fromkeys(ready))
    heapq.heapify(ready)
    with set_grad_enabled(create_graph):
        while ready:
            _, key = heapq.heappop(ready)
            node = nodes[key]
            cts = buf.pop(key, None) or [None] * node.n_out
            if capture is not None:
                for i, g in enumerate(cts):
                    slot = capture.get((key, i))
                    if slot is not None and g is not None:
                        captured[slot] = _add(captured.get(slot), g)
            if isinstance(node, AccumulateGrad):
                if capture is None and cts[0] is not None:
                    _accumulate(node.leaf, cts[0], create_graph)
            else:
                _retain(node, cts, create_graph)
                if any(g is not None for g in cts):
                    _apply(node, cts, buf, retain_graph)
            for e in node.edges:
                if e is None:
                    continue
                c = e[0]
                deps[id(c)] -= 1
                if deps[id(c)] == 0:
                    heapq.heappush(ready, (-c.seq, id(c)))
    return captured


def _apply(node: BackwardNode, cts: list, buf: dict, retain_graph: bool) -> None:
    if node.freed:
        raise RuntimeError(_FREED)
    if isinstance(node, CustomBackward):
        in_cts = node.run(cts)
    else:
        _check_versions(node)
        op = PRIMITIVES[node.op]
        if op.vjp is None:
            raise NotImplementedError(f"reverse-mode differentiation of {node.op!r} is not "
                                      "implemented")
        ct = cts if node.n_out > 1 else cts[0]
        dev = next((_lazy._device(c) for c in cts if c is not None), None)
        with at_location(None), _lazy.on_device(dev):  # (zeros of a rule: beside the grads)
            in_cts = op.vjp(ct, node.out, *node.inputs, **node.params)
    for x, e, g in zip(node.inputs, node.edges, in_cts, strict=True):
        if e is None or g is None:
            continue
        c, i = e
        slot = buf.setdefault(id(c), [None] * c.n_out)
        slot[i] = _add(slot[i], _fit(g, x.shape, x.dtype))
    if not retain_graph and node.op not in SAVES_NOTHING:
        node.freed = True
        node.inputs = tuple(_Shape(x) for x in node.inputs)
        node.out = None


def _retain(node: BackwardNode, cts: list, create_graph: bool) -> None:
    if node.retained:
        for i, ref in node.retained.items():
            t = ref()
            if t is not None and cts[i] is not None:
                g = cts[i] if create_graph else cts[i].detach()
                t._grad = g if t._grad is None else t._grad + g


def _accumulate(leaf, g, create_graph: bool) -> None:
    from ..tensor import Tensor
    g = _fit(g, leaf.shape, leaf.dtype)
    if not create_graph and g.requires_grad:
        g = g.detach()
    old = leaf._get_grad()
    if old is None:
        if not create_graph and not g._is_tracer:
            v = g._value
            if type(v) is not np.ndarray:  # on a CUDA device: a buffer of its own already
                g = Tensor._wrap(v)
            else:
                g = Tensor._wrap(v.copy() if not v.flags.writeable or v.base is not None
                                 else v)
        leaf._set_grad(g)
    elif create_graph or old._is_tracer or g._is_tracer:
        leaf._set_grad(old + g)
    else:
        with set_grad_enabled(False):
            old.add_(g)  # PyTorch accumulates in place when no graph is being built


def _as_grad(t, g, what: str):
    from ..tensor import Tensor, as_tensor
    if g is None:
        if t.numel() != 1:
            raise RuntimeError("grad can be implicitly created only for scalar outputs")
        if not t.dtype.is_floating_point:
            raise RuntimeError(f"grad can be implicitly created only for real scalar outputs "
                               f"but got {t.dtype}")
        from ..ops import creation
        return creation.ones_like(t)  # (on t's device)
    g = g if isinstance(g, Tensor) else as_tensor(g, dtype=t.dtype)
    if g.shape != t.shape:
        raise RuntimeError(f"Mismatch in shape: {what} has a shape of {list(g.shape)} and "
                           f"output has a shape of {list(t.shape)}.")
    return g


def _per_output(gs, n: int) -> tuple:
    if gs is None:
        return (None,) * n
    if not isinstance(gs, (list, tuple)):
        gs = (gs,)
    if len(gs) != n:
        raise RuntimeError(f"got {len(gs)} gradients for {n} outputs")
    return tuple(gs)


def _roots(tensors: tuple, gs: tuple, many: str, one: str):
    """The edges the engine starts from, and their gradients (checked or made)."""
    roots, grads = [], []
    for k, (t, g) in enumerate(zip(tensors, gs, strict=True)):
        e = grad_edge(t)
        if e is None:
            raise RuntimeError(f"element {k} of tensors does not require grad and does not "
                               "have a grad_fn")
        roots.append(e)
        grads.append(_as_grad(t, g, f"{many}[{k}]" if len(tensors) > 1 else one))
    return roots, grads


def backward(tensors, grad_tensors=None, retain_graph=None, create_graph=False,
             inputs=None) -> None:
    """Accumulates the gradients of `tensors` into the ``.grad`` of the leaves they depend on
    (``torch.autograd.backward``)."""
    from ..tensor import Tensor
    tensors = (tensors,) if isinstance(tensors, Tensor) else tuple(tensors)
    grad_tensors = _per_output(grad_tensors, len(tensors))
    if retain_graph is None:
        retain_graph = create_graph
    roots, grads = _roots(tensors, grad_tensors, "grad_tensors", "gradient")
    if inputs is not None:
        inputs = (inputs,) if isinstance(inputs, Tensor) else tuple(inputs)
        res = grad(tensors, inputs, grads, retain_graph, create_graph, allow_unused=True)
        for x, g in zip(inputs, res):
            if g is not None:
                _accumulate(x, g, create_graph)
        return
    _run(roots, grads, retain_graph, create_graph)


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False,
         allow_unused=None, is_grads_batched=False, materialize_grads=False):
    """The gradients of `outputs` with respect to `inputs`, returned as a tuple
    (``torch.autograd.grad``); nothing is accumulated into ``.grad``.

    >>> import tracejit as tj
    >>> x = tj.tensor([1.0, 2.0], requires_grad=True)
    >>> tj.autograd.grad((x ** 3).sum(), x)
    (tensor([ 3., 12.]),)
    """
    from ..ops import creation
    from ..tensor import Tensor
    if is_grads_batched:
        raise NotImplementedError("autograd.grad: is_grads_batched=True is not supported; "
                                  "use tj.vmap over tj.vjp instead")
    outputs = (outputs,) if isinstance(outputs, Tensor) else tuple(outputs)
    single = isinstance(inputs, Tensor)
    inputs = (inputs,) if single else tuple(inputs)
    grad_outputs = _per_output(grad_outputs, len(outputs))
    if retain_graph is None:
        retain_graph = create_graph
    if allow_unused is None:
        allow_unused = materialize_grads
    roots, grads = _roots(outputs, grad_outputs, "grad_outputs", "grad")
    capture = {}
    for k, x in enumerate(inputs):
        if not isinstance(x, Tensor) or not x.requires_grad:
            raise RuntimeError("One of the differentiated Tensors does not require grad")
        n, i = grad_edge(x)
        capture.setdefault((id(n), i), k)
    got = _run(roots, grads, retain_graph, create_graph, capture)
    out = []
    for x in inputs:
        n, i = grad_edge(x)
        slot = capture[(id(n), i)]
        g = got.get(slot)
        if g is None:
            if materialize_grads:
                g = creation.zeros_like(x)
            elif not allow_unused:
                raise RuntimeError("One of the differentiated Tensors appears to not have been "
                                   "used in the graph. Set allow_unused=True if this is the "
                                   "desired behavior.")
        elif not create_graph:
            g = g.detach()
        out.append(g)
    return tuple(out)
