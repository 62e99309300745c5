"""A tiny straight-line LLVM IR text builder for the math library generator.

Input: Python code that calls the builder (with operator overloading on `Val`).
Output: the text of one LLVM function body: a single basic block in SSA form, so that every
function of the library is branch-free by construction (choices are `select`s).

Only what the math library needs is here: float/double arithmetic (no fast-math flags: the
range reductions rely on exact IEEE operations), `llvm.fma`/`fabs`/`copysign`/`rint`/`sqrt`,
compares, selects, casts and integer bit manipulation, and loads from constant tables.
"""

from __future__ import annotations

import struct

import numpy as np

FLOAT_TYPES = ("float", "double")
INT_TYPES = ("i1", "i8", "i16", "i32", "i64")
ITYPE = {"float": "i32", "double": "i64"}
# (mantissa bits without the hidden one, exponent bias)
FORMAT = {"float": (23, 127), "double": (52, 1023)}
SUFFIX = {"float": "f32", "double": "f64"}


def round_to(ty: str, v: float) -> float:
    """`v` rounded to the precision of `ty` (float32 or float64), as a Python float."""
    return float(np.float32(v)) if ty == "float" else float(v)


def fconst_text(ty: str, v: float) -> str:
    """LLVM's spelling of a floating constant: the hex bits of the double (exact for floats)."""
    v = float(v)
    if ty == "float" and np.isfinite(v) and float(np.float32(v)) != v:
        raise ValueError(f"{v!r} is not representable as a float")
    return "0x%016X" % struct.unpack("<Q", struct.pack("<d", v))[0]


class Val:
    """An SSA value (or constant) of a function being built; arithmetic emits instructions."""

    __slots__ = ("b", "ref", "ty")

    def __init__(self, b: Builder, ref: str, ty: str):
        self.b, self.ref, self.ty = b, ref, ty

    def __repr__(self) -> str:
        return f"{self.ty} {self.ref}"

    # floating or integer arithmetic, chosen by type
    def _arith(self, fop: str, iop: str, other, swap=False):
        o = self.b.coerce(other, self.ty)
        a, c = (o, self) if swap else (self, o)
        return self.b.binop(fop if self.ty in FLOAT_TYPES else iop, a, c)

    def __add__(self, o):
        return self._arith("fadd", "add", o)

    def __radd__(self, o):
        return self._arith("fadd", "add", o, swap=True)

    def __sub__(self, o):
        return self._arith("fsub", "sub", o)

    def __rsub__(self, o):
        return self._arith("fsub", "sub", o, swap=True)

    def __mul__(self, o):
        return self._arith("fmul", "mul", o)

    def __rmul__(self, o):
        return self._arith("fmul", "mul", o, swap=True)

    def __truediv__(self, o):
        return self._arith("fdiv", "sdiv", o)

    def __rtruediv__(self, o):
        return self._arith("fdiv", "sdiv", o, swap=True)

    def __neg__(self):
        if self.ty in FLOAT_TYPES:
            return self.b.emit(f"fneg {self.ty} {self.ref}", self.ty)
        return self.b.binop("sub", self.b.coerce(0, self.ty), self)

    # integer bit operations
    def __and__(self, o):
        return self.b.binop("and", self, self.b.coerce(o, self.ty))

    def __or__(self, o):
        return self.b.binop("or", self, self.b.coerce(o, self.ty))

    def __xor__(self, o):
        return self.b.binop("xor", self, self.b.coerce(o, self.ty))

    def __lshift__(self, o):
        return self.b.binop("shl", self, self.b.coerce(o, self.ty))

    def __rshift__(self, o):  # arithmetic shift: exponents are signed here
        return self.b.binop("ashr", self, self.b.coerce(o, self.ty))

    def lshr(self, o):
        return self.b.binop("lshr", self, self.b.coerce(o, self.ty))

    # ordered float compares (false on NaN) and signed integer compares
    def _cmp(self, fpred: str, ipred: str, o):
        o = self.b.coerce(o, self.ty)
        if self.ty in FLOAT_TYPES:
            return self.b.emit(f"fcmp {fpred} {self.ty} {self.ref}, {o.ref}", "i1")
        return self.b.emit(f"icmp {ipred} {self.ty} {self.ref}, {o.ref}", "i1")

    def lt(self, o):
        return self._cmp("olt", "slt", o)

    def le(self, o):
        return self._cmp("ole", "sle", o)

    def gt(self, o):
        return self._cmp("ogt", "sgt", o)

    def ge(self, o):
        return self._cmp("oge", "sge", o)

    def eq(self, o):
        return self._cmp("oeq", "eq", o)

    def ne(self, o):  # "une": true for NaN, like C's !=
        return self._cmp("une", "ne", o)

    def ugt(self, o):  # greater than, or unordered (NaN)
        return self._cmp("ugt", "ugt", o)

    def ult(self, o):
        return self._cmp("ult", "ult", o)

    def isnan(self):
        return self.b.emit(f"fcmp uno {self.ty} {self.ref}, {self.ref}", "i1")


