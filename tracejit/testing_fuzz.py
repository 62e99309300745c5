"""Random well-typed tracejit programs, for differential fuzzing (needs `hypothesis`).

`programs()` is a hypothesis strategy of `Program`s: a small random DAG of tracejit ops over 1-3
inputs (shapes that broadcast, dtypes float32/float64/int32/bool): elementwise math (with
domain-safe variants such as ``log(abs(x) + 1)``), comparisons and `where`, casts, reductions
(sum/amax/amin/mean/max over random dims, keepdim), reshape/transpose/permute/flip/slices with
steps/unsqueeze, basic and integer-array indexing, `cat`, `matmul` where shapes allow, and
control flow (`cond` on a data-dependent predicate, `fori_loop` with a small trip count).

A program is Python source (`Program.source`), so a failing example prints as a function that
can be pasted into a regression test; `Program.fn()` compiles that source, `Program.args()`
makes its inputs (deterministic: drawn from the program's seed). While drawing, every step is run
eagerly on those inputs to learn its shape and dtype, so only well-typed steps are kept.

`check_program(p)` runs a program with ``device="cpu"`` and ``device="interpreter"`` and
compares (exactly for integers and bools; floats within a tolerance scaled by the largest
intermediate magnitude, NaN positions equal); `check_grad(p)` compares ``tj.grad`` of a scalar
reduction of a float64 program's float outputs against central finite differences.

Numerical discontinuities (comparisons, floor/round, float-to-int casts, `cond` predicates) are
only applied to values that both backends compute bit-identically ("exact" values: inputs, and
what exact ops such as negation, max/min, reshapes and indexing make of them); elsewhere a
one-ulp difference of, say, `sin` would legitimately flip a comparison.

Example::

    from hypothesis import given, settings
    from tracejit.testing_fuzz import programs, check_program

    @settings(max_examples=200, deadline=None)
    @given(programs())
    def test_my_backend(p):
        check_program(p)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

import tracejit as tj

try:
    from hypothesis import assume
    from hypothesis import strategies as st
except ImportError:  # pragma: no cover
    st = None

__all__ = ["Program", "programs", "check_program", "check_grad", "run_program"]

FLOAT_DT = ("float32", "float64")
DT = {"float32": tj.float32, "float64": tj.float64, "int32": tj.int32, "bool": tj.bool,
      "int64": tj.int64}
# float tolerance (rtol, atol per unit of the program's largest magnitude): a few ops compose,
# so looser than one op's conformance tolerance (float32 2e-5/2e-6, float64 1e-10/1e-12)
TOL = {"float32": (1e-4, 1e-5), "float64": (1e-9, 1e-11)}


@dataclass
class Program:
    """A random program: inputs ``(shape, dtype)``, body lines of Python, outputs."""

    inputs: list
    lines: list = field(default_factory=list)
    outputs: list = field(default_factory=list)
    seed: int = 0
    float_dtype: str = "float32"
    scale: float = 1.0  # largest |value| of any step (on the program's inputs)

    @property
    def source(self) -> str:
        params = ", ".join(f"v{i}" for i in range(len(self.inputs)))
        body = "".join(f"    {ln}\n" for ln in self.lines)
        outs = ", ".join(f"v{i}" for i in self.outputs)
        return f"def prog({params}):\n{body}    return ({outs},)\n"

    def fn(self):
        env = {"tj": tj, "np": np}
        exec(compile(self.source, "<fuzz program>", "exec"), env)  # noqa: S102
        return env["prog"]

    def args(self) -> list[np.ndarray]:
        return make_inputs(self.inputs, self.seed)

    def __repr__(self) -> str:
        ins = ", ".join(f"{dt}{list(s)}" for s, dt in self.inputs)
        return f"Program(inputs=[{ins}], seed={self.seed})\n{self.source}"


def make_inputs(specs, seed: int) -> list[np.ndarray]:
    r = np.random.default_rng(seed)
    out = []
    for shape, dt in specs:
        if dt == "float64":  # continuous values: away from kinks (finite differences)
            a = r.uniform(-3, 3, shape)
        elif dt == "float32":  # a grid: equal values happen (==, where, max ties)
            a = np.round(r.uniform(-3, 3, shape) * 4) / 4
        elif dt == "int32":
            a = r.integers(-5, 6, shape)
        else:
            a = r.random(shape) < 0.5
        out.append(np.asarray(a, dtype=dt))
    return out


# -- drawing ---------------------------------------------------------------------------------

class _Val:
    __slots__ = ("name", "t", "exact")

    def __init__(self, name, t, exact):
        self.name, self.t, self.exact = name, t, exact

    @property
    def shape(self):
        return tuple(self.t.shape)

    @property
    def dt(self) -> str:
        return self.t.dtype.name


def _bcast(a, b) -> bool:
    try:
        np.broadcast_shapes(a, b)
        return True
    except ValueError:
        return False


UNARY_F = {  # name -> (template, exact)
    "neg": ("-{x}", True), "abs": ("tj.abs({x})", True), "relu": ("tj.relu({x})", True),
    "sin": ("tj.sin({x})", False), "cos": ("tj.cos({x})", False),
    "tanh": ("tj.tanh({x})", False), "sigmoid": ("tj.sigmoid({x})", False),
    "exp": ("tj.exp(tj.clamp({x}, max=4.0))", False),
    "log": ("tj.log(tj.abs({x}) + 1)", False), "sqrt": ("tj.sqrt({x} * {x} + 1)", False),
    "square": ("tj.square({x})", False), "scale": ("({x} * 1.5 - 0.25)", False),
    "erf": ("tj.erf({x})", False), "atan": ("tj.atan({x})", False),
    "softplus": ("tj.nn.functional.softplus({x})" if hasattr(tj.nn.functional, "softplus")
                 else "tj.log1p(tj.exp(-tj.abs({x}))) + tj.relu({x})", False),
}
UNARY_DISC = {"floor": "tj.floor({x})", "round": "tj.round({x})", "sign": "tj.sign({x})"}
UNARY_I = {"neg": "-{x}", "abs": "tj.abs({x})", "square": "({x} * {x})",
           "addc": "({x} + 3)", "clamp": "tj.clamp({x}, -4, 4)"}
BINARY_F = {"add": ("({a} + {b})", False), "sub": ("({a} - {b})", False),
            "mul": ("({a} * {b})", False), "max": ("tj.maximum({a}, {b})", True),
            "min": ("tj.minimum({a}, {b})", True), "div": ("({a} / (tj.abs({b}) + 1))", False),
            "atan2": ("tj.atan2({a}, tj.abs({b}) + 0.5)", False)}
BINARY_I = {"add": "({a} + {b})", "sub": "({a} - {b})", "mul": "({a} * {b})",
            "max": "tj.maximum({a}, {b})", "min": "tj.minimum({a}, {b})",
            "floordiv": "({a} // (tj.abs({b}) + 1))", "rem": "tj.remainder({a}, tj.abs({b}) + 1)"}
BINARY_B = {"and": "tj.logical_and({a}, {b})", "or": "tj.logical_or({a}, {b})",
            "xor": "({a} != {b})"}
CMP = {"lt": "({a} < {b})", "le": "({a} <= {b})", "gt": "({a} > {b})", "eq": "({a} == {b})",
       "ne": "({a} != {b})"}
KINDS = ("unary", "unary", "binary", "binary", "cmp", "where", "cast", "reduce", "reduce",
         "reshape", "transpose", "flip", "slice", "index", "gather", "cat", "matmul", "cond",
         "fori", "unsqueeze")


def _kind(v: _Val) -> str:
    return "f" if v.dt.startswith("float") else ("b" if v.dt == "bool" else "i")


if st is not None:
    @st.composite
    def programs(draw, max_inputs: int = 3, max_steps: int = 8, float_dtypes=FLOAT_DT,
                 kinds=KINDS):
        """A strategy of `Program`s (see the module docstring)."""
        fdt = draw(st.sampled_from(list(float_dtypes)))
        n_in = draw(st.integers(1, max_inputs))
        ndim = draw(st.sampled_from([2, 1, 3, 0]))
        base = tuple(draw(st.lists(st.integers(2, 5), min_size=ndim, max_size=ndim)))
        specs = []
        for k in range(n_in):
            drop = draw(st.integers(0, ndim))  # leading dims dropped, others maybe 1
            shape = tuple(1 if draw(st.booleans()) and draw(st.booleans()) else d
                          for d in base[drop:])
            dt = fdt if k == 0 else draw(st.sampled_from([fdt, fdt, "int32", "bool"]))
            specs.append((shape, dt))
        seed = draw(st.integers(0, 2 ** 16))
        p = Program(specs, seed=seed, float_dtype=fdt)
        vals = [_Val(f"v{i}", tj.tensor(a), True) for i, a in enumerate(p.args())]
        env = {"tj": tj, "np": np}
        n_steps = draw(st.integers(min(3, max_steps), max_steps))
        for _ in range(n_steps):
            kind = draw(st.sampled_from(list(kinds)))
            made = _step(draw, kind, vals, fdt)
            if made is None:
                continue
            expr, exact = made
            name = f"v{len(vals)}"
            env.update({v.name: v.t for v in vals})
            try:
                t = eval(expr, env)  # noqa: S307 (our own source)
            except Exception as e:  # a step we typed wrongly: not a program
                raise AssertionError(f"fuzz generator made an ill-typed step {expr}: "
                                     f"{type(e).__name__}: {e}") from e
            if t.numel() == 0 or t.numel() > 4096:
                continue
            p.lines.append(f"{name} = {expr}")
            vals.append(_Val(name, t, exact))
        assume(len(vals) > n_in)
        # outputs: the last value, sometimes one more
        outs = [len(vals) - 1]
        if len(vals) > 2 and draw(st.booleans()):
            outs.insert(0, draw(st.integers(0, len(vals) - 2)))
        p.outputs = outs
        mags = [float(np.max(np.abs(np.asarray(v.t.numpy(), np.float64)), initial=0.0))
                for v in vals if v.dt != "bool"]
        mags = [m for m in mags if math.isfinite(m)]
        p.scale = max([1.0] + mags)
        return p
else:  # pragma: no cover
    def programs(*a, **k):
        raise ImportError("tracejit.testing_fuzz needs hypothesis")


def _pick(draw, vals, pred=lambda v: True):
    cands = [v for v in vals if pred(v)]
    if not cands:
        return None
    if draw(st.booleans()):  # the latest value: deep chains, not only ops on the inputs
        return cands[-1]
    return draw(st.sampled_from(cands))


def _dims(draw, nd):
    return draw(st.lists(st.integers(-nd, nd - 1), min_size=1, max_size=nd,
                         unique_by=lambda d: d % nd))


def _step(draw, kind, vals, fdt):  # noqa: C901 (one branch per kind)
    """One step of `kind` over `vals`: (expression, exact?) or None if none applies."""
    x = _pick(draw, vals)
    k = _kind(x)
    if kind == "unary":
        if k == "f":
            if x.exact and draw(st.integers(0, 3)) == 0:
                return draw(st.sampled_from(sorted(UNARY_DISC.values()))).format(x=x.name), True
            tpl, ex = UNARY_F[draw(st.sampled_from(sorted(UNARY_F)))]
            return tpl.format(x=x.name), ex and x.exact
        if k == "i":
            return draw(st.sampled_from(sorted(UNARY_I.values()))).format(x=x.name), x.exact
        return f"tj.logical_not({x.name})", x.exact
    if kind in ("binary", "cmp"):
        if kind == "cmp":
            x = _pick(draw, vals, lambda v: v.exact and v.dt != "bool")
            if x is None:
                return None
        y = _pick(draw, vals, lambda v: _bcast(v.shape, x.shape) and _kind(v) == _kind(x)
                  and (kind != "cmp" or v.exact))
        if y is None:
            return None
        b = y.name if draw(st.integers(0, 4)) else ("2.5" if _kind(x) == "f" else "2")
        if kind == "cmp":
            if b == "2.5" or b == "2":
                b = "0.5" if _kind(x) == "f" else "1"
            return draw(st.sampled_from(sorted(CMP.values()))).format(a=x.name, b=b), True
        if k == "f":
            tpl, ex = BINARY_F[draw(st.sampled_from(sorted(BINARY_F)))]
            ex = ex and x.exact and y.exact and b == y.name
            return tpl.format(a=x.name, b=b), ex
        if k == "i":
            return (draw(st.sampled_from(sorted(BINARY_I.values()))).format(a=x.name, b=b),
                    x.exact and y.exact)
        if b != y.name:
            b = "True"
        return draw(st.sampled_from(sorted(BINARY_B.values()))).format(a=x.name, b=b), True
    if kind == "where":
        c = _pick(draw, vals, lambda v: v.dt == "bool")
        if c is None:
            return None
        a = _pick(draw, vals, lambda v: _bcast(v.shape, c.shape) and v.dt != "bool")
        if a is None:
            return None
        b = _pick(draw, vals, lambda v: _bcast(np.broadcast_shapes(a.shape, c.shape), v.shape)
                  and _kind(v) == _kind(a))
        if b is None:
            return None
        return f"tj.where({c.name}, {a.name}, {b.name})", a.exact and b.exact
    if kind == "cast":
        to = draw(st.sampled_from([fdt, "int32", "bool"]))
        if to != fdt and k == "f" and not x.exact:
            return None  # float -> int/bool is discontinuous
        if to == "int32" and k == "f":
            return f"{x.name}.astype(tj.int32)", True
        return f"{x.name}.astype(tj.{to})", x.exact
    if kind == "reduce":
        nd = len(x.shape)
        op = draw(st.sampled_from(["sum", "amax", "amin", "mean", "max"]))
        if k == "b" and op != "sum" or (k != "f" and op == "mean"):
            op = "sum"
        keep = draw(st.booleans())
        if op == "max":
            if nd == 0:
                return None
            d = draw(st.integers(-nd, nd - 1))
            return f"{x.name}.max(dim={d}, keepdim={keep}).values", x.exact
        if nd == 0 or draw(st.integers(0, 4)) == 0:
            dims = "None"
        else:
            ds = _dims(draw, nd)
            dims = str(ds[0]) if len(ds) == 1 else str(tuple(ds))
        exact = x.exact and (op in ("amax", "amin") or k != "f")
        if dims == "None":
            return f"{x.name}.{op}()", exact
        return f"{x.name}.{op}(dim={dims}, keepdim={keep})", exact
    if kind == "reshape":
        n = int(np.prod(x.shape))
        divs = [d for d in range(1, n + 1) if n % d == 0]
        a = draw(st.sampled_from(divs))
        shape = draw(st.sampled_from([(n,), (a, n // a), (a, -1), (-1,), (1, a, n // a)]))
        return f"{x.name}.reshape{tuple(shape)}", x.exact
    if kind == "transpose":
        nd = len(x.shape)
        if nd < 2:
            return None
        if draw(st.booleans()):
            perm = draw(st.permutations(range(nd)))
            return f"{x.name}.permute{tuple(perm)}", x.exact
        d0, d1 = draw(st.integers(0, nd - 1)), draw(st.integers(0, nd - 1))
        return f"{x.name}.transpose({d0}, {d1})", x.exact
    if kind == "flip":
        nd = len(x.shape)
        if nd == 0:
            return None
        return f"{x.name}.flip({tuple(_dims(draw, nd))})", x.exact
    if kind == "unsqueeze":
        nd = len(x.shape)
        return f"{x.name}.unsqueeze({draw(st.integers(-nd - 1, nd))})", x.exact
    if kind == "slice":
        nd = len(x.shape)
        if nd == 0:
            return None
        d = draw(st.integers(0, nd - 1))
        n = x.shape[d]
        step = draw(st.sampled_from([1, 2, -1, -2, 3]))
        lo = draw(st.one_of(st.none(), st.integers(-n, n - 1)))
        hi = draw(st.one_of(st.none(), st.integers(-n, n)))
        sl = f"{'' if lo is None else lo}:{'' if hi is None else hi}:{step}"
        return f"{x.name}[{':, ' * d}{sl}]", x.exact
    if kind == "index":  # an integer (basic) or ellipsis + integer
        nd = len(x.shape)
        if nd == 0:
            return None
        if draw(st.booleans()):
            i = draw(st.integers(-x.shape[0], x.shape[0] - 1))
            return f"{x.name}[{i}]", x.exact
        i = draw(st.integers(-x.shape[-1], x.shape[-1] - 1))
        return f"{x.name}[..., {i}]", x.exact
    if kind == "gather":  # integer-array indexing along a dim
        nd = len(x.shape)
        if nd == 0:
            return None
        d = draw(st.integers(0, nd - 1))
        n = x.shape[d]
        idx = draw(st.lists(st.integers(-n, n - 1), min_size=1, max_size=5))
        return f"{x.name}[{':, ' * d}tj.tensor({idx})]", x.exact
    if kind == "cat":
        nd = len(x.shape)
        if nd == 0:
            return None
        d = draw(st.integers(0, nd - 1))
        def same_but_d(v):
            return (len(v.shape) == nd and v.dt == x.dt and
                    all(a == b for i, (a, b) in enumerate(zip(v.shape, x.shape)) if i != d))
        y = _pick(draw, vals, same_but_d)
        return f"tj.cat([{x.name}, {y.name}.flip({d})], dim={d})", x.exact and y.exact
    if kind == "matmul":
        x = _pick(draw, vals, lambda v: _kind(v) == "f" and len(v.shape) in (1, 2))
        if x is None:
            return None
        kdim = x.shape[-1]
        y = _pick(draw, vals, lambda v: v.dt == x.dt and len(v.shape) in (1, 2)
                  and v.shape[0] == kdim)
        if y is None:
            return f"({x.name} @ {x.name}.T)" if len(x.shape) == 2 else \
                f"({x.name} @ {x.name})", False
        return f"({x.name} @ {y.name})", False
    if kind == "cond":
        p = _pick(draw, vals, lambda v: v.exact and v.dt != "bool")
        if p is None:
            return None
        thr = draw(st.sampled_from(["0", "1"]))
        pred = draw(st.sampled_from([f"({p.name}.sum() > {thr})", f"({p.name}.amax() > {thr})",
                                     f"({p.name} > {thr}).any()"]))
        if _kind(p) == "f" and "sum" in pred:
            pred = f"({p.name}.amax() > {thr})"  # (a float sum is not exact)
        t1, t2 = _branch(draw, x), _branch(draw, x)
        return (f"tj.cond({pred}, lambda a: {t1.format(x='a')}, "
                f"lambda a: {t2.format(x='a')}, {x.name})"), False
    if kind == "fori":
        n = draw(st.integers(0, 3))
        body = _branch(draw, x)
        lo = draw(st.integers(0, 1))
        return (f"tj.fori_loop({lo}, {lo + n}, lambda i, c: {body.format(x='c')}, "
                f"{x.name})"), False
    raise AssertionError(kind)


def _branch(draw, x: _Val) -> str:
    """A dtype- and shape-preserving elementwise body over `{x}`."""
    k = _kind(x)
    if k == "f":
        return UNARY_F[draw(st.sampled_from(sorted(UNARY_F)))][0]
    if k == "i":
        return draw(st.sampled_from(["({x} + 1)", "({x} * 2 - 1)", "tj.abs({x})", "(-{x})"]))
    return draw(st.sampled_from(["tj.logical_not({x})", "{x}"]))


# -- checking --------------------------------------------------------------------------------

def run_program(p: Program, device: str) -> list[np.ndarray]:
    f = tj.compile(p.fn(), device=device)
    out = f(*p.args())
    return [o.numpy() for o in out]


def check_program(p: Program, device: str = "cpu") -> None:
    """`device` ("cpu", or "cuda": a GPU or the emulation) against the interpreter: shapes and
    dtypes equal, values exactly (ints, bools) or within `TOL` scaled by the program's largest
    magnitude (floats; NaN positions equal)."""
    want = run_program(p, "interpreter")
    got = run_program(p, device)
    assert len(got) == len(want)
    for k, (g, e) in enumerate(zip(got, want)):
        where = f"output {k} of\n{p!r}"
        assert g.shape == e.shape, f"{where}: shape {g.shape} vs {e.shape}"
        assert g.dtype == e.dtype, f"{where}: dtype {g.dtype} vs {e.dtype}"
        if g.dtype.kind == "f":
            rtol, atol = TOL[g.dtype.name]
            np.testing.assert_allclose(g, e, rtol=rtol, atol=atol * p.scale, equal_nan=True,
                                       err_msg=where)
        else:
            np.testing.assert_array_equal(g, e, err_msg=where)


def check_grad(p: Program, eps: float = 1e-6, rtol: float = 1e-5) -> bool:
    """For a float64 program: ``tj.grad`` (compiled for the CPU) of
    ``L = sum_k (out_k * W_k).sum()`` over its float outputs, with respect to its float inputs,
    against central finite differences of L. Entries near a kink (differences at `eps` and
    `10 * eps` disagree) are skipped. Returns False if the program has nothing to check."""
    args = p.args()
    fin = [i for i, a in enumerate(args) if a.dtype == np.float64]
    if p.float_dtype != "float64" or not fin:
        return False
    prog = p.fn()
    outs = run_program(p, "interpreter")
    fout = [k for k, o in enumerate(outs) if o.dtype == np.float64]
    if not fout:
        return False
    r = np.random.default_rng(p.seed + 1)
    W = {k: r.uniform(0.5, 1.5, outs[k].shape) for k in fout}

    def loss(*xs):
        res = prog(*xs)
        tot = 0.0
        for k in fout:
            tot = tot + (res[k] * tj.tensor(W[k])).sum()
        return tot

    lf = tj.compile(loss)
    g = tj.compile(tj.grad(loss, argnums=tuple(fin)))(*args)
    g = [np.asarray(t.numpy()) for t in (g if isinstance(g, tuple) else (g,))]

    def L(xs):
        return float(lf(*xs).numpy())

    for j, i in enumerate(fin):
        assert g[j].shape == args[i].shape, f"grad shape {g[j].shape} of input {i}\n{p!r}"
        num = np.zeros(args[i].size)
        num10 = np.zeros(args[i].size)
        for e, out in ((eps, num), (10 * eps, num10)):
            for m in range(args[i].size):
                xs = [a.copy() for a in args]
                xs[i].reshape(-1)[m] += e
                hi = L(xs)
                xs[i].reshape(-1)[m] -= 2 * e
                out[m] = (hi - L(xs)) / (2 * e)
        ana = g[j].reshape(-1)
        sc = max(1.0, float(np.max(np.abs(num), initial=0.0)))
        smooth = np.abs(num - num10) <= 1e-4 * sc
        bad = smooth & ~(np.abs(ana - num) <= rtol * sc * 10)
        if np.any(bad):
            m = int(np.argmax(bad))
            raise AssertionError(f"d L / d v{i}[flat {m}]: tj.grad {ana[m]!r}, finite "
                                 f"differences {num[m]!r}\n{p!r}")
    return True
