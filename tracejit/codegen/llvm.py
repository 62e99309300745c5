"""LLVM code generation: Kernel IR -> one LLVM module of loop functions, built with llvmlite.

Input: a `Schedule`. Output: an `llvmlite.ir.Module` with one function per kernel,
``void kN(ptr noalias out, ptr noalias in0, ..., i64 lo, i64 hi)``, where [lo, hi) is the range
of the outermost loop (so the runtime can split a kernel across threads). Loops, indexing and
memory are generated here; the scalar operations come from `lower_op` and the math library.
`Gemm` steps get the same signature from `codegen/matmul.py` ([lo, hi) ranges over output rows).

Loop order: an elementwise kernel loops over its domain in row-major order after merging
adjacent axes that every access walks contiguously, so the innermost loop is long and unit-stride
and LLVM's loop vectorizer turns it into SIMD code. A reduction whose innermost axis is reduced
keeps an accumulator in registers (float sums are marked reassociable so they vectorize); other
reductions initialize the output and accumulate into it in memory order.
"""

from __future__ import annotations

import math

import llvmlite.ir as ir
import numpy as np

from .. import dtypes as D
from ..schedule.kernel import Access, Expr, Kernel, Schedule
from .lower import identity_value, lower_op, reduce_combine

__all__ = ["build_module", "ir_type", "storage_type", "load_element", "store_element",
           "constant"]

I1, I8, I64 = ir.IntType(1), ir.IntType(8), ir.IntType(64)


def storage_type(dt: D.DType):
    if dt.is_bool:
        return I8
    if dt.is_floating_point:
        return {2: ir.HalfType(), 4: ir.FloatType(), 8: ir.DoubleType()}[dt.itemsize]
    return ir.IntType(8 * dt.itemsize)


def ir_type(dt: D.DType):
    """The register type: bool is i1, float16 is computed in float (stored as half: x86 has
    conversion instructions but no half arithmetic, which would need runtime library calls)."""
    if dt == D.float16:
        return ir.FloatType()
    return I1 if dt.is_bool else storage_type(dt)


def build_module(sched: Schedule, name: str, cpu: str, features: str) -> ir.Module:
    from ..schedule.kernel import Gemm, RowKernel
    from .matmul import emit_gemm
    mod = ir.Module(name=name)
    for st in sched.steps:
        if isinstance(st, Kernel):
            _KernelGen(mod, sched, st, cpu, features).emit()
        elif isinstance(st, Gemm):
            emit_gemm(mod, st, features)
        elif isinstance(st, RowKernel):
            from .rows import emit_rows
            emit_rows(mod, sched, st, cpu, features)
    from .parallel import emit_parallel_wrappers
    emit_parallel_wrappers(mod, sched)
    from .entry import emit_entry, supports_entry
    if supports_entry(sched):
        emit_entry(mod, sched)
    return mod


def with_target_attributes(text: str, cpu: str, features: str) -> str:
    """Adds the host CPU to every kernel definition: the vectorizer's cost model reads the
    function's target-cpu/target-features (without them it assumes a baseline x86 with 128-bit
    vectors), and ``prefer-vector-width`` lets it use 512-bit registers where the CPU has them."""
    attrs = (f' "target-cpu"="{cpu}" "target-features"="{features}" '
             '"prefer-vector-width"="512"')
    return "\n".join(line.rstrip() + attrs if line.startswith("define ") else line
                     for line in text.splitlines())


def _merge_axes(k: Kernel, loads: list[Access], index_axes: set[int]):
    """Merges adjacent domain axes that every access (and the output) walks contiguously."""
    dims = list(k.domain)
    strides = [list(a.strides) + [0] * (len(dims) - len(a.strides)) for a in loads]
    out = [int(np.prod(dims[i + 1:], dtype=np.int64)) for i in range(len(dims))]
    groups = [[i] for i in range(len(dims))]
    i = len(dims) - 2
    while i >= 0:
        j = groups[i + 1]
        ok = (i not in index_axes and j[0] not in index_axes
              and all(s[i] == s[j[0]] * dims[j[0]] for s in strides)
              and out[i] == out[j[0]] * dims[j[0]])
        if ok:
            groups[i] = [i] + j
            dims[i] *= dims[j[0]]
            for s in strides:
                s[i] = s[j[0]]
            out[i] = out[j[0]]
            del groups[i + 1], dims[i + 1]
            for s in strides:
                del s[i + 1]
            del out[i + 1]
        i -= 1
    return dims, groups


