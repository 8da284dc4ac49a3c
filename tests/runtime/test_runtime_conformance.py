"""The ground the OCI runtime-tools validation suite covers, in our own tests: root propagation,
hooks' stdin and failure rules, mount propagation options, devices, sysctl, oomScoreAdj,
masked/readonly paths from the suite's point of view."""

from __future__ import annotations

import json
import os

import pytest

from test_runtime_helpers import load_config, save_config


# slave: "master:N" only where the host's mount is shared (on this machine none is): never shared
@pytest.mark.parametrize("prop,tag", [("shared", "shared:"), ("slave", "slave"), ("private", None),
                                      ("unbindable", "unbindable"), ("rslave", "slave")])
def test_rootfs_propagation(rt, bundle, prop, tag):
    cfg = load_config(bundle)
    cfg["process"]["args"] = ["sh", "-c", "awk '$5 == \"/\"' /proc/self/mountinfo"]
    cfg["linux"]["rootfsPropagation"] = prop
    save_config(bundle, cfg)
    r = rt("run", "-b", bundle, "rp")
    assert r.returncode == 0, r.stderr
    optional = r.stdout.split(" - ")[0].split()[6:]
    if tag is None:
        assert optional == []
    elif tag == "slave":
        assert not any(o.startswith("shared:") for o in optional), r.stdout
    else:
        assert any(o.startswith(tag) for o in optional), r.stdout


def test_mount_propagation_options(rt, bundle, tmp_path):
    cfg = load_config(bundle)
    cfg["process"]["args"] = ["sh", "-c", "grep ' /mnt/' /proc/self/mountinfo"]
    opts = ["nosuid", "strictatime", "mode=755", "size=1k"]  # filesystem options on a bind: ignored by the kernel
    for name, extra in (("rslave", ["rbind", "rslave"]), ("private", ["bind", "private"]),
                        ("unbindable", ["bind", "unbindable"]), ("shared", ["bind", "shared"])):
        cfg["mounts"].append({"destination": f"/mnt/{name}", "source": "/etc", "options": opts + extra})
    save_config(bundle, cfg)
    r = rt("run", "-b", bundle, "mp")
    assert r.returncode == 0, r.stderr
    lines = {line.split()[4]: line.split(" - ")[0].split()[6:] for line in r.stdout.splitlines()}
    assert not any(o.startswith("shared:") for o in lines["/mnt/rslave"])  # master: only if the host's is shared
    assert lines["/mnt/private"] == []
    assert "unbindable" in lines["/mnt/unbindable"]
    assert any(o.startswith("shared:") for o in lines["/mnt/shared"])


def test_hooks_stdin_status_and_failing_post_hooks(rt, bundle, tmp_path):
    log = tmp_path / "log"
    hook = tmp_path / "hook.sh"
    hook.write_text(f"#!/bin/sh\nread -r state; echo \"$1 $state\" >> {log}\n")
    hook.chmod(0o755)
    cfg = load_config(bundle)
    cfg["process"]["args"] = ["true"]
    cfg["hooks"] = {
        "prestart": [{"path": str(hook), "args": ["hook", "prestart"]}],
        "poststart": [{"path": "/bin/false"}, {"path": str(hook), "args": ["hook", "poststart"]}],
        "poststop": [{"path": "/bin/false"}, {"path": str(hook), "args": ["hook", "poststop"]}],
    }
    save_config(bundle, cfg)
    r = rt("run", "-b", bundle, "hs")
    assert r.returncode == 0, r.stderr
    assert r.stderr.count("warning: hook") == 2  # each failing post hook warns, the next still runs
    seen = {}
    for line in log.read_text().splitlines():
        kind, state = line.split(" ", 1)
        seen[kind] = json.loads(state)["status"]
    assert seen == {"prestart": "created", "poststart": "running", "poststop": "stopped"}


def test_prestart_failure_fails_create(rt, bundle):
    cfg = load_config(bundle)
    cfg["hooks"] = {"prestart": [{"path": "/bin/false"}]}
    save_config(bundle, cfg)
    r = rt.create("pf", bundle)
    assert r.returncode == 1 and "prestart[0]" in r.stderr
    assert not os.path.exists(os.path.join(rt.root, "pf"))


def test_sysctl_oom_score_adj_and_devices(rt, bundle):
    cfg = load_config(bundle)
    cfg["process"]["args"] = ["sh", "-c", "cat /proc/sys/net/ipv4/ip_forward /proc/self/oom_score_adj; "
                                          "ls -l /dev/fuse | cut -c1,36-50"]
    cfg["process"]["oomScoreAdj"] = 500
    cfg["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1"}
    cfg["linux"]["devices"] = [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229,
                                "fileMode": 0o600, "uid": 0, "gid": 0}]
    save_config(bundle, cfg)
    r = rt("run", "-b", bundle, "sd")
    assert r.returncode == 0, r.stderr
    out = r.stdout.split()
    assert out[:2] == ["1", "500"] and out[2] == "c" and out[3:5] == ["10,", "229"]


def test_pid_file_matches_state(rt, bundle, tmp_path):
    cfg = load_config(bundle)
    cfg["process"]["args"] = ["sleep", "10"]
    save_config(bundle, cfg)
    pf = tmp_path / "pidfile"
    assert rt.create("pf", bundle, "--pid-file", str(pf)).returncode == 0
    assert int(pf.read_text()) == rt.state("pf")["pid"]
