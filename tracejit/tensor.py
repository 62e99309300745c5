"""`Tensor`: tracejit's one array type.

Input: numpy buffers (a realized Tensor) or graph nodes (a tracer inside `compile`/`make_graph`).
Output: an object with PyTorch's tensor API. Ops and operator methods are attached by
`tracejit.ops.methods`; every one of them goes through `trace.bind`, so realized Tensors compute
eagerly and tracers record graph nodes with the same type rules and errors.
"""

from __future__ import annotations

import numbers

import numpy as np

from . import dtypes as D
from .errors import user_error
from .ir.graph import TensorType

__all__ = ["Tensor", "device", "as_tensor", "to_numpy_arg", "tensor", "from_numpy", "asarray"]


class device:
    """A device name: ``tj.device("cpu")``, ``tj.device("cuda:0")``, ``tj.device("cuda", 1)``."""

    __slots__ = ("type", "index")

    def __init__(self, type, index: int | None = None):
        if isinstance(type, device):
            type, index = type.type, type.index
        if not isinstance(type, str):
            raise TypeError(f"device: expected a string like 'cpu' or 'cuda:0', got {type!r}")
        if ":" in type:
            type, _, idx = type.partition(":")
            if not idx.isdigit():
                raise ValueError(f"device: bad device index in {type}:{idx}")
            index = int(idx)
        if type not in ("cpu", "cuda", "interpreter"):
            raise ValueError(f"device: unknown device type {type!r} (expected 'cpu' or 'cuda')")
        self.type, self.index = type, index

    def __str__(self):
        return self.type if self.index is None else f"{self.type}:{self.index}"

    def __repr__(self):
        idx = "" if self.index is None else f", index={self.index}"
        return f"device(type='{self.type}'{idx})"

    def __eq__(self, other):
        if isinstance(other, str):
            other = device(other)
        return isinstance(other, device) and (self.type, self.index) == (other.type, other.index)

    def __hash__(self):
        return hash((self.type, self.index))


_CPU = device("cpu")


