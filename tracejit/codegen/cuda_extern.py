"""CUDA C for extern steps: an `Extern` (a graph node the loop kernels do not cover) -> kernels.

Input: a `Schedule` and one of its `Extern` steps (`schedule/kernel.py`). Output: the CUDA C
text of the step's kernels and its `CudaStep` (launches, scratch, error flag), or None for a
node the runtime keeps running on the host through its numpy reference (control flow, debug
effects, custom derivatives, argsort, and any node with operands of a shape or dtype not
handled here). `codegen/cuda.py` calls `render_extern` from its `_renderers()` hook.

Every kernel reproduces the numpy reference of its primitive (`tracejit/primitives`) exactly,
except where noted: floating-point scatter-add (atomics: the order of the additions varies) and
floating-point scans of long lines (a block scan: the association differs from numpy's
left-to-right sums). Bad input the reference raises on (an index out of bounds, an integer
division by zero) sets the step's error flag (`CudaStep.error_flag`) and is never acted on (no
out-of-bounds access): the runtime reruns the reference on the host, which raises the error.

| primitive          | kernels                                                            |
|--------------------|--------------------------------------------------------------------|
| cumsum, cumprod    | one thread per line; a block scan per line for few long lines      |
| argmax, argmin     | one thread per line; a block reduction per line for few long lines |
| gather             | one thread per output element (every index bounds-checked first)   |
| scatter add / set  | a copy, then atomic adds / the last write to each slot wins        |
| pad, concatenate   | one thread per output element                                      |
| floordiv, rem, pow | elementwise with numpy broadcasting                                |
| dot_general        | (the dtypes a Gemm does not take) one thread per output element    |
| random_bits        | one thread per Philox counter (``kernels/cuda/tj_rng.h``)          |

Helpers live in ``kernels/cuda/tj_extern.h``.
"""

from __future__ import annotations

import math

import numpy as np

from .. import dtypes as D
from ..schedule.kernel import Expr, Extern, Schedule
from .cuda import (
    ELEMENTWISE_BLOCK,
    CudaStep,
    ExprWriter,
    Launch,
    combine,
    constant,
    ctype,
    identity,
    param_buffers,
    render_op,
    signature,
)

__all__ = ["render_extern", "RENDERED_EXTERNS"]

BLOCK = 256  # threads per block of the block-per-line kernels (a multiple of 32)
LONG_LINE = 512  # lines at least this long, when there are few, get a block each
FEW_LINES = 8192
MAX_GRID = 65535
INCLUDE = '#include "tj_extern.h"'


def render_extern(sched: Schedule, x: Extern, i: int) -> tuple[str, CudaStep] | None:
    """The CUDA C of extern step `x` (index `i` of the schedule), or None to run it on the host.

    Kernel names are ``x<i>_<op>[_<part>]``, unique in the translation unit."""
    fn = _RENDER.get(x.node.op)
    if fn is None:
        return None
    if x.node.op not in _CHECKS_INPUT and not any(
            _size(sched.buffers[b].shape) for b in x.outputs):
        return f"/* step #{i}: {x.node.op} of an empty result: nothing to launch */", \
            CudaStep([])
    try:
        return fn(_Step(sched, x, i))
    except NotImplementedError:  # a dtype without a device rendering: the host runs it
        return None


# -- shared plumbing ------------------------------------------------------------------------------
def _size(shape) -> int:
    return int(math.prod(shape))


