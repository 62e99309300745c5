"""Optimization passes, each on its own: the result computes the same values as the input graph
(checked on the interpreter) and has the expected shape."""

import numpy as np
import pytest

import tracejit as tj
from tracejit.passes.fold import fold
from tracejit.passes.pipeline import optimize


def test_fold_evaluates_constant_subgraphs_once():
    def f(x):
        basis = tj.eye(4)  # iota, iota, eq, convert: all constant
        return x @ basis + tj.arange(4.0) * 2

    x = np.arange(8.0, dtype=np.float32).reshape(2, 4)
    g = tj.make_graph(f)(x)
    folded = fold(g)
    folded.verify()
    assert {n.op for n in g.nodes} >= {"iota", "eq"}
    assert not {"iota", "eq"} & {n.op for n in folded.nodes}
    assert len(folded.nodes) < len(g.nodes)
    np.testing.assert_array_equal(folded(x).numpy(), g(x).numpy())
    np.testing.assert_array_equal(folded(x).numpy(), x + np.arange(4.0) * 2)


def test_fold_keeps_runtime_errors_and_large_results_at_runtime():
    from tracejit.passes import fold as fold_mod
    g = tj.make_graph(lambda x: x + tj.zeros(1 << 21))(np.float32(1))
    assert any(n.op == "broadcast" for n in fold(g).nodes)  # over FOLD_LIMIT: not folded
    assert fold_mod.FOLD_LIMIT < (1 << 21)


def test_pipeline_is_used_by_compile_and_shown_by_lower():
    f = tj.compile(lambda x: x * (tj.ones(3) * 2).sum())
    text = f.lower(tj.ones(3)).as_text("optimized")
    assert "reduce_sum" not in text and "6.0" in text
    assert float(f(tj.ones(3)).sum()) == 18.0
    assert optimize(f.lower(tj.ones(3)).graph) is not None


# -- simplify ---------------------------------------------------------------------------------

from tracejit.ir.graph import Graph, Node  # noqa: E402
from tracejit.passes.cse import cse  # noqa: E402
from tracejit.passes.dce import dce  # noqa: E402
from tracejit.passes.simplify import simplify  # noqa: E402

rng = np.random.default_rng(0)


def _ops(g):
    return [n.op for n in g.nodes]


def _same_results(g1, g2, *args):
    a, b = g1(*args), g2(*args)
    a, b = (a, b) if isinstance(a, tuple) else ((a,), (b,))
    for x, y in zip(a, b, strict=True):
        assert x.dtype == y.dtype and x.shape == y.shape
        np.testing.assert_array_equal(x.numpy(), y.numpy())


def test_simplify_removes_neutral_elements_and_involutions():
    def f(x, m):
        a = (x * 1) / 1 - 0
        b = -(-(1 * a))  # noqa: B002 - a double negation, on purpose
        c = tj.logical_not(tj.logical_not(m)) & True | False
        return b ** 1, c

    x = rng.standard_normal((3, 4)).astype(np.float32)
    m = rng.standard_normal((3, 4)) > 0
    g = tj.make_graph(f)(x, m)
    s = simplify(g)
    s.verify()
    assert _ops(s) == [] and s.outputs == g.inputs
    _same_results(g, s, x, m)


def test_simplify_add_zero_and_keeps_type_changing_identities():
    x = rng.standard_normal(5).astype(np.float32)
    g = tj.make_graph(lambda x: x + 0.0)(x)
    assert _ops(simplify(g)) == []
    # i32 * 1.0 is a float32 result: the multiply is a cast, not an identity
    i = np.arange(5, dtype=np.int32)
    g = tj.make_graph(lambda i: i * 1.0)(i)
    s = simplify(g)
    assert "mul" in _ops(s) or "convert" in _ops(s)
    _same_results(g, s, i)
    # x * 0 is not 0 (nan, inf, -0): never rewritten
    g = tj.make_graph(lambda x: x * 0.0)(x)
    assert _ops(simplify(g)) == _ops(g)


