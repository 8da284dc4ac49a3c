"""pallet-runtime on the real kernel: a config without a mount namespace, and time namespaces."""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest

from test_runtime_helpers import PALLET_RUNTIME, Runtime, load_config, make_bundle, mounts_under, save_config


@pytest.fixture
def rt(tmp_path):
    r = Runtime(PALLET_RUNTIME, str(tmp_path / "state"))
    yield r
    r.cleanup()


@pytest.fixture
def bundle(tmp_path):
    return make_bundle(str(tmp_path / "bundle"))


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
