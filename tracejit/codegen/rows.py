"""LLVM code for a `RowKernel`: Kernel IR (row-fused stages) -> one loop function.

Input: a `RowKernel` of the schedule. Output: ``void kN(ptr noalias out..., ptr noalias in...,
i64 lo, i64 hi)`` in the module, where [lo, hi) ranges over the first row axis (the runtime
splits it across threads). For each row, each stage loops over the row's columns: a reduction
stage accumulates in a register (float sums reassociable, so the loop vectorizes) and its value
serves the later stages of the same row; an elementwise stage stores its body at every column.
The loops, loads and scalar operations are those of `llvm.py`'s kernels.
"""

from __future__ import annotations

import llvmlite.ir as ir
import numpy as np

from .. import dtypes as D
from ..schedule.kernel import Access, Expr, RowKernel, walk
from .llvm import _KernelGen, ir_type
from .lower import identity_value, reduce_combine

__all__ = ["emit_rows"]


def emit_rows(mod, sched, k: RowKernel, cpu: str, features: str) -> None:
    _RowGen(mod, sched, k, cpu, features).emit()


class _RowGen(_KernelGen):
    def __init__(self, mod, sched, k: RowKernel, cpu, features):
        self.mod, self.sched, self.k = mod, sched, k
        self.cpu, self.features = cpu, features
        self.bufs = list(k.outs) + list(k.inputs)

    def emit(self):
        k = self.k
        self._begin()
        outer, inner = list(k.domain[:k.n_outer]), list(k.domain[k.n_outer:])
        full = [int(np.prod(k.domain[i + 1:], dtype=np.int64)) for i in range(len(k.domain))]
        row = [int(np.prod(outer[i + 1:], dtype=np.int64)) for i in range(len(outer))]
        accs = {}
        recips = {e.args[1].attrs for st in k.stages for e in walk(st.body)
                  if e.kind == "div" and e.args[1].kind == "stage" and e.dtype.is_floating_point}
        with self.b.goto_entry_block():
            for j, st in enumerate(k.stages):
                if st.reduce_op is not None:
                    accs[j] = self.b.alloca(ir_type(st.body.dtype))

        def one_row(idx_outer):
            self.row_vals = {}
            for j, st in enumerate(k.stages):
                dt = st.body.dtype

                def column(idx_inner, j=j, st=st, dt=dt):
                    self.memo = {}
                    idx = list(idx_outer) + list(idx_inner)
                    self.idx = dict(enumerate(idx))
                    v = self._expr(st.body)
                    if st.reduce_op is None:
                        self._store(st.out, self._linear(idx, full), v, dt)
                    else:
                        if st.spill is not None:
                            self._store(st.spill, self._linear(idx, full), v, dt)
                        self.b.store(reduce_combine(self.b, st.reduce_op, dt,
                                                    self.b.load(accs[j]), v), accs[j])
                if st.reduce_op is not None:
                    self.b.store(identity_value(st.reduce_op, dt, ir_type(dt)), accs[j])
                self._nest(inner, column, first=False)
                if st.reduce_op is not None:
                    v = self.b.load(accs[j])
                    if st.out is not None:
                        self._store(st.out, self._linear(list(idx_outer), row), v, dt)
                    if dt == D.float16:  # what a store and a load would have rounded
                        v = self.b.fpext(self.b.fptrunc(v, ir.HalfType()), ir.FloatType())
                    self.row_vals[j] = v
                    if j in recips:
                        self.row_vals[("recip", j)] = self.b.fdiv(ir.Constant(v.type, 1.0), v)
        self._nest(outer, one_row)
        self.b.ret_void()

    def _expr(self, e: Expr):
        if e.kind == "stage":
            return self.row_vals[e.attrs]
        if e.kind == "div" and e.args[1].kind == "stage" and e.dtype.is_floating_point:
            # x / s for a per-row s: one division per row, then a multiply per element (at most
            # one rounding more than dividing each element, as in PyTorch's softmax kernel)
            j = e.args[1].attrs
            v = self.memo.get(id(e))
            if v is None:
                v = self.memo[id(e)] = self.b.fmul(self._expr(e.args[0]),
                                                   self.row_vals[("recip", j)])
            return v
        return super()._expr(e)

    def _access_pos(self, a: Access):
        idx = [self.idx[ax] for ax in range(len(a.strides))]
        return self._linear(idx, list(a.strides), a.offset)

