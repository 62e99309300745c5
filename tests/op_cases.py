"""The op conformance table: one `Case` per (public op of SPEC §3, spelling, variant).

Input: nothing. Output: `CASES` (and `INSTANCES`, every case expanded over its input sets and
dtypes), read by `test_ops_conformance.py`. A case names the public op, a tracejit callable, an
independent numpy reference written here (never tracejit's own primitive references), the input
specs (broadcasting pairs, 0-d, zero-size, transposed and strided views), the dtypes it accepts,
a value domain, the result dtype PyTorch gives, and a tolerance.

References run on float64 copies of floating inputs (integer and bool inputs keep their dtype),
so they are the exact answer the tracejit result must approach within the tolerance of the
*result* dtype. A case's `out` rule gives the result dtype from the case dtype; see `out_dtype`.
Inputs are drawn from a numpy RNG seeded by the instance id, so every run sees the same values.

Adding a case: ``case(op, fns, ref, input_sets, dtypes=..., domain=..., out=...)``, where `fns`
is one callable or a dict of spellings (``{"fn": tj.exp, "method": tj.Tensor.exp}``). The "fn"
spelling runs on every input set and dtype; the other spellings on the first input set only.
"""

from __future__ import annotations

import math
import warnings
import zlib
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

import tracejit as tj

F16, F32, F64, I32, I64, B = "float16", "float32", "float64", "int32", "int64", "bool"
FLOATS = (F32, F64)
FLOATS16 = (F16, F32, F64)
INTS = (I32, I64)
NUMERIC = (F32, F64, I32, I64)
ALL = (F32, F64, I32, I64, B)
MIXED = ("mixed",)  # the arguments carry their own dtypes

# -- input specs ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Arr:
    """An array argument. `layout`: "c" (contiguous), "T" (a transposed view), "strided" (every
    other element of the last axis). `dtype`/`domain` override the case's."""

    shape: tuple
    layout: str = "c"
    dtype: str | None = None
    domain: str | None = None

    def label(self) -> str:
        s = "x".join(map(str, self.shape)) if self.shape else "0d"
        return s + {"c": "", "T": "T", "strided": "s"}[self.layout] + (
            f":{self.dtype}" if self.dtype else "")


@dataclass(frozen=True)
class Idx:
    """An int64 index array with entries in ``[-high, high)`` (``[0, high)`` unless `neg`)."""

    shape: tuple
    high: int
    neg: bool = False

    def label(self) -> str:
        return "i" + "x".join(map(str, self.shape))


@dataclass(frozen=True)
class Mask:
    """A bool array (for boolean-mask indexing)."""

    shape: tuple

    def label(self) -> str:
        return "m" + "x".join(map(str, self.shape))


@dataclass(frozen=True)
class Py:
    """A Python scalar argument (weakly typed, and a runtime input under `compile`)."""

    value: Any

    def label(self) -> str:
        return repr(self.value)


def T(*shape) -> Arr:
    return Arr(shape, "T")


def S(*shape) -> Arr:
    return Arr(shape, "strided")


def A(*shape, dtype=None, domain=None) -> Arr:
    return Arr(shape, dtype=dtype, domain=domain)


def _spec(s):
    return Arr(s) if isinstance(s, tuple) else s


# -- value domains --------------------------------------------------------------------------

_SPECIAL = [np.nan, np.inf, -np.inf, 0.0, -1.5, 2.0, -0.0, 3.25]


def _values(rng: np.random.Generator, n: int, dtype: str, domain: str) -> np.ndarray:
    if dtype == B:
        if domain in ("pos", "nonzero"):
            return np.ones(n, bool)
        return rng.random(n) < 0.5
    if dtype in INTS:
        lo, hi = {"pos": (1, 6), "unit": (-1, 2), "small": (-2, 3), "exp": (0, 4),
                  "prob": (0, 2)}.get(domain, (-5, 6))
        if domain == "nonzero":
            v = rng.choice([-1, 1], n) * rng.integers(1, 6, n)
        elif domain == "distinct":
            v = rng.permutation(n) - n // 2
        else:
            v = rng.integers(lo, hi, n)
        return v.astype(dtype)
    if domain == "special":
        return rng.permutation(np.resize(_SPECIAL, n)).astype(dtype)
    v = {
        "real": lambda: rng.uniform(-3, 3, n),
        "pos": lambda: rng.uniform(0.1, 3, n),
        "unit": lambda: rng.uniform(-0.95, 0.95, n),
        "nonzero": lambda: rng.choice([-1, 1], n) * rng.uniform(0.5, 3, n),
        "small": lambda: rng.uniform(-1.5, 1.5, n),
        "exp": lambda: rng.uniform(-2, 2, n),
        "prob": lambda: rng.uniform(0.05, 0.95, n),
        "distinct": lambda: (rng.permutation(n) - n / 2) * 0.37,
        "halves": lambda: rng.integers(-8, 9, n) / 2,
    }[domain]()
    return v.astype(dtype)


def make_arg(spec, dtype: str, domain: str, rng: np.random.Generator):
    if isinstance(spec, Py):
        return spec.value
    if isinstance(spec, Idx):
        lo = -spec.high if spec.neg else 0
        return np.asarray(rng.integers(lo, spec.high, spec.shape), dtype=np.int64)
    if isinstance(spec, Mask):
        return np.asarray(rng.random(spec.shape) < 0.5)
    dt, dom = spec.dtype or dtype, spec.domain or domain
    shape = tuple(spec.shape)
    if spec.layout == "T":
        base = shape[::-1]
    elif spec.layout == "strided" and shape:
        base = shape[:-1] + (2 * shape[-1],)
    else:
        base = shape
    a = _values(rng, math.prod(base), dt, dom).reshape(base)
    if spec.layout == "T":
        a = a.T
    elif spec.layout == "strided" and shape:
        a = a[..., ::2]
    assert a.shape == shape
    return a


# -- result dtypes --------------------------------------------------------------------------

def out_dtype(rule, d: str):
    """The expected result dtype(s) for case dtype `d`.

    "same": `d`; "float": `d` when floating, else float32 (math on ints, true division);
    "accum": `d` when floating, else int64 (sum/prod/cumsum of ints and bools); a dtype name;
    a tuple of rules for several results; or a callable of `d`.
    """
    if isinstance(rule, tuple):
        return tuple(out_dtype(r, d) for r in rule)
    if callable(rule):
        return rule(d)
    if rule == "same":
        return d
    if rule == "float":
        return d if d.startswith("float") else F32
    if rule == "accum":
        return d if d.startswith("float") else I64
    return rule


# -- tolerances (by result dtype) -----------------------------------------------------------

TOL = {F16: (1e-2, 1e-2), F32: (2e-5, 2e-6), F64: (1e-10, 1e-12)}

# -- cases ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One public op in one spelling, with its inputs, dtypes, domain and reference."""

    op: str                  # the public op (SPEC §3 name, or the operator's dunder)
    fn: Callable             # the tracejit spelling
    ref: Callable            # independent numpy reference
    inputs: tuple            # input sets: each a tuple of specs (a shape tuple, Arr, Idx, ...)
    dtypes: tuple = FLOATS   # dtypes of the data arguments
    domain: Any = "real"     # value domain, or a tuple with one per argument
    out: Any = "same"        # result dtype rule (`out_dtype`)
    tol: float = 1.0         # multiplies the default tolerance
    eager_only: bool = False  # data-dependent shapes: compiled code must raise instead
    fields: tuple = ()       # a namedtuple result's field names, e.g. ("values", "indices")
    spelling: str = "fn"
    note: str = ""

    @property
    def name(self) -> str:
        return ".".join(p for p in (self.op, self.spelling, self.note) if p)


@dataclass(frozen=True)
class Instance:
    """A case at one input set and one dtype: what one test runs."""

    case: Case
    specs: tuple
    dtype: str

    @property
    def id(self) -> str:
        specs = ",".join(_spec(s).label() for s in self.specs)
        return f"{self.case.name}[{self.dtype}:{specs}]"

    def args(self) -> list:
        """Fresh inputs (deterministic: seeded by the instance id)."""
        rng = np.random.default_rng(zlib.crc32(self.id.encode()))
        doms = self.case.domain
        doms = doms if isinstance(doms, tuple) else (doms,) * len(self.specs)
        return [make_arg(_spec(s), self.dtype, dm, rng) for s, dm in zip(self.specs, doms)]

    def expected(self):
        args = [a.astype(np.float64) if isinstance(a, np.ndarray) and a.dtype.kind == "f"
                else a for a in self.args()]
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # e.g. std of one element: nan
            return self.case.ref(*args)

    def out_dtypes(self):
        return out_dtype(self.case.out, self.dtype)

    def tolerance(self, dtype: str) -> tuple[float, float]:
        rtol, atol = TOL.get(dtype, (0, 0))
        return rtol * self.case.tol, atol * self.case.tol


CASES: list[Case] = []


def case(op, fns, ref, inputs, **kw) -> None:
    """Adds `op` in each spelling of `fns` (a callable, or a dict label -> callable)."""
    if not isinstance(fns, dict):
        fns = {"fn": fns}
    for label, fn in fns.items():
        CASES.append(Case(op, fn, ref, tuple(inputs), spelling=label, **kw))


# numpy helpers for the references
_erf = np.vectorize(math.erf, otypes=[np.float64])


