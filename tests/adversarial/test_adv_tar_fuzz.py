"""Fuzzing the tar reader and the layer applier (fixed seed, bounded time).

Valid archives (Python's tarfile in every format, GNU tar with sparse files in every sparse
version, hand-made PAX records) are mutated: header bytes (with the checksum fixed up, so the
mutation reaches the parser), numeric fields set to hostile values (negative, base-256
extremes, garbage), PAX records added or replaced (sizes, names, sparse maps, xattrs),
truncations. Each result is applied to a fresh directory; the only acceptable failure is a
PalletError, every case must end within seconds, and nothing may appear or change outside the
target directory.
"""

from __future__ import annotations

import io
import os
import random
import shutil
import signal
import subprocess
import tarfile
import time

import pytest

from pallet.errors import PalletError
from pallet.layer import _tar
from pallet.layer.apply import apply_layer

pytestmark = pytest.mark.usefixtures("root_required")  # devices, owners: the applier's full path

SEED = 20261207
BUDGET_S = 12.0
MAX_CASES = 20000
MIN_CASES = 300  # run past the budget until this many: a loaded machine does fewer per second
PER_CASE_S = 30  # a hang, not slowness: generous for a machine with a load average of 10+

INTERESTING_OCTAL = [b"-0000001000\0", b"77777777777\0", b"00000000008\0", b"0_1\0", b" +1\0", b"\0" * 12,
                     b"99999999999\0", b"0000000000 \0", b"1e10\0"]
INTERESTING_PAX = {
    b"size": [b"-1536", b"-1", b"0", b"99999999999999999999", b"1" * 40, b"+5", b" 5", b"5_0", b"", b"512"],
    b"path": [b"", b"/", b"..", b"../../escape", b"a\0b", b"a/../../b", b"x" * 300, b"d" * 99 + b"/f",
              b".wh..wh..opq", b".wh.x", b"./.wh..wh..opq", b"dir/"],
    b"linkpath": [b"", b"/etc/passwd", b"../../../../etc/shadow", b"a\0b", b"l" * 5000, b"."],
    b"uid": [b"-1", b"4294967295", b"4294967294", b"99999999999999999999999", b"abc", b""],
    b"gid": [b"-5", b"0", b"1" * 30],
    b"mtime": [b"-1", b"-99999999999999999", b"1e9", b"nan", b"1.5.6", b"-", b".", b"1" * 25, b"1700000000.123456789123"],
    b"atime": [b"inf", b"-1.5"],
    b"SCHILY.devmajor": [b"-1", b"4096", b"4095", b"x"],
    b"SCHILY.devminor": [b"1048576", b"0"],
    b"SCHILY.xattr.user.a": [b"v", b"\0" * 70000],
    b"SCHILY.xattr.": [b"v"],
    b"SCHILY.xattr.trusted.overlay.opaque": [b"y"],
    b"SCHILY.xattr.user.a\0b": [b"v"],
    b"LIBARCHIVE.xattr.user.%00": [b"dg=="],
    b"LIBARCHIVE.xattr.user.b": [b"!!", b"dmFsdWU"],
    b"GNU.sparse.size": [b"100", b"-1", b"9223372036854775807", b"0"],
    b"GNU.sparse.map": [b"0,10", b"-5,10", b"0,10,5,10", b"0", b"", b"10,0,0,10", b"9223372036854775806,1"],
    b"GNU.sparse.offset": [b"0", b"-1"],
    b"GNU.sparse.numbytes": [b"10", b"-10"],
    b"GNU.sparse.major": [b"1", b"2", b"-1"],
    b"GNU.sparse.minor": [b"0", b"1"],
    b"GNU.sparse.realsize": [b"10", b"-10", b"9" * 30],
    b"GNU.sparse.name": [b"sparse", b"../x", b"a\0"],
}
FIELDS = [(100, 8), (108, 8), (116, 8), (124, 12), (136, 12), (329, 8), (337, 8), (483, 12), (386, 12), (398, 12)]


def _fix_checksum(blk: bytearray) -> None:
    blk[148:156] = b" " * 8
    blk[148:156] = b"%06o\0 " % sum(blk)


def _header_offsets(tar: bytes) -> list:
    """Offsets of the header blocks (extension headers included) of a valid archive."""
    out = []
    pos = 0
    while pos + 512 <= len(tar):
        blk = tar[pos:pos + 512]
        if blk == bytes(512):
            break
        out.append(pos)
        typ = blk[156:157]
        size = _tar._num(blk[124:136], "size") if blk[124] < 0x80 else 0
        if typ in (b"1", b"2", b"3", b"4", b"5", b"6"):
            size = 0
        if typ == b"S" and blk[482]:  # extension blocks of an old GNU sparse header
            pos += 512
            while tar[pos + 504]:
                pos += 512
        pos += 512 + size + (-size % 512)
    return out


