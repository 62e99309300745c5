"""ONNX export (`Graph.to_onnx`, `Graph.save("x.onnx")`): every op case of `op_cases.py`, run in
onnxruntime and compared with tracejit's interpreter; edge values where ONNX's semantics differ
from tracejit's; an MLP's forward and backward graphs; cond, while, custom_vjp; and the error
for primitives without an ONNX equivalent.

Needs the ``onnx`` extra (``pip install tracejit[onnx]``); skipped without it. Results are
compared as the conformance tests compare them: floats within the case's tolerance for the
result dtype, everything else exactly. Where onnxruntime has no kernel for an op at a dtype
(float64 Tan/Asin/Acos/Atan/Sinh/Cosh/Erf), the model runs in ``onnx.reference`` instead,
whose Erf computes in float32, so those results get float32's tolerance.
"""

from __future__ import annotations

import functools
import math
import warnings

import numpy as np
import pytest
from op_cases import INSTANCES, TOL, Instance

onnx = pytest.importorskip("onnx", reason="ONNX export needs the onnx extra: "
                                          "pip install tracejit[onnx]")
ort = pytest.importorskip("onnxruntime", reason="the ONNX tests run models in onnxruntime: "
                                                "pip install tracejit[onnx]")

import tracejit as tj  # noqa: E402
from tracejit.export.onnx import OPSET, SUPPORTED, UNSUPPORTED  # noqa: E402
from tracejit.primitives import PRIMITIVES  # noqa: E402

try:
    from onnxruntime.capi.onnxruntime_pybind11_state import NotImplemented as OrtNoKernel
except ImportError:  # pragma: no cover
    OrtNoKernel = ()


def _tensor(a):
    return tj.from_numpy(a) if isinstance(a, np.ndarray) else a


def _leaves(x) -> list:
    if isinstance(x, (tuple, list)):
        return [leaf for v in x for leaf in _leaves(v)]
    return [x]


def _session_options():
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    return so


def run_onnx(model, g: tj.Graph, args) -> tuple[list[np.ndarray], str]:
    """Runs `model` on `args` (one per graph input): in onnxruntime, or, where onnxruntime has
    no kernel for one of its ops, in onnx.reference. Returns the outputs and which ran them."""
    onnx.checker.check_model(model, full_check=True)
    feed = {n.name: np.asarray(a, dtype=n.dtype.np) for n, a in zip(g.inputs, args)}
    try:
        sess = ort.InferenceSession(model.SerializeToString(), _session_options(),
                                    providers=["CPUExecutionProvider"])
    except OrtNoKernel:
        from onnx.reference import ReferenceEvaluator
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return [np.asarray(v) for v in ReferenceEvaluator(model).run(None, feed)], "reference"
    return sess.run(None, feed), "onnxruntime"


def run_tracejit(g: tj.Graph, args) -> list[np.ndarray]:
    return [t.numpy() for t in _leaves(g(*args))]


def assert_same(got, want, tol=lambda dt: TOL.get(dt, (0, 0)), where=""):
    assert len(got) == len(want), f"{where}: {len(got)} outputs, expected {len(want)}"
    for k, (v, e) in enumerate(zip(got, want)):
        v = np.asarray(v)
        w = f"{where} output {k}"
        assert v.shape == e.shape and v.dtype == e.dtype, \
            f"{w}: {v.dtype}{list(v.shape)}, expected {e.dtype}{list(e.shape)}"
        if e.dtype.kind == "f":
            rtol, atol = tol(e.dtype.name)
            np.testing.assert_allclose(v.astype(np.float64), e.astype(np.float64), rtol=rtol,
                                       atol=atol, equal_nan=True, err_msg=w)
        else:
            np.testing.assert_array_equal(v, e, err_msg=w)


