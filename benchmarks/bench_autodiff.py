"""Derivative workloads of the [autodiff] issue, side by side with PyTorch and JAX.

Run: python benchmarks/bench_autodiff.py [--quick]

W5: Jacobian of f(x) = tanh(W x + b), n = 512 (a 512 x 512 Jacobian).
W6: Hessian of f(x) = sum(log1p(exp(A x))), A of shape 1024 x 256 (a 256 x 256 Hessian).

All peers run in this process on the same inputs, with the same thread count; each result is
checked against the others before timing. Reported: median seconds per call after a warm-up
call (so compilation is excluded for everyone) and tracejit's time divided by each peer's.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

import tracejit as tj

sys.path.insert(0, os.path.dirname(__file__))
from bench_core import machine, median_time  # noqa: E402


def peers():
    out = {}
    try:
        import torch
        torch.set_num_threads(os.cpu_count())
        out["torch"] = torch
    except ImportError:
        pass
    try:
        import jax
        jax.config.update("jax_enable_x64", False)
        out["jax"] = jax
    except ImportError:
        pass
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller sizes, fewer repeats")
    args = ap.parse_args(argv)
    rep = 3 if args.quick else 7
    n = 128 if args.quick else 512
    m, k = (256, 64) if args.quick else (1024, 256)
    rng = np.random.default_rng(0)
    W = (rng.standard_normal((n, n)) / np.sqrt(n)).astype(np.float32)
    b = rng.standard_normal(n).astype(np.float32)
    x = rng.standard_normal(n).astype(np.float32)
    A = (rng.standard_normal((m, k)) / np.sqrt(k)).astype(np.float32)
    y = rng.standard_normal(k).astype(np.float32)
    P = peers()
    print(machine())
    print("peers: " + (", ".join(f"{k_} {v.__version__}" for k_, v in P.items()) or "none"))

    results = {}

    # -- W5 ---------------------------------------------------------------------------------
    Wt, bt = tj.tensor(W), tj.tensor(b)
    jac = lambda: tj.jacobian(lambda v: tj.tanh(Wt @ v + bt), tj.tensor(x))  # noqa: E731
    J = jac().numpy()
    ref = (1 - np.tanh(W @ x + b) ** 2)[:, None] * W
    np.testing.assert_allclose(J, ref, rtol=1e-4, atol=1e-5)
    results["W5"] = {"tracejit": median_time(jac, rep)}
    if "torch" in P:
        torch = P["torch"]
        tw, tb, tx = torch.tensor(W), torch.tensor(b), torch.tensor(x)
        fn = lambda v: torch.tanh(tw @ v + tb)  # noqa: E731
        F = torch.autograd.functional
        np.testing.assert_allclose(F.jacobian(fn, tx).numpy(), J, rtol=1e-4, atol=1e-5)
        results["W5"]["torch.autograd.functional.jacobian"] = median_time(
            lambda: F.jacobian(fn, tx), max(rep // 2, 1))
        results["W5"]["torch jacobian(vectorize=True)"] = median_time(
            lambda: F.jacobian(fn, tx, vectorize=True), rep)
    if "jax" in P:
        jax = P["jax"]
        jnp = jax.numpy
        jW, jb, jx = jnp.asarray(W), jnp.asarray(b), jnp.asarray(x)
        jf = jax.jit(jax.jacrev(lambda v: jnp.tanh(jW @ v + jb)))
        np.testing.assert_allclose(np.asarray(jf(jx)), J, rtol=1e-4, atol=1e-5)
        results["W5"]["jax.jit(jacrev)"] = median_time(
            lambda: jf(jx).block_until_ready(), rep)

    # -- W6 ---------------------------------------------------------------------------------
    At = tj.tensor(A)
    hes = lambda: tj.hessian(  # noqa: E731
        lambda v: tj.log1p(tj.exp(At @ v)).sum(), tj.tensor(y))
    H = hes().numpy()
    s = 1 / (1 + np.exp(-(A @ y)))
    np.testing.assert_allclose(H, (A.T * (s * (1 - s))) @ A, rtol=1e-3, atol=1e-4)
    results["W6"] = {"tracejit": median_time(hes, rep)}
    if "torch" in P:
        torch = P["torch"]
        tA, ty = torch.tensor(A), torch.tensor(y)
        fn = lambda v: torch.log1p(torch.exp(tA @ v)).sum()  # noqa: E731
        F = torch.autograd.functional
        np.testing.assert_allclose(F.hessian(fn, ty).numpy(), H, rtol=1e-3, atol=1e-4)
        results["W6"]["torch.autograd.functional.hessian"] = median_time(
            lambda: F.hessian(fn, ty), max(rep // 2, 1))
        results["W6"]["torch hessian(vectorize=True)"] = median_time(
            lambda: F.hessian(fn, ty, vectorize=True), rep)
    if "jax" in P:
        jax = P["jax"]
        jnp = jax.numpy
        jA, jy = jnp.asarray(A), jnp.asarray(y)
        jh = jax.jit(jax.hessian(lambda v: jnp.log1p(jnp.exp(jA @ v)).sum()))
        np.testing.assert_allclose(np.asarray(jh(jy)), H, rtol=1e-3, atol=1e-4)
        results["W6"]["jax.jit(hessian)"] = median_time(lambda: jh(jy).block_until_ready(), rep)

    for w, row in results.items():
        t0 = row["tracejit"]
        print(f"\n{w}")
        for name, t in row.items():
            ratio = "" if name == "tracejit" else f"  tracejit/peer = {t0 / t:.2f}x"
            print(f"  {name:<40} {t * 1e3:10.2f} ms{ratio}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
