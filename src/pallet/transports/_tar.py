"""Tar helpers for the archive transports: a streaming writer, a safe streaming extractor, and a
member table for random access to an uncompressed archive (``docker-archive:``).

All three sit on the layer codec (:mod:`pallet.layer.tar`): one tar reader and one header
writer for the whole program, with one policy: a stream that ends early (even on a block
boundary) is an error, every header field is validated. The extractor never follows or
creates links and refuses absolute or ``..`` names, so an archive cannot write outside its
directory.
"""

from __future__ import annotations

import os
import posixpath

from ..errors import InvalidDocument, LayerError
from ..layer import tar as _codec
from . import _files

BLOCK = 512
RECORD = 20 * BLOCK
CHUNK = 1 << 20


class TarWriter:
    """Writes a tar stream to a binary file object, member by member, data streamed."""

    def __init__(self, out, mtime: int = 0, mode: int = 0o644):
        self.out = out
        self.mtime = mtime
        self.mode = mode
        self.written = 0

    def _write(self, b) -> None:
        self.out.write(b)
        self.written += len(b)

    def _header(self, name: str, typ: bytes, mode: int, size: int = 0, linkname: str = "") -> None:
        self._write(_codec.header(os.fsencode(name), typ, mode=mode, size=size, mtime=self.mtime,
                                  linkname=os.fsencode(linkname)))

    def _pad(self, size: int) -> None:
        rem = size % BLOCK
        if rem:
            self._write(b"\0" * (BLOCK - rem))

    def add_dir(self, name: str) -> None:
        self._header(name.rstrip("/") + "/", _codec.DIR, 0o755)

    def add_bytes(self, name: str, data: bytes, mode: int | None = None) -> None:
        self._header(name, _codec.REG, self.mode if mode is None else mode, len(data))
        self._write(data)
        self._pad(len(data))

    def add_file(self, name: str, path: str, mode: int | None = None) -> None:
        """Add a regular file from disk, streamed; its size must not change while being copied."""
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            self._header(name, _codec.REG, self.mode if mode is None else mode, size)
            left = size
            while left:
                b = f.read(min(CHUNK, left))
                if not b:
                    raise _files.LocalFileError(f"{path}: file shrank while being archived")
                self._write(b)
                left -= len(b)
        self._pad(size)

    def add_symlink(self, name: str, target: str) -> None:
        self._header(name, _codec.SYM, 0o777, linkname=target)

    def close(self) -> None:
        """End of archive: two zero blocks, padded to a full record as tar(1) does."""
        self._write(b"\0" * (2 * BLOCK))
        rem = self.written % RECORD
        if rem:
            self._write(b"\0" * (RECORD - rem))


def clean_name(name: str, what: str) -> str:
    """A member name made relative and normalised; InvalidDocument for absolute or ``..`` names."""
    if name.startswith("/") or "\0" in name:
        raise InvalidDocument(f"{what}: unsafe member name {name!r} in the archive (absolute path)")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise InvalidDocument(f"{what}: unsafe member name {name!r} in the archive (contains '..')")
    return "/".join(parts)


def _open_plain(stream, what: str):
    """The uncompressed bytes of an archive stream: plain, gzip, zstd, bzip2 or xz."""
    from ..layer import stream as _stream

    peek = _stream.Peek(stream)
    algo = _stream.detect(peek.peek(8))
    if algo == "bzip2":
        import bz2

        return bz2.open(peek)
    if algo == "xz":
        import lzma

        return lzma.open(peek)
    return _stream.Decompress(peek, algo) if algo else peek


