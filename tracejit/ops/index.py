"""Indexing of SPEC §3: ``x[...]`` with numpy's full semantics, functional updates
(``x.at[idx].set(v)`` / ``.add(v)``), ``x[idx] = v``, gather, take_along_dim, index_select,
one_hot.

Input: a Tensor and an index expression. Output: Tensors built from slice/rev/reshape/transpose
and the point-``gather``/``scatter`` primitives. Constant indices are checked and normalized at
trace time; Tensor indices wrap negatives at run time (the interpreter raises ``IndexError`` for
out-of-bounds ones). Updates reuse the indexing code: indexing an ``iota`` of positions gives
the flat positions an index expression selects, and one flat ``scatter`` writes them.
"""

from __future__ import annotations

import numpy as np

from .. import dtypes as D
from ..autograd.graph import torch_name
from ..errors import ConcretizationError, user_error
from ..tensor import Tensor
from ..trace import bind
from .common import cast, norm_axis, operand
from .shape import broadcast_to, permute, reshape, slice_axis

__all__ = ["getitem", "setitem", "At", "gather", "take_along_dim", "index_select", "one_hot",
           "nonzero", "masked_fill", "take"]


def _is_int(x) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_))


def _classify(item):
    """('none'|'ellipsis'|'slice'|'int'|'array'|'mask', value)."""
    if item is None:
        return "none", None
    if item is Ellipsis:
        return "ellipsis", None
    if isinstance(item, slice):
        for v in (item.start, item.stop, item.step):
            if v is not None and not _is_int(v):
                if isinstance(v, Tensor) and v._is_tracer:
                    raise user_error(IndexError, "slice bounds must be static Python ints; a "
                                     "traced bound would give a data-dependent shape (use "
                                     "tj.take / gather with a traced index instead)")
                try:
                    int(v)
                except TypeError:
                    raise user_error(IndexError, f"slice bounds must be ints, got {v!r}") from None
        return "slice", slice(*(None if v is None else int(v)
                               for v in (item.start, item.stop, item.step)))
    if _is_int(item):
        return "int", int(item)
    if isinstance(item, (bool, np.bool_)):
        return "mask", np.asarray(item)
    if isinstance(item, Tensor):
        if item.dtype.is_bool:
            return "mask", item
        if not item.dtype.is_integer:
            raise user_error(IndexError, f"tensors used as indices must be integer or bool "
                             f"tensors, got {item.dtype.name}")
        return "array", item
    if isinstance(item, (list, np.ndarray)):
        arr = np.asarray(item)
        if arr.dtype == np.bool_:
            return "mask", arr
        if arr.size == 0:
            arr = arr.astype(np.int64)
        if arr.dtype.kind not in "iu":
            raise user_error(IndexError, f"index arrays must be integers or bools, got "
                             f"{arr.dtype}")
        return "array", arr.astype(np.int64)
    raise user_error(IndexError, f"unsupported index {item!r} of type {type(item).__name__} "
                     "(only integers, slices, None, ..., and integer or bool arrays are valid)")


def _expand(x: Tensor, index, op: str = "getitem") -> list:
    items = [_classify(i) for i in (index if isinstance(index, tuple) else (index,))]
    out = []
    for kind, v in items:  # masks become integer arrays (eager only)
        if kind != "mask":
            out.append((kind, v))
            continue
        if isinstance(v, Tensor) and v._is_tracer:
            raise user_error(ConcretizationError, "boolean mask indexing gives a data-dependent "
                             "shape, which compiled code cannot have. Use tj.where(mask, x, 0) or "
                             "x * mask instead, or index outside the compiled function")
        m = np.asarray(v)
        if m.ndim == 0:
            if not m:
                raise user_error(IndexError, "indexing with a scalar False is not supported")
            out.append(("none", None))
            continue
        out += [("array", a.astype(np.int64)) for a in np.nonzero(m)]
        out[-m.ndim] = ("array", out[-m.ndim][1], ("mask", m.shape))
    used = sum(1 for k, *_ in out if k in ("slice", "int", "array"))
    if used > x.ndim:
        raise user_error(IndexError, f"{op}: too many indices for tensor of dimension {x.ndim} "
                         f"(shape {list(x.shape)})")
    n_ell = sum(1 for k, *_ in out if k == "ellipsis")
    if n_ell > 1:
        raise user_error(IndexError, "an index can only have a single ellipsis ('...')")
    res = []
    for item in out:
        if item[0] == "ellipsis":
            res += [("slice", slice(None))] * (x.ndim - used)
        else:
            res.append(item)
    if not n_ell:
        res += [("slice", slice(None))] * (x.ndim - used)
    return res


