"""A small streaming tar codec: header parsing for ``apply``, header writing for ``create``.

Why our own and not ``tarfile``: we need the raw bytes of names and xattr values (PAX
values are binary in practice: ``security.capability``), a hard error on a truncated
stream (``tarfile`` treats a stream ending on a block boundary as a clean end), and
large sequential reads straight into ``os.write`` for speed.

Understood on input: ustar (with prefix), GNU (``L``/``K`` long names, base-256 numbers),
PAX local and global headers (``path``, ``linkpath``, ``size``, ``uid``, ``gid``, ``mtime``,
``atime``, ``SCHILY.xattr.*``, ``LIBARCHIVE.xattr.*``, ``SCHILY.devmajor/devminor``).
Refused: GNU sparse files and multi-volume archives (no container tool writes them).
Written: ustar headers, preceded by a PAX header only when a field does not fit.
"""

from __future__ import annotations

import os

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
                 "linkname", "devmajor", "devminor", "xattrs")

    def __init__(self):
        self.xattrs = None

    @property
    def is_dir(self) -> bool:
        return self.type == DIR

    def __repr__(self) -> str:
        return f"<Header {self.name!r} type={self.type!r} size={self.size}>"


def _num(field: bytes, what: str) -> int:
    try:  # the common case: octal digits, NUL or space terminated
        return int(field.rstrip(b" \0"), 8)
    except ValueError:
        return _num_slow(field, what)


def _num_slow(field: bytes, what: str) -> int:
    if field[:1] and field[0] & 0x80:  # GNU base-256
        if field[0] == 0xFF:
            raise LayerError(f"tar header: negative {what}")
        return int.from_bytes(bytes([field[0] & 0x7F]) + field[1:], "big")
    s = field.split(b"\0", 1)[0].strip(b" ")
    if not s:
        return 0
    try:
        return int(s, 8)
    except ValueError:
        raise LayerError(f"tar header: bad {what} field {field!r}") from None


def _cstr(field: bytes) -> bytes:
    i = field.find(b"\0")
    return field if i < 0 else field[:i]


def _pax_time(v: bytes) -> int:
    """A PAX time ("1700000000.5", maybe negative) in nanoseconds, without float rounding."""
    try:
        s = v.decode("ascii")
        neg = s.startswith("-")
        if neg:
            s = s[1:]
        sec, _, frac = s.partition(".")
        ns = int(sec or "0") * 1_000_000_000 + int((frac + "000000000")[:9] or "0")
        return -ns if neg else ns
    except ValueError:
        raise LayerError(f"tar PAX header: bad time {v!r}") from None


def parse_pax(data: bytes) -> dict:
    """PAX records ``"LEN KEY=VALUE\\n"`` as {key bytes: value bytes}."""
    out = {}
    pos, n = 0, len(data)
    while pos < n:
        if data[pos] == 0:  # padding after the last record
            break
        sp = data.find(b" ", pos, pos + 20)
        if sp < 0:
            raise LayerError("tar PAX header: malformed record")
        try:
            length = int(data[pos:sp])
        except ValueError:
            raise LayerError("tar PAX header: malformed record length") from None
        end = pos + length
        if length <= sp - pos + 1 or end > n or data[end - 1] != 0x0A:
            raise LayerError("tar PAX header: malformed record")
        key, eq, value = data[sp + 1:end - 1].partition(b"=")
        if not eq:
            raise LayerError("tar PAX header: record without '='")
        out[key] = value
        pos = end
    return out


