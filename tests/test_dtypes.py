"""Dtypes and type promotion (SPEC §1): PyTorch's rules, with weakly typed Python scalars.

The oracle is independent of tracejit: `PROMOTE` is PyTorch's `torch.promote_types` table
(copied from PyTorch, not from tracejit), and `reference_result_type` restates the three rules of
PyTorch's type-promotion documentation (scalars, zero-dim tensors, dimensioned tensors, each
group counting only when its category is higher). Both were checked against torch by hand.
"""

import itertools
import pickle

import numpy as np
import pytest

import tracejit as tj
from tracejit import dtypes as D

NAMES = ["bool", "uint8", "int8", "int16", "int32", "int64", "float16", "float32", "float64"]
SHORT = {"b": "bool", "u8": "uint8", "i8": "int8", "i16": "int16", "i32": "int32",
         "i64": "int64", "f16": "float16", "f32": "float32", "f64": "float64"}

# torch.promote_types(row, column), from PyTorch 2.x.
_TABLE = """
        b   u8   i8  i16  i32  i64  f16  f32  f64
   b    b   u8   i8  i16  i32  i64  f16  f32  f64
  u8   u8   u8  i16  i16  i32  i64  f16  f32  f64
  i8   i8  i16   i8  i16  i32  i64  f16  f32  f64
 i16  i16  i16  i16  i16  i32  i64  f16  f32  f64
 i32  i32  i32  i32  i32  i32  i64  f16  f32  f64
 i64  i64  i64  i64  i64  i64  i64  f16  f32  f64
 f16  f16  f16  f16  f16  f16  f16  f16  f32  f64
 f32  f32  f32  f32  f32  f32  f32  f32  f32  f64
 f64  f64  f64  f64  f64  f64  f64  f64  f64  f64
"""


def _parse_table() -> dict:
    rows = [r.split() for r in _TABLE.strip().splitlines()]
    cols = [SHORT[c] for c in rows[0]]
    return {(SHORT[r[0]], c): SHORT[v] for r in rows[1:] for c, v in zip(cols, r[1:])}


PROMOTE = _parse_table()


def category(name: str) -> int:
    return 0 if name == "bool" else 2 if name.startswith("float") else 1


def widest(names) -> str:
    out = None
    for n in names:
        out = n if out is None else PROMOTE[out, n]
    return out


SCALAR_DEFAULT = {bool: "bool", int: "int64", float: "float32"}


def reference_result_type(operands) -> str:
    """PyTorch's documented rules. `operands`: dtype names of 1-d tensors ("dim"), of 0-d
    tensors ("zero"), or Python scalar types, as ``(kind, name_or_type)`` pairs."""
    dims = [n for k, n in operands if k == "dim"]
    zeros = [n for k, n in operands if k == "zero"]
    scalars = [SCALAR_DEFAULT[t] for k, t in operands if k == "scalar"]
    tensor_cat = max((category(n) for n in dims + zeros), default=-1)
    scalar_cat = max((category(n) for n in scalars), default=-1)
    # 1. a scalar of a higher category than every tensor: hold the scalars of that category
    if scalar_cat > tensor_cat:
        return widest(n for n in scalars if category(n) == scalar_cat)
    # 2. a zero-dim tensor of a higher category than the dimensioned ones
    dim_cat = max((category(n) for n in dims), default=-1)
    zero_cat = max((category(n) for n in zeros), default=-1)
    if zero_cat > dim_cat:
        return widest(n for n in zeros if category(n) == zero_cat)
    # 3. otherwise the dimensioned tensors decide
    return widest(dims)


def make(kind: str, spec):
    if kind == "scalar":
        return {bool: True, int: 3, float: 2.5}[spec]
    dt = D.as_dtype(spec)
    return tj.ones((2,) if kind == "dim" else (), dtype=dt)


# -- the pairwise table -----------------------------------------------------------------------

@pytest.mark.parametrize("a", NAMES)
@pytest.mark.parametrize("b", NAMES)
def test_promote_types_matches_pytorch_table(a, b):
    got = tj.promote_types(D.as_dtype(a), D.as_dtype(b))
    assert got.name == PROMOTE[a, b]
    assert tj.promote_types(D.as_dtype(b), D.as_dtype(a)) == got  # symmetric


