"""Op conformance: every case of `op_cases.py` on every backend, checked against numpy.

For each instance (a case at one input set and one dtype) and each backend: the result's
structure, shapes and dtypes are what PyTorch gives, and its values match the case's numpy
reference within tolerance. The traced graph of every instance passes `Graph.verify()` and
declares the same result types. A completeness test fails when a primitive is exercised by no
case, or a public op of SPEC §3 has none. A second, small table checks error messages: the
exception type, the op name, the shapes, and the user's ``file:line`` (this file's).
"""

from __future__ import annotations

import functools
import os
from typing import Callable, NamedTuple

import numpy as np
import pytest
from op_cases import CASES, F32, I32, INSTANCES, SPEC_OPS, Arr, B, Idx, Instance, make_arg

import tracejit as tj
from tracejit.primitives import PRIMITIVES

# -- backends -------------------------------------------------------------------------------
# A backend runs `fn` on the numpy/Python arguments and returns tracejit results. The LLVM
# ("cpu") and CUDA backends join this dict when they land; everything else follows.


def _tensor(a):
    return tj.from_numpy(a) if isinstance(a, np.ndarray) else a


def run_eager(fn: Callable, args: list):
    """Calls the op on realized Tensors (keeping transposed/strided views as they are)."""
    return fn(*[_tensor(a) for a in args])


def compiled(device: str) -> Callable:
    def run(fn: Callable, args: list):
        return tj.compile(fn, device=device)(*[_tensor(a) for a in args])
    run.__name__ = f"run_{device}"
    return run


BACKENDS: dict[str, Callable] = {
    "eager": run_eager,
    "interpreter": compiled("interpreter"),
    "cpu": compiled("cpu"),
    # "cuda": a runner that calls pytest.skip() unless tj.cuda.is_available()
}
# Ops that write into their (eager) input; everything else, and every compiled call, must
# leave the caller's arrays untouched.
MUTATING = {"setitem", "__iadd__", "__imul__"}


@pytest.fixture(params=list(BACKENDS))
def backend(request) -> str:
    return request.param


# -- checking results -----------------------------------------------------------------------

def _leaves(x) -> list:
    if isinstance(x, (tuple, list)):
        return [leaf for v in x for leaf in _leaves(v)]
    return [x]


def _dtype_list(dts, n: int) -> list[str]:
    return list(dts) if isinstance(dts, tuple) else [dts] * n


def check_result(inst: Instance, out) -> None:
    expected = inst.expected()
    want, got = _leaves(expected), _leaves(out)
    if isinstance(expected, tuple):
        assert isinstance(out, (tuple, list)), f"expected {len(want)} results, got {out!r}"
    assert len(got) == len(want), f"{len(got)} results, expected {len(want)}"
    if inst.case.fields:
        assert getattr(out, "_fields", None) == inst.case.fields, f"{type(out)} is not a " \
            f"namedtuple with fields {inst.case.fields}"
        assert all(getattr(out, f) is out[i] for i, f in enumerate(inst.case.fields))
    dts = _dtype_list(inst.out_dtypes(), len(want))
    for k, (g, e, dt) in enumerate(zip(got, want, dts)):
        e = np.asarray(e)
        where = f"result {k} of {inst.id}"
        assert isinstance(g, tj.Tensor), f"{where}: got a {type(g).__name__}, not a Tensor"
        assert g.shape == e.shape, f"{where}: shape {g.shape}, expected {e.shape}"
        assert g.dtype.name == dt, f"{where}: dtype {g.dtype.name}, expected {dt}"
        compare(inst, g.numpy(), e, dt, where)


def compare(inst: Instance, v: np.ndarray, e: np.ndarray, dt: str, where: str) -> None:
    """`v` has dtype `dt` and the values of `e`: within tolerance for floats, else exactly."""
    assert v.shape == e.shape and v.dtype == np.dtype(dt), f"{where}: buffer {v.dtype}"
    if dt.startswith("float"):
        rtol, atol = inst.tolerance(dt)
        np.testing.assert_allclose(v.astype(np.float64), e.astype(np.float64), rtol=rtol,
                                   atol=atol, equal_nan=True, err_msg=where)
    else:
        np.testing.assert_array_equal(v, e, err_msg=where)


# -- the conformance test -------------------------------------------------------------------

IDS = [inst.id for inst in INSTANCES]
assert len(set(IDS)) == len(IDS), "instance ids must be unique"


@pytest.mark.parametrize("inst", INSTANCES, ids=IDS)
def test_op(inst: Instance, backend: str):
    run = BACKENDS[backend]
    if inst.case.eager_only and backend != "eager":
        with pytest.raises(tj.ConcretizationError):  # data-dependent shape under compile
            run(inst.case.fn, inst.args())
        return
    args = inst.args()
    before = [np.copy(a) for a in args]
    check_result(inst, run(inst.case.fn, args))
    if inst.case.op in MUTATING:  # in place: the caller's buffer too (compiled functions
        # write modified arguments back after the call, as the eager code does)
        compare(inst, args[0], np.asarray(inst.expected()), inst.out_dtypes(), "in place")
    else:
        for k, (a, b) in enumerate(zip(args, before)):
            np.testing.assert_array_equal(a, b, err_msg=f"{backend} wrote into argument {k}")


