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

from typing import NamedTuple

import numpy as np

from .. import dtypes as D
from ..ir.graph import Graph, Literal, Node
from ..primitives import PRIMITIVES
from .kernel import Access, BufferInfo, Expr, Extern, Gemm, Kernel, Operand, Schedule

__all__ = ["schedule", "FUSIBLE"]

VIEWS = {"broadcast", "transpose", "slice", "rev", "reshape", "stop_gradient"}
REDUCTIONS = {"reduce_sum": "sum", "reduce_prod": "prod", "reduce_max": "max",
              "reduce_min": "min"}
INT_ONLY_EXTERN = {"floordiv", "rem", "pow"}  # integer forms raise or need care: run in numpy
NEVER_FUSED = {"floordiv", "rem"}
COL_SPLIT = 64  # a product with fewer rows than this is split across threads by columns
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


def GEMM(n: Node) -> bool:
    """Is this node a matrix product that compiles to a `Gemm` step?"""
    return n.op == "dot_general" and n.type is not None and n.dtype in (D.float32, D.float64)


class _Product(NamedTuple):
    """A matrix product as a Gemm computes it: ``dot_general(a, b, contract, batch)`` is the
    value of `node`, which is the dot itself, or a transpose of a dot that swaps its free axes
    (``(x @ y).T``, as backward graphs have it), computed as the dot of the swapped operands."""

    node: Node
    a: Node
    b: Node
    contract: tuple
    batch: tuple
    nodes: tuple  # graph nodes it stands for


def _product(d: Node) -> _Product:
    return _Product(d, d.inputs[0], d.inputs[1], d.params["contract"], d.params["batch"], (d,))


def _swapped(p: _Product, t: Node) -> _Product | None:
    """`t` = transpose(p.node) as the product of p's operands in the other order, or None."""
    (ca, cb), (ba, bb) = p.contract, p.batch
    nb = len(ba)
    nfa = p.a.ndim - len(ca) - nb
    perm = (*range(nb), *range(nb + nfa, p.node.ndim), *range(nb, nb + nfa))
    if tuple(t.params["perm"]) != perm:
        return None
    return _Product(t, p.b, p.a, (cb, ca), (bb, ba), (*p.nodes, t))


def _elementwise(n: Node) -> bool:
    return (FUSIBLE(n) and n.op not in VIEWS and n.op not in REDUCTIONS
            and n.op not in ("constant", "iota"))


