"""The command line, run as a subprocess: ``python -m tracejit dump ...`` and ``cache``.

Every format, ``-o``, ``--grad``, and each kind of bad argument (one line on stderr, exit status
2 for a malformed command line and 1 for a failure while running it, never a traceback).
"""

import json
import os
import pathlib
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import tracejit as tj
from tracejit.__main__ import UsageError, parse_argnums, parse_types

ROOT = pathlib.Path(__file__).resolve().parent.parent
MLP_ARGS = "f32[3,4], f32[4,8], f32[8]"

MODEL = textwrap.dedent("""\
    import tracejit as tj

    def mlp(x, w, b):
        return tj.tanh(x @ w + b)

    def loss(x, w, b):
        return (mlp(x, w, b) ** 2).mean()

    def boom(x):
        raise ValueError("no good\\nsecond line")

    def count(x):
        return (x > 0).sum()

    class Net:
        @staticmethod
        def forward(x):
            return x * 2.0

    NOT_A_FUNCTION = 3
    """)


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    (d / "model.py").write_text(MODEL)
    (d / "pkg").mkdir()
    (d / "pkg" / "__init__.py").write_text("")
    (d / "pkg" / "layers.py").write_text("import tracejit as tj\n\ndef dense(x, w):\n"
                                         "    return tj.relu(x @ w)\n")
    (d / "broken.py").write_text("import tracejit\nVALUE = 1 / 0\n")
    (d / "rnd.py").write_text("import tracejit as tj\n\ndef noise(k):\n"
                              "    return tj.random.uniform(k, (3,))\n")
    return d


def run(work, *argv, env=None, binary=False):
    e = dict(os.environ, PYTHONPATH=str(ROOT))
    e.pop("TRACEJIT_DEBUG", None)
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", "tracejit", *argv], cwd=work, env=e,
                          capture_output=True, text=not binary, timeout=120)


def ok(r) -> str:
    assert r.returncode == 0, r.stderr
    assert r.stderr == "", r.stderr
    return r.stdout


def one_line_error(r, status: int, *fragments: str) -> str:
    assert r.returncode == status, (r.returncode, r.stderr)
    assert r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("tracejit: error: "), lines[0]
    assert "Traceback" not in r.stderr
    for f in fragments:
        assert f in lines[0], (f, lines[0])
    return lines[0]


def _has(method: str) -> bool:
    return hasattr(tj.Graph, method)


# -- the --args parser (in-process) ----------------------------------------------------------

def test_parse_types():
    got = parse_types(" f32[3, 4],i64[], bool[2] ,f64[0,1]")
    assert [(s, d.short) for s, d in got] == [((3, 4), "f32"), ((), "i64"), ((2,), "bool"),
                                             ((0, 1), "f64")]
    assert parse_types("") == [] and parse_types("  ") == []
    for bad in ("f32[3,4", "f32", "f32[3,]", "f32[-1]", "f32[1.5]", "~f32[]", "float32[3]",
                "f32[3] f32[4]", "f32[3],", ",", "f32[[3]]", "f32[3]x", "q7[2]", "f32[3e2]"):
        with pytest.raises(UsageError):
            parse_types(bad)
    with pytest.raises(UsageError, match="spells float32 as f32"):
        parse_types("float32[3]")
    assert parse_argnums("0, 2") == (0, 2)
    for bad in ("", "a", "-1", "0,0", "1.0"):
        with pytest.raises(UsageError):
            parse_argnums(bad)


# -- formats -------------------------------------------------------------------------------

def test_text_stdout(work):
    out = ok(run(work, "dump", "model:mlp", "--args", MLP_ARGS))
    assert out.startswith("graph mlp(%x: f32[3,4], %w: f32[4,8], %b: f32[8]) -> (f32[3,8]) {")
    assert "tanh(" in out and "model.py:4" in out
    # the text is the IR's: it loads back
    assert str(tj.Graph.from_text(out)) == out.rstrip("\n")


def test_json_to_file_from_path_and_dotted_name(work):
    r = run(work, "dump", "./model.py:Net.forward", "--args", "f32[2,3]", "-o", "net.json")
    assert ok(r) == ""
    doc = (work / "net.json").read_text()
    assert json.loads(doc)["format"] == "tracejit.graph"
    g = tj.Graph.from_json(doc)
    np.testing.assert_allclose(g(np.ones((2, 3), np.float32)).numpy(), 2.0)


