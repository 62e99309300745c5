"""Bad input to every public entry point: one row per mistake, each raising the documented
exception with a clear message (or numpy's documented result, for NaN/inf), never a crash.

A row ``Bad(name, fn, exc, needles)`` calls ``fn(run)``; `run(f, *args)` calls `f` on the
arguments eagerly, or compiled on ``device="cpu"`` / ``"interpreter"`` (rows with
``compiled=True`` run on all three). The exception must be `exc`, its message must contain
each of `needles`, and, with ``line=True``, name this file at the row's line (keep each `fn`
on one line). Op error messages (shape mismatches, bad dims, out-of-range constant indices,
wrong dtypes) are covered by the ERRORS table of `test_ops_conformance.py`; this file covers
the rest: entry points, argument types, pytrees, run-time values and sizes. See
docs/reliability.md, "Bad input".
"""

from __future__ import annotations

import os
from typing import Callable, NamedTuple

import numpy as np
import pytest

import tracejit as tj

HUGE = 2 ** 40  # elements: 4 TiB of float32, more than 32-bit indexing and any test machine


class Bad(NamedTuple):
    name: str
    fn: Callable          # fn(run) does the bad thing
    exc: type
    needles: tuple = ()
    compiled: bool = False  # also through tj.compile on cpu and the interpreter
    line: bool = True       # the message names this file and fn's line
    xfail: str = ""         # a known gap: strict xfail with this reason


def eager(f, *args):
    return f(*args)


def _compiled(device):
    def run(f, *args):
        return tj.compile(f, device=device)(*args)
    return run


RUNNERS = {"eager": eager, "cpu": _compiled("cpu"), "interpreter": _compiled("interpreter")}


def ar(*shape, dtype=np.float32):
    return tj.from_numpy(np.arange(int(np.prod(shape)), dtype=dtype).reshape(shape))


def ia(*v):
    return tj.tensor(list(v))


