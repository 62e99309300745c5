"""Matmul code generation: a `Gemm` step of the Kernel IR -> native GEMM functions (llvmlite).

Input: a `Gemm` (static batch, M, N, K; strided operands; optional epilogue `Expr`) and the
host CPU's feature string. Output: in the given LLVM module,
``void gN(ptr noalias out, ptr noalias in0, ..., i64 lo, i64 hi)`` computing output rows
[lo, hi) of the flattened ``batch * M`` rows, or for a short and wide product column blocks
[lo, hi) of all rows (``Gemm.col_split``), so the runtime can split it across threads; plus
its private helpers (packing, micro-kernel, epilogue).

The algorithm is the Goto/BLIS one. Per batch, per block of NC columns and KC of the contracted
axis, a KC x NC block of B is *packed* into panels of NR contiguous columns; per block of MC
rows, an MC x KC block of A is packed into panels of MR contiguous rows. Packing reads the
operands in place through their strides (a transposed operand is packed, never copied first)
and zero-pads the last panel, so one register-tiled micro-kernel serves every shape. Inside a
block the micro-kernel runs over the B panels for one A panel at a time (the A micro-panel stays
in L1, the packed B block in L2; block sizes: `gemm_config`). The micro-kernel keeps an MR x NR
tile of C in MR x (NR / lanes) vector registers (``<16 x float>`` for AVX-512, built explicitly
with `ir.VectorType`) and per k step loads the B panel row as vectors, broadcasts MR elements
of A and issues ``llvm.fma`` on every accumulator. The first
K block stores the tile, later ones add to C; partial tiles at the edges go through a small
scratch tile. After the last K block of a tile the epilogue (``+ bias``, activations) is applied
to it while it is in L1, with the scalar lowerings of the loop kernels (`lower.py`).

Vector width comes from the CPU features: 512 bits with avx512f, 256 with avx2, else 128.
"""

from __future__ import annotations

from dataclasses import dataclass

import llvmlite.ir as ir

from ..schedule.kernel import Expr, Gemm
from .lower import lower_op

__all__ = ["emit_gemm", "GemmConfig", "gemm_config"]

I1, I64 = ir.IntType(1), ir.IntType(64)
PTR = ir.PointerType()
STACK_SCRATCH_MAX = 128 << 10  # bytes of packing scratch that may live on the stack


@dataclass(frozen=True)
class GemmConfig:
    """Register tile MR x NR (NR = nvec vectors of `lanes`), cache blocks MC x KC x NC, and the
    unroll factor of the micro-kernel's k loop."""

    lanes: int
    mr: int
    nvec: int
    kc: int
    mc: int
    nc: int
    unroll: int = 4
    fma: bool = True
    a_in_l1: bool = True  # inner loop over B panels (False: over A panels, B panel in L1)

    @property
    def nr(self) -> int:
        return self.lanes * self.nvec


def vector_bits(features: str) -> int:
    feats = set(features.split(","))
    return 512 if "+avx512f" in feats else 256 if "+avx2" in feats else 128


