"""Every example runs, and the graphs it prints match the golden files."""

import importlib.util
import os
import pathlib
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


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_runs(name):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    r = subprocess.run([sys.executable, str(ROOT / "examples" / name)], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=120)
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
