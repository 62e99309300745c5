"""CPU backend workloads of the [cpu] issue, side by side with numpy, JAX and PyTorch.

Run: python benchmarks/bench_cpu.py [--quick] [--plot docs/w1_scaling.png]

W1 fused elementwise tanh(x*0.5+1)*sigmoid(x)+exp(-x*x), float32 2^24, with the np.copyto floor;
W2 row softmax (4096, 1024); W4 one SGD training step of a 784-512-512-10 ReLU MLP (batch 256,
cross-entropy), compiled as one step; W3 matmul 1024^3 float32 and float64, in GFLOP/s and as
the fraction of numpy's OpenBLAS throughput that tracejit reaches (``--only W3`` runs it alone);
W7 per-call overhead of a compiled x*2+1 on one element. Same process, same thread count; every
result is checked against numpy before it is timed; medians after a warm-up call (compilation
excluded for everyone).

Threads: ``--threads N`` (else ``TRACEJIT_NUM_THREADS``, else all cores) is given to tracejit,
OpenBLAS and the peers alike; OpenBLAS reads its variable when numpy is imported, so this script
sets the variables before importing anything.

W7 first call: latency of the first call of a compiled 784-512-512-10 MLP forward+grad
(`tj.compile(tj.value_and_grad(loss))`, batch 64, `--w7-batch`) in a fresh process, cold (empty disk cache:
trace, passes, schedule, LLVM) and warm (the object code comes from the disk cache of an
earlier process: no LLVM optimization or codegen). Each sample is its own process
(`--w7-child`), after `import tracejit`; medians of 3 (cold) and 5 (warm).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time


def _same_threads(argv) -> None:
    """Gives every library the thread count asked for, before any of them is imported."""
    n = None
    for i, a in enumerate(argv):
        if a == "--threads" and i + 1 < len(argv):
            n = argv[i + 1]
        elif a.startswith("--threads="):
            n = a.split("=", 1)[1]
    n = n or os.environ.get("TRACEJIT_NUM_THREADS") or str(os.cpu_count() or 1)
    for var in ("TRACEJIT_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
                "MKL_NUM_THREADS"):
        os.environ[var] = n


_same_threads(sys.argv)

import numpy as np  # noqa: E402

import tracejit as tj  # noqa: E402

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
        torch.set_num_threads(int(os.environ["TRACEJIT_NUM_THREADS"]))
        out["torch"] = torch
    except ImportError:
        pass
    return out


def run(quick: bool, only: str | None = None):
    rep = 3 if quick else 9
    P = _peers()
    rows = []
    if only == "W3":
        return [w3(quick, rep, dt, P) for dt in (np.float32, np.float64)]
    if only == "W4":
        return [w4(quick, rep, P)]

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
    for dt in (np.float32, np.float64):
        rows.append(w3(quick, rep, dt, P))

    # W4
    rows.append(w4(quick, rep, P))

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


MLP_SIZES = (784, 512, 512, 10)


def mlp_loss(params, x, y):
    """Mean cross-entropy of a tanh MLP; `y` is one-hot."""
    w1, b1, w2, b2, w3, b3 = params
    h = tj.tanh(x @ w1 + b1)
    h = tj.tanh(h @ w2 + b2)
    return -(tj.log_softmax(h @ w3 + b3, dim=-1) * y).sum() / x.shape[0]


def _mlp_inputs(batch: int = 64):
    rng = np.random.default_rng(7)
    params = []
    for a, b in zip(MLP_SIZES, MLP_SIZES[1:]):
        params += [(rng.standard_normal((a, b)) / np.sqrt(a)).astype(np.float32),
                   np.zeros(b, np.float32)]
    x = rng.standard_normal((batch, MLP_SIZES[0])).astype(np.float32)
    y = np.eye(MLP_SIZES[-1], dtype=np.float32)[rng.integers(0, MLP_SIZES[-1], batch)]
    return tuple(params), x, y


def _mlp_loss_np(params, x, y):
    """The loss and its gradient with respect to the last bias, in float64."""
    w1, b1, w2, b2, w3, b3 = (p.astype(np.float64) for p in params)
    h = np.tanh(np.tanh(x @ w1 + b1) @ w2 + b2)
    z = h @ w3 + b3
    z = z - z.max(-1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(-1, keepdims=True))
    return float(-(logp * y).sum() / len(x)), (np.exp(logp) - y).sum(0) / len(x)


def w7_child(preimport: bool, batch: int) -> int:
    """One fresh-process sample of the W7 first call; prints one JSON line. `preimport`: load
    the CPU runtime (and llvmlite) before the clock starts."""
    from tracejit.runtime import diskcache
    if preimport:
        import tracejit.runtime.cpu  # noqa: F401
    params, x, y = _mlp_inputs(batch)
    step = tj.compile(tj.value_and_grad(mlp_loss))
    t0 = time.perf_counter()
    v, g = step(params, x, y)
    first = time.perf_counter() - t0
    loss, db3 = _mlp_loss_np(params, x, y)
    np.testing.assert_allclose(float(v), loss, rtol=1e-4)
    np.testing.assert_allclose(g[5].numpy(), db3, rtol=1e-3, atol=1e-6)
    assert [tuple(t.shape) for t in g] == [p.shape for p in params]
    steady = median_time(lambda: step(params, x, y), 5)
    print(json.dumps({"first": first, "steady": steady, "stats": diskcache.stats}))
    return 0


def w7_first_call(quick: bool, batch: int = 64):
    """Cold vs warm disk cache, each sample in a new process (see the module docstring)."""
    def sample(cache_dir, *flags):
        env = dict(os.environ, TRACEJIT_CACHE_DIR=cache_dir)
        env.pop("TRACEJIT_DISK_CACHE", None)
        out = subprocess.run([sys.executable, os.path.abspath(__file__), "--w7-child",
                              f"--w7-batch={batch}", *flags],
                             env=env, check=True, capture_output=True, text=True).stdout
        return json.loads(out.strip().splitlines()[-1])

    cold, warm, warm_pre = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(1 if quick else 3):
            r = sample(os.path.join(tmp, f"cold{i}"))
            assert r["stats"]["hits"] == 0 and r["stats"]["stores"] >= 1, r
            cold.append(r)
        for _ in range(2 if quick else 5):
            for flags, rs in (((), warm), (("--w7-preimport",), warm_pre)):
                r = sample(os.path.join(tmp, "cold0"), *flags)
                assert r["stats"]["hits"] >= 1 and r["stats"]["misses"] == 0, (
                    f"a warm sample missed the disk cache (tracejit's sources edited during "
                    f"the run change the key): {r}")
                rs.append(r)
    med = lambda rs, k: statistics.median(r[k] for r in rs)  # noqa: E731
    steady = med(cold + warm + warm_pre, "steady")
    print(f"W7 MLP 784-512-512-10 value_and_grad, batch {batch}: steady-state call "
          f"{steady * 1e3:.2f} ms", flush=True)
    res = {}
    for name, rs in (("cold (empty disk cache)", cold), ("warm (disk cache hit)", warm),
                     ("warm, CPU runtime/llvmlite imported before", warm_pre)):
        res[name] = first = med(rs, "first")
        print(f"W7 first call, {name}: {first * 1e3:.1f} ms (first - steady "
              f"{(first - steady) * 1e3:.1f} ms)", flush=True)
    return res


def relu_mlp_loss(params, x, y):
    """W4's loss: mean cross-entropy of a ReLU MLP; `y` holds class indices."""
    w1, b1, w2, b2, w3, b3 = params
    h = tj.relu(x @ w1 + b1)
    h = tj.relu(h @ w2 + b2)
    logp = tj.log_softmax(h @ w3 + b3, dim=-1)
    return -tj.gather(logp, 1, y[:, None]).mean()


