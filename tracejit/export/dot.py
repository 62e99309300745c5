"""Graphviz drawings of a Graph: DOT text, and SVG rendered by Graphviz's ``dot`` program.

Input: a `Graph`, and optionally the `Schedule` built from it. Output: DOT text (`graph_to_dot`)
with one box per node (its op, short params, result shape/dtype and the user's source
``file:line``), an edge per operand, the graph's inputs and outputs drawn apart from the nodes,
constants as small plain labels, effects (``tj.debug.print``/``check``) in their own colour, the
sub-graphs of ``cond``/``while`` as nested clusters under their node, and, given a schedule, one
cluster per fused kernel labelled with its name and kind (loop kernel, row kernel, gemm with
epilogue, extern). `render_svg` pipes the DOT text through
``dot -Tsvg`` (no shell, with a timeout) and raises `GraphvizNotFoundError`, saying how to install
Graphviz, when ``dot`` is not on the PATH. Formats and examples: docs/export.md.

Every label is an HTML-like label (``label=<...>``) whose text is XML-escaped, so quotes,
backslashes, ``< > { } |`` and ``&`` in names, params or file paths are drawn literally and
cannot break the DOT syntax; tooltips are quoted DOT strings with ``\\`` and ``"`` escaped.
"""

from __future__ import annotations

import html
import re
import shutil
import subprocess

from ..ir.graph import Graph, Node, has_effect

__all__ = ["graph_to_dot", "render_svg", "save_dot", "GraphvizNotFoundError", "INSTALL_HINT"]

INSTALL_HINT = ("install Graphviz (Debian/Ubuntu: `apt install graphviz`, macOS: `brew install "
                "graphviz`, conda: `conda install graphviz`) so that `dot` is on the PATH; "
                "saving to .dot works without it")

SVG_TIMEOUT_S = 120
MAX_LABEL = 48  # characters of a param or constant shown in a label (the tooltip has it all)

# Fill colours, one per kind of thing drawn.
_INPUT = "#cfe2ff"
_CAPTURE = "#e2d9f3"
_OUTPUT = "#f8d7da"
_NODE = "#ffffff"
_CONTROL = "#fff3cd"
_EFFECT = "#d1e7dd"  # tj.debug.print / tj.debug.check: run although no output reads them
_KERNEL = {"loop kernel": "#eef7ee", "row kernel": "#e7f1fa", "gemm": "#fdf0e1",
           "extern": "#f3f3f3"}


def _kernel_color(kind: str) -> str:
    return next((c for k, c in _KERNEL.items() if kind.startswith(k)), "#f3f3f3")


class GraphvizNotFoundError(RuntimeError):
    """Rendering needs Graphviz's ``dot`` program, which is not installed."""


# -- escaping -------------------------------------------------------------------------------------
_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def html_text(s) -> str:
    """`s` as text inside an HTML-like label: XML-escaped (``& < > " '``), one line, no control
    characters (which XML cannot hold). ``{ } | \\`` need nothing there: they are literal."""
    s = _CONTROL_CHARS.sub("?", str(s)).replace("\r\n", " ").replace("\n", " ").replace("\r", " ")
    return html.escape(s, quote=True)


def quoted(s) -> str:
    """`s` as a DOT double-quoted string (an ID or a plain attribute such as a tooltip)."""
    s = _CONTROL_CHARS.sub("?", str(s)).replace("\\", "\\\\").replace('"', '\\"')
    return '"' + s.replace("\r\n", "\\n").replace("\n", "\\n").replace("\r", "\\n") + '"'


def _short(s: str, n: int = MAX_LABEL) -> str:
    return s if len(s) <= n else s[:n - 3] + "..."


def _label(*lines, bold_first: bool = True, small_last: str | None = None) -> str:
    """An HTML-like label: the first line bold, then the others, then an optional small grey
    line (the source location)."""
    parts = []
    for i, ln in enumerate(lines):
        t = html_text(ln)
        parts.append(f"<B>{t}</B>" if i == 0 and bold_first else t)
    if small_last:
        parts.append(f'<FONT POINT-SIZE="9" COLOR="#666666">{html_text(small_last)}</FONT>')
    return "<" + "<BR/>".join(parts) + ">"


