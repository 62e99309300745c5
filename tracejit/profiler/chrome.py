"""Writes a profile's events as Chrome's trace-event JSON (chrome://tracing, Perfetto).

Input: the `Event`s of one profile and its start time. Output: ``{"traceEvents": [...]}``: one
complete event (``"ph": "X"``) per event, ``ts`` and ``dur`` in microseconds from the start of
the profile, ``pid`` this process, ``tid`` the OS thread that ran it (the CPU runtime's worker
threads get their own tracks), plus metadata events (``"ph": "M"``) naming the process and
threads. Ranges nest by time on a thread: a call contains its compilation and its kernels.
"""

from __future__ import annotations

import json
import os

__all__ = ["trace_events", "export_chrome_trace"]


def _jsonable(v):
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    return str(v)


def trace_events(events: list, origin_ns: int, thread_names: dict) -> list[dict]:
    pid = os.getpid()
    out = [{"name": "process_name", "ph": "M", "pid": pid, "tid": 0,
            "args": {"name": "tracejit"}}]
    for tid in sorted({e.tid for e in events}):
        out.append({"name": "thread_name", "ph": "M", "pid": pid, "tid": tid,
                    "args": {"name": thread_names.get(tid, f"thread {tid}")}})
    # ns -> us with 3 decimals: a nested range's rounded ends stay inside its parent's
    for e in sorted(events, key=lambda e: (e.ts, -e.dur)):
        t0, t1 = e.ts - origin_ns, e.end - origin_ns
        out.append({"name": e.name, "ph": "X", "ts": t0 / 1e3, "dur": (t1 - t0) / 1e3,
                    "pid": pid, "tid": e.tid, "cat": e.cat, "args": _jsonable(e.args)})
    return out


def export_chrome_trace(path, events: list, origin_ns: int, thread_names: dict) -> None:
    with open(path, "w") as f:
        json.dump({"traceEvents": trace_events(events, origin_ns, thread_names),
                   "displayTimeUnit": "ms"}, f)
