"""Scalar lowerings: one primitive applied to LLVM values -> LLVM instructions.

Input: a kernel's expression node and its already-lowered operands. Output: an LLVM value. Each
lowering reproduces the numpy reference of `tracejit/primitives` exactly where IEEE arithmetic
allows (NaN propagation of maximum/minimum, round-half-to-even, Python's sign conventions) and
is checked against it by the conformance tests. Transcendental functions call the vectorizable
math library in `kernels/` when it provides them (`codegen/mathlib.py`), otherwise LLVM's
intrinsics or the C library.
"""

from __future__ import annotations

import llvmlite.ir as ir

from .. import dtypes as D

__all__ = ["lower_op", "identity_value", "reduce_combine", "LOWERED"]

I1, I64 = ir.IntType(1), ir.IntType(64)

_INTRINSIC = {"exp": "llvm.exp", "exp2": "llvm.exp2", "log": "llvm.log", "log2": "llvm.log2",
              "log10": "llvm.log10", "sqrt": "llvm.sqrt", "sin": "llvm.sin", "cos": "llvm.cos",
              "tan": "llvm.tan", "asin": "llvm.asin", "acos": "llvm.acos", "atan": "llvm.atan",
              "sinh": "llvm.sinh", "cosh": "llvm.cosh", "tanh": "llvm.tanh",
              "floor": "llvm.floor", "ceil": "llvm.ceil", "trunc": "llvm.trunc",
              "round": "llvm.roundeven", "abs": "llvm.fabs"}
_LIBM = {"expm1", "log1p", "erf", "atan2"}


def _fty(v):
    return v.type


def _suffix(ty) -> str:
    return {"half": "f16", "float": "f32", "double": "f64"}[str(ty)]


def _call_intrinsic(gen, name: str, args):
    ty = args[0].type
    fname = f"{name}.{_suffix(ty)}"
    fn = gen.mod.globals.get(fname)
    if fn is None:
        fn = ir.Function(gen.mod, ir.FunctionType(ty, [a.type for a in args]), fname)
    return gen.b.call(fn, args)


def _call_libm(gen, name: str, args):
    ty = args[0].type
    if str(ty) == "half":
        wide = [gen.b.fpext(a, ir.FloatType()) for a in args]
        return gen.b.fptrunc(_call_libm(gen, name, wide), ty)
    fname = name + ("f" if str(ty) == "float" else "")
    fn = gen.mod.globals.get(fname)
    if fn is None:
        fn = ir.Function(gen.mod, ir.FunctionType(ty, [a.type for a in args]), fname)
        fn.attributes.add("nounwind")
    return gen.b.call(fn, args)


def _math(gen, name: str, args):
    """A transcendental function: the math library if it has it, else intrinsic or libm."""
    from . import mathlib_bridge
    ty = args[0].type
    if str(ty) in ("float", "double"):
        f = mathlib_bridge.declare(gen.mod, name, str(ty), len(args))
        if f is not None:
            return gen.b.call(f, args)
    if name in _INTRINSIC:
        return _call_intrinsic(gen, _INTRINSIC[name], args)
    return _call_libm(gen, name, args)


def _isnan(b, x):
    return b.fcmp_unordered("uno", x, x)


def _max_min(b, dt, a, c, is_max: bool):
    if dt.is_floating_point:  # NaN propagates, like np.maximum
        pick_a = b.or_(b.fcmp_ordered(">" if is_max else "<", a, c), _isnan(b, a))
        return b.select(pick_a, a, c)
    if dt.is_bool:
        return b.or_(a, c) if is_max else b.and_(a, c)
    cmp = b.icmp_unsigned if dt.kind == "u" else b.icmp_signed
    return b.select(cmp(">" if is_max else "<", a, c), a, c)


def _convert(b, v, src: D.DType, dst: D.DType):
    from .llvm import ir_type
    ty = ir_type(dst)
    if src == dst:
        return v
    if dst.is_bool:
        if src.is_floating_point:
            return b.fcmp_unordered("une", v, ir.Constant(v.type, 0.0))
        return b.icmp_unsigned("!=", v, ir.Constant(v.type, 0))
    if src.is_bool:
        return b.uitofp(v, ty) if dst.is_floating_point else b.zext(v, ty)
    if src.is_floating_point and dst.is_floating_point:
        if dst == D.float16:  # round to half precision; the register type stays float
            if src == D.float64:
                v = b.fptrunc(v, ir.FloatType())
            return b.fpext(b.fptrunc(v, ir.HalfType()), ty)
        if src == D.float16:
            return v if dst == D.float32 else b.fpext(v, ty)
        return b.fpext(v, ty) if dst.itemsize > src.itemsize else b.fptrunc(v, ty)
    if src.is_floating_point:  # saturating: NaN -> 0, out of range -> the nearest bound
        name = "llvm.fptoui.sat" if dst.kind == "u" else "llvm.fptosi.sat"
        return b.call(_sat(b, name, v.type, ty), [v])
    if dst.is_floating_point:
        return b.uitofp(v, ty) if src.kind == "u" else b.sitofp(v, ty)
    if dst.itemsize > src.itemsize:
        return b.zext(v, ty) if src.kind == "u" else b.sext(v, ty)
    return b.trunc(v, ty) if dst.itemsize < src.itemsize else v


def _sat(b, name, src_ty, dst_ty):
    mod = b.module
    full = f"{name}.i{dst_ty.width}.{_suffix(src_ty)}"
    fn = mod.globals.get(full)
    if fn is None:
        fn = ir.Function(mod, ir.FunctionType(dst_ty, [src_ty]), full)
    return fn


