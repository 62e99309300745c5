"""The IR itself: the verifier rejects malformed graphs, the printer follows docs/ir.md, and every
primitive is documented."""

import pathlib
import re

import numpy as np
import pytest

import tracejit as tj
from tracejit.dtypes import float32, int64
from tracejit.ir.graph import Graph, Node, TensorType
from tracejit.primitives import PRIMITIVES

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _input(t, i, name="x"):
    return Node("input", (), {"index": i, "kind": "arg"}, t, name=name)


def test_verifier_accepts_traced_graphs_and_rejects_bad_types():
    g = tj.make_graph(lambda x: tj.exp(x).sum(dim=0))(tj.ones(3, 2))
    g.verify()
    x = _input(TensorType((3,), float32), 0)
    wrong = Node("exp", (x,), {}, TensorType((4,), float32))  # the rule says f32[3]
    with pytest.raises(AssertionError, match="rule gives"):
        Graph([x], [wrong]).verify()
    bad_dtype = Node("exp", (x,), {}, TensorType((3,), int64))
    with pytest.raises(AssertionError, match="rule gives"):
        Graph([x], [bad_dtype]).verify()
    arity = Node("add", (x,), {}, TensorType((3,), float32))
    with pytest.raises(AssertionError, match="operands"):
        Graph([x], [arity]).verify()
    unknown = Node("frobnicate", (x,), {}, TensorType((3,), float32))
    with pytest.raises(AssertionError, match="unknown op"):
        Graph([x], [unknown]).verify()
    ints = _input(TensorType((3,), int64), 0)
    with pytest.raises(AssertionError, match="rejects"):
        Graph([ints], [Node("exp", (ints,), {}, TensorType((3,), int64))]).verify()


def test_graph_requires_listed_inputs():
    x, y = _input(TensorType((), float32), 0), _input(TensorType((), float32), 1, "y")
    out = Node("add", (x, y), {}, TensorType((), float32))
    with pytest.raises(ValueError, match="not listed"):
        Graph([x], [out])


NODE_LINE = re.compile(
    r"^\s+%\d+: (~?[a-z0-9]+\[[0-9,]*\]|\(.*\)) = [a-z_0-9]+\((%[\w.]+(, %[\w.]+)*)?\)"
    r"( \{.*\})?(\s+# \S+:\d+)?$")


def test_text_form_follows_the_grammar():
    def f(x, idx):
        y = tj.where(x > 0, x, 0.5 * x)[idx].cumsum(0)
        return tj.cond(y.sum() > 0, lambda v: v * 2, lambda v: v, y), y.max(0).indices

    g = tj.make_graph(f)(tj.ones(4, 3), np.array([0, 2]))
    lines = str(g).splitlines()
    assert lines[0] == "graph f(%x: f32[4,3], %idx: i64[2]) -> (f32[2,3], i64[3]) {"
    assert lines[-1] == "}" and lines[-2].strip().startswith("return (")
    for line in lines[1:-2]:
        s = line.strip()
        if s.startswith(("graph ", "return", "}")):
            continue
        assert NODE_LINE.match(line), line
        assert "# tests/test_ir.py:" in line or "test_ir.py:" in line, line


def test_weak_types_print_with_tilde_and_are_made_strong_at_outputs():
    g = tj.make_graph(lambda x, s: (x * s, s * 2))(tj.ones(2), 3.0)
    text = str(g)
    assert "%s: ~f64[]" in text
    assert g.outputs[0].type == TensorType((2,), float32)
    assert g.outputs[1].type == TensorType((), float32)  # a weak float result becomes float32


def test_hash_consing_shares_identical_nodes():
    g = tj.make_graph(lambda x: tj.exp(x) + tj.exp(x))(tj.ones(3))
    assert [n.op for n in g.nodes] == ["exp", "add"]


def test_every_primitive_is_documented():
    doc = (ROOT / "docs" / "ir.md").read_text()
    missing = [name for name in PRIMITIVES if f"`{name}`" not in doc]
    assert not missing, f"docs/ir.md does not list primitives {missing}"


def test_source_locations_point_at_user_code():
    g = tj.make_graph(lambda x: tj.softmax(x, dim=0))(tj.ones(3))
    for n in g.nodes:
        assert n.loc is not None and n.loc.file == __file__, n
