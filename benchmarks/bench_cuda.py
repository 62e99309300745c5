"""GPU workloads of issue 8 (the CUDA backend), each against a reference run in the same process.

Run: python benchmarks/bench_cuda.py [--quick] [--only W1,W3] [--json PATH] [--md PATH]
     python benchmarks/bench_cuda.py --dry       (any machine: CUDA C + nvcc, nothing runs)
     python benchmarks/bench_cuda.py --emulate   (any machine with a C++ compiler: tiny sizes on
                                                  the host emulation, checked against numpy)

Workloads (reference, target):
  W1   `tanh(x*0.5+1)*sigmoid(x)+exp(-x*x)` (bench_cpu's W1), 2^26 float32, in GB/s (4 bytes
       read + 4 written per element), against a device-to-device copy of the same bytes (the
       faster of cuMemcpyDtoD and torch's copy_): >= 0.85 of its GB/s;
  W1b  `x*2+1`, the same way (extra);
  W2   row softmax (4096, 1024) (bench_cpu's W2) and (32768, 1024), against torch.softmax on
       the GPU: <= 1.0x;
  W3   matmul 4096^3 float32, in TFLOP/s, against cuBLAS (torch with TF32 off, else CuPy):
       >= 0.5 of its TFLOP/s;
  W4   one SGD step of the 784-512-512-10 ReLU MLP, batch 256, cross-entropy (bench_cpu's
       w4_step, one compiled graph), against PyTorch's eager step on the GPU: <= 1.0x;
  W4m  the same step written with tj.nn + tj.optim + backward() (bench_tensor's "module
       compiled"), under tj.compile (extra).

Timing: every input lives on the device before the clock starts; each sample runs the call N
times (N chosen so a sample lasts >= 20 ms) between two full synchronizations (tracejit's
device and torch's), so host overheads count for everyone alike; medians of `--repeat` samples
after warm-up calls (compilation excluded). Every result is checked (against numpy, or against
a float64 reference on a slice for W3) before it is timed. Targets are reported, never asserted.

Without a usable GPU (`tj.cuda.is_available()` False, or only the host emulation) the script
says so and runs the dry mode: each workload is traced at its full shapes, its CUDA C is
rendered (`tj.compile(fn).lower(*args).as_text("cuda")`) and, where `nvcc` is on PATH, compiled
to PTX for sm_90 (every launched kernel must have its entry) and by ptxas to a cubin for the
kernel count, registers and spills. Exit status: 0 when every issue-8 workload (W1-W4) ran and
checked (or, dry, rendered and compiled); failures of the extra variant (W4m) are reported but
do not change it.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_core import machine, softmax_np, w1, w1_np  # noqa: E402
from bench_cpu import w4_step  # noqa: E402  (W4's graph is bench_cpu's, unchanged)
from cuda_dry import dry, ptxas_stats  # noqa: E402,F401  (the dry mode; ptxas_stats: tests)

import tracejit as tj  # noqa: E402

ISSUE = ("W1", "W2", "W3", "W4")  # the workloads whose failure fails the run
TARGETS = {"W1": ">= 0.85 of copy GB/s", "W1b": ">= 0.85 of copy GB/s",
           "W2": "<= 1.0x torch.softmax", "W3": ">= 0.5 of cuBLAS TFLOP/s",
           "W4": "<= 1.0x PyTorch eager", "W4m": "(extra) <= 1.0x PyTorch eager"}
SIZES = {  # full, --quick, and --emulate (tiny, ragged edges) sizes
    "full": {"w1": 1 << 26, "w2": [(4096, 1024), (32768, 1024)], "w3": (4096, 4096, 4096),
             "w4": ((784, 512, 512, 10), 256)},
    "quick": {"w1": 1 << 24, "w2": [(4096, 1024)], "w3": (2048, 2048, 2048),
              "w4": ((784, 512, 512, 10), 256)},
    "tiny": {"w1": 3001, "w2": [(7, 100)], "w3": (33, 70, 45), "w4": ((20, 24, 16, 10), 9)},
}
LR = 0.01


# -- workloads: the traced functions and their inputs ----------------------------------------
def affine(x):
    return x * 2 + 1


def softmax_rows(x):
    return tj.softmax(x, dim=-1)


def matmul(a, b):
    return a @ b


def w4_fn(params, x, y):
    """bench_cpu's W4 step with the learning rate fixed, as an optimizer holds it."""
    return w4_step(params, x, y, LR)