def check_graph(g: tj.Graph, args, tol=lambda dt: TOL.get(dt, (0, 0)), where="") -> str:
    model = g.to_onnx()
    got, how = run_onnx(model, g, args)
    if how == "reference":  # onnx.reference's Erf computes in float32
        base = tol
        tol = lambda dt: tuple(max(a, b) for a, b in zip(base(dt), TOL["float32"]))  # noqa
    assert_same(got, run_tracejit(g, args), tol, where)
    return how


# -- every op case ---------------------------------------------------------------------------

CASES = [i for i, inst in enumerate(INSTANCES) if not inst.case.eager_only]


@functools.cache
def traced(i: int) -> tj.Graph:
    inst = INSTANCES[i]
    return tj.make_graph(inst.case.fn)(*[_tensor(a) for a in inst.args()])


def _ops_in(g: tj.Graph) -> set[str]:
    ops = set()
    for n in g.nodes:
        ops.add(n.op)
        for v in n.params.values():
            for sub in (v if isinstance(v, tuple) else (v,)):
                if isinstance(sub, tj.Graph):
                    ops |= _ops_in(sub)
    return ops


@pytest.mark.parametrize("i", CASES, ids=[INSTANCES[i].id for i in CASES])
def test_op_case(i: int):
    inst: Instance = INSTANCES[i]
    g = traced(i)
    args = inst.args()
    bad = sorted(_ops_in(g) & set(UNSUPPORTED))
    if bad:
        with pytest.raises(NotImplementedError, match=bad[0]):
            g.to_onnx()
        return
    try:
        run_tracejit(g, args)
    except ArithmeticError:  # e.g. integer division by zero: undefined in ONNX
        pytest.skip("the interpreter raises on these inputs")
    check_graph(g, args, inst.tolerance, inst.id)


def test_every_primitive_but_random_bits_exports():
    assert set(PRIMITIVES) - SUPPORTED == set(UNSUPPORTED) == {"random_bits", "debug_check",
                                                               "spmm_csr", "sddmm_csr"}
    assert "debug_print" in SUPPORTED  # left out, with a warning (tests/test_debug_effects.py)
    assert OPSET == 18


# -- edge values where ONNX and tracejit differ -------------------------------------------------

nan, inf = np.nan, np.inf
F = np.array([nan, inf, -inf, 0.0, -0.0, 1.5, -1.5, 2.5, 0.5, -2.5, 3.0, -7.25, 1e-30, 5e-8],
             np.float32)
FA, FB = (v.ravel() for v in np.meshgrid(F, F))
I32 = np.array([-7, -3, -1, 0, 1, 3, 7, 2**31 - 1, -2**31 + 1], np.int32)
IA, IB = (v.ravel() for v in np.meshgrid(I32, I32[I32 != 0]))
P = np.array([-3, -2, -1, 0, 1, 2, 3], np.int64)
PA, PB = (v.ravel() for v in np.meshgrid(P, P))
M = np.array([[1.0, nan, 3.0, nan], [2.0, 2.0, -1.0, 0.0], [-inf, inf, inf, -inf]], np.float32)
TIES = np.array([3, 1, 3, 1, 2, 2, 3, 0], np.int64)
SMALL = np.concatenate([F, np.array([1e-7, -1e-7, 1e-3, 80, -100, -20, -1, -0.999, 1e30, -2],
                                    np.float32)])