def _check_mask_shape(shape, x: Tensor, axis: int, op: str, shape0):
    got = x.shape[axis:axis + len(shape)]
    if tuple(shape) != tuple(got):
        raise user_error(IndexError, f"{op}: the shape of the mask {list(shape)} does not match "
                         f"the shape of the indexed tensor {list(shape0)} at dim {axis}")


def _oob(i, n: int, axis: int, op: str, shape0):
    of = "" if shape0 is None else f" (tensor of shape {list(shape0)})"
    return user_error(IndexError, f"{op}: index {i} is out of bounds for dimension {axis} with "
                      f"size {n}{of}")


def _norm_int(i: int, n: int, axis: int, op: str = "getitem", shape0=None) -> int:
    if not -n <= i < n:
        raise _oob(i, n, axis, op, shape0)
    return i % n


def _index_array(v, n: int, axis: int, op: str = "getitem", shape0=None) -> Tensor:
    """Constant indices are checked now; traced ones wrap negatives at run time."""
    if isinstance(v, np.ndarray):
        if v.size and (v.min() < -n or v.max() >= n):
            raise _oob(v[(v < -n) | (v >= n)].flat[0], n, axis, op, shape0)
        return operand(np.where(v < 0, v + n, v).astype(np.int64))
    from .elementwise import add, logical_and, lt, where
    # negatives in [-n, 0) wrap; one below -n stays as it is, so the bounds check names the
    # index the user wrote
    return where(logical_and(lt(v, 0), lt(-n - 1, v)), add(v, n), v)


def _getitem_name(x, index, **kw):
    idx = index if isinstance(index, tuple) else (index,)
    if any(not isinstance(i, (int, slice, type(None), type(Ellipsis))) or isinstance(i, bool)
           for i in idx):
        return "IndexBackward0"
    return "SelectBackward0" if any(isinstance(i, int) for i in idx) else "SliceBackward0"


@torch_name(_getitem_name)
def getitem(x, index, *, op: str = "getitem"):
    """``x[index]`` with numpy/PyTorch semantics (basic and advanced indexing).

    `op` names the public op in error messages (``index_select``, ``setitem``, ...).
    """
    x = operand(x)
    shape0 = x.shape
    items = _expand(x, index, op)
    # 1. ints select (and drop their axis) first, as in PyTorch: unlike numpy, an int never
    #    takes part in advanced indexing, so x[1, :, idx] keeps the sliced axis in front.
    #    Slices apply along their axes; None axes are inserted at the end.
    axis, orig, tokens, adv = 0, 0, [], []
    for item in items:
        kind, v = item[0], item[1]
        if kind == "none":
            tokens.append("n")
            continue
        if kind == "slice":
            x = slice_axis(x, axis, v.start, v.stop, v.step)
            tokens.append(("s", axis))
            axis += 1
        elif kind == "int":
            i = _norm_int(v, x.shape[axis], orig, op, shape0)
            x = slice_axis(x, axis, i, i + 1)
            x = reshape(x, x.shape[:axis] + x.shape[axis + 1:])
        else:  # an index array
            if len(item) > 2:
                _check_mask_shape(item[2][1], x, axis, op, shape0)
            adv.append((axis, _index_array(v, x.shape[axis], orig, op, shape0)))
            tokens.append("a")
            axis += 1
        orig += 1
    if not adv:
        shape, dims = [], iter(x.shape)
        for tok in tokens:
            shape.append(1 if tok == "n" else next(dims))
        return reshape(x, tuple(shape))
    # 2. advanced indices: move their axes to the front and gather
    adv_axes = [a for a, _ in adv]
    rest = [a for a in range(x.ndim) if a not in adv_axes]
    x = permute(x, adv_axes + rest)
    arrays = [arr for _, arr in adv]
    from ..primitives.elementwise import broadcast_shapes
    from ..primitives.registry import RuleError
    try:
        bshape = broadcast_shapes(*(a.shape for a in arrays))
    except RuleError:
        raise user_error(IndexError, "shape mismatch: indexing arrays could not be broadcast "
                         "together with shapes " + " ".join(str(list(a.shape)) for a in arrays)
                         ) from None
    y = bind("gather", x, *arrays)
    # 3. place the broadcast block: where the first index array was when they are adjacent
    first = tokens.index("a")
    last = len(tokens) - 1 - tokens[::-1].index("a")
    adjacent = all(t == "a" for t in tokens[first:last + 1])
    nb = len(bshape)
    before = [t for t in tokens[:first] if t != "n"] if adjacent else []
    k = len(before)
    perm = list(range(nb, nb + k)) + list(range(nb)) + list(range(nb + k, y.ndim))
    y = permute(y, perm)
    # 4. insert the None axes
    layout = (tokens[:first] + ["B"] + [t for t in tokens[last + 1:]]) if adjacent else (
        ["B"] + [t for t in tokens if t != "a"])
    shape, dims = [], iter(y.shape)
    for tok in layout:
        if tok == "n":
            shape.append(1)
        elif tok == "B":
            shape += [next(dims) for _ in range(nb)]
        elif tok != "a":
            shape.append(next(dims))
    return reshape(y, tuple(shape))