def _seeds(tmp) -> list:
    seeds = []
    for fmt in (tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=fmt) as tf:
            def add(name, typ=tarfile.REGTYPE, data=b"", **kw):
                ti = tarfile.TarInfo(name)
                ti.type = typ
                ti.size = len(data) if typ == tarfile.REGTYPE else 0
                for k, v in kw.items():
                    setattr(ti, k, v)
                tf.addfile(ti, io.BytesIO(data) if typ == tarfile.REGTYPE else None)

            add("d", tarfile.DIRTYPE, mode=0o755)
            add("d/f", data=b"hello" * 200, mode=0o644, uid=1000, gid=1000)
            add("d/" + "n" * (90 if fmt == tarfile.USTAR_FORMAT else 150), data=b"long")
            add("d/sym", tarfile.SYMTYPE, linkname="f")
            add("d/hard", tarfile.LNKTYPE, linkname="d/f")
            add("fifo", tarfile.FIFOTYPE)
            add("null", tarfile.CHRTYPE, devmajor=1, devminor=3)
            add("d/.wh.gone")
            add("o/.wh..wh..opq")
            if fmt == tarfile.PAX_FORMAT:
                ti = tarfile.TarInfo("x")
                ti.size = 1
                ti.pax_headers = {"SCHILY.xattr.user.k": "v", "mtime": "1700000000.5"}
                tf.addfile(ti, io.BytesIO(b"x"))
        seeds.append(buf.getvalue())
    src = tmp / "sparse-src"
    src.mkdir()
    with open(src / "sp", "wb") as f:
        f.truncate(256 << 10)
        f.seek(100 << 10)
        f.write(b"data" * 300)
    (src / "plain").write_bytes(b"p" * 700)
    for args in (["--format=gnu"], ["--format=posix", "--sparse-version=0.0"], ["--format=posix", "--sparse-version=0.1"],
                 ["--format=posix", "--sparse-version=1.0"]):
        seeds.append(subprocess.run(["tar", "-C", str(src), "--sparse", *args, "-cf", "-", "."], check=True,
                                    capture_output=True).stdout)
    return seeds


def _pax_member(rng: random.Random) -> bytes:
    recs = {}
    for _ in range(rng.randint(1, 4)):
        k = rng.choice(list(INTERESTING_PAX))
        recs[k] = rng.choice(INTERESTING_PAX[k])
    data = rng.choice([b"", b"z" * 10, b"1\n0\n10\n" + bytes(505) + b"y" * 10, b"q" * 1536])
    typ = rng.choice([b"0", b"0", b"2", b"1", b"5", b"3", b"S", b"x", b"L"])
    body = b"".join(_tar._record(k, v) for k, v in recs.items())
    out = _tar._ustar(b"PaxHeaders/m", 0o644, 0, 0, len(body), 0, rng.choice([b"x", b"g"]), b"", 0, 0)
    out += body + _tar.padding(len(body))
    out += _tar._ustar(rng.choice([b"m", b"d" * 99 + b"/", b"dir/"]), 0o644, 0, 0, len(data), 0, typ, b"t", 0, 0)
    return out + data + _tar.padding(len(data))


