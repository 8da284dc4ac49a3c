"""``pallet logs`` on large logs (read back from the end for ``--tail``, streamed otherwise: the
peak memory stays bounded), ``--log-opt max-size`` (conmon's truncation), and ``--log-driver
journald`` (conmon writes to a real systemd-journald, ``logs`` reads it back)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from test_containers_run import CGROUP_PARENT, Pallet, _one_line_error, pallet  # noqa: F401 (fixtures)


def _peak_kib(argv: list[str], out=subprocess.DEVNULL) -> tuple[int, int]:
    """(exit code, peak resident KiB) of one process: its own rusage, from wait4."""
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    return p.returncode, usage.ru_maxrss


def test_logs_of_a_large_log_in_bounded_memory(pallet, tmp_path):
    """A 64 MB k8s-file log: ``--tail 2`` reads back from its end, plain ``logs`` and ``-f``
    (the container not running: to the end, then done) stream it; none of them holds much more
    memory than ``logs`` of a one-line log does (reading it whole took three times its size)."""
    log = tmp_path / "big.log"
    cid = pallet("create", "--network", "none", "--log-opt", f"path={log}", pallet.image, "true",
                 check=True).stdout.strip()
    try:
        log.write_bytes(b"2024-01-01T00:00:00.000000001+00:00 stdout F small\n")
        exe = [os.path.join(os.path.dirname(sys.executable), "pallet")] + pallet.base + ["logs"]
        code, base = _peak_kib(exe + [cid])
        assert code == 0
        line = b"x" * 4000
        with open(log, "wb") as f:
            for i in range(16):
                f.write(b"".join(b"2024-01-01T00:00:%02d.%09d+00:00 stdout F %s %d\n" % (i, j, line, i * 1000 + j)
                                 for j in range(1000)))
            f.write(b"2024-01-01T00:01:00.000000001+00:00 stderr P last \n"
                    b"2024-01-01T00:01:00.000000002+00:00 stderr F line\n")
        assert log.stat().st_size > 64_000_000
        r = pallet("logs", "--tail", "2", cid, check=True)
        assert (r.stdout, r.stderr) == (f"{line.decode()} 15999\n", "last line\n")
        for flags in (["--tail", "2"], [], ["-f"]):
            code, peak = _peak_kib(exe + flags + [cid])
            assert code == 0 and peak < base + 16 * 1024, (flags, base, peak)
    finally:
        pallet("rm", "-f", cid)


@pytest.mark.parametrize("swap", ["symlink", "fifo"])
def test_log_opt_path_swapped_after_create_is_refused_at_start(pallet, tmp_path, swap):
    """``--log-opt path=`` is checked at create, but conmon (root) opens it at start: a symlink
    to a host file, or a FIFO, put there in between is refused at start in one line (the
    victim untouched, the container not started, nothing hung); the regular file put back
    starts it."""
    log = tmp_path / "ctr.log"
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    cid = pallet("create", "--network", "none", "--log-opt", f"path={log}", pallet.image, "echo", "written",
                 check=True).stdout.strip()
    try:
        if swap == "symlink":
            log.symlink_to(victim)
        else:
            os.mkfifo(log)
        r = pallet("start", "--attach", cid)
        assert r.returncode != 0 and f"log file {log}: " in _one_line_error(r.stderr), r.stderr
        assert victim.read_text() == "precious\n"
        state = pallet("inspect", "--format", "{{.State.Status}}", cid, check=True).stdout.strip()
        assert state in ("created", "exited"), state
        log.unlink()
        r = pallet("start", "--attach", cid)
        assert (r.returncode, r.stdout) == (0, "written\n"), r.stderr
        assert "written" in log.read_text() and victim.read_text() == "precious\n"
    finally:
        pallet("rm", "-f", cid)


def test_log_opt_max_size_keeps_the_log_under_it(pallet):
    """``--log-opt max-size=10k``: conmon starts the log again when the next line would pass the
    size, so the log ends with the last lines and stays under it (podman 4.3.1, measured: 122 of
    500 lines kept, from line378)."""
    script = "i=0; while [ $i -lt 500 ]; do echo line$i; i=$((i+1)); done"
    r = pallet("run", "--name", "r10d-maxsize", "--network", "none", "--log-opt", "max-size=10k", pallet.image,
               "sh", "-c", script)
    try:
        assert (r.returncode, r.stdout.splitlines()[-1]) == (0, "line499"), r.stderr
        lines = pallet("logs", "r10d-maxsize", check=True).stdout.splitlines()
        assert lines[-1] == "line499" and lines[0] == "line378" and len(lines) == 122, lines[:3]
        path = pallet("inspect", "--format", "{{.HostConfig.LogConfig.Path}}", "r10d-maxsize",
                      check=True).stdout.strip()
        assert os.path.getsize(path) <= 10_000
    finally:
        pallet("rm", "-f", "r10d-maxsize")


# -- --log-driver journald ----------------------------------------------------------------------

def test_log_driver_journald_without_a_journal_is_refused_at_create(pallet):
    """podman 4.3.1 (measured here): ``create --log-driver journald`` with no journald to take
    entries fails, ``failed to initialize journal: ...``, and nothing is made. Where the host
    runs a journald, the create works."""
    before = pallet.ids()
    r = pallet("create", "--network", "none", "--log-driver", "journald", pallet.image, "true")
    if os.path.exists("/run/systemd/journal/socket"):
        assert r.returncode == 0, r.stderr
        pallet("rm", "-f", r.stdout.strip(), check=True)
    else:
        assert r.returncode == 125
        assert _one_line_error(r.stderr).startswith("Error: failed to initialize journal: "), r.stderr
    assert pallet.ids() == before


#: where a journald of the test's own keeps its sockets and files: tmpfs over them in a mount
#: namespace of its own, so the host's journal (none runs on these machines) is never touched
_JOURNAL_DIRS = ("/run/systemd", "/run/log", "/var/log/journal")
_JOURNALD = "/lib/systemd/systemd-journald"


@pytest.fixture(scope="module")
def journal(pallet):
    """A real systemd-journald in a private mount namespace (slave: the host's mounts reach it,
    its own do not leave); ``journal(*args)`` runs pallet in that namespace, where conmon then
    writes to it and journalctl reads it."""
    from conftest import wait_for

    if not os.access(_JOURNALD, os.X_OK) or not shutil.which("journalctl"):
        pytest.skip(f"runs when systemd's {_JOURNALD} and journalctl are installed")
    missing = [d for d in _JOURNAL_DIRS if not os.path.isdir(d)]
    if missing:
        pytest.skip(f"runs when {missing} exist to mount a private tmpfs over")
    script = "".join(f"mount -t tmpfs tmpfs {d} && " for d in _JOURNAL_DIRS) + f"exec {_JOURNALD}"
    proc = subprocess.Popen(["unshare", "--mount", "--propagation", "slave", "sh", "-c", script],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: os.path.exists(f"/proc/{proc.pid}/root/run/systemd/journal/socket") or
                 proc.poll() is not None, 30, "journald's socket")
        assert proc.poll() is None, proc.stderr.read()
        nsenter = ["nsenter", f"--mount=/proc/{proc.pid}/ns/mnt", "--"]
        exe = os.path.join(os.path.dirname(sys.executable), "pallet")

        def run(*args, check=False):
            verb, rest = args[0], list(args[1:])
            if verb in ("run", "create"):
                rest = ["--network-config-dir", pallet.nets, "--cgroup-parent", CGROUP_PARENT] + rest
            p = subprocess.run(nsenter + [exe] + pallet.base + [verb] + rest, capture_output=True, text=True,
                               timeout=60, stdin=subprocess.DEVNULL)
            if check:
                assert p.returncode == 0, (args, p.stderr)
            return p

        run.nsenter = nsenter
        run.journalctl = lambda *a: subprocess.run(nsenter + ["journalctl", "-q", "--no-pager"] + list(a),
                                                    capture_output=True, text=True, timeout=30)
        yield run
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        proc.stderr.close()


def test_log_driver_journald_writes_and_logs_reads(pallet, journal):
    """conmon writes each line to the journal (``CONTAINER_ID_FULL``, ``PRIORITY`` 6 or 3,
    ``--log-opt tag=`` as ``CONTAINER_TAG`` and ``SYSLOG_IDENTIFIER``), and ``logs`` reads them
    back: stdout to stdout, stderr to stderr, ``--tail``, ``-f`` until the container exits."""
    cid = journal("run", "-d", "--name", "r10d-jd", "--network", "none", "--log-driver", "journald", "--log-opt",
                  "tag=r10d-tag", pallet.image, "sh", "-c", "echo out1; echo err1 >&2; sleep 0.2; echo out2",
                  check=True).stdout.strip()
    try:
        assert journal("wait", cid, check=True).stdout == "0\n"
        r = journal("logs", cid, check=True)
        assert (r.stdout, r.stderr) == ("out1\nout2\n", "err1\n")
        assert journal("logs", "--tail", "1", cid, check=True).stdout == "out2\n"
        entries = [json.loads(ln) for ln in journal.journalctl("-o", "json", f"CONTAINER_ID_FULL={cid}").stdout
                   .splitlines()]
        # (stdout and stderr are two pipes: their lines' order between them is not fixed)
        assert sorted((e["MESSAGE"].rstrip("\n"), e["PRIORITY"], e["CONTAINER_TAG"], e["SYSLOG_IDENTIFIER"]) for e in entries) \
            == [("err1", "3", "r10d-tag", "r10d-tag"), ("out1", "6", "r10d-tag", "r10d-tag"),
                ("out2", "6", "r10d-tag", "r10d-tag")]
        conf = journal("inspect", "--format", "{{.HostConfig.LogConfig.Type}} {{.HostConfig.LogConfig.Tag}}", cid,
                       check=True).stdout
        assert conf == "journald r10d-tag\n"
    finally:
        journal("rm", "-f", cid)
    cid = journal("run", "-d", "--network", "none", "--log-driver", "journald", pallet.image, "sh", "-c",
                  "echo a; sleep 0.3; echo b", check=True).stdout.strip()
    try:
        r = journal("logs", "-f", cid, check=True)  # returns once the container exited, every line read
        assert r.stdout == "a\nb\n"
    finally:
        journal("rm", "-f", cid)


#: the Python API in the journal's namespace: a journald container's logs, as ``list(c.logs(...))``
_API_LOGS = """
import json, sys
import pallet
root, runroot, cid = sys.argv[1:4]
c = pallet.open_store(root, runroot=runroot).containers.get(cid)
kw = json.loads(sys.argv[4])
print(json.dumps([b.decode() for b in c.logs(**kw)]))
"""


def test_python_api_reads_a_journald_containers_logs(pallet, journal):
    """``ManagedContainer.logs`` reads a ``--log-driver journald`` container's entries through
    the same reader as ``pallet logs``: both streams, one of them, the last N, following."""
    cid = journal("run", "-d", "--network", "none", "--log-driver", "journald", pallet.image, "sh", "-c",
                  "echo a1; echo e1 >&2; sleep 0.2; echo a2", check=True).stdout.strip()

    def api_logs(**kw):
        p = subprocess.run(journal.nsenter + [sys.executable, "-c", _API_LOGS, pallet.root, pallet.runroot, cid,
                                              json.dumps(kw)], capture_output=True, text=True, timeout=60,
                           stdin=subprocess.DEVNULL)
        assert p.returncode == 0, p.stderr
        return json.loads(p.stdout)

    try:
        assert api_logs(follow=True) in (["a1\n", "e1\n", "a2\n"], ["e1\n", "a1\n", "a2\n"])  # until it exited
        assert api_logs(stderr=False) == ["a1\n", "a2\n"] and api_logs(stdout=False) == ["e1\n"]
        assert api_logs(tail=1) == ["a2\n"] and api_logs(tail=0) == []
        assert api_logs(since=4102444800) == []  # 2100-01-01: nothing logged since
    finally:
        journal("rm", "-f", cid)
