"""Accuracy and vectorization of the LLVM math library (kernels/mathlib.ll).

Every library function is wrapped in a loop `void run(T* x, [T* y,] T* out, i64 n)`, linked
with the library, optimized at O3 for the host CPU with "prefer-vector-width"="512", and run
through ctypes over dense sweeps: random bit patterns (every magnitude, both signs), a strided
walk through all 2^32 float32 bit patterns, linear sweeps of each function's main domain, and
the special values. Errors are measured in ulps of the result type against float64 numpy
(float32 results) or long double numpy / mpmath (float64 results).

`python -m pytest tests/test_mathlib.py -m slow` adds the exhaustive float32 sweep.
"""

from __future__ import annotations

import ctypes
import math
import os
import re

import llvmlite.binding as llvm
import numpy as np
import pytest

from tracejit.codegen import mathlib

BOUND = {"f32": 4.0, "f64": 8.0}
NP = {"f32": np.float32, "f64": np.float64}
CT = {"f32": "float", "f64": "double"}
UINT = {"f32": np.uint32, "f64": np.uint64}
WIDE = {"f32": np.float64, "f64": np.longdouble}
FUNCS = sorted(mathlib.MATH_FUNCTIONS)
CASES = [(f, d) for f in FUNCS for d in ("f32", "f64")]


# --- references ------------------------------------------------------------------------------
def _sigmoid(x):
    with np.errstate(over="ignore"):
        e = np.exp(-np.abs(x))
        return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def _erf_f64(x):
    return np.array([math.erf(v) for v in x.astype(np.float64)], dtype=np.float64)


def _erf_mp(x):
    import mpmath

    with mpmath.workdps(30):
        return np.array([np.longdouble(str(mpmath.erf(mpmath.mpf(float(v)))))
                         if np.isfinite(v) and v != 0 else math.erf(v) for v in x],
                        dtype=np.longdouble)


_NUMPY = {"exp": np.exp, "exp2": np.exp2, "expm1": np.expm1, "log": np.log, "log2": np.log2,
          "log10": np.log10, "log1p": np.log1p, "sin": np.sin, "cos": np.cos, "tan": np.tan,
          "tanh": np.tanh, "sigmoid": _sigmoid, "asin": np.arcsin, "acos": np.arccos,
          "atan": np.arctan, "atan2": np.arctan2, "sinh": np.sinh, "cosh": np.cosh,
          "pow": np.power}


def reference(fn: str, dt: str, *args):
    """fn(*args) in a wider type: float64 for float32 inputs, long double for float64."""
    with np.errstate(all="ignore"):  # signalling NaN bit patterns warn when widened
        wide = [np.asarray(a).astype(WIDE[dt]) for a in args]
        if fn == "erf":
            return _erf_f64(wide[0]) if dt == "f32" else _erf_mp(args[0])
        return _NUMPY[fn](*wide)


def ulp_error(out, ref, dt: str):
    """|out - ref| in ulps of the result type at ref; inf where NaN-ness, infinities or the
    sign of an exact zero disagree."""
    fi = np.finfo(NP[dt])
    wide = WIDE[dt]
    top = np.ldexp(wide(1), fi.maxexp)  # inf counts as the (unrepresentable) 2^maxexp
    ref = np.asarray(ref, dtype=wide)
    o = out.astype(wide)
    o = np.where(np.isinf(o), np.copysign(top, o), o)
    r = np.clip(np.where(np.isnan(ref), 0, ref), -top, top)
    _, e = np.frexp(np.where(r == 0, wide(fi.smallest_normal), r))
    ulp = np.ldexp(wide(1), np.maximum(e - (fi.nmant + 1), fi.minexp - fi.nmant))
    with np.errstate(invalid="ignore"):
        err = np.abs(o - r) / ulp
    err = np.where(np.isnan(ref) != np.isnan(out), np.inf, err)
    err = np.where(np.isnan(ref) & np.isnan(out), 0, err)
    zero_sign = (ref == 0) & (out == 0) & (np.signbit(ref) != np.signbit(out))
    return np.where(zero_sign, np.inf, err).astype(np.float64)


