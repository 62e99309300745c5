"""DOT/SVG drawings, ``TRACEJIT_DUMP`` and ``Lowered.as_text`` for every stage.

The DOT text is checked structurally (a small reader below tracks which cluster each node
statement sits in), labels are checked to be escaped, and, where Graphviz's ``dot`` is installed,
the text is rendered and the SVG parsed as XML. Tests that need ``dot`` skip without it.
"""

from __future__ import annotations

import collections
import json
import re
import shutil
import xml.etree.ElementTree as ET

import numpy as np
import pytest

import tracejit as tj
from tracejit.export import dot as D
from tracejit.export import dump as DUMP
from tracejit.ir.graph import Graph, Node, TensorType
from tracejit.passes.pipeline import optimize
from tracejit.schedule.fusion import schedule as make_schedule

HAVE_DOT = shutil.which("dot") is not None
needs_dot = pytest.mark.skipif(not HAVE_DOT, reason="Graphviz's `dot` is not installed "
                               "(apt install graphviz)")

SVG_NS = "{http://www.w3.org/2000/svg}"


def mlp(x, w, b):
    h = tj.tanh(x @ w + b)
    return tj.softmax(h, dim=-1).sum(dim=0)


def with_cond(x):
    y = tj.cond(x.sum() > 0, lambda v: v * 2.0, lambda v: v - 1.0, x)
    return tj.while_loop(lambda c: c[0] < 3, lambda c: (c[0] + 1, c[1] * 0.5), (0, y))[1]


MLP_ARGS = (tj.ones(3, 4), tj.ones(4, 5), tj.ones(5))


# -- a reader for the DOT we write -------------------------------------------------------------

_NODE = re.compile(r"^\s*(\w+) \[label=(<.*?>), ")
_EDGE = re.compile(r"^\s*(\w+) -> (\w+)")
_LABEL = re.compile(r"^\s*label=(<.*?>);")


def read_dot(text: str):
    """``(nodes, edges, clusters)``: node id -> (label, cluster path), edges as id pairs, and
    cluster labels in order, each with its parent's index (or None)."""
    nodes, edges, clusters, stack = {}, [], [], []
    for line in text.splitlines():
        s = line.strip()
        if s.startswith("subgraph cluster_"):
            clusters.append([None, stack[-1] if stack else None])
            stack.append(len(clusters) - 1)
        elif s == "}":
            if stack:
                stack.pop()
        elif (m := _LABEL.match(line)) and stack:
            clusters[stack[-1]][0] = m.group(1)
        elif m := _EDGE.match(line):
            edges.append((m.group(1), m.group(2)))
        elif m := _NODE.match(line):
            nodes[m.group(1)] = (m.group(2), tuple(stack))
    return nodes, edges, clusters


def plain(label: str) -> str:
    """The text of an HTML-like label, tags dropped and entities decoded."""
    import html
    return " ".join(html.unescape(re.sub(r"<[^>]*>", " ", label[1:-1])).split())


# -- DOT text ----------------------------------------------------------------------------------

def test_dot_draws_every_node_edge_input_and_output(repo_root):
    g = tj.make_graph(mlp)(*MLP_ARGS)
    text = g.to_dot()
    assert text.startswith('digraph "mlp" {') and text.rstrip().endswith("}")
    nodes, edges, clusters = read_dot(text)
    assert clusters == []  # no schedule, no control flow
    labels = [plain(lab) for lab, _ in nodes.values()]
    # one statement per input, per node, and the outputs
    assert len(nodes) == len(g.inputs) + len(g.nodes) + 1
    for n in g.inputs:
        assert any(f"%{n.name}" in lab and "input" in lab and str(n.type) in lab
                   for lab in labels)
    for n in g.nodes:
        if n.op == "constant":
            continue
        assert any(lab.split()[0] == n.op and str(n.type) in lab and str(n.loc) in lab
                   for lab in labels), n
        assert "tests/test_export_dot.py:" in str(n.loc)
    # constants: compact plain labels (value and type), no box
    const = [line for line in text.splitlines() if 'shape="plaintext"' in line]
    assert len(const) == sum(n.op == "constant" for n in g.nodes)
    # one edge per operand, plus one per output
    assert len(edges) == sum(len(n.inputs) for n in g.nodes) + len(g.outputs)
    assert any("outputs" in lab for lab in labels)
    assert g.to_dot() == text  # deterministic


