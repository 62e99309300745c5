"""The CUDA backend without a GPU: the generated CUDA C of the whole op conformance table, and
of the derivative graphs of its float64 cases, compiled as C++ and run through the host
emulation (`kernels/cuda/tj_emu.h`) against numpy and the interpreter; the emulation itself
(real barriers: a planted race or missing ``__syncthreads`` fails); the runtime (device
tensors, the caching allocator, errors).

The modules of a table are compiled in batches (`cuda_emu.compile_many`: dozens of programs
per compiler run), shared by the test workers through the session's disk cache.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
from op_cases import INSTANCES, Instance
from test_derivatives import (
    CHOSEN,
    RTOL_CPU,
    Problem,
    _max_abs,
    _or_zeros,
    _rng,
    _skip_reason,
    run,
    stage,
)
from test_ops_conformance import _tensor, check_result

import tracejit as tj
from tracejit.autodiff.jvp import jvp_graph
from tracejit.autodiff.vjp import vjp_graph
from tracejit.codegen.cuda import render_schedule
from tracejit.passes.pipeline import optimize
from tracejit.runtime import cuda_emu
from tracejit.runtime.cuda import CUDAProgram
from tracejit.schedule.fusion import schedule

pytestmark = pytest.mark.skipif(cuda_emu.compiler() is None,
                                reason="the CUDA emulation needs a C++ compiler")

BATCH = 48  # programs per compiler run


@pytest.fixture
def emulated():
    """"cuda" is the host emulation for the test (and as before after it)."""
    was = tj.cuda._emulate[0]
    tj.cuda.emulate(True)
    try:
        yield cuda_emu.emulated_driver()
    finally:
        tj.cuda.emulate(was)


def _precompile(items: list, text_of) -> None:
    """Compiles the CUDA C of `items` (that render) as one batch."""
    texts = []
    for it in items:
        try:
            texts.append(text_of(it))
        except Exception:  # noqa: BLE001  (the test itself reports it)
            pass
    cuda_emu.compile_many(texts)


def _batched(table: list, text_of):
    """A function ``i -> None`` that compiles the batch of table entry `i` once."""
    done: set[int] = set()

    def ensure(i: int) -> None:
        b = i // BATCH
        if b not in done:
            done.add(b)
            _precompile(table[b * BATCH:(b + 1) * BATCH], text_of)
    return ensure


# -- the op conformance table ---------------------------------------------------------------
TABLE = [inst for inst in INSTANCES if not inst.case.eager_only]


def _graph_of(inst: Instance):
    return tj.make_graph(inst.case.fn)(*[_tensor(a) for a in inst.args()])


def _text_of(inst: Instance) -> str:
    return render_schedule(schedule(optimize(_graph_of(inst)))).text


_ensure_op = _batched(TABLE, _text_of)


@pytest.mark.parametrize("i", range(len(TABLE)), ids=[inst.id for inst in TABLE])
def test_op_on_emulated_cuda(i: int, emulated):
    """Every compiled case of the conformance table on the emulated device: results on the
    device, with the dtypes, shapes and values numpy gives."""
    inst = TABLE[i]
    _ensure_op(i)
    args = inst.args()
    before = [np.copy(a) for a in args]
    out = tj.compile(inst.case.fn, device="cuda")(*[_tensor(a) for a in args])
    for leaf in (out if isinstance(out, (tuple, list)) else [out]):
        if isinstance(leaf, tj.Tensor):
            assert leaf.device == tj.device("cuda:0"), f"{inst.id}: result on {leaf.device}"
    check_result(inst, out)
    if inst.case.op not in ("setitem", "__iadd__", "__imul__"):
        for k, (a, b) in enumerate(zip(args, before)):
            np.testing.assert_array_equal(a, b, err_msg=f"wrote into argument {k}")


# -- derivatives of the float64 cases -------------------------------------------------------
DTABLE = [inst for inst in CHOSEN if _skip_reason(inst) is None]


@functools.lru_cache(maxsize=2 * BATCH)
def _derivative_program(i: int):
    """(graph of the jvp and vjp of case `i`, its arguments) or None."""
    p = Problem(DTABLE[i])
    if not p.xs or not p.G.outputs:
        return None
    nx, nc = len(p.xs), len(p.consts)

    def both(*a):
        xs, consts = list(a[:nx]), list(a[nx:nx + nc])
        vs, us = list(a[nx + nc:2 * nx + nc]), list(a[2 * nx + nc:])
        _, ts = jvp_graph(p.G, xs + consts, vs + [None] * nc)
        _, cts = vjp_graph(p.G, xs + consts, us, wrt=[True] * nx + [False] * nc)
        return tuple(_or_zeros(ts, p.G.outputs)) + tuple(_or_zeros(cts[:nx], xs))

    rng = _rng(DTABLE[i])
    vs = [rng.standard_normal(x.shape) for x in p.xs]
    us = [rng.standard_normal(o.shape) for o in p.outs]
    args = p.xs + p.consts + vs + us
    return optimize(stage(both, args)[0]), args


def _dtext(i: int) -> str:
    prog = _derivative_program(i)
    if prog is None:
        raise LookupError
    return render_schedule(schedule(prog[0])).text


_ensure_grad = _batched(list(range(len(DTABLE))), _dtext)


@pytest.mark.parametrize("i", range(len(DTABLE)), ids=[inst.id for inst in DTABLE])
def test_derivatives_on_emulated_cuda(i: int):
    """The jvp and vjp graphs of every float64 case, compiled to CUDA C and run on the
    emulated device, give the interpreter's values."""
    _ensure_grad(i)
    prog = _derivative_program(i)
    if prog is None:
        pytest.skip("no float input or no float64 output")
    g, args = prog
    want = run(g, args)
    got = [d.get() for d in CUDAProgram(g, cuda_emu.emulated_driver())(
        [np.asarray(a) for a in args])]
    assert len(got) == len(want)
    for k, (a, b) in enumerate(zip(got, want)):
        assert a.shape == b.shape and a.dtype == b.dtype, f"result {k}"
        fin = np.isfinite(b)
        np.testing.assert_array_equal(np.isfinite(a), fin, err_msg=f"result {k}: non-finite")
        scale = max(_max_abs([b[fin]]) if fin.any() else 0.0, 1e-300)
        np.testing.assert_allclose(a[fin], b[fin], rtol=0, atol=RTOL_CPU * scale,
                                   err_msg=f"{DTABLE[i].id}: result {k} (cuda vs interpreter)")