def _view_base(n: Node) -> Node:
    """The value a chain of views reads (a non-trivial reshape reads its contiguous input)."""
    while n.op in VIEWS:
        if n.op == "reshape" and _trivial_reshape(n.inputs[0].shape, n.shape) is None:
            return n.inputs[0]
        n = n.inputs[0]
    return n


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
            if GEMM(n):  # operands are read in place through their views
                self.mat.update(id(_view_base(i)) for i in n.inputs)
            elif not fus:
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
        # Gemm steps, by the node whose value they store. A product only transposed (with its
        # free axes swapped) is computed transposed: the transpose is that product.
        self.products: dict[int, _Product] = {id(n): _product(n) for n in graph.nodes
                                              if GEMM(n)}
        for n in graph.nodes:
            us = self.users.get(id(n), [])
            if GEMM(n) and id(n) not in outs and len(us) == 1 and us[0].op == "transpose":
                p = _swapped(self.products[id(n)], us[0])
                if p is not None:
                    del self.products[id(n)]
                    self.mat.discard(id(n))
                    self.products[id(us[0])] = p
                    self.mat.add(id(us[0]))
        # A product whose only consumer is a chain of elementwise ops of its shape is computed
        # inside the Gemm step of the chain's stored end (its epilogue).
        # A product that is also a graph result keeps its plain value too: the Gemm stores it
        # beside the epilogue's (`Gemm.raw`).
        self.epilogue_of: dict[int, _Product] = {}
        self.in_epilogue: set[int] = set()
        self.raw_result: set[int] = set()
        for p in list(self.products.values()):
            r = self._epilogue_root(p.node)
            if r is not None and id(r) not in self.epilogue_of:  # one product per epilogue
                self.mat.discard(id(p.node))
                del self.products[id(p.node)]
                self.epilogue_of[id(r)] = p
                self.in_epilogue.add(id(p.node))
                if id(p.node) in outs:
                    self.raw_result.add(id(p.node))

    def _epilogue_root(self, d: Node) -> Node | None:
        """The one stored value that all of `d`'s consumers are inlined into, when they are
        all elementwise of `d`'s shape (so the product is read once per output element)."""
        roots, seen, todo = set(), set(), [d]
        while todo:
            for u in self.users.get(id(todo.pop()), []):
                if not _elementwise(u) or u.shape != d.shape:
                    return None
                if id(u) in self.mat:
                    roots.add(u)
                elif id(u) not in seen:
                    seen.add(id(u))
                    todo.append(u)
        if len(roots) != 1:
            return None
        (r,) = roots
        return r if r.dtype == d.dtype else None


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
            # dense, row-major, as every kernel indexes it (a folded constant can be a
            # transposed or strided view: its data pointer alone would be read in the wrong
            # order; found by the fuzzer, tests/test_fuzz.py)
            v = PRIMITIVES["constant"].ref(**n.params)
            if isinstance(v, np.ndarray) and not v.flags.c_contiguous:
                v = np.array(v, order="C")  # (not ascontiguousarray: it makes 0-d 1-d)
            consts[b] = v
            continue
        if id(n) in plan.products:
            steps += _GemmBuilder(plan, buf_of, consts, buffers).build(
                plan.products[id(n)], buffer(n, "temp"), len(steps))
            continue
        if id(n) in plan.epilogue_of:
            p = plan.epilogue_of[id(n)]
            raw = buffer(p.node, "temp") if id(p.node) in plan.raw_result else None
            steps += _GemmBuilder(plan, buf_of, consts, buffers).build(
                p, buffer(n, "temp"), len(steps), root=n, raw=raw)
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
    by_id = {id(n): n for n in (*graph.inputs, *graph.nodes)}
    node_of: dict[int, tuple] = {}
    for key, b in buf_of.items():
        n = by_id.get(key[0] if isinstance(key, tuple) else key)
        if n is not None and (b not in node_of or n.op != "get"):
            node_of[b] = (n, key[1] if isinstance(key, tuple) else None)
    from .rows import fuse_rows
    return fuse_rows(Schedule(buffers, steps, inputs, outputs, consts, node_of))


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
        if id(n) in self.plan.in_epilogue:  # the product a Gemm epilogue transforms
            assert imap == [(a, 1, 0) for a in range(self.rank)], imap
            return self._intern(Expr("acc", n.dtype))
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



def _collapse(sizes, strides) -> int | None:
    """One stride that walks a group of axes in row-major order, or None if there is none."""
    dims = [(n, s) for n, s in zip(sizes, strides) if n != 1]
    if not dims or any(n == 0 for n, _ in dims):
        return 0
    for (_, s0), (n1, s1) in zip(dims, dims[1:]):
        if s0 != s1 * n1:
            return None
    return dims[-1][1]


def _prod(xs) -> int:
    out = 1
    for x in xs:
        out *= x
    return out


