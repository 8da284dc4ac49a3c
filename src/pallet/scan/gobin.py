"""Go binaries' module build info, read from the file (nothing executed), as ``go version -m``
prints it: the ELF section ``.go.buildinfo`` located through the section headers (each offset
checked against the file: a binary that lies about its sections is a warning), its header
(``\\xff Go buildinf:``), and the inline version and module strings (Go 1.18 and later; older
binaries, whose strings are behind pointers, are a note, not read)."""

from __future__ import annotations

import os
import struct

MAGIC = b"\xff Go buildinf:"
#: the most bytes the section may have (build info is a few KB)
SECTION_LIMIT = 4 << 20


class NotGo(Exception):
    pass


def _pread(fd: int, size: int, off: int, total: int) -> bytes:
    if off < 0 or size < 0 or off + size > total:
        raise ValueError(f"offset {off}+{size} beyond the file's {total} bytes")
    return os.pread(fd, size, off)


def _section(fd: int, total: int) -> bytes | None:
    """The bytes of ``.go.buildinfo``, None when the ELF has no such section."""
    h = _pread(fd, 64, 0, total) if total >= 64 else b""
    if h[:4] != b"\x7fELF":
        raise NotGo()
    cls, data = h[4], h[5]
    if cls not in (1, 2) or data not in (1, 2):
        raise ValueError("bad ELF class or byte order")
    e = "<" if data == 1 else ">"
    if cls == 2:
        shoff, = struct.unpack_from(e + "Q", h, 0x28)
        shentsize, shnum, shstrndx = struct.unpack_from(e + "HHH", h, 0x3A)
        fmt, name_off, off_off, size_off = e + "IIQQQQIIQQ", 0, 4, 5
    else:
        shoff, = struct.unpack_from(e + "I", h, 0x20)
        shentsize, shnum, shstrndx = struct.unpack_from(e + "HHH", h, 0x2E)
        fmt, name_off, off_off, size_off = e + "IIIIIIIIII", 0, 4, 5
    if shnum == 0:
        return None
    if shnum > 4096 or shstrndx >= shnum or shentsize < struct.calcsize(fmt):
        raise ValueError("section header table out of range")
    table = _pread(fd, shentsize * shnum, shoff, total)
    secs = [struct.unpack_from(fmt, table, i * shentsize) for i in range(shnum)]
    strtab = secs[shstrndx]
    if strtab[size_off] > SECTION_LIMIT:
        raise ValueError("section name table too large")
    names = _pread(fd, strtab[size_off], strtab[off_off], total)
    for s in secs:
        n = s[name_off]
        if names[n:n + 14] == b".go.buildinfo\x00"[:14] and names[n:].split(b"\x00", 1)[0] == b".go.buildinfo":
            if s[size_off] > SECTION_LIMIT:
                raise ValueError(".go.buildinfo too large")
            return _pread(fd, s[size_off], s[off_off], total)
    return None


def _uvarint(b: bytes, i: int) -> tuple[int, int]:
    x = shift = 0
    while True:
        if i >= len(b) or shift > 63:
            raise ValueError("truncated varint")
        c = b[i]
        i += 1
        x |= (c & 0x7F) << shift
        if c < 0x80:
            return x, i
        shift += 7


def build_info(fd: int) -> tuple[str, str] | None:
    """(Go version, module info text) of the ELF open at ``fd``; None when it is not a Go
    binary; ValueError for a malformed one or a pre-1.18 one."""
    total = os.fstat(fd).st_size
    try:
        sec = _section(fd, total)
    except NotGo:
        return None
    if sec is None or not sec.startswith(MAGIC):
        return None
    if len(sec) < 32:
        raise ValueError("build info header truncated")
    if not sec[15] & 2:
        raise ValueError("a Go binary older than 1.18 (build info behind pointers): not read")
    n, i = _uvarint(sec, 32)
    version = sec[i:i + n].decode("utf-8", "replace")
    i += n
    n, i = _uvarint(sec, i)
    mod = sec[i:i + n]
    if len(mod) != n:
        raise ValueError("module info truncated")
    if len(mod) >= 33 and mod[-17:-16] == b"\n":
        mod = mod[16:-16]
    return version, mod.decode("utf-8", "replace")


def modules(modinfo: str) -> list[dict]:
    """The main module and dependencies as ``go version -m`` lists them (``mod``/``dep``
    lines), each with ``replaced_by`` when a ``=>`` line follows it."""
    out: list[dict] = []
    for line in modinfo.splitlines():
        f = line.split("\t")
        if f[0] in ("mod", "dep") and len(f) >= 3:
            out.append({"kind": f[0], "path": f[1], "version": f[2], "replaced_by": None})
        elif f[0] == "=>" and len(f) >= 2 and out:
            out[-1]["replaced_by"] = " ".join(f[1:3])
    return out
