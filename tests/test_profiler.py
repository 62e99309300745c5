"""tj.profiler: the table of a known compiled function's kernels, compile time and cache hits,
externs, record_function ranges, the Chrome trace, zero recording when off, CUDA (emulated)
launches, eager realizations, and recording from the CPU runtime's worker threads."""

import json
import pathlib
import threading

import numpy as np
import pytest

import tracejit as tj
from tracejit.profiler.table import nest

HERE = pathlib.Path(__file__).name


def _line(marker: str) -> int:
    """The line of this file that carries `marker` in a comment."""
    for i, text in enumerate(pathlib.Path(__file__).read_text().splitlines(), 1):
        if text.rstrip().endswith("# " + marker):
            return i
    raise AssertionError(marker)


def attention(a, b):
    return tj.softmax(a @ b, dim=-1)  # LINE_ATTENTION


def sorted_twice(x):
    return tj.sort(x)[0] * 2  # LINE_SORT


A = np.random.default_rng(0).random((8, 16), dtype=np.float32)
B = np.random.default_rng(1).random((16, 32), dtype=np.float32)


def _rows(prof, cat=None):
    return [r for r in prof.key_averages() if cat is None or r.cat == cat]


def test_table_lists_the_kernels_with_counts_times_and_source():
    f = tj.compile(attention)
    n = 4
    with tj.profiler.profile() as prof:
        for _ in range(n):
            out = f(A, B)
    np.testing.assert_allclose(out.numpy(), tj.softmax(tj.tensor(A @ B), dim=-1).numpy(),
                               rtol=1e-5)
    kernels = {r.args["kind"]: r for r in _rows(prof, "kernel")}
    assert set(kernels) == {"Gemm", "RowKernel"}, kernels
    src = f"{HERE}:{_line('LINE_ATTENTION')}"
    for r in kernels.values():
        assert r.count == n
        assert r.self_cpu_time_total > 0 and r.cpu_time_total >= r.self_cpu_time_total
        assert r.source.endswith(src)
    assert kernels["Gemm"].ops == "dot_general"
    assert "exp" in kernels["RowKernel"].ops and "reduce_max" in kernels["RowKernel"].ops
    table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=50)
    for head in ("Name", "Self CPU %", "Self CPU", "CPU total", "CPU time avg", "# of Calls",
                 "Source"):
        assert head in table
    for r in kernels.values():
        line = next(t for t in table.splitlines() if t.startswith(r.name + " "))
        assert src in line and f" {n} " in line
    assert "Self CPU time total:" in table
    # the call: one per call, its kernels nested in it (self time <= total)
    (call,) = [r for r in _rows(prof, "function") if r.name == "call: attention"]
    assert call.count == n and call.cpu_time_total > kernels["Gemm"].cpu_time_total


def test_compile_time_once_then_cache_hits():
    f = tj.compile(attention)
    with tj.profiler.profile() as prof:
        for _ in range(3):
            f(A, B)
    (comp,) = _rows(prof, "compile")
    assert comp.name == "compile: attention" and comp.count == 1 and comp.cpu_time_total > 0
    calls = [e for e in prof.events() if e.cat == "function"]
    assert [e.args["cache"] for e in sorted(calls, key=lambda e: e.ts)] == ["miss", "hit", "hit"]
    st = prof.function_stats()["attention"]
    assert (st.calls, st.misses, st.hits, st.compiles) == (3, 1, 2, 1)
    assert st.compile_ns > 0 and st.trace_ns > 0 and st.passes_ns > 0 and st.codegen_ns > 0
    assert st.trace_ns + st.passes_ns + st.codegen_ns <= st.compile_ns
    assert st.disk_cache_hits >= 0
    assert st.kernels and all(v == 3 for v in st.kernels.values())
    # the phases nest in the compilation, which nests in the first call
    _, parent = nest(prof.events())
    comp_ev = next(e for e in prof.events() if e.cat == "compile")
    phases = [e for e in prof.events() if e.cat == "compile_phase"]
    assert {e.name for e in phases} == {"trace", "passes", "codegen: cpu"}
    for e in phases:
        p = parent[id(e)]
        while p is not comp_ev:
            p = parent[id(p)]
    assert parent[id(comp_ev)].name == "call: attention"
    assert "attention: 3 call(s)" in prof.summary()
    # a later profile of the warm function: hits only, no compilation
    with tj.profiler.profile() as prof2:
        f(A, B)
    assert not _rows(prof2, "compile") and prof2.function_stats()["attention"].hits == 1


