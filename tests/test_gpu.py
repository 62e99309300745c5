"""The CUDA backend on a real GPU (``pytest -m gpu``): the op conformance table compiled for the
device, the gradients of its float64 cases against the CPU backend, the training example's
steps against the CPU, and eager CUDA tensors with autograd against the CPU.

Every test is marked ``gpu`` and skipped, with the reason, unless a GPU is usable
(``tj.cuda.is_available()`` and the device is not the host emulation). With
``TRACEJIT_GPU_TESTS_EMULATE=1`` they run on the host emulation instead (slow: pick a subset
with ``-k``), which is how they are checked on machines without a GPU::

    TRACEJIT_GPU_TESTS_EMULATE=1 python -m pytest tests/test_gpu.py -m gpu -k "abs or train"

On a GPU the table's programs are compiled in batches: nvcc runs in parallel over
translation units of several programs each (kernels renamed apart), and each program's
module is registered with the driver under its text, so the runtime finds it compiled; that
makes the table (thousands of programs) a few minutes of nvcc rather than hours. docs/gpu.md
says how to run this suite on a lent GPU machine.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import re
import zlib
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from op_cases import F64, INSTANCES, Instance
from test_ops_conformance import _tensor, check_result

import tracejit as tj
from tracejit.codegen.cuda import HEADER_DIR, render_schedule
from tracejit.passes.pipeline import optimize
from tracejit.schedule.fusion import schedule

pytestmark = pytest.mark.gpu

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EMULATE = os.environ.get("TRACEJIT_GPU_TESTS_EMULATE", "").strip().lower() in (
    "1", "true", "yes", "on")
BATCH = 64  # programs of the table compiled together (one emulation library, or 8 nvcc runs)


def _why_not() -> str | None:
    """Why the GPU tests cannot run here (None: they can)."""
    if EMULATE:
        from tracejit.runtime.cuda_emu import compiler
        return None if compiler() else "TRACEJIT_GPU_TESTS_EMULATE=1, but the host emulation " \
            "needs a C++ compiler"
    if not tj.cuda.is_available():
        return f"no usable GPU: {tj.cuda._probe()[2] or 'tj.cuda.is_available() is False'} " \
            "(TRACEJIT_GPU_TESTS_EMULATE=1 runs these tests on the host emulation)"
    if getattr(tj.cuda.driver(), "emulated", False):
        return "'cuda' is the host emulation here (TRACEJIT_CUDA_EMULATE): these tests want a " \
            "GPU (TRACEJIT_GPU_TESTS_EMULATE=1 runs them on the emulation)"
    return None


@pytest.fixture(scope="module", autouse=True)
def device():
    """The CUDA driver the tests run on (the emulation with TRACEJIT_GPU_TESTS_EMULATE=1, and
    only for this module); skips every test when there is none."""
    was = tj.cuda._emulate[0]
    if EMULATE:
        tj.cuda.emulate(True)
    try:
        why = _why_not()
        if why:
            pytest.skip(why)
        yield tj.cuda.driver()
    finally:
        if EMULATE:
            tj.cuda.emulate(was)


# -- compiling many programs at once ------------------------------------------------------------
_INCLUDE = re.compile(r'^\s*#include\s+"[^"]+"\s*$', re.M)


class _Renamed:
    """One program's view of a module compiled with others: its kernels carry a prefix."""

    def __init__(self, module, prefix: str):
        self.module, self.prefix = module, prefix

    def get_function(self, name: str):
        return self.module.get_function(self.prefix + name)


