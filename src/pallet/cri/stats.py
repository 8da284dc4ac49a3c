"""Container and pod statistics from the cgroup files (v1 controllers, or the v2 unified
hierarchy) and the writable layer, as the kubelet's summary API and ``crictl stats`` read them.

``usage_nano_cores`` is the CPU use between two samples: the previous one of each container and
pod is kept in memory (forgotten with it); a first sample's is the average since the start.
"""

from __future__ import annotations

import os
import time

from .._fs import read_int

CGROUP = "/sys/fs/cgroup"
_last: dict = {}


def _kv(path: str) -> dict:
    out = {}
    try:
        with open(path) as f:
            for line in f:
                k, _, v = line.partition(" ")
                try:
                    out[k] = int(v)
                except ValueError:
                    pass
    except OSError:
        pass
    return out


def _v2() -> bool:
    return os.path.exists(os.path.join(CGROUP, "cgroup.controllers"))


def cgroup_usage(path: str) -> dict:
    """CPU (ns), memory and process figures of the cgroup ``path`` (as in cgroupsPath), None
    where a file is missing."""
    rel = path.strip("/")
    if not rel or ".." in rel.split("/"):
        return {}
    if _v2():
        d = os.path.join(CGROUP, rel)
        cpu = _kv(os.path.join(d, "cpu.stat")).get("usage_usec")
        mem = _kv(os.path.join(d, "memory.stat"))
        usage = read_int(os.path.join(d, "memory.current"))
        inactive = mem.get("inactive_file", 0)
        return {"cpu_ns": cpu * 1000 if cpu is not None else None, "memory_usage": usage,
                "working_set": max(0, usage - inactive) if usage is not None else None,
                "rss": mem.get("anon"), "page_faults": mem.get("pgfault"), "major_page_faults": mem.get("pgmajfault"),
                "limit": read_int(os.path.join(d, "memory.max")), "pids": read_int(os.path.join(d, "pids.current"))}
    cpu = read_int(os.path.join(CGROUP, "cpuacct", rel, "cpuacct.usage"))
    md = os.path.join(CGROUP, "memory", rel)
    usage = read_int(os.path.join(md, "memory.usage_in_bytes"))
    mem = _kv(os.path.join(md, "memory.stat"))
    inactive = mem.get("total_inactive_file", 0)
    return {"cpu_ns": cpu, "memory_usage": usage,
            "working_set": max(0, usage - inactive) if usage is not None else None,
            "rss": mem.get("total_rss"), "page_faults": mem.get("total_pgfault"),
            "major_page_faults": mem.get("total_pgmajfault"),
            "limit": read_int(os.path.join(md, "memory.limit_in_bytes")),
            "pids": read_int(os.path.join(CGROUP, "pids", rel, "pids.current"))}


def nano_cores(key: str, cpu_ns: int | None, since_ns: int | None = None) -> int | None:
    """CPU use in nanocores since the last sample of ``key``; the first sample's is the average
    since ``since_ns`` (wall clock: the container's start), if given."""
    if cpu_ns is None:
        return None
    now = time.monotonic_ns()
    prev = _last.get(key)
    _last[key] = (now, cpu_ns)
    # at most every processor's time: the cgroup's count also holds what ran before the start
    # (the runtime's create, the init), which a first sample just after the start would put
    # into a few milliseconds
    most = (os.cpu_count() or 1) * 1_000_000_000
    if prev is None:
        elapsed = time.time_ns() - since_ns if since_ns else 0
        return min(most, int(cpu_ns * 1_000_000_000 / elapsed)) if elapsed > 0 else None
    if now <= prev[0] or cpu_ns < prev[1]:
        return None
    return min(most, int((cpu_ns - prev[1]) * 1_000_000_000 / (now - prev[0])))


def forget(key: str) -> None:
    _last.pop(key, None)


def net_dev(pid: int) -> list[dict]:
    """Interfaces of the network namespace of ``pid`` but lo: name, rx/tx bytes and errors."""
    out = []
    try:
        with open(f"/proc/{pid}/net/dev") as f:
            lines = f.read(1 << 16).splitlines()[2:]
    except OSError:
        return out
    for line in lines:
        name, _, rest = line.partition(":")
        name = name.strip()
        f = rest.split()
        if name == "lo" or len(f) < 11:
            continue
        out.append({"name": name, "rx_bytes": int(f[0]), "rx_errors": int(f[2]), "tx_bytes": int(f[8]),
                    "tx_errors": int(f[10])})
    return out
