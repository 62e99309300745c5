"""Graph export and import: text and JSON round trips, and hostile input.

Round trips run over every op case of `op_cases.py` (traced as test_ops_conformance.py does),
over every graph the examples build, and over transformed and control-flow graphs: the loaded
graph prints the same text and computes the same values (bit for bit). Bad input, hand-written
and fuzzed, must raise `tj.GraphFormatError` with a message that says what and where: never
another exception, a RecursionError, a MemoryError or a hang.
"""

from __future__ import annotations

import collections
import copy
import importlib.util
import json
import math
import pathlib
import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from op_cases import INSTANCES

import tracejit as tj
import tracejit.jit
from tracejit.export import build as B
from tracejit.export.jsonio import MAX_JSON_DEPTH
from tracejit.ir.graph import Literal

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _tensor(a):
    return tj.from_numpy(a) if isinstance(a, np.ndarray) else a


def _outs(r):
    return r if isinstance(r, tuple) else (r,)


def check_round_trip(g: tj.Graph, args=None) -> None:
    """Text and JSON reload to the same text (and JSON), and run to the same values."""
    text = str(g)
    j = g.to_json()
    from_json = tj.Graph.from_json(j)
    assert str(from_json) == text
    assert from_json.to_json() == j
    from_json.verify()
    from_text = tj.Graph.from_text(text)
    assert str(from_text) == text
    from_text.verify()
    if args is not None:
        want = [o.numpy() for o in _outs(g(*args))]
        for loaded in (from_json, from_text):
            got = [o.numpy() for o in _outs(loaded(*args))]
            assert len(got) == len(want)
            for a, b in zip(got, want):
                assert a.dtype == b.dtype and a.shape == b.shape
                np.testing.assert_array_equal(a, b)


# -- every op case ---------------------------------------------------------------------------

_BY_CASE: dict[str, list[int]] = collections.defaultdict(list)
for _i, _inst in enumerate(INSTANCES):
    if not _inst.case.eager_only:
        _BY_CASE[_inst.case.name].append(_i)


@pytest.mark.parametrize("name", sorted(_BY_CASE))
def test_op_case_round_trip(name):
    for i in _BY_CASE[name]:
        inst = INSTANCES[i]
        args = inst.args()
        g = tj.make_graph(inst.case.fn)(*[_tensor(a) for a in args])
        flat = tj.tree.flatten(args)[0]
        check_round_trip(g, flat if len(flat) == len(g.inputs) else None)


# -- examples --------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(p.name for p in (ROOT / "examples").glob("*.py")))
def test_example_graphs_round_trip(name, monkeypatch, capsys, tmp_path):
    """Runs the example, recording every graph it traces (with its captured tensors)."""
    argv = None
    if name == "train_digits.py":
        for m in ("sklearn", "tqdm", "matplotlib"):
            pytest.importorskip(m)
        argv = ["--epochs", "1", "--no-progress", "--plot", str(tmp_path / "p.png")]
    seen = []
    real = tracejit.jit.trace_graph

    def recording(*a, **kw):
        graph, out_tree, b = real(*a, **kw)
        seen.append((graph, list(b.captured)))
        return graph, out_tree, b

    monkeypatch.setattr(tracejit.jit, "trace_graph", recording)
    spec = importlib.util.spec_from_file_location(name[:-3], ROOT / "examples" / name)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.main() if argv is None else mod.main(argv)
    capsys.readouterr()
    assert seen, f"{name} traced no graph"
    rng = np.random.default_rng(0)
    for g, caps in seen:
        # (a compiled training step also reads .grad and learning rates at each call)
        caps = [c if isinstance(c, tracejit.Tensor) else tracejit.tensor(c.numpy())
                for c in caps]
        n_args = len(g.inputs) - len(caps)
        args = [_random_value(n.type, rng) for n in g.inputs[:n_args]]
        check_round_trip(g, args + caps)


def _random_value(t, rng):
    if t.dtype.is_floating_point:
        return rng.standard_normal(t.shape).astype(t.dtype.np)
    if t.dtype.is_bool:
        return rng.random(t.shape) < 0.5
    return rng.integers(0, 3, t.shape).astype(t.dtype.np)


