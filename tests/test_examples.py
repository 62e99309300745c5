"""Every example runs, and the graphs it prints match the golden files."""

import importlib.util
import os
import pathlib
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

import tracejit as tj

ROOT = pathlib.Path(__file__).resolve().parent.parent

EXAMPLES = sorted(p.name for p in (ROOT / "examples").glob("*.py"))


def _load(name):
    spec = importlib.util.spec_from_file_location(name[:-3], ROOT / "examples" / name)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


# Examples that write files take an output folder: the tests give them a temporary one, so
# that running the tests never rewrites what is checked in (e.g. docs/export_example/).
WRITES_FILES = {"export_mlp.py"}


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_runs(name, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    extra = [str(tmp_path / "out")] if name in WRITES_FILES else []
    r = subprocess.run([sys.executable, str(ROOT / "examples" / name), *extra], cwd=ROOT,
                       env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip(), "an example should show the user something"


def _check_golden(text: str, name: str, update: bool):
    path = ROOT / "tests" / "golden" / name
    if update or not path.exists():
        path.write_text(text + "\n")
        if not update:
            pytest.fail(f"golden file {name} did not exist; written now, check it in")
    assert text + "\n" == path.read_text(), (
        f"IR text differs from tests/golden/{name}; if the change is deliberate, rerun with "
        "--update-golden")


def test_quickstart_graph_golden(repo_root, update_golden):
    mod = _load("quickstart.py")
    x, w, b = tj.ones(4, 3), tj.ones(3, 5), tj.zeros(5)
    g = tj.make_graph(mod.mlp_layer)(x, w, b)
    g.verify()
    _check_golden(str(g), "quickstart.txt", update_golden)
    # the graph computes what the function computes, checked against numpy
    rng = np.random.default_rng(1)
    xv, wv, bv = (rng.standard_normal(s).astype(np.float32) for s in ((4, 3), (3, 5), (5,)))
    h = np.tanh(xv @ wv + bv)
    ref = np.exp(h - h.max(-1, keepdims=True))
    ref /= ref.sum(-1, keepdims=True)
    np.testing.assert_allclose(g(xv, wv, bv).numpy(), ref, rtol=1e-5, atol=1e-6)


def test_quickstart_while_golden(repo_root, update_golden):
    g = tj.make_graph(lambda v: tj.while_loop(lambda u: u.norm() < 1000, lambda u: u * 2, v))(
        tj.ones(3))
    g.verify()
    text = "\n".join(line.split("  #")[0].rstrip() for line in str(g).splitlines())
    _check_golden(text, "while_loop.txt", update_golden)


def test_export_mlp_writes_its_dumps(tmp_path, monkeypatch):
    """examples/export_mlp.py (the worked example of docs/export.md) writes the forward and
    backward graphs, the fused schedule and the picture, each what it should be."""
    monkeypatch.chdir(ROOT)  # source locations print relative to here, as in the docs
    mod = _load("export_mlp.py")
    out = tmp_path / "out"
    written = mod.main(str(out))
    names = sorted(os.path.basename(p) for p in written)
    expected = ["backward.txt", "forward.dot", "forward.txt", "schedule.txt"]
    if shutil.which("dot") is not None:
        expected.append("forward.svg")
    assert names == sorted(expected)

    forward = (out / "forward.txt").read_text()
    assert forward.startswith("graph loss(%w1: f32[4,8], %b1: f32[8], %w2: f32[8,3], %b2: f32[3], "
                              "%x: f32[5,4], %y: f32[5,3]) -> (f32[]) {")
    assert "tanh(" in forward and "examples/export_mlp.py:" in forward
    g = tj.Graph.from_text(forward)
    args = mod.example_args()
    w1, b1, w2, b2, x, y = (a.numpy().astype(np.float64) for a in args)
    logits = np.tanh(x @ w1 + b1) @ w2 + b2
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    np.testing.assert_allclose(float(g(*args)), -(y * logp).sum(-1).mean(), rtol=1e-5)

    backward = (out / "backward.txt").read_text()
    assert backward.splitlines()[0].endswith("-> (f32[4,8], f32[8], f32[8,3], f32[3]) {")
    gb = tj.Graph.from_text(backward)
    grads = gb(*args)
    ref = tj.grad(mod.loss, argnums=(0, 1, 2, 3))(*args)
    for a, b in zip(grads, ref):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)

    sched = (out / "schedule.txt").read_text()
    assert sched.startswith("schedule: ") and "gemm" in sched and "fuses:" in sched
    dot = (out / "forward.dot").read_text()
    assert dot.startswith("digraph") and "cluster" in dot and "tanh" in dot
    if shutil.which("dot") is not None:
        svg = (out / "forward.svg").read_text()
        assert "<svg" in svg and "tanh" in svg


def test_export_docs_show_the_example_output():
    """docs/export.md pastes the example's output; it must match what the example writes
    (regenerate with `python examples/export_mlp.py` from the repository root)."""
    doc = (ROOT / "docs" / "export.md").read_text()
    for name in ("forward.txt", "backward.txt", "schedule.txt"):
        path = ROOT / "docs" / "export_example" / name
        text = path.read_text().rstrip("\n")
        assert text in doc, f"docs/export.md does not show docs/export_example/{name}"
        # generated by running the script from the repository root, nothing else
        locs = set(re.findall(r"(?:# |\()([\w./-]+\.py):\d+", text))
        assert locs == {"examples/export_mlp.py"}, (name, locs)
    assert "export_example/forward.svg" in doc
