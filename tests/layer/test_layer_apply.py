"""Applying tar layers onto directories, against the real kernel and real peers.

References: ``umoci unpack`` for whole root filesystems ("apply"), and a read-only kernel
overlayfs mount of the layer dirs made with whiteouts="overlay", which must show exactly the
tree "apply" made. Bad layers must be refused with nothing written outside the root.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import struct
import subprocess
import tarfile

import pytest

import images
from conftest import need, release_all, unmount_under
from pallet.errors import LayerError
from pallet.layer import stream as lstream
from pallet.layer.apply import apply_layer

pytestmark = pytest.mark.usefixtures("root_required")  # owners, devices, trusted xattrs, mounts

EPOCH = images.EPOCH
# vfs_cap_data revision 2: effective, permitted = CAP_NET_BIND_SERVICE
CAP = struct.pack("<IIIII", 0x02000001, 1 << 10, 0, 0, 0)


# -- helpers -------------------------------------------------------------------------------

def snapshot(root: str, dir_mtimes: bool = True) -> dict:
    """Everything that matters about a tree: path -> (type, mode, uid, gid, content/target,
    rdev, xattrs, mtime), plus hardlink groups under the key None."""
    out, inodes = {}, {}
    rootb = os.fsencode(root)
    for dirpath, dirnames, filenames in os.walk(rootb):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            p = os.path.join(dirpath, name)
            rel = os.path.relpath(p, rootb)
            st = os.lstat(p)
            m = st.st_mode
            if stat.S_ISREG(m):
                with open(p, "rb") as f:
                    body = hashlib.sha256(f.read()).hexdigest()
                if st.st_nlink > 1:
                    inodes.setdefault(st.st_ino, []).append(rel)
            elif stat.S_ISLNK(m):
                body = os.readlink(p)
            else:
                body = None
            xa = {}
            for k in os.listxattr(p, follow_symlinks=False):
                if k.startswith(("trusted.overlay.", "security.selinux")):
                    continue
                xa[k] = os.getxattr(p, k, follow_symlinks=False)
            mtime = st.st_mtime_ns if (dir_mtimes or not stat.S_ISDIR(m)) else None
            rdev = st.st_rdev if (stat.S_ISCHR(m) or stat.S_ISBLK(m)) else None
            out[rel] = (stat.S_IFMT(m), stat.S_IMODE(m), st.st_uid, st.st_gid, body, rdev,
                        tuple(sorted(xa.items())), mtime)
    out[None] = sorted(sorted(g) for g in inodes.values())
    return out


def assert_same_tree(a: dict, b: dict) -> None:
    assert sorted(k for k in a if k) == sorted(k for k in b if k), "different paths"
    for k in a:
        assert a[k] == b[k], f"{k!r} differs:\n  {a[k]}\n  {b[k]}"


class TarMaker:
    """Crafted tars with the standard library (including what tests/images.py cannot make)."""

    def __init__(self, fmt=tarfile.PAX_FORMAT):
        self.buf = io.BytesIO()
        self.tf = tarfile.open(fileobj=self.buf, mode="w", format=fmt)

    def add(self, name, type=tarfile.REGTYPE, data=b"", mode=None, uid=0, gid=0, link="", dev=(0, 0),
            xattrs=None, mtime=EPOCH):
        ti = tarfile.TarInfo(name)
        ti.type = type
        ti.mode = mode if mode is not None else (0o755 if type == tarfile.DIRTYPE else 0o644)
        ti.uid, ti.gid, ti.mtime = uid, gid, mtime
        ti.linkname = link
        ti.devmajor, ti.devminor = dev
        if xattrs:
            ti.pax_headers = {"SCHILY.xattr." + k: (v.decode("utf-8", "surrogateescape") if isinstance(v, bytes) else v)
                              for k, v in xattrs.items()}
        if type == tarfile.REGTYPE:
            ti.size = len(data)
            self.tf.addfile(ti, io.BytesIO(data))
        else:
            self.tf.addfile(ti)
        return self

    def dir(self, name, **kw):
        return self.add(name, tarfile.DIRTYPE, **kw)

    def sym(self, name, target, **kw):
        return self.add(name, tarfile.SYMTYPE, link=target, **kw)

    def hard(self, name, target, **kw):
        return self.add(name, tarfile.LNKTYPE, link=target, **kw)

    def wh(self, name):
        d, b = os.path.split(name)
        return self.add(os.path.join(d, ".wh." + b))

    def opq(self, dirname):
        return self.add(os.path.join(dirname, ".wh..wh..opq"))

    def bytes(self) -> bytes:
        self.tf.close()
        return self.buf.getvalue()


def rich_layers() -> list[bytes]:
    """Layers exercising every entry type and every kind of replacement."""
    l1 = (TarMaker()
          .dir("bin").add("bin/su", data=b"su\n", mode=0o4755).add("bin/sg", data=b"sg\n", mode=0o2711)
          .add("bin/ping", data=b"ping\n", mode=0o755, xattrs={"security.capability": CAP})
          .dir("shared", mode=0o2775, gid=100).dir("tmp", mode=0o1777)
          .dir("dev").add("dev/null", tarfile.CHRTYPE, mode=0o666, dev=(1, 3))
          .add("dev/loop0", tarfile.BLKTYPE, mode=0o660, gid=6, dev=(7, 0)).add("dev/fifo", tarfile.FIFOTYPE, mode=0o600)
          .dir("etc").add("etc/hostname", data=b"host\n").sym("etc/abs-link", "/etc/hostname")
          .sym("etc/dangling", "../nowhere/at/all").sym("etc/rel-link", "hostname")
          .add("etc/x.conf", data=b"x", xattrs={"user.pallet": "yes", "user.bin": b"\x00\xff\x80"})
          .dir("etc/xd", xattrs={"user.d": "1"})
          .add("big-owner", data=b"o", uid=70000, gid=70001)
          .add("empty", data=b"")
          .add("h1", data=b"linked\n").hard("h2", "h1").hard("h3", "/h1")
          .add("héllo wörld", data="ünïcode\n".encode())
          .dir("l" * 60).dir("l" * 60 + "/" + "m" * 60).add("l" * 60 + "/" + "m" * 60 + "/" + "n" * 120, data=b"long")
          .dir("d1").add("d1/inner", data=b"gone soon").dir("d1/sub").add("d1/sub/deep", data=b"deep")
          .add("f1", data=b"becomes a dir").sym("s1", "etc").add("f2", data=b"whited out")
          .dir("wh").dir("wh/sub").add("wh/sub/a", data=b"a").add("wh/keep", data=b"keep")
          .dir("opq").add("opq/old1", data=b"1").dir("opq/olddir").add("opq/olddir/x", data=b"x")
          .dir("usr").dir("usr/lib").add("usr/lib/libc", data=b"c")
          .dir("lib").add("lib/old", data=b"old lib")
          .bytes())
    l2 = (TarMaker()
          .add("d1", data=b"now a file", mode=0o600)        # dir replaced by a file
          .dir("f1", mode=0o700).add("f1/child", data=b"c")  # file replaced by a dir
          .add("s1", data=b"symlink replaced by a file")
          .wh("f2").wh("wh/sub")
          .add("opq/new1", data=b"added before the marker").opq("opq").dir("opq", mode=0o750)
          .add("opq/new2", data=b"added after the marker")
          .dir("etc", mode=0o711, xattrs={"user.new": "meta"})  # dir on dir: new metadata
          .add("etc/hostname", data=b"replaced\n", mode=0o600, uid=5)
          .dir("lib-gone").wh("lib").sym("lib", "usr/lib")   # usrmerge: dir replaced by a symlink
          .bytes())
    l3 = TarMaker().add("after", data=b"3").wh("nonexistent").wh("etc/xd").bytes()
    return [l1, l2, l3]


def tricky_layers() -> list[bytes]:
    """Orders umoci does not agree with the spec on; the kernel's overlay view is the reference."""
    l1 = (TarMaker().dir("re").add("re/old", data=b"old").dir("re2").add("re2/old", data=b"old")
          .dir("re3").add("re3/old", data=b"old").bytes())
    l2 = (TarMaker()
          .wh("re").dir("re").add("re/new", data=b"new")                       # whiteout, then re-create
          .add("re2/new", data=b"new").wh("re2").dir("re2", mode=0o755)        # re-create, then whiteout
          .wh("re3").add("re3/new", data=b"implicit parent after a whiteout").dir("re3", mode=0o751)
          .bytes())
    return [l1, l2]


