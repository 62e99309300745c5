"""Aggregates a profile's events into rows and prints them as a table, as PyTorch's profiler does.

Input: the `Event`s of one profile. Output: `EventList` (``prof.key_averages()``): one
`EventAvg` per key (name, category and source line), with self and total times, and
``.table(sort_by=..., row_limit=...)``; `FunctionStats` per compiled function
(``prof.function_stats()``).

Self time is an event's time less that of the events nested in it on the same thread (a call's
self time is what its kernels leave: argument handling, allocation, the runtime's loop). Events
of worker threads are not nested in the step that waited for them: each thread's time is its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["EventAvg", "EventList", "FunctionStats", "nest"]

SORT_KEYS = {
    "self_cpu_time_total": lambda r: r.self_cpu_time_total,
    "cpu_time_total": lambda r: r.cpu_time_total,
    "cpu_time": lambda r: r.cpu_time,
    "self_cpu_time": lambda r: r.self_cpu_time_total / max(r.count, 1),
    "count": lambda r: r.count,
}


def nest(events: list) -> tuple[dict, dict]:
    """``(self_ns, parent)`` by event id: each event's self time, and the event it is nested in
    on its thread (absent for a top-level one)."""
    self_ns = {id(e): e.dur for e in events}
    parent: dict = {}
    by_tid: dict = {}
    for e in events:
        by_tid.setdefault(e.tid, []).append(e)
    for evs in by_tid.values():
        evs.sort(key=lambda e: (e.ts, -e.dur))
        stack: list = []
        for e in evs:
            # a finished range, or one `e` overlaps without nesting in, is not its parent
            while stack and (stack[-1].end <= e.ts or e.end > stack[-1].end):
                stack.pop()
            if stack:
                parent[id(e)] = stack[-1]
                self_ns[id(stack[-1])] -= e.dur
            stack.append(e)
    return self_ns, parent


def fmt_time(us: float) -> str:
    if us >= 1e6:
        return f"{us / 1e6:.3f}s"
    if us >= 1e3:
        return f"{us / 1e3:.3f}ms"
    return f"{us:.3f}us"


@dataclass
class EventAvg:
    """The events of one key together: times in microseconds, like PyTorch's
    (``self_cpu_time_total``, ``cpu_time_total``, ``cpu_time`` = the average per call)."""

    name: str
    cat: str
    source: str = ""
    ops: str = ""
    count: int = 0
    self_ns: int = 0
    total_ns: int = 0
    args: dict = field(default_factory=dict)  # the first event's arguments

    @property
    def key(self) -> str:
        return self.name

    @property
    def self_cpu_time_total(self) -> float:
        return self.self_ns / 1e3

    @property
    def cpu_time_total(self) -> float:
        return self.total_ns / 1e3

    @property
    def cpu_time(self) -> float:
        return self.total_ns / 1e3 / max(self.count, 1)


class EventList(list):
    """Rows of `EventAvg` (what ``prof.key_averages()`` returns); ``.table()`` prints them."""

    def table(self, sort_by: str | None = "self_cpu_time_total", row_limit: int = 100,
              max_name_column_width: int = 40, max_src_column_width: int = 36,
              show_ops: bool = True) -> str:
        """The rows as a text table: Name, Self CPU %, Self CPU, CPU total, CPU time avg,
        # of Calls, Source (the user's ``file:line``) and Ops (the primitives fused into a
        kernel), largest `sort_by` first (``self_cpu_time_total``, ``cpu_time_total``,
        ``cpu_time``, ``self_cpu_time``, ``count``; None keeps first-seen order), at most
        `row_limit` rows (all when < 0)."""
        rows = list(self)
        if sort_by is not None:
            if sort_by not in SORT_KEYS:
                raise ValueError(f"table: unknown sort_by {sort_by!r}; expected one of "
                                 f"{sorted(SORT_KEYS)}")
            rows.sort(key=SORT_KEYS[sort_by], reverse=True)
        if row_limit is not None and row_limit >= 0:
            rows = rows[:row_limit]
        total_self = sum(r.self_ns for r in self) or 1
        heads = ["Name", "Self CPU %", "Self CPU", "CPU total", "CPU time avg", "# of Calls",
                 "Source"] + (["Ops"] if show_ops else [])
        body = []
        for r in rows:
            line = [_cut(r.name, max_name_column_width, left=False),
                    f"{100 * r.self_ns / total_self:.2f}%", fmt_time(r.self_cpu_time_total),
                    fmt_time(r.cpu_time_total), fmt_time(r.cpu_time), str(r.count),
                    _cut(r.source, max_src_column_width, left=True)]
            if show_ops:
                line.append(_cut(r.ops, 32, left=False))
            body.append(line)
        widths = [max([len(h)] + [len(b[i]) for b in body]) for i, h in enumerate(heads)]
        left = {0, 6, 7}
        sep = "  ".join("-" * w for w in widths)

        def fmt(cells):
            return "  ".join(c.ljust(w) if i in left else c.rjust(w)
                             for i, (c, w) in enumerate(zip(cells, widths))).rstrip()
        out = [sep, fmt(heads), sep] + [fmt(b) for b in body] + [sep]
        out.append(f"Self CPU time total: {fmt_time(total_self / 1e3)}")
        return "\n".join(out) + "\n"

    def __str__(self) -> str:
        return self.table()


def _cut(text: str, width: int, left: bool) -> str:
    """`text` cut to `width` characters: its start (`left`: its end, to keep a line number)."""
    if len(text) <= width:
        return text
    return "..." + text[-(width - 3):] if left else text[:width - 3] + "..."


def key_averages(events: list, group_by_input_shape: bool = False) -> EventList:
    """One `EventAvg` per (name, category, source[, input shapes]), in first-seen order."""
    self_ns, _ = nest(events)
    rows: dict = {}
    for e in events:
        key = (e.name, e.cat, e.source)
        if group_by_input_shape:
            key += (str(e.args.get("shapes", "")),)
        r = rows.get(key)
        if r is None:
            ops = e.args.get("ops", "")
            r = rows[key] = EventAvg(e.name, e.cat, e.source, ops if isinstance(ops, str)
                                     else str(ops), args=dict(e.args))
        r.count += 1
        r.self_ns += self_ns[id(e)]
        r.total_ns += e.dur
    return EventList(rows.values())


@dataclass
class FunctionStats:
    """One compiled function (or ``eager``: realizations of eager code) in a profile: calls and
    their total time, compilations (trace, passes, codegen + LLVM), signature cache hits and
    misses, disk cache hits, and its steps: kernels, externs and CUDA host steps by name."""

    name: str
    calls: int = 0
    total_ns: int = 0
    hits: int = 0
    misses: int = 0
    compiles: int = 0
    compile_ns: int = 0
    trace_ns: int = 0
    passes_ns: int = 0
    codegen_ns: int = 0
    disk_cache_hits: int = 0
    kernels: dict = field(default_factory=dict)  # kernel or CUDA launch name -> calls
    externs: dict = field(default_factory=dict)  # extern / host step op -> calls

    @property
    def total_us(self) -> float:
        return self.total_ns / 1e3

    @property
    def compile_us(self) -> float:
        return self.compile_ns / 1e3


def function_stats(events: list) -> dict[str, FunctionStats]:
    """`FunctionStats` by function name (``eager`` for eager realizations)."""
    _, parent = nest(events)
    stats: dict[str, FunctionStats] = {}

    def owner(e):  # the function whose call `e` ran in
        p = e
        while p is not None:
            if p.cat == "function":
                return p.name[len("call: "):]
            if p.cat == "eager":
                return "eager"
            p = parent.get(id(p))
        return None

    def get(name):
        if name not in stats:
            stats[name] = FunctionStats(name)
        return stats[name]

    for e in events:
        if e.cat == "function":
            s = get(e.name[len("call: "):])
            s.calls += 1
            s.total_ns += e.dur
            if e.args.get("cache") == "miss":
                s.misses += 1
            else:
                s.hits += 1
        elif e.cat == "eager":
            s = get("eager")
            s.calls += 1
            s.total_ns += e.dur
        elif e.cat == "compile":
            s = get(owner(e) or e.name[len("compile: "):])
            s.compiles += 1
            s.compile_ns += e.dur
            s.disk_cache_hits += e.args.get("disk_cache_hits", 0)
        elif e.cat == "compile_phase" and (name := owner(e)) is not None:
            s = get(name)
            if e.name == "trace":
                s.trace_ns += e.dur
            elif e.name == "passes":
                s.passes_ns += e.dur
            elif e.name.startswith("codegen"):
                s.codegen_ns += e.dur
            if name == "eager" and e.name == "passes":  # an eager compile has no "compile:"
                s.compiles += 1
        elif e.cat in ("kernel", "cuda", "extern", "host") and (name := owner(e)) is not None:
            s = get(name)
            table = s.kernels if e.cat in ("kernel", "cuda") else s.externs
            key = e.name if e.cat in ("kernel", "cuda") else e.args.get("ops", e.name)
            table[key] = table.get(key, 0) + 1
    for s in stats.values():
        if s.name == "eager":
            s.compile_ns = s.passes_ns + s.codegen_ns
    return stats


def summary(events: list) -> str:
    """One paragraph per compiled function: calls, times, cache, kernels, externs."""
    out = []
    for s in function_stats(events).values():
        if s.name == "eager":
            out.append(f"eager: {s.calls} realization(s), {fmt_time(s.total_us)} in all")
        else:
            out.append(f"{s.name}: {s.calls} call(s), {fmt_time(s.total_us)} in all; "
                       f"signature cache {s.hits} hit(s), {s.misses} miss(es)")
        if s.compiles:
            trace = f"trace {fmt_time(s.trace_ns / 1e3)}, " if s.name != "eager" else ""
            out.append(f"  compile {fmt_time(s.compile_us)} ({s.compiles}x): {trace}passes "
                       f"{fmt_time(s.passes_ns / 1e3)}, codegen {fmt_time(s.codegen_ns / 1e3)}"
                       + (f"; disk cache hits {s.disk_cache_hits}" if s.name != "eager"
                          else ""))
        if s.kernels:
            out.append("  kernels: " + ", ".join(f"{k} x{n}" for k, n in s.kernels.items()))
        if s.externs:
            out.append("  externs/host steps: " + ", ".join(f"{k} x{n}"
                                                           for k, n in s.externs.items()))
    return "\n".join(out) + ("\n" if out else "")
