"""Collation: a list of samples -> one batch (``default_collate``), and one sample -> Tensors
(``default_convert``, used when automatic batching is off).

Input: samples as the dataset returns them — Tensors, numpy arrays and scalars, Python numbers,
strings, and dicts, namedtuples, tuples and lists of these. Output: the same structure with
the leaves stacked into Tensors along a new first dimension. The dtype rules are PyTorch's:

    leaves of the batch          batched as
    Tensor                       stack (dtype kept)
    numpy array / numpy scalar   stack of the arrays (dtype kept; strings/objects refused)
    Python float                 float64 Tensor
    Python int                   int64 Tensor
    Python bool                  bool Tensor
    str / bytes                  left as a list
    dict (any Mapping)           same keys, each value collated
    namedtuple                   same type, each field collated
    tuple / other sequence       a list (tuple) or the same type (list) of collated columns
"""

from __future__ import annotations

import collections.abc
import re

import numpy as np

from ... import dtypes as D
from ...tensor import Tensor, from_numpy, tensor

__all__ = ["default_collate", "default_convert"]

_ERR = ("default_collate: batch must contain tensors, numpy arrays, numbers, dicts or lists; "
        "found {}")
_STRING_DTYPE = re.compile(r"[SaUO]")  # numpy dtype kinds a Tensor cannot hold


def _plain(t) -> bool:
    """A realized CPU Tensor outside any trace and autograd: its rows can be stacked with numpy
    directly (the fast path that keeps per-batch collation in microseconds)."""
    return (type(t) is Tensor and t._node is None and t._lazy is None
            and type(t._val) is np.ndarray and not t._requires_grad)


def _stack_tensors(batch: list) -> Tensor:
    first = tuple(batch[0].shape)
    for i, t in enumerate(batch):
        if tuple(t.shape) != first:
            raise RuntimeError(f"stack expects each tensor to be equal size, but got "
                               f"{list(first)} at entry 0 and {list(t.shape)} at entry {i}")
    if all(_plain(t) for t in batch):
        dts = {t._val.dtype for t in batch}
        if len(dts) == 1:
            return Tensor._wrap(np.stack([t._val for t in batch]))
    from ... import stack
    return stack(batch)  # traced, lazy, CUDA or differentiable samples: the general op


def _check_array(a: np.ndarray) -> None:
    if _STRING_DTYPE.search(a.dtype.str) is not None:
        raise TypeError(_ERR.format(a.dtype))


def default_collate(batch):
    """Stacks a list of samples into a batch, PyTorch's ``default_collate``.

    Args:
        batch: a list of samples, all with the same structure.

    Returns:
        The structure of one sample with every leaf batched (see the module's table).

    >>> import tracejit as tj
    >>> from tracejit.utils.data import default_collate
    >>> x, y = default_collate([(tj.tensor([1.0, 2.0]), 0), (tj.tensor([3.0, 4.0]), 1)])
    >>> x
    tensor([[1., 2.],
            [3., 4.]])
    >>> y
    tensor([0, 1])
    >>> default_collate([{"w": 0.5}, {"w": 1.5}])["w"].dtype
    tracejit.float64
    """
    if not isinstance(batch, collections.abc.Sequence) or isinstance(batch, (str, bytes)):
        batch = list(batch)
    if len(batch) == 0:
        raise ValueError("default_collate: got an empty batch")
    elem = batch[0]
    if isinstance(elem, Tensor):
        return _stack_tensors(batch)
    if isinstance(elem, np.ndarray) or (isinstance(elem, np.generic)
                                        and not isinstance(elem, (np.str_, np.bytes_))):
        arrays = [np.asarray(b) for b in batch]
        for a in arrays:
            _check_array(a)
        try:
            out = np.stack(arrays)
        except ValueError:
            shapes = [list(a.shape) for a in arrays]
            i = next(k for k, s in enumerate(shapes) if s != shapes[0])
            raise RuntimeError(f"stack expects each tensor to be equal size, but got "
                               f"{shapes[0]} at entry 0 and {shapes[i]} at entry {i}") from None
        D.as_dtype(out.dtype)  # a clear TypeError for dtypes tracejit has no Tensor of
        return Tensor._wrap(out)
    if isinstance(elem, bool):
        return tensor(batch, dtype=D.bool_)
    if isinstance(elem, float):
        return tensor(batch, dtype=D.float64)
    if isinstance(elem, int):
        return tensor(batch, dtype=D.int64)
    if isinstance(elem, (str, bytes)):
        return batch
    if isinstance(elem, collections.abc.Mapping):
        out = {key: default_collate([d[key] for d in batch]) for key in elem}
        try:
            return type(elem)(out) if type(elem) is not dict else out
        except TypeError:  # a Mapping type that cannot be built from a dict
            return out
    if isinstance(elem, tuple) and hasattr(elem, "_fields"):  # namedtuple
        return type(elem)(*(default_collate(list(s)) for s in zip(*batch)))
    if isinstance(elem, collections.abc.Sequence):
        n = len(elem)
        if not all(len(b) == n for b in batch):
            raise RuntimeError("each element in list of batch should be of equal size")
        columns = [default_collate(list(s)) for s in zip(*batch)]
        if isinstance(elem, tuple):
            return columns  # a list, as PyTorch returns (its backwards compatibility)
        try:
            return type(elem)(columns) if type(elem) is not list else columns
        except TypeError:
            return columns
    raise TypeError(_ERR.format(type(elem)))


def default_convert(data):
    """Converts one sample's numpy arrays and numpy scalars to Tensors, leaving Python numbers,
    strings and everything else as they are (PyTorch's ``default_convert``: the collate
    function of a ``DataLoader`` with ``batch_size=None``).

    >>> import numpy as np
    >>> from tracejit.utils.data import default_convert
    >>> default_convert({"x": np.zeros(2, np.float32), "label": 3})
    {'x': tensor([0., 0.]), 'label': 3}
    """
    if isinstance(data, Tensor):
        return data
    if isinstance(data, np.ndarray) or (isinstance(data, np.generic)
                                        and not isinstance(data, (np.str_, np.bytes_))):
        a = np.asarray(data)
        if _STRING_DTYPE.search(a.dtype.str) is not None:
            return data
        if not a.flags.writeable:
            a = np.array(a)
        return from_numpy(a)  # shares memory with the array, as torch.as_tensor does
    if isinstance(data, (str, bytes)):
        return data
    if isinstance(data, collections.abc.Mapping):
        out = {key: default_convert(v) for key, v in data.items()}
        try:
            return type(data)(out) if type(data) is not dict else out
        except TypeError:
            return out
    if isinstance(data, tuple) and hasattr(data, "_fields"):
        return type(data)(*(default_convert(d) for d in data))
    if isinstance(data, tuple):
        return [default_convert(d) for d in data]  # a list, as PyTorch returns
    if isinstance(data, collections.abc.Sequence):
        out = [default_convert(d) for d in data]
        try:
            return type(data)(out) if type(data) is not list else out
        except TypeError:
            return out
    return data