def _normal(shape, seed: int, real: bool) -> np.ndarray:
    """Random float32 data, or zeros when only the shapes matter (dry mode: never touched)."""
    if not real:
        return np.zeros(shape, np.float32)
    return np.random.default_rng(seed).standard_normal(shape, dtype=np.float32)


def mlp_inputs(sizes, batch: int, real: bool = True):
    """(params, x, y) of a ReLU MLP: params (w1, b1, w2, b2, ...) with w as (in, out)."""
    rng = np.random.default_rng(7)
    params = []
    for a, b in zip(sizes, sizes[1:]):
        params += [(rng.standard_normal((a, b)) / np.sqrt(a)).astype(np.float32),
                   np.zeros(b, np.float32)]
    x = _normal((batch, sizes[0]), 8, real)
    y = rng.integers(0, sizes[-1], batch).astype(np.int64)
    return tuple(params), x, y


def w4_np(params, x, y, lr: float = LR):
    """(loss, updated params) of one SGD step of the ReLU MLP, in float64 (hand-derived)."""
    ps = [p.astype(np.float64) for p in params]
    ws, bs = ps[0::2], ps[1::2]
    acts, pre = [x.astype(np.float64)], []
    for i, (w, b) in enumerate(zip(ws, bs)):
        z = acts[-1] @ w + b
        pre.append(z)
        acts.append(np.maximum(z, 0) if i < len(ws) - 1 else z)
    z = acts[-1] - acts[-1].max(-1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(-1, keepdims=True))
    n = len(y)
    loss = -logp[np.arange(n), y].mean()
    d = np.exp(logp)
    d[np.arange(n), y] -= 1
    d /= n
    grads = [None] * len(ps)
    for i in reversed(range(len(ws))):
        grads[2 * i], grads[2 * i + 1] = acts[i].T @ d, d.sum(0)
        if i:
            d = (d @ ws[i].T) * (pre[i - 1] > 0)
    return loss, [p - lr * g for p, g in zip(ps, grads)]


def tj_mlp(params):
    """bench_tensor's model: tj.nn.Sequential of Linear/ReLU holding `params`."""
    sizes = [params[0].shape[0]] + [w.shape[1] for w in params[0::2]]
    layers = []
    for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
        layers += [tj.nn.Linear(a, b)] + ([tj.nn.ReLU()] if i < len(sizes) - 2 else [])
    model = tj.nn.Sequential(*layers)
    with tj.no_grad():
        for lin, w, b in zip(layers[0::2], params[0::2], params[1::2]):
            lin.weight.copy_(tj.tensor(w.T.copy()))
            lin.bias.copy_(tj.tensor(b))
    return model, layers[0::2]


def module_step(model):
    opt = tj.optim.SGD(model.parameters(), lr=LR)

    def step(x, y):
        opt.zero_grad()
        loss = tj.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss
    return step


@dataclass
class Case:
    """One workload: what is traced (`fn` on `args`, numpy arrays or CPU tensors) and, for W4m,
    the data its model is built from (`data`: params, x, y)."""

    key: str
    label: str
    fn: object
    args: tuple
    data: tuple = ()


