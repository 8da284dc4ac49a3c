"""pallet-runtime on the real kernel: lifecycle, Linux setup, hooks, escapes, and runc side by side."""

from __future__ import annotations

import json
import os
import stat
import time

import pytest

from test_runtime_helpers import Runtime, load_config, make_bundle, mounts_under, need, save_config


@pytest.fixture
def runc(tmp_path):
    r = Runtime(need("runc"), str(tmp_path / "runc-state"))
    yield r
    r.cleanup()


def set_args(bundle, *args, **process):
    cfg = load_config(bundle)
    cfg["process"]["args"] = list(args)
    cfg["process"].update(process)
    save_config(bundle, cfg)
    return cfg


def sh(bundle, script, **process):
    return set_args(bundle, "sh", "-c", script, **process)


def test_run_echo(rt, bundle):
    set_args(bundle, "echo", "hello from pallet")
    r = rt("run", "--bundle", bundle, "c1")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "hello from pallet\n"
    assert not os.path.exists(os.path.join(rt.root, "c1"))  # run without --keep deletes


@pytest.mark.parametrize("code", [0, 1, 3, 42])
def test_exit_code_propagates(rt, bundle, code):
    sh(bundle, f"exit {code}")
    assert rt("run", "-b", bundle, "c").returncode == code


def test_killed_by_signal_exit_code(rt, bundle):
    import subprocess

    set_args(bundle, "sleep", "60")
    p = subprocess.Popen([rt.binary, "--root", rt.root, "run", "-b", bundle, "c"])
    try:
        deadline = time.monotonic() + 5
        while rt("state", "c").returncode or rt.state("c")["status"] != "running":
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert rt("kill", "c", "KILL").returncode == 0
        assert p.wait(10) == 128 + 9
    finally:
        p.kill()
        p.wait()


def test_create_state_start_delete(rt, bundle, tmp_path):
    set_args(bundle, "sleep", "60")
    pidfile = str(tmp_path / "pid")
    r = rt.create("c2", bundle, "--pid-file", pidfile)
    assert r.returncode == 0, r.stderr
    st = rt.state("c2")
    assert st["status"] == "created" and st["id"] == "c2" and st["bundle"] == bundle
    assert int(open(pidfile).read()) == st["pid"] > 0
    # created, not started: the init waits, user program not exec'd yet
    with open(f"/proc/{st['pid']}/cmdline", "rb") as f:
        assert b"sleep" not in f.read()
    listed = json.loads(rt("list", "--format", "json").stdout)
    assert [(c["id"], c["status"]) for c in listed] == [("c2", "created")]
    assert rt("list", "-q").stdout.split() == ["c2"]
    r = rt("start", "c2")
    assert r.returncode == 0, r.stderr
    st = rt.state("c2")
    assert st["status"] == "running"
    with open(f"/proc/{st['pid']}/cmdline", "rb") as f:
        assert f.read().split(b"\0")[0] == b"sleep"  # pid 1 of the container is the user program
    assert json.loads(rt("ps", "--format", "json", "c2").stdout) == [st["pid"]]
    assert rt("start", "c2").returncode == 1  # not twice
    r = rt("delete", "c2")
    assert r.returncode == 1 and "running" in r.stderr
    assert rt("delete", "--force", "c2").returncode == 0
    assert rt("state", "c2").returncode == 1
    assert not os.path.exists(os.path.join(rt.root, "c2"))


def test_delete_created_and_stopped(rt, bundle):
    set_args(bundle, "true")
    assert rt.create("a", bundle).returncode == 0
    r = rt("delete", "a")  # the runtime-spec: only a stopped container is deleted without --force
    assert r.returncode == 1 and "created" in r.stderr
    assert rt("delete", "--force", "a").returncode == 0
    assert rt("run", "--keep", "-b", bundle, "b").returncode == 0
    assert rt.state("b")["status"] == "stopped"
    assert rt("delete", "b").returncode == 0
    assert rt("list", "-q").stdout == ""


def test_kill(rt, bundle):
    sh(bundle, "trap 'exit 7' USR1; while true; do sleep 0.05; done")
    assert rt.create("k", bundle).returncode == 0
    assert rt("start", "k").returncode == 0
    pid = rt.state("k")["pid"]
    deadline = time.monotonic() + 5
    while True:  # wait until the shell has set its trap: SIGUSR1 (10) caught
        caught = [ln for ln in open(f"/proc/{pid}/status") if ln.startswith("SigCgt:")][0]
        if int(caught.split()[1], 16) & (1 << 9):
            break
        assert time.monotonic() < deadline, caught
        time.sleep(0.02)
    assert rt("kill", "k", "bogus").returncode == 1
    assert rt("kill", "k", "SIGUSR1").returncode == 0
    deadline = time.monotonic() + 5
    while rt.state("k")["status"] != "stopped" and time.monotonic() < deadline:
        time.sleep(0.02)
    assert rt.state("k")["status"] == "stopped"
    assert rt("kill", "k", "9").returncode == 1  # stopped: nothing to signal
    assert rt("delete", "k").returncode == 0
    assert not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split(")")[1].split()[0] == "Z"


