"""Linear algebra of SPEC §3: dot, mv, mm, bmm, matmul (``@``), outer, tensordot, einsum.

Input: Tensors. Output: Tensors built from the ``dot_general`` primitive (plus reshape,
broadcast, transpose and reduce_sum). ``matmul`` follows numpy/PyTorch: 1-d operands gain and
lose a dim, batch dims broadcast. ``einsum`` contracts operands pairwise, supports ``...``,
implicit output and repeated subscripts (diagonals).
"""

from __future__ import annotations

import string

from .. import dtypes as D
from ..autograd.graph import torch_name
from ..errors import user_error
from ..trace import bind
from .common import operand, promote
from .shape import broadcast_to, permute, reshape

__all__ = ["matmul", "dot", "vdot", "mv", "mm", "bmm", "outer", "inner", "tensordot", "einsum"]


def _pair(name, a, b):
    a, b = promote(a, b, name=name)
    if a.dtype.is_bool:
        raise user_error(TypeError, f"{name}: not supported for bool tensors, got shapes "
                         f"{list(a.shape)} and {list(b.shape)}")
    return a, b


def _mismatch(name, a, b):
    return user_error(ValueError, f"{name}: shapes {list(a.shape)} and {list(b.shape)} cannot be "
                      f"multiplied ({a.dtype.short} @ {b.dtype.short})")


def _matmul_name(input, other):
    nd = (getattr(input, "ndim", 0), getattr(other, "ndim", 0))
    return {(1, 1): "DotBackward0", (2, 2): "MmBackward0", (2, 1): "MvBackward0"}.get(
        nd, "BmmBackward0" if nd == (3, 3) else None)


@torch_name(_matmul_name)
def matmul(input, other):
    """Matrix product with numpy/PyTorch broadcasting rules (the ``@`` operator).

    >>> import tracejit as tj
    >>> (tj.ones(2, 3) @ tj.ones(3)).tolist()
    [3.0, 3.0]
    """
    a, b = _pair("matmul", input, other)
    if a.ndim == 0 or b.ndim == 0:
        raise user_error(ValueError, f"matmul: both arguments need at least 1 dim, got shapes "
                         f"{list(a.shape)} and {list(b.shape)}")
    va, vb = a.ndim == 1, b.ndim == 1
    if va:
        a = reshape(a, (1,) + a.shape)
    if vb:
        b = reshape(b, b.shape + (1,))
    if a.shape[-1] != b.shape[-2]:
        raise _mismatch("matmul", operand(input), operand(other))
    from ..primitives.elementwise import broadcast_shapes
    from ..primitives.registry import RuleError
    try:
        batch = broadcast_shapes(a.shape[:-2], b.shape[:-2])
    except RuleError:
        raise _mismatch("matmul", operand(input), operand(other)) from None
    a = broadcast_to(a, batch + a.shape[-2:])
    b = broadcast_to(b, batch + b.shape[-2:])
    nb = len(batch)
    out = bind("dot_general", a, b, contract=((nb + 1,), (nb,)),
               batch=(tuple(range(nb)), tuple(range(nb))))
    shape = batch + (() if va else (a.shape[-2],)) + (() if vb else (b.shape[-1],))
    return reshape(out, shape)


def dot(input, other):
    a, b = _pair("dot", input, other)
    if a.ndim != 1 or b.ndim != 1 or a.shape != b.shape:
        raise user_error(ValueError, f"dot: expects two 1-d tensors of equal size, got shapes "
                         f"{list(a.shape)} and {list(b.shape)}")
    return bind("dot_general", a, b, contract=((0,), (0,)), batch=((), ()))


vdot = inner = dot


def mv(input, vec):
    a, b = operand(input), operand(vec)
    if a.ndim != 2 or b.ndim != 1:
        raise user_error(ValueError, f"mv: expects a matrix and a vector, got shapes "
                         f"{list(a.shape)} and {list(b.shape)}")
    return matmul(a, b)


def mm(input, mat2):
    a, b = operand(input), operand(mat2)
    if a.ndim != 2 or b.ndim != 2:
        raise user_error(ValueError, f"mm: expects two matrices, got shapes {list(a.shape)} and "
                         f"{list(b.shape)}")
    return matmul(a, b)


def bmm(input, mat2):
    a, b = operand(input), operand(mat2)
    if a.ndim != 3 or b.ndim != 3 or a.shape[0] != b.shape[0]:
        raise user_error(ValueError, f"bmm: expects two 3-d tensors with equal batch size, got "
                         f"shapes {list(a.shape)} and {list(b.shape)}")
    return matmul(a, b)


def outer(input, vec2):
    a, b = promote(input, vec2, name="outer")
    if a.ndim != 1 or b.ndim != 1:
        raise user_error(ValueError, f"outer: expects two 1-d tensors, got {list(a.shape)} and "
                         f"{list(b.shape)}")
    from .elementwise import mul
    return mul(reshape(a, (a.shape[0], 1)), reshape(b, (1, b.shape[0])))