# --- compiling the loops -----------------------------------------------------------------------
def _wrapper(fn: str, dt: str) -> str:
    t, arity, name = CT[dt], mathlib.MATH_FUNCTIONS[fn], mathlib.function_name(fn, dt)
    ins = ["x", "y"][:arity]
    params = ", ".join(f"ptr noalias nocapture readonly %{a}" for a in ins)
    loads = "".join(f"  %p{a} = getelementptr inbounds {t}, ptr %{a}, i64 %i\n"
                    f"  %v{a} = load {t}, ptr %p{a}, align 4\n" for a in ins)
    call_args = ", ".join(f"{t} %v{a}" for a in ins)
    return f"""
declare {t} @{name}({", ".join([t] * arity)})
define void @run_{fn}_{dt}({params}, ptr noalias nocapture %out, i64 %n) #1 {{
entry:
  %empty = icmp sle i64 %n, 0
  br i1 %empty, label %exit, label %loop
loop:
  %i = phi i64 [0, %entry], [%next, %loop]
{loads}  %r = call {t} @{name}({call_args})
  %po = getelementptr inbounds {t}, ptr %out, i64 %i
  store {t} %r, ptr %po, align 4
  %next = add nuw nsw i64 %i, 1
  %done = icmp eq i64 %next, %n
  br i1 %done, label %exit, label %loop
exit:
  ret void
}}
"""


def _target_machine():
    """A new host target machine (an MCJIT engine takes ownership of the one it is given)."""
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    target = llvm.Target.from_default_triple()
    return target.create_target_machine(cpu=llvm.get_host_cpu_name(),
                                        features=llvm.get_host_cpu_features().flatten(),
                                        opt=3, jit=True)


def compile_loops(cases):
    """(engine, optimized module) with a `run_<fn>_<dt>` loop per case."""
    tm = _target_machine()
    attrs = (f'"prefer-vector-width"="512" "target-cpu"="{llvm.get_host_cpu_name()}" '
             f'"target-features"="{llvm.get_host_cpu_features().flatten()}"')
    text = "".join(_wrapper(f, d) for f, d in cases) + f"\nattributes #1 = {{ {attrs} }}\n"
    mod = llvm.parse_assembly(text)
    mod.triple = tm.triple
    mod.data_layout = str(tm.target_data)
    mathlib.link_into(mod)
    mod.verify()
    pto = llvm.PipelineTuningOptions(speed_level=3)
    pto.loop_vectorization = True
    pto.slp_vectorization = True
    pb = llvm.create_pass_builder(tm, pto)
    pb.getModulePassManager().run(mod, pb)
    engine = llvm.create_mcjit_compiler(mod, tm)
    engine.finalize_object()
    return engine, mod


@pytest.fixture(scope="module")
def lib():
    engine, mod = compile_loops(CASES)
    fns, irs = {}, {}
    for fn, dt in CASES:
        arity = mathlib.MATH_FUNCTIONS[fn]
        proto = ctypes.CFUNCTYPE(None, *[ctypes.c_void_p] * (arity + 1), ctypes.c_int64)
        fns[fn, dt] = proto(engine.get_function_address(f"run_{fn}_{dt}"))
        irs[fn, dt] = str(mod.get_function(f"run_{fn}_{dt}"))
    yield fns, irs
    del engine


def evaluate(lib, fn: str, dt: str, *args):
    args = [np.ascontiguousarray(a, dtype=NP[dt]) for a in args]
    out = np.empty_like(args[0])
    lib[0][fn, dt](*[a.ctypes.data for a in args], out.ctypes.data, out.size)
    return out