EDGES = {
    "floordiv-f32": (lambda a, b: a // b, FA, FB),
    "rem-f32": (lambda a, b: a % b, FA, FB),
    "floordiv-f64": (lambda a, b: a // b, FA.astype(np.float64), FB.astype(np.float64)),
    "rem-f64": (lambda a, b: a % b, FA.astype(np.float64), FB.astype(np.float64)),
    "floordiv-i32": (lambda a, b: a // b, IA, IB),
    "rem-i32": (lambda a, b: a % b, IA, IB),
    "int8": (lambda a, b: (a + b, a * b, a // b, a % b, tj.maximum(a, b), -a),
             np.array([100, -100, 5, -7], np.int8), np.array([100, 3, -2, 2], np.int8)),
    "uint8": (lambda x: (-x, abs(x), tj.sign(x)), np.array([0, 1, 200], np.uint8)),
    "pow-f32": (lambda a, b: a ** b, FA, FB),
    "pow-int-negative-exponent": (lambda a, b: a ** b, PA, PB),
    "maximum-nan": (tj.maximum, FA, FB),
    "minimum-nan": (tj.minimum, FA, FB),
    "atan2": (tj.atan2, FA, FB),
    "sign-nan": (tj.sign, F),
    "round-half-even": (tj.round, np.array([0.5, 1.5, 2.5, -0.5, -1.5, nan, inf, 2.4999],
                                           np.float32)),
    "trunc": (tj.trunc, F),
    "expm1": (tj.expm1, SMALL),
    "log1p": (tj.log1p, SMALL),
    "exp2-log2-log10": (lambda x: (tj.exp2(x), tj.log2(x), tj.log10(x)), SMALL),
    "sigmoid-tails": (tj.sigmoid, np.linspace(-80, 80, 321, dtype=np.float32)),
    "isinf-f16": (lambda x: (tj.isinf(x), tj.isnan(x)), F.astype(np.float16)),
    "amax-amin-nan": (lambda x: (x.amax(1), x.amin(1), x.amax(0), x.amin(0)), M),
    "argmax-argmin-nan": (lambda x: (x.argmax(1), x.argmin(1), x.argmax(0), x.argmin(0)), M),
    "argsort-nan": (lambda x: (tj.argsort(x, 1), tj.argsort(x, 1, descending=True),
                               tj.argsort(x, 0), tj.argsort(x, 0, descending=True)), M),
    "argsort-stable-ties": (lambda x: (tj.argsort(x), tj.argsort(x, descending=True)), TIES),
    "cumprod": (lambda x: (tj.cumprod(x, 1), tj.cumprod(x, 0)), M),
    "scatter-set-duplicates": (lambda x, i, u: x.at[i].set(u), np.zeros((4, 2), np.float32),
                               np.array([1, 3, 1, 1, 0]),
                               np.arange(10, dtype=np.float32).reshape(5, 2)),
    "scatter-add-duplicates": (lambda x, i, u: x.at[i].add(u), np.zeros((4, 2), np.float32),
                               np.array([1, 3, 1, 1, 0]),
                               np.arange(10, dtype=np.float32).reshape(5, 2)),
    "scatter-set-2d-duplicates": (lambda x, i, j, u: x.at[i, j].set(u),
                                  np.zeros((3, 3), np.float32), np.array([1, 1, 2, 1]),
                                  np.array([0, 0, 2, 0]), np.arange(4, dtype=np.float32)),
    "convert": (lambda x: (x.astype(tj.int32), x.astype(tj.bool_), x.astype(tj.float16),
                           x.astype(tj.uint8)),
                np.array([1.7, -1.7, 0.0, -0.0, 200.5], np.float32)),
    "bool": (lambda a, b: (a + b, a * b, tj.maximum(a, b), a < b, tj.where(a, b, a), a.sum(),
                           a.any(), a.all(), a.argmax(), tj.cumsum(a, 0)),
             np.array([True, False, True]), np.array([False, False, True])),
    "float16": (lambda a, b: (a // b, a % b, tj.atan2(a, b), tj.expm1(a), tj.sigmoid(a),
                              tj.maximum(a, b), tj.argsort(a), tj.cumprod(a, 0), a.amax(),
                              a.argmax(), tj.trunc(a), tj.sign(a), a + tj.arange(6, dtype=a.dtype)),
                np.array([1.5, -2.5, 3.0, nan, -0.5, 7.0], np.float16),
                np.array([0.5, 2.0, -1.5, 1.0, 3.0, -2.0], np.float16)),
    "outputs-alias-inputs": (lambda x: (x, x, tj.stop_gradient(x), x * 1.0), F),
    "empty": (lambda x: (x.sum(0), tj.cumsum(x, 1), x.T @ x, tj.argsort(x, 0)),
              np.zeros((0, 3), np.float32)),
}


@pytest.mark.parametrize("name", list(EDGES))
def test_edge_values(name: str):
    fn, *args = EDGES[name]
    g = tj.make_graph(fn)(*[tj.from_numpy(np.asarray(a)) for a in args])
    tol = {"float16": (1e-3, 0), "float32": (2e-6, 0), "float64": (1e-14, 0)}
    check_graph(g, args, lambda dt: tol.get(dt, (0, 0)), name)


# -- models, control flow ------------------------------------------------------------------------

def _mlp_params(rng):
    return (rng.standard_normal((4, 8)).astype(np.float32) * 0.5,
            rng.standard_normal(8).astype(np.float32) * 0.1,
            rng.standard_normal((8, 3)).astype(np.float32) * 0.5,
            rng.standard_normal(3).astype(np.float32) * 0.1)


def mlp(params, x):
    w1, b1, w2, b2 = params
    h = tj.relu(x @ w1 + b1)
    return tj.log_softmax(h @ w2 + b2, dim=-1)


def loss(params, x, y):
    return -(mlp(params, x) * y).sum(-1).mean()


def _mlp_data():
    rng = np.random.default_rng(0)
    params = _mlp_params(rng)
    x = rng.standard_normal((5, 4)).astype(np.float32)
    y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 5)]
    return params, x, y


def _flat(params, *rest):
    return [*params, *rest]


def test_mlp_forward():
    params, x, _ = _mlp_data()
    g = tj.make_graph(mlp)([tj.from_numpy(p) for p in params], tj.from_numpy(x))
    assert check_graph(g, _flat(params, x)) == "onnxruntime"


def test_mlp_backward():
    params, x, y = _mlp_data()
    g = tj.make_graph(tj.grad(loss))([tj.from_numpy(p) for p in params], tj.from_numpy(x),
                                      tj.from_numpy(y))
    assert len(g.outputs) == 4
    assert check_graph(g, _flat(params, x, y), lambda dt: (1e-5, 1e-6)) == "onnxruntime"


def test_mlp_value_and_grad_and_names():
    params, x, y = _mlp_data()
    g = tj.make_graph(tj.value_and_grad(loss))([tj.from_numpy(p) for p in params],
                                               tj.from_numpy(x), tj.from_numpy(y))
    model = g.to_onnx()
    assert [i.name for i in model.graph.input] == [n.name for n in g.inputs]
    assert [o.name for o in model.graph.output] == [f"out{k}" for k in range(len(g.outputs))]
    assert model.opset_import[0].version == OPSET
    # every node carries the user's source line
    assert any("test_onnx.py:" in n.doc_string for n in model.graph.node)
    check_graph(g, _flat(params, x, y), lambda dt: (1e-5, 1e-6))


def f_cond(x):
    return tj.cond(x.sum() > 0, lambda v: (v * 2, v.sum()), lambda v: (v - 1.0, v.amax()), x)


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_cond(sign):
    x = np.arange(6, dtype=np.float32).reshape(2, 3) * sign + 0.5
    g = tj.make_graph(f_cond)(tj.from_numpy(x))
    model = g.to_onnx()
    assert [n.op_type for n in model.graph.node].count("If") == 1
    assert check_graph(g, [x]) == "onnxruntime"


def f_while(x, n):
    def body(c):
        i, v = c
        return i + 1, tj.sin(v) * 1.5 + n

    return tj.while_loop(lambda c: c[0] < 7, body, (tj.tensor(0), x))


def test_while_loop():
    x = np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3)
    n = np.float32(0.25)
    g = tj.make_graph(f_while)(tj.from_numpy(x), tj.tensor(0.25))
    model = g.to_onnx()
    assert [n.op_type for n in model.graph.node].count("Loop") == 1
    assert check_graph(g, [x, n]) == "onnxruntime"


def test_while_loop_runs_zero_times_and_nested_in_cond():
    def f(x):
        def loop(v):
            return tj.while_loop(lambda c: c.sum() < 10.0, lambda c: c * 2.0 + 1.0, v)
        return tj.cond(x.amax() > 0, loop, lambda v: v, x)

    for x in (np.full(3, 20.0, np.float32), np.array([0.5, 1.0, 0.0], np.float32),
              np.full(3, -1.0, np.float32)):
        g = tj.make_graph(f)(tj.from_numpy(x))
        check_graph(g, [x])


def test_fori_loop_and_scan():
    def f(x):
        a = tj.fori_loop(0, 4, lambda i, v: v * 0.5 + i, x)
        return a, tj.cumsum(a, 0)

    x = np.arange(4, dtype=np.float32)
    check_graph(tj.make_graph(f)(tj.from_numpy(x)), [x])


class Cube(tj.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x * x

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * 3.0 * x * x


def test_custom_vjp_exports_its_forward():
    x = np.array([1.0, -2.0, 0.5], np.float32)
    g = tj.make_graph(lambda v: Cube.apply(v).sum())(tj.from_numpy(x))
    assert "custom_vjp" in _ops_in(g)
    check_graph(g, [x])


# -- errors, save --------------------------------------------------------------------------------

def f_random(key, x):
    return x + tj.random.normal(key, (3,))


def test_random_bits_is_a_clear_error():
    g = tj.make_graph(f_random)(tj.random.key(0), tj.zeros(3))
    with pytest.raises(NotImplementedError) as info:
        g.to_onnx()
    msg = str(info.value)
    assert "'random_bits'" in msg and "no ONNX equivalent" in msg
    assert f"test_onnx.py:{f_random.__code__.co_firstlineno + 1}" in msg


def test_unsupported_op_inside_a_branch_is_found():
    def f(key, x):
        return tj.cond(x.sum() > 0, lambda k, v: v + tj.random.uniform(k, (3,)),
                       lambda k, v: v, key, x)

    g = tj.make_graph(f)(tj.random.key(0), tj.zeros(3))
    with pytest.raises(NotImplementedError, match="random_bits"):
        g.to_onnx()


def test_save_onnx(tmp_path):
    x = np.array([[1.0, -2.0, 3.0]], np.float32)
    g = tj.make_graph(f_cond)(tj.from_numpy(x))
    g.save(tmp_path / "g.onnx")
    model = onnx.load(str(tmp_path / "g.onnx"))
    assert model == g.to_onnx()
    got, _ = run_onnx(model, g, [x])
    assert_same(got, run_tracejit(g, [x]))


def test_json_round_trip_exports_the_same_model():
    g = tj.make_graph(f_cond)(tj.ones(2, 3))
    assert tj.Graph.from_json(g.to_json()).to_onnx() == g.to_onnx()


def test_missing_onnx_says_how_to_install(monkeypatch):
    import builtins

    real = builtins.__import__

    def fake(name, *a, **kw):
        if name == "onnx" or name.startswith("onnx."):
            raise ImportError("No module named 'onnx'")
        return real(name, *a, **kw)

    monkeypatch.setattr(builtins, "__import__", fake)
    g = tj.make_graph(lambda v: v * 2.0)(tj.ones(2))
    with pytest.raises(ImportError, match=r"pip install tracejit\[onnx\]"):
        g.to_onnx()


def test_math_constants_in_atan2_are_exact_for_f64():
    y = np.array([1.0, -1.0, 0.0, -0.0], np.float64)
    x = np.array([-1.0, -1.0, -1.0, -1.0], np.float64)
    g = tj.make_graph(tj.atan2)(tj.from_numpy(y), tj.from_numpy(x))
    got, _ = run_onnx(g.to_onnx(), g, [y, x])
    np.testing.assert_allclose(got[0], [3 * math.pi / 4, -3 * math.pi / 4, math.pi, -math.pi],
                               rtol=1e-15)
