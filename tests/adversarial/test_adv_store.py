"""Attacks on and corruption of the local store: each reproduced through the real command,
checking the store (or a foreign one) is left as it should be and the user gets one line."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

import images
from conftest import need
from test_store_images import _image, busybox_store, podman, s  # noqa: F401  (fixtures)
from test_storage import StoreCLI

pytestmark = pytest.mark.usefixtures("isolated")


def _pulled_saved_loaded(s, registry, tmp_path, name: str):
    """Pull image ``name``, save it to ``a.tar`` and load that back into the same store;
    return (reference, archive, its images.json record)."""
    ref = _image(registry, tmp_path, name)
    s("pull", "-q", "--tls-verify=false", ref)
    archive = str(tmp_path / "a.tar")
    s("save", "-o", archive, ref)
    s("load", "-i", archive)
    with open(os.path.join(s.root, "images.json")) as f:
        (rec,) = json.load(f).values()
    return ref, archive, rec


def test_check_finds_a_manifest_naming_a_blob_the_store_lacks(s, registry, tmp_path):
    """What save -> load in one store used to leave: a second manifest (the archive's, with plain
    tar layers) whose blobs were never kept. check must see it; --repair forgets that manifest
    and keeps the image, which still saves."""
    ref, _, rec = _pulled_saved_loaded(s, registry, tmp_path, "adv/blobless")
    assert len(rec["manifests"]) == 2
    other = next(d for d in rec["manifests"] if d != rec["digest"])
    with open(os.path.join(s.root, "blobs", "sha256", other.split(":", 1)[1])) as f:
        plain_blob = json.load(f)["layers"][0]["digest"]
    os.unlink(os.path.join(s.root, "blobs", "sha256", plain_blob.split(":", 1)[1]))
    p = s("system", "check", check=False)
    assert p.returncode == 1
    assert f"manifest {other} names layer blob {plain_blob}" in p.stdout
    s("system", "check", "--repair")
    s("system", "check")
    with open(os.path.join(s.root, "images.json")) as f:
        (rec,) = json.load(f).values()
    assert list(rec["manifests"]) == [rec["digest"]] and rec["digests"] == [rec["digest"]]
    s("save", "-o", str(tmp_path / "b.tar"), ref)


# -- issue 13.5: a foreign root is refused, untouched; ours is marked ----------------------

def _snapshot(root: str) -> dict:
    """Every entry under ``root``: type, mode, owner, size, mtime, and the bytes of files and
    the targets of links (byte-for-byte, metadata included)."""
    import hashlib
    import stat

    out = {}
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files + ([] if dirpath != root else ["."]):
            path = os.path.normpath(os.path.join(dirpath, name))
            st = os.lstat(path)
            entry = (stat.S_IFMT(st.st_mode), st.st_mode, st.st_uid, st.st_gid, st.st_size, st.st_mtime_ns)
            if stat.S_ISREG(st.st_mode):
                with open(path, "rb") as f:
                    entry += (hashlib.sha256(f.read()).hexdigest(),)
            elif stat.S_ISLNK(st.st_mode):
                entry += (os.readlink(path),)
            out[os.path.relpath(path, root)] = entry
    return out


def _one_line_error(p, *words):
    assert p.returncode != 0, p.stdout
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in p.stderr, p.stderr
    for w in words:
        assert w in lines[0], lines[0]


def _runroot(root: str) -> str:
    from pallet.storage.options import derived_runroot

    return derived_runroot(root)


def test_a_podman_root_is_refused_and_left_byte_for_byte(podman, registry, tmp_path):
    ref = _image(registry, tmp_path, "adv/foreignroot")
    podman("pull", "-q", "--tls-verify=false", ref)
    before = _snapshot(podman.root)
    assert any(k.startswith("vfs-images") for k in before)
    s = StoreCLI(podman.root, "vfs")
    layout = str(tmp_path / "lay")
    images.make_layout(layout, "v1")
    archive = str(tmp_path / "a.tar")
    subprocess.run([need("skopeo"), "copy", "-q", f"oci:{layout}:v1", f"docker-archive:{archive}:x:1"], check=True)
    for args in (("images",), ("images", "-a", "--format", "json"), ("image", "inspect", ref), ("image", "exists", ref),
                 ("image", "history", ref), ("system", "df"), ("system", "check"), ("system", "check", "--repair"),
                 ("save", "-o", str(tmp_path / "s.tar"), ref), ("push", "--tls-verify=false", ref),
                 ("pull", "-q", "--tls-verify=false", ref), ("copy", f"oci:{layout}:v1", "local:x:1"),
                 ("copy", f"local:{ref}", f"oci:{tmp_path}/out:x"), ("load", "-i", archive), ("tag", ref, "y"),
                 ("rmi", "-a"), ("image", "prune", "-a"), ("image", "mount", ref), ("image", "mount")):
        p = s(*args, check=False)
        _one_line_error(p, podman.root, "not a pallet store", "containers-storage")
        assert _snapshot(podman.root) == before, args
    assert not os.path.exists(_runroot(podman.root))
    # and podman still has its image, whole
    assert podman("images", "-q").stdout.strip()
    podman("image", "mount", ref)
    podman("image", "umount", ref)


def test_a_directory_of_other_files_and_a_newer_format_are_refused(tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine\n")
    before = _snapshot(str(other))
    s = StoreCLI(str(other), "overlay")
    layout = str(tmp_path / "lay")
    images.make_layout(layout, "v1", layers=[{"a": "a"}])
    for args in (("images",), ("copy", f"oci:{layout}:v1", "local:x")):
        _one_line_error(s(*args, check=False), "not a pallet store", "notes.txt")
    assert _snapshot(str(other)) == before
    newer = StoreCLI(str(tmp_path / "newer"), "overlay")
    newer("copy", "-q", f"oci:{layout}:v1", "local:x:1")
    with open(os.path.join(newer.root, "pallet-store"), "w") as f:
        f.write("pallet-store-format 2\n")
    before = _snapshot(newer.root)
    for args in (("images",), ("system", "check", "--repair"), ("rmi", "-a")):
        _one_line_error(newer(*args, check=False), "format 2", "newer pallet")
    assert _snapshot(newer.root) == before


def test_a_store_from_before_the_marker_still_opens_and_is_marked(s, tmp_path):
    layout = str(tmp_path / "lay")
    images.make_layout(layout, "v1", layers=[{"a": "a"}])
    s("copy", "-q", f"oci:{layout}:v1", "local:x:1")
    iid = s("images", "-q", "--no-trunc").stdout.strip()
    for name in ("pallet-store", "overlay-images", "vfs-images"):  # what the previous version made
        os.unlink(os.path.join(s.root, name))
    assert s("images", "-q", "--no-trunc").stdout.strip() == iid  # a read-only verb opens it
    with open(os.path.join(s.root, "pallet-store")) as f:
        assert f.read() == "pallet-store-format 1\n"
    assert os.path.isfile(os.path.join(s.root, "overlay-images"))
    s("system", "check")


def test_read_only_verbs_on_a_missing_root_show_nothing_and_create_nothing(tmp_path):
    root = str(tmp_path / "missing" / "root")
    s = StoreCLI(root, "overlay")
    assert s("images", "-q").stdout == ""
    assert s("images", "--format", "json").stdout.strip() == "[]"
    assert s("system", "df").returncode == 0
    assert s("system", "check").stdout == ""
    assert s("image", "mount").stdout == ""
    assert s("image", "exists", "x", check=False).returncode == 1
    for args in (("image", "inspect", "x"), ("save", "-o", str(tmp_path / "x.tar"), "x"), ("push", "x", "oci:/tmp/y"),
                 ("copy", "local:x", f"oci:{tmp_path}/o:x")):
        _one_line_error(s(*args, check=False), "x")
    assert not os.path.exists(str(tmp_path / "missing"))
    assert not os.path.exists(_runroot(root))
    # an empty directory too (the lost+found of a filesystem made for it counts as empty): left
    # as it is by reads, made a store by a write
    empty = tmp_path / "empty"
    (empty / "lost+found").mkdir(parents=True)
    e = StoreCLI(str(empty), "overlay")
    assert e("images", "-q").stdout == ""
    assert os.listdir(empty) == ["lost+found"]
    layout = str(tmp_path / "lay")
    images.make_layout(layout, "v1", layers=[{"a": "a"}])
    e("copy", "-q", f"oci:{layout}:v1", "local:x:1")
    assert os.path.isfile(empty / "pallet-store")
    e("system", "check")


def test_podman_refuses_a_pallet_store_and_leaves_its_layers(s, registry, tmp_path):
    from test_store_images import Podman

    ref = _image(registry, tmp_path, "adv/podmanonours")
    s("pull", "-q", "--tls-verify=false", ref)
    layers = {k: v for k, v in _snapshot(s.root).items() if k.startswith("overlay/")}
    pm = Podman(s.root, "overlay")
    try:
        for driver in ("overlay", "vfs"):
            pm.driver = driver
            for args in (("images",), ("pull", "-q", "--tls-verify=false", ref),
                         ("run", "--rm", "--network", "none", ref, "true")):
                p = pm(*args, check=False)
                assert p.returncode != 0, (driver, args, p.stdout)
                # containers/storage stops at the decoy where it keeps its metadata (after the
                # first refusal, podman's own database may say no first)
                assert "not a directory" in p.stderr or "mismatch" in p.stderr, (driver, args, p.stderr)
                if (driver, args) == ("overlay", ("images",)):
                    assert "overlay-images: not a directory" in p.stderr, p.stderr
    finally:
        import shutil

        subprocess.run(["umount", "-R", "-l", pm.runroot], capture_output=True)
        shutil.rmtree(pm.runroot, ignore_errors=True)
    after = {k: v for k, v in _snapshot(s.root).items() if k.startswith("overlay/") and "/." not in k}
    assert after == layers
    s("system", "check")
    s("save", "-o", str(tmp_path / "still.tar"), ref)


def test_a_store_whose_creation_was_killed_before_the_marker_opens(tmp_path):
    """Making a store writes the decoys, then the marker: killed in between, the root holds only
    the decoys, and is still a root to make a store in (not 'files pallet did not make')."""
    from pallet.storage.store import DECOYS

    root = tmp_path / "root"
    root.mkdir()
    for name in DECOYS:
        (root / name).write_text("decoy\n")
    s = StoreCLI(str(root), "overlay")
    assert s("images", "-q").stdout == ""
    layout = str(tmp_path / "lay")
    images.make_layout(layout, "v1", layers=[{"a": "a"}])
    s("copy", "-q", f"oci:{layout}:v1", "local:x:1")
    assert (root / "pallet-store").read_text() == "pallet-store-format 1\n"
    s("system", "check")


# -- issue 14.15: what a killed build left, while something still uses it ------------------

def test_a_killed_builds_busy_mount_waits_and_no_command_fails_for_it(busybox_store, tmp_path):
    """A process (here: one whose working directory is in it) still uses the killed build's
    working container: the store opens, the container stays, check passes; when that process
    is gone, the next open removes the container and its mount."""
    import signal
    import time

    from pallet.storage.options import derived_runroot
    from test_store_images import _containers, _store_mounts

    s = busybox_store
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM localhost/busybox:v1\nRUN sleep 3\n")
    build = subprocess.Popen(s.args("build", "--no-cache", str(ctx)), env=s.env(), stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    holder = None
    try:
        deadline = time.monotonic() + 60
        path = None
        while path is None and build.poll() is None and time.monotonic() < deadline:
            try:
                with open(os.path.join(derived_runroot(s.root), "mounts.json")) as f:
                    mounts = json.load(f)
            except (FileNotFoundError, ValueError):
                mounts = {}
            path = next((m["path"] for k, m in mounts.items() if k.startswith("container-")
                         and m["path"] in _store_mounts(s.root)), None)
            time.sleep(0.01)
        assert path, "the build mounted no working container"
        holder = subprocess.Popen(["sleep", "600"], cwd=path)
        build.send_signal(signal.SIGKILL)
        build.wait()
        assert s("images", "-a", "-q").returncode == 0
        s("system", "check")
        assert len(_containers(s.root)) == 1 and path in _store_mounts(s.root)
        holder.kill()
        holder.wait()
        holder = None
        s("images")
        assert _containers(s.root) == {} and _store_mounts(s.root) == []
        s("system", "check")
        assert os.listdir(os.path.join(s.root, "staging")) == []
        # its RUN step's network namespace and runtime state go with the next build's RUN (this
        # one on no network): none is left behind on the host
        (ctx / "Dockerfile").write_text("FROM localhost/busybox:v1\nRUN true\n")
        s("build", "--network", "none", str(ctx))
        rr = derived_runroot(s.root)
        for d in ("netns", "build-runtime", "build-runtime-owners"):
            assert not os.path.isdir(os.path.join(rr, d)) or os.listdir(os.path.join(rr, d)) == [], d
    finally:
        if holder is not None:
            holder.kill()
            holder.wait()
        if build.poll() is None:
            build.kill()
            build.wait()


def test_check_rehashes_the_extra_blobs_a_load_kept(s, registry, tmp_path):
    """The plain-tar blobs a load keeps beside the pulled ones are re-hashed by check too."""
    ref, archive, rec = _pulled_saved_loaded(s, registry, tmp_path, "adv/extrablob")
    other = next(d for d in rec["manifests"] if d != rec["digest"])
    with open(os.path.join(s.root, "blobs", "sha256", other.split(":", 1)[1])) as f:
        plain_blob = json.load(f)["layers"][-1]["digest"]
    path = os.path.join(s.root, "blobs", "sha256", plain_blob.split(":", 1)[1])
    with open(path, "r+b") as f:  # same size, one byte flipped
        b = f.read(1)
        f.seek(0)
        f.write(bytes([b[0] ^ 1]))
    assert s("system", "check", "--quick").returncode == 0  # --quick does not re-hash
    p = s("system", "check", check=False)
    assert p.returncode == 1 and f"names layer blob {plain_blob}, which is corrupt" in p.stdout
    s("system", "check", "--repair")
    s("system", "check")
    assert not os.path.exists(path)  # the corrupt blob went with the manifest naming it
    s("save", "-o", str(tmp_path / "b.tar"), ref)
    s("load", "-i", archive)  # and a load brings the archive's manifest back, whole
    s("system", "check")


# -- issue 15: image prune decides and removes under the store's write lock ----------------

def test_prune_never_removes_an_image_a_container_took_after_the_decision(busybox_store, tmp_path):
    """The decision is re-checked under the lock: even a selection naming every image (what a
    decision made before a build's working container existed amounts to) keeps the image the
    container uses, and the container (an earlier prune removed both, with --force)."""
    s = busybox_store
    ctr = s("builder", "from", "localhost/busybox:v1").stdout.strip()
    other = tmp_path / "other"
    images.make_layout(str(other), "v1", layers=[{"x.txt": "x"}])
    s("copy", f"oci:{other}:v1", "local:localhost/other:v1")
    store = s.store()
    with store.read() as st:
        ids = {i["names"][0]: iid for iid, i in st.images.items()}
    removed = store.prune_images(lambda images, in_use: [r["id"] for r in images])
    assert removed == [ids["localhost/other:v1"]]
    with store.read() as st:
        assert set(st.images) == {ids["localhost/busybox:v1"]}
        assert [c["names"][0] for c in st.containers.values()] == [ctr]
    s("system", "check")


def test_prune_all_racing_builds_never_loses_a_working_container(busybox_store, tmp_path):
    """`image prune -a` in a loop against concurrent builds, bounded rounds: a build either
    succeeds or fails with one line saying the store changed under it, never "no such
    container" or a traceback; afterwards the store passes check and no build left a container
    or a mount behind."""
    s = busybox_store
    s("builder", "from", "--name", "keep-base", "localhost/busybox:v1")  # keeps the base in use
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM localhost/busybox:v1\nRUN echo a > /a\nRUN echo b > /b\n"
                                    "RUN cat /a /b > /c\n")
    failures = []
    for rnd in range(3):
        builds = [subprocess.Popen(s.args("build", "-q", "-t", f"race{rnd}-{i}", str(ctx)), env=s.env(),
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                  for i in range(2)]
        prunes = 0
        while any(b.poll() is None for b in builds) or prunes == 0:
            p = s("image", "prune", "-a", check=False)
            prunes += 1
            assert p.returncode == 0, p.stderr
            assert "Traceback" not in p.stderr
        for b in builds:
            out, err = b.communicate()
            if b.returncode:
                failures.append(err)
                assert "Traceback" not in err and "internal" not in err, err
                assert "no such container" not in err.lower(), err
                assert len(err.strip().splitlines()) == 1, err
    check = s("system", "check", check=False)
    assert check.returncode == 0, check.stdout + check.stderr
    assert [c["names"] for c in s.store().containers()] == [["keep-base"]]
    with open("/proc/self/mountinfo") as f:
        assert not [line for line in f if s.root in line.split()[4] and "/mounts/" in line.split()[4]]