def test_dot_subgraphs_are_nested_clusters():
    g = tj.make_graph(with_cond)(tj.ones(2))
    nodes, edges, clusters = read_dot(g.to_dot())
    names = [plain(c[0]) for c in clusters]
    assert "cond" in names and "while" in names
    for want in ("branches[0]: true_fn", "branches[1]: false_fn", "cond: cond_fun",
                 "body: body_fun"):
        i = names.index(want)
        parent = clusters[i][1]
        assert parent is not None and names[parent] in ("cond", "while")
    # the sub-graph's nodes are drawn inside their sub-graph's cluster
    mul = [path for lab, path in nodes.values() if plain(lab).startswith("mul ")]
    assert any(names[path[-1]] == "branches[0]: true_fn" for path in mul)
    assert any(names[path[-1]] == "body: body_fun" for path in mul)
    ret = [path for lab, path in nodes.values() if plain(lab).startswith("return ")]
    assert len(ret) == 4  # each sub-graph has its own outputs


def test_dot_nested_control_flow_nests_clusters():
    def f(x):
        def body(c):
            i, v = c
            return i + 1, tj.cond(v.sum() > 1.0, lambda u: u * 0.5, lambda u: u + 1.0, v)
        return tj.while_loop(lambda c: c[0] < 4, body, (0, x))[1]
    nodes, _, clusters = read_dot(tj.make_graph(f)(tj.ones(2)).to_dot())
    names = [plain(c[0]) for c in clusters]
    inner = names.index("branches[0]: true_fn")
    chain = []
    i = inner
    while i is not None:
        chain.append(names[i])
        i = clusters[i][1]
    assert chain == ["branches[0]: true_fn", "cond", "body: body", "while"]


def test_dot_schedule_clusters_are_kernels():
    g = tj.make_graph(mlp)(*MLP_ARGS)
    opt = optimize(g)
    sched = make_schedule(opt)
    text = opt.to_dot(schedule=sched)
    assert text == g.to_dot(schedule=True).replace("optimized graph", "graph")
    nodes, _, clusters = read_dot(text)
    names = [plain(c[0]) for c in clusters]
    kinds = {"Kernel": "loop kernel", "RowKernel": "row kernel", "Gemm": "gemm",
             "Extern": "extern"}
    drawn = {}
    for st in sched.steps:
        name = st.node.op if type(st).__name__ == "Extern" else st.name
        label = next(lab for lab in names if lab.split()[0] == name)
        assert kinds[type(st).__name__] in label
        drawn[name] = label
    assert any(lab.startswith("k0_gemm") for lab in names)
    # every fused node is drawn once, in the cluster of the first step it is fused into
    first: dict[int, int] = {}
    for i, st in enumerate(sched.steps):
        for n in ([st.node] if type(st).__name__ == "Extern" else st.nodes):
            first.setdefault(id(n), i)
    want = collections.Counter(first.values())
    got = collections.Counter(path[-1] for _, path in nodes.values() if path)
    assert sorted(got.values()) == sorted(want.values()) and sum(got.values()) == len(first)
    # a gemm whose elementwise consumers are its epilogue: one cluster holds all three
    epi = tj.make_graph(lambda x, w, b: tj.tanh(x @ w + b))(*MLP_ARGS).to_dot(schedule=True)
    nodes, _, clusters = read_dot(epi)
    names = [plain(c[0]) for c in clusters]
    (k,) = [i for i, n in enumerate(names) if n.endswith("gemm with epilogue")]
    assert {plain(lab).split()[0] for lab, p in nodes.values() if p and p[-1] == k} == {
        "dot_general", "add", "tanh"}
    # a schedule of another graph is refused with a pointer to schedule=True
    with pytest.raises(ValueError, match="schedule=True"):
        g.to_dot(schedule=make_schedule(optimize(tj.make_graph(mlp)(*MLP_ARGS))))
    with pytest.raises(TypeError, match="Schedule"):
        g.to_dot(schedule="kernels")