def _positions(x: Tensor, index, op: str) -> Tensor:
    pos = reshape(bind("iota", shape=(x.numel(),), axis=0, dtype=D.int64), x.shape)
    return getitem(pos, index, op=op)


def _update(x, index, value, mode: str, op: str):
    x = operand(x)
    items = index if isinstance(index, tuple) else (index,)
    if mode == "set" and len(items) == 1 and isinstance(items[0], Tensor) and \
            items[0].dtype.is_bool and items[0].shape == x.shape[:items[0].ndim]:
        from .elementwise import where
        m = reshape(items[0], items[0].shape + (1,) * (x.ndim - items[0].ndim))
        v = operand(value)
        if v.ndim <= x.ndim and all(a in (1, b) for a, b in zip(v.shape[::-1], x.shape[::-1])):
            return cast(where(m, v, x), x.dtype)
    pos = _positions(x, index, op)
    v = cast(operand(value), x.dtype)
    try:
        v = broadcast_to(v, pos.shape)
    except ValueError:
        raise user_error(ValueError, f"{op}: shape mismatch: value of shape {list(v.shape)} "
                         f"cannot be broadcast to indexing result of shape {list(pos.shape)} "
                         f"(tensor of shape {list(x.shape)})") from None
    flat = reshape(x, x.numel())
    out = bind("scatter", flat, reshape(v, pos.numel()), reshape(pos, pos.numel()), mode=mode)
    return reshape(out, x.shape)


class _AtIndexed:
    def __init__(self, x, index):
        self._x, self._index = x, index

    def set(self, value):
        """A copy of the tensor with ``value`` written at the indexed positions."""
        return _update(self._x, self._index, value, "set", "at[].set")

    def add(self, value):
        """A copy with ``value`` added at the indexed positions (duplicates accumulate)."""
        return _update(self._x, self._index, value, "add", "at[].add")

    def get(self):
        return getitem(self._x, self._index, op="at[].get")


class At:
    """``x.at[idx].set(v)`` / ``.add(v)``: functional updates, as in JAX."""

    def __init__(self, x):
        self._x = x

    def __getitem__(self, index):
        return _AtIndexed(self._x, index)


def setitem(x: Tensor, index, value) -> None:
    """``x[index] = value``: writes into an eager Tensor's buffer, or rebinds a tracer."""
    from .inplace import store
    store(x, _update(x, index, value, "set", "setitem"), "setitem")


def take_along_dim(input, indices, dim=None):
    """Picks values along ``dim`` at ``indices`` (same rank; other dims broadcast)."""
    from ..primitives.elementwise import broadcast_shapes
    x, idx = operand(input), operand(indices)
    if dim is None:
        return take_along_dim(reshape(x, -1), reshape(idx, -1), 0)
    a = norm_axis(dim, x.shape, "take_along_dim")
    if idx.ndim != x.ndim:
        raise user_error(ValueError, f"take_along_dim: input {list(x.shape)} and indices "
                         f"{list(idx.shape)} must have the same number of dims")
    from ..primitives.registry import RuleError
    try:
        shp = list(broadcast_shapes(tuple(1 if i == a else s for i, s in enumerate(x.shape)),
                                    tuple(1 if i == a else s for i, s in enumerate(idx.shape))))
    except RuleError as e:
        raise user_error(ValueError, f"take_along_dim: {e}") from None
    xs = list(shp)
    xs[a] = x.shape[a]
    shp[a] = idx.shape[a]
    x = broadcast_to(x, tuple(xs))
    idx = broadcast_to(_index_array(idx, x.shape[a], a), tuple(shp))
    return _gather_full(x, idx, a)