def apply_all(layers: list[bytes], root: str, **kw) -> None:
    os.makedirs(root, exist_ok=True)
    for tar in layers:
        apply_layer(io.BytesIO(tar), root, **kw)


@pytest.fixture
def overlay_mount(tmp_path):
    mounted = []

    def mount(lowers_bottom_first: list[str]) -> str:
        dest = str(tmp_path / f"merged{len(mounted)}")
        os.mkdir(dest)
        lower = ":".join(reversed(lowers_bottom_first))
        subprocess.run(["mount", "-t", "overlay", "overlay", "-o", f"ro,lowerdir={lower}", dest], check=True)
        mounted.append(dest)
        return dest

    try:
        yield mount
    finally:
        unmount_under(*mounted)


def overlay_compare(tmp_path, overlay_mount, layers: list[bytes]) -> None:
    ref = str(tmp_path / "applied")
    apply_all(layers, ref)
    dirs = []
    for i, tar in enumerate(layers):
        d = str(tmp_path / f"layer{i}")
        os.mkdir(d)
        apply_layer(io.BytesIO(tar), d, whiteouts="overlay", lowers=list(reversed(dirs)))
        dirs.append(d)
    if len(dirs) == 1:
        dirs.insert(0, str(tmp_path / "empty"))
        os.mkdir(dirs[0])
    merged = overlay_mount(dirs)
    assert_same_tree(snapshot(merged), snapshot(ref))


