"""The dry mode of bench_cuda.py: the workloads' CUDA C rendered and, where nvcc is on PATH,
compiled to PTX and a cubin (``ptxas -v``: registers and spills per kernel). No GPU, no
emulation, nothing timed: it runs on every machine.

Input: the selected `bench_cuda.Case`s. Output: one row per workload (kernels, launches, host
steps, flag reads, registers, spills, or the error) printed and returned.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor

import tracejit as tj

_PTXAS_FN = re.compile(r"Compiling entry function '(\w+)'")
_PTXAS_SPILL = re.compile(r"(\d+) bytes spill stores, (\d+) bytes spill loads")
_PTXAS_REGS = re.compile(r"Used (\d+) registers")


def ptxas_stats(log: str) -> dict[str, dict]:
    """Per kernel, ``{"regs": n, "spill": bytes stored + loaded}`` from ``ptxas -v`` output."""
    out, cur = {}, None
    for line in log.splitlines():
        if m := _PTXAS_FN.search(line):
            cur = out.setdefault(m.group(1), {"regs": 0, "spill": 0})
        elif cur is not None and (m := _PTXAS_SPILL.search(line)):
            cur["spill"] += int(m.group(1)) + int(m.group(2))
        elif cur is not None and (m := _PTXAS_REGS.search(line)):
            cur["regs"] = int(m.group(1))
    return out


def nvcc_check(text: str, names: list[str], arch: str, nvcc: str, dump: str | None,
               tag: str) -> dict:
    """Compiles `text` to PTX (the flags the runtime gives pycuda) and the PTX to a cubin with
    ``-Xptxas -v``; checks every launched kernel has its PTX entry."""
    from tracejit.codegen.cuda import HEADER_DIR
    with tempfile.TemporaryDirectory() as d:
        d = dump or d
        cu, ptx, cubin = (os.path.join(d, f"{tag}.{e}") for e in ("cu", "ptx", "cubin"))
        with open(cu, "w") as f:
            f.write(text)
        r = subprocess.run([nvcc, f"-arch={arch}", "-std=c++17", "-ptx", "-I", HEADER_DIR, cu,
                            "-o", ptx], capture_output=True, text=True, timeout=600)
        if r.returncode:
            return {"error": f"nvcc -ptx failed:\n{r.stderr[-3000:]}"}
        with open(ptx) as f:
            entries = set(re.findall(r"\.entry\s+(\w+)", f.read()))
        missing = [n for n in names if n not in entries]
        if missing:
            return {"error": f"PTX lacks the entries {missing} (has {sorted(entries)})"}
        r = subprocess.run([nvcc, f"-arch={arch}", "-cubin", "-Xptxas", "-v", ptx, "-o", cubin],
                           capture_output=True, text=True, timeout=600)
        if r.returncode:
            return {"error": f"ptxas failed:\n{r.stderr[-3000:]}"}
    st = ptxas_stats(r.stderr + r.stdout)
    top = max(st.items(), key=lambda kv: kv[1]["regs"], default=(None, {"regs": 0}))
    return {"entries": len(entries), "max_regs": top[1]["regs"], "max_regs_kernel": top[0],
            "spill_bytes": sum(v["spill"] for v in st.values())}


def dry(sel: list, arch: str, dump: str | None, issue=()) -> tuple[list[dict], bool]:
    """Renders each selected workload's CUDA C and, where nvcc is, compiles it; one row each.
    A failure of a workload in `issue` fails the run."""
    from tracejit.codegen.cuda import render_schedule
    from tracejit.passes.pipeline import optimize
    from tracejit.schedule.fusion import schedule
    nvcc = shutil.which("nvcc")
    print("dry mode: traced at the benchmark's shapes, CUDA C rendered"
          + (f", compiled by {nvcc} for {arch}" if nvcc else
             "; nvcc is not on PATH, so the CUDA C is not compiled"), flush=True)
    rows, ok, jobs = [], True, []
    for c in sel:
        row = {"key": c.key, "workload": c.label}
        rows.append(row)
        try:
            lo = tj.compile(c.fn).lower(*c.args)
            text = lo.as_text("cuda")
            src = render_schedule(schedule(optimize(lo.graph)))
            if not text.strip() or text != src.text:
                raise AssertionError("as_text('cuda') is empty or differs from render_schedule")
            names = list(dict.fromkeys(ln.name for ln in src.launches))
            row.update(chars=len(text), steps=len(src.steps), kernels=len(names),
                       launches=len(src.launches),
                       host_steps=sum(st is None for st in src.steps),
                       host_syncs=sum(1 for st in src.steps if st is not None and st.error_flag),
                       sync_kernels=[st.launches[0].name for st in src.steps
                                     if st is not None and st.error_flag and st.launches])
            if nvcc:
                tag = re.sub(r"\W+", "_", c.label)[:60]
                jobs.append((row, (text, names, arch, nvcc, dump, tag)))
        except Exception as e:  # noqa: BLE001  (reported per workload, the rest still run)
            row["error"] = f"{type(e).__name__}: {e}"
    with ThreadPoolExecutor(2) as ex:
        for row, res in zip([j[0] for j in jobs],
                            ex.map(lambda j: nvcc_check(*j[1]), jobs)):
            row.update(res)
    print(f"{'workload':<44} {'kernels':>7} {'launch':>6} {'host':>4} {'syncs':>5} "
          f"{'regs':>4} {'spill':>5}  status")
    for row in rows:
        failed = "error" in row
        ok &= not failed or row["key"] not in issue
        if "kernels" not in row:
            print(f"{row['workload']:<44} FAILED: {row['error']}")
            continue
        regs = row.get("max_regs", "-")
        print(f"{row['workload']:<44} {row['kernels']:>7} {row['launches']:>6} "
              f"{row['host_steps']:>4} {row['host_syncs']:>5} {regs:>4} "
              f"{row.get('spill_bytes', '-'):>5}  "
              + (f"FAILED: {row['error']}" if failed else
                 f"ok ({'PTX + cubin' if nvcc else 'text only'}, {row['chars']} chars)"))
    print("(launch: kernel launches per call; host: steps run on the host; syncs: steps that "
          "report bad input through an error flag, read back once per call, one host "
          "synchronization in all; regs: most registers of one kernel; spill: bytes spilled, "
          "all kernels)")
    return rows, ok


