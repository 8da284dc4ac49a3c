"""pallet-runtime spec, features and config.json validation (refused before anything exists)."""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest

from pallet.errors import InvalidDocument
from pallet.runtime import spec
from test_runtime_helpers import PALLET_RUNTIME, Runtime, load_config, make_bundle, mounts_under, need, save_config


def test_spec_writes_runc_like_default(tmp_path):
    r = subprocess.run([PALLET_RUNTIME, "spec", "--bundle", str(tmp_path)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    cfg = load_config(str(tmp_path))
    spec.validate(cfg)
    assert cfg["root"] == {"path": "rootfs", "readonly": True}
    assert {n["type"] for n in cfg["linux"]["namespaces"]} == {"pid", "network", "ipc", "uts", "mount"}
    assert cfg["process"]["noNewPrivileges"] is True
    # a second spec refuses to overwrite
    r = subprocess.run([PALLET_RUNTIME, "spec", "--bundle", str(tmp_path)], capture_output=True, text=True)
    assert r.returncode == 1 and "exists" in r.stderr


def test_spec_rootless(tmp_path):
    subprocess.run([PALLET_RUNTIME, "spec", "--rootless", "--bundle", str(tmp_path)], check=True)
    cfg = load_config(str(tmp_path))
    spec.validate(cfg)
    types = {n["type"] for n in cfg["linux"]["namespaces"]}
    assert "user" in types and "network" not in types
    assert cfg["linux"]["uidMappings"] == [{"containerID": 0, "hostID": os.geteuid(), "size": 1}]


@pytest.mark.parametrize("rootless", [False, True])
def test_spec_is_runc_specs_default(tmp_path, rootless):
    """``pallet-runtime spec`` (oci.runtime_spec.default_config) writes what ``runc spec`` does,
    but for the hostname and, rootless, the cgroup mount (no cgroup namespace to mount it in)."""
    from pallet.oci.runtime_spec import default_config

    runc = need("runc")
    flag = ["--rootless"] if rootless else []
    (tmp_path / "runc").mkdir()
    subprocess.run([runc, "spec", *flag], cwd=tmp_path / "runc", check=True)
    want = load_config(str(tmp_path / "runc"))
    assert want["hostname"] == "runc"
    want["hostname"] = "pallet"
    if rootless:
        want["mounts"] = [m for m in want["mounts"] if m["type"] != "cgroup"]
    (tmp_path / "ours").mkdir()
    subprocess.run([PALLET_RUNTIME, "spec", *flag, "--bundle", str(tmp_path / "ours")], check=True)
    assert load_config(str(tmp_path / "ours")) == want
    assert default_config(rootless, os.geteuid(), os.getegid()) == want


def test_runc_spec_is_accepted(tmp_path):
    runc = need("runc")
    subprocess.run([runc, "spec"], cwd=tmp_path, check=True)
    spec.validate(load_config(str(tmp_path)))


def test_features_json():
    r = subprocess.run([PALLET_RUNTIME, "features"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    f = json.loads(r.stdout)
    assert "createContainer" in f["hooks"] and "rbind" in f["mountOptions"]
    assert "CAP_SYS_ADMIN" in f["linux"]["capabilities"]
    assert set(f["linux"]["namespaces"]) >= {"pid", "mount", "user", "cgroup"}


BAD = [
    (lambda c: c.pop("root"), "root: is required"),
    (lambda c: c["process"].__setitem__("args", "sh"), "process.args: must be an array"),
    (lambda c: c["process"]["user"].__setitem__("uid", "0"), "process.user.uid: must be an integer"),
    (lambda c: c["linux"]["namespaces"].append({"type": "foo"}), "linux.namespaces[5].type: unknown namespace"),
    (lambda c: c["linux"]["namespaces"].append({"type": "pid"}), "linux.namespaces[5].type"),
    (lambda c: c["mounts"].append({"destination": "/x", "type": "bind", "source": "/tmp",
                                   "options": ["rbind", ""]}), "mounts[7].options[1]: bad mount option"),
    (lambda c: c.__setitem__("ociVersion", "invalid"), "ociVersion: 'invalid' is not a runtime-spec 1.x"),
    (lambda c: c["mounts"].append({"destination": "/x", "type": "tmpfs", "options": ["ro,nosuid"]}),
     "mounts[7].options[0]: bad mount option"),
    (lambda c: c["mounts"].append({"destination": "x", "type": "tmpfs"}), "mounts[7].destination"),
    (lambda c: c["process"]["capabilities"]["bounding"].append("CAP_NOPE"), "process.capabilities.bounding[3]"),
    (lambda c: c["process"]["rlimits"].append({"type": "RLIMIT_BOGUS", "soft": 1, "hard": 1}),
     "process.rlimits[1].type"),
    (lambda c: c["linux"].__setitem__("sysctl", {"kernel.panic": "1"}), "linux.sysctl.kernel.panic"),
    (lambda c: c.__setitem__("hooks", {"prestart": [{"path": "relative"}]}), "hooks.prestart[0].path"),
    (lambda c: c["linux"].__setitem__("seccomp", {"defaultAction": "SCMP_ACT_NOPE"}), "linux.seccomp.defaultAction"),
    (lambda c: c["linux"].__setitem__("seccomp", {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 9, "value": 1, "op": "SCMP_CMP_EQ"}]}]}),
     "linux.seccomp.syscalls[0].args[0].index"),
    (lambda c: c["linux"].__setitem__("seccomp", {"defaultAction": "SCMP_ACT_ALLOW",
                                                  "listenerPath": "/run/agent.sock"}), "linux.seccomp.listenerPath"),
    (lambda c: c["linux"]["resources"].__setitem__("memory", {"limit": "1g"}), "linux.resources.memory.limit"),
    (lambda c: c["linux"]["resources"].__setitem__("cpu", {"cpus": "zero"}), "linux.resources.cpu.cpus"),
    (lambda c: c["linux"]["resources"].__setitem__("hugepageLimits", [{"pageSize": "2M", "limit": 1}]),
     "linux.resources.hugepageLimits[0].pageSize"),
    (lambda c: c["linux"]["resources"].__setitem__("devices", [{"allow": False, "access": "rwx"}]),
     "linux.resources.devices[0].access"),
    (lambda c: c["linux"]["resources"].__setitem__("blkio", {}), "linux.resources.blkio: unknown resource"),
    # valid, but this host cannot: refused before anything exists, never ignored
    (lambda c: c["linux"]["resources"].__setitem__("network", {"classID": 1}), "linux.resources.network.classID"),
    (lambda c: c["linux"]["resources"].__setitem__("unified", {"memory.high": "1G"}),
     "linux.resources.unified.memory.high"),
    (lambda c: c["linux"].__setitem__("cgroupsPath", "system.slice:pallet:x"), "linux.cgroupsPath"),
    # mounts inside /proc (runc: CVE-2019-16884/CVE-2019-19921)
    (lambda c: c["mounts"].append({"destination": "/proc/sys", "type": "bind", "source": "/tmp",
                                   "options": ["rbind"]}), "mounts[7].destination: '/proc/sys' is inside /proc"),
    (lambda c: c["mounts"].append({"destination": "/x/../proc//self", "type": "tmpfs", "source": "t"}),
     "mounts[7].destination: '/x/../proc//self' is inside /proc"),
    (lambda c: c["mounts"].__setitem__(0, {"destination": "/proc", "type": "tmpfs", "source": "t"}),
     "mounts[0].destination: '/proc': only a proc filesystem"),
    # NUL bytes (C strings) and hostile nesting: one line naming the field
    (lambda c: c["process"]["args"].append("a\x00b"), "process.args[1]: 'a\\x00b' contains a NUL byte"),
    (lambda c: c["process"]["env"].append("A=\x00"), "process.env[2]: 'A=\\x00' contains a NUL byte"),
    (lambda c: c.__setitem__("hostname", "h\x00"), "hostname: 'h\\x00' contains a NUL byte"),
    (lambda c: c["mounts"][0].__setitem__("source", "pr\x00oc"), "mounts[0].source: 'pr\\x00oc' contains a NUL"),
    (lambda c: c.__setitem__("hooks", {"prestart": [{"path": "/bin/true", "args": ["t", "\x00"]}]}),
     "hooks.prestart[0].args[1]: '\\x00' contains a NUL byte"),
    (lambda c: c["linux"].__setitem__("sysctl", {"net.a\x00": "1"}), "linux.sysctl: key 'net.a\\x00' contains a NUL"),
    (lambda c: c.__setitem__("x", json.loads("[" * 200 + "]" * 200)), "nested more than 32 levels deep"),
]