def cases(sizes: dict, real: bool) -> list[Case]:
    """Every workload at `sizes` (the module variant W4m traces a model built on the CPU)."""
    n, (m, k, nn), (mlp, batch) = sizes["w1"], sizes["w3"], sizes["w4"]
    ns = f"2^{n.bit_length() - 1}" if n & (n - 1) == 0 else str(n)
    x1 = _normal(n, 0, real)
    out = [Case("W1", f"W1 tanh*sigmoid+exp, {ns} f32", w1, (x1,)),
           Case("W1b", f"W1b x*2+1, {ns} f32", affine, (x1,))]
    for i, shape in enumerate(sizes["w2"]):
        out.append(Case("W2", f"W2 softmax {shape} f32", softmax_rows,
                        (_normal(shape, 1 + i, real),)))
    out.append(Case("W3", f"W3 matmul {m}x{k}x{nn} f32", matmul,
                    (_normal((m, k), 2, real), _normal((k, nn), 3, real))))
    params, x, y = mlp_inputs(mlp, batch, real)
    arch = "-".join(map(str, mlp))
    out.append(Case("W4", f"W4 MLP {arch} SGD step, batch {batch}", w4_fn, (params, x, y)))
    model, _ = tj_mlp(params)
    out.append(Case("W4m", f"W4m same step, tj.nn + tj.optim, batch {batch}",
                    module_step(model), (tj.tensor(x), tj.tensor(y)), (params, x, y)))
    return out


# -- running on a device ----------------------------------------------------------------------
@dataclass
class Row:
    key: str
    workload: str
    tracejit_s: float | None = None
    reference: str = ""
    reference_s: float | None = None
    ratio: float | None = None  # in the target's terms (see `target`)
    target: str = ""
    met: bool | None = None
    info: dict = field(default_factory=dict)
    error: str = ""


class Device:
    """The device in use, its peers (torch / CuPy with CUDA, only on a real GPU) and timing."""

    def __init__(self, emulated: bool, repeat: int):
        self.emulated, self.repeat = emulated, repeat
        self.drv = tj.cuda.driver()
        self.torch = self.cupy = None
        if not emulated:
            try:
                import torch
                if torch.cuda.is_available():
                    torch.backends.cuda.matmul.allow_tf32 = False
                    torch.backends.cudnn.allow_tf32 = False
                    torch.set_float32_matmul_precision("highest")
                    torch.zeros(1, device="cuda")  # its context, before any timing
                    self.torch = torch
            except ImportError:
                pass
            try:
                import cupy
                cupy.zeros(1)
                self.cupy = cupy
            except Exception:  # noqa: BLE001  (not installed, or no usable CUDA for it)
                pass

    def sync(self) -> None:
        tj.cuda.synchronize()
        if self.torch is not None:
            self.torch.cuda.synchronize()
        if self.cupy is not None:
            self.cupy.cuda.Device().synchronize()

    def time(self, fn, warmup: int = 3, sample_s: float = 0.02) -> float | None:
        """Seconds per call of `fn`: the median of `repeat` samples of N calls between full
        synchronizations. Emulated: `fn` runs once and nothing is timed (None)."""
        if self.emulated:
            fn()
            self.sync()
            return None
        for _ in range(warmup):
            fn()
        self.sync()
        t0 = time.perf_counter()
        fn()
        self.sync()
        number = max(1, min(1000, int(sample_s / max(time.perf_counter() - t0, 1e-7))))
        times = []
        for _ in range(self.repeat):
            t0 = time.perf_counter()
            for _ in range(number):
                fn()
            self.sync()
            times.append((time.perf_counter() - t0) / number)
        return statistics.median(times)

    def free(self) -> None:
        import gc
        gc.collect()
        self.sync()
        tj.cuda.empty_cache()
        if self.torch is not None:
            self.torch.cuda.empty_cache()

    def info(self) -> dict:
        out = {"machine": machine(), "device": tj.cuda.get_device_name(), "emulated": self.emulated}
        if not self.emulated:
            p = tj.cuda.get_device_properties()
            out.update(compute_capability=f"{p.major}.{p.minor}", sms=p.multi_processor_count,
                       memory_gib=round(p.total_memory / 2**30, 1))
            try:  # (versions are best effort: never a reason not to run)
                import pycuda
                import pycuda.driver as cu
                v = cu.get_driver_version()
                out.update(driver_cuda=f"{v // 1000}.{v % 1000 // 10}",
                           pycuda=getattr(pycuda, "VERSION_TEXT", None)
                           or ".".join(map(str, getattr(pycuda, "VERSION", ()))),
                           pycuda_built_for_cuda=".".join(map(str, cu.get_version())))
            except Exception as e:  # noqa: BLE001
                out["versions"] = f"unavailable ({type(e).__name__}: {e})"
        nvcc = shutil.which("nvcc")
        if nvcc:
            r = subprocess.run([nvcc, "--version"], capture_output=True, text=True)
            out["nvcc"] = next((ln.split(",", 1)[1].strip() for ln in r.stdout.splitlines()
                                if "release" in ln and "," in ln), r.stdout.strip()[-60:])
        if self.torch is not None:
            out.update(torch=self.torch.__version__, torch_cuda=self.torch.version.cuda)
        if self.cupy is not None:
            out["cupy"] = self.cupy.__version__
        return out


