"""Facts about the host the runtimes size themselves by.

Input: the operating system's view of this process. Output: `available_cpus()`, the number of
cores this process may really use: the CPUs it is pinned to, further limited by a cgroup CPU
quota (containers often show every host core to ``os.cpu_count()`` while allowing two).
"""

from __future__ import annotations

import math
import os

__all__ = ["available_cpus"]


def _cgroup_quota() -> int | None:
    try:  # cgroup v2
        with open("/sys/fs/cgroup/cpu.max") as f:
            quota, period = f.read().split()[:2]
        if quota != "max":
            return max(1, math.ceil(int(quota) / int(period)))
    except (OSError, ValueError):
        pass
    try:  # cgroup v1
        with open("/sys/fs/cgroup/cpu/cpu.cfs_quota_us") as f:
            quota = int(f.read())
        with open("/sys/fs/cgroup/cpu/cpu.cfs_period_us") as f:
            period = int(f.read())
        if quota > 0 and period > 0:
            return max(1, math.ceil(quota / period))
    except (OSError, ValueError):
        pass
    return None


def available_cpus() -> int:
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    q = _cgroup_quota()
    return max(1, min(n, q) if q else n)
