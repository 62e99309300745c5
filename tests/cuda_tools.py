"""Shared by the CUDA codegen tests: nvcc on PATH (or None) and compiling CUDA C to PTX."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile

from tracejit.codegen.cuda import HEADER_DIR

NVCC = shutil.which("nvcc")
ARCHS = ("sm_80", "sm_90")


def nvcc_ptx(src: str, arch: str, timeout: int = 300) -> tuple[int, str, str]:
    """``(returncode, stderr, ptx text)`` of ``nvcc -arch=<arch> -ptx`` on `src` (with the
    kernels/cuda headers on the include path); the PTX is empty when nvcc failed."""
    with tempfile.TemporaryDirectory() as d:
        cu, ptx = os.path.join(d, "k.cu"), os.path.join(d, "k.ptx")
        with open(cu, "w") as f:
            f.write(src)
        r = subprocess.run([NVCC, f"-arch={arch}", "-ptx", "-I", HEADER_DIR, cu, "-o", ptx],
                           capture_output=True, text=True, timeout=timeout)
        out = open(ptx).read() if r.returncode == 0 else ""
    return r.returncode, r.stderr, out