def umoci_rootfs(tmp_path, layers: list[bytes]) -> str:
    layout = str(tmp_path / "oci")
    blobs = images.Blobs(layout)
    # images.image() takes file dicts; craft the layout from our tars directly
    import json
    descs, diff_ids = [], []
    for tar in layers:
        d, n = blobs.put(tar)
        descs.append({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d, "size": n})
        diff_ids.append(d)
    cfg = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                      "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
    cd, cn = blobs.put(cfg)
    man = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                      "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cn},
                      "layers": descs}).encode()
    md, mn = blobs.put(man)
    images.write_index(layout, [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": mn,
                                 "annotations": {"org.opencontainers.image.ref.name": "t"}}])
    bundle = str(tmp_path / "bundle")
    subprocess.run([need("umoci"), "unpack", "--image", f"{layout}:t", bundle], check=True, capture_output=True)
    return os.path.join(bundle, "rootfs")


# -- round trips against peers ---------------------------------------------------------------

def test_standard_image_matches_umoci(tmp_path):
    layout = str(tmp_path / "oci")
    images.make_layout(layout)
    bundle = str(tmp_path / "bundle")
    subprocess.run([need("umoci"), "unpack", "--image", f"{layout}:latest", bundle], check=True, capture_output=True)
    root = str(tmp_path / "root")
    os.mkdir(root)
    for files in images.STANDARD_LAYERS:
        gz = images.gz(images.layer_tar(files))
        with lstream.open_decompressed(io.BytesIO(gz)) as s:
            apply_layer(s, root)
    a, b = snapshot(root), snapshot(os.path.join(bundle, "rootfs"))
    assert_same_tree(a, b)
    assert b"home/user/notes.txt" in a and b"etc/hostname" not in a and b"var/cache/a" not in a


def test_rich_image_matches_umoci(tmp_path):
    layers = rich_layers()
    ref = umoci_rootfs(tmp_path, layers)
    root = str(tmp_path / "root")
    apply_all(layers, root)
    assert_same_tree(snapshot(root), snapshot(ref))
    st = os.lstat(os.path.join(root, "bin/su"))
    assert stat.S_IMODE(st.st_mode) == 0o4755
    assert os.getxattr(os.path.join(root, "bin/ping"), "security.capability") == CAP
    assert os.path.isfile(os.path.join(root, "d1")) and os.path.isdir(os.path.join(root, "f1"))
    assert sorted(os.listdir(os.path.join(root, "opq"))) == ["new1", "new2"]
    assert os.readlink(os.path.join(root, "lib")) == "usr/lib"
    assert stat.S_ISCHR(os.lstat(os.path.join(root, "dev/null")).st_mode)


@pytest.mark.parametrize("which", ["standard", "rich", "tricky"])
def test_overlay_mount_matches_apply(tmp_path, overlay_mount, which):
    layers = {"standard": lambda: [images.layer_tar(f) for f in images.STANDARD_LAYERS],
              "rich": rich_layers, "tricky": tricky_layers}[which]()
    overlay_compare(tmp_path, overlay_mount, layers)


