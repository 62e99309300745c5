"""The pycuda code path of the CUDA runtime (`runtime/cuda.py` `PyCudaDriver`, `tj.cuda`'s
probing) on machines without a GPU: a subprocess imports `tests/fake_pycuda`, a stand-in with
pycuda's API (the calls tracejit makes, with their signatures) backed by the host emulation.
On a real GPU, tests/test_gpu.py covers the same path with the real pycuda."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from tracejit.runtime import cuda_emu

FAKE = os.path.join(os.path.dirname(__file__), "fake_pycuda")

pytestmark = pytest.mark.skipif(cuda_emu.compiler() is None,
                                reason="the CUDA emulation needs a C++ compiler")


def _run(code: str) -> str:
    env = {k: v for k, v in os.environ.items() if k != "TRACEJIT_CUDA_EMULATE"}
    env["PYTHONPATH"] = FAKE + os.pathsep + env.get("PYTHONPATH", "")
    r = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                       text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-4000:]
    return r.stdout


def test_compile_eager_and_training_through_the_pycuda_driver():
    out = _run("""
        import numpy as np, tracejit as tj
        from pycuda import driver as fake
        assert tj.cuda.is_available() and tj.cuda.device_count() == 1
        assert not tj.cuda.is_emulated()
        assert tj.cuda.get_device_name() == "Fake GPU (tracejit emulation)"
        p = tj.cuda.get_device_properties(0)
        assert (p.major, p.minor, p.multi_processor_count) == (9, 0, 4)
        x = np.random.default_rng(0).standard_normal((20, 30)).astype(np.float32)
        f = tj.compile(lambda a: tj.softmax(a @ a.T, dim=-1).sum(0), device="cuda")
        y = f(x)
        assert y.device == tj.device("cuda:0")
        ref = tj.softmax(tj.tensor(x) @ tj.tensor(x).T, dim=-1).sum(0).numpy()
        np.testing.assert_allclose(y.numpy(), ref, rtol=1e-5)
        net = tj.nn.Linear(30, 4).cuda()
        opt = tj.optim.SGD(net.parameters(), lr=0.1)
        xd = tj.tensor(x).cuda()
        for _ in range(2):
            opt.zero_grad()
            net(xd).pow(2).mean().backward()
            opt.step()
        assert net.weight.device == tj.device("cuda:0")
        tj.cuda.synchronize()
        before = fake.CALLS["mem_alloc"]
        for _ in range(3):
            f(xd)
        import threading  # another thread: the context is made current there too, once
        box = []
        th = threading.Thread(target=lambda: box.append(f(xd).numpy()))
        th.start(); th.join()
        np.testing.assert_allclose(box[0], ref, rtol=1e-5)
        pushes = fake.CALLS["push"]
        for _ in range(3):
            f(xd)
        assert fake.CALLS["push"] == pushes == 2, fake.CALLS["push"]  # one per thread
        print("allocs", fake.CALLS["mem_alloc"] - before, "launches", fake.CALLS["launch"],
              "modules", fake.CALLS["SourceModule"], "sync", fake.CALLS["synchronize"])
    """)
    counts = dict(zip(out.split()[::2], map(int, out.split()[1::2])))
    assert counts["allocs"] == 0  # the caching allocator reuses the freed blocks
    assert counts["launches"] > 0 and counts["modules"] > 0 and counts["sync"] >= 1


def test_visible_devices_and_errors_through_the_pycuda_probe():
    _run("""
        import os
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
        import tracejit as tj
        assert not tj.cuda.is_available()
        try:
            tj.zeros(2, device="cuda")
        except RuntimeError as e:
            assert "CUDA_VISIBLE_DEVICES is empty" in str(e), e
        else:
            raise AssertionError("no error")
    """)