def _gpu_precompile(drv, texts: list[str], per_unit: int = 8) -> None:
    """Compiles the programs `texts` (not loaded yet) with nvcc in parallel, `per_unit` per
    translation unit, and registers each under its text in the driver's module cache
    (`PyCudaDriver.module` looks there first). Best effort: a unit that fails to compile is
    left to the runtime, which compiles its programs one by one and reports the error."""
    cache = getattr(drv, "_modules", None)
    if not isinstance(cache, dict):
        return
    from pycuda.compiler import compile as nvcc_compile
    todo = [t for t in dict.fromkeys(texts) if t not in cache]
    units = [todo[i:i + per_unit] for i in range(0, len(todo), per_unit)]
    major, minor = drv.compute_capability

    def source(unit):
        includes = sorted({m.group(0).strip() for t in unit for m in _INCLUDE.finditer(t)})
        parts = ['#include "tj_cuda.h"', *includes]
        for i, t in enumerate(unit):
            body = _INCLUDE.sub("", t)
            for name in set(re.findall(r"TJ_EMU_ENTRY\((\w+)\)", t)):
                body = re.sub(rf"\b{name}\b", f"tjp{i}_{name}", body)
            parts += [f"namespace tjp{i} {{", body, "}"]
        return "\n".join(parts) + "\n"

    def build(unit):
        try:
            return nvcc_compile(source(unit), no_extern_c=True, arch=f"sm_{major}{minor}",
                                options=["-std=c++17"], include_dirs=[HEADER_DIR])
        except Exception:  # noqa: BLE001  (the runtime compiles these one by one)
            return None

    with ThreadPoolExecutor(max(1, min(16, os.cpu_count() or 1))) as ex:
        cubins = list(ex.map(build, units))
    drv._ctx()
    for unit, cubin in zip(units, cubins):
        if cubin is None:
            continue
        mod = drv.drv.module_from_buffer(cubin)
        for i, t in enumerate(unit):
            cache.setdefault(t, _Renamed(mod, f"tjp{i}_"))


def _precompile(texts: list[str]) -> None:
    drv = tj.cuda.driver()
    if getattr(drv, "emulated", False):
        from tracejit.runtime import cuda_emu
        cuda_emu.compile_many(texts)
    else:
        _gpu_precompile(drv, texts)


def _batched(table: list, text_of):
    """A function ``i -> None`` that compiles the batch of table entry `i` once."""
    done: set[int] = set()

    def ensure(i: int) -> None:
        b = i // BATCH
        if b in done:
            return
        done.add(b)
        texts = []
        for item in table[b * BATCH:(b + 1) * BATCH]:
            try:
                texts.append(text_of(item))
            except Exception:  # noqa: BLE001  (the test itself reports it)
                pass
        _precompile(texts)
    return ensure


def _on_device(out, where: str) -> None:
    for leaf in (out if isinstance(out, (tuple, list)) else [out]):
        if isinstance(leaf, tj.Tensor):
            assert leaf.device.type == "cuda", f"{where}: result on {leaf.device}"


# -- (a) the op conformance table on the device ---------------------------------------------
TABLE = [inst for inst in INSTANCES if not inst.case.eager_only]


def _text_of(inst: Instance) -> str:
    g = tj.make_graph(inst.case.fn)(*[_tensor(a) for a in inst.args()])
    return render_schedule(schedule(optimize(g))).text


_ensure_op = _batched(TABLE, _text_of)


@pytest.mark.parametrize("i", range(len(TABLE)), ids=[inst.id for inst in TABLE])
def test_op_on_gpu(i: int):
    """Every compiled case of the conformance table on the device: results stay on the
    device and have numpy's values, shapes and PyTorch's dtypes; arguments are not written."""
    inst = TABLE[i]
    _ensure_op(i)
    args = inst.args()
    before = [np.copy(a) for a in args]
    out = tj.compile(inst.case.fn, device="cuda")(*[_tensor(a) for a in args])
    _on_device(out, inst.id)
    check_result(inst, out)
    if inst.case.op not in ("setitem", "__iadd__", "__imul__"):
        for k, (a, b) in enumerate(zip(args, before)):
            np.testing.assert_array_equal(a, b, err_msg=f"wrote into argument {k}")


# -- (b) gradients of the float64 cases: device vs CPU backend ------------------------------
GRAD_RTOL = 1e-8  # relative to the largest gradient entry: a few ulp per op, FMA contraction
GTABLE = [inst for inst in TABLE if inst.dtype == F64 and "special" not in (
    inst.case.domain if isinstance(inst.case.domain, tuple) else (inst.case.domain,))]