def w4_step(params, x, y, lr):
    """One SGD step: forward, backward and the update, all in one graph."""
    loss, grads = tj.value_and_grad(relu_mlp_loss)(params, x, y)
    return loss, tuple(p - lr * g for p, g in zip(params, grads))


def w4(quick: bool, rep: int, P):
    """W4: the steady-state time of one compiled training step (the parameters a step returns
    feed the next), against JAX's jitted step and PyTorch's eager step (nn.Linear, F.cross_entropy,
    torch.optim.SGD)."""
    batch, lr = 256, 0.01
    params, x, _ = _mlp_inputs(batch)
    y = np.random.default_rng(3).integers(0, MLP_SIZES[-1], batch).astype(np.int64)
    ref = _relu_mlp_np(params, x, y)
    step = tj.compile(w4_step)
    loss, new = step(params, x, y, lr)
    assert abs(float(loss) - ref) < 1e-4 * max(1.0, abs(ref)), (float(loss), ref)
    state = {"p": params}
    _settle()

    def run_tj():
        state["p"] = step(state["p"], x, y, lr)[1]
    steps = 3 * rep  # a training loop's steady state: the first steps fault in fresh memory
    for _ in range(5):
        run_tj()
    t = {"tracejit": median_time(run_tj, steps)}
    if "jax" in P:
        jax, jnp = P["jax"]

        def jloss(ps, x, y):
            w1, b1, w2, b2, w3, b3 = ps
            h = jax.nn.relu(x @ w1 + b1)
            h = jax.nn.relu(h @ w2 + b2)
            logp = jax.nn.log_softmax(h @ w3 + b3, axis=-1)
            return -jnp.take_along_axis(logp, y[:, None], axis=1).mean()

        @jax.jit
        def jstep(ps, x, y):
            loss, g = jax.value_and_grad(jloss)(ps, x, y)
            return loss, tuple(p - lr * d for p, d in zip(ps, g))
        jstate = {"p": tuple(jnp.asarray(p) for p in params)}
        jx, jy = jnp.asarray(x), jnp.asarray(y)
        jl, _ = jstep(jstate["p"], jx, jy)
        assert abs(float(jl) - ref) < 1e-4 * max(1.0, abs(ref))

        def run_jax():
            jstate["p"] = jstep(jstate["p"], jx, jy)[1]
            jax.block_until_ready(jstate["p"])
        for _ in range(5):
            run_jax()
        _settle()
        t["jax"] = median_time(run_jax, steps)
    if "torch" in P:
        torch = P["torch"]
        model = torch.nn.Sequential(
            torch.nn.Linear(784, 512), torch.nn.ReLU(), torch.nn.Linear(512, 512),
            torch.nn.ReLU(), torch.nn.Linear(512, 10))
        with torch.no_grad():
            for lin, (w, b) in zip([model[0], model[2], model[4]],
                                   zip(params[0::2], params[1::2])):
                lin.weight.copy_(torch.from_numpy(w.T.copy()))
                lin.bias.copy_(torch.from_numpy(b))
        opt = torch.optim.SGD(model.parameters(), lr=lr)
        tx, ty = torch.from_numpy(x), torch.from_numpy(y)

        def run_torch():
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(tx), ty)
            loss.backward()
            opt.step()
            return loss
        assert abs(float(run_torch().detach()) - ref) < 1e-4 * max(1.0, abs(ref))
        for _ in range(5):
            run_torch()
        _settle()
        t["torch"] = median_time(run_torch, steps)
    name = f"W4 MLP train step 784-512-512-10, batch {batch}"
    print(f"{name}: " + ", ".join(f"{k} {v * 1e3:.3f} ms" for k, v in t.items()) + "   |  "
          + ", ".join(f"tracejit/{k} = {t['tracejit'] / v:.2f}x" for k, v in t.items()
                      if k != "tracejit"), flush=True)
    return name, t