# --- inputs ----------------------------------------------------------------------------------
def special_values(dt: str):
    fi = np.finfo(NP[dt])
    base = [0.0, 1.0, 0.5, 2.0, 3.0, 10.0, 0.1, math.pi, math.pi / 2, math.pi / 4, 1e-5, 1e-30,
            88.0, 89.0, 709.0, 710.0, 1e10, 1e22, 2.0**60, 1e300,
            float(fi.smallest_subnormal), float(fi.smallest_subnormal) * 3,
            float(fi.smallest_normal) * 0.75, float(fi.smallest_normal), float(fi.max),
            float(np.nextafter(NP[dt](1), NP[dt](0))), float(np.nextafter(NP[dt](1), NP[dt](2))),
            math.inf]
    vals = np.array(base + [-v for v in base] + [math.nan], dtype=np.float64)
    with np.errstate(over="ignore"):
        return vals.astype(NP[dt])


DOMAINS = {  # linear sweeps: (lo, hi) per dtype (None: same as f32)
    "exp": [((-104, 89), (-746, 710)), ((-1, 1), None)],
    "exp2": [((-150, 128), (-1075, 1024)), ((-1, 1), None)],
    "expm1": [((-20, 89), (-40, 710)), ((-1, 1), None), ((-1e-4, 1e-4), None)],
    "log": [((0, 10), None), ((0.5, 2), None)],
    "log2": [((0, 10), None), ((0.5, 2), None)],
    "log10": [((0, 10), None), ((0.5, 2), None)],
    "log1p": [((-1, 10), None), ((-1e-3, 1e-3), None)],
    "sin": [((-100, 100), None), ((-1e5, 1e5), (-1e9, 1e9))],
    "cos": [((-100, 100), None), ((-1e5, 1e5), (-1e9, 1e9))],
    "tan": [((-100, 100), None), ((-1e5, 1e5), (-1e9, 1e9))],
    "tanh": [((-20, 20), None), ((-1, 1), None)],
    "sigmoid": [((-110, 40), (-750, 50)), ((-5, 5), None)],
    "erf": [((-6, 6), None), ((-1, 1), None)],
    "asin": [((-1, 1), None)],
    "acos": [((-1, 1), None)],
    "atan": [((-50, 50), None), ((-1, 1), None)],
    "sinh": [((-90, 90), (-711, 711)), ((-1, 1), None)],
    "cosh": [((-90, 90), (-711, 711)), ((-1, 1), None)],
}


def unary_inputs(fn: str, dt: str, n: int, seed: int = 0):
    """Named input sets: random bit patterns, (float32) a strided walk through all bit
    patterns, linear sweeps of the main domain, special values."""
    rng = np.random.default_rng(seed)
    sets = {"bits": rng.integers(0, np.iinfo(UINT[dt]).max, n, dtype=UINT[dt],
                                 endpoint=True).view(NP[dt])}
    if dt == "f32":
        stride = 4099  # prime: visits every exponent and sign
        sets["strided"] = (np.arange(0, 2**32, stride, dtype=np.uint64).astype(np.uint32)
                           .view(np.float32))
    for k, (r32, r64) in enumerate(DOMAINS.get(fn, [])):
        lo, hi = r64 if (dt == "f64" and r64) else r32
        sets[f"linear{k}[{lo},{hi}]"] = np.linspace(lo, hi, n).astype(NP[dt])
    sets["special"] = special_values(dt)
    return sets