def test_table_is_a_lattice():
    # the oracle itself: idempotent and associative (a join), so `widest` is order-free
    for a in NAMES:
        assert PROMOTE[a, a] == a
    for a, b, c in itertools.product(NAMES, repeat=3):
        assert PROMOTE[PROMOTE[a, b], c] == PROMOTE[a, PROMOTE[b, c]]


# -- tensors, 0-d tensors and Python scalars --------------------------------------------------

OPERANDS = ([("dim", n) for n in NAMES] + [("zero", n) for n in NAMES]
            + [("scalar", t) for t in (bool, int, float)])


@pytest.mark.parametrize("x", OPERANDS, ids=lambda o: f"{o[0]}-{getattr(o[1], '__name__', o[1])}")
def test_result_type_pairs(x):
    for y in OPERANDS:
        if x[0] == y[0] == "scalar":
            continue
        want = reference_result_type([x, y])
        got = tj.result_type(make(*x), make(*y))
        assert got.name == want, (x, y)


def test_result_type_triples():
    ops = [("dim", n) for n in ("bool", "uint8", "int32", "float16", "float64")]
    ops += [("zero", n) for n in ("int8", "int64", "float64", "float16")]
    ops += [("scalar", t) for t in (bool, int, float)]
    for trio in itertools.product(ops, repeat=3):
        if all(k == "scalar" for k, _ in trio):
            continue
        want = reference_result_type(list(trio))
        assert tj.result_type(*(make(*o) for o in trio)).name == want, trio


@pytest.mark.parametrize("x, y, want", [
    # PyTorch's documentation examples and the brief's cases
    (("dim", "int32"), ("zero", "int64"), "int32"),
    (("dim", "int32"), ("zero", "float64"), "float64"),
    (("dim", "int32"), ("scalar", float), "float32"),
    (("dim", "int32"), ("scalar", int), "int32"),
    (("dim", "float16"), ("scalar", float), "float16"),
    (("dim", "float32"), ("zero", "float64"), "float32"),
    (("dim", "uint8"), ("dim", "int8"), "int16"),
    (("dim", "bool"), ("scalar", int), "int64"),
    (("dim", "bool"), ("scalar", float), "float32"),
    (("dim", "bool"), ("zero", "uint8"), "uint8"),
    (("zero", "int32"), ("scalar", float), "float32"),
    (("zero", "int32"), ("zero", "int64"), "int64"),
    (("dim", "uint8"), ("scalar", int), "uint8"),
])
def test_documented_examples(x, y, want):
    assert reference_result_type([x, y]) == want  # the oracle agrees with the docs
    assert tj.result_type(make(*x), make(*y)).name == want


def test_int32_tensor_plus_float64_zero_dim_is_float64():
    # A 0-d tensor of a higher category decides, at its own width (PyTorch gives float64 here,
    # not float32: only Python scalars fall back to the default dtype).
    x = tj.tensor([1, 2], dtype=tj.int32)
    s = tj.tensor(0.5, dtype=tj.float64)
    y = x + s
    assert y.dtype == tj.float64
    np.testing.assert_array_equal(y.numpy(), np.array([1, 2], np.float64) + 0.5)


# -- the rules in real operations --------------------------------------------------------------

def _np_value(kind, spec):
    v = make(kind, spec)
    return np.asarray(v, dtype=np.float64) if kind != "scalar" else float(v)


@pytest.mark.parametrize("x, y", [
    (("dim", "int32"), ("zero", "int64")), (("dim", "int32"), ("zero", "float64")),
    (("dim", "int32"), ("scalar", float)), (("dim", "int8"), ("scalar", int)),
    (("dim", "float16"), ("scalar", float)), (("dim", "float32"), ("dim", "float64")),
    (("dim", "uint8"), ("dim", "int8")), (("dim", "bool"), ("scalar", int)),
    (("zero", "float16"), ("zero", "int64")), (("dim", "int64"), ("zero", "float16")),
])
@pytest.mark.parametrize("mode", ["eager", "compiled"])
def test_operations_follow_promotion(x, y, mode):
    want = reference_result_type([x, y])
    a, b = make(*x), make(*y)
    fn = (lambda p, q: p * q + p)
    out = tj.compile(fn)(a, b) if mode == "compiled" else fn(a, b)
    assert out.dtype.name == want
    ref = fn(_np_value(*x), _np_value(*y))
    np.testing.assert_allclose(out.numpy().astype(np.float64), ref, rtol=1e-3)