class _KernelGen:
    def __init__(self, mod, sched, k: Kernel, cpu, features):
        self.mod, self.sched, self.k = mod, sched, k
        self.cpu, self.features = cpu, features
        self.bufs = [k.out] + list(k.inputs)

    def _begin(self) -> None:
        """The step function ``void name(ptr noalias buffers..., i64 lo, i64 hi)`` and a builder
        at its entry block; `self.bufs` lists the buffers in argument order."""
        fnty = ir.FunctionType(ir.VoidType(), [ir.PointerType()] * len(self.bufs) + [I64, I64])
        fn = ir.Function(self.mod, fnty, name=self.k.name)
        for a in fn.args[:len(self.bufs)]:
            a.add_attribute("noalias")
        fn.attributes.add("nounwind")
        fn.attributes.add("norecurse")
        self.fn = fn
        self.ptr = {b: a for b, a in zip(self.bufs, fn.args)}
        self.lo, self.hi = fn.args[-2], fn.args[-1]
        self.b = ir.IRBuilder(fn.append_basic_block("entry"))

    def emit(self):
        k = self.k
        self._begin()
        if k.reduce_op is None:
            self._elementwise()
        elif k.reduce_axes and k.reduce_axes[-1] == len(k.domain) - 1 and \
                list(k.reduce_axes) == list(range(len(k.domain) - len(k.reduce_axes),
                                                  len(k.domain))):
            self._reduce_in_registers()
        else:
            self._reduce_in_memory()
        self.b.ret_void()

    # -- loops -----------------------------------------------------------------------------
    def _loop(self, lo, hi, body):
        """``for i in range(lo, hi): body(i)``; the builder ends after the loop."""
        b = self.b
        pre = b.block
        head = self.fn.append_basic_block("head")
        blk = self.fn.append_basic_block("body")
        done = self.fn.append_basic_block("done")
        b.branch(head)
        b.position_at_end(head)
        i = b.phi(I64, "i")
        i.add_incoming(lo, pre)
        b.cbranch(b.icmp_signed("<", i, hi), blk, done)
        b.position_at_end(blk)
        body(i)
        nxt = b.add(i, ir.Constant(I64, 1), flags=["nsw"])
        i.add_incoming(nxt, b.block)
        b.branch(head)
        b.position_at_end(done)

    def _nest(self, dims: list[int], body, idx=(), first=True):
        if len(idx) == len(dims):
            body(list(idx))
            return
        d = len(idx)
        lo = self.lo if first else ir.Constant(I64, 0)
        hi = self.hi if first else ir.Constant(I64, dims[d])
        self._loop(lo, hi, lambda i: self._nest(dims, body, idx + (i,), False))

    # -- kernels -----------------------------------------------------------------------------
    def _elementwise(self):
        k = self.k
        loads, index_axes = _collect(k.body)
        dims, groups = _merge_axes(k, loads, index_axes) if k.domain else ([], [])
        if not dims:
            dims, groups = [1], [[]]
        self.groups = groups

        k.outer_extent, k.parallel_ok = dims[0], True

        def body(idx):
            self.memo = {}
            self.loop_idx = idx
            self.idx = self._domain_index(idx, groups)
            v = self._expr(k.body)
            self._store(k.out, self._linear(idx, [int(np.prod(dims[i + 1:], dtype=np.int64))
                                                  for i in range(len(dims))]), v, k.body.dtype)
        self._nest(dims, body)

    def _domain_index(self, idx, groups):
        """Values of the original domain axes from the merged loop indices (only the axes an
        `index` expression uses are ever unmerged, so they map one to one)."""
        out = {}
        for i, g in zip(idx, groups):
            if len(g) == 1:
                out[g[0]] = i
        return out

    def _reduce_in_registers(self):
        k = self.k
        nk = len(k.domain) - len(k.reduce_axes)
        kept, red = list(k.domain[:nk]), list(k.domain[nk:])
        dt = k.body.dtype
        ty = ir_type(dt)
        out_strides = [int(np.prod(kept[i + 1:], dtype=np.int64)) for i in range(nk)]

        with self.b.goto_entry_block():
            acc = self.b.alloca(ty)

        def outer(idx_kept):
            self.b.store(identity_value(k.reduce_op, dt, ty), acc)

            def inner(idx_red):
                self.memo = {}
                self.idx = {a: i for a, i in enumerate(list(idx_kept) + list(idx_red))}
                v = self._expr(k.body)
                self.b.store(reduce_combine(self.b, k.reduce_op, dt, self.b.load(acc), v), acc)
            self._nest_from(red, inner, nested_first=not idx_kept)
            self._store(k.out, self._linear(idx_kept, out_strides), self.b.load(acc), dt)

        k.outer_extent = kept[0] if kept else (red[0] if red else 1)
        k.parallel_ok = bool(kept)
        if kept:
            self._nest(kept, outer)
        else:
            outer([])

    def _nest_from(self, dims, body, nested_first):
        if nested_first:
            self._nest(dims, body)
        else:
            self._nest(dims, body, first=False)

    def _reduce_in_memory(self):
        k = self.k
        dt = k.body.dtype
        ty = ir_type(dt)
        kept_axes = [a for a in range(len(k.domain)) if a not in k.reduce_axes]
        kept = [k.domain[a] for a in kept_axes]
        out_strides = [int(np.prod(kept[i + 1:], dtype=np.int64)) for i in range(len(kept))]
        n_out = int(np.prod(kept, dtype=np.int64))

        k.outer_extent, k.parallel_ok = (k.domain[0] if k.domain else 1), False

        def init(i):
            self._store(k.out, i, identity_value(k.reduce_op, dt, ty), dt)
        self._loop(ir.Constant(I64, 0), ir.Constant(I64, n_out), init)

        def body(idx):
            self.memo = {}
            self.idx = {a: i for a, i in enumerate(idx)}
            v = self._expr(k.body)
            pos = self._linear([idx[a] for a in kept_axes], out_strides)
            old = self._load_buf(k.out, pos, dt)
            self._store(k.out, pos, reduce_combine(self.b, k.reduce_op, dt, old, v), dt)
        self._nest(list(k.domain), body)

    # -- memory ------------------------------------------------------------------------------
    def _linear(self, idx, strides, offset=0):
        b = self.b
        acc = ir.Constant(I64, offset)
        for i, s in zip(idx, strides):
            if s == 0:
                continue
            term = i if s == 1 else b.mul(i, ir.Constant(I64, s), flags=["nsw"])
            acc = term if (isinstance(acc, ir.Constant) and acc.constant == 0) else b.add(
                acc, term, flags=["nsw"])
        return acc

    def _load_buf(self, buf, pos, dt):
        return load_element(self.b, self.ptr[buf], pos, dt)

    def _store(self, buf, pos, v, dt):
        store_element(self.b, self.ptr[buf], pos, v, dt)

    # -- expressions -------------------------------------------------------------------------
    def _expr(self, e: Expr):
        v = self.memo.get(id(e))
        if v is not None:
            return v
        if e.kind == "load":
            a: Access = e.attrs
            v = self._load_buf(a.buffer, self._access_pos(a), e.dtype)
        elif e.kind == "const":
            v = constant(e.attrs, e.dtype)
        elif e.kind == "index":
            axis, scale, off = e.attrs
            pos = self._linear([self.idx[axis]], [scale], off) if scale != 1 or off else \
                self.idx[axis]
            v = _from_i64(self.b, pos, e.dtype)
        else:
            args = [self._expr(a) for a in e.args]
            v = lower_op(self, e, args)
        self.memo[id(e)] = v
        return v

    def _access_pos(self, a: Access):
        if self.k.reduce_op is None:
            # merged loops walk each group of axes with its innermost axis' stride
            strides = [a.strides[g[-1]] if g and g[-1] < len(a.strides) else 0
                       for g in self.groups]
            return self._linear(self.loop_idx, strides, a.offset)
        idx = [self.idx[ax] for ax in range(len(a.strides))]
        return self._linear(idx, list(a.strides), a.offset)