def tensordot(a, b, dims=2):
    x, y = _pair("tensordot", a, b)
    if isinstance(dims, int):
        ca, cb = tuple(range(x.ndim - dims, x.ndim)), tuple(range(dims))
    else:
        ca, cb = (tuple(d) if isinstance(d, (list, tuple)) else (d,) for d in dims)
    ca = tuple(c % x.ndim for c in ca)
    cb = tuple(c % y.ndim for c in cb)
    if any(x.shape[i] != y.shape[j] for i, j in zip(ca, cb)) or len(ca) != len(cb):
        raise _mismatch("tensordot", x, y)
    return bind("dot_general", x, y, contract=(ca, cb), batch=((), ()))


# -- einsum ---------------------------------------------------------------------------------

def _parse(eq: str, xs):
    eq = eq.replace(" ", "")
    lhs, arrow, out = eq.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(xs):
        raise user_error(ValueError, f"einsum: equation has {len(terms)} operands, got "
                         f"{len(xs)} tensors")
    spare = iter(c for c in string.ascii_uppercase if c not in eq)
    n_ell = max((x.ndim - len(t.replace("...", "")) for t, x in zip(terms, xs) if "..." in t),
                default=0)
    ell = "".join(next(spare) for _ in range(n_ell))
    subs = []
    for t, x in zip(terms, xs):
        if "..." in t:
            k = x.ndim - len(t.replace("...", ""))
            t = t.replace("...", ell[n_ell - k:] if k else "")
        if not all(c.isalpha() for c in t) or len(t) != x.ndim:
            raise user_error(ValueError, f"einsum: subscripts {t!r} do not match operand of "
                             f"shape {list(x.shape)}")
        subs.append(t)
    if arrow:
        out = out.replace("...", ell)
    else:
        counts = {c: "".join(subs).count(c) for c in "".join(subs)}
        out = ell + "".join(sorted(c for c, n in counts.items() if n == 1 and c not in ell))
    return subs, out


def _diagonal(x, s: str):
    """Removes repeated subscripts of one operand by taking diagonals."""
    while any(s.count(c) > 1 for c in s):
        c = next(c for c in s if s.count(c) > 1)
        p = [i for i, d in enumerate(s) if d == c]
        n = x.shape[p[0]]
        if any(x.shape[i] != n for i in p):
            raise user_error(ValueError, f"einsum: repeated subscript {c!r} spans dims of "
                             f"different sizes {[x.shape[i] for i in p]}")
        rest = [i for i in range(x.ndim) if i not in p]
        x = permute(x, p + rest)
        i = bind("iota", shape=(n,), axis=0, dtype=D.int64)
        x = bind("gather", x, *([i] * len(p)))
        s = c + "".join(s[i] for i in rest)
    return x, s


def einsum(equation: str, *operands):
    """Einstein summation, e.g. ``einsum("bij,bjk->bik", a, b)``."""
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    xs = promote(*operands, name="einsum")
    subs, out = _parse(equation, xs)
    sizes: dict[str, int] = {}
    for x, s in zip(xs, subs):
        for c, n in zip(s, x.shape):
            if c in sizes and n != sizes[c] and 1 not in (n, sizes[c]):
                raise user_error(ValueError, f"einsum: subscript {c!r} has size {n} in one "
                                 f"place and {sizes[c]} in another; operand shapes "
                                 + ", ".join(str(list(y.shape)) for y in xs))
            sizes[c] = n if c not in sizes or sizes[c] == 1 else sizes[c]
    ops = []
    for x, s in zip(xs, subs):
        x, s = _diagonal(x, s)
        x = broadcast_to(x, tuple(sizes[c] for c in s))
        ops.append((x, s))
    for i, (x, s) in enumerate(ops):  # sum subscripts no one else needs
        others = out + "".join(t for j, (_, t) in enumerate(ops) if j != i)
        drop = tuple(k for k, c in enumerate(s) if c not in others)
        if drop:
            ops[i] = (bind("reduce_sum", x, axes=drop), "".join(c for c in s if c in others))
    while len(ops) > 1:
        (a, sa), (b, sb) = ops[0], ops[1]
        need = out + "".join(t for _, t in ops[2:])
        shared = [c for c in sa if c in sb]
        batch = [c for c in shared if c in need]
        contract = [c for c in shared if c not in need]
        r = bind("dot_general", a, b,
                 contract=(tuple(sa.index(c) for c in contract),
                           tuple(sb.index(c) for c in contract)),
                 batch=(tuple(sa.index(c) for c in batch), tuple(sb.index(c) for c in batch)))
        rs = "".join(batch) + "".join(c for c in sa if c not in shared) + "".join(
            c for c in sb if c not in shared)
        ops = [(r, rs)] + ops[2:]
    x, s = ops[0]
    extra = tuple(k for k, c in enumerate(s) if c not in out)
    if extra:
        x, s = bind("reduce_sum", x, axes=extra), "".join(c for c in s if c in out)
    if set(out) - set(s):
        raise user_error(ValueError, f"einsum: output subscripts {out!r} name unknown labels")
    return permute(x, [s.index(c) for c in out])