@functools.lru_cache(maxsize=2 * BATCH)
def _grad_problem(i: int):
    """(gradient function of ``sum_k <out_k, u_k>`` over the float64 array inputs, those
    inputs) for case `i`, or a reason to skip it."""
    inst = GTABLE[i]
    args = inst.args()
    pos = [k for k, a in enumerate(args) if isinstance(a, np.ndarray) and a.dtype == np.float64]
    if not pos:
        return "no float64 input"
    outs = inst.case.fn(*[_tensor(a) for a in args])
    leaves = [o for o in (outs if isinstance(outs, (tuple, list)) else [outs])
              if isinstance(o, tj.Tensor) and o.dtype == tj.float64]
    if not leaves:
        return "no float64 output"
    if not all(np.isfinite(o.numpy()).all() for o in leaves):
        return "a NaN/inf result: not differentiable there"
    rng = np.random.default_rng(zlib.crc32(inst.id.encode()))
    us = [rng.standard_normal(o.shape) for o in leaves]

    def loss(*xs):
        full = [_tensor(a) for a in args]
        for k, x in zip(pos, xs):
            full[k] = x
        out = inst.case.fn(*full)
        out = [o for o in (out if isinstance(out, (tuple, list)) else [out])
               if isinstance(o, tj.Tensor) and o.dtype == tj.float64]
        total = None
        for o, u in zip(out, us):
            term = (o * tj.from_numpy(u)).sum()
            total = term if total is None else total + term
        return total

    return tj.grad(loss, argnums=tuple(range(len(pos)))), [args[k] for k in pos]


def _grad_text(i: int) -> str:
    prob = _grad_problem(i)
    if isinstance(prob, str):
        raise LookupError(prob)
    fn, xs = prob
    g = tj.make_graph(fn)(*[_tensor(x) for x in xs])
    return render_schedule(schedule(optimize(g))).text


_ensure_grad = _batched(list(range(len(GTABLE))), _grad_text)


@pytest.mark.parametrize("i", range(len(GTABLE)), ids=[inst.id for inst in GTABLE])
def test_grad_on_gpu_matches_cpu(i: int):
    """The compiled gradient (a `tj.grad` of ``sum <f(x), u>``) of every float64 case on the
    device equals the CPU backend's within a few ulp of the largest entry."""
    prob = _grad_problem(i)
    if isinstance(prob, str):
        pytest.skip(prob)
    _ensure_grad(i)
    fn, xs = prob
    try:
        want = tj.compile(fn, device="cpu")(*[_tensor(x) for x in xs])
    except Exception as e:  # noqa: BLE001  (not differentiable: not this suite's business)
        pytest.skip(f"no gradient on the CPU backend either: {type(e).__name__}: {e}")
    got = tj.compile(fn, device="cuda")(*[_tensor(x) for x in xs])
    _on_device(got, GTABLE[i].id)
    assert len(got) == len(want)
    for k, (a, b) in enumerate(zip(got, want)):
        a, b = a.numpy(), b.numpy()
        assert a.shape == b.shape and a.dtype == b.dtype, f"gradient {k}"
        fin = np.isfinite(b)
        np.testing.assert_array_equal(np.isfinite(a), fin, err_msg=f"gradient {k}: non-finite")
        scale = max(float(np.abs(b[fin]).max()) if fin.any() else 0.0, 1e-300)
        np.testing.assert_allclose(a[fin], b[fin], rtol=0, atol=GRAD_RTOL * scale,
                                   err_msg=f"{GTABLE[i].id}: gradient {k} (cuda vs cpu)")