def _collect(e: Expr):
    loads, index_axes, seen = [], set(), set()
    stack = [e]
    while stack:
        x = stack.pop()
        if id(x) in seen:
            continue
        seen.add(id(x))
        if x.kind == "load":
            loads.append(x.attrs)
        elif x.kind == "index":
            index_axes.add(x.attrs[0])
        stack.extend(x.args)
    return loads, index_axes


def load_element(b: ir.IRBuilder, ptr, pos, dt: D.DType):
    """Element `pos` of a buffer of `dt` as a register value (see `ir_type`)."""
    st = storage_type(dt)
    v = b.load(b.gep(ptr, [pos], inbounds=True, source_etype=st), typ=st)
    if dt == D.float16:
        return b.fpext(v, ir.FloatType())
    return b.icmp_unsigned("!=", v, ir.Constant(I8, 0)) if dt.is_bool else v


def store_element(b: ir.IRBuilder, ptr, pos, v, dt: D.DType):
    st = storage_type(dt)
    p = b.gep(ptr, [pos], inbounds=True, source_etype=st)
    if dt == D.float16:
        v = b.fptrunc(v, st)
    b.store(b.zext(v, I8) if dt.is_bool else v, p)


def constant(value, dt: D.DType):
    ty = ir_type(dt)
    if dt.is_bool:
        return ir.Constant(I1, int(bool(value)))
    if dt.is_floating_point:
        v = float(value)
        if math.isnan(v):
            return ir.Constant(ty, float("nan"))
        return ir.Constant(ty, v)
    info = np.iinfo(dt.np)
    iv = int(value)
    if not info.min <= iv <= info.max:
        iv = int(np.array(iv).astype(dt.np))
    return ir.Constant(ty, iv)


def _from_i64(b, v, dt: D.DType):
    ty = ir_type(dt)
    if dt.is_floating_point:
        return b.sitofp(v, ty)
    if dt.is_bool:
        return b.icmp_signed("!=", v, ir.Constant(I64, 0))
    return b.trunc(v, ty) if ty.width < 64 else v