def _np_sigmoid(x):
    return 1 / (1 + np.exp(-x))


def _softmax(x, ax):
    e = np.exp(x - x.max(axis=ax, keepdims=True))
    return e / e.sum(axis=ax, keepdims=True)


def _bool_sum(x, **kw):
    return np.sum(x.astype(np.int64) if x.dtype.kind in "biu" else x, **kw)


# ===========================================================================================
# Arithmetic and comparison
# ===========================================================================================

BIN = [((3, 4), (3, 4)), ((2, 1, 4), (3, 1)), ((), (3,)), ((4,), ()), ((0, 3), (1, 3)),
       (T(3, 4), S(3, 4)), ((), ())]
UN = [(3, 4), (), (0, 3), T(4, 3), S(2, 5)]
UN_SETS = [(s,) for s in UN]

_ARITH = [
    # op, operator, function, reference, dtypes, domain, out
    ("add", "__add__", tj.add, np.add, ALL + (F16,), "real", "same"),
    ("sub", "__sub__", tj.sub, np.subtract, NUMERIC + (F16,), "real", "same"),
    ("mul", "__mul__", tj.mul, np.multiply, ALL + (F16,), "real", "same"),
    ("div", "__truediv__", tj.div, np.true_divide, NUMERIC + (F16,), ("real", "nonzero"),
     "float"),
    ("floor_divide", "__floordiv__", tj.floor_divide, np.floor_divide, NUMERIC,
     ("real", "nonzero"), "same"),
    ("remainder", "__mod__", tj.remainder, np.remainder, NUMERIC, ("real", "nonzero"), "same"),
    ("pow", "__pow__", tj.pow, np.power, NUMERIC, ("pos", "exp"), "same"),
]
for _op, _dunder, _fn, _ref, _dts, _dom, _out in _ARITH:
    _m = getattr(tj.Tensor, _dunder)
    case(_op, {"fn": _fn, "method": getattr(tj.Tensor, _op)}, _ref, BIN, dtypes=_dts,
         domain=_dom, out=_out)
    case(_dunder, lambda a, b, _m=_m: _m(a, b), _ref, BIN[:4], dtypes=_dts, domain=_dom,
         out=_out)

# reflected operators and Python scalars: weak typing keeps the tensor's dtype
case("__radd__", lambda x: 2 + x, lambda x: 2 + x, UN_SETS[:3], dtypes=NUMERIC + (F16,))
case("__rsub__", lambda x: 1.5 - x, lambda x: 1.5 - x, UN_SETS[:3], dtypes=FLOATS16)
case("__rtruediv__", lambda x: 3 / x, lambda x: 3 / x, UN_SETS[:3], dtypes=NUMERIC,
     domain="nonzero", out="float")
case("__rpow__", lambda x: 2 ** x, lambda x: 2.0 ** x, UN_SETS[:3], dtypes=NUMERIC,
     domain="exp")
case("__rmod__", lambda x: 7 % x, lambda x: np.remainder(7, x), UN_SETS[:2], dtypes=NUMERIC,
     domain="nonzero")
case("add", lambda x, a: tj.add(x, a, alpha=2), lambda x, a: x + 2 * a, BIN[:3],
     dtypes=NUMERIC, note="alpha")
case("sub", lambda x, a: tj.sub(x, a, alpha=0.5), lambda x, a: x - 0.5 * a, BIN[:3],
     dtypes=FLOATS, note="alpha")
case("div", lambda a, b: tj.div(a, b, rounding_mode="floor"), np.floor_divide, BIN[:4],
     dtypes=NUMERIC, domain=("real", "nonzero"), note="floor")
case("div", lambda a, b: tj.div(a, b, rounding_mode="trunc"),
     lambda a, b: np.trunc(a / b).astype(np.result_type(a, b)), BIN[:4], dtypes=NUMERIC,
     domain=("real", "nonzero"), note="trunc")

# Python scalars as runtime arguments (weak), PyTorch's promotion
_PROMO = [
    # args, fn, expected dtype, note
    ((A(3, dtype=I32), Py(2.5)), tj.mul, F32, "i32*2.5"),
    ((A(3, dtype=F16), Py(2.5)), tj.add, F16, "f16+2.5"),
    ((A(3, dtype=I32), Py(7)), tj.add, I32, "i32+7"),
    ((A(3, dtype=B), Py(1)), tj.add, I64, "bool+1"),
    ((A(3, dtype=B), Py(1.5)), tj.add, F32, "bool+1.5"),
    ((A(3, dtype=I32), A(3, dtype=I32, domain="nonzero")), tj.div, F32, "i32/i32"),
    ((A(3, dtype=I64), A(3, dtype=I64, domain="nonzero")), lambda a, b: a / b, F32, "i64/i64"),
    ((A(3, dtype=F16), A(3, dtype=F32)), tj.mul, F32, "f16*f32"),
    ((A(3, dtype=I32), A(3, dtype=I64)), tj.add, I64, "i32+i64"),
    ((A(3, dtype=I64), A(3, dtype=F16)), tj.add, F16, "i64+f16"),
    ((A(3, dtype=B), A(3, dtype=I32)), tj.add, I32, "bool+i32"),
    ((A(3, dtype=I32), A(dtype=I64)), tj.add, I32, "i32+0d_i64"),
    ((A(3, dtype=I32), A(dtype=F64)), tj.add, F64, "i32+0d_f64"),
    ((A(3, dtype=F16), A(dtype=F64)), tj.add, F16, "f16+0d_f64"),
    ((A(dtype=I32), A(dtype=I64)), tj.add, I64, "0d_i32+0d_i64"),
    ((A(3, dtype=I32), Py(2.0)), tj.pow, F32, "i32**2.0"),
    ((Py(2), A(3, dtype=I32, domain="exp")), tj.pow, I32, "2**i32"),
    ((A(3, dtype=F32), Py(True)), tj.mul, F32, "f32*True"),
]
for _args, _fn, _dt, _note in _PROMO:
    _np = {tj.mul: np.multiply, tj.add: np.add, tj.div: np.true_divide, tj.pow: np.power}
    case("promotion", _fn, _np.get(_fn, np.true_divide), [_args], dtypes=MIXED, out=_dt,
         note=_note)

case("neg", {"fn": tj.neg, "method": tj.Tensor.neg}, np.negative, UN_SETS, dtypes=NUMERIC)
case("__neg__", lambda x: -x, np.negative, UN_SETS[:2], dtypes=NUMERIC + (F16,))
case("abs", {"fn": tj.abs, "method": tj.Tensor.abs}, np.abs, UN_SETS, dtypes=NUMERIC + (F16,))
case("__abs__", lambda x: abs(x), np.abs, UN_SETS[:2], dtypes=NUMERIC)
case("stop_gradient", {"fn": tj.stop_gradient, "detach": lambda x: x.detach()},
     lambda x: x.copy(), UN_SETS, dtypes=ALL)
case("sign", {"fn": tj.sign, "method": tj.Tensor.sign},
     lambda x: x.copy() if x.dtype == bool else np.sign(x), UN_SETS, dtypes=ALL)
case("square", {"fn": tj.square, "method": tj.Tensor.square}, lambda x: x.astype(
    np.int64) ** 2 if x.dtype == bool else x * x, UN_SETS[:3], dtypes=ALL,
    out=lambda d: I64 if d == B else d)
case("minimum", {"fn": tj.minimum, "method": tj.Tensor.minimum}, np.minimum, BIN, dtypes=ALL)
case("maximum", {"fn": tj.maximum, "method": tj.Tensor.maximum}, np.maximum, BIN, dtypes=ALL)
case("maximum", tj.maximum, np.maximum, [(A(3, dtype=I32), A(3, dtype=F32))], dtypes=MIXED,
     out=F32, note="promote")

for _name, _dunder, _ref in [("eq", "__eq__", np.equal), ("ne", "__ne__", np.not_equal),
                             ("lt", "__lt__", np.less), ("le", "__le__", np.less_equal),
                             ("gt", "__gt__", np.greater), ("ge", "__ge__", np.greater_equal)]:
    _m = getattr(tj.Tensor, _dunder)
    case(_dunder, lambda a, b, _m=_m: _m(a, b), _ref, BIN, dtypes=ALL, domain="small",
         out=B)
    case(_name, {"fn": getattr(tj, _name), "method": getattr(tj.Tensor, _name)}, _ref, BIN[:2],
         dtypes=NUMERIC, domain="small", out=B)
    case(_dunder, lambda a, _m=_m: _m(a, 0.5), lambda a, _r=_ref: _r(a, 0.5), UN_SETS[:2],
         dtypes=NUMERIC, domain="small", out=B, note="scalar")

for _name, _ref in [("logical_and", np.logical_and), ("logical_or", np.logical_or),
                    ("logical_xor", np.logical_xor)]:
    case(_name, {"fn": getattr(tj, _name), "method": getattr(tj.Tensor, _name)}, _ref, BIN,
         dtypes=ALL, domain="small", out=B)
case("__and__", lambda a, b: a & b, np.logical_and, BIN[:3], dtypes=(B,), out=B)
case("__or__", lambda a, b: a | b, np.logical_or, BIN[:3], dtypes=(B,), out=B)
case("__xor__", lambda a, b: a ^ b, np.logical_xor, BIN[:3], dtypes=(B,), out=B)
case("logical_not", {"fn": tj.logical_not, "method": tj.Tensor.logical_not}, np.logical_not,
     UN_SETS, dtypes=ALL, domain="small", out=B)
