"""run/create's flags for supervision and systemd units (--cidfile, --replace, --rmi, --timeout,
--preserve-fds, --conmon-pidfile, --pidfile, --sdnotify, --no-hosts, --health-on-failure, --pod),
--cidfile on start/stop/kill/rm, logs of several containers, wait --condition: real conmon and
pallet-runtime, podman 4.3 side by side where the output is the same thing.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

from test_containers_run import Pallet, _one_line_error, pallet, podman  # noqa: F401 (fixtures)

PALLET = os.path.join(os.path.dirname(sys.executable), "pallet")


def _inspect(pallet, name: str) -> dict:
    return json.loads(pallet("container", "inspect", name, check=True).stdout)[0]


def _left(pallet) -> dict:
    return {k: v for k, v in pallet.leftovers().items() if k != "cgroups"}


def test_cidfile_and_pid_files_then_verbs_by_cidfile(pallet, tmp_path):
    cidfile, cpid, pid = (str(tmp_path / n) for n in ("cid", "conmon.pid", "ctr.pid"))
    p = pallet("run", "-d", "--network", "none", "--cidfile", cidfile, "--conmon-pidfile", cpid, "--pidfile", pid,
               pallet.image, "sleep", "100", check=True)
    cid = p.stdout.strip()
    try:
        assert open(cidfile).read() == cid  # no newline, as podman writes it
        doc = _inspect(pallet, cid)
        assert int(open(cpid).read()) == doc["State"]["ConmonPid"] and os.readlink(
            f"/proc/{doc['State']['ConmonPid']}/exe").endswith("/conmon")
        assert int(open(pid).read()) == doc["State"]["Pid"]
        assert (doc["HostConfig"]["ContainerIDFile"], doc["ConmonPidFile"], doc["PidFile"]) == (cidfile, cpid, pid)

        # an existing cidfile is never written (podman's message), nothing is created
        before = _left(pallet)
        p = pallet("run", "--network", "none", "--cidfile", cidfile, pallet.image, "true")
        assert p.returncode == 125
        assert _one_line_error(p.stderr) == ("Error: container id file exists. Ensure another container is not "
                                             f"using it or delete {cidfile}")
        # nor a symlink to a file, nor a FIFO (which would block a writer)
        target = tmp_path / "target"
        target.write_text("keep")
        os.symlink(target, tmp_path / "link")
        os.mkfifo(tmp_path / "fifo")
        for name in ("link", "fifo"):
            p = pallet("create", "--network", "none", "--cidfile", str(tmp_path / name), pallet.image, "true")
            assert p.returncode == 125 and "container id file exists" in p.stderr
        assert target.read_text() == "keep" and _left(pallet) == before

        # the verbs that take --cidfile
        assert pallet("kill", "-s", "STOP", "--cidfile", cidfile, check=True).stdout.strip() == cid
        pallet("kill", "-s", "CONT", "--cidfile", cidfile, check=True)
        assert pallet("stop", "-t", "0", "--cidfile", cidfile, check=True).stdout.strip() == cid
        assert _inspect(pallet, cid)["State"]["Status"] == "exited"
        pallet("start", "--cidfile", cidfile, check=True)
        assert _inspect(pallet, cid)["State"]["Status"] == "running"
        # a FIFO or directory given as --cidfile to read: refused, not waited on
        p = pallet("stop", "--cidfile", str(tmp_path / "fifo"), timeout=20)
        assert p.returncode == 125 and "not a regular file" in _one_line_error(p.stderr)
        assert pallet("rm", "-f", "-t", "0", "--cidfile", cidfile, check=True).stdout.strip() == cid
        # gone: an error without --ignore; a missing file is skipped with --ignore
        assert pallet("rm", "--cidfile", cidfile).returncode == 1
        assert pallet("rm", "-f", "--ignore", "--cidfile", cidfile).returncode == 0
        assert pallet("rm", "-f", "--ignore", "--cidfile", str(tmp_path / "none")).returncode == 0
        p = pallet("stop", "--cidfile", str(tmp_path / "none"))
        assert p.returncode == 125 and _one_line_error(p.stderr) == \
            f"Error: reading CIDFile: open {tmp_path / 'none'}: no such file or directory"
        p = pallet("stop", "--all", "--cidfile", cidfile)
        assert p.returncode == 125 and "cannot be used together" in p.stderr
    finally:
        pallet("rm", "-f", "-t", "0", cid)


def test_replace_removes_the_container_of_that_name(pallet):
    name = f"rep{os.getpid()}"
    # (SIGKILL as its stop signal: --replace removes it as rm -f does, after its stop timeout)
    first = pallet("run", "-d", "--network", "none", "--name", name, "--stop-signal", "KILL", pallet.image, "sleep",
                   "100", check=True).stdout.strip()
    try:
        p = pallet("run", "-d", "--network", "none", "--name", name, pallet.image, "true")
        assert p.returncode == 125 and "already in use" in p.stderr
        second = pallet("run", "-d", "--network", "none", "--name", name, "--replace", pallet.image, "sleep", "100",
                        check=True).stdout.strip()
        assert second != first and first not in pallet.ids() and second in pallet.ids()
        # nothing to replace is fine; --replace without --name is podman's error
        pallet("create", "--network", "none", "--name", name + "x", "--replace", pallet.image, check=True)
        p = pallet("create", "--network", "none", "--replace", pallet.image)
        assert p.returncode == 125 and _one_line_error(p.stderr) == \
            "Error: cannot replace container without --name being set"
    finally:
        pallet("rm", "-f", "-t", "0", name, name + "x")


def test_rmi_removes_the_image_unless_a_container_uses_it(pallet):
    src = f"rmisrc{os.getpid()}"
    image = f"localhost/rmi{os.getpid()}:v1"
    pallet("create", "--network", "none", "--name", src, pallet.image, check=True)
    pallet("commit", "-q", src, image, check=True)
    pallet("rm", src, check=True)
    keep = f"keep{os.getpid()}"
    try:
        pallet("run", "--network", "none", "--name", keep, image, "true", check=True)
        p = pallet("run", "--rm", "--rmi", "--network", "none", image, "sh", "-c", "exit 3")
        assert p.returncode == 3 and "ERRO" in p.stderr  # the container's code; the image stays
        assert pallet("image", "exists", image).returncode == 0
        pallet("rm", keep, check=True)
        p = pallet("run", "--rm", "--rmi", "--network", "none", image, "true")
        assert p.returncode == 0, p.stderr
        assert pallet("image", "exists", image).returncode == 1
    finally:
        pallet("rm", "-f", keep)
        pallet("rmi", "-f", image)


def test_timeout_kills_it_with_podmans_exit_code(pallet):
    name = f"to{os.getpid()}"
    try:
        p = pallet("run", "--network", "none", "--name", name, "--timeout", "1", pallet.image, "sleep", "60")
        assert p.returncode == 255  # podman's: the container's exit code is -1
        st = _inspect(pallet, name)["State"]
        assert (st["Status"], st["ExitCode"]) == ("exited", -1)
        assert _inspect(pallet, name)["Config"]["Timeout"] == 1
    finally:
        pallet("rm", "-f", name)


def test_preserve_fds_passes_the_callers_fds(pallet, tmp_path):
    f = tmp_path / "input"
    f.write_text("from fd 4\n")
    cmd = [PALLET] + pallet.base + ["run", "--rm", "-i", "--network", "none", "--preserve-fds=2", pallet.image,
                                    "sh", "-c", "cat <&4"]
    p = subprocess.run(["sh", "-c", f'exec "$@" 3</dev/null 4<{f}', "sh"] + cmd, capture_output=True, text=True,
                       timeout=60, stdin=subprocess.DEVNULL)
    assert (p.returncode, p.stdout) == (0, "from fd 4\n"), p.stderr
    # an fd that is not open is refused before anything is made (pallet's own files never go in)
    p = subprocess.run(["sh", "-c", 'exec "$@" 3</dev/null', "sh"] + cmd, capture_output=True, text=True, timeout=60,
                       stdin=subprocess.DEVNULL)
    assert p.returncode == 125 and _one_line_error(p.stderr) == "Error: --preserve-fds 2: file descriptor 4 is not open"


def test_sdnotify_conmon_tells_notify_socket_conmons_pid(pallet, tmp_path):
    path = str(tmp_path / "notify")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)
    s.setblocking(False)
    names = []
    try:
        env = dict(os.environ, NOTIFY_SOCKET=path)
        for flags in ([], ["--sdnotify=conmon"]):
            p = subprocess.run([PALLET] + pallet.base + ["run", "-d", "--network", "none", *flags, pallet.image,
                                                         "sleep", "100"], capture_output=True, text=True, env=env,
                               timeout=60, stdin=subprocess.DEVNULL)
            assert p.returncode == 0, p.stderr
            names.append(p.stdout.strip())
            doc = _inspect(pallet, names[-1])
            if not flags:  # podman's default mode ("container") without a socket mounted in: nothing sent
                with pytest.raises(BlockingIOError):
                    s.recv(4096)
                assert doc["Config"]["sdNotifyMode"] == "container"
            else:
                assert s.recv(4096) == f"MAINPID={doc['State']['ConmonPid']}\nREADY=1".encode()
                assert doc["Config"]["sdNotifyMode"] == "conmon"
    finally:
        s.close()
        pallet("rm", "-f", "-t", "0", *names)


def test_no_hosts_keeps_the_images_etc_hosts_as_podman(pallet, podman):
    script = "cat /etc/hosts 2>&1; echo rc=$?"
    mine = pallet("run", "--rm", "--network", "none", "--no-hosts", pallet.image, "sh", "-c", script)
    theirs = podman("run", "--rm", "--network", "none", "--no-hosts", podman.image, "sh", "-c", script)
    assert (mine.returncode, mine.stdout) == (theirs.returncode, theirs.stdout) == (0, theirs.stdout)
    with_hosts = pallet("run", "--rm", "--network", "none", "--name", f"h{os.getpid()}", pallet.image, "sh", "-c",
                        script, check=True).stdout
    assert f"h{os.getpid()}" in with_hosts and f"h{os.getpid()}" not in mine.stdout


@pytest.mark.parametrize("flags, word", [
    (["--pod", "mypod"], "no pod with name or ID mypod found: no such pod"),
    (["--sdnotify", "sometimes"], "sometimes"),
    (["--cgroups", "split"], "not supported yet"),
    (["--cgroups", "bogus"], "bogus"),
    (["--health-on-failure", "explode"], "explode"),
    (["--timeout", "-1"], "--timeout"),
])
def test_bad_run_flags_are_one_line_and_leave_nothing(pallet, flags, word):
    before = _left(pallet)
    p = pallet("run", "--network", "none", *flags, pallet.image, "true")
    assert p.returncode == 125
    assert word in _one_line_error(p.stderr)
    assert _left(pallet) == before


def test_health_on_failure_kill(pallet):
    name = f"hof{os.getpid()}"
    pallet("run", "-d", "--network", "none", "--name", name, "--health-cmd", "false", "--health-retries", "1",
           "--health-on-failure", "kill", pallet.image, "sleep", "100", check=True)
    try:
        assert _inspect(pallet, name)["Config"]["HealthcheckOnFailureAction"] == "kill"
        p = pallet("healthcheck", "run", name)
        assert (p.returncode, p.stdout.strip()) == (1, "unhealthy")
        st = _inspect(pallet, name)["State"]
        assert (st["Status"], st["ExitCode"]) == ("exited", 137)
    finally:
        pallet("rm", "-f", "-t", "0", name)


def test_logs_of_several_containers_and_names(pallet):
    a, b = f"la{os.getpid()}", f"lb{os.getpid()}"
    try:
        ida = pallet("run", "--network", "none", "--name", a, pallet.image, "sh", "-c", "echo one; echo err >&2",
                     check=True)
        ida = _inspect(pallet, a)["Id"]
        pallet("run", "--network", "none", "--name", b, pallet.image, "echo", "two", check=True)
        idb = _inspect(pallet, b)["Id"]
        p = pallet("logs", a, b, check=True)
        assert (p.stdout, p.stderr) == (f"{ida[:12]} one\n{idb[:12]} two\n", f"{ida[:12]} err\n")
        p = pallet("logs", "-f", "--names", "--tail", "1", a, b, check=True)  # both exited: -f returns
        assert p.stdout == f"{b} two\n" and p.stderr == f"{a} err\n"
        assert pallet("logs", a, check=True).stdout == "one\n"  # one container: no prefix
        p = pallet("logs", a, "nosuch")
        assert p.returncode == 125 and p.stdout == "" and "nosuch" in p.stderr
    finally:
        pallet("rm", "-f", a, b)


def test_wait_condition(pallet):
    name = f"wc{os.getpid()}"
    pallet("run", "-d", "--network", "none", "--name", name, pallet.image, "sleep", "100", check=True)
    try:
        p = pallet("wait", "--condition", "running", name, check=True)
        assert p.stdout == "-1\n"
        pallet("kill", name, check=True)
        p = pallet("container", "wait", "--condition=exited", "--condition=stopped", name, check=True)
        assert p.stdout == "137\n"
        p = pallet("wait", "--condition", "sleeping", name)
        assert p.returncode == 125 and "sleeping" in _one_line_error(p.stderr)
    finally:
        pallet("rm", "-f", name)


def test_container_exists(pallet):
    name = f"ex{os.getpid()}"
    assert pallet("container", "exists", name).returncode == 1
    pallet("create", "--network", "none", "--name", name, pallet.image, check=True)
    try:
        assert pallet("container", "exists", name).returncode == 0
    finally:
        pallet("rm", name)


def test_podman_system_test_wording_and_flags(pallet, tmp_path):
    """What podman's system tests (030-run, 045-start, 050-stop, 160-volumes) check of these verbs."""
    # published ports with --network host/none: podman's warning, first on stderr, and the run goes on
    p = pallet("run", "--rm", "-p", "8080", "--network", "host", pallet.image, "echo", "hi")
    assert (p.returncode, p.stdout) == (0, "hi\n")
    assert p.stderr.splitlines()[0] == ("Port mappings have been discarded as one of the Host, Container, Pod, and "
                                        "None network modes are in use")
    # --attach: only those streams; neither stdout nor stderr: the ID is printed
    p = pallet("run", "--rm", "--network", "none", "-a", "stderr", pallet.image, "sh", "-c", "echo out; echo err >&2")
    assert (p.stdout, p.stderr) == ("", "err\n")
    name = f"att{os.getpid()}"
    p = pallet("run", "--name", name, "--network", "none", "--attach", "stdin", pallet.image, "echo", "hello")
    try:
        assert p.stdout.strip() == _inspect(pallet, name)["Id"]
    finally:
        pallet("rm", "-f", name)
    p = pallet("run", "--rm", "--network", "none", "-a", "bogus", pallet.image, "true")
    assert p.returncode == 125 and 'invalid stream "bogus" for --attach' in p.stderr
    # warnings and flags podman takes
    p = pallet("run", "--rm", "--network", "none", "--kernel-memory", "100", "--security-opt", "no-new-privileges:true",
               pallet.image, "true")
    assert p.returncode == 0 and "The --kernel-memory flag is no longer supported. This flag is a noop." in p.stderr
    # the same bind twice is one mount; two on one destination are refused
    d = tmp_path / "v1"
    d.mkdir()
    pallet("run", "--rm", "--network", "none", "-v", f"{d}:/vol1", "-v", f"{d}:/vol1", pallet.image, "true", check=True)
    p = pallet("run", "--rm", "--network", "none", "-v", f"{d}:/vol1", "-v", f"{tmp_path}:/vol1", pallet.image, "true")
    assert p.returncode == 125 and _one_line_error(p.stderr) == "Error: /vol1: duplicate mount destination"


