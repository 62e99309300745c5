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

# train_digits.py needs the `examples` extras and trains for a while: it has its own test below.
EXAMPLES = sorted(p.name for p in (ROOT / "examples").glob("*.py") if p.name != "train_digits.py")


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


def test_tensors_walkthrough_prints_what_numpy_computes():
    """examples/tensors.py (the tour for PyTorch users) runs, prints the same thing twice,
    and the values it prints are the ones numpy computes."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))

    def run():
        r = subprocess.run([sys.executable, str(ROOT / "examples" / "tensors.py")], cwd=ROOT,
                           env=env, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        return r.stdout

    out = run()
    assert out == run(), "the walk-through's output should be deterministic"
    lines = out.splitlines()

    def value(prefix):
        (line,) = [ln for ln in lines if ln.startswith(prefix)]
        return line[len(prefix):].strip()

    x = np.arange(12.0).reshape(3, 4)
    assert value("x.sum(dim=1).tolist() =") == str(x.sum(axis=1).tolist())
    assert value("x.sum(axis=0, keepdims=True).tolist() =") == str(
        x.sum(axis=0, keepdims=True).tolist())
    std = ", ".join(f"{v:.4f}" for v in x.std(axis=1, ddof=1))  # torch's std is unbiased
    assert f"x.std(dim=1) = tensor([{std}])" in out
    a, b = np.arange(6.0).reshape(2, 3), np.arange(12.0).reshape(3, 4)
    assert value("(a @ b).tolist() =") == str((a @ b).tolist())
    y = np.zeros(6)
    y[[1, 4]] = 5.0
    y[y == 0] = -1.0
    y[2:4] = [7.0, 8.0]
    assert value("y.tolist() =") == str(y.tolist())
    assert value("after t.add_(1): arr =") == str(np.array([6.0, 1.0, 1.0], np.float32))
    assert value("np.asarray(t) is the same buffer:") == "True"
    # the compiled function: tanh(2x) summed over rows of linspace(-1, 1, 6).reshape(2, 3)
    ref = np.tanh(2 * np.linspace(-1, 1, 6).reshape(2, 3)).sum(-1)
    got = [float(v) for v in re.findall(r"-?\d+\.\d+", value("scaled_tanh_sum(x) ="))]
    np.testing.assert_allclose(got, ref, atol=1e-4)
    assert "graph scaled_tanh_sum(%x: f32[2,3]) -> (f32[2]) {" in out
    assert "tanh(%" in out and "reduce_sum(" in out
    assert "hits=1, misses=2" in out
    # the random numbers it prints are what the seed gives here too
    tj.manual_seed(0)
    r = tj.rand(2, 3).tolist()
    assert value("rand(2, 3).tolist() =") == str([[round(v, 4) for v in row] for row in r])
    assert value("same seed, same numbers:") == "True"


def test_autograd_walkthrough_prints_what_numpy_computes():
    """examples/autograd.py (autograd for PyTorch users) runs, prints the same thing twice, the
    derivatives it prints are the ones worked out here by hand with numpy, and it shows
    PyTorch's four autograd errors."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))

    def run():
        r = subprocess.run([sys.executable, str(ROOT / "examples" / "autograd.py")], cwd=ROOT,
                           env=env, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        return r.stdout

    out = run()
    assert out == run(), "the walk-through's output should be deterministic"
    lines = out.splitlines()

    def tensors(prefix):
        """The values of each tensor printed after `prefix` (a tensor's repr may run over
        several lines)."""
        (i,) = [k for k, ln in enumerate(lines) if ln.startswith(prefix)]
        text, found, k = lines[i][len(prefix):], [], 0
        while (k := text.find("tensor(", k)) >= 0:
            k = start = k + len("tensor(")
            depth = 1
            while depth:
                while k == len(text):  # the repr goes on on the next line
                    i += 1
                    text += lines[i]
                depth += {"(": 1, ")": -1}.get(text[k], 0)
                k += 1
            body = text[start:k - 1]  # `grad_fn=<MulBackward0>` and the like have no decimals
            found.append(np.array([float(v) for v in re.findall(r"-?\d+\.\d*(?:e[+-]?\d+)?",
                                                                body)]))
        return found

    def check(prefix, want, which=0):
        got = tensors(prefix)[which]
        want = np.asarray(want, np.float64).ravel()
        assert got.shape == want.shape, (prefix, got, want)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4, err_msg=prefix)

    # 1. eager autograd on x = arange(4): y = 2 x.x, dy/dx = 4x
    x = np.arange(4.0)
    assert "after y.backward(): x.grad = tensor([ 0.,  4.,  8., 12.])" in out
    check("after y.backward(): x.grad =", 4 * x)
    check("after a second forward and backward: x.grad =", 8 * x)  # accumulated
    check("after x.grad.zero_(): x.grad =", 0 * x)
    check("z = u * x; z.sum().backward(): x.grad =", x * x)  # u = x * x detached
    assert "x.grad equals u: True" in out
    assert "y.grad_fn = <MulBackward0>" in out and "<DotBackward0>" in out
    assert "under tj.no_grad(): (x * 2).requires_grad = False  grad_fn = None" in out
    assert "outside: (x * 2).requires_grad = True" in out
    assert "in a @tj.no_grad() function: requires_grad = False" in out
    check("(x * x).backward(gradient=v): x.grad =", 2 * x * np.array([1.0, 0.1, 0.01, 0.001]))
    check("h = x * x; h.retain_grad(); (3 * h).sum().backward(): h.grad =", np.full(4, 3.0))
    check("  and x.grad =", 6 * x)
    t = 1.5  # y = t**3: y' = 3t^2, y'' = 6t
    check("t = 1.5, y = t ** 3: dy/dt =", [3 * t**2])
    check("t = 1.5, y = t ** 3: dy/dt =", [6 * t], which=1)
    # the errors, with PyTorch's messages
    for msg in ("Trying to backward through the graph a second time",
                "grad can be implicitly created only for scalar outputs",
                "a leaf Variable that requires grad is being used in an in-place operation",
                "one of the variables needed for gradient computation has been modified by an "
                "inplace operation: [torch.FloatTensor [3]], which is output 0 of "
                "SigmoidBackward0, is at version 1; expected version 0 instead"):
        assert msg in out, msg
    check("under no_grad, x.add_(1) is fine: x =", [2.0, 3.0, 4.0])

    # 2. the doubling loop: b = 2a, doubled k more times until |b| >= 1000, so f(a) = 2**(k+1) a
    # and the vjp with v is 2**(k+1) v, k depending on a (the trace follows the path taken)
    v = np.array([1.0, 0.1, 0.01])
    factors = []
    for name, a in (("a", np.array([0.5, -1.0, 2.0])), ("a2", np.array([5.0, -1.0, 2.0]))):
        factor = 2.0
        while np.linalg.norm(factor * a) < 1000:
            factor *= 2
        factors.append(factor)
        check(f"doubling({name}) / {name} =", [factor] * 3)
        check(f"vjp(doubling, {name}, v) =", factor * v)
    check("doubling(a) =", factors[0] * np.array([0.5, -1.0, 2.0]))
    assert factors == [512.0, 256.0]

    # sin(x) * x[0]: J = diag(x0 cos x) + sin(x) e0^T
    xs = np.array([0.5, 1.0, 2.0])
    jac = np.diag(xs[0] * np.cos(xs))
    jac[:, 0] += np.sin(xs)
    d = np.array([1.0, 0.0, -1.0])
    check("jacobian(sin(x) * x[0]) =", jac)
    check("jvp(sin(x) * x[0], x, [1, 0, -1]) =", jac @ d)
    # sum(x**3) + x0 x1: H = diag(6x) + (e0 e1^T + e1 e0^T)
    hess = np.diag(6 * xs)
    hess[0, 1] = hess[1, 0] = 1.0
    check("hessian(sum(x ** 3) + x[0] * x[1]) =", hess)
    check("hvp(cubic, x, [1, 0, -1]) =", hess @ d)
    check("vhp(cubic, x, [1, 0, -1]) =", d @ hess)
    check("hvp(cubic, x, [1, 0, -1]) =", [(xs**3).sum() + xs[0] * xs[1]], which=1)  # f(x)

    # mse(w) = mean((Xw - y)^2): grad = 2/N X^T (Xw - y); per example 2 x_i (x_i.w - y_i)
    w = np.array([1.0, -1.0, 0.5])
    X = np.arange(12.0).reshape(4, 3) / 10
    y = np.array([1.0, 2.0, 3.0, 4.0])
    r = X @ w - y
    check("grad(mse)(w, x, y) =", 2 / len(y) * X.T @ r)
    check("compile(value_and_grad(mse))(w, x, y): value =", [(r**2).mean()])
    check("compile(value_and_grad(mse))(w, x, y): value =", 2 / len(y) * X.T @ r, which=1)
    check("per-example gradients, compile(vmap(grad(mse), in_dims=(None, 0, 0))) =",
          2 * r[:, None] * X)
    assert "their mean is the batch gradient: True" in out
    check("compile(grad(grad(t ** 3)))(2.0) =", [12.0])
    assert "graph f(%x: f32[3]) -> (f32[3]) {" in out and "tanh(%x)" in out

    # 3. gradient descent on the linear regression, worked out in float64
    X = np.array([[1, 0, 1], [0, 1, 2], [1, 1, 0], [2, 0, -1], [0, 2, 1], [1, -1, 1]], float)
    y = X @ np.array([2.0, -1.0, 0.5])
    w = np.zeros(3)
    for i in range(8):
        r = X @ w - y
        loss = float((r**2).mean())
        assert f"step {i}: loss = {loss:.4f}  (eager: {loss:.4f})" in out, (i, loss)
        w -= 0.2 * 2 / len(y) * X.T @ r
    check("after 8 compiled steps: w =", w)
    check("after 8 eager steps:    w =", w)
    assert "w.grad = None" in out
    assert "compiled and eager parameters agree: True" in out
    assert "CacheInfo(hits=7, misses=1," in out


