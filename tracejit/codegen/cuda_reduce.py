"""CUDA C for reductions and row-fused kernels: Kernel IR -> warp/block reductions.

Input: a reduction `Kernel` or a `RowKernel` of a `Schedule` (`schedule/kernel.py`). Output:
its CUDA C text (kernels declared with `signature`, shared memory through ``TJ_SHARED``,
helpers from ``kernels/cuda/tj_reduce.h``) and its `CudaStep`; `codegen/cuda.py`'s
`render_schedule` calls `render_reduction` and `render_row_kernel` through its `_renderers()`.

A reduction's domain splits into the kept axes (flattened to the output index ``o``) and the
reduced axes (flattened to ``r``). The layout picks the kernel, by the axis the body's loads
walk with stride 1 (the *fast* axis; the domain's innermost axis when no load says):

==========================  ================================================================
fast axis reduced, or one   short rows (<= 1024): ``G`` lanes per output (``G`` a power of two
output ("row", "full")      <= 32, one warp for rows of 32 and more), a warp-shuffle
                            butterfly; long rows: a block per output (`_tile`, ``W = 1``)
fast axis kept ("column")   many outputs or short columns: one thread per output, adjacent
                            threads adjacent outputs; else `_tile` with ``W`` outputs side by
                            side and ``256 / W`` lanes down the reduction per block
==========================  ================================================================

`_tile` splits the reduction over ``S`` blocks per output when the outputs alone are too few to
fill the device: each block writes its partial to scratch and a second launch (``<name>_final``)
combines the ``S`` partials of each output. Every combining order is fixed by the thread and
block numbers of a fixed split, never by timing (no atomics), so results repeat run to run.

A `RowKernel` runs a row per group of ``G`` lanes (rows up to 256 columns) or per block (longer
rows): its stages in order over the row's columns, a reduction stage's value broadcast to every
thread of the row (warp butterfly, then shared memory across warps) for the later stages.

Register types are those of `codegen/cuda.py` (float16 computed in float, bool as ``bool``);
the combining step is `combine()`, wrapped in a functor the header's templates call.
"""

from __future__ import annotations

import numpy as np

from .. import dtypes as D
from ..schedule.kernel import Expr, Kernel, RowKernel, Schedule, walk
from .cuda import (
    CudaStep,
    ExprWriter,
    Launch,
    combine,
    convert,
    ctype,
    identity,
    param_buffers,
    signature,
)

__all__ = ["render_reduction", "render_row_kernel", "BLOCK"]

BLOCK = 256           # threads per block of every kernel here (a power of two)
LANES_MAX_ROW = 1024  # a row reduction up to this long runs a warp (or less) per output
COLUMN_THREADS = 16384  # outputs from which a column reduction runs one thread per output
TARGET_BLOCKS = 512   # blocks a split reduction aims for (a few per multiprocessor)
MIN_BLOCK_WORK = 4096  # elements a block of a split reduction reduces at least
MAX_SPLIT = 1024      # partials per output at most
ROW_LANES_MAX = 256   # RowKernel rows up to this long run a group of lanes per row


def _pow2(n: int) -> int:
    """The smallest power of two >= n (1 for n <= 1)."""
    p = 1
    while p < n:
        p *= 2
    return p


def _prod(xs) -> int:
    return int(np.prod(list(xs), dtype=np.int64))


def _op_struct(name: str, op: str, dt: D.DType) -> str:
    """The functor combining two register values of `dt` by `op` (`combine()`'s rule)."""
    t = ctype(dt)
    return (f"struct {name} {{ TJ_DEV_METHOD {t} operator()({t} a, {t} b) const "
            f"{{ return {combine(op, dt, 'a', 'b')}; }} }};")


def _sizeof(dt: D.DType) -> int:
    return {"bool": 1, "float": 4, "double": 8}.get(ctype(dt), dt.itemsize)


# -- layout -----------------------------------------------------------------------------------
def _fast_axis(domain, body: Expr) -> int | None:
    """The axis (extent > 1) most loads walk with stride +-1; else the innermost such axis."""
    live = [a for a, d in enumerate(domain) if d > 1]
    if not live:
        return None
    score = dict.fromkeys(live, 0)
    for e in walk(body):
        if e.kind == "load":
            for a, s in enumerate(e.attrs.strides):
                if a in score and abs(s) == 1:
                    score[a] += 1
    best = max(score.values())
    return max(a for a in live if score[a] == best) if best else live[-1]