class _Step(ExprWriter):
    """One extern step being rendered: its buffers, and the text of its kernels."""

    def __init__(self, sched: Schedule, x: Extern, i: int):
        super().__init__(sched)
        self.x, self.i, self.node = x, i, x.node
        self.launches: list[Launch] = []

    def shape(self, b: int) -> tuple[int, ...]:
        return tuple(self.sched.buffers[b].shape)

    def name(self, part: str = "") -> str:
        return f"x{self.i}_{self.node.op}" + (f"_{part}" if part else "")

    def kernel(self, part: str, outs: list[int], ins: list[int], scratch: bool = False) -> str:
        """Opens a kernel (its signature and ``{``) and returns its name; close it with
        `end`. `ins` may repeat buffers or hold outputs: each is passed once."""
        ins = [b for b in dict.fromkeys(ins) if b not in outs]
        name = self.name(part)
        self.emit(signature(self.sched, name, outs, ins, "scratch" if scratch else None), 0)
        self.emit("{", 0)
        self._params = param_buffers(outs, ins, scratch)
        return name

    def end(self, name: str, work: int, block: int = ELEMENTWISE_BLOCK, grid: int = 0):
        """Closes the kernel opened last; it launches unless it has no work."""
        self.emit("}", 0)
        if work > 0:
            self.launches.append(Launch(name, self._params, block, grid, work))

    def grid_loop(self, n: int, depth: int = 1, var: str = "t"):
        self.emit(f"for (long long {var} = tj_thread_index(); {var} < {n}LL; "
                  f"{var} += tj_thread_stride()) {{", depth)

    def value(self, b: int, pos: str) -> str:
        """Element `pos` of buffer `b` as a register value (``ctype``)."""
        dt = self.dtype_of(b)
        if dt == D.float16:
            return f"tj_h2f(b{b}[{pos}])"
        if dt.is_bool:
            return f"(b{b}[{pos}] != 0)"
        return f"b{b}[{pos}]"

    def done(self, scratch: int = 0, error_flag: bool = False, extra: str = ""):
        text = "\n".join(([INCLUDE] + ([extra] if extra else [])) + self.lines)
        return text, CudaStep(self.launches, max(scratch, 16 if error_flag else 0), error_flag)


def _strides(shape) -> list[int]:
    return [_size(shape[a + 1:]) for a in range(len(shape))]


def _bcast_pos(in_shape, out_shape, idx: dict[int, str]) -> str:
    """The flat position in a row-major buffer of `in_shape` of the element that numpy
    broadcasting (right-aligned, size-1 axes repeated) reads at output index `idx`."""
    lead = len(out_shape) - len(in_shape)
    terms = []
    for a, (n, s) in enumerate(zip(in_shape, _strides(in_shape))):
        ax = a + lead
        if n != 1 and ax in idx:
            terms.append(idx[ax] if s == 1 else f"{idx[ax]} * {s}LL")
    return " + ".join(terms) if terms else "0LL"


def _lines(shape, axis: int) -> tuple[int, int, int]:
    """(outer, n, inner): a row-major array as lines along `axis`."""
    return _size(shape[:axis]), shape[axis], _size(shape[axis + 1:])


def _line_base(st: _Step, t: str, n: int, inner: int, depth: int) -> str:
    """Emits the first element's position of line `t` (lines ordered outer-major)."""
    if inner == 1:
        st.emit(f"const long long base = {t} * {n}LL;", depth)
    else:
        st.emit(f"const long long base = ({t} / {inner}LL) * {n * inner}LL + {t} % {inner}LL;",
                depth)
    return "base"