def test_kill_all(rt, bundle):
    sh(bundle, "sleep 60 & sleep 60 & wait")
    assert rt.create("ka", bundle).returncode == 0
    assert rt("start", "ka").returncode == 0
    deadline = time.monotonic() + 5
    while len(json.loads(rt("ps", "-f", "json", "ka").stdout)) < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    pids = json.loads(rt("ps", "--format", "json", "ka").stdout)
    assert len(pids) == 3
    assert rt("kill", "--all", "ka", "KILL").returncode == 0
    deadline = time.monotonic() + 5
    while rt.state("ka")["status"] != "stopped" and time.monotonic() < deadline:
        time.sleep(0.02)
    assert rt.state("ka")["status"] == "stopped"


def test_hostname_uid_gid_cwd_env_umask(rt, bundle):
    cfg = sh(bundle, "hostname; id -u; id -g; id -G; pwd; echo $FOO; umask; echo $HOME",
             user={"uid": 1000, "gid": 1000, "additionalGids": [10, 20], "umask": 0o027},
             cwd="/tmp/work", env=["PATH=/bin", "FOO=bar"])
    cfg["hostname"] = "box"
    save_config(bundle, cfg)
    r = rt("run", "-b", bundle, "h")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n") == ["box", "1000", "1000", "1000 10 20", "/tmp/work", "bar", "0027",
                                    "/home/user", ""]


