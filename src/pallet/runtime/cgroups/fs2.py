"""cgroup v2: one directory in the unified hierarchy.

On a unified host this carries every controller; in hybrid mode (``hybrid=True``) it is
the container's directory under ``/sys/fs/cgroup/unified`` and carries only what that
hierarchy has (``hugetlb`` on the machines we know) plus ``linux.resources.unified``.

Device rules on a unified host are an eBPF program (BPF_PROG_TYPE_CGROUP_DEVICE, see
``ebpf``) attached to the container's directory; in hybrid mode the v1 devices controller
enforces them (``fs1``).
"""

import os

from ...errors import OCIRuntimeError
from .cgfs import make_dirs, procs, read, read_int, read_kv, remove_dirs, write

_R = "linux.resources"
#: part of linux.resources -> v2 controller
CONTROLLER = {"memory": "memory", "cpu": "cpu", "pids": "pids", "blockIO": "io", "hugepageLimits": "hugetlb",
              "rdma": "rdma"}


def _mount_of(path):
    from .cgfs import layout

    v2 = layout().v2
    return v2[0] if v2 else "/sys/fs/cgroup"


def shares_to_weight(shares):
    """runc's conversion of cpu.shares (2..262144) to cpu.weight (1..10000)."""
    if not shares:
        return 0
    return 1 + ((shares - 2) * 9999) // 262142