# -- the emulation catches races and missing barriers ---------------------------------------
_TREE = r'''
#include "tj_cuda.h"
TJ_KERNEL void block_sum(float* __restrict__ out, const float* __restrict__ a) {
  TJ_SHARED(float, s, 128, 0);
  const int t = threadIdx.x;
  s[t] = a[blockIdx.x * 128 + t];
  BARRIER_AFTER_STORE
  for (int h = 64; h > 0; h /= 2) {
    if (t < h) s[t] += s[t + h];
    BARRIER_IN_LOOP
  }
  if (t == 0) out[blockIdx.x] = s[0];
}
TJ_EMU_ENTRY(block_sum)
'''


def _tree(after_store: bool, in_loop: bool) -> cuda_emu.EmuModule:
    sync = "__syncthreads();"
    return cuda_emu.module(_TREE.replace("BARRIER_AFTER_STORE", sync if after_store else "")
                           .replace("BARRIER_IN_LOOP", sync if in_loop else ""))


@pytest.mark.parametrize("planted", ["no barrier after the store", "no barrier in the loop"])
def test_planted_missing_barrier_fails(planted):
    """A shared-memory tree reduction with one ``__syncthreads`` removed gives wrong sums in
    the emulation (threads of a block run as fibers in turn; shared memory starts as NaN),
    while the correct kernel gives the right ones in both thread orders."""
    a = np.random.default_rng(0).standard_normal(3 * 128).astype(np.float32)
    want = a.reshape(3, 128).sum(1)
    good = _tree(True, True)
    for order in ("ascending", "descending"):
        out = np.zeros(3, np.float32)
        with cuda_emu.thread_order(order):
            good.launch("block_sum", 3, 128, [out, a])
        np.testing.assert_allclose(out, want, rtol=1e-5)
    bad = _tree(planted != "no barrier after the store", planted != "no barrier in the loop")
    out = np.zeros(3, np.float32)
    with cuda_emu.thread_order("ascending"):  # readers run before the writers
        bad.launch("block_sum", 3, 128, [out, a])
    assert not np.allclose(out, want, rtol=1e-5), "the race went unnoticed"