def _host(t) -> np.ndarray:
    return np.asarray(t.cpu()) if isinstance(t, tj.Tensor) else np.asarray(t)


def _on(a):
    return tj.tensor(a).to("cuda")


def _verdict(row: Row, ratio: float | None, higher_is_better: bool, bound: float) -> None:
    row.ratio = ratio
    if ratio is not None:
        row.met = ratio >= bound if higher_is_better else ratio <= bound


def run_w1(dev: Device, c: Case) -> Row:
    x, fn = c.args[0], c.fn
    ref = w1_np(x) if fn is w1 else affine(x)
    row = Row(c.key, c.label, target=TARGETS[c.key])
    dx = _on(x)
    f = tj.compile(fn, device="cuda")
    np.testing.assert_allclose(_host(f(dx)), ref, rtol=1e-4, atol=1e-5)
    row.tracejit_s = dev.time(lambda: f(dx))
    src = dx._value  # the DeviceArray (`.ptr`): the copy reference moves the same bytes
    dst = src.copy()
    copies = {"cuMemcpyDtoD": dev.time(lambda: dev.drv.dtod(dst.ptr, src.ptr, src.nbytes))}
    np.testing.assert_array_equal(dst.get(), x)
    T = dev.torch
    if T is not None:
        tx = T.from_numpy(x).cuda()
        ty = T.empty_like(tx)
        copies["torch copy_"] = dev.time(lambda: ty.copy_(tx))
        tfn = (lambda v: T.tanh(v * 0.5 + 1) * T.sigmoid(v) + T.exp(-v * v)) if fn is w1 \
            else (lambda v: v * 2 + 1)
        row.info["torch eager s"] = dev.time(lambda: tfn(tx))
    if row.tracejit_s is not None:
        nbytes = 2 * x.nbytes  # read once, written once
        row.reference, row.reference_s = min(copies.items(), key=lambda kv: kv[1])
        row.info.update({f"{k} GB/s": nbytes / v / 1e9 for k, v in copies.items()},
                        **{"tracejit GB/s": nbytes / row.tracejit_s / 1e9})
        _verdict(row, row.reference_s / row.tracejit_s, True, 0.85)
    return row


def run_w2(dev: Device, c: Case) -> Row:
    x = c.args[0]
    row = Row(c.key, c.label, target=TARGETS[c.key])
    dx = _on(x)
    f = tj.compile(c.fn, device="cuda")
    np.testing.assert_allclose(_host(f(dx)), softmax_np(x), rtol=1e-5, atol=1e-7)
    row.tracejit_s = dev.time(lambda: f(dx))
    if row.tracejit_s is not None:
        row.info["tracejit GB/s"] = 2 * x.nbytes / row.tracejit_s / 1e9
    if dev.torch is not None:
        T = dev.torch
        tx = T.from_numpy(x).cuda()
        np.testing.assert_allclose(T.softmax(tx, dim=-1).cpu().numpy(), softmax_np(x),
                                   rtol=1e-5, atol=1e-7)
        row.reference, row.reference_s = "torch.softmax", dev.time(lambda: T.softmax(tx, dim=-1))
        _verdict(row, row.tracejit_s / row.reference_s, False, 1.0)
    return row