# -- transforms, control flow, literals ------------------------------------------------------

class ScaledExp(tj.autograd.Function):
    @staticmethod
    def forward(ctx, x, k):
        y = tj.exp(x)
        ctx.save_for_backward(y)
        ctx.k = k
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        return g * y * ctx.k, None


W = tj.tensor(np.arange(6, dtype=np.float32).reshape(2, 3))


def f_cond(x):
    return tj.cond(x.sum() > 0, lambda v: v * 2, lambda v: v - W.sum(), x)


def f_while(v):
    return tj.while_loop(lambda u: u.norm() < 1000, lambda u: u * 2, v)


def f_scan(x):
    def step(c, xi):
        c = c + xi
        return c, c * 2
    return tj.scan(step, tj.zeros(3), x)


def f_custom(x):
    return ScaledExp.apply(x, 3.0).sum()


def f_fori(x):
    return tj.fori_loop(0, 3, lambda i, c: c * 2 + i, x)


def f_literals(x):
    small = tj.tensor([[1.5, -0.0], [float("inf"), float("nan")]])
    flags = tj.tensor([True, False])
    ints = tj.tensor(np.array([250, 7], dtype=np.uint8))
    return (x * small + tj.tensor(np.float32(2.5)), flags, ints + 1)


def f_floats(x):
    out = x
    for v in (0.1, -0.0, 1e-300, 5e-324, 1.7976931348623157e308, float("inf"), -float("inf")):
        out = out + v
    return tj.where(tj.isnan(out), float("nan"), out)


V3 = np.arange(3, dtype=np.float32) + 1
M43 = np.arange(12, dtype=np.float32).reshape(4, 3) - 5

GRAPHS = {
    "cond": (f_cond, [V3], [W]),
    "while": (f_while, [V3], []),
    "fori": (f_fori, [V3], []),
    "scan": (f_scan, [M43], []),
    "custom_vjp": (f_custom, [V3], []),
    "grad_custom_vjp": (tj.grad(f_custom), [V3], []),
    "random": (lambda x: x + tj.random.uniform(tj.random.key(7), (3,)), [V3], []),
    "literals": (f_literals, [np.ones((2, 2), np.float32)], []),
    "floats": (f_floats, [np.array([1.0, -2.0], np.float64)], []),
    "grad_cond": (tj.grad(lambda x: f_cond(x).sum()), [V3], [W]),
    "grad_while": (tj.grad(lambda x: f_while(x).sum()), [V3], []),
    "grad_scan": (tj.grad(lambda x: f_scan(x)[1].sum()), [M43], []),
    "jacobian": (lambda y: tj.jacobian(lambda x: tj.tanh(x) * x, y), [V3], []),
    "hessian": (lambda y: tj.hessian(lambda x: (tj.sin(x) ** 2).sum(), y), [V3], []),
    "vmap": (tj.vmap(lambda v: tj.softmax(v, dim=-1) @ W.T), [M43], [W]),
    "vmap_cond": (tj.vmap(f_cond), [M43], [W]),
    "grad_vmap_while": (tj.grad(lambda x: tj.vmap(f_while)(x).sum()), [M43], []),
}


@pytest.mark.parametrize("name", sorted(GRAPHS))
def test_transformed_graph_round_trip(name):
    fn, args, caps = GRAPHS[name]
    g = tj.make_graph(fn)(*[tj.tensor(a) for a in args])
    assert len(g.captures) == len(caps)
    check_round_trip(g, args + caps)


