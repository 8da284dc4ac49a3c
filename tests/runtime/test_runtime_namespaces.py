"""pallet-runtime on the real kernel: a config without a mount namespace, and time namespaces."""

from __future__ import annotations

import os
import time

import pytest

from test_runtime_helpers import load_config, make_bundle, mounts_under, save_config


def _propagation_of_root():
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split(" - ")[0].split()
            if fields[4] == "/":
                return fields[6:]
    return None


def no_mount_ns(bundle, *args):
    """The default config without the mount namespace, and without what needs one."""
    cfg = load_config(bundle)
    lx = cfg["linux"]
    lx["namespaces"] = [ns for ns in lx["namespaces"] if ns["type"] != "mount"]
    del lx["maskedPaths"], lx["readonlyPaths"]
    cfg["root"]["readonly"] = False
    cfg["process"]["args"] = list(args)
    save_config(bundle, cfg)
    return cfg


# ---------------------------------------------------------------- no mount namespace

def test_no_mount_namespace_chroot_and_mounts_undone(rt, bundle):
    no_mount_ns(bundle, "sleep", "60")
    before = _propagation_of_root()
    r = rt.create("nm", bundle)
    assert r.returncode == 0, r.stderr
    pid = rt.state("nm")["pid"]
    # the host's mount namespace, rooted (chroot) at the bundle's rootfs
    assert os.readlink(f"/proc/{pid}/ns/mnt") == os.readlink("/proc/self/ns/mnt")
    assert os.readlink(f"/proc/{pid}/ns/pid") != os.readlink("/proc/self/ns/pid")
    assert os.readlink(f"/proc/{pid}/root") == os.path.join(bundle, "rootfs")
    # the config's mounts are on the host, under the rootfs; the host's propagation is untouched
    made = mounts_under(bundle)
    for d in ("proc", "dev", "dev/pts", "dev/shm", "dev/mqueue", "sys", "sys/fs/cgroup"):
        assert os.path.join(bundle, "rootfs", d) in made
    assert _propagation_of_root() == before
    assert rt("start", "nm").returncode == 0
    assert rt.state("nm")["status"] == "running"
    # exec enters the same root
    e = rt("exec", "nm", "sh", "-c", "grep -c ^user: /etc/passwd; readlink /proc/1/exe; test -c /dev/null && echo dev")
    assert e.returncode == 0, e.stderr
    assert e.stdout.split() == ["1", "/bin/busybox", "dev"]
    assert rt("delete", "--force", "nm").returncode == 0
    assert mounts_under(bundle) == []  # everything the container mounted on the host is gone
    assert not os.path.exists(os.path.join(rt.root, "nm"))


def test_no_mount_namespace_run(rt, bundle):
    no_mount_ns(bundle, "sh", "-c", "ls /bin/busybox; grep -c ' /proc proc' /proc/mounts; echo $$")
    r = rt("run", "-b", bundle, "nm2")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[0] == "/bin/busybox"
    assert r.stdout.split()[2] == "1"  # pid 1 of its own pid namespace
    assert mounts_under(bundle) == []


def test_no_mount_namespace_failed_create_leaves_no_mounts(rt, bundle):
    no_mount_ns(bundle, "/no/such/program")
    r = rt.create("nm3", bundle)
    assert r.returncode == 1
    assert "process.args[0]" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert mounts_under(bundle) == []
    assert os.listdir(rt.root) == []


@pytest.mark.parametrize("field,change", [
    ("linux.maskedPaths", lambda c: c["linux"].__setitem__("maskedPaths", ["/proc/kcore"])),
    ("linux.readonlyPaths", lambda c: c["linux"].__setitem__("readonlyPaths", ["/proc/sys"])),
    ("root.readonly", lambda c: c["root"].__setitem__("readonly", True)),
    ("linux.rootfsPropagation", lambda c: c["linux"].__setitem__("rootfsPropagation", "shared")),
])
def test_no_mount_namespace_refuses_what_would_change_the_host(rt, bundle, field, change):
    cfg = no_mount_ns(bundle, "true")
    change(cfg)
    save_config(bundle, cfg)
    r = rt.create("nm4", bundle)
    assert r.returncode == 1
    assert r.stderr.startswith(f"pallet-runtime: config.json: {field}: needs a private mount namespace")
    assert mounts_under(bundle) == []
    assert not os.path.exists(os.path.join(rt.root, "nm4"))


# ---------------------------------------------------------------- time namespace