def extract_safely(stream, dest: str, what: str, limit: int = 0) -> None:
    """Extract a tar stream (plain, gzip, zstd, bzip2 or xz) into ``dest``.

    Only directories and regular files; links, devices and unsafe names are refused with a
    one-line error. Data is streamed, never held whole; with ``limit``, no more than that
    many bytes are written (``_files.SpoolLimit``).
    """
    import lzma

    from ..errors import DigestMismatch

    written = 0
    try:
        tr = _codec.TarReader(_open_plain(stream, what))
        first = True
        while True:
            try:
                h = tr.next()
            except LayerError as e:
                if first and "checksum" in str(e):
                    raise InvalidDocument(f"{what}: not a tar archive: {e}") from None
                raise
            first = False
            if h is None:
                break
            name = clean_name(os.fsdecode(h.name), what)
            if not name or h.type == _codec.GNU_VOLHDR:
                continue
            target = os.path.join(dest, name)
            if h.type == _codec.DIR:
                os.makedirs(target, 0o755, exist_ok=True)
                continue
            if h.type != _codec.REG:
                kind = "link" if h.type in (_codec.SYM, _codec.LNK) else "special file"
                raise InvalidDocument(f"{what}: unsupported {kind} {os.fsdecode(h.name)!r} in the archive "
                                      "(an OCI layout holds only files and directories)")
            written += h.size
            if limit and written > limit:
                from ._files import SpoolLimit

                raise SpoolLimit(f"{what}: the archive holds more than the spool limit of {limit} "
                                 "bytes; stopped there (raise it with --spool-limit SIZE or limit in "
                                 "the [spool] table of /etc/pallet/storage.conf, 0 for none)")
            os.makedirs(os.path.dirname(target), 0o755, exist_ok=True)
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
            try:
                tr.copy_to(fd)
            finally:
                os.close(fd)
    except (LayerError, DigestMismatch) as e:
        raise InvalidDocument(f"{what}: corrupt tar archive: {e}") from None
    except (EOFError, lzma.LZMAError) as e:
        raise InvalidDocument(f"{what}: corrupt or truncated compressed archive: {e}") from None
    except OSError as e:
        if e.errno is None:  # bz2's "Invalid data stream"
            raise InvalidDocument(f"{what}: corrupt compressed archive: {e}") from None
        raise


class Member:
    __slots__ = ("name", "offset", "size", "kind", "linkname")

    def __init__(self, name: str, offset: int, size: int, kind: str, linkname: str = ""):
        self.name = name
        self.offset = offset
        self.size = size
        self.kind = kind  # "file", "dir", "symlink", "hardlink", "other"
        self.linkname = linkname


def scan(path: str, what: str) -> dict[str, Member]:
    """Name -> Member of every entry of an uncompressed tar file (headers only, data skipped
    by seeking)."""
    members: dict[str, Member] = {}
    kinds = {_codec.REG: "file", _codec.DIR: "dir", _codec.SYM: "symlink", _codec.LNK: "hardlink"}
    with open(path, "rb") as f:
        tr = _codec.TarReader(f, seekable=True)
        try:
            while True:
                h = tr.next()
                if h is None:
                    break
                if h.sparse is not None:
                    raise InvalidDocument(f"{what}: {os.fsdecode(h.name)!r} is a sparse file, "
                                          "which a docker-archive does not hold")
                name = posixpath.normpath("/" + os.fsdecode(h.name)).lstrip("/")
                members[name] = Member(name, tr.offset(), h.size, kinds.get(h.type, "other"),
                                       os.fsdecode(h.linkname))
        except LayerError as e:
            if not members and "checksum" in str(e):
                raise InvalidDocument(f"{what}: not a tar archive: {e}") from None
            raise InvalidDocument(f"{what}: corrupt tar archive: {e}") from None
    return members


def resolve(members: dict[str, Member], name: str, what: str) -> Member:
    """The regular-file member ``name`` refers to, following symlinks and hardlinks (no loops)."""
    from ..errors import NotFound

    cur = posixpath.normpath("/" + name).lstrip("/")
    for _ in range(16):
        m = members.get(cur)
        if m is None:
            raise NotFound(f"{what}: {name!r} not found in the archive")
        if m.kind == "file":
            return m
        if m.kind == "symlink":
            cur = posixpath.normpath("/" + posixpath.join(posixpath.dirname(cur), m.linkname)).lstrip("/")
        elif m.kind == "hardlink":
            cur = posixpath.normpath("/" + m.linkname).lstrip("/")
        else:
            raise InvalidDocument(f"{what}: {name!r} in the archive is not a regular file")
    raise InvalidDocument(f"{what}: {name!r}: too many levels of links in the archive")