def test_dot_row_kernel_cluster():
    g = tj.make_graph(lambda x: tj.softmax(x, dim=-1))(tj.ones(64, 256))
    nodes, _, clusters = read_dot(g.to_dot(schedule=True))
    names = [plain(c[0]) for c in clusters]
    (row,) = [i for i, n in enumerate(names) if n.endswith("row kernel")]
    ops = {plain(lab).split()[0] for lab, path in nodes.values() if path and path[-1] == row}
    assert {"reduce_max", "exp", "reduce_sum", "div"} <= ops


def test_dot_extern_cluster_holds_control_flow():
    nodes, _, clusters = read_dot(tj.make_graph(with_cond)(tj.ones(2)).to_dot(schedule=True))
    names = [plain(c[0]) for c in clusters]
    ext = [i for i, n in enumerate(names) if n.endswith("extern")]
    assert {names[i].split()[0] for i in ext} >= {"cond", "while"}
    parents = {names[c[1]] for c in clusters if c[1] is not None}
    assert "cond extern" in parents and "while extern" in parents


NASTY = 'a"b\\c<d>{e}|f&g'


def nasty_graph() -> Graph:
    t = TensorType((2,), tj.float32)
    x = Node("input", (), {"kind": "arg"}, t, name=NASTY)
    y = Node("exp", (x,), {}, t)
    return Graph([x], [y], name='q"uo<te>')


def test_dot_labels_are_escaped():
    text = nasty_graph().to_dot()
    labels = re.findall(r"label=(<.*?>)[,;]", text)
    bare_amp = re.compile(r"&(?!(amp|lt|gt|quot|#x27);)")
    assert labels and not any("<d>" in lab or '"' in lab or bare_amp.search(lab)
                              for lab in labels)
    assert "a&quot;b\\c&lt;d&gt;{e}|f&amp;g" in text  # HTML-like label: XML-escaped
    assert 'tooltip="input %a\\"b\\\\c<d>{e}|f&g: f32[2]"' in text  # quoted: \\ and \" only
    assert text.startswith('digraph "q\\"uo<te>" {')
    assert D.quoted('x\ny"\\') == '"x\\ny\\"\\\\"'
    assert D.html_text("a\x01<b>\n") == "a?&lt;b&gt; "


@needs_dot
def test_dot_escaped_labels_render_literally():
    svg = D.render_svg(nasty_graph().to_dot())
    texts = [t.text for t in ET.fromstring(svg).iter(SVG_NS + "text")]
    assert "%" + NASTY in texts


# -- saving ------------------------------------------------------------------------------------

def test_save_dot(tmp_path):
    g = tj.make_graph(with_cond)(tj.ones(2))
    g.save(tmp_path / "g.dot")
    assert (tmp_path / "g.dot").read_text(encoding="utf-8") == g.to_dot()
    g.save(str(tmp_path / "G.DOT"))
    assert (tmp_path / "G.DOT").exists()


@needs_dot
def test_save_svg_renders_with_graphviz(tmp_path):
    g = tj.make_graph(mlp)(*MLP_ARGS)
    g.save(tmp_path / "g.svg")
    root = ET.parse(tmp_path / "g.svg").getroot()
    assert root.tag == SVG_NS + "svg"
    texts = {t.text for t in root.iter(SVG_NS + "text")}
    for n in g.nodes:
        if n.op != "constant":
            assert n.op in texts
    assert {"%x", "%w", "%b", "outputs"} <= texts
    # a scheduled drawing renders too, its kernel names shown
    svg = D.render_svg(g.to_dot(schedule=True))
    texts = {t.text for t in ET.fromstring(svg).iter(SVG_NS + "text")}
    assert any(t and t.startswith("k0_gemm") for t in texts)