def test_params_are_exact():
    """Floats keep their bits (-0.0, subnormals, inf), literals their dtype and values."""
    g = tj.make_graph(f_floats)(tj.tensor(np.ones(2)))
    for loaded in (tj.Graph.from_text(str(g)), tj.Graph.from_json(g.to_json())):
        want = [n.params["value"] for n in g.nodes if n.op == "constant"]
        got = [n.params["value"] for n in loaded.nodes if n.op == "constant"]
        assert [(type(v), repr(v), math.copysign(1, v)) for v in got] == \
               [(type(v), repr(v), math.copysign(1, v)) for v in want]
    g = tj.make_graph(f_literals)(tj.ones(2, 2))
    loaded = tj.Graph.from_json(g.to_json())
    for a, b in zip(g.nodes, loaded.nodes):
        assert a.params.keys() == b.params.keys()
        if isinstance(a.params.get("value"), Literal):
            assert a.params["value"] == b.params["value"]
            assert a.params["value"].value.dtype == b.params["value"].value.dtype
        assert a.loc == b.loc and a.type == b.type


def test_input_names_kinds_and_locations_survive():
    g = tj.make_graph(f_cond)(tj.tensor(V3))
    for loaded in (tj.Graph.from_text(str(g)), tj.Graph.from_json(g.to_json())):
        assert [(n.name, n.params["kind"], n.type) for n in loaded.inputs] == \
               [(n.name, n.params["kind"], n.type) for n in g.inputs]
        assert [n.loc for n in loaded.nodes] == [n.loc for n in g.nodes]
        assert loaded.name == g.name


BIG = tj.tensor(np.linspace(-1, 1, 40, dtype=np.float32))


def test_large_literal_needs_json():
    g = tj.make_graph(lambda x: x + tj.tensor(np.arange(40, dtype=np.float64)))(tj.ones(40))
    msg = r"line \d+: node %\d+ \(constant\).*digest.*to_json"
    with pytest.raises(tj.GraphFormatError, match=msg):
        tj.Graph.from_text(str(g))
    loaded = tj.Graph.from_json(g.to_json())
    assert str(loaded) == str(g)
    np.testing.assert_array_equal(loaded(np.ones(40)).numpy(), np.arange(40) + 1.0)


def test_save(tmp_path):
    g = tj.make_graph(f_cond)(tj.tensor(V3))
    g.save(tmp_path / "g.txt")
    assert str(tj.Graph.from_text((tmp_path / "g.txt").read_text())) == str(g)
    g.save(str(tmp_path / "g.json"))
    doc = json.loads((tmp_path / "g.json").read_text())
    assert doc["format"] == "tracejit.graph" and doc["version"] == 1
    assert str(tj.Graph.from_json((tmp_path / "g.json").read_text())) == str(g)
    g.save(tmp_path / "g.dot")  # .svg: tests/test_export_dot.py (needs Graphviz)
    assert (tmp_path / "g.dot").read_text().startswith("digraph")
    # .onnx: tests/test_onnx.py (needs the onnx extra)
    with pytest.raises(ValueError, match="unknown extension"):
        g.save(tmp_path / "g.bin")


# -- bad JSON ----------------------------------------------------------------------------------

def _base_fn(x, i):
    y = tj.cond(x.sum() > 0, lambda v: v * 2, lambda v: v - 1.0, x)
    z = y @ tj.tensor([[1.0, -0.0, 2.0], [float("inf"), 2.0, 3.0]])
    return z.at[i].add(1.0), tj.argsort(z, dim=1)


def _base_graph():
    return tj.make_graph(_base_fn)(tj.ones(4, 2), tj.tensor(np.array([0, 2])))


BASE = _base_graph()
BASE_DOC = json.loads(BASE.to_json())


def _node_index(doc, op):
    return next(i for i, n in enumerate(doc["graph"]["nodes"]) if n["op"] == op)


def _mut(fn):
    def make():
        d = copy.deepcopy(BASE_DOC)
        fn(d)
        return json.dumps(d, allow_nan=True)
    return make


def _nodes(d):
    return d["graph"]["nodes"]


def _deep_tuple(n):
    p = {"t": "int", "v": 0}
    for _ in range(n):
        p = {"t": "tuple", "v": [p]}
    return p


