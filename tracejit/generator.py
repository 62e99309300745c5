"""PyTorch's random API: generators with a seed and a counter offset, and ``rand``, ``randn``,
``randint``, ``rand_like``, ``randn_like``, ``normal``, ``randperm``.

Input: shapes, dtypes, ``generator=``. Output: Tensors. Each draw takes a fresh range of Philox
counters from the generator and turns the bits into values with the transforms of
`tracejit/random.py`, so a seed fixes every number on every backend.
"""

from __future__ import annotations

import os
import threading

import numpy as np

from . import dtypes as D
from .errors import user_error
from .ops import elementwise as E
from .ops import reduce as R
from .ops.common import cast, operand, shape_arg
from .primitives.random import blocks_needed
from .random import SEED_MASK, _float_dtype, _normal01, _uniform01
from .tensor import Tensor, _check_device
from .trace import current_builder

__all__ = ["Generator", "default_generator", "manual_seed", "seed", "initial_seed",
           "get_rng_state", "set_rng_state", "rand", "randn", "randint", "rand_like",
           "randn_like", "normal", "randperm"]

DEFAULT_SEED = 67280421310721  # PyTorch's default seed: unseeded runs are reproducible too


class Generator:
    """A random-number generator: a seed and a counter offset that every draw advances.

    >>> import tracejit as tj
    >>> g = tj.Generator().manual_seed(0)
    >>> a = tj.rand(3, generator=g)
    >>> _ = g.manual_seed(0)
    >>> bool((a == tj.rand(3, generator=g)).all())
    True
    """

    def __init__(self, device="cpu"):
        _check_device(device)
        self.device = device
        # [seed, offset]: one buffer, so a compiled function can capture it and advance it
        self._state = Tensor._wrap(np.array([DEFAULT_SEED, 0], dtype=np.int64))

    @property
    def _seed(self) -> int:
        return int(self._state._value[0])

    @property
    def _offset(self) -> int:
        return int(self._state._value[1])

    def _set(self, seed: int, offset: int) -> None:
        self._state._value[:] = (seed, offset)
        self._state._bump_version()

    def manual_seed(self, seed: int) -> Generator:
        if not isinstance(seed, (int, np.integer)):
            raise TypeError(f"manual_seed: seed must be an int, got {type(seed).__name__}")
        self._set(int(seed) & SEED_MASK, 0)
        return self

    def seed(self) -> int:
        self.manual_seed(int.from_bytes(os.urandom(8), "little") >> 1)
        return self._seed

    def initial_seed(self) -> int:
        return self._seed

    def get_state(self) -> Tensor:
        return Tensor._wrap(np.array([self._seed, self._offset], dtype=np.int64))

    def set_state(self, state) -> Generator:
        s = np.asarray(state)
        if s.shape != (2,) or s.dtype.kind not in "iu":
            raise ValueError(f"set_state: expected an int64 tensor of shape [2], got {s.dtype} "
                             f"{list(s.shape)}")
        self._set(int(s[0]), int(s[1]))
        return self

    def _key(self, blocks: int, what: str) -> Tensor:
        """The key of the next draw of `blocks` counter blocks; advances the generator. Inside
        `tj.compile` the generator's state is an input of the compiled function and its
        advance is written back after every call (`state.py`), so each call draws new
        numbers, exactly the numbers the same eager calls would draw."""
        if current_builder() is not None:
            from .ops.inplace import store
            from .state import state_builder
            b = state_builder()
            if b is None:
                raise user_error(NotImplementedError, (
                    f"{what}: random numbers from a generator's global state are supported in "
                    "eager code and at the top level of tj.compile, not inside tj.grad/vmap/"
                    "cond/loops. Pass an explicit key instead: key = tj.random.key(seed); "
                    "tj.random.uniform(key, shape)"))
            k = Tensor._tracer(b.lift(self._state), b)
            step = Tensor._wrap(np.array([0, blocks], dtype=np.int64))
            store(self._state, E.add(k, step), what)
            return k
        with _draw_lock:  # (DataLoader workers are threads: two draws never share numbers)
            k = Tensor._wrap(self._state._value.copy())
            self._state._value[1] += blocks
            self._state._bump_version()
        return k


_draw_lock = threading.Lock()
default_generator = Generator()