case("__invert__", lambda a: ~a, np.logical_not, UN_SETS[:2], dtypes=(B,), out=B)

_WHERE = [(A(3, 4, dtype=B), (3, 4), (3, 4)), (A(3, 1, dtype=B), (1, 4), ()),
          (A(dtype=B), (2, 3), (3,)), (A(0, 3, dtype=B), (0, 3), (3,)),
          (Arr((3, 4), "T", B), (3, 4), S(3, 4))]
case("where", {"fn": tj.where, "method": lambda c, a, b: a.where(c, b)}, np.where, _WHERE,
     dtypes=ALL)
case("where", lambda c, a: tj.where(c, a, 0.5), lambda c, a: np.where(c, a, 0.5),
     [(A(3, 4, dtype=B), (3, 4))], dtypes=NUMERIC, out="float", note="scalar")
case("where", lambda c, a: tj.where(c, a, 2), lambda c, a: np.where(c, a, 2),
     [(A(3, 4, dtype=B), (3, 4))], dtypes=NUMERIC, note="int_scalar")

_CLAMP = [
    ("min_max", lambda x: tj.clamp(x, -1, 2), lambda x: np.clip(x, -1, 2), NUMERIC, "same"),
    ("min", lambda x: tj.clamp(x, min=0.5), lambda x: np.maximum(x, 0.5), NUMERIC, "float"),
    ("max", lambda x: x.clamp(max=1), lambda x: np.minimum(x, 1), NUMERIC, "same"),
    ("clip", lambda x: tj.clip(x, -0.5, 0.5), lambda x: np.clip(x, -0.5, 0.5), FLOATS16,
     "same"),
    ("clip_method", lambda x: x.clip(-2, 1), lambda x: np.clip(x, -2, 1), NUMERIC, "same"),
    ("min_gt_max", lambda x: tj.clamp(x, 2, 1), lambda x: np.minimum(np.maximum(x, 2), 1),
     NUMERIC, "same"),
]
for _note, _fn, _ref, _dts, _out in _CLAMP:
    case("clip" if _note.startswith("clip") else "clamp", _fn, _ref, UN_SETS, dtypes=_dts,
         out=_out, note=_note)
case("clamp", lambda x, lo, hi: tj.clamp(x, lo, hi), lambda x, lo, hi: np.minimum(
    np.maximum(x, lo), hi), [((3, 4), (4,), (3, 1)), ((), (2,), ())], dtypes=NUMERIC,
    note="tensors")
case("clamp", lambda x: tj.clamp(x, -1.0, 1.0), lambda x: np.clip(x, -1, 1), UN_SETS[:1],
     dtypes=FLOATS, domain="special", note="nan")

for _name, _ref in [("isnan", np.isnan), ("isinf", np.isinf), ("isfinite", np.isfinite)]:
    case(_name, {"fn": getattr(tj, _name), "method": getattr(tj.Tensor, _name)}, _ref,
         UN_SETS + [((2, 8),)], dtypes=FLOATS16, domain="special", out=B)
    case(_name, getattr(tj, _name), _ref, UN_SETS[:2], dtypes=INTS + (B,), out=B, note="int")

# ===========================================================================================
# Math
# ===========================================================================================

_MATH = [
    # name, reference, domain, f16?
    ("exp", np.exp, "real", True), ("exp2", lambda x: 2.0 ** x, "real", False),
    ("expm1", np.expm1, "small", False), ("log", np.log, "pos", True),
    ("log2", np.log2, "pos", False), ("log10", np.log10, "pos", False),
    ("log1p", np.log1p, "pos", False), ("sqrt", np.sqrt, "pos", True),
    ("rsqrt", lambda x: 1 / np.sqrt(x), "pos", False), ("sin", np.sin, "real", True),
    ("cos", np.cos, "real", False), ("tan", np.tan, "unit", False),
    ("asin", np.arcsin, "unit", False), ("acos", np.arccos, "unit", False),
    ("atan", np.arctan, "real", False), ("sinh", np.sinh, "small", False),
    ("cosh", np.cosh, "small", False), ("tanh", np.tanh, "real", True),
    ("sigmoid", _np_sigmoid, "real", True), ("erf", _erf, "real", False),
]
for _name, _ref, _dom, _f16 in _MATH:
    _fns = {"fn": getattr(tj, _name)}
    if hasattr(tj.Tensor, _name):
        _fns["method"] = getattr(tj.Tensor, _name)
    case(_name, _fns, _ref, UN_SETS, dtypes=FLOATS16 if _f16 else FLOATS, domain=_dom,
         out="float")
    case(_name, getattr(tj, _name), _ref, UN_SETS[:2], dtypes=(I32, I64), domain=_dom,
         out="float", note="int")
case("atan2", {"fn": tj.atan2, "method": tj.Tensor.atan2}, np.arctan2, BIN, dtypes=FLOATS)
case("atan2", tj.atan2, np.arctan2, BIN[:2], dtypes=INTS, out="float", note="int")
case("relu", {"fn": tj.relu, "method": tj.Tensor.relu}, lambda x: np.maximum(x, 0), UN_SETS,
     dtypes=NUMERIC + (F16,))
case("gelu", tj.gelu, lambda x: 0.5 * x * (1 + _erf(x / np.sqrt(2))), UN_SETS,
     dtypes=FLOATS16, tol=2)
case("gelu", lambda x: tj.gelu(x, approximate="tanh"), lambda x: 0.5 * x * (1 + np.tanh(
    np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3))), UN_SETS[:2], dtypes=FLOATS, note="tanh")
case("softplus", tj.softplus, lambda x: np.log1p(np.exp(x)), UN_SETS, dtypes=FLOATS,
     out="float")
case("softplus", lambda x: tj.softplus(x, beta=2.0, threshold=3.0),
     lambda x: np.where(2 * x > 3, x, np.log1p(np.exp(2 * x)) / 2), UN_SETS[:2],
     dtypes=FLOATS, note="beta_threshold")
for _name, _ref in [("floor", np.floor), ("ceil", np.ceil), ("round", np.round),
                    ("trunc", np.trunc)]:
    case(_name, {"fn": getattr(tj, _name), "method": getattr(tj.Tensor, _name)}, _ref,
         UN_SETS, dtypes=NUMERIC + (F16,), domain="halves")
case("round", lambda x: tj.round(x, decimals=1), lambda x: np.round(x * 10) / 10,
     UN_SETS[:2], dtypes=FLOATS, note="decimals")

# ===========================================================================================
# Reductions
# ===========================================================================================

R3 = [(2, 3, 4), T(4, 3, 2)]
# (note, tracejit kwargs, numpy kwargs): dim int/negative/tuple/None, keepdim, numpy spellings
DIMS = [
    ("all", {}, {}),
    ("d1", {"dim": 1}, {"axis": 1}),
    ("d-1k", {"dim": -1, "keepdim": True}, {"axis": -1, "keepdims": True}),
    ("d02", {"dim": (0, 2)}, {"axis": (0, 2)}),
    ("d(-1,0)k", {"dim": (-1, 0), "keepdim": True}, {"axis": (-1, 0), "keepdims": True}),
    ("axis1kd", {"axis": 1, "keepdims": True}, {"axis": 1, "keepdims": True}),
    ("noneK", {"dim": None, "keepdim": True}, {"axis": None, "keepdims": True}),
]
ZERO = [(2, 0, 3)]


def _reductions(op, npfn, dtypes, out="same", domain="real", zero=True, method=True,
                scalar=True, tol=1.0):
    for note, kw, nkw in DIMS:
        fns = {"fn": lambda x, kw=kw: getattr(tj, op)(x, **kw)}
        if method:
            fns["method"] = lambda x, kw=kw: getattr(x, op)(**kw)
        sets = [(s,) for s in R3]
        if zero and note in ("all", "d02"):
            sets += [(s,) for s in ZERO]
        if scalar and note in ("all", "noneK"):
            sets += [((),)]
        case(op, fns, lambda x, nkw=nkw: npfn(x, **nkw), sets, dtypes=dtypes, out=out,
             domain=domain, note=note, tol=tol)


_reductions("sum", _bool_sum, ALL + (F16,), out="accum")
_reductions("prod", lambda x, **k: np.prod(x.astype(np.int64) if x.dtype.kind in "bi" else x,
                                            **k), ALL, out="accum", domain="small")
_reductions("mean", np.mean, FLOATS16, zero=False)
_reductions("amax", np.amax, ALL, zero=False)
_reductions("amin", np.amin, ALL, zero=False)
_reductions("logsumexp", lambda x, **k: np.log(np.sum(np.exp(x), **k)), FLOATS,
            out="float", zero=False)
_reductions("any", np.any, ALL, out=B, domain="small")
_reductions("all", np.all, ALL, out=B, domain="small")
_reductions("std", lambda x, **k: np.std(x, ddof=1, **k), FLOATS, zero=False, tol=5)
_reductions("var", lambda x, **k: np.var(x, ddof=1, **k), FLOATS, zero=False, tol=5)
case("sum", lambda x: tj.sum(x, dim=1, dtype=tj.float64), lambda x: np.sum(x, axis=1),
     [(R3[0],)], dtypes=ALL, out=F64, note="dtype")
