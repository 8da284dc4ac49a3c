"""A running container's processes and resource use, read from ``/proc`` and its cgroups:
podman's ``top`` (psgo's descriptors) and ``stats``.

- The processes are those in the container's PID namespace (its init's ``/proc/PID/ns/pid``);
  PIDs are shown as the container sees them (``NSpid``), user and group names come from the
  container's own ``/etc/passwd`` and ``/etc/group``, read by fd inside its root filesystem.
- The figures come from the cgroups its init is in (``/proc/PID/cgroup``), v1 controllers
  or the v2 hierarchy (this machine's hybrid layout has both): CPU time (``cpuacct.usage`` or
  ``cpu.stat``), memory (``memory.usage_in_bytes`` or ``memory.current``, less inactive file
  pages, as podman's), its limit (the host's memory when there is none), block I/O
  (``blkio.throttle.io_service_bytes`` or ``io.stat``), ``pids.current``; network bytes from
  ``/proc/PID/net/dev`` (the container's namespace), every interface but ``lo``.
"""

from __future__ import annotations

import os

from ..errors import UsageError

_HZ = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

#: psgo's descriptors (podman top): name -> header; the AIX ``%x`` forms map to names
DESCRIPTORS = {
    "args": "COMMAND", "capamb": "AMBIENT CAPS", "capbnd": "BOUNDING CAPS", "capeff": "EFFECTIVE CAPS",
    "capinh": "INHERITED CAPS", "capprm": "PERMITTED CAPS", "comm": "COMMAND", "etime": "ELAPSED",
    "group": "GROUP", "hgroup": "HGROUP", "hpid": "HPID", "huser": "HUSER", "nice": "NI", "pcpu": "%CPU",
    "pgid": "PGID", "pid": "PID", "ppid": "PPID", "rgroup": "RGROUP", "ruser": "RUSER", "rss": "RSS",
    "seccomp": "SECCOMP", "state": "STATE", "time": "TIME", "tty": "TTY", "user": "USER", "vsz": "VSZ",
}
AIX = {"%C": "pcpu", "%G": "group", "%P": "ppid", "%U": "ruser", "%a": "args", "%c": "comm", "%g": "rgroup",
       "%n": "nice", "%p": "pid", "%r": "pgid", "%t": "etime", "%u": "user", "%x": "time", "%y": "tty", "%z": "vsz"}
DEFAULT_DESCRIPTORS = ("user", "pid", "ppid", "pcpu", "etime", "tty", "time", "args")


def parse_descriptors(words: list[str]) -> list[str]:
    """podman's: separate words or comma-separated, AIX forms allowed; an unknown one is an
    error naming it (podman would run ``ps`` in the container instead: pallet does not)."""
    out = []
    for w in ",".join(words).split(","):
        w = w.strip()
        if not w:
            continue
        name = AIX.get(w, w)
        if name not in DESCRIPTORS:
            raise UsageError(f"unknown descriptor: {w} (pallet top takes psgo's descriptors: "
                             f"{', '.join(sorted(DESCRIPTORS))})")
        out.append(name)
    return out or list(DEFAULT_DESCRIPTORS)


def go_duration(ns: int) -> str:
    """Go's ``time.Duration.String()``: ``944.946102ms``, ``10.4739s``, ``2m3.5s``, ``0s``."""
    if ns == 0:
        return "0s"
    neg, ns = ns < 0, abs(ns)
    if ns < 1000:
        s = f"{ns}ns"
    elif ns < 1_000_000:
        s = _frac(ns, 1000) + "µs"
    elif ns < 1_000_000_000:
        s = _frac(ns, 1_000_000) + "ms"
    else:
        h, rest = divmod(ns, 3600 * 10**9)
        m, rest = divmod(rest, 60 * 10**9)
        s = _frac(rest, 10**9) + "s"
        if h:
            s = f"{h}h{m}m{s}"
        elif m:
            s = f"{m}m{s}"
    return "-" + s if neg else s