def test_save_svg_without_graphviz_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setattr(D.shutil, "which", lambda name: None)
    g = tj.make_graph(mlp)(*MLP_ARGS)
    with pytest.raises(D.GraphvizNotFoundError) as e:
        g.save(tmp_path / "g.svg")
    msg = str(e.value)
    for want in ("`dot`", "not installed", "apt install graphviz", "brew install graphviz",
                 "conda install graphviz", ".dot"):
        assert want in msg
    assert not (tmp_path / "g.svg").exists()
    g.save(tmp_path / "g.dot")  # needs nothing
    assert (tmp_path / "g.dot").exists()


def test_render_svg_reports_dot_failure(monkeypatch):
    if not HAVE_DOT:
        pytest.skip("Graphviz's `dot` is not installed")
    with pytest.raises(RuntimeError, match="dot -Tsvg. failed"):
        D.render_svg("digraph { this is not dot")


# -- every stage -------------------------------------------------------------------------------

STAGES = ("graph", "optimized", "schedule", "llvm", "asm", "cuda")  # SPEC §2


@pytest.mark.parametrize("fn,args", [(mlp, MLP_ARGS), (with_cond, (tj.ones(2),)),
                                     (lambda x: x, (tj.ones(3),))], ids=["mlp", "cond", "id"])
def test_as_text_every_stage(fn, args):
    lo = tj.compile(fn).lower(*args)
    assert lo.STAGES == STAGES
    texts = {}
    for stage in STAGES[:-1]:
        texts[stage] = lo.as_text(stage)
        assert isinstance(texts[stage], str) and texts[stage]
    assert texts["graph"] == str(lo.graph) and texts["graph"].startswith("graph ")
    assert texts["optimized"] == str(optimize(lo.graph))
    assert texts["schedule"].startswith("schedule: ")
    assert "target triple" in texts["llvm"]
    if fn is mlp:
        assert "define" in texts["llvm"] and texts["asm"].strip()
    assert lo.as_text("cuda").startswith("// generated by tracejit.codegen.cuda")
    with pytest.raises(ValueError, match="unknown stage"):
        lo.as_text("backward")


# -- TRACEJIT_DUMP -----------------------------------------------------------------------------

def _prefixes(folder) -> dict[str, str]:
    lines = (folder / "index.txt").read_text().splitlines()
    return {ln.split("\t")[0]: ln.split("\t")[2] for ln in lines}


def test_dump_writes_every_stage(tmp_path, monkeypatch):
    out = tmp_path / "new" / "dumps"  # created on demand
    monkeypatch.setenv("TRACEJIT_DUMP", str(out))

    @tj.compile
    def layer(x, w, b):
        return mlp(x, w, b)

    layer(*MLP_ARGS)
    layer(*MLP_ARGS)  # a cache hit: nothing new
    layer(tj.ones(2, 4), tj.ones(4, 5), tj.ones(5))
    prefixes = _prefixes(out)
    assert len(prefixes) == 2
    assert set(prefixes.values()) == {"layer(x: f32[3,4], w: f32[4,5], b: f32[5])",
                                      "layer(x: f32[2,4], w: f32[4,5], b: f32[5])"}
    for p in prefixes:
        assert re.fullmatch(r"layer\.[0-9a-f]{8}", p)
        for stage in ("graph", "optimized", "schedule", "llvm", "asm"):
            assert (out / f"{p}.{stage}.txt").stat().st_size > 0
        assert not (out / f"{p}.cuda.txt").exists()
        graph_text = (out / f"{p}.graph.txt").read_text()
        loaded = tj.Graph.from_json((out / f"{p}.graph.json").read_text())
        assert str(loaded) + "\n" == graph_text
        assert (out / f"{p}.schedule.txt").read_text().startswith("schedule: ")
        assert "define" in (out / f"{p}.llvm.txt").read_text()
    lo = layer.lower(*MLP_ARGS)
    p = next(k for k, v in prefixes.items() if "f32[3,4]" in v)
    assert (out / f"{p}.graph.txt").read_text() == lo.as_text("graph") + "\n"
    assert (out / f"{p}.optimized.txt").read_text() == lo.as_text("optimized") + "\n"
    assert (out / f"{p}.schedule.txt").read_text() == lo.as_text("schedule") + "\n"