def test_simplify_layout_chains():
    def f(x):
        a = x.T.T                                # transpose of transpose: gone
        b = x.permute(1, 2, 0).permute(2, 0, 1)  # composes to the identity
        c = x.permute(1, 0, 2).permute(0, 2, 1)  # composes to one transpose
        d = x.reshape(6, 4).reshape(24).reshape(2, 12)  # one reshape
        e = tj.broadcast_to(tj.broadcast_to(x[0, 0], (3, 4)), (2, 3, 4))  # one broadcast
        return a + b, c, d, e, x[:, :, :].flip(())

    x = rng.standard_normal((2, 3, 4)).astype(np.float32)
    g = tj.make_graph(f)(x)
    s = simplify(g)
    s.verify()
    ops = _ops(s)
    assert ops.count("transpose") == 1 and ops.count("broadcast") == 1
    d, e = s.outputs[2], s.outputs[3]
    assert d.op == "reshape" and d.inputs[0] is s.inputs[0]
    assert e.op == "broadcast" and e.inputs[0].op != "broadcast"
    assert s.outputs[4] is s.inputs[0]
    t = next(n for n in s.nodes if n.op == "transpose")
    assert t.inputs[0] is s.inputs[0] and tuple(t.params["perm"]) == (1, 2, 0)
    assert next(n for n in s.nodes if n.op == "add").inputs == (s.inputs[0], s.inputs[0])
    _same_results(g, s, x)


def test_simplify_broadcast_of_scalar_feeds_elementwise_directly():
    x = rng.standard_normal((3, 4)).astype(np.float32)
    g = tj.make_graph(lambda x, s: x * tj.broadcast_to(s, (3, 4)) + tj.full((3, 4), 2.0))(
        x, np.float32(3))
    assert "broadcast" in _ops(g)
    s = simplify(g)
    assert "broadcast" not in _ops(s)
    _same_results(g, s, x, np.float32(3))


def test_simplify_casts_and_selects():
    x = rng.standard_normal(6).astype(np.float32)
    i = np.arange(-3, 3, dtype=np.int32)
    g = tj.make_graph(lambda x, i: (x.double().float(), x.float(), i.long().int(),
                                    x.double().half(), tj.where(x > 0, x, x),
                                    i.float().int()))(x, i)
    s = simplify(g)
    s.verify()
    outs = s.outputs
    assert outs[0] is s.inputs[0] and outs[1] is s.inputs[0] and outs[2] is s.inputs[1]
    assert outs[3].op == "convert"      # f32 -> f64 -> f16 is not an identity
    assert outs[4] is s.inputs[0]
    assert outs[5].op == "convert"      # i32 -> f32 -> i32 loses integers above 2**24
    _same_results(g, s, x, i)


def test_simplify_inside_control_flow():
    def f(x):
        return tj.cond(x.sum() > 0, lambda a: -(-a) * 1, lambda a: a + 0, x)  # noqa: B002

    x = rng.standard_normal(4).astype(np.float32)
    s = simplify(tj.make_graph(f)(x))
    cond = next(n for n in s.nodes if n.op == "cond")
    for br in cond.params["branches"]:
        assert _ops(br) == []
    _same_results(tj.make_graph(f)(x), s, x)


# -- cse --------------------------------------------------------------------------------------

def test_cse_merges_equal_nodes_but_not_signed_zeros():
    x_in = Node("input", (), {"index": 0, "kind": "arg"}, tj.make_graph(lambda x: x)(
        np.float32(0)).inputs[0].type, name="x")
    from tracejit.ir.graph import TensorType
    t = TensorType((), tj.float32)

    def const(v):
        return Node("constant", (), {"value": v, "dtype": tj.float32, "weak": False}, t)
    a, b, z, nz = const(2.0), const(2.0), const(0.0), const(-0.0)
    e1 = Node("exp", (x_in,), {}, t)
    e2 = Node("exp", (x_in,), {}, t)
    m1, m2 = Node("mul", (e1, a), {}, t), Node("mul", (e2, b), {}, t)
    p, q = Node("mul", (m1, z), {}, t), Node("mul", (m2, nz), {}, t)
    g = Graph((x_in,), (m1, m2, p, q))
    assert len(g.nodes) == 10
    c = cse(g)
    c.verify()
    assert c.outputs[0] is c.outputs[1]
    assert c.outputs[2] is not c.outputs[3]
    assert _ops(c).count("exp") == 1 and len(c.nodes) == 7  # exp, 2, mul, 0, mul, -0, mul
    x = np.float32(-1.5)
    _same_results(g, c, x)
    assert np.signbit(c(x)[3].numpy()) and not np.signbit(c(x)[2].numpy())


