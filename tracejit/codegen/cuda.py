"""CUDA C code generation: Kernel IR -> one CUDA C translation unit and its launches.

Input: a `Schedule` (`schedule/kernel.py`). Output: `render_schedule(sched)`, a `CudaSource`:
the text (one ``TJ_KERNEL void <name>(T* __restrict__ b<out>, ..., const T* __restrict__
b<in>, ...)`` per kernel, ``TJ_KERNEL`` being ``extern "C" __global__`` under nvcc, each followed
by ``TJ_EMU_ENTRY(<name>)``, the host emulation's entry point) and, per schedule step, its
`Launch`es (or None: the runtime runs the step's numpy reference on the host). Every parameter
is a pointer; extents are compile-time constants. The text includes ``tj_cuda.h`` from
``kernels/cuda/`` (`HEADER_DIR`; compile with ``-I kernels/cuda``), whose helpers give the
CPU backend's semantics: NaN-propagating maximum/minimum, saturating float -> integer
conversion, Python's floor division and remainder, float16 storage.

Each step type has its renderer:

* elementwise `Kernel`s (here): a grid-stride loop over the flattened output index; the domain
  indices come from it by div/mod with the extents, each `Access`'s element is ``offset +
  sum(strides[a] * i[a])``; where every load is contiguous (or broadcast) along the inner axes
  and 16-byte aligned, each thread handles 16 bytes of output with vector loads and stores
  (``float4``, ``double2``, ...: `_vector_plan`) and a scalar tail;
* reduction `Kernel`s and `RowKernel`s: `cuda_reduce.py` (warp shuffles and shared memory, row,
  column and full reductions, two passes through scratch when outputs are few);
* `Gemm`: `cuda_gemm.py` (tiled shared-memory product with register tiles and the fused
  epilogue); `Extern`s: `cuda_extern.py` (scans, gathers, scatters with atomics, argmax, pad,
  concatenate, integer ops, the Philox RNG), the rest on the host;
* scalar operations (`render_op`, shared by all): every primitive `codegen/lower.py` lowers,
  with the same semantics (ordered comparisons except ``!=``, NaN-propagating maximum/minimum,
  ``round`` half to even with ``rint``, ``rsqrt`` as ``1/sqrt`` since CUDA's ``rsqrtf`` is
  approximate, wrapping integer arithmetic done in unsigned types so it is never undefined
  behaviour); float32 calls the ``f``-suffixed math functions, float64 the plain ones;
* types: indices are ``long long``; bool is ``bool`` in registers and ``unsigned char`` (0/1) in
  memory, like the CPU backend; float16 is ``__half`` in memory and float32 in registers.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field

import numpy as np

from .. import dtypes as D
from ..schedule.kernel import Access, Expr, Extern, Gemm, Kernel, RowKernel, Schedule, walk

__all__ = ["schedule_to_cuda", "render_schedule", "kernel_to_cuda", "HEADER_DIR", "ctype",
           "storage_ctype", "Launch", "CudaStep", "CudaSource", "ExprWriter", "SCRATCH",
           "ELEMENTWISE_BLOCK"]

HEADER_DIR = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", "..", "kernels",
                                           "cuda"))

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

_INT_C = {"uint8": "uint8_t", "int8": "int8_t", "int16": "int16_t", "int32": "int32_t",
          "int64": "int64_t"}


def storage_ctype(dt: D.DType) -> str:
    """The C type of a buffer element."""
    if dt.is_bool:
        return "unsigned char"
    if dt.is_floating_point:
        return {2: "__half", 4: "float", 8: "double"}[dt.itemsize]
    return _INT_C[dt.name]


def ctype(dt: D.DType) -> str:
    """The C type of a register value (bool is ``bool``, float16 is computed in float)."""
    if dt.is_bool:
        return "bool"
    if dt == D.float16:
        return "float"
    return storage_ctype(dt)


def _unsigned(dt: D.DType) -> str:
    """The unsigned type wrapping arithmetic of `dt` is done in (at least 32 bits wide)."""
    return "uint64_t" if dt.itemsize == 8 else "uint32_t"


def _is_f32(dt: D.DType) -> bool:
    return dt.is_floating_point and dt.itemsize <= 4


def _float_const(v: float, dt: D.DType) -> str:
    f32 = _is_f32(dt)
    if math.isnan(v):
        return "TJ_NAN_F" if f32 else "TJ_NAN_D"
    if math.isinf(v):
        inf = "TJ_INF_F" if f32 else "TJ_INF_D"
        return inf if v > 0 else f"(-{inf})"
    if f32:
        v = float(np.float32(v))
        return f"{v.hex()}f" if v >= 0 else f"(-{(-v).hex()}f)"
    return v.hex() if v >= 0 else f"(-{(-v).hex()})"


def _int_literal(iv: int, dt: D.DType) -> str:
    t = ctype(dt)
    if dt.kind == "u":
        return f"(({t}){iv}u)"
    if iv == int(np.iinfo(dt.np).min):  # -MIN is not a literal of the type
        return f"(({t})({iv + 1}LL - 1LL))"
    return f"(({t}){iv}LL)" if dt.itemsize == 8 else f"(({t}){iv})"


def constant(value, dt: D.DType) -> str:
    if dt.is_bool:
        return "true" if bool(value) else "false"
    if dt.is_floating_point:
        return _float_const(float(value), dt)
    info = np.iinfo(dt.np)
    iv = int(value)
    if not info.min <= iv <= info.max:
        iv = int(np.array(iv).astype(dt.np))
    return _int_literal(iv, dt)


def identity(op: str, dt: D.DType) -> str:
    if dt.is_bool:
        return "false" if op in ("sum", "max") else "true"
    if dt.is_floating_point:
        return constant({"sum": 0.0, "prod": 1.0, "max": -math.inf, "min": math.inf}[op], dt)
    info = np.iinfo(dt.np)
    return constant({"sum": 0, "prod": 1, "max": int(info.min), "min": int(info.max)}[op], dt)


def combine(op: str, dt: D.DType, acc: str, v: str) -> str:
    """The reduction step ``acc <op>= v``, as an expression."""
    if op in ("max", "min"):
        if dt.is_bool:
            return f"({acc} || {v})" if op == "max" else f"({acc} && {v})"
        if dt.is_floating_point:
            return f"tj_{op}({acc}, {v})"
        return f"tj_i{op}<{ctype(dt)}>({acc}, {v})"
    if dt.is_bool:
        return f"({acc} || {v})" if op == "sum" else f"({acc} && {v})"
    sym = "+" if op == "sum" else "*"
    if dt.is_floating_point:
        return f"({acc} {sym} {v})"
    return _wrap(dt, acc, sym, v)


def _wrap(dt: D.DType, a: str, sym: str, b: str) -> str:
    """Integer arithmetic that wraps like numpy (done in unsigned: no undefined behaviour)."""
    u = _unsigned(dt)
    return f"(({ctype(dt)})(({u}){a} {sym} ({u}){b}))"


# -- scalar operations ------------------------------------------------------------------------
_MATH = {"exp", "exp2", "log", "log2", "log10", "sqrt", "sin", "cos", "tan", "asin", "acos",
         "atan", "sinh", "cosh", "tanh", "expm1", "log1p", "erf", "atan2", "pow",
         "floor", "ceil", "trunc"}
_CMP = {"eq": "==", "ne": "!=", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}


def _fn(name: str, dt: D.DType) -> str:
    return name + ("f" if _is_f32(dt) else "")


def convert(v: str, src: D.DType, dst: D.DType) -> str:
    if src == dst:
        return v
    t = ctype(dst)
    if dst.is_bool:
        return f"({v} != 0)"  # unordered for floats: NaN -> true, like the CPU backend
    if src.is_bool:
        return f"(({t})({v} ? 1 : 0))"
    if src.is_floating_point and dst.is_floating_point:
        if dst == D.float16:  # rounded to half precision, kept in a float register
            return f"tj_round_half((float){v})"
        return f"(({t}){v})"
    if src.is_floating_point:
        info = np.iinfo(dst.np)
        return (f"tj_f2i<{t}>({v}, {constant(int(info.min), dst)}, "
                f"{constant(int(info.max), dst)})")
    return f"(({t}){v})"


def render_op(e: Expr, args: list[str]) -> str:
    """One primitive applied to rendered operands, as a C expression of type ``ctype(e.dtype)``."""
    op, dt = e.kind, e.dtype
    src = e.args[0].dtype if e.args else dt
    fl = src.is_floating_point
    t = ctype(dt)
    if op == "stop_gradient":
        return args[0]
    if op == "convert":
        return convert(args[0], src, dt)
    if op == "select":
        return f"({args[0]} ? {args[1]} : {args[2]})"
    if op in ("add", "sub", "mul"):
        if src.is_bool:
            return f"({args[0]} || {args[1]})" if op == "add" else f"({args[0]} && {args[1]})"
        sym = {"add": "+", "sub": "-", "mul": "*"}[op]
        return f"({args[0]} {sym} {args[1]})" if fl else _wrap(dt, args[0], sym, args[1])
    if op == "div":
        if fl:
            return f"({args[0]} / {args[1]})"
        raise NotImplementedError("integer 'div' has no lowering")
    if op == "floordiv":
        if fl:
            return f"tj_floordiv({args[0]}, {args[1]})"
        if dt.kind == "u":
            return f"tj_floordiv_u<{t}>({args[0]}, {args[1]})"
        return f"tj_floordiv_s<{t}, {_unsigned(dt)}>({args[0]}, {args[1]})"
    if op == "rem":
        if fl:
            return f"tj_rem({args[0]}, {args[1]})"
        return f"tj_rem_{'u' if dt.kind == 'u' else 's'}<{t}>({args[0]}, {args[1]})"
    if op == "neg":
        return f"(-{args[0]})" if fl else _wrap(dt, "0", "-", args[0])
    if op == "abs":
        if fl:
            return f"{_fn('fabs', src)}({args[0]})"
        if src.kind == "u":
            return args[0]
        return f"({args[0]} < 0 ? {_wrap(dt, '0', '-', args[0])} : {args[0]})"
    if op == "sign":
        return f"tj_sign<{t}>({args[0]})"
    if op in ("maximum", "minimum"):
        which = "max" if op == "maximum" else "min"
        return combine(which, src, args[0], args[1])
    if op in _CMP:
        return f"({args[0]} {_CMP[op]} {args[1]})"  # C: ordered, except != (unordered)
    if op == "logical_and":
        return f"({args[0]} && {args[1]})"
    if op == "logical_or":
        return f"({args[0]} || {args[1]})"
    if op == "logical_xor":
        return f"({args[0]} != {args[1]})"
    if op == "logical_not":
        return f"(!{args[0]})"
    if op == "isnan":
        return f"(bool)isnan({args[0]})" if fl else "false"
    if op == "isinf":
        return f"(bool)isinf({args[0]})" if fl else "false"
    if op in ("floor", "ceil", "trunc", "round") and not fl:
        return args[0]
    if op == "round":  # numpy rounds half to even
        return f"{_fn('rint', src)}({args[0]})"
    if op == "rsqrt":
        return f"tj_rsqrt({args[0]})"
    if op == "sigmoid":
        return f"tj_sigmoid({args[0]})"
    if op in _MATH and fl:
        return f"{_fn(op, src)}({', '.join(args)})"
    raise NotImplementedError(f"no CUDA rendering for primitive {op!r} ({src.name})")


RENDERED = {"stop_gradient", "convert", "select", "add", "sub", "mul", "div", "floordiv", "rem",
            "neg", "abs", "sign", "maximum", "minimum", "logical_and", "logical_or",
            "logical_xor", "logical_not", "isnan", "isinf", "round", "rsqrt",
            "sigmoid"} | set(_CMP) | _MATH


# -- launches ---------------------------------------------------------------------------------
SCRATCH = -1  # in `Launch.params`: the step's scratch buffer (`CudaStep.scratch` bytes)
ELEMENTWISE_BLOCK = 256  # threads per block of grid-stride loops


@dataclass(frozen=True)
class Launch:
    """One kernel launch: ``name<<<grid, block>>>(params...)``. `params` are buffer numbers of
    the schedule in the kernel's parameter order (every parameter is a pointer; extents are
    compile-time constants), `SCRATCH` standing for the step's scratch buffer. ``grid == 0``
    asks the runtime for a grid-stride launch over `work` elements: ``ceil(work / block)``
    blocks, capped from the device's multiprocessor count."""

    name: str
    params: tuple[int, ...]
    block: int = ELEMENTWISE_BLOCK
    grid: int = 0
    work: int = 0


