"""The logarithm family: log, log2, log10, log1p, and pow.

Input: a `Builder`, the argument value(s), a `Prec`. Output: the result value.

Method: x = 2^e * m with m in [sqrt(1/2), sqrt(2)) read from the bits (subnormals are scaled
by 2^24 / 2^54 first), f = m - 1 exactly, s = f / (2 + f), and
log1p(f) = 2 atanh(s) = f - f^2/2 + s (f^2/2 + R(s^2)) with a minimax R (fdlibm's
arrangement: the large terms are exact, the rounding errors sit in small corrections).
log2/log10 multiply by a double-word 1/ln(b) and add e*log_b(2) through an exact two-sum.
pow evaluates log|x| as a double-word (relative error ~2^-64) and exp of y*log|x| from it.
"""

from __future__ import annotations

import mpmath as mp
import numpy as np
from common import Prec, clamp, dd_const, fast_two_sum, poly, powers, split_const, two_prod
from fexp import exp_poly, exp_reduce
from ir import FORMAT, Builder, Val

LN2 = mp.log(2)
S_MAX = (mp.sqrt(2) - 1) / (mp.sqrt(2) + 1) * mp.mpf("1.002")  # |s| bound, with margin
INF, NAN = float("inf"), float("nan")


def bits_of(ty: str, v: float) -> int:
    """The bit pattern of `v` rounded to `ty`, as a signed integer of that width."""
    if ty == "double":
        return int(np.float64(v).view(np.int64))
    return int(np.float32(v).view(np.int32))


def log_reduce(b: Builder, x: Val, p: Prec) -> tuple[Val, Val]:
    """e (as a float), f with x = 2^e (1 + f), 1 + f in [sqrt(1/2), sqrt(2)), for finite
    x > 0 (other inputs give harmless garbage, selected away by the callers)."""
    mant, _ = FORMAT[p.ty]
    tiny, k = (2.0**-126, 24) if p.ty == "float" else (2.0**-1022, 54)
    sub = x.lt(tiny)
    xs = b.select(sub, x * 2.0**k, x)
    ix = b.bits(xs)
    # subtracting the bits of sqrt(1/2) makes the exponent field step at sqrt(1/2) * 2^e
    kk = (ix - bits_of(p.ty, float(mp.sqrt(0.5)))) >> mant
    m = b.from_bits(ix - (kk << mant))
    e = b.to_float(kk - b.select(sub, b.c(k, kk.ty), b.c(0, kk.ty)))
    return e, m - 1.0


def log1p_lo(b: Builder, f: Val, p: Prec) -> Val:
    """log1p(f) - f for |f| <= 0.4143, as s (f^2/2 + R) - f^2/2."""
    c = poly("log_R", p, lambda z: 2 * mp.atanh(mp.sqrt(z)) / mp.sqrt(z) - 2,
             lambda z: 1 / (2 * mp.atanh(mp.sqrt(z)) / mp.sqrt(z)), 0, S_MAX**2, powers(1))
    s = f / (f + 2.0)
    z = s * s
    hfsq = f * f * 0.5
    return b.fma(s, hfsq + z * b.horner(z, c), -hfsq)


def log_combine(b: Builder, e: Val, f: Val, lo: Val, p: Prec, base: str) -> Val:
    """e*log_b(2) + (f + lo)/ln(b), rounded once at the end (nearly)."""
    ebits = 24 - 9 if p.ty == "float" else 53 - 12  # |e| < 2^11: e * c_hi is exact
    if base == "e":
        c_hi, c_lo = split_const(LN2, ebits, p.ty)
        s, err = fast_two_sum(b, e * c_hi, f)  # |e*c_hi| >= 0.69 > |f| unless e == 0
        return s + (err + b.fma(e, c_lo, lo))
    il = 1 / mp.log(2) if base == "2" else 1 / mp.log(10)
    il_hi, il_lo = dd_const(il, p.ty)
    c_hi, c_lo = split_const(LN2 * il, ebits, p.ty) if base == "10" else (1.0, 0.0)
    ph, pl = two_prod(b, f, il_hi)
    small = b.fma(lo, il_hi, b.fma(f, il_lo, pl))
    if c_lo:
        small = b.fma(e, c_lo, small)
    s, err = fast_two_sum(b, e * c_hi if c_hi != 1.0 else e, ph)
    return s + (err + small)


def log_specials(b: Builder, x: Val, y: Val, at_zero: float = 0.0) -> Val:
    """log-style special values: +inf -> +inf, below `at_zero` -> NaN, `at_zero` -> -inf."""
    y = b.select(x.eq(INF), x, y)
    y = b.select(x.lt(at_zero), NAN, y)
    y = b.select(x.eq(at_zero), -INF, y)
    return b.select(x.isnan(), x + x, y)


def log(b: Builder, x: Val, p: Prec, base: str = "e") -> Val:
    e, f = log_reduce(b, x, p)
    return log_specials(b, x, log_combine(b, e, f, log1p_lo(b, f, p), p, base))


