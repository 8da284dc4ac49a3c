"""cgroup v1 (cgroupfs): one directory per controller hierarchy."""

import os

from ...errors import OCIRuntimeError
from . import devices as _devices
from .cgfs import make_dirs, procs, read, read_int, read_kv, remove_dirs, write

_R = "linux.resources"
#: what each part of linux.resources needs, in v1
NEEDS = {"memory": ("memory",), "cpu": ("cpu",), "pids": ("pids",), "blockIO": ("blkio",),
         "hugepageLimits": ("hugetlb",), "network": ("net_cls",), "rdma": ("rdma",), "devices": ("devices",)}


class Manager1:
    kind = "v1"

    def __init__(self, paths, created=None):
        self.paths = dict(paths)  # controller -> directory
        self.created = list(created or ())

    # -------------------------------------------------------------- before anything exists
    def check(self, res, linux=None):
        """Refuse what this host's v1 hierarchies cannot do, naming the field."""
        for key, val in (res or {}).items():
            if val in (None, [], {}):
                continue
            if key == "unified":
                raise OCIRuntimeError(f"{_R}.unified: needs cgroup v2, and this host has only cgroup v1")
            for ctrl in NEEDS.get(key, ()):
                if key == "network":
                    if val.get("classID") is not None and "net_cls" not in self.paths:
                        raise OCIRuntimeError(f"{_R}.network.classID: the net_cls controller is not mounted "
                                              "on this host")
                    if val.get("priorities") and "net_prio" not in self.paths:
                        raise OCIRuntimeError(f"{_R}.network.priorities: the net_prio controller is not "
                                              "mounted on this host")
                    continue
                if ctrl not in self.paths:
                    raise OCIRuntimeError(f"{_R}.{key}: the {ctrl} controller is not mounted on this host")
        cpu = (res or {}).get("cpu") or {}
        if (cpu.get("cpus") or cpu.get("mems")) and "cpuset" not in self.paths:
            raise OCIRuntimeError(f"{_R}.cpu.cpus: the cpuset controller is not mounted on this host")

    # -------------------------------------------------------------- lifecycle
    def apply(self, res, linux=None, made=None):
        """Create the directories and set every limit (devices from ``linux`` too); ``made()``
        is called once the directories exist (before the limits are written). On failure the
        caller removes what was made (``remove()``), once no process is left inside."""
        for ctrl, path in sorted(self.paths.items()):
            new = make_dirs(path)
            self.created.extend(new)
            if ctrl == "cpuset" and new:
                _cpuset_inherit(new)
        if made is not None:
            made()
        self.set(res or {}, initial=True)
        if linux is not None and "devices" in self.paths:
            self.set_devices(_devices.rules(linux))

    v2_path = None  # no unified directory to be born in

    def prepare(self):
        """Before the fork: nothing (the v1 directories are made by ``apply``)."""

    def join_self(self, placed=False):
        """Move the calling thread, which must be its process's only one, into every
        hierarchy: ``0`` written to ``tasks``.

        Moving a single thread that is the writer itself is the one migration the kernel
        makes without its global cgroup_threadgroup_rwsem; ``cgroup.procs`` (any process)
        takes that lock for writing, which costs an RCU grace period (5-20 ms measured
        here) when the lock was quiet. For a single-threaded process the result is the same."""
        done = set()
        for ctrl, path in self.paths.items():
            if path not in done:
                done.add(path)
                write(f"{path}/tasks", 0, f"cgroups ({ctrl})")

    def add_task(self, pid):
        done = set()
        for ctrl, path in self.paths.items():
            if path in done:
                continue
            done.add(path)
            write(f"{path}/cgroup.procs", pid, f"cgroups ({ctrl})")

    def pids(self):
        for ctrl in ("pids", "freezer", "memory", "cpu", "devices"):
            if ctrl in self.paths:
                return procs(self.paths[ctrl])
        for path in self.paths.values():
            return procs(path)
        return []

    def remove(self):
        errors = []
        for path in sorted(set(self.paths.values())):
            try:
                remove_dirs([], path)
            except OCIRuntimeError as e:
                errors.append(str(e))
        leaves = set(self.paths.values())
        remove_dirs([d for d in self.created or () if d not in leaves])  # the leaves are gone
        if errors:
            raise OCIRuntimeError(errors[0])

    def to_state(self):
        return {"kind": self.kind, "paths": self.paths, "created": self.created}

    # -------------------------------------------------------------- freezer
    def freeze(self):
        import time

        path = self._need("freezer", "pause")
        deadline = time.monotonic() + 10
        while True:
            write(f"{path}/freezer.state", "FROZEN", "freezer")
            for _ in range(100):
                if read(f"{path}/freezer.state") == "FROZEN":
                    return
                time.sleep(0.001)
            if time.monotonic() > deadline:
                self.thaw()
                raise OCIRuntimeError("pause: the freezer did not freeze the container within 10s")

    def thaw(self):
        path = self._need("freezer", "resume")
        write(f"{path}/freezer.state", "THAWED", "freezer")

    def frozen(self):
        path = self.paths.get("freezer")
        return bool(path) and read(f"{path}/freezer.state") in ("FROZEN", "FREEZING")

    def _need(self, ctrl, what):
        path = self.paths.get(ctrl)
        if not path or not os.path.isdir(path):
            raise OCIRuntimeError(f"{what}: the container has no {ctrl} cgroup")
        return path

    # -------------------------------------------------------------- limits
    def update(self, res):
        self.check(res)
        self.set(res, initial=False)

    def set(self, res, initial=False):
        p = self.paths
        mem = res.get("memory")
        if mem:
            _memory(p["memory"], mem, initial)
        cpu = res.get("cpu")
        if cpu:
            _cpu(p.get("cpu"), p.get("cpuset"), cpu)
        pids = res.get("pids")
        if pids and pids.get("limit") is not None:
            lim = pids["limit"]
            write(f"{p['pids']}/pids.max", "max" if lim <= 0 else lim, f"{_R}.pids.limit")
        bio = res.get("blockIO")
        if bio:
            _blkio(p["blkio"], bio)
        for i, h in enumerate(res.get("hugepageLimits") or ()):
            write(f"{p['hugetlb']}/hugetlb.{h['pageSize']}.limit_in_bytes", h["limit"],
                  f"{_R}.hugepageLimits[{i}]")
        net = res.get("network")
        if net:
            if net.get("classID") is not None:
                write(f"{p['net_cls']}/net_cls.classid", net["classID"], f"{_R}.network.classID")
            for i, pr in enumerate(net.get("priorities") or ()):
                write(f"{p['net_prio']}/net_prio.ifpriomap", f"{pr['name']} {pr['priority']}",
                      f"{_R}.network.priorities[{i}]")
        for dev, lim in (res.get("rdma") or {}).items():
            parts = [f"{name}={lim[k]}" for k, name in (("hcaHandles", "hca_handle"), ("hcaObjects", "hca_object"))
                     if lim.get(k) is not None]
            write(f"{p['rdma']}/rdma.max", f"{dev} {' '.join(parts)}", f"{_R}.rdma.{dev}")
        if not initial and res.get("devices") is not None and "devices" in p:
            self.set_devices([r for r in _devices.rules({"resources": res})])

    def set_devices(self, rule_list):
        path = self.paths["devices"]
        for f, line in _devices.v1_lines(rule_list):
            write(f"{path}/{f}", line, f"{_R}.devices ({f} {line})")

    # -------------------------------------------------------------- stats (runc's events format)
    def stats(self):
        p = self.paths
        out = {}
        cpu = {"usage": {}, "throttling": {}}
        acct = p.get("cpuacct")
        if acct:
            u = cpu["usage"]
            u["total"] = read_int(f"{acct}/cpuacct.usage")
            u["percpu"] = [int(x) for x in (read(f"{acct}/cpuacct.usage_percpu") or "").split()]
            u["percpu_kernel"] = [int(x) for x in (read(f"{acct}/cpuacct.usage_percpu_sys") or "").split()]
            u["percpu_user"] = [int(x) for x in (read(f"{acct}/cpuacct.usage_percpu_user") or "").split()]
            st = read_kv(f"{acct}/cpuacct.stat")
            tick = 10_000_000  # USER_HZ 100
            u["kernel"] = st.get("system", 0) * tick
            u["user"] = st.get("user", 0) * tick
        if p.get("cpu"):
            st = read_kv(f"{p['cpu']}/cpu.stat")
            cpu["throttling"] = {"periods": st.get("nr_periods", 0), "throttled_periods": st.get("nr_throttled", 0),
                                 "throttled_time": st.get("throttled_time", 0)}
        out["cpu"] = cpu
        if p.get("cpuset"):
            out["cpuset"] = {"cpus": _list(read(f"{p['cpuset']}/cpuset.cpus") or ""),
                             "mems": _list(read(f"{p['cpuset']}/cpuset.mems") or "")}
        m = p.get("memory")
        if m:
            raw = read_kv(f"{m}/memory.stat")
            mem = {"cache": raw.get("cache", 0), "raw": raw}
            for name, prefix in (("usage", "memory"), ("swap", "memory.memsw"), ("kernel", "memory.kmem"),
                                 ("kernelTCP", "memory.kmem.tcp")):
                mem[name] = {"limit": read_int(f"{m}/{prefix}.limit_in_bytes"),
                             "usage": read_int(f"{m}/{prefix}.usage_in_bytes"),
                             "max": read_int(f"{m}/{prefix}.max_usage_in_bytes"),
                             "failcnt": read_int(f"{m}/{prefix}.failcnt")}
            mem["use_hierarchy"] = read(f"{m}/memory.use_hierarchy") == "1"
            out["memory"] = mem
        if p.get("pids"):
            out["pids"] = {"current": read_int(f"{p['pids']}/pids.current"),
                           "limit": read_int(f"{p['pids']}/pids.max")}
        if p.get("blkio"):
            b = p["blkio"]
            out["blkio"] = {
                "ioServiceBytesRecursive": _blkio_stat(f"{b}/blkio.throttle.io_service_bytes_recursive"),
                "ioServicedRecursive": _blkio_stat(f"{b}/blkio.throttle.io_serviced_recursive"),
            }
        if p.get("hugetlb"):
            h = p["hugetlb"]
            out["hugetlb"] = {}
            for name in sorted(os.listdir(h)):
                if name.startswith("hugetlb.") and name.endswith(".usage_in_bytes"):
                    size = name.split(".")[1]
                    out["hugetlb"][size] = {"usage": read_int(f"{h}/{name}"),
                                            "max": read_int(f"{h}/hugetlb.{size}.max_usage_in_bytes"),
                                            "failcnt": read_int(f"{h}/hugetlb.{size}.failcnt")}
        return out