class Builder:
    """Builds one single-block function. `intrinsics` collects the declarations it needs."""

    def __init__(self, module: Module, ty: str):
        self.module, self.ty = module, ty
        self.ity = ITYPE[ty]
        self.lines: list[str] = []
        self.count = 0

    # --- plumbing --------------------------------------------------------------------------
    def emit(self, text: str, ty: str) -> Val:
        self.count += 1
        name = f"%t{self.count}"
        self.lines.append(f"  {name} = {text}")
        return Val(self, name, ty)

    def coerce(self, v, ty: str) -> Val:
        if isinstance(v, Val):
            if v.ty != ty:
                raise TypeError(f"type mismatch: {v.ty} vs {ty}")
            return v
        if ty in FLOAT_TYPES:
            return Val(self, fconst_text(ty, round_to(ty, v)), ty)
        if isinstance(v, bool) or ty == "i1":
            return Val(self, "true" if v else "false", "i1")
        return Val(self, str(int(v)), ty)

    def c(self, v, ty: str | None = None) -> Val:
        """A constant of the builder's float type (or `ty`)."""
        return self.coerce(v, ty or self.ty)

    def binop(self, op: str, a: Val, b: Val) -> Val:
        if a.ty != b.ty:
            raise TypeError(f"{op}: {a.ty} vs {b.ty}")
        return self.emit(f"{op} {a.ty} {a.ref}, {b.ref}", a.ty)

    def call(self, name: str, ret: str, *args: Val) -> Val:
        self.module.intrinsics.add((name, ret, tuple(a.ty for a in args)))
        argtext = ", ".join(f"{a.ty} {a.ref}" for a in args)
        return self.emit(f"call {ret} @{name}({argtext})", ret)

    def _intr(self, base: str, *args) -> Val:
        ty = next(a.ty for a in args if isinstance(a, Val))
        vals = [self.coerce(a, ty) for a in args]
        return self.call(f"llvm.{base}.{SUFFIX[ty]}", ty, *vals)

    # --- float operations ------------------------------------------------------------------
    def fma(self, a, b, c) -> Val:
        """a*b + c with one rounding (exact products are what the reductions need)."""
        return self._intr("fma", a, b, c)

    def fabs(self, a) -> Val:
        return self._intr("fabs", a)

    def copysign(self, mag, sign) -> Val:
        return self._intr("copysign", mag, sign)

    def rint(self, a) -> Val:
        """Round to nearest integer, ties to even (the default rounding mode)."""
        return self._intr("rint", a)

    def sqrt(self, a) -> Val:
        return self._intr("sqrt", a)

    def select(self, cond: Val, a, b) -> Val:
        ty = a.ty if isinstance(a, Val) else b.ty if isinstance(b, Val) else self.ty
        a, b = self.coerce(a, ty), self.coerce(b, ty)
        return self.emit(f"select i1 {cond.ref}, {ty} {a.ref}, {ty} {b.ref}", ty)

    def and_(self, a: Val, b: Val) -> Val:
        return self.binop("and", a, b)

    def or_(self, a: Val, b: Val) -> Val:
        return self.binop("or", a, b)

    def not_(self, a: Val) -> Val:
        return self.binop("xor", a, self.coerce(True, "i1"))

    def horner(self, x: Val, coeffs) -> Val:
        """sum coeffs[k] * x**k by Horner's rule with fused multiply-adds."""
        acc = self.c(coeffs[-1], x.ty)
        for cf in reversed(coeffs[:-1]):
            acc = self.fma(acc, x, self.c(cf, x.ty))
        return acc

    # --- casts -------------------------------------------------------------------------------
    def cast(self, op: str, v: Val, ty: str) -> Val:
        return self.emit(f"{op} {v.ty} {v.ref} to {ty}", ty)

    def bits(self, v: Val) -> Val:
        return self.cast("bitcast", v, ITYPE[v.ty])

    def from_bits(self, v: Val, ty: str | None = None) -> Val:
        ty = ty or {"i32": "float", "i64": "double"}[v.ty]
        return self.cast("bitcast", v, ty)

    def to_int(self, v: Val) -> Val:
        """fptosi to the same-width integer; `v` must be integral, in range and not NaN."""
        return self.cast("fptosi", v, ITYPE[v.ty])

    def to_float(self, v: Val, ty: str | None = None) -> Val:
        return self.cast("sitofp", v, ty or {"i32": "float", "i64": "double"}[v.ty])

    def ext(self, v: Val) -> Val:
        return self.cast("fpext", v, "double")

    def trunc(self, v: Val) -> Val:
        return self.cast("fptrunc", v, "float")

    # --- exponent tricks ---------------------------------------------------------------------
    def pow2(self, n: Val, ty: str | None = None) -> Val:
        """2**n for an integer `n` (same width as the float type) in the normal range."""
        ty = ty or self.ty
        mant, bias = FORMAT[ty]
        return self.from_bits((n + bias) << mant, ty)

    def scale2(self, p: Val, n: Val) -> Val:
        """p * 2**n in two exact steps, so results may overflow to inf or round into the
        subnormals correctly; |n| may be up to twice the exponent range."""
        n1 = n >> 1
        n2 = n - n1
        return (p * self.pow2(n1, p.ty)) * self.pow2(n2, p.ty)

    def load_table(self, table: str, ty: str, index: Val) -> Val:
        """table[index] from a constant global array of `ty` (a gather once vectorized)."""
        idx = index if index.ty == "i64" else self.cast("sext", index, "i64")
        ptr = self.emit(f"getelementptr inbounds {ty}, ptr @{table}, i64 {idx.ref}", "ptr")
        return self.emit(f"load {ty}, ptr {ptr.ref}, align 8", ty)