def test_whiteout_and_recreate_in_one_layer(tmp_path):
    root = str(tmp_path / "root")
    apply_all(tricky_layers(), root)
    for d in ("re", "re2", "re3"):
        assert os.listdir(os.path.join(root, d)) == ["new"], d


def test_overlay_format(tmp_path):
    d = str(tmp_path / "l")
    os.mkdir(d)
    apply_layer(io.BytesIO(rich_layers()[1]), d, whiteouts="overlay")
    st = os.lstat(os.path.join(d, "f2"))
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
    assert os.getxattr(os.path.join(d, "opq"), "trusted.overlay.opaque") == b"y"
    assert sorted(os.listdir(os.path.join(d, "opq"))) == ["new1", "new2"]
    assert not any(n.startswith(".wh.") for _, ds, fs in os.walk(d) for n in ds + fs)


def test_gnu_tar_archive_matches_tar_x(tmp_path):
    """A layer written by GNU tar (posix format, xattrs) extracts like GNU tar extracts it."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "a").write_bytes(b"a" * 5000)
    os.link(src / "a", src / "a-link")
    deep = src / ("x" * 90) / ("y" * 90) / ("z" * 90)
    deep.mkdir(parents=True)
    (deep / ("f" * 150)).write_bytes(b"deep")
    os.symlink("a", src / "sym")
    os.setxattr(src / "a", "user.k", b"v")
    os.chown(src / "a", 1234, 5678)
    for fmt in ("posix", "gnu"):
        tar = subprocess.run(["tar", "-C", str(src), f"--format={fmt}", "--xattrs", "--xattrs-include=*",
                              "--numeric-owner", "-c", "."], check=True, capture_output=True).stdout
        ref = tmp_path / f"ref-{fmt}"
        ref.mkdir()
        subprocess.run(["tar", "-C", str(ref), "--xattrs", "--xattrs-include=*", "--numeric-owner", "-xp"],
                       input=tar, check=True)
        root = str(tmp_path / f"root-{fmt}")
        apply_all([tar], root)
        assert_same_tree(snapshot(root, dir_mtimes=False), snapshot(str(ref), dir_mtimes=False))


def test_stream_is_read_to_the_end_for_the_diffid(tmp_path):
    tar = images.layer_tar(images.STANDARD_LAYERS[0]) + bytes(4096)  # padding after the marker
    d = lstream.Digesting(io.BytesIO(tar))
    stats = apply_layer(d, str(tmp_path))
    assert d.digest == "sha256:" + hashlib.sha256(tar).hexdigest()
    assert stats.bytes == len(tar) and stats.entries == 12 and stats.files == 5


def test_zstd_and_gzip_streams(tmp_path):
    tar = images.layer_tar(images.STANDARD_LAYERS[0])
    for algo in ("gzip", "zstd"):
        comp = lstream.Compress(io.BytesIO(tar), algo).read()
        root = tmp_path / algo
        root.mkdir()
        v = lstream.Digesting(lstream.open_decompressed(io.BytesIO(comp)))
        apply_layer(v, str(root))
        assert v.digest == "sha256:" + hashlib.sha256(tar).hexdigest()
        assert (root / "bin/tool").read_bytes() == b"#!/bin/sh\necho tool\n"


def test_uid_gid_mapping(tmp_path):
    tar = TarMaker().dir("home", uid=0).add("home/f", uid=1000, gid=1000).sym("l", "home", uid=7, gid=7).bytes()
    apply_layer(io.BytesIO(tar), str(tmp_path), uid_map=[(0, 100000, 65536)], gid_map=[(0, 200000, 65536)])
    assert (os.lstat(tmp_path / "home").st_uid, os.lstat(tmp_path / "home").st_gid) == (100000, 200000)
    assert os.lstat(tmp_path / "home/f").st_uid == 101000
    assert os.lstat(tmp_path / "l").st_gid == 200007
    bad = TarMaker().add("f", uid=70000).bytes()
    with pytest.raises(LayerError, match="mapping"):
        apply_layer(io.BytesIO(bad), str(tmp_path / "home"), uid_map=[(0, 100000, 65536)])


def test_devices_policy(tmp_path):
    tar = TarMaker().add("null", tarfile.CHRTYPE, dev=(1, 3)).add("fifo", tarfile.FIFOTYPE).bytes()
    with pytest.raises(LayerError, match="device"):
        apply_layer(io.BytesIO(tar), str(tmp_path), devices="refuse")
    assert not os.path.lexists(tmp_path / "null")
    apply_layer(io.BytesIO(tar), str(tmp_path), devices="skip")
    assert not os.path.lexists(tmp_path / "null") and stat.S_ISFIFO(os.lstat(tmp_path / "fifo").st_mode)


def test_hardlink_to_a_lower_layer(tmp_path, overlay_mount):
    lower = TarMaker().add("orig", data=b"x").bytes()
    upper = TarMaker().hard("link", "orig").bytes()
    root = str(tmp_path / "r")
    apply_all([lower, upper], root)
    assert os.lstat(os.path.join(root, "link")).st_ino == os.lstat(os.path.join(root, "orig")).st_ino
    # one overlay layer cannot hold a link into another: said clearly
    d = tmp_path / "upper"
    d.mkdir()
    with pytest.raises(LayerError, match="does not exist"):
        apply_layer(io.BytesIO(upper), str(d), whiteouts="overlay")


def test_replacing_a_symlink_does_not_write_through_it(tmp_path):
    base = tmp_path / "base"
    root, sentinel = base / "root", base / "sentinel"
    root.mkdir(parents=True)
    sentinel.mkdir()
    (sentinel / "file").write_text("keep")
    before = snapshot(str(sentinel))
    apply_all([TarMaker().sym("link", "../sentinel/file").bytes(),
               TarMaker().add("link", data=b"replaced").bytes()], str(root))
    assert (root / "link").read_bytes() == b"replaced" and not (root / "link").is_symlink()
    assert snapshot(str(sentinel)) == before


def test_parent_symlink_inside_the_root_is_followed(tmp_path):
    apply_all([TarMaker().dir("usr").dir("usr/lib").sym("lib", "usr/lib").sym("lib64", "./lib").bytes(),
               TarMaker().add("lib/libx", data=b"x").add("lib64/liby", data=b"y").bytes()], str(tmp_path))
    assert (tmp_path / "usr/lib/libx").read_bytes() == b"x"
    assert (tmp_path / "usr/lib/liby").read_bytes() == b"y"


def test_absolute_names_are_made_relative(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    apply_layer(io.BytesIO(TarMaker().dir("/abs").add("/abs/f", data=b"in").add("//x//./y", data=b"y").bytes()),
                str(root))
    assert (root / "abs/f").read_bytes() == b"in" and (root / "x/y").read_bytes() == b"y"


# -- bad layers --------------------------------------------------------------------------------

def _escape_cases():
    T = TarMaker
    return {
        "dotdot": (T().add("../sentinel/evil", data=b"x"), "'..'"),
        "dotdot-inner": (T().dir("a").add("a/../../sentinel/evil", data=b"x"), "'..'"),
        "symlink-to-root": (T().sym("link", "/").add("link/etc/pallet-escape-test", data=b"x"), "absolute"),
        "symlink-abs-sentinel": (T().sym("link", "{sentinel}").add("link/evil", data=b"x"), "absolute"),
        "symlink-up": (T().sym("link", "../../..").add("link/tmp/pallet-escape-test", data=b"x"), "out of the root"),
        "symlink-sibling": (T().sym("link", "../sentinel").add("link/evil", data=b"x"), "out of the root"),
        "symlink-chain": (T().dir("d").sym("d/a", "b").sym("d/b", "../../sentinel").add("d/a/evil", data=b"x"),
                          "out of the root"),
        "symlink-dir-entry": (T().sym("link", "../sentinel").dir("link/newdir"), "out of the root"),
        "hardlink-dotdot": (T().hard("h", "../sentinel/file"), "'..'"),
        "hardlink-through-symlink": (T().sym("link", "../sentinel").hard("h", "link/file"), "out of the root"),
        "hardlink-absolute": (T().hard("h", "/etc/passwd"), "does not exist"),
        "hardlink-into-escape": (T().add("f", data=b"x").sym("link", "../sentinel").hard("link/h", "f"),
                                 "out of the root"),
        "whiteout-dotdot": (T().add("../.wh.sentinel"), "'..'"),
        "whiteout-through-symlink": (T().sym("link", "..").wh("link/sentinel"), "out of the root"),
        "opaque-through-symlink": (T().sym("link", "../sentinel").opq("link"), "out of the root"),
        "file-as-parent": (T().add("f", data=b"x").add("f/g", data=b"y"), "not a directory"),
    }


@pytest.mark.parametrize("overlay", [False, True], ids=["apply", "overlay"])
@pytest.mark.parametrize("case", sorted(_escape_cases()))
def test_escapes_are_refused(tmp_path, case, overlay):
    base = tmp_path / "base"
    root, sentinel = base / "root", base / "sentinel"
    root.mkdir(parents=True)
    sentinel.mkdir()
    (sentinel / "file").write_text("precious")
    maker, message = _escape_cases()[case]
    tar = maker.bytes()
    if case == "symlink-abs-sentinel":  # the target was a placeholder: make it the real path
        tar = TarMaker().sym("link", str(sentinel)).add("link/evil", data=b"x").bytes()
    before = snapshot(str(sentinel))
    with pytest.raises(LayerError, match=message):
        apply_layer(io.BytesIO(tar), str(root), whiteouts="overlay" if overlay else "apply")
    assert snapshot(str(sentinel)) == before
    assert sorted(os.listdir(base)) == ["root", "sentinel"]
    assert not os.path.lexists("/etc/pallet-escape-test") and not os.path.lexists("/tmp/pallet-escape-test")


def test_escape_through_a_lower_layers_symlink(tmp_path):
    base = tmp_path / "base"
    root, sentinel = base / "root", base / "sentinel"
    root.mkdir(parents=True)
    sentinel.mkdir()
    apply_layer(io.BytesIO(TarMaker().sym("link", "../sentinel").sym("abs", "/tmp").bytes()), str(root))
    for tar in (TarMaker().add("link/evil", data=b"x").bytes(), TarMaker().wh("link/x").bytes(),
                TarMaker().add("abs/pallet-escape-test", data=b"x").bytes()):
        with pytest.raises(LayerError):
            apply_layer(io.BytesIO(tar), str(root))
    assert os.listdir(sentinel) == [] and not os.path.lexists("/tmp/pallet-escape-test")


def test_truncated_streams_are_errors(tmp_path):
    tar = TarMaker().add("a", data=b"x" * 3000).add("b", data=b"y" * 10).bytes()
    end = tar.rindex(b"y" * 10) + 512  # past b's data block: the end-of-archive marker starts here
    for cut in (0, 100, 512, 700, 512 + 3072, end, end + 512 - 1):
        d = tmp_path / f"cut{cut}"
        d.mkdir()
        with pytest.raises(LayerError, match="truncated"):
            apply_layer(io.BytesIO(tar[:cut]), str(d))
    d = tmp_path / "whole"
    d.mkdir()
    apply_layer(io.BytesIO(tar[:end + 512]), str(d))  # a single zero block at EOF is accepted


def test_not_a_tar(tmp_path):
    with pytest.raises(LayerError, match="checksum"):
        apply_layer(io.BytesIO(b"<html>not a layer</html>" + bytes(1000)), str(tmp_path))


def test_header_variants(tmp_path):
    """GNU base-256 owners, PAX global headers, libarchive-style xattrs, old-style dirs."""
    gnu = TarMaker(tarfile.GNU_FORMAT).add("big-uid", data=b"x", uid=3_000_000, gid=4_000_000).bytes()
    apply_layer(io.BytesIO(gnu), str(tmp_path))
    st = os.lstat(tmp_path / "big-uid")
    assert (st.st_uid, st.st_gid) == (3_000_000, 4_000_000)

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT,
                      pax_headers={"comment": "global", "gid": "42"}) as tf:
        ti = tarfile.TarInfo("g")
        ti.size, ti.mtime = 1, EPOCH
        ti.pax_headers = {"LIBARCHIVE.xattr.user.lib%20archive": "dmFsdWU", "mtime": "1700000000.25"}
        tf.addfile(ti, io.BytesIO(b"g"))
        old_dir = tarfile.TarInfo("olddir/")  # a directory written as a regular file with a slash
        old_dir.type, old_dir.mode = tarfile.REGTYPE, 0o750
        tf.addfile(old_dir, io.BytesIO(b""))
    apply_layer(io.BytesIO(buf.getvalue()), str(tmp_path))
    st = os.lstat(tmp_path / "g")
    assert st.st_gid == 42 and st.st_mtime_ns == 1_700_000_000_250_000_000
    assert os.getxattr(tmp_path / "g", "user.lib archive") == b"value"
    assert stat.S_ISDIR(os.lstat(tmp_path / "olddir").st_mode)


def test_hardlink_to_a_symlink_links_the_symlink(tmp_path):
    tar = TarMaker().add("f", data=b"x").sym("s", "f").hard("h", "s").bytes()
    apply_layer(io.BytesIO(tar), str(tmp_path))
    assert os.path.islink(tmp_path / "h") and os.lstat(tmp_path / "h").st_ino == os.lstat(tmp_path / "s").st_ino


def test_rootless_options(tmp_path):
    """chown=False and xattrs=False leave owners and attributes to the caller."""
    tar = TarMaker().add("f", data=b"x", uid=1234, xattrs={"user.a": "b"}).bytes()
    apply_layer(io.BytesIO(tar), str(tmp_path), chown=False, xattrs=False)
    assert os.lstat(tmp_path / "f").st_uid == 0 and os.listxattr(tmp_path / "f") == []


# -- a layer whose root is opaque (issue 14.10) -----------------------------------------------

@pytest.mark.parametrize("driver", ["overlay", "vfs"])
def test_root_level_opaque_whiteout_hides_the_lower_layers(registry, tmp_path, driver):
    """``.wh..wh..opq`` at the top of a layer: pulled into a store and mounted, the lower
    layer's files are gone with either driver (the kernel ignores the opaque xattr on a layer's
    root, so the overlay mount must leave the layers below out), as umoci unpacks it."""
    from conftest import run_pallet

    layout = str(tmp_path / "layout")
    images.make_layout(layout, "v1", layers=[
        {"old-file": "from below", "olddir": {"type": "dir"}, "olddir/x": "x", "kept": "overwritten"},
        {"": {"type": "opaque"}, "new-file": "from above", "kept": "replaced"},
    ])
    ref = f"{registry.host}/layer/root-opaque-{driver}:v1"
    subprocess.run([need("skopeo"), "copy", "--quiet", "--dest-tls-verify=false", f"oci:{layout}:v1",
                    f"docker://{ref}"], check=True, capture_output=True)
    base = ["--root", str(tmp_path / "store"), "--storage-driver", driver]
    run_pallet(*base, "pull", "-q", "--tls-verify=false", ref)
    path = run_pallet(*base, "image", "mount", ref).stdout.strip()
    try:
        assert sorted(os.listdir(path)) == ["kept", "new-file"]
        with open(os.path.join(path, "kept"), "rb") as f:
            assert f.read() == b"replaced"
        bundle = str(tmp_path / "bundle")
        subprocess.run([need("umoci"), "unpack", "--image", f"{layout}:v1", bundle], check=True, capture_output=True)
        assert_same_tree(snapshot(path, dir_mtimes=False), snapshot(os.path.join(bundle, "rootfs"), dir_mtimes=False))
    finally:
        release_all(lambda: run_pallet(*base, "image", "umount", ref), lambda: unmount_under(str(tmp_path / "store")))


def test_root_opaque_layer_hides_lowers_in_overlay_apply(tmp_path, overlay_mount):
    """The same through apply_layer(whiteouts="overlay", lowers=...): a directory implied in a
    layer above a root-opaque one takes no metadata from the layers the opaque root hid."""
    l1 = TarMaker().dir("d", mode=0o700, uid=7).add("d/old", data=b"old").bytes()
    l2 = TarMaker().opq("").add("top", data=b"t").bytes()
    l3 = TarMaker().add("d/new", data=b"n").bytes()
    dirs = []
    for i, tar in enumerate([l1, l2, l3]):
        d = str(tmp_path / f"layer{i}")
        os.mkdir(d)
        apply_layer(io.BytesIO(tar), d, whiteouts="overlay", lowers=list(reversed(dirs)))
        dirs.append(d)
    st = os.lstat(os.path.join(dirs[2], "d"))
    assert (stat.S_IMODE(st.st_mode), st.st_uid) == (0o755, 0)  # not l1's 0700 uid 7