def test_http_proxy_passes_the_hosts_proxy_variables(pallet):
    cmd = [PALLET] + pallet.base + ["run", "--rm", "--network", "none"]
    env = dict(os.environ, http_proxy="http://proxy.example:3128", NO_PROXY="localhost")
    show = [pallet.image, "sh", "-c", "echo $http_proxy,$NO_PROXY"]
    for flags, out in (([], "http://proxy.example:3128,localhost\n"), (["--http-proxy=false"], ",\n"),
                       (["-e", "http_proxy=mine"], "mine,localhost\n")):
        p = subprocess.run(cmd + flags + show, capture_output=True, text=True, env=env, timeout=60,
                           stdin=subprocess.DEVNULL)
        assert (p.returncode, p.stdout) == (0, out), p.stderr


def test_start_filter_and_stop_warning(pallet):
    cid = pallet("run", "-d", "--network", "none", pallet.image, "true", check=True).stdout.strip()
    name = f"stopme{os.getpid()}"
    try:
        pallet("wait", cid, check=True)
        assert pallet("start", "--filter", "restart-policy=always", cid, check=True).stdout == ""
        assert pallet("start", "--filter", "restart-policy=none", cid, check=True).stdout == cid + "\n"
        p = pallet("start", "--filter", "restart-policy=fakepolicy", cid)
        assert p.returncode == 125 and _one_line_error(p.stderr) == "Error: fakepolicy invalid restart policy"
        p = pallet("start", "--all", "12333")
        assert p.returncode == 125 and _one_line_error(p.stderr) == \
            "Error: either start all containers or the container(s) provided in the arguments"
        assert cid in pallet("ps", "-a", "-q", "--no-trunc", "--filter", "restart-policy=no", check=True).stdout
        pallet("run", "-d", "--network", "none", "--name", name, pallet.image, "sleep", "100", check=True)
        p = pallet("stop", "-t", "1", name, check=True)
        assert f"StopSignal SIGTERM failed to stop container {name} in 1 seconds, resorting to SIGKILL" in p.stderr
    finally:
        pallet("rm", "-f", "-t", "0", cid, name)