# ---------------------------------------------------------------- helpers


def _list(text):
    out = []
    for part in text.split(","):
        if "-" in part:
            a, b = part.split("-")
            out.extend(range(int(a), int(b) + 1))
        elif part:
            out.append(int(part))
    return out


def _blkio_stat(path):
    out = []
    for line in (read(path) or "").splitlines():
        f = line.split()
        if len(f) == 3 and ":" in f[0]:
            ma, mi = f[0].split(":")
            out.append({"major": int(ma), "minor": int(mi), "op": f[1], "value": int(f[2])})
    return out


def _cpuset_inherit(made):
    """A new v1 cpuset has no cpus and mems: copy the parent's, top-down (else joining fails)."""
    for d in made:
        parent = os.path.dirname(d)
        for f in ("cpuset.cpus", "cpuset.mems"):
            if not read(f"{d}/{f}"):
                write(f"{d}/{f}", read(f"{parent}/{f}") or "", f"cgroups (cpuset {f})")


def _memory(path, mem, initial):
    f = f"{_R}.memory"
    limit, swap = mem.get("limit"), mem.get("swap")
    if limit == -1 and swap is None:
        swap = -1
    if limit is not None and swap is not None:
        cur = read_int(f"{path}/memory.limit_in_bytes")
        order = (("memsw", swap), ("limit", limit)) if swap == -1 or cur < swap else \
            (("limit", limit), ("memsw", swap))
    else:
        order = (("limit", limit), ("memsw", swap))
    if mem.get("checkBeforeUpdate") and not initial and limit not in (None, -1):
        if read_int(f"{path}/memory.usage_in_bytes") > limit:
            raise OCIRuntimeError(f"{f}.limit: {limit} is below the container's current usage")
    for what, v in order:
        if v is None:
            continue
        if what == "limit":
            write(f"{path}/memory.limit_in_bytes", v, f"{f}.limit")
        else:
            if not os.path.exists(f"{path}/memory.memsw.limit_in_bytes"):
                raise OCIRuntimeError(f"{f}.swap: swap accounting is not enabled on this host")
            write(f"{path}/memory.memsw.limit_in_bytes", v, f"{f}.swap")
    if mem.get("reservation") is not None:
        write(f"{path}/memory.soft_limit_in_bytes", mem["reservation"], f"{f}.reservation")
    if mem.get("kernel") is not None:
        write(f"{path}/memory.kmem.limit_in_bytes", mem["kernel"], f"{f}.kernel")
    if mem.get("kernelTCP") is not None:
        write(f"{path}/memory.kmem.tcp.limit_in_bytes", mem["kernelTCP"], f"{f}.kernelTCP")
    if mem.get("swappiness") is not None:
        write(f"{path}/memory.swappiness", mem["swappiness"], f"{f}.swappiness")
    if mem.get("disableOOMKiller"):
        write(f"{path}/memory.oom_control", 1, f"{f}.disableOOMKiller")
    if mem.get("useHierarchy") is not None:
        write(f"{path}/memory.use_hierarchy", int(mem["useHierarchy"]), f"{f}.useHierarchy")