class Tensor:
    """An n-dimensional array with PyTorch's API (see SPEC §1).

    >>> import tracejit as tj
    >>> t = tj.tensor([[1.0, 2.0], [3.0, 4.0]])
    >>> (t * 2 + 1).sum(dim=1)
    tensor([ 8., 16.])
    """

    __array_priority__ = 1000

    def __init__(self, *args, dtype=None):
        """``tj.Tensor(data)`` copies `data` as float32 (like ``torch.Tensor``); ``tj.Tensor(2,
        3)`` is a zero-filled 2x3 float32 tensor."""
        dt = D.float32 if dtype is None else D.as_dtype(dtype)
        if args and all(isinstance(a, int) and not isinstance(a, bool) for a in args):
            src = as_tensor(np.zeros(args, dtype=dt.np), copy=True)
        elif len(args) <= 1:
            src = as_tensor(args[0] if args else [], dtype=dt, copy=True)
        else:
            raise TypeError("Tensor(): expected data or integer sizes")
        self._value, self._node, self._builder, self._weak = (
            src._value, src._node, src._builder, src._weak)
        self._init_autograd()

    # -- value ------------------------------------------------------------------------------
    _val = None  # the buffer of a realized Tensor
    _lazy = None  # the pending node of a lazy eager result (lazy.py), its segment
    _lazy_seg = None
    _exposed = False  # the buffer was handed to numpy (from_numpy, numpy(), np.asarray)

    @property
    def _value(self):
        v = self._val
        if v is None and self._lazy is not None:
            from .lazy import realize_pending
            realize_pending(self._lazy_seg)
            v = self._val
        return v

    @_value.setter
    def _value(self, v) -> None:
        self._val = v

    # -- autograd state (class defaults; an instance sets only what differs) ------------------
    grad_fn = None  # the BackwardNode that made this Tensor (None for leaves)
    _out_index = 0  # which result of grad_fn this is
    _requires_grad = False
    _grad = None
    _retains_grad = False
    _accum = None  # weakref to a leaf's AccumulateGrad
    _vc = None  # version counter: [n], shared with detach()ed aliases

    def _init_autograd(self):
        pass

    @property
    def requires_grad(self) -> bool:
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, flag) -> None:
        flag = bool(flag)
        if self.grad_fn is not None and not flag:
            raise RuntimeError("you can only change requires_grad flags of leaf variables. If "
                               "you want to use a computed variable in a subgraph that doesn't "
                               "require differentiation use var_no_grad = var.detach().")
        if flag and not self.dtype.is_floating_point:
            raise RuntimeError("only Tensors of floating point dtype can require gradients")
        self._requires_grad = flag

    @property
    def grad(self):
        """The gradient accumulated by ``backward()`` (leaves, and non-leaves after
        ``retain_grad()``)."""
        if self.grad_fn is not None and not self._retains_grad and self._grad is None:
            import warnings
            warnings.warn("The .grad attribute of a Tensor that is not a leaf Tensor is being "
                          "accessed. Its .grad attribute won't be populated during "
                          "autograd.backward(). If you indeed want the .grad field to be "
                          "populated for a non-leaf Tensor, use .retain_grad() on the non-leaf "
                          "Tensor.", UserWarning, stacklevel=2)
        return self._get_grad()

    def _get_grad(self):
        if self._node is None:
            from .state import state_builder
            b = state_builder()
            if b is not None:  # inside tj.compile: see state.py
                return b.read_grad(self)
        return self._grad

    @grad.setter
    def grad(self, g) -> None:
        if g is not None:
            if not isinstance(g, Tensor):
                raise TypeError(f"assigned grad expected to be a Tensor or None but got grad "
                                f"of type {type(g).__name__}")
            if g.shape != self.shape:
                raise RuntimeError(f"assigned grad has data of a different size: grad is "
                                   f"{list(g.shape)}, tensor is {list(self.shape)}")
            if g.dtype != self.dtype:
                raise RuntimeError(f"assigned grad has data of a different type: grad is "
                                   f"{g.dtype}, tensor is {self.dtype}")
        self._set_grad(g)

    def _set_grad(self, g) -> None:
        if self._node is None:
            from .trace import current_builder
            b = current_builder()
            if b is not None:
                if not hasattr(b, "write_grad"):
                    raise user_error(RuntimeError, "cannot set the .grad of a tensor created "
                                     "outside this trace here; only the top level of a "
                                     "tj.compile'd function can (see docs/tensor.md)")
                b.write_grad(self)
        self._grad = g

    @property
    def is_leaf(self) -> bool:
        return self.grad_fn is None

    @property
    def retains_grad(self) -> bool:
        return self._retains_grad

    def retain_grad(self) -> None:
        """Keeps this non-leaf Tensor's gradient in ``.grad`` during ``backward()``."""
        if not self._requires_grad:
            raise RuntimeError("can't retain_grad on Tensor that has requires_grad=False")
        if self.grad_fn is None or self._retains_grad:
            return
        import weakref
        fn = self.grad_fn
        if fn.retained is None:
            fn.retained = {}
        fn.retained[self._out_index] = weakref.ref(self)
        self._retains_grad = True

    def _counter(self) -> list:
        if self._vc is None:
            self._vc = [0]
        return self._vc

    @property
    def _version(self) -> int:
        return 0 if self._vc is None else self._vc[0]

    def _bump_version(self) -> None:
        self._counter()[0] += 1

    def backward(self, gradient=None, retain_graph=None, create_graph=False, inputs=None):
        """Accumulates the gradient of this Tensor into the ``.grad`` of the leaves it depends
        on (PyTorch's ``Tensor.backward``).

        >>> import tracejit as tj
        >>> x = tj.arange(4.0, requires_grad=True)
        >>> y = 2 * tj.dot(x, x)
        >>> y.backward()
        >>> x.grad
        tensor([ 0.,  4.,  8., 12.])
        """
        from .autograd.engine import backward
        backward(self, gradient, retain_graph, create_graph, inputs)

    def register_hook(self, hook):
        raise NotImplementedError("Tensor.register_hook is not supported yet; use "
                                  "retain_grad() or tj.autograd.grad")

    # -- construction -----------------------------------------------------------------------
    @classmethod
    def _wrap(cls, value: np.ndarray, weak: bool = False) -> Tensor:
        """A realized Tensor around `value` (no copy). Weak eager values take default dtypes."""
        t = object.__new__(cls)
        if weak:
            value = value.astype({0: np.bool_, 1: np.int64, 2: np.float32}[
                D.as_dtype(value.dtype).category])
        t._value, t._node, t._builder, t._weak = value, None, None, False
        t._init_autograd()
        return t

    @classmethod
    def _tracer(cls, node, builder, value: np.ndarray | None = None) -> Tensor:
        """A traced value. `value` is its concrete value when the trace is concrete (the
        functional derivative API traces with real inputs so Python may branch on values)."""
        t = object.__new__(cls)
        t._value, t._node, t._builder = value, node, builder
        t._weak = node.type.weak if node.type is not None else False
        t._init_autograd()
        return t

    def _type(self):
        if self._node is not None:
            return self._node.type if self._node.type is not None else self._node.types
        if self._lazy is not None:
            return self._lazy.type
        return TensorType(self._val.shape, D.as_dtype(self._val.dtype), self._weak)

    @property
    def _is_tracer(self) -> bool:
        return self._node is not None

    # -- attributes -------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        if self._node is not None:
            return self._node.shape
        if self._lazy is not None:
            return self._lazy.shape
        return self._val.shape

    @property
    def dtype(self) -> D.DType:
        if self._node is not None:
            return self._node.dtype
        if self._lazy is not None:
            return self._lazy.dtype
        return D.as_dtype(self._val.dtype)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def device(self) -> device:
        if self._lazy is not None:
            return self._lazy_seg.device or _CPU
        v = self._val
        if v is not None and type(v) is not np.ndarray and getattr(v, "_tj_device", False):
            return device("cuda", v.driver.index)
        return _CPU

    @property
    def is_cuda(self) -> bool:
        return self.device.type == "cuda"

    @property
    def layout(self):
        from .sparse.layout import strided
        return strided

    is_sparse = is_sparse_csr = False  # (sparse tensors: tracejit/sparse/tensor.py)

    def to_sparse(self, sparse_dim=None):
        """This tensor's nonzero entries as a COO sparse tensor (tracejit/sparse)."""
        from .sparse.construct import dense_to_sparse
        return dense_to_sparse(self, sparse_dim)

    def to_sparse_csr(self):
        """This 2-d tensor's nonzero entries as a CSR sparse tensor (tracejit/sparse)."""
        from .sparse.construct import dense_to_sparse_csr
        return dense_to_sparse_csr(self)

    def to_dense(self):
        return self

    def numel(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    def dim(self) -> int:
        return self.ndim

    def size(self, dim: int | None = None):
        if dim is None:
            return self.shape
        from .ops.common import norm_axis
        return self.shape[norm_axis(dim, self.ndim, "size")]

    def __len__(self) -> int:
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    def __iter__(self):
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(self.shape[0]))

    def __hash__(self):
        return id(self)

    # -- conversion to Python/numpy ---------------------------------------------------------
    def _concrete(self, what: str) -> np.ndarray:
        if self._node is not None:
            if self._value is not None and self._builder.concrete:
                self._builder.guard(self, what)  # the trace is now specialised to this value
                return self._value
            from .trace import concretization_error
            raise concretization_error(what, self._type())
        v = self._value
        if type(v) is not np.ndarray and getattr(v, "_tj_device", False):
            return v.get()  # a CUDA tensor: copied to the host
        return v

    def _rebind(self, new: Tensor) -> None:
        """Makes this tracer stand for `new` (in-place ops inside a trace)."""
        self._node, self._builder, self._value = new._node, new._builder, new._value

    def numpy(self) -> np.ndarray:
        """The data as a numpy array, sharing memory with this Tensor."""
        v = self._concrete("Tensor.numpy()")
        self._exposed = True
        return v

    def __array__(self, dtype=None, copy=None):
        v = self._concrete("np.asarray(tensor)")
        self._exposed = True
        if dtype is not None and np.dtype(dtype) != v.dtype:
            return v.astype(dtype)
        return np.array(v, copy=True) if copy else v

    # -- zero-copy interop: DLPack and __cuda_array_interface__ (interop.py) -------------------
    def __dlpack__(self, *, stream=None, max_version=None, dl_device=None, copy=None):
        """A DLPack capsule sharing this Tensor's memory (``np.from_dlpack(t)``,
        ``torch.from_dlpack(t)``). A tensor on the host emulation of CUDA shares its memory
        with ``tj.from_dlpack`` only (others get a host copy): see `tracejit.interop`."""
        from .interop import to_dlpack
        return to_dlpack(self, stream=stream, max_version=max_version, dl_device=dl_device,
                         copy=copy)

    def __dlpack_device__(self) -> tuple[int, int]:
        from .interop import dlpack_device
        return dlpack_device(self)

    @property
    def __cuda_array_interface__(self) -> dict:
        """Version 3 of the CUDA array interface (CuPy, Numba, PyTorch) for a tensor on a GPU;
        an AttributeError elsewhere (CPU, the host emulation), so ``hasattr`` is False."""
        from .interop import cuda_array_interface
        return cuda_array_interface(self)

    def item(self):
        v = self._concrete("Tensor.item()")
        if v.size != 1:
            raise user_error(ValueError, f"item(): a Tensor with {v.size} elements cannot be "
                             "converted to a Python scalar")
        return v.reshape(()).item()

    def tolist(self):
        return self._concrete("Tensor.tolist()").tolist()

    def _scalar(self, kind, what):
        v = self._concrete(what)
        if v.size != 1:
            raise user_error(ValueError, f"{what}: only one-element tensors can be converted "
                             f"to Python scalars (shape {list(v.shape)})")
        return kind(v.reshape(()).item())

    def __bool__(self):
        return self._scalar(bool, "bool(tensor)")

    def __float__(self):
        return self._scalar(float, "float(tensor)")

    def __int__(self):
        return self._scalar(int, "int(tensor)")

    def __index__(self):
        if not (self.dtype.is_integer or self.dtype.is_bool):
            raise TypeError(f"only integer tensors can be used as an index, got {self.dtype}")
        return self._scalar(int, "operator.index(tensor)")

    def __complex__(self):
        return self._scalar(complex, "complex(tensor)")

    def __format__(self, spec):
        if self._node is None and self._value.ndim == 0 and spec:
            return format(self._value.item(), spec)
        return format(repr(self), spec)

    def __repr__(self):
        from .printing import tensor_repr
        return tensor_repr(self)

    __str__ = __repr__

    # -- devices, dtypes, copies ------------------------------------------------------------
    def to(self, *args, dtype=None, device=None, copy=False, non_blocking=False):
        for a in args:
            if isinstance(a, (D.DType, type)) or (isinstance(a, str) and a in D._BY_NAME):
                dtype = a
            elif isinstance(a, Tensor):
                dtype = a.dtype
            else:
                device = a
        out = self.astype(dtype) if dtype is not None else self
        if device is not None:
            d = _check_device(device)
            if d != out.device:
                from .devices import move
                return move(out, d)
        return out.clone() if copy and out is self else out

    def cpu(self):
        return self.to("cpu")

    def cuda(self, device=None):
        return self.to("cuda" if device is None else device)

    def astype(self, dtype) -> Tensor:
        from .ops.common import cast
        return cast(self, D.as_dtype(dtype))

    def float(self):
        return self.astype(D.float32)

    def double(self):
        return self.astype(D.float64)

    def half(self):
        return self.astype(D.float16)

    def long(self):
        return self.astype(D.int64)

    def int(self):
        return self.astype(D.int32)

    def bool(self):
        return self.astype(D.bool_)

    def type(self, dtype=None):
        return self.dtype if dtype is None else self.astype(dtype)

    def clone(self) -> Tensor:
        if self._node is not None:  # a new tracer object, so in-place writes to it stay its own
            return Tensor._tracer(self._node, self._builder, self._value)
        v = self._value
        return Tensor._wrap(v.copy() if type(v) is not np.ndarray else np.array(v, copy=True))

    def contiguous(self) -> Tensor:
        if self.is_contiguous():
            return self
        return Tensor._wrap(np.ascontiguousarray(self._value))

    def is_contiguous(self) -> bool:
        return self._node is not None or self._lazy is not None or \
            type(self._val) is not np.ndarray or bool(self._val.flags.c_contiguous)

    def detach(self) -> Tensor:
        """The same data, cut off from differentiation (``tj.stop_gradient``); it shares the
        version counter, so in-place writes through either are seen by autograd."""
        if self._node is not None:
            from .trace import bind
            out = bind("stop_gradient", self)
        elif self._lazy is not None and not self._lazy_seg.done:
            from .lazy import alias
            out = alias(self)
        else:
            out = Tensor._wrap(self._value)
        out._vc = self._counter()
        return out

    def detach_(self) -> Tensor:
        """Makes this Tensor a leaf that does not require grad."""
        self.grad_fn, self._requires_grad = None, False
        return self

    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        self.requires_grad = requires_grad
        return self

    @property
    def data(self) -> Tensor:
        """The same data as a Tensor that does not require grad (writes go through)."""
        return self.detach()

    @data.setter
    def data(self, new) -> None:
        """Points this Tensor at `new`'s data (any shape and dtype, as PyTorch allows); its
        autograd identity (leaf, requires_grad, .grad) stays."""
        new = as_tensor(new)
        if new._node is not None or self._node is not None:
            raise user_error(TypeError, "Tensor.data = ...: cannot rebind traced values; use "
                             "an in-place op (copy_) inside compiled code")
        self._val, self._weak = new._value, new._weak
        self._lazy = self._lazy_seg = None
        self._vc = new._counter()

    # -- copying and pickling ------------------------------------------------------------------
    def __getstate__(self):
        if self._node is not None:
            raise TypeError("a traced Tensor cannot be pickled or copied; return it from the "
                            "traced function instead")
        if self.grad_fn is not None:
            raise RuntimeError("Only Tensors created explicitly by the user (graph leaves) "
                               "support the deepcopy protocol at the moment.  If you were "
                               "attempting to deepcopy a module, this may be because of a "
                               "torch.nn.utils.weight_norm usage, see "
                               "https://github.com/pytorch/pytorch/pull/103001")
        drop = ("_lazy", "_lazy_seg", "_accum", "_accum_strong", "_vc")
        state = {k: v for k, v in self.__dict__.items() if k not in drop}
        state["_val"] = self._value  # (realizes a lazy Tensor)
        if self.is_cuda:  # pickled as host data, restored onto its device
            state["_val"], state["_cuda"] = state["_val"].get(), self.device.index
        state["_node"] = state["_builder"] = None
        return state

    def __setstate__(self, state) -> None:
        index = state.pop("_cuda", None)
        self.__dict__.update(state)
        if index is not None:
            from .devices import to_device_array
            self._val = to_device_array(self._val, device("cuda", index))