def test_image_name_is_the_resolved_name_and_image_id_field(pallet):
    """podman's .ImageName is the name the reference resolved to (its :latest added); image
    templates have podman's Go field ID."""
    tag = f"localhost/rn{os.getpid()}/img"
    pallet("tag", pallet.image, tag, check=True)
    cid = None
    try:
        cid = pallet("create", "--network", "none", tag, check=True).stdout.strip()
        doc = _inspect(pallet, cid)
        assert doc["ImageName"] == doc["Config"]["Image"] == tag + ":latest"
        iid = pallet("image", "inspect", "--format", "{{.Id}}", tag, check=True).stdout.strip()
        assert pallet("inspect", "--format", "{{.ID}}", tag, check=True).stdout.strip() == iid == doc["Image"]
    finally:
        if cid:
            pallet("rm", cid)
        pallet("untag", pallet.image, tag)


def test_volume_rm_force_removes_its_containers(pallet):
    vol = f"frc{os.getpid()}"
    cid = pallet("run", "-d", "--network", "none", "--stop-signal", "KILL", "-v", f"{vol}:/v", pallet.image, "sleep",
                 "100", check=True).stdout.strip()
    try:
        p = pallet("volume", "rm", vol)
        assert p.returncode == 2 and _one_line_error(p.stderr) == (
            f"Error: volume {vol} is being used by the following container(s): {cid}: volume is being used")
        assert pallet("volume", "rm", "--force", vol, check=True).stdout == f"{vol}\n"
        assert cid not in pallet.ids()
        assert pallet("volume", "exists", vol).returncode == 1
        # templates have the Go struct's fields podman's JSON leaves out
        pallet("volume", "create", vol, check=True)
        p = pallet("volume", "inspect", "--format", "{{.NeedsCopyUp}} {{.NeedsChown}} {{.UID}}", vol, check=True)
        assert p.stdout == "true true 0\n"
    finally:
        pallet("rm", "-f", "-t", "0", cid)
        pallet("volume", "rm", "-f", vol)


