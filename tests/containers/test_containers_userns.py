"""run/create in a user namespace, on the real kernel with real overlay, conmon and
pallet-runtime (side by side with podman 4.3 where cheap): the maps inside, the image's
files root's inside and the mapped host ids' outside, exec, --user, inspect, commit with
container ids, ns:PATH, container:ID, auto, runc, -v :U and :idmap; bad input refused with nothing left behind (the grammar's
other refusals: test_containers_userns_unit.py)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import shutil
import tarfile
import tempfile

import pytest

from conftest import need, release_all, unmount_under
from test_containers_run import CGROUP_PARENT, _mounts_under, _one_line_error, pallet, podman  # noqa: F401

SHOW = "cat /proc/self/uid_map /proc/self/gid_map; id -u; id -g; stat -c '%u:%g %n' / /bin /etc/passwd"


def _left(pallet) -> dict:
    runroot_userns = os.path.join(pallet.runroot, "userns")
    return {"containers": pallet.ids(), "mounts": _mounts_under(pallet.root),
            "userns": sorted(os.listdir(runroot_userns)) if os.path.isdir(runroot_userns) else []}


def _cli(pallet) -> list:
    return [os.path.join(os.path.dirname(sys.executable), "pallet")] + pallet.base


def _inspect(pallet, name) -> dict:
    return json.loads(pallet("inspect", name, check=True).stdout)[0]


def test_uidmap_inside_outside_exec_inspect_commit(pallet):
    before = _left(pallet)
    pallet("run", "-d", "--name", "u10-main", "--uidmap", "0:100000:65536", "-v", "u10-vol:/newvol", pallet.image,
           "sleep", "600", check=True)
    try:
        doc = _inspect(pallet, "u10-main")
        cid = doc["Id"]
        r = pallet("exec", "u10-main", "sh", "-c", SHOW + "; cat /proc/sys/net/ipv4/ping_group_range; "
                   "echo hi > /etc/motd && mkdir /data && touch /data/f && chown 1000:1000 /data/f; "
                   "readlink /proc/self/ns/user; readlink /proc/1/ns/user", check=True)
        lines = r.stdout.splitlines()
        assert [x.split() for x in lines[:2]] == [["0", "100000", "65536"]] * 2
        assert lines[2:4] == ["0", "0"]
        assert lines[4:7] == ["0:0 /", "0:0 /bin", "0:0 /etc/passwd"]  # the image's root files are root's inside
        assert len(lines[7].split()) == 2  # the sysctl is readable (set through containers.conf where given)
        assert lines[8] == lines[9]  # exec joined init's user namespace
        # outside: the container's layer holds host ids
        upper = os.path.join(pallet.root, "overlay", cid, "diff")
        st = os.stat(os.path.join(upper, "etc", "motd"))
        assert (st.st_uid, st.st_gid) == (100000, 100000)
        st = os.stat(os.path.join(upper, "data", "f"))
        assert (st.st_uid, st.st_gid) == (101000, 101000)
        # a new volume is the container's root's (podman's), what it writes there the mapped host ids
        r = pallet("exec", "u10-main", "sh", "-c", "stat -c %u:%g /newvol; touch /newvol/v", check=True)
        assert r.stdout == "0:0\n"
        vol = json.loads(pallet("volume", "inspect", "u10-vol", check=True).stdout)[0]["Mountpoint"]
        assert os.stat(os.path.join(vol, "v")).st_uid == 100000
        # --user with a mapped uid
        r = pallet("exec", "-u", "1000:1000", "u10-main", "sh", "-c", "id -u; id -g; touch /tmp/by-1000", check=True)
        assert r.stdout.split() == ["1000", "1000"]
        assert os.stat(os.path.join(upper, "tmp", "by-1000")).st_uid == 101000
        hc = doc["HostConfig"]
        assert hc["UsernsMode"] == "private"
        assert hc["IDMappings"] == {"UidMap": ["0:100000:65536"], "GidMap": ["0:100000:65536"]}
        assert os.listdir(os.path.join(pallet.runroot, "userns")) == [cid[:12]]
        # --userns ns:PATH: another container joins this one's namespace
        path = f"/proc/{doc['State']['Pid']}/ns/user"
        r = pallet("run", "--name", "u10-joiner", "--network", "none", "--userns", f"ns:{path}", pallet.image,
                   "sh", "-c", SHOW + "; readlink /proc/self/ns/user", check=True)
        joined = r.stdout.splitlines()
        assert joined[0].split() == ["0", "100000", "65536"] and joined[4:6] == ["0:0 /", "0:0 /bin"]
        assert joined[7] == "user:[%d]" % os.stat(path).st_ino
        assert _inspect(pallet, "u10-joiner")["HostConfig"]["UsernsMode"] == f"ns:{path}"
        pallet("rm", "u10-joiner", check=True)
        # --userns container:NAME: the same namespace, its maps (the store's layers mapped alike)
        r = pallet("run", "--rm", "--network", "none", "--userns", "container:u10-main", pallet.image,
                   "sh", "-c", SHOW + "; readlink /proc/self/ns/user", check=True)
        joined = r.stdout.splitlines()
        assert joined[0].split() == ["0", "100000", "65536"] and joined[4] == "0:0 /"
        assert joined[7] == lines[8]  # the user namespace of u10-main's exec above
        # the id-mapped clones of the image's layers were detached once the overlay held them
        assert not [m for m in _mounts_under(pallet.root) if "/idmapped" in m]
        assert not os.path.exists(os.path.join(pallet.root, "overlay", cid, "idmapped"))
        # cp in: the container's root owns it (host uid 100000); cp out and export: container ids
        src = os.path.join(pallet.runroot, "u10-hostfile")
        with open(src, "w") as f:
            f.write("x\n")
        pallet("cp", src, "u10-main:/copied", check=True)
        os.unlink(src)
        assert os.stat(os.path.join(upper, "copied")).st_uid == 100000
        assert pallet("exec", "u10-main", "stat", "-c", "%u:%g", "/copied", check=True).stdout == "0:0\n"
        out = subprocess.run([*_cli(pallet), "cp", "u10-main:/data", "-"], capture_output=True, timeout=60, check=True)
        with tarfile.open(fileobj=io.BytesIO(out.stdout)) as t:
            assert {(m.name, m.uid, m.gid) for m in t} == {("data", 0, 0), ("data/f", 1000, 1000)}
        out = subprocess.run([*_cli(pallet), "export", "u10-main"], capture_output=True, timeout=60, check=True)
        with tarfile.open(fileobj=io.BytesIO(out.stdout)) as t:
            owners = {m.name: (m.uid, m.gid) for m in t}
        assert owners["etc/passwd"] == (0, 0) and owners["data/f"] == (1000, 1000)
        pallet("stop", "-t", "0", "u10-main", check=True)
        # commit: the container's ids, unshifted, as podman stores them
        pallet("commit", "-q", "u10-main", "localhost/u10-committed", check=True)
        r = pallet("run", "--rm", "--network", "none", "localhost/u10-committed", "stat", "-c", "%u:%g %n",
                   "/etc/motd", "/data/f", "/tmp/by-1000", check=True)
        assert r.stdout.splitlines() == ["0:0 /etc/motd", "1000:1000 /data/f", "1000:1000 /tmp/by-1000"]
    finally:
        pallet("rm", "-f", "-t", "0", "u10-joiner", "u10-main")
        pallet("rmi", "-f", "localhost/u10-committed")
        pallet("volume", "rm", "-f", "u10-vol")
    assert _left(pallet) == before


@pytest.mark.parametrize("maps", [["--uidmap", "0:200000:5000", "--gidmap", "0:300000:5000"],
                                  ["--uidmap", "0:200000:5000", "--user", "1000"]])
def test_same_view_as_podman(pallet, podman, maps):
    before = _left(pallet)
    flags = ["--rm", "--network", "none", *maps]
    mine = pallet("run", *flags, pallet.image, "sh", "-c", SHOW)
    theirs = podman("run", *flags, podman.image, "sh", "-c", SHOW)
    assert mine.returncode == theirs.returncode == 0, (mine.stderr, theirs.stderr)
    assert mine.stdout == theirs.stdout
    assert "200000" in mine.stdout
    assert _left(pallet) == before  # --rm: no container, mount or user namespace file left


def _has_containers_subids() -> bool:
    try:
        with open("/etc/subuid") as u, open("/etc/subgid") as g:
            return any(line.startswith("containers:") for line in u) and \
                any(line.startswith("containers:") for line in g)
    except OSError:
        return False


def test_auto_takes_ranges_from_subuid_or_says_why(pallet):
    before = _left(pallet)
    if not _has_containers_subids():  # this host (the file is the admin's: never written by a test)
        r = pallet("run", "--rm", "--network", "none", "--userns", "auto", pallet.image, "true")
        assert r.returncode == 125
        assert 'no ranges for user "containers" in /etc/subuid' in _one_line_error(r.stderr)
        assert _left(pallet) == before
        return
    try:
        for n in ("u10-auto1", "u10-auto2"):
            pallet("create", "--name", n, "--network", "none", "--userns", "auto:size=2048", pallet.image, "true",
                   check=True)
        maps = [_inspect(pallet, n)["HostConfig"]["IDMappings"]["UidMap"][0].split(":")
                for n in ("u10-auto1", "u10-auto2")]
        (c1, h1, n1), (c2, h2, n2) = [[int(x) for x in m] for m in maps]
        assert c1 == c2 == 0 and n1 == n2 == 2048
        assert h1 + n1 <= h2 or h2 + n2 <= h1  # never overlapping
        r = pallet("start", "-a", "u10-auto1")
        assert r.returncode == 0, r.stderr
    finally:
        pallet("rm", "-f", "-t", "0", "u10-auto1", "u10-auto2")


@pytest.mark.parametrize("flags,words", [
    (["--uidmap", "0:100000:100", "--uidmap", "50:200000:100"], "50:200000:100 conflicts with other mappings"),
    (["--uidmap", "1:100000:100"], "container ID 0 cannot be mapped to a host ID"),
    (["--uidmap", "0:100000:100", "--user", "5000"], "container ID 5000 cannot be mapped to a host ID"),
    (["--uidmap", "0:100000:65536", "--user", "nosuchuser"], "nosuchuser"),
    (["--userns", "container:u10-no-such-container"], "u10-no-such-container"),
    (["-v", "/tmp:/i:idmap"], "idmap needs a user namespace"),
])
def test_bad_input_is_one_line_and_leaves_nothing(pallet, flags, words):
    before = _left(pallet)
    r = pallet("run", "--rm", "--network", "none", *flags, pallet.image, "true")
    assert r.returncode == 125, r.stderr
    assert words in _one_line_error(r.stderr)
    assert _left(pallet) == before


def test_runc_joins_the_namespace_pallet_made(pallet):
    """runc 1.1 wants the maps with a namespace it joins, and reaches the rootfs by path as the
    mapped root: a store whose directories it can walk (pytest's tmp is 0700), the container's
    layer directory the mapped root's (containers/storage's rule)."""
    runc = need("runc")
    work = tempfile.mkdtemp(prefix="pallet-u10-")
    os.chmod(work, 0o755)
    base = [os.path.join(os.path.dirname(sys.executable), "pallet"), "--root", work + "/root",
            "--runroot", work + "/run"]

    def p(*args):
        return subprocess.run(base + list(args), capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)

    try:
        r = p("pull", "-q", f"oci:{pallet.layout}:v1")
        assert r.returncode == 0, r.stderr
        r = p("run", "--rm", "--network", "none", "--cgroup-parent", CGROUP_PARENT, "--runtime", runc,
              "--uidmap", "0:500000:65536", r.stdout.strip(), "sh", "-c",
              "cat /proc/self/uid_map; stat -c %u /bin; cat /proc/sys/net/ipv4/ping_group_range")
        assert r.returncode == 0, r.stderr
        lines = r.stdout.splitlines()
        assert lines[0].split() == ["0", "500000", "65536"] and lines[1] == "0"
        assert not _mounts_under(work + "/root") and not os.listdir(work + "/run/userns")
    finally:
        release_all(lambda: p("rm", "-a", "-f", "-t", "0"), lambda: unmount_under(work),
                    lambda: shutil.rmtree(work, ignore_errors=True))


def test_volume_U_gives_the_source_to_the_mapped_user_and_idmap_maps_it(pallet, tmp_path):
    idm = tmp_path / "i"
    idm.mkdir()
    (idm / "f").write_text("host root's")
    src = tmp_path / "h"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "f").write_text("x")
    target = tmp_path / "not-below"
    target.write_text("must keep its owner")
    (src / "link").symlink_to(target)
    r = pallet("run", "--rm", "--network", "none", "-v", f"{src}:/h:U", "-v", f"{idm}:/i:idmap", "--user", "1000:1000",
               "--uidmap", "0:100000:65536", pallet.image, "sh", "-c", "stat -c %u:%g /h /h/sub/f /i/f; touch /h/sub/new")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["1000:1000", "1000:1000", "0:0"]  # :idmap: the host root's file is root's
    for p in (src, src / "sub", src / "sub" / "f", src / "sub" / "new"):
        assert (os.lstat(p).st_uid, os.lstat(p).st_gid) == (101000, 101000), p
    assert os.lstat(src / "link").st_uid == 101000 and os.stat(target).st_uid == 0  # never followed
