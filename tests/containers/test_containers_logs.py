"""``pallet logs`` on large logs (read back from the end for ``--tail``, streamed otherwise: the
peak memory stays bounded), ``--log-opt max-size`` (conmon's truncation), and ``--log-driver
journald`` (conmon writes to a real systemd-journald, ``logs`` reads it back)."""

from __future__ import annotations

import os
import subprocess
import sys

from test_containers_run import Pallet, _one_line_error, pallet  # noqa: F401 (fixtures)


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
