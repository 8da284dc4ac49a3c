"""Crafted tar layers against the tar reader and the layer applier.

Every hostile header field (ustar octal, GNU base-256, PAX records) must give one
:class:`~pallet.errors.LayerError` naming the member and the field, in bounded time, and
nothing may be written outside the directory the layer is applied to.
"""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import tarfile

import pytest

import images
from conftest import run_pallet
from pallet.errors import LayerError
from pallet.layer import _tar
from pallet.layer.apply import apply_layer

BLOCK = 512


def raw_header(name: bytes = b"f", typ: bytes = b"0", *, size: bytes | None = None, mode: bytes = b"0000644\0",
               uid: bytes = b"0000000\0", gid: bytes = b"0000000\0", mtime: bytes = b"00000000000\0",
               link: bytes = b"", devmajor: bytes = b"0000000\0", devminor: bytes = b"0000000\0",
               size_int: int = 0, extra: dict | None = None) -> bytes:
    """One ustar header block with arbitrary raw field bytes and a correct checksum."""
    h = bytearray(BLOCK)
    h[0:len(name)] = name
    h[100:108] = mode
    h[108:116] = uid
    h[116:124] = gid
    h[124:136] = size if size is not None else b"%011o\0" % size_int
    h[136:148] = mtime
    h[156:157] = typ
    h[157:157 + len(link)] = link
    h[257:265] = b"ustar\x0000"
    h[329:337] = devmajor
    h[337:345] = devminor
    for off, val in (extra or {}).items():
        h[off:off + len(val)] = val
    h[148:156] = b" " * 8
    h[148:156] = b"%06o\0 " % sum(h)
    return bytes(h)


def pad(data: bytes) -> bytes:
    return data + bytes(-len(data) % BLOCK)


def pax_block(records: dict, typ: bytes = b"x") -> bytes:
    data = b"".join(_tar._record(k, v) for k, v in records.items())
    return raw_header(b"././@PaxHeader", typ, size_int=len(data)) + pad(data)


def member(name: bytes, data: bytes = b"", pax: dict | None = None, **kw) -> bytes:
    out = pax_block(pax) if pax else b""
    return out + raw_header(name[:100], size_int=len(data), **kw) + pad(data)


def archive(*members: bytes) -> bytes:
    return b"".join(members) + bytes(2 * BLOCK)


def b256(v: int, width: int) -> bytes:
    """GNU base-256: two's complement with the marker bit set."""
    raw = (v % (1 << (8 * width))).to_bytes(width, "big")
    return bytes([raw[0] | 0x80]) + raw[1:]


def refused(tmp_path, tar: bytes, *match: str) -> str:
    root = tmp_path / "root"
    root.mkdir(exist_ok=True)
    with pytest.raises(LayerError) as ei:
        apply_layer(io.BytesIO(tar), str(root), chown=False)
    msg = str(ei.value)
    assert "\n" not in msg
    for m in match:
        assert m in msg, msg
    assert sorted(os.listdir(tmp_path)) == ["root"]  # nothing beside the target
    return msg


# -- issue 14.3: negative and overflowing numbers ---------------------------------------------

NEG_SIZE = archive(member(b"victim", b"x" * 2048, pax={b"size": b"-1536"}), member(b"after", b"y"))