def log1p(b: Builder, x: Val, p: Prec) -> Val:
    """log(u) + c/u where u + c == 1 + x exactly (c is the rounding error of 1 + x)."""
    u = x + 1.0
    # two-sum of 1 and x (either may be the larger)
    xx = u - x
    c = (b.c(1.0) - xx) + (x - (u - xx))
    e, f = log_reduce(b, u, p)
    lo = log1p_lo(b, f, p) + c / u
    y = log_combine(b, e, f, lo, p, "e")
    y = b.select(x.eq(0.0), x, y)  # keeps -0, and tiny x exactly
    return log_specials(b, x, y, at_zero=-1.0)


# --- pow ----------------------------------------------------------------------------------------
def _dd_mul(b, ah, al, bh, bl):
    """(ah + al) * (bh + bl) as a double-word (products of the low parts dropped)."""
    ph, pl = two_prod(b, ah, bh)
    pl = b.fma(ah, bl, b.fma(al, bh, pl))
    return fast_two_sum(b, ph, pl)


def log_dd(b: Builder, ax: Val, p: Prec) -> tuple[Val, Val]:
    """log(ax) for finite ax > 0 as hi + lo with relative error about 2^-64: 2s and (2/3)s^3
    in double-word arithmetic, s^5 P(s^2) in double (it is < 2^-14 of the result)."""
    e, f = log_reduce(b, ax, p)
    d, dl = fast_two_sum(b, b.c(2.0), f)  # 2 + f, exactly
    sh = f / d
    sl = (b.fma(-sh, d, f) - sh * dl) / d  # f - sh*d is exact (division remainder)
    zh, zl = _dd_mul(b, sh, sl, sh, sl)
    th, tl = _dd_mul(b, zh, zl, sh, sl)  # s^3
    c23h, c23l = dd_const(mp.mpf(2) / 3)
    uh, ul = _dd_mul(b, th, tl, c23h, c23l)  # (2/3) s^3
    c = poly("log_P5", p, lambda z: (2 * mp.atanh(mp.sqrt(z)) - 2 * mp.sqrt(z)
                                     - mp.mpf(2) / 3 * z * mp.sqrt(z)) / z**2 / mp.sqrt(z),
             lambda z: 128 * z**2 / (2 * mp.atanh(mp.sqrt(z)) / mp.sqrt(z)),
             0, S_MAX**2, powers(0))
    tail = th * zh * b.horner(zh, c)  # s^5 P(s^2)
    # sum: 2s + (2/3)s^3 + tail, then + e*ln2, each as a double-word
    h, lo = fast_two_sum(b, sh * 2.0, uh)
    lo = lo + (sl * 2.0 + (ul + tail))
    h, lo = fast_two_sum(b, h, lo)
    ln2h, _ = split_const(LN2, 53 - 12)
    ln2m = float(LN2 - mp.mpf(ln2h))
    ln2l = float(LN2 - mp.mpf(ln2h) - mp.mpf(ln2m))
    eh, el = two_prod(b, e, ln2m)  # e*ln2h is exact
    el = b.fma(e, ln2l, el)
    s1, s2 = fast_two_sum(b, e * ln2h, h)
    s1, s3 = fast_two_sum(b, s1, eh)
    return fast_two_sum(b, s1, s2 + s3 + lo + el)


def pow(b: Builder, x: Val, y: Val, p: Prec) -> Val:
    """x^y with C99 Annex F special cases."""
    ax = b.fabs(x)
    if p.f64:
        lh, ll = log_dd(b, ax, p)
        yh, yl = two_prod(b, y, lh)
        yl = b.fma(y, ll, yl)
    else:  # float32 results: double evaluation has 2^-45 to spare
        e, f = log_reduce(b, ax, p)
        yh = y * log_combine(b, e, f, log1p_lo(b, f, p), p, "e")
        yl = b.c(0.0)
    yc = clamp(b, yh, -800.0, 800.0)
    n, r = exp_reduce(b, yc, p)
    r = r + b.select(yh.eq(yc), yl, 0.0)
    mag = b.scale2((r + exp_poly(b, r, p)) + 1.0, b.to_int(n))

    y_int = b.rint(y).eq(y)
    y_odd = b.and_(y_int, b.rint(y * 0.5).ne(y * 0.5))
    neg = x.lt(0.0)
    flip = b.and_(neg, y_odd)
    res = b.select(flip, -mag, mag)
    res = b.select(b.and_(neg, b.not_(y_int)), NAN, res)  # finite x < 0, y not an integer
    # x = +-0 and x = +-inf: magnitude 0 or inf, odd integer y keeps the sign of x
    x_inf = ax.eq(INF)
    big = b.binop("xor", y.lt(0.0), x_inf)
    zmag = b.select(big, INF, 0.0)
    res = b.select(b.or_(x.eq(0.0), x_inf), b.select(y_odd, b.copysign(zmag, x), zmag), res)
    # y = +-inf: 1 for |x| = 1, else 0 or inf by whether |x| < 1 and the sign of y
    y_inf = b.fabs(y).eq(INF)
    grow = b.binop("xor", ax.gt(1.0), y.lt(0.0))
    yinf = b.select(ax.eq(1.0), 1.0, b.select(grow, INF, 0.0))
    res = b.select(y_inf, yinf, res)
    res = b.select(b.or_(x.isnan(), y.isnan()), x + y, res)
    return b.select(b.or_(x.eq(1.0), y.eq(0.0)), 1.0, res)
