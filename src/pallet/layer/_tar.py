"""A small streaming tar codec: header parsing for ``apply``, header writing for ``create``.

Why our own and not ``tarfile``: we need the raw bytes of names and xattr values (PAX
values are binary in practice: ``security.capability``), a hard error on a truncated
stream (``tarfile`` treats a stream ending on a block boundary as a clean end), and
large sequential reads straight into ``os.write`` for speed.

Understood on input: ustar (with prefix), GNU (``L``/``K`` long names, base-256 numbers),
PAX local and global headers (``path``, ``linkpath``, ``size``, ``uid``, ``gid``, ``mtime``,
``atime``, ``SCHILY.xattr.*``, ``LIBARCHIVE.xattr.*``, ``SCHILY.devmajor/devminor``).
GNU sparse files in every format GNU tar writes: the old ``S`` type with its extension
blocks, PAX 0.0 (repeated ``GNU.sparse.offset``/``numbytes``), 0.1 (``GNU.sparse.map``) and 1.0
(the map at the start of the data); the map is validated (in order, no overlap, inside the
real size, adding up to the data stored) and the holes are left as holes.
Refused: multi-volume archives.
Every number is validated, whatever field it comes from (ustar octal, base-256, PAX): no sign,
space or underscore where tar has none, sizes and owners never negative, each within what the
kernel takes (``_LIMITS``); a bad one is a LayerError naming the member and the field. The
old-style "directory as a regular file with a trailing slash" is decided on the final name.
Written: ustar headers, preceded by a PAX header only when a field does not fit.
"""

from __future__ import annotations

import os
from zlib import adler32 as _adler32

from ..errors import LayerError

BLOCK = 512
ZERO_BLOCK = bytes(BLOCK)
CHUNK = 1 << 20
#: a PAX or GNU long-name header larger than this is refused (they hold names and xattrs)
MAX_META = 16 << 20

# entry types (the typeflag byte)
REG = b"0"
AREG = b"\0"
LNK = b"1"
SYM = b"2"
CHR = b"3"
BLK = b"4"
DIR = b"5"
FIFO = b"6"
CONT = b"7"
PAX = b"x"
PAX_GLOBAL = b"g"
GNU_LONGNAME = b"L"
GNU_LONGLINK = b"K"
GNU_SPARSE = b"S"
GNU_VOLHDR = b"V"
GNU_MULTIVOL = b"M"

_KNOWN = {REG, AREG, LNK, SYM, CHR, BLK, DIR, FIFO, CONT}
_EXTENSIONS = {PAX, PAX_GLOBAL, GNU_LONGNAME, GNU_LONGLINK}


class Header:
    """One tar member, after its PAX/GNU extension headers were folded in."""

    __slots__ = ("name", "type", "mode", "uid", "gid", "size", "mtime_ns", "atime_ns",
                 "linkname", "devmajor", "devminor", "xattrs", "sparse")

    def __init__(self):
        self.xattrs = None
        #: a sparse file's map: [(offset, length), ...] of the data stored; ``size`` is then
        #: the file's real size
        self.sparse = None

    @property
    def is_dir(self) -> bool:
        return self.type == DIR

    def __repr__(self) -> str:
        return f"<Header {self.name!r} type={self.type!r} size={self.size}>"


#: the largest value each numeric field may hold, and what it is called in messages: sizes and
#: offsets fit an off_t, owners a uid_t other than -1 (chown's "leave unchanged"), device numbers
#: what Linux's dev_t encodes (12-bit major, 20-bit minor: a larger one would silently alias
#: another device), times what utimensat takes in nanoseconds
MAX_SIZE = (1 << 63) - 1
MAX_ID = (1 << 32) - 2
_LIMITS = {"size": MAX_SIZE, "uid": MAX_ID, "gid": MAX_ID, "mode": 0o7777777, "devmajor": 0xFFF,
           "devminor": 0xFFFFF, "checksum": 0o7777777, "offset": MAX_SIZE, "realsize": MAX_SIZE,
           "numbytes": MAX_SIZE, "sparse map entry": MAX_SIZE, "sparse map entry count": MAX_SIZE}
_MAX_TIME_S = ((1 << 63) - 1) // 1_000_000_000
_MAX_MODE = _LIMITS["mode"]