# -- (c) the training example: a few steps on the device match the CPU ----------------------
def _train_digits():
    for mod in ("sklearn", "tqdm"):
        pytest.importorskip(mod, reason=f"examples/train_digits.py needs {mod}")
    spec = importlib.util.spec_from_file_location(
        "train_digits", os.path.join(ROOT, "examples", "train_digits.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _train(ex, device: str, compiled: bool, steps: int, batch: int = 64):
    """examples/train_digits.py's model, loss, optimizer and step (the example takes no device:
    the same objects, moved with ``.cuda()``); the losses and final parameters."""
    x_train, y_train, _, _ = ex.load_data(0)
    tj.manual_seed(0)
    model = ex.LeNet()  # initialized on the CPU: both devices start from the same weights
    if device == "cuda":
        model.cuda()
    loss_fn = tj.nn.CrossEntropyLoss()
    opt = tj.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)

    def train_step(x, y):
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        return loss

    step = tj.compile(train_step) if compiled else train_step
    losses = []
    for i in range(steps):
        x = tj.from_numpy(x_train[i * batch:(i + 1) * batch])
        y = tj.from_numpy(y_train[i * batch:(i + 1) * batch])
        if device == "cuda":
            x, y = x.cuda(), y.cuda()
        losses.append(step(x, y).item())
    for p in model.parameters():
        assert p.device.type == device, f"a parameter moved to {p.device}"
    return losses, {k: v.cpu().numpy() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("mode", ["eager", "compiled"])
def test_train_digits_steps_match_cpu(mode):
    """Three SGD-with-momentum steps of the example's LeNet on the device give the CPU's
    losses and parameters (float32: within 1e-4 relative)."""
    ex = _train_digits()
    cpu_losses, cpu_params = _train(ex, "cpu", mode == "compiled", 3)
    gpu_losses, gpu_params = _train(ex, "cuda", mode == "compiled", 3)
    np.testing.assert_allclose(gpu_losses, cpu_losses, rtol=1e-4)
    assert cpu_params.keys() == gpu_params.keys()
    for k in cpu_params:
        np.testing.assert_allclose(gpu_params[k], cpu_params[k], rtol=1e-4, atol=1e-5,
                                   err_msg=k)


# -- (d) eager CUDA tensors and autograd vs the CPU -------------------------------------------
def _pair(*shape, seed=0, dtype=np.float32):
    """The same values as a CPU and a CUDA leaf tensor that require gradients."""
    v = np.random.default_rng(seed).standard_normal(shape).astype(dtype)
    return (tj.from_numpy(v).requires_grad_(),
            tj.from_numpy(v).cuda().requires_grad_())


EAGER = {
    "mlp": (lambda x, w, b: tj.relu(x @ w + b).sum(), [(8, 16), (16, 4), (4,)]),
    "softmax_ce": (lambda z, t: -(tj.softmax(z, dim=1) * t).sum(dim=1).log().mean(),
                   [(6, 5), (6, 5)]),
    "broadcast_reduce": (lambda x, r: ((x - r) ** 2).mean(dim=0).sqrt().sum(),
                         [(7, 9), (9,)]),
    "index_and_cat": (lambda x, y: tj.cat([x[1:, ::2], y.T[:, :3]], dim=0).tanh().sum(),
                      [(5, 6), (3, 4)]),
    "float64": (lambda x, y: (tj.exp(x) * tj.sin(y) / (1 + x * x)).sum(),
                [(33,), (33,)]),
}


@pytest.mark.parametrize("name", list(EAGER))
def test_eager_ops_and_backward_match_cpu(name):
    """Eager ops on CUDA tensors (lazy graphs run on the device) and ``backward()``: the value
    and every leaf's ``.grad`` stay on the device and equal the CPU's."""
    fn, shapes = EAGER[name]
    dtype = np.float64 if name == "float64" else np.float32
    pairs = [_pair(*s, seed=k, dtype=dtype) for k, s in enumerate(shapes)]
    if name == "softmax_ce":  # targets: positive, no gradient
        pairs[1] = tuple(p.detach().abs() for p in pairs[1])
    cpu = fn(*[p[0] for p in pairs])
    gpu = fn(*[p[1] for p in pairs])
    assert gpu.device.type == "cuda"
    cpu.backward()
    gpu.backward()
    tol = dict(rtol=1e-10, atol=1e-12) if dtype == np.float64 else dict(rtol=2e-5, atol=1e-6)
    np.testing.assert_allclose(gpu.item(), cpu.item(), **tol)
    for k, (c, g) in enumerate(pairs):
        if not c.requires_grad:
            continue
        assert g.grad is not None and g.grad.device.type == "cuda", f"input {k}"
        np.testing.assert_allclose(g.grad.cpu().numpy(), c.grad.numpy(), err_msg=f"input {k}",
                                   **tol)


def test_randn_on_device_with_autograd():
    """``tj.randn(..., device="cuda", requires_grad=True)``: a leaf on the device whose
    gradient through a chain of ops equals the CPU's for the same values."""
    x = tj.randn(4, 8, device="cuda", requires_grad=True)
    assert x.device.type == "cuda" and x.requires_grad and x.is_leaf
    xc = x.detach().cpu().requires_grad_()
    for t in (x, xc):
        (tj.sigmoid(t) * t).sum(dim=1).pow(2).mean().backward()
    assert x.grad.device.type == "cuda"
    np.testing.assert_allclose(x.grad.cpu().numpy(), xc.grad.numpy(), rtol=2e-5, atol=1e-6)
    y = x.detach() * 2  # no grad, stays on the device
    assert y.device.type == "cuda" and not y.requires_grad
