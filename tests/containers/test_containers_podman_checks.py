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


def test_volume_export_import_mount(pallet, tmp_path):
    """160-volumes' "volume import test" and "volume mount": export's tar of the content,
    import into another volume (from - too), mount printing the data path; a hostile archive
    (a symlink out, then a file through it) writes nothing outside the volume."""
    import io
    import subprocess
    import tarfile

    assert pallet("volume", "create", "vexp1", check=True).stdout == "vexp1\n"
    pallet("volume", "create", "vexp2", check=True)
    try:
        pallet("run", "--rm", "--network", "none", "-v", "vexp1:/data", pallet.image, "sh", "-c",
               "echo hello > /data/test", check=True)
        tarfile_path = str(tmp_path / "v.tar")
        pallet("volume", "export", "vexp1", f"--output={tarfile_path}", check=True)
        with tarfile.open(tarfile_path) as t:
            assert t.getnames() == ["test"]
        exe = os.path.join(os.path.dirname(os.sys.executable), "pallet")
        with open(tarfile_path, "rb") as f:
            r = subprocess.run([exe] + pallet.base + ["volume", "import", "vexp2", "-"], stdin=f,
                               capture_output=True, timeout=60)
        assert r.returncode == 0, r.stderr
        r = pallet("run", "--rm", "--network", "none", "-v", "vexp2:/data", pallet.image, "cat", "/data/test")
        assert r.stdout == "hello\n", r.stderr
        mnt = pallet("volume", "mount", "vexp2", check=True).stdout.strip()
        assert open(os.path.join(mnt, "test")).read() == "hello\n"
        pallet("volume", "unmount", "vexp2", check=True)
        # hostile: "out" -> the test's tmp dir, then "out/escaped"
        bad = tmp_path / "bad.tar"
        with tarfile.open(bad, "w") as t:
            link = tarfile.TarInfo("out")
            link.type, link.linkname = tarfile.SYMTYPE, str(tmp_path)
            t.addfile(link)
            f = tarfile.TarInfo("out/escaped")
            f.size = 3
            t.addfile(f, io.BytesIO(b"bad"))
        pallet("volume", "import", "vexp2", str(bad))
        assert not (tmp_path / "escaped").exists()
        for verb in (["export", "nosuchvol"], ["import", "nosuchvol", tarfile_path], ["mount", "nosuchvol"]):
            r = pallet("volume", *verb)
            assert r.returncode == 125 and "nosuchvol" in _one_line_error(r.stderr)
    finally:
        pallet("volume", "rm", "-f", "vexp1", "vexp2")


def test_volume_create_on_a_new_root_makes_a_pallet_store(tmp_path):
    """A volume made before any image or container: the root is a pallet store after it
    (160-volumes creates volumes first; the store used to refuse its own root then)."""
    import subprocess

    exe = os.path.join(os.path.dirname(os.sys.executable), "pallet")
    base = [exe, "--root", str(tmp_path / "root"), "--runroot", str(tmp_path / "run")]
    r = subprocess.run(base + ["volume", "create", "first"], capture_output=True, text=True, timeout=60)
    assert (r.returncode, r.stdout) == (0, "first\n"), r.stderr
    r = subprocess.run(base + ["images", "-q"], capture_output=True, text=True, timeout=60)
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")


@pytest.mark.parametrize("rule", ["b 7:* r", "c 7:1 r", "a 7 r"])
def test_device_cgroup_rule_as_podman(pallet, podman, rule):
    """030-run's --device-cgroup-rule: the rule opens the device cgroup for that device (a loop
    device node made in /dev is readable or not), the same as podman."""
    # a kernel without loop device 1 reads nothing through any rule: both tools say denied then
    loop = os.path.exists("/sys/block/loop1")
    script = "mknod /dev/l b 7 1; head -c 1 /dev/l >/dev/null && echo readable || echo denied"
    flags = ["--rm", "--network", "none", "--cap-add", "mknod", "--device-cgroup-rule", rule]
    mine = pallet("run", *flags, pallet.image, "sh", "-c", script)
    theirs = podman("run", *flags, podman.image, "sh", "-c", script)
    assert mine.returncode == theirs.returncode == 0, (mine.stderr, theirs.stderr)
    assert mine.stdout == theirs.stdout
    assert mine.stdout == ("denied\n" if rule.startswith("c") or not loop else "readable\n")


@pytest.mark.parametrize("rule,error", [
    ("b 7:* rmX", "invalid device access in device-access-add: X"),
    ("b 7:2", 'invalid device cgroup rule requires type, major:Minor, and access rules: "b 7:2"'),
    ("x 7:* rmw", "invalid device type in device-access-add: x"),
    ("a a:* rmw", 'strconv.ParseUint: parsing "a": invalid syntax'),
    ("b 7:-1 r", 'strconv.ParseUint: parsing "-1": invalid syntax'),
])
def test_device_cgroup_rule_errors_as_podman(pallet, podman, rule, error):
    before = pallet.ids()
    mine = pallet("run", "--rm", "--network", "none", "--device-cgroup-rule", rule, pallet.image, "true")
    theirs = podman("run", "--rm", "--network", "none", "--device-cgroup-rule", rule, podman.image, "true")
    assert mine.returncode == theirs.returncode == 125
    assert _one_line_error(mine.stderr) == _one_line_error(theirs.stderr) == "Error: " + error
    assert pallet.ids() == before