def test_externs_are_named_by_op():
    f = tj.compile(sorted_twice)
    x = np.random.default_rng(2).random(10, dtype=np.float32)
    with tj.profiler.profile() as prof:
        f(x)
        f(x)
    ext = _rows(prof, "extern")
    assert ext, prof.key_averages().table()
    for r in ext:
        assert r.name == f"extern: {r.ops}" and r.count == 2
        assert r.source.endswith(f"{HERE}:{_line('LINE_SORT')}")
    st = prof.function_stats()["sorted_twice"]
    assert set(st.externs) == {r.ops for r in ext}


def test_sort_by_and_row_limit():
    f = tj.compile(attention)
    with tj.profiler.profile() as prof:
        for _ in range(3):
            f(A, B)
    ka = prof.key_averages()
    for key in ("self_cpu_time_total", "cpu_time_total", "count"):
        body = ka.table(sort_by=key, row_limit=2).splitlines()[3:-2]
        want = sorted(ka, key=lambda r: getattr(r, key), reverse=True)[:2]
        assert len(body) == 2 and [b.split("  ")[0] for b in body] == [r.name for r in want]
    with pytest.raises(ValueError, match="sort_by"):
        ka.table(sort_by="bogus")


def test_record_function_ranges_nest():
    f = tj.compile(attention)
    f(A, B)

    @tj.profiler.record_function("decorated")
    def step():
        return f(A, B)

    with tj.profiler.profile() as prof:
        with tj.profiler.record_function("outer"):
            with tj.profiler.record_function("inner"):
                step()
    evs = {e.name: e for e in prof.events()}
    assert {"outer", "inner", "decorated", "call: attention"} <= set(evs)
    _, parent = nest(prof.events())
    assert parent[id(evs["inner"])] is evs["outer"]
    assert parent[id(evs["decorated"])] is evs["inner"]
    assert parent[id(evs["call: attention"])] is evs["decorated"]
    assert id(evs["outer"]) not in parent
    assert all(evs[k].cat == "user_annotation" for k in ("outer", "inner", "decorated"))
    # outside a profile a range records nothing and costs nothing
    with tj.profiler.record_function("nothing"):
        pass


def test_chrome_trace_is_valid_and_nested(tmp_path):
    f = tj.compile(attention)
    with tj.profiler.profile() as prof:
        with tj.profiler.record_function("two calls"):
            f(A, B)
            f(A, B)
    path = tmp_path / "trace.json"
    prof.export_chrome_trace(str(path))
    data = json.loads(path.read_text())
    xs = [e for e in data["traceEvents"] if e["ph"] == "X"]
    assert len(xs) == len(prof.events())
    for e in xs:
        assert {"name", "ph", "ts", "dur", "pid", "tid", "cat", "args"} <= set(e)
        assert isinstance(e["ts"], (int, float)) and e["ts"] >= 0 and e["dur"] >= 0
    meta = [e for e in data["traceEvents"] if e["ph"] == "M"]
    assert any(e["name"] == "thread_name" for e in meta)

    def inside(child, parent):
        return (child["tid"] == parent["tid"] and child["ts"] >= parent["ts"]
                and child["ts"] + child["dur"] <= parent["ts"] + parent["dur"] + 1e-3)
    rng = next(e for e in xs if e["name"] == "two calls")
    calls = [e for e in xs if e["cat"] == "function"]
    assert len(calls) == 2 and all(inside(c, rng) for c in calls)
    kernels = [e for e in xs if e["cat"] == "kernel"]
    assert len(kernels) == 4
    for k in kernels:
        assert sum(inside(k, c) for c in calls) == 1
        assert k["args"]["source"].endswith(f"{HERE}:{_line('LINE_ATTENTION')}")
    comp = next(e for e in xs if e["cat"] == "compile")
    assert inside(comp, calls[0]) if calls[0]["ts"] <= calls[1]["ts"] else inside(comp, calls[1])