def test_readonly_root_masked_and_readonly_paths(rt, bundle):
    sh(bundle, "touch /x 2>/dev/null && echo root-writable; "
               "cat /proc/keys | wc -c; ls /sys/firmware | wc -l; "
               "echo 1 > /proc/sys/kernel/ns_last_pid 2>/dev/null && echo proc-sys-writable; "
               "echo 1 > /proc/sysrq-trigger 2>/dev/null && echo sysrq-writable; "
               "touch /tmp/ok && echo tmp-ok")
    cfg = load_config(bundle)
    cfg["mounts"].append({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid"]})
    save_config(bundle, cfg)
    r = rt("run", "-b", bundle, "ro")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["0", "0", "tmp-ok"]


def test_mounts_present(rt, bundle, tmp_path):
    host = tmp_path / "shared"
    host.mkdir()
    (host / "file").write_text("from the host\n")
    sh(bundle, "cat /data/file; echo new > /data/new 2>/dev/null || echo ro-bind; "
               "grep -E ' /(proc|dev|dev/pts|dev/shm|dev/mqueue|sys|data|scratch) ' /proc/mounts | "
               "cut -d' ' -f2,3 | sort; grep ' /scratch ' /proc/mounts | grep -c size=1024k; "
               "ls /sys/fs/cgroup | grep -c memory; ls -l /dev/ptmx | grep -c 'pts/ptmx'; "
               "test -c /dev/null && test -c /dev/urandom && echo devices")
    cfg = load_config(bundle)
    cfg["mounts"] += [
        {"destination": "/data", "type": "bind", "source": str(host), "options": ["rbind", "ro", "nosuid"]},
        {"destination": "/scratch", "type": "tmpfs", "source": "tmpfs", "options": ["size=1024k", "nodev"]},
    ]
    save_config(bundle, cfg)
    r = rt("run", "-b", bundle, "m")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[:2] == ["from the host", "ro-bind"]
    assert lines[2:10] == ["/data ext4", "/dev tmpfs", "/dev/mqueue mqueue", "/dev/pts devpts", "/dev/shm tmpfs",
                           "/proc proc", "/scratch tmpfs", "/sys sysfs"] or \
        set(line.split()[0] for line in lines[2:10]) == {"/data", "/dev", "/dev/mqueue", "/dev/pts", "/dev/shm",
                                                          "/proc", "/scratch", "/sys"}
    assert lines[10:] == ["1", "1", "1", "devices"]
    assert not (host / "new").exists()
    assert mounts_under(bundle) == []  # nothing leaked into the host's mount namespace


def test_capabilities(rt, bundle):
    sh(bundle, "grep -E '^Cap(Eff|Bnd|Amb)' /proc/self/status")
    r = rt("run", "-b", bundle, "cap")
    assert r.returncode == 0, r.stderr
    # CAP_AUDIT_WRITE(29), CAP_KILL(5), CAP_NET_BIND_SERVICE(10)
    assert r.stdout.split() == ["CapEff:", "0000000020000420", "CapBnd:", "0000000020000420",
                                "CapAmb:", "0000000000000000"]
    cfg = sh(bundle, "grep -E '^Cap(Eff|Amb)' /proc/self/status", user={"uid": 1000, "gid": 1000})
    caps = ["CAP_KILL", "CAP_NET_BIND_SERVICE"]
    cfg["process"]["capabilities"] = {s: caps for s in ("bounding", "effective", "permitted", "inheritable",
                                                        "ambient")}
    save_config(bundle, cfg)
    r = rt("run", "-b", bundle, "cap2")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["CapEff:", "0000000000000420", "CapAmb:", "0000000000000420"]


def test_rlimits(rt, bundle):
    cfg = sh(bundle, "ulimit -n; ulimit -Hn; ulimit -s; ulimit -n 4096 2>/dev/null && echo raised; true")
    cfg["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 512, "hard": 1024},
                                 {"type": "RLIMIT_STACK", "soft": 4 << 20, "hard": 8 << 20}]
    save_config(bundle, cfg)
    r = rt("run", "-b", bundle, "rl")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["512", "1024", "4096"]


def test_hooks_get_state_on_stdin(rt, bundle, tmp_path):
    log = tmp_path / "hooks"
    log.mkdir()
    hook = tmp_path / "hook.sh"
    hook.write_text(f"#!/bin/sh\ncat > {log}/$1.json\n")
    hook.chmod(0o755)
    cfg = set_args(bundle, "true")
    kinds = ("prestart", "createRuntime", "createContainer", "poststart", "poststop")
    cfg["hooks"] = {k: [{"path": str(hook), "args": ["hook.sh", k], "timeout": 10}] for k in kinds}
    save_config(bundle, cfg)
    r = rt("run", "-b", bundle, "hk")
    assert r.returncode == 0, r.stderr
    for k in kinds:
        st = json.loads((log / f"{k}.json").read_text())
        assert st["id"] == "hk" and st["bundle"] == bundle and st["pid"] > 0, k
    assert json.loads((log / "poststart.json").read_text())["status"] == "running"
    assert json.loads((log / "poststop.json").read_text())["status"] == "stopped"


def test_failing_hook_fails_create_and_leaves_nothing(rt, bundle):
    cfg = set_args(bundle, "true")
    cfg["hooks"] = {"createRuntime": [{"path": "/bin/false"}]}
    save_config(bundle, cfg)
    r = rt.create("hf", bundle)
    assert r.returncode == 1 and "createRuntime[0]" in r.stderr
    assert not os.path.exists(os.path.join(rt.root, "hf"))
    assert mounts_under(bundle) == []


def test_corrupt_state_reported(rt, bundle):
    set_args(bundle, "true")
    assert rt("run", "--keep", "-b", bundle, "cs").returncode == 0
    with open(os.path.join(rt.root, "cs", "state.json"), "w") as f:
        f.write('{"id": "cs", "pid": ')
    for cmd in (("state", "cs"), ("delete", "cs"), ("start", "cs"), ("kill", "cs")):
        r = rt(*cmd)
        assert r.returncode == 1 and "corrupt" in r.stderr and "Traceback" not in r.stderr, cmd
    r = rt("list")
    assert r.returncode == 0 and "cs" in r.stdout
    assert rt("delete", "--force", "cs").returncode == 0
    assert not os.path.exists(os.path.join(rt.root, "cs"))


def test_duplicate_id_and_missing_container(rt, bundle):
    set_args(bundle, "sleep", "30")
    assert rt.create("dup", bundle).returncode == 0
    r = rt.create("dup", bundle)
    assert r.returncode == 1 and "already exists" in r.stderr
    assert rt.state("dup")["status"] == "created"
    r = rt("start", "nope")
    assert r.returncode == 1 and "does not exist" in r.stderr
    assert rt("delete", "--force", "nope").returncode == 0


# ---------------------------------------------------------------- escapes under the default spec

def test_escapes_fail_under_default_spec(rt, bundle):
    sh(bundle, "mount -t tmpfs none /mnt 2>/dev/null && echo MOUNTED; "
               "echo x > /proc/sys/kernel/domainname 2>/dev/null && echo PROCSYS; "
               "echo 1 > /sys/kernel/profiling 2>/dev/null && echo SYS; "
               "mkdir /sys/fs/cgroup/memory/escape 2>/dev/null && echo CGROUP; "
               "test -s /proc/keys && echo KEYS; "
               "ulimit -n 2048 2>/dev/null && echo RLIMIT; "
               "mknod /dev/sda b 8 0 2>/dev/null && echo MKNOD; "
               "echo done")
    r = rt("run", "-b", bundle, "esc")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "done\n"


def test_host_processes_and_kernel_modules_are_out_of_reach(rt, bundle):
    """Under the default spec a container can neither see (so neither signal nor ptrace) host
    processes, nor load a kernel module. This kernel has no loadable-module support at all
    (init_module is ENOSYS even for the host's root), so the module half checks both that the
    call fails and that CAP_SYS_MODULE, which a modular kernel would require, is in no set."""
    host_pid = os.getpid()
    with open(os.path.join(bundle, "rootfs", "evil.ko"), "wb") as f:
        f.write(b"\x7fELF" + bytes(256))
    sh(bundle, f"test -e /proc/{host_pid} && echo SEES-HOST; kill -0 {host_pid} 2>/dev/null && echo SIGNALS-HOST; "
               "ls /proc | grep -c '^[0-9]' ; "
               "insmod /evil.ko 2>/dev/null && echo LOADED; "
               "grep -E '^Cap(Prm|Eff|Bnd|Amb|Inh)' /proc/self/status | cut -f2; echo done")
    r = rt("run", "-b", bundle, "hostreach")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.split()
    assert "SEES-HOST" not in lines and "SIGNALS-HOST" not in lines and "LOADED" not in lines
    assert int(lines[0]) <= 3  # only the container's own processes
    caps = [int(x, 16) for x in lines[1:-1]]
    assert len(caps) == 5 and not any(c & (1 << 16) for c in caps)  # CAP_SYS_MODULE
    assert not any(c & (1 << 19) for c in caps)  # CAP_SYS_PTRACE
    assert lines[-1] == "done"


def test_setuid_gains_nothing_with_no_new_privileges(rt, bundle):
    rootfs = os.path.join(bundle, "rootfs")
    suid = os.path.join(rootfs, "bin", "busybox.suid")
    with open(os.path.join(rootfs, "bin", "busybox"), "rb") as src, open(suid, "wb") as dst:
        dst.write(src.read())
    os.chmod(suid, 0o4755 | stat.S_IXUSR)
    sh(bundle, "grep -E '^(NoNewPrivs|CapEff)' /proc/self/status; /bin/busybox.suid id -u; "
               "/bin/busybox.suid grep -E '^(Uid|CapEff)' /proc/self/status",
       user={"uid": 1000, "gid": 1000})
    r = rt("run", "-b", bundle, "nnp")
    assert r.returncode == 0, r.stderr
    out = r.stdout.split()
    assert out[:5] == ["CapEff:", "0000000000000000", "NoNewPrivs:", "1", "1000"]
    assert out[5:] == ["Uid:", "1000", "1000", "1000", "1000", "CapEff:", "0000000000000000"]


# ---------------------------------------------------------------- interop with runc

SCRIPT = ("id; hostname; grep -E '^Cap' /proc/self/status; ulimit -n; ls /dev; ls /sys/fs/cgroup; "
          "cut -d' ' -f2,3,4 /proc/mounts | grep -v cgroup | cut -d, -f1; touch / 2>&1; cat /proc/keys; exit 5")


def test_same_bundle_same_results_under_runc(rt, runc, bundle):
    sh(bundle, SCRIPT)
    ours = rt("run", "-b", bundle, "i1")
    theirs = runc("run", "-b", bundle, "i1")
    assert theirs.returncode == ours.returncode == 5, (ours.stderr, theirs.stderr)
    assert ours.stdout == theirs.stdout


def test_runc_spec_bundle_runs(rt, tmp_path):
    runc_bin = need("runc")
    bundle = make_bundle(str(tmp_path / "rb"))
    os.unlink(os.path.join(bundle, "config.json"))
    import subprocess

    subprocess.run([runc_bin, "spec", "--bundle", bundle], check=True)
    cfg = load_config(bundle)
    cfg["process"]["terminal"] = False
    cfg["process"]["args"] = ["hostname"]
    save_config(bundle, cfg)
    r = rt("run", "-b", bundle, "rs")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "runc\n"


@pytest.mark.parametrize("cgroupns", [False, True])
def test_sys_fs_cgroup_shows_the_containers_own_cgroups(rt, bundle, cgroupns):
    # init bind-mounts the container's directories as soon as the runtime has made them
    # (before it is moved in); with a cgroup namespace they used to be the hierarchy roots
    cfg = sh(bundle, "cat /sys/fs/cgroup/pids/cgroup.procs; cat /sys/fs/cgroup/memory/memory.limit_in_bytes")
    cfg["linux"].setdefault("resources", {})["memory"] = {"limit": 64 << 20}
    if cgroupns:
        cfg["linux"]["namespaces"].append({"type": "cgroup"})
    save_config(bundle, cfg)
    r = rt("run", "-b", bundle, "cg")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["1", "2", str(64 << 20)]  # sh and cat: nothing of the host's