def test_planted_race_on_global_memory_fails():
    """Threads that read a neighbour's output without a barrier see the poison bytes of a
    newly allocated device buffer."""
    src = r'''
#include "tj_cuda.h"
TJ_KERNEL void shift(float* __restrict__ tmp, float* __restrict__ out) {
  const int t = threadIdx.x;
  tmp[t] = (float)t;
  SYNC
  out[t] = tmp[(t + 1) % 64];
}
TJ_EMU_ENTRY(shift)
'''
    drv = cuda_emu.emulated_driver()
    for sync, ok in (("__syncthreads();", True), ("", False)):
        m = cuda_emu.module(src.replace("SYNC", sync))
        tmp, out = drv.mem_alloc(256), np.zeros(64, np.float32)
        m.launch("shift", 1, 64, [tmp, out])
        drv.mem_free(tmp)
        assert np.array_equal(out, (np.arange(64) + 1) % 64) == ok


def test_barrier_divergence_is_an_error():
    src = r'''
#include "tj_cuda.h"
TJ_KERNEL void early(float* __restrict__ out) {
  if (threadIdx.x < 16) return;
  __syncthreads();
  out[threadIdx.x] = 1.0f;
}
TJ_EMU_ENTRY(early)
TJ_KERNEL void half_shuffle(float* __restrict__ out) {
  float v = 1.0f;
  if (threadIdx.x % 32 < 16) v = __shfl_down_sync(0xffffffffu, v, 1);
  out[threadIdx.x] = v;
}
TJ_EMU_ENTRY(half_shuffle)
'''
    m = cuda_emu.module(src)
    with pytest.raises(RuntimeError, match=r"barrier divergence.*16 have returned"):
        m.launch("early", 1, 64, [np.zeros(64, np.float32)])
    with pytest.raises(RuntimeError, match="barrier divergence"):
        m.launch("half_shuffle", 1, 32, [np.zeros(32, np.float32)])
    with pytest.raises(RuntimeError, match="bad launch geometry"):
        m.launch("early", 1, 2048, [np.zeros(64, np.float32)])


def test_warp_shuffles_and_atomics():
    src = r'''
#include "tj_cuda.h"
TJ_KERNEL void warp_ops(float* __restrict__ down, int* __restrict__ x, float* __restrict__ tot,
                        unsigned* __restrict__ bal) {
  const int t = threadIdx.x, lane = t % 32;
  float v = (float)t;
  for (int o = 16; o > 0; o /= 2) v += __shfl_down_sync(0xffffffffu, v, o);
  if (lane == 0) down[t / 32] = v;
  x[t] = __shfl_xor_sync(0xffffffffu, t, 1);
  atomicAdd(tot, 1.0f);
  unsigned b = __ballot_sync(0xffffffffu, t % 3 == 0);
  if (lane == 0) bal[t / 32] = b;
}
TJ_EMU_ENTRY(warp_ops)
'''
    m = cuda_emu.module(src)
    down, x = np.zeros(2, np.float32), np.zeros(64, np.int32)
    tot, bal = np.zeros(1, np.float32), np.zeros(2, np.uint32)
    m.launch("warp_ops", 1, 64, [down, x, tot, bal])
    np.testing.assert_array_equal(down, np.arange(64).reshape(2, 32).sum(1))
    np.testing.assert_array_equal(x, np.arange(64) ^ 1)
    assert tot[0] == 64
    want = [sum(1 << (t - 32 * w) for t in range(32 * w, 32 * w + 32) if t % 3 == 0)
            for w in range(2)]
    np.testing.assert_array_equal(bal, want)


