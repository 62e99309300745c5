"""Fusion: an optimized Graph -> a `Schedule` of loop kernels and extern calls.

Input: a `Graph`. Output: a `Schedule` (Kernel IR). The pass decides which values live in memory
(*materialized*): graph inputs and outputs, array constants, reductions, the operands and results
of nodes the code generators do not handle yet (externs), and elementwise values with several
consumers. Every other node is *inlined* into the kernel of the materialized value that consumes
it: chains of elementwise ops, casts and selects become one loop; broadcasts, transposes, slices,
reversals and size-1 reshapes become index arithmetic of the loads (inputs are read in place,
never copied); ``iota`` becomes the loop index; reductions absorb their elementwise producers.
"""

from __future__ import annotations

from ..ir.graph import Graph, Literal, Node
from ..primitives import PRIMITIVES
from .kernel import Access, BufferInfo, Expr, Extern, Kernel, Schedule

__all__ = ["schedule", "FUSIBLE"]

VIEWS = {"broadcast", "transpose", "slice", "rev", "reshape", "stop_gradient"}
REDUCTIONS = {"reduce_sum": "sum", "reduce_prod": "prod", "reduce_max": "max",
              "reduce_min": "min"}
INT_ONLY_EXTERN = {"floordiv", "rem", "pow"}  # integer forms raise or need care: run in numpy
NEVER_FUSED = {"floordiv", "rem"}
RECOMPUTE_LIMIT = 6  # ops a multi-use value may cost before it is stored instead of recomputed


def FUSIBLE(n: Node) -> bool:
    """Can this node be computed inside a loop kernel?"""
    if n.type is None or n.op in NEVER_FUSED:
        return False
    if n.op in ("constant", "iota") or n.op in VIEWS or n.op in REDUCTIONS:
        return True
    op = PRIMITIVES[n.op]
    if not op.has("elementwise"):
        return False
    if n.op in INT_ONLY_EXTERN and not n.inputs[0].dtype.is_floating_point:
        return False
    return True


def _strides(shape) -> tuple[int, ...]:
    out, acc = [], 1
    for s in reversed(shape):
        out.append(acc)
        acc *= s
    return tuple(reversed(out))


def _trivial_reshape(src: tuple, dst: tuple):
    """Maps dst dims to src dims when a reshape only adds or removes size-1 dims, else None."""
    a = [i for i, s in enumerate(src) if s != 1]
    b = [i for i, s in enumerate(dst) if s != 1]
    if [src[i] for i in a] != [dst[i] for i in b]:
        return None
    return dict(zip(b, a))


class _Planner:
    def __init__(self, graph: Graph):
        self.graph = graph
        self.users: dict[int, list[Node]] = {}
        for n in graph.nodes:
            for i in n.inputs:
                self.users.setdefault(id(i), []).append(n)
        self.mat: set[int] = set()
        outs = {id(o) for o in graph.outputs}
        for n in graph.inputs:
            self.mat.add(id(n))
        for n in graph.nodes:
            fus = FUSIBLE(n)
            if not fus or id(n) in outs or n.op in REDUCTIONS:
                self.mat.add(id(n))
            if not fus:
                self.mat.update(id(i) for i in n.inputs)
            if n.op == "constant" and isinstance(n.params["value"], Literal):
                self.mat.add(id(n))
            if n.op == "reshape" and _trivial_reshape(n.inputs[0].shape, n.shape) is None:
                self.mat.add(id(n.inputs[0]))
        # A value with several consumers is recomputed inside each of them when that is cheap
        # (a few ops, e.g. softmax's exp(x - max) feeding both its sum and its division), and
        # computed once into memory otherwise: re-reading the inputs beats a write and a read.
        cost: dict[int, int] = {}
        for n in graph.nodes:
            c = 0 if (n.op in VIEWS or n.op in ("constant", "iota")) else 1
            cost[id(n)] = c + sum(cost.get(id(i), 0) for i in n.inputs if id(i) not in self.mat)
            if (len(self.users.get(id(n), [])) > 1 and c and
                    (cost[id(n)] > RECOMPUTE_LIMIT
                     or not all(FUSIBLE(u) for u in self.users[id(n)]))):
                self.mat.add(id(n))
        for n in graph.nodes:  # a reduction reads its input through the inlined producers
            if n.op in REDUCTIONS and n.inputs[0].op == "reshape" and \
                    _trivial_reshape(n.inputs[0].inputs[0].shape, n.inputs[0].shape) is None:
                self.mat.add(id(n.inputs[0]))


