"""CUDA C code generation of matrix products: a `Gemm` step -> one tiled shared-memory kernel.

Input: a `Gemm` of the Kernel IR (`schedule/kernel.py`: static batch, M, N, K; float32 or
float64 operands read in place through strided `Operand` layouts; an optional epilogue `Expr`
over ``(batch, M, N)`` whose ``acc`` leaf is the product; an optional `raw` buffer that also
receives the plain product). Output: the text of ``TJ_KERNEL void __launch_bounds__(256, 2)
<g.name>(...)`` (its parameters from `cuda.signature`; the bounds hold it to 128 registers a
thread, two blocks per multiprocessor) and its `CudaStep`: one launch of a fixed 1-D grid.

The algorithm (the classic register-blocked SGEMM):

* each block computes a BM x BN tile of one batch's C; the block's linear index decodes to
  (batch, tile row, tile column), tile rows taken in groups of `GROUP` so that blocks running
  at the same time share the columns of B they read (L2 reuse);
* per step of BK along k, the block stages a BK x BM tile of A and a BK x BN tile of B in shared
  memory, both k-major (``S[k][row]``), so the compute loop reads a thread's rows of A and
  columns of B as 16-byte vectors (`tj_gemm_lds` in ``kernels/cuda/tj_gemm.h``; the tiles are
  declared as arrays of 16-byte aligned `tj_gemm_chunk`s for that). Global loads
  are coalesced: consecutive threads take consecutive elements along the operand's axis of
  smallest stride; the shared rows are padded by 16 bytes, so the transposing stores of a
  k-contiguous operand do not conflict on banks;
* two shared buffers: while the block multiplies tile t, each thread already holds its
  elements of tile t+1 in registers (loaded before the multiply, stored to the other buffer
  after it), so one barrier per k step suffices and global latency hides behind the FMAs;
* each thread accumulates a TM x TN micro-tile in registers: rows ``ty*VW + g*TY*VW + v`` for
  groups g, lanes v < VW (VW elements = 16 bytes), columns likewise with tx and TX;
* after the last k step each element goes through the epilogue (rendered by `ExprWriter` with
  the ``acc`` leaf bound to its register) and is stored; `raw` receives the register itself.

Edges: loads outside the matrix (rows beyond M or N, k beyond K) store zeros to shared memory,
stores outside C are skipped; guards are rendered only for the extents a tile does not divide
(extents are compile-time constants), so a 4096^3 product has none. ``K == 0`` skips the k loop
(the product is zeros, then the epilogue). Every thread reaches every barrier: the k loop's
trip count is the same for the whole block, and out-of-range threads only skip their stores.

Tilings (`tiling`): float32 uses 128x128 tiles with 8x8 micro-tiles when the product has
enough tiles to fill a large GPU, else 64x64 with 4x4; float64 uses 64x64 with 4x4. All use
256 threads and BK = 8.
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import dtypes as D
from ..schedule.kernel import Gemm, Operand, Schedule
from .cuda import CudaStep, ExprWriter, Launch, ctype, param_buffers, signature

__all__ = ["render_gemm", "Tiling", "tiling", "GROUP"]

GROUP = 8  # tile rows per group of the block order (blocks of a group share B's columns)
FILL_BLOCKS = 132  # tiles that fill a large GPU (an H100 has 132 multiprocessors)
PAD_BYTES = 16  # padding of each k-row of a shared tile


@dataclass(frozen=True)
class Tiling:
    """A block computes a `bm` x `bn` tile of C with `tx * ty` threads, each a `tm` x `tn`
    micro-tile made of vectors of `vw` elements; the k axis advances by `bk`."""

    bm: int
    bn: int
    bk: int
    tm: int
    tn: int
    vw: int

    @property
    def tx(self) -> int:
        return self.bn // self.tn

    @property
    def ty(self) -> int:
        return self.bm // self.tm

    @property
    def threads(self) -> int:
        return self.tx * self.ty


def _tiles(g: Gemm, bm: int, bn: int) -> int:
    return g.batch * -(-g.m // bm) * -(-g.n // bn)


def tiling(g: Gemm) -> Tiling:
    """The tiling of `g` (see the module docstring)."""
    if g.dtype == D.float64:
        return Tiling(64, 64, 8, 4, 4, 2)
    if _tiles(g, 128, 128) >= FILL_BLOCKS:
        return Tiling(128, 128, 8, 8, 8, 4)
    return Tiling(64, 64, 8, 4, 4, 4)


def render_gemm(sched: Schedule, g: Gemm, i: int, cfg: Tiling | None = None) \
        -> tuple[str, CudaStep] | None:
    """The CUDA C kernel of Gemm step `g` (the `i`-th step) and its launch; None (the host
    runs it) for a dtype other than float32/float64. `cfg` overrides the tiling.

    >>> import numpy as np, tracejit as tj
    >>> from tracejit.schedule.fusion import schedule
    >>> x, w = np.ones((100, 30), np.float32), np.ones((30, 70), np.float32)
    >>> s = schedule(tj.make_graph(lambda x, w: x @ w)(x, w))
    >>> text, step = render_gemm(s, s.gemms[0], 0)
    >>> step.launches[0].block, step.launches[0].grid  # 2 x 2 tiles of 64 x 64
    (256, 4)
    """
    if g.dtype not in (D.float32, D.float64):
        return None
    cfg = cfg or tiling(g)
    outs = [g.out] + ([g.raw] if g.raw is not None else [])
    params = param_buffers(outs, g.inputs)
    tiles = _tiles(g, cfg.bm, cfg.bn)
    w = _GemmWriter(sched, g, cfg)
    w.emit('#include "tj_gemm.h"', 0)
    # at most 128 registers a thread, so that two blocks share a multiprocessor
    w.emit(signature(sched, g.name, outs, g.inputs).replace(
        "TJ_KERNEL void ", f"TJ_KERNEL void __launch_bounds__({cfg.threads}, 2) ", 1), 0)
    w.emit("{", 0)
    if tiles:
        w.body()
    else:
        w.emit("// an empty product: nothing to compute (never launched)", 1)
    w.emit("}", 0)
    launch = Launch(g.name, params, cfg.threads, tiles, tiles * cfg.threads)
    return "\n".join(w.lines), CudaStep([launch])


@dataclass(frozen=True)
class _Side:
    """One operand as the tile loader sees it: element (o, k) of batch `bi` at
    ``offset + bi*batch + o*outer + k*inner``; `extent` rows along o, tiles of `tile` rows."""

    prefix: str  # "a" or "b": names of its registers and shared array
    op: Operand
    outer: int  # stride along the tile's rows of C (M for A, N for B)
    inner: int  # stride along k
    extent: int
    tile: int


def _key(stride: int) -> int:
    """Coalescing preference: the smallest nonzero |stride| is contiguous-most (0 is last)."""
    return abs(stride) if stride else 1 << 62


def _times(x: str, stride: int) -> str:
    """``x * stride`` as C (64-bit)."""
    return "0LL" if stride == 0 else x if stride == 1 else f"{x} * {stride}LL"


class _GemmWriter(ExprWriter):
    def __init__(self, sched: Schedule, g: Gemm, cfg: Tiling):
        super().__init__(sched, leaves={"acc": lambda e: "acc[i][j]"})
        self.g, self.cfg = g, cfg
        self.t = ctype(g.dtype)
        self.pad = PAD_BYTES // g.dtype.itemsize
        self.mt = -(-g.m // cfg.bm)
        self.nt = -(-g.n // cfg.bn)
        self.kt = -(-g.k // cfg.bk)
        self.sides = [_Side("a", g.a, g.a.row_stride, g.a.col_stride, g.m, cfg.bm),
                      _Side("b", g.b, g.b.col_stride, g.b.row_stride, g.n, cfg.bn)]
        assert cfg.tm % cfg.vw == 0 and cfg.tn % cfg.vw == 0
        assert cfg.threads % 32 == 0
        for s in self.sides:
            assert (s.tile * cfg.bk) % cfg.threads == 0, "each thread loads whole slots"

    def ld(self, s: _Side) -> int:
        """Elements per k-row of the side's shared tile (padded)."""
        return s.tile + self.pad

    # -- the kernel body -------------------------------------------------------------------
    def body(self):
        g, cfg, t = self.g, self.cfg, self.t
        self.decode()
        offset = 0
        for s in self.sides:  # declared as 16-byte chunks: aligned for the vector loads
            chunks = -(-2 * cfg.bk * self.ld(s) * g.dtype.itemsize // 16)
            self.emit(f"TJ_SHARED(tj_gemm_chunk, {s.prefix}s_, {chunks}, {offset});", 1)
            self.emit(f"{t}* {s.prefix}s = reinterpret_cast<{t}*>({s.prefix}s_);  "
                      f"// 2 buffers of [{cfg.bk}][{self.ld(s)}]", 1)
            offset += chunks * 16
        self.emit(f"{t} acc[{cfg.tm}][{cfg.tn}];", 1)
        self.emit("TJ_UNROLL", 1)
        self.emit(f"for (int i = 0; i < {cfg.tm}; ++i) {{", 1)
        self.emit("TJ_UNROLL", 2)
        self.emit(f"for (int j = 0; j < {cfg.tn}; ++j) acc[i][j] = {t}(0);", 2)
        self.emit("}", 1)
        if g.k:
            self.main_loop()
        self.epilogue()

    def decode(self):
        """The block's (batch, tile row, tile column) and the thread's place in the tile."""
        cfg = self.cfg
        per_batch = self.mt * self.nt
        span = GROUP * self.nt
        self.emit("const int tid = (int)threadIdx.x;", 1)
        self.emit(f"const int tx = tid % {cfg.tx}, ty = tid / {cfg.tx};", 1)
        if self.g.batch > 1:
            self.emit(f"const long long bi = (long long)blockIdx.x / {per_batch}LL;", 1)
            self.emit(f"const int pid = (int)((long long)blockIdx.x % {per_batch}LL);", 1)
        else:
            self.emit("const long long bi = 0;", 1)
            self.emit("const int pid = (int)blockIdx.x;", 1)
        self.emit(f"// tile rows in groups of {GROUP}: the blocks of a group share B's columns",
                  1)
        self.emit(f"const int first = (pid / {span}) * {GROUP};", 1)
        self.emit(f"const int rows = tj_imin<int>({self.mt} - first, {GROUP});", 1)
        self.emit(f"const int m0 = (first + (pid % {span}) % rows) * {cfg.bm};", 1)
        self.emit(f"const int n0 = ((pid % {span}) / rows) * {cfg.bn};", 1)

    # -- staging tiles through shared memory ------------------------------------------------
    def slots(self, s: _Side):
        """This thread's first element of the side's tile (C expressions of its row o and k
        offset) and, per load slot, the constant (row, k) step from it to the slot's element.
        Element e of the tile is loaded by thread e % threads; consecutive elements run along
        the operand's axis of smallest stride (coalesced)."""
        cfg = self.cfg
        nt, tile, bk = cfg.threads, s.tile, cfg.bk
        if _key(s.outer) <= _key(s.inner):  # consecutive threads: consecutive rows, one k
            def at(e):
                return e % tile, e // tile
            first = (f"tid % {tile}", f"tid / {tile}")
        else:  # consecutive threads: consecutive k, one row
            def at(e):
                return e // bk, e % bk
            first = (f"tid / {bk}", f"tid % {bk}")
        steps = []
        for q in range(tile * bk // nt):
            d = {(at(q * nt + t)[0] - at(t)[0], at(q * nt + t)[1] - at(t)[1]) for t in range(nt)}
            assert len(d) == 1, "a slot must be a constant step from the thread's first element"
            steps.append(d.pop())
        return first, steps

    def loader_setup(self, s: _Side):
        """The thread's place in the side's tile, which of its rows exist, its base index."""
        g, p, op = self.g, s.prefix, s.op
        (o, k), steps = self.slots(s)
        origin = "m0" if p == "a" else "n0"
        self.emit(f"// {p.upper()}: {len(steps)} elements per thread and k step", 1)
        self.emit(f"const int {p}o = {o}, {p}k = {k};", 1)
        if s.extent % s.tile:  # a partial last tile: guard the rows (one flag per row step)
            for do in dict.fromkeys(do for do, _ in steps):
                step = f" + {do}" if do else ""
                self.emit(f"const bool {p}in{do} = {origin} + {p}o{step} < {s.extent};", 1)
        base = [f"{op.offset}LL"] if op.offset else []
        if op.batch_stride and g.batch > 1:
            base.append(_times("bi", op.batch_stride))
        if s.outer:
            base.append(_times(f"(long long)({origin} + {p}o)", s.outer))
        self.emit(f"const long long {p}base = {' + '.join(base) if base else '0LL'};", 1)
        self.emit(f"const int {p}st = {p}k * {self.ld(s)} + {p}o;  // its place in shared", 1)
        for q in range(len(steps)):
            self.emit(f"{self.t} {p}r{q} = {self.t}(0);", 1)

    def fetch(self, s: _Side, k0: str, depth: int):
        """Registers <- the side's elements of the tile starting at k offset `k0` (zeros
        outside the matrix; the index is formed only inside it)."""
        p, cfg = s.prefix, self.cfg
        for q, (do, dk) in enumerate(self.slots(s)[1]):
            kk = " + ".join(x for x in (k0, f"{p}k", str(dk)) if x not in ("0",))
            guard = []
            if s.extent % s.tile:
                guard.append(f"{p}in{do}")
            if self.g.k % cfg.bk:
                guard.append(f"{kk} < {self.g.k}")
            terms = [f"{p}base"] + ([f"{do * s.outer}LL"] if do * s.outer else [])
            if s.inner:
                terms.append(_times(f"(long long)({kk})", s.inner))
            at = f"b{s.op.buffer}[{' + '.join(terms)}]"
            v = f"({' && '.join(guard)}) ? {at} : {self.t}(0)" if guard else at
            self.emit(f"{p}r{q} = {v};", depth)

    def stage(self, s: _Side, buf: str, depth: int):
        """Shared buffer `buf` (0 or 1, a C expression) <- the registers of `fetch`."""
        p = s.prefix
        ld = self.ld(s)
        for q, (do, dk) in enumerate(self.slots(s)[1]):
            at = " + ".join(x for x in (f"({buf}) * {self.cfg.bk * ld}" if buf != "0" else "",
                                        f"{p}st", str(dk * ld + do) if dk * ld + do else "")
                            if x)
            self.emit(f"{p}s[{at}] = {p}r{q};", depth)

    def main_loop(self):
        cfg, t = self.cfg, self.t
        for s in self.sides:
            self.loader_setup(s)
        self.emit("// the first tile; then per k step: load the next tile into registers, "
                  "multiply this one, store the next to the other buffer", 1)
        for s in self.sides:
            self.fetch(s, "0", 1)
        for s in self.sides:
            self.stage(s, "0", 1)
        self.emit("__syncthreads();", 1)
        self.emit(f"for (int kt = 0; kt < {self.kt}; ++kt) {{  // the same count in every "
                  "thread: barriers inside are safe", 1)
        self.emit("const int cur = kt & 1;", 2)
        if self.kt > 1:
            self.emit(f"if (kt + 1 < {self.kt}) {{", 2)
            for s in self.sides:
                self.fetch(s, f"(kt + 1) * {cfg.bk}", 3)
            self.emit("}", 2)
        a, b = self.sides
        self.emit(f"const {t}* as_ = as + cur * {cfg.bk * self.ld(a)} + ty * {cfg.vw};", 2)
        self.emit(f"const {t}* bs_ = bs + cur * {cfg.bk * self.ld(b)} + tx * {cfg.vw};", 2)
        self.emit("TJ_UNROLL", 2)
        self.emit(f"for (int kk = 0; kk < {cfg.bk}; ++kk) {{", 2)
        self.emit(f"{t} ra[{cfg.tm}], rb[{cfg.tn}];", 3)
        for gi in range(cfg.tm // cfg.vw):
            self.emit(f"tj_gemm_lds(as_ + kk * {self.ld(a)} + {gi * cfg.ty * cfg.vw}, "
                      f"ra + {gi * cfg.vw});", 3)
        for gj in range(cfg.tn // cfg.vw):
            self.emit(f"tj_gemm_lds(bs_ + kk * {self.ld(b)} + {gj * cfg.tx * cfg.vw}, "
                      f"rb + {gj * cfg.vw});", 3)
        self.emit("TJ_UNROLL", 3)
        self.emit(f"for (int i = 0; i < {cfg.tm}; ++i) {{", 3)
        self.emit("TJ_UNROLL", 4)
        self.emit(f"for (int j = 0; j < {cfg.tn}; ++j) acc[i][j] += ra[i] * rb[j];", 4)
        self.emit("}", 3)
        self.emit("}", 2)
        if self.kt > 1:
            self.emit(f"if (kt + 1 < {self.kt}) {{", 2)
            for s in self.sides:
                self.stage(s, "cur ^ 1", 3)
            self.emit("}", 2)
        self.emit("__syncthreads();", 2)
        self.emit("}", 1)

    # -- epilogue and stores ----------------------------------------------------------------
    def epilogue(self):
        g, cfg = self.g, self.cfg
        self.emit("// each element: epilogue(product), stored in C (the product itself in raw)",
                  1)
        self.emit("TJ_UNROLL", 1)
        self.emit(f"for (int i = 0; i < {cfg.tm}; ++i) {{", 1)
        self.emit(f"const int r = m0 + (i / {cfg.vw}) * {cfg.ty * cfg.vw} + ty * {cfg.vw} + "
                  f"i % {cfg.vw};", 2)
        self.emit("TJ_UNROLL", 2)
        self.emit(f"for (int j = 0; j < {cfg.tn}; ++j) {{", 2)
        self.emit(f"const int c = n0 + (j / {cfg.vw}) * {cfg.tx * cfg.vw} + tx * {cfg.vw} + "
                  f"j % {cfg.vw};", 3)
        guard = ([f"r < {g.m}"] if g.m % cfg.bm else []) + \
            ([f"c < {g.n}"] if g.n % cfg.bn else [])
        self.emit(f"if ({' && '.join(guard)}) {{" if guard else "{", 3)
        self.emit(f"const long long at = (bi * {g.m}LL + r) * {g.n}LL + c;", 4)
        if g.raw is not None:
            self.store(g.raw, "at", "acc[i][j]", 4)
        self.forget()
        if g.epilogue is None:
            v = "acc[i][j]"
        else:
            v = self.expr(g.epilogue, {0: "bi", 1: "(long long)r", 2: "(long long)c"}, 4)
        self.store(g.out, "at", v, 4)
        self.emit("}", 3)
        self.emit("}", 2)
        self.emit("}", 1)