def test_package_module_and_inferred_format(work):
    # pkg.layers is imported by module name; the .txt extension picks the text format
    assert ok(run(work, "dump", "pkg.layers:dense", "--args", "f32[2,3], f32[3,5]",
                  "-o", "dense.txt")) == ""
    text = (work / "dense.txt").read_text()
    assert text.startswith("graph dense(%x: f32[2,3], %w: f32[3,5]) -> (f32[2,5]) {")
    assert os.path.join("pkg", "layers.py") + ":4" in text


def test_grad_text_argnums(work):
    out = ok(run(work, "dump", "model:loss", "--args", MLP_ARGS, "--grad", "--argnums", "1,2"))
    first = out.splitlines()[0]
    assert first.endswith("-> (f32[4,8], f32[8]) {"), first
    out0 = ok(run(work, "dump", "model:loss", "--args", MLP_ARGS, "--grad"))
    assert out0.splitlines()[0].endswith("-> (f32[3,4]) {")


def test_grad_schedule(work):
    out = ok(run(work, "dump", "model:loss", "--args", MLP_ARGS, "--grad", "-f", "schedule"))
    assert out.startswith("schedule:") and "fuses:" in out


def test_llvm_inferred_from_extension(work):
    assert ok(run(work, "dump", "model:mlp", "--args", MLP_ARGS, "-o", "mlp.ll")) == ""
    ll = (work / "mlp.ll").read_text()
    assert "define" in ll and "target triple" in ll
    asm = ok(run(work, "dump", "model:mlp", "--args", MLP_ARGS, "-f", "asm"))
    assert "ret" in asm


def test_cuda(work):
    """The CUDA C of the MLP (one Gemm step with its epilogue): no GPU or pycuda needed."""
    src = ok(run(work, "dump", "model:mlp", "--args", MLP_ARGS, "--format", "cuda"))
    assert '#include "tj_cuda.h"' in src and "TJ_KERNEL void" in src
    assert "TJ_EMU_ENTRY(k0_gemm" in src and "tanhf(" in src


@pytest.mark.skipif(not _has("to_dot"), reason="DOT export (tracejit/export/dot.py) not present")
def test_dot(work):
    out = ok(run(work, "dump", "model:mlp", "--args", MLP_ARGS, "-f", "dot"))
    assert out.startswith("digraph") and "tanh" in out
    kern = ok(run(work, "dump", "model:mlp", "--args", MLP_ARGS, "-f", "dot", "--kernels"))
    assert "cluster" in kern


@pytest.mark.skipif(not _has("to_dot") or shutil.which("dot") is None,
                    reason="needs DOT export and Graphviz's dot")
def test_svg_file_and_stdout(work):
    assert ok(run(work, "dump", "model:loss", "--args", MLP_ARGS, "--grad",
                  "-o", "loss_grad.svg")) == ""
    svg = (work / "loss_grad.svg").read_text()
    assert "<svg" in svg and "</svg>" in svg
    out = ok(run(work, "dump", "model:mlp", "--args", MLP_ARGS, "-f", "svg"))
    assert "<svg" in out


@pytest.mark.skipif(not _has("to_onnx"), reason="ONNX export (tracejit/export/onnx.py) not present")
def test_onnx(work):
    r = run(work, "dump", "model:mlp", "--args", MLP_ARGS, "-o", "mlp.onnx", binary=True)
    assert r.returncode == 0, r.stderr
    data = (work / "mlp.onnx").read_bytes()
    assert len(data) > 0
    onnx = pytest.importorskip("onnx")
    onnx.checker.check_model(onnx.load_from_string(data))
    # a primitive without an ONNX equivalent: one line naming it, and no file
    r = run(work, "dump", "rnd:noise", "--args", "i64[2]", "-o", "rnd.onnx")
    one_line_error(r, 1, "--format onnx:", "random_bits", "rnd.py:4")
    assert not (work / "rnd.onnx").exists()


def test_onnx_needs_output_file(work):
    one_line_error(run(work, "dump", "model:mlp", "--args", MLP_ARGS, "-f", "onnx"), 2, "-o FILE")


def test_pending_format_is_one_line_error(work):
    # until an exporter lands, its format is a one-line error, never a traceback
    for fmt, method in (("dot", "to_dot"), ("onnx", "to_onnx")):
        if _has(method):
            continue
        r = run(work, "dump", "model:mlp", "--args", MLP_ARGS, "-f", fmt, "-o", f"x.{fmt}")
        one_line_error(r, 1, f"--format {fmt}")
        assert not (work / f"x.{fmt}").exists()