@dataclass
class CudaStep:
    """How one schedule step runs on the device: its launches in order, and the bytes of
    scratch global memory they share (uninitialized: a launch that needs zeros writes them).

    With `error_flag`, the first 4 bytes of scratch are an ``int`` the runtime sets to 0 before
    the launches and reads after them: a kernel sets it nonzero on bad input it cannot report
    itself (an index out of bounds); the runtime then runs the step's numpy reference on the
    host, which raises the error the CPU backend gives, at the user's line."""

    launches: list[Launch]
    scratch: int = 0
    error_flag: bool = False


@dataclass
class CudaSource:
    """A schedule's CUDA C: `text` (one translation unit) and, per schedule step, its
    `CudaStep`, or None for a step the runtime runs on the host (its numpy reference, operands
    copied across)."""

    text: str
    steps: list[CudaStep | None] = field(default_factory=list)

    @property
    def launches(self) -> list[Launch]:
        return [ln for st in self.steps if st is not None for ln in st.launches]


# -- kernels ----------------------------------------------------------------------------------
def _row_major(dims) -> list[int]:
    return [int(np.prod(dims[i + 1:], dtype=np.int64)) for i in range(len(dims))]


def _lin(terms: list[tuple[str, int]], offset: int = 0) -> str:
    parts = [f"{offset}LL"] if offset else []
    for i, s in terms:
        if s == 0:
            continue
        parts.append(i if s == 1 else f"{i} * {s}LL")
    return " + ".join(parts) if parts else "0LL"