class _GemmBuilder:
    """A product (and its epilogue chain) -> [operand copy kernels...] + [Gemm]."""

    def __init__(self, plan: _Planner, buf_of, consts, buffers):
        self.plan, self.buf_of, self.consts, self.buffers = plan, buf_of, consts, buffers
        self.steps: list = []

    def _kb(self, rank: int) -> _KernelBuilder:
        kb = _KernelBuilder(self.plan, self.buf_of, self.consts, self.buffers)
        kb.rank = rank
        return kb

    def build(self, p: _Product, out: int, k: int, root: Node | None = None,
              raw: int | None = None) -> list:
        (ca, cb), (ba, bb) = p.contract, p.batch
        d, a, b = p.node, p.a, p.b
        fa = [i for i in range(a.ndim) if i not in ca and i not in ba]
        fb = [j for j in range(b.ndim) if j not in cb and j not in bb]
        nodes: list[Node] = []
        opa = self._operand(a, (list(ba), fa, list(ca)), nodes, k)
        opb = self._operand(b, (list(bb), list(cb), fb), nodes, k)
        nodes += p.nodes
        dims = (_prod(a.shape[i] for i in ba), _prod(a.shape[i] for i in fa),
                _prod(b.shape[j] for j in fb), _prod(a.shape[i] for i in ca))
        groups = (range(len(ba)), range(len(ba), len(ba) + len(fa)),
                  range(len(ba) + len(fa), d.ndim))
        epilogue, ins, name = None, [], "gemm"
        if root is not None:
            kb = self._kb(d.ndim)
            body = kb.expr(root, [(i, 1, 0) for i in range(d.ndim)], root=True)
            epilogue = _rebase(body, d.shape, groups)
            if epilogue is None:  # not expressible per (batch, row, col): store the product
                self.plan.mat.add(id(d))
                if raw is None:
                    self.buf_of[id(d)] = len(self.buffers)
                    self.buffers.append(BufferInfo(d.shape, d.dtype, "temp", d.name or d.op))
                self.steps.append(Gemm("", *dims, opa, opb, self.buf_of[id(d)], d.dtype,
                                       list(dict.fromkeys([opa.buffer, opb.buffer])), None,
                                       nodes, d.loc))
                self.steps.append(_KernelBuilder(self.plan, self.buf_of, self.consts,
                                                 self.buffers).build(root, out,
                                                                     k + len(self.steps)))
                return self._named(k)
            ins, nodes = kb.inputs, nodes + list(reversed(kb.nodes))
            name += "_" + "_".join(dict.fromkeys(n.op for n in reversed(kb.nodes)))
        dims, opa, epilogue = _fold_batch(dims, opa, opb, epilogue)
        if epilogue is None and (dims[1] == 1 or dims[2] == 1) and dims[3] > 0:
            self.steps.append(_matvec(dims, opa, opb, out, d, nodes, k + len(self.steps)))
            return self._named(k)
        # few rows: threads split the columns (in blocks that every register tile divides)
        cols = COL_SPLIT if dims[0] * dims[1] < COL_SPLIT <= dims[2] // 2 else 0
        ins = list(dict.fromkeys([opa.buffer, opb.buffer, *ins]))
        if raw is not None:
            ins.append(raw)
        self.steps.append(Gemm(name[:40], *dims, opa, opb, out, d.dtype, ins, epilogue,
                               nodes, (root or d).loc, cols, raw))
        return self._named(k)

    def _named(self, k: int) -> list:
        for i, st in enumerate(self.steps):
            if isinstance(st, Gemm):
                st.name = f"k{k + i}_{st.name or 'gemm'}"
        return self.steps

    def _operand(self, x: Node, groups, nodes: list, k: int) -> Operand:
        """`x` as a strided (batch, rows, cols) matrix: in place when each group of its axes
        has one stride, else copied by a loop kernel into that axis order."""
        kb = self._kb(x.ndim)
        e = kb.expr(x, [(i, 1, 0) for i in range(x.ndim)])
        if e.kind == "load":
            acc = e.attrs
            st = [_collapse([x.shape[i] for i in g], [acc.strides[i] for i in g]) for g in groups]
            if None not in st:
                nodes += reversed(kb.nodes)
                return Operand(acc.buffer, acc.offset, *st)
        perm = [i for g in groups for i in g]
        shape = tuple(x.shape[i] for i in perm)
        kb = self._kb(len(shape))
        imap = [None] * x.ndim
        for pos, i in enumerate(perm):
            imap[i] = (pos, 1, 0)
        body = kb.expr(x, imap)
        buf = len(self.buffers)
        self.buffers.append(BufferInfo(shape, x.dtype, "temp", f"{x.name or x.op} (dot layout)"))
        self.steps.append(Kernel(f"k{k + len(self.steps)}_layout", shape, body, buf, kb.inputs,
                                 None, (), kb.nodes, x.loc))
        sizes = [_prod(x.shape[i] for i in g) for g in groups]
        return Operand(buf, 0, sizes[1] * sizes[2], sizes[2], 1)