def _attrs(**kw) -> str:
    """``[k=v, ...]``: values starting with ``<`` are HTML labels, others are quoted."""
    out = []
    for k, v in kw.items():
        if v is None:
            continue
        out.append(f"{k}={v if isinstance(v, str) and v.startswith('<') else quoted(v)}")
    return "[" + ", ".join(out) + "]"


# -- what a node says -----------------------------------------------------------------------------
def _type_text(n: Node) -> str:
    if n.type is not None:
        return str(n.type)
    return "(" + ", ".join(str(t) for t in n.types) + ")"


def _sub_graphs(n: Node) -> list[tuple[str, Graph]]:
    """``(param name, graph)`` for each sub-graph in `n`'s params, in param order."""
    out = []
    for k, v in n.params.items():
        if isinstance(v, Graph):
            out.append((k, v))
        elif isinstance(v, (tuple, list)) and v and all(isinstance(g, Graph) for g in v):
            out += [(f"{k}[{i}]", g) for i, g in enumerate(v)]
    return out


def _params_text(n: Node, graphs: bool = True) -> list[str]:
    """``name=value`` for the params the text form prints (without sub-graphs if not
    `graphs`)."""
    from ..ir.printer import _implied, format_param
    return [f"{k}={format_param(v)}" for k, v in n.params.items() if not _implied(n, k, v)
            and (graphs or not (isinstance(v, Graph) or isinstance(v, (tuple, list)) and v
                                and all(isinstance(x, Graph) for x in v)))]