def signature(sched: Schedule, name: str, outs: list[int], ins: list[int],
              scratch: str | None = None) -> str:
    """``TJ_KERNEL void name(T* __restrict__ b<out>..., const T* __restrict__
    b<in>..., [char* __restrict__ scratch])``: buffers written first, then those read (a buffer
    both written and read is passed once, as written)."""
    if not _IDENT.match(name):
        raise ValueError(f"kernel name {name!r} is not a C identifier")
    params = [f"{storage_ctype(sched.buffers[b].dtype)}* __restrict__ b{b}" for b in outs]
    for b in ins:
        if b not in outs:
            params.append(f"const {storage_ctype(sched.buffers[b].dtype)}* __restrict__ b{b}")
    if scratch:
        params.append(f"char* __restrict__ {scratch}")
    return f'TJ_KERNEL void {name}({", ".join(params)})'


def param_buffers(outs: list[int], ins: list[int], scratch: bool = False) -> tuple[int, ...]:
    """The `Launch.params` matching `signature(...)` for the same lists."""
    ps = list(outs) + [b for b in ins if b not in outs]
    return tuple(ps + [SCRATCH] if scratch else ps)


class ExprWriter:
    """Renders `Expr` DAGs as C statements: one ``const`` per distinct node, in `lines`.

    `idx` (per call) maps a domain axis to the C expression of its index; `leaves` maps the
    kinds a step defines itself (``acc`` of a Gemm epilogue, ``stage`` of a RowKernel) to a
    function ``Expr -> C expression``. Loads read ``b<buffer>[offset + sum(stride*index)]``.
    Call `forget()` when a new scope starts (values of an outer scope are not reused)."""

    def __init__(self, sched: Schedule, leaves: dict | None = None):
        self.sched = sched
        self.leaves = leaves or {}
        self.lines: list[str] = []
        self.names: dict[int, str] = {}
        self.n = 0

    def dtype_of(self, buf: int) -> D.DType:
        return self.sched.buffers[buf].dtype

    def emit(self, line: str, depth: int):
        self.lines.append("    " * depth + line)

    def forget(self):
        self.names = {}

    def load(self, a: Access, idx: dict[int, str], dtype: D.DType) -> str:
        pos = _lin([(idx.get(ax, "0LL"), s) for ax, s in enumerate(a.strides)], a.offset)
        v = f"b{a.buffer}[{pos}]"
        if dtype == D.float16:
            return f"tj_h2f({v})"
        if dtype.is_bool:
            return f"({v} != 0)"
        return v

    def expr(self, e: Expr, idx: dict[int, str], depth: int) -> str:
        name = self.names.get(id(e))
        if name is not None:
            return name
        if e.kind == "load":
            v = self.load(e.attrs, idx, e.dtype)
        elif e.kind == "const":
            v = constant(e.attrs, e.dtype)
        elif e.kind == "index":
            axis, scale, off = e.attrs
            v = convert(f"({_lin([(idx.get(axis, '0LL'), scale)], off)})", D.int64, e.dtype)
        elif e.kind in self.leaves:
            v = self.leaves[e.kind](e)
        elif e.kind in ("acc", "stage"):
            raise NotImplementedError(f"Expr kind {e.kind!r} outside its step")
        else:
            v = render_op(e, [self.expr(a, idx, depth) for a in e.args])
        name = f"v{self.n}"
        self.n += 1
        self.emit(f"const {ctype(e.dtype)} {name} = {v};", depth)
        self.names[id(e)] = name
        return name

    def store(self, buf: int, pos: str, v: str, depth: int):
        dt = self.dtype_of(buf)
        if dt == D.float16:
            v = f"tj_f2h({v})"
        elif dt.is_bool:
            v = f"(unsigned char)({v})"
        self.emit(f"b{buf}[{pos}] = {v};", depth)

    def unflatten(self, t: str, axes: list[int], dims: list[int], depth: int,
                  prefix: str = "i") -> dict[int, str]:
        """The index of each axis from a row-major flat index `t` (extent-1 axes are 0)."""
        idx = {}
        strides = _row_major(dims)
        for ax, d, s in zip(axes, dims, strides):
            if d == 1:
                continue
            q = t if s == 1 else f"({t} / {s}LL)"
            first = all(dd == 1 for dd in dims[:axes.index(ax)])
            expr = q if first else f"{q} % {d}LL"
            self.emit(f"const long long {prefix}{ax} = {expr};", depth)
            idx[ax] = f"{prefix}{ax}"
        return idx