def test_negative_pax_size_fails_fast_instead_of_looping(tmp_path):
    """The 2.5 KB layer that moved the read position backwards forever (issue 14.3)."""
    (tmp_path / "layer.tar").write_bytes(NEG_SIZE)
    (tmp_path / "root").mkdir()
    code = ("import sys; from pallet.layer.apply import apply_layer\n"
            "from pallet.errors import PalletError\n"
            "try:\n apply_layer(open(sys.argv[1], 'rb'), sys.argv[2], chown=False)\n"
            "except PalletError as e:\n print(e); sys.exit(3)\n")
    p = subprocess.run([sys.executable, "-c", code, str(tmp_path / "layer.tar"), str(tmp_path / "root")],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 3, p.stderr
    assert "'victim'" in p.stdout and "size" in p.stdout and "PAX" in p.stdout


def test_negative_size_through_copy_into_the_store(tmp_path):
    """``copy oci:… local:`` of that layer returns with one line, and the store keeps nothing."""
    layout = str(tmp_path / "oci")
    images.one_layer_layout(layout, "t", NEG_SIZE, "sha256:" + hashlib.sha256(NEG_SIZE).hexdigest(), gzipped=False)
    root = str(tmp_path / "store")
    exe = os.path.join(os.path.dirname(sys.executable), "pallet")
    p = subprocess.run([exe, "--root", root, "--storage-driver", "vfs", "copy", "-q", f"oci:{layout}:t", "local:t"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode != 0
    err = p.stderr.strip()
    assert len(err.splitlines()) == 1 and "'victim'" in err and "size" in err, err
    assert "Traceback" not in p.stderr and "internal error" not in err
    assert run_pallet("--root", root, "--storage-driver", "vfs", "images", "-q").stdout.strip() == ""
    assert os.listdir(os.path.join(root, "vfs")) == []


BAD_NUMBERS = [
    # (id, archive, words the message must hold)
    ("ustar-negative-octal-size", archive(raw_header(b"f", size=b"-0000003000\0") + bytes(BLOCK)),
     ["'f'", "size"]),
    ("ustar-octal-with-digit-8", archive(raw_header(b"f", size=b"00000000018\0")), ["'f'", "size"]),
    ("ustar-octal-underscore", archive(raw_header(b"f", uid=b"0_00001\0")), ["'f'", "uid"]),
    ("base256-negative-size", archive(raw_header(b"f", size=b256(-1536, 12))), ["'f'", "size", "negative"]),
    ("base256-size-over-int64", archive(raw_header(b"f", size=b256(1 << 80, 12))), ["'f'", "size", "out of range"]),
    ("base256-negative-uid", archive(raw_header(b"f", uid=b256(-1, 8))), ["'f'", "uid", "negative"]),
    ("base256-huge-gid", archive(raw_header(b"f", gid=b256(1 << 40, 8))), ["'f'", "gid", "out of range"]),
    ("base256-huge-mtime", archive(raw_header(b"f", mtime=b256(1 << 90, 12))), ["'f'", "mtime", "out of range"]),
    ("octal-devmajor-too-big", archive(raw_header(b"dev", b"3", devmajor=b"7777777\0")),
     ["'dev'", "devmajor", "out of range"]),
    ("base256-negative-devminor", archive(raw_header(b"dev", b"3", devminor=b256(-2, 8))),
     ["'dev'", "devminor", "negative"]),
    ("pax-negative-size", archive(member(b"f", b"x" * 600, pax={b"size": b"-512"})), ["'f'", "size", "PAX"]),
    ("pax-size-overflow", archive(member(b"f", b"x", pax={b"size": b"9" * 25})), ["'f'", "size", "out of range"]),
    ("pax-plus-sign", archive(member(b"f", b"x", pax={b"size": b"+1"})), ["'f'", "size"]),
    ("pax-spaces", archive(member(b"f", b"x", pax={b"uid": b" 5"})), ["'f'", "uid"]),
    ("pax-negative-gid", archive(member(b"f", b"x", pax={b"gid": b"-1"})), ["'f'", "gid"]),
    ("pax-uid-minus-one-as-u32", archive(member(b"f", b"x", pax={b"uid": b"4294967295"})),
     ["'f'", "uid", "out of range"]),
    ("pax-mtime-overflow", archive(member(b"f", b"x", pax={b"mtime": b"1" * 25})), ["'f'", "mtime", "out of range"]),
    ("pax-mtime-garbage", archive(member(b"f", b"x", pax={b"mtime": b"1e9"})), ["'f'", "mtime"]),
    ("pax-atime-nan", archive(member(b"f", b"x", pax={b"atime": b"nan"})), ["'f'", "atime"]),
    ("pax-devmajor-overflow", archive(member(b"dev", pax={b"SCHILY.devmajor": b"4096"}, typ=b"3")),
     ["'dev'", "devmajor", "out of range"]),
    ("pax-header-negative-size", archive(raw_header(b"././@PaxHeader", b"x", size=b256(-512, 12)),
                                         raw_header(b"f")), ["PAX header", "size", "negative"]),
    ("gnu-longname-negative-size", archive(raw_header(b"././@LongLink", b"L", size=b"-0000000001\0"),
                                           raw_header(b"f")), ["GNU long name", "size"]),
    ("pax-record-negative-length", archive(raw_header(b"././@PaxHeader", b"x", size_int=512)
                                           + pad(b"-5 path=x\n"), raw_header(b"f")), ["PAX header", "record"]),
]


@pytest.mark.parametrize("tar,words", [(t, w) for _, t, w in BAD_NUMBERS], ids=[i for i, _, _ in BAD_NUMBERS])
def test_bad_numeric_fields_are_refused(tmp_path, tar, words):
    refused(tmp_path, tar, *words)


def test_numbers_at_their_limits_are_accepted(tmp_path):
    """The range checks do not refuse what is valid: 0xFFF/0xFFFFF devices, MAX_ID owners,
    negative PAX and base-256 times (before 1970), base-256 sizes."""
    tar = archive(member(b"old", b"x", pax={b"mtime": b"-86400.5", b"uid": b"4294967294"}),
                  member(b"old256", b"y", mtime=b256(-3600, 12), gid=b256(70000, 8)),
                  raw_header(b"big", size=b256(3, 12)) + pad(b"abc"))
    tr = _tar.TarReader(io.BytesIO(tar))
    h = tr.next()
    assert (h.name, h.mtime_ns, h.uid) == (b"old", -86_400_500_000_000, 4294967294)
    h = tr.next()
    assert (h.mtime_ns, h.gid) == (-3600 * 10**9, 70000)
    h = tr.next()
    assert h.size == 3
    root = tmp_path / "r"
    root.mkdir()
    dev = archive(raw_header(b"null", b"3", devmajor=b"0007777\0", devminor=b"3777777\0"))
    h = _tar.TarReader(io.BytesIO(dev)).next()
    assert (h.devmajor, h.devminor) == (0xFFF, 0xFFFFF)


def test_the_one_pass_header_path_decides_as_the_field_by_field_one():
    """``next()`` reads plain octal headers in one go (issue 15); every field value it takes
    or refuses must be what ``_num`` (the field-by-field check) takes or refuses, at and around
    each limit, and the checksum is still verified on that path."""
    import random

    rnd = random.Random(15)
    fields = {"mode": (100, 8), "uid": (108, 8), "gid": (116, 8), "size": (124, 12), "mtime": (136, 12)}
    edge = [b"", b"0", b"7", b"8", b"9", b"07777777", b"7777777", b"17777777776", b"17777777777",
            b"37777777776", b"37777777777", b"777777777777", b" 644", b"+644", b"0_644", b"0o644", b"644 "]
    for i in range(600):
        what = rnd.choice(list(fields))
        off, width = fields[what]
        digits = rnd.choice(edge) if i % 2 else b"%o" % rnd.randrange(1 << rnd.randrange(1, 40))
        fill = rnd.choice([b"0", b" ", b"\0"])
        raw = (digits + b"\0").rjust(width, fill)[-width:] if len(digits) < width else digits[:width]
        blk = raw_header(b"f", extra={off: raw}, size=b"00000000000\0" if what != "size" else None)
        try:
            want = _tar._num(raw, what, "x")
        except LayerError:
            want = None
        try:
            h = _tar.TarReader(io.BytesIO(blk + bytes(2 * BLOCK))).next()
            got = {"mode": h.mode, "uid": h.uid, "gid": h.gid, "size": h.size, "mtime": h.mtime_ns // 10**9}[what]
        except LayerError as e:
            got = None
            assert "'f'" in str(e) and what in str(e), e
        assert got == want, (what, raw)
    bad = bytearray(raw_header(b"f"))
    bad[0:1] = b"g"  # the checksum no longer matches
    with pytest.raises(LayerError, match="checksum mismatch"):
        _tar.TarReader(io.BytesIO(bytes(bad) + bytes(2 * BLOCK))).next()


# -- issue 14.11: NUL bytes and other malformed values -------------------------------------------

@pytest.mark.parametrize("pax,words", [
    ({b"path": b"a\0/etc/passwd"}, ["name", "NUL"]),
    ({b"linkpath": b"target\0x"}, ["'s'", "link target", "NUL"]),
    ({b"SCHILY.xattr.user.a\0b": b"v"}, ["'s'", "xattr name", "NUL"]),
    ({b"SCHILY.xattr.": b"v"}, ["'s'", "xattr name"]),
    ({b"LIBARCHIVE.xattr.user.a%00b": b"dg"}, ["'s'", "xattr name"]),
    ({b"LIBARCHIVE.xattr.user.a": b"!!!not base64"}, ["'s'", "LIBARCHIVE"]),
], ids=["path", "linkpath", "xattr-name", "empty-xattr-name", "libarchive-name", "libarchive-value"])
def test_malformed_pax_values_name_the_member_and_field(tmp_path, pax, words):
    tar = archive(member(b"s", pax=pax, typ=b"2", link=b"t"))
    refused(tmp_path, tar, *words)


# -- issue 14.14: a clear message for a name too long -------------------------------------------

def test_a_5000_byte_path_says_which_entry_and_why(tmp_path):
    name = b"dir/" + b"n" * 5000
    msg = refused(tmp_path, archive(member(name, b"x", pax={b"path": name})), "'dir/nnn", "5004 bytes",
                  "path is too long", "longer than 255 bytes")
    assert len(msg) < 400  # the name is cut, not printed whole


# -- issue 13.15: the cut-off ustar name that ends in "/" --------------------------------------

@pytest.mark.parametrize("fmt", [tarfile.PAX_FORMAT, tarfile.GNU_FORMAT], ids=["pax", "gnu"])
def test_long_name_whose_first_100_bytes_end_in_a_slash(tmp_path, fmt):
    d = "d" * 99
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tf:
        ti = tarfile.TarInfo(d)
        ti.type = tarfile.DIRTYPE
        tf.addfile(ti)
        ti = tarfile.TarInfo(d + "/file.css")
        ti.size = 5
        tf.addfile(ti, io.BytesIO(b"body{"))
        ti = tarfile.TarInfo("after")
        ti.size = 1
        tf.addfile(ti, io.BytesIO(b"!"))
    root = tmp_path / "root"
    root.mkdir()
    apply_layer(io.BytesIO(buf.getvalue()), str(root), chown=False)
    assert (root / d / "file.css").read_bytes() == b"body{"
    assert (root / "after").read_bytes() == b"!"


# -- GNU sparse maps ---------------------------------------------------------------------------

def old_gnu_sparse(entries: list, realsize: bytes, data: bytes) -> bytes:
    extra = {483: realsize}
    for i, (off, n) in enumerate(entries):
        extra[386 + 24 * i] = off
        extra[386 + 24 * i + 12] = n
    return raw_header(b"sp", b"S", size_int=len(data), extra=extra) + pad(data)


SPARSE_ATTACKS = [
    ("pax01-negative-offset", member(b"sp", b"x" * 10, pax={b"GNU.sparse.size": b"100", b"GNU.sparse.map": b"-5,10"}),
     ["'sp'", "offset"]),
    ("pax01-overlap", member(b"sp", b"x" * 20, pax={b"GNU.sparse.size": b"100", b"GNU.sparse.map": b"0,10,5,10"}),
     ["'sp'", "sparse map"]),
    ("pax01-past-realsize", member(b"sp", b"x" * 10, pax={b"GNU.sparse.size": b"5", b"GNU.sparse.map": b"0,10"}),
     ["'sp'", "real size"]),
    ("pax01-covers-less-than-stored", member(b"sp", b"x" * 20, pax={b"GNU.sparse.size": b"100",
                                                                    b"GNU.sparse.map": b"0,10"}),
     ["'sp'", "covers 10 bytes but 20"]),
    ("pax01-odd-count", member(b"sp", b"x", pax={b"GNU.sparse.size": b"1", b"GNU.sparse.map": b"0"}),
     ["'sp'", "GNU.sparse.map"]),
    ("pax00-not-alternating", member(b"sp", b"x", pax={b"GNU.sparse.size": b"1", b"GNU.sparse.numbytes": b"1"}),
     ["'sp'", "alternate"]),
    ("pax10-huge-count", member(b"sp", b"99999999999\n" + bytes(500), pax={b"GNU.sparse.major": b"1", b"GNU.sparse.minor": b"0",
                                                              b"GNU.sparse.realsize": b"10"}),
     ["'sp'", "entries"]),
    ("pax10-garbage-map", member(b"sp", b"1\n-3\n4\n" + bytes(505), pax={b"GNU.sparse.major": b"1",
                                                                        b"GNU.sparse.minor": b"0",
                                                                        b"GNU.sparse.realsize": b"10"}),
     ["'sp'", "sparse map entry"]),
    ("pax10-map-without-newline", member(b"sp", b"7" * 2048, pax={b"GNU.sparse.major": b"1", b"GNU.sparse.minor": b"0",
                                                                  b"GNU.sparse.realsize": b"10"}),
     ["'sp'", "sparse 1.0 map"]),
    ("pax-sparse-2.0", member(b"sp", b"x", pax={b"GNU.sparse.major": b"2", b"GNU.sparse.minor": b"0"}),
     ["'sp'", "unsupported GNU sparse format"]),
    ("old-gnu-negative-offset", old_gnu_sparse([(b256(-512, 12), b"00000000001\0")], b"00000001000\0", b"x"),
     ["'sp'", "offset", "negative"]),
    ("old-gnu-realsize-overflow", old_gnu_sparse([(b"00000000000\0", b"00000000001\0")], b256(1 << 70, 12), b"x"),
     ["'sp'", "realsize", "out of range"]),
]


@pytest.mark.parametrize("m,words", [(m, w) for _, m, w in SPARSE_ATTACKS], ids=[i for i, _, _ in SPARSE_ATTACKS])
def test_bad_sparse_maps_are_refused(tmp_path, m, words):
    refused(tmp_path, archive(m, member(b"after", b"y")), *words)


def test_old_gnu_sparse_with_extension_blocks(tmp_path):
    """25 segments: 4 in the header, 21 in one extension block; holes stay holes."""
    segs = [(i * 65536, 512) for i in range(25)]
    extra = {483: b"%011o\0" % (25 * 65536), 482: b"\1"}
    for i, (off, n) in enumerate(segs[:4]):
        extra[386 + 24 * i] = b"%011o\0" % off
        extra[386 + 24 * i + 12] = b"%011o\0" % n
    ext = bytearray(BLOCK)
    for i, (off, n) in enumerate(segs[4:]):
        ext[24 * i:24 * i + 12] = b"%011o\0" % off
        ext[24 * i + 12:24 * i + 24] = b"%011o\0" % n
    data = b"".join(bytes([65 + i % 26]) * 512 for i in range(25))
    tar = archive(raw_header(b"sp", b"S", size_int=len(data), extra=extra) + bytes(ext) + data)
    root = tmp_path / "root"
    root.mkdir()
    apply_layer(io.BytesIO(tar), str(root), chown=False)
    body = (root / "sp").read_bytes()
    assert len(body) == 25 * 65536
    for i, (off, n) in enumerate(segs):
        assert body[off:off + n] == bytes([65 + i % 26]) * 512 and not any(body[off + n:off + 65536])
    assert os.lstat(root / "sp").st_blocks * 512 < 25 * 65536