def _matvec(dims, opa: Operand, opb: Operand, out: int, d: Node, nodes, k: int) -> Kernel:
    """A matrix-vector product (one side has a single row or column) as a fused reduction loop:
    every element of the matrix is used once, so packing it for a GEMM would cost as much as
    the product itself."""
    bt, m, n, kk = dims
    sa = (opa.batch_stride, opa.row_stride, 0, opa.col_stride)
    sb = (opb.batch_stride, 0, opb.col_stride, opb.row_stride)
    keep = [i for i in range(3) if dims[i] != 1] + [3]
    la = Expr("load", d.dtype, attrs=Access(opa.buffer, opa.offset, tuple(sa[i] for i in keep)))
    lb = Expr("load", d.dtype, attrs=Access(opb.buffer, opb.offset, tuple(sb[i] for i in keep)))
    body = Expr("mul", d.dtype, (la, lb), {})
    return Kernel(f"k{k}_matvec", tuple(dims[i] for i in keep), body, out,
                  list(dict.fromkeys([opa.buffer, opb.buffer])), "sum", (len(keep) - 1,),
                  nodes, d.loc)


def _fold_batch(dims, opa: Operand, opb: Operand, epilogue):
    """A batch over which B is broadcast (``x[b, t, :] @ w``) and along which A's rows (and the
    epilogue's loads) continue evenly is one taller product: B is packed once, not per batch."""
    bt, m, n, k = dims
    if bt <= 1 or opb.batch_stride != 0:
        return dims, opa, epilogue

    def rows(batch_stride, row_stride):  # the merged row stride, or None
        if m == 1:
            return batch_stride
        return row_stride if batch_stride == m * row_stride else None

    ra = rows(opa.batch_stride, opa.row_stride)
    if ra is None:
        return dims, opa, epilogue
    memo: dict[int, Expr] = {}

    def go(x: Expr):
        if id(x) not in memo:
            if x.kind == "load":
                a = x.attrs
                r = rows(a.strides[0], a.strides[1])
                if r is None:
                    raise ValueError
                memo[id(x)] = Expr("load", x.dtype, attrs=Access(a.buffer, a.offset,
                                                                 (0, r, a.strides[2])))
            elif x.args:
                memo[id(x)] = Expr(x.kind, x.dtype, tuple(go(z) for z in x.args), x.attrs)
            else:
                memo[id(x)] = x
        return memo[id(x)]
    try:
        epilogue = None if epilogue is None else go(epilogue)
    except ValueError:
        return dims, opa, epilogue
    return (1, bt * m, n, k), Operand(opa.buffer, opa.offset, 0, ra, opa.col_stride), epilogue


def _rebase(e: Expr, shape, groups) -> Expr | None:
    """An epilogue body over the product's axes -> the same over (batch, row, col), or None
    when a load's strides do not collapse per group or the body uses loop indices."""
    memo: dict[int, Expr] = {}

    def go(x: Expr):
        if id(x) in memo:
            return memo[id(x)]
        if x.kind == "index":
            raise ValueError
        if x.kind == "load":
            a = x.attrs
            st = [_collapse([shape[i] for i in g], [a.strides[i] for i in g]) for g in groups]
            if None in st:
                raise ValueError
            y = Expr("load", x.dtype, attrs=Access(a.buffer, a.offset, tuple(st)))
        elif x.args:
            y = Expr(x.kind, x.dtype, tuple(go(z) for z in x.args), x.attrs)
        else:
            y = x
        memo[id(x)] = y
        return y
    try:
        return go(e)
    except ValueError:
        return None
