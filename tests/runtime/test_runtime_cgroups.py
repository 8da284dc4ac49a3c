"""pallet-runtime cgroups on this host's hybrid layout (v1 controllers + the v2 unified mount
holding hugetlb): limits read back from the kernel, devices enforced, cgroupsPath, pause/resume,
update, events, and nothing left behind. The v2 manager is driven directly on the unified mount
as far as the host allows."""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest

from pallet.errors import OCIRuntimeError
from pallet.runtime import cgroups
from test_runtime_helpers import load_config, save_config

V1 = "/sys/fs/cgroup"
UNIFIED = "/sys/fs/cgroup/unified"


def configure(bundle, args, resources=None, **linux):
    cfg = load_config(bundle)
    cfg["process"]["args"] = list(args)
    if resources:
        cfg["linux"]["resources"].update(resources)
    cfg["linux"].update(linux)
    save_config(bundle, cfg)
    return cfg


def own(ctrl):
    for line in open("/proc/self/cgroup"):
        _, ctrls, path = line.rstrip("\n").split(":", 2)
        if ctrl in ctrls.split(",") or (ctrl == "" and not ctrls):
            return path
    raise AssertionError(ctrl)


def cg_dir(ctrl, rel):
    """Where a relative cgroupsPath lands for ``ctrl`` (below this process's own cgroup)."""
    base = UNIFIED if ctrl == "" else f"{V1}/{ctrl}"
    return base + (own(ctrl).rstrip("/") + "/" + rel if not rel.startswith("/") else rel)


def read(path):
    with open(path) as f:
        return f.read().strip()


def wait_status(rt, cid, status, timeout=5):
    deadline = time.monotonic() + timeout
    while rt.state(cid)["status"] != status:
        assert time.monotonic() < deadline, rt.state(cid)
        time.sleep(0.02)


def blkio_weight_file():
    """The v1 weight file this host's kernel offers (BFQ's, or CFQ's on old kernels), or None:
    without an I/O scheduler that has weights, blockIO.weight must be refused clearly."""
    for name in ("blkio.bfq.weight", "blkio.weight"):
        if os.path.exists(f"{V1}/blkio/{name}"):
            return name
    return None


def a_block_device():
    devs = sorted(os.listdir("/sys/dev/block"))
    return "254:0" if "254:0" in devs else devs[0]


def assert_weight_refused(rt, bundle, cid):
    """No weight file here: create fails in one line naming the field, and leaves nothing."""
    cfg = load_config(bundle)
    cfg["linux"]["resources"]["blockIO"] = {"weight": 200}
    cfg["linux"]["cgroupsPath"] = f"pallet-test/{cid}"
    save_config(bundle, cfg)
    r = rt.create(cid, bundle)
    assert r.returncode == 1 and "linux.resources.blockIO.weight" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr, r.stderr
    assert not os.path.exists(os.path.join(rt.root, cid))
    for ctrl in ("blkio", "pids", "memory", ""):
        assert not os.path.exists(cg_dir(ctrl, f"pallet-test/{cid}"))


def hugetlb_2mb():
    """Does this host offer 2MB huge pages through the unified hierarchy's hugetlb controller?"""
    try:
        return os.path.isdir("/sys/kernel/mm/hugepages/hugepages-2048kB") and \
            "hugetlb" in read(f"{UNIFIED}/cgroup.controllers").split()
    except OSError:
        return False


def test_host_layout_is_hybrid():
    lay = cgroups.layout()
    assert lay.mode == "hybrid"
    assert {"memory", "cpu", "cpuset", "pids", "blkio", "devices", "freezer"} <= set(lay.v1)
    assert lay.v2[0] == UNIFIED