def _frac(v: int, unit: int) -> str:
    whole, part = divmod(v, unit)
    if not part:
        return str(whole)
    digits = len(str(unit)) - 1
    return f"{whole}.{str(part).rjust(digits, '0').rstrip('0')}"


def human_size(n: float) -> str:
    """go-units' HumanSizeWithPrecision(n, 4): ``442.4kB``, ``25.28GB``, ``0B``."""
    units = ("B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB")
    i = 0
    n = float(n)
    while n >= 1000 and i < len(units) - 1:
        n /= 1000
        i += 1
    return f"{n:.4g}{units[i]}"


# -- /proc -------------------------------------------------------------------------------------

def _read(path: str, limit: int = 1 << 16) -> str:
    with open(path, "rb") as f:
        return f.read(limit).decode("utf-8", "replace")


def _status(pid: int) -> dict:
    out = {}
    for line in _read(f"/proc/{pid}/status").splitlines():
        k, _, v = line.partition(":")
        out[k] = v.strip()
    return out


def _stat(pid: int) -> list[str]:
    text = _read(f"/proc/{pid}/stat")
    head, _, tail = text.rpartition(")")
    return [head.split(" (", 1)[0], head.split(" (", 1)[1] if " (" in head else ""] + tail.split()
    # [pid, comm, state, ppid, pgrp, session, tty_nr, ...] as proc(5) numbers them from 1


def _boot_time() -> float:
    for line in _read("/proc/stat").splitlines():
        if line.startswith("btime "):
            return float(line.split()[1])
    return 0.0


def pids_in_namespace(init_pid: int) -> list[int]:
    """The host PIDs in the PID namespace of ``init_pid`` (the container's processes)."""
    try:
        ns = os.stat(f"/proc/{init_pid}/ns/pid")
    except OSError:
        return []
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            st = os.stat(f"/proc/{name}/ns/pid")
        except OSError:
            continue
        if (st.st_dev, st.st_ino) == (ns.st_dev, ns.st_ino):
            out.append(int(name))
    return sorted(out)


class _Proc:
    def __init__(self, pid: int):
        self.pid = pid
        self.status = _status(pid)
        self.stat = _stat(pid)
        try:
            raw = open(f"/proc/{pid}/cmdline", "rb").read(1 << 16)
        except OSError:
            raw = b""
        self.cmdline = raw.replace(b"\0", b" ").decode("utf-8", "replace")
        try:
            self.comm = _read(f"/proc/{pid}/comm").rstrip("\n")
        except OSError:
            self.comm = self.stat[1]

    def nspid(self) -> int:
        return int((self.status.get("NSpid") or str(self.pid)).split()[-1])

    def field(self, n: int) -> str:
        """proc(5)'s stat field ``n`` (1-based)."""
        return self.stat[n - 1]


def _caps(mask_hex: str) -> str:
    from ..oci.capabilities import NAMES

    mask = int(mask_hex or "0", 16)
    names = [n.removeprefix("CAP_") for i, n in enumerate(NAMES) if mask >> i & 1]
    if not names:
        return "none"
    if all(mask >> i & 1 for i in range(len(NAMES))):
        return "full"
    return ",".join(names)