def test_weak_scalar_keeps_float16_and_int_widths():
    h = tj.ones(3, dtype=tj.float16)
    assert (h * 2.5).dtype == tj.float16
    assert (2.5 * h).dtype == tj.float16
    i8 = tj.tensor([1, 2], dtype=tj.int8)
    assert (i8 + 100).dtype == tj.int8
    np.testing.assert_array_equal((i8 + 100).numpy(), np.array([101, 102], np.int8))
    assert (i8 * 1.5).dtype == tj.float32


def test_scalar_out_of_range_for_the_tensor_dtype_raises():
    i8 = tj.tensor([1, 2], dtype=tj.int8)
    with pytest.raises((OverflowError, RuntimeError), match="int8"):
        i8 + 300


def test_division_and_comparison_result_types():
    i = tj.tensor([1, 2, 3])
    assert (i / 2).dtype == tj.float32  # true division of integers: the default float
    np.testing.assert_allclose((i / 2).numpy(), np.array([0.5, 1.0, 1.5], np.float32))
    assert (i.int() / i.int()).dtype == tj.float32
    assert (i // 2).dtype == tj.int64
    assert (i > 1).dtype == tj.bool
    assert (tj.ones(2, dtype=tj.float64) / 3).dtype == tj.float64


def test_python_only_arithmetic_in_compile_gives_default_dtypes():
    f = tj.compile(lambda a, b: a * b)
    assert f(2.0, 3.0).dtype == tj.float32
    assert f(2, 3).dtype == tj.int64
    assert f(2, 0.5).dtype == tj.float32
    assert float(f(2, 0.5)) == 1.0
    assert f(True, False).dtype == tj.bool


def test_weak_inputs_count_by_category_only():
    # A Python float argument is a weak f64 runtime input: exact with float64 tensors, but it
    # never widens float16/float32 tensors.
    f = tj.compile(lambda x, s: x * s)
    assert f(tj.ones(2, dtype=tj.float16), 0.1).dtype == tj.float16
    x64 = np.array([1.0, 3.0])
    np.testing.assert_array_equal(f(x64, 0.1).numpy(), x64 * 0.1)


# -- DType objects ------------------------------------------------------------------------------

def test_aliases_and_names():
    assert tj.float is tj.float32 and tj.double is tj.float64 and tj.half is tj.float16
    assert tj.long is tj.int64 and tj.int is tj.int32 and tj.short is tj.int16
    assert tj.bool.name == "bool"
    assert repr(tj.float32) == "tracejit.float32"
    for n in NAMES:
        dt = D.as_dtype(n)
        assert dt.np == np.dtype(n)
        assert D.as_dtype(np.dtype(n)) is dt
        assert pickle.loads(pickle.dumps(dt)) is dt


@pytest.mark.parametrize("spec, want", [
    ("float", "float32"), ("double", "float64"), ("long", "int64"), ("int", "int32"),
    ("f32", "float32"), ("i64", "int64"), (float, "float32"), (int, "int64"), (bool, "bool"),
    (np.float64, "float64"), (np.int16, "int16"), ("uint8", "uint8"),
])
def test_as_dtype_spellings(spec, want):
    assert D.as_dtype(spec).name == want


@pytest.mark.parametrize("bad", [np.complex64, "complex", "float128x", object])
def test_unknown_dtypes_raise_type_error(bad):
    with pytest.raises(TypeError, match="dtype"):
        D.as_dtype(bad)


def test_dtype_predicates():
    assert tj.float16.is_floating_point and not tj.int32.is_floating_point
    assert tj.uint8.is_integer and not tj.bool.is_integer
    assert tj.bool.is_bool and tj.float64.itemsize == 8 and tj.int16.itemsize == 2
    assert tj.ones(2).is_floating_point() and not tj.ones(2, dtype=tj.int32).is_floating_point()
