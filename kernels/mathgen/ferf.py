"""erf.

Input: a `Builder`, the argument, a `Prec`. Output: erf(x).

Method: |x| <= T: erf(x) = x P(x^2) (minimax, relative error). T < |x|: erf = 1 - erfc with
erfc(x) = e^(-x^2) R(1/x), where R(1/x) = e^(x^2) erfc(x) is a minimax fit weighted by
e^(-x^2) (the absolute error that reaches erf), x^2 is split exactly as h + l by a fused
multiply-add and e^(-h - l) = e^(-h) (1 - l). Beyond X_MAX erf rounds to +-1. Both branches
are computed and selected.
"""

from __future__ import annotations

import mpmath as mp
from common import Prec, clamp, dd_const, poly, powers, two_prod
from fexp import exp_core
from ir import Builder, Val


def _limits(p: Prec) -> tuple[float, float]:
    return (1.0, 4.0) if p.ty == "float" else (1.5, 6.0)


def erf(b: Builder, x: Val, p: Prec) -> Val:
    t_split, x_max = _limits(p)
    a = b.fabs(x)
    # erf(x) = x (c0 + z Q(z)), z = x^2, with c0 = 2/sqrt(pi) as a double-word: rounding c0
    # alone would cost float32 half an ulp
    c0 = 2 / mp.sqrt(mp.pi)
    c0h, c0l = dd_const(c0, p.ty)
    cs = poly("erf_small", p, lambda z: (mp.erf(mp.sqrt(z)) / mp.sqrt(z) - c0) / z,
              lambda z: z / (mp.erf(mp.sqrt(z)) / mp.sqrt(z)), 0, t_split**2, powers(0))
    small = b.fma(x, c0h, x * b.fma(x * x, b.horner(x * x, cs), c0l))

    def erfcx_inv(t):  # e^(x^2) erfc(x) at x = 1/t
        return mp.erfc(1 / t) * mp.exp(1 / t**2)

    cb = poly("erfc_R", p, erfcx_inv, lambda t: mp.exp(-1 / t**2), 1 / mp.mpf(x_max),
              1 / mp.mpf(t_split), powers(0))
    ac = clamp(b, a, t_split, x_max)
    h, lo = two_prod(b, ac, ac)
    e = exp_core(b, -h, p)
    erfc = (e - e * lo) * b.horner(1.0 / ac, cb)
    big = b.copysign(1.0 - erfc, x)
    y = b.select(a.le(t_split), small, big)
    y = b.select(x.eq(0.0), x, y)  # keeps -0
    return b.select(x.isnan(), x + x, y)