def _check_device(dev) -> device:
    """`dev` as a `device`, with the index of the current CUDA device filled in; a CUDA device
    that cannot be used raises a RuntimeError saying what is missing."""
    d = device(dev)
    if d.type == "cuda":
        from . import cuda
        index = cuda.current_device() if d.index is None else d.index
        cuda.driver(index)
        return device("cuda", index)
    return d


def _infer_list_dtype(data) -> D.DType:
    """PyTorch's inference for nested data: the promotion of the elements' dtypes, where Python
    floats count as float32, ints as int64 and bools as bool, while numpy scalars and Tensors
    keep their own dtype (``[np.float64(1.5)]`` -> float64, ``[1.5, 2]`` -> float32)."""
    out: D.DType | None = None

    def walk(x):
        nonlocal out
        if isinstance(x, (list, tuple)):
            for y in x:
                walk(y)
            return
        if isinstance(x, Tensor):
            dt = x.dtype
        elif isinstance(x, np.generic):
            dt = D.as_dtype(x.dtype)
        elif isinstance(x, bool):
            dt = D.bool_
        elif isinstance(x, numbers.Integral):
            dt = D.int64
        elif isinstance(x, numbers.Real):
            dt = D.float32
        else:
            raise TypeError(f"tensor data must be numbers, got {type(x).__name__}: {x!r}")
        out = dt if out is None else D.promote_types(out, dt)
    walk(data)
    return D.float32 if out is None else out


