"""The exponential family: exp, exp2, expm1, sinh, cosh, tanh, sigmoid.

Input: a `Builder`, the argument value(s), a `Prec`. Output: the result value.

Method (shared by all): x = n ln2 + r with n = rint(x / ln2) and a Cody-Waite two-constant
reduction (ln2_hi has few enough bits that n * ln2_hi and x - n * ln2_hi are exact), so
|r| <= ln2/2; then e^r = 1 + r + r^2 P(r) (minimax P); then the scaling by 2^n in two exact
steps so that results overflow to inf and round into the subnormals correctly.
"""

from __future__ import annotations

import mpmath as mp
from common import F32, Prec, clamp, poly, powers, split_const
from ir import Builder, Val

LN2 = mp.log(2)
R_EXP = 0.35  # > ln2/2 = 0.34657, leaves room for the rounding of x/ln2


def exp_clamp(p: Prec) -> tuple[float, float]:
    """Arguments beyond these give 0 / inf for exp in this evaluation type."""
    return (-110.0, 89.0) if p.ty == "float" else (-760.0, 710.0)


def exp_reduce(b: Builder, x: Val, p: Prec) -> tuple[Val, Val]:
    """n, r with x = n ln2 + r, |r| <= 0.35; x must be clamped (|n| < 2^11) and not NaN."""
    hi, lo = split_const(LN2, 24 - 9 if p.ty == "float" else 53 - 12, p.ty)
    n = b.rint(x * float(1 / LN2))
    r = b.fma(n, -hi, x)  # exact: n*hi has <= 24 (53) bits and x, n*hi are close
    return n, b.fma(n, -lo, r)


def exp_poly(b: Builder, r: Val, p: Prec) -> Val:
    """e^r - 1 - r, relative to e^r."""
    c = poly("exp", p, lambda t: (mp.exp(t) - 1 - t) / t**2, lambda t: t**2 / mp.exp(t),
             -R_EXP, R_EXP, powers(0))
    return (r * r) * b.horner(r, c)


def exp_core(b: Builder, x: Val, p: Prec, k: int = 0) -> Val:
    """e^x * 2^k for a clamped, non-NaN x."""
    n, r = exp_reduce(b, x, p)
    y = (r + exp_poly(b, r, p)) + 1.0
    ni = b.to_int(n)
    return b.scale2(y, ni + k if k else ni)


def exp(b: Builder, x: Val, p: Prec) -> Val:
    y = exp_core(b, clamp(b, x, *exp_clamp(p)), p)
    return b.select(x.isnan(), x + x, y)


def exp2(b: Builder, x: Val, p: Prec) -> Val:
    lo, hi = (-160.0, 129.0) if p.ty == "float" else (-1100.0, 1025.0)
    xc = clamp(b, x, lo, hi)
    n = b.rint(xc)
    r = xc - n  # exact, |r| <= 1/2
    c = poly("exp2", p, lambda t: (mp.power(2, t) - 1) / t, lambda t: t / mp.power(2, t),
             -0.5, 0.5, powers(0))
    y = b.fma(r, b.horner(r, c), 1.0)
    y = b.scale2(y, b.to_int(n))
    return b.select(x.isnan(), x + x, y)


def expm1_core(b: Builder, x: Val, p: Prec) -> Val:
    """e^x - 1 for a clamped (>= -40 in float, -60 in double), non-NaN x."""
    n, r = exp_reduce(b, x, p)
    c = poly("expm1", p, lambda t: (mp.expm1(t) - t) / t**2, lambda t: t**2 / abs(mp.expm1(t)),
             -R_EXP, R_EXP, powers(0))
    q = b.fma(r * r, b.horner(r, c), r)  # expm1(r), accurate relative to itself
    nbig = 25 if p.ty == "float" else 54
    ni = b.to_int(n)
    t = b.pow2(b.select(ni.gt(nbig), b.c(nbig, ni.ty), ni))
    small = b.fma(t, q, t - 1.0)  # 2^n (1 + q) - 1 with one rounding: t - 1 is exact
    big = b.scale2(q + 1.0, ni)  # the -1 no longer matters (and 2^n may overflow)
    return b.select(ni.gt(nbig), big, small)


def expm1(b: Builder, x: Val, p: Prec) -> Val:
    lo = -40.0 if p.ty == "float" else -60.0
    y = expm1_core(b, clamp(b, x, lo, exp_clamp(p)[1]), p)
    y = b.select(x.eq(0.0), x, y)  # keeps -0
    return b.select(x.isnan(), x + x, y)


def tanh(b: Builder, x: Val, p: Prec) -> Val:
    """tanh|x| = E / (E + 2) with E = expm1(2|x|): accurate near 0, saturates to 1."""
    a = clamp(b, b.fabs(x), 0.0, 10.0 if p.ty == "float" else 20.0)
    e = expm1_core(b, a * 2.0, p)
    y = b.copysign(e / (e + 2.0), x)
    return b.select(x.isnan(), x + x, y)


def sigmoid(b: Builder, x: Val, p: Prec) -> Val:
    """1/(1+e^-x) for x >= 0 and e^x/(1+e^x) for x < 0: E = e^-|x| never overflows, and the
    left tail keeps full relative accuracy down into the subnormals."""
    e = exp_core(b, clamp(b, -b.fabs(x), exp_clamp(p)[0], 0.0), p)
    y = b.select(x.ge(0.0), 1.0, e) / (e + 1.0)
    return b.select(x.isnan(), x + x, y)


SINH_CUT = 22.0  # beyond it e^-|x| is below 2^-63 e^|x| (double evaluation only)


def sinh(b: Builder, x: Val, p: Prec) -> Val:
    a = b.fabs(x)
    t = expm1_core(b, clamp(b, a, 0.0, SINH_CUT), p)
    small = (t * 2.0 - t * t / (t + 1.0)) * 0.5  # |x| < 1: no cancellation
    mid = (t + t / (t + 1.0)) * 0.5
    big = exp_core(b, clamp(b, a, 0.0, 800.0), p, k=-1)  # e^|x| / 2, overflows to inf
    y = b.select(a.lt(1.0), small, b.select(a.le(SINH_CUT), mid, big))
    y = b.copysign(y, x)
    return b.select(x.isnan(), x + x, y)


def cosh(b: Builder, x: Val, p: Prec) -> Val:
    a = b.fabs(x)
    t = expm1_core(b, clamp(b, a, 0.0, SINH_CUT), p)
    w = t + 1.0
    small = t * t / (w + w) + 1.0  # |x| < ln2/2
    mid = w * 0.5 + 0.5 / w
    big = exp_core(b, clamp(b, a, 0.0, 800.0), p, k=-1)
    y = b.select(a.lt(0.3465), small, b.select(a.le(SINH_CUT), mid, big))
    return b.select(x.isnan(), x + x, y)


__all__ = ["exp", "exp2", "expm1", "tanh", "sigmoid", "sinh", "cosh", "F32"]