def test_help_documents_everything(work):
    out = ok(run(work, "dump", "--help"))
    for word in ("MODULE:FUNCTION", "--args", "--format", "-o FILE", "--grad", "--argnums",
                 "--kernels", "exit status", "TRACEJIT_DEBUG", "examples:", "f32[3,4]",
                 *("  " + f + " " for f in ("text", "json", "dot", "svg", "onnx", "llvm", "asm",
                                            "cuda", "schedule"))):
        assert word in out, word
    top = ok(run(work, "--help"))
    assert "dump" in top and "cache" in top


def test_cache_info_still_works(work, tmp_path):
    out = ok(run(work, "cache", "info", env={"TRACEJIT_CACHE_DIR": str(tmp_path / "c")}))
    assert "disk cache" in out


# -- bad arguments -------------------------------------------------------------------------

BAD = [
    # (argv, exit status, fragments of the message)
    (["dump", "nosuchmodule:f", "--args", "f32[2]"], 1, ["no module named 'nosuchmodule'"]),
    (["dump", "missing.py:f"], 1, ["no such file: missing.py"]),
    (["dump", "model:nope", "--args", "f32[2]"], 1, ["has no attribute 'nope'", "mlp"]),
    (["dump", "model:Net.nope", "--args", "f32[2]"], 1, ["'nope'"]),
    (["dump", "model:NOT_A_FUNCTION"], 1, ["not a function"]),
    (["dump", "model", "--args", "f32[2]"], 2, ["MODULE:FUNCTION"]),
    (["dump", "broken:f"], 1, ["importing broken failed", "ZeroDivisionError", "broken.py:2"]),
    (["dump", "model:mlp", "--args", "f32[3,4], f32[4,8], f32[8"], 2, ["--args", "character 20"]),
    (["dump", "model:mlp", "--args", "f32[3,4], float32[4,8], f32[8]"], 2, ["unknown dtype"]),
    (["dump", "model:mlp", "--args", "f32[3,4], ~f32[4,8], f32[8]"], 2, ["weak"]),
    (["dump", "model:mlp", "--args", "f32[3,x], f32[4,8], f32[8]"], 2, ["bad dimension 'x'"]),
    (["dump", "model:mlp", "--args", "f32[3,4]"], 2, ["takes the arguments (x, w, b)"]),
    (["dump", "model:mlp", "--args", MLP_ARGS, "--format", "png"], 2, ["invalid choice: 'png'"]),
    (["dump", "model:mlp", "--args", MLP_ARGS, "--bogus"], 2, ["unrecognized arguments"]),
    (["dump", "model:mlp", "--args", MLP_ARGS, "--grad"], 1,
     ["--grad needs model:mlp to return one floating-point scalar", "f32[3,8]"]),
    (["dump", "model:count", "--args", "f32[3]", "--grad"], 1, ["floating-point scalar"]),
    (["dump", "model:loss", "--args", MLP_ARGS, "--grad", "--argnums", "3"], 2,
     ["no argument 3"]),
    (["dump", "model:loss", "--args", MLP_ARGS, "--argnums", "1"], 2, ["--argnums needs --grad"]),
    (["dump", "model:mlp", "--args", MLP_ARGS, "--kernels"], 2, ["--kernels"]),
    (["dump", "model:mlp", "--args", MLP_ARGS, "-o", "no/such/dir/out.txt"], 1,
     ["cannot write no/such/dir/out.txt"]),
    (["dump", "model:mlp", "--args", MLP_ARGS, "-o", "."], 1, ["cannot write", "directory"]),
    (["dump", "model:mlp", "--args", "f32[3,4], f32[5,8], f32[8]"], 1,
     ["tracing model:mlp failed", "[3, 4]", "[5, 8]", "model.py:4"]),
    (["dump", "model:boom", "--args", "f32[3]"], 1,
     ["tracing model:boom failed: ValueError: no good second line", "model.py:10"]),
    (["dump"], 2, ["MODULE:FUNCTION"]),
    ([], 2, ["COMMAND"]),
]


@pytest.mark.parametrize("argv,status,fragments", BAD,
                         ids=[" ".join(a[1:2] + a[3:]) or "empty" for a, _, _ in BAD])
def test_bad_arguments(work, argv, status, fragments):
    one_line_error(run(work, *argv), status, *fragments)


def test_debug_shows_traceback(work):
    r = run(work, "dump", "model:boom", "--args", "f32[3]", env={"TRACEJIT_DEBUG": "1"})
    assert r.returncode != 0
    assert "Traceback" in r.stderr and "no good" in r.stderr
