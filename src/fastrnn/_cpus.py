"""The processors this process may use: the kernels' default thread count and where it comes from.

The kernels' threads meet at every time step, so a thread more than the process may run at once
(its CPU affinity mask, its cgroup CPU quota in a container) makes every step wait for a thread
the system has parked or throttled. The default is therefore the smallest of: the physical cores
of the machine, the physical cores of the affinity mask, and the whole CPUs of the cgroup quota.
"""
from __future__ import annotations

import os

CGROUP_ROOT = "/sys/fs/cgroup"


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def affinity_cpus() -> list[int]:
    """The CPUs this process may run on (all of them where there is no affinity mask)."""
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return list(range(os.cpu_count() or 1))


def cores_of(cpus: list[int], sys_cpu: str = "/sys/devices/system/cpu") -> int:
    """Physical cores among ``cpus`` (hyper-threads share a core's FMA units); len(cpus) if unknown."""
    cores = set()
    for cpu in cpus:
        package = _read(f"{sys_cpu}/cpu{cpu}/topology/physical_package_id")
        core = _read(f"{sys_cpu}/cpu{cpu}/topology/core_id")
        if package is None or core is None:
            return max(1, len(cpus))
        cores.add((package, core))
    return max(1, len(cores))


def quota_cpus(text_v2: str | None, quota_v1: str | None = None, period_v1: str | None = None) -> float | None:
    """CPUs a cgroup quota allows: from cgroup v2 ``cpu.max`` ("max 100000", "50000 100000") or
    v1 ``cpu.cfs_quota_us``/``cpu.cfs_period_us`` (quota -1: none); None without a quota."""
    pairs = []
    if text_v2:
        fields = text_v2.split()
        if len(fields) == 2:
            pairs.append(fields)
    if quota_v1 and period_v1:
        pairs.append([quota_v1, period_v1])
    limits = []
    for quota, period in pairs:
        try:
            q, p = int(quota), int(period)
        except ValueError:  # "max", or unreadable
            continue
        if q > 0 and p > 0:
            limits.append(q / p)
    return min(limits) if limits else None


def _cgroup_dirs(proc_cgroup: str | None, root: str) -> list[str]:
    """The directories of this process's cgroup and its ancestors, for v2 and for v1's cpu controller."""
    dirs = []
    for line in (proc_cgroup or "").splitlines():
        hierarchy, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if hierarchy == "0" and controllers == "":
            base = root
        elif "cpu" in controllers.split(","):
            base = next((f"{root}/{d}" for d in (controllers, "cpu", "cpu,cpuacct")
                         if os.path.isdir(f"{root}/{d}")), None)
            if base is None:
                continue
        else:
            continue
        parts = [p for p in path.split("/") if p]
        # A quota anywhere above the process limits it too.
        dirs += [os.path.join(base, *parts[:i]) for i in range(len(parts), -1, -1)]
    return dirs or [root, f"{root}/cpu", f"{root}/cpu,cpuacct"]


def cgroup_quota(root: str = CGROUP_ROOT, proc_cgroup: str | None = None) -> float | None:
    """The CPUs this process's cgroup quota allows (the tightest of its cgroup's and ancestors'), or None."""
    if proc_cgroup is None:
        proc_cgroup = _read("/proc/self/cgroup")
    limits = []
    for d in _cgroup_dirs(proc_cgroup, root):
        q = quota_cpus(_read(f"{d}/cpu.max"), _read(f"{d}/cpu.cfs_quota_us"), _read(f"{d}/cpu.cfs_period_us"))
        if q is not None:
            limits.append(q)
    return min(limits) if limits else None


def default_threads(machine_cores: int, mask_cores: int, quota: float | None) -> tuple[int, str]:
    """(threads, where the number came from), the first of equals winning.

    A quota of 1.5 CPUs gives 1 thread: a second one would be throttled part of each period,
    stalling the other at every step.
    """
    limits = [(machine_cores, "physical cores"), (mask_cores, "affinity mask")]
    if quota is not None:
        limits.append((max(1, int(quota)), "cgroup quota"))
    n, source = min(limits, key=lambda limit: limit[0])
    return max(1, n), source


def detect() -> tuple[int, str]:
    """The default thread count of this process and its source."""
    machine = cores_of(list(range(os.cpu_count() or 1)))
    return default_threads(machine, cores_of(affinity_cpus()), cgroup_quota())