def schedule(graph: Graph) -> Schedule:
    plan = _Planner(graph)
    buffers: list[BufferInfo] = []
    buf_of: dict[int, int] = {}
    consts: dict[int, object] = {}

    def buffer(n: Node, kind: str) -> int:
        if id(n) not in buf_of:
            buf_of[id(n)] = len(buffers)
            buffers.append(BufferInfo(n.shape, n.dtype, kind, n.name or n.op))
        return buf_of[id(n)]

    inputs = [buffer(n, "input") for n in graph.inputs]
    steps: list = []
    for n in graph.nodes:
        if id(n) not in plan.mat:
            continue
        if n.op == "constant":
            b = buffer(n, "const")
            consts[b] = PRIMITIVES["constant"].ref(**n.params)
            continue
        if not FUSIBLE(n):
            if n.op == "get":
                buf_of[id(n)] = buf_of[(id(n.inputs[0]), n.params["index"])]
                continue
            ins = [buf_of[id(i)] for i in n.inputs]
            if n.type is None:  # multi-result: one buffer per result, read by its gets
                outs = []
                for k, t in enumerate(n.types):
                    buf_of[(id(n), k)] = len(buffers)
                    buffers.append(BufferInfo(t.shape, t.dtype, "temp", f"{n.op}#{k}"))
                    outs.append(buf_of[(id(n), k)])
                steps.append(Extern(n, ins, outs))
            else:
                steps.append(Extern(n, ins, [buffer(n, "temp")]))
            continue
        steps.append(_KernelBuilder(plan, buf_of, consts, buffers).build(n, buffer(n, "temp"),
                                                                        len(steps)))
    outputs = []
    for o in graph.outputs:
        b = buf_of[id(o)]
        if buffers[b].kind == "temp":
            buffers[b].kind = "output"
        outputs.append(b)
    return Schedule(buffers, steps, inputs, outputs, consts)


class _KernelBuilder:
    def __init__(self, plan: _Planner, buf_of, consts, buffers):
        self.plan, self.buf_of, self.consts, self.buffers = plan, buf_of, consts, buffers
        self.memo: dict[tuple, Expr] = {}
        self.inputs: list[int] = []
        self.nodes: list[Node] = []

    def build(self, root: Node, out: int, k: int) -> Kernel:
        self.rank = len(root.inputs[0].shape) if root.op in REDUCTIONS else root.ndim
        if root.op in REDUCTIONS:
            src = root.inputs[0]
            domain = src.shape
            imap = [(a, 1, 0) for a in range(len(domain))]
            body = self.expr(src, imap)
            self.nodes.append(root)
            return Kernel(f"k{k}_{root.op}", domain, body, out, self.inputs,
                          REDUCTIONS[root.op], tuple(root.params["axes"]), self.nodes, root.loc)
        domain = root.shape
        imap = [(a, 1, 0) for a in range(len(domain))]
        body = self.expr(root, imap, root=True)
        name = "_".join(dict.fromkeys(n.op for n in reversed(self.nodes)))[:40] or "copy"
        return Kernel(f"k{k}_{name}", domain, body, out, self.inputs, None, (), self.nodes,
                      root.loc)

    def _intern(self, e: Expr) -> Expr:
        return self.memo.setdefault(e._key, e)

    def expr(self, n: Node, imap: list, root: bool = False) -> Expr:
        """The value of node `n` at the domain point whose index into `n` is `imap`: one
        ``(axis, scale, offset)`` per dim of `n` (axis None for a fixed index `offset`)."""
        if not root and id(n) in self.plan.mat:
            return self._load(n, imap)
        if n.op == "constant":
            return self._intern(Expr("const", n.dtype, attrs=n.params["value"]))
        self.nodes.append(n)
        if n.op == "iota":
            a = n.params["axis"]
            axis, scale, off = imap[a]
            if axis is None:
                return self._intern(Expr("const", n.dtype, attrs=off))
            return self._intern(Expr("index", n.dtype, attrs=(axis, scale, off)))
        if n.op == "reshape" and _trivial_reshape(n.inputs[0].shape, n.shape) is None:
            return self._load(n.inputs[0], imap, as_shape=n.shape)  # a contiguous buffer
        if n.op in VIEWS:
            return self.expr(n.inputs[0], self._view_map(n, imap))
        shape = n.shape
        args = []
        for x in n.inputs:
            lead = len(shape) - x.ndim
            sub = [(None, 0, 0) if (x.shape[j] == 1 and shape[lead + j] != 1) else imap[lead + j]
                   for j in range(x.ndim)]
            args.append(self.expr(x, sub))
        return self._intern(Expr(n.op, n.dtype, tuple(args), dict(n.params)))

    def _view_map(self, n: Node, imap: list) -> list:
        x = n.inputs[0]
        p = n.params
        if n.op == "stop_gradient":
            return imap
        if n.op == "broadcast":
            lead = n.ndim - x.ndim
            return [(None, 0, 0) if (x.shape[j] == 1 and n.shape[lead + j] != 1)
                    else imap[lead + j] for j in range(x.ndim)]
        if n.op == "transpose":
            out = [None] * x.ndim
            for i, src in enumerate(p["perm"]):
                out[src] = imap[i]
            return out
        if n.op == "slice":
            return [(a, sc * st, off * st + s0) for (a, sc, off), s0, st in
                    zip(imap, p["start"], p["step"])]
        if n.op == "rev":
            return [(a, -sc, x.shape[i] - 1 - off) if i in p["axes"] else (a, sc, off)
                    for i, (a, sc, off) in enumerate(imap)]
        if n.op == "reshape":
            m = _trivial_reshape(x.shape, n.shape)
            out = [(None, 0, 0)] * x.ndim
            for dst, src in m.items():
                out[src] = imap[dst]
            return out
        raise AssertionError(n.op)

    def _load(self, n: Node, imap: list, as_shape: tuple | None = None) -> Expr:
        b = self.buf_of[id(n)]
        if b not in self.inputs:
            self.inputs.append(b)
        st = _strides(n.shape if as_shape is None else as_shape)
        offset = 0
        strides = [0] * self.rank
        for (axis, scale, off), s in zip(imap, st):
            offset += off * s
            if axis is not None:
                strides[axis] += scale * s
        e = Expr("load", n.dtype, attrs=Access(b, offset, tuple(strides)))
        return self._intern(e)