def binary_inputs(fn: str, dt: str, n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    t = NP[dt]
    bits = lambda: rng.integers(0, np.iinfo(UINT[dt]).max, n, dtype=UINT[dt]).view(t)
    sp = special_values(dt)
    gx, gy = np.meshgrid(sp, sp)
    sets = {"bits": (bits(), bits()), "special": (gx.ravel(), gy.ravel())}
    if fn == "atan2":
        sets["normal"] = (rng.standard_normal(n).astype(t), rng.standard_normal(n).astype(t))
        sets["near axes"] = (rng.uniform(-1, 1, n).astype(t),
                             (rng.uniform(-1, 1, n) * 10.0 ** rng.integers(-30, 30, n)).astype(t))
    else:
        ylim = 40.0 if dt == "f32" else 300.0
        sets["x in [0,4]"] = (rng.uniform(0, 4, n).astype(t), rng.uniform(-ylim, ylim, n).astype(t))
        sets["x near 1"] = (rng.uniform(0.99, 1.01, n).astype(t),
                            rng.uniform(-3000, 3000, n).astype(t))
        sets["x < 0, integer y"] = (rng.uniform(-3, 0, n).astype(t),
                                    np.round(rng.uniform(-60, 60, n)).astype(t))
        sets["wide"] = ((rng.uniform(0, 1, n) * 10.0 ** rng.integers(-30, 30, n)).astype(t),
                        rng.uniform(-8, 8, n).astype(t))
    return sets


def measure(lib, fn: str, dt: str, n: int):
    """{set name: (max ulp error, worst inputs)}."""
    arity = mathlib.MATH_FUNCTIONS[fn]
    if fn == "erf" and dt == "f64":
        n = min(n, 1 << 13)  # the mpmath reference is slow
    sets = unary_inputs(fn, dt, n) if arity == 1 else binary_inputs(fn, dt, n)
    out = {}
    for name, args in sets.items():
        args = args if isinstance(args, tuple) else (args,)
        got = evaluate(lib, fn, dt, *args)
        err = ulp_error(got, reference(fn, dt, *args), dt)
        k = int(np.argmax(err))
        out[name] = (float(err[k]), tuple(a[k] for a in args), got[k])
    return out


# --- tests -----------------------------------------------------------------------------------
@pytest.mark.parametrize("fn,dt", CASES)
def test_accuracy(lib, fn, dt):
    n = (1 << 20) if dt == "f32" else (1 << 17)
    results = measure(lib, fn, dt, n)
    bad = {k: v for k, v in results.items() if not v[0] <= BOUND[dt]}
    assert not bad, f"{fn} {dt}: max ulp error over {BOUND[dt]}: {bad}"


@pytest.mark.parametrize("fn,dt", CASES)
def test_special_values_exact(lib, fn, dt):
    """NaN-ness, infinities and signed zeros exactly as the C99 (Annex F) reference."""
    arity = mathlib.MATH_FUNCTIONS[fn]
    sp = special_values(dt)
    args = (sp,) if arity == 1 else tuple(a.ravel() for a in np.meshgrid(sp, sp))
    got = evaluate(lib, fn, dt, *args)
    ref = reference(fn, dt, *args)
    fi = np.finfo(NP[dt])
    with np.errstate(over="ignore", invalid="ignore"):
        ref_t = ref.astype(NP[dt])  # rounds overflow to inf
    exact = np.isnan(ref) | np.isinf(ref_t) | (ref == 0) | (np.abs(ref) == 1)
    exact &= ~((np.abs(ref) < fi.smallest_normal) & (ref != 0))
    same = (np.isnan(got) & np.isnan(ref_t)) | ((got == ref_t)
                                                & (np.signbit(got) == np.signbit(ref_t)))
    wrong = exact & ~same
    detail = [(tuple(a[i] for a in args), got[i], ref_t[i]) for i in np.flatnonzero(wrong)[:8]]
    assert not wrong.any(), f"{fn} {dt}: special values (args, got, expected): {detail}"


def test_pow_annex_f(lib):
    inf, nan = math.inf, math.nan
    cases = [  # (x, y, expected)
        (nan, 0.0, 1.0), (nan, -0.0, 1.0), (1.0, nan, 1.0), (1.0, inf, 1.0), (-1.0, inf, 1.0),
        (-1.0, -inf, 1.0), (0.0, -3.0, inf), (-0.0, -3.0, -inf), (-0.0, -2.0, inf),
        (-0.0, -0.5, inf), (-0.0, 3.0, -0.0), (-0.0, 2.0, 0.0), (-0.0, 0.5, 0.0),
        (0.5, -inf, inf), (2.0, -inf, 0.0), (0.5, inf, 0.0), (2.0, inf, inf),
        (-inf, -3.0, -0.0), (-inf, -2.0, 0.0), (-inf, 3.0, -inf), (-inf, 2.5, inf),
        (inf, -1.0, 0.0), (inf, 0.5, inf), (-2.0, 0.5, nan), (-2.0, 3.0, -8.0),
        (2.0, 3.0, 8.0), (-0.0, -inf, inf), (0.0, inf, 0.0), (nan, 1.0, nan), (2.0, nan, nan),
    ]
    for dt in ("f32", "f64"):
        x, y, want = (np.array(c, dtype=NP[dt]) for c in zip(*cases))
        got = evaluate(lib, "pow", dt, x, y)
        ok = (np.isnan(got) & np.isnan(want)) | ((got == want)
                                                 & (np.signbit(got) == np.signbit(want)))
        assert ok.all(), [(cases[i], got[i]) for i in np.flatnonzero(~ok)]


def test_subnormal_results_and_arguments(lib):
    for dt in ("f32", "f64"):
        t, fi = NP[dt], np.finfo(NP[dt])
        # exp underflows gradually: results down to the smallest subnormal, then 0
        x = np.log(np.array([fi.smallest_normal, fi.smallest_subnormal * 4], dtype=np.float64))
        got = evaluate(lib, "exp", dt, x.astype(t))
        assert got[0] > 0 and got[1] > 0 and got[1] < fi.smallest_normal
        assert evaluate(lib, "exp", dt, np.array([-1e4], dtype=t))[0] == 0
        # log of subnormals: exact powers of two give exact results
        sub = np.ldexp(t(1), np.array([fi.minexp - 1, fi.minexp - fi.nmant]))
        assert np.array_equal(evaluate(lib, "log2", dt, sub.astype(t)),
                              np.array([fi.minexp - 1, fi.minexp - fi.nmant], dtype=t))
        # odd functions return tiny and subnormal arguments unchanged
        tiny = np.array([fi.smallest_subnormal, -fi.smallest_subnormal * 5, 1e-30], dtype=t)
        for fn in ("sin", "tan", "tanh", "asin", "atan", "sinh", "expm1", "log1p"):
            assert np.array_equal(evaluate(lib, fn, dt, tiny), tiny), fn


def test_sin_cos_huge_arguments(lib):
    """Payne-Hanek reduction: correct far beyond where Cody-Waite breaks down, including the
    double closest to a multiple of pi/2 below 2^1024 known to the literature's search
    (6381956970095103 * 2^797, reduced argument about 2^-60.9)."""
    x = np.array([1e22, 1e300, 2.0**1000, float(np.finfo(np.float64).max),
                  6381956970095103 * 2.0**797, 5.319372648326541e+255], dtype=np.float64)
    for fn in ("sin", "cos", "tan"):
        err = ulp_error(evaluate(lib, fn, "f64", x), reference(fn, "f64", x), "f64")
        assert err.max() <= 2, (fn, err)


def test_exp_f32_vectorizes(lib):
    """The O3 loop around tj_exp_f32 computes exp on 512-bit (or 256-bit) vectors: vector
    fused multiply-adds and rounding, and no scalar libm call."""
    ir = lib[1]["exp", "f32"]
    assert re.search(r"<(16|8) x float>", ir), ir[:2000]
    assert re.search(r"@llvm\.fma\.v(16|8)f32", ir), "the polynomial is not vectorized"
    assert re.search(r"@llvm\.rint\.v(16|8)f32", ir), "the range reduction is not vectorized"
    assert "@expf" not in ir and "@exp(" not in ir and "call float @tj_exp_f32" not in ir


@pytest.mark.parametrize("fn,dt", CASES)
def test_every_function_vectorizes(lib, fn, dt):
    ir = lib[1][fn, dt]
    assert re.search(rf"<\d+ x {CT[dt]}>", ir), f"{fn} {dt} loop not vectorized"
    assert f"@{mathlib.function_name(fn, dt)}(" not in ir, "not inlined"
    assert not re.search(r"call [a-z0-9 <>]+ @(?!llvm\.)", ir), "calls a non-intrinsic"


def test_link_into_several_modules():
    for _ in range(3):
        mod = llvm.parse_assembly("declare double @tj_pow_f64(double, double)")
        mathlib.link_into(mod)
        mod.verify()
        assert not mod.get_function("tj_pow_f64").is_declaration
    assert mathlib.function_name("exp", "f32") == "tj_exp_f32"
    with pytest.raises(KeyError):
        mathlib.function_name("gamma", "f32")
    with pytest.raises(ValueError):
        mathlib.function_name("exp", "f16")
    assert set(mathlib.MATH_FUNCTIONS) == set(FUNCS) and mathlib.MATH_FUNCTIONS["pow"] == 2


def test_library_defines_what_it_declares():
    mod = llvm.parse_assembly(mathlib.source_text())
    defined = {f.name for f in mod.functions if not f.is_declaration}
    want = {mathlib.function_name(f, d) for f, d in CASES}
    assert want <= defined
    for f in mod.functions:  # only LLVM intrinsics are called: no libm
        assert not f.is_declaration or f.name.startswith("llvm."), f.name


@pytest.mark.slow
@pytest.mark.parametrize("fn", [f for f in FUNCS if mathlib.MATH_FUNCTIONS[f] == 1])
def test_exhaustive_f32(lib, fn, request):
    """Every float32 bit pattern (2^32 inputs) against float64 numpy (about a minute per
    function; runs only when asked for with `-m slow` or TRACEJIT_SLOW_TESTS=1)."""
    if "slow" not in (request.config.getoption("markexpr") or "") and not os.environ.get(
            "TRACEJIT_SLOW_TESTS"):
        pytest.skip("exhaustive sweep: run with -m slow")
    if fn == "erf":
        special = pytest.importorskip("scipy.special")
        ref = lambda x: special.erf(x)  # noqa: E731
    else:
        ref = lambda x: reference(fn, "f32", x)  # noqa: E731
    worst = (0.0, None)
    chunk = 1 << 24
    for start in range(0, 1 << 32, chunk):
        x = np.arange(start, start + chunk, dtype=np.uint64).astype(np.uint32).view(np.float32)
        err = ulp_error(evaluate(lib, fn, "f32", x), ref(x.astype(np.float64)), "f32")
        k = int(np.argmax(err))
        if err[k] > worst[0]:
            worst = (float(err[k]), x[k])
    assert worst[0] <= BOUND["f32"], (fn, worst)


@pytest.mark.slow
def test_wheel_ships_the_library(tmp_path, request):
    """A wheel built from the project carries kernels/mathlib.ll (as data, installed under
    <prefix>/share/tracejit/kernels, where `mathlib.source_path` looks)."""
    import shutil
    import subprocess
    import sys
    import zipfile

    if "slow" not in (request.config.getoption("markexpr") or "") and not os.environ.get(
            "TRACEJIT_SLOW_TESTS"):
        pytest.skip("builds a wheel: run with -m slow")
    root = mathlib.source_path().parent.parent
    src = tmp_path / "src"
    shutil.copytree(root, src, ignore=shutil.ignore_patterns(
        ".git", "build", "*.egg-info", "__pycache__", "golden", "benchmarks"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(tmp_path / "dist"), str(src)], check=True)
    (wheel,) = (tmp_path / "dist").glob("tracejit-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert any(n.endswith(".data/data/share/tracejit/kernels/mathlib.ll") for n in names), names
