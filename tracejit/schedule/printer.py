"""The text form of a Schedule (``f.lower(...).as_text("schedule")``).

Input: a `Schedule`. Output: text listing the buffers, then each step: a kernel with its
iteration domain, the graph nodes fused into it (op names and source lines), the buffers it reads
and writes and its scalar body; a gemm with its sizes, operand layouts and epilogue (where ``acc``
is the product's element and loads index ``(batch, row, col)``); or an extern call.
"""

from __future__ import annotations

from .kernel import Expr, Extern, Gemm, Kernel, Operand, RowKernel, Schedule

__all__ = ["schedule_to_text"]


def _expr_text(e: Expr, names: dict, lines: list) -> str:
    if id(e) in names:
        return names[id(e)]
    if e.kind == "load":
        a = e.attrs
        txt = f"b{a.buffer}[{a.offset}+{list(a.strides)}.i]"
    elif e.kind == "const":
        txt = repr(e.attrs)
    elif e.kind == "acc":
        txt = "acc"
    elif e.kind == "stage":
        txt = f"stage{e.attrs}"
    elif e.kind == "index":
        axis, scale, off = e.attrs
        txt = f"i{axis}" if (scale, off) == (1, 0) else f"({scale}*i{axis}+{off})"
    else:
        args = ", ".join(_expr_text(a, names, lines) for a in e.args)
        txt = f"{e.kind}({args})"
        if sum(1 for _ in e.args) and len(txt) > 60:
            name = f"t{len(names)}"
            lines.append(f"      {name}: {e.dtype.short} = {txt}")
            names[id(e)] = name
            return name
    return txt


def schedule_to_text(s: Schedule) -> str:
    out = [f"schedule: {len(s.kernels)} kernels, "
           + (f"{len(s.gemms)} gemms, " if s.gemms else "")
           + (f"{len(s.row_kernels)} row kernels, " if s.row_kernels else "")
           + f"{sum(isinstance(x, Extern) for x in s.steps)} externs, {len(s.buffers)} buffers"]
    for i, b in enumerate(s.buffers):
        out.append(f"  b{i}: {b.dtype.short}[{','.join(map(str, b.shape))}] {b.kind}"
                   + (f" ({b.label})" if b.label else ""))
    for st in s.steps:
        if isinstance(st, Kernel):
            red = (f" reduce {st.reduce_op} over axes {list(st.reduce_axes)}"
                   if st.reduce_op else "")
            fused = ", ".join(dict.fromkeys(n.op for n in reversed(st.nodes)))
            locs = sorted({str(n.loc) for n in st.nodes if n.loc is not None})
            out.append(f"  kernel {st.name} over [{','.join(map(str, st.domain))}]{red}: "
                       f"b{st.out} <- " + ", ".join(f"b{b}" for b in st.inputs))
            out.append(f"    fuses: {fused or 'copy'}" + (f"  ({', '.join(locs)})" if locs
                                                           else ""))
            lines: list[str] = []
            body = _expr_text(st.body, {}, lines)
            out += lines
            out.append(f"      = {body}")
        elif isinstance(st, Gemm):
            out += _gemm_text(st)
        elif isinstance(st, RowKernel):
            out += _rows_text(st)
        else:
            ins = ", ".join(f"b{b}" for b in st.inputs)
            outs = ", ".join(f"b{b}" for b in st.outputs)
            out.append(f"  extern {st.node.op}({ins}) -> {outs}"
                       + (f"  ({st.node.loc})" if st.node.loc else ""))
    out.append("  return " + ", ".join(f"b{b}" for b in s.outputs))
    return "\n".join(out)


def _operand_text(o: Operand) -> str:
    return f"b{o.buffer}[{o.offset}+{[o.batch_stride, o.row_stride, o.col_stride]}.i]"


def _gemm_text(g: Gemm) -> list[str]:
    fused = ", ".join(dict.fromkeys(n.op for n in g.nodes))
    locs = sorted({str(n.loc) for n in g.nodes if n.loc is not None})
    split = f" col_split={g.col_split}" if g.col_split else ""
    out = [f"  gemm {g.name} batch={g.batch} m={g.m} n={g.n} k={g.k}{split} {g.dtype.short}: "
           f"b{g.out}" + (f", b{g.raw} (= acc)" if g.raw is not None else "") + " <- "
           f"A={_operand_text(g.a)}, B={_operand_text(g.b)}"
           + "".join(f", b{b}" for b in g.inputs
                     if b not in (g.a.buffer, g.b.buffer, g.raw)),
           f"    fuses: {fused}" + (f"  ({', '.join(locs)})" if locs else "")]
    if g.epilogue is not None:
        lines: list[str] = []
        body = _expr_text(g.epilogue, {}, lines)
        out += lines
        out.append(f"      epilogue = {body}")
    return out


def _rows_text(r: RowKernel) -> list[str]:
    fused = ", ".join(dict.fromkeys(n.op for n in reversed(r.nodes)))
    locs = sorted({str(n.loc) for n in r.nodes if n.loc is not None})
    rows = ",".join(map(str, r.domain[:r.n_outer]))
    cols = ",".join(map(str, r.domain[r.n_outer:]))
    out = [f"  row kernel {r.name} over rows [{rows}] x columns [{cols}]: "
           + ", ".join(f"b{b}" for b in r.outs) + " <- " + ", ".join(f"b{b}" for b in r.inputs),
           f"    fuses: {fused}" + (f"  ({', '.join(locs)})" if locs else "")]
    for j, st in enumerate(r.stages):
        lines: list[str] = []
        body = _expr_text(st.body, {}, lines)
        out += lines
        what = (f"stage{j} = {st.reduce_op} over the row of" if st.reduce_op
                else f"stage{j}: each column")
        dest = f" -> b{st.out}" if st.out is not None else ""
        if st.spill is not None:
            dest += f" (each term also kept in b{st.spill})"
        out.append(f"      {what} {body}{dest}")
    return out
