"""The test groups keep their promise: ``pytest -m unit`` passes as an unprivileged user
with no peer tool on PATH (the markers are derived in conftest.py)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile

import pytest


@pytest.fixture
def open_tmp():
    """A scratch directory the unprivileged user can write (pytest's own tmp is 0700)."""
    d = tempfile.mkdtemp(prefix="pallet-unit-")
    os.chmod(d, 0o777)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def _stop_pause(pidfile: str) -> None:
    import signal

    try:
        pid = int(open(pidfile).read())
    except (OSError, ValueError):
        return
    try:
        if open(f"/proc/{pid}/comm").read().strip() == "catatonit" and os.stat(f"/proc/{pid}").st_uid == 65534:
            os.kill(pid, signal.SIGKILL)
    except OSError:
        pass


def test_unit_group_needs_neither_root_nor_peers(root_required, open_tmp):
    tests = os.path.dirname(os.path.abspath(__file__))
    venv_bin = os.path.dirname(sys.executable)
    run_dir = os.path.join(open_tmp, "run")  # the user's XDG_RUNTIME_DIR: its rootless pause process's pid
    os.mkdir(run_dir, 0o700)
    os.chown(run_dir, 65534, 65534)
    env = {"PATH": venv_bin, "HOME": open_tmp, "TMPDIR": open_tmp, "LANG": "C.UTF-8", "XDG_RUNTIME_DIR": run_dir}
    try:
        p = subprocess.run([shutil.which("setpriv") or "/usr/bin/setpriv", "--reuid=65534", "--regid=65534",
                            "--clear-groups", sys.executable, "-m", "pytest", "-q", "-m", "unit", "-p",
                            "no:cacheprovider", "--rootdir", os.path.dirname(tests), tests],
                           capture_output=True, text=True, env=env, cwd=open_tmp, timeout=600)
    finally:  # a unit test's pallet as the user leaves the user's namespace holder (podman's too)
        _stop_pause(os.path.join(run_dir, "pallet-userns", "pause.pid"))
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-2000:]
    assert " passed" in p.stdout and " failed" not in p.stdout
