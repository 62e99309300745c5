"""Shared pieces of the math library generator: precisions, error-free transforms, clamps.

Input: a `Builder` and values. Output: more values. Every helper is straight-line code.
"""

from __future__ import annotations

from dataclasses import dataclass

import mpmath as mp
from ir import Builder, Val, round_to
from remez import fit_auto


@dataclass(frozen=True)
class Prec:
    """How a function is evaluated: in which type, and how accurate its polynomials must be
    (max relative error of the approximation itself, before evaluation rounding)."""

    name: str  # fit-cache tag
    ty: str  # evaluation type
    target: float  # polynomial approximation error target

    @property
    def f64(self) -> bool:
        return self.name == "f64"


F32 = Prec("f32", "float", 2.0**-26)  # native float32 evaluation
F32D = Prec("f32d", "double", 2.0**-34)  # float32 results computed in double
F64 = Prec("f64", "double", 2.0**-57)  # float64


def poly(key: str, p: Prec, g, w, a, b, powers_of, degrees=range(2, 30), npts=1200):
    """Coefficients of a minimax fit meeting `p.target` (see remez.fit_auto)."""
    coeffs, _ = fit_auto(f"{key}@{p.name}", g, w, a, b, powers_of, p.ty, p.target, degrees,
                         npts)
    return coeffs


def powers(start: int, step: int = 1):
    """powers_of(d) for d + 1 coefficients: start, start + step, ..."""
    return lambda d: [start + step * k for k in range(d + 1)]


def rel(f):
    """Weight for a relative-error fit of f."""
    return lambda t: 1 / abs(f(t))


def one(_t):
    return mp.mpf(1)


# --- error-free transforms (exact when no overflow/underflow) ----------------------------------
def two_sum(b: Builder, x: Val, y: Val) -> tuple[Val, Val]:
    """s + e == x + y exactly, s = fl(x + y) (Knuth, no ordering requirement)."""
    s = x + y
    yy = s - x
    xx = s - yy
    return s, (x - xx) + (y - yy)


def fast_two_sum(b: Builder, x: Val, y: Val) -> tuple[Val, Val]:
    """s + e == x + y exactly, provided |x| >= |y| (or x == 0)."""
    s = x + y
    return s, y - (s - x)


def two_prod(b: Builder, x: Val, y) -> tuple[Val, Val]:
    """p + e == x * y exactly (by fused multiply-add)."""
    p = x * y
    return p, b.fma(x, y, -p)


def clamp(b: Builder, x: Val, lo: float, hi: float) -> Val:
    """x clamped to [lo, hi]; NaN becomes `hi` (so later float->int casts stay defined)."""
    x = b.select(x.ugt(hi), hi, x)
    return b.select(x.lt(lo), lo, x)


def split_const(v, bits: int, ty: str = "double") -> tuple[float, float]:
    """A constant as hi + lo where hi keeps `bits` significant bits (so n*hi is exact for
    small integers n) and lo is the rest rounded to `ty`."""
    v = mp.mpf(v)
    e = int(mp.floor(mp.log(abs(v), 2)))
    hi = float(mp.nint(v * mp.mpf(2) ** (bits - 1 - e)) * mp.mpf(2) ** (e - bits + 1))
    return hi, round_to(ty, float(v - hi))


def dd_const(v, ty: str = "double") -> tuple[float, float]:
    """A constant as hi + lo, hi = round(v), lo = round(v - hi) in `ty`."""
    v = mp.mpf(v)
    hi = round_to(ty, float(v))
    return hi, round_to(ty, float(v - hi))