def show(name: bytes, limit: int = 120) -> str:
    """A member name for a message: quoted, cut (with its length said) when very long."""
    if len(name) > limit:
        return repr(os.fsdecode(name[:limit])) + f"... ({len(name)} bytes)"
    return repr(os.fsdecode(name))


def _who(name) -> str:
    return f"tar member {show(name)}" if name else "tar header"


def _check(value: int, what: str, who: str, where: str) -> int:
    if what == "mtime" or what == "atime":
        if -_MAX_TIME_S <= value <= _MAX_TIME_S:
            return value
        raise LayerError(f"{who}: {what} {value} {where} is out of range")
    if value < 0:
        raise LayerError(f"{who}: {what} {value} {where} is negative")
    hi = _LIMITS[what]
    if value > hi:
        raise LayerError(f"{who}: {what} {value} {where} is out of range (0..{hi})")
    return value


def _num(field: bytes, what: str, who: str = "tar header") -> int:
    """A numeric header field: octal digits (NUL or space terminated, maybe space padded in
    front), or GNU base-256 (first byte 0x80 positive, 0xFF negative); range checked."""
    s = field.rstrip(b" \0")
    if s.isdigit():  # the common case (isdigit on bytes is ASCII only; 8 and 9 fail below)
        try:
            return _check(int(s, 8), what, who, "in its header")
        except ValueError:
            pass
    elif field[:1] and field[0] & 0x80:
        # two's complement below the marker bit: 0x80... positive, 0xFF... negative
        v = int.from_bytes(bytes([field[0] & 0x7F]) + field[1:], "big")
        if field[0] & 0x40:
            v -= 1 << (8 * len(field) - 1)
        return _check(v, what, who, "in its header (base-256)")
    else:
        s = field.split(b"\0", 1)[0].strip(b" ")
        if not s:
            return 0
        if s.isdigit():
            try:
                return _check(int(s, 8), what, who, "in its header")
            except ValueError:
                pass
    raise LayerError(f"{who}: bad {what} field {field!r} in its header (not an octal number)")


def _pax_num(v: bytes, what: str, who: str) -> int:
    """A PAX decimal number: digits only (no sign, space or underscore), range checked."""
    if not v.isdigit() or len(v) > 30:
        raise LayerError(f"{who}: bad {what} {v[:40]!r} in its PAX header (not a decimal number)")
    return _check(int(v), what, who, "in its PAX header")


def _cstr(field: bytes) -> bytes:
    i = field.find(b"\0")
    return field if i < 0 else field[:i]


def _pax_time(v: bytes, what: str = "mtime", who: str = "tar header") -> int:
    """A PAX time ("1700000000.5", maybe negative) in nanoseconds, without float rounding."""
    s = v[1:] if v.startswith(b"-") else v
    sec, _, frac = s.partition(b".")
    if not (sec.isdigit() and (not frac or frac.isdigit())) or len(sec) > 30:
        raise LayerError(f"{who}: bad {what} {v[:40]!r} in its PAX header (not a decimal time)")
    secs = _check(int(sec), what, who, "in its PAX header")
    ns = secs * 1_000_000_000 + int((frac[:9] + b"000000000")[:9])
    return -ns if v.startswith(b"-") else ns


def parse_pax(data: bytes, at: int = 0) -> dict:
    """PAX records ``"LEN KEY=VALUE\\n"`` as {key bytes: value bytes} (``at``: the header's
    stream offset, for messages)."""
    out = {}
    pos, n = 0, len(data)
    while pos < n:
        if data[pos] == 0:  # padding after the last record
            break
        sp = data.find(b" ", pos, pos + 20)
        if sp < 0:
            raise LayerError(f"tar PAX header at byte {at}: malformed record at offset {pos}")
        if not data[pos:sp].isdigit():
            raise LayerError(f"tar PAX header at byte {at}: malformed record length at offset {pos}")
        length = int(data[pos:sp])
        end = pos + length
        if length <= sp - pos + 1 or end > n or data[end - 1] != 0x0A:
            raise LayerError(f"tar PAX header at byte {at}: malformed record at offset {pos}")
        key, eq, value = data[sp + 1:end - 1].partition(b"=")
        if not eq:
            raise LayerError(f"tar PAX header at byte {at}: record without '=' at offset {pos}")
        if key == b"GNU.sparse.offset" or key == b"GNU.sparse.numbytes":  # sparse 0.0: repeated
            out.setdefault(_SPARSE00, []).append((key, value))
        out[key] = value
        pos = end
    return out