def gemm_config(itemsize: int, features: str) -> GemmConfig:
    """Tiles sized for the register file; blocks for a core with >= 32 KiB of L1 data cache and
    >= 1 MiB of L2: the A micro-panel (MR x KC, ~18 KiB) stays in L1 while the micro-kernel
    sweeps the B panels, the packed B block (KC x NC, <= 768 KiB) stays in L2, and A is
    packed MC rows at a time so that its packing does not evict the B block."""
    bits = vector_bits(features)
    lanes = bits // (8 * itemsize)
    fma = "+fma" in features.split(",")
    if bits == 512:  # 32 registers: 24 accumulators, 2 B vectors, broadcasts
        mr, nvec = 12, 2
    else:  # 16 registers: 12 accumulators, 2 B vectors, 1 broadcast
        mr, nvec = 6, 2
    nr = lanes * nvec
    kc = min(512, max(64, (18 << 10) // (mr * itemsize) // 8 * 8))
    mc = max(mr, (96 << 10) // (kc * itemsize) // mr * mr)
    nc = max(nr, (768 << 10) // (kc * itemsize) // nr * nr)
    return GemmConfig(lanes, mr, nvec, kc, mc, nc, fma=fma)


def _balanced(total: int, block: int, mult: int) -> int:
    """A block size <= max(block, mult) that splits `total` into equal-ish multiples of mult."""
    if total <= block:
        return max(mult, -(-total // mult) * mult)
    parts = -(-total // block)
    per_part = -(-total // parts)
    return -(-per_part // mult) * mult


def emit_gemm(mod: ir.Module, g: Gemm, features: str, cfg: GemmConfig | None = None):
    """Adds `g.name` (and its helpers) to `mod`."""
    from .llvm import storage_type
    ty = storage_type(g.dtype)
    cfg = cfg or gemm_config(g.dtype.itemsize, features)
    _GemmGen(mod, g, ty, cfg).emit()


class _Builder:
    """Loops over an IRBuilder (the subset of `codegen/llvm.py`'s helpers a GEMM needs)."""

    def __init__(self, mod, fn):
        self.mod, self.fn = mod, fn
        self.b = ir.IRBuilder(fn.append_basic_block("entry"))

    def loop(self, lo, hi, step, body):
        """``for i in range(lo, hi, step): body(i)`` (step > 0); the builder ends after it."""
        b = self.b
        lo, hi = _i64(lo), _i64(hi)
        pre = b.block
        head, blk, done = (self.fn.append_basic_block(n) for n in ("head", "body", "done"))
        b.branch(head)
        b.position_at_end(head)
        i = b.phi(I64, "i")
        i.add_incoming(lo, pre)
        b.cbranch(b.icmp_signed("<", i, hi), blk, done)
        b.position_at_end(blk)
        body(i)
        i.add_incoming(b.add(i, _i64(step), flags=["nsw"]), b.block)
        b.branch(head)
        b.position_at_end(done)

    def if_(self, cond, then, otherwise=None):
        b = self.b
        if otherwise is None:
            with b.if_then(cond):
                then()
        else:
            with b.if_else(cond) as (t, e):
                with t:
                    then()
                with e:
                    otherwise()

    def min(self, x, y):
        x, y = _i64(x), _i64(y)
        return self.b.select(self.b.icmp_signed("<", x, y), x, y)

    def max(self, x, y):
        x, y = _i64(x), _i64(y)
        return self.b.select(self.b.icmp_signed(">", x, y), x, y)

    def gep(self, ptr, pos, ty):
        return self.b.gep(ptr, [_i64(pos)], inbounds=True, source_etype=ty)

    def lin(self, *terms, offset=0):
        """``offset + sum(i * s)`` over (i, s) terms, folding constants and zero strides."""
        b = self.b
        acc = _i64(offset)
        for i, s in terms:
            if s == 0:
                continue
            t = _i64(i) if s == 1 else (_i64(i * s) if isinstance(i, int) else
                                        b.mul(i, _i64(s), flags=["nsw"]))
            if isinstance(acc, ir.Constant) and acc.constant == 0:
                acc = t
            else:
                acc = b.add(acc, t, flags=["nsw"])
        return acc


def _i64(v):
    return ir.Constant(I64, v) if isinstance(v, int) else v


def _alloca(b, ty):
    """A 64-byte aligned stack slot as an opaque pointer (stores of any type go through it)."""
    slot = b.alloca(ty)
    slot.align = 64
    slot.type = PTR
    return slot


def _private(mod, name, args, attrs=("nounwind", "noinline")):
    fn = ir.Function(mod, ir.FunctionType(ir.VoidType(), args), name=name)
    fn.linkage = "internal"
    for a in attrs:
        fn.attributes.add(a)
    return fn


class _GemmGen:
    def __init__(self, mod, g: Gemm, ty, cfg: GemmConfig):
        self.mod, self.g, self.ty, self.cfg = mod, g, ty, cfg
        self.vty = ir.VectorType(ty, cfg.lanes)
        self.size = g.dtype.itemsize
        self.kc = _balanced(g.k, cfg.kc, cfg.unroll) if g.k else 0
        self.mc = _balanced(g.m, cfg.mc, cfg.mr)
        self.nc = _balanced(g.n, cfg.nc, cfg.nr)

    # -- the entry point ---------------------------------------------------------------------
    def emit(self):
        g = self.g
        self.micro = self._micro() if g.k else None
        self.pack_a = self._pack("a") if g.k else None
        self.pack_b = self._pack("b") if g.k else None
        self.epi = self._epilogue() if g.epilogue is not None else None
        nin = len(g.inputs)
        fn = ir.Function(self.mod, ir.FunctionType(ir.VoidType(), [PTR] * (1 + nin) + [I64, I64]),
                         name=g.name)
        for a in fn.args[:1 + nin]:
            a.add_attribute("noalias")
        fn.attributes.add("nounwind")
        L = _Builder(self.mod, fn)
        b = L.b
        out, lo, hi = fn.args[0], fn.args[-2], fn.args[-1]
        ptr = dict(zip(g.inputs, fn.args[1:1 + nin]))
        self.epi_args = list(fn.args[:1 + nin])
        scratch = self._scratch(L) if g.k else None
        M, N = g.m, g.n
        if g.col_split:  # [lo, hi) are blocks of columns of every row
            n0, n1 = L.lin((lo, g.col_split)), L.min(L.lin((hi, g.col_split)), N)
        else:  # [lo, hi) are rows of the (batch * M) rows
            n0, n1 = _i64(0), _i64(N)

        def batch(bi):
            if g.col_split:
                m0, m1 = _i64(0), _i64(M)
            else:
                r0 = b.mul(bi, _i64(M), flags=["nsw"])
                m0 = L.max(b.sub(lo, r0), 0)
                m1 = L.min(b.sub(hi, r0), M)
            cb = L.gep(out, L.lin((bi, M * N)), self.ty)
            if g.k == 0:
                self._zeros(L, cb, m0, m1, n0, n1, bi)
                return
            a_base = L.gep(ptr[g.a.buffer], L.lin((bi, g.a.batch_stride), offset=g.a.offset),
                           self.ty)
            b_base = L.gep(ptr[g.b.buffer], L.lin((bi, g.b.batch_stride), offset=g.b.offset),
                           self.ty)
            self._blocks(L, scratch, a_base, b_base, cb, bi, m0, m1, n0, n1)

        with b.if_then(b.icmp_signed("<", lo, hi)):
            if g.col_split:
                L.loop(0, g.batch, 1, batch)
            else:
                b_first = b.sdiv(lo, _i64(M))
                b_last = b.sdiv(b.sub(hi, _i64(1)), _i64(M))
                L.loop(b_first, b.add(b_last, _i64(1)), 1, batch)
        if scratch is not None and scratch[2]:
            self._free(L, scratch[0])
        b.ret_void()

    def _blocks(self, L, scratch, a_base, b_base, cb, bi, m0, m1, n0, n1):
        """jc (NC columns) -> pc (KC) -> pack B -> ic (MC rows) -> pack A -> jr -> ir."""
        g, cfg, b = self.g, self.cfg, L.b
        ap, bp = scratch[0], scratch[1]
        N, K = g.n, g.k
        MR, NR = cfg.mr, cfg.nr

        def jc_body(jc):
            nc = L.min(self.nc, b.sub(n1, jc))

            def pc_body(pc):
                kc = L.min(self.kc, b.sub(_i64(K), pc))
                first = b.icmp_signed("==", pc, _i64(0))
                last = b.icmp_signed("==", b.add(pc, kc), _i64(K))
                src = L.gep(b_base, L.lin((pc, g.b.row_stride), (jc, g.b.col_stride)), self.ty)
                b.call(self.pack_b, [bp, src, nc, kc])

                def ic_body(ic):
                    mc = L.min(self.mc, b.sub(m1, ic))
                    src = L.gep(a_base, L.lin((ic, g.a.row_stride), (pc, g.a.col_stride)),
                                self.ty)
                    b.call(self.pack_a, [ap, src, mc, kc])

                    def tile(jr, ir_):
                        nr = L.min(NR, b.sub(nc, jr))
                        mr = L.min(MR, b.sub(mc, ir_))
                        row = b.add(ic, ir_)
                        col = b.add(jc, jr)
                        c = L.gep(cb, L.lin((row, N), (col, 1)), self.ty)
                        apan = L.gep(ap, b.mul(ir_, kc), self.ty)
                        bpan = L.gep(bp, b.mul(jr, kc), self.ty)
                        b.call(self.micro, [apan, bpan, kc, c, first, mr, nr])
                        if self.epi is not None:
                            L.if_(last, lambda: b.call(
                                self.epi, self.epi_args + [bi, row, col, mr, nr]))
                    if cfg.a_in_l1:
                        L.loop(0, mc, MR, lambda i: L.loop(0, nc, NR, lambda j: tile(j, i)))
                    else:
                        L.loop(0, nc, NR, lambda j: L.loop(0, mc, MR, lambda i: tile(j, i)))
                L.loop(m0, m1, self.mc, ic_body)
            L.loop(0, K, self.kc, pc_body)
        L.loop(n0, n1, self.nc, jc_body)

    def _zeros(self, L, cb, m0, m1, n0, n1, bi):
        """K == 0: the product is zero (then the epilogue, if any)."""
        b, N = L.b, self.g.n
        zero = ir.Constant(self.ty, 0.0)
        L.loop(m0, m1, 1, lambda i: L.loop(n0, n1, 1, lambda j: b.store(
            zero, L.gep(cb, L.lin((i, N), (j, 1)), self.ty))))
        if self.epi is not None:
            b.call(self.epi, self.epi_args + [bi, m0, n0, b.sub(m1, m0), b.sub(n1, n0)])

    # -- scratch -----------------------------------------------------------------------------
    def _scratch(self, L):
        """Packed A (MC x KC) and B (KC x NC) blocks, 64-byte aligned: on the stack when small,
        else from the C library's aligned_alloc (freed at return)."""
        g, cfg, b = self.g, self.cfg, L.b
        rows = -(-min(self.mc, g.m) // cfg.mr) * cfg.mr
        cols = -(-min(self.nc, g.n) // cfg.nr) * cfg.nr
        na, nb = rows * self.kc, self.kc * cols
        na += (-na) % (64 // self.size)
        total = (na + nb) * self.size
        if total <= STACK_SCRATCH_MAX:
            with b.goto_entry_block():
                buf = _alloca(b, ir.ArrayType(self.ty, na + nb))
            heap = False
        else:
            alloc = self.mod.globals.get("aligned_alloc") or ir.Function(
                self.mod, ir.FunctionType(PTR, [I64, I64]), "aligned_alloc")
            buf = b.call(alloc, [_i64(64), _i64(total + (-total) % 64)])
            heap = True
        return buf, L.gep(buf, na, self.ty), heap

    def _free(self, L, buf):
        free = self.mod.globals.get("free") or ir.Function(
            self.mod, ir.FunctionType(ir.VoidType(), [PTR]), "free")
        L.b.call(free, [buf])

    # -- packing -----------------------------------------------------------------------------
    def _pack(self, which: str):
        """``pack_X(dst, src, cnt, kc)``: panels of P (MR for A, NR for B) along the `cnt`
        axis, ``dst[p*P*kc + k*P + t] = src[(p*P + t)*s_w + k*s_k]``, zeros past `cnt`. The
        strides are constants. (Walking the source's unit stride innermost instead, for a
        row-major A, compiled to 2.5x the code and was not faster.)"""
        g, cfg = self.g, self.cfg
        if which == "a":
            s_w, s_k, P = g.a.row_stride, g.a.col_stride, cfg.mr
        else:
            s_w, s_k, P = g.b.col_stride, g.b.row_stride, cfg.nr
        fn = _private(self.mod, f"{g.name}.pack_{which}", [PTR, PTR, I64, I64])
        fn.args[0].add_attribute("noalias")
        fn.args[1].add_attribute("noalias")
        L = _Builder(self.mod, fn)
        b, ty = L.b, self.ty
        dst, src, cnt, kc = fn.args
        zero = ir.Constant(ty, 0.0)

        def panel(p0):
            d0 = L.gep(dst, b.mul(p0, kc), ty)
            s0 = L.gep(src, L.lin((p0, s_w)), ty)
            valid = L.min(P, b.sub(cnt, p0))

            def copy(k, t):
                v = b.load(L.gep(s0, L.lin((t, s_w), (k, s_k)), ty), typ=ty)
                b.store(v, L.gep(d0, L.lin((k, P), (t, 1)), ty))

            def full():  # a constant-length inner loop: LLVM unrolls and vectorizes it
                L.loop(0, kc, 1, lambda k: L.loop(0, P, 1, lambda t: copy(k, t)))

            def partial():
                def row(k):
                    L.loop(0, valid, 1, lambda t: copy(k, t))
                    L.loop(valid, P, 1, lambda t: b.store(zero, L.gep(d0, L.lin((k, P), (t, 1)),
                                                                      ty)))
                L.loop(0, kc, 1, row)
            L.if_(b.icmp_signed("==", valid, _i64(P)), full, partial)
        L.loop(0, cnt, P, panel)
        b.ret_void()
        return fn

    # -- micro-kernel ------------------------------------------------------------------------
    def _micro(self):
        """``micro(ap, bp, kc, c, first, mr, nr)``: C[0:mr, 0:nr] (+)= Ap(MR x kc) @ Bp(kc x NR)
        with C's rows N elements apart."""
        g, cfg = self.g, self.cfg
        fn = _private(self.mod, f"{g.name}.micro", [PTR, PTR, I64, PTR, I1, I64, I64])
        for a in fn.args[:2]:
            a.add_attribute("noalias")
        fn.args[3].add_attribute("noalias")
        L = _Builder(self.mod, fn)
        b, ty, vty = L.b, self.ty, self.vty
        ap, bp, kc, c, first, mr, nr = fn.args
        MR, NV, W, U = cfg.mr, cfg.nvec, cfg.lanes, cfg.unroll
        NR = cfg.nr
        suffix = {"float": "f32", "double": "f64"}[str(ty)]
        name = f"llvm.{'fma' if cfg.fma else 'fmuladd'}.v{W}{suffix}"
        fma = self.mod.globals.get(name) or ir.Function(
            self.mod, ir.FunctionType(vty, [vty] * 3), name)
        zero = ir.Constant(vty, [ir.Constant(ty, 0.0)] * W)
        undef = ir.Constant(vty, ir.Undefined)
        splat_mask = ir.Constant(ir.VectorType(ir.IntType(32), W), [0] * W)
        vbytes = W * self.size

        def step(accs, k):
            bv = [b.load(L.gep(bp, L.lin((k, NR), offset=v * W), ty), typ=vty, align=vbytes)
                  for v in range(NV)]
            out = list(accs)
            for i in range(MR):
                a = b.load(L.gep(ap, L.lin((k, MR), offset=i), ty), typ=ty)
                av = b.shuffle_vector(b.insert_element(undef, a, _i64(0)), undef, splat_mask)
                for v in range(NV):
                    out[i * NV + v] = b.call(fma, [av, bv[v], out[i * NV + v]])
            return out

        def kloop(accs, lo, hi, stride):
            """for k in range(lo, hi, stride) with the accumulators as loop-carried values."""
            pre = b.block
            head, blk, done = (fn.append_basic_block(n) for n in ("khead", "kbody", "kdone"))
            b.branch(head)
            b.position_at_end(head)
            k = b.phi(I64)
            k.add_incoming(lo, pre)
            phis = []
            for a in accs:
                p = b.phi(vty)
                p.add_incoming(a, pre)
                phis.append(p)
            b.cbranch(b.icmp_signed("<", k, hi), blk, done)
            b.position_at_end(blk)
            cur = phis
            for u in range(stride):
                cur = step(cur, b.add(k, _i64(u)) if u else k)
            k.add_incoming(b.add(k, _i64(stride)), b.block)
            for p, v in zip(phis, cur):
                p.add_incoming(v, b.block)
            b.branch(head)
            b.position_at_end(done)
            return phis, k

        accs = [zero] * (MR * NV)
        main_hi = b.and_(kc, _i64(-U))
        accs, kend = kloop(accs, _i64(0), main_hi, U)
        accs, _ = kloop(accs, kend, kc, 1)

        full = b.and_(b.icmp_signed("==", mr, _i64(MR)), b.icmp_signed("==", nr, _i64(NR)))
        N = g.n

        def store_full(add):
            for i in range(MR):
                for v in range(NV):
                    p = L.gep(c, i * N + v * W, ty)
                    x = accs[i * NV + v]
                    if add:
                        x = b.fadd(x, b.load(p, typ=vty, align=self.size))
                    b.store(x, p, align=self.size)

        def store_partial():
            with b.goto_entry_block():
                tile = _alloca(b, ir.ArrayType(ty, MR * NR))
            for i in range(MR):
                for v in range(NV):
                    b.store(accs[i * NV + v], L.gep(tile, i * NR + v * W, ty), align=vbytes)

            def row(i):
                def col(j):
                    p = L.gep(c, L.lin((i, N), (j, 1)), ty)
                    x = b.load(L.gep(tile, L.lin((i, NR), (j, 1)), ty), typ=ty)
                    old = b.select(first, ir.Constant(ty, 0.0), b.load(p, typ=ty))
                    b.store(b.fadd(old, x), p)
                L.loop(0, nr, 1, col)
            L.loop(0, mr, 1, row)

        L.if_(full, lambda: L.if_(first, lambda: store_full(False), lambda: store_full(True)),
              store_partial)
        b.ret_void()
        return fn

    # -- epilogue ----------------------------------------------------------------------------
    def _epilogue(self):
        """``epi(out, in..., b, row, col, mr, nr)``: out[b, row+i, col+j] = epilogue(acc) with
        acc the stored product, for i < mr, j < nr."""
        g = self.g
        nin = len(g.inputs)
        fn = _private(self.mod, f"{g.name}.epilogue", [PTR] * (1 + nin) + [I64] * 5)
        L = _Builder(self.mod, fn)
        b = L.b
        out = fn.args[0]
        ptr = dict(zip(g.inputs, fn.args[1:1 + nin]))
        bi, row, col, mr, nr = fn.args[1 + nin:]
        ev = _EpilogueEval(self.mod, b, ptr)
        N = g.n
        raw = ptr[g.raw] if g.raw is not None else None

        def r(i):
            ri = b.add(row, i)

            def cj(j):
                cj_ = b.add(col, j)
                pos = L.lin((bi, g.m * N), (ri, N), (cj_, 1))
                p = L.gep(out, pos, self.ty)
                acc = b.load(p, typ=self.ty)
                if raw is not None:  # the plain product, kept as a result too
                    b.store(acc, L.gep(raw, pos, self.ty))
                v = ev.value(g.epilogue, acc, (bi, ri, cj_))
                b.store(v, p)
            L.loop(0, nr, 1, cj)
        L.loop(0, mr, 1, r)
        b.ret_void()
        return fn


class _EpilogueEval:
    """Evaluates an epilogue `Expr` at one output element, through `lower_op` (the loop
    kernels' scalar lowerings) and `codegen/llvm.py`'s element loads and constants."""

    def __init__(self, mod, builder, ptr):
        self.mod, self.b, self.ptr = mod, builder, ptr

    def value(self, e: Expr, acc, idx):
        from .llvm import constant, load_element
        memo = {}
        b = self.b

        def go(x: Expr):
            v = memo.get(id(x))
            if v is not None:
                return v
            if x.kind == "acc":
                v = acc
            elif x.kind == "load":
                a = x.attrs
                pos = _i64(a.offset)
                for i, s in zip(idx, a.strides):
                    if s:
                        pos = b.add(pos, b.mul(i, _i64(s)))
                v = load_element(b, self.ptr[a.buffer], pos, x.dtype)
            elif x.kind == "const":
                v = constant(x.attrs, x.dtype)
            else:
                v = lower_op(self, x, [go(y) for y in x.args])
            memo[id(x)] = v
            return v
        return go(e)