case("sum", lambda x: x.sum(0), lambda x: np.sum(x, axis=0), [((0, 3),), ((3, 0),)],
     dtypes=NUMERIC, out="accum", note="zero_size")
case("prod", lambda x: x.prod(1), lambda x: np.prod(x, axis=1), [((3, 0),)],
     dtypes=NUMERIC, out="accum", note="zero_size")
case("mean", lambda x: x.mean(1), lambda x: np.full(x.shape[0], np.nan), [((3, 0),)],
     dtypes=FLOATS, note="zero_size")
case("var", lambda x: tj.var(x, 1, unbiased=False), lambda x: np.var(x, axis=1), [(R3[0],)],
     note="unbiased")
case("var", lambda x: x.var(dim=0, correction=0), lambda x: np.var(x, axis=0), [(R3[1],)],
     note="correction")
case("std", lambda x: x.std(0, keepdim=True), lambda x: np.std(x, axis=0, ddof=1,
     keepdims=True), [(R3[1],)], note="positional")
case("std", lambda x: x.std(), lambda x: np.full((), np.nan), [((1,),)], note="one_element")

VI = ("values", "indices")
# max/min: full reduction, tuple dims, (values, indices) with a dim, elementwise with a tensor
for _op, _npv, _npi in [("max", np.max, np.argmax), ("min", np.min, np.argmin)]:
    case(_op, {"fn": getattr(tj, _op), "method": getattr(tj.Tensor, _op)}, _npv,
         [(s,) for s in R3] + [((),)], dtypes=ALL, note="all")
    case(_op, lambda x, _op=_op: getattr(tj, _op)(x, dim=(0, 2)),
         lambda x, _f=_npv: _f(x, axis=(0, 2)), [(R3[0],)], dtypes=NUMERIC, note="tuple")
    case(_op, {"fn": lambda x, _op=_op: getattr(tj, _op)(x, 1),
               "method": lambda x, _op=_op: getattr(x, _op)(dim=1)},
         lambda x, _v=_npv, _i=_npi: (_v(x, axis=1), _i(x, axis=1)),
         [(s,) for s in R3] + [((0, 2),)], dtypes=NUMERIC, out=("same", I64), note="dim",
         fields=VI)
    case(_op, lambda x, _op=_op: getattr(x, _op)(-1, keepdim=True),
         lambda x, _v=_npv, _i=_npi: (_v(x, axis=-1, keepdims=True),
                                     _i(x, axis=-1, keepdims=True)),
         [(R3[0],)], dtypes=NUMERIC, domain="small", out=("same", I64), note="dim_keepdim",
         fields=VI)
    case(_op, lambda x, _op=_op: getattr(tj, _op)(x, 0),
         lambda x, _v=_npv, _i=_npi: (_v(x, axis=0), _i(x, axis=0)),
         [((),)], dtypes=FLOATS, out=("same", I64), note="dim_0d")
    case(_op, lambda a, b, _op=_op: getattr(tj, _op)(a, b),
         {"max": np.maximum, "min": np.minimum}[_op], BIN[:3], dtypes=NUMERIC,
         note="elementwise")

for _op, _npf in [("argmax", np.argmax), ("argmin", np.argmin)]:
    case(_op, {"fn": getattr(tj, _op), "method": getattr(tj.Tensor, _op)}, _npf,
         [(s,) for s in R3] + [((),)], dtypes=NUMERIC, out=I64, note="all")
    case(_op, {"fn": lambda x, _op=_op: getattr(tj, _op)(x, dim=1),
               "method": lambda x, _op=_op: getattr(x, _op)(1)},
         lambda x, _f=_npf: _f(x, axis=1), [(s,) for s in R3] + [((0, 2),)],
         dtypes=NUMERIC, domain="small", out=I64, note="dim")
    case(_op, lambda x, _op=_op: getattr(tj, _op)(x, -1, keepdim=True),
         lambda x, _f=_npf: _f(x, axis=-1, keepdims=True), [(R3[0],)], dtypes=NUMERIC,
         out=I64, note="dim_keepdim")
    case(_op, lambda x, _op=_op: getattr(x, _op)(keepdim=True),
         lambda x, _f=_npf: _f(x, axis=None, keepdims=True), [(R3[0],)], dtypes=FLOATS,
         out=I64, note="all_keepdim")
    case(_op, lambda x, _op=_op: getattr(tj, _op)(x, axis=0),
         lambda x, _f=_npf: _f(x, axis=0), [(R3[1],)], dtypes=FLOATS, out=I64, note="axis")


def _np_norm(x, p, axis=None, keepdims=False):
    a = np.abs(x)
    if p in (2, "fro"):
        return np.sqrt(np.sum(a * a, axis=axis, keepdims=keepdims))
    if p == 1:
        return np.sum(a, axis=axis, keepdims=keepdims)
    if p == math.inf:
        return np.max(a, axis=axis, keepdims=keepdims)
    return np.sum(a ** p, axis=axis, keepdims=keepdims) ** (1 / p)


for _p in (2, 1, math.inf, "fro", 3):
    _pn = {math.inf: "inf"}.get(_p, str(_p))
    case("norm", {"fn": lambda x, _p=_p: tj.norm(x, p=_p),
                  "method": lambda x, _p=_p: x.norm(_p)},
         lambda x, _p=_p: _np_norm(x, _p), [(s,) for s in R3] + [((),)], dtypes=FLOATS,
         note=f"p{_pn}")
    case("norm", lambda x, _p=_p: x.norm(p=_p, dim=1, keepdim=True),
         lambda x, _p=_p: _np_norm(x, _p, axis=1, keepdims=True), [(R3[0],)], dtypes=FLOATS,
         note=f"p{_pn}_dim")
case("norm", lambda x: x.norm(p="fro", dim=(0, 2)), lambda x: _np_norm(x, 2, axis=(0, 2)),
     [(R3[1],)], dtypes=FLOATS, note="fro_dims")
case("norm", lambda x: x.norm(), lambda x: _np_norm(x, 2), [((0, 3),)], dtypes=FLOATS,
     note="zero_size")

_SCAN_SETS = [((2, 3, 4),), (T(4, 3, 2),), ((3, 0),)]
for _op, _npf, _dom in [("cumsum", np.cumsum, "real"), ("cumprod", np.cumprod, "small")]:
    _ref = (lambda x, ax=1, _f=_npf: _f(x.astype(np.int64) if x.dtype.kind in "bi" else x,
                                         axis=ax))
    case(_op, {"fn": lambda x, _op=_op: getattr(tj, _op)(x, 1),
               "method": lambda x, _op=_op: getattr(x, _op)(dim=1)}, _ref, _SCAN_SETS,
         dtypes=ALL, domain=_dom, out="accum")
    case(_op, lambda x, _op=_op: getattr(tj, _op)(x, dim=-1),
         lambda x, _r=_ref: _r(x, -1), [((2, 3, 4),)], dtypes=NUMERIC, domain=_dom,
         out="accum", note="neg_dim")
    case(_op, lambda x, _op=_op: getattr(tj, _op)(x, axis=0),
         lambda x, _r=_ref: _r(x, 0), [((3, 4),)], dtypes=FLOATS, domain=_dom, note="axis")
    case(_op, lambda x, _op=_op: getattr(tj, _op)(x, 0, dtype=tj.float64),
         lambda x, _f=_npf: _f(x, axis=0), [((5,),)], dtypes=INTS, domain=_dom, out=F64,
         note="dtype")
    case(_op, lambda x, _op=_op: getattr(x, _op)(0), lambda x: x, [((),)], dtypes=FLOATS,
         domain=_dom, note="0d")

_SOFT = [((3, 4),), (T(4, 3),), ((2, 3, 4),), ((0, 4),)]
case("softmax", {"fn": lambda x: tj.softmax(x, dim=1), "method": lambda x: x.softmax(1)},
     lambda x: _softmax(x, 1), _SOFT, dtypes=FLOATS16, domain="real")
case("softmax", lambda x: tj.softmax(x, -1), lambda x: _softmax(x, -1), _SOFT[:3],
     dtypes=FLOATS, note="neg_dim")
case("softmax", lambda x: tj.softmax(x, axis=0), lambda x: _softmax(x, 0), _SOFT[:2],
     dtypes=FLOATS, note="axis")
case("softmax", lambda x: tj.softmax(x * 100, dim=1), lambda x: _softmax(x * 100, 1),
     _SOFT[:1], dtypes=FLOATS, note="large")
case("softmax", lambda x: tj.softmax(x, 0), lambda x: np.ones(()), [((),)], dtypes=FLOATS,
     note="0d")
case("softmax", lambda x: tj.softmax(x * 0, 0), lambda x: np.ones(()), [((),)],
     dtypes=FLOATS, note="0d_zero")
case("log_softmax", {"fn": lambda x: tj.log_softmax(x, dim=1),
                     "method": lambda x: x.log_softmax(1)},
     lambda x: x - np.log(np.sum(np.exp(x), axis=1, keepdims=True)), _SOFT, dtypes=FLOATS)
case("log_softmax", lambda x: tj.log_softmax(x * 100, -1),
     lambda x: np.log(_softmax(x * 100, -1)), _SOFT[:1], dtypes=FLOATS, note="large", tol=10)