def test_tracing_keeps_signed_zero_constants_apart():
    f = tj.compile(lambda x: (x * 0.0, x * -0.0))
    a, b = f(tj.ones(2))
    assert not np.signbit(a.numpy()).any() and np.signbit(b.numpy()).all()


def test_cse_after_fold_and_simplify_in_the_pipeline():
    def f(x):
        one = tj.ones(()) * 1.0          # folds to a constant
        return tj.exp(x * one) + tj.exp(x)  # equal once the multiply by 1 is gone
    x = rng.standard_normal(5).astype(np.float32)
    g = tj.make_graph(f)(x)
    o = optimize(g)
    assert _ops(o).count("exp") == 1
    np.testing.assert_allclose(o(x).numpy(), 2 * np.exp(x), rtol=1e-6)


# -- dce --------------------------------------------------------------------------------------

def test_dce_drops_unused_cond_results_and_operands():
    def f(x, y):
        a, b = tj.cond(x.sum() > 0, lambda x, y: (x * 2, tj.exp(y)),
                       lambda x, y: (x - 1, tj.log(y)), x, y)
        return a

    x, y = np.ones(3, np.float32), np.ones(3, np.float32) * 2
    g = tj.make_graph(f)(x, y)
    d = dce(g)
    d.verify()
    cond = next(n for n in d.nodes if n.op == "cond")
    assert len(cond.types) == 1 and len(cond.inputs) == 2  # pred and x; y is dead
    for br in cond.params["branches"]:
        assert "exp" not in _ops(br) and "log" not in _ops(br) and len(br.inputs) == 1
    _same_results(g, d, x, y)
    _same_results(g, d, -x, y)


def test_dce_drops_dead_loop_carries():
    def f(x, n):
        def body(c):
            i, acc, junk, dep = c
            return i + 1, acc + x * dep, junk * tj.exp(junk), dep * 0.5
        i, acc, junk, dep = tj.while_loop(lambda c: c[0] < n, body,
                                          (tj.zeros((), dtype=tj.int32), x * 0, x, x + 1))
        return acc

    x = rng.standard_normal(4).astype(np.float32)
    n = np.int32(5)
    g = tj.make_graph(f)(x, n)
    d = dce(g)
    d.verify()
    loop = next(n_ for n_ in d.nodes if n_.op == "while")
    assert len(loop.types) == 3  # i (read by the condition), acc (result), dep (acc needs it)
    assert "exp" not in _ops(loop.params["body"])
    _same_results(g, d, x, n)
    fc = tj.compile(f)
    ref = x * 0
    dep = x + 1
    for _ in range(5):
        ref, dep = ref + x * dep, dep * 0.5
    np.testing.assert_allclose(fc(x, n).numpy(), ref, rtol=1e-6)


def test_every_pass_is_named_and_verified_in_debug_mode(monkeypatch):
    from tracejit.passes import pipeline
    assert [n for n, _ in pipeline.PASSES] == ["simplify", "fold", "diagonal", "simplify", "cse",
                                              "dce"]

    def broken(g):
        bad = g.nodes[0]
        return Graph(g.inputs, [Node(bad.op, bad.inputs, bad.params,
                                     tj.make_graph(lambda x: x)(np.zeros((9, 9))).inputs[0].type,
                                     bad.loc)])
    monkeypatch.setattr(pipeline, "PASSES", pipeline.PASSES + [("broken", broken)])
    monkeypatch.setenv("TRACEJIT_DEBUG", "1")
    import pytest
    with pytest.raises(AssertionError, match="pass broken"):
        optimize(tj.make_graph(lambda x: tj.exp(x))(np.ones(3, np.float32)))