def _list_to_numpy(data, dtype: D.DType | None) -> np.ndarray:
    dt = dtype or _infer_list_dtype(data)

    def unwrap(x):
        if isinstance(x, (list, tuple)):
            return [unwrap(y) for y in x]
        if isinstance(x, Tensor):
            return x.numpy().tolist()
        return x
    try:
        return np.array(unwrap(data), dtype=dt.np)
    except OverflowError as e:
        raise TypeError(f"tensor data does not fit {dt.name}: {e}") from None
    except ValueError:
        raise TypeError(f"tensor data is ragged: sub-lists have different lengths "
                        f"({_ragged_where(data)})") from None


def _ragged_where(data, path="data") -> str:
    """The first place where nested list lengths disagree, for error messages."""
    subs = [x for x in data if isinstance(x, (list, tuple))]
    if subs and len(subs) != len(data):
        return f"{path} mixes numbers and lists"
    lens = {len(x) for x in subs}
    if len(lens) > 1:
        return f"{path}[i] have lengths {sorted(lens)}"
    for i, x in enumerate(subs):
        inner = _ragged_where(x, f"{path}[{i}]")
        if inner:
            return inner
    return ""


def as_tensor(data, dtype=None, copy: bool = False) -> Tensor:
    """Converts `data` to a Tensor: inside a trace, non-Tensor data becomes a constant node.

    Python scalars become weakly typed values (they adopt the other operand's dtype).
    """
    from .ir.graph import Literal
    from .trace import bind, current_builder
    dtype = None if dtype is None else D.as_dtype(dtype)
    if isinstance(data, Tensor):
        out = data if dtype is None or data.dtype == dtype else data.astype(dtype)
        return out.clone() if copy and out is data else out
    if isinstance(data, (bool, int, float)) and not isinstance(data, np.generic):
        if dtype is None:
            dt = {0: D.bool_, 1: D.int64, 2: D.float64}[D.scalar_dtype(data).category]
            return bind("constant", value=data, dtype=dt, weak=True)
        return bind("constant", value=data, dtype=dtype)
    if isinstance(data, (np.ndarray, np.generic)):
        arr = np.asarray(data)
        D.as_dtype(arr.dtype)  # rejects unsupported dtypes with a clear TypeError
        if dtype is not None:
            arr = arr.astype(dtype.np, copy=False)
    elif isinstance(data, (list, tuple)):
        arr = _list_to_numpy(data, dtype)
    elif hasattr(data, "__array__") or hasattr(data, "__array_interface__"):
        arr = np.asarray(data)
        D.as_dtype(arr.dtype)
        if dtype is not None:
            arr = arr.astype(dtype.np, copy=False)
    else:
        raise user_error(TypeError, f"expected array data (a Tensor, numpy array, number or "
                         f"nested list of numbers), got {type(data).__name__}: {data!r:.80}")
    if current_builder() is not None:
        return bind("constant", value=Literal(arr), dtype=D.as_dtype(arr.dtype))
    if copy or not arr.flags.writeable:
        arr = np.array(arr, copy=True)
    return Tensor._wrap(arr)


