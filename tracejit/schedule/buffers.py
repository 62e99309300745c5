"""Buffer planning: a Schedule -> where each temporary buffer lives in one reusable arena.

Input: a `Schedule`. Output: a `BufferPlan`: the arena's size in bytes and, for every temporary
buffer a generated step writes (not the inputs, constants or outputs, and not what externs
return, which numpy allocates), its byte offset in the arena. Two temporaries share memory when
their lifetimes — from the step that writes one to the last step that reads it — do not overlap,
so a chain of kernels reuses the same few blocks instead of allocating (and page-faulting) a new
array per kernel per call. Offsets are aligned to `ALIGN` bytes (a cache line, and the widest
vector load). Placement is greedy, largest buffers first, each at the lowest offset that does
not collide with a buffer it is alive together with.
"""

from __future__ import annotations

from dataclasses import dataclass

from .kernel import Extern, Schedule, step_outputs

__all__ = ["BufferPlan", "plan_buffers", "ALIGN"]

ALIGN = 64


@dataclass
class BufferPlan:
    size: int                 # bytes
    offsets: dict[int, int]   # buffer -> byte offset in the arena
    naive: int                # bytes the same temporaries take without reuse


def _nbytes(info) -> int:
    n = info.dtype.itemsize
    for d in info.shape:
        n *= d
    return max(n, 1)


def plan_buffers(s: Schedule) -> BufferPlan:
    first: dict[int, int] = {}
    last: dict[int, int] = {}
    for i, st in enumerate(s.steps):
        for b in getattr(st, "inputs", []):
            last[b] = i
        if isinstance(st, Extern):
            continue
        for b in step_outputs(st):
            if s.buffers[b].kind == "temp":
                first.setdefault(b, i)
                last.setdefault(b, i)
    for b in first:
        last[b] = max(last[b], first[b])
    order = sorted(first, key=lambda b: (-_nbytes(s.buffers[b]), b))
    placed: list[tuple[int, int, int]] = []  # (buffer, start, end)
    offsets: dict[int, int] = {}
    for b in order:
        size = -(-_nbytes(s.buffers[b]) // ALIGN) * ALIGN
        busy = sorted((start, start + sz) for c, start, sz in placed
                      if not (last[c] < first[b] or last[b] < first[c]))
        off = 0
        for lo, hi in busy:
            if off + size <= lo:
                break
            off = max(off, hi)
        offsets[b] = off
        placed.append((b, off, size))
    size = max((start + sz for _, start, sz in placed), default=0)
    naive = sum(-(-_nbytes(s.buffers[b]) // ALIGN) * ALIGN for b in first)
    return BufferPlan(size, offsets, naive)
