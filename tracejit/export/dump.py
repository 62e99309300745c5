"""``TRACEJIT_DUMP=<dir>``: every compilation writes all its stages to files in `<dir>`.

Input: one compilation of `tj.compile`'s cache-miss path (the function's name, its signature,
the traced `Graph`, the device, and the runner the backend built). Output: files named
``<function>.<hash8>.<stage>.txt`` for the stages ``graph`` (as traced), ``optimized``,
``schedule``, and on the CPU backend ``llvm`` and ``asm``, plus ``<function>.<hash8>.graph.json``
(the traced graph, loadable with `tj.Graph.from_json`), and a line appended to ``index.txt``
(``<function>.<hash8>``, the device and the signature). `hash8` is 8 hex digits of a hash of the
function's identity, the device, the signature and the traced graph: the same compile writes the
same names, and two functions of one name (two lambdas, or two derivative stages such as
``value_and_grad`` for different functions) do not overwrite each other.

The derivative API (`tj.grad`, `tj.value_and_grad`, `tj.vjp`, `tj.jacobian`, ...) compiles its
staged implementation through `tj.compile` too (`autodiff/staging.py`), so its graphs, which hold
the forward and the backward computation, are dumped under the stage's name (``value_and_grad``,
``vjp``, ``jacobian``, ...).

Dumping is a debugging aid and never fails the user's call: an `OSError` (the folder cannot be
made or written) gives one `RuntimeWarning` per folder and stops that dump; a stage that fails to
render is skipped with a warning. The variable is read once per compilation (not per call).
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
import warnings
from typing import Callable

from ..ir.graph import Graph

__all__ = ["ENV", "dump_dir", "dump_compilation", "dump_prefix"]

ENV = "TRACEJIT_DUMP"
INDEX = "index.txt"

_warned: set[str] = set()  # folders already warned about (one warning each per process)
_lock = threading.Lock()


def dump_dir() -> str | None:
    """The folder `TRACEJIT_DUMP` names, or None when it is unset or empty."""
    return os.environ.get(ENV) or None


def _sanitize(name: str) -> str:
    """A file-name-safe form of a function name: letters, digits, ``_ - .`` (others -> ``_``),
    at most 80 characters."""
    s = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "f"
    return s[:80]


def dump_prefix(name: str, signature: str, graph: Graph, device: str, ident: str = "") -> str:
    """``<name>.<hash8>``: the shared start of one compilation's file names."""
    h = hashlib.sha256("\0".join((ident, device, signature, str(graph))).encode("utf-8"))
    return f"{_sanitize(name)}.{h.hexdigest()[:8]}"


def _stages(graph: Graph, device: str, runner) -> list[tuple[str, str, Callable[[], str]]]:
    """``(stage, extension, text producer)`` for each stage this compilation has, reusing what
    the backend already built (its optimized graph, schedule and code)."""
    from ..passes.pipeline import optimize

    opt_cache: list = []

    def optimized() -> Graph:
        if not opt_cache:
            g = getattr(runner, "graph", None)  # CPUProgram keeps the optimized graph
            if not isinstance(g, Graph):
                args = getattr(runner, "args", ())  # functools.partial(run_graph, optimized)
                g = args[0] if args and isinstance(args[0], Graph) else optimize(graph)
            opt_cache.append(g)
        return opt_cache[0]

    def sched() -> str:
        s = getattr(runner, "schedule", None)
        if s is None:
            from ..schedule.fusion import schedule
            s = schedule(optimized())
        return str(s)

    out = [("graph", "txt", lambda: str(graph)),
           ("graph", "json", lambda: graph.to_json()),
           ("optimized", "txt", lambda: str(optimized())),
           ("schedule", "txt", sched)]
    if device == "cpu" and hasattr(runner, "llvm_ir"):
        out += [("llvm", "txt", lambda: runner.llvm_ir), ("asm", "txt", lambda: runner.asm)]
    elif device == "cuda":
        from ..jit import Lowered
        out.append(("cuda", "txt", lambda: Lowered(graph, None, device).as_text("cuda")))
    return out


def dump_compilation(folder: str, name: str, signature: str, graph: Graph, device: str,
                     runner=None, ident: str = "") -> list[str]:
    """Writes the stages of one compilation into `folder`; returns the paths written. Never
    raises (see the module docstring)."""
    written: list[str] = []
    try:
        prefix = dump_prefix(name, signature, graph, device, ident)
        os.makedirs(folder, exist_ok=True)
        for stage, ext, text in _stages(graph, device, runner):
            try:
                data = text()
            except NotImplementedError:
                continue  # a stage whose backend has not landed (cuda)
            except OSError:
                raise
            except Exception as e:  # noqa: BLE001 - a dump must never fail the user's call
                warnings.warn(f"{ENV}: could not render stage {stage!r} of {name}{signature}: "
                              f"{type(e).__name__}: {e}", RuntimeWarning, stacklevel=3)
                continue
            path = os.path.join(folder, f"{prefix}.{stage}.{ext}")
            with open(path, "w", encoding="utf-8") as f:
                f.write(data if data.endswith("\n") else data + "\n")
            written.append(path)
        with _lock, open(os.path.join(folder, INDEX), "a", encoding="utf-8") as f:
            f.write(f"{prefix}\t{device}\t{name}{signature}\n")
    except OSError as e:
        key = os.path.abspath(folder)
        if key not in _warned:
            _warned.add(key)
            warnings.warn(f"{ENV}={folder}: cannot write the compilation dumps there ({e}); "
                          f"the compiled function runs normally", RuntimeWarning, stacklevel=3)
    return written
