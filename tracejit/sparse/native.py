"""Native CSR kernels: CSR component arrays -> dense results, with machine code built by llvmlite.

Input: the components of a CSR matrix (``crow``, ``col``: int64; ``values``) and dense row-major
operands of the values' dtype. Output: numpy arrays. These are the numpy references of the
``spmm_csr`` and ``sddmm_csr`` primitives (`primitives/sparse.py`), so the interpreter, eager
mode and the CPU backend's extern steps all run them.

Three kernels per dtype (float32, float64), each one small LLVM module built with
``llvmlite.ir``, optimized at O3 for the host CPU (the repository's pass pipeline,
`runtime/compile.py`) and loaded by MCJIT once per process (an in-memory cache; compiling one
takes ~30 ms, so the disk cache is not worth its key here):

| kernel          | computes                                            | split over threads by  |
|-----------------|-----------------------------------------------------|------------------------|
| ``spmm``        | ``Y[i, :] = sum_p values[p] * B[col[p], :]``        | rows (balanced by nnz) |
| ``spmm_t``      | ``Y[col[p], :] += values[p] * B[row(p), :]`` (Sᵀ B) | ranges of output rows  |
| ``sddmm``       | ``out[p] = A[row(p), :] · B[col[p], :]``            | rows (balanced by nnz) |

The innermost loop runs over the dense columns with unit stride and no aliasing (every pointer
argument is ``noalias``), so LLVM's loop vectorizer turns it into SIMD multiply-adds (``contract``
lets it fuse them). The sddmm dot product may be reassociated (``reassoc``) so that it
vectorizes. Each output element is computed by exactly one thread in a fixed order, so results do
not depend on the thread count. ``spmm_t`` gives each thread a range of output rows; every thread
scans all nonzeros and keeps those that land in its range (a compare per nonzero), which needs
no atomics and no per-thread copies of the output.

Inputs are validated here (indices in range, ``crow`` non-decreasing from 0 to nnz) before any
native code reads them: an invalid pattern raises ValueError/IndexError, never a crash.
"""

from __future__ import annotations

import ctypes
import threading

import numpy as np

__all__ = ["spmm", "sddmm", "check_csr", "kernel_stats"]

_lock = threading.Lock()
_kernels: dict[str, dict] = {}  # dtype name -> {"engine", "spmm", "spmm_t", "sddmm"}
kernel_stats = {"compiled": 0, "calls": 0}  # for tests: the native path really ran
PARALLEL_WORK = 1 << 20  # multiply-adds below which one thread does all the work


# -- validation ---------------------------------------------------------------------------------

def check_csr(crow: np.ndarray, col: np.ndarray, n_rows: int, n_cols: int, op: str) -> None:
    """Raises (ValueError / IndexError naming `op`) unless (crow, col) is a valid CSR pattern of
    an ``n_rows x n_cols`` matrix."""
    if crow.ndim != 1 or crow.shape[0] != n_rows + 1:
        raise ValueError(f"{op}: crow_indices must have n_rows + 1 = {n_rows + 1} entries, "
                         f"got shape {list(crow.shape)}")
    nnz = col.shape[0]
    if crow[0] != 0 or crow[-1] != nnz:
        raise ValueError(f"{op}: crow_indices must start at 0 and end at nnz = {nnz}, got "
                         f"{int(crow[0])} and {int(crow[-1])}")
    if n_rows > 0 and np.any(crow[1:] < crow[:-1]):
        raise ValueError(f"{op}: crow_indices must be non-decreasing")
    if nnz and (col.min() < 0 or col.max() >= n_cols):
        bad = col[(col < 0) | (col >= n_cols)][0]
        raise IndexError(f"{op}: column index {int(bad)} is out of bounds for a matrix with "
                         f"{n_cols} columns")


# -- kernel construction ------------------------------------------------------------------------