class Manager2:
    kind = "v2"

    def __init__(self, path, hybrid=False, created=None):
        self.path = path
        self.hybrid = hybrid
        self.created = list(created or ())
        self.mount = _mount_of(path)

    def available(self):
        """Controllers the parent directory can hand down (``cgroup.controllers``)."""
        d = self.path
        while d != self.mount and not os.path.isdir(d):
            d = os.path.dirname(d)
        if d == self.path:
            d = os.path.dirname(d)
        return set((read(f"{d}/cgroup.controllers") or read(f"{self.mount}/cgroup.controllers") or "").split())

    def _wanted(self, res):
        """``{controller: field}`` the resources need."""
        out = {}
        for key, val in (res or {}).items():
            if val in (None, [], {}):
                continue
            if key in CONTROLLER:
                out[CONTROLLER[key]] = f"{_R}.{key}"
            if key == "cpu" and (val.get("cpus") or val.get("mems")):
                out["cpuset"] = f"{_R}.cpu.cpus"
            if key == "unified":
                for k in val:
                    ctrl = k.split(".", 1)[0]
                    if ctrl != "cgroup":
                        out[ctrl] = f"{_R}.unified.{k}"
        return out

    def check(self, res, linux=None):
        res = res or {}
        if not self.hybrid:
            if res.get("network"):
                raise OCIRuntimeError(f"{_R}.network: cgroup v2 has no net_cls/net_prio controllers")
        avail = self.available()
        for ctrl, field in self._wanted(res).items():
            if ctrl not in avail:
                where = "the cgroup v2 hierarchy (hybrid mode: it holds only " + \
                    (", ".join(sorted(avail)) or "nothing") + ")" if self.hybrid else "cgroup v2 here"
                raise OCIRuntimeError(f"{field}: the {ctrl} controller is not available in {where}")
        for k in (res.get("unified") or {}):
            if "/" in k or k.startswith(".") or not k:
                raise OCIRuntimeError(f"{_R}.unified.{k}: not a cgroup file name")

    def apply(self, res, linux=None, made=None):
        """As ``Manager1.apply``: on failure the caller removes what was made."""
        self.created.extend(make_dirs(self.path))
        if made is not None:
            made()
        self._enable(self._wanted(res or {}))
        self.set(res or {})
        if not self.hybrid and linux is not None:
            from . import devices, ebpf

            ebpf.attach(self.path, devices.rules(linux))

    def _enable(self, wanted):
        """``+ctrl`` in cgroup.subtree_control of every ancestor, top-down."""
        if not wanted:
            return
        chain = []
        d = os.path.dirname(self.path)
        while d.startswith(self.mount):
            chain.append(d)
            if d == self.mount:
                break
            d = os.path.dirname(d)
        for d in reversed(chain):
            have = set((read(f"{d}/cgroup.subtree_control") or "").split())
            for ctrl, field in wanted.items():
                if ctrl not in have:
                    write(f"{d}/cgroup.subtree_control", f"+{ctrl}", field)

    @property
    def v2_path(self):
        return self.path

    def prepare(self):
        """Before the fork: the directory, for the child to be born in (``fork_in``)."""
        self.created.extend(make_dirs(self.path))

    def join_self(self, placed=False):
        """The calling process into the directory, unless it was born there (``placed``)."""
        if not placed:
            write(f"{self.path}/cgroup.procs", 0, "cgroups (unified)")

    def add_task(self, pid):
        write(f"{self.path}/cgroup.procs", pid, "cgroups (unified)")

    def pids(self):
        return procs(self.path)

    def remove(self):
        try:
            remove_dirs([], self.path)
        finally:
            remove_dirs([d for d in self.created or () if d != self.path])  # the leaf is gone

    def to_state(self):
        return {"kind": self.kind, "path": self.path, "created": self.created}

    # -------------------------------------------------------------- freezer (core in v2)
    def freeze(self):
        import time

        write(f"{self.path}/cgroup.freeze", "1", "freezer")
        deadline = time.monotonic() + 10
        while "frozen 1" not in (read(f"{self.path}/cgroup.events") or ""):
            if time.monotonic() > deadline:
                self.thaw()
                raise OCIRuntimeError("pause: the container did not freeze within 10s")
            time.sleep(0.001)

    def thaw(self):
        write(f"{self.path}/cgroup.freeze", "0", "freezer")

    def frozen(self):
        return read(f"{self.path}/cgroup.freeze") == "1"

    # -------------------------------------------------------------- limits
    def update(self, res):
        self.check(res)
        self._enable(self._wanted(res))
        self.set(res)
        if not self.hybrid and res.get("devices") is not None:
            from . import devices, ebpf

            ebpf.attach(self.path, devices.rules({"resources": res}))

    def set(self, res):
        p = self.path
        if not self.hybrid:
            mem = res.get("memory") or {}
            f = f"{_R}.memory"
            if mem.get("limit") is not None:
                write(f"{p}/memory.max", "max" if mem["limit"] == -1 else mem["limit"], f + ".limit")
            if mem.get("reservation") is not None:
                write(f"{p}/memory.low", mem["reservation"], f + ".reservation")
            if mem.get("swap") is not None:  # the spec's swap is memory+swap; v2 counts swap alone
                sw = mem["swap"]
                if sw != -1 and mem.get("limit") not in (None, -1):
                    sw -= mem["limit"]
                write(f"{p}/memory.swap.max", "max" if sw == -1 else max(sw, 0), f + ".swap")
            if mem.get("kernel") is not None or mem.get("kernelTCP") is not None:
                raise OCIRuntimeError(f"{f}.kernel: cgroup v2 has no kernel memory limit")
            if mem.get("disableOOMKiller"):
                raise OCIRuntimeError(f"{f}.disableOOMKiller: cgroup v2 cannot disable the OOM killer")
            if mem.get("swappiness") is not None:
                raise OCIRuntimeError(f"{f}.swappiness: cgroup v2 has no per-cgroup swappiness")
            cpu = res.get("cpu") or {}
            f = f"{_R}.cpu"
            if cpu.get("shares"):
                write(f"{p}/cpu.weight", shares_to_weight(cpu["shares"]), f + ".shares")
            if cpu.get("quota") is not None or cpu.get("period") is not None:
                q = cpu.get("quota")
                write(f"{p}/cpu.max", f"{'max' if q in (None, -1) else q} {cpu.get('period') or 100000}",
                      f + ".quota")
            if cpu.get("burst") is not None:
                write(f"{p}/cpu.max.burst", cpu["burst"], f + ".burst")
            if cpu.get("idle") is not None:
                write(f"{p}/cpu.idle", cpu["idle"], f + ".idle")
            if cpu.get("realtimeRuntime") or cpu.get("realtimePeriod"):
                raise OCIRuntimeError(f"{f}.realtimeRuntime: cgroup v2 has no realtime cpu controls")
            if cpu.get("cpus"):
                write(f"{p}/cpuset.cpus", cpu["cpus"], f + ".cpus")
            if cpu.get("mems"):
                write(f"{p}/cpuset.mems", cpu["mems"], f + ".mems")
            pids = res.get("pids") or {}
            if pids.get("limit") is not None:
                write(f"{p}/pids.max", "max" if pids["limit"] <= 0 else pids["limit"], f"{_R}.pids.limit")
            bio = res.get("blockIO") or {}
            f = f"{_R}.blockIO"
            if bio.get("weight") is not None:  # blkio weight 10..1000 -> io weight 1..10000
                write(f"{p}/io.weight", 1 + (bio["weight"] - 10) * 9999 // 990, f + ".weight")
            for key, name in (("throttleReadBpsDevice", "rbps"), ("throttleWriteBpsDevice", "wbps"),
                              ("throttleReadIOPSDevice", "riops"), ("throttleWriteIOPSDevice", "wiops")):
                for i, d in enumerate(bio.get(key) or ()):
                    write(f"{p}/io.max", f"{d['major']}:{d['minor']} {name}={d['rate']}", f"{f}.{key}[{i}]")
        for i, h in enumerate(res.get("hugepageLimits") or ()):
            write(f"{p}/hugetlb.{h['pageSize']}.max", h["limit"], f"{_R}.hugepageLimits[{i}]")
        for k, v in (res.get("unified") or {}).items():
            write(f"{p}/{k}", v, f"{_R}.unified.{k}")

    # -------------------------------------------------------------- stats
    def stats(self):
        p = self.path
        out = {}
        if not self.hybrid:
            st = read_kv(f"{p}/cpu.stat")
            out["cpu"] = {"usage": {"total": st.get("usage_usec", 0) * 1000, "kernel": st.get("system_usec", 0) * 1000,
                                    "user": st.get("user_usec", 0) * 1000},
                          "throttling": {"periods": st.get("nr_periods", 0),
                                         "throttled_periods": st.get("nr_throttled", 0),
                                         "throttled_time": st.get("throttled_usec", 0) * 1000}}
            raw = read_kv(f"{p}/memory.stat")
            out["memory"] = {"cache": raw.get("file", 0), "raw": raw,
                             "usage": {"usage": read_int(f"{p}/memory.current"), "limit": read_int(f"{p}/memory.max"),
                                       "max": read_int(f"{p}/memory.peak"),
                                       "failcnt": read_kv(f"{p}/memory.events").get("max", 0)},
                             "swap": {"usage": read_int(f"{p}/memory.swap.current"),
                                      "limit": read_int(f"{p}/memory.swap.max")}}
            out["pids"] = {"current": read_int(f"{p}/pids.current"), "limit": read_int(f"{p}/pids.max")}
        hug = {}
        try:
            names = sorted(os.listdir(p))
        except OSError:
            names = []
        for name in names:
            if name.startswith("hugetlb.") and name.endswith(".current"):
                size = name.split(".")[1]
                hug[size] = {"usage": read_int(f"{p}/{name}"), "max": read_int(f"{p}/hugetlb.{size}.max"),
                             "failcnt": read_kv(f"{p}/hugetlb.{size}.events").get("max", 0)}
        if hug:
            out["hugetlb"] = hug
        return out