def _deep_graph(n):
    """A graph whose cond nests `n` levels of sub-graphs (the loader must stop at the limit)."""
    g = {"name": "g", "inputs": [], "nodes": [], "outputs": []}
    for _ in range(n):
        g = {"name": "g", "inputs": [], "outputs": [], "nodes": [
            {"op": "cond", "inputs": [], "types": [],
             "params": {"branches": {"t": "tuple", "v": [{"t": "graph", "v": g}]}}}]}
    return {"format": "tracejit.graph", "version": 1, "graph": g}


C = _node_index(BASE_DOC, "constant")
ARR = next(i for i, n in enumerate(BASE_DOC["graph"]["nodes"])
           if n["params"].get("value", {}).get("t") == "array")
DOT = _node_index(BASE_DOC, "dot_general")
SC = _node_index(BASE_DOC, "scatter")
N_IN = len(BASE_DOC["graph"]["inputs"])

BAD_JSON = {
    # not a graph document at all
    "empty": (lambda: "", "not valid JSON"),
    "truncated": (lambda: BASE.to_json()[:200], "not valid JSON"),
    "list": (lambda: "[1, 2]", "must be an object, got a list"),
    "number": (lambda: "3", "must be an object"),
    "not str": (lambda: 42, "must be a str"),
    "bad utf8": (lambda: b"\xff\xfe{", "not UTF-8"),
    "NaN token": (lambda: '{"format": NaN}', "NaN is not allowed"),
    "deep nesting": (lambda: "[" * 100000 + "]" * 100000, f"limit is {MAX_JSON_DEPTH}"),
    "deep unclosed": (lambda: '{"a":' + "[" * 5000, f"limit is {MAX_JSON_DEPTH}"),
    "huge int": (lambda: '{"format": ' + "9" * 5000 + "}", "not valid JSON"),
    "wrong format": (_mut(lambda d: d.update(format="onnx")), "format: expected"),
    "version 2": (_mut(lambda d: d.update(version=2)), "reads version 1, got 2"),
    "version str": (_mut(lambda d: d.update(version="1")), "reads version 1"),
    "missing graph": (_mut(lambda d: d.pop("graph")), "missing key 'graph'"),
    "extra key": (_mut(lambda d: d.update(extra=1)), "unknown key 'extra'"),
    # structure
    "nodes not list": (
        _mut(lambda d: d["graph"].update(nodes={})),
        r"graph\.nodes: expected a list"),
    "node not object": (
        _mut(lambda d: _nodes(d).__setitem__(0, 5)),
        r"nodes\[0\]: expected an object"),
    "missing op": (_mut(lambda d: _nodes(d)[0].pop("op")), r"nodes\[0\]: missing key 'op'"),
    "unknown op": (
        _mut(lambda d: _nodes(d)[C].update(op="frobnicate")),
        f"nodes\\[{C}\\].*unknown op 'frobnicate'"),
    "input op": (_mut(lambda d: _nodes(d)[C].update(op="input")), "unknown op 'input'"),
    "wrong arity": (
        _mut(lambda d: _nodes(d)[DOT]["inputs"].pop()),
        "dot_general takes 2 operands, got 1"),
    "forward ref": (
        _mut(lambda d: _nodes(d)[DOT]["inputs"].__setitem__(0, N_IN + DOT)),
        f"reference {N_IN + DOT} is not defined before"),
    "ref out of range": (
        _mut(lambda d: d["graph"]["outputs"].__setitem__(0, 10 ** 6)),
        r"outputs\[0\].*not defined"),
    "negative ref": (_mut(lambda d: _nodes(d)[DOT]["inputs"].__setitem__(0, -1)), "negative"),
    "float ref": (
        _mut(lambda d: _nodes(d)[DOT]["inputs"].__setitem__(0, 0.0)),
        "integer index, got float"),
    "bool ref": (
        _mut(lambda d: _nodes(d)[DOT]["inputs"].__setitem__(0, True)),
        "integer index, got bool"),
    "both types": (_mut(lambda d: _nodes(d)[C].update(types=[])), "not both"),
    "no type": (_mut(lambda d: _nodes(d)[C].pop("type")), "not neither"),
    # types
    "wrong shape": (
        _mut(lambda d: _nodes(d)[DOT]["type"].update(shape=[4, 4])),
        r"nodes\[\d+\] \(dot_general\): declared type f32\[4,4\] differs from f32\[4,3\]"),
    "wrong dtype": (
        _mut(lambda d: _nodes(d)[DOT]["type"].update(dtype="float64")),
        "declared type f64"),
    "wrong weak": (_mut(lambda d: _nodes(d)[DOT]["type"].update(weak=True)), r"declared type ~f32"),
    "unknown dtype": (
        _mut(lambda d: _nodes(d)[DOT]["type"].update(dtype="float128")),
        "unknown dtype 'float128'"),
    "short dtype": (
        _mut(lambda d: _nodes(d)[DOT]["type"].update(dtype="f32")),
        "unknown dtype 'f32'"),
    "huge shape": (
        _mut(lambda d: _nodes(d)[DOT]["type"].update(shape=[2 ** 62, 2 ** 62])),
        "out of range|more than"),
    "overflowing count": (
        _mut(lambda d: _nodes(d)[DOT]["type"].update(shape=[2 ** 30] * 4)),
        "more than .* elements"),
    "negative dim": (
        _mut(lambda d: _nodes(d)[DOT]["type"].update(shape=[-1, 3])),
        r"shape\[0\].*out of range"),
    "float dim": (
        _mut(lambda d: _nodes(d)[DOT]["type"].update(shape=[4.0, 3])),
        "expected an integer, got float"),
    "rank": (_mut(lambda d: _nodes(d)[DOT]["type"].update(shape=[1] * 40)), "rank 40 exceeds"),
    "input type": (
        _mut(lambda d: d["graph"]["inputs"][0]["type"].update(shape=[5, 2])),
        "declared type|rejects"),
    # params
    "param kind": (
        _mut(lambda d: _nodes(d)[DOT]["params"]["contract"].update(t="set")),
        "unknown param kind 'set'"),
    "param not object": (
        _mut(lambda d: _nodes(d)[DOT]["params"].update(contract=[[1], [0]])),
        r"params\.contract: expected an object"),
    "param extra key": (
        _mut(lambda d: _nodes(d)[DOT]["params"]["contract"].update(x=1)),
        "unknown key 'x'"),
    "int as float": (
        _mut(lambda d: _nodes(d)[SC]["params"].update(mode={"t": "int", "v": 1.5})),
        "expected an integer, got float"),
    "bad float": (
        _mut(lambda d: _nodes(d)[C]["params"].update(value={"t": "float", "v": "NaN"})),
        "expected a float"),
    "bad bool": (
        _mut(lambda d: _nodes(d)[C]["params"].update(value={"t": "bool", "v": 1})),
        "expected true or false"),
    "missing param": (
        _mut(lambda d: _nodes(d)[DOT]["params"].pop("contract")),
        "type rule rejects"),
    "unexpected param": (
        _mut(lambda d: _nodes(d)[DOT]["params"].update(axis={"t": "int", "v": 0})),
        "type rule rejects"),
    "bad axes": (
        _mut(lambda d: _nodes(d)[DOT]["params"].update(contract=_deep_tuple(2))),
        "type rule rejects"),
    "bad param name": (
        _mut(lambda d: _nodes(d)[DOT]["params"].update({"a b": {"t": "int", "v": 0}})),
        "not an identifier"),
    "int range": (
        _mut(lambda d: _nodes(d)[C]["params"].update(value={"t": "int", "v": 2 ** 70})),
        "out of range"),
    "string value": (
        _mut(lambda d: _nodes(d)[C]["params"].update(value={"t": "str", "v": "x"})),
        "constant value must be"),
    "deep tuple": (
        _mut(lambda d: _nodes(d)[DOT]["params"].update(contract=_deep_tuple(40))),
        "nested deeper than 32"),
    "long string": (
        _mut(lambda d: _nodes(d)[SC]["params"].update(mode={"t": "str", "v": "x" * 100000})),
        "exceeds the limit"),
    "unknown mode": (
        _mut(lambda d: _nodes(d)[SC]["params"].update(mode={"t": "str", "v": "mul"})),
        "scatter"),
    "graph depth": (lambda: json.dumps(_deep_graph(40)), "nested deeper than 32"),
    "graph param not graph": (
        _mut(lambda d: _nodes(d)[_node_index(d, "cond")]["params"]["branches"]["v"][0].update(v=3)),
        "expected an object"),
    # array literals
    "array short data": (
        _mut(lambda d: _nodes(d)[ARR]["params"]["value"].update(data="AAAA")),
        "base64 characters cannot hold"),
    "array bad base64": (
        _mut(lambda d: _nodes(d)[ARR]["params"]["value"].update(data="!" * 32)),
        "bad base64"),
    "array shape": (
        _mut(lambda d: _nodes(d)[ARR]["params"]["value"].update(shape=[3, 2])),
        "declared type|rejects"),
    "array huge": (
        _mut(lambda d: _nodes(d)[ARR]["params"]["value"].update(shape=[2 ** 40])),
        "exceeds the limit"),
    "array overflow": (
        _mut(lambda d: _nodes(d)[ARR]["params"]["value"].update(shape=[2 ** 62, 2 ** 62])),
        "out of range|more than"),
    "array dtype": (
        _mut(lambda d: _nodes(d)[ARR]["params"]["value"].update(dtype="complex64")),
        "unknown dtype"),
    "array data type": (
        _mut(lambda d: _nodes(d)[ARR]["params"]["value"].update(data=[1, 2])),
        "expected a base64 string"),
    # names and locations
    "duplicate input": (
        _mut(lambda d: d["graph"]["inputs"][1].update(name=d["graph"]["inputs"][0]["name"])),
        "both named"),
    "empty name": (_mut(lambda d: d["graph"].update(name="")), "graph name is empty"),
    "newline name": (
        _mut(lambda d: d["graph"].update(name="a\n  %0: f32[] = x()")),
        "control characters"),
    "input kind": (
        _mut(lambda d: d["graph"]["inputs"][0].update(kind="global")),
        "input kind must be"),
    "bad loc": (
        _mut(lambda d: _nodes(d)[0].update(loc={"file": "a.py", "line": "3"})),
        r"loc line: expected an integer"),
    "loc extra": (
        _mut(lambda d: _nodes(d)[0].update(loc={"file": "a.py", "line": 3, "col": 1})),
        "unknown key 'col'"),
}