def _build_ir(dtype: np.dtype) -> str:
    from llvmlite import ir

    i64 = ir.IntType(64)
    ft = ir.FloatType() if dtype == np.float32 else ir.DoubleType()
    ip, fp = i64.as_pointer(), ft.as_pointer()
    mod = ir.Module(name=f"tj_sparse_{dtype.name}")
    zero, one = ir.Constant(i64, 0), ir.Constant(i64, 1)
    fzero = ir.Constant(ft, 0.0)
    FMA = ("contract",)

    def function(name, ptrs, ints):
        f = ir.Function(mod, ir.FunctionType(ir.VoidType(), list(ptrs) + [i64] * ints), name)
        for a in f.args[:len(ptrs)]:
            a.add_attribute("noalias")
        f.attributes.add("nounwind")
        b = ir.IRBuilder(f.append_basic_block("entry"))
        return f, b

    def loop(b, start, stop, body):
        """``for (i = start; i < stop; ++i) body(i)``; the builder ends after the loop."""
        fn = b.function
        head, blk, done = (fn.append_basic_block(s) for s in ("head", "body", "done"))
        pre = b.block
        b.branch(head)
        b.position_at_end(head)
        i = b.phi(i64)
        i.add_incoming(start, pre)
        b.cbranch(b.icmp_signed("<", i, stop), blk, done)
        b.position_at_end(blk)
        body(i)
        i.add_incoming(b.add(i, one, flags=("nsw",)), b.block)
        b.branch(head)
        b.position_at_end(done)

    def at(b, ptr, idx):
        return b.gep(ptr, [idx], inbounds=True)

    def axpy(b, y, x, v, k):
        """y[0:k] += v * x[0:k] (the vectorized inner loop)."""
        def body(j):
            yj = at(b, y, j)
            b.store(b.fadd(b.load(yj), b.fmul(v, b.load(at(b, x, j)), flags=FMA), flags=FMA), yj)
        loop(b, zero, k, body)

    def fill_zero(b, y, n):
        loop(b, zero, n, lambda j: b.store(fzero, at(b, y, j)))

    # spmm(crow, col, val, B, Y, k, r0, r1): rows r0..r1 of Y = S B
    f, b = function("spmm", [ip, ip, fp, fp, fp], 3)
    crow, col, val, B, Y, k, r0, r1 = f.args

    def row(i):
        y = at(b, Y, b.mul(i, k))
        fill_zero(b, y, k)
        lo, hi = b.load(at(b, crow, i)), b.load(at(b, crow, b.add(i, one)))

        def nz(p):
            src = at(b, B, b.mul(b.load(at(b, col, p)), k))
            axpy(b, y, src, b.load(at(b, val, p)), k)
        loop(b, lo, hi, nz)
    loop(b, r0, r1, row)
    b.ret_void()

    # spmm_t(crow, col, val, G, Y, k, n_rows, c0, c1): rows c0..c1 of Y = S^T G
    f, b = function("spmm_t", [ip, ip, fp, fp, fp], 4)
    crow, col, val, G, Y, k, n_rows, c0, c1 = f.args
    fill_zero(b, at(b, Y, b.mul(c0, k)), b.mul(b.sub(c1, c0), k))

    def row_t(i):
        g = at(b, G, b.mul(i, k))
        lo, hi = b.load(at(b, crow, i)), b.load(at(b, crow, b.add(i, one)))

        def nz(p):
            c = b.load(at(b, col, p))
            inside = b.and_(b.icmp_signed(">=", c, c0), b.icmp_signed("<", c, c1))
            with b.if_then(inside):
                axpy(b, at(b, Y, b.mul(c, k)), g, b.load(at(b, val, p)), k)
        loop(b, lo, hi, nz)
    loop(b, zero, n_rows, row_t)
    b.ret_void()

    # sddmm(crow, col, A, B, out, k, r0, r1): out[p] = A[row(p)] . B[col[p]] for rows r0..r1
    f, b = function("sddmm", [ip, ip, fp, fp, fp], 3)
    crow, col, A, B, out, k, r0, r1 = f.args
    acc = b.alloca(ft)

    def row_s(i):
        a = at(b, A, b.mul(i, k))
        lo, hi = b.load(at(b, crow, i)), b.load(at(b, crow, b.add(i, one)))

        def nz(p):
            src = at(b, B, b.mul(b.load(at(b, col, p)), k))
            b.store(fzero, acc)

            def dot(j):
                prod = b.fmul(b.load(at(b, a, j)), b.load(at(b, src, j)),
                              flags=("reassoc", "contract"))
                b.store(b.fadd(b.load(acc), prod, flags=("reassoc", "contract")), acc)
            loop(b, zero, k, dot)
            b.store(b.load(acc), at(b, out, p))
        loop(b, lo, hi, nz)
    loop(b, r0, r1, row_s)
    b.ret_void()
    return str(mod)


def _compile(dtype: np.dtype) -> dict:
    import llvmlite.binding as llvm

    from ..runtime import cpu
    from ..runtime.compile import optimize
    tm = cpu.target_machine()
    mod = llvm.parse_assembly(_build_ir(dtype))
    mod.triple = llvm.get_process_triple()
    mod.data_layout = str(tm.target_data)
    mod.verify()
    optimize(mod, tm)
    engine = llvm.create_mcjit_compiler(mod, cpu.target_machine())
    engine.finalize_object()
    P, I = ctypes.c_void_p, ctypes.c_int64
    three = ctypes.CFUNCTYPE(None, P, P, P, P, P, I, I, I)
    four = ctypes.CFUNCTYPE(None, P, P, P, P, P, I, I, I, I)
    kernel_stats["compiled"] += 1
    return {"engine": engine, "ir": str(mod),
            "spmm": three(engine.get_function_address("spmm")),
            "spmm_t": four(engine.get_function_address("spmm_t")),
            "sddmm": three(engine.get_function_address("sddmm"))}


def kernels(dtype) -> dict:
    """The compiled kernels of `dtype` (float32 or float64), compiled at the first use."""
    dtype = np.dtype(dtype)
    k = _kernels.get(dtype.name)
    if k is None:
        with _lock:
            k = _kernels.get(dtype.name)
            if k is None:
                k = _kernels[dtype.name] = _compile(dtype)
    return k


# -- threads ------------------------------------------------------------------------------------