def _np_sort(x, axis=-1, descending=False):
    """Stable sort of distinct values; descending via the negated keys."""
    i = np.argsort(-x if descending else x, axis=axis, kind="stable")
    return np.take_along_axis(x, i, axis), i


def _np_topk(x, k, axis=-1, largest=True):
    v, i = _np_sort(x, axis, descending=largest)
    sl = [slice(None)] * x.ndim
    sl[axis] = slice(0, k)
    return v[tuple(sl)], i[tuple(sl)]


_SORT = [((3, 5),), (T(5, 3),), ((2, 3, 4),), ((3, 0),)]
case("sort", {"fn": tj.sort, "method": tj.Tensor.sort}, _np_sort, _SORT, dtypes=NUMERIC,
     domain="distinct", out=("same", I64), fields=VI)
case("sort", lambda x: tj.sort(x, dim=0, descending=True),
     lambda x: _np_sort(x, 0, True), _SORT[:3], dtypes=NUMERIC, domain="distinct",
     out=("same", I64), note="dim0_desc")
case("sort", lambda x: x.sort(), lambda x: _np_sort(x), [((8,),)], dtypes=INTS,
     domain="small", out=("same", I64), note="stable_ties")
case("argsort", {"fn": tj.argsort, "method": tj.Tensor.argsort},
     lambda x: _np_sort(x)[1], _SORT, dtypes=NUMERIC, domain="distinct", out=I64)
case("argsort", lambda x: tj.argsort(x, dim=1, descending=True),
     lambda x: _np_sort(x, 1, True)[1], _SORT[:3], dtypes=NUMERIC, domain="distinct",
     out=I64, note="desc")
case("topk", {"fn": lambda x: tj.topk(x, 2), "method": lambda x: x.topk(2)},
     lambda x: _np_topk(x, 2), _SORT[:3], dtypes=NUMERIC, domain="distinct",
     out=("same", I64), fields=VI)
case("topk", lambda x: tj.topk(x, 2, dim=0, largest=False),
     lambda x: _np_topk(x, 2, 0, False), _SORT[:3], dtypes=NUMERIC, domain="distinct",
     out=("same", I64), note="smallest_dim0")
case("topk", lambda x: x.topk(0), lambda x: _np_topk(x, 0), _SORT[:1], dtypes=FLOATS,
     domain="distinct", out=("same", I64), note="k0")

# ===========================================================================================
# Shape ops
# ===========================================================================================

SH = [((2, 3, 4),), (T(2, 3, 4),), (S(2, 3, 4),)]
_SHAPE = [
    # op, note, fn (callable or spellings), reference, input sets
    ("reshape", "", {"fn": lambda x: tj.reshape(x, (4, 6)), "method": lambda x: x.reshape(
        4, 6)}, lambda x: x.reshape(4, 6), SH),
    ("reshape", "neg1", lambda x: x.reshape(-1, 2), lambda x: x.reshape(-1, 2), SH[:2]),
    ("reshape", "0d", lambda x: x.reshape(1, 1), lambda x: x.reshape(1, 1), [((),)]),
    ("reshape", "zero", lambda x: x.reshape(-1, 2), lambda x: x.reshape(-1, 2), [((3, 0),)]),
    ("view", "", lambda x: x.view(-1), lambda x: x.reshape(-1), SH[:1] + [((),)]),
    ("view", "shape", lambda x: x.view(3, 8), lambda x: x.reshape(3, 8), SH[:1]),
    ("flatten", "", {"fn": tj.flatten, "method": tj.Tensor.flatten},
     lambda x: x.reshape(-1), SH + [((),), ((2, 0),)]),
    ("flatten", "range", lambda x: x.flatten(1, -1),
     lambda x: x.reshape(x.shape[0], -1), SH[:2]),
    ("unflatten", "", {"fn": lambda x: tj.unflatten(x, 2, (2, 2)),
                       "method": lambda x: x.unflatten(-1, (2, -1))},
     lambda x: x.reshape(2, 3, 2, 2), SH),
    ("squeeze", "", {"fn": tj.squeeze, "method": tj.Tensor.squeeze},
     lambda x: np.squeeze(x), [((1, 3, 1),), ((),), (T(1, 2),)]),
    ("squeeze", "dim", lambda x: x.squeeze(0), lambda x: np.squeeze(x, 0), [((1, 3, 1),)]),
    ("squeeze", "noop", lambda x: x.squeeze(1), lambda x: x, [((1, 3, 1),)]),
    ("squeeze", "dims", lambda x: tj.squeeze(x, (0, -1)), lambda x: np.squeeze(x, (0, 2)),
     [((1, 3, 1),)]),
    ("unsqueeze", "", {"fn": lambda x: tj.unsqueeze(x, 1), "method": lambda x: x.unsqueeze(
        -2)}, lambda x: np.expand_dims(x, 1), [((2, 3),), (T(2, 3),)]),
    ("unsqueeze", "0d", lambda x: x.unsqueeze(0), lambda x: x.reshape(1), [((),)]),
    ("expand", "", {"fn": lambda x: tj.expand(x, 2, 3, 4), "method": lambda x: x.expand(
        (2, -1, 4))}, lambda x: np.broadcast_to(x, (2, 3, 4)), [((3, 1),), (T(3, 1),)]),
    ("expand", "0d", lambda x: x.expand(2, 2), lambda x: np.broadcast_to(x, (2, 2)), [((),)]),
    ("expand_as", "", {"fn": tj.expand_as, "method": tj.Tensor.expand_as},
     lambda x, y: np.broadcast_to(x, y.shape), [((3, 1), (2, 3, 4)), ((), (2, 0))]),
    ("broadcast_to", "", {"fn": lambda x: tj.broadcast_to(x, (2, 3, 4)),
                          "method": lambda x: x.broadcast_to((2, 3, 4))},
     lambda x: np.broadcast_to(x, (2, 3, 4)), [((3, 1),), ((4,),), ((),), (S(1, 4),)]),
    ("repeat", "", {"fn": lambda x: tj.repeat(x, 2, 1, 3), "method": lambda x: x.repeat(
        (2, 1, 3))},
     lambda x: np.tile(x, (2, 1, 3)), [((2, 3),), (T(3, 2),), ((1, 2, 3),), ((),)]),
    ("tile", "", {"fn": lambda x: tj.tile(x, (2,)), "method": lambda x: x.tile((2,))},
     lambda x: np.tile(x, (2,)), [((2, 3),), ((3,),), ((),)]),
    ("tile", "more_dims", lambda x: x.tile((2, 1, 2)), lambda x: np.tile(x, (2, 1, 2)),
     [((2, 3),), (T(2, 3),)]),
    ("transpose", "", {"fn": lambda x: tj.transpose(x, 0, 2),
                       "method": lambda x: x.transpose(-1, 0)},
     lambda x: np.swapaxes(x, 0, 2), SH),
    ("transpose", "numpy", lambda x: tj.transpose(x), lambda x: x.T, SH[:1] + [((),)]),
    ("permute", "", {"fn": lambda x: tj.permute(x, (2, 0, 1)),
                     "method": lambda x: x.permute(2, 0, 1)},
     lambda x: np.transpose(x, (2, 0, 1)), SH),
    ("permute", "neg", lambda x: x.permute(-1, -3, -2), lambda x: np.transpose(x, (2, 0, 1)),
     SH[:1]),
    ("swapaxes", "", {"fn": lambda x: tj.swapaxes(x, 0, 1),
                      "method": lambda x: x.swapaxes(1, 0)},
     lambda x: np.swapaxes(x, 0, 1), SH),
    ("T", "", lambda x: x.T, lambda x: x.T, [((3, 4),), (T(4, 3),), ((5,),), ((),)]),
    ("flip", "", {"fn": lambda x: tj.flip(x, (0, 2)), "method": lambda x: x.flip((0, -1))},
     lambda x: np.flip(x, (0, 2)), SH),
    ("flip", "one", lambda x: tj.flip(x, 1), lambda x: np.flip(x, 1), SH[:2] + [((2, 0),)]),
    ("roll", "", {"fn": lambda x: tj.roll(x, 2, 1), "method": lambda x: x.roll(2, 1)},
     lambda x: np.roll(x, 2, 1), SH + [((2, 0),)]),
    ("roll", "flat", lambda x: tj.roll(x, -5), lambda x: np.roll(x, -5), SH[:2]),
    ("roll", "multi", lambda x: x.roll((1, -7), (0, 2)),
     lambda x: np.roll(x, (1, -7), (0, 2)), SH[:2]),
    ("roll", "dims_list", lambda x: tj.roll(x, shifts=[3], dims=[-1]),
     lambda x: np.roll(x, 3, -1), SH[:1]),
]
for _op, _note, _fns, _ref, _sets in _SHAPE:
    case(_op, _fns, _ref, _sets, dtypes=ALL, note=_note)



def _no_alias(op):
    """Writes into the result of `op` and returns the input, which must be unchanged: these
    ops return new tensors in PyTorch (never a view of, or the same object as, the input)."""
    def f(x):
        y = op(x)
        y[0] = 0
        return x
    return f