# -- scans: cumsum, cumprod -----------------------------------------------------------------------
def _scan(st: _Step):
    x, node = st.x, st.node
    (src,), (out,) = x.inputs, x.outputs
    dt = st.dtype_of(out)
    if st.dtype_of(src) != dt:
        return None
    op = "sum" if node.op == "cumsum" else "prod"
    reverse = bool(node.params.get("reverse", False))
    outer, n, inner = _lines(st.shape(out), node.params["axis"])
    lines = outer * inner
    t, ident = ctype(dt), identity(op, dt)

    def pos(j: str) -> str:
        jj = f"({n - 1}LL - {j})" if reverse else j
        return f"base + {jj} * {inner}LL" if inner != 1 else f"base + {jj}"

    if n < LONG_LINE or lines >= FEW_LINES or dt == D.float16:
        # one thread per line, left to right: numpy's exact order of operations
        name = st.kernel("", [out], [src])
        st.grid_loop(lines)
        _line_base(st, "t", n, inner, 2)
        st.emit(f"{t} acc = {ident};", 2)
        st.emit(f"for (long long j = 0; j < {n}LL; ++j) {{", 2)
        st.emit(f"const long long p = {pos('j')};", 3)
        acc = combine(op, dt, "acc", st.value(src, "p"))
        st.emit(f"acc = {'tj_round_half(' + acc + ')' if dt == D.float16 else acc};", 3)
        st.store(out, "p", "acc", 3)
        st.emit("}", 2)
        st.emit("}", 1)
        st.end(name, lines)
        return st.done()
    # a block per line: chunks of BLOCK elements, each scanned in shared memory (Hillis-Steele),
    # plus the running total of the chunks before it
    name = st.kernel("", [out], [src])
    st.emit(f"TJ_SHARED({t}, sh, {BLOCK}, 0);", 1)
    st.emit("const long long tid = threadIdx.x;", 1)
    st.emit(f"for (long long line = blockIdx.x; line < {lines}LL; line += gridDim.x) {{", 1)
    _line_base(st, "line", n, inner, 2)
    st.emit(f"{t} carry = {ident};", 2)
    st.emit(f"for (long long c = 0; c < {-(-n // BLOCK)}LL; ++c) {{", 2)
    st.emit(f"const long long j = c * {BLOCK}LL + tid;", 3)
    st.emit(f"const long long p = {pos('j')};", 3)
    st.emit(f"{t} v = j < {n}LL ? {st.value(src, 'p')} : {ident};", 3)
    st.emit("sh[tid] = v;", 3)
    st.emit("__syncthreads();", 3)
    st.emit(f"for (int d = 1; d < {BLOCK}; d <<= 1) {{", 3)
    st.emit(f"const {t} before = tid >= d ? sh[tid - d] : {ident};", 4)
    st.emit("__syncthreads();", 4)
    st.emit(f"v = {combine(op, dt, 'before', 'v')};", 4)
    st.emit("sh[tid] = v;", 4)
    st.emit("__syncthreads();", 4)
    st.emit("}", 3)
    st.emit(f"const {t} total = sh[{BLOCK - 1}];", 3)
    st.emit(f"if (j < {n}LL) {{", 3)
    st.store(out, "p", combine(op, dt, "carry", "v"), 4)
    st.emit("}", 3)
    st.emit(f"carry = {combine(op, dt, 'carry', 'total')};", 3)
    st.emit("__syncthreads();  // every thread has read sh before the next chunk writes it", 3)
    st.emit("}", 2)
    st.emit("}", 1)
    st.end(name, lines * n, BLOCK, min(lines, MAX_GRID))
    return st.done()