@pytest.mark.parametrize("case", sorted(BAD_JSON))
def test_bad_json(case):
    make, pattern = BAD_JSON[case]
    with pytest.raises(tj.GraphFormatError, match=pattern):
        tj.Graph.from_json(make())


def test_bool_array_bytes_checked():
    g = tj.make_graph(lambda x: x & tj.tensor([True, False, True]))(tj.tensor([True] * 3))
    d = json.loads(g.to_json())
    lit = next(n for n in d["graph"]["nodes"] if n["params"].get("value", {}).get("t") == "array")
    lit["params"]["value"]["data"] = "AgAB"  # bytes 2, 0, 1
    with pytest.raises(tj.GraphFormatError, match="0 or 1"):
        tj.Graph.from_json(json.dumps(d))


# -- JSON fuzz -----------------------------------------------------------------------------------

def _paths(x, path=()):
    yield path
    if isinstance(x, dict):
        for k, v in x.items():
            yield from _paths(v, path + (k,))
    elif isinstance(x, list):
        for k, v in enumerate(x):
            yield from _paths(v, path + (k,))


ALL_PATHS = list(_paths(BASE_DOC))[1:]
JSON_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-2 ** 70, 2 ** 70), st.floats(allow_nan=False),
    st.text(max_size=8), st.sampled_from(["float32", "inf", "nan", "graph", "tuple", "array",
                                          "int", "capture", "cond", "get"]),
    st.lists(st.integers(-3, 10), max_size=4), st.just({}), st.just({"t": "int", "v": 1}))


