"""CUDA C for the sparse primitives: an `Extern` step of ``spmm_csr`` / ``sddmm_csr`` -> kernels.

Input: a `Schedule` and one of its `Extern` steps. Output: the CUDA C text of the step's kernels
and its `CudaStep` (launches, scratch, error flag), or None for any other step (then
`cuda_extern.render_extern`, or the host, takes it). `codegen/cuda.py` calls `render_sparse`
from its `_renderers()` hook, before `render_extern`. Conventions (names ``x<i>_<op>[_<part>]``,
grid-stride loops, the error flag) are those of `cuda_extern.py`.

| primitive               | kernels                                                           |
|-------------------------|-------------------------------------------------------------------|
| spmm_csr                | one thread per output element ``(i, j)``: the row's nonzeros in   |
|                         | order (neighbouring threads read neighbouring columns of b)       |
| spmm_csr, transpose     | a zero fill, then one thread per ``(nonzero, j)``: its row found  |
|                         | by binary search in crow, an atomic add into ``out[col, j]``      |
| sddmm_csr               | one thread per nonzero: its row by binary search, a dot product   |

Results match the numpy references (`tracejit/sparse/native.py`) up to floating-point rounding:
the CPU kernels fuse multiply-adds and the transposed product's atomics add in any order. A bad
pattern (a column out of range, crow not non-decreasing from 0 to nnz) sets the error flag and
is never used to address memory out of bounds; the runtime then reruns the reference on the
host, which raises the CPU backend's error.
"""

from __future__ import annotations

from ..schedule.kernel import Extern, Schedule
from .cuda import CudaStep, ctype
from .cuda_extern import _size, _Step

__all__ = ["render_sparse", "RENDERED_SPARSE"]

RENDERED_SPARSE = frozenset({"spmm_csr", "sddmm_csr"})


def render_sparse(sched: Schedule, x: Extern, i: int) -> tuple[str, CudaStep] | None:
    """The CUDA C of extern step `x` (index `i` of the schedule) when it is a sparse primitive;
    None otherwise."""
    op = x.node.op
    if op not in RENDERED_SPARSE:
        return None
    st = _Step(sched, x, i)
    if any(st.dtype_of(b).name not in ("float32", "float64") for b in x.inputs[2:]):
        return None
    return _spmm(st) if op == "spmm_csr" else _sddmm(st)


def _check_crow(st: _Step, crow: int, n_rows: int, nnz: int, depth: int = 1) -> int:
    """Emits a grid loop that flags a crow that is not non-decreasing from 0 to nnz."""
    st.grid_loop(n_rows + 1, depth, "c")
    st.emit(f"const long long lo = c == 0 ? 0LL : (long long)b{crow}[c - 1];", depth + 1)
    st.emit(f"const long long v = (long long)b{crow}[c];", depth + 1)
    st.emit(f"if (v < lo || v > {nnz}LL || (c == 0 && v != 0) || "
            f"(c == {n_rows} && v != {nnz}LL)) tj_flag_error(scratch);", depth + 1)
    st.emit("}", depth)
    return n_rows + 1


def _row_of(st: _Step, crow: int, n_rows: int, p: str, depth: int) -> None:
    """Emits ``row``: the last row i with ``crow[i] <= p`` (the row holding nonzero p), by
    binary search; always in [0, n_rows) however crow is filled."""
    st.emit("long long row = 0, hi = {}LL;".format(n_rows), depth)
    st.emit("while (hi - row > 1) {", depth)
    st.emit("const long long mid = (row + hi) >> 1;", depth + 1)
    st.emit(f"if ((long long)b{crow}[mid] <= {p}) row = mid; else hi = mid;", depth + 1)
    st.emit("}", depth)


def _spmm(st: _Step):
    x, node = st.x, st.node
    crow, col, vals, b = x.inputs
    (out,) = x.outputs
    n_rows, n_cols = node.params["shape"]
    transpose = bool(node.params.get("transpose", False))
    nnz = st.shape(col)[0]
    k = st.shape(b)[1]
    t = ctype(st.dtype_of(out))
    n_out = _size(st.shape(out))
    if not transpose:
        name = st.kernel("", [out], [crow, col, vals, b], scratch=True)
        checked = _check_crow(st, crow, n_rows, nnz)
        if n_out:
            st.grid_loop(n_out)
            st.emit(f"const long long i = t / {k}LL, j = t % {k}LL;", 2)
            st.emit(f"const long long lo = (long long)b{crow}[i], "
                    f"hi = (long long)b{crow}[i + 1];", 2)
            st.emit(f"{t} acc = 0;", 2)
            st.emit(f"if (lo >= 0 && lo <= hi && hi <= {nnz}LL) {{", 2)
            st.emit("for (long long p = lo; p < hi; ++p) {", 3)
            st.emit(f"const long long c = (long long)b{col}[p];", 4)
            st.emit(f"if (c < 0 || c >= {n_cols}LL) {{ tj_flag_error(scratch); break; }}", 4)
            st.emit(f"acc += b{vals}[p] * b{b}[c * {k}LL + j];", 4)
            st.emit("}", 3)
            st.emit("}  // else: flagged", 2)
            st.emit(f"b{out}[t] = acc;", 2)
            st.emit("}", 1)
        st.end(name, max(n_out, checked))
        return st.done(error_flag=True)
    # out = S^T b: zero the result, then every (nonzero, column) adds its product atomically
    name = st.kernel("zero", [out], [crow], scratch=True)
    checked = _check_crow(st, crow, n_rows, nnz)
    if n_out:
        st.grid_loop(n_out)
        st.emit(f"b{out}[t] = ({t})0;", 2)
        st.emit("}", 1)
    st.end(name, max(n_out, checked))
    work = nnz * k
    if work and n_rows:
        st.forget()
        name = st.kernel("add", [out], [crow, col, vals, b], scratch=True)
        st.grid_loop(work)
        st.emit(f"const long long p = t / {k}LL, j = t % {k}LL;", 2)
        _row_of(st, crow, n_rows, "p", 2)
        st.emit(f"const long long c = (long long)b{col}[p];", 2)
        st.emit(f"if (c < 0 || c >= {n_cols}LL) {{ tj_flag_error(scratch); continue; }}", 2)
        st.emit(f"tj_atomic_add(&b{out}[c * {k}LL + j], b{vals}[p] * b{b}[row * {k}LL + j]);",
                2)
        st.emit("}", 1)
        st.end(name, work)
    return st.done(error_flag=True)


def _sddmm(st: _Step):
    x = st.x
    crow, col, a, b = x.inputs
    (out,) = x.outputs
    n_rows, k = st.shape(a)
    n_cols = st.shape(b)[0]
    nnz = st.shape(col)[0]
    t = ctype(st.dtype_of(out))
    name = st.kernel("", [out], [crow, col, a, b], scratch=True)
    checked = _check_crow(st, crow, n_rows, nnz)
    if nnz and n_rows:
        st.grid_loop(nnz)
        _row_of(st, crow, n_rows, "t", 2)
        st.emit(f"const long long c = (long long)b{col}[t];", 2)
        st.emit(f"if (c < 0 || c >= {n_cols}LL) {{ tj_flag_error(scratch); continue; }}", 2)
        st.emit(f"{t} acc = 0;", 2)
        st.emit(f"for (long long j = 0; j < {k}LL; ++j) "
                f"acc += b{a}[row * {k}LL + j] * b{b}[c * {k}LL + j];", 2)
        st.emit(f"b{out}[t] = acc;", 2)
        st.emit("}", 1)
    st.end(name, max(nnz if n_rows else 0, checked))
    return st.done(error_flag=True)
