"""Random-number primitive: ``random_bits``, a counter-based generator (Philox-4x32-10).

Input: a key ``i64[2]`` = (seed, counter offset). Output: OpDef records. The result depends only
on the key and the shape, never on hidden state, so the same key gives the same numbers on every
backend and inside or outside compiled code. Generators and the user-facing distributions are
built on top of it in `tracejit/random.py`.
"""

from __future__ import annotations

import math

import numpy as np

from .. import dtypes as D
from ..ir.graph import TensorType
from .registry import OpDef, RuleError, register

__all__ = ["philox", "blocks_needed"]

_M0, _M1 = np.uint64(0xD2511F53), np.uint64(0xCD9E8D57)
_W0, _W1 = np.uint32(0x9E3779B9), np.uint32(0xBB67AE85)
_MASK = np.uint64(0xFFFFFFFF)


def philox_rounds(k0, k1, c0, c1, c2, c3, rounds: int = 10):
    """The Philox-4x32 bijection on uint32 arrays (Salmon et al., SC'11): four output words."""
    k0, k1 = np.uint32(k0), np.uint32(k1)
    c0, c1, c2, c3 = (np.asarray(c, dtype=np.uint32) for c in (c0, c1, c2, c3))
    with np.errstate(over="ignore"):
        for _ in range(rounds):
            p0 = _M0 * c0.astype(np.uint64)
            p1 = _M1 * c2.astype(np.uint64)
            hi0, lo0 = (p0 >> np.uint64(32)).astype(np.uint32), (p0 & _MASK).astype(np.uint32)
            hi1, lo1 = (p1 >> np.uint64(32)).astype(np.uint32), (p1 & _MASK).astype(np.uint32)
            c0, c1, c2, c3 = hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0
            k0 = np.uint32(k0 + _W0)
            k1 = np.uint32(k1 + _W1)
    return c0, c1, c2, c3


def philox(seed: int, counters: np.ndarray) -> np.ndarray:
    """Philox-4x32-10 of 64-bit `counters` under a 64-bit `seed`: ``(n, 4)`` uint32 words."""
    seed &= (1 << 64) - 1
    ctr = counters.astype(np.uint64)
    lo = (ctr & _MASK).astype(np.uint32)
    hi = (ctr >> np.uint64(32)).astype(np.uint32)
    zero = np.zeros_like(lo)
    return np.stack(philox_rounds(seed & 0xFFFFFFFF, seed >> 32, lo, hi, zero, zero), axis=-1)


def blocks_needed(shape, words_per_value: int = 1) -> int:
    """How many Philox counters a draw of `shape` consumes (4 words each)."""
    return -(-math.prod(shape) * words_per_value // 4)


def _bits_rule(key: TensorType, *, shape, words=1):
    if key.shape != (2,) or key.dtype != D.int64:
        raise RuleError(f"key must be i64[2] (seed, offset), got {key}", TypeError)
    if words not in (1, 2):
        raise RuleError("words must be 1 or 2")
    return TensorType(tuple(shape) + ((2,) if words == 2 else ()), D.int64)


def _bits_ref(key, *, shape, words=1):
    seed, offset = (int(v) for v in key)
    n = math.prod(shape) * words
    blocks = -(-n // 4)
    w = philox(seed, np.arange(blocks, dtype=np.uint64) + np.uint64(offset & ((1 << 64) - 1)))
    bits = w.reshape(-1)[:n].astype(np.int64)
    return bits.reshape(tuple(shape) + ((2,) if words == 2 else ()))


register(OpDef("random_bits", 1, _bits_rule, _bits_ref, traits={"nondiff"},
               doc="random_bits(key) {shape, words}: uniform 32-bit words (as i64) from "
                   "Philox-4x32-10 at counters offset, offset+1, ..."))
