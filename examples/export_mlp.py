"""Export a small MLP's graphs: forward, backward, the fused schedule, and a picture.

A 4-8-3 multilayer perceptron with a tanh hidden layer and a cross-entropy loss written with
tracejit ops. The script writes, into OUTDIR (default docs/export_example/):

    forward.txt    the traced forward graph of the loss (text IR, docs/ir.md)
    backward.txt   the backward graph: tj.make_graph(tj.grad(loss, argnums=(0, 1, 2, 3)))
    schedule.txt   the fused kernels the CPU backend runs for the compiled gradient
    forward.dot    the optimized forward graph, its fused kernels drawn as clusters
    forward.svg    that drawing rendered by Graphviz's `dot` (only when Graphviz is installed)

Run: python examples/export_mlp.py [OUTDIR]
The same dumps from the command line: python -m tracejit dump examples/export_mlp.py:loss
--args "f32[4,8], f32[8], f32[8,3], f32[3], f32[5,4], f32[5,3]" --grad --argnums 0,1,2,3
"""

import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

import tracejit as tj

BATCH, N_IN, N_HIDDEN, N_OUT = 5, 4, 8, 3


def mlp(w1, b1, w2, b2, x):
    """Logits of a 4-8-3 perceptron with a tanh hidden layer."""
    h = tj.tanh(x @ w1 + b1)
    return h @ w2 + b2


def loss(w1, b1, w2, b2, x, y):
    """Mean cross-entropy of the logits against one-hot labels `y`."""
    logits = mlp(w1, b1, w2, b2, x)
    log_probs = logits - tj.logsumexp(logits, dim=-1, keepdim=True)
    return -(y * log_probs).sum(dim=-1).mean()


def example_args(seed: int = 0):
    """Parameters, a batch of inputs and one-hot labels, as float32 Tensors."""
    rng = np.random.default_rng(seed)

    def t(*shape, scale=1.0):
        return tj.tensor(rng.standard_normal(shape) * scale, dtype=tj.float32)

    labels = rng.integers(0, N_OUT, size=BATCH)
    y = tj.tensor(np.eye(N_OUT)[labels], dtype=tj.float32)
    return (t(N_IN, N_HIDDEN, scale=0.5), t(N_HIDDEN), t(N_HIDDEN, N_OUT, scale=0.5),
            t(N_OUT), t(BATCH, N_IN), y)


def write(outdir: str, name: str, text: str) -> str:
    path = os.path.join(outdir, name)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text if text.endswith("\n") else text + "\n")
    return path


DEFAULT_OUTDIR = os.path.join("docs", "export_example")


def main(outdir: str | None = None) -> list[str]:
    """Writes the dumps into `outdir`. Called without one (as the tests that run every example
    do), it writes into a scratch folder under the system's temporary directory, so that only
    running the script itself updates the checked-in docs/export_example/."""
    if outdir is None:
        outdir = os.path.join(tempfile.gettempdir(), "tracejit_export_example")
    os.makedirs(outdir, exist_ok=True)
    args = example_args()
    grad_loss = tj.grad(loss, argnums=(0, 1, 2, 3))  # gradients for w1, b1, w2, b2
    written = []

    # 1. The forward graph: what tracing the loss records, one line per op.
    forward = tj.make_graph(loss)(*args)
    written.append(write(outdir, "forward.txt", str(forward)))

    # 2. The backward graph: tj.grad is a graph-to-graph transform, so its result is a graph too.
    backward = tj.make_graph(grad_loss)(*args)
    written.append(write(outdir, "backward.txt", str(backward)))

    # 3. The schedule: the compiled gradient after optimization and fusion into kernels.
    compiled = tj.compile(grad_loss)
    written.append(write(outdir, "schedule.txt", compiled.lower(*args).as_text("schedule")))

    # 4. A picture: the optimized forward graph with each fused kernel drawn as a cluster.
    dot_text = forward.to_dot(schedule=True)
    written.append(write(outdir, "forward.dot", dot_text))
    exe = shutil.which("dot")
    if exe is None:
        print("Graphviz's `dot` is not installed: wrote forward.dot but no forward.svg "
              "(install Graphviz, e.g. `apt install graphviz`, and run `dot -Tsvg "
              "forward.dot -o forward.svg`)")
    else:
        svg = subprocess.run([exe, "-Tsvg"], input=dot_text.encode("utf-8"),
                             capture_output=True, check=True, timeout=120).stdout
        path = os.path.join(outdir, "forward.svg")
        with open(path, "wb") as f:
            f.write(svg)
        written.append(path)

    # The compiled gradient runs too; the graphs above are what it executes.
    value = float(tj.compile(loss)(*args))
    grads = compiled(*args)
    print(f"loss = {value:.4f}; gradient norms: "
          + ", ".join(f"{n} {float(np.linalg.norm(g.numpy())):.4f}"
                      for n, g in zip(("w1", "b1", "w2", "b2"), grads)))
    for p in written:
        print("wrote", p)
    return written


if __name__ == "__main__":
    if len(sys.argv) > 2:
        sys.exit("usage: python examples/export_mlp.py [OUTDIR]")
    main(sys.argv[1] if len(sys.argv) > 1 else DEFAULT_OUTDIR)
