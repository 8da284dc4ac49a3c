"""Attacks on ``pallet cp`` (and diff/export): an image whose ``/etc`` is a symlink to a host
path (relative, climbing out with ``..``, or absolute) must make cp read and write inside the
container's root filesystem, never the host's files; a hostile tar on stdin never writes
outside the destination."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile

import pytest

from conftest import release_all, unmount_under
from images import Blobs, layer_tar

HERE = os.path.dirname(os.path.abspath(__file__))


def _add_layer(layout: str, files: dict) -> None:
    """Put one more (uncompressed) layer of ``files`` (tests/images.layer_tar's spec) on the
    layout's image."""
    blobs = Blobs(layout)
    tar = layer_tar(files)

    def read(desc) -> dict:
        with open(os.path.join(layout, "blobs", "sha256", desc["digest"].split(":", 1)[1]), "rb") as f:
            return json.loads(f.read())

    def put(desc: dict, data: bytes) -> None:
        desc["digest"], desc["size"] = blobs.put(data)

    with open(os.path.join(layout, "index.json")) as f:
        index = json.load(f)
    mdesc = index["manifests"][0]
    manifest = read(mdesc)
    config = read(manifest["config"])
    config["rootfs"]["diff_ids"].append("sha256:" + hashlib.sha256(tar).hexdigest())
    layer = {"mediaType": "application/vnd.oci.image.layer.v1.tar"}
    put(layer, tar)
    manifest["layers"].append(layer)
    put(manifest["config"], json.dumps(config).encode())
    put(mdesc, json.dumps(manifest).encode())
    with open(os.path.join(layout, "index.json"), "w") as f:
        json.dump(index, f)


def _link(name: str, target: str) -> tuple:
    ti = tarfile.TarInfo(name)
    ti.type, ti.linkname, ti.mode = tarfile.SYMTYPE, target, 0o777
    return ti, None


def _file(name: str, data: bytes) -> tuple:
    ti = tarfile.TarInfo(name)
    ti.size, ti.mode = len(data), 0o644
    return ti, data


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    """A pallet store with a created container on an image whose ``/etc`` climbs out to a host
    directory (``../../..HOST``), ``/abs`` points at it absolutely, and a copy of that directory
    exists inside the image (what the container should see). The tests run in file order: the
    reading ones before the writing ones."""
    if os.geteuid() != 0:
        pytest.fail("this test needs root: the container's root filesystem is mounted (the suite runs as root: see .ci/run)")
    tmp_path = tmp_path_factory.mktemp("hostile")
    host = tmp_path / "host-etc"
    host.mkdir()
    (host / "passwd").write_text("host-secret\n")
    layout = str(tmp_path / "layout")
    subprocess.run([sys.executable, os.path.join(HERE, "..", "..", "scripts", "make-demo-image.py"), layout, "v1"],
                   check=True, capture_output=True)
    inside = str(host).lstrip("/")
    files = {"/".join(inside.split("/")[:i + 1]): {"type": "dir"} for i in range(len(inside.split("/")))}
    files.update({f"{inside}/passwd": b"inside\n", "etc": {"type": "symlink", "target": "../" * 12 + inside},
                  "abs": {"type": "symlink", "target": str(host)},
                  "dangle": {"type": "symlink", "target": "../" * 12 + inside + "/created"}})
    _add_layer(layout, files)
    root, runroot = str(tmp_path / "root"), tempfile.mkdtemp(prefix="padv-")
    exe = os.path.join(os.path.dirname(sys.executable), "pallet")

    def pallet(*args, input=None):
        return subprocess.run([exe, "--root", root, "--runroot", runroot] + list(args), capture_output=True,
                              input=input, timeout=60, stdin=None if input is not None else subprocess.DEVNULL)

    r = pallet("create", "--name", "hostile", "--network", "none", f"oci:{layout}:v1", "true")
    assert r.returncode == 0, r.stderr
    pallet.host, pallet.image = host, f"oci:{layout}:v1"
    try:
        yield pallet
    finally:
        release_all(lambda: pallet("rm", "-a", "-f"), lambda: unmount_under(runroot, root),
                    lambda: shutil.rmtree(runroot, ignore_errors=True))


def test_diff_and_export_stay_in_the_container(hostile, tmp_path):
    r = hostile("diff", "hostile")
    assert r.returncode == 0 and r.stdout == b"", r.stderr
    out = tmp_path / "x.tar"
    assert hostile("export", "-o", str(out), "hostile").returncode == 0
    with tarfile.open(out) as tf:
        m = tf.getmember("etc")
        assert m.issym() and m.linkname.startswith("../")  # the link itself, not the host's /etc
        assert tf.extractfile(tf.getmember(str(hostile.host).lstrip("/") + "/passwd")).read() == b"inside\n"


UP = "../" * 12  # more than the host directory's depth: .. stops at the container's root


@pytest.mark.parametrize("path", ["/etc/passwd", "/abs/passwd", "etc/passwd", f"/abs/{UP}etc/passwd"])
def test_cp_out_reads_the_containers_file_never_the_hosts(hostile, tmp_path, path):
    out = tmp_path / "out"
    r = hostile("cp", f"hostile:{path}", str(out))
    assert r.returncode == 0, r.stderr
    assert out.read_text() == "inside\n"
    r = hostile("cp", f"hostile:{path}", "-")
    with tarfile.open(fileobj=io.BytesIO(r.stdout)) as tf:
        assert [tf.extractfile(m).read() for m in tf.getmembers()] == [b"inside\n"]


@pytest.mark.parametrize("dest", ["/etc/passwd", "/etc/", "/abs/new", f"/abs/{UP}etc/passwd"])
def test_cp_in_writes_the_containers_file_never_the_hosts(hostile, tmp_path, dest):
    src = tmp_path / "passwd"
    src.write_text("pwned\n")
    before = sorted(os.listdir(hostile.host))
    r = hostile("cp", str(src), f"hostile:{dest}")
    assert r.returncode == 0, r.stderr
    assert (hostile.host / "passwd").read_text() == "host-secret\n"
    assert sorted(os.listdir(hostile.host)) == before
    got = hostile("cp", f"hostile:{dest.rstrip('/') + ('/passwd' if dest.endswith('/') else '')}", "-")
    with tarfile.open(fileobj=io.BytesIO(got.stdout)) as tf:
        assert [tf.extractfile(m).read() for m in tf.getmembers()] == [b"pwned\n"]


def test_cp_through_a_dangling_symlink_creates_inside(hostile, tmp_path):
    """A destination that is a symlink to nothing is written through, as podman does, to where
    it points inside the container: ``../`` climbing out stops at its root."""
    src = tmp_path / "f"
    src.write_text("through\n")
    r = hostile("cp", str(src), "hostile:/dangle")
    assert r.returncode == 0, r.stderr
    assert sorted(os.listdir(hostile.host)) == ["passwd"]
    got = hostile("cp", "hostile:/dangle", "-")
    with tarfile.open(fileobj=io.BytesIO(got.stdout)) as tf:
        assert [tf.extractfile(m).read() for m in tf.getmembers()] == [b"through\n"]


def test_a_running_container_is_read_and_written_in_its_own_root(hostile, tmp_path):
    """A running container is reached through its init's root (``/proc/PID/root``, checked to
    be its root filesystem): its symlinks still resolve inside it."""
    r = hostile("run", "-d", "--name", "hostile-live", "--network", "none", hostile.image, "sleep", "600")
    assert r.returncode == 0, r.stderr
    try:
        src = tmp_path / "f"
        src.write_text("live\n")
        for dest in ("/etc/live", "/abs/live2", f"/abs/{UP}etc/live3", "/dangle"):
            r = hostile("cp", str(src), f"hostile-live:{dest}")
            assert r.returncode == 0, (dest, r.stderr)
        assert sorted(os.listdir(hostile.host)) == ["passwd"]
        got = hostile("cp", "hostile-live:/etc/passwd", "-")
        with tarfile.open(fileobj=io.BytesIO(got.stdout)) as tf:
            assert [tf.extractfile(m).read() for m in tf.getmembers()] == [b"inside\n"]
    finally:
        hostile("rm", "-f", "-t", "0", "hostile-live")


def test_hostile_tar_on_stdin_stays_in_the_destination(hostile, tmp_path):
    """A tar on stdin whose names climb out (``../``), or that writes through a symlink it
    made (``x -> HOST``, then ``x/passwd``), is refused with one line; the host is untouched."""
    for members in ([_file("../../../../../../" + str(hostile.host).lstrip("/") + "/passwd", b"pwned\n")],
                    [_link("x", str(hostile.host)), _file("x/passwd", b"pwned\n")],
                    [_link("y", "../" * 12 + str(hostile.host).lstrip("/")), _file("y/passwd", b"pwned\n")]):
        raw = io.BytesIO()
        with tarfile.open(fileobj=raw, mode="w") as tf:
            for ti, data in members:
                tf.addfile(ti, io.BytesIO(data) if data is not None else None)
        r = hostile("cp", "-", "hostile:/tmp", input=raw.getvalue())
        err = r.stderr.decode()
        assert r.returncode == 125 and len(err.strip().splitlines()) == 1 and err.startswith("Error: "), err
        assert (hostile.host / "passwd").read_text() == "host-secret\n"
        assert sorted(os.listdir(hostile.host)) == ["passwd"]