def test_profiling_off_after_the_context(monkeypatch):
    f = tj.compile(lambda x: x * 2 + 1)
    x = np.ones(16, np.float32)
    f(x)
    prog = next(iter(f._cache.values())).base
    assert prog._entry is not None  # a small schedule: the one-call fast path
    used = []
    real = prog._call_entry
    monkeypatch.setattr(prog, "_call_entry", lambda args: used.append(1) or real(args))
    with tj.profiler.profile() as prof:
        assert tj.profiler.is_profiling()
        f(x)
    assert not used  # profiling: step by step, so each kernel is timed
    kernels = _rows(prof, "kernel")
    assert len(kernels) == 1 and kernels[0].count == 1
    n = len(prof.events())
    assert not tj.profiler.is_profiling()
    np.testing.assert_allclose(f(x).numpy(), x * 2 + 1)
    assert used == [1]  # the fast path again
    with tj.profiler.record_function("late"):
        f(x)
    assert len(prof.events()) == n  # nothing recorded after the context


def test_profiles_do_not_nest():
    with tj.profiler.profile():
        with pytest.raises(RuntimeError, match="already active"):
            with tj.profiler.profile():
                pass
    assert not tj.profiler.is_profiling()


def test_record_shapes():
    f = tj.compile(attention)
    with tj.profiler.profile(record_shapes=True) as prof:
        f(A, B)
    (call,) = [e for e in prof.events() if e.cat == "function"]
    assert call.args["shapes"] == [[8, 16], [16, 32]]
    assert prof.key_averages(group_by_input_shape=True)


def test_eager_realizations_are_events():
    x = tj.tensor(np.arange(8, dtype=np.float32))
    with tj.profiler.profile() as prof:
        y = ((x * 2 + 1).exp()).sum()
        y.item()
    eager = [e for e in prof.events() if e.cat == "eager"]
    assert eager, prof.key_averages().table()
    e = eager[0]
    assert e.name == f"eager: {e.args['n_ops']} ops" and e.args["n_ops"] >= 4
    assert "exp" in e.args["ops"] and e.args["mode"] in ("interpreted", "compiled",
                                                          "compiled now")
    assert e.dur > 0 and prof.function_stats()["eager"].calls == len(eager)


@pytest.fixture
def emulated():
    tj.cuda.emulate(True)
    try:
        if not tj.cuda.is_available():
            pytest.skip("the CUDA emulation needs a C++ compiler")
        yield
    finally:
        tj.cuda.emulate(None)


def test_cuda_emulated_launches_appear(emulated):
    f = tj.compile(attention, device="cuda")
    n = 3
    with tj.profiler.profile() as prof:
        for _ in range(n):
            out = f(A, B)
    np.testing.assert_allclose(np.asarray(out.numpy()),
                               tj.softmax(tj.tensor(A @ B), dim=-1).numpy(), rtol=1e-4)
    launches = _rows(prof, "cuda")
    assert launches, prof.key_averages().table()
    for r in launches:
        assert r.count % n == 0 and r.cpu_time_total > 0
        assert r.source.endswith(f"{HERE}:{_line('LINE_ATTENTION')}")
        assert r.args["device"] and r.args["grid"] >= 1
    assert _rows(prof, "compile")[0].count == 1
    assert {e.name for e in prof.events() if e.cat == "compile_phase"} >= {"codegen: cuda"}


def test_worker_threads_record_safely(monkeypatch):
    monkeypatch.setenv("TRACEJIT_NUM_THREADS", "2")
    f = tj.compile(lambda x: tj.exp(x * 2) + 1)  # a large kernel: split across threads
    x = np.random.default_rng(3).random(1 << 20, dtype=np.float32)
    f(x)
    prog = next(iter(f._cache.values())).base
    assert prog._threads == 2 and prog._entry is None
    n, callers = 3, 3
    main = threading.get_native_id()

    def work():
        for _ in range(n):
            f(x)
    with tj.profiler.profile() as prof:
        ts = [threading.Thread(target=work) for _ in range(callers - 1)]
        for t in ts:
            t.start()
        work()
        for t in ts:
            t.join()
    evs = prof.events()
    calls = [e for e in evs if e.cat == "function"]
    assert len(calls) == n * callers
    kernels = [e for e in evs if e.cat == "kernel"]
    assert len(kernels) == n * callers and all(e.args["threads"] == 2 for e in kernels)
    workers = [e for e in evs if e.cat == "worker"]
    assert workers and all(e.tid != main for e in workers)
    # every kernel is nested in a call on its own thread
    _, parent = nest(evs)
    assert all(parent[id(k)].cat == "function" for k in kernels)
    (row,) = [r for r in prof.key_averages() if r.cat == "kernel"]
    assert row.count == n * callers
