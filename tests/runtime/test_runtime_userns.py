"""pallet-runtime with a user namespace as podman gives it one: a network namespace joined by
path (the host's user namespace owns it), a bundle and bind sources the mapped root cannot
walk to (pytest's tmp is 0700), sysfs bound from the host when it cannot be mounted. runc and
crun are the reference: namespaces by path joined before the user namespace, sources opened
before it."""

from __future__ import annotations

import os
import subprocess
import uuid

import pytest

from test_runtime_helpers import load_config, make_bundle, save_config


@pytest.fixture
def netns():
    name = "pallet-u10-" + uuid.uuid4().hex[:8]
    subprocess.run(["ip", "netns", "add", name], check=True)
    yield "/run/netns/" + name
    subprocess.run(["ip", "netns", "del", name], check=False)


def _mapped_bundle(tmp_path, host):
    """A busybox bundle whose files belong to the mapped root, as podman's chowned copy."""
    bundle = make_bundle(str(tmp_path / "bundle"))
    for d, dirs, files in os.walk(os.path.join(bundle, "rootfs")):
        os.lchown(d, host, host)
        for n in dirs + files:
            os.lchown(os.path.join(d, n), host, host)
    return bundle


def test_userns_joins_a_host_netns_and_reaches_closed_paths(rt, tmp_path, netns):
    assert os.stat(tmp_path).st_mode & 0o777 == 0o700  # nothing below is reachable by host uid 100000
    bundle = _mapped_bundle(tmp_path, 100000)
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 from-a-closed-dir\n")
    hosts.chmod(0o644)  # readable by anyone who can reach it
    cfg = load_config(bundle)
    cfg["process"]["args"] = ["sh", "-c", "cat /proc/self/uid_map; id -u; cat /etc/hosts; "
                                          "ls /sys/class/net | grep -c lo; readlink /proc/self/ns/net"]
    for ns in cfg["linux"]["namespaces"]:
        if ns["type"] == "network":
            ns["path"] = netns
    cfg["linux"]["namespaces"].append({"type": "user"})
    cfg["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    cfg["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    cfg["mounts"].append({"destination": "/etc/hosts", "type": "bind", "source": str(hosts), "options": ["rbind"]})
    save_config(bundle, cfg)
    r = rt("run", "-b", bundle, "u10-closed")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["0", "100000", "65536"] and lines[1] == "0"
    assert lines[2] == "127.0.0.1 from-a-closed-dir"  # a file in a directory closed to the mapped root
    assert lines[3] == "1"
    inode = os.stat(netns).st_ino
    assert lines[4] == f"net:[{inode}]"  # the namespace given by path, joined


def test_userns_rootfs_clone_is_gone_after_delete(rt, tmp_path):
    bundle = _mapped_bundle(tmp_path, 200000)
    cfg = load_config(bundle)
    cfg["process"]["args"] = ["true"]
    cfg["linux"]["namespaces"].append({"type": "user"})
    cfg["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 200000, "size": 65536}]
    cfg["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 200000, "size": 65536}]
    save_config(bundle, cfg)
    with open("/proc/self/mountinfo") as f:
        before = f.read().count(str(tmp_path))
    r = rt("run", "-b", bundle, "u10-gone")
    assert r.returncode == 0, r.stderr
    with open("/proc/self/mountinfo") as f:
        assert f.read().count(str(tmp_path)) == before


def test_id_mapped_bind_mount(rt, tmp_path):
    """``mounts[].uidMappings`` (runtime-spec 1.1, crun's idmap mounts): a host directory of the
    host's root, mapped with the container's maps, is root's inside, and what the container
    writes there lands as the host's root on disk (podman's ``:idmap``)."""
    bundle = _mapped_bundle(tmp_path, 100000)
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "by-host-root").write_text("x")
    os.chown(shared / "by-host-root", 0, 0)
    cfg = load_config(bundle)
    cfg["process"]["args"] = ["sh", "-c", "stat -c %u:%g /shared /shared/by-host-root; touch /shared/new; "
                                          "stat -c %u:%g /plain"]
    cfg["linux"]["namespaces"].append({"type": "user"})
    maps = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    cfg["linux"]["uidMappings"] = cfg["linux"]["gidMappings"] = maps
    cfg["mounts"].append({"destination": "/shared", "type": "bind", "source": str(shared), "options": ["rbind"],
                          "uidMappings": maps, "gidMappings": maps})
    cfg["mounts"].append({"destination": "/plain", "type": "bind", "source": str(shared), "options": ["rbind"]})
    save_config(bundle, cfg)
    r = rt("run", "-b", bundle, "u10-idmap")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["0:0", "0:0", "65534:65534"]  # the same directory unmapped: nobody's
    st = os.stat(shared / "new")
    assert (st.st_uid, st.st_gid) == (0, 0)


def test_id_mapped_mount_rules(rt, bundle):
    maps = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    cfg = load_config(bundle)
    cfg["mounts"].append({"destination": "/m", "type": "bind", "source": "/tmp", "options": ["rbind"],
                          "uidMappings": maps, "gidMappings": maps})
    save_config(bundle, cfg)
    r = rt("run", "-b", bundle, "u10-idmap-nouserns")
    assert r.returncode == 1 and "uidMappings" in r.stderr and "need a user namespace" in r.stderr
    cfg["mounts"][-1] = {"destination": "/m", "type": "tmpfs", "source": "tmpfs", "uidMappings": maps,
                         "gidMappings": maps}
    save_config(bundle, cfg)
    r = rt("run", "-b", bundle, "u10-idmap-tmpfs")
    assert r.returncode == 1 and "only bind mounts" in r.stderr
