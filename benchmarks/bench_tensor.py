"""[tensor] benchmark: W4 (one SGD training step of a 784-512-512-10 ReLU MLP, batch 256,
cross-entropy) written the PyTorch way — `nn.Module` + `optim.SGD` + `loss.backward()` — and
run three ways, against the functional compiled step of bench_cpu.py and PyTorch's eager step.

Run: python benchmarks/bench_tensor.py [--threads N] [--steps K]

* ``functional``: `tj.compile` of ``value_and_grad`` + the update (bench_cpu.py's W4);
* ``module compiled``: `tj.compile` around ``opt.zero_grad(); loss = F.cross_entropy(model(x),
  y); loss.backward(); opt.step()`` — parameters and .grad written back after each call;
  target: within 1.1x of ``functional``;
* ``module eager``: the same step without `compile` (lazy eager execution: the step's pending
  graph is compiled once its structure repeats), reported against PyTorch eager.

Same process, same thread count; medians after warm-up steps; every variant's first loss is
checked against a float64 numpy reference, and the three tracejit variants' parameters are
checked to agree after the timed steps.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from bench_cpu import _same_threads  # noqa: E402  (sets the thread variables first)

_same_threads(sys.argv)

import argparse  # noqa: E402

import numpy as np  # noqa: E402
from bench_core import machine, median_time  # noqa: E402
from bench_cpu import _mlp_inputs, _relu_mlp_np, _settle, w4_step  # noqa: E402

import tracejit as tj  # noqa: E402

F = tj.nn.functional


def _model(params):
    model = tj.nn.Sequential(tj.nn.Linear(784, 512), tj.nn.ReLU(), tj.nn.Linear(512, 512),
                             tj.nn.ReLU(), tj.nn.Linear(512, 10))
    with tj.no_grad():
        for lin, w, b in zip([model[0], model[2], model[4]], params[0::2], params[1::2]):
            lin.weight.copy_(tj.tensor(w.T.copy()))
            lin.bias.copy_(tj.tensor(b))
    return model


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int)
    ap.add_argument("--steps", type=int, default=30)
    args = ap.parse_args()
    batch, lr = 256, 0.01
    params, x, _ = _mlp_inputs(batch)
    y = np.random.default_rng(3).integers(0, 10, batch).astype(np.int64)
    ref = _relu_mlp_np(params, x, y)
    tx, ty = tj.tensor(x), tj.tensor(y)
    print(machine(), f"threads {os.environ['TRACEJIT_NUM_THREADS']}")
    t = {}

    fstep = tj.compile(w4_step)
    state = {"p": params}
    loss = fstep(params, x, y, lr)[0]
    assert abs(float(loss) - ref) < 1e-4 * max(1.0, abs(ref)), (float(loss), ref)

    def run_functional():
        state["p"] = fstep(state["p"], x, y, lr)[1]
    t["functional"] = median_time(run_functional, args.steps, warmup=5)

    models = {}
    for name in ("module compiled", "module eager"):
        model = models[name] = _model(params)
        opt = tj.optim.SGD(model.parameters(), lr=lr)

        def step(x, y, model=model, opt=opt):
            opt.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            return loss
        run = tj.compile(step) if name == "module compiled" else step
        first = float(run(tx, ty))
        assert abs(first - ref) < 1e-4 * max(1.0, abs(ref)), (name, first, ref)
        _settle()
        t[name] = median_time(lambda run=run: float(run(tx, ty)), args.steps, warmup=5)
    a, b = (np.asarray(models[k][0].weight.detach()) for k in models)
    assert np.allclose(a, b, rtol=1e-4, atol=1e-5), "compiled and eager steps diverged"

    try:
        import torch
        torch.set_num_threads(int(os.environ["TRACEJIT_NUM_THREADS"]))
        tm = torch.nn.Sequential(torch.nn.Linear(784, 512), torch.nn.ReLU(),
                                 torch.nn.Linear(512, 512), torch.nn.ReLU(),
                                 torch.nn.Linear(512, 10))
        with torch.no_grad():
            for lin, w, b in zip([tm[0], tm[2], tm[4]], params[0::2], params[1::2]):
                lin.weight.copy_(torch.from_numpy(w.T.copy()))
                lin.bias.copy_(torch.from_numpy(b))
        topt = torch.optim.SGD(tm.parameters(), lr=lr)
        ttx, tty = torch.from_numpy(x), torch.from_numpy(y)

        def run_torch():
            topt.zero_grad()
            loss = torch.nn.functional.cross_entropy(tm(ttx), tty)
            loss.backward()
            topt.step()
            return float(loss.detach())
        _settle()
        t["torch eager"] = median_time(run_torch, args.steps, warmup=5)
    except ImportError:
        pass
    print("W4 784-512-512-10 batch 256, one SGD step: " +
          ", ".join(f"{k} {v * 1e3:.2f} ms" for k, v in t.items()))
    print(f"  module compiled / functional = {t['module compiled'] / t['functional']:.2f}x "
          "(target <= 1.1)")
    if "torch eager" in t:
        print(f"  module eager / torch eager = {t['module eager'] / t['torch eager']:.2f}x; "
              f"module compiled / torch eager = "
              f"{t['module compiled'] / t['torch eager']:.2f}x")
    print(f"  lazy eager: {tj.lazy.stats()}")


if __name__ == "__main__":
    main()