# -- diagonal ---------------------------------------------------------------------------------

from tracejit.passes.diagonal import diagonal  # noqa: E402


@pytest.mark.parametrize("form", ["x@I", "I@x", "x@(I*v)", "(I*v)@x", "(v*I)@x.T", "x@I3"])
def test_diagonal_products_become_scalings(form):
    n = 6
    x = rng.standard_normal((4, n)).astype(np.float32) if form != "I@x" else \
        rng.standard_normal((n, 4)).astype(np.float32)
    v = rng.standard_normal(n).astype(np.float32)

    def f(x, v):
        eye = tj.eye(n)
        return {"x@I": lambda: x @ eye, "I@x": lambda: eye @ x,
                "x@(I*v)": lambda: x @ (eye * v), "(I*v)@x": lambda: (eye * v) @ x.T,
                "(v*I)@x.T": lambda: (v[:, None] * eye) @ x.T,
                "x@I3": lambda: tj.einsum("ij,jkl->ikl", x, eye[:, :, None])}[form]()

    g = tj.make_graph(f)(x, v)
    d = diagonal(fold(g))
    d.verify()
    assert "dot_general" in _ops(fold(g)) and "dot_general" not in _ops(d)
    np.testing.assert_allclose(d(x, v).numpy(), g(x, v).numpy(), rtol=1e-6, atol=1e-7)


def test_diagonal_leaves_other_products_alone():
    x = rng.standard_normal((4, 5)).astype(np.float32)
    for mat in (np.eye(5, dtype=np.float32) * 2, np.eye(5, k=1, dtype=np.float32),
                np.ones((5, 5), np.float32)):
        g = fold(tj.make_graph(lambda x, m=mat: x @ tj.tensor(m))(x))
        assert "dot_general" in _ops(diagonal(g))
    # a vector along neither axis of the identity (a full matrix times it) is not diagonal
    w = rng.standard_normal((5, 5)).astype(np.float32)
    g = fold(tj.make_graph(lambda x, w: x @ (tj.eye(5) + w))(x, w))
    assert "dot_general" in _ops(diagonal(g))


def test_jacobian_and_hessian_graphs_have_no_identity_matmul():
    W = rng.standard_normal((64, 64)).astype(np.float32) / 8
    A = rng.standard_normal((128, 32)).astype(np.float32) / 8
    x = rng.standard_normal(64).astype(np.float32)
    y = rng.standard_normal(32).astype(np.float32)
    Wt, At = tj.tensor(W), tj.tensor(A)
    jac = tj.make_graph(lambda x: tj.jacobian(lambda v: tj.tanh(Wt @ v), x))(x)
    hes = tj.make_graph(lambda y: tj.hessian(lambda v: tj.log1p(tj.exp(At @ v)).sum(), y))(y)
    oj, oh = optimize(jac), optimize(hes)
    big = [n for n in oj.nodes if n.op == "dot_general" and n.shape[0] > 1 and
           min(n.shape) > 1]
    assert not big  # only the forward matvec is left
    assert sum(n.op == "dot_general" for n in oh.nodes) == 2  # the matvec and A^T S A
    t = np.tanh(W.astype(np.float64) @ x)
    np.testing.assert_allclose(tj.compile(lambda x: tj.jacobian(
        lambda v: tj.tanh(Wt @ v), x))(x).numpy(), (1 - t ** 2)[:, None] * W, rtol=1e-5,
        atol=1e-6)
    s = 1 / (1 + np.exp(-(A.astype(np.float64) @ y)))
    np.testing.assert_allclose(oh(y, A).numpy(), (A.T * (s * (1 - s))) @ A, rtol=1e-4,
                               atol=1e-6)