_SPARSE00 = b"\0sparse 0.0"  # parse_pax keeps the ordered sparse 0.0 records under this key
#: the most entries a sparse map may have
MAX_SPARSE = 1 << 20


class TarReader:
    """Pulls tar members out of a readable stream, one pass, no seeking.

    ``next()`` returns the next :class:`Header` (None after the end-of-archive marker); then
    the caller either ``copy_to(fd)`` or ``skip()`` the member's data (``next`` skips what
    was left). ``finish()`` reads the stream to its end so a digest computed around it
    covers every byte. ``bytes_read`` counts what was pulled from the stream.
    """

    def __init__(self, source, chunk: int = CHUNK, seekable: bool = False):
        self._src = source
        self._chunk = chunk
        self._seekable = seekable  # skip data by seeking the source (a file) instead of reading it
        self._buf = b""
        self._pos = 0
        self._left = 0  # data bytes of the current member not consumed yet
        self._pad = 0  # padding after them
        self._global: dict = {}
        self._name = b""
        self._sparse = None  # (segments, real size) of the current member, if sparse
        self.bytes_read = 0

    # -- buffer ---------------------------------------------------------------------------
    def _more(self) -> bool:
        b = self._src.read(self._chunk)
        if not b:
            return False
        self.bytes_read += len(b)
        if self._pos < len(self._buf):
            self._buf = self._buf[self._pos:] + b
        else:
            self._buf = b
        self._pos = 0
        return True

    def _take(self, n: int, what: str) -> bytes:
        while len(self._buf) - self._pos < n:
            if not self._more():
                raise LayerError(f"tar stream truncated: unexpected end of data in {what}")
        b = self._buf[self._pos:self._pos + n]
        self._pos += n
        return b

    def _chunks(self, n: int, what: str):
        """Yield memoryviews over the next ``n`` bytes of the stream."""
        while n > 0:
            avail = len(self._buf) - self._pos
            if avail <= 0:
                if not self._more():
                    what = what or f"the data of {os.fsdecode(self._name)!r}"
                    raise LayerError(f"tar stream truncated: unexpected end of data in {what}")
                continue
            k = min(avail, n)
            yield memoryview(self._buf)[self._pos:self._pos + k]
            self._pos += k
            n -= k

    # -- member data ----------------------------------------------------------------------
    def copy_to(self, fd: int, what: str | None = None) -> int:
        """Write the current member's data to ``fd``; returns the byte count. A sparse file's
        segments go to their offsets and ``fd`` is truncated to its real size."""
        if self._sparse is not None:
            return self._copy_sparse(fd, what)
        n, pos = self._left, self._pos
        if len(self._buf) - pos >= n + self._pad:  # small file already buffered: one write
            mv = memoryview(self._buf)[pos:pos + n]
            while mv:
                mv = mv[os.write(fd, mv):]
            self._pos = pos + n + self._pad
            self._left = self._pad = 0
            return n
        total = 0
        for mv in self._chunks(self._left, what):
            while mv:
                w = os.write(fd, mv)
                mv = mv[w:]
                total += w
        self._left = 0
        self._skip_pad(what)
        return total

    def _copy_sparse(self, fd: int, what: str | None) -> int:
        segments, realsize = self._sparse
        self._sparse = None
        total = 0
        for off, length in segments:
            if length:
                os.lseek(fd, off, os.SEEK_SET)
                for mv in self._chunks(length, what):
                    while mv:
                        w = os.write(fd, mv)
                        mv = mv[w:]
                        total += w
                self._left -= length
        os.ftruncate(fd, realsize)
        self._skip_pad(what)
        return total

    def skip(self, what: str | None = None) -> None:
        self._sparse = None
        n = self._left + self._pad
        if len(self._buf) - self._pos >= n:
            self._pos += n
            self._left = self._pad = 0
            return
        if self._seekable:  # past the buffer by seeking; a short file shows at the next header
            beyond = n - (len(self._buf) - self._pos)
            self._src.seek(beyond, os.SEEK_CUR)
            self.bytes_read += beyond
            self._buf, self._pos = b"", 0
            self._left = self._pad = 0
            return
        for _ in self._chunks(self._left, what):
            pass
        self._left = 0
        self._skip_pad(what)

    def _skip_pad(self, what: str | None) -> None:
        if self._pad:
            for _ in self._chunks(self._pad, what):
                pass
            self._pad = 0

    def _data(self, size: int, what: str) -> bytes:
        if size > MAX_META:
            raise LayerError(f"tar {what} of {size} bytes is too large")
        b = self._take(size, what)
        pad = -size % BLOCK
        if pad:
            self._take(pad, what)
        return b

    def finish(self) -> None:
        """Consume the rest of the stream (padding after the end-of-archive marker)."""
        self._buf, self._pos = b"", 0
        while self._more():
            self._buf, self._pos = b"", 0

    # -- headers --------------------------------------------------------------------------
    def offset(self) -> int:
        """The stream position of the next unread byte."""
        return self.bytes_read - (len(self._buf) - self._pos)

    def next(self) -> Header | None:
        if self._left or self._pad:
            self.skip()
        pax = None
        longname = longlink = None
        while True:
            at = self.offset()
            blk = self._take(BLOCK, "a header")
            if blk == ZERO_BLOCK:
                # end of archive: a second zero block should follow; one is accepted at EOF
                if len(self._buf) - self._pos < BLOCK and not self._more():
                    return None
                self._take(BLOCK, "the end-of-archive marker")
                return None
            chk = blk[148:156]
            stored = chk.rstrip(b" \0")
            if stored.isdigit() and b"8" not in stored and b"9" not in stored:  # the common case
                stored = int(stored, 8)
            else:
                try:
                    stored = _num(chk, "checksum")
                except LayerError:
                    stored = -1
            # the unsigned sum of the header with the checksum field as 8 spaces, in C: adler32
            # started at 0 keeps the byte sum (mod 65521) in its low half, exact for < 257 bytes
            if stored != (_adler32(blk[:148], 0) & 0xFFFF) + (_adler32(blk[156:356], 0) & 0xFFFF) + (
                    _adler32(blk[356:], 0) & 0xFFFF) + 256:
                signed = sum(b - 256 if b > 127 else b for b in blk) - sum(
                    b - 256 if b > 127 else b for b in chk) + 256
                if stored != signed:
                    raise LayerError(f"tar header at byte {at}: checksum mismatch: not a tar stream, or corrupt")
            typ = blk[156:157]
            if typ in _EXTENSIONS:
                what = {PAX: "PAX header", PAX_GLOBAL: "PAX global header", GNU_LONGNAME: "GNU long name",
                        GNU_LONGLINK: "GNU long link name"}[typ]
                size = _num(blk[124:136], "size", f"tar {what} at byte {at}")
                data = self._data(size, f"the {what} at byte {at}")
                if typ == PAX or typ == PAX_GLOBAL:
                    recs = parse_pax(data, at)
                    if typ == PAX_GLOBAL:
                        self._global.update(recs)
                    else:
                        pax = recs if pax is None else {**pax, **recs}
                elif typ == GNU_LONGNAME:
                    longname = _cstr(data)
                else:
                    longlink = _cstr(data)
                continue
            break
        if typ == GNU_MULTIVOL:
            raise LayerError(f"tar header at byte {at}: GNU multi-volume members are not supported")
        h = Header()
        name = blk[0:100]
        i = name.find(b"\0")
        if i >= 0:
            name = name[:i]
        if blk[345] and blk[257:263] == b"ustar\0":  # POSIX ustar: name may be split
            name = _cstr(blk[345:500]) + b"/" + name
        h.name = name if longname is None else longname
        link = blk[157:257]
        h.linkname = (_cstr(link) if link[0] else b"") if longlink is None else longlink
        recs = None
        if pax is not None or self._global:
            recs = {**self._global, **pax} if pax is not None else self._global
            if b"path" in recs:  # the real name first: every message below names it
                h.name = recs[b"path"]
        # the common case in one go: five plain octal fields (ASCII digits only: no sign, space,
        # underscore or "0o" that int() would take), each range-checked by one comparison;
        # anything else (base-256, padding, a bad digit, out of range) goes through _num,
        # which accepts or refuses it with a message naming the member and the field
        fm, fu, fg = blk[100:108].rstrip(b" \0"), blk[108:116].rstrip(b" \0"), blk[116:124].rstrip(b" \0")
        fs, ft = blk[124:136].rstrip(b" \0"), blk[136:148].rstrip(b" \0")
        digits = fm + fu + fg + fs + ft
        if (fm and fu and fg and fs and ft and digits.isdigit() and b"8" not in digits and b"9" not in digits
                and (mode := int(fm, 8)) <= _MAX_MODE and (uid := int(fu, 8)) <= MAX_ID
                and (gid := int(fg, 8)) <= MAX_ID and (size := int(fs, 8)) <= MAX_SIZE
                and (mtime := int(ft, 8)) <= _MAX_TIME_S):
            h.mode, h.uid, h.gid = mode, uid, gid
            h.mtime_ns = h.atime_ns = mtime * 1_000_000_000
            who = None  # named only when something needs it
        else:
            who = _who(h.name)
            h.mode = _num(blk[100:108], "mode", who)
            h.uid = _num(blk[108:116], "uid", who)
            h.gid = _num(blk[116:124], "gid", who)
            size = _num(blk[124:136], "size", who)
            h.mtime_ns = h.atime_ns = _num(blk[136:148], "mtime", who) * 1_000_000_000
        if typ == CHR or typ == BLK:
            who = who or _who(h.name)
            h.devmajor = _num(blk[329:337], "devmajor", who)
            h.devminor = _num(blk[337:345], "devminor", who)
        else:
            h.devmajor = h.devminor = 0
        h.xattrs = None
        sparse = realsize = None
        if typ == GNU_SPARSE:  # old GNU: the map in the header, continued in extension blocks
            who = who or _who(h.name)
            sparse, realsize = self._gnu_sparse_map(blk, who)
            typ = REG
        if recs is not None:
            who = who or _who(h.name)
            size = self._apply_pax(h, recs, size, who)
            if b"GNU.sparse.major" in recs or b"GNU.sparse.map" in recs or _SPARSE00 in recs:
                if b"GNU.sparse.name" in recs:
                    h.name = recs[b"GNU.sparse.name"]
                    who = _who(h.name)
                sparse, realsize = self._pax_sparse(recs, who, size)
        if b"\0" in h.name or b"\0" in h.linkname:
            field = "name" if b"\0" in h.name else "link target"
            raise LayerError(f"{_who(h.name)}: its {field} contains a NUL byte")
        if typ == AREG or typ == CONT:
            typ = REG
        # old tars mark directories as regular files with a trailing slash; decided on the
        # final name (a PAX path or GNU long name), never on the 100-byte ustar field, which
        # may be the cut-off first part of a longer name that happens to end in "/"
        if typ == REG and h.name.endswith(b"/"):
            typ = DIR
        if typ not in _KNOWN and typ != GNU_VOLHDR:
            raise LayerError(f"{_who(h.name)}: unsupported type {typ!r}")
        h.type = typ
        self._name = h.name
        # only regular files carry data: links, dirs and devices are header-only whatever
        # their size field says (as Go's archive/tar and Python's tarfile read them)
        h.size = size if typ == REG else 0
        self._left = h.size
        self._pad = -h.size % BLOCK
        self._sparse = None
        if sparse is not None and typ == REG:
            who = who or _who(h.name)
            if sparse == "1.0":  # the map is at the start of the data
                sparse = self._sparse_map_10(who)
            self._check_sparse(sparse, realsize, self._left, who)
            h.sparse, h.size = sparse, realsize
            self._sparse = (sparse, realsize)
        return h

    # -- sparse files ---------------------------------------------------------------------
    def _gnu_sparse_map(self, blk: bytes, who: str):
        out = []

        def entries(area: bytes, n: int) -> None:
            for i in range(n):
                e = area[i * 24:(i + 1) * 24]
                if e[0] == 0:  # unused entries are empty
                    return
                out.append((_num(e[:12], "offset", who), _num(e[12:], "numbytes", who)))

        entries(blk[386:482], 4)
        realsize = _num(blk[483:495], "realsize", who)
        extended = blk[482]
        while extended:
            if len(out) > MAX_SPARSE:
                raise LayerError(f"{who}: its sparse map has more than {MAX_SPARSE} entries")
            ext = self._take(BLOCK, f"the sparse map of {who}")
            entries(ext[:504], 21)
            extended = ext[504]
        return out, realsize

    @staticmethod
    def _pax_sparse(recs: dict, who: str, size: int):
        major, minor = recs.get(b"GNU.sparse.major"), recs.get(b"GNU.sparse.minor")
        if major is not None:
            if (major, minor) != (b"1", b"0"):
                raise LayerError(f"{who}: unsupported GNU sparse format {major!r}.{minor!r} in its PAX header")
            realsize = recs.get(b"GNU.sparse.realsize")
            if realsize is None:
                raise LayerError(f"{who}: GNU sparse 1.0 without GNU.sparse.realsize in its PAX header")
            return "1.0", _pax_num(realsize, "realsize", who)
        realsize = recs.get(b"GNU.sparse.size")
        if realsize is None:
            raise LayerError(f"{who}: GNU sparse map without GNU.sparse.size in its PAX header")
        realsize = _pax_num(realsize, "realsize", who)
        if b"GNU.sparse.map" in recs:  # 0.1: "offset,numbytes,offset,numbytes..."
            raw = recs[b"GNU.sparse.map"]
            nums = raw.split(b",") if raw else []
            if len(nums) % 2 or len(nums) > 2 * MAX_SPARSE:
                raise LayerError(f"{who}: bad GNU.sparse.map in its PAX header (an odd count, or too many)")
            vals = [_pax_num(v, "offset" if i % 2 == 0 else "numbytes", who) for i, v in enumerate(nums)]
            return list(zip(vals[::2], vals[1::2])), realsize
        seq = recs[_SPARSE00]  # 0.0: offset and numbytes records, alternating
        if len(seq) % 2 or any(seq[i][0] != b"GNU.sparse.offset" or seq[i + 1][0] != b"GNU.sparse.numbytes"
                               for i in range(0, len(seq), 2)):
            raise LayerError(f"{who}: GNU.sparse.offset and GNU.sparse.numbytes records do not alternate "
                             "in its PAX header")
        return [(_pax_num(seq[i][1], "offset", who), _pax_num(seq[i + 1][1], "numbytes", who))
                for i in range(0, len(seq), 2)], realsize

    def _sparse_map_10(self, who: str) -> list:
        """GNU sparse 1.0: decimal numbers, one a line (count, then offset/numbytes pairs), at the
        start of the data, padded to a block."""
        what = f"the sparse map of {who}"
        buf = b""
        nums: list = []
        want = None
        while want is None or len(nums) < want:
            if b"\n" not in buf:
                if self._left < BLOCK or len(buf) > 64:
                    raise LayerError(f"{who}: bad GNU sparse 1.0 map at the start of its data")
                buf += self._take(BLOCK, what)
                self._left -= BLOCK
                continue
            line, _, buf = buf.partition(b"\n")
            nums.append(_pax_num(line, "sparse map entry", who) if want is not None
                        else _pax_num(line, "sparse map entry count", who))
            if want is None:
                if nums[0] > MAX_SPARSE:
                    raise LayerError(f"{who}: its sparse map has more than {MAX_SPARSE} entries")
                want = 1 + 2 * nums[0]
        return list(zip(nums[1::2], nums[2::2]))

    @staticmethod
    def _check_sparse(segments: list, realsize: int, stored: int, who: str) -> None:
        end = 0
        total = 0
        for off, length in segments:
            if off < end or off + length > realsize:
                raise LayerError(f"{who}: its sparse map is out of order, overlaps, or goes past "
                                 f"the real size {realsize} (entry {off},{length})")
            end = off + length
            total += length
        if total != stored:
            raise LayerError(f"{who}: its sparse map covers {total} bytes but {stored} are stored")

    @staticmethod
    def _apply_pax(h: Header, recs: dict, size: int, who: str) -> int:
        if b"linkpath" in recs:
            h.linkname = recs[b"linkpath"]
        if b"uid" in recs:
            h.uid = _pax_num(recs[b"uid"], "uid", who)
        if b"gid" in recs:
            h.gid = _pax_num(recs[b"gid"], "gid", who)
        if b"size" in recs:
            size = _pax_num(recs[b"size"], "size", who)
        if b"SCHILY.devmajor" in recs:
            h.devmajor = _pax_num(recs[b"SCHILY.devmajor"], "devmajor", who)
        if b"SCHILY.devminor" in recs:
            h.devminor = _pax_num(recs[b"SCHILY.devminor"], "devminor", who)
        if b"mtime" in recs:
            h.mtime_ns = h.atime_ns = _pax_time(recs[b"mtime"], "mtime", who)
        if b"atime" in recs:
            h.atime_ns = _pax_time(recs[b"atime"], "atime", who)
        xattrs = None
        libarchive = None
        for k, v in recs.items():
            if k.startswith(b"SCHILY.xattr."):
                if xattrs is None:
                    xattrs = {}
                xattrs[_xattr_name(k[13:], who)] = v
            elif k.startswith(b"LIBARCHIVE.xattr."):
                if libarchive is None:
                    libarchive = {}
                libarchive[k[17:]] = v
        if xattrs is None and libarchive:
            import base64
            import binascii
            import urllib.parse

            xattrs = {}
            for k, v in libarchive.items():
                try:
                    name = _xattr_name(urllib.parse.unquote_to_bytes(k), who)
                    xattrs[name] = base64.b64decode(v + b"=" * (-len(v) % 4))
                except (ValueError, binascii.Error):
                    raise LayerError(f"{who}: bad LIBARCHIVE.xattr value for {k[:60]!r} in its PAX header") from None
        h.xattrs = xattrs
        return size