@pytest.mark.parametrize("breakit,field", BAD, ids=[b[1].split(":")[0] for b in BAD])
def test_bad_config_refused_naming_field_and_leaving_nothing(tmp_path, breakit, field):
    bundle = make_bundle(str(tmp_path / "b"), ["true"])
    cfg = load_config(bundle)
    breakit(cfg)
    save_config(bundle, cfg)
    rt = Runtime(PALLET_RUNTIME, str(tmp_path / "state"))
    try:
        before = mounts_under(bundle)
        r = rt.create("bad", bundle)
        assert r.returncode == 1
        assert field in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
        assert not os.path.exists(os.path.join(rt.root, "bad"))
        assert mounts_under(bundle) == before
        r = rt("run", "--bundle", bundle, "bad2")
        assert r.returncode == 1 and field in r.stderr
    finally:
        rt.cleanup()


def test_no_process_creates_but_start_refuses(tmp_path):
    bundle = make_bundle(str(tmp_path / "b"))
    cfg = load_config(bundle)
    del cfg["process"]
    save_config(bundle, cfg)
    rt = Runtime(PALLET_RUNTIME, str(tmp_path / "state"))
    try:
        assert rt.create("np", bundle).returncode == 0
        assert rt.state("np")["status"] == "created"
        r = rt("start", "np")
        assert r.returncode == 1 and "no process" in r.stderr
        deadline = time.monotonic() + 5
        while rt.state("np")["status"] != "stopped":
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert rt("delete", "np").returncode == 0
    finally:
        rt.cleanup()


