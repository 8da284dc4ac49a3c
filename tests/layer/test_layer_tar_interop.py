"""The tar reader and the layer applier against archives other tools write (issue 13.15):
GNU tar (gnu, oldgnu, posix; sparse 0.0, 0.1, 1.0), bsdtar (pax, gnutar, ustar), Python's
tarfile (ustar, gnu, pax) and Go's archive/tar (pax, gnu, ustar: fixtures written once by
tests/layer/fixtures/gotar/main.go). Each archive is applied and compared with what ``tar -x`` makes
of it: long names (including a cut-off first 100 bytes ending in "/"), long link targets,
hardlinks, sparse files, xattrs, large owners, times before 1970, devices and FIFOs.
"""

from __future__ import annotations

import os
import subprocess
import tarfile

import pytest

from conftest import need, release_all
from pallet.layer import _tar
from pallet.layer.apply import apply_layer
from test_layer_apply import assert_same_tree, snapshot

pytestmark = pytest.mark.usefixtures("root_required")  # owners, devices

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "gotar")
MiB = 1 << 20


def make_tree(src, ustar_only: bool = False) -> None:
    """A tree holding every kind of entry and name the formats have to spell specially.
    ``ustar_only``: only what plain ustar can hold (names split over prefix/name, short links)."""
    src.mkdir()
    for n in (98, 99, 100):  # with "./" in front, a 98- or 99-byte directory name ends in "/" at byte 100
        d = src / ("d" * n)
        d.mkdir()
        (d / "style.css").write_bytes(b"body{}")
    (src / "a").write_bytes(b"a" * 5000)
    os.link(src / "a", src / "a-link")
    os.symlink("a", src / "sym")
    os.mkfifo(src / "fifo")
    os.mknod(src / "null", 0o666 | 0o020000, os.makedev(1, 3))
    (src / "suid").write_bytes(b"#!/bin/sh\n")
    os.chmod(src / "suid", 0o4755)
    deep = src / ("x" * 90) / ("y" * 60)
    deep.mkdir(parents=True)
    (deep / ("f" * 90)).write_bytes(b"deep")
    if ustar_only:
        return
    deeper = src / ("p" * 90) / ("q" * 90) / ("r" * 90)
    deeper.mkdir(parents=True)
    (deeper / ("z" * 200)).write_bytes(b"deeper")
    os.link(deeper / ("z" * 200), src / "link-to-long")
    os.symlink("../" + "t" * 150 + "/" + "u" * 100, src / "long-target")
    (src / "héllo wörld").write_bytes("ünïcode\n".encode())
    with open(src / "sparse", "wb") as f:
        f.truncate(8 * MiB)
        for off in (0, 3 * MiB, 8 * MiB - 5000):
            f.seek(off)
            f.write(os.urandom(4096))
    with open(src / "all-hole", "wb") as f:
        f.truncate(MiB)
    (src / "owned").write_bytes(b"o")
    os.chown(src / "owned", 3_000_000, 4_000_000)
    (src / "old").write_bytes(b"1969")
    os.utime(src / "old", (-86400, -86400))
    os.setxattr(src / "a", "user.k", b"v\x00\xffbin")
    os.setxattr(src / ("d" * 99), "user.dir", b"1")


def tar_x(tar: str, dest) -> str:
    dest.mkdir()
    subprocess.run([need("tar"), "-C", str(dest), "--xattrs", "--xattrs-include=*", "--numeric-owner", "-xpf", tar],
                   check=True, capture_output=True)
    return str(dest)


def check(tmp_path, tar: str, label: str, holes: bool = False) -> dict:
    """Apply ``tar`` and compare with ``tar -x``; returns the applied tree's snapshot.
    ``holes``: the archive stored "sparse" as a sparse file, which must keep its holes."""
    ref = tar_x(tar, tmp_path / f"ref-{label}")
    root = tmp_path / f"applied-{label}"
    root.mkdir()
    with open(tar, "rb") as f:
        apply_layer(f, str(root))
    got = snapshot(str(root), dir_mtimes=False)
    assert_same_tree(got, snapshot(ref, dir_mtimes=False))
    if holes:
        assert os.lstat(root / "sparse").st_blocks * 512 < 1 * MiB  # the holes stayed holes
        assert os.lstat(root / "all-hole").st_blocks == 0
    return got


def read_all(tar: str) -> list:
    """Every header, and that the reader agrees with Python's tarfile on names and sizes."""
    with open(tar, "rb") as f:
        tr = _tar.TarReader(f)
        got = []
        while (h := tr.next()) is not None:
            got.append((h.name.rstrip(b"/").removeprefix(b"./"), h.type, h.size, h.sparse))
            tr.skip()
    with tarfile.open(tar) as tf:
        want = [(os.fsencode(m.name).rstrip(b"/").removeprefix(b"./"), m.size if m.isreg() else 0)
                for m in tf.getmembers()]
    assert [(n, s) for n, _, s, _ in got] == want
    return got