def _xattr_name(k: bytes, who: str) -> bytes:
    if not k or b"\0" in k or len(k) > 255:
        raise LayerError(f"{who}: bad xattr name {k[:60]!r} in its PAX header "
                         "(empty, longer than 255 bytes, or holding a NUL byte)")
    return k


# -- writing ----------------------------------------------------------------------------------

_MAX8 = 0o7777777
_MAX12 = 0o77777777777


def _record(key: bytes, value: bytes) -> bytes:
    body = b" " + key + b"=" + value + b"\n"
    n = len(body) + 1
    while len(str(n).encode()) + len(body) != n:
        n = len(str(n).encode()) + len(body)
    return str(n).encode() + body


def _ustar(name: bytes, mode: int, uid: int, gid: int, size: int, mtime: int, typ: bytes,
           linkname: bytes, devmajor: int, devminor: int) -> bytes:
    h = bytearray(BLOCK)
    h[0:len(name)] = name
    h[100:108] = b"%07o\0" % mode
    h[108:116] = b"%07o\0" % uid
    h[116:124] = b"%07o\0" % gid
    h[124:136] = b"%011o\0" % size
    h[136:148] = b"%011o\0" % mtime
    h[148:156] = b" " * 8
    h[156:157] = typ
    h[157:157 + len(linkname)] = linkname
    h[257:265] = b"ustar\x0000"
    h[329:337] = b"%07o\0" % devmajor
    h[337:345] = b"%07o\0" % devminor
    h[148:156] = b"%06o\0 " % sum(h)
    return bytes(h)


