"""Attacks on pallet-runtime: hostile container ids and planted state files.

Every verb checks the id (runc: ``invalid container ID format``) before a path is built
from it; ``ROOT/ID`` must be a directory in the state root (a symlink there is refused,
never followed); state files are opened relative to it without following symlinks and
trusted only in the shape pallet-runtime writes them.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from conftest import mounts_under, unmount_under

pytestmark = pytest.mark.usefixtures("root_required")

BAD_IDS = ["..", ".", "../victim", "a/b", "/etc", "x\nunknown", "", "a b"]


@pytest.fixture
def tmpfs_canary(tmp_path):
    """A tmpfs mount that a hostile state file would make ``delete --force`` detach."""
    d = tmp_path / "canary"
    d.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "canary", str(d)], check=True)
    (d / "data").write_text("keep")
    yield str(d)
    subprocess.run(["umount", "-l", str(d)], check=False)


def _assert_refused(r, what):
    assert r.returncode != 0, (what, r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert "invalid container ID format" in lines[0], lines[0]


@pytest.mark.parametrize("cid", BAD_IDS)
def test_delete_force_refuses_a_bad_id_and_removes_nothing(rt, tmp_path, cid):
    os.makedirs(rt.root)
    (tmp_path / "victim").mkdir()
    (tmp_path / "victim" / "precious").write_text("data")
    (tmp_path / "sibling").write_text("data")
    other = os.path.join(rt.root, "other")
    os.mkdir(other)
    r = rt("delete", "--force", cid)
    _assert_refused(r, cid)
    assert (tmp_path / "victim" / "precious").read_text() == "data"
    assert (tmp_path / "sibling").read_text() == "data"
    assert os.path.isdir(other) and os.path.isdir(rt.root)


@pytest.mark.parametrize("verb", ["state", "start", "kill", "delete", "pause", "resume", "ps", "events",
                                  "exec", "update", "create", "run"])
def test_every_verb_checks_the_id(rt, bundle, verb):
    extra = {"exec": ["true"], "update": ["--pids-limit", "10"], "create": ["--bundle", bundle],
             "run": ["--bundle", bundle], "events": ["--stats"]}.get(verb, [])
    for cid in ("../x", ".."):
        if verb in ("create", "run", "update", "events"):
            args = [verb, *extra, cid]
        else:
            args = [verb, cid, *extra]
        r = rt(*args)
        _assert_refused(r, args)
    assert not os.path.exists(os.path.join(os.path.dirname(rt.root), "x"))


def test_symlinked_container_dir_is_refused_not_followed(rt, tmp_path, tmpfs_canary):
    os.makedirs(rt.root)
    planted = tmp_path / "planted"
    planted.mkdir()
    (planted / "hostmounts.json").write_text(json.dumps({"rootfs": "/", "before": []}))
    (planted / "cgroups.json").write_text(json.dumps({"kind": "v1", "paths": {"pids": "/sys/fs/cgroup/pids"}}))
    (planted / "state.json").write_text("{")
    os.symlink(str(planted), os.path.join(rt.root, "evil"))
    for verb in (["delete", "--force"], ["delete"], ["state"], ["kill"]):
        r = rt(*verb, "evil")
        assert r.returncode != 0, (verb, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1 and "not a directory" in r.stderr, r.stderr
    assert sorted(os.listdir(planted)) == ["cgroups.json", "hostmounts.json", "state.json"]
    assert mounts_under(tmpfs_canary) == [tmpfs_canary]
    assert open(os.path.join(tmpfs_canary, "data")).read() == "keep"


def test_planted_hostmounts_with_root_slash_detaches_nothing(rt, tmpfs_canary):
    d = os.path.join(rt.root, "planted")
    os.makedirs(d)
    with open(os.path.join(d, "hostmounts.json"), "w") as f:
        json.dump({"rootfs": "/", "before": []}, f)
    r = rt("delete", "--force", "planted")
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    assert not os.path.exists(d)
    assert mounts_under(tmpfs_canary) == [tmpfs_canary]


def test_planted_cgroups_json_outside_the_cgroupfs_is_ignored(rt, tmp_path):
    d = os.path.join(rt.root, "planted")
    os.makedirs(d)
    victim = subprocess.Popen(["sleep", "30"])
    try:
        with open(f"/proc/{victim.pid}/cgroup") as f:
            pids_line = [ln for ln in f if ":pids:" in ln or ln.startswith("0::")][0]
        with open(os.path.join(d, "cgroups.json"), "w") as f:  # names the victim's cgroup through ..
            json.dump({"kind": "v1", "paths": {"pids": "/sys/fs/cgroup/pids/x/.." +
                                                pids_line.split(":", 2)[2].strip()}}, f)
        r = rt("delete", "--force", "planted")
        assert r.returncode == 0, r.stderr
        assert victim.poll() is None, "delete --force killed a process outside the container"
    finally:
        victim.kill()
        victim.wait()


def test_state_files_are_not_followed_through_symlinks(rt, tmp_path):
    d = os.path.join(rt.root, "c1")
    os.makedirs(d)
    target = tmp_path / "outside.json"
    target.write_text(json.dumps({"id": "c1", "pid": 1, "config": {}}))
    os.symlink(str(target), os.path.join(d, "state.json"))
    r = rt("state", "c1")
    assert r.returncode != 0 and "state.json" in r.stderr and "Traceback" not in r.stderr, r.stderr
    r = rt("delete", "--force", "c1")
    assert r.returncode == 0, r.stderr
    assert not os.path.lexists(d)
    assert target.exists()


def test_a_real_container_still_deletes(rt, bundle):
    r = rt.create("ok1", bundle)
    assert r.returncode == 0, r.stderr
    assert rt.state("ok1")["status"] == "created"
    r = rt("delete", "--force", "ok1")
    assert r.returncode == 0, r.stderr
    assert not os.path.exists(os.path.join(rt.root, "ok1"))


# -- mount destinations raced through symlinks (the CVE-2021-30465 / CVE-2024-45310 class) ----

_RACER = r"""
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
a, b = (p.encode() for p in sys.argv[1:3])
AT_FDCWD, RENAME_EXCHANGE = -100, 2
while True:  # swap the directory and the symlink to the host, as fast as we can
    libc.renameat2(AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE)
