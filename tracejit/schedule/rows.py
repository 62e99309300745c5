"""Row fusion: a Schedule -> the same Schedule with softmax-like kernel chains fused by rows.

Input: a `Schedule` from `fusion.py`. Output: the schedule with runs of consecutive kernels over
one domain ``(rows..., columns...)`` — reductions along the columns and elementwise kernels
that read those reductions one value per row — replaced by one `RowKernel`. Softmax is the
model: ``max`` of a row, ``sum(exp(x - max))`` of the row, then ``exp(x - max) / sum`` for each
element; as separate kernels each pass streams the whole array from memory, fused by rows the
second and third passes read a row that is still in cache, and ``max`` and ``sum`` never leave
registers unless something outside the group reads them.

A kernel joins the group when it has the group's domain, its reduction (if any) is over the same
trailing axes, and it reads the group's earlier results only as one value per row (a reduction
result at its own row). Results of elementwise stages cannot be read back within the group.
"""

from __future__ import annotations

from .kernel import Access, Expr, Kernel, RowKernel, RowStage, Schedule, _hashable, walk

__all__ = ["fuse_rows", "MIN_ROW"]

MIN_ROW = 8  # columns: shorter rows gain nothing from the fusion (and lose vector width)


def _trailing(k: Kernel) -> int | None:
    """The number of row axes if `k` reduces exactly the trailing axes of its domain."""
    n = len(k.domain) - len(k.reduce_axes)
    if k.reduce_axes and n >= 1 and tuple(k.reduce_axes) == tuple(range(n, len(k.domain))):
        return n
    return None


def _row_strides(domain, n_outer) -> tuple[int, ...]:
    """Strides, over the whole domain, of a contiguous buffer indexed by the row axes only."""
    out, acc = [], 1
    for d in reversed(domain[:n_outer]):
        out.append(acc)
        acc *= d
    return tuple(reversed(out)) + (0,) * (len(domain) - n_outer)


class _Group:
    def __init__(self, first: Kernel, n_outer: int, buffers):
        self.domain, self.n_outer, self.buffers = first.domain, n_outer, buffers
        self.row = _row_strides(first.domain, n_outer)
        self.kernels: list[Kernel] = []
        self.reduced: dict[int, int] = {}  # reduction output buffer -> stage index
        self.stored: set[int] = set()       # buffers written by elementwise stages
        self.add(first)

    def accepts(self, k) -> bool:
        if not isinstance(k, Kernel) or k.domain != self.domain:
            return False
        if k.reduce_op is not None and _trailing(k) != self.n_outer:
            return False
        for ld in (x for x in walk(k.body) if x.kind == "load"):
            a = ld.attrs
            if a.buffer in self.stored:
                return False
            if a.buffer in self.reduced and (a.offset != 0 or tuple(a.strides) != self.row
                                              or ld.dtype != self.buffers[a.buffer].dtype):
                return False
        return True

    def add(self, k: Kernel) -> None:
        if k.reduce_op is not None:
            if k.body.dtype != self.buffers[k.out].dtype:
                self.stored.add(k.out)  # (never read back as a register value)
            else:
                self.reduced[k.out] = len(self.kernels)
        else:
            self.stored.add(k.out)
        self.kernels.append(k)

    def useful(self) -> bool:
        cols = 1
        for d in self.domain[self.n_outer:]:
            cols *= d
        return len(self.kernels) > 1 and cols >= MIN_ROW

    def build(self, needed_outside: set[int]) -> RowKernel:
        memo: dict[int, Expr] = {}

        def sub(e: Expr) -> Expr:
            if id(e) not in memo:
                if e.kind == "load" and e.attrs.buffer in self.reduced:
                    memo[id(e)] = Expr("stage", e.dtype, attrs=self.reduced[e.attrs.buffer])
                elif e.args:
                    memo[id(e)] = Expr(e.kind, e.dtype, tuple(sub(a) for a in e.args), e.attrs)
                else:
                    memo[id(e)] = e
            return memo[id(e)]

        stages, outs, inputs, nodes = [], [], [], []
        for k in self.kernels:
            keep = k.reduce_op is None or k.out in needed_outside or k.out in self.stored
            stages.append(RowStage(sub(k.body), k.reduce_op, k.out if keep else None))
            if keep:
                outs.append(k.out)
            for b in k.inputs:
                if b not in self.reduced and b not in inputs:
                    inputs.append(b)
            nodes += k.nodes
        self._reuse(stages)
        first = self.kernels[0]
        name = "k" + first.name[1:].split("_", 1)[0] + "_rows_" + "_".join(
            dict.fromkeys(k.reduce_op or "map" for k in self.kernels))
        return RowKernel(name[:40], self.domain, self.n_outer, stages, outs, inputs, nodes,
                         first.loc)


    def _reuse(self, stages: list[RowStage]) -> None:
        """When a reduction's body (softmax's ``exp(x - max)``) reappears in a later elementwise
        stage, the reduction also stores it in that stage's output row, and the later stage
        reads it back from cache instead of computing it again."""
        full = _row_strides(self.domain, len(self.domain))
        keys: dict[int, tuple] = {}
        for j, st in enumerate(stages):
            if st.reduce_op is None or not st.body.args or \
                    st.body.dtype.name not in ("float32", "float64"):
                continue
            want = _skey(st.body, keys)
            for later in stages[j + 1:]:
                if later.reduce_op is not None or later.out is None or \
                        any(x.spill == later.out for x in stages) or \
                        self.buffers[later.out].dtype != st.body.dtype:
                    continue
                load = Expr("load", st.body.dtype, attrs=Access(later.out, 0, full))
                body = _swap(later.body, want, load, keys, {})
                if body is not later.body and any(x is load for x in walk(body)):
                    later.body = body
                    st.spill = later.out
                    break


def _swap(e: Expr, want: tuple, new: Expr, keys: dict, memo: dict) -> Expr:
    """`e` with every subexpression structurally equal to `want` replaced by `new`."""
    if id(e) not in memo:
        if _skey(e, keys) == want:
            memo[id(e)] = new
        elif e.args:
            memo[id(e)] = Expr(e.kind, e.dtype, tuple(_swap(a, want, new, keys, memo)
                                                      for a in e.args), e.attrs)
        else:
            memo[id(e)] = e
    return memo[id(e)]


def _skey(e: Expr, keys: dict) -> tuple:
    """A structural key: equal for equal expressions built by different kernel builders."""
    hit = keys.get(id(e))
    if hit is None:  # (the expression is kept alive with its key, so its id stays its own)
        hit = keys[id(e)] = (e, (e.kind, e.dtype.name, _hashable(e.attrs),
                                 tuple(_skey(a, keys) for a in e.args)))
    return hit[1]


def fuse_rows(s: Schedule) -> Schedule:
    steps, i = [], 0
    while i < len(s.steps):
        st = s.steps[i]
        n = _trailing(st) if isinstance(st, Kernel) and st.reduce_op is not None else None
        if n is None:
            steps.append(st)
            i += 1
            continue
        g = _Group(st, n, s.buffers)
        j = i + 1
        while j < len(s.steps) and g.accepts(s.steps[j]):
            g.add(s.steps[j])
            j += 1
        if not g.useful():
            steps.append(st)
            i += 1
            continue
        later = {b for x in s.steps[j:] for b in getattr(x, "inputs", [])}
        steps.append(g.build(later | set(s.outputs)))
        i = j
    s.steps = steps
    return s