# -- the drawing ----------------------------------------------------------------------------------
class _Dot:
    def __init__(self):
        self.lines: list[str] = []
        self.count = 0
        self.clusters = 0

    def new_id(self, prefix: str = "n") -> str:
        self.count += 1
        return f"{prefix}{self.count}"

    def cluster(self) -> str:
        self.clusters += 1
        return f"cluster_{self.clusters}"

    def emit(self, depth: int, line: str) -> None:
        self.lines.append("  " * depth + line)

    def graph(self, g: Graph, depth: int, placement: dict | None = None,
              steps: list | None = None, top: bool = False) -> tuple[dict, str]:
        """Draws `g`'s inputs, nodes and outputs; returns ``(ids, return-node id)``. With
        `steps` (``(cluster label, kind, [nodes])`` per schedule step) and `placement` (node id
        -> step index), the nodes of each step are drawn inside its cluster."""
        ids: dict[int, str] = {}
        for n in g.inputs:
            ids[id(n)] = nid = self.new_id("in")
            kind = n.params.get("kind", "arg")
            fill = _CAPTURE if kind == "capture" else _INPUT
            what = "captured input" if kind == "capture" else "input"
            self.emit(depth, nid + " " + _attrs(
                label=_label(f"%{n.name}", f"{what} {n.type}", small_last=str(n.loc)
                             if n.loc else None), shape="box", style="rounded,filled",
                fillcolor=fill, tooltip=f"{what} %{n.name}: {n.type}"))
        for n in g.nodes:
            ids[id(n)] = self.new_id()
        # nodes in no step (and every node when there is no schedule) first, at this level
        by_step: dict[int, list[Node]] = {}
        for n in g.nodes:
            s = placement.get(id(n)) if placement else None
            if s is None:
                self.node(n, ids, depth)
            else:
                by_step.setdefault(s, []).append(n)
        for s, members in sorted(by_step.items()):
            name, kind, _ = steps[s]
            cid = self.cluster()
            self.emit(depth, f"subgraph {cid} {{")
            fused = steps[s][2]
            again = sum(1 for n in fused if placement.get(id(n)) != s)
            tip = f"{name} ({kind}) fuses: " + ", ".join(dict.fromkeys(n.op for n in fused)) + (
                f"; recomputes {again} node(s) drawn in an earlier step" if again else "")
            self.emit(depth + 1, "label=" + _label(name, kind) + f"; tooltip={quoted(tip)};")
            self.emit(depth + 1, "style=\"rounded,filled\"; color=\"#888888\"; "
                                 f"fillcolor={quoted(_kernel_color(kind))};")
            for n in members:
                self.node(n, ids, depth + 1)
            self.emit(depth, "}")
        # edges
        for n in g.nodes:
            for k, i in enumerate(n.inputs):
                src = ids.get(id(i))
                if src is not None:
                    self.emit(depth, f"{src} -> {ids[id(n)]}" + (
                        " " + _attrs(tooltip=f"operand {k}") if len(n.inputs) > 1 else ""))
        ret = self.new_id("out")
        outs = ", ".join(_type_text(o) for o in g.outputs)
        self.emit(depth, ret + " " + _attrs(
            label=_label("outputs" if top else f"return {g.name}", f"({outs})"),
            shape="box", style="rounded,filled", fillcolor=_OUTPUT,
            tooltip=f"outputs of {g.name}: ({outs})"))
        for k, o in enumerate(g.outputs):
            self.emit(depth, f"{ids[id(o)]} -> {ret} " + _attrs(
                label=_label(str(k), bold_first=False) if len(g.outputs) > 1 else None,
                style="bold"))
        return ids, ret

    def node(self, n: Node, ids: dict, depth: int) -> None:
        nid = ids[id(n)]
        loc = str(n.loc) if n.loc is not None else None
        params = _params_text(n)
        full = f"{n.op}: {_type_text(n)}" + (" {" + ", ".join(params) + "}" if params else "")
        if loc:
            full += f"  # {loc}"
        if n.op == "constant":  # compact: the value and type, no box
            value = _short(params[0].partition("=")[2] if params else "?", 24)
            self.emit(depth, nid + " " + _attrs(
                label=_label(value, str(n.type), bold_first=False), shape="plaintext",
                fontsize="10", tooltip=full))
            return
        subs = _sub_graphs(n)
        shown = [_short(p) for p in _params_text(n, graphs=False)]
        attrs = dict(label=_label(n.op, *shown, _type_text(n), small_last=loc), shape="box",
                     style="filled", tooltip=full,
                     fillcolor=_CONTROL if subs else _EFFECT if has_effect(n) else _NODE)
        if not subs:
            self.emit(depth, nid + " " + _attrs(**attrs))
            return
        # a control-flow node: it and its sub-graphs, each a nested cluster, in one cluster
        cid = self.cluster()
        self.emit(depth, f"subgraph {cid} {{")
        self.emit(depth + 1, "label=" + _label(n.op, bold_first=False) + "; style=dashed; "
                             "color=\"#aa8800\";")
        self.emit(depth + 1, nid + " " + _attrs(**attrs))
        for pname, sub in subs:
            sid = self.cluster()
            self.emit(depth + 1, f"subgraph {sid} {{")
            self.emit(depth + 2, "label=" + _label(f"{pname}: {sub.name}", bold_first=False)
                      + "; style=\"rounded\"; color=\"#aa8800\";")
            _, ret = self.graph(sub, depth + 2)
            self.emit(depth + 1, "}")
            self.emit(depth + 1, f"{ret} -> {nid} " + _attrs(style="dashed", color="#aa8800",
                                                          label=_label(pname, bold_first=False)))
        self.emit(depth, "}")