ROWS = [
    # -- wrong types where arrays are expected ------------------------------------------------
    Bad("tensor-str", lambda r: tj.tensor("abc"), TypeError, ("array data", "str")),
    Bad("tensor-None", lambda r: tj.tensor(None), TypeError, ("array data", "NoneType")),
    Bad("tensor-dict", lambda r: tj.tensor({"a": 1}), TypeError, ("array data", "dict")),
    Bad("tensor-object", lambda r: tj.tensor(object()), TypeError, ("array data", "object")),
    Bad("tensor-ragged", lambda r: tj.tensor([[1, 2], [3]]), TypeError, ("ragged",), line=False),
    Bad("tensor-mixed", lambda r: tj.tensor([1, "a"]), TypeError, ("must be numbers", "str"),
        line=False),
    Bad("tensor-str-array", lambda r: tj.tensor(np.array(["a", "b"])), TypeError,
        ("not supported",), line=False),
    Bad("from_numpy-list", lambda r: tj.from_numpy([1, 2]), TypeError, ("np.ndarray", "list"),
        line=False),
    Bad("from_numpy-object", lambda r: tj.from_numpy(np.array([object()])), TypeError,
        ("object", "not supported"), line=False),
    Bad("add-str", lambda r: r(lambda x: x + "a", ar(2)), TypeError, ("array data", "str"),
        compiled=True),
    Bad("add-None", lambda r: r(lambda x: x + None, ar(2)), TypeError, ("NoneType",),
        compiled=True),
    Bad("exp-dict", lambda r: tj.exp({"a": 1}), TypeError, ("array data", "dict")),
    Bad("exp-ragged", lambda r: tj.exp([[1.0, 2.0], [3.0]]), TypeError, ("ragged",), line=False),
    Bad("add-object", lambda r: r(lambda x: tj.add(x, object()), ar(2)), TypeError, ("object",),
        compiled=True),
    Bad("compile-arg-str", lambda r: tj.compile(lambda x: x * 2)("abc"), TypeError,
        ("argument x", "str", "static_argnums")),
    Bad("compile-arg-object", lambda r: tj.compile(lambda x: x * 2)(object()), TypeError,
        ("argument x", "not an array")),
    Bad("compile-arg-ragged", lambda r: tj.compile(lambda x: x * 2)([[1.0, 2.0], [3.0]]),
        TypeError, ("argument x", "ragged")),
    Bad("compile-arg-leaf-str", lambda r: tj.compile(lambda d: d["a"] * 2)({"a": "s"}), TypeError,
        ("argument d['a']", "str")),
    Bad("compile-returns-str", lambda r: tj.compile(lambda x: "abc")(ar(2)), TypeError,
        ("output 0", "str")),
    Bad("compile-not-callable", lambda r: tj.compile(42), TypeError, ("expected a function",),
        line=False),
    Bad("compile-bad-device", lambda r: tj.compile(lambda x: x, device="tpu")(ar(2)), ValueError,
        ("tpu",), line=False),
    Bad("grad-arg-str", lambda r: tj.grad(lambda x: x.sum())("abc"), TypeError, ("str",)),
    Bad("cond-pred-str", lambda r: tj.cond("yes", lambda x: x, lambda x: x, ar(2)), TypeError,
        ("str",)),
    Bad("fori-upper-str", lambda r: tj.fori_loop(0, "a", lambda i, c: c, ar(2)), TypeError,
        ("str",)),
    # -- shapes and sizes given as arguments ----------------------------------------------------
    Bad("zeros-negative", lambda r: tj.zeros(2, -3), ValueError, ("zeros", "negative", "[2, -3]")),
    Bad("zeros-str", lambda r: tj.zeros("a"), TypeError, ("zeros", "ints")),
    Bad("zeros-float", lambda r: tj.zeros(2.5), TypeError, ("zeros", "2.5")),
    Bad("zeros-None", lambda r: tj.zeros(None), TypeError, ("zeros", "None")),
    Bad("reshape-huge", lambda r: r(lambda x: x.reshape(3, HUGE), ar(3)), ValueError,
        ("reshape", str(HUGE), "size 3"), compiled=True),
    Bad("reshape-bad-type", lambda r: r(lambda x: x.reshape("a"), ar(3)), TypeError, ("reshape",),
        compiled=True),
    # -- huge shapes: refused before allocating ---------------------------------------------------
    Bad("zeros-huge", lambda r: tj.zeros((HUGE,)), MemoryError, ("f32[1099511627776]",
                                                                  "physical memory")),
    Bad("ones-huge-2d", lambda r: tj.ones(2 ** 20, 2 ** 20), MemoryError, ("physical memory",)),
    Bad("arange-huge", lambda r: tj.arange(HUGE), MemoryError, ("i64[1099511627776]",)),
    Bad("randn-huge", lambda r: tj.randn(HUGE), MemoryError, ("physical memory",)),
    Bad("expand-huge", lambda r: tj.zeros(1).expand(HUGE), MemoryError, ("physical memory",)),
    Bad("zeros-int64-overflow", lambda r: tj.zeros(2 ** 62, 2 ** 62), ValueError,
        ("zeros", "64-bit indexing")),
    Bad("expand-int64-overflow", lambda r: r(lambda x: x.expand(2 ** 62, 2 ** 62), ar(1)),
        ValueError, ("expand", "64-bit indexing"), compiled=True),
    Bad("compiled-zeros-huge", lambda r: r(lambda x: x + tj.zeros(HUGE), ar(1)), MemoryError,
        ("f32[1099511627776]", "physical memory"), compiled=True),
    # -- indices at run time (constant ones: test_ops_conformance.py ERRORS) ---------------------
    Bad("index-array-oob", lambda r: r(lambda x, i: x[i], ar(2, 3), ia(0, 5)), IndexError,
        ("gather", "5", "size 2"), compiled=True),
    Bad("index-array-negative-oob", lambda r: r(lambda x, i: x[i], ar(2, 3), ia(0, -3)),
        IndexError, ("gather", "index -3 is out", "size 2"), compiled=True),
    Bad("gather-oob", lambda r: r(lambda x, i: tj.gather(x, 1, i), ar(2, 3), tj.tensor([[0], [3]])),
        IndexError, ("gather", "3", "dimension 1", "size 3"), compiled=True),
    Bad("take_along_dim-oob", lambda r: r(lambda x, i: tj.take_along_dim(x, i, 1), ar(2, 3),
                                          tj.tensor([[5]])), IndexError, ("5", "size 3"),
        compiled=True, line=False),
    Bad("index_select-oob", lambda r: r(lambda x, i: tj.index_select(x, 0, i), ar(2, 3), ia(5)),
        IndexError, ("5", "size 2"), compiled=True),
    Bad("at-set-oob", lambda r: r(lambda x, i: x.at[i].set(1.0), ar(2, 3), ia(5)), IndexError,
        ("5", "size 2"), compiled=True),
    Bad("at-add-oob", lambda r: r(lambda x, i: x.at[i].add(1.0), ar(2, 3), ia(-7)), IndexError,
        ("size 2",), compiled=True),
    Bad("setitem-oob", lambda r: ar(2, 3).__setitem__(ia(4), 0.0), IndexError, ("4", "size 2"),
        line=False),
    Bad("one_hot-oob", lambda r: r(lambda i: tj.one_hot(i, 3), ia(0, 5)), IndexError, ("5",),
        compiled=True),
    Bad("getitem-float-tensor", lambda r: r(lambda x, i: x[i], ar(3), tj.tensor([0.5])),
        IndexError, ("integer", "float32"), compiled=True),
    # -- integer division by zero (compiled: an extern running the numpy reference) --------------
    Bad("floordiv-zero", lambda r: r(lambda a, b: a // b, ia(1, 2), ia(0, 1)), ZeroDivisionError,
        ("floor_divide", "by zero"), compiled=True),
    Bad("remainder-zero", lambda r: r(lambda a, b: a % b, ia(1, 2), ia(1, 0)), ZeroDivisionError,
        ("remainder", "by zero"), compiled=True),
    Bad("floordiv-const-zero", lambda r: r(lambda a: a // 0, ia(1, 2)), ZeroDivisionError,
        ("by zero",), compiled=True),
    Bad("remainder-int32-zero", lambda r: r(lambda a, b: tj.remainder(a, b),
                                            tj.tensor([3], dtype=tj.int32),
                                            tj.tensor([0], dtype=tj.int32)),
        ZeroDivisionError, ("by zero",), compiled=True, line=False),
    # -- reductions of empty arrays ---------------------------------------------------------------
    Bad("max-empty", lambda r: r(lambda x: x.max(), tj.ones(0)), IndexError,
        ("max", "zero-size", "[0]"), compiled=True),
    Bad("min-empty", lambda r: r(lambda x: tj.min(x), tj.ones(0)), IndexError, ("min", "zero-size"),
        compiled=True),
    Bad("amax-empty-dim", lambda r: r(lambda x: x.amax(dim=0), tj.ones(0, 3)), IndexError,
        ("zero-size",), compiled=True),
    Bad("max-dim-empty", lambda r: r(lambda x: x.max(dim=0), tj.ones(0, 3)), IndexError,
        ("zero-size", "[0, 3]"), compiled=True),
    Bad("argmax-empty", lambda r: r(lambda x: x.argmax(), tj.ones(0)), IndexError,
        ("argmax", "non-empty"), compiled=True),
    Bad("grad-max-empty", lambda r: tj.grad(lambda x: x.max())(tj.ones(0)), IndexError,
        ("max", "zero-size")),
    # -- compile: static arguments, arity ------------------------------------------------------
    Bad("static-list", lambda r: tj.compile(lambda x, n: x * 2, static_argnums=(1,))(ar(2), [1, 2]),
        TypeError, ("static argument 'n'", "hashable", "list")),
    Bad("static-dict", lambda r: tj.compile(lambda x, n: x * 2, static_argnums=1)(ar(2), {"a": 1}),
        TypeError, ("hashable", "dict")),
    Bad("static-name-list",
        lambda r: tj.compile(lambda x, n=0: x, static_argnames="n")(ar(1), n=[]),
        TypeError, ("static argument 'n'", "hashable")),
    Bad("static_argnums-range", lambda r: tj.compile(lambda x: x, static_argnums=(3,)), ValueError,
        ("static_argnums 3", "1 positional"), line=False),
    Bad("static_argnums-str", lambda r: tj.compile(lambda x: x, static_argnums="a"), TypeError,
        ("argnums must be ints",), line=False),
    Bad("static_argnames-unknown", lambda r: tj.compile(lambda x: x, static_argnames=("zz",)),
        ValueError, ("'zz'", "not a parameter"), line=False),
    Bad("compile-too-many-args", lambda r: tj.compile(lambda x: x * 2)(ar(2), ar(2)), TypeError,
        ("too many positional", "2 positional")),
    Bad("compile-missing-arg", lambda r: tj.compile(lambda x, y: x * 2)(ar(2)), TypeError,
        ("missing", "'y'")),
    Bad("compile-unknown-kwarg", lambda r: tj.compile(lambda x: x * 2)(ar(2), z=1), TypeError,
        ("'z'",)),
    Bad("compile-too-many-after-hit", lambda r: (tj.compile(lambda x: x)(ar(2)), tj.compile(
        lambda x: x)(ar(2), 1)), TypeError, ("too many positional",)),
    # -- grad / vmap: argnums, outputs, pytrees ---------------------------------------------------
    Bad("grad-argnums-range", lambda r: tj.grad(lambda x: x.sum(), argnums=2)(ar(3)), ValueError,
        ("argnums 2", "out of range")),
    Bad("grad-argnums-negative", lambda r: tj.grad(lambda x: x.sum(), argnums=-2)(ar(3)),
        ValueError, ("argnums -2",)),
    Bad("grad-argnums-str", lambda r: tj.grad(lambda x: x.sum(), argnums="a")(ar(3)), TypeError,
        ("argnums must be an int",)),
    Bad("grad-argnums-float", lambda r: tj.grad(lambda x: x.sum(), argnums=1.0)(ar(3)), TypeError,
        ("argnums", "1.0")),
    Bad("grad-nonscalar", lambda r: tj.grad(lambda x: x)(ar(3)), TypeError,
        ("one float scalar", "f32[3]")),
    Bad("grad-int-output", lambda r: tj.grad(lambda x: x.sum())(ia(1, 2)), TypeError,
        ("float scalar", "i64[]")),
    Bad("grad-returns-str", lambda r: tj.grad(lambda x: "abc")(ar(3)), TypeError, ("str",)),
    Bad("grad-aux-missing", lambda r: tj.grad(lambda x: x.sum(), has_aux=True)(ar(3)), TypeError,
        ("has_aux=True", "pair")),
    Bad("grad-aux-triple", lambda r: tj.grad(lambda x: (x.sum(), 1, 2), has_aux=True)(ar(3)),
        TypeError, ("pair", "(*, *, *)")),
    Bad("compiled-grad-aux", lambda r: r(tj.grad(lambda x: x.sum(), has_aux=True), ar(3)),
        TypeError, ("has_aux=True",), compiled=True, line=False),  # the call is in `run`
    Bad("vmap-in_dims-short", lambda r: tj.vmap(lambda x, y: x + y, in_dims=(0,))(ar(3), ar(3)),
        ValueError, ("in_dims (0,)", "2 positional")),
    Bad("vmap-in_dims-tree", lambda r: tj.vmap(lambda d: d["a"], in_dims=({"b": 0},))(
        {"a": ar(3)}), ValueError, ("does not match", "{'a': *}")),
    Bad("vmap-in_dims-range", lambda r: tj.vmap(lambda x: x, in_dims=2)(ar(3)), ValueError,
        ("in_dims 2", "out of range")),
    Bad("vmap-in_dims-str", lambda r: tj.vmap(lambda x: x, in_dims="a")(ar(3)), TypeError,
        ("in_dims must be",)),
    Bad("vmap-sizes", lambda r: tj.vmap(lambda x, y: x + y)(ar(3), ar(4)), ValueError,
        ("batch size", "size 3", "size 4")),
    Bad("vmap-scalar", lambda r: tj.vmap(lambda x: x)(tj.tensor(1.0)), ValueError, ("0-d",)),
    Bad("vmap-no-batched", lambda r: tj.vmap(lambda x: x, in_dims=None)(ar(3)), ValueError,
        ("no argument is batched",)),
    Bad("vmap-out_dims", lambda r: tj.vmap(lambda x: x, out_dims=3)(ar(3)), ValueError,
        ("out_dims 3",)),
    Bad("jacobian-str", lambda r: tj.jacobian(lambda x: x * 2, "abc"), TypeError, ("str",),
        line=False),
    # -- control flow: mismatched structures ------------------------------------------------------
    Bad("cond-structure", lambda r: r(lambda p, x: tj.cond(p, lambda x: x, lambda x: (x, x), x),
                                      tj.tensor(True), ar(3)), TypeError,
        ("cond", "different structures"), compiled=True),
    Bad("cond-shape", lambda r: r(lambda p, x: tj.cond(p, lambda x: x, lambda x: x.sum(), x),
                                  tj.tensor(True), ar(3)), TypeError, ("cond", "[3]", "[]"),
        compiled=True),
    Bad("cond-pred-shape", lambda r: r(lambda x: tj.cond(x > 0, lambda x: x, lambda x: x, x),
                                       ar(3)), TypeError, ("predicate", "scalar", "[3]"),
        compiled=True),
    Bad("scan-not-pair", lambda r: r(lambda c, xs: tj.scan(lambda c, x: c + x, c, xs), ar(2),
                                     ar(3, 2)), TypeError, ("scan", "pair"), compiled=True),
    Bad("scan-carry-shape", lambda r: r(lambda c, xs: tj.scan(lambda c, x: (c.sum(), c), c, xs),
                                        ar(2), ar(3, 2)), TypeError, ("carry", "f32[2]", "f32[]"),
        compiled=True),
    Bad("scan-xs-scalar", lambda r: r(lambda c, xs: tj.scan(lambda c, x: (c, c), c, xs), ar(2),
                                      tj.tensor(1.0)), ValueError, ("leading axis",),
        compiled=True),
    Bad("fori-carry-structure", lambda r: r(lambda c: tj.fori_loop(0, 3, lambda i, c: (c, c), c),
                                            ar(2)), TypeError, ("carry",), compiled=True),
]


def _cases():
    for row in ROWS:
        for name in (RUNNERS if row.compiled else ["eager"]):
            marks = [pytest.mark.xfail(strict=True, reason=row.xfail)] if row.xfail else []
            if row.xfail and row.name.startswith(("cond-", "fori-")) and name != "eager":
                marks = []  # the gap is eager-only: compiled calls do check
            yield pytest.param(row, name, id=f"{row.name}-{name}", marks=marks)


@pytest.mark.parametrize("row,runner", list(_cases()))
def test_bad_input(row: Bad, runner: str):
    with pytest.raises(row.exc) as info:
        row.fn(RUNNERS[runner])
    msg = str(info.value)
    for needle in row.needles:
        assert needle in msg, f"message lacks {needle!r}: {msg}"
    if row.line:
        first = row.fn.__code__.co_firstlineno
        lines = [f"{os.path.basename(__file__)}:{n}" for n in (first, first + 1, first + 2)]
        assert any(w in msg for w in lines), f"message lacks the user's line {lines[0]}: {msg}"


def test_row_count():
    assert len(ROWS) >= 90
    assert len({r.name for r in ROWS}) == len(ROWS), "row names must be unique"


# -- NaN and inf: numpy's documented results, no exception ------------------------------------

NAN_CASES = [
    ("add", lambda x: x + 1.0, lambda a: a + 1.0),
    ("exp", lambda x: tj.exp(x), np.exp),
    ("log", lambda x: tj.log(x), np.log),
    ("sqrt", lambda x: tj.sqrt(x), np.sqrt),
    ("div", lambda x: x / x, lambda a: a / a),
    ("sum", lambda x: x.sum(), np.sum),
    ("amax", lambda x: x.amax(), np.max),          # NaN propagates, like torch.max / np.max
    ("maximum", lambda x: tj.maximum(x, 0.0), lambda a: np.maximum(a, np.float32(0))),
    ("clamp", lambda x: tj.clamp(x, -1.0, 1.0), lambda a: np.clip(a, -1, 1).astype(np.float32)),
    ("isnan", lambda x: tj.isnan(x), np.isnan),
    ("isinf", lambda x: tj.isinf(x), np.isinf),
    ("isfinite", lambda x: tj.isfinite(x), np.isfinite),
    ("eq", lambda x: x == x, lambda a: a == a),
    ("tanh", lambda x: tj.tanh(x), np.tanh),
    ("softmax-inf", lambda x: tj.softmax(x[:2], 0), None),
]
SPECIAL = np.array([np.nan, np.inf, -np.inf, 0.0, -1.0, 2.0], dtype=np.float32)


@pytest.mark.parametrize("runner", list(RUNNERS))
@pytest.mark.parametrize("name,fn,ref", NAN_CASES, ids=[c[0] for c in NAN_CASES])
def test_nan_inf(name, fn, ref, runner):
    with np.errstate(all="ignore"):
        got = RUNNERS[runner](fn, tj.from_numpy(SPECIAL.copy())).numpy()
        if ref is None:  # softmax([nan, inf]) is all NaN, as in PyTorch
            np.testing.assert_array_equal(np.isnan(got), [True, True])
            return
        want = np.asarray(ref(SPECIAL.copy()))
    np.testing.assert_allclose(got, want, rtol=1e-6, equal_nan=True)


def test_nan_inf_grad_no_exception():
    g = tj.grad(lambda x: tj.sqrt(x).sum())(tj.from_numpy(SPECIAL.copy())).numpy()
    assert np.isnan(g[0]) and g[1] == 0 and np.isinf(g[3])


def test_int_min_floordiv_minus_one_wraps():
    """INT64_MIN // -1 overflows: every backend wraps to INT64_MIN (numpy's result), no trap."""
    a, b = tj.tensor([-2 ** 63]), tj.tensor([-1])
    for run in RUNNERS.values():
        with np.errstate(all="ignore"):
            assert run(lambda a, b: a // b, a, b).tolist() == [-2 ** 63]
            assert run(lambda a, b: a % b, a, b).tolist() == [0]


# -- zero-size arrays ------------------------------------------------------------------------

@pytest.mark.parametrize("runner", list(RUNNERS))
def test_zero_size(runner):
    x = tj.ones(0, 3)
    out = RUNNERS[runner](lambda x: (x.sum(), x.prod(), tj.exp(x), x.T @ x, x.softmax(0),
                                     x.sum(0), x.amax(1), x.cumsum(0), x.reshape(3, 0),
                                     tj.cat([x, x]), x[1:]), x)
    s, p, e, g, sm, s0, m1, cs, rs, c, sl = out
    assert s.item() == 0 and p.item() == 1
    assert e.shape == (0, 3) and sm.shape == (0, 3) and cs.shape == (0, 3)
    np.testing.assert_array_equal(g.numpy(), np.zeros((3, 3)))
    np.testing.assert_array_equal(s0.numpy(), np.zeros(3))
    assert m1.shape == (0,) and rs.shape == (3, 0) and c.shape == (0, 3) and sl.shape == (0, 3)


def test_zero_size_mean_is_nan_and_grad_is_empty():
    assert np.isnan(tj.ones(0).mean().item())  # numpy and PyTorch: nan
    assert tj.grad(lambda x: x.sum())(tj.ones(0)).shape == (0,)
    assert tj.vmap(lambda x: x * 2)(tj.ones(0, 3)).shape == (0, 3)


# -- out-of-bounds gathers: normal and debug mode (docs/reliability.md, "Bad input") ----------

@pytest.mark.parametrize("debug", [False, True])
@pytest.mark.parametrize("device", ["cpu", "interpreter"])
def test_gather_out_of_bounds_raises_with_line(device, debug):
    old = tj.config.debug
    tj.config.debug = debug
    try:
        fn = lambda x, i: x[i] * 2  # noqa: E731
        f = tj.compile(fn, device=device)
        np.testing.assert_array_equal(f(ar(3), ia(-1, 0)).numpy(), [4.0, 0.0])  # negatives wrap
        with pytest.raises(IndexError) as info:
            f(ar(3), ia(0, 3))
        line = f"{os.path.basename(__file__)}:{fn.__code__.co_firstlineno}"
        assert "index 3 is out of bounds" in str(info.value) and line in str(info.value)
    finally:
        tj.config.debug = old
