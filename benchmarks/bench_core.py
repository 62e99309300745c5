"""Core benchmark: tracing cost, cache-hit call overhead, and interpreter throughput.

Run: python benchmarks/bench_core.py [--quick]

Everything is measured in this process, side by side with numpy doing the same work, and
reported as medians and ratios (tracejit time / numpy time). These numbers are the baseline the
LLVM backend ([cpu] issue) has to beat; until it lands, device="cpu" runs the numpy interpreter.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time

import numpy as np

import tracejit as tj


def median_time(fn, repeat: int, number: int = 1, warmup: int = 3) -> float:
    """The median over `repeat` samples of `number` calls each, after `warmup` calls (the
    first calls of any library fault in fresh memory and fill caches)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        times.append((time.perf_counter() - t0) / number)
    return statistics.median(times)


def machine() -> str:
    try:
        import llvmlite.binding as llvm
        cpu = llvm.get_host_cpu_name()
    except Exception:  # noqa: BLE001 - machine details are best effort
        cpu = platform.processor() or "unknown"
    return (f"{platform.system()} {platform.machine()}, CPU {cpu}, {os.cpu_count()} cores, "
            f"Python {platform.python_version()}, numpy {np.__version__}, tracejit "
            f"{tj.__version__}")


def w1(x):
    return tj.tanh(x * 0.5 + 1) * tj.sigmoid(x) + tj.exp(-x * x)


def w1_np(x):
    return np.tanh(x * 0.5 + 1) * (1 / (1 + np.exp(-x))) + np.exp(-x * x)


def softmax_tj(x):
    return tj.softmax(x, dim=-1)


def softmax_np(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes and few repeats (CI)")
    args = ap.parse_args(argv)
    rep = 3 if args.quick else 15
    rows = []

    def row(name, t_tj, t_np):
        rows.append((name, t_tj, t_np))
        print(f"{name:<44} {t_tj * 1e6:>12.1f} us {t_np * 1e6:>12.1f} us {t_tj / t_np:>8.2f}x",
              flush=True)

    print(machine())
    print(f"{'workload':<44} {'tracejit':>15} {'numpy':>15} {'ratio':>9}")

    # tracing: make_graph of a small MLP layer (what every first call pays)
    x, w, b = tj.ones(64, 32), tj.ones(32, 16), tj.zeros(16)
    t_trace = median_time(lambda: tj.make_graph(
        lambda x, w, b: tj.softmax(tj.tanh(x @ w + b), dim=-1))(x, w, b), rep)
    xn, wn, bn = x.numpy(), w.numpy(), b.numpy()
    t_np = median_time(lambda: softmax_np(np.tanh(xn @ wn + bn)), rep, 10)
    row("trace MLP layer (vs one numpy evaluation)", t_trace, t_np)

    # cache-hit overhead on a 1-element input
    f = tj.compile(lambda x: x * 2 + 1)
    one = np.ones(1, np.float32)
    f(one)
    n = 200 if args.quick else 2000
    row("cache-hit call, x*2+1 on 1 element", median_time(lambda: f(one), rep, n),
        median_time(lambda: one * 2 + 1, rep, n))

    # W1 elementwise and W2 softmax on the interpreter backend
    size = 2**16 if args.quick else 2**22
    xe = np.random.default_rng(0).standard_normal(size).astype(np.float32)
    f1 = tj.compile(w1)
    np.testing.assert_allclose(f1(xe).numpy(), w1_np(xe), rtol=1e-4, atol=1e-5)
    row(f"W1 elementwise, 2^{size.bit_length() - 1} f32", median_time(lambda: f1(xe), rep),
        median_time(lambda: w1_np(xe), rep))
    shape = (256, 1024) if args.quick else (4096, 1024)
    xs = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    f2 = tj.compile(softmax_tj)
    np.testing.assert_allclose(f2(xs).numpy(), softmax_np(xs), rtol=1e-5, atol=1e-7)
    row(f"W2 softmax rows, {shape} f32", median_time(lambda: f2(xs), rep),
        median_time(lambda: softmax_np(xs), rep))
    return 0


if __name__ == "__main__":
    sys.exit(main())