for _op, _fn in [("flip", lambda x: tj.flip(x, 0)), ("flip", lambda x: tj.flip(x, ())),
                 ("roll", lambda x: x.roll(3, 0)), ("roll", lambda x: x.roll(1, 0)),
                 ("cat", lambda x: tj.cat([x])), ("cat", lambda x: tj.cat([x[:0], x])),
                 ("pad", lambda x: tj.pad(x, (0, 0))),
                 ("pad", lambda x: tj.pad(x, (0, 0), mode="replicate"))]:
    _k = sum(c.note.startswith("no_alias") for c in CASES if c.op == _op)
    case(_op, _no_alias(_fn), lambda x: x, [((3,),)], dtypes=(F32, I64), note=f"no_alias{_k}")

_JOIN2 = [((2, 3), (1, 3)), (T(3, 2), (2, 2)), ((0, 3), (2, 3))]
for _op in ("cat", "concatenate"):
    case(_op, lambda a, b, _op=_op: getattr(tj, _op)([a, b]),
         lambda a, b: np.concatenate([a, b]), _JOIN2, dtypes=ALL)
case("cat", lambda a, b: tj.cat((a, b), dim=-1), lambda a, b: np.concatenate([a, b], -1),
     [((2, 3), (2, 1)), ((2, 0), S(2, 2))], dtypes=ALL, note="dim")
case("concatenate", lambda a, b: tj.concatenate([a, b], axis=1),
     lambda a, b: np.concatenate([a, b], 1), [((2, 3), (2, 1))], dtypes=NUMERIC, note="axis")
case("cat", lambda a, b, c: tj.cat([a, b, c], 1),
     lambda a, b, c: np.concatenate([a, b, c], 1), [((2, 1, 2), (2, 3, 2), (2, 0, 2))],
     dtypes=NUMERIC, note="three")
case("cat", lambda a, b: tj.cat([a, b]), lambda a, b: np.concatenate([a, b]),
     [(A(2, dtype=I32), A(3, dtype=F32))], dtypes=MIXED, out=F32, note="promote")
case("stack", lambda a, b: tj.stack([a, b]), lambda a, b: np.stack([a, b]),
     [((2, 3), (2, 3)), ((), ()), (T(3, 2), S(3, 2)), ((0, 2), (0, 2))], dtypes=ALL)
case("stack", lambda a, b, c: tj.stack((a, b, c), dim=-1),
     lambda a, b, c: np.stack([a, b, c], -1), [((2, 3), T(2, 3), S(2, 3))], dtypes=NUMERIC,
     note="dim")
case("stack", lambda a, b: tj.stack([a, b], axis=1), lambda a, b: np.stack([a, b], 1),
     [((2, 3), (2, 3))], dtypes=FLOATS, note="axis")
case("hstack", lambda a, b: tj.hstack([a, b]), lambda a, b: np.hstack([a, b]),
     [((2, 3), (2, 1)), ((3,), (2,)), ((), (2,))], dtypes=ALL)
case("vstack", lambda a, b: tj.vstack([a, b]), lambda a, b: np.vstack([a, b]),
     [((2, 3), (1, 3)), ((3,), (3,)), ((2, 3), (3,)), (T(3, 2), (2,))], dtypes=ALL)

_SPLIT = [((10, 3),), (T(10, 3),), ((0, 3),)]
case("chunk", {"fn": lambda x: tj.chunk(x, 3), "method": lambda x: x.chunk(3, 0)},
     lambda x: tuple(np.split(x, [4, 8])) if len(x) else (x, x, x), _SPLIT, dtypes=ALL,
     out=lambda d: (d,) * 3)
case("chunk", lambda x: tj.chunk(x, 2, dim=1), lambda x: tuple(np.split(x, [2], 1)),
     [((2, 3),)], dtypes=FLOATS, out=lambda d: (d,) * 2, note="dim")
case("chunk", lambda x: tj.chunk(x, 4), lambda x: tuple(np.split(x, [2, 4])), [((6,),)],
     dtypes=FLOATS, out=lambda d: (d,) * 3, note="fewer")
case("split", {"fn": lambda x: tj.split(x, 4), "method": lambda x: x.split(4)},
     lambda x: tuple(np.split(x, [4, 8])), _SPLIT[:2], dtypes=ALL, out=lambda d: (d,) * 3)
case("split", lambda x: tj.split(x, [1, 2], dim=-1), lambda x: tuple(np.split(x, [1], -1)),
     [((4, 3),), (T(3, 3),)], dtypes=ALL, out=lambda d: (d,) * 2, note="sections")
case("unbind", {"fn": tj.unbind, "method": tj.Tensor.unbind}, lambda x: tuple(x),
     [((3, 2),), (T(3, 2),)], dtypes=ALL, out=lambda d: (d,) * 3)
case("unbind", lambda x: tj.unbind(x, 1), lambda x: tuple(np.moveaxis(x, 1, 0)),
     [((2, 3),)], dtypes=ALL, out=lambda d: (d,) * 3, note="dim")