def test_train_digits_reaches_97_percent(tmp_path):
    """examples/train_digits.py (the README's demo: a small CNN trained on scikit-learn's 8x8
    digits, the whole step under tj.compile) reaches 97% test accuracy in under a minute, and
    saves its curves as a PNG."""
    for mod in ("sklearn", "matplotlib", "tqdm"):
        pytest.importorskip(mod, reason=f"examples/train_digits.py needs {mod} "
                            "(pip install -e .[examples])")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    plot = tmp_path / "x.png"
    r = subprocess.run([sys.executable, str(ROOT / "examples" / "train_digits.py"),
                        "--plot", str(plot), "--no-progress"], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    epochs = re.findall(r"^epoch +\d+ +train loss ([\d.]+) +test accuracy ([\d.]+)%$", out, re.M)
    assert len(epochs) >= 2, out
    assert float(epochs[-1][0]) < float(epochs[0][0]), "the training loss should go down"
    (acc,) = re.findall(r"^test accuracy: ([\d.]+)%$", out, re.M)
    assert float(acc) >= 97.0, out
    assert float(acc) == float(epochs[-1][1])
    (wall,) = re.findall(r"^wall time: ([\d.]+) s", out, re.M)
    assert float(wall) < 60.0, f"training took {wall} s\n{out}"
    assert "misses=1," in out, "the training step should be traced and compiled once"
    data = plot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000, len(data)
    assert not (tmp_path / "digits_training.png").exists()  # --plot was honoured
    assert "it/s" not in out and "epoch/s" not in out  # no progress bar on stdout
