"""The host-side cost of one CUDA program call, without a GPU: W4's training step (bench_cpu's
`w4_step`, via bench_cuda's `w4_fn`) through `CUDAProgram` on a driver whose launches do
nothing, so what is timed is tracejit's Python per call (allocation, parameter lists, flag
reads), the part a GPU cannot hide when kernels are short.

    python benchmarks/cuda_overhead.py
"""

import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_cuda import mlp_inputs, w4_fn  # noqa: E402

import tracejit as tj  # noqa: E402
from tracejit.passes.pipeline import optimize  # noqa: E402
from tracejit.runtime.cuda import CUDAProgram, to_device  # noqa: E402
from tracejit.runtime.cuda_emu import EmulatedDriver  # noqa: E402


class NullDriver(EmulatedDriver):
    """Host memory as device memory, and launches that do nothing."""

    multiprocessors = 132
    emulated = False  # (no poisoning of each call's arena)

    def launch(self, mod, name, grid, block, ptrs):
        pass


def main(calls: int = 500) -> float:
    params, x, y = mlp_inputs((784, 512, 512, 10), 256)
    prog = CUDAProgram(optimize(tj.make_graph(w4_fn)(params, x, y)), NullDriver())
    leaves = tj.tree.flatten((params, x, y))[0]
    dev = [to_device(np.asarray(a), prog.driver) for a in leaves]
    for _ in range(20):
        prog(dev)
    t = time.perf_counter()
    for _ in range(calls):
        prog(dev)
    per = (time.perf_counter() - t) / calls
    print(f"W4 step: {len(prog.schedule.steps)} steps, {len(prog.source.launches)} launches; "
          f"host cost {per * 1e6:.1f} us per call ({per * 1e6 / len(prog.source.launches):.1f} "
          "us per launch)")
    return per


if __name__ == "__main__":
    main()