def _np_pad_torch(x, pad, mode="constant", value=0):
    """PyTorch's pad list (last dim first) as numpy's np.pad; negative amounts crop."""
    widths = [(0, 0)] * x.ndim
    for i in range(len(pad) // 2):
        widths[x.ndim - 1 - i] = (pad[2 * i], pad[2 * i + 1])
    sl = tuple(slice(max(-lo, 0), x.shape[a] - max(-hi, 0))
               for a, (lo, hi) in enumerate(widths))
    x = x[sl]
    widths = [(max(lo, 0), max(hi, 0)) for lo, hi in widths]
    npmode = {"replicate": "edge", "circular": "wrap"}.get(mode, mode)
    if npmode == "constant":
        return np.pad(x, widths, constant_values=value)
    return np.pad(x, widths, mode=npmode)


_PADS = [
    ("constant", (1, 2), None), ("constant", (1, 2, 0, 1), -1.5), ("constant", (2, 0), 7),
    ("constant", (-1, 2), None), ("reflect", (1, 2, 2, 1), None), ("replicate", (1, 2, 2, 1),
                                                                    None),
    ("circular", (1, 2, 2, 1), None), ("reflect", (3, 3), None), ("circular", (4, 4), None),
]
_nnf = getattr(getattr(tj, "nn", None), "functional", None)
for _mode, _pad, _val in _PADS:
    _kw = {"mode": _mode} if _val is None else {"mode": _mode, "value": _val}
    _fns = {"fn": lambda x, _pad=_pad, _kw=_kw: tj.pad(x, _pad, **_kw)}
    if _nnf is not None and hasattr(_nnf, "pad"):  # tj.nn.functional.pad, when it exists
        _fns["nn"] = lambda x, _pad=_pad, _kw=_kw: _nnf.pad(x, _pad, **_kw)
    _dts = FLOATS if isinstance(_val, float) else NUMERIC
    case("pad", _fns, lambda x, _pad=_pad, _m=_mode, _v=_val: _np_pad_torch(
        x, _pad, _m, 0 if _v is None else _v), [((2, 3, 4),), (T(2, 3, 4),)], dtypes=_dts,
         note=f"{_mode}{_pad}".replace(" ", ""))
case("pad", lambda x: tj.pad(x, (1, 1)), lambda x: np.pad(x, [(0, 0), (1, 1)]), [((2, 0),)],
     dtypes=FLOATS, note="zero_size")

# ===========================================================================================
# Indexing
# ===========================================================================================

X = ((3, 4, 5),)
XT = (T(3, 4, 5),)
_BASIC = [
    # note, index, input sets
    ("int", lambda x: x[1], [X, XT]),
    ("neg_int", lambda x: x[-1, 2], [X, XT]),
    ("slice", lambda x: x[1:, :3], [X, XT]),
    ("step", lambda x: x[::2, 1::2, ::3], [X, XT]),
    ("neg_step", lambda x: x[::-1, 3:0:-2], [X, XT]),
    ("neg_step_all", lambda x: x[..., ::-2], [X]),
    ("clipped", lambda x: x[-100:100, 5:], [X]),
    ("none", lambda x: x[None, :, None], [X]),
    ("ellipsis", lambda x: x[..., 1], [X, XT]),
    ("ellipsis_none", lambda x: x[None, 0, ..., None], [X]),
    ("int_ellipsis_slice", lambda x: x[2, ..., 1:4:2], [X]),
    ("empty", lambda x: x[1:1], [X]),
    ("0d", lambda x: x[...], [((),)]),
    ("0d_none", lambda x: x[None], [((),)]),
    ("1d_int", lambda x: x[3], [((5,),)]),
]
for _note, _fn, _sets in _BASIC:
    case("getitem", _fn, _fn, _sets, dtypes=ALL, note=_note)

_I = np.array([[2, 0], [1, -1]])
_ADV = [
    # note, tracejit fn, numpy reference, input sets
    ("array", lambda x, i: x[i], lambda x, i: x[i], [X + (Idx((4,), 3),), XT + (Idx((2, 2), 3,
                                                                              True),)]),
    ("array_dim1", lambda x, i: x[:, i], lambda x, i: x[:, i], [X + (Idx((3,), 4, True),)]),
    ("adjacent", lambda x, i, j: x[:, i, j], lambda x, i, j: x[:, i, j],
     [X + (Idx((2,), 4), Idx((2,), 5))]),
    ("broadcast", lambda x, i, j: x[i, j], lambda x, i, j: x[i, j],
     [X + (Idx((2, 1), 3), Idx((3,), 4))]),
    ("non_adjacent", lambda x, i, j: x[i, :, j], lambda x, i, j: x[i, :, j],
     [X + (Idx((2,), 3), Idx((2,), 5)), XT + (Idx((2, 2), 3), Idx((2,), 5))]),
    ("non_adjacent_none", lambda x, i, j: x[i, None, 1:, j], lambda x, i, j: x[i, None, 1:, j],
     [X + (Idx((2,), 3), Idx((2,), 5))]),
    ("mixed_slice", lambda x, i: x[1:, i, ::2], lambda x, i: x[1:, i, ::2],
     [X + (Idx((2, 3), 4),)]),
    ("int_adjacent", lambda x, i: x[:, 1, i], lambda x, i: x[:, 1, i],
     [X + (Idx((2,), 5),)]),
    ("int_first", lambda x, i: x[i, 1], lambda x, i: x[i, 1], [X + (Idx((2,), 3),)]),
    # PyTorch, unlike numpy, applies ints first: x[1, :, i] is x[1][:, i] (numpy would move
    # the index dims to the front because the int and the array are not adjacent)
    ("int_sep_array", lambda x, i: x[1, :, i], lambda x, i: x[1][:, i],
     [X + (Idx((2,), 5),)]),
    ("array_sep_int", lambda x, i: x[i, :, 2], lambda x, i: x[:, :, 2][i],
     [X + (Idx((2, 2), 3),)]),
    ("ellipsis", lambda x, i: x[..., i], lambda x, i: x[..., i], [X + (Idx((3,), 5, True),)]),
    ("const_array", lambda x: x[_I], lambda x: x[_I], [X]),
    ("list", lambda x: x[[0, 2], :, [1, 1]], lambda x: x[[0, 2], :, [1, 1]], [X]),
    ("empty_array", lambda x, i: x[i], lambda x, i: x[i], [X + (Idx((0,), 3),)]),
]
for _note, _fn, _ref, _sets in _ADV:
    case("getitem", _fn, _ref, _sets, dtypes=ALL, note=_note)

_MASKS = [
    ("mask", lambda x, m: x[m], [X + (Mask((3, 4, 5)),), X + (Mask((3, 4)),)]),
    ("mask_dim1", lambda x, m: x[:, m], [X + (Mask((4,)),)]),
    ("mask_int", lambda x, m: x[1, m, 2:], [X + (Mask((4,)),)]),
]
for _note, _fn, _sets in _MASKS:
    case("getitem", _fn, _fn, _sets, dtypes=ALL, note=_note, eager_only=True)
case("getitem", lambda x: x[x > 0], lambda x: x[x > 0], [X], dtypes=NUMERIC, note="mask_expr",
     eager_only=True)

_G = [((3, 4), Idx((3, 2), 4)), ((3, 4), Idx((2, 4), 4)), (T(4, 3), Idx((3, 3), 3))]
case("gather", {"fn": lambda x, i: tj.gather(x, 1, i), "method": lambda x, i: x.gather(1, i)},
     lambda x, i: np.take_along_axis(x[:i.shape[0]], i, 1), _G[:1] + _G[2:], dtypes=ALL)
case("gather", lambda x, i: tj.gather(x, 0, i), lambda x, i: np.take_along_axis(x, i, 0),
     [((3, 4), Idx((2, 4), 3)), ((3, 4), Idx((5, 4), 3))], dtypes=ALL, note="dim0")
case("gather", lambda x, i: tj.gather(x, -1, i),
     lambda x, i: np.take_along_axis(x[:i.shape[0], :i.shape[1]], i, -1),
     [((2, 3, 4), Idx((1, 3, 2), 4))], dtypes=NUMERIC, note="smaller_index")
case("take_along_dim", {"fn": lambda x, i: tj.take_along_dim(x, i, dim=1),
                        "method": lambda x, i: x.take_along_dim(i, 1)},
     lambda x, i: np.take_along_axis(x, i, 1),
     [((3, 4), Idx((3, 2), 4)), ((3, 4), Idx((1, 5), 4)), ((1, 4), Idx((3, 2), 4))],
     dtypes=ALL)
case("take_along_dim", lambda x, i: tj.take_along_dim(x, i),
     lambda x, i: np.take(x.reshape(-1), i.reshape(-1)), [((3, 4), Idx((5,), 12))],
     dtypes=ALL, note="flat")
case("index_select", {"fn": lambda x, i: tj.index_select(x, 1, i),
                      "method": lambda x, i: x.index_select(-1, i)},
     lambda x, i: np.take(x, np.atleast_1d(i), 1), [((3, 4), Idx((5,), 4)), (T(4, 3), Idx((0,), 3)),
                                     (S(3, 4), Idx((), 4))], dtypes=ALL)
case("index_select", lambda x: tj.index_select(x, 0, [2, 0, 2]), lambda x: x[[2, 0, 2]],
     [((3, 4),)], dtypes=ALL, note="list")
case("one_hot", lambda i: tj.one_hot(i, 4), lambda i: (i[..., None] == np.arange(4)).astype(
    np.int64), [(Idx((5,), 4),), (Idx((2, 3), 4),), (Idx((), 4),), (Idx((0,), 4),)],
    dtypes=MIXED, out=I64)
case("one_hot", lambda i: tj.one_hot(i), lambda i: (i[..., None] == np.arange(i.max() + 1)
                                                    ).astype(np.int64),
     [(Idx((6,), 5),)], dtypes=MIXED, out=I64, note="infer", eager_only=True)
case("one_hot", lambda i: tj.one_hot(i, 2), lambda i: np.eye(2, dtype=np.int64)[i],
     [(A(2, 3, dtype=I32, domain="prob"),)], dtypes=MIXED, out=I64, note="int32")


def _np_set(x, idx, v):
    y = x.copy()
    y[idx] = v
    return y


def _np_add(x, idx, v):
    y = x.copy()
    np.add.at(y, idx, v)
    return y


_AT = [
    # note, index (static), value shape
    ("int", 1, (4,)),
    ("slice", (slice(1, None), slice(None, None, 2)), (1,)),
    ("neg_step", (slice(None, None, -1), 0), ()),
    ("ellipsis", (Ellipsis, 2), (3,)),
    ("array_dup", (np.array([0, 2, 0, 0]),), (4, 4)),
    ("array_2d", (np.array([0, 2, 0]), np.array([1, 1, 1])), (3,)),
    ("array_slice", (slice(None), np.array([3, 3, 0])), (3, 3)),
]
for _note, _idx, _vs in _AT:
    _s = ((3, 4), _vs)
    case("at.set", lambda x, v, _i=_idx: x.at[_i].set(v),
         lambda x, v, _i=_idx: _np_set(x, _i, v), [_s], dtypes=ALL, note=_note)
    case("at.add", lambda x, v, _i=_idx: x.at[_i].add(v),
         lambda x, v, _i=_idx: _np_add(x, _i, v), [_s], dtypes=NUMERIC, note=_note)
case("at.add", lambda x, i, v: x.at[i].add(v), lambda x, i, v: _np_add(x, i, v),
     [((5,), Idx((8,), 5), (8,)), ((5, 2), Idx((6,), 5, True), (1, 2))], dtypes=NUMERIC,
     note="traced_index")
case("at.set", lambda x, i: x.at[:, i].set(0.5), lambda x, i: _np_set(x, (slice(None), i), 0.5),
     [((3, 4), Idx((2,), 4))], dtypes=FLOATS, note="traced_scalar")
case("at.set", lambda x, m, v: x.at[m].set(v), lambda x, m, v: np.where(m, v, x),
     [((3, 4), Mask((3, 4)), ()), ((3, 4), Mask((3, 4)), (3, 4))], dtypes=NUMERIC,
     note="mask_where")


def _setitem_fn(index):
    def f(x, v):
        x[index] = v
        return x
    return f


def _setitem_traced(x, i, v):
    x[1:, i] = v
    return x


def _iadd(x, y):
    x += y
    return x


def _imul_scalar(x):
    x *= 2
    return x


for _note, _idx, _vs in _AT[:4] + _AT[5:]:
    case("setitem", _setitem_fn(_idx), lambda x, v, _i=_idx: _np_set(x, _i, v),
         [((3, 4), _vs)], dtypes=ALL, note=_note)
case("setitem", _setitem_fn((slice(None), 1)), lambda x, v: _np_set(x, (slice(None), 1), v),
     [((3, 4), A(3, dtype=I32))], dtypes=FLOATS, note="cast_value")
case("setitem", _setitem_traced, lambda x, i, v: _np_set(x, (slice(1, None), i), v),
     [((3, 4), Idx((2,), 4), (2,))], dtypes=NUMERIC, note="traced_index")
case("setitem", lambda x, m: _setitem_fn(m)(x, 0), lambda x, m: np.where(m, 0, x),
     [((3, 4), Mask((3, 4)))], dtypes=NUMERIC, note="mask")
case("__iadd__", _iadd, np.add, [((3, 4), (3, 4)), (T(3, 4), (4,)), ((0, 3), (3,))],
     dtypes=NUMERIC)
case("__imul__", _imul_scalar, lambda x: x * 2, UN_SETS[:2], dtypes=NUMERIC)

# ===========================================================================================
# Linear algebra and casts
# ===========================================================================================

_LA = [
    # op, spellings, reference, input sets
    ("dot", {"fn": tj.dot, "method": tj.Tensor.dot}, np.dot, [((5,), (5,)), ((0,), (0,)),
                                                              (S(4,), (4,))]),
    ("mv", {"fn": tj.mv, "method": tj.Tensor.mv}, np.matmul, [((3, 4), (4,)), (T(3, 4), (4,))]),
    ("mm", {"fn": tj.mm, "method": tj.Tensor.mm}, np.matmul,
     [((3, 4), (4, 2)), (T(3, 4), S(4, 2)), ((3, 0), (0, 2)), ((0, 4), (4, 2))]),
    ("bmm", {"fn": tj.bmm, "method": tj.Tensor.bmm}, np.matmul,
     [((2, 3, 4), (2, 4, 5)), (T(2, 3, 4), (2, 4, 1))]),
    ("matmul", {"fn": tj.matmul, "method": tj.Tensor.matmul}, np.matmul,
     [((4,), (4,)), ((4,), (4, 3)), ((3, 4), (4,)), ((3, 4), (4, 2)), ((2, 1, 3, 4), (5, 4, 2)),
      ((4,), (2, 4, 3)), ((2, 3, 4), (4,)), (T(3, 4), T(4, 2)), ((0, 3, 4), (4, 2))]),
    ("__matmul__", lambda a, b: a @ b, np.matmul, [((3, 4), (4, 2)), ((2, 3, 4), (1, 4, 5))]),
    ("outer", {"fn": tj.outer, "method": tj.Tensor.outer}, np.outer,
     [((3,), (4,)), ((0,), (2,)), (S(3,), (1,))]),
]
for _op, _fns, _ref, _sets in _LA:
    case(_op, _fns, _ref, _sets, dtypes=NUMERIC, tol=2)
case("matmul", tj.matmul, np.matmul, [((3, 4), (4, 2))], dtypes=(F16,), tol=2, note="f16")
case("outer", tj.outer, np.outer, [((3,), (4,))], dtypes=(B,), note="bool")
case("matmul", lambda a, b: a @ b, np.matmul, [(A(3, 4, dtype=I32), A(4, dtype=I64))],
     dtypes=MIXED, out=I64, note="promote")

_EINSUM = [
    ("ij,jk->ik", [((3, 4), (4, 2)), (T(3, 4), (4, 2))]),
    ("ii->i", [((3, 3),), (T(3, 3),)]),
    ("ii", [((3, 3),)]),
    ("ij->", [((3, 4),)]),
    ("ij->ji", [((3, 4),)]),
    ("i,j->ij", [((3,), (4,))]),
    ("i,i", [((5,), (5,))]),
    ("bij,bjk->bik", [((2, 3, 4), (2, 4, 5))]),
    ("...ij,...jk->...ik", [((2, 3, 4), (4, 5)), ((2, 1, 3, 4), (5, 4, 2))]),
    ("i...->...", [((3, 4, 2),)]),
    ("...i,...i", [((2, 3), (2, 3))]),
    ("ij,ij->i", [((3, 4), (3, 4))]),
    ("iij->ij", [((3, 3, 2),)]),
    ("ij,jk,kl->il", [((2, 3), (3, 4), (4, 5))]),
    ("bn,anm,bm->ba", [((2, 3), (4, 3, 5), (2, 5))]),
    ("ij,kj", [((2, 3), (4, 3))]),
]
for _eq, _sets in _EINSUM:
    case("einsum", lambda *xs, _eq=_eq: tj.einsum(_eq, *xs),
         lambda *xs, _eq=_eq: np.einsum(_eq, *xs), _sets, dtypes=NUMERIC, tol=2,
         note=_eq.replace("...", "E").replace("->", "_"))
case("einsum", lambda a, b: tj.einsum("ij,jk", [a, b]), lambda a, b: a @ b,
     [((2, 3), (3, 4))], dtypes=FLOATS, note="list_operands")

_CASTS = [F32, F64, I32, I64, B, F16]
for _to in _CASTS:
    _tjd = getattr(tj, "bool" if _to == B else _to)
    case("astype", {"fn": lambda x, _t=_tjd: x.astype(_t), "to": lambda x, _t=_tjd: x.to(_t),
                    "to_kw": lambda x, _t=_tjd: x.to(dtype=_t)},
         lambda x, _to=_to: x.astype(_to), UN_SETS[:2] + UN_SETS[3:4], dtypes=ALL + (F16,),
         out=_to,
         note=f"to_{_to}")
for _meth, _to in [("float", F32), ("double", F64), ("long", I64), ("int", I32),
                   ("bool", B), ("half", F16)]:
    case("astype", lambda x, _m=_meth: getattr(x, _m)(), lambda x, _to=_to: x.astype(_to),
         UN_SETS[:2], dtypes=ALL, out=_to, note=_meth)

# ===========================================================================================
# Sparse products (SPEC §6; tracejit/sparse): a fixed pattern, float values and dense operands
# ===========================================================================================

# a 4x5 CSR pattern with an empty row (row 2) and an unsorted row; a COO pattern with a duplicate
_CSR = (np.array([0, 2, 3, 3, 6]), np.array([4, 0, 2, 1, 3, 0]), (4, 5))
_COO = (np.array([[3, 0, 1, 3, 0, 2, 0], [1, 4, 2, 1, 0, 2, 4]]), (4, 5))
_EMPTY = (np.array([0, 0, 0, 0, 0]), np.zeros(0, np.int64), (4, 5))


def _csr_dense(crow, col, v, size):
    d = np.zeros(size, np.result_type(v, np.float64))
    rows = np.repeat(np.arange(size[0]), np.diff(crow))
    np.add.at(d, (rows, col), v)
    return d


def _coo_dense(idx, v, size):
    d = np.zeros(size, np.result_type(v, np.float64))
    np.add.at(d, tuple(idx), v)
    return d


for _pat, _note in [(_CSR, "spmm"), (_EMPTY, "spmm_nnz0")]:
    _cr, _co, _sz = _pat
    _mk = (lambda v, _cr=_cr, _co=_co, _sz=_sz: tj.sparse_csr_tensor(_cr, _co, v, _sz))
    case("sparse.mm", {"fn": lambda v, b, _mk=_mk: tj.sparse.mm(_mk(v), b),
                       "matmul": lambda v, b, _mk=_mk: _mk(v) @ b},
         lambda v, b, _cr=_cr, _co=_co, _sz=_sz: _csr_dense(_cr, _co, v, _sz) @ b,
         [((len(_co),), (5, 3)), ((len(_co),), T(5, 2)), ((len(_co),), (5, 0))],
         note=_note)
case("sparse.mm", lambda v, b: tj.sparse.mm(tj.sparse_coo_tensor(_COO[0], v, _COO[1]), b),
     lambda v, b: _coo_dense(_COO[0], v, _COO[1]) @ b, [((7,), (5, 3))], note="spmm_coo")
case("sparse.mm", lambda v, b: tj.sparse_csr_tensor(_CSR[0], _CSR[1], v, _CSR[2]) @ b,
     lambda v, b: _csr_dense(_CSR[0], _CSR[1], v, _CSR[2]) @ b, [((6,), (5,))], note="spmm_vector")
case("sparse.sampled_addmm",
     lambda v, a, b: tj.sparse.sampled_addmm(tj.sparse_csr_tensor(*_CSR[:2], v, _CSR[2]), a, b,
                                             beta=0.5, alpha=2.0).values(),
     lambda v, a, b: 0.5 * v + 2.0 * (a @ b)[np.repeat(np.arange(4), np.diff(_CSR[0])),
                                             _CSR[1]],
     [((6,), (4, 3), (3, 5)), ((6,), T(4, 3), (3, 5))], note="sddmm")
case("sparse.to_dense", lambda v: tj.sparse_csr_tensor(*_CSR[:2], v, _CSR[2]).to_dense(),
     lambda v: _csr_dense(*_CSR[:2], v, _CSR[2]), [((6,),)], note="csr")

# ===========================================================================================

INSTANCES: list[Instance] = []
for _c in CASES:
    _sets = _c.inputs if _c.spelling == "fn" or len(_c.inputs) == 1 else _c.inputs[:1]
    for _s in _sets:
        for _d in _c.dtypes:
            INSTANCES.append(Instance(_c, tuple(_s), _d))

# Every public op of SPEC §3 (operators by their dunder); the tests check each has a case.
SPEC_OPS = """
__add__ __sub__ __mul__ __truediv__ __floordiv__ __mod__ __pow__ __matmul__ __neg__ __abs__
__eq__ __ne__ __lt__ __le__ __gt__ __ge__
add sub mul div remainder pow neg sign square minimum maximum logical_and logical_or
logical_not where clamp clip isnan isinf isfinite
exp exp2 expm1 log log2 log10 log1p sqrt rsqrt sin cos tan asin acos atan atan2 sinh cosh tanh
sigmoid relu gelu softplus erf floor ceil round trunc
sum mean prod max min amax amin argmax argmin std var norm logsumexp any all cumsum cumprod
softmax log_softmax topk sort argsort
reshape view flatten unflatten squeeze unsqueeze expand expand_as broadcast_to repeat tile
transpose permute swapaxes T cat concatenate stack hstack vstack chunk split unbind flip roll pad
getitem gather take_along_dim index_select one_hot at.set at.add setitem __iadd__
dot mv mm bmm matmul outer einsum astype
""".split()