def test_stop_shows_stopping_while_it_waits(pallet):
    """050-stop's "unlock while waiting for timeout": while stop waits for a container that
    ignores SIGTERM, other verbs work and inspect says "stopping"; then "exited"."""
    import subprocess

    from conftest import wait_for

    cid = pallet("run", "-d", "--network", "none", "--name", "stopme", pallet.image, "sh", "-c",
                 "trap 'echo got TERM' TERM; echo READY; while :; do sleep 0.2; done", check=True).stdout.strip()
    try:
        wait_for(lambda: "READY" in pallet("logs", cid).stdout, what="the container's READY")
        exe = os.path.join(os.path.dirname(os.sys.executable), "pallet")
        stopper = subprocess.Popen([exe] + pallet.base + ["stop", "-t", "3", cid], stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        try:
            wait_for(lambda: "got TERM" in pallet("logs", cid).stdout, what="the container's TERM")
            assert pallet("ps", "-a", check=True).returncode == 0
            assert pallet("inspect", "--format", "{{.State.Status}}", cid, check=True).stdout == "stopping\n"
        finally:
            out, err = stopper.communicate(timeout=60)
        assert stopper.returncode == 0, err
        assert pallet("inspect", "--format", "{{.State.Status}}", cid, check=True).stdout == "exited\n"
    finally:
        pallet("rm", "-f", "-t", "0", cid)


def test_volume_needs_chown_first_use_as_podman(pallet, podman):
    """160-volumes' "volume create copyup": the first use gives the volume to the container's
    user (nothing at the mount point in the image) and turns NeedsChown off, NeedsCopyUp stays
    on until a mount point with content; podman side by side."""
    def flags(tool, name):
        return tool("volume", "inspect", "--format", "{{.NeedsCopyUp}} {{.NeedsChown}}", name).stdout.split()

    for tool, image in ((pallet, pallet.image), (podman, podman.image)):
        tool("volume", "create", "nchown")
        try:
            assert flags(tool, "nchown") == ["true", "true"]
            r = tool("run", "--rm", "--network", "none", "-u", "1234:5678", "-v", "nchown:/vol", image, "stat", "-c",
                     "%u:%g", "/vol")
            assert (r.returncode, r.stdout) == (0, "1234:5678\n"), r.stderr
            assert flags(tool, "nchown") == ["true", "false"]
            r = tool("run", "--rm", "--network", "none", "-v", "nchown:/etc", image, "ls", "/etc/passwd")
            assert r.returncode == 0, r.stderr
            assert flags(tool, "nchown") == ["false", "false"]
        finally:
            tool("volume", "rm", "-f", "nchown")


def test_run_pull_prints_podmans_lines_unless_quiet(pallet, tmp_path):
    """030-run's "run --pull": a pull by run prints podman's "Trying to pull NAME..." and copy
    lines on stderr (none when the image is there, none with -q)."""
    import subprocess

    exe = os.path.join(os.path.dirname(os.sys.executable), "pallet")
    base = [exe, "--root", str(tmp_path / "root"), "--runroot", str(tmp_path / "run"), "run",
            "--network-config-dir", pallet.nets, "--tls-verify=false", "--rm", "--network", "none"]

    def run(*flags):
        return subprocess.run(base + list(flags) + [pallet.image, "true"], capture_output=True, text=True,
                              timeout=120, stdin=subprocess.DEVNULL)

    from conftest import unmount_under

    try:
        r = run("--pull=missing")
        assert r.returncode == 0, r.stderr
        assert r.stderr.startswith(f"Trying to pull {pallet.image}...\nGetting image source signatures\n"), r.stderr
        assert "Writing manifest to image destination" in r.stderr
        assert run("--pull=missing").stderr == ""
        r = run("--pull=always")
        assert r.stderr.startswith(f"Trying to pull {pallet.image}..."), r.stderr
        r = run("--pull=always", "-q")
        assert (r.returncode, r.stderr) == (0, "")
    finally:  # the store's own run root: its namespaces' directory is a mount (netns.py)
        unmount_under(str(tmp_path / "run"), str(tmp_path / "root"))


def test_run_start_failure_is_126_as_podman(pallet, podman):
    """podman's run exits 126 when the start fails for a reason other than a missing command
    (libpod's define.ExitCode): a runtime that fails its create (/bin/false); --rm leaves nothing."""
    before = pallet.ids()
    mine = pallet("run", "--rm", "--network", "none", "--runtime", "/bin/false", pallet.image, "true")
    theirs = podman("run", "--rm", "--network", "none", "--runtime", "/bin/false", podman.image, "true")
    assert mine.returncode == theirs.returncode == 126, (mine.stderr, theirs.stderr)
    assert "container create failed" in _one_line_error(mine.stderr)
    assert pallet.ids() == before


def test_inspect_latest(pallet):
    """030-run's "does not truncate or hang": ``inspect -l`` is the container created last."""
    first = pallet("create", "--network", "none", pallet.image, "true", check=True).stdout.strip()
    second = pallet("create", "--network", "none", pallet.image, "true", check=True).stdout.strip()
    try:
        r = pallet("inspect", "-l", "--format", "{{.Id}} {{.HostConfig.LogConfig.Path}}", check=True)
        cid, path = r.stdout.split()
        assert cid == second and second in path
        r = pallet("inspect", "--latest", first)
        assert r.returncode != 0 and "--latest and containers cannot be used together" in _one_line_error(r.stderr)
        assert pallet("rm", "-l", check=True).stdout.strip() == second  # rm -l too
        assert second not in pallet.ids() and first in pallet.ids()
    finally:
        pallet("rm", "-f", first, second)