@functools.cache
def traced(i: int) -> tj.Graph:
    inst = INSTANCES[i]
    return tj.make_graph(inst.case.fn)(*[_tensor(a) for a in inst.args()])


@pytest.mark.parametrize("i", [i for i, inst in enumerate(INSTANCES)
                               if not inst.case.eager_only],
                         ids=[inst.id for inst in INSTANCES if not inst.case.eager_only])
def test_graph_verifies(i: int):
    inst = INSTANCES[i]
    g = traced(i)
    g.verify()
    want = [np.asarray(e) for e in _leaves(inst.expected())]
    dts = _dtype_list(inst.out_dtypes(), len(want))
    assert [(tuple(o.shape), o.dtype.name) for o in g.outputs] == [
        (e.shape, dt) for e, dt in zip(want, dts)]


# -- completeness ---------------------------------------------------------------------------

# Primitives that belong to other parts of SPEC, each covered by its own test file: control
# flow (tests/test_control.py) has the `cond` and `while` nodes and `get`, the projection that
# reads their results.
COVERED_ELSEWHERE = {"cond", "while", "get",
                     # random numbers (SPEC §6): Philox known answers in tests/test_random.py
                     "random_bits",
                     # tj.autograd.Function calls: tests/test_autodiff.py
                     "custom_vjp",
                     # effects (tj.debug.print / check): tests/test_debug_effects.py
                     "debug_print", "debug_check"}


def _ops_in(g: tj.Graph) -> set[str]:
    ops = set()
    for n in g.nodes:
        ops.add(n.op)
        for v in n.params.values():
            for sub in (v if isinstance(v, tuple) else (v,)):
                if isinstance(sub, tj.Graph):
                    ops |= _ops_in(sub)
    return ops


def test_every_primitive_has_a_case():
    seen: set[str] = set()
    for i, inst in enumerate(INSTANCES):
        if not inst.case.eager_only:
            seen |= _ops_in(traced(i))
    missing = sorted(set(PRIMITIVES) - COVERED_ELSEWHERE - seen)
    assert not missing, f"primitives no case exercises: {missing}"


def test_every_spec_op_has_a_case():
    have = {c.op for c in CASES}
    missing = sorted(set(SPEC_OPS) - have)
    assert not missing, f"SPEC §3 ops without a case: {missing}"
    plain = [op for op in SPEC_OPS if op.isidentifier() and not op.startswith("_")
             and op not in ("getitem", "setitem", "T", "astype")]
    assert [op for op in plain if not callable(getattr(tj, op, None))] == []


# -- errors ---------------------------------------------------------------------------------


class Err(NamedTuple):
    """`fn` on `args` raises `exc` whose message contains each of `needles`, and the line of
    this file where `fn` is written (keep each `fn` on one line)."""

    op: str
    fn: Callable
    args: tuple
    exc: type
    needles: tuple
    eager_only: bool = False


def _ia(*shape, dtype=F32):
    return Arr(shape, dtype=dtype)