def sparse_entries(headers: list) -> set:
    return {n for n, _, _, sp in headers if sp is not None}


GNU_FORMATS = [("gnu", []), ("oldgnu", []), ("posix", ["--xattrs", "--xattrs-include=*"]),
               ("posix-sparse-0.0", ["--sparse-version=0.0"]), ("posix-sparse-0.1", ["--sparse-version=0.1"]),
               ("posix-sparse-1.0", ["--sparse-version=1.0"])]


@pytest.mark.parametrize("fmt,extra", GNU_FORMATS, ids=[f for f, _ in GNU_FORMATS])
def test_gnu_tar(tmp_path, fmt, extra):
    src = tmp_path / "src"
    make_tree(src)
    tar = str(tmp_path / "layer.tar")
    subprocess.run([need("tar"), "-C", str(src), f"--format={fmt.split('-')[0]}", "--sparse", "--numeric-owner",
                    *extra, "-cf", tar, "."], check=True, capture_output=True)
    assert sparse_entries(read_all(tar)) == {b"sparse", b"all-hole"}
    check(tmp_path, tar, fmt, holes=True)


@pytest.mark.parametrize("fmt", ["pax", "gnutar", "ustar"])
def test_bsdtar(tmp_path, fmt):
    src = tmp_path / "src"
    make_tree(src, ustar_only=fmt == "ustar")
    tar = str(tmp_path / "layer.tar")
    subprocess.run([need("bsdtar"), "-C", str(src), "--format", fmt, "--read-sparse", "--numeric-owner",
                    "--xattrs", "-cf", tar, "."], check=True, capture_output=True)
    sparse = sparse_entries(read_all(tar))
    assert sparse == ({b"sparse", b"all-hole"} if fmt == "pax" else set())  # bsdtar's gnutar writes no sparse
    check(tmp_path, tar, fmt, holes=bool(sparse))


@pytest.mark.parametrize("fmt", [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT],
                         ids=["ustar", "gnu", "pax"])
def test_python_tarfile(tmp_path, fmt):
    src = tmp_path / "src"
    make_tree(src, ustar_only=fmt == tarfile.USTAR_FORMAT)
    tar = str(tmp_path / "layer.tar")
    with tarfile.open(tar, "w", format=fmt) as tf:
        tf.add(str(src), arcname=".")
    read_all(tar)
    check(tmp_path, tar, "py")


@pytest.mark.parametrize("name", ["go-pax.tar", "go-gnu.tar", "go-ustar.tar"])
def test_go_archive_tar(tmp_path, name):
    tar = os.path.join(FIXTURES, name)
    read_all(tar)
    got = check(tmp_path, tar, name)
    assert got[b"d" * 99 + b"/x.css"][4]  # the file under the 99-byte directory is a file, with data
    if name == "go-pax.tar":
        assert dict(got[b"xattr"][6]) == {"user.k": b"v\x00\xffbin", "user.e": b""}
        assert os.readlink(tmp_path / f"applied-{name}" / "long-target") == "t/" * 80 + "end"


def test_go_style_pax_overrides_by_hand(tmp_path):
    """The PAX forms Go writes and reads, spelled out: 'path', 'linkpath' and 'size' records
    overriding the ustar fields (a size larger than the 12-digit field, here for a small file
    to keep the test fast, a 'path' whose cut-off ustar name ends in '/')."""
    import io

    def pax(records: dict) -> bytes:
        data = b"".join(_tar._record(k, v) for k, v in records.items())
        return _tar._ustar(b"PaxHeaders/x", 0o644, 0, 0, len(data), 0, b"x", b"", 0, 0) + data + _tar.padding(len(data))

    long = b"d" * 99 + b"/" + b"f" * 120
    first = bytearray(_tar._ustar(long[:100], 0o644, 0, 0, 0, 0, b"0", b"", 0, 0))
    first[124:136] = b"77777777777\0"  # the ustar size is ignored: the 'size' record rules
    first[148:156] = b" " * 8
    first[148:156] = b"%06o\0 " % sum(first)
    tar = (pax({b"path": long, b"size": b"9"}) + bytes(first) + b"real data" + _tar.padding(9)
           + pax({b"linkpath": long, b"path": b"link"}) + _tar._ustar(b"l", 0o777, 0, 0, 0, 0, b"2", long[:100], 0, 0)
           + _tar.END)
    tr = _tar.TarReader(io.BytesIO(tar))
    h = tr.next()
    assert (h.name, h.type, h.size) == (long, b"0", 9)
    tr.skip()
    h = tr.next()
    assert (h.name, h.type, h.linkname) == (b"link", b"2", long)
    assert tr.next() is None
    root = tmp_path / "root"
    root.mkdir()
    apply_layer(io.BytesIO(tar), str(root), chown=False)
    assert (root / long.decode()).read_bytes() == b"real data"
    assert os.readlink(root / "link") == long.decode()


