"""Making tar layers from directories: round trips, reproducibility, a real overlay upper dir,
and the peers (GNU tar, Python's tarfile) reading what we write."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import tarfile

import pytest

from conftest import unmount_under
from pallet.errors import LayerError
from pallet.layer.apply import apply_layer
from pallet.layer.create import epoch_from_env, tar_changes, tar_directory, tar_overlay_upper
from pallet.layer.stream import Digesting
from test_layer_apply import CAP, apply_all, assert_same_tree, overlay_mount, rich_layers, snapshot  # noqa: F401

pytestmark = pytest.mark.usefixtures("root_required")  # owners, devices, trusted xattrs, mounts


@pytest.fixture
def rich_tree(tmp_path):
    """A tree with every entry type: devices, FIFOs, setuid, caps, xattrs, hardlinks, long names."""
    d = str(tmp_path / "rich")
    apply_all(rich_layers(), d)
    with open(os.path.join(d, "sock-dir-file"), "wb") as f:
        f.write(os.urandom(3 * 1024 * 1024 + 17))  # several chunks, not block aligned
    os.utime(os.path.join(d, "sock-dir-file"), ns=(10**18, 1_600_000_000_123_456_789))
    os.utime(d, ns=(10**18, 1_600_000_000 * 10**9))
    return d


def whole_seconds(snap: dict) -> dict:
    """Tars hold whole-second mtimes (as Go's archive/tar writes them): compare at that grain."""
    return {k: (v if k is None or v[7] is None else v[:7] + (v[7] // 10**9 * 10**9,)) for k, v in snap.items()}


def members(data: bytes) -> list:
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        return tf.getmembers()


def test_directory_round_trip(tmp_path, rich_tree):
    data = tar_directory(rich_tree).read()
    out = str(tmp_path / "out")
    os.mkdir(out)
    apply_layer(io.BytesIO(data), out)
    a, b = snapshot(rich_tree), snapshot(out)
    # whole-second mtimes in the tar: the only thing that does not survive
    f = b"sock-dir-file"
    assert a[f][7] == 1_600_000_000_123_456_789 and b[f][7] == 1_600_000_000 * 10**9
    b[f] = a[f]
    assert_same_tree(a, b)
    assert os.getxattr(os.path.join(out, "bin/ping"), "security.capability") == CAP


def test_same_input_same_bytes(tmp_path, rich_tree):
    one = hashlib.sha256(tar_directory(rich_tree).read()).hexdigest()
    two = hashlib.sha256(tar_directory(rich_tree).read()).hexdigest()
    assert one == two
    # the same tree elsewhere (other inodes, other directory order on disk) gives the same bytes
    copy = str(tmp_path / "copy")
    subprocess.run(["cp", "-a", "--preserve=all", rich_tree, copy], check=True)
    assert hashlib.sha256(tar_directory(copy).read()).hexdigest() == one
    # small reads produce the same stream
    s = tar_directory(rich_tree)
    parts = []
    while True:
        b = s.read(777)
        if not b:
            break
        parts.append(b)
    s.close()
    assert hashlib.sha256(b"".join(parts)).hexdigest() == one


def test_epoch_clamps_mtimes(rich_tree):
    data = tar_directory(rich_tree, epoch=1_000_000_000).read()
    assert {m.mtime for m in members(data)} == {1_000_000_000}
    later = tar_directory(rich_tree, epoch=2_000_000_000).read()
    assert max(m.mtime for m in members(later)) < 2_000_000_000  # clamp, not set
    assert epoch_from_env({"SOURCE_DATE_EPOCH": "42"}) == 42 and epoch_from_env({}) is None
    with pytest.raises(LayerError):
        epoch_from_env({"SOURCE_DATE_EPOCH": "yesterday"})


def test_format_is_sorted_numeric_pax(rich_tree):
    ms = members(tar_directory(rich_tree).read())
    names = [m.name for m in ms]
    assert names == sorted(names, key=lambda n: [p.encode() for p in n.split("/")])
    assert all(m.uname == "" and m.gname == "" for m in ms)
    big = next(m for m in ms if m.name == "big-owner")
    assert (big.uid, big.gid) == (70000, 70001)
    null = next(m for m in ms if m.name == "dev/null")
    assert null.ischr() and (null.devmajor, null.devminor) == (1, 3)
    assert next(m for m in ms if m.name == "h2").islnk()


def test_gnu_tar_extracts_what_we_write(tmp_path, rich_tree):
    data = tar_directory(rich_tree).read()
    listing = subprocess.run(["tar", "-tv", "--numeric-owner"], input=data, capture_output=True, check=True)
    assert b"warning" not in listing.stderr.lower()
    ref = tmp_path / "gnu"
    ref.mkdir()
    subprocess.run(["tar", "-C", str(ref), "-xp", "--xattrs", "--xattrs-include=*", "--numeric-owner"],
                   input=data, check=True)
    ours = str(tmp_path / "ours")
    apply_all([data], ours)
    assert_same_tree(snapshot(str(ref)), snapshot(ours))


def _mount_rw(lower: str, upper: str, work: str, merged: str) -> None:
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                    f"lowerdir={lower},upperdir={upper},workdir={work},redirect_dir=off,metacopy=off", merged],
                   check=True)


def test_overlay_upper_dir(tmp_path, rich_tree, overlay_mount):
    lower = rich_tree
    upper, work, merged = (str(tmp_path / n) for n in ("upper", "work", "merged"))
    for d in (upper, work, merged):
        os.mkdir(d)
    _mount_rw(lower, upper, work, merged)
    try:
        m = lambda p: os.path.join(merged, p)  # noqa: E731
        with open(m("etc/hostname"), "w") as f:  # modify (copy-up)
            f.write("changed\n")
        with open(m("new-file"), "w") as f:
            f.write("new\n")
        os.unlink(m("empty"))  # delete a lower file -> whiteout
        subprocess.run(["rm", "-rf", m("usr")], check=True)  # delete a lower dir -> whiteout
        subprocess.run(["rm", "-rf", m("wh")], check=True)
        os.mkdir(m("wh"))  # rmdir + mkdir -> opaque
        with open(m("wh/fresh"), "w") as f:
            f.write("fresh\n")
        os.chmod(m("bin/su"), 0o4750)
        os.setxattr(m("etc/x.conf"), "user.added", b"1")
        os.link(m("new-file"), m("new-link"))
        expected = whole_seconds(snapshot(merged))
    finally:
        unmount_under(merged)

    data = tar_overlay_upper(upper, epoch=1_700_000_000).read()
    names = [mm.name for mm in members(data)]
    assert ".wh.empty" in names and ".wh.usr" in names and "wh/.wh..wh..opq" in names
    assert names.index("wh/.wh..wh..opq") == names.index("wh") + 1  # marker first in its dir
    assert names.index(".wh.empty") < names.index("bin")  # whiteouts before their siblings
    assert "etc/hostname" in names and "new-file" in names and "lib" not in names
    assert next(mm for mm in members(data) if mm.name == "new-link").islnk()
    assert data == tar_overlay_upper(upper, epoch=1_700_000_000).read()
    data = tar_overlay_upper(upper).read()

    # applied onto a copy of the lower tree it gives what the mount showed ...
    applied = str(tmp_path / "applied")
    subprocess.run(["cp", "-a", "--preserve=all", lower, applied], check=True)
    apply_layer(io.BytesIO(data), applied)
    assert_same_tree(whole_seconds(snapshot(applied)), expected)
    # ... and as an overlay layer over the lower tree, the kernel shows the same
    layer = str(tmp_path / "layer")
    os.mkdir(layer)
    apply_layer(io.BytesIO(data), layer, whiteouts="overlay", lowers=[lower])
    assert_same_tree(whole_seconds(snapshot(overlay_mount([lower, layer]))), expected)


def test_overlay_upper_refuses_redirects(tmp_path):
    upper = tmp_path / "upper"
    (upper / "renamed").mkdir(parents=True)
    os.setxattr(upper / "renamed", "trusted.overlay.redirect", b"/orig")
    with pytest.raises(LayerError, match="redirect_dir"):
        tar_overlay_upper(str(upper)).read()


def test_changes_between_trees(tmp_path, rich_tree):
    old = rich_tree
    new = str(tmp_path / "new")
    subprocess.run(["cp", "-a", "--preserve=all", old, new], check=True)
    n = lambda p: os.path.join(new, p)  # noqa: E731
    with open(n("etc/hostname"), "w") as f:
        f.write("changed\n")
    with open(n("llllllllllllllllllllllllllllllllllllllllllllllllllllllllllll/deep-new"), "w") as f:
        f.write("deep\n")
    os.unlink(n("empty"))
    subprocess.run(["rm", "-rf", n("usr"), n("f1")], check=True)
    with open(n("f1"), "w") as f:  # dir -> file
        f.write("file again\n")
    os.unlink(n("d1"))
    os.mkdir(n("d1"))  # file -> dir
    with open(n("d1/x"), "w") as f:
        f.write("x\n")
    os.unlink(n("etc/rel-link"))
    os.symlink("elsewhere", n("etc/rel-link"))
    os.chown(n("bin/sg"), 3, 3)
    os.setxattr(n("wh/keep"), "user.k", b"v")
    os.chmod(n("tmp"), 0o1770)

    data = tar_changes(old, new).read()
    names = [m.name for m in members(data)]
    assert ".wh.empty" in names and ".wh.usr" in names and "etc/hostname" in names
    assert "llllllllllllllllllllllllllllllllllllllllllllllllllllllllllll" in names  # parent brought along
    assert "bin/su" not in names and "dev/null" not in names and "h1" not in names  # unchanged
    target = str(tmp_path / "target")
    subprocess.run(["cp", "-a", "--preserve=all", old, target], check=True)
    apply_layer(io.BytesIO(data), target)
    assert_same_tree(whole_seconds(snapshot(target)), whole_seconds(snapshot(new)))
    # nothing changed: an empty layer
    assert [m.name for m in members(tar_changes(new, new).read())] == []


def test_streams_and_digests(rich_tree):
    whole = tar_directory(rich_tree).read()
    d = Digesting(tar_directory(rich_tree))
    while d.read(65536):
        pass
    assert d.digest == "sha256:" + hashlib.sha256(whole).hexdigest() and d.size == len(whole)
    # closing early stops the walk and closes its files
    s = tar_directory(rich_tree)
    s.read(1000)
    s.close()
    assert s.read(10) == b""


def test_id_mapping_round_trip(tmp_path):
    """Host ids written as container ids, and back again when applied with the same map."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_bytes(b"x")
    os.chown(src / "f", 101000, 201000)
    umap, gmap = [(0, 100000, 65536)], [(0, 200000, 65536)]
    data = tar_directory(str(src), uid_map=umap, gid_map=gmap).read()
    m = next(x for x in members(data) if x.name == "f")
    assert (m.uid, m.gid) == (1000, 1000)
    out = tmp_path / "out"
    out.mkdir()
    apply_layer(io.BytesIO(data), str(out), uid_map=umap, gid_map=gmap)
    assert (os.lstat(out / "f").st_uid, os.lstat(out / "f").st_gid) == (101000, 201000)
    os.chown(src / "f", 5, 5)  # not in the mapping
    with pytest.raises(LayerError, match="mapping"):
        tar_directory(str(src), uid_map=umap, gid_map=gmap).read()
