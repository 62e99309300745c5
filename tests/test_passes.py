"""Optimization passes, each on its own: the result computes the same values as the input graph
(checked on the interpreter) and has the expected shape."""

import numpy as np

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
