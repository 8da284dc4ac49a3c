"""Behaviour podman 4.3.1's own system tests (test/system 030..500) check, side by side with
podman where it is cheap: ``--workdir`` missing from the image (126 at start), ...
"""

from __future__ import annotations

import os
import re
import socket

import pytest

from test_containers_run import Pallet, _one_line_error, pallet, podman  # noqa: F401 (fixtures)


def _no_id(stderr: str) -> str:
    return re.sub(r"[0-9a-f]{64}", "ID", _one_line_error(stderr))


def test_run_workdir_missing_is_126_as_podman(pallet, podman):
    before = pallet.ids()
    mine = pallet("run", "--rm", "--network", "none", "--workdir", "/i/do/not/exist", pallet.image, "pwd")
    theirs = podman("run", "--rm", "--network", "none", "--workdir", "/i/do/not/exist", podman.image, "pwd")
    assert mine.returncode == theirs.returncode == 126, (mine.stderr, theirs.stderr)
    assert _no_id(mine.stderr) == _no_id(theirs.stderr) == \
        'Error: workdir "/i/do/not/exist" does not exist on container ID'
    assert pallet.ids() == before  # --rm: nothing left


def test_run_workdir_at_or_above_a_mount_is_made(pallet, tmp_path):
    (tmp_path / "content").write_text("hi\n")
    r = pallet("run", "--rm", "--network", "none", "--workdir", "/NotOnImage", "-v", f"{tmp_path}:/NotOnImage",
               pallet.image, "cat", "content")
    assert (r.returncode, r.stdout) == (0, "hi\n"), r.stderr
    r = pallet("run", "--rm", "--network", "none", "--workdir", "/NotOnImage2", "-v",
               f"{tmp_path}/content:/NotOnImage2/foo", pallet.image, "cat", "foo")
    assert (r.returncode, r.stdout) == (0, "hi\n"), r.stderr
    r = pallet("run", "--rm", "--network", "none", "--workdir", "/etc", pallet.image, "pwd")  # on the image
    assert (r.returncode, r.stdout) == (0, "/etc\n"), r.stderr


def test_info_runtime_path_is_what_run_uses_and_a_copy_is_kept(pallet, tmp_path):
    """030-run's "full path to --runtime is preserved": info names the runtime's file; a copy
    of it given by path runs the container, and inspect shows that path."""
    import shutil

    path = pallet("info", "--format", "{{.Host.OCIRuntime.Path}}", check=True).stdout.strip()
    assert os.path.isabs(path) and os.access(path, os.X_OK), path
    copy = str(tmp_path / "myruntime")
    shutil.copy2(path, copy)
    r = pallet("run", "--rm", "--network", "none", "--runtime", copy, "--name", "rtcopy", pallet.image, "true")
    assert r.returncode == 0, r.stderr
    r = pallet("create", "--network", "none", "--runtime", copy, pallet.image, "true", check=True)
    cid = r.stdout.strip()
    try:
        assert pallet("inspect", "--format", "{{.OCIRuntime}}", cid, check=True).stdout.strip() == copy
    finally:
        pallet("rm", "-f", cid)


def test_containerenv_empty_unless_privileged(pallet):
    """030-run's "Verify /run/.containerenv exist": podman's marker file, empty, and with the
    container's fields for --privileged (engine: pallet's name and version, not podman's)."""
    r = pallet("run", "--rm", "--network", "none", pallet.image, "stat", "-c", "%s", "/run/.containerenv")
    assert (r.returncode, r.stdout) == (0, "0\n"), r.stderr
    iid = pallet("image", "inspect", "--format", "{{.Id}}", pallet.image, check=True).stdout.strip()
    r = pallet("run", "--rm", "--network", "none", "--privileged", "--name", "cenv1", pallet.image, "sh", "-c",
               ". /run/.containerenv; echo $engine; echo $name; echo $image; echo $id; echo $imageid; echo $rootless")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("pallet-") and lines[1:3] == ["cenv1", pallet.image]
    assert re.fullmatch(r"[0-9a-f]{64}", lines[3]) and lines[4] == iid and lines[5] == "0"


def test_published_port_is_held_second_container_fails_126(pallet):
    """030-run's "podman run failed --rm": conmon holds a socket on each published host port
    (podman 4.3's reservation), so a second container publishing it fails to start with exit
    126 and podman's words (measured: podman 4.3.1 on this machine); without --rm it stays
    created, with --rm it is gone; the first keeps running and its port."""
    from conftest import free_port, wait_for

    port = free_port()
    first = pallet("run", "-d", "--rm", "-p", f"{port}:80", "--name", "pfirst", pallet.image, "sleep", "60")
    assert first.returncode == 0, first.stderr
    try:
        for flags, name in (([], "pfail"), (["--rm"], "pfailrm")):
            r = pallet("run", "-d", *flags, "-p", f"{port}:80", "--name", name, pallet.image, "sleep", "60")
            assert r.returncode == 126, r.stderr
            assert _one_line_error(r.stderr) == \
                f"Error: cannot listen on the TCP port: listen tcp4 :{port}: bind: address already in use"
        names = pallet("ps", "-a", "--format", "{{.Names}} {{.Status}}", check=True).stdout
        assert "pfailrm" not in names and "pfail Created" in names and "pfirst Up" in names
        with pytest.raises(OSError):  # the port is held while the first container runs
            with socket.socket() as s:
                s.bind(("0.0.0.0", port))
    finally:
        pallet("rm", "-f", "-t", "0", "pfirst", "pfail")

    def free():
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("0.0.0.0", port))
            except OSError:
                return False
            return True

    wait_for(free, what=f"port {port} let go with the container")  # conmon exits with it


def test_log_opt_max_size_decimal_as_podman(pallet):
    """030-run's "--log-opt option": go-units' decimal sizes, shown by inspect as podman does."""
    cid = pallet("create", "--network", "none", "--log-opt", "max-size=9.057m", pallet.image, "true",
                 check=True).stdout.strip()
    try:
        assert pallet("inspect", "--format", "{{ .HostConfig.LogConfig.Size }}", cid,
                      check=True).stdout.strip() == "9.057MB"
    finally:
        pallet("rm", "-f", cid)
    cid = pallet("create", "--network", "none", pallet.image, "true", check=True).stdout.strip()
    try:
        assert pallet("inspect", "--format", "{{ .HostConfig.LogConfig.Size }}", cid,
                      check=True).stdout.strip() == "0B"
    finally:
        pallet("rm", "-f", cid)