# -- the runtime and device tensors ---------------------------------------------------------
def test_device_tensors_stay_on_the_device(emulated):
    x = tj.randn(8, 16, device="cuda")
    assert x.device == tj.device("cuda:0") and x.is_cuda
    f = tj.compile(lambda a, b: tj.softmax(a @ b, dim=-1) * 2, device="cuda")
    w = tj.randn(16, 4).cuda()
    y = f(x, w)
    assert y.device == tj.device("cuda:0")
    want = np.asarray(tj.softmax(x.cpu() @ w.cpu(), dim=-1) * 2)
    np.testing.assert_allclose(y.numpy(), want, rtol=1e-5, atol=1e-6)
    z = (y + 1).sum(0)  # eager ops on CUDA tensors run on the device
    assert z.device == tj.device("cuda:0")
    np.testing.assert_allclose(z.cpu().numpy(), (want + 1).sum(0), rtol=1e-5)
    assert "device='cuda:0'" in repr(z)
    assert x.to("cpu").device == tj.device("cpu") and x.cpu().numpy().shape == (8, 16)


def test_mixing_devices_is_an_error(emulated):
    x = tj.ones(3, device="cuda")
    with pytest.raises(RuntimeError, match=r"(?s)same device.*cuda:0 and cpu.*test_cuda_emulation"):
        x + tj.tensor([1.0, 2.0, 3.0])
    assert (x + tj.tensor(2.0)).device == tj.device("cuda:0")  # a 0-d CPU tensor joins
    # pending CPU work made of scalars alone (library code's iota, ones) is rebuilt there
    y = x + tj.arange(3.0)
    assert y.device == tj.device("cuda:0") and y.tolist() == [1.0, 2.0, 3.0]


def test_autograd_across_devices(emulated):
    rng = np.random.default_rng(1)
    xv, wv = rng.standard_normal((5, 3)).astype(np.float32), rng.standard_normal(
        (3, 2)).astype(np.float32)
    w = tj.tensor(wv, requires_grad=True)  # a CPU leaf ...
    x = tj.tensor(xv, device="cuda")
    loss = (x @ w.to("cuda")).relu().sum()  # ... moved to the device inside the graph
    loss.backward()
    assert w.grad.device == tj.device("cpu")
    wc = tj.tensor(wv, requires_grad=True)
    (tj.tensor(xv) @ wc).relu().sum().backward()
    np.testing.assert_allclose(w.grad.numpy(), wc.grad.numpy(), rtol=1e-5)


def test_training_a_module_on_the_device(emulated):
    tj.manual_seed(0)
    net = tj.nn.Sequential(tj.nn.Linear(6, 8), tj.nn.ReLU(), tj.nn.Linear(8, 3))
    ref = tj.nn.Sequential(tj.nn.Linear(6, 8), tj.nn.ReLU(), tj.nn.Linear(8, 3))
    ref.load_state_dict(net.state_dict())
    net.cuda()
    assert all(p.device == tj.device("cuda:0") for p in net.parameters())
    opt, ropt = tj.optim.SGD(net.parameters(), lr=0.1), tj.optim.SGD(ref.parameters(), lr=0.1)
    x, y = tj.randn(10, 6), tj.randint(0, 3, (10,))
    xd, yd = x.cuda(), y.cuda()
    for _ in range(3):
        for model, o, a, b in ((net, opt, xd, yd), (ref, ropt, x, y)):
            o.zero_grad()
            tj.nn.functional.cross_entropy(model(a), b).backward()
            o.step()
    for p, q in zip(net.parameters(), ref.parameters()):
        assert p.device == tj.device("cuda:0")
        np.testing.assert_allclose(p.cpu().detach().numpy(), q.detach().numpy(), rtol=1e-4,
                                   atol=1e-6)


