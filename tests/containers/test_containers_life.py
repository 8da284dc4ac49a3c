"""exec, attach, restart, pause/unpause, restart policies, health checks, --init and
--stop-timeout with real conmon, pallet-runtime and (side by side) podman 4.3.

The module's pallet store and podman store are test_containers_run's fixtures (a store of its
own for this module: every container, mount and namespace is removed even when a test fails).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time

import pytest

from conftest import wait_for
from test_containers_run import (_distinct_image, _one_line_error, _processes_naming, _without_podman_warnings,
                                 pallet, podman)  # noqa: F401 (fixtures)

EXE = os.path.join(os.path.dirname(sys.executable), "pallet")


def _pair(pallet, podman, name, *argv, flags=()):
    """The same long-running container in both tools."""
    mine = pallet("run", "-d", "--name", name, "--network", "none", *flags, pallet.image, *argv)
    theirs = podman("run", "-d", "--name", name, "--network", "none", *flags, podman.image, *argv)
    assert mine.returncode == theirs.returncode == 0, (mine.stderr, theirs.stderr)
    return mine.stdout.strip(), theirs.stdout.strip()


def _inspect(tool, name, verb=("container", "inspect")):
    r = tool(*verb, name)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)[0]


def _type_until(p, master: int, typed: bytes, text: bytes) -> None:
    """Type ``typed`` on the terminal ``master`` until ``p``'s output holds ``text`` (a tool may
    set its terminal up after it started: what it flushes is typed again)."""
    import select

    seen = b""
    deadline = time.monotonic() + 60
    while text not in seen:
        assert time.monotonic() < deadline and p.poll() is None, (text, seen, p.poll())
        os.write(master, typed)
        ready, _, _ = select.select([p.stdout], [], [], 0.5)
        if ready:
            seen += os.read(p.stdout.fileno(), 4096)


@pytest.fixture(scope="module")
def sleepers(pallet, podman):
    _pair(pallet, podman, "life-x", "sleep", "300")
    yield "life-x"
    pallet("rm", "-f", "-t", "0", "life-x")
    podman("rm", "-f", "-t", "0", "life-x")


# -- exec ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("flags,argv", [([], ["echo", "hi"]), ([], ["sh", "-c", "echo out; echo err >&2; exit 3"]),
                                        (["-w", "/tmp", "-e", "A=1"], ["sh", "-c", "pwd; echo $A"]),
                                        (["-u", "1000:1000"], ["sh", "-c", "id -u; id -g; grep ^Cap /proc/self/status"]),
                                        (["--privileged"], ["sh", "-c", "grep ^Cap /proc/self/status"])])
def test_exec_as_podman(pallet, podman, sleepers, flags, argv):
    mine = pallet("exec", *flags, sleepers, *argv)
    theirs = podman("exec", *flags, sleepers, *argv)
    assert (mine.returncode, mine.stdout, mine.stderr) == \
        (theirs.returncode, theirs.stdout, _without_podman_warnings(theirs.stderr))


@pytest.mark.parametrize("args,code", [(["no-such-cmd"], 127), (["/etc/passwd"], 126), (["-w", "/nonexist", "true"], 127),
                                       (["-u", "nosuchuser", "true"], 255)])
def test_exec_failures_as_podman(pallet, podman, sleepers, args, code):
    flags, argv = (args[:2], args[2:]) if args[0].startswith("-") else ([], args)
    mine = pallet("exec", *flags, sleepers, *argv)
    theirs = podman("exec", *flags, sleepers, *argv)
    assert mine.returncode == theirs.returncode == code, (mine.stderr, theirs.stderr)
    mine_line = _one_line_error(mine.stderr)
    their_line = _one_line_error(_without_podman_warnings(theirs.stderr))
    tail = {127: "OCI runtime attempted to invoke a command that was not found",
            126: "OCI permission denied"}.get(code)
    if tail:
        assert mine_line.endswith(tail) and their_line.endswith(tail)
    elif "nosuchuser" in args:
        assert mine_line == their_line
    assert mine.stdout == theirs.stdout == ""


def test_exec_on_a_stopped_or_unknown_container_as_podman(pallet, podman):
    for tool, image in ((pallet, pallet.image), (podman, podman.image)):
        assert tool("create", "--name", "life-created", "--network", "none", image, "true").returncode == 0
    try:
        for target in ("life-created", "no-such-ctr"):
            mine, theirs = pallet("exec", target, "true"), podman("exec", target, "true")
            assert (mine.returncode, mine.stderr) == (theirs.returncode, _without_podman_warnings(theirs.stderr))
            assert mine.returncode == (255 if target == "life-created" else 125)
    finally:
        pallet("rm", "-f", "life-created")
        podman("rm", "-f", "life-created")


def test_exec_interactive_tty_and_detached(pallet, podman, sleepers):
    outs = []
    for base, env in (([EXE] + pallet.base, None), (podman.base, podman.env)):
        r = subprocess.run(base + ["exec", "-i", sleepers, "sh", "-c", "tr a-z A-Z; exit 2"], input=b"abc\n",
                           capture_output=True, env=env, timeout=60)
        t = subprocess.run(base + ["exec", "-t", sleepers, "sh", "-c", "[ -t 1 ] && echo tty; exit 4"],
                           stdin=subprocess.DEVNULL, capture_output=True, env=env, timeout=60)
        d = subprocess.run(base + ["exec", "-d", sleepers, "sh", "-c", "echo done > /tmp/detached"],
                           stdin=subprocess.DEVNULL, capture_output=True, env=env, timeout=60)
        assert re.fullmatch(rb"[0-9a-f]{64}\n", d.stdout), d  # podman prints the exec session's ID
        outs.append(((r.returncode, r.stdout), (t.returncode, t.stdout), d.returncode))
    assert outs[0] == outs[1]
    assert outs[0] == ((2, b"ABC\n"), (4, b"tty\r\n"), 0)
    wait_for(lambda: pallet("exec", sleepers, "cat", "/tmp/detached").stdout == "done\n", what="exec -d's file")


# -- pause, unpause, restart ---------------------------------------------------------------------------

def test_pause_unpause_as_podman(pallet, podman):
    _pair(pallet, podman, "life-p", "sleep", "300")
    try:
        for tool, verb in ((pallet, ("container", "inspect")), (podman, ("inspect",))):
            assert tool("pause", "life-p").stdout == "life-p\n"
            doc = _inspect(tool, "life-p", verb)
            assert (doc["State"]["Status"], doc["State"]["Paused"], doc["State"]["Running"]) == ("paused", True, False)
            ps = [c for c in json.loads(tool("ps", "-a", "--format", "json").stdout) if c["Names"] == ["life-p"]]
            assert ps[0]["State"] == "paused"
            assert tool("ps", "--filter", "status=paused", "--format", "{{.Names}}").stdout.split() == ["life-p"]
            again = tool("pause", "life-p")
            assert again.returncode == 125
            assert tool("exec", "life-p", "true").returncode == 255
            assert tool("unpause", "life-p").stdout == "life-p\n"
            assert _inspect(tool, "life-p", verb)["State"]["Status"] == "running"
            assert tool("unpause", "life-p").returncode == 125
        # a paused container still stops, thawed for its stop signal (podman 4.3 refuses: "running or
        # paused, refusing to clean up")
        assert pallet("pause", "life-p").returncode == 0
        assert pallet("stop", "-t", "1", "life-p").returncode == 0
        assert _inspect(pallet, "life-p")["State"]["Status"] == "exited"
    finally:
        pallet("rm", "-f", "-t", "0", "life-p")
        podman("rm", "-f", "-t", "0", "life-p")


def test_restart_verb(pallet):
    cid = pallet("run", "-d", "--network", "none", pallet.image, "sh", "-c", "echo up; exec sleep 300",
                 check=True).stdout.strip()
    try:
        first = _inspect(pallet, cid)["State"]
        r = pallet("restart", "-t", "0", cid[:12])
        assert (r.returncode, r.stdout) == (0, cid[:12] + "\n"), r.stderr
        second = _inspect(pallet, cid)["State"]
        assert second["Status"] == "running" and second["Pid"] != first["Pid"]
        wait_for(lambda: pallet("logs", cid).stdout == "up\nup\n", what="the second run's output")
        pallet("stop", "-t", "0", cid, check=True)
        assert pallet("restart", cid, check=True).stdout == cid + "\n"  # a stopped one is started
        assert _inspect(pallet, cid)["State"]["Status"] == "running"
    finally:
        pallet("rm", "-f", "-t", "0", cid)


# -- restart policies --------------------------------------------------------------------------------

def _settled(pallet, cid):
    """The container exited and nothing of it runs (no conmon, no exit command, no restart)."""
    st = _inspect(pallet, cid)["State"]
    return st if st["Status"] == "exited" and not _processes_naming(cid) else None


def test_restart_on_failure_3_restarts_exactly_three_times(pallet):
    cid = pallet("run", "-d", "--network", "none", "--restart", "on-failure:3", pallet.image,
                 "sh", "-c", "echo run; exit 1", check=True).stdout.strip()
    try:
        wait_for(lambda: pallet("logs", cid).stdout.count("run") == 4 and _settled(pallet, cid),
                 what="four runs, then the container left exited")
        doc = _inspect(pallet, cid)
        assert (doc["RestartCount"], doc["State"]["ExitCode"]) == (3, 1)
        assert doc["HostConfig"]["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 3}
        assert pallet("logs", cid).stdout == "run\n" * 4
        # on-failure does not restart a success
        ok = pallet("run", "-d", "--network", "none", "--restart", "on-failure", pallet.image, "true",
                    check=True).stdout.strip()
        wait_for(lambda: _settled(pallet, ok), what="the succeeding container to settle")
        assert _inspect(pallet, ok)["RestartCount"] == 0
        pallet("rm", ok, check=True)
    finally:
        pallet("rm", "-f", "-t", "0", cid)


def test_restart_always_comes_back_after_kill_not_after_stop(pallet):
    cid = pallet("run", "-d", "--network", "none", "--restart", "always", pallet.image, "sleep", "300",
                 check=True).stdout.strip()
    try:
        pid = _inspect(pallet, cid)["State"]["Pid"]
        pallet("kill", cid, check=True)
        wait_for(lambda: (lambda d: d["RestartCount"] == 1 and d["State"]["Status"] == "running"
                          and d["State"]["Pid"] != pid)(_inspect(pallet, cid)), what="the restart after kill")
        pallet("stop", "-t", "0", cid, check=True)
        st = wait_for(lambda: _settled(pallet, cid), what="the stopped container to settle")
        assert st["ExitCode"] == 137 and _inspect(pallet, cid)["RestartCount"] == 1
    finally:
        pallet("rm", "-f", "-t", "0", cid)


# -- health checks -------------------------------------------------------------------------------------

def test_healthcheck_run_as_podman(pallet, podman, sleepers):
    flags = ["--health-cmd", "test -e /tmp/ok && echo fine", "--health-retries", "2"]
    _pair(pallet, podman, "life-h", "sleep", "300", flags=flags)
    try:
        for tool, verb in ((pallet, ("container", "inspect")), (podman, ("inspect",))):
            doc = _inspect(tool, "life-h", verb)
            assert doc["Config"]["Healthcheck"] == {"Test": ["CMD-SHELL", "test -e /tmp/ok && echo fine"],
                                                    "Interval": 30 * 10**9, "Timeout": 30 * 10**9, "Retries": 2}
            assert doc["State"]["Health"]["Status"] == "starting"
            steps = []
            for _ in range(2):
                r = tool("healthcheck", "run", "life-h")
                h = _inspect(tool, "life-h", verb)["State"]["Health"]
                steps.append((r.returncode, r.stdout, h["Status"], h["FailingStreak"]))
            assert tool("exec", "life-h", "touch", "/tmp/ok").returncode == 0
            r = tool("healthcheck", "run", "life-h")
            h = _inspect(tool, "life-h", verb)["State"]["Health"]
            steps.append((r.returncode, r.stdout, h["Status"], h["FailingStreak"]))
            assert steps == [(1, "unhealthy\n", "starting", 1), (1, "unhealthy\n", "unhealthy", 2),
                             (0, "", "healthy", 0)], tool
            assert [e["ExitCode"] for e in h["Log"]] == [1, 1, 0] and h["Log"][-1]["Output"] == "fine"
            assert "(healthy)" in tool("ps", "--filter", "name=life-h", "--format", "{{.Status}}").stdout
        for target in (sleepers, "no-such-ctr"):  # no health check; no container
            assert pallet("healthcheck", "run", target).returncode == 125
    finally:
        pallet("rm", "-f", "-t", "0", "life-h")
        podman("rm", "-f", "-t", "0", "life-h")


def test_healthcheck_from_the_image_and_no_healthcheck(pallet, tmp_path):
    import hashlib

    layout = str(tmp_path / "layout")
    _distinct_image(pallet.layout, layout)
    # the image's HEALTHCHECK: set in its config, the manifest and index re-pointed
    with open(os.path.join(layout, "index.json")) as f:
        index = json.load(f)

    def path(desc):
        return os.path.join(layout, "blobs", "sha256", desc["digest"].split(":", 1)[1])

    def put(doc):
        data = json.dumps(doc).encode()
        d = hashlib.sha256(data).hexdigest()
        with open(os.path.join(layout, "blobs", "sha256", d), "wb") as f:
            f.write(data)
        return {"digest": "sha256:" + d, "size": len(data)}

    with open(path(index["manifests"][0])) as f:
        manifest = json.load(f)
    with open(path(manifest["config"])) as f:
        config = json.load(f)
    config["config"]["Healthcheck"] = {"Test": ["CMD-SHELL", "exit 0"], "Interval": 5 * 10**9, "Retries": 4}
    manifest["config"].update(put(config))
    index["manifests"][0].update(put(manifest))
    with open(os.path.join(layout, "index.json"), "w") as f:
        json.dump(index, f)
    iid = pallet("pull", f"oci:{layout}:v1", check=True).stdout.strip().splitlines()[-1]
    a = pallet("run", "-d", "--network", "none", iid, "sleep", "300", check=True).stdout.strip()
    b = pallet("run", "-d", "--network", "none", "--no-healthcheck", iid, "sleep", "300", check=True).stdout.strip()
    try:
        assert _inspect(pallet, a)["Config"]["Healthcheck"] == {"Test": ["CMD-SHELL", "exit 0"], "Interval": 5 * 10**9,
                                                                "Timeout": 30 * 10**9, "Retries": 4}
        assert pallet("healthcheck", "run", a).returncode == 0
        assert _inspect(pallet, a)["State"]["Health"]["Status"] == "healthy"
        assert "Healthcheck" not in _inspect(pallet, b)["Config"]
        r = pallet("healthcheck", "run", b)
        assert r.returncode == 125 and "has no defined healthcheck" in _one_line_error(r.stderr)
    finally:
        pallet("rm", "-f", "-t", "0", a, b)
        pallet("rmi", "-f", iid)


# -- --init, --stop-timeout ------------------------------------------------------------------------------

def test_init_runs_catatonit_as_pid1_as_podman(pallet, podman):
    script = "tr '\\0' ' ' </proc/1/cmdline; echo; exit 6"
    mine = pallet("run", "--rm", "--init", "--network", "none", pallet.image, "sh", "-c", script)
    theirs = podman("run", "--rm", "--init", "--network", "none", podman.image, "sh", "-c", script)
    assert (mine.returncode, mine.stdout) == (theirs.returncode, theirs.stdout) == \
        (6, f"/run/podman-init -- sh -c {script} \n")


def test_stop_timeout(pallet):
    cid = pallet("run", "-d", "--network", "none", "--stop-timeout", "1", pallet.image, "sh", "-c",
                 "trap '' TERM; echo ready; while :; do sleep 0.1; done", check=True).stdout.strip()
    try:
        assert _inspect(pallet, cid)["Config"]["StopTimeout"] == 1
        wait_for(lambda: pallet("logs", cid).stdout == "ready\n", what="the TERM trap")
        t0 = time.monotonic()
        pallet("stop", cid, check=True)
        assert time.monotonic() - t0 < 8  # not the default 10 s
        assert _inspect(pallet, cid)["State"]["ExitCode"] == 137
    finally:
        pallet("rm", "-f", "-t", "0", cid)


# -- attach, detach keys, --sig-proxy ----------------------------------------------------------------------

def test_attach_and_detach_keys_as_podman(pallet, podman):
    """attach relays output and stdin. With a terminal the detach keys end the attachment and
    leave the container running; without one podman 4.3 passes them on as input, as pallet does."""
    script = "read l; echo got-$l; read m; echo got-$m; exec sleep 300"
    _pair(pallet, podman, "life-a", "sh", "-c", script, flags=["-i"])
    _pair(pallet, podman, "life-at", "sh", "-c", script, flags=["-i", "-t"])
    try:
        for base, env, tool, verb in (([EXE] + pallet.base, None, pallet, ("container", "inspect")),
                                      (podman.base, podman.env, podman, ("inspect",))):
            p = subprocess.Popen(base + ["attach", "life-a"], env=env,
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            try:
                p.stdin.write(b"one\n")
                p.stdin.flush()
                assert p.stdout.readline() == b"got-one\n"
                p.stdin.write(b"\x10\x11two\n")  # ctrl-p, ctrl-q: input here
                p.stdin.flush()
                assert p.stdout.readline() == b"got-\x10\x11two\n"
            finally:
                p.kill()
                p.communicate()
            if tool is podman:
                continue  # podman 4.3 did not detach here even on a pseudo-terminal (not its controlling one)
            master, slave = os.openpty()  # the detach keys count only on a terminal
            p = subprocess.Popen(base + ["attach", "life-at"], env=env, stdin=slave, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE)
            os.close(slave)
            try:
                _type_until(p, master, b"one\r", b"got-one")
                os.write(master, b"\x10\x11")  # the detach keys
                _, err = p.communicate(timeout=30)
                assert p.returncode == 0, err
            finally:
                os.close(master)
                if p.poll() is None:
                    p.kill()
                    p.communicate()
            assert _inspect(tool, "life-at", verb)["State"]["Status"] == "running"
        assert pallet("attach", "--detach-keys", "ctrl-1", "life-a").returncode == 125
        for tool in (pallet, podman):
            tool("stop", "-t", "0", "life-a")
            bad = tool("attach", "life-a")
            assert bad.returncode == 125
            assert _one_line_error(_without_podman_warnings(bad.stderr)) == \
                "Error: you can only attach to running containers"
    finally:
        for tool in (pallet, podman):
            tool("rm", "-f", "-t", "0", "life-a", "life-at")


def test_attach_exits_with_the_containers_code(pallet):
    cid = pallet("run", "-d", "-i", "--network", "none", pallet.image, "sh", "-c",
                 "while read l; do echo got-$l; done; exit 3", check=True).stdout.strip()
    try:
        r = subprocess.run([EXE] + pallet.base + ["attach", cid], input=b"two\n", capture_output=True, timeout=60)
        assert (r.returncode, r.stdout) == (3, b"got-two\n"), r.stderr
    finally:
        pallet("rm", "-f", "-t", "0", cid)


def test_run_detach_keys_and_sig_proxy_false(pallet):
    import signal

    master, slave = os.openpty()
    p = subprocess.Popen([EXE] + pallet.base + ["run", "-i", "-t", "--name", "life-dk", "--detach-keys", "ctrl-b",
                                                "--network", "none", "--tls-verify=false", pallet.image,
                                                "sh", "-c", "read l; echo got-$l; exec sleep 300"],
                         stdin=slave, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    os.close(slave)
    try:
        _type_until(p, master, b"hi\r", b"got-hi")
        os.write(master, b"\x02")
        out, err = p.communicate(timeout=30)
        assert p.returncode == 0, err
        assert _inspect(pallet, "life-dk")["State"]["Status"] == "running"
    finally:
        os.close(master)
        if p.poll() is None:
            p.kill()
            p.wait()
        pallet("rm", "-f", "-t", "0", "life-dk")
    # --sig-proxy=false: a SIGTERM ends pallet, not the container
    p = subprocess.Popen([EXE] + pallet.base + ["run", "--name", "life-sp", "--sig-proxy=false", "--network", "none",
                                                "--tls-verify=false", pallet.image, "sh", "-c",
                                                "echo ready; exec sleep 300"],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert p.stdout.readline() == b"ready\n"
        p.send_signal(signal.SIGTERM)
        p.communicate(timeout=30)
        assert p.returncode != 0
        assert _inspect(pallet, "life-sp")["State"]["Status"] == "running"
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        pallet("rm", "-f", "-t", "0", "life-sp")


# -- bad input -------------------------------------------------------------------------------------------

def test_bad_life_flags_are_one_line_and_leave_nothing(pallet):
    before = pallet.leftovers()
    for args, words in ((["--restart", "sometimes"], "sometimes"), (["--restart", "on-failure:x"], "on-failure:x"),
                        (["--rm", "--restart", "on-failure:2"], "--restart"),
                        (["--health-cmd", "true", "--health-interval", "soon"], "--health-interval"),
                        (["--no-healthcheck", "--health-cmd", "true"], "conflict"),
                        (["--init", "--init-path", "/no/such/init"], "/no/such/init"),
                        (["--stop-timeout", "-1"], "--stop-timeout"),
                        (["-i", "--detach-keys", "ctrl-1"], "ctrl-1")):
        r = pallet("run", *args, pallet.image, "true")
        assert r.returncode == 125, (args, r.stderr)
        assert words in _one_line_error(r.stderr), (args, r.stderr)
        assert pallet.leftovers() == before, args
    assert shutil.which("catatonit")  # install.sh installs it (Debian's catatonit)


def test_exec_in_a_runc_container(pallet):
    """runc takes a console socket only when it detaches: exec -t runs detached with pallet as the
    command's subreaper, and still returns the command's own exit code."""
    cid = pallet("run", "-d", "--runtime", "runc", "--network", "none", pallet.image, "sleep", "300",
                 check=True).stdout.strip()
    try:
        r = pallet("exec", cid, "sh", "-c", "echo out; echo err >&2; exit 3")
        assert (r.returncode, r.stdout, r.stderr) == (3, "out\n", "err\n")
        t = subprocess.run([EXE] + pallet.base + ["exec", "-t", cid, "sh", "-c", "[ -t 1 ] && echo tty; kill -9 $$"],
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
        assert (t.returncode, t.stdout) == (137, b"tty\r\n"), t.stderr
        r = pallet("exec", cid, "no-such-cmd")
        assert r.returncode == 127 and _one_line_error(r.stderr).startswith("Error: runc: ")
    finally:
        pallet("rm", "-f", "-t", "0", cid)


def test_health_failures_in_the_start_period_do_not_count(pallet):
    cid = pallet("run", "-d", "--network", "none", "--health-cmd", "exit 1", "--health-retries", "1",
                 "--health-start-period", "1h", pallet.image, "sleep", "300", check=True).stdout.strip()
    try:
        r = pallet("healthcheck", "run", cid)
        assert (r.returncode, r.stdout) == (1, "unhealthy\n")
        h = _inspect(pallet, cid)["State"]["Health"]
        assert (h["Status"], h["FailingStreak"], len(h["Log"])) == ("starting", 0, 1)
    finally:
        pallet("rm", "-f", "-t", "0", cid)


def test_rm_force_during_restarts_leaves_nothing(pallet):
    """rm -f while an always-restarting container comes and goes: removed, nothing restarts it."""
    before = pallet.leftovers()
    cid = pallet("run", "-d", "--network", "none", "--restart", "always", pallet.image, "true",
                 check=True).stdout.strip()
    wait_for(lambda: _inspect(pallet, cid)["RestartCount"] >= 2, what="two restarts")
    r = pallet("rm", "-f", "-t", "0", cid)
    assert r.returncode == 0, r.stderr
    wait_for(lambda: not _processes_naming(cid), what="its conmon and exit commands to end")
    assert cid not in pallet.ids()
    wait_for(lambda: pallet.leftovers() == before, what="its mount, namespace and cgroup to go")