def test_dump_names_are_unique_per_function(tmp_path, monkeypatch):
    monkeypatch.setenv("TRACEJIT_DUMP", str(tmp_path))
    tj.compile(lambda x: x * 2.0, device="interpreter")(tj.ones(2))
    tj.compile(lambda x: x + 2.0, device="interpreter")(tj.ones(2))
    prefixes = _prefixes(tmp_path)
    assert len(prefixes) == 2 and all(p.startswith("lambda.") for p in prefixes)
    for p in prefixes:  # the interpreter has no machine code to dump
        assert (tmp_path / f"{p}.schedule.txt").exists()
        assert not (tmp_path / f"{p}.llvm.txt").exists()


def test_dump_backward_graphs_of_the_derivative_api(tmp_path, monkeypatch):
    monkeypatch.setenv("TRACEJIT_DUMP", str(tmp_path))
    x = tj.tensor([0.5, 1.0, 2.0])
    g = tj.grad(lambda v: (tj.sin(v) * v).sum())(x)
    np.testing.assert_allclose(g.numpy(), np.sin(x.numpy()) + x.numpy() * np.cos(x.numpy()),
                               rtol=1e-6)
    j = tj.jacobian(lambda v: tj.exp(v) * 3.0, x)
    np.testing.assert_allclose(j.numpy(), np.diag(3 * np.exp(x.numpy())), rtol=1e-6)
    prefixes = _prefixes(tmp_path)
    vg = [p for p in prefixes if p.startswith("value_and_grad.")]
    jac = [p for p in prefixes if p.startswith("jacobian.")]
    assert len(vg) == 1 and len(jac) == 1
    back = (tmp_path / f"{vg[0]}.graph.txt").read_text()
    assert back.startswith("graph value_and_grad(") and "cos(" in back  # d sin = cos
    for p in vg + jac:
        for stage in ("graph", "optimized", "schedule", "llvm", "asm"):
            assert (tmp_path / f"{p}.{stage}.txt").exists()
        json.loads((tmp_path / f"{p}.graph.json").read_text())


def test_dump_unwritable_folder_warns_once(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("TRACEJIT_DUMP", str(blocker / "dumps"))
    f = tj.compile(lambda x: x * 3.0)
    with pytest.warns(RuntimeWarning, match="TRACEJIT_DUMP.*cannot write") as rec:
        y = f(tj.ones(2))
    assert y.tolist() == [3.0, 3.0]
    assert sum("TRACEJIT_DUMP" in str(w.message) for w in rec) == 1
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the same folder again: no second warning
        assert f(tj.ones(3)).tolist() == [3.0, 3.0, 3.0]


def test_dump_off_does_nothing(tmp_path, monkeypatch):
    monkeypatch.delenv("TRACEJIT_DUMP", raising=False)
    monkeypatch.chdir(tmp_path)

    def boom(*a, **k):
        raise AssertionError("dumped with TRACEJIT_DUMP unset")
    monkeypatch.setattr(DUMP, "dump_compilation", boom)
    assert tj.compile(lambda x: x - 1.0)(tj.ones(2)).tolist() == [0.0, 0.0]
    monkeypatch.setenv("TRACEJIT_DUMP", "")
    assert tj.compile(lambda x: x - 2.0)(tj.ones(2)).tolist() == [-1.0, -1.0]
    assert list(tmp_path.iterdir()) == []


def test_dump_stage_failure_is_a_warning(tmp_path, monkeypatch):
    monkeypatch.setenv("TRACEJIT_DUMP", str(tmp_path))
    monkeypatch.setattr(Graph, "to_json", lambda self, indent=None: 1 / 0)
    with pytest.warns(RuntimeWarning, match="could not render stage 'graph'"):
        assert tj.compile(lambda x: x * 5.0)(tj.ones(1)).tolist() == [5.0]
    (p,) = _prefixes(tmp_path)
    assert (tmp_path / f"{p}.graph.txt").exists() and not (tmp_path / f"{p}.graph.json").exists()