# -- argmax, argmin -------------------------------------------------------------------------------
def _arg(st: _Step):
    x, node = st.x, st.node
    (src,), (out,) = x.inputs, x.outputs
    outer, n, inner = _lines(st.shape(src), node.params["axis"])
    if n == 0:
        return None  # the reference raises (no element to pick)
    lines = outer * inner
    if lines == 0:
        return st.done()
    dt = st.dtype_of(src)
    t = ctype(dt)
    wins = f"tj_arg_wins<{'true' if node.op == 'argmax' else 'false'}, {t}>"

    def at(j: str) -> str:
        return st.value(src, f"base + {j} * {inner}LL" if inner != 1 else f"base + {j}")

    if n < LONG_LINE or lines >= FEW_LINES:
        name = st.kernel("", [out], [src])
        st.grid_loop(lines)
        _line_base(st, "t", n, inner, 2)
        st.emit(f"{t} best = {at('0LL')};", 2)
        st.emit("long long bi = 0;", 2)
        st.emit(f"for (long long j = 1; j < {n}LL; ++j) {{", 2)
        st.emit(f"const {t} v = {at('j')};", 3)
        st.emit(f"if ({wins}(v, j, best, bi)) {{ best = v; bi = j; }}", 3)
        st.emit("}", 2)
        st.emit("b{}[t] = (int64_t)bi;".format(out), 2)
        st.emit("}", 1)
        st.end(name, lines)
        return st.done()
    # a block per line: each thread the best of its strided share, then a tree in shared memory
    vbytes = -(-BLOCK * np.dtype(np.float64 if dt.itemsize == 8 else np.float32).itemsize
               // 16) * 16
    name = st.kernel("", [out], [src])
    st.emit(f"TJ_SHARED({t}, sv, {BLOCK}, 0);", 1)
    st.emit(f"TJ_SHARED(long long, si, {BLOCK}, {vbytes});", 1)
    st.emit("const long long tid = threadIdx.x;", 1)
    st.emit(f"for (long long line = blockIdx.x; line < {lines}LL; line += gridDim.x) {{", 1)
    _line_base(st, "line", n, inner, 2)
    st.emit(f"{t} best = {at('0LL')};", 2)
    st.emit("long long bi = -1;", 2)
    st.emit(f"for (long long j = tid; j < {n}LL; j += {BLOCK}LL) {{", 2)
    st.emit(f"const {t} v = {at('j')};", 3)
    st.emit(f"if ({wins}(v, j, best, bi)) {{ best = v; bi = j; }}", 3)
    st.emit("}", 2)
    st.emit("sv[tid] = best;", 2)
    st.emit("si[tid] = bi;", 2)
    st.emit("__syncthreads();", 2)
    st.emit(f"for (int s = {BLOCK // 2}; s > 0; s >>= 1) {{", 2)
    st.emit(f"if (tid < s && {wins}(sv[tid + s], si[tid + s], sv[tid], si[tid])) {{", 3)
    st.emit("sv[tid] = sv[tid + s];", 4)
    st.emit("si[tid] = si[tid + s];", 4)
    st.emit("}", 3)
    st.emit("__syncthreads();", 3)
    st.emit("}", 2)
    st.emit(f"if (tid == 0) b{out}[line] = (int64_t)si[0];", 2)
    st.emit("__syncthreads();  // sv/si are read before the next line writes them", 2)
    st.emit("}", 1)
    st.end(name, lines * n, BLOCK, min(lines, MAX_GRID))
    return st.done()


# -- index bounds ----------------------------------------------------------------------------------
def _check_indices(st: _Step, idx: list[int], dims: list[int], depth: int = 1) -> int:
    """Emits a loop over every element of the index buffers `idx` (index k addresses an axis of
    extent dims[k]) that sets the error flag on one out of bounds, as the reference checks them
    all (even those no output element reads). Returns the elements checked."""
    total = 0
    for b, n in zip(idx, dims):
        m = _size(st.shape(b))
        if m == 0:
            continue
        st.grid_loop(m, depth, "c")
        cond = f"b{b}[c] >= {n}" if st.dtype_of(b).kind == "u" else \
            f"b{b}[c] < 0 || b{b}[c] >= {n}"
        st.emit(f"if ({cond}) tj_flag_error(scratch);", depth + 1)
        st.emit("}", depth)
        total = max(total, m)
    return total


def _slot(st: _Step, idx: list[int], bshape, dims, at: dict[int, str], depth: int) -> str:
    """Emits the flat slot (over the indexed axes `dims`) that the indices at broadcast
    position `at` address, and ``ok`` (all in bounds); returns the slot's C name."""
    st.emit("bool ok = true;", depth)
    terms = []
    for k, (b, n, s) in enumerate(zip(idx, dims, _strides(dims))):
        st.emit(f"const long long q{k} = (long long)b{b}[{_bcast_pos(st.shape(b), bshape, at)}];",
                depth)
        st.emit(f"ok = ok && q{k} >= 0 && q{k} < {n}LL;", depth)
        terms.append(f"q{k} * {s}LL" if s != 1 else f"q{k}")
    st.emit(f"const long long slot = {' + '.join(terms) if terms else '0LL'};", depth)
    return "slot"


def _index_parts(st: _Step, xb: int, idx: list[int]):
    """(broadcast index shape, indexed extents, elements per slot) of gather/scatter."""
    from ..primitives.elementwise import broadcast_shapes
    xs = st.shape(xb)
    k = len(idx)
    return tuple(broadcast_shapes(*(st.shape(b) for b in idx))), list(xs[:k]), _size(xs[k:])


# -- gather ---------------------------------------------------------------------------------------
def _gather(st: _Step):
    x = st.x
    xb, idx = x.inputs[0], list(x.inputs[1:])
    (out,) = x.outputs
    bshape, dims, per = _index_parts(st, xb, idx)
    n_out = _size(st.shape(out))
    name = st.kernel("", [out], [xb, *idx], scratch=True)
    checked = _check_indices(st, idx, dims)
    if n_out:
        st.grid_loop(n_out)
        st.emit(f"const long long p = t / {per}LL, r = t % {per}LL;" if per > 1 else
                "const long long p = t, r = 0;", 2)
        at = st.unflatten("p", list(range(len(bshape))), list(bshape), 2)
        _slot(st, idx, bshape, dims, at, 2)
        st.emit(f"if (ok) b{out}[t] = b{xb}[slot * {per}LL + r];  // else: flagged", 2)
        st.emit("}", 1)
    st.end(name, max(n_out, checked))
    return st.done(error_flag=True)


# -- scatter --------------------------------------------------------------------------------------
def _scatter(st: _Step):
    x, node = st.x, st.node
    xb, ub, idx = x.inputs[0], x.inputs[1], list(x.inputs[2:])
    (out,) = x.outputs
    dt = st.dtype_of(out)
    mode = node.params["mode"]
    bshape, dims, per = _index_parts(st, xb, idx)
    n_out, n_pos = _size(st.shape(out)), _size(bshape)
    n_slots = _size(dims)
    n_upd = n_pos * per
    setting = mode == "set"
    if mode not in ("set", "add") or (not setting and not dt.is_bool and
                                      dt.name not in _ATOMIC_ADD):
        return None
    # 1. the operand copied into the result, the indices checked, (set:) no winners yet
    name = st.kernel("copy", [out], [xb, *idx], scratch=True)
    checked = _check_indices(st, idx, dims)
    st.grid_loop(n_out)
    st.emit(f"b{out}[t] = b{xb}[t];", 2)
    st.emit("}", 1)
    if setting:
        st.emit("unsigned long long* win = (unsigned long long*)(scratch + 16);", 1)
        st.grid_loop(n_slots)
        st.emit("win[t] = 0ull;", 2)
        st.emit("}", 1)
    st.end(name, max(n_out, checked, n_slots if setting else 0))
    if n_upd == 0:
        return st.done(error_flag=True)

    def update_loop(n: int, per_elem: bool):
        st.forget()
        st.grid_loop(n)
        if per_elem:
            st.emit(f"const long long p = t / {per}LL, r = t % {per}LL;" if per > 1 else
                    "const long long p = t, r = 0;", 2)
        else:
            st.emit("const long long p = t;", 2)
        at = st.unflatten("p", list(range(len(bshape))), list(bshape), 2)
        _slot(st, idx, bshape, dims, at, 2)

    if setting:
        # 2. each slot's winner: the last update position writing it (numpy keeps the last)
        name = st.kernel("claim", [], [*idx], scratch=True)
        st.emit("unsigned long long* win = (unsigned long long*)(scratch + 16);", 1)
        update_loop(n_pos, False)
        st.emit("if (ok) atomicMax(&win[slot], (unsigned long long)(p + 1));", 2)
        st.emit("}", 1)
        st.end(name, n_upd and n_pos)
        # 3. the winners write
        name = st.kernel("set", [out], [ub, *idx], scratch=True)
        st.emit("const unsigned long long* win = (const unsigned long long*)(scratch + 16);", 1)
        update_loop(n_upd, True)
        st.emit(f"if (ok && win[slot] == (unsigned long long)(p + 1)) "
                f"b{out}[slot * {per}LL + r] = b{ub}[t];", 2)
        st.emit("}", 1)
        st.end(name, n_upd)
        return st.done(16 + 8 * n_slots, error_flag=True)
    # 2. the updates added (atomically: indices may repeat)
    name = st.kernel("add", [out], [ub, *idx], scratch=True)
    update_loop(n_upd, True)
    dst = f"b{out}[slot * {per}LL + r]"
    if dt.is_bool:  # bool + bool is `or`: every writer stores the same 1
        st.emit(f"if (ok && b{ub}[t] != 0) {dst} = 1;", 2)
    else:
        st.emit(f"if (ok) tj_atomic_add(&{dst}, b{ub}[t]);", 2)
    st.emit("}", 1)
    st.end(name, n_upd)
    return st.done(error_flag=True)


_ATOMIC_ADD = {"float32", "float64", "float16", "int32", "int64", "int8", "uint8", "int16"}


# -- pad, concatenate -----------------------------------------------------------------------------
def _pad(st: _Step):
    x, node = st.x, st.node
    (src,), (out,) = x.inputs, x.outputs
    lo, hi = node.params["lo"], node.params["hi"]
    if any(p < 0 for p in (*lo, *hi)) or "interior" in node.params:
        return None
    dt = st.dtype_of(out)
    oshape, ishape = st.shape(out), st.shape(src)
    n_out = _size(oshape)
    try:
        fill = np.array(node.params["value"], dt.np)  # the reference's own conversion
    except (ValueError, OverflowError, TypeError):
        return None  # (the reference raises it at run time)
    fill_c = constant(float(fill) if dt.is_floating_point else fill.item(), dt)
    name = st.kernel("", [out], [src])
    st.grid_loop(n_out)
    idx = st.unflatten("t", list(range(len(oshape))), list(oshape), 2)
    conds, terms = [], []
    for a, (n, s) in enumerate(zip(ishape, _strides(ishape))):
        i = f"({idx.get(a, '0LL')} - {lo[a]}LL)" if lo[a] else idx.get(a, "0LL")
        if lo[a] or hi[a]:
            conds.append(f"{i} >= 0 && {i} < {n}LL" if lo[a] else f"{i} < {n}LL")
        if n != 1:
            terms.append(f"{i} * {s}LL")
    pos = " + ".join(terms) or "0LL"
    inside = " && ".join(conds) or "true"
    st.emit(f"const {ctype(dt)} v = ({inside}) ? {st.value(src, pos)} : {fill_c};", 2)
    st.store(out, "t", "v", 2)
    st.emit("}", 1)
    st.end(name, n_out)
    return st.done()


def _concatenate(st: _Step):
    x, node = st.x, st.node
    (out,) = x.outputs
    axis = node.params["axis"]
    outer, n, inner = _lines(st.shape(out), axis)
    n_out = outer * n * inner
    name = st.kernel("", [out], list(x.inputs))
    st.grid_loop(n_out)
    st.emit(f"const long long o = t / {n * inner}LL, j = (t / {inner}LL) % {n}LL, "
            f"r = t % {inner}LL;", 2)
    off, first = 0, True
    for b in x.inputs:
        m = st.shape(b)[axis]
        if m == 0:
            continue
        cond = f"if (j < {off + m}LL) " if off + m < n else ""
        kw = "" if first else "else "
        st.emit(f"{kw}{cond}b{out}[t] = b{b}[(o * {m}LL + (j - {off}LL)) * {inner}LL + r];", 2)
        off, first = off + m, False
    st.emit("}", 1)
    st.end(name, n_out)
    return st.done()


# -- floordiv, rem, pow (their integer forms never fuse) ------------------------------------------
def _binary(st: _Step):
    x, node = st.x, st.node
    (a, b), (out,) = x.inputs, x.outputs
    dt = st.dtype_of(out)
    if st.dtype_of(a) != dt or st.dtype_of(b) != dt or dt.is_bool:
        return None
    oshape = st.shape(out)
    n_out, n_b = _size(oshape), _size(st.shape(b))
    # integer division by zero: the reference raises ZeroDivisionError (checking all of b)
    check = node.op in ("floordiv", "rem") and not dt.is_floating_point
    name = st.kernel("", [out], [a, b], scratch=check)
    if check and n_b:
        st.grid_loop(n_b, 1, "c")
        st.emit(f"if (b{b}[c] == 0) tj_flag_error(scratch);", 2)
        st.emit("}", 1)
    if n_out == 0:  # (the check alone: the reference raises on a zero divisor anyway)
        st.end(name, n_b if check else 0)
        return st.done(error_flag=check)
    st.grid_loop(n_out)
    idx = st.unflatten("t", list(range(len(oshape))), list(oshape), 2)
    va = st.value(a, _bcast_pos(st.shape(a), oshape, idx))
    vb = st.value(b, _bcast_pos(st.shape(b), oshape, idx))
    t = ctype(dt)
    if node.op == "pow" and not dt.is_floating_point:
        unsigned = "uint64_t" if dt.itemsize == 8 else "uint32_t"
        fn = "tj_upow" if dt.kind == "u" else "tj_ipow"
        v = f"{fn}<{t}, {unsigned}>({va}, {vb})"
    else:
        leaf = Expr("const", dt, attrs=0)
        v = render_op(Expr(node.op, dt, (leaf, leaf), {}), [va, vb])
    st.emit(f"const {t} v = {v};", 2)
    st.store(out, "t", "v", 2)
    st.emit("}", 1)
    st.end(name, max(n_out, n_b if check else 0))
    return st.done(error_flag=check)


# -- dot_general of dtypes the Gemm step does not take (integers, float16) -------------------------
def _dot(st: _Step):
    x, node = st.x, st.node
    (a, b), (out,) = x.inputs, x.outputs
    dt = st.dtype_of(out)
    if dt.is_bool or st.dtype_of(a) != dt or st.dtype_of(b) != dt:
        return None
    (ca, cb), (ba, bb) = node.params["contract"], node.params["batch"]
    ash, bsh, oshape = st.shape(a), st.shape(b), st.shape(out)
    fa = [d for d in range(len(ash)) if d not in ca and d not in ba]
    fb = [d for d in range(len(bsh)) if d not in cb and d not in bb]
    sa, sb = _strides(ash), _strides(bsh)
    n_out = _size(oshape)
    name = st.kernel("", [out], [a, b])
    st.grid_loop(n_out)
    idx = st.unflatten("t", list(range(len(oshape))), list(oshape), 2)
    # output axes: batch, a's free, b's free
    a_terms, b_terms = [], []
    for q, (da, db) in enumerate(zip(ba, bb)):
        a_terms.append((idx.get(q), sa[da]))
        b_terms.append((idx.get(q), sb[db]))
    for q, d in enumerate(fa):
        a_terms.append((idx.get(len(ba) + q), sa[d]))
    for q, d in enumerate(fb):
        b_terms.append((idx.get(len(ba) + len(fa) + q), sb[d]))
    for q, (da, db) in enumerate(zip(ca, cb)):
        a_terms.append((f"k{q}", sa[da]))
        b_terms.append((f"k{q}", sb[db]))

    def lin(terms):
        return " + ".join(f"{v} * {s}LL" for v, s in terms if v is not None and s) or "0LL"

    if dt.is_floating_point:  # numpy's half matmul sums in float32, in order
        acc, zero = ("float", "0.0f") if dt.itemsize <= 4 else ("double", "0.0")
        step = f"acc += {st.value(a, 'pa')} * {st.value(b, 'pb')};"
        final = "acc"
    else:  # wrapping integer sums: exact in any order
        acc, zero = ("uint64_t" if dt.itemsize == 8 else "uint32_t"), "0u"
        step = f"acc += ({acc}){st.value(a, 'pa')} * ({acc}){st.value(b, 'pb')};"
        final = f"({ctype(dt)})acc"
    st.emit(f"{acc} acc = {zero};", 2)
    depth = 2
    for q, da in enumerate(ca):
        st.emit(f"for (long long k{q} = 0; k{q} < {ash[da]}LL; ++k{q}) {{", depth)
        depth += 1
    st.emit(f"const long long pa = {lin(a_terms)}, pb = {lin(b_terms)};", depth)
    st.emit(step, depth)
    for _ in ca:
        depth -= 1
        st.emit("}", depth)
    st.store(out, "t", final, 2)
    st.emit("}", 1)
    st.end(name, n_out)
    return st.done()


# -- random_bits -----------------------------------------------------------------------------------
def _random_bits(st: _Step):
    x = st.x
    (key,), (out,) = x.inputs, x.outputs
    n = _size(st.shape(out))  # shape * words values, each one 32-bit word as an int64
    blocks = -(-n // 4)
    name = st.kernel("", [out], [key])
    st.emit(f"const unsigned long long seed = (unsigned long long)b{key}[0];", 1)
    st.emit(f"const unsigned long long offset = (unsigned long long)b{key}[1];", 1)
    st.grid_loop(blocks)
    st.emit("unsigned int w[4];", 2)
    st.emit("tj_philox4x32_10(seed, offset + (unsigned long long)t, w);", 2)
    st.emit("for (int q = 0; q < 4; ++q) {", 2)
    st.emit(f"if (t * 4 + q < {n}LL) b{out}[t * 4 + q] = (int64_t)w[q];", 3)
    st.emit("}", 2)
    st.emit("}", 1)
    st.end(name, blocks)
    return st.done(extra='#include "tj_rng.h"')


# ops whose reference may raise on the operands' values even when the result is empty
_CHECKS_INPUT = {"gather", "scatter", "floordiv", "rem", "argmax", "argmin"}

_RENDER = {
    "cumsum": _scan, "cumprod": _scan,
    "argmax": _arg, "argmin": _arg,
    "gather": _gather, "scatter": _scatter,
    "pad": _pad, "concatenate": _concatenate,
    "floordiv": _binary, "rem": _binary, "pow": _binary,
    "dot_general": _dot,
    "random_bits": _random_bits,
}
RENDERED_EXTERNS = frozenset(_RENDER)  # every other extern runs on the host
