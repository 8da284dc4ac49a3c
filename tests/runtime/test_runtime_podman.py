"""podman drives pallet-runtime (``--runtime``): run --rm, run -it through conmon's console
socket, run -d then exec, logs, pause/unpause, stop, rm — with a podman store in temp dirs and a
busybox image made offline (scripts/make-demo-image.py)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time

import pytest

from buildtools import CONTAINERS_CONF, make_busybox_layout
from conftest import release_all, unmount_under
from test_runtime_helpers import PALLET_RUNTIME, need

IMAGE = "localhost/busybox:v1"
CONF = CONTAINERS_CONF


class Podman:
    def __init__(self, root, runroot, conf):
        self.base = [need("podman"), "--root", root, "--runroot", runroot, "--storage-driver", "vfs",
                     "--runtime", PALLET_RUNTIME]
        self.env = dict(os.environ, CONTAINERS_CONF=conf)

    def __call__(self, *args, timeout=60, **kw):
        kw.setdefault("capture_output", True)
        return subprocess.run(self.base + list(args), text=True, env=self.env, timeout=timeout, **kw)

    def cmdline(self, *args):
        import shlex

        return " ".join(shlex.quote(a) for a in self.base + list(args))


@pytest.fixture(scope="module")
def podman(tmp_path_factory):
    work = tmp_path_factory.mktemp("podman")
    runroot = tempfile.mkdtemp(prefix="prr-")  # podman wants a run root of at most 50 characters
    conf = work / "containers.conf"
    conf.write_text(CONF)
    layout = work / "layout"
    make_busybox_layout(str(layout), "v1")
    p = Podman(str(work / "root"), runroot, str(conf))
    parent = "/sys/fs/cgroup/pids/libpod_parent"

    def container_cgroups():
        return {d for d in (os.listdir(parent) if os.path.exists(parent) else ()) if d.startswith("libpod-")}

    before = container_cgroups()  # another podman user's containers are not this module's to check
    try:
        r = p("pull", "-q", f"oci:{layout}:v1")
        assert r.returncode == 0, r.stderr
        r = p("tag", r.stdout.strip(), IMAGE)
        assert r.returncode == 0, r.stderr
        yield p
    finally:  # every step runs even when one fails (a teardown that raised left containers running)
        # the run root is not itself a mount point (umount -R on it did nothing): unmount what is under it
        release_all(lambda: p("rm", "-a", "-f", "-t", "0", timeout=120),
                    lambda: p("rmi", "-a", "-f", timeout=120),
                    lambda: unmount_under(runroot),
                    lambda: shutil.rmtree(runroot, ignore_errors=True))
        left = container_cgroups() - before  # the cgroups of this module's containers are gone
        assert not left, left


def test_run_rm_echo(podman):
    r = podman("run", "--rm", "--network", "none", IMAGE, "echo", "hi")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "hi\n"
    r = podman("run", "--rm", "--network", "none", IMAGE, "sh", "-c", "exit 7")
    assert r.returncode == 7
    r = podman("run", "--rm", "--network", "none", "--memory", "64m", "--pids-limit", "30", IMAGE, "sh", "-c",
               "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max; "
               "grep Seccomp: /proc/self/status")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [str(64 << 20), "30", "Seccomp:", "2"]  # podman's seccomp profile is loaded


def test_run_interactive_tty(podman):
    need("script")
    cmd = podman.cmdline("run", "-it", "--rm", "--network", "none", IMAGE, "sh")
    p = subprocess.run(["script", "-qec", cmd, "/dev/null"], input="tty\necho typed-$((6*7))\nexit 3\n",
                       capture_output=True, text=True, env=podman.env, timeout=60)
    assert p.returncode == 3, p.stdout + p.stderr
    assert "typed-42" in p.stdout and "/dev/pts/0" in p.stdout


def test_run_detached_exec_logs_pause_stop_rm(podman):
    r = podman("run", "-d", "--name", "d1", "--network", "none", IMAGE, "sh", "-c",
               "echo started; trap 'echo bye; exit 0' TERM; sleep 1000 & wait")  # one sleep, always
    assert r.returncode == 0, r.stderr
    try:
        r = podman("exec", "d1", "sh", "-c", "echo in-exec; ps -o comm | grep -c sleep; exit 4")
        assert r.returncode == 4 and r.stdout.split() == ["in-exec", "1"], r.stderr
        r = podman("exec", "-u", "1000:1000", "-e", "X=y", "-w", "/tmp", "d1", "sh", "-c", "id -u; echo $X; pwd")
        assert r.stdout.split() == ["1000", "y", "/tmp"], r.stderr
        need("script")
        p = subprocess.run(["script", "-qec", podman.cmdline("exec", "-it", "d1", "tty"), "/dev/null"],
                           capture_output=True, text=True, env=podman.env, timeout=60, stdin=subprocess.DEVNULL)
        assert p.returncode == 0 and "/dev/pts/" in p.stdout, p.stdout
        assert podman("pause", "d1").returncode == 0
        assert podman("inspect", "-f", "{{.State.Status}}", "d1").stdout.strip() == "paused"
        assert podman("unpause", "d1").returncode == 0
        t0 = time.monotonic()
        r = podman("stop", "-t", "10", "d1")
        assert r.returncode == 0, r.stderr
        assert time.monotonic() - t0 < 5  # the TERM trap ran: no 10 s wait for KILL
        r = podman("logs", "d1")
        assert r.stdout.split() == ["started", "bye"], r.stdout + r.stderr
        assert podman("inspect", "-f", "{{.State.ExitCode}}", "d1").stdout.strip() == "0"
    finally:
        r = podman("rm", "-f", "d1")
    assert r.returncode == 0, r.stderr
    assert podman("ps", "-a", "-q").stdout.strip() == ""


def test_missing_or_not_executable_command_gives_runc_exit_codes(podman):
    """podman classifies the runtime's error by its words, as runc words it: 127 for a missing
    command, 126 for one that is not executable (absolute path and PATH lookup alike)."""
    for args, code in ((["/no/such/cmd"], 127), (["no-such-cmd"], 127),
                       (["/etc/passwd"], 126), (["passwd-copy"], 126)):
        if args == ["passwd-copy"]:  # a non-executable file found on $PATH
            cmd = ["--env", "PATH=/etc", IMAGE, "passwd"]
        else:
            cmd = [IMAGE, *args]
        r = podman("run", "--rm", "--network", "none", *cmd)
        assert r.returncode == code, (args, r.returncode, r.stderr)
        assert "Traceback" not in r.stderr and "internal error" not in r.stderr, r.stderr
    assert podman("ps", "-a", "-q").stdout.strip() == ""