#: spec field -> v1 file, for the cpu controller
_CPU_FILES = (("shares", "cpu.shares"), ("period", "cpu.cfs_period_us"), ("quota", "cpu.cfs_quota_us"),
              ("burst", "cpu.cfs_burst_us"), ("realtimePeriod", "cpu.rt_period_us"),
              ("realtimeRuntime", "cpu.rt_runtime_us"), ("idle", "cpu.idle"))


def _cpu(path, cpuset, cpu):
    f = f"{_R}.cpu"
    for key, name in _CPU_FILES:
        if cpu.get(key) is not None:
            write(f"{path}/{name}", cpu[key], f"{f}.{key}")
    for key in ("cpus", "mems"):
        if cpu.get(key):
            write(f"{cpuset}/cpuset.{key}", cpu[key], f"{f}.{key}")


def _blkio(path, b):
    f = f"{_R}.blockIO"
    if b.get("weight") is not None:
        name = "blkio.weight" if os.path.exists(f"{path}/blkio.weight") else "blkio.bfq.weight"
        write(f"{path}/{name}", b["weight"], f"{f}.weight")
    if b.get("leafWeight") is not None:
        write(f"{path}/blkio.leaf_weight", b["leafWeight"], f"{f}.leafWeight")
    for i, d in enumerate(b.get("weightDevice") or ()):
        if d.get("weight") is not None:
            name = "blkio.weight_device" if os.path.exists(f"{path}/blkio.weight_device") else "blkio.bfq.weight_device"
            write(f"{path}/{name}", f"{d['major']}:{d['minor']} {d['weight']}", f"{f}.weightDevice[{i}]")
        if d.get("leafWeight") is not None:
            write(f"{path}/blkio.leaf_weight_device", f"{d['major']}:{d['minor']} {d['leafWeight']}",
                  f"{f}.weightDevice[{i}].leafWeight")
    for key, name in (("throttleReadBpsDevice", "read_bps_device"), ("throttleWriteBpsDevice", "write_bps_device"),
                      ("throttleReadIOPSDevice", "read_iops_device"),
                      ("throttleWriteIOPSDevice", "write_iops_device")):
        for i, d in enumerate(b.get(key) or ()):
            write(f"{path}/blkio.throttle.{name}", f"{d['major']}:{d['minor']} {d['rate']}", f"{f}.{key}[{i}]")
