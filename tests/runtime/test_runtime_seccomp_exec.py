"""pallet-runtime seccomp (libseccomp through pyseccomp) and exec, on the real kernel."""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest

from test_runtime_helpers import load_config, save_config

PODMAN_SECCOMP = "/usr/share/containers/seccomp.json"


def with_seccomp(bundle, script, seccomp, **process):
    cfg = load_config(bundle)
    cfg["process"]["args"] = ["sh", "-c", script]
    cfg["process"].update(process)
    cfg["linux"]["seccomp"] = seccomp
    cfg["mounts"].append({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs"})
    save_config(bundle, cfg)
    return cfg


# ---------------------------------------------------------------- seccomp

def test_denied_syscall_fails_with_the_configured_errno(rt, bundle):
    with_seccomp(bundle, "mkdir /tmp/a; chmod 700 /tmp; touch /tmp/f && echo touch-ok; "
                         "mkdir -m 700 /tmp/b 2>/dev/null || echo mkdir-mode-denied",
                 {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
                  "syscalls": [
                      {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38,
                       "args": [{"index": 1, "value": 0o777, "op": "SCMP_CMP_EQ"}]},   # mkdir's default mode
                      {"names": ["mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13,
                       "args": [{"index": 2, "value": 0o700, "op": "SCMP_CMP_EQ"}]},
                      {"names": ["chmod", "fchmodat"], "action": "SCMP_ACT_ERRNO"},   # EPERM by default
                      {"names": ["a_syscall_from_the_future"], "action": "SCMP_ACT_ERRNO"}]})
    r = rt("run", "-b", bundle, "sc")
    assert r.returncode == 0, r.stderr
    assert "Function not implemented" in r.stderr  # ENOSYS = 38 for mkdir 0777
    assert "chmod: /tmp: Operation not permitted" in r.stderr
    assert r.stdout.split() == ["touch-ok", "mkdir-mode-denied"]


def test_kill_action_and_flags(rt, bundle):
    with_seccomp(bundle, "echo before; (sync); echo status=$?; sync; echo status=$?",
                 {"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_TSYNC"],
                  "syscalls": [{"names": ["sync"], "action": "SCMP_ACT_KILL_PROCESS"}]})
    r = rt("run", "-b", bundle, "sc3")
    assert r.stdout.split() == ["before", "status=159", "status=159"], (r.stdout, r.stderr)  # SIGSYS
    assert r.stderr.count("Bad system call") == 2
    with_seccomp(bundle, "true", {"defaultAction": "SCMP_ACT_ALLOW", "flags": [
        "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]})
    r = rt("run", "-b", bundle, "sc4")
    assert r.returncode == 1 and "linux.seccomp.flags[0]" in r.stderr


def test_seccomp_applies_with_no_new_privileges_false_too(rt, bundle):
    with_seccomp(bundle, "grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status; mkdir /tmp/x",
                 {"defaultAction": "SCMP_ACT_ALLOW",
                  "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]},
                 noNewPrivileges=False)
    r = rt("run", "-b", bundle, "nnp0")
    assert r.stdout.split() == ["NoNewPrivs:", "0", "Seccomp:", "2"], (r.stdout, r.stderr)
    assert "Operation not permitted" in r.stderr


def test_podman_default_profile(rt, bundle):
    assert os.path.exists(PODMAN_SECCOMP), "podman's seccomp profile (containers-common) is missing"
    profile = json.load(open(PODMAN_SECCOMP))
    # the profile's conditional parts are for a CRI to resolve; an OCI runtime gets the plain form
    syscalls = []
    for s in profile["syscalls"]:
        if s.get("excludes") or (s.get("includes") or {}).get("caps"):
            continue
        syscalls.append({k: v for k, v in s.items() if k in ("names", "action", "args", "errnoRet")})
    arches = [a for m in profile.get("archMap") or () if m["architecture"] == "SCMP_ARCH_X86_64"
              for a in [m["architecture"], *m["subArchitectures"]]]
    seccomp = {"defaultAction": profile["defaultAction"], "defaultErrnoRet": profile.get("defaultErrnoRet"),
               "architectures": arches, "syscalls": syscalls}
    with_seccomp(bundle, "echo hi > /tmp/f && cat /tmp/f; ls / | wc -l; grep Seccomp: /proc/self/status; "
                         "unshare -m true 2>/dev/null || echo unshare-denied", seccomp)
    r = rt("run", "-b", bundle, "pd")
    assert r.returncode == 0, r.stderr
    out = r.stdout.split()
    assert out[0] == "hi" and int(out[1]) > 5 and out[2:4] == ["Seccomp:", "2"] and out[4] == "unshare-denied"


# ---------------------------------------------------------------- exec

@pytest.fixture
def running(rt, bundle):
    cfg = load_config(bundle)
    cfg["process"]["args"] = ["sleep", "60"]
    cfg["process"]["env"].append("FROM_SPEC=1")
    cfg["hostname"] = "exectest"
    cfg["linux"]["resources"]["pids"] = {"limit": 50}
    save_config(bundle, cfg)
    assert rt.create("ex", bundle).returncode == 0
    assert rt("start", "ex").returncode == 0
    return "ex"


def test_exec_joins_namespaces_and_cgroups(rt, running):
    st = rt.state(running)
    r = rt("exec", running, "sh", "-c", "hostname; echo $FROM_SPEC; ps -o pid,comm | grep -c sleep; "
                                        "for n in mnt net ipc; do readlink /proc/self/ns/$n; done; exit 7")
    assert r.returncode == 7, r.stderr
    lines = r.stdout.split()
    assert lines[:3] == ["exectest", "1", "1"]
    init = st["pid"]
    assert lines[3:] == [os.readlink(f"/proc/{init}/ns/{n}") for n in ("mnt", "net", "ipc")]
    # while it runs, the exec'd process is in the container's cgroups
    p = subprocess.Popen([rt.binary, "--root", rt.root, "exec", running, "sleep", "5"])
    try:
        deadline = time.monotonic() + 5
        while len(json.loads(rt("ps", "-f", "json", running).stdout)) < 2:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert rt("kill", "--all", running, "KILL").returncode == 0
        assert p.wait(10) == 128 + 9
    finally:
        p.kill()
        p.wait()


def test_exec_flags(rt, running, tmp_path):
    r = rt("exec", "--user", "1000:1000", "--additional-gids", "10", "--env", "A=b", "-e", "C=d", "--cwd", "/tmp",
           running, "sh", "-c", "id -u; id -G; echo $A$C; pwd; grep CapEff /proc/self/status")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["1000", "1000", "10", "bd", "/tmp", "CapEff:", "0000000000000000"]
    r = rt("exec", "--cap", "CAP_SYS_ADMIN", running, "grep", "CapBnd", "/proc/self/status")
    assert r.stdout.split() == ["CapBnd:", "0000000020200420"]
    r = rt("exec", "--no-new-privs", running, "grep", "NoNewPrivs", "/proc/self/status")
    assert r.stdout.split() == ["NoNewPrivs:", "1"]
    proc = {"args": ["sh", "-c", "echo $P; id -u; pwd"], "env": ["PATH=/bin", "P=fromjson"], "cwd": "/etc",
            "user": {"uid": 5, "gid": 5}, "terminal": False}
    pf = tmp_path / "p.json"
    pf.write_text(json.dumps(proc))
    r = rt("exec", "--process", str(pf), running)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["fromjson", "5", "/etc"]
    pidfile = tmp_path / "exec.pid"
    r = rt("exec", "--detach", "--pid-file", str(pidfile), running, "sleep", "30", stdout=subprocess.DEVNULL,
           stderr=subprocess.DEVNULL, capture_output=False)
    assert r.returncode == 0, r.stderr
    pid = int(pidfile.read_text())
    assert pid in json.loads(rt("ps", "-f", "json", running).stdout)


def test_exec_errors_are_one_line(rt, running, tmp_path):
    for args, msg in ((["nope"], "executable file not found"), (["--user", "x", "true"], "--user"),
                      (["--apparmor", "p", "true"], "AppArmor"), (["--tty", "true"], "--console-socket")):
        r = rt("exec", running, *args) if args[0] not in ("--user", "--apparmor", "--tty") else \
            rt("exec", args[0], args[1], running, *args[2:]) if args[0] != "--tty" else rt("exec", "--tty", running, "true")
        assert r.returncode != 0 and msg in r.stderr, (args, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    pf = tmp_path / "bad.json"
    pf.write_text(json.dumps({"args": "sh", "cwd": "/", "user": {"uid": 0, "gid": 0}}))
    r = rt("exec", "--process", str(pf), running)
    assert r.returncode == 1 and "process.args" in r.stderr
    r = rt("exec", "nosuch", "true")
    assert r.returncode == 1 and "does not exist" in r.stderr
    assert rt("pause", running).returncode == 0
    r = rt("exec", running, "true")
    assert r.returncode == 1 and "paused" in r.stderr
    assert rt("resume", running).returncode == 0


def test_exec_with_seccomp_of_the_container(rt, bundle):
    cfg = with_seccomp(bundle, "sleep 60", {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}]})
    save_config(bundle, cfg)
    assert rt.create("exs", bundle).returncode == 0
    assert rt("start", "exs").returncode == 0
    r = rt("exec", "exs", "mkdir", "/tmp/x")
    assert r.returncode == 1 and "Function not implemented" in r.stderr
