"""Trigonometric functions: sin, cos, tan, asin, acos, atan, atan2 (double evaluation).

Input: a `Builder`, the argument value(s) (double), a `Prec`. Output: the result value.

sin/cos/tan: a branch-free Payne-Hanek reduction valid for every finite double. With
x = M 2^(E-52), only the bits of 2/pi from position max(1, E-53) on matter modulo 4; a table
indexed by E holds the next 4 x 53 bits as four doubles C0..C3 (C0..C2 suffice for float32
arguments). Exact products x*Cj (fma two-products), exact removal of multiples of 4 and of
integers, and error-free two-sums give x*2/pi - n = rh + rl with an absolute error near
2^-150, so even the closest approaches of doubles to multiples of pi/2 (~2^-61) keep full
relative accuracy. |x| <= pi/4 skips the reduction. Then sin/cos minimax polynomials on
[-pi/4, pi/4] with the low word folded in, and a quadrant select; tan = sin/cos.

Inverse functions: atan reduces |x| with one division to |t| <= tan(pi/8) (t = x, (x-1)/(x+1)
or -1/x, plus 0, pi/4 or pi/2 as double-words); atan2 does the same with y and x (and the
pi - ... reflection for x < 0, every C99 special case as selects); asin/acos use
asin(a) = pi/2 - 2 asin(sqrt((1-a)/2)) above 1/2, with the square root's rounding error
recovered by a fused multiply-add.
"""

from __future__ import annotations

import mpmath as mp
from common import Prec, dd_const, fast_two_sum, poly, powers, two_prod
from ir import Builder, Module, Val

TABLE = "tj_2_over_pi_bits"
N_ENTRIES = 970  # exponent E of x: entry max(0, E - 54); E <= 1023
BIG_E, BIG_SCALE = 600, 600  # x >= 2^600 is scaled by 2^-600 (the entries by 2^600)
PI = mp.pi
INF, NAN = float("inf"), float("nan")


def _two_over_pi_chunks() -> list[float]:
    """Entry i, chunk j: bits k0 + 53j ... k0 + 53j + 52 of 2/pi (k0 = i + 1), as a double."""
    nbits = N_ENTRIES + 4 * 53 + 64
    with mp.workprec(nbits + 64):
        big = int(mp.floor(2 / mp.pi * mp.mpf(2) ** nbits))
    out = []
    for i in range(N_ENTRIES):
        k0 = i + 1
        scale = BIG_SCALE if i + 54 > BIG_E else 0
        for j in range(4):
            last = k0 + 53 * j + 52  # position of the chunk's last bit
            chunk = (big >> (nbits - last)) & ((1 << 53) - 1)
            out.append(float(mp.ldexp(chunk, scale - last)))
    return out


def add_tables(m: Module) -> None:
    m.table(TABLE, "double", _two_over_pi_chunks())


def _rint_mod(b: Builder, v: Val, m: float) -> Val:
    """v - m*rint(v/m), exact for a power of two m."""
    return v - b.rint(v * (1 / m)) * m


def rem_pio2(b: Builder, x: Val, nchunks: int) -> tuple[Val, Val, Val]:
    """x * 2/pi = N + (rh + rl), |rh| <= ~1/2, for finite x; returns rh, rl, N mod 4 (i64)."""
    e = (b.bits(x).lshr(52) & 0x7FF) - 1023
    xs = b.select(e.gt(BIG_E), x * 2.0**-BIG_SCALE, x)
    idx = e - 54
    base = b.select(idx.lt(0), b.c(0, "i64"), idx) * 4
    c = [b.load_table(TABLE, "double", base + j) for j in range(nchunks)]
    p0, e0 = two_prod(b, xs, c[0])  # |p0| < 2^55
    p1, e1 = two_prod(b, xs, c[1])  # |p1| < 4
    p0, e0 = _rint_mod(b, p0, 4.0), _rint_mod(b, e0, 4.0)
    # big parts: exact two-sums, each followed by the exact removal of an integer
    s = p0 + e0
    yy = s - p0
    t = (p0 - (s - yy)) + (e0 - yy)
    n1 = b.rint(s)
    s = s - n1  # exact
    p1 = _rint_mod(b, p1, 4.0)
    s2 = s + p1
    yy = s2 - s
    t2 = (s - (s2 - yy)) + (p1 - yy)
    n2 = b.rint(s2)
    s = s2 - n2
    # the remaining terms are small: add them with error-free sums; their rounding errors
    # are then tiny relative to the (possibly cancelled) result
    lo = b.c(0.0)
    terms = [t, t2, e1]
    if nchunks > 2:
        p2, e2 = two_prod(b, xs, c[2])
        terms.append(p2)
        rest = e2 + xs * c[3] if nchunks > 3 else None
    for v in terms:
        s2 = s + v
        yy = s2 - s
        lo = lo + ((s - (s2 - yy)) + (v - yy))
        s = s2
    if nchunks > 3:
        lo = lo + rest
    rh, rl = fast_two_sum(b, s, lo)
    q = b.to_int(n1 + n2) & 3
    return rh, rl, q