def test_json_nested_50k_deep_is_one_line(tmp_path):
    bundle = make_bundle(str(tmp_path / "b"))
    with open(os.path.join(bundle, "config.json"), "w") as f:
        f.write("[" * 50000 + "]" * 50000)
    rt = Runtime(PALLET_RUNTIME, str(tmp_path / "state"))
    r = rt("run", "--bundle", bundle, "x")
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "config.json: not JSON: nested too deeply" in r.stderr


def test_not_json_refused(tmp_path):
    bundle = make_bundle(str(tmp_path / "b"))
    with open(os.path.join(bundle, "config.json"), "w") as f:
        f.write("{ not json")
    rt = Runtime(PALLET_RUNTIME, str(tmp_path / "state"))
    r = rt("run", "--bundle", bundle, "x")
    assert r.returncode == 1 and "not JSON" in r.stderr and "Traceback" not in r.stderr


def test_validate_pure():
    cfg = spec.default_spec()
    spec.validate(cfg)
    cfg["process"]["oomScoreAdj"] = 5000
    with pytest.raises(InvalidDocument, match="process.oomScoreAdj"):
        spec.validate(cfg)
    flags, prop, _attrs, data, _ = spec.parse_mount_options(["rbind", "ro", "rprivate", "nosuid", "size=1m"])
    assert flags & spec.MS_BIND and flags & spec.MS_REC and flags & spec.MS_RDONLY and flags & spec.MS_NOSUID
    assert prop == [spec.MS_PRIVATE | spec.MS_REC] and data == "size=1m"
    flags, *_ = spec.parse_mount_options(["ro", "rw"])
    assert not flags & spec.MS_RDONLY