def _gather_full(x, idx, a):
    arrays = [idx if i == a else bind("iota", shape=idx.shape, axis=i, dtype=D.int64)
              for i in range(x.ndim)]
    return bind("gather", x, *arrays)


def gather(input, dim, index):
    """PyTorch's ``gather``: ``out[i][j] = input[index[i][j]][j]`` for ``dim=0``."""
    x, idx = operand(input), operand(index)
    a = norm_axis(dim, x.shape, "gather")
    if idx.ndim != x.ndim or any(s > t for i, (s, t) in enumerate(zip(idx.shape, x.shape))
                                  if i != a):
        raise user_error(IndexError, f"gather: index {list(idx.shape)} must have the rank of "
                         f"input {list(x.shape)} and no larger sizes outside dim {a}")
    x = slice_to(x, idx.shape, a)
    return _gather_full(x, _index_array(idx, x.shape[a], a), a)


def slice_to(x, shape, skip):
    for i, s in enumerate(shape):
        if i != skip and x.shape[i] != s:
            x = slice_axis(x, i, 0, s)
    return x


def index_select(input, dim, index):
    x = operand(input)
    a = norm_axis(dim, x.shape, "index_select")
    idx = index if isinstance(index, Tensor) else np.asarray(index, dtype=np.int64)
    if getattr(idx, "ndim", 1) > 1:
        raise user_error(IndexError, "index_select: index must be 0-d or 1-d")
    if idx.ndim == 0:  # a 0-d index keeps the dim (size 1), as in PyTorch
        idx = reshape(idx, 1) if isinstance(idx, Tensor) else idx.reshape(1)
    return getitem(x, (slice(None),) * a + (idx,), op="index_select")


def take(input, index):
    """Indexes the flattened tensor."""
    return getitem(reshape(operand(input), -1), index, op="take")


def one_hot(tensor, num_classes: int = -1):
    """``out[..., c] = 1 if tensor[...] == c else 0`` (int64), like ``F.one_hot``.

    Class values outside ``[0, num_classes)`` are an error, as in PyTorch: checked now for an
    eager tensor, and when compiled code runs otherwise (the rows are gathered from an identity
    matrix, and ``gather`` checks its indices).
    """
    x = operand(tensor)
    if not x.dtype.is_integer:
        raise user_error(TypeError, f"one_hot: expected an integer tensor, got {x.dtype.name} "
                         f"(shape {list(x.shape)})")
    if num_classes < 0:
        if x._is_tracer:
            raise user_error(ConcretizationError, "one_hot: num_classes must be given inside "
                             "compiled code (it decides the result's shape)")
        num_classes = int(x.numpy().max()) + 1 if x.numel() else 0
    if not x._is_tracer and x.numel():
        v = x.numpy()
        if v.min() < 0 or v.max() >= num_classes:
            bad = v[(v < 0) | (v >= num_classes)].flat[0]
            raise user_error(IndexError, f"one_hot: class value {bad} is out of range "
                             f"[0, {num_classes}) (shape {list(x.shape)})")
    n = num_classes
    eye = bind("eq", bind("iota", shape=(n, n), axis=0, dtype=D.int64),
               bind("iota", shape=(n, n), axis=1, dtype=D.int64))
    return bind("gather", cast(eye, D.int64), x)


def nonzero(input, *, as_tuple=False):
    x = operand(input)
    if x._is_tracer:
        raise user_error(ConcretizationError, "nonzero has a data-dependent shape and cannot be "
                         "used inside compiled code")
    idx = np.nonzero(x.numpy())
    if as_tuple:
        return tuple(Tensor._wrap(i.astype(np.int64)) for i in idx)
    return Tensor._wrap(np.stack(idx, axis=1).astype(np.int64) if idx else
                        np.zeros((0, 0), np.int64))


def masked_fill(input, mask, value):
    from .elementwise import where
    x = operand(input)
    return cast(where(mask, value, x), x.dtype)