def _sincos_polys(b: Builder, rh: Val, rl: Val, p: Prec) -> tuple[Val, Val]:
    """sin and cos of rh + rl, |rh| <= pi/4 (+ a little)."""
    zmax = (PI / 4) ** 2 * mp.mpf("1.001")
    cs = poly("sin", p, lambda z: (mp.sin(mp.sqrt(z)) - mp.sqrt(z)) / z / mp.sqrt(z),
              lambda z: z * mp.sqrt(z) / mp.sin(mp.sqrt(z)), 0, zmax, powers(0))
    cc = poly("cos", p, lambda z: (mp.cos(mp.sqrt(z)) - 1 + z / 2) / z**2,
              lambda z: z**2 / mp.cos(mp.sqrt(z)), 0, zmax, powers(0))
    z = rh * rh
    zerr = b.fma(rh, rh, -z)
    hz = z * 0.5
    sin_r = rh + b.fma(rh * z, b.horner(z, cs), rl * (1.0 - hz))
    w = 1.0 - hz
    corr = b.fma(z * z, b.horner(z, cc), -b.fma(rh, rl, zerr * 0.5))
    cos_r = w + (((1.0 - w) - hz) + corr)
    return sin_r, cos_r


def _reduced(b: Builder, x: Val, p: Prec):
    """(sin r, cos r, quadrant, finite) for x = q pi/2 + r."""
    ax = b.fabs(x)
    finite = ax.lt(INF)
    fh, fl, q = rem_pio2(b, b.select(finite, x, 0.0), 4 if p.f64 else 3)
    pio2h, pio2l = dd_const(PI / 2)
    rh, t = two_prod(b, fh, pio2h)
    rh, rl = fast_two_sum(b, rh, b.fma(fh, pio2l, b.fma(fl, pio2h, t)))
    small = ax.le(float(PI / 4) * (1 - 2**-40))
    rh = b.select(small, x, rh)
    rl = b.select(small, 0.0, rl)
    q = b.select(small, b.c(0, "i64"), q)
    s, c = _sincos_polys(b, rh, rl, p)
    return s, c, q, finite


def sin(b: Builder, x: Val, p: Prec) -> Val:
    s, c, q, finite = _reduced(b, x, p)
    v = b.select((q & 1).ne(0), c, s)
    v = b.select((q & 2).ne(0), -v, v)
    v = b.select(x.eq(0.0), x, v)
    return b.select(finite, v, x - x)


def cos(b: Builder, x: Val, p: Prec) -> Val:
    s, c, q, finite = _reduced(b, x, p)
    v = b.select((q & 1).ne(0), s, c)
    v = b.select(((q + 1) & 2).ne(0), -v, v)
    return b.select(finite, v, x - x)


def tan(b: Builder, x: Val, p: Prec) -> Val:
    s, c, q, finite = _reduced(b, x, p)
    odd = (q & 1).ne(0)
    v = b.select(odd, -c, s) / b.select(odd, s, c)
    v = b.select(x.eq(0.0), x, v)
    return b.select(finite, v, x - x)


# --- inverse functions ---------------------------------------------------------------------------
T8 = mp.tan(PI / 8)  # sqrt(2) - 1
T38 = mp.tan(3 * PI / 8)  # sqrt(2) + 1


def _atan_poly(b: Builder, t: Val, p: Prec) -> Val:
    """atan(t) - t for |t| <= tan(pi/8)."""
    c = poly("atan", p, lambda z: (mp.atan(mp.sqrt(z)) - mp.sqrt(z)) / z / mp.sqrt(z),
             lambda z: z * mp.sqrt(z) / mp.atan(mp.sqrt(z)), 0, T8**2 * mp.mpf("1.001"),
             powers(0))
    return t * (t * t) * b.horner(t * t, c)


def _dd_select(b: Builder, conds, consts):
    """Select among double-word constants: consts[i] where conds[i] holds (first wins),
    else consts[-1]."""
    hi, lo = b.c(consts[-1][0]), b.c(consts[-1][1])
    for cond, (h, lv) in reversed(list(zip(conds, consts[:-1]))):
        hi, lo = b.select(cond, h, hi), b.select(cond, lv, lo)
    return hi, lo