def _mutate(rng: random.Random, seed: bytes) -> bytes:
    tar = bytearray(seed)
    heads = _header_offsets(seed) or [0]
    for _ in range(rng.randint(1, 3)):
        kind = rng.randrange(7)
        h = rng.choice(heads)
        if h + 512 > len(tar) and kind in (0, 1, 2, 6):  # an earlier mutation cut it off
            kind = 5
        if kind == 0:  # random bytes in a header, checksum fixed
            blk = bytearray(tar[h:h + 512])
            for _ in range(rng.randint(1, 8)):
                blk[rng.randrange(512)] = rng.randrange(256)
            _fix_checksum(blk)
            tar[h:h + 512] = blk
        elif kind == 1:  # a numeric field set to a hostile value
            blk = bytearray(tar[h:h + 512])
            off, width = rng.choice(FIELDS)
            if rng.random() < 0.5:
                v = rng.choice(INTERESTING_OCTAL)[:width].ljust(width, b"\0")
            else:
                n = rng.choice([-1, -512, -(1 << 62), 1 << 63, 1 << 90, 0xFFF + 1, 0xFFFFF + 1, (1 << 32) - 1])
                raw = (n % (1 << (8 * width))).to_bytes(width, "big")
                v = bytes([raw[0] | 0x80]) + raw[1:]
            blk[off:off + width] = v
            _fix_checksum(blk)
            tar[h:h + 512] = blk
        elif kind == 2:  # a typeflag swapped
            blk = bytearray(tar[h:h + 512])
            blk[156] = rng.choice(b"0123456xgLKSVM7\0A")
            _fix_checksum(blk)
            tar[h:h + 512] = blk
        elif kind == 3:  # a crafted PAX member spliced in
            tar[h:h] = _pax_member(rng)
        elif kind == 4:  # truncation
            del tar[rng.randrange(len(tar) + 1):]
        elif kind == 5:  # raw byte flips anywhere (data, maps, padding)
            for _ in range(rng.randint(1, 16)):
                if tar:
                    tar[rng.randrange(len(tar))] ^= 1 << rng.randrange(8)
        else:  # a PAX record inside an existing PAX header rewritten in place
            if tar[h + 156:h + 157] in (b"x", b"g") and set(bytes(tar[h + 124:h + 136]).rstrip(b"\0 ")) <= set(b"01234567") \
                    and bytes(tar[h + 124:h + 136]).rstrip(b"\0 "):
                body_len = int(bytes(tar[h + 124:h + 136]).rstrip(b"\0 "), 8)
                body = bytes(tar[h + 512:h + 512 + body_len])
                k = rng.choice(list(INTERESTING_PAX))
                new = body + _tar._record(k, rng.choice(INTERESTING_PAX[k]))
                blk = bytearray(tar[h:h + 512])
                blk[124:136] = b"%011o\0" % len(new)
                _fix_checksum(blk)
                tar[h:h + 512 + body_len + (-body_len % 512)] = bytes(blk) + new + _tar.padding(len(new))
    return bytes(tar)


def _tree(path) -> dict:
    out = {}
    for dp, dns, fns in os.walk(path):
        for n in dns + fns:
            p = os.path.join(dp, n)
            st = os.lstat(p)
            out[p] = (st.st_mode, st.st_size, st.st_mtime_ns, st.st_uid)
    return out


class _Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise _Timeout()


def test_fuzz_the_tar_reader_and_applier(tmp_path):
    rng = random.Random(SEED)
    seeds = _seeds(tmp_path)
    for s in seeds:  # the seeds themselves are valid
        d = tmp_path / "valid"
        d.mkdir()
        apply_layer(io.BytesIO(s), str(d))
        shutil.rmtree(d)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_bytes(b"keep")
    os.symlink("/etc", outside / "etc-link")
    work = tmp_path / "work"
    work.mkdir()
    before_outside = _tree(str(tmp_path / "outside"))
    etc_before = os.stat("/etc").st_mtime_ns
    old = signal.signal(signal.SIGALRM, _alarm)
    deadline = time.monotonic() + BUDGET_S
    cases = refused = 0
    try:
        while (time.monotonic() < deadline or cases < MIN_CASES) and cases < MAX_CASES:
            cases += 1
            data = _mutate(rng, rng.choice(seeds))
            target = work / "t"
            target.mkdir()
            signal.alarm(PER_CASE_S)
            try:
                apply_layer(io.BytesIO(data), str(target), whiteouts=rng.choice(["apply", "overlay"]))
            except PalletError as e:
                refused += 1
                assert "\n" not in str(e) and str(e)
            except _Timeout:
                path = tmp_path / "hang.tar"
                path.write_bytes(data)
                pytest.fail(f"case {cases} did not finish in {PER_CASE_S} s (saved as {path})")
            except BaseException as e:
                path = tmp_path / "crash.tar"
                path.write_bytes(data)
                raise AssertionError(f"case {cases}: {type(e).__name__}: {e} (not a PalletError; saved as {path})") from e
            finally:
                signal.alarm(0)
            assert sorted(os.listdir(work)) == ["t"], f"case {cases} wrote beside its target: {os.listdir(work)}"
            shutil.rmtree(target)
    finally:
        signal.signal(signal.SIGALRM, old)
    assert sorted(os.listdir(tmp_path)) == ["outside", "sparse-src", "work"]
    assert _tree(str(tmp_path / "outside")) == before_outside
    assert os.stat("/etc").st_mtime_ns == etc_before
    assert cases > 200 and 0 < refused < cases, (cases, refused)
