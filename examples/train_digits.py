"""Train a small CNN on handwritten digits, PyTorch-style, with the whole step compiled.

This is the PyTorch tutorial loop you already know — a `DataLoader`, a `Module`, a loss,
an optimizer, `loss.backward()`, `opt.step()` — with one extra line: `@tj.compile` on the
training step. The data are scikit-learn's bundled 8x8 digits (1797 images, no download).

Run:
    pip install tracejit[examples]     # scikit-learn, tqdm, matplotlib
    python examples/train_digits.py                  # compiled step, ~5-10 s on 2 CPU cores
    python examples/train_digits.py --eager          # the same step, op by op
    python examples/train_digits.py --epochs 30 --seed 1 --plot curves.png --no-progress
"""

import argparse
import sys
import time

import numpy as np
from sklearn.datasets import load_digits
from tqdm import tqdm

import tracejit as tj
import tracejit.nn as nn
from tracejit.utils.data import DataLoader, TensorDataset


def load_data(seed: int):
    """The 8x8 digits as float32 images (N, 1, 8, 8) and int64 labels, split 1437/360 by a
    seeded permutation, standardized with the training set's mean and std."""
    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[:, None, :, :]  # pixels 0..16 -> [0, 1]
    y = digits.target.astype(np.int64)
    perm = np.random.default_rng(seed).permutation(len(x))
    train, test = perm[:1437], perm[1437:]
    mean, std = x[train].mean(), x[train].std()
    x = (x - mean) / std
    return x[train], y[train], x[test], y[test]


class LeNet(nn.Module):
    """Conv -> ReLU -> MaxPool, twice, then two Linear layers: 8x8 -> 4x4 -> 2x2 -> 10 logits."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),    # 16 x 4 x 4
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),   # 32 x 2 x 2
        )
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(32 * 2 * 2, 64), nn.ReLU(), nn.Linear(64, 10),
        )

    def forward(self, x):
        return self.classifier(self.features(x))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eager", action="store_true",
                        help="run the training step op by op, without tj.compile")
    parser.add_argument("--plot", default="digits_training.png",
                        help="where to save the loss/accuracy curves (PNG)")
    parser.add_argument("--no-progress", action="store_true", help="no tqdm progress bar")
    parser.add_argument("--device", default="cpu",
                        help="cpu, or cuda (a GPU; TRACEJIT_CUDA_EMULATE=1 emulates one, slowly)")
    args = parser.parse_args(argv)
    device = tj.device(args.device)

    tj.manual_seed(args.seed)  # the initial weights
    x_train, y_train, x_test, y_test = load_data(args.seed)
    model = LeNet().to(device)  # (as in PyTorch: parameters move before the optimizer sees them)
    loss_fn = nn.CrossEntropyLoss()
    opt = tj.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)
    print(model)
    print(f"{len(x_train)} training and {len(x_test)} test images, "
          f"{sum(p.numel() for p in model.parameters())} parameters")

    def train_step(x, y):
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        return loss

    # The one line that differs from PyTorch. tj.compile traces train_step the first time it
    # is called: the Python code runs once on symbolic tensors and every op is recorded in a
    # graph — the forward pass, the backward pass that `loss.backward()` builds from it, and
    # SGD's in-place updates. The graph is optimized, chains of elementwise ops (bias adds,
    # ReLUs, their gradients, the momentum update) are fused into single loops around the
    # convolutions' and linear layers' matrix multiplies, and the result is compiled to machine
    # code with LLVM (see it: print(step.lower(x, y).as_text("schedule"))). Later calls with
    # the same shapes and dtypes just run that code: no Python per op. The parameters and momentum
    # buffers are inputs the step reads; their new values (and `.grad`) are written back into
    # the very same tensors after each call, so `model` and `opt` are left exactly as an eager
    # step leaves them (print a parameter, save a state_dict: nothing else changes).
    #
    # With --eager the same function runs op by op. tracejit's eager tensors are lazy: ops
    # queue up in a pending graph that runs when a value is needed (`loss.item()` below), and a
    # pending graph seen twice is compiled too — so eager mode is not hopeless, only slower.
    step = train_step if args.eager else tj.compile(train_step, device=device.type)

    @tj.no_grad()
    def accuracy(x, y):
        model.eval()  # no Dropout/BatchNorm here, but this is the habit to keep
        logits = model(tj.from_numpy(x).to(device))
        return float((logits.argmax(dim=1).numpy() == y).mean())

    # PyTorch's data pipeline: a dataset of (image, label) pairs, batched and reshuffled every
    # epoch. drop_last keeps every batch the same shape, so the compiled step is traced once;
    # the generator makes the order depend on --seed only.
    train_set = TensorDataset(tj.from_numpy(x_train), tj.from_numpy(y_train))
    loader = DataLoader(train_set, batch_size=args.batch_size, shuffle=True, drop_last=True,
                        generator=tj.Generator().manual_seed(args.seed))
    n_batches = len(loader)
    history = {"loss": [], "acc": []}
    start = time.perf_counter()
    first_step = None
    epochs = tqdm(range(1, args.epochs + 1), desc="epochs", unit="epoch", file=sys.stderr,
                  disable=args.no_progress)
    for epoch in epochs:
        model.train()
        total = 0.0
        for x, y in loader:
            loss = step(x.to(device), y.to(device))
            total += loss.item()
            if first_step is None:  # compiled: most of it is tracing and compiling, once
                first_step = time.perf_counter() - start
        history["loss"].append(total / n_batches)
        history["acc"].append(accuracy(x_test, y_test))
        epochs.set_postfix(loss=f"{history['loss'][-1]:.4f}", acc=f"{history['acc'][-1]:.2%}")
        msg = (f"epoch {epoch:3d}  train loss {history['loss'][-1]:.4f}  "
               f"test accuracy {history['acc'][-1]:.2%}")
        tqdm.write(msg, file=sys.stdout)  # print() without breaking the progress bar
    wall = time.perf_counter() - start

    print(f"test accuracy: {history['acc'][-1]:.2%}")
    mode = "eager" if args.eager else "compiled"
    print(f"wall time: {wall:.1f} s ({mode}; first step {first_step:.1f} s)")
    if not args.eager:
        print(step.cache_info())  # one miss: the step was traced and compiled once
    save_plot(history, args.plot)
    print(f"curves saved to {args.plot}")
    return history


def save_plot(history, path):
    import matplotlib

    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt

    epochs = range(1, len(history["loss"]) + 1)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.5))
    ax1.plot(epochs, history["loss"], marker="o")
    ax1.set(title="training loss", xlabel="epoch", ylabel="cross-entropy", yscale="log")
    ax2.plot(epochs, [100 * a for a in history["acc"]], marker="o", color="tab:green")
    ax2.set(title="test accuracy", xlabel="epoch", ylabel="%")
    ax2.grid(True, alpha=0.3)
    ax1.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    main()