ERRORS = [
    Err("add", lambda x, y: x + y, (_ia(2, 3), _ia(4)), ValueError, ("add", "[2, 3]", "[4]")),
    Err("mul", lambda x, y: tj.mul(x, y), (_ia(2, 3), _ia(3, 2)), ValueError,
        ("mul", "[2, 3]", "[3, 2]")),
    Err("where", lambda c, x: tj.where(c, x, 0.0), (_ia(3, dtype=B), _ia(4)), ValueError,
        ("select", "[3]", "[4]")),
    Err("matmul", lambda a, b: a @ b, (_ia(2, 3), _ia(4, 5)), ValueError,
        ("matmul", "[2, 3]", "[4, 5]")),
    Err("bmm", lambda a, b: tj.bmm(a, b), (_ia(2, 3, 4), _ia(3, 4, 5)), ValueError,
        ("bmm", "[2, 3, 4]", "[3, 4, 5]")),
    Err("einsum", lambda a, b: tj.einsum("ij,jk->ik", a, b), (_ia(2, 3), _ia(4, 5)),
        ValueError, ("einsum", "[2, 3]", "[4, 5]")),
    Err("cat", lambda a, b: tj.cat([a, b], 1), (_ia(2, 3), _ia(3, 3)), ValueError,
        ("cat", "[2, 3]", "[3, 3]")),
    Err("stack", lambda a, b: tj.stack([a, b]), (_ia(2, 3), _ia(3, 2)), ValueError,
        ("stack", "[2, 3]", "[3, 2]")),
    Err("reshape", lambda x: x.reshape(5, -1), (_ia(2, 3),), ValueError, ("reshape", "[2, 3]")),
    Err("expand", lambda x: x.expand(2, 5), (_ia(3, 1),), ValueError,
        ("expand", "[3, 1]", "[2, 5]")),
    Err("split", lambda x: tj.split(x, [1, 1]), (_ia(3, 2),), ValueError, ("split", "[3, 2]")),
    Err("pad", lambda x: tj.pad(x, (3, 3), mode="reflect"), (_ia(2, 3),), ValueError,
        ("pad", "[2, 3]")),
    # bad dims
    Err("sum", lambda x: x.sum(dim=2), (_ia(2, 3),), IndexError, ("sum", "[2, 3]", "got 2")),
    Err("softmax", lambda x: tj.softmax(x, dim=-3), (_ia(2, 3),), IndexError,
        ("softmax", "[2, 3]", "got -3")),
    Err("transpose", lambda x: x.transpose(0, 5), (_ia(2, 3),), IndexError,
        ("transpose", "[2, 3]")),
    Err("cumsum", lambda x: tj.cumsum(x, 3), (_ia(4),), IndexError, ("cumsum", "[4]")),
    Err("max", lambda x: x.max(dim=(0, 0)), (_ia(2, 3),), IndexError, ("max", "[0, 0]")),
    Err("topk", lambda x: x.topk(5), (_ia(3),), IndexError, ("topk", "k=5", "[3]")),
    # out-of-range indices
    Err("getitem", lambda x: x[5], (_ia(3, 4),), IndexError, ("getitem", "5", "[3, 4]")),
    Err("getitem", lambda x: x[:, -5], (_ia(3, 4),), IndexError, ("getitem", "-5", "[3, 4]")),
    Err("getitem", lambda x: x[[0, 7]], (_ia(3, 4),), IndexError, ("getitem", "7", "[3, 4]")),
    Err("getitem", lambda x: x[0, 0, 0], (_ia(3, 4),), IndexError, ("getitem", "[3, 4]")),
    Err("getitem", lambda x, i: x[i], (_ia(3, 4), Idx((2,), 9)), IndexError,
        ("gather", "index", "size 3")),
    Err("getitem", lambda x, m: x[m], (_ia(3, 4), _ia(2, dtype=B)), IndexError,
        ("getitem", "[2]", "[3, 4]"), eager_only=True),
    Err("setitem", lambda x: x.at[3].set(1.0), (_ia(3, 4),), IndexError, ("3", "[3, 4]")),
    Err("gather", lambda x, i: tj.gather(x, 1, i), (_ia(3, 4), Idx((2,), 4)), IndexError,
        ("gather", "[3, 4]", "[2]")),
    Err("index_select", lambda x: tj.index_select(x, 0, [4]), (_ia(3, 4),), IndexError,
        ("index_select", "4", "[3, 4]")),
    # wrong dtypes
    Err("sub", lambda a, b: a - b, (_ia(2, 3, dtype=B), _ia(2, 3, dtype=B)), TypeError,
        ("sub", "bool", "[2,3]")),
    Err("sub", lambda x: x - True, (_ia(3),), TypeError, ("sub", "bool", "f32[3]")),
    Err("neg", lambda x: -x, (_ia(2, dtype=B),), TypeError, ("neg", "bool", "[2]")),
    Err("mean", lambda x: x.mean(), (_ia(2, 3, dtype=I32),), TypeError,
        ("mean", "int32", "[2, 3]")),
    Err("matmul", lambda a, b: a @ b, (_ia(2, 3, dtype=B), _ia(3, dtype=B)), TypeError,
        ("matmul", "bool", "[2, 3]", "[3]")),
    Err("one_hot", lambda x: tj.one_hot(x, 3), (_ia(4),), TypeError, ("one_hot", "float32")),
    Err("floor", lambda x: tj.floor(x), (_ia(2, dtype=B),), TypeError, ("floor", "bool", "[2]")),
    Err("getitem", lambda x: x[1.5], (_ia(3),), IndexError, ("1.5",)),
    # run-time errors: integer division by zero (the interpreter names the node's line)
    Err("floor_divide", lambda a, b: a // b, (np.arange(3), np.arange(3)), ZeroDivisionError,
        ("floor_divide", "zero")),
    Err("one_hot", lambda i: tj.one_hot(i, 3), (np.array([0, 3]),), IndexError,
        ("3", "out of")),
    Err("gather", lambda x, i: tj.gather(x, 0, i), (np.ones((2, 2)), np.array([[0, 2]])),
        IndexError, ("gather", "2", "size 2")),
]


@pytest.mark.parametrize("err", ERRORS, ids=[f"{e.op}-{i}" for i, e in enumerate(ERRORS)])
def test_error(err: Err, backend: str):
    rng = np.random.default_rng(0)
    args = [s.copy() if isinstance(s, np.ndarray) else make_arg(s, F32, "real", rng)
            for s in err.args]
    run = BACKENDS[backend]
    exc = tj.ConcretizationError if err.eager_only and backend != "eager" else err.exc
    with pytest.raises(exc) as info:
        run(err.fn, args)
    msg = str(info.value)
    where = f"{os.path.basename(__file__)}:{err.fn.__code__.co_firstlineno}"
    assert where in msg, f"message lacks the user's line {where}: {msg}"
    if exc is err.exc:
        for needle in err.needles:
            assert needle in msg, f"message lacks {needle!r}: {msg}"