def _fits(b: bytes) -> bool:
    return len(b) <= 100 and b.isascii()


def header(name: bytes, typ: bytes, *, mode: int = 0o644, uid: int = 0, gid: int = 0, size: int = 0,
           mtime: int = 0, linkname: bytes = b"", devmajor: int = 0, devminor: int = 0,
           xattrs: dict | None = None) -> bytes:
    """The header block(s) of one member: a PAX header first when a field does not fit ustar.

    Deterministic: the same arguments give the same bytes (records in a fixed order, xattrs
    sorted, the PAX header's own fields constant)."""
    recs = []
    if not _fits(name):
        recs.append((b"path", name))
        name = name[:100]
    if not _fits(linkname):
        recs.append((b"linkpath", linkname))
        linkname = linkname[:100]
    if uid > _MAX8:
        recs.append((b"uid", b"%d" % uid))
        uid = 0
    if gid > _MAX8:
        recs.append((b"gid", b"%d" % gid))
        gid = 0
    if size > _MAX12:
        recs.append((b"size", b"%d" % size))
        size = 0
    if mtime < 0 or mtime > _MAX12:
        recs.append((b"mtime", b"%d" % mtime))
        mtime = 0
    if devmajor > _MAX8 or devminor > _MAX8:
        recs.append((b"SCHILY.devmajor", b"%d" % devmajor))
        recs.append((b"SCHILY.devminor", b"%d" % devminor))
        devmajor = devminor = 0
    if xattrs:
        for k in sorted(xattrs):
            recs.append((b"SCHILY.xattr." + k, xattrs[k]))
    main = _ustar(name, mode & 0o7777, uid, gid, size, mtime, typ, linkname, devmajor, devminor)
    if not recs:
        return main
    data = b"".join(_record(k, v) for k, v in recs)
    return (_ustar(b"././@PaxHeader", 0o644, 0, 0, len(data), 0, PAX, b"", 0, 0)
            + data + bytes(-len(data) % BLOCK) + main)


def padding(size: int) -> bytes:
    return bytes(-size % BLOCK)


END = bytes(2 * BLOCK)