def _step_groups(sched, g: Graph) -> tuple[list, dict]:
    """``(steps, placement)``: per schedule step ``(name, kind, nodes)``, and for each of `g`'s
    nodes the step it is drawn in. A node fused into several kernels (a cheap producer recomputed
    by each consumer) is drawn once, in the first; the others list it in their tooltip."""
    from ..schedule.kernel import Extern, Gemm, Kernel, RowKernel
    steps = []
    for st in sched.steps:
        if isinstance(st, Extern):
            steps.append((st.node.op, "extern", [st.node]))
        elif isinstance(st, Gemm):
            steps.append((st.name, "gemm with epilogue" if st.epilogue is not None else "gemm",
                          st.nodes))
        elif isinstance(st, RowKernel):
            steps.append((st.name, "row kernel", st.nodes))
        elif isinstance(st, Kernel):
            kind = f"loop kernel (reduce {st.reduce_op})" if st.reduce_op else "loop kernel"
            steps.append((st.name, kind, st.nodes))
        else:  # a kind of step this drawing does not know yet
            steps.append((getattr(st, "name", type(st).__name__), type(st).__name__.lower(),
                           list(getattr(st, "nodes", []))))
    in_graph = {id(n) for n in g.nodes}
    placement: dict[int, int] = {}
    listed = 0
    for s, (_, _, nodes) in enumerate(steps):
        for n in nodes:
            listed += 1
            if id(n) in in_graph:
                placement.setdefault(id(n), s)
    if listed and not placement:
        raise ValueError(
            "to_dot: this schedule was not built from this graph (none of its kernels' nodes "
            "are in it). A schedule refers to the nodes of the graph it was built from, which "
            "for compiled code is the optimized graph: use g.to_dot(schedule=True), or "
            "opt = optimize(g); opt.to_dot(schedule=schedule(opt))")
    return steps, placement


def graph_to_dot(graph: Graph, schedule=None) -> str:
    """The Graphviz DOT text of `graph`; see the module docstring.

    Args:
        graph: the graph to draw.
        schedule: None (no kernels), a `Schedule` built from `graph` (its kernels become
            clusters), or True: optimize `graph` with the pass pipeline, schedule the result,
            and draw the *optimized* graph with its kernels (a schedule's steps list the nodes
            of the graph it was built from, so that is the graph to draw).
    """
    title = f"graph {graph.name}"
    if schedule is True:
        from ..passes.pipeline import optimize
        from ..schedule.fusion import schedule as make_schedule
        graph = optimize(graph)
        schedule = make_schedule(graph)
        title = f"optimized graph {graph.name}"
    elif schedule is False:
        schedule = None
    steps = placement = None
    if schedule is not None:
        if not hasattr(schedule, "steps"):
            raise TypeError(f"to_dot: schedule must be a Schedule, True or None, got "
                            f"{type(schedule).__name__}")
        steps, placement = _step_groups(schedule, graph)
        title += f": {len(schedule.steps)} steps"
    d = _Dot()
    d.emit(0, f"digraph {quoted(graph.name)} {{")
    d.emit(1, "graph [compound=true, rankdir=TB, fontname=\"Helvetica\", fontsize=12, "
              "labelloc=t, label=" + _label(title, bold_first=True) + "];")
    d.emit(1, "node [fontname=\"Helvetica\", fontsize=11];")
    d.emit(1, "edge [fontname=\"Helvetica\", fontsize=9, color=\"#444444\"];")
    d.graph(graph, 1, placement, steps, top=True)
    d.emit(0, "}")
    return "\n".join(d.lines) + "\n"


def render_svg(dot_text: str, timeout: float = SVG_TIMEOUT_S) -> bytes:
    """SVG bytes of `dot_text`, rendered by ``dot -Tsvg`` (no shell)."""
    exe = shutil.which("dot")
    if exe is None:
        raise GraphvizNotFoundError("rendering SVG needs Graphviz's `dot` program, which is not "
                                    "installed (not found on the PATH): " + INSTALL_HINT)
    try:
        proc = subprocess.run([exe, "-Tsvg"], input=dot_text.encode("utf-8"),
                              capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"Graphviz `dot -Tsvg` did not finish within {timeout:g} s; save "
                           f"to .dot and render it yourself, or draw a smaller graph") from None
    if proc.returncode != 0:
        err = proc.stderr.decode("utf-8", "replace").strip()
        raise RuntimeError(f"Graphviz `dot -Tsvg` failed (exit {proc.returncode}): {err[:2000]}")
    return proc.stdout


def save_dot(graph: Graph, path, ext: str) -> None:
    """`Graph.save` for ``.dot`` (text) and ``.svg`` (rendered first, so a missing ``dot``
    leaves no file behind)."""
    if ext == ".svg":
        data = render_svg(graph_to_dot(graph))
        with open(path, "wb") as f:
            f.write(data)
    else:
        with open(path, "w", encoding="utf-8") as f:
            f.write(graph_to_dot(graph))