def run_w3(dev: Device, c: Case) -> Row:
    a, b = c.args
    (m, k), n = a.shape, b.shape[1]
    row = Row(c.key, c.label, target=TARGETS[c.key])
    da, db = _on(a), _on(b)
    f = tj.compile(c.fn, device="cuda")
    rows = slice(0, min(m, 64))  # a float64 check of a slice: all of 4096^3 would be slow
    want = a[rows].astype(np.float64) @ b.astype(np.float64)
    tol = 1e-5 * np.sqrt(k) * np.abs(a[rows]).max() * np.abs(b).max()
    np.testing.assert_allclose(_host(f(da, db))[rows], want, rtol=1e-4, atol=tol)
    row.tracejit_s = dev.time(lambda: f(da, db))
    flop = 2.0 * m * k * n
    ref = None
    if dev.torch is not None:
        ta, tb = dev.torch.from_numpy(a).cuda(), dev.torch.from_numpy(b).cuda()
        ref, fn_ref, check = "cuBLAS (torch, TF32 off)", (lambda: ta @ tb), \
            (lambda: (ta[rows] @ tb).cpu().numpy())
    elif dev.cupy is not None:
        ca, cb = dev.cupy.asarray(a), dev.cupy.asarray(b)
        ref, fn_ref, check = "cuBLAS (CuPy)", (lambda: ca @ cb), \
            (lambda: dev.cupy.asnumpy((ca @ cb)[rows]))
    if ref is not None and row.tracejit_s is not None:
        np.testing.assert_allclose(check(), want, rtol=1e-4, atol=tol)  # (TF32 off?)
        row.reference, row.reference_s = ref, dev.time(fn_ref)
        row.info.update({"tracejit TFLOP/s": flop / row.tracejit_s / 1e12,
                         "reference TFLOP/s": flop / row.reference_s / 1e12})
        _verdict(row, row.reference_s / row.tracejit_s, True, 0.5)
    elif row.tracejit_s is not None:
        row.info["tracejit TFLOP/s"] = flop / row.tracejit_s / 1e12
    return row


def _check_step(loss, new, params, x, y) -> None:
    want_loss, want = w4_np(params, x, y)
    assert abs(float(_host(loss)) - want_loss) < 1e-4 * max(1.0, abs(want_loss)), \
        (float(_host(loss)), want_loss)
    for i, (got, w) in enumerate(zip(new, want)):
        np.testing.assert_allclose(_host(got), w, rtol=1e-4, atol=1e-5, err_msg=f"param {i}")


def _torch_step(dev: Device, params, x, y):
    """PyTorch's eager step (bench_cpu's W4 peer) on the GPU, and its first loss."""
    T = dev.torch
    sizes = [params[0].shape[0]] + [w.shape[1] for w in params[0::2]]
    layers = []
    for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
        layers += [T.nn.Linear(a, b)] + ([T.nn.ReLU()] if i < len(sizes) - 2 else [])
    model = T.nn.Sequential(*layers)
    with T.no_grad():
        for lin, w, b in zip(layers[0::2], params[0::2], params[1::2]):
            lin.weight.copy_(T.from_numpy(w.T.copy()))
            lin.bias.copy_(T.from_numpy(b))
    model.cuda()
    opt = T.optim.SGD(model.parameters(), lr=LR)
    tx, ty = T.from_numpy(x).cuda(), T.from_numpy(y).cuda()

    def step():
        opt.zero_grad()
        loss = T.nn.functional.cross_entropy(model(tx), ty)
        loss.backward()
        opt.step()
        return loss
    return step, float(step().detach())


def run_w4(dev: Device, c: Case) -> Row:
    params, x, y = c.args
    row = Row(c.key, c.label, target=TARGETS[c.key])
    dp, dx, dy = tuple(_on(p) for p in params), _on(x), _on(y)
    step = tj.compile(c.fn, device="cuda")
    loss, new = step(dp, dx, dy)
    _check_step(loss, new, params, x, y)
    state = {"p": dp}

    def run():
        state["p"] = step(state["p"], dx, dy)[1]
    row.tracejit_s = dev.time(run, warmup=5)
    _torch_row(dev, row, params, x, y)
    return row