def atan(b: Builder, x: Val, p: Prec) -> Val:
    a = b.fabs(x)
    c_big, c_mid = a.gt(float(T38)), a.gt(float(T8))
    num = b.select(c_big, -1.0, b.select(c_mid, a - 1.0, a))
    den = b.select(c_big, a, b.select(c_mid, a + 1.0, 1.0))
    t = num / den
    bh, bl = _dd_select(b, [c_big, c_mid], [dd_const(PI / 2), dd_const(PI / 4), (0.0, 0.0)])
    v = bh + (t + (_atan_poly(b, t, p) + bl))
    return b.copysign(v, x)


def atan2(b: Builder, y: Val, x: Val, p: Prec) -> Val:
    ax, ay = b.fabs(x), b.fabs(y)
    # atan2 is scale-invariant: scale pairs of subnormal-range values up (exactly), so the
    # compares below see all their bits, and huge pairs down a little, so ay + ax is finite
    # (this may flush a subnormal partner, whose ratio to the other is then below 2^-2000)
    m = b.select(ax.gt(ay), ax, ay)
    sc = b.select(m.lt(2.0**-900), 2.0**600, b.select(m.gt(2.0**1000), 2.0**-4, 1.0))
    ax, ay = ax * sc, ay * sc
    c_big = ay.gt(ax * float(T38))
    c_mid = ay.gt(ax * float(T8))
    num = b.select(c_big, -ax, b.select(c_mid, ay - ax, ay))
    den = b.select(c_big, ay, b.select(c_mid, ay + ax, ax))
    t = num / den
    xneg = b.bits(x).lt(0)  # includes -0 and -inf
    core = t + _atan_poly(b, t, p)
    core = b.select(xneg, -core, core)
    pos = [dd_const(PI / 2), dd_const(PI / 4), (0.0, 0.0)]
    neg = [dd_const(PI / 2), dd_const(3 * PI / 4), dd_const(PI)]
    ph, pl = _dd_select(b, [c_big, c_mid], pos)
    nh, nl = _dd_select(b, [c_big, c_mid], neg)
    bh, bl = b.select(xneg, nh, ph), b.select(xneg, nl, pl)
    v = bh + (core + bl)
    # x and y both zero or both infinite: the ratio is undefined, the angle is not
    zero_or_inf = b.or_(b.and_(ax.eq(0.0), ay.eq(0.0)), b.and_(ax.eq(INF), ay.eq(INF)))
    special = b.select(ax.eq(0.0), b.select(xneg, float(PI), 0.0),
                       b.select(xneg, float(3 * PI / 4), float(PI / 4)))
    v = b.select(zero_or_inf, special, v)
    v = b.copysign(v, y)
    return b.select(b.or_(x.isnan(), y.isnan()), x + y, v)


def _asin_parts(b: Builder, x: Val, p: Prec):
    """For a = |x|: big = a > 1/2; v + v_lo + v z P(z) = asin(v) with v = a (small) or
    v = sqrt((1 - a)/2) (big), v_lo recovering the square root's rounding error."""
    a = b.fabs(x)
    big = a.gt(0.5)
    zb = (1.0 - a) * 0.5  # exact for a in [1/2, 1]
    z = b.select(big, zb, a * a)
    w = b.sqrt(zb)
    w_lo = b.select(zb.gt(0.0), b.fma(-w, w, zb) / (w * 2.0), 0.0)
    v = b.select(big, w, a)
    v_lo = b.select(big, w_lo, 0.0)
    c = poly("asin", p, lambda z: (mp.asin(mp.sqrt(z)) - mp.sqrt(z)) / z / mp.sqrt(z),
             lambda z: z * mp.sqrt(z) / mp.asin(mp.sqrt(z)), 0, mp.mpf("0.25"), powers(0))
    tail = v_lo + v * z * b.horner(z, c)
    return a, big, v, tail


def asin(b: Builder, x: Val, p: Prec) -> Val:
    a, big, v, tail = _asin_parts(b, x, p)
    pio2h, pio2l = dd_const(PI / 2)
    h, e = fast_two_sum(b, b.c(pio2h), v * -2.0)
    r_big = h + (e + (pio2l - tail * 2.0))
    r = b.select(big, r_big, v + tail)
    r = b.copysign(r, x)
    return b.select(a.gt(1.0), NAN, r)


def acos(b: Builder, x: Val, p: Prec) -> Val:
    a, big, v, tail = _asin_parts(b, x, p)
    pio2h, pio2l = dd_const(PI / 2)
    pih, pil = dd_const(PI)
    r_small = pio2h - (b.copysign(v + tail, x) - pio2l)
    r_pos = v * 2.0 + tail * 2.0  # 2 asin(sqrt((1-x)/2))
    h, e = fast_two_sum(b, b.c(pih), v * -2.0)
    r_neg = h + (e + (pil - tail * 2.0))  # pi - 2 asin(sqrt((1+x)/2))
    r = b.select(big, b.select(x.lt(0.0), r_neg, r_pos), r_small)
    return b.select(a.gt(1.0), NAN, r)