def _threads(work: int) -> int:
    if work < PARALLEL_WORK or threading.current_thread().name.startswith("tracejit"):
        return 1  # small, or already on a pool thread (waiting on the pool could deadlock)
    from ..runtime.cpu import num_threads
    return num_threads()


def _run_split(fn, cuts: list[int]) -> None:
    """Calls ``fn(lo, hi)`` for each consecutive pair of `cuts`: the first share on this
    thread, the others on tracejit's pool (ctypes releases the GIL while native code runs)."""
    from ..runtime.cpu import _executor
    shares = [(a, b) for a, b in zip(cuts[:-1], cuts[1:]) if a < b]
    if len(shares) <= 1:
        for a, b in shares:
            fn(a, b)
        return
    futs = [_executor().submit(fn, a, b) for a, b in shares[1:]]
    try:
        fn(*shares[0])
    finally:
        for f in futs:
            f.result()


def _row_cuts(crow: np.ndarray, n_rows: int, t: int) -> list[int]:
    """Row boundaries of `t` shares with about equal nonzeros (and rows: an empty row costs a
    zero fill)."""
    if t <= 1 or n_rows == 0:
        return [0, n_rows]
    nnz = int(crow[-1])
    work = crow + np.arange(n_rows + 1)  # nonzeros plus rows before each boundary
    goal = (nnz + n_rows) * np.arange(1, t) / t
    cuts = np.searchsorted(work, goal).tolist()
    return [0] + sorted(min(max(c, 0), n_rows) for c in cuts) + [n_rows]


def _ptr(a: np.ndarray) -> int:
    return a.ctypes.data


def _prepare(crow, col, *arrays):
    crow = np.ascontiguousarray(crow, np.int64)
    col = np.ascontiguousarray(col, np.int64)
    return (crow, col) + tuple(np.ascontiguousarray(a) for a in arrays)


# -- entry points (the primitives' references) --------------------------------------------------

def spmm(crow, col, values, dense, n_rows: int, n_cols: int, transpose: bool = False,
         op: str = "spmm_csr") -> np.ndarray:
    """``S @ dense`` (or ``S.T @ dense``) for the CSR matrix S = (crow, col, values) of shape
    ``(n_rows, n_cols)``."""
    crow, col, values, dense = _prepare(crow, col, values, dense)
    check_csr(crow, col, n_rows, n_cols, op)
    k = dense.shape[1]
    out_rows = n_cols if transpose else n_rows
    dt = np.result_type(values.dtype, dense.dtype)
    if dt not in (np.float32, np.float64):
        return _spmm_numpy(crow, col, values, dense, n_rows, n_cols, transpose)
    values, dense = values.astype(dt, copy=False), dense.astype(dt, copy=False)
    out = np.empty((out_rows, k), dt)
    if out.size == 0:
        return out
    kern = kernels(dt)
    kernel_stats["calls"] += 1
    t = _threads(col.shape[0] * k + out.size)
    args = (_ptr(crow), _ptr(col), _ptr(values), _ptr(dense), _ptr(out), k)
    if transpose:
        fn = kern["spmm_t"]
        cuts = [out_rows * s // t for s in range(t + 1)]
        _run_split(lambda a, b: fn(*args, n_rows, a, b), cuts)
    else:
        fn = kern["spmm"]
        _run_split(lambda a, b: fn(*args, a, b), _row_cuts(crow, n_rows, t))
    return out


def sddmm(crow, col, a, b, op: str = "sddmm_csr") -> np.ndarray:
    """``out[p] = a[row(p), :] · b[col[p], :]`` for every stored position p of the CSR pattern
    (crow, col) of an ``a.shape[0] x b.shape[0]`` matrix."""
    crow, col, a, b = _prepare(crow, col, a, b)
    n_rows, n_cols, k = a.shape[0], b.shape[0], a.shape[1]
    check_csr(crow, col, n_rows, n_cols, op)
    dt = np.result_type(a.dtype, b.dtype)
    nnz = col.shape[0]
    if dt not in (np.float32, np.float64):
        rows = np.repeat(np.arange(n_rows), np.diff(crow))
        return np.einsum("pk,pk->p", a[rows], b[col]).astype(dt)
    a, b = a.astype(dt, copy=False), b.astype(dt, copy=False)
    out = np.empty(nnz, dt)
    if nnz == 0:
        return out
    kern = kernels(dt)
    kernel_stats["calls"] += 1
    t = _threads(nnz * k)
    fn = kern["sddmm"]
    args = (_ptr(crow), _ptr(col), _ptr(a), _ptr(b), _ptr(out), k)
    _run_split(lambda lo, hi: fn(*args, lo, hi), _row_cuts(crow, n_rows, t))
    return out


def _spmm_numpy(crow, col, values, dense, n_rows, n_cols, transpose):
    """The same product in numpy (dtypes the native kernels do not cover)."""
    rows = np.repeat(np.arange(n_rows), np.diff(crow))
    src, dst, n_out = (rows, col, n_cols) if transpose else (col, rows, n_rows)
    prod = values[:, None] * dense[src]
    out = np.zeros((n_out, dense.shape[1]), prod.dtype)
    np.add.at(out, dst, prod)
    return out