def _mutate(doc, path, action, value):
    parent = doc
    for k in path[:-1]:
        parent = parent[k]
    key = path[-1]
    if action == "delete":
        if isinstance(parent, dict):
            del parent[key]
        else:
            parent.pop(key)
    elif action == "replace":
        parent[key] = value
    elif action == "bump":
        v = parent[key]
        if type(v) is int:
            parent[key] = v + (value if type(value) is int else 1)
        elif isinstance(v, list) and v:
            v.append(v[0])
        elif isinstance(v, str):
            parent[key] = v[:-1]
    return doc


@settings(max_examples=250, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(st.tuples(st.sampled_from(range(len(ALL_PATHS))),
                          st.sampled_from(["delete", "replace", "bump"]), JSON_VALUES),
                min_size=1, max_size=3),
       st.one_of(st.none(), st.integers(0, 10 ** 6)))
def test_json_fuzz(mutations, cut):
    doc = copy.deepcopy(BASE_DOC)
    for k, action, value in mutations:
        path = ALL_PATHS[k]
        try:
            _mutate(doc, path, action, value)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation removed this path
    text = json.dumps(doc)
    if cut is not None:
        text = text[:cut % (len(text) + 1)]
    try:
        g = tj.Graph.from_json(text)
    except tj.GraphFormatError as e:
        assert str(e)
        return
    g.verify()
    assert str(tj.Graph.from_json(g.to_json())) == str(g)