class TarReader:
    """Pulls tar members out of a readable stream, one pass, no seeking.

    ``next()`` returns the next :class:`Header` (None after the end-of-archive marker); then
    the caller either ``copy_to(fd)`` or ``skip()`` the member's data (``next`` skips what
    was left). ``finish()`` reads the stream to its end so a digest computed around it
    covers every byte. ``bytes_read`` counts what was pulled from the stream.
    """

    def __init__(self, source, chunk: int = CHUNK):
        self._src = source
        self._chunk = chunk
        self._buf = b""
        self._pos = 0
        self._left = 0  # data bytes of the current member not consumed yet
        self._pad = 0  # padding after them
        self._global: dict = {}
        self._name = b""
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
        """Write the current member's data to ``fd``; returns the byte count."""
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

    def skip(self, what: str | None = None) -> None:
        n = self._left + self._pad
        if len(self._buf) - self._pos >= n:
            self._pos += n
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
    def next(self) -> Header | None:
        if self._left or self._pad:
            self.skip()
        pax = None
        longname = longlink = None
        while True:
            blk = self._take(BLOCK, "a header")
            if blk == ZERO_BLOCK:
                # end of archive: a second zero block should follow; one is accepted at EOF
                if len(self._buf) - self._pos < BLOCK and not self._more():
                    return None
                self._take(BLOCK, "the end-of-archive marker")
                return None
            chk = blk[148:156]
            stored = _num(chk, "checksum")
            if stored != sum(blk) - sum(chk) + 256:
                signed = sum(b - 256 if b > 127 else b for b in blk) - sum(
                    b - 256 if b > 127 else b for b in chk) + 256
                if stored != signed:
                    raise LayerError("tar header checksum mismatch: not a tar stream, or corrupt")
            typ = blk[156:157]
            if typ in _EXTENSIONS:
                size = _num(blk[124:136], "size")
                if typ == PAX or typ == PAX_GLOBAL:
                    recs = parse_pax(self._data(size, "a PAX header"))
                    if typ == PAX_GLOBAL:
                        self._global.update(recs)
                    else:
                        pax = recs if pax is None else {**pax, **recs}
                elif typ == GNU_LONGNAME:
                    longname = _cstr(self._data(size, "a GNU long name"))
                else:
                    longlink = _cstr(self._data(size, "a GNU long link name"))
                continue
            break
        if typ in (GNU_SPARSE, GNU_MULTIVOL):
            raise LayerError("tar: GNU sparse and multi-volume members are not supported")
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
        h.mode = _num(blk[100:108], "mode")
        h.uid = _num(blk[108:116], "uid")
        h.gid = _num(blk[116:124], "gid")
        size = _num(blk[124:136], "size")
        h.mtime_ns = h.atime_ns = _num(blk[136:148], "mtime") * 1_000_000_000
        if typ == CHR or typ == BLK:
            h.devmajor = _num(blk[329:337], "devmajor")
            h.devminor = _num(blk[337:345], "devminor")
        else:
            h.devmajor = h.devminor = 0
        if typ == AREG or typ == CONT:
            typ = REG
        if typ == REG and h.name.endswith(b"/"):  # old tars mark directories this way
            typ = DIR
        if pax is not None or self._global:
            recs = {**self._global, **pax} if pax is not None else self._global
            size = self._apply_pax(h, recs, size)
            if typ == REG and h.name.endswith(b"/"):
                typ = DIR
        if typ not in _KNOWN and typ != GNU_VOLHDR:
            raise LayerError(f"tar member {h.name!r}: unsupported type {typ!r}")
        h.type = typ
        self._name = h.name
        # only regular files carry data: links, dirs and devices are header-only whatever
        # their size field says (as Go's archive/tar and Python's tarfile read them)
        h.size = size if typ == REG else 0
        self._left = h.size
        self._pad = -h.size % BLOCK
        return h

    @staticmethod
    def _apply_pax(h: Header, recs: dict, size: int) -> int:
        if b"path" in recs:
            h.name = recs[b"path"]
        if b"linkpath" in recs:
            h.linkname = recs[b"linkpath"]
        try:
            if b"uid" in recs:
                h.uid = int(recs[b"uid"])
            if b"gid" in recs:
                h.gid = int(recs[b"gid"])
            if b"size" in recs:
                size = int(recs[b"size"])
            if b"SCHILY.devmajor" in recs:
                h.devmajor = int(recs[b"SCHILY.devmajor"])
            if b"SCHILY.devminor" in recs:
                h.devminor = int(recs[b"SCHILY.devminor"])
        except ValueError:
            raise LayerError(f"tar member {h.name!r}: malformed number in its PAX header") from None
        if b"mtime" in recs:
            h.mtime_ns = h.atime_ns = _pax_time(recs[b"mtime"])
        if b"atime" in recs:
            h.atime_ns = _pax_time(recs[b"atime"])
        xattrs = None
        libarchive = None
        for k, v in recs.items():
            if k.startswith(b"SCHILY.xattr."):
                if xattrs is None:
                    xattrs = {}
                xattrs[k[13:]] = v
            elif k.startswith(b"LIBARCHIVE.xattr."):
                if libarchive is None:
                    libarchive = {}
                libarchive[k[17:]] = v
            elif k.startswith(b"GNU.sparse."):
                raise LayerError(f"tar member {h.name!r}: sparse files are not supported")
        if xattrs is None and libarchive:
            import base64
            import binascii
            import urllib.parse

            xattrs = {}
            for k, v in libarchive.items():
                try:
                    xattrs[urllib.parse.unquote_to_bytes(k)] = base64.b64decode(v + b"=" * (-len(v) % 4))
                except (ValueError, binascii.Error):
                    raise LayerError(f"tar member {h.name!r}: bad LIBARCHIVE xattr value") from None
        h.xattrs = xattrs
        return size


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