def test_limits_written_and_read_back_in_the_container(rt, bundle):
    weight = blkio_weight_file()
    if weight is None:  # no BFQ (nor CFQ) here: refused clearly, then the rest without it
        assert_weight_refused(rt, bundle, "limw")
    major, minor = (int(x) for x in a_block_device().split(":"))
    res = {"memory": {"limit": 64 << 20, "reservation": 32 << 20, "swappiness": 10},
           "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0", "mems": "0"},
           "pids": {"limit": 32},
           "blockIO": {"throttleReadBpsDevice": [{"major": major, "minor": minor, "rate": 1048576}]}}
    if weight:
        res["blockIO"]["weight"] = 200
    configure(bundle, ["sh", "-c", "cat /proc/self/cgroup"], res, cgroupsPath="pallet-test/lim")
    assert rt.create("lim", bundle).returncode == 0
    try:
        m = cg_dir("memory", "pallet-test/lim")
        assert read(f"{m}/memory.limit_in_bytes") == str(64 << 20)
        assert read(f"{m}/memory.soft_limit_in_bytes") == str(32 << 20)
        assert read(f"{m}/memory.swappiness") == "10"
        c = cg_dir("cpu", "pallet-test/lim")
        assert (read(f"{c}/cpu.shares"), read(f"{c}/cpu.cfs_quota_us"), read(f"{c}/cpu.cfs_period_us")) == \
            ("512", "50000", "100000")
        assert read(cg_dir("cpuset", "pallet-test/lim") + "/cpuset.cpus") == "0"
        assert read(cg_dir("pids", "pallet-test/lim") + "/pids.max") == "32"
        b = cg_dir("blkio", "pallet-test/lim")
        if weight:
            assert read(f"{b}/{weight}").split()[-1] == "200"
        assert f"{major}:{minor} 1048576" in read(f"{b}/blkio.throttle.read_bps_device")
        pid = rt.state("lim")["pid"]
        # the created (not yet started) init is already in every hierarchy, the unified one too
        for ctrl in ("memory", "cpu", "cpuset", "pids", "blkio", "devices", "freezer", ""):
            procs = read(cg_dir(ctrl, "pallet-test/lim") + "/cgroup.procs").split()
            assert str(pid) in procs, ctrl
    finally:
        assert rt("delete", "--force", "lim").returncode == 0
    for ctrl in ("memory", "cpu", "pids", ""):
        assert not os.path.exists(cg_dir(ctrl, "pallet-test/lim"))
        assert not os.path.exists(cg_dir(ctrl, "pallet-test")), "created parents are removed too"


def test_absolute_cgroups_path_and_default_path(rt, bundle):
    configure(bundle, ["sleep", "30"], cgroupsPath="/pallet-abs/c1")
    assert rt.create("abs", bundle).returncode == 0
    pid = rt.state("abs")["pid"]
    assert str(pid) in read(f"{V1}/pids/pallet-abs/c1/cgroup.procs").split()
    assert str(pid) in read(f"{V1}/memory/pallet-abs/c1/cgroup.procs").split()  # absolute: from the root
    assert str(pid) in read(f"{UNIFIED}/pallet-abs/c1/cgroup.procs").split()
    configure(bundle, ["sleep", "30"], cgroupsPath=None)
    cfg = load_config(bundle)
    cfg["linux"].pop("cgroupsPath")
    save_config(bundle, cfg)
    assert rt.create("dflt", bundle).returncode == 0
    assert os.path.isdir(cg_dir("pids", "dflt"))  # none given: <own cgroup>/<id>, as runc
    assert rt("delete", "--force", "abs").returncode == 0
    assert rt("delete", "--force", "dflt").returncode == 0
    assert not os.path.exists(f"{V1}/pids/pallet-abs") and not os.path.exists(f"{UNIFIED}/pallet-abs")
    assert not os.path.exists(cg_dir("pids", "dflt"))


def test_memory_limit_enforced(rt, bundle):
    # 24 MiB limit, no swap: a shell holding 64 MiB in a variable is OOM-killed
    configure(bundle, ["sh", "-c", "x=$(head -c 67108864 /dev/zero | tr '\\0' a); echo survived"],
              {"memory": {"limit": 24 << 20, "swap": 24 << 20}})
    r = rt("run", "-b", bundle, "oom")
    assert "survived" not in r.stdout and r.returncode == 128 + 9, (r.returncode, r.stderr)


