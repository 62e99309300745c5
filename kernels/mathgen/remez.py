"""Weighted minimax polynomial fits (Remez exchange on a dense grid) in high precision.

Input: a target g(t), a weight w(t), an interval [a, b], the powers of t to use.
Output: coefficients c_k minimizing max_t |w(t) (g(t) - sum_k c_k t**p_k)|, rounded to float32
or float64 one at a time (each rounding is followed by a refit of the coefficients not yet
rounded, which recovers most of what the rounding costs).

The arithmetic is mpmath's at 60 digits: the float64 fits aim at errors near 2**-60, far below
what float64 least squares could resolve. Results are cached in `coeffs.json` next to this
file, keyed by the full fit specification, so regenerating the library is quick and
deterministic.
"""

from __future__ import annotations

import json
import pathlib

import mpmath as mp
import numpy as np

mp.mp.dps = 60
CACHE = pathlib.Path(__file__).with_name("coeffs.json")
_cache: dict | None = None


def _grid(a, b, n: int) -> list:
    """n Chebyshev-distributed points on [a, b] (dense near the ends), endpoints included."""
    a, b = mp.mpf(a), mp.mpf(b)
    return [(a + b) / 2 - (b - a) / 2 * mp.cos(mp.pi * i / (n - 1)) for i in range(n)]


def _solve_fixed(rows, rhs):
    return mp.lu_solve(mp.matrix(rows), mp.matrix(rhs))


def _remez(G, W, B, n_iter=40):
    """Discrete Remez: G, W target and weight at grid points, B[i] basis values at point i."""
    npts, n = len(G), len(B[0])
    # start from the extrema of the Chebyshev polynomial of degree n (mapped to grid indices)
    ref = sorted({int(round((npts - 1) * (1 - mp.cos(mp.pi * k / n)) / 2)) for k in range(n + 1)})
    if len(ref) != n + 1:
        raise ValueError("grid too coarse for this degree")
    best = None
    for _ in range(n_iter):
        rows = [list(B[i]) + [(-1) ** j / W[i]] for j, i in enumerate(ref)]
        sol = _solve_fixed(rows, [G[i] for i in ref])
        coef, lev = [sol[k] for k in range(n)], abs(sol[n])
        err = [W[i] * (G[i] - mp.fsum(c * bi for c, bi in zip(coef, B[i]))) for i in range(npts)]
        emax = max(abs(e) for e in err)
        if best is None or emax < best[1]:
            best = (coef, emax)
        if emax <= lev * (1 + mp.mpf("1e-4")):
            break
        # new reference: the extremum of each run of constant sign, then thin to n + 1 points
        runs, start = [], 0
        for i in range(1, npts + 1):
            if i == npts or (err[i] >= 0) != (err[start] >= 0):
                seg = range(start, i)
                runs.append(max(seg, key=lambda k: abs(err[k])))
                start = i
        if len(runs) > n + 1:
            # the run extrema alternate in sign: keep the window of n + 1 consecutive ones that
            # holds the largest error and has the largest smallest error
            top = max(range(len(runs)), key=lambda j: abs(err[runs[j]]))
            starts = range(max(0, top - n), min(top, len(runs) - n - 1) + 1)
            s0 = max(starts, key=lambda s: min(abs(err[r]) for r in runs[s:s + n + 1]))
            runs = runs[s0:s0 + n + 1]
        if len(runs) < n + 1:
            break  # degenerate (error already below what the grid can show)
        ref = runs
    return best


def _round(ty: str, v) -> float:
    return float(np.float32(float(v))) if ty == "float" else float(v)


def minimax(g, w, a, b, powers, ty: str, npts: int = 1200, fixed=None, target=None):
    """Fit sum_k c_k t**powers[k] to g on [a, b] with weight w; returns (coeffs, err).

    `fixed` maps a power to an already-chosen coefficient value (kept, not fitted). The
    returned coefficients are rounded to `ty` and `err` is the max weighted error on the grid
    with the rounded coefficients. With a `target`, a fit whose unrounded error already misses
    it by a factor 2 is returned unrounded at once (no use rounding it).
    """
    ts = _grid(a, b, npts)
    ts = [t if t != 0 else mp.mpf(b - a) * mp.mpf("1e-9") for t in ts]
    G = [g(t) for t in ts]
    W = [w(t) for t in ts]
    P = [[t**p for p in powers] for t in ts]
    chosen = dict(fixed or {})
    if target is not None:
        coef, err0 = _remez(G, W, P)
        if err0 > 2 * target:
            return [float(c) for c in coef], float(err0)
    while True:
        free = [k for k, p in enumerate(powers) if p not in chosen]
        if not free:
            break
        Gf = [G[i] - mp.fsum(chosen[p] * P[i][k] for k, p in enumerate(powers) if p in chosen)
              for i in range(npts)]
        Bf = [[P[i][k] for k in free] for i in range(npts)]
        coef, _ = _remez(Gf, W, Bf)
        # round the lowest free power (the one with the largest contribution) and refit
        chosen[powers[free[0]]] = mp.mpf(_round(ty, coef[0]))
    coeffs = [float(chosen[p]) for p in powers]
    err = max(abs(W[i] * (G[i] - mp.fsum(mp.mpf(c) * P[i][k] for k, c in enumerate(coeffs))))
              for i in range(npts))
    return coeffs, float(err)


def _load() -> dict:
    global _cache
    if _cache is None:
        _cache = json.loads(CACHE.read_text()) if CACHE.exists() else {}
    return _cache


def save() -> None:
    if _cache is not None:
        CACHE.write_text(json.dumps(_cache, indent=1, sort_keys=True) + "\n")


def fit(key: str, g, w, a, b, powers, ty: str, npts: int = 1200, target=None):
    """Cached `minimax`: `key` must name the function being fitted and how (the interval,
    powers and type are appended, so a changed specification refits)."""
    full = f"{key}|{ty}|{mp.nstr(mp.mpf(a), 17)}|{mp.nstr(mp.mpf(b), 17)}|{list(powers)}|{npts}"
    # fingerprint of the target and weight, so that editing either refits
    probe = [mp.mpf(a) + (mp.mpf(b) - mp.mpf(a)) * k / 7 for k in (2, 5)]
    full += "|" + ",".join(mp.nstr(f(t), 12) for t in probe for f in (g, w))
    if target is not None:
        full += f"|{target:.3g}"
    cache = _load()
    if full not in cache:
        coeffs, err = minimax(g, w, a, b, powers, ty, npts, target=target)
        cache[full] = {"coeffs": [c.hex() for c in coeffs], "err": err}
        print(f"fit {full}: err {err:.3g} (2^{np.log2(err) if err else -np.inf:.1f})")
        save()
    entry = cache[full]
    return [float.fromhex(c) for c in entry["coeffs"]], entry["err"]


def fit_auto(key: str, g, w, a, b, powers_of, ty: str, target: float, degrees, npts=1200):
    """The smallest degree in `degrees` whose fit meets `target`; `powers_of(d)` gives powers."""
    for d in degrees:
        coeffs, err = fit(f"{key}:d{d}", g, w, a, b, powers_of(d), ty, npts, target)
        if err <= target:
            return coeffs, err
    raise ValueError(f"{key}: no degree in {list(degrees)} reaches {target:g} (last {err:g})")
