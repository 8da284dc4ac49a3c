"""Named volumes (podman's ``volume`` verbs) in pallet's store: the CLI against real podman's
output, filters, the in-use check, mounts on first use (tmpfs, bind) on the real kernel, and
removals that never delete data they should not.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

import pytest

from conftest import run_pallet
from pallet.containers.volumes import Volumes
from pallet.errors import VolumeError, VolumeInUse

PODMAN_KEYS = ["Name", "Driver", "Mountpoint", "CreatedAt", "Labels", "Scope", "Options", "MountCount",
               "NeedsCopyUp", "NeedsChown"]


@pytest.fixture
def root(tmp_path):
    return str(tmp_path / "store")


def vol(root, *args, check=True, input=None):
    return run_pallet("--root", root, "volume", *args, check=check, input=input)


def _mounted(path: str) -> str | None:
    """The file system type mounted on ``path``, or None."""
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            if fields[4] == path:
                return fields[fields.index("-") + 1]
    return None


def test_verbs_as_podman(root):
    assert vol(root, "create", "--label", "a=b", "--label", "c", "-o", "type=tmpfs", "-o", "device=tmpfs",
               "-o", "o=size=1m,mode=0700", "v1").stdout == "v1\n"
    assert vol(root, "create", "v2").stdout == "v2\n"
    anon = vol(root, "create").stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{64}", anon)
    assert os.path.isdir(os.path.join(root, "volumes", "v2", "_data"))

    [doc] = json.loads(vol(root, "inspect", "v1").stdout)
    assert list(doc) == PODMAN_KEYS
    assert doc["Mountpoint"] == os.path.join(root, "volumes", "v1", "_data")
    assert doc["Labels"] == {"a": "b", "c": ""}
    assert doc["Options"] == {"device": "tmpfs", "o": "size=1m,mode=0700", "type": "tmpfs"}
    assert (doc["Driver"], doc["Scope"], doc["MountCount"], doc["NeedsCopyUp"]) == ("local", "local", 0, True)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z", doc["CreatedAt"])

    ls = vol(root, "ls").stdout.splitlines()
    assert ls[0].split() == ["DRIVER", "VOLUME", "NAME"] and sorted(l.split()[1] for l in ls[1:]) == sorted(
        ["v1", "v2", anon])
    assert vol(root, "ls", "-q", "--filter", "name=^v").stdout == "v1\nv2\n"
    assert vol(root, "ls", "-q", "--filter", "label=a=b").stdout == "v1\n"
    assert vol(root, "ls", "-q", "--filter", "label!=a", "--filter", "name=v").stdout == "v2\n"
    assert vol(root, "ls", "-q", "--filter", "opt=type=tmpfs").stdout == "v1\n"
    assert vol(root, "ls", "-q", "--filter", "driver=other").stdout == ""
    assert vol(root, "ls", "-q", "--filter", "until=1h", "--filter", "name=v2").stdout == ""
    assert vol(root, "ls", "-q", "--filter", "dangling=true", "--filter", "name=v2").stdout == "v2\n"
    out = vol(root, "ls", "--filter", "name=v1", "--format", "{{.Name}} {{.Labels}} {{.Options}} {{.CreatedAt}}")
    name, labels, opts, created = out.stdout.split(" ", 3)
    assert (name, labels) == ("v1", "map[a:b")  # map[a:b c:]
    assert "map[device:tmpfs o:size=1m,mode=0700 type:tmpfs]" in out.stdout
    assert created.strip().endswith("+0000 UTC") and doc["CreatedAt"][11:-1] in created
    assert json.loads(vol(root, "ls", "--format", "json", "--filter", "name=v1").stdout) == [doc]
    assert vol(root, "inspect", "--format", "{{.Name}}:{{.Scope}}", "v1", "v2").stdout == "v1:local\nv2:local\n"

    assert vol(root, "exists", "v1").returncode == 0
    assert vol(root, "exists", "nope", check=False).returncode == 1
    p = vol(root, "inspect", "v1", "nope", check=False)
    assert p.returncode == 125 and p.stdout == "" and p.stderr == "Error: inspecting object: no such volume nope\n"

    p = vol(root, "create", "v1", check=False)
    assert p.returncode == 125 and "volume with name v1 already exists" in p.stderr
    assert vol(root, "create", "--ignore", "v1").stdout == "v1\n"

    p = vol(root, "rm", "v1", "nope", check=False)
    assert (p.returncode, p.stdout) == (1, "v1\n") and 'no volume with name "nope" found' in p.stderr
    assert vol(root, "rm", "-f", "nope").returncode == 0
    assert not os.path.exists(os.path.join(root, "volumes", "v1"))
    assert vol(root, "prune", "-f").stdout.split() == sorted([anon, "v2"])
    assert vol(root, "ls", "-q").stdout == ""


@pytest.mark.parametrize("opts", [
    ["--label", "k=v", "-o", "type=tmpfs", "-o", "device=tmpfs"],
    ["-o", "nocopy"],
    ["-o", "o=uid=1000,gid=1001"],
    ["-o", "type=tmpfs", "-o", "device=tmpfs", "-o", "o=uid=7,mode=0700", "-o", "copy=false"],
])
def test_inspect_and_ls_json_have_podmans_keys(root, opts):
    podman = shutil.which("podman")
    assert podman, "podman is a peer of this suite"
    name = f"pallet-test-{os.getpid()}"
    subprocess.run([podman, "volume", "create", *opts, name], check=True, capture_output=True)
    try:
        [want] = json.loads(subprocess.run([podman, "volume", "inspect", name], check=True, capture_output=True,
                                           text=True).stdout)
        [want_ls] = json.loads(subprocess.run([podman, "volume", "ls", "--format", "json", "--filter",
                                               f"name={name}"], check=True, capture_output=True, text=True).stdout)
        want_owner = os.stat(want["Mountpoint"])
    finally:
        subprocess.run([podman, "volume", "rm", name], capture_output=True)
    vol(root, "create", *opts, name)
    [got] = json.loads(vol(root, "inspect", name).stdout)
    [got_ls] = json.loads(vol(root, "ls", "--format", "json").stdout)
    assert list(got) == list(want) and list(got_ls) == list(want_ls)
    for k in set(want) - {"Mountpoint", "CreatedAt"}:
        assert got[k] == want[k], k
    owner = os.stat(got["Mountpoint"])
    assert (owner.st_uid, owner.st_gid) == (want_owner.st_uid, want_owner.st_gid)
    assert want["Mountpoint"].endswith(f"/volumes/{name}/_data") and got["Mountpoint"].endswith(
        f"/volumes/{name}/_data")
    # the store is pallet's: podman's volume of that name was never touched by pallet
    assert not got["Mountpoint"].startswith("/var/lib/containers/")


def test_rm_refuses_a_volume_with_users(root):
    vols = Volumes(os.path.join(root))
    vol(root, "create", "used")
    data = os.path.join(root, "volumes", "used", "_data", "file")
    with open(data, "w") as f:
        f.write("keep")
    vols.add_user("used", "c" * 64)
    for args in (("rm", "used"), ("rm", "-f", "used")):
        p = vol(root, *args, check=False)
        assert p.returncode == 2, p.stderr
        assert "volume used is being used by the following container(s): " + "c" * 64 in p.stderr
    assert vol(root, "prune", "-f").stdout == ""
    assert vol(root, "ls", "-q", "--filter", "dangling=false").stdout == "used\n"
    with pytest.raises(VolumeInUse):
        vols.remove("used")
    assert open(data).read() == "keep"
    vols.remove_user("used", "c" * 64)
    assert vol(root, "rm", "used").stdout == "used\n"
    assert not os.path.exists(os.path.join(root, "volumes", "used"))


def test_prune_filters(root):
    vol(root, "create", "--label", "keep=1", "a")
    vol(root, "create", "b")
    p = vol(root, "prune", input="n\n")
    assert "a\nb\n" in p.stdout and vol(root, "ls", "-q").stdout == "a\nb\n"
    assert vol(root, "prune", "-f", "--filter", "label!=keep").stdout == "b\n"
    assert vol(root, "prune", "-f", "--filter", "until=1h").stdout == ""
    p = vol(root, "prune", "-f", "--filter", "dangling=true", check=False)
    assert p.returncode == 125 and "unsupported filter 'dangling'" in p.stderr
    assert vol(root, "ls", "-q").stdout == "a\n"


def test_tmpfs_volume_mounted_on_first_use(root, root_required):
    vols = Volumes(root)
    vol(root, "create", "-o", "type=tmpfs", "-o", "device=tmpfs", "-o", "o=size=2m", "t")
    path = vols.mountpoint("t")
    assert _mounted(path) is None
    assert vols.mount("t") == path
    try:
        assert _mounted(path) == "tmpfs"
        vols.mount("t")
        assert json.loads(vol(root, "inspect", "t").stdout)[0]["MountCount"] == 2
        vols.unmount("t")
        assert _mounted(path) == "tmpfs"
        vols.unmount("t")
        assert _mounted(path) is None
        vols.mount("t")
        assert vol(root, "rm", "t").stdout == "t\n"  # unmounted, then removed
        assert _mounted(path) is None and not os.path.exists(os.path.dirname(path))
    finally:
        if _mounted(path):
            subprocess.run(["umount", path])


def test_bind_volume_removal_never_deletes_the_device(root, tmp_path, root_required):
    dev = tmp_path / "host-data"
    dev.mkdir()
    (dev / "precious").write_text("x")
    vols = Volumes(root)
    vol(root, "create", "-o", "type=none", "-o", f"device={dev}", "-o", "o=bind", "b")
    path = vols.mountpoint("b")
    vols.mount("b")
    try:
        assert os.listdir(path) == ["precious"]
        # a busy mount cannot be unmounted: rm fails, the volume stays whole
        busy = subprocess.Popen(["sleep", "60"], cwd=path)
        try:
            p = vol(root, "rm", "b", check=False)
        finally:
            busy.kill()
            busy.wait()
        assert p.returncode == 125 and "unmounting volume b" in p.stderr and "unchanged" in p.stderr
        assert vol(root, "exists", "b").returncode == 0 and _mounted(path)
        assert vol(root, "rm", "b").stdout == "b\n"
    finally:
        if _mounted(path):
            subprocess.run(["umount", path])
    assert (dev / "precious").read_text() == "x"
    assert not os.path.exists(os.path.join(root, "volumes", "b"))


def test_a_failed_mount_is_one_line_and_changes_nothing(root, root_required):
    vol(root, "create", "-o", "type=nosuchfs", "-o", "device=none", "m")
    with pytest.raises(VolumeError, match="mounting volume m"):
        Volumes(root).mount("m")
    assert json.loads(vol(root, "inspect", "m").stdout)[0]["MountCount"] == 0


def test_an_interrupted_removal_is_finished_by_the_next_change(root):
    vol(root, "create", "gone")
    vol(root, "create", "stays")
    with open(os.path.join(root, "volumes", "gone", "_data", "f"), "w") as f:
        f.write("x")
    # a crash after the rename, before the record was dropped
    os.rename(os.path.join(root, "volumes", "gone"), os.path.join(root, "volumes", ".removing-gone"))
    assert vol(root, "ls", "-q").stdout == "stays\n"
    assert vol(root, "exists", "gone", check=False).returncode == 1
    vol(root, "create", "other")
    assert sorted(os.listdir(os.path.join(root, "volumes"))) == [".lock", ".volumes.json", "other", "stays"]
    assert "gone" not in open(os.path.join(root, "volumes", ".volumes.json")).read()


def test_data_without_a_record_is_never_reused_nor_deleted(root):
    vol(root, "create", "x")
    stray = os.path.join(root, "volumes", "stray", "_data")
    os.makedirs(stray)
    with open(os.path.join(stray, "f"), "w") as f:
        f.write("mine")
    p = vol(root, "create", "stray", check=False)
    assert p.returncode == 125 and "holds data without a volume record" in p.stderr
    vol(root, "prune", "-f")
    assert open(os.path.join(stray, "f")).read() == "mine"
    # an empty leftover (a create a crash interrupted) is taken over
    os.makedirs(os.path.join(root, "volumes", "crashed", "_data"))
    assert vol(root, "create", "crashed").stdout == "crashed\n"


def test_concurrent_creates_and_removes_never_corrupt(root):
    import sys

    exe = os.path.join(os.path.dirname(sys.executable), "pallet")
    vol(root, "create", "base")
    procs = [subprocess.Popen([exe, "--root", root, "volume", "create", f"n{i}"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE) for i in range(6)]
    procs += [subprocess.Popen([exe, "--root", root, "volume", "create", "same"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE) for _ in range(4)]
    procs.append(subprocess.Popen([exe, "--root", root, "volume", "rm", "base"], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE))
    rcs = [p.wait(timeout=120) for p in procs]
    assert rcs[:6] == [0] * 6 and rcs[-1] == 0
    assert sorted(rcs[6:10]) == [0, 125, 125, 125]
    assert vol(root, "ls", "-q").stdout.split() == sorted([f"n{i}" for i in range(6)] + ["same"])
    assert sorted(n for n in os.listdir(os.path.join(root, "volumes")) if not n.startswith(".")) == sorted(
        [f"n{i}" for i in range(6)] + ["same"])


def test_a_data_symlink_to_a_mount_elsewhere_is_not_unmounted(root, tmp_path, root_required):
    """A tampered store: ``_data`` replaced by a symlink to someone's mount point. Removing (or
    unmounting) the volume drops the link; the mount it points to stays, with its files."""
    target = tmp_path / "elsewhere"
    target.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(target)], check=True)
    try:
        (target / "f").write_text("x")
        vols = Volumes(root)
        vol(root, "create", "-o", "type=tmpfs", "-o", "device=tmpfs", "v")
        vols.mount("v")
        data = vols.mountpoint("v")
        subprocess.run(["umount", data], check=True)  # behind pallet's back, then the swap
        os.rmdir(data)
        os.symlink(target, data)
        vols.unmount("v")  # the last user lets go: nothing of the volume's is mounted
        assert _mounted(str(target)) == "tmpfs"
        with pytest.raises(VolumeError, match="not a directory"):
            vols.mount("v")
        assert vol(root, "rm", "v").stdout == "v\n"
        assert _mounted(str(target)) == "tmpfs" and (target / "f").read_text() == "x"
    finally:
        subprocess.run(["umount", str(target)])
