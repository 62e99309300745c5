"""Differential fuzzing: random well-typed programs (`tracejit/testing_fuzz.py`) compiled for
the CPU against the interpreter, and for float64 programs `tj.grad` against finite differences.

In the normal suite each fuzz test runs a bounded number of examples (`EXAMPLES`, default 40,
with a derandomized seed so every run sees the same programs); for a nightly run set
``TRACEJIT_FUZZ_EXAMPLES=2000`` (and ``TRACEJIT_FUZZ_RANDOM=1`` for fresh programs each night):

    TRACEJIT_FUZZ_EXAMPLES=2000 TRACEJIT_FUZZ_RANDOM=1 python -m pytest tests/test_fuzz.py -q

Every bug the fuzzer found is below as a minimized regression test (`test_regression_*`).
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

import tracejit as tj
from tracejit.testing_fuzz import Program, check_grad, check_program, programs

EXAMPLES = int(os.environ.get("TRACEJIT_FUZZ_EXAMPLES", "40"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, print_blob=True,
                derandomize=os.environ.get("TRACEJIT_FUZZ_RANDOM", "") in ("", "0"),
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                       HealthCheck.data_too_large])


@FUZZ
@given(programs())
def test_cpu_matches_interpreter(p: Program):
    check_program(p)


@settings(FUZZ, max_examples=max(1, EXAMPLES // 2))
@given(programs(float_dtypes=("float64",), max_inputs=2, max_steps=5))
def test_grad_matches_finite_differences(p: Program):
    check_grad(p)


@pytest.fixture(scope="module")
def emulated_cuda():
    from tracejit.runtime.cuda_emu import compiler
    if compiler() is None:
        pytest.skip("the CUDA emulation needs a C++ compiler")
    was = tj.cuda._emulate[0]
    tj.cuda.emulate(True)
    yield
    tj.cuda.emulate(was)


@settings(FUZZ, max_examples=max(1, EXAMPLES // 2))
@given(p=programs())
def test_cuda_matches_interpreter(emulated_cuda, p: Program):
    """The same random programs compiled for CUDA (the host emulation here, a GPU where
    TRACEJIT_CUDA_EMULATE is unset and one is present)."""
    check_program(p, "cuda")


def test_programs_are_well_formed():
    """The generator itself: a fixed program builds, runs, and prints as source."""
    p = Program([((2, 3), "float64"), ((3,), "int32")], seed=1, float_dtype="float64")
    p.lines = ["v2 = tj.sin(v0) + v1", "v3 = v2.sum(dim=0, keepdim=True)"]
    p.outputs = [2, 3]
    assert "def prog(v0, v1):" in p.source and "return (v2, v3,)" in p.source
    check_program(p)
    assert check_grad(p)
    x, i = p.args()
    np.testing.assert_allclose(tj.compile(p.fn())(x, i)[0].numpy(), np.sin(x) + i)


# -- regressions: bugs the fuzzer found, minimized ---------------------------------------------

def test_regression_folded_constant_in_non_row_major_order():
    """Found by `test_grad_matches_finite_differences`: the backward of integer-array indexing
    along a middle dim folds to a constant mask that numpy holds as a strided (non row-major)
    array; the CPU schedule passed its data pointer to kernels that index it row-major, so the
    gradient was scrambled ([1,1,1,1,0,0,0,0] for [1,1,0,0,1,1,0,0]). Fixed in
    `schedule/fusion.py` (constants made contiguous)."""
    x = np.arange(8.0).reshape(2, 2, 2) + 1

    def f(v):
        return tj.exp(v)[:, tj.tensor([0])].sum()
    want = np.exp(x) * np.array([1, 1, 0, 0, 1, 1, 0, 0.0]).reshape(2, 2, 2)
    for device in ("cpu", "interpreter"):
        np.testing.assert_allclose(tj.compile(tj.grad(f), device=device)(x).numpy(), want,
                                   rtol=1e-12)
    p = Program([((2, 2, 2), "float64")], seed=0, float_dtype="float64", scale=3.0)
    p.lines = ["v1 = tj.floor(v0)", "v2 = tj.abs(v0)", "v3 = v2[:, tj.tensor([0])]"]
    p.outputs = [3]
    assert check_grad(p)