def test_rm_depend(pallet):
    base = pallet("create", "--network", "none", pallet.image, check=True).stdout.strip()
    dep = pallet("create", f"--net=container:{base}", pallet.image, check=True).stdout.strip()
    dep2 = pallet("create", "--network", "none", "--ipc", f"container:{dep}", pallet.image, check=True).stdout.strip()
    try:
        p = pallet("rm", base)
        assert p.returncode == 125 and _one_line_error(p.stderr).startswith(
            f"Error: container {base} has dependent containers which must be removed before it: {dep}")
        assert {base, dep, dep2} <= pallet.ids()
        p = pallet("rm", "--depend", base, check=True)
        assert p.stdout.split() == [dep2, dep, base]  # dependents first
        assert not {base, dep, dep2} & pallet.ids()
    finally:
        pallet("rm", "-f", dep2, dep, base)


def test_volume_copy_up_waits_for_content_and_bind_device_checked(pallet, tmp_path):
    """podman's 160-volumes: an empty or missing image directory leaves NeedsCopyUp true (the next
    mount copies up); a bind volume's device must exist; the same tmpfs twice is one."""
    vol = f"cu{os.getpid()}"
    pallet("volume", "create", vol, check=True)
    try:
        pallet("run", "--rm", "--network", "none", "-v", f"{vol}:/nothing-here", pallet.image, "true", check=True)
        fmt = ["volume", "inspect", "--format", "{{.NeedsCopyUp}}", vol]
        assert pallet(*fmt, check=True).stdout == "true\n"
        pallet("run", "--rm", "--network", "none", "-v", f"{vol}:/etc", pallet.image, "true", check=True)
        assert pallet(*fmt, check=True).stdout == "false\n"
        assert os.path.exists(json.loads(pallet("volume", "inspect", vol, check=True).stdout)[0]["Mountpoint"]
                              + "/passwd")
    finally:
        pallet("volume", "rm", "-f", vol)
    p = pallet("volume", "create", "-o", "type=bind", "-o", f"device={tmp_path}/bogus", vol)
    assert p.returncode == 125 and _one_line_error(p.stderr) == \
        f"Error: invalid volume option device for driver 'local': stat {tmp_path}/bogus: no such file or directory"
    pallet("run", "--rm", "--network", "none", "--tmpfs", "/t", "--tmpfs", "/t", pallet.image, "true", check=True)
    p = pallet("run", "--rm", "--network", "none", "--tmpfs", "/t", "--tmpfs", "/t:ro", pallet.image, "true")
    assert p.returncode == 125 and _one_line_error(p.stderr) == "Error: /t: duplicate mount destination"