class Module:
    """Collects functions, constant tables and intrinsic declarations into one .ll text."""

    ATTRS = "alwaysinline nounwind willreturn nosync nofree memory(none)"

    def __init__(self):
        self.functions: list[str] = []
        self.globals: list[str] = []
        self.intrinsics: set = set()
        self.names: list[tuple[str, int]] = []

    def function(self, name: str, ty: str, nargs: int, body, doc: str = "",
                 eval_ty: str | None = None):
        """Define `@name(ty x[, ty y]) -> ty` with `body(builder, *args) -> Val`; the builder's
        default float type is `eval_ty` (default `ty`)."""
        b = Builder(self, eval_ty or ty)
        args = [Val(b, f"%{a}", ty) for a in "xy"[:nargs]]
        out = body(b, *args)
        if out.ty != ty:
            raise TypeError(f"{name} returns {out.ty}")
        params = ", ".join(f"{ty} noundef {a.ref}" for a in args)
        lines = [f"; {doc}"] if doc else []
        lines.append(f"define linkonce_odr {ty} @{name}({params}) #0 {{")
        lines.append("entry:")
        lines += b.lines
        lines.append(f"  ret {ty} {out.ref}")
        lines.append("}")
        self.functions.append("\n".join(lines))
        self.names.append((name, nargs))

    def table(self, name: str, ty: str, values) -> None:
        items = [f"{ty} {fconst_text(ty, v)}" for v in values]
        rows = ",\n  ".join(", ".join(items[i:i + 3]) for i in range(0, len(items), 3))
        self.globals.append(
            f"@{name} = linkonce_odr unnamed_addr constant [{len(values)} x {ty}] [\n  {rows}\n"
            "], align 64")

    def text(self, header: str) -> str:
        decls = []
        for name, ret, args in sorted(self.intrinsics):
            decls.append(f"declare {ret} @{name}({', '.join(args)})")
        parts = [header, *self.globals, "", "\n\n".join(self.functions), "", *decls, "",
                 f"attributes #0 = {{ {self.ATTRS} }}", ""]
        return "\n".join(parts)
