"""CPU backend workloads of the [cpu] issue, side by side with numpy, JAX and PyTorch.

Run: python benchmarks/bench_cpu.py [--quick] [--plot docs/w1_scaling.png]

W1 fused elementwise tanh(x*0.5+1)*sigmoid(x)+exp(-x*x), float32 2^24, with the np.copyto floor;
W2 row softmax (4096, 1024); W3 matmul 1024^3 float32; W7 per-call overhead of a compiled
x*2+1 on one element. Same process, same thread count; every result is checked against numpy
before it is timed; medians after a warm-up call (compilation excluded for everyone).
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

import tracejit as tj

sys.path.insert(0, os.path.dirname(__file__))
from bench_core import machine, median_time, softmax_np, w1, w1_np  # noqa: E402


def _peers():
    out = {}
    try:
        import jax
        import jax.numpy as jnp
        out["jax"] = (jax, jnp)
    except ImportError:
        pass
    try:
        import torch
        torch.set_num_threads(os.cpu_count())
        out["torch"] = torch
    except ImportError:
        pass
    return out


def run(quick: bool):
    rep = 3 if quick else 9
    P = _peers()
    rows = []

    def add(name, times):
        rows.append((name, times))
        t = times["tracejit"]
        print(f"{name}: " + ", ".join(f"{k} {v * 1e3:.3f} ms" for k, v in times.items())
              + "   |  " + ", ".join(f"tracejit/{k} = {t / v:.2f}x" for k, v in times.items()
                                    if k != "tracejit"), flush=True)

    # W1
    n = 1 << (20 if quick else 24)
    x = np.random.default_rng(0).standard_normal(n).astype(np.float32)
    f = tj.compile(w1)
    np.testing.assert_allclose(f(x).numpy(), w1_np(x), rtol=1e-4, atol=1e-5)
    t = {"tracejit": median_time(lambda: f(x), rep), "numpy": median_time(lambda: w1_np(x), rep)}
    dst = np.empty_like(x)
    t["copy floor"] = median_time(lambda: np.copyto(dst, x), rep)
    if "jax" in P:
        jax, jnp = P["jax"]
        jf = jax.jit(lambda v: jnp.tanh(v * 0.5 + 1) * jax.nn.sigmoid(v) + jnp.exp(-v * v))
        jx = jnp.asarray(x)
        jf(jx).block_until_ready()
        t["jax"] = median_time(lambda: jf(jx).block_until_ready(), rep)
    if "torch" in P:
        torch = P["torch"]
        tx = torch.from_numpy(x)
        t["torch"] = median_time(
            lambda: torch.tanh(tx * 0.5 + 1) * torch.sigmoid(tx) + torch.exp(-tx * tx), rep)
    add(f"W1 elementwise 2^{n.bit_length() - 1}", t)

    # W2
    xs = np.random.default_rng(1).standard_normal((4096, 1024)).astype(np.float32)
    g = tj.compile(lambda v: tj.softmax(v, dim=-1))
    np.testing.assert_allclose(g(xs).numpy(), softmax_np(xs), rtol=1e-4, atol=1e-7)
    t = {"tracejit": median_time(lambda: g(xs), rep),
         "numpy": median_time(lambda: softmax_np(xs), rep)}
    if "jax" in P:
        jax, jnp = P["jax"]
        js = jax.jit(lambda v: jax.nn.softmax(v, axis=-1))
        jxs = jnp.asarray(xs)
        js(jxs).block_until_ready()
        t["jax"] = median_time(lambda: js(jxs).block_until_ready(), rep)
    if "torch" in P:
        torch = P["torch"]
        txs = torch.from_numpy(xs)
        t["torch"] = median_time(lambda: torch.softmax(txs, dim=-1), rep)
    add("W2 softmax (4096, 1024)", t)

    # W3
    m = 512 if quick else 1024
    a = np.random.default_rng(2).standard_normal((m, m)).astype(np.float32)
    b = np.random.default_rng(3).standard_normal((m, m)).astype(np.float32)
    h = tj.compile(lambda p, q: p @ q)
    np.testing.assert_allclose(h(a, b).numpy(), a @ b, rtol=1e-4, atol=1e-3)
    t = {"tracejit": median_time(lambda: h(a, b), rep), "numpy (OpenBLAS)":
         median_time(lambda: a @ b, rep)}
    add(f"W3 matmul {m}^3", t)

    # W7 overhead
    k = tj.compile(lambda v: v * 2 + 1)
    one = np.ones(1, np.float32)
    k(one)
    num = 2000 if quick else 20000
    t = {"tracejit": median_time(lambda: k(one), rep, num),
         "numpy": median_time(lambda: one * 2 + 1, rep, num)}
    if "jax" in P:
        jax, jnp = P["jax"]
        jk = jax.jit(lambda v: v * 2 + 1)
        j1 = jnp.asarray(one)
        jk(j1).block_until_ready()
        t["jax"] = median_time(lambda: jk(j1).block_until_ready(), rep, num // 10)
    add("W7 per-call overhead, x*2+1 on 1 element", t)
    return rows


def plot(path: str):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    P = _peers()
    sizes = [1 << k for k in range(10, 27, 2)]
    f = tj.compile(w1)
    res = {"tracejit": [], "numpy": []}
    if "jax" in P:
        jax, jnp = P["jax"]
        jf = jax.jit(lambda v: jnp.tanh(v * 0.5 + 1) * jax.nn.sigmoid(v) + jnp.exp(-v * v))
        res["jax"] = []
    for n in sizes:
        x = np.random.default_rng(0).standard_normal(n).astype(np.float32)
        rep = 5 if n < (1 << 24) else 3
        res["tracejit"].append(median_time(lambda: f(x), rep))
        res["numpy"].append(median_time(lambda: w1_np(x), rep))
        if "jax" in res:
            jx = jnp.asarray(x)
            jf(jx).block_until_ready()
            res["jax"].append(median_time(lambda: jf(jx).block_until_ready(), rep))
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, ts in res.items():
        ax.loglog(sizes, [t * 1e3 for t in ts], marker="o", label=name)
    ax.set_xlabel("elements (float32)")
    ax.set_ylabel("time per call (ms)")
    ax.set_title("W1: tanh(x*0.5+1)*sigmoid(x)+exp(-x*x)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print("wrote", path)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--plot", metavar="PNG", help="also plot W1 time against size")
    args = ap.parse_args(argv)
    print(machine(), f"threads={os.environ.get('TRACEJIT_NUM_THREADS', os.cpu_count())}")
    run(args.quick)
    if args.plot:
        plot(args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