class _KernelWriter(ExprWriter):
    def __init__(self, sched: Schedule, k: Kernel):
        super().__init__(sched)
        self.k = k

    def render(self) -> str:
        k = self.k
        self.emit(signature(self.sched, k.name, [k.out], k.inputs), 0)
        self.emit("{", 0)
        if k.reduce_op is None:
            self.elementwise()
        else:
            self.reduction()
        self.emit("}", 0)
        return "\n".join(self.lines)

    def elementwise(self):
        """A grid-stride loop over the output elements; vectorized (`_vector_plan`) where the
        loads allow, then a scalar loop over the elements after the last whole vector.
        `self.work` is what one launch covers: elements, or vectors."""
        k = self.k
        dims = list(k.domain)
        n = int(np.prod(dims, dtype=np.int64))
        self.work = n
        plan = _vector_plan(self.sched, k)
        start = "0LL"
        if plan is not None:
            self.vectorized(plan, dims, n)
            start = f"{n // plan.width * plan.width}LL"
            if n % plan.width == 0:
                return
            self.emit("// the tail: the elements after the last whole vector", 1)
        first = "tj_thread_index()" if start == "0LL" else f"{start} + tj_thread_index()"
        self.emit(f"for (long long t = {first}; t < {n}LL; t += tj_thread_stride()) {{", 1)
        idx = self.unflatten("t", list(range(len(dims))), dims, 2)
        v = self.expr(k.body, idx, 2)
        self.store(k.out, "t", v, 2)
        self.emit("}", 1)

    def vectorized(self, plan: "_VectorPlan", dims: list[int], n: int):
        """Each thread computes `plan.width` consecutive output elements: one 16-byte load per
        contiguous access into a local array, one scalar load per broadcast access, the body
        unrolled once per element (the same scalar code as the plain path), one 16-byte store
        (`tj_ldv` / `tj_stv`, kernels/cuda/tj_cuda.h)."""
        k, w = self.k, plan.width
        self.work = -(-n // w)
        axes = list(range(len(dims)))
        self.emit(f"// vectorized: {w} elements per thread, 16-byte loads and stores", 1)
        self.emit(f"for (long long t = tj_thread_index(); t < {n // w}LL; "
                  "t += tj_thread_stride()) {", 1)
        self.emit(f"const long long f = t * {w}LL;", 2)
        indexed = {e.attrs[0] for e in walk(k.body) if e.kind == "index" and dims[e.attrs[0]] > 1}
        inner = [ax for ax in axes[plan.run:] if dims[ax] > 1]  # the run's axes
        # the indices of the vector's first element (constant over it outside the run)
        first = plan.run or (len(inner) == 1 and inner[0] in indexed)
        idx = self.unflatten("f", axes, dims, 2) if first else {}
        vals = {}
        for m, a in enumerate(plan.contiguous):
            terms = [(idx.get(ax, "0LL"), s) for ax, s in enumerate(a.strides)] if plan.run \
                else [("f", 1)]  # (contiguous over the whole domain)
            st = storage_ctype(self.dtype_of(a.buffer))
            self.emit(f"{st} a{m}[{w}];", 2)
            self.emit(f"tj_ldv(a{m}, b{a.buffer} + ({_lin(terms, a.offset)}));", 2)
            vals[a] = f"a{m}[j]"
        for m, (a, dt) in enumerate(plan.broadcast.items()):
            self.emit(f"const {ctype(dt)} s{m} = {ExprWriter.load(self, a, idx, dt)};", 2)
            vals[a] = f"s{m}"
        out_t = storage_ctype(self.dtype_of(k.out))
        self.emit(f"{out_t} o[{w}];", 2)
        self.emit("TJ_UNROLL", 2)
        self.emit(f"for (int j = 0; j < {w}; ++j) {{", 2)
        # element j's indices along the run's axes (only index expressions read them)
        if len(inner) == 1 and inner[0] in indexed:  # one axis: the first element's + j
            idx[inner[0]] = f"({idx[inner[0]]} + j)"
        elif len(inner) > 1:
            strides = _row_major(dims)
            for ax in sorted(indexed.intersection(inner)):
                q = "(f + j)" if strides[ax] == 1 else f"((f + j) / {strides[ax]}LL)"
                q = q if ax == inner[0] and plan.run == 0 else f"{q} % {dims[ax]}LL"
                self.emit(f"const long long e{ax} = {q};", 3)
                idx[ax] = f"e{ax}"
        self.forget()
        self._vals = vals
        v = self.expr(k.body, idx, 3)
        self._vals = None
        self.emit(f"o[j] = {v};", 3)
        self.emit("}", 2)
        self.emit(f"tj_stv(b{k.out} + f, o);", 2)
        self.emit("}", 1)
        self.forget()

    def load(self, a: Access, idx: dict[int, str], dtype: D.DType) -> str:
        vals = getattr(self, "_vals", None)
        if vals is not None and a in vals:
            return vals[a]
        return super().load(a, idx, dtype)

    def reduction(self):
        k = self.k
        dt = k.body.dtype
        red = [a for a in k.reduce_axes]
        kept = [a for a in range(len(k.domain)) if a not in red]
        kdims = [k.domain[a] for a in kept]
        n_out = int(np.prod(kdims, dtype=np.int64))
        self.emit("// one thread per output element", 1)
        self.emit(f"for (long long t = tj_thread_index(); t < {n_out}LL; "
                  "t += tj_thread_stride()) {", 1)
        idx = self.unflatten("t", kept, kdims, 2)
        self.emit(f"{ctype(dt)} acc = {identity(k.reduce_op, dt)};", 2)
        depth = 2
        for a in red:
            self.emit(f"for (long long i{a} = 0; i{a} < {k.domain[a]}LL; ++i{a}) {{", depth)
            idx[a] = f"i{a}"
            depth += 1
        self.forget()
        v = self.expr(k.body, idx, depth)
        self.emit(f"acc = {combine(k.reduce_op, dt, 'acc', v)};", depth)
        for _ in red:
            depth -= 1
            self.emit("}", depth)
        self.store(k.out, "t", "acc", 2)
        self.emit("}", 1)


@dataclass
class _VectorPlan:
    """How an elementwise kernel is vectorized: `width` elements per thread; the domain axes
    from `run` on form runs of consecutive output elements over which every load is either
    contiguous (`contiguous`: read with 16-byte loads) or constant (`broadcast`: its dtype)."""

    width: int
    run: int
    contiguous: list[Access]
    broadcast: dict[Access, D.DType]


def _suffix(a: Access, dims: list[int], zero: bool) -> int:
    """The first axis of the longest suffix of the domain over which `a` reads consecutive
    elements in row-major order (or, with `zero`, one element): axes of extent 1 always fit."""
    expect = 1
    for ax in range(len(dims) - 1, -1, -1):
        if dims[ax] == 1:
            continue
        if a.strides[ax] != (0 if zero else expect):
            return ax + 1
        expect *= dims[ax]
    return 0


def _vector_plan(sched: Schedule, k: Kernel) -> _VectorPlan | None:
    """The vectorization of elementwise kernel `k`, or None when it stays scalar: the output and
    every contiguous load must be 4- or 8-byte (not bool) elements of one size, V = 16 / size
    per thread; the V elements of a vector lie in one run (the run's length is a multiple of V,
    or the run is the whole domain: then a scalar tail takes the last ``n % V`` elements); a
    contiguous load's first element of each vector sits at a multiple of V (its offset and
    strides outside the run are multiples of V: buffers are 16-byte aligned)."""
    out_dt = sched.buffers[k.out].dtype
    if out_dt.is_bool or out_dt.itemsize not in (4, 8) or k.out in k.inputs:
        return None
    w = 16 // out_dt.itemsize
    dims = list(k.domain)
    n = int(np.prod(dims, dtype=np.int64))
    if n < w:
        return None
    loads = {}
    for e in walk(k.body):
        if e.kind == "load":
            if loads.setdefault(e.attrs, e.dtype) != e.dtype:
                return None
    splits = {a: (_suffix(a, dims, False), _suffix(a, dims, True)) for a in loads}
    run = max([min(c, z) for c, z in splits.values()], default=0)
    if run > 0 and int(np.prod(dims[run:], dtype=np.int64)) % w:
        return None
    contiguous, broadcast = [], {}
    for a, dt in loads.items():
        if run >= splits[a][1]:
            broadcast[a] = dt
            continue
        if sched.buffers[a.buffer].dtype != dt or dt.is_bool or dt.itemsize != out_dt.itemsize:
            return None
        if a.offset % w or any(a.strides[ax] % w for ax in range(run) if dims[ax] > 1):
            return None
        contiguous.append(a)
    return _VectorPlan(w, run, contiguous, broadcast)


def kernel_to_cuda(sched: Schedule, k: Kernel) -> str:
    """One `Kernel` step as a ``__global__`` function named ``k.name`` (the simple rendering:
    grid-stride over the output elements, a reduction's thread looping over its axes)."""
    return _KernelWriter(sched, k).render()


def _kernel_step(sched: Schedule, k: Kernel) -> tuple[str, CudaStep]:
    n_out = int(np.prod([d for a, d in enumerate(k.domain) if a not in k.reduce_axes],
                        dtype=np.int64))
    w = _KernelWriter(sched, k)
    text = w.render()
    work = getattr(w, "work", n_out)  # a vectorized kernel: its number of vectors
    return text, CudaStep([Launch(k.name, param_buffers([k.out], k.inputs),
                                  ELEMENTWISE_BLOCK, 0, work)])


def _step_label(i: int, st) -> tuple[str, str]:
    if isinstance(st, Extern):
        return f"#{i}", f"Extern {st.node.op}"
    kind = "Gemm" if isinstance(st, Gemm) else "RowKernel" if isinstance(st, RowKernel) else \
        type(st).__name__
    return getattr(st, "name", f"step {i}"), kind


def _renderers() -> list:
    """(step type, function (sched, step, index) -> (text, CudaStep) | None) in order; a
    renderer returning None leaves the step to the next one, or to the host."""
    out = []
    try:
        from .cuda_reduce import render_reduction, render_row_kernel
        out += [(Kernel, render_reduction), (RowKernel, render_row_kernel)]
    except ImportError:
        pass
    try:
        from .cuda_gemm import render_gemm
        out.append((Gemm, render_gemm))
    except ImportError:
        pass
    try:
        from .cuda_sparse import render_sparse
        out.append((Extern, render_sparse))
    except ImportError:
        pass
    try:
        from .cuda_extern import render_extern
        out.append((Extern, render_extern))
    except ImportError:
        pass
    out.append((Kernel, lambda sched, st, i: _kernel_step(sched, st)))
    return out


def render_schedule(sched: Schedule) -> CudaSource:
    """The CUDA C translation unit of a schedule and how each step launches. Every kernel is
    followed by ``TJ_EMU_ENTRY(name)``: nothing under nvcc; under the host emulation
    (``-DTJ_EMULATE``, `kernels/cuda/tj_emu.h`) the C entry point that launches it."""
    out = ["// generated by tracejit.codegen.cuda", '#include "tj_cuda.h"', ""]
    steps: list[CudaStep | None] = []
    renderers = _renderers()
    for i, st in enumerate(sched.steps):
        done = None
        for typ, fn in renderers:
            if isinstance(st, typ):
                done = fn(sched, st, i)
                if done is not None:
                    break
        if done is None:
            name, kind = _step_label(i, st)
            out.append(f"/* step {name}: {kind} — runs on the host */")
            steps.append(None)
        else:
            text, cstep = done
            out.append(text)
            for name in dict.fromkeys(ln.name for ln in cstep.launches):
                out.append(f"TJ_EMU_ENTRY({name})")
            steps.append(cstep)
        out.append("")
    return CudaSource("\n".join(out), steps)


def schedule_to_cuda(sched: Schedule) -> str:
    """The CUDA C translation unit of a schedule (`render_schedule(sched).text`)."""
    return render_schedule(sched).text