# -- bad text ------------------------------------------------------------------------------------

BASE_TEXT = str(BASE)


def _tmut(old, new, count=1):
    def make():
        assert old in BASE_TEXT, old
        return BASE_TEXT.replace(old, new, count)
    return make


def _edit_line(op, fn):
    """BASE_TEXT with the (first) line of `op` replaced by ``fn(line)``."""
    line = next(ln for ln in BASE_TEXT.splitlines() if f"= {op}(" in ln)
    return BASE_TEXT.replace(line, fn(line), 1)


BAD_TEXT = {
    "empty": (lambda: "", "empty"),
    "not str": (lambda: None, "must be a str"),
    "no graph": (lambda: "hello", r"line 1, column 1: expected 'graph'"),
    "truncated": (lambda: "\n".join(BASE_TEXT.splitlines()[:5]), "ends before .*truncated"),
    "truncated late": (lambda: "\n".join(BASE_TEXT.splitlines()[:-3]), "not closed.*truncated"),
    "trailing": (lambda: BASE_TEXT + "\nmore", "unexpected text after the graph"),
    "unknown op": (_tmut("= dot_general(", "= frobnicate("), "unknown op 'frobnicate'"),
    "wrong arity": (
        _tmut(re.search(r"dot_general\((%\w+), ", BASE_TEXT).group(0), "dot_general("),
        "takes 2 operands, got 1"),
    "undefined": (_tmut("dot_general(%", "dot_general(%99, %"), "%99 is not defined"),
    "forward ref": (
        lambda: _edit_line("dot_general", lambda ln: re.sub(
            r"dot_general\(%\w+", "dot_general(" + ln.split(":")[0].strip(), ln)),
        "not defined before"),
    "wrong shape": (
        lambda: _edit_line("dot_general", lambda ln: ln.replace(": f32[4,3]", ": f32[4,4]", 1)),
        r"declared type f32\[4,4\] differs"),
    "unknown dtype": (_tmut(": f32[", ": f128[", 1), "unknown dtype 'f128'"),
    "huge shape": (
        _tmut("f32[4,2]", "f32[4611686018427387904,4611686018427387904]"),
        "out of range|more than"),
    "duplicate id": (lambda: BASE_TEXT.replace("  %1:", "  %0:", 1), "defined twice"),
    "duplicate input": (_tmut("%i:", "%x:"), "duplicate input name"),
    "bad param": (_tmut("{axes=", "{axes=?"), "expected a param value"),
    "duplicate param": (_tmut("descending=false}", "descending=false, axis=1}"), "given twice"),
    "deep tuple": (
        _tmut("descending=false}", "descending=" + "(" * 100 + "1" + ",)" * 100 + "}"),
        "nested deeper than 32"),
    "unterminated string": (_tmut("mode='add'", "mode='add"), "unterminated string"),
    "bad escape": (_tmut("mode='add'", "mode='a\\qdd'"), "bad escape"),
    "digest": (
        _tmut("value=[[", "value=<float32[2, 3] sha1:0123456789ab>, x=[["),
        "digest.*to_json"),
    "literal shape": (
        _tmut("value=[[1.0, -0.0, 2.0], [inf, 2.0, 3.0]]", "value=[[1.0, -0.0], [inf, 2.0]]"),
        "does not match"),
    "ragged literal": (
        _tmut("value=[[1.0, -0.0, 2.0], [inf, 2.0, 3.0]]", "value=[[1.0, -0.0, 2.0], [inf, 2.0]]"),
        "bad array literal|does not match"),
    "inexact literal": (
        _tmut("value=[[1.0, -0.0, 2.0]", "value=[[1.1, -0.0, 2.0]"),
        "not exactly representable"),
    "stray ref": (
        _tmut("descending=false}", "descending=false, g=(@x, 1)}"),
        "not printed as a sub-graph"),
    "missing subgraph": (
        lambda: re.sub(r"\n\s+graph false_fn.*?\n\s+\}", "", BASE_TEXT, count=1, flags=re.S),
        "sub-graph @false_fn|expected sub-graph"),
    "wrong subgraph": (
        _tmut("branches=(@true_fn, @false_fn)", "branches=(@false_fn, @true_fn)"),
        "expected sub-graph @false_fn"),
    "bad loc": (
        lambda: _edit_line("dot_general", lambda ln: ln.split("#")[0] + "# nowhere"),
        "file:line"),
    "result types": (
        lambda: re.sub(r"-> \((.*?)\) \{", r"-> (\1, f32[]) {", BASE_TEXT, count=1),
        "declares results"),
    "missing brace": (lambda: BASE_TEXT.rstrip("}\n"), "expected '}'"),
    "graph depth": (lambda: _nested_text(40), "nested deeper than 32"),
}