def run_w4m(dev: Device, c: Case) -> Row:
    params, x, y = c.data
    row = Row(c.key, c.label, target=TARGETS[c.key])
    model, linears = tj_mlp(params)
    model.cuda()
    step = tj.compile(module_step(model), device="cuda")
    dx, dy = _on(x), _on(y)
    loss = step(dx, dy)
    new = [a for lin in linears for a in (lin.weight.detach().T, lin.bias.detach())]
    _check_step(loss, new, params, x, y)
    row.tracejit_s = dev.time(lambda: step(dx, dy), warmup=5)
    _torch_row(dev, row, params, x, y)
    return row


def _torch_row(dev: Device, row: Row, params, x, y) -> None:
    if dev.torch is None or row.tracejit_s is None:
        return
    tstep, first = _torch_step(dev, params, x, y)
    want = w4_np(params, x, y)[0]
    assert abs(first - want) < 1e-4 * max(1.0, abs(want)), (first, want)
    row.reference, row.reference_s = "PyTorch eager", dev.time(tstep, warmup=5)
    _verdict(row, row.tracejit_s / row.reference_s, False, 1.0)


RUNNERS = {"W1": run_w1, "W1b": run_w1, "W2": run_w2, "W3": run_w3, "W4": run_w4,
           "W4m": run_w4m}


def on_device(sel: list, dev: Device) -> tuple[list[Row], bool]:
    """Runs (and, on a GPU, times) every case; rows, and whether the issue's workloads ran."""
    rows, ok = [], True
    for c in sel:
        try:
            row = RUNNERS[c.key](dev, c)
        except Exception as e:  # noqa: BLE001  (reported per workload, the rest still run)
            row = Row(c.key, c.label, target=TARGETS[c.key],
                      error=f"{type(e).__name__}: {e}".strip())
            ok &= c.key not in ISSUE
        rows.append(row)
        print(_line(row, dev.emulated), flush=True)
        dev.free()
    return rows, ok


def _ms(s: float | None) -> str:
    return "—" if s is None else f"{s * 1e3:.3f} ms"


def _line(row: Row, emulated: bool) -> str:
    if row.error:
        return f"{row.workload}: FAILED: {row.error.splitlines()[0][:300]}"
    if emulated:
        return f"{row.workload}: ok (emulated: checked against numpy, not timed)"
    extra = ", ".join(f"{k} {v * 1e3:.3f} ms" if k.endswith(" s") else f"{k} {v:.1f}"
                      for k, v in row.info.items())
    ratio = "n/a (no reference on this machine)" if row.ratio is None else \
        f"{row.ratio:.2f} (target {row.target}: {'met' if row.met else 'not met'})"
    return (f"{row.workload}: tracejit {_ms(row.tracejit_s)}, {row.reference or 'reference'} "
            f"{_ms(row.reference_s)} | ratio {ratio}" + (f" | {extra}" if extra else ""))


def _throughput(r: Row) -> str:
    """``tracejit vs reference`` in GB/s (W1, W2) or TFLOP/s (W3), where measured."""
    for unit in ("GB/s", "TFLOP/s"):
        mine = r.info.get(f"tracejit {unit}")
        if mine is not None:
            ref = r.info.get(f"reference {unit}") or r.info.get(f"{r.reference} {unit}")
            return f"{mine:.1f}" + (f" vs {ref:.1f}" if ref else "") + f" {unit}"
    return "—"