def top(init_pid: int, descriptors: list[str], users: dict, groups: dict) -> list[list[str]]:
    """One row per process of the container (``descriptors`` from :func:`parse_descriptors`);
    ``users``/``groups``: the container's id -> name tables."""
    import time

    now = time.time()
    boot = _boot_time()
    procs = []
    for pid in pids_in_namespace(init_pid):
        try:
            procs.append(_Proc(pid))
        except (OSError, IndexError):
            continue  # it exited meanwhile
    ns_of = {p.pid: p.nspid() for p in procs}
    host: dict = {}  # the host's passwd and group, read when a descriptor needs them
    rows = []
    for p in procs:
        row = []
        for d in descriptors:
            if d == "args":
                v = p.cmdline if p.cmdline else f"[{p.comm}]"
            elif d == "comm":
                v = p.comm
            elif d in ("etime", "pcpu", "time"):
                start = boot + int(p.field(22)) / _HZ
                elapsed = max(now - start, 1e-9)
                cpu = (int(p.field(14)) + int(p.field(15))) / _HZ
                v = go_duration(int(elapsed * 1e9)) if d == "etime" else \
                    go_duration(int(cpu * 1e9)) if d == "time" else f"{cpu / elapsed * 100:.3f}"
            elif d in ("user", "ruser", "huser", "group", "rgroup", "hgroup"):
                users_kind = d.endswith("user")
                n = int(p.status.get("Uid" if users_kind else "Gid", "0 0").split()[0 if d[0] == "r" else 1])
                if d[0] == "h":
                    if d not in host:
                        host[d] = _host_db("/etc/passwd" if users_kind else "/etc/group")
                    v = host[d].get(n, str(n))
                else:
                    v = (users if users_kind else groups).get(n, str(n))
            elif d == "pid":
                v = str(ns_of[p.pid])
            elif d == "hpid":
                v = str(p.pid)
            elif d == "ppid":
                v = str(ns_of.get(int(p.field(4)), 0))
            elif d == "pgid":
                v = str(ns_of.get(int(p.field(5)), 0))
            elif d == "nice":
                v = p.field(19)
            elif d == "state":
                v = p.field(3)
            elif d == "tty":
                v = _tty(int(p.field(7)))
            elif d == "vsz":
                v = str(int(p.field(23)) // 1024)
            elif d == "rss":
                v = str(int(p.field(24)) * (os.sysconf("SC_PAGE_SIZE") // 1024))
            elif d == "seccomp":
                v = {"0": "disabled", "1": "strict", "2": "filter"}.get(p.status.get("Seccomp", ""), "?")
            else:  # capabilities
                v = _caps(p.status.get({"capamb": "CapAmb", "capbnd": "CapBnd", "capeff": "CapEff",
                                        "capinh": "CapInh", "capprm": "CapPrm"}[d], "0"))
            row.append(v)
        rows.append(row)
    return rows


def _tty(nr: int) -> str:
    if nr == 0:
        return "?"
    major, minor = os.major(nr), os.minor(nr)
    if 136 <= major <= 143:
        return f"pts/{(major - 136) * 256 + minor}"
    if major == 4 and minor < 64:
        return f"tty{minor}"
    if major == 5 and minor == 1:
        return "console"
    return "?"


def _host_db(path: str) -> dict:
    out = {}
    try:
        for line in _read(path, 4 << 20).splitlines():
            f = line.split(":")
            if len(f) > 2 and f[2].isdigit():
                out.setdefault(int(f[2]), f[0])
    except OSError:
        pass
    return out


def id_names(text: str | None) -> dict:
    """A passwd or group file's text as id -> name (the first name of an id wins)."""
    out = {}
    for line in (text or "").splitlines():
        f = line.split(":")
        if len(f) > 2 and f[2].isascii() and f[2].isdigit():
            out.setdefault(int(f[2]), f[0])
    return out


# -- cgroups -----------------------------------------------------------------------------------

def _cgroup_mounts() -> dict:
    """controller (or "" for the v2 hierarchy) -> mount point."""
    out = {}
    for line in _read("/proc/self/mountinfo", 1 << 20).splitlines():
        left, _, right = line.partition(" - ")
        f, r = left.split(), right.split()
        if len(r) < 3 or len(f) < 5:
            continue
        if r[0] == "cgroup2":
            out.setdefault("", f[4])
        elif r[0] == "cgroup":
            for opt in r[2].split(","):
                out.setdefault(opt, f[4])
    return out


def cgroup_roots() -> list[str]:
    """Every mounted cgroup hierarchy's mount point (v2; each v1 controller and the hybrid
    layout's unified tree)."""
    return sorted(set(_cgroup_mounts().values()))


def cgroup_dirs(pid: int) -> dict:
    """The cgroup directories of ``pid``: controller -> directory ("" for v2)."""
    mounts = _cgroup_mounts()
    out = {}
    for line in _read(f"/proc/{pid}/cgroup").splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, ctrls, path = parts
        for c in (ctrls.split(",") if ctrls else [""]):
            base = mounts.get(c)
            if base:
                out[c] = os.path.join(base, path.lstrip("/"))
    return out


def _int_file(path: str) -> int | None:
    try:
        v = _read(path, 64).strip()
    except OSError:
        return None
    if v == "max":
        return None
    try:
        return int(v)
    except ValueError:
        return None


def _keyed(path: str) -> dict:
    out = {}
    try:
        for line in _read(path).splitlines():
            k, _, v = line.partition(" ")
            if v.strip().lstrip("-").isdigit():
                out[k] = int(v)
    except OSError:
        pass
    return out


def _host_memory() -> int:
    for line in _read("/proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    return 0


def stats(init_pid: int) -> dict:
    """The container's figures now: cpu_ns, mem_usage, mem_limit, net_rx, net_tx, block_read,
    block_write, pids."""
    dirs = cgroup_dirs(init_pid)
    v2 = dirs.get("")

    def pick(ctrl, v1_file, v2_file=None):
        if ctrl in dirs and v1_file:
            return os.path.join(dirs[ctrl], v1_file)
        if v2 and v2_file:
            return os.path.join(v2, v2_file)
        return None

    out = {}
    p = pick("cpuacct", "cpuacct.usage")
    if p and os.path.exists(p):
        out["cpu_ns"] = _int_file(p) or 0
    else:
        out["cpu_ns"] = _keyed(os.path.join(v2, "cpu.stat")).get("usage_usec", 0) * 1000 if v2 else 0
    if "memory" in dirs:
        m = dirs["memory"]
        usage = _int_file(os.path.join(m, "memory.usage_in_bytes")) or 0
        inactive = _keyed(os.path.join(m, "memory.stat")).get("total_inactive_file", 0)
        limit = _int_file(os.path.join(m, "memory.limit_in_bytes"))
    elif v2:
        usage = _int_file(os.path.join(v2, "memory.current")) or 0
        inactive = _keyed(os.path.join(v2, "memory.stat")).get("inactive_file", 0)
        limit = _int_file(os.path.join(v2, "memory.max"))
    else:
        usage = inactive = 0
        limit = None
    host = _host_memory()
    out["mem_usage"] = max(usage - inactive, 0) if inactive < usage else usage
    out["mem_limit"] = limit if limit and limit < host else host
    rd = wr = 0
    if "blkio" in dirs:
        for line in _read(os.path.join(dirs["blkio"], "blkio.throttle.io_service_bytes")).splitlines() \
                if os.path.exists(os.path.join(dirs["blkio"], "blkio.throttle.io_service_bytes")) else []:
            f = line.split()
            if len(f) == 3 and f[1] == "Read":
                rd += int(f[2])
            elif len(f) == 3 and f[1] == "Write":
                wr += int(f[2])
    elif v2 and os.path.exists(os.path.join(v2, "io.stat")):
        for line in _read(os.path.join(v2, "io.stat")).splitlines():
            for kv in line.split()[1:]:
                k, _, v = kv.partition("=")
                if k == "rbytes":
                    rd += int(v)
                elif k == "wbytes":
                    wr += int(v)
    out["block_read"], out["block_write"] = rd, wr
    p = pick("pids", "pids.current", "pids.current")
    n = _int_file(p) if p else None
    out["pids"] = n if n is not None else len(pids_in_namespace(init_pid))  # the root cgroup has no pids.current
    rx = tx = 0
    try:
        for line in _read(f"/proc/{init_pid}/net/dev").splitlines()[2:]:
            name, _, rest = line.partition(":")
            f = rest.split()
            if name.strip() != "lo" and len(f) >= 9:
                rx += int(f[0])
                tx += int(f[8])
    except OSError:
        pass
    out["net_rx"], out["net_tx"] = rx, tx
    return out