def test_caching_allocator_reuses_blocks(emulated):
    base = tj.cuda.memory_allocated()
    f = tj.compile(lambda a: tj.exp(a) * 2, device="cuda")
    x = tj.ones(1000, device="cuda")
    y = f(x)
    assert tj.cuda.memory_allocated() >= base + 2 * 4000
    reserved = tj.cuda.memory_reserved()
    for _ in range(5):
        y = f(x)  # the freed blocks of each call are reused: nothing new is reserved
    assert tj.cuda.memory_reserved() == reserved
    del x, y
    assert tj.cuda.memory_allocated() == base
    tj.cuda.empty_cache()
    assert tj.cuda.memory_reserved() <= reserved


def test_bad_index_on_the_device_raises_at_the_users_line(emulated):
    x = tj.arange(5.0, device="cuda")
    f = tj.compile(lambda a, i: a[i], device="cuda")
    with pytest.raises(IndexError, match="out of bounds"):
        f(x, tj.tensor([1, 7]))


def test_host_steps_are_listed(emulated):
    def f(x):
        return tj.cond(x.sum() > 0, lambda v: v * 2, lambda v: v - 1, x)
    g = optimize(tj.make_graph(f)(np.ones(3, np.float32)))
    prog = CUDAProgram(g, emulated)
    assert prog.host_steps == ["cond"]
    np.testing.assert_allclose(prog([np.ones(3, np.float32)])[0].get(), 2.0)


def test_no_gpu_errors_say_what_is_missing():
    if tj.cuda.is_available():
        pytest.skip("a CUDA device is usable here")
    f = tj.compile(lambda x: x * 2, device="cuda")
    assert "TJ_KERNEL" in f.lower(np.ones(3, np.float32)).as_text("cuda")  # (no device needed)
    for call in (lambda: f(np.ones(3, np.float32)), lambda: tj.ones(2).cuda(),
                 lambda: tj.zeros(2, device="cuda"), lambda: tj.nn.Linear(2, 2).cuda()):
        with pytest.raises(RuntimeError, match="CUDA is not available: .*docs/gpu.md"):
            call()


def test_device_indices(emulated):
    assert tj.cuda.device_count() == 1 and tj.cuda.current_device() == 0
    with pytest.raises(RuntimeError, match="CUDA device 1 does not exist: 1 device"):
        tj.zeros(2, device="cuda:1")
    with pytest.raises(RuntimeError, match="CUDA device 1 does not exist"):
        tj.cuda.set_device(1)
    t = tj.ones(2, device=tj.device("cuda", 0))
    assert t.device == tj.device("cuda:0") and t.device.index == 0
    net = tj.nn.Linear(2, 2).to(t)  # to(tensor): its dtype and device
    assert net.weight.device == t.device and net(t).device == t.device
    assert tj.cuda.get_device_properties(0).multi_processor_count >= 1
    tj.cuda.synchronize()


def test_copies_and_pickles_stay_on_the_device(emulated):
    import copy
    import pickle
    m = tj.nn.Linear(3, 2).cuda()
    for m2 in (copy.deepcopy(m), pickle.loads(pickle.dumps(m))):
        assert m2.weight.device == tj.device("cuda:0") and m2.weight.requires_grad
        np.testing.assert_array_equal(m2.weight.detach().numpy(), m.weight.detach().numpy())
    t = tj.randn(3, device="cuda")
    u = pickle.loads(pickle.dumps(t))
    assert u.device == t.device and np.array_equal(u.numpy(), t.numpy())
    x = tj.randn(4, 4, device="cuda")
    x[0, 0] = 5.0  # an in-place write into device memory
    assert x[0, 0].item() == 5.0 and x.device == tj.device("cuda:0")