def test_pids_limit_enforced(rt, bundle):
    configure(bundle, ["sh", "-c", "for i in 1 2 3 4 5 6 7 8; do sleep 5 & done; echo started"],
              {"pids": {"limit": 4}})
    r = rt("run", "-b", bundle, "pids")
    assert "started" not in r.stdout and "can't fork" in r.stderr, r.stderr


def test_devices_deny_all_and_allowlist_enforced(rt, bundle, tmp_path):
    # the default spec denies everything; then linux.devices and the allowlist (null, zero, tty...)
    script = ("echo x > /dev/null && echo null-ok; head -c1 /dev/zero | wc -c; "
              "mknod /tmp/fuse c 10 229 && (head -c0 /tmp/fuse 2>/dev/null && echo fuse-ok || echo fuse-denied)")
    cfg = configure(bundle, ["sh", "-c", script])
    cfg["process"]["capabilities"] = {s: cfg["process"]["capabilities"]["bounding"] + ["CAP_MKNOD"]
                                      for s in ("bounding", "effective", "permitted")}
    cfg["mounts"].append({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs"})
    save_config(bundle, cfg)
    assert rt.create("dev", bundle).returncode == 0
    lst = read(cg_dir("devices", "dev") + "/devices.list").splitlines()
    assert "a *:* rwm" not in lst and "c 1:3 rwm" in lst and "c 10:229 rwm" not in lst
    assert rt("start", "dev").returncode == 0
    wait_status(rt, "dev", "stopped")
    assert open(os.path.join(bundle, "dev.out")).read().split() == ["null-ok", "1", "fuse-denied"]
    # /dev/fuse (10:229) in linux.devices: created and allowed, even after an explicit deny rule
    cfg["linux"]["devices"] = [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229}]
    cfg["linux"]["resources"]["devices"].append({"allow": False, "type": "c", "major": 10, "minor": 229,
                                                 "access": "rw"})
    cfg["process"]["args"] = ["sh", "-c", script + "; head -c0 /dev/fuse && echo dev-fuse-ok"]
    save_config(bundle, cfg)
    r = rt("run", "-b", bundle, "dev2")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["null-ok", "1", "fuse-ok", "dev-fuse-ok"]
    # and with the allow-all rule last, everything is allowed
    cfg["linux"]["devices"] = []
    cfg["linux"]["resources"]["devices"] = [{"allow": True, "access": "rwm"}]
    save_config(bundle, cfg)
    assert rt.create("dev3", bundle).returncode == 0
    assert "a *:* rwm" in read(cg_dir("devices", "dev3") + "/devices.list").splitlines()


def test_pause_resume_and_state(rt, bundle):
    configure(bundle, ["sh", "-c", "while true; do echo tick >> /tmp/ticks; sleep 0.02; done"])
    cfg = load_config(bundle)
    cfg["mounts"].append({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs"})
    save_config(bundle, cfg)
    assert rt.create("pz", bundle).returncode == 0
    assert rt("pause", "pz").returncode == 1  # created, not running
    assert rt("start", "pz").returncode == 0
    assert rt("pause", "pz").returncode == 0
    assert rt.state("pz")["status"] == "paused"
    assert read(cg_dir("freezer", "pz") + "/freezer.state") == "FROZEN"
    assert json.loads(rt("list", "-f", "json").stdout)[0]["status"] == "paused"
    pid = rt.state("pz")["pid"]
    assert open(f"/proc/{pid}/stat").read().split(")")[1].split()[0] == "D" or True  # frozen tasks sleep
    r = rt("pause", "pz")
    assert r.returncode == 1 and "paused" in r.stderr
    r = rt("delete", "pz")
    assert r.returncode == 1 and "paused" in r.stderr
    assert rt("resume", "pz").returncode == 0
    assert rt.state("pz")["status"] == "running"
    assert rt("resume", "pz").returncode == 1
    assert rt("pause", "pz").returncode == 0
    assert rt("delete", "--force", "pz").returncode == 0  # a paused container is thawed to die
    assert not os.path.exists(cg_dir("freezer", "pz"))
    assert not os.path.exists(f"/proc/{pid}") or \
        open(f"/proc/{pid}/stat").read().split(")")[1].split()[0] == "Z"


def test_update_from_flags_and_json(rt, bundle, tmp_path):
    configure(bundle, ["sleep", "30"], {"memory": {"limit": 128 << 20}, "pids": {"limit": 50}})
    assert rt.create("up", bundle).returncode == 0
    assert rt("start", "up").returncode == 0
    r = rt("update", "--memory", "64m", "--pids-limit", "20", "--cpu-quota", "20000", "--cpu-period", "100000",
           "--cpu-share", "256", "--cpuset-cpus", "0", "up")
    assert r.returncode == 0, r.stderr
    assert read(cg_dir("memory", "up") + "/memory.limit_in_bytes") == str(64 << 20)
    assert read(cg_dir("pids", "up") + "/pids.max") == "20"
    assert read(cg_dir("cpu", "up") + "/cpu.cfs_quota_us") == "20000"
    assert read(cg_dir("cpu", "up") + "/cpu.shares") == "256"
    assert read(cg_dir("cpuset", "up") + "/cpuset.cpus") == "0"
    res = tmp_path / "res.json"
    res.write_text(json.dumps({"pids": {"limit": 7}, "blockIO": {"weight": 300}}))
    r = rt("update", "--resources", str(res), "up")
    if blkio_weight_file():
        assert r.returncode == 0, r.stderr
    else:  # refused in one line naming the field (the pids limit may be written already)
        assert r.returncode == 1 and "blockIO.weight" in r.stderr and "Traceback" not in r.stderr, r.stderr
        res.write_text(json.dumps({"pids": {"limit": 7}}))
        r = rt("update", "--resources", str(res), "up")
        assert r.returncode == 0, r.stderr
    assert read(cg_dir("pids", "up") + "/pids.max") == "7"
    r = rt("update", "-r", "-", "up", input=json.dumps({"memory": {"limit": 96 << 20}}))
    assert r.returncode == 0, r.stderr
    assert read(cg_dir("memory", "up") + "/memory.limit_in_bytes") == str(96 << 20)
    # the state remembers the new resources
    st = json.load(open(os.path.join(rt.root, "up", "state.json")))
    assert st["config"]["linux"]["resources"]["pids"] == {"limit": 7}
    # bad input: one line, nothing changed
    for args, msg in ((["--memory", "lots"], "invalid size"), (["--pids-limit", "x"], "not a number"), ([], "nothing")):
        r = rt("update", *args, "up")
        assert r.returncode == 1 and msg in r.stderr and "Traceback" not in r.stderr, r.stderr
    res.write_text(json.dumps({"memory": {"limit": "1g"}}))
    r = rt("update", "-r", str(res), "up")
    assert r.returncode == 1 and "resources.memory.limit" in r.stderr
    res.write_text(json.dumps({"network": {"classID": 5}}))
    r = rt("update", "-r", str(res), "up")
    assert r.returncode == 1 and "net_cls" in r.stderr
    assert read(cg_dir("pids", "up") + "/pids.max") == "7"


def test_events_stats_and_stream(rt, bundle):
    configure(bundle, ["sh", "-c", "sleep 30 & sleep 30 & wait"], {"pids": {"limit": 100},
                                                                  "memory": {"limit": 100 << 20}})
    assert rt.create("ev", bundle).returncode == 0
    assert rt("start", "ev").returncode == 0
    deadline = time.monotonic() + 5
    while True:
        r = rt("events", "--stats", "ev")
        assert r.returncode == 0, r.stderr
        ev = json.loads(r.stdout)
        if ev["data"]["pids"]["current"] == 3 or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    assert ev["type"] == "stats" and ev["id"] == "ev"
    d = ev["data"]
    assert d["pids"] == {"current": 3, "limit": 100}
    assert d["memory"]["usage"]["limit"] == 100 << 20 and d["memory"]["usage"]["usage"] > 0
    assert d["cpu"]["usage"]["total"] > 0 and len(d["cpu"]["usage"]["percpu"]) == os.cpu_count()
    # hugetlb statistics come from the unified hierarchy (hybrid) when the host gives the
    # container's v2 directory hugetlb files; none there, none reported
    v2 = cg_dir("", "ev")
    has_hugetlb = any(n.startswith("hugetlb.") and n.endswith(".current") for n in os.listdir(v2))
    assert ("hugetlb" in d) is has_hugetlb, (d.keys(), os.listdir(v2))
    p = subprocess.Popen([rt.binary, "--root", rt.root, "events", "--interval", "100ms", "ev"],
                         stdout=subprocess.PIPE, text=True)
    try:
        lines = [json.loads(p.stdout.readline()) for _ in range(3)]
        assert all(e["type"] == "stats" and e["data"]["pids"]["current"] == 3 for e in lines)
        assert rt("kill", "--all", "ev", "KILL").returncode == 0
        assert p.wait(10) == 0  # the stream ends with the container
    finally:
        p.kill()
        p.wait()


def test_events_stream_reports_oom(rt, bundle):
    """An OOM kill in the container is an {"type":"oom","id":ID} line in the stream, as runc's."""
    import select

    go = os.path.join(bundle, "rootfs", "tmp", "go")
    configure(bundle, ["sh", "-c", "while [ ! -e /tmp/go ]; do sleep 0.02; done; "
                                   "dd if=/dev/zero of=/dev/null bs=64M count=1; sleep 30"],
              {"memory": {"limit": 16 << 20, "swap": 16 << 20}})
    assert rt.create("oom", bundle).returncode == 0
    assert rt("start", "oom").returncode == 0
    p = subprocess.Popen([rt.binary, "--root", rt.root, "events", "--interval", "30s", "oom"],
                         stdout=subprocess.PIPE, text=True)
    try:
        assert json.loads(p.stdout.readline())["type"] == "stats"  # the watch is in place before this
        open(go, "w").close()
        assert select.select([p.stdout], [], [], 10)[0], "no OOM event within 10 s"
        assert json.loads(p.stdout.readline()) == {"type": "oom", "id": "oom"}
        assert rt.state("oom")["status"] == "running"  # dd was killed, not the container's sh
        assert rt("kill", "--all", "oom", "KILL").returncode == 0
        p.wait(10)
    finally:
        p.kill()
        p.wait()


def test_failed_create_leaves_no_cgroups(rt, bundle):
    # the init fails late (a missing program), after the cgroups were made and joined
    configure(bundle, ["/no/such/program"], {"pids": {"limit": 10}}, cgroupsPath="pallet-fail/x")
    r = rt.create("fail", bundle)
    assert r.returncode == 1 and "/no/such/program: no such file or directory" in r.stderr, r.stderr
    # and a limit the kernel refuses (a cpuset this machine does not have) fails while setting up
    configure(bundle, ["true"], {"cpu": {"cpus": "63"}}, cgroupsPath="pallet-fail/y")
    r = rt.create("fail2", bundle)
    assert r.returncode == 1 and "linux.resources.cpu.cpus" in r.stderr, r.stderr
    for ctrl in ("pids", "cpuset", "memory", "devices", ""):
        assert not os.path.exists(cg_dir(ctrl, "pallet-fail")), ctrl
    assert not os.listdir(rt.root)


def test_hugetlb_in_the_unified_hierarchy(rt, bundle):
    # hybrid: v1 has no hugetlb here, the unified mount does: the limit goes there
    configure(bundle, ["true"], {"hugepageLimits": [{"pageSize": "2MB", "limit": 4 << 20}]})
    r = rt.create("huge", bundle)
    d = cg_dir("", "huge")
    if hugetlb_2mb():
        assert r.returncode == 0, r.stderr
        assert read(f"{d}/hugetlb.2MB.max") == str(4 << 20)
        assert rt("delete", "--force", "huge").returncode == 0
    else:  # no 2MB pages or no hugetlb controller here: refused naming the field, nothing made
        assert r.returncode == 1 and "hugepageLimits" in r.stderr and "Traceback" not in r.stderr, r.stderr
        assert not os.path.exists(os.path.join(rt.root, "huge"))
    assert not os.path.exists(d)
    configure(bundle, ["true"], {"hugepageLimits": [{"pageSize": "3MB", "limit": 1}]})
    r = rt.create("huge2", bundle)
    assert r.returncode == 1 and "hugepageLimits[0]" in r.stderr
    assert not os.path.exists(cg_dir("", "huge2")) and not os.path.exists(cg_dir("pids", "huge2"))


def test_v2_manager_on_the_unified_mount():
    """The v2 backend on the real unified hierarchy: what the host allows (hugetlb, the core
    freezer, cgroup.procs) works; what it lacks is refused naming the field."""
    from pallet.runtime.cgroups.fs2 import Manager2

    path = f"{UNIFIED}/pallet-v2-test/c"
    m = Manager2(path, hybrid=False)
    with pytest.raises(OCIRuntimeError, match=r"linux.resources.memory: the memory controller is not available"):
        m.check({"memory": {"limit": 1 << 20}})
    m.check({}, {"resources": {"devices": [{"allow": False, "access": "rwm"}]}})  # an eBPF filter now
    huge = hugetlb_2mb()
    limits = {"hugepageLimits": [{"pageSize": "2MB", "limit": 2 << 20}]}
    if huge:
        m.check(limits)
    else:  # a host without it: refused naming the field, before anything exists
        with pytest.raises(OCIRuntimeError, match=r"hugepageLimits"):
            m.check(limits)
        limits = {}
    p = subprocess.Popen(["sleep", "30"])
    try:
        m.apply(limits)
        if huge:
            assert read(f"{path}/hugetlb.2MB.max") == str(2 << 20)
        m.add_task(p.pid)
        assert m.pids() == [p.pid]
        m.freeze()
        assert m.frozen() and "frozen 1" in read(f"{path}/cgroup.events")
        m.thaw()
        assert not m.frozen()
        st = m.stats()
        assert ("hugetlb" in st) is huge, st
        if huge:
            assert st["hugetlb"]["2MB"]["max"] == 2 << 20
            m2 = cgroups.from_state(m.to_state())
            m2.update({"hugepageLimits": [{"pageSize": "2MB", "limit": 4 << 20}]})
            assert read(f"{path}/hugetlb.2MB.max") == str(4 << 20)
    finally:
        p.kill()
        p.wait()
        m.remove()
    assert not os.path.exists(f"{UNIFIED}/pallet-v2-test")


def test_systemd_cgroup_is_a_clear_error(rt, bundle):
    configure(bundle, ["true"])
    r = rt("--systemd-cgroup", "run", "-b", bundle, "sd")
    assert r.returncode == 1 and "systemd is not running" in r.stderr and "Traceback" not in r.stderr
    assert not os.path.exists(os.path.join(rt.root, "sd"))


def test_resolve_paths():
    assert cgroups.resolve(None, "id", "/user.slice") == "/user.slice/id"
    assert cgroups.resolve("a/b", "id", "/own") == "/own/a/b"
    assert cgroups.resolve("/a/../b", "id", "/own") == "/b"
    with pytest.raises(OCIRuntimeError, match="slice:prefix:name"):
        cgroups.check_path("system.slice:pallet:x")
    assert cgroups.parse_size("64m", "--memory") == 64 << 20
    assert cgroups.parse_size("1.5g", "--memory") == 3 << 29
    assert cgroups.merge({"a": {"x": 1, "y": 2}, "b": 1}, {"a": {"y": 3}, "c": 4}) == \
        {"a": {"x": 1, "y": 3}, "b": 1, "c": 4}


FORK_IN = r'''
import json, os, sys
from pallet.runtime import cgroups
if sys.argv[2] == "seccomp":  # the kernel refuses clone3, as an old one (or a strict filter) would
    import pyseccomp
    f = pyseccomp.SyscallFilter(pyseccomp.ALLOW)
    f.add_rule(pyseccomp.ERRNO(38), "clone3")
    f.load()
if sys.argv[2] == "thread":  # another thread: no raw clone3
    import threading, time
    threading.Thread(target=time.sleep, args=(5,), daemon=True).start()
m = cgroups.manager({"cgroupsPath": sys.argv[1]}, "x")
m.prepare()
m.apply({}, None)
r, w = os.pipe()
pid, placed = cgroups.fork_in(m)
if pid == 0:
    born = open("/proc/self/cgroup").read()
    m.join_self(placed)
    os.write(w, json.dumps({"born": born, "joined": open("/proc/self/cgroup").read(),
                            "threads": os.stat("/proc/self/task").st_nlink - 2}).encode())
    os._exit(0)
os.close(w)
out = json.loads(os.read(r, 65536))
os.waitpid(pid, 0)
out["placed"] = placed
m.remove()
print(json.dumps(out))
'''


@pytest.mark.parametrize("how", ["clone3", "seccomp", "thread"])
def test_fork_in_puts_the_child_in_every_hierarchy(how):
    """Init and exec'd processes are born in the unified directory (clone3 CLONE_INTO_CGROUP)
    and move their one thread into the v1 hierarchies themselves ('0' to tasks): no
    cgroup.procs write, no RCU grace period. Where clone3 is refused (seccomp here, old
    kernels elsewhere) or the caller has threads, a plain fork and cgroup.procs do it."""
    import sys

    rel = f"pallet-forkin-{how}"
    r = subprocess.run([sys.executable, "-c", FORK_IN, rel, how], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["placed"] is (how == "clone3")
    want = {ctrl: (own(ctrl).rstrip("/") + "/" + rel) for ctrl in ("", "pids", "memory", "cpu", "devices")}
    born = {line.split(":", 2)[1]: line.split(":", 2)[2] for line in out["born"].splitlines()}
    joined = {line.split(":", 2)[1]: line.split(":", 2)[2] for line in out["joined"].splitlines()}
    assert (born[""] == want[""]) is (how == "clone3")  # born there, or moved by join_self
    for ctrl, path in want.items():
        key = next(k for k in joined if ctrl in k.split(",") or k == ctrl)
        assert joined[key] == path, (ctrl, joined)
    assert out["threads"] == 1
    for ctrl in want:
        assert not os.path.exists(cg_dir(ctrl, rel))


def test_delete_removes_the_cgroups_a_container_made_below_its_own(rt, bundle):
    """systemd in a container makes cgroups below the container's: ``delete --force`` kills the
    processes in them too and removes them, deepest first (as runc's), instead of failing busy."""
    configure(bundle, ["sleep", "30"], cgroupsPath="/pallet-nest/c1")
    assert rt.create("nest", bundle).returncode == 0
    dirs = [f"{V1}/pids/pallet-nest/c1", f"{UNIFIED}/pallet-nest/c1"]
    for d in dirs:
        os.makedirs(f"{d}/system.slice/inner")
    stray = subprocess.Popen(["sleep", "60"])  # a process in a nested cgroup, as a service would be
    try:
        with open(f"{V1}/pids/pallet-nest/c1/system.slice/inner/cgroup.procs", "w") as f:
            f.write(str(stray.pid))
        assert str(stray.pid) in rt("ps", "--format", "json", "nest").stdout  # its processes, nested ones too
        r = rt("delete", "--force", "nest")
        assert r.returncode == 0, r.stderr
        assert stray.wait(timeout=10) != 0  # killed with the container
        for d in dirs:
            assert not os.path.exists(d), d
    finally:
        stray.kill()
        stray.wait()
        for d in dirs:
            for sub in ("system.slice/inner", "system.slice", ""):
                try:
                    os.rmdir(os.path.join(d, sub))
                except OSError:
                    pass
        for top in (f"{V1}/pids/pallet-nest", f"{UNIFIED}/pallet-nest"):
            try:
                os.rmdir(top)
            except OSError:
                pass
