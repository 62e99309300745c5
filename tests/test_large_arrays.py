"""Index arithmetic is 64-bit: kernels over more than 2^31 elements.

The generated code's indices are i64 (checked on the IR, in the normal suite); a kernel over
2^31 + 17 int8 / bool elements gives the right results (slow-marked: ~4 GiB peak, ~30 s; runs
with `-m slow` or TRACEJIT_SLOW_TESTS=1, in the nightly set).
"""

from __future__ import annotations

import os
import re

import numpy as np
import pytest

import tracejit as tj
from tracejit.passes.pipeline import optimize
from tracejit.runtime import cpu

BIG = (1 << 31) + 17


def gep_lines(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if "getelementptr" in ln]


@pytest.mark.parametrize("case", ["add", "cast_sum", "reduce_rows", "matmul"])
def test_generated_indices_are_64_bit(case):
    """Every address computation of the generated code (before and after LLVM's optimizer)
    indexes with i64, never i32: an index past 2^31 cannot wrap."""
    fns = {
        "add": (lambda a: a + 1, [np.zeros(1000, np.int8)]),
        "cast_sum": (lambda a: a.to(tj.int64).sum(), [np.zeros(1000, bool)]),
        "reduce_rows": (lambda a: (a * 2.0).sum(dim=1), [np.zeros((30, 40), np.float32)]),
        "matmul": (lambda a, b: a @ b, [np.zeros((9, 7), np.float32),
                                        np.zeros((7, 5), np.float32)]),
    }
    fn, args = fns[case]
    graph = tj.compile(fn).lower(*args).graph
    prog = cpu.CPUProgram(optimize(graph))
    for text in (prog.llvm_ir_unoptimized, prog.llvm_ir):
        geps = gep_lines(text)
        assert geps
        bad = [ln for ln in geps if re.search(r"\bi32\b", ln.split("getelementptr", 1)[1])]
        assert not bad, bad[:5]


def _mem_available() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


@pytest.mark.slow
def test_kernels_over_more_than_2_31_elements(request):
    """x + 1 on 2^31 + 17 int8 elements (wrapping at 127) and the sum of a bool array of that
    length cast to int64: right at both ends and across the 2^31 boundary, and everywhere."""
    if "slow" not in (request.config.getoption("markexpr") or "") and not os.environ.get(
            "TRACEJIT_SLOW_TESTS"):
        pytest.skip("4 GiB, ~30 s: run with -m slow")
    if _mem_available() < 5 * (1 << 30):
        pytest.skip("needs ~5 GiB of available memory")
    x = np.zeros(BIG, np.int8)
    marks = {0: 1, (1 << 31) - 1: -3, 1 << 31: 7, (1 << 31) + 1: 127, BIG - 1: 5}
    for i, v in marks.items():
        x[i] = v
    y = tj.compile(lambda a: a + 1)(x).numpy()
    assert y.shape == (BIG,) and y.dtype == np.int8
    for i, v in marks.items():
        assert int(y[i]) == np.int8(v + 1 if v < 127 else -128), i
    chunk = 1 << 28
    for i in range(0, BIG, chunk):
        np.testing.assert_array_equal(y[i:i + chunk], x[i:i + chunk] + np.int8(1))
    del x, y

    b = np.zeros(BIG, bool)
    b[::3] = True
    b[(1 << 31) - 2:(1 << 31) + 3] = True
    b[BIG - 1] = True
    total = tj.compile(lambda a: a.to(tj.int64).sum())(b).numpy()
    assert total.dtype == np.int64
    assert int(total) == int(np.count_nonzero(b))
