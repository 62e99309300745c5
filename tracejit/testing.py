"""`tj.testing`: finite-difference checks of derivatives, like ``torch.autograd.gradcheck``.

Input: a function of Tensors and inputs (use float64). Output: True, or a `GradcheckError`
describing the first Jacobian entry where the analytical derivative (tracejit's reverse and
forward mode) and central differences disagree.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from . import tree
from .tensor import Tensor, as_tensor

__all__ = ["gradcheck", "gradgradcheck", "GradcheckError", "numerical_jacobian"]


class GradcheckError(RuntimeError):
    """An analytical derivative disagrees with finite differences."""


def _tuple(x):
    return tuple(x) if isinstance(x, (tuple, list)) else (x,)


def _flat_outputs(fn, xs) -> list[np.ndarray]:
    out = fn(*[Tensor._wrap(np.array(x)) for x in xs])
    return [np.asarray(o.numpy(), dtype=np.float64) for o in tree.flatten(out)[0]]


def numerical_jacobian(fn: Callable, inputs, eps: float = 1e-6) -> list[list[np.ndarray]]:
    """Central differences: ``J[i][j]`` of shape ``(out_i.size, in_j.size)``."""
    xs = [np.array(as_tensor(x).numpy(), dtype=as_tensor(x).numpy().dtype) for x in
          _tuple(inputs)]
    base = _flat_outputs(fn, xs)
    J = [[np.zeros((o.size, x.size)) for x in xs] for o in base]
    for j, x in enumerate(xs):
        if x.dtype.kind != "f":
            continue
        flat = x.reshape(-1)
        for k in range(flat.size):
            orig = flat[k]
            flat[k] = orig + eps
            plus = _flat_outputs(fn, xs)
            flat[k] = orig - eps
            minus = _flat_outputs(fn, xs)
            flat[k] = orig
            for i, (p, m) in enumerate(zip(plus, minus)):
                J[i][j][:, k] = ((p - m) / (2 * eps)).reshape(-1)
    return J


def _analytical(fn, inputs, strategy: str) -> list[list[np.ndarray]]:
    from .autodiff.functional import jacobian
    xs = _tuple(inputs)
    J = jacobian(lambda *a: tuple(tree.flatten(fn(*a))[0]), tuple(xs), strategy=strategy)
    return [[np.asarray(J[i][j].numpy(), np.float64).reshape(-1, max(as_tensor(xs[j]).numel(),
                                                                        1))
             if as_tensor(xs[j]).numel() else np.zeros((0, 0))
             for j in range(len(xs))] for i in range(len(J))]


def gradcheck(fn: Callable, inputs, *, eps: float = 1e-6, atol: float = 1e-5,
              rtol: float = 1e-3, raise_exception: bool = True,
              check_forward_ad: bool = True) -> bool:
    """Checks reverse-mode (and forward-mode) Jacobians of `fn` against central differences.

    >>> import tracejit as tj
    >>> x = tj.tensor([0.3, -1.2], dtype=tj.float64)
    >>> tj.testing.gradcheck(lambda v: tj.tanh(v) * v, (x,))
    True
    """
    xs = _tuple(inputs)
    num = numerical_jacobian(fn, xs, eps)
    strategies = ["reverse-mode"] + (["forward-mode"] if check_forward_ad else [])
    for strategy in strategies:
        ana = _analytical(fn, xs, strategy)
        for i, row in enumerate(num):
            for j, n in enumerate(row):
                a = ana[i][j].reshape(n.shape)
                if not np.allclose(a, n, atol=atol, rtol=rtol):
                    k = np.unravel_index(np.argmax(np.abs(a - n)), n.shape)
                    msg = (f"Jacobian mismatch for output {i} with respect to input {j} "
                           f"({strategy}): at entry {tuple(int(v) for v in k)} analytical "
                           f"{a[k]!r} vs numerical {n[k]!r}\nanalytical:\n{a}\nnumerical:\n{n}")
                    if raise_exception:
                        raise GradcheckError(msg)
                    return False
    return True


def gradgradcheck(fn: Callable, inputs, grad_outputs=None, *, eps: float = 1e-6,
                  atol: float = 1e-5, rtol: float = 1e-3, raise_exception: bool = True) -> bool:
    """Checks second derivatives: `gradcheck` of ``(inputs, v) -> v^T J(inputs)``."""
    from .autodiff.functional import vjp
    xs = tuple(as_tensor(x) for x in _tuple(inputs))
    outs = tree.flatten(fn(*xs))[0]
    if grad_outputs is None:
        rng = np.random.default_rng(0)
        grad_outputs = tuple(Tensor._wrap(rng.standard_normal(o.shape).astype(o.numpy().dtype))
                             for o in outs)
    vs = _tuple(grad_outputs)
    n = len(xs)

    def first(*a):
        out_is_tuple = len(outs) > 1
        _, g = vjp(lambda *z: (tuple(tree.flatten(fn(*z))[0]) if out_is_tuple
                               else tree.flatten(fn(*z))[0][0]),
                   tuple(a[:n]), tuple(a[n:]) if out_is_tuple else a[n], create_graph=True)
        return g
    return gradcheck(first, xs + vs, eps=eps, atol=atol, rtol=rtol,
                     raise_exception=raise_exception)