def _nested_text(n):
    lines = []
    for k in range(n):
        ind = "    " * k
        lines += [f"{ind}graph g() -> () {{", f"{ind}  %0: () = cond() {{branches=(@g,)}}"]
    for k in reversed(range(n)):
        ind = "    " * k
        lines += [f"{ind}  return ()", f"{ind}}}"]
    return "\n".join(lines)


@pytest.mark.parametrize("case", sorted(BAD_TEXT))
def test_bad_text(case):
    make, pattern = BAD_TEXT[case]
    with pytest.raises(tj.GraphFormatError, match=pattern):
        tj.Graph.from_text(make())


GRAMMAR_CHARS = "%(){}[]<>@,:=#~'\"\\-.0123456789 \nabcdefinptruesl"


@settings(max_examples=250, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(st.tuples(st.integers(0, 10 ** 6), st.integers(0, 8),
                          st.text(alphabet=GRAMMAR_CHARS, max_size=6)), min_size=1, max_size=3),
       st.one_of(st.none(), st.integers(0, 10 ** 6)))
def test_text_fuzz(edits, cut):
    text = BASE_TEXT
    for pos, n_del, ins in edits:
        pos %= len(text) + 1
        text = text[:pos] + ins + text[pos + n_del:]
    if cut is not None:
        text = text[:cut % (len(text) + 1)]
    try:
        g = tj.Graph.from_text(text)
    except tj.GraphFormatError as e:
        assert str(e)
        return
    g.verify()
    assert tj.Graph.from_text(str(g)) is not None


def test_limits_are_documented():
    doc = (ROOT / "docs" / "ir.md").read_text()
    for name in ("MAX_GRAPH_DEPTH", "MAX_PARAM_DEPTH", "MAX_RANK", "MAX_ELEMENTS",
                 "MAX_LITERAL_BYTES", "MAX_STRING_CHARS", "MAX_TUPLE_LEN", "MAX_INPUT_CHARS"):
        assert str(getattr(B, name)) in doc or f"2^{int(math.log2(getattr(B, name)))}" in doc, name
    assert str(MAX_JSON_DEPTH) in doc