"""


@pytest.fixture
def leak_guard(tmp_path):
    """Whatever the test leaks below tmp_path (mounts) is undone even when it fails."""
    yield
    unmount_under(str(tmp_path))


def test_mount_destinations_raced_through_symlinks_stay_inside_the_rootfs(rt, bundle, tmp_path, leak_guard):
    import sys

    from test_runtime_helpers import load_config, save_config

    host = tmp_path / "host-target"  # what a swapped component points at
    canary = host / "b" / "t"  # a host mount where a swapped /mnt/a/b/t would lead
    canary.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "canary", str(canary)], check=True)
    (canary / "alive").write_text("host data")

    def host_mounts():  # every mount entry below host (stacked ones counted each)
        with open("/proc/self/mountinfo") as f:
            return sorted(line.split()[4] for line in f if line.split()[4].startswith(str(host) + "/"))

    src = tmp_path / "bind-src"
    src.mkdir()
    (src / "f").write_text("x")
    rootfs = os.path.join(bundle, "rootfs")
    os.makedirs(os.path.join(rootfs, "mnt", "a"))
    os.symlink(str(host), os.path.join(rootfs, "mnt", "swap"))
    cfg = load_config(bundle)
    cfg["process"]["args"] = ["true"]
    cfg["mounts"] += [{"destination": "/mnt/a/b/t", "type": "tmpfs", "source": "tmpfs"},
                     {"destination": "/mnt/a/b/bd", "type": "bind", "source": str(src), "options": ["rbind"]},
                     {"destination": "/mnt/a/c/f", "type": "bind", "source": str(src / "f"), "options": ["bind"]}]
    cfg["root"]["readonly"] = False
    with_ns = json.loads(json.dumps(cfg))
    without_ns = json.loads(json.dumps(cfg))  # mounts go to the host's namespace: a misplaced one stays
    lx = without_ns["linux"]
    lx["namespaces"] = [ns for ns in lx["namespaces"] if ns["type"] != "mount"]
    lx.pop("maskedPaths", None)
    lx.pop("readonlyPaths", None)
    racer = subprocess.Popen([sys.executable, "-c", _RACER, os.path.join(rootfs, "mnt", "a"),
                              os.path.join(rootfs, "mnt", "swap")])
    try:
        outcomes = {}
        for i in range(200):
            save_config(bundle, with_ns if i % 2 else without_ns)
            r = rt("run", "--bundle", bundle, f"race{i}")
            outcomes[r.returncode] = outcomes.get(r.returncode, 0) + 1
            assert "Traceback" not in r.stderr, r.stderr
            # nothing mounted over the host's mount, nothing of it detached, nothing made there
            assert host_mounts() == [str(canary)], f"round {i}: a mount outside the rootfs changed"
            assert (canary / "alive").read_text() == "host data", f"round {i}"
            assert os.listdir(host) == ["b"] and os.listdir(host / "b") == ["t"], \
                f"round {i}: {os.listdir(host)} made outside the rootfs"
            assert os.listdir(canary) == ["alive"], f"round {i}: {os.listdir(canary)} made outside the rootfs"
    finally:
        racer.kill()
        racer.wait()
    assert outcomes.get(0, 0) > 0, outcomes  # the race does not stop containers from running
    # run deleted each one, its mounts included, even while the racer renamed their parents
    assert mounts_under(rootfs) == []


# -- mounts inside /proc, symlinked root.path ---------------------------------------------------

def _cfg(bundle, args, mounts=()):
    from test_runtime_helpers import load_config, save_config

    cfg = load_config(bundle)
    cfg["process"]["args"] = args
    cfg["mounts"] += list(mounts)
    save_config(bundle, cfg)


def test_a_symlink_in_the_rootfs_cannot_take_a_mount_into_proc(rt, bundle, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    os.symlink("/proc/sys", os.path.join(bundle, "rootfs", "innocent"))
    _cfg(bundle, ["true"], [{"destination": "/innocent", "type": "bind", "source": str(src), "options": ["rbind"]}])
    r = rt("run", "--bundle", bundle, "p1")
    assert r.returncode == 1, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "mounts[7]" in r.stderr and "inside /proc" in r.stderr, r.stderr
    assert not os.path.exists(os.path.join(rt.root, "p1"))


def test_runc_allowed_proc_files_and_a_procfs_bind_still_mount(rt, bundle, tmp_path):
    fake = tmp_path / "cpuinfo"
    fake.write_text("lxcfs says hello\n")
    _cfg(bundle, ["cat", "/proc/cpuinfo"],
         [{"destination": "/proc/cpuinfo", "type": "bind", "source": str(fake), "options": ["bind"]}])
    r = rt("run", "--bundle", bundle, "p2")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "lxcfs says hello\n"
    # a bind of a procfs root onto /proc itself (the mounts[0] proc replaced)
    from test_runtime_helpers import load_config, save_config

    cfg = load_config(bundle)
    cfg["mounts"][0] = {"destination": "/proc", "type": "bind", "source": "/proc", "options": ["rbind"]}
    cfg["mounts"] = cfg["mounts"][:-1]
    cfg["process"]["args"] = ["test", "-e", "/proc/self/status"]
    cfg["linux"]["maskedPaths"] = []
    cfg["linux"]["readonlyPaths"] = []
    save_config(bundle, cfg)
    r = rt("run", "--bundle", bundle, "p3")
    assert r.returncode == 0, r.stderr
    cfg["mounts"][0]["source"] = str(tmp_path)  # not a procfs: refused
    save_config(bundle, cfg)
    r = rt("run", "--bundle", bundle, "p4")
    assert r.returncode == 1 and "not the root of a proc filesystem" in r.stderr, r.stderr


@pytest.mark.parametrize("target", ["/", "rootfs"])
def test_symlinked_root_path_is_refused(rt, bundle, target):
    from test_runtime_helpers import load_config, save_config

    link = os.path.join(bundle, "rootlink")
    os.symlink(target, link)
    cfg = load_config(bundle)
    cfg["root"]["path"] = "rootlink"
    cfg["process"]["args"] = ["true"]
    save_config(bundle, cfg)
    for verb in ("create", "run"):
        r = rt(verb, "--bundle", bundle, "s1")
        assert r.returncode == 1, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1 and "root.path" in r.stderr and "symlink" in r.stderr
        assert not os.path.exists(os.path.join(rt.root, "s1"))