def lower_op(gen, e, args):
    b = gen.b
    op, dt = e.kind, e.dtype
    src = e.args[0].dtype if e.args else dt
    fl = src.is_floating_point
    if op == "stop_gradient":
        return args[0]
    if op == "convert":
        return _convert(b, args[0], src, dt)
    if op == "select":
        return b.select(args[0], args[1], args[2])
    if op in ("add", "sub", "mul"):
        if src.is_bool:
            return b.or_(*args) if op == "add" else b.and_(*args)
        if fl:
            return {"add": b.fadd, "sub": b.fsub, "mul": b.fmul}[op](*args)
        return {"add": b.add, "sub": b.sub, "mul": b.mul}[op](*args)
    if op == "div":
        return b.fdiv(*args)
    if op == "neg":
        return b.fneg(args[0]) if fl else b.neg(args[0])
    if op == "abs":
        if fl:
            return _call_intrinsic(gen, "llvm.fabs", args)
        if src.kind == "u":
            return args[0]
        x = args[0]
        return b.select(b.icmp_signed("<", x, ir.Constant(x.type, 0)), b.neg(x), x)
    if op == "sign":
        x = args[0]
        zero, one = ir.Constant(x.type, 0 if not fl else 0.0), ir.Constant(x.type, 1 if not fl
                                                                              else 1.0)
        mone = ir.Constant(x.type, -1 if not fl else -1.0)
        if fl:
            pos, neg = b.fcmp_ordered(">", x, zero), b.fcmp_ordered("<", x, zero)
            return b.select(pos, one, b.select(neg, mone, zero))
        if src.kind == "u":
            return b.select(b.icmp_unsigned(">", x, zero), one, zero)
        return b.select(b.icmp_signed(">", x, zero), one,
                        b.select(b.icmp_signed("<", x, zero), mone, zero))
    if op in ("maximum", "minimum"):
        return _max_min(b, src, args[0], args[1], op == "maximum")
    if op in ("eq", "ne", "lt", "le", "gt", "ge"):
        sym = {"eq": "==", "ne": "!=", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}[op]
        if fl:
            return b.fcmp_unordered(sym, *args) if op == "ne" else b.fcmp_ordered(sym, *args)
        if src.kind in "ub":
            return b.icmp_unsigned(sym, *args)
        return b.icmp_signed(sym, *args)
    if op == "logical_and":
        return b.and_(*args)
    if op == "logical_or":
        return b.or_(*args)
    if op == "logical_xor":
        return b.xor(*args)
    if op == "logical_not":
        return b.not_(args[0])
    if op == "isnan":
        return _isnan(b, args[0]) if fl else ir.Constant(I1, 0)
    if op == "isinf":
        if not fl:
            return ir.Constant(I1, 0)
        a = _call_intrinsic(gen, "llvm.fabs", args)
        return b.fcmp_ordered("==", a, ir.Constant(a.type, float("inf")))
    if op in ("floor", "ceil", "trunc", "round"):
        return _call_intrinsic(gen, _INTRINSIC[op], args) if fl else args[0]
    if op == "rsqrt":
        return b.fdiv(ir.Constant(args[0].type, 1.0), _math(gen, "sqrt", args))
    if op == "sigmoid":
        x = args[0]
        e_ = _math(gen, "exp", [b.fneg(x)])
        one = ir.Constant(x.type, 1.0)
        return b.fdiv(one, b.fadd(one, e_))
    if op == "pow":
        return _math(gen, "pow", args)
    if op in _INTRINSIC or op in _LIBM:
        return _math(gen, op, args)
    raise NotImplementedError(f"no LLVM lowering for primitive {op!r}")


LOWERED = {"stop_gradient", "convert", "select", "add", "sub", "mul", "div", "neg", "abs",
           "sign", "maximum", "minimum", "eq", "ne", "lt", "le", "gt", "ge", "logical_and",
           "logical_or", "logical_xor", "logical_not", "isnan", "isinf", "floor", "ceil",
           "trunc", "round", "rsqrt", "sigmoid", "pow"} | set(_INTRINSIC) | _LIBM


def identity_value(op: str, dt: D.DType, ty):
    if dt.is_bool:
        return ir.Constant(I1, {"sum": 0, "prod": 1, "max": 0, "min": 1}[op])
    if dt.is_floating_point:
        return ir.Constant(ty, {"sum": 0.0, "prod": 1.0, "max": float("-inf"),
                                "min": float("inf")}[op])
    import numpy as np
    info = np.iinfo(dt.np)
    return ir.Constant(ty, {"sum": 0, "prod": 1, "max": info.min, "min": info.max}[op])


def reduce_combine(b, op: str, dt: D.DType, acc, v):
    if op in ("max", "min") and dt.is_floating_point:
        # llvm.maximum/minimum propagate NaN like np.max, and unlike a compare-and-select chain
        # the loop vectorizer recognizes them as a reduction
        name = f"llvm.{'maximum' if op == 'max' else 'minimum'}.{_suffix(acc.type)}"
        mod = b.block.function.module
        fn = mod.globals.get(name) or ir.Function(
            mod, ir.FunctionType(acc.type, [acc.type, acc.type]), name)
        return b.call(fn, [acc, v])
    if op in ("max", "min"):
        return _max_min(b, dt, acc, v, op == "max")
    if dt.is_bool:
        return b.or_(acc, v) if op == "sum" else b.and_(acc, v)
    if dt.is_floating_point:
        f = b.fadd if op == "sum" else b.fmul
        return f(acc, v, flags=["reassoc", "nsz"])
    return b.add(acc, v) if op == "sum" else b.mul(acc, v)
