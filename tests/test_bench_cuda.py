"""benchmarks/bench_cuda.py (issue 8's GPU benchmark) on machines without a GPU: the dry mode
(CUDA C of every workload, compiled by nvcc for sm_90 where nvcc is on PATH), the fallback to
it when no GPU is usable, the --emulate mode (tiny sizes on the host emulation, checked against
numpy), and the timing code path run on the emulation. Each run is a subprocess: the script
sets thread variables and device state for its whole process."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from tracejit.runtime.cuda_emu import compiler

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "benchmarks", "bench_cuda.py")
KEYS = ("W1", "W1b", "W2", "W3", "W4", "W4m")
needs_cxx = pytest.mark.skipif(compiler() is None, reason="the CUDA emulation needs a C++ "
                               "compiler")


def _run(*args, env=None, code=None, timeout=300):
    e = {k: v for k, v in os.environ.items() if k != "TRACEJIT_CUDA_EMULATE"}
    e.update(env or {})
    cmd = [sys.executable, "-c", code] if code else [sys.executable, SCRIPT, *args]
    r = subprocess.run(cmd, capture_output=True, text=True, env=e, cwd=ROOT, timeout=timeout)
    assert r.returncode == 0, f"exit {r.returncode}\n{r.stdout[-4000:]}\n{r.stderr[-4000:]}"
    return r.stdout


def _rows(path):
    with open(path) as f:
        rec = json.load(f)
    return rec, {r["key"]: r for r in rec["rows"]}


def test_dry_mode_renders_and_compiles_every_workload(tmp_path):
    out = _run("--dry", "--json", str(tmp_path / "dry.json"))
    for label in ("W1 tanh", "W1b x*2+1", "W2 softmax (4096, 1024)", "W3 matmul 4096x4096x4096",
                  "W4 MLP 784-512-512-10", "W4m"):
        assert label in out, out
    assert "all workloads ok" in out
    rec, rows = _rows(tmp_path / "dry.json")
    assert rec["mode"] == "dry" and set(rows) == set(KEYS)
    for r in rows.values():
        assert "error" not in r, r
        assert r["chars"] > 0 and r["kernels"] >= 1 and r["launches"] >= r["kernels"], r
    assert rows["W1"]["kernels"] == 1 and rows["W2"]["kernels"] == 1, rows  # fused, one each
    if shutil.which("nvcc") is None:
        assert "nvcc is not on PATH" in out
        return
    assert rec["arch"] == "sm_90"
    for r in rows.values():  # every launched kernel has its PTX entry, and ptxas ran
        assert r["entries"] >= r["kernels"] and r["max_regs"] > 0, r
    assert "PTX + cubin" in out


def test_without_a_gpu_it_says_so_and_runs_dry():
    out = _run("--only", "W1b", env={"CUDA_VISIBLE_DEVICES": ""})
    assert "No usable GPU (CUDA is not available: CUDA_VISIBLE_DEVICES is empty" in out, out
    assert "dry mode" in out and "W1b x*2+1, 2^26 f32" in out and "all workloads ok" in out
    assert "GB/s" not in out  # nothing timed


@needs_cxx
def test_emulate_mode_checks_every_workload_against_numpy(tmp_path):
    out = _run("--emulate", "--json", str(tmp_path / "emu.json"), "--md", str(tmp_path / "e.md"))
    rec, rows = _rows(tmp_path / "emu.json")
    assert rec["mode"] == "emulate" and rec["emulated"] and set(rows) == set(KEYS)
    for key in ("W1", "W1b", "W2", "W3", "W4"):
        assert not rows[key]["error"], rows[key]
        assert rows[key]["tracejit_s"] is None and rows[key]["ratio"] is None  # never timed
        assert f"{rows[key]['workload']}: ok (emulated" in out
    md = (tmp_path / "e.md").read_text()
    assert md.count("checked (emulated, not timed)") >= 5 and "W4m" in md


@needs_cxx
def test_emulate_module_step(tmp_path):
    _run("--emulate", "--only", "W4m", "--json", str(tmp_path / "m.json"))
    _, rows = _rows(tmp_path / "m.json")
    assert not rows["W4m"]["error"], rows["W4m"]["error"]


TIMED = r"""
import sys
sys.argv = [sys.argv[0]]
sys.path.insert(0, "benchmarks")
import bench_cuda as B
import tracejit as tj
log = '''ptxas info    : Compiling entry function 'k0_gemm' for 'sm_90'
    0 bytes stack frame, 8 bytes spill stores, 4 bytes spill loads
ptxas info    : Used 126 registers, used 1 barriers, 16896 bytes smem
ptxas info    : Compiling entry function 'k1_add' for 'sm_90'
ptxas info    : Used 17 registers, used 0 barriers'''
assert B.ptxas_stats(log) == {"k0_gemm": {"regs": 126, "spill": 12},
                              "k1_add": {"regs": 17, "spill": 0}}, B.ptxas_stats(log)
tj.cuda.emulate(True)
dev = B.Device(True, repeat=1)
dev.emulated = False  # the GPU's timing path, on the emulation (no peers: times mean nothing)
sel = [c for c in B.cases(B.SIZES["tiny"], real=True) if c.key != "W4m"]
rows, ok = B.on_device(sel, dev)
assert ok, [r.error for r in rows]
for r in rows:
    assert not r.error and r.tracejit_s > 0, r
w1 = rows[0]
assert w1.reference == "cuMemcpyDtoD" and w1.ratio > 0 and w1.met is not None, w1
assert "tracejit GB/s" in w1.info, w1
w3 = next(r for r in rows if r.key == "W3")
assert "tracejit TFLOP/s" in w3.info and w3.ratio is None, w3
print(B.markdown(rows, {"device": "emulated"}))
"""


@needs_cxx
def test_timing_path_runs_on_the_emulation():
    out = _run(code=TIMED)
    assert "| W1 tanh*sigmoid+exp, 3001 f32 |" in out and "cuMemcpyDtoD" in out, out


def test_host_overhead_script_runs(monkeypatch):
    import importlib
    monkeypatch.syspath_prepend(os.path.join(ROOT, "benchmarks"))
    mod = importlib.import_module("cuda_overhead")
    assert 0 < mod.main(calls=3) < 1.0  # seconds per call (a sanity bound, not a timing test)