def _time_ns(bundle, script, offsets, userns=False):
    cfg = load_config(bundle)
    cfg["linux"]["namespaces"].append({"type": "time"})
    if offsets is not None:
        cfg["linux"]["timeOffsets"] = offsets
    if userns:  # the root filesystem belongs to the mapped root, as podman makes it
        for d, dirs, files in os.walk(os.path.join(bundle, "rootfs")):
            os.lchown(d, 100000, 100000)
            for n in dirs + files:
                os.lchown(os.path.join(d, n), 100000, 100000)
        cfg["linux"]["namespaces"].append({"type": "user"})
        cfg["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
        cfg["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    cfg["process"]["args"] = ["sh", "-c", script]
    save_config(bundle, cfg)


def _uptime():
    with open("/proc/uptime") as f:
        return float(f.read().split()[0])


@pytest.mark.parametrize("userns", [False, True], ids=["root", "userns"])
def test_time_offsets(rt, tmp_path, open_dir, userns):
    offsets = {"boottime": {"secs": 86400 * 365, "nanosecs": 5}, "monotonic": {"secs": 7200, "nanosecs": 0}}
    bundle = make_bundle(os.path.join(open_dir if userns else str(tmp_path), "bundle"))
    _time_ns(bundle, "cat /proc/self/timens_offsets; cut -d' ' -f1 /proc/uptime; sleep 60", offsets, userns)
    host_ns = os.readlink("/proc/self/ns/time")
    r = rt.create("tn", bundle)
    assert r.returncode == 0, r.stderr
    pid = rt.state("tn")["pid"]
    assert os.readlink(f"/proc/{pid}/ns/time") != host_ns
    assert os.readlink("/proc/self/ns/time") == host_ns  # the runtime went back to its own
    assert rt("start", "tn").returncode == 0
    out = os.path.join(bundle, "tn.out")
    deadline = time.monotonic() + 5
    while len(open(out).read().splitlines()) < 3:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    lines = open(out).read().splitlines()
    got = {line.split()[0]: (int(line.split()[1]), int(line.split()[2])) for line in lines[:2]}
    assert got == {"monotonic": (7200, 0), "boottime": (86400 * 365, 5)}
    up = float(lines[2])  # /proc/uptime is the boot-time clock: offset by a year
    assert 86400 * 365 < up < 86400 * 365 + _uptime() + 5
    # exec enters the same time namespace
    e = rt("exec", "tn", "cut", "-d ", "-f1", "/proc/uptime")
    assert e.returncode == 0, e.stderr
    assert float(e.stdout) > 86400 * 365
    assert rt("delete", "--force", "tn").returncode == 0


def test_time_namespace_without_offsets(rt, bundle):
    _time_ns(bundle, "cat /proc/self/timens_offsets", None)
    r = rt("run", "-b", bundle, "tn2")
    assert r.returncode == 0, r.stderr
    assert [line.split()[1:] for line in r.stdout.splitlines()] == [["0", "0"], ["0", "0"]]


@pytest.mark.parametrize("change,message", [
    (lambda c: c["linux"].__setitem__("timeOffsets", {"monotonic": {"secs": 1}}),
     "linux.timeOffsets: needs a new time namespace in linux.namespaces"),
    (lambda c: (c["linux"]["namespaces"].append({"type": "time", "path": "/proc/1/ns/time"}),
                c["linux"].__setitem__("timeOffsets", {"monotonic": {"secs": 1}})),
     "linux.timeOffsets: cannot be set on a time namespace joined by path"),
    (lambda c: (c["linux"]["namespaces"].append({"type": "time"}),
                c["linux"].__setitem__("timeOffsets", {"realtime": {"secs": 1}})),
     "linux.timeOffsets.realtime: unknown clock"),
    (lambda c: (c["linux"]["namespaces"].append({"type": "time"}),
                c["linux"].__setitem__("timeOffsets", {"boottime": {"secs": 1, "nanosecs": 10**9}})),
     "linux.timeOffsets.boottime.nanosecs: 1000000000 is not below"),
    (lambda c: (c["linux"]["namespaces"].append({"type": "time"}),
                c["linux"].__setitem__("timeOffsets", {"boottime": {"secs": "1"}})),
     "linux.timeOffsets.boottime.secs: must be an integer"),
])
def test_time_offsets_refused(rt, bundle, change, message):
    cfg = load_config(bundle)
    change(cfg)
    save_config(bundle, cfg)
    r = rt.create("tn3", bundle)
    assert r.returncode == 1
    assert r.stderr.startswith(f"pallet-runtime: config.json: {message}"), r.stderr
    assert not os.path.exists(os.path.join(rt.root, "tn3"))


def test_time_offsets_the_kernel_refuses_leave_nothing(rt, bundle):
    # a monotonic clock pushed below zero: the kernel says ERANGE when the offsets are written
    _time_ns(bundle, "true", {"monotonic": {"secs": -(10 ** 12), "nanosecs": 0}})
    r = rt.create("tn4", bundle)
    assert r.returncode == 1
    assert r.stderr.startswith("pallet-runtime: linux.timeOffsets: the kernel refused"), r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert os.listdir(rt.root) == []