def _settle(seconds: float = 0.5) -> None:
    """Lets the worker threads of whatever ran last (OpenBLAS, OpenMP and XLA pools spin for a
    while after their work) go idle, so they do not steal cores from the next measurement."""
    time.sleep(seconds)


def _relu_mlp_np(params, x, y) -> float:
    w1, b1, w2, b2, w3, b3 = (p.astype(np.float64) for p in params)
    h = np.maximum(np.maximum(x @ w1 + b1, 0) @ w2 + b2, 0)
    z = h @ w3 + b3
    z = z - z.max(-1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(-1, keepdims=True))
    return float(-logp[np.arange(len(y)), y].mean())


def w3(quick: bool, rep: int, dtype, P):
    """W3: an (m x m) @ (m x m) product; GFLOP/s and tracejit's fraction of OpenBLAS's."""
    m = 512 if quick else 1024
    a = np.random.default_rng(2).standard_normal((m, m)).astype(dtype)
    b = np.random.default_rng(3).standard_normal((m, m)).astype(dtype)
    h = tj.compile(lambda p, q: p @ q)
    tol = 1e-4 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(h(a, b).numpy(), a @ b, rtol=tol, atol=tol * m)
    fns = {"tracejit": lambda: h(a, b), "numpy (OpenBLAS)": lambda: a @ b}
    if "torch" in P:
        ta, tb = P["torch"].from_numpy(a), P["torch"].from_numpy(b)
        fns["torch"] = lambda: ta @ tb
    t = {k: [] for k in fns}
    for _ in range(3):  # interleaved rounds: load from other processes hits everyone alike
        for k, fn in fns.items():
            t[k].append(median_time(fn, rep))
    t = {k: min(v) for k, v in t.items()}
    gflops = {k: 2.0 * m ** 3 / v / 1e9 for k, v in t.items()}
    name = f"W3 matmul {m}^3 {np.dtype(dtype).name}"
    print(f"{name}: " + ", ".join(f"{k} {v * 1e3:.2f} ms = {gflops[k]:.1f} GFLOP/s"
                                  for k, v in t.items())
          + f"   |  tracejit reaches {gflops['tracejit'] / gflops['numpy (OpenBLAS)']:.2f} of "
          f"OpenBLAS's throughput (threads={os.environ['TRACEJIT_NUM_THREADS']})", flush=True)
    return name, t


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
    ap.add_argument("--w7-only", action="store_true", help="only the W7 first-call workload")
    ap.add_argument("--w7-child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--w7-batch", type=int, default=64, help="batch size of the W7 MLP")
    ap.add_argument("--w7-preimport", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--threads", type=int, help="threads for tracejit, OpenBLAS and the peers")
    ap.add_argument("--only", choices=["W3", "W4"], help="run only this workload")
    args = ap.parse_args(argv)
    if args.w7_child:
        return w7_child(args.w7_preimport, args.w7_batch)
    print(machine(), f"threads={os.environ['TRACEJIT_NUM_THREADS']}")
    if args.only:
        run(args.quick, args.only)
        return 0
    if not args.w7_only:
        run(args.quick)
    w7_first_call(args.quick, args.w7_batch)
    if args.plot:
        plot(args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