def manual_seed(seed: int) -> Generator:
    """Seeds the default generator (PyTorch's ``torch.manual_seed``)."""
    return default_generator.manual_seed(seed)


def seed() -> int:
    return default_generator.seed()


def initial_seed() -> int:
    return default_generator.initial_seed()


def get_rng_state() -> Tensor:
    return default_generator.get_state()


def set_rng_state(state) -> None:
    default_generator.set_state(state)


def _finish(t: Tensor, requires_grad: bool, device) -> Tensor:
    if device is not None:
        t = t.to(device)
    if requires_grad:
        t.requires_grad_(True)
    return t


def rand(*size, generator=None, dtype=None, device=None, requires_grad=False) -> Tensor:
    """Uniform samples from [0, 1)."""
    shape = shape_arg("rand", size)
    dt = _float_dtype(dtype, "rand")
    k = (generator or default_generator)._key(blocks_needed(shape, 2 if dt == D.float64 else 1),
                                              "rand")
    return _finish(_uniform01(k, shape, dt), requires_grad, device)


def randn(*size, generator=None, dtype=None, device=None, requires_grad=False) -> Tensor:
    """Standard normal samples."""
    shape = shape_arg("randn", size)
    dt = _float_dtype(dtype, "randn")
    k = (generator or default_generator)._key(blocks_needed(shape, 2), "randn")
    return _finish(_normal01(k, shape, dt), requires_grad, device)


def randint(low=0, high=None, size=None, *, generator=None, dtype=None, device=None,
            requires_grad=False) -> Tensor:
    """Integers uniform in ``[low, high)``: ``randint(high, size)`` or ``randint(low, high,
    size)``."""
    if size is None:
        if high is None or not isinstance(high, (tuple, list)):
            raise user_error(TypeError, "randint: size is required, e.g. randint(10, (3,))")
        low, high, size = 0, low, high
    shape = shape_arg("randint", (size,))
    if high <= low:
        raise user_error(ValueError, f"randint: empty range [{low}, {high})")
    dt = D.as_dtype(dtype) if dtype is not None else D.int64
    k = (generator or default_generator)._key(blocks_needed(shape, 2), "randint")
    u = _uniform01(k, shape, D.float64)
    return _finish(cast(E.add(E.floor(E.mul(u, float(high - low))), float(low)), dt),
                   requires_grad, device)


def rand_like(input, *, dtype=None, generator=None, device=None, requires_grad=False):
    x = operand(input)
    return rand(x.shape, dtype=dtype or x.dtype, generator=generator, device=device,
                requires_grad=requires_grad)


def randn_like(input, *, dtype=None, generator=None, device=None, requires_grad=False):
    x = operand(input)
    return randn(x.shape, dtype=dtype or x.dtype, generator=generator, device=device,
                 requires_grad=requires_grad)


def normal(mean=0.0, std=1.0, size=None, *, generator=None, dtype=None, device=None,
           requires_grad=False) -> Tensor:
    """Normal samples; `mean`/`std` may be Tensors (broadcast together) or numbers with
    ``size``."""
    tensors = [v for v in (mean, std) if isinstance(v, Tensor)]
    if tensors:
        shape = tuple(np.broadcast_shapes(*(t.shape for t in tensors)))
        dt = tensors[0].dtype if dtype is None else D.as_dtype(dtype)
    else:
        if size is None:
            raise user_error(TypeError, "normal: give size= when mean and std are numbers")
        shape = shape_arg("normal", (size,))
        dt = _float_dtype(dtype, "normal")
    if not isinstance(std, Tensor) and std < 0:
        raise user_error(ValueError, f"normal: std must be non-negative, got {std}")
    z = randn(shape, generator=generator, dtype=dt)
    return _finish(cast(E.add(E.mul(z, std), mean), dt), requires_grad, device)


def randperm(n: int, *, generator=None, dtype=None, device=None, requires_grad=False) -> Tensor:
    """A random permutation of ``0 .. n-1``."""
    if n < 0:
        raise user_error(ValueError, f"randperm: n must be non-negative, got {n}")
    k = (generator or default_generator)._key(blocks_needed((n,), 2), "randperm")
    u = _uniform01(k, (n,), D.float64)
    perm = R.argsort(u) if n else cast(u, D.int64)
    return _finish(cast(perm, D.as_dtype(dtype) if dtype is not None else D.int64),
                   requires_grad, device)


