"""Sparse x dense products: tracejit's native CSR kernels against scipy.sparse.

Run: python benchmarks/bench_sparse.py [--quick] [--n N] [--nnz NNZ] [--k K]

S: a random 10^5 x 10^5 CSR matrix with 10^6 nonzeros (float32, seed 0; duplicate positions
summed, so a few fewer), D: a dense 10^5 x 64 float32 matrix. Timed, in this process, on the
same inputs (checked to agree first): scipy's ``csr_matrix @ D`` (single-threaded), and
``tj.sparse.mm(S, D)`` eager (realized with ``.numpy()``) and under ``tj.compile``, each with all
threads and with ``TRACEJIT_NUM_THREADS=1``; also the backward products (``Sᵀ G`` and the
values' gradient, an SDDMM) against scipy's ``S.T @ G``. Median seconds over repeats after
warm-up calls (kernel compilation excluded for everyone); tracejit / scipy ratios.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

import tracejit as tj

sys.path.insert(0, os.path.dirname(__file__))
from bench_core import machine, median_time  # noqa: E402


def problem(n: int, nnz: int, k: int, seed: int = 0):
    import scipy.sparse as sp
    rng = np.random.default_rng(seed)
    rows, cols = rng.integers(0, n, nnz), rng.integers(0, n, nnz)
    vals = rng.standard_normal(nnz).astype(np.float32)
    S = sp.csr_matrix((vals, (rows, cols)), shape=(n, n))
    S.sum_duplicates()
    S.sort_indices()
    D = rng.standard_normal((n, k)).astype(np.float32)
    return S, D


def _with_threads(n: int | None, fn):
    old = os.environ.get("TRACEJIT_NUM_THREADS")
    if n is None:
        os.environ.pop("TRACEJIT_NUM_THREADS", None)
    else:
        os.environ["TRACEJIT_NUM_THREADS"] = str(n)
    try:
        return fn()
    finally:
        if old is None:
            os.environ.pop("TRACEJIT_NUM_THREADS", None)
        else:
            os.environ["TRACEJIT_NUM_THREADS"] = old


def main(argv=None) -> list[tuple[str, float, float]]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repeats")
    ap.add_argument("--n", type=int, default=10**5)
    ap.add_argument("--nnz", type=int, default=10**6)
    ap.add_argument("--k", type=int, default=64)
    args = ap.parse_args(argv)
    repeat = 5 if args.quick else 15
    from tracejit.runtime.cpu import num_threads
    S, D = problem(args.n, args.nnz, args.k)
    crow, col = S.indptr.astype(np.int64), S.indices.astype(np.int64)
    st = tj.sparse_csr_tensor(crow, col, S.data, S.shape)
    # tj.tensor copies D: a from_numpy Tensor shares numpy's buffer, and every lazy eager op
    # copies such a buffer when it captures it (numpy could write to it before the op runs)
    dt = tj.tensor(D)
    G = np.random.default_rng(1).standard_normal(D.shape).astype(np.float32)
    gt = tj.from_numpy(G)

    def eager():
        return tj.sparse.mm(st, dt).numpy()

    compiled = tj.compile(lambda v, d: tj.sparse.mm(tj.sparse_csr_tensor(crow, col, v, S.shape),
                                                    d))
    vt = tj.from_numpy(S.data)

    def comp():
        return compiled(vt, dt).numpy()

    def backward():  # both gradients of <S D, G>: S^T G and the SDDMM
        return compiled_bwd(vt, dt, gt)

    def f(v, d, g):
        return (tj.sparse.mm(tj.sparse_csr_tensor(crow, col, v, S.shape), d) * g).sum()
    compiled_bwd = tj.compile(tj.grad(f, argnums=(0, 1)))

    want = S @ D
    for fn in (eager, comp):
        np.testing.assert_allclose(fn(), want, rtol=1e-4, atol=1e-4)
    gv, gd = backward()
    np.testing.assert_allclose(gd.numpy(), S.T @ G, rtol=1e-4, atol=1e-4)

    t_scipy = median_time(lambda: S @ D, repeat)
    t_scipy_t = median_time(lambda: S.T @ G, repeat)
    rows = []
    print(machine())
    print(f"S: {S.shape[0]}x{S.shape[1]} CSR, nnz={S.nnz}, D: {D.shape} float32; "
          f"median of {repeat}")
    print(f"{'workload':44s} {'seconds':>10s} {'vs scipy':>9s}")
    print(f"{'scipy csr_matrix @ D (1 thread)':44s} {t_scipy:10.4f} {1.0:8.2f}x")
    print(f"{'scipy S.T @ G (1 thread)':44s} {t_scipy_t:10.4f} {1.0:8.2f}x")
    for threads in (None, 1):
        label = f"{num_threads()} threads" if threads is None else "1 thread"
        for name, fn, base in (("tj.sparse.mm eager", eager, t_scipy),
                               ("tj.sparse.mm compiled", comp, t_scipy),
                               ("backward (S^T G + SDDMM), compiled", backward, t_scipy_t)):
            t = _with_threads(threads, lambda fn=fn: median_time(fn, repeat))
            rows.append((f"{name} ({label})", t, t / base))
            print(f"{name + ' (' + label + ')':44s} {t:10.4f} {t / base:8.2f}x")
    return rows


if __name__ == "__main__":
    main()