def _python_scalar(x) -> bool:
    """A Python bool/int/float (numpy scalars subclass these but keep their own dtype)."""
    return isinstance(x, (bool, int, float)) and not isinstance(x, np.generic)


def tensor(data, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """A new Tensor holding a copy of `data` (nested lists, numbers, arrays, Tensors).

    >>> import tracejit as tj
    >>> tj.tensor([1, 2, 3])
    tensor([1, 2, 3])
    >>> tj.tensor([1.5, 2]).dtype
    tracejit.float32
    """
    t = as_tensor(data, dtype=dtype, copy=True)
    if _python_scalar(data) and dtype is None:
        t = t.astype(D.scalar_dtype(data))
    if device is not None:
        t = t.to(device)
    if requires_grad:
        t.requires_grad_(True)
    return t


def asarray(data, dtype=None, device=None) -> Tensor:
    """Like `tensor`, but shares memory with numpy arrays and Tensors when it can."""
    t = as_tensor(data, dtype=dtype)
    if _python_scalar(data) and dtype is None:
        t = t.astype(D.scalar_dtype(data))
    return t if device is None else t.to(device)


def from_numpy(a: np.ndarray) -> Tensor:
    """A Tensor sharing memory with numpy array `a` (writes to either are seen by both)."""
    if not isinstance(a, np.ndarray):
        raise TypeError(f"from_numpy: expected np.ndarray, got {type(a).__name__}")
    D.as_dtype(a.dtype)
    t = Tensor._wrap(a)
    t._exposed = True
    return t


def to_numpy_arg(x, node=None) -> np.ndarray:
    """The numpy value of a runtime argument (for running graphs directly)."""
    if isinstance(x, Tensor):
        return x.numpy()
    if isinstance(x, (bool, int, float)):
        if node is not None:
            return np.asarray(x, dtype=node.dtype.np)
        return np.asarray(x)
    return np.asarray(x)