def _orders(k: Kernel):
    """(kept axes, reduced axes), each in flattening order: extent-1 axes dropped, the fast
    axis moved innermost, so that consecutive ``o`` (or ``r``) walk memory contiguously."""
    red = sorted(a for a in k.reduce_axes if k.domain[a] != 1)
    kept = [a for a in range(len(k.domain)) if a not in k.reduce_axes and k.domain[a] != 1]
    fast = _fast_axis(k.domain, k.body)
    for axes in (kept, red):
        if fast in axes:
            axes.remove(fast)
            axes.append(fast)
    return kept, red, fast is not None and fast in k.reduce_axes


class _Writer(ExprWriter):
    """An `ExprWriter` that also declares shared arrays (16-byte aligned, not overlapping)."""

    def __init__(self, sched: Schedule, leaves: dict | None = None):
        super().__init__(sched, leaves)
        self.smem = 0

    def shared(self, t: str, name: str, count: int, size: int, depth: int = 1) -> str:
        self.emit(f"TJ_SHARED({t}, {name}, {count}, {self.smem});", depth)
        self.smem += -(-count * size // 16) * 16
        return name

    def text(self) -> str:
        return "\n".join(self.lines)


# -- reductions -------------------------------------------------------------------------------
class _Reduction:
    def __init__(self, sched: Schedule, k: Kernel):
        self.sched, self.k = sched, k
        self.dt = k.body.dtype
        self.t = ctype(self.dt)
        self.ident = identity(k.reduce_op, self.dt)
        self.kept, self.red, self.fast_red = _orders(k)
        self.n_out = _prod(k.domain[a] for a in self.kept)
        self.n_red = _prod(k.domain[a] for a in self.red)
        self.op = f"tj_op_{k.name}"
        out_dims = [d for a, d in enumerate(k.domain) if a not in k.reduce_axes]
        self.out_axes = [a for a in range(len(k.domain)) if a not in k.reduce_axes]
        self.out_strides = [_prod(out_dims[i + 1:]) for i in range(len(out_dims))]

    # where output element `o` goes (o flattens the kept axes in `self.kept` order)
    def out_pos(self, idx: dict) -> str:
        terms = [f"{idx[a]} * {s}LL" if s != 1 else idx[a]
                 for a, s in zip(self.out_axes, self.out_strides) if a in idx]
        return " + ".join(terms) if terms else "0LL"

    def kept_index(self, w: _Writer, o: str, depth: int) -> dict:
        return w.unflatten(o, self.kept, [self.k.domain[a] for a in self.kept], depth, "i")

    def body_value(self, w: _Writer, idx: dict, r: str, depth: int) -> str:
        """The body at output index `idx` and reduced flat index `r`."""
        w.forget()
        idx = dict(idx)
        idx.update(w.unflatten(r, self.red, [self.k.domain[a] for a in self.red], depth, "i"))
        return w.expr(self.k.body, idx, depth)

    def store(self, w: _Writer, pos: str, v: str, depth: int):
        bt = self.sched.buffers[self.k.out].dtype
        w.store(self.k.out, pos, convert(v, self.dt, bt) if bt != self.dt else v, depth)

    def render(self) -> tuple[str, CudaStep]:
        k = self.k
        head = ['#include "tj_reduce.h"', _op_struct(self.op, k.reduce_op, self.dt)]
        if self.n_out == 0:
            return f"/* {k.name}: empty output, nothing to launch */", CudaStep([])
        if self.fast_red or self.n_out == 1:
            if self.n_red <= LANES_MAX_ROW:
                return self._lanes_step(head, min(32, _pow2(self.n_red)))
            return self._tile_step(head, 1)
        if self.n_out >= COLUMN_THREADS or self.n_red <= 16:
            return self._lanes_step(head, 1)
        return self._tile_step(head, min(32, _pow2(self.n_out)))

    # -- G lanes per output, warp-uniform loop over groups of outputs -------------------------
    def _lanes(self, name: str, g: int, ins: list[int], scratch: bool, n_red: int,
               value) -> str:
        """A kernel where each aligned group of `g` lanes reduces one output: the lanes
        stride over ``r < n_red``, `value(w, idx, r, depth)` giving each element."""
        w = _Writer(self.sched)
        w.emit(signature(self.sched, name, [self.k.out], ins,
                         scratch="scratch" if scratch else None), 0)
        w.emit("{", 0)
        gpw = 32 // g
        w.emit(f"const int lane = (int)(threadIdx.x & {g - 1}u);", 1)
        w.emit(f"const long long sub = (long long)((threadIdx.x & 31u) / {g}u);", 1)
        w.emit("const long long warp = tj_thread_index() >> 5, warps = tj_thread_stride() >> 5;",
               1)
        w.emit("// the loop's trip count is the same for the 32 lanes of a warp (shuffles)", 1)
        w.emit(f"for (long long base = warp * {gpw}LL; base < {self.n_out}LL; "
               f"base += warps * {gpw}LL) {{", 1)
        w.emit("const long long o = base + sub;", 2)
        w.forget()
        idx = self.kept_index(w, "o", 2)
        w.emit(f"{self.t} acc = {self.ident};", 2)
        w.emit(f"if (o < {self.n_out}LL) {{", 2)
        w.emit(f"for (long long r = lane; r < {n_red}LL; r += {g}LL) {{", 3)
        v = value(w, idx, "r", 4)
        w.emit(f"acc = {combine(self.k.reduce_op, self.dt, 'acc', v)};", 4)
        w.emit("}", 3)
        w.emit("}", 2)
        if g > 1:
            w.emit(f"acc = tj_warp_allreduce(acc, {self.op}(), {g});", 2)
        w.emit(f"if (lane == 0 && o < {self.n_out}LL) {{", 2)
        self.store(w, self.out_pos(idx), "acc", 3)
        w.emit("}", 2)
        w.emit("}", 1)
        w.emit("}", 0)
        return w.text()

    def _lanes_step(self, head: list[str], g: int) -> tuple[str, CudaStep]:
        k = self.k
        text = self._lanes(k.name, g, k.inputs, False, self.n_red,
                           lambda w, idx, r, d: self.body_value(w, idx, r, d))
        warps = -(-self.n_out // (32 // g))
        ln = Launch(k.name, param_buffers([k.out], k.inputs), BLOCK, 0, warps * 32)
        return "\n".join(head + [text]), CudaStep([ln])

    # -- W outputs x (BLOCK / W) lanes per block, S blocks per output -------------------------
    def _tile_step(self, head: list[str], wdt: int) -> tuple[str, CudaStep]:
        k = self.k
        lanes = BLOCK // wdt
        tiles = -(-self.n_out // wdt)
        want = -(-TARGET_BLOCKS // tiles)
        most = max(1, self.n_red * wdt // MIN_BLOCK_WORK)
        s = max(1, min(MAX_SPLIT, want, most))
        chunk = max(1, -(-self.n_red // s))
        s = max(1, -(-self.n_red // chunk))
        items = tiles * s
        split = s > 1
        w = _Writer(self.sched)
        w.emit(signature(self.sched, k.name, [] if split else [k.out], k.inputs,
                         scratch="scratch" if split else None), 0)
        w.emit("{", 0)
        part = w.shared(self.t, "tj_part", (BLOCK // 32) * wdt, _sizeof(self.dt))
        w.emit(f"const int ox = (int)(threadIdx.x & {wdt - 1}u);", 1)
        w.emit(f"const long long ry = (long long)(threadIdx.x / {wdt}u);", 1)
        if split:
            w.emit(f"{self.t}* partials = ({self.t}*)scratch;", 1)
        w.emit("// block-uniform loop: every thread reaches the barriers below", 1)
        w.emit(f"for (long long item = blockIdx.x; item < {items}LL; item += gridDim.x) {{", 1)
        w.emit(f"const long long tile = item / {s}LL, s = item % {s}LL;", 2)
        w.emit(f"const long long o = tile * {wdt}LL + ox;", 2)
        w.forget()
        idx = self.kept_index(w, "o", 2)
        w.emit(f"{self.t} acc = {self.ident};", 2)
        w.emit(f"if (o < {self.n_out}LL) {{", 2)
        w.emit(f"long long end = (s + 1) * {chunk}LL;", 3)
        w.emit(f"if (end > {self.n_red}LL) end = {self.n_red}LL;", 3)
        w.emit(f"for (long long r = s * {chunk}LL + ry; r < end; r += {lanes}LL) {{", 3)
        v = self.body_value(w, idx, "r", 4)
        w.emit(f"acc = {combine(k.reduce_op, self.dt, 'acc', v)};", 4)
        w.emit("}", 3)
        w.emit("}", 2)
        if wdt < 32:
            w.emit(f"acc = tj_warp_fold_rows(acc, {self.op}(), {wdt});", 2)
        w.emit("__syncthreads();  // the previous item's reads of the partials are done", 2)
        w.emit(f"if ((threadIdx.x & 31u) < {wdt}u) {part}[(threadIdx.x >> 5) * {wdt}u + ox] "
               "= acc;", 2)
        w.emit("__syncthreads();", 2)
        w.emit(f"if (threadIdx.x < {wdt}u && o < {self.n_out}LL) {{", 2)
        w.emit(f"{self.t} t = {part}[ox];", 3)
        w.emit(f"for (int j = 1; j < {BLOCK // 32}; ++j) t = {self.op}()(t, {part}[j * {wdt} "
               "+ ox]);", 3)
        if split:
            w.emit(f"partials[o * {s}LL + s] = t;", 3)
        else:
            self.store(w, self.out_pos(idx), "t", 3)
        w.emit("}", 2)
        w.emit("}", 1)
        w.emit("}", 0)
        texts = head + [w.text()]
        first = Launch(k.name, param_buffers([] if split else [k.out], k.inputs, split),
                       BLOCK, 0, items * BLOCK)
        if not split:
            return "\n".join(texts), CudaStep([first])
        fin = k.name + "_final"
        g = min(32, _pow2(s))
        texts.append(self._lanes(fin, g, [], True, s, lambda w, idx, r, d: self._partial(w, r, d,
                                                                                        s)))
        warps = -(-self.n_out // (32 // g))
        second = Launch(fin, param_buffers([k.out], [], True), BLOCK, 0, warps * 32)
        return "\n".join(texts), CudaStep([first, second], scratch=self.n_out * s *
                                         _sizeof(self.dt))

    def _partial(self, w: _Writer, r: str, depth: int, s: int) -> str:
        w.emit(f"const {self.t} p = (({self.t}*)scratch)[o * {s}LL + {r}];", depth)
        return "p"


def render_reduction(sched: Schedule, k: Kernel, i: int) -> tuple[str, CudaStep] | None:
    """A reduction `Kernel` as warp/block reductions (None for an elementwise kernel: the
    generic renderer takes it)."""
    if k.reduce_op is None:
        return None
    return _Reduction(sched, k).render()


# -- row kernels --------------------------------------------------------------------------------
class _RowWriter(_Writer):
    """Stage values are registers ``s<j>``; ``x / s<j>`` for a float stage is ``x * q<j>``
    with ``q<j> = 1 / s<j>`` once per row (as `codegen/rows.py`: one rounding more at most)."""

    def __init__(self, sched: Schedule, recips: set[int]):
        super().__init__(sched, {"stage": lambda e: f"s{e.attrs}"})
        self.recips = recips

    def expr(self, e: Expr, idx: dict, depth: int) -> str:
        if e.kind == "div" and id(e) not in self.names and e.args[1].kind == "stage" and \
                e.args[1].attrs in self.recips:
            x = self.expr(e.args[0], idx, depth)
            name = f"v{self.n}"
            self.n += 1
            self.emit(f"const {ctype(e.dtype)} {name} = ({x} * q{e.args[1].attrs});", depth)
            self.names[id(e)] = name
            return name
        return super().expr(e, idx, depth)


def _recips(rk: RowKernel) -> set[int]:
    return {e.args[1].attrs for st in rk.stages for e in walk(st.body)
            if e.kind == "div" and e.args[1].kind == "stage"
            and e.dtype.name in ("float32", "float64") and e.args[1].dtype == e.dtype}


class _Rows:
    def __init__(self, sched: Schedule, rk: RowKernel):
        self.sched, self.rk = sched, rk
        self.outer = [a for a in range(rk.n_outer) if rk.domain[a] != 1]
        self.inner = [a for a in range(rk.n_outer, len(rk.domain)) if rk.domain[a] != 1]
        self.rows = _prod(rk.domain[:rk.n_outer])
        self.cols = _prod(rk.domain[rk.n_outer:])
        self.w = _RowWriter(sched, _recips(rk))

    def render(self) -> tuple[str, CudaStep]:
        rk, w = self.rk, self.w
        if self.rows == 0:
            return f"/* {rk.name}: no rows, nothing to launch */", CudaStep([])
        g = min(32, _pow2(self.cols)) if self.cols <= ROW_LANES_MAX else 0
        heads = ['#include "tj_reduce.h"']
        for j, st in enumerate(rk.stages):
            if st.reduce_op is not None:
                heads.append(_op_struct(f"tj_op_{rk.name}_{j}", st.reduce_op, st.body.dtype))
        w.emit(signature(self.sched, rk.name, list(rk.outs), rk.inputs), 0)
        w.emit("{", 0)
        if g:
            lanes, step, live = self._open_lanes(g)
        else:
            lanes, step, live = self._open_block()
        for j, st in enumerate(rk.stages):
            self._stage(j, st, lanes, step, live, g)
        w.emit("}", 1)
        w.emit("}", 0)
        params = param_buffers(list(rk.outs), rk.inputs)
        if g:
            work = -(-self.rows // (32 // g)) * 32
        else:
            work = self.rows * BLOCK
        return "\n".join(heads + [w.text()]), CudaStep([Launch(rk.name, params, BLOCK, 0, work)])

    def _open_lanes(self, g: int):
        """Groups of `g` lanes, a row each; the loop is uniform across each warp."""
        w, gpw = self.w, 32 // g
        w.emit(f"const int lane = (int)(threadIdx.x & {g - 1}u);", 1)
        w.emit(f"const long long sub = (long long)((threadIdx.x & 31u) / {g}u);", 1)
        w.emit("const long long warp = tj_thread_index() >> 5, warps = tj_thread_stride() >> 5;",
               1)
        w.emit(f"for (long long base = warp * {gpw}LL; base < {self.rows}LL; "
               f"base += warps * {gpw}LL) {{", 1)
        w.emit("const long long row = base + sub;", 2)
        w.emit(f"const bool live = row < {self.rows}LL;", 2)
        self.oidx = w.unflatten("row", self.outer, [self.rk.domain[a] for a in self.outer], 2)
        return "lane", g, "live"

    def _open_block(self):
        """A block per row (block-uniform loop over rows, so all threads reach the barriers)."""
        w = self.w
        self.parts = {}
        for st in self.rk.stages:
            if st.reduce_op is not None:
                t = ctype(st.body.dtype)
                if t not in self.parts:
                    self.parts[t] = w.shared(t, f"tj_part_{len(self.parts)}", BLOCK // 32,
                                             _sizeof(st.body.dtype))
        w.emit(f"for (long long row = blockIdx.x; row < {self.rows}LL; row += gridDim.x) {{",
               1)
        self.oidx = w.unflatten("row", self.outer, [self.rk.domain[a] for a in self.outer], 2)
        return "(long long)threadIdx.x", BLOCK, None

    def _stage(self, j: int, st, lanes: str, step: int, live: str | None, g: int):
        w, dt = self.w, st.body.dtype
        red = st.reduce_op is not None
        t = ctype(dt)
        if red:
            w.emit(f"{t} acc{j} = {identity(st.reduce_op, dt)};", 2)
        if live:
            w.emit(f"if ({live}) {{", 2)
        d = 3 if live else 2
        w.emit(f"for (long long c = {lanes}; c < {self.cols}LL; c += {step}LL) {{", d)
        w.forget()
        idx = dict(self.oidx)
        idx.update(w.unflatten("c", self.inner, [self.rk.domain[a] for a in self.inner], d + 1))
        v = w.expr(st.body, idx, d + 1)
        pos = f"row * {self.cols}LL + c"
        if red:
            if st.spill is not None:
                self._store(st.spill, pos, v, dt, d + 1)
            w.emit(f"acc{j} = {combine(st.reduce_op, dt, f'acc{j}', v)};", d + 1)
        else:
            self._store(st.out, pos, v, dt, d + 1)
        w.emit("}", d)
        if live:
            w.emit("}", 2)
        if not red:
            return
        op = f"tj_op_{self.rk.name}_{j}()"
        if g:
            total = f"tj_warp_allreduce(acc{j}, {op}, {g})" if g > 1 else f"acc{j}"
        else:
            total = f"tj_block_allreduce(acc{j}, {op}, {self.parts[t]})"
        if dt == D.float16:  # later stages see what a store and a load would (codegen/rows.py)
            total = f"tj_round_half({total})"
        w.emit(f"const {t} s{j} = {total};", 2)
        if st.out is not None:
            first = f"{live} && lane == 0" if live else "threadIdx.x == 0"
            w.emit(f"if ({first}) {{", 2)
            self._store(st.out, "row", f"s{j}", dt, 3)
            w.emit("}", 2)
        if j in self.w.recips:
            one = "1.0f" if dt == D.float32 else "1.0"
            w.emit(f"const {t} q{j} = {one} / s{j};", 2)

    def _store(self, buf: int, pos: str, v: str, dt: D.DType, depth: int):
        bt = self.sched.buffers[buf].dtype
        self.w.store(buf, pos, convert(v, dt, bt) if bt != dt else v, depth)


def render_row_kernel(sched: Schedule, rk: RowKernel, i: int) -> tuple[str, CudaStep] | None:
    """A `RowKernel`: each row's stages in order, reductions combined across the threads of
    the row and broadcast to them."""
    return _Rows(sched, rk).render()