def markdown(rows: list[Row], info: dict) -> str:
    head = ", ".join(f"{k} {v}" for k, v in info.items())
    out = [f"{head}", "", "| workload | tracejit | reference | throughput | ratio | target | "
           "status |", "| --- | ---: | ---: | ---: | ---: | --- | --- |"]
    for r in rows:
        status = f"FAILED: {r.error.splitlines()[0][:120]}" if r.error else \
            "checked (emulated, not timed)" if info.get("emulated") else \
            "no reference" if r.met is None else "met" if r.met else "not met"
        ratio = "—" if r.ratio is None else f"{r.ratio:.2f}"
        ref = f"{r.reference} {_ms(r.reference_s)}" if r.reference else "—"
        out.append(f"| {r.workload} | {_ms(r.tracejit_s)} | {ref} | {_throughput(r)} | {ratio} "
                   f"| {r.target} | {status} |")
    return "\n".join(out)


# -- main ---------------------------------------------------------------------------------------
def _no_gpu_reason() -> str | None:
    if tj.cuda.is_emulated():
        return "only the host emulation is on (TRACEJIT_CUDA_EMULATE): timing it means nothing"
    try:
        tj.cuda.current_device()
        return None
    except RuntimeError as e:
        return str(e)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--dry", action="store_true",
                      help="no device: render each workload's CUDA C and compile it with nvcc")
    mode.add_argument("--emulate", action="store_true",
                      help="tiny sizes on the host emulation, checked against numpy, not timed")
    ap.add_argument("--quick", action="store_true", help="smaller sizes (W1 2^24, W3 2048^3)")
    ap.add_argument("--only", help="comma-separated workloads, e.g. W1,W3 (W1b, W4m: extras)")
    ap.add_argument("--repeat", type=int, default=9, help="timed samples per measurement")
    ap.add_argument("--arch", default="sm_90", help="dry mode: the nvcc architecture")
    ap.add_argument("--dump", metavar="DIR", help="dry mode: keep the .cu/.ptx/.cubin files here")
    ap.add_argument("--json", metavar="PATH", help="write the results as JSON")
    ap.add_argument("--md", metavar="PATH", help="write the results as a markdown table")
    args = ap.parse_args(argv)

    if args.emulate:
        tj.cuda.emulate(True)
        try:
            tj.cuda.current_device()
        except RuntimeError as e:
            print(f"--emulate: {e}")
            return 2
    elif not args.dry:
        why = _no_gpu_reason()
        if why is not None:
            print(f"No usable GPU ({why}).\nRunning the dry mode instead: nothing is timed and "
                  "no GPU numbers are produced.", flush=True)
            args.dry = True
    size = "tiny" if args.emulate else "quick" if args.quick else "full"
    sel = cases(SIZES[size], real=not args.dry)
    if args.only:
        want = {w.strip().upper() for w in args.only.split(",")}
        sel = [c for c in sel if c.key.upper() in want]
    date = datetime.date.today().isoformat()

    if args.dry:
        if args.dump:
            os.makedirs(args.dump, exist_ok=True)
        print(machine())
        res, ok = dry(sel, args.arch, args.dump, ISSUE)
        record = {"date": date, "mode": "dry", "machine": machine(), "arch": args.arch,
                  "nvcc": shutil.which("nvcc"), "rows": res}
        md = None
    else:
        dev = Device(args.emulate, args.repeat)
        info = dev.info()
        print(", ".join(f"{k} {v}" for k, v in info.items()), flush=True)
        if not args.emulate and dev.torch is None:
            print("(PyTorch with CUDA is not installed: W2 and W4 have no reference; W3 uses "
                  "CuPy if present)")
        rows, ok = on_device(sel, dev)
        md = markdown(rows, info)
        print()
        print(md)
        record = {"date": date, "mode": "emulate" if args.emulate else "gpu", **info,
                  "rows": [asdict(r) for r in rows]}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(record, f, indent=1, default=str)
    if args.md and md is not None:
        with open(args.md, "w") as f:
            f.write(md + "\n")
    failed = [r["key"] for r in (record["rows"]) if r.get("error")]
    if not failed:
        print("all workloads ok")
    else:
        print(f"FAILED: {', '.join(failed)} "
              + ("(extras only: exit status 0)" if ok else "(an issue-8 workload: exit status 1)"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
