"""Where a container's root filesystem comes from, as podman 4.3 does it: the mode of an image's
root directory (containers/storage's 0555 when no layer sets it), ``run``/``create`` of a transport
reference (``docker-archive:``, ``oci:``...), ``--rootfs PATH`` (and ``:O``), and the global
``--runtime-flag``; side by side with podman where it is cheap.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import tarfile

import pytest

from test_containers_run import Pallet, _one_line_error, pallet, podman  # noqa: F401 (fixtures)


def _blob(root: str, data: bytes) -> dict:
    d = hashlib.sha256(data).hexdigest()
    with open(os.path.join(root, "blobs", "sha256", d), "wb") as f:
        f.write(data)
    return {"digest": "sha256:" + d, "size": len(data)}


def _read_blob(root: str, digest: str) -> bytes:
    with open(os.path.join(root, "blobs", "sha256", digest.split(":", 1)[1]), "rb") as f:
        return f.read()


def layout_with_layer(src: str, dst: str, entries: list) -> str:
    """A copy of the OCI layout ``src`` (one image) with one more layer: ``entries`` are
    (name, mode) directories (``.`` is the layer's root entry)."""
    shutil.copytree(src, dst)
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, mode in entries:
            ti = tarfile.TarInfo(name)
            ti.type, ti.mode, ti.mtime = tarfile.DIRTYPE, mode, 1700000000
            tf.addfile(ti)
    tar = raw.getvalue()
    with open(os.path.join(dst, "index.json")) as f:
        index = json.load(f)
    desc = index["manifests"][0]
    manifest = json.loads(_read_blob(dst, desc["digest"]))
    config = json.loads(_read_blob(dst, manifest["config"]["digest"]))
    config["rootfs"]["diff_ids"].append("sha256:" + hashlib.sha256(tar).hexdigest())
    config["history"].append({"created": "2023-11-14T22:13:20Z", "created_by": "test"})
    layer = _blob(dst, gzip.compress(tar, 6, mtime=0))
    layer["mediaType"] = "application/vnd.oci.image.layer.v1.tar+gzip"
    manifest["layers"].append(layer)
    manifest["config"].update(_blob(dst, json.dumps(config).encode()))
    desc.update(_blob(dst, json.dumps(manifest).encode()))
    with open(os.path.join(dst, "index.json"), "w") as f:
        json.dump(index, f)
    return dst


# -- the image root's mode ----------------------------------------------------------------------

def test_image_root_mode_as_containers_storage(pallet, podman, tmp_path):
    """containers/storage makes a base layer's root 0555, each layer above (and the container's
    own) takes its parent's; a layer's ``./`` entry sets it with the vfs driver only (podman
    4.3.1 with overlay, measured: 555 whatever the entry says). ``stat -c %a /`` inside the
    container, side by side with podman (whose fixture store is vfs)."""
    import tempfile

    from conftest import release_all, unmount_under

    mine = pallet("run", "--rm", "--network", "none", pallet.image, "stat", "-c", "%a", "/")
    theirs = podman("run", "--rm", "--network", "none", podman.image, "stat", "-c", "%a", "/")
    assert (mine.returncode, mine.stdout) == (theirs.returncode, theirs.stdout) == (0, "555\n"), \
        (mine.stderr, theirs.stderr)
    # a layer whose root entry is 0750, then one without a root entry (0750 inherited with vfs)
    two = layout_with_layer(pallet.layout, str(tmp_path / "l1"), [(".", 0o750), ("x", 0o755)])
    three = layout_with_layer(two, str(tmp_path / "l2"), [("y", 0o755)])
    vfs = Pallet(str(tmp_path / "vfs"), tempfile.mkdtemp(prefix="pcv-"), "")
    vfs.base += ["--storage-driver", "vfs"]
    try:
        for store, want in ((pallet, "555\n"), (vfs, "750\n")):
            iid = store("pull", "-q", f"oci:{three}:v1", check=True).stdout.strip()
            r = store("run", "--rm", "--network", "none", iid, "stat", "-c", "%a", "/")
            assert (r.returncode, r.stdout) == (0, want), (store.base, r.stderr)
            store("rmi", "-f", iid, check=True)
        pid = podman("pull", "-q", f"oci:{three}:v1").stdout.strip()
        theirs = podman("run", "--rm", "--network", "none", pid, "stat", "-c", "%a", "/")
        podman("rmi", "-f", pid)
        assert (theirs.returncode, theirs.stdout) == (0, "750\n"), theirs.stderr
    finally:
        release_all(lambda: vfs("rm", "-a", "-f", "-t", "0"), lambda: unmount_under(vfs.runroot),
                    lambda: shutil.rmtree(vfs.runroot, ignore_errors=True))


# -- the global --runtime-flag ------------------------------------------------------------------

def test_runtime_flag_invalid_is_126_as_podman(pallet, podman):
    """030-run's "global runtime option": a flag the runtime does not know fails the start (126,
    the flag named), and a --rm container is gone."""
    before = pallet.ids()
    mine = pallet("--runtime-flag", "invalidflag", "run", "--rm", "--network", "none", pallet.image, "true")
    theirs = podman("--runtime-flag", "invalidflag", "run", "--rm", "--network", "none", podman.image, "true")
    assert mine.returncode == theirs.returncode == 126, (mine.stderr, theirs.stderr)
    assert "invalidflag" in _one_line_error(mine.stderr) and "invalidflag" in theirs.stderr.splitlines()[-1]
    assert pallet.ids() == before


@pytest.mark.parametrize("runtime", ["pallet-runtime", "runc"])
def test_runtime_flag_reaches_every_runtime_call(pallet, tmp_path, runtime):
    """Every call this pallet makes to the runtime (conmon's create, start, exec, kill, delete)
    has the global flags before the verb, as podman passes them; the exit command's own calls
    do not (podman's neither). The runtime is the real one, behind a script recording argv."""
    from conftest import need

    real = need("runc") if runtime == "runc" else \
        pallet("info", "--format", "{{.Host.OCIRuntime.Path}}", check=True).stdout.strip()
    record = tmp_path / "calls"
    wrapper = tmp_path / "rt"
    wrapper.write_text(f"#!/bin/sh\necho \"$*\" >> {record}\nexec {real} \"$@\"\n")
    wrapper.chmod(0o755)
    flags = ["--runtime-flag", "debug", "--runtime-flag", "log-format=json"]
    cid = pallet(*flags, "run", "-d", "--network", "none", "--runtime", str(wrapper), pallet.image, "sleep", "60",
                 check=True).stdout.strip()
    try:
        r = pallet(*flags, "exec", cid, "echo", "in")
        assert (r.returncode, r.stdout) == (0, "in\n"), r.stderr
        pallet(*flags, "rm", "-f", "-t", "0", cid, check=True)
    finally:
        pallet("rm", "-f", "-t", "0", cid)
    calls = record.read_text().splitlines()
    verbs = {}
    for line in calls:
        words = line.split()
        verb = next(w for w in words if w in ("create", "start", "exec", "kill", "delete", "state", "ps"))
        verbs.setdefault(verb, []).append(words[:words.index("--root")])
    assert {"create", "start", "exec", "kill", "delete"} <= set(verbs), calls
    for verb in ("create", "start", "exec", "kill"):
        assert all(w[:2] == ["--debug", "--log-format=json"] for w in verbs[verb]), (verb, calls)


# -- run/create of a transport reference --------------------------------------------------------

def test_run_docker_archive_podman_saved_as_podman(pallet, podman, tmp_path):
    """030-run's "podman run docker-archive": an archive ``podman save`` wrote is copied into the
    store (podman's copy lines on stderr, no "Trying to pull"), named by its RepoTags, and run;
    ``rmi`` of that name then works. Side by side with podman."""
    archive = str(tmp_path / "archive.tar")
    assert podman("tag", podman.image, "localhost/r10d-arch:latest").returncode == 0
    r = podman("save", "-q", "-o", archive, "localhost/r10d-arch:latest")
    assert r.returncode == 0, r.stderr
    assert podman("rmi", "localhost/r10d-arch:latest").returncode == 0
    for tool in (pallet, podman):
        before = pallet.ids()
        r = tool("run", "--rm", "--network", "none", f"docker-archive:{archive}", "echo", "from-archive")
        assert (r.returncode, r.stdout) == (0, "from-archive\n"), (tool, r.stderr)
        lines = [ln for ln in r.stderr.splitlines() if not ln.startswith(("time=", "WARN["))]
        assert lines[0] == "Getting image source signatures" and any(ln.startswith("Copying blob") for ln in lines) \
            and "Writing manifest to image destination" in lines, (tool, r.stderr)
        assert not any("Trying to pull" in ln for ln in lines)
        name = tool("inspect", "--format", "{{.RepoTags}}", "localhost/r10d-arch:latest")
        assert name.returncode == 0 and "localhost/r10d-arch:latest" in name.stdout.strip("[]\n").split(), \
            name.stderr
        assert tool("rmi", "localhost/r10d-arch").returncode == 0
        assert pallet.ids() == before


def test_run_create_of_every_transport(pallet, tmp_path):
    """``oci:``, ``oci-archive:``, ``dir:`` and ``docker://`` references run as podman runs
    them: copied whatever ``--pull`` says (podman's: the policy is for registries), the container
    showing the image by its name (or ID); ``docker://`` follows the policy (``--pull never``
    with the image stored runs it)."""
    from conftest import need

    skopeo = need("skopeo")
    oci_archive = str(tmp_path / "img-oci.tar")
    dir_ref = str(tmp_path / "img-dir")
    import subprocess

    for dest in (f"oci-archive:{oci_archive}:r10d-ocia", f"dir:{dir_ref}"):
        subprocess.run([skopeo, "copy", "-q", f"oci:{pallet.layout}:v1", dest], check=True, capture_output=True,
                       timeout=60)
    r = pallet("run", "--rm", "--pull", "never", "--network", "none", f"oci-archive:{oci_archive}", "cat", "/etc/group")
    assert (r.returncode, r.stdout) == (0, "root:x:0:\n"), r.stderr
    for ref in (f"oci:{pallet.layout}:v1", f"oci-archive:{oci_archive}", f"dir:{dir_ref}", f"docker://{pallet.image}"):
        r = pallet("create", "-q", "--pull", "never", "--network", "none", ref, "true")
        assert r.returncode == 0, (ref, r.stderr)
        cid = r.stdout.strip()
        try:
            img = pallet("inspect", "--format", "{{.ImageName}} {{.Image}}", cid, check=True).stdout.split()
            assert not img[0].startswith(("oci", "dir:", "docker:")) and len(img[1]) == 64, (ref, img)
        finally:
            pallet("rm", "-f", cid)


def test_run_of_a_missing_archive_is_one_line_and_nothing_made(pallet, tmp_path):
    before = pallet.ids()
    for ref in (f"docker-archive:{tmp_path}/nope.tar", f"oci-archive:{tmp_path}/nope.tar", f"oci:{tmp_path}/nope"):
        r = pallet("run", "--rm", "--network", "none", ref, "true")
        assert r.returncode == 125, (ref, r.stderr)
        assert "nope" in _one_line_error(r.stderr), r.stderr
    assert pallet.ids() == before


# -- --rootfs -----------------------------------------------------------------------------------

def _exploded(layout: str, dest) -> str:
    """The demo image's one layer extracted into ``dest`` (a root filesystem)."""
    index = json.loads(open(os.path.join(layout, "index.json")).read())
    manifest = json.loads(_read_blob(layout, index["manifests"][0]["digest"]))
    os.makedirs(dest)
    with tarfile.open(fileobj=io.BytesIO(_read_blob(layout, manifest["layers"][0]["digest"]))) as tf:
        tf.extractall(dest)  # our own archive
    return str(dest)


def test_rootfs_writes_into_the_directory_as_podman(pallet, podman, tmp_path):
    """``--rootfs PATH``: the directory is the container's root and its writes land there;
    inspect's ``Rootfs`` is the path, ``ImageName`` and ``ImageDigest`` empty (030-run). Side
    by side with podman, each on a copy of the same tree."""
    script = "echo hi > /written; cat /etc/group; stat -c %a /"
    for tool in (pallet, podman):
        root = _exploded(pallet.layout, tmp_path / f"root-{'pallet' if tool is pallet else 'podman'}")
        r = tool("run", "--name", "r10d-rootfs", "--network", "none", "--rootfs", root, "sh", "-c", script)
        try:
            assert (r.returncode, r.stdout) == (0, "root:x:0:\n755\n"), (tool, r.stderr)
            assert open(os.path.join(root, "written")).read() == "hi\n"
            fmt = "{{.Rootfs}}|{{.ImageName}}|{{.ImageDigest}}"
            shown = tool("inspect", "--format", fmt, "r10d-rootfs")
            assert (shown.returncode, shown.stdout) == (0, f"{root}||\n"), (tool, shown.stderr)
        finally:
            assert tool("rm", "-f", "r10d-rootfs").returncode == 0
        assert open(os.path.join(root, "written")).read() == "hi\n"  # rm never touches the tree
    for verb in (["diff", "r10d-rootfs2"], ["export", "-o", str(tmp_path / "x.tar"), "r10d-rootfs2"]):
        pallet("create", "--name", "r10d-rootfs2", "--network", "none", "--rootfs", root, "true", check=True)
        try:
            r = pallet(*verb)
            assert r.returncode == 125 and "not supported yet" in _one_line_error(r.stderr), (verb, r.stderr)
        finally:
            pallet("rm", "-f", "r10d-rootfs2", check=True)


def test_rootfs_overlay_never_writes_the_directory(pallet, tmp_path):
    """``--rootfs PATH:O`` (030-run's "check workdir", on ``image mount``'s read-only tree): the
    container writes into an overlay on the directory, which stays as it was; the changes are
    gone at the next start. A running --rootfs container removed with ``rm -f`` leaves its
    directory whole (the run directory is never deleted through the mount)."""
    mnt = pallet("image", "mount", pallet.image, check=True).stdout.strip()
    try:
        before = sorted(os.listdir(mnt))
        r = pallet("run", "--name", "r10d-ovl", "--network", "none", "--rootfs", f"{mnt}:O", "sh", "-c",
                   "echo Hello world; touch /new; ls /new; cat /new2 2>/dev/null; echo x > /new2")
        assert (r.returncode, r.stdout) == (0, "Hello world\n/new\n"), r.stderr
        assert sorted(os.listdir(mnt)) == before
        r = pallet("start", "-a", "r10d-ovl")
        assert (r.returncode, r.stdout) == (0, "Hello world\n/new\n"), r.stderr  # no /new2 from the last run
        assert pallet("inspect", "--format", "{{.ImageDigest}}", "r10d-ovl", check=True).stdout == "\n"
        pallet("rm", "-f", "r10d-ovl", check=True)
    finally:
        pallet("rm", "-f", "r10d-ovl")
        pallet("image", "unmount", pallet.image)
    root = _exploded(pallet.layout, tmp_path / "live")
    cid = pallet("run", "-d", "--network", "none", "--rootfs", root, "sleep", "60", check=True).stdout.strip()
    pallet("rm", "-f", "-t", "0", cid, check=True)
    assert {"bin", "etc"} <= set(os.listdir(root)) and os.path.exists(os.path.join(root, "bin", "busybox"))


def test_rootfs_bad_input_is_one_line_and_nothing_made(pallet, tmp_path):
    before = pallet.ids()
    (tmp_path / "file").write_text("x")
    root = _exploded(pallet.layout, tmp_path / "r")
    for args, word in (([str(tmp_path / "nope"), "true"], "nope"), ([str(tmp_path / "file"), "true"], "file"),
                       ([root], "command"), ([root, "true", "--uidmap"], None)):
        if word is None:  # a user namespace with --rootfs: refused as not supported yet
            args, word = ["--uidmap", "0:100000:65536", root, "true"], "not supported yet"
        r = pallet("run", "--rm", "--network", "none", "--rootfs", *args)
        assert r.returncode == 125 and word in _one_line_error(r.stderr), (args, r.stderr)
    assert pallet.ids() == before