def test_build_add_of_a_tarfile_archive_with_a_deep_tree(tmp_path):
    """The report of issue 13.15: ``ADD`` of a tar Python's tarfile made (a Flask app's deep
    static tree), through ``pallet build``; and ``ADD`` of the negative-size layer of issue
    14.3 ends with one line instead of never returning."""
    from buildtools import PalletStore

    ctx = tmp_path / "ctx"
    ctx.mkdir()
    static = "static/" + "v" * 91 + "/"  # 99 bytes: the ustar name of the file in it is cut at the "/"
    assert len(static) == 99
    with tarfile.open(ctx / "app.tar", "w", format=tarfile.PAX_FORMAT) as tf:
        for name, data in ((static + "app.css", b"body{}"), ("app.py", b"from flask import Flask\n")):
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tf.addfile(ti, __import__("io").BytesIO(data))
    (ctx / "Dockerfile").write_text("FROM scratch\nADD app.tar /srv/\n")
    s = PalletStore(str(tmp_path / "store"), "vfs")
    s("build", "-q", "-t", "localhost/app", str(ctx))
    path = s("image", "mount", "localhost/app").stdout.strip()
    try:
        with open(os.path.join(path, "srv", static, "app.css"), "rb") as f:
            assert f.read() == b"body{}"
    finally:
        release_all(lambda: s("image", "umount", "localhost/app"), s.unmount_all)

    from adversarial.test_adv_tar import NEG_SIZE

    (ctx / "bad.tar").write_bytes(NEG_SIZE)
    (ctx / "Dockerfile").write_text("FROM scratch\nADD bad.tar /x/\n")
    p = subprocess.run(s.args("build", "-q", "-t", "localhost/bad", str(ctx)), capture_output=True, text=True,
                       timeout=120)
    assert p.returncode != 0 and "'victim'" in p.stderr and p.stderr.strip().count("\n") == 0, p.stderr


# -- one tar stack: the archive transports read with the layer codec (issue 15) --------------

def test_archive_transports_share_the_codec_and_its_truncation_policy(tmp_path):
    """transports/_tar.py reads with pallet.layer._tar: an archive cut off on a block boundary
    (tarfile took that for a clean end) is an error, and the member table's data offsets are
    those Python's tarfile finds, for a GNU tar archive with long names."""
    import io

    from pallet.errors import InvalidDocument
    from pallet.transports import _tar as ttar

    buf = io.BytesIO()
    tw = ttar.TarWriter(buf)
    tw.add_dir("blobs")
    tw.add_bytes("blobs/" + "b" * 120, b"x" * 1000)
    tw.add_bytes("index.json", b"{}")
    tw.close()
    whole = buf.getvalue()
    dest = tmp_path / "whole"
    dest.mkdir()
    ttar.extract_safely(io.BytesIO(whole), str(dest), "t")
    assert (dest / "blobs" / ("b" * 120)).read_bytes() == b"x" * 1000 and (dest / "index.json").read_bytes() == b"{}"
    cut = whole[:whole.index(b"{}") + 512]  # index.json's data block, no end-of-archive marker
    dest = tmp_path / "cut"
    dest.mkdir()
    with pytest.raises(InvalidDocument, match="truncated"):
        ttar.extract_safely(io.BytesIO(cut), str(dest), "t")
    with pytest.raises(InvalidDocument, match="not a tar archive"):
        ttar.extract_safely(io.BytesIO(b"<html>" + bytes(2000)), str(dest), "t")

    src = tmp_path / "src"
    make_tree(src)
    tar = str(tmp_path / "gnu.tar")
    subprocess.run([need("tar"), "-C", str(src), "--format=gnu", "-cf", tar, "."], check=True)
    members = ttar.scan(tar, "t")
    with tarfile.open(tar) as tf:
        for m in tf.getmembers():
            name = os.path.normpath("/" + m.name).lstrip("/")
            if name:
                assert members[name].size == (m.size if m.isreg() or m.issparse() else 0)
                if m.isreg():
                    assert members[name].offset == m.offset_data
    with open(tar, "rb") as f:
        data = f.read()
    (tmp_path / "short.tar").write_bytes(data[:members["a"].offset + 512])
    with pytest.raises(InvalidDocument, match="truncated"):
        ttar.scan(str(tmp_path / "short.tar"), "t")
