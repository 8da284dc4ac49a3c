"""Tar helpers for the archive transports: a streaming writer, a safe streaming extractor, and a
member table for random access to an uncompressed archive (``docker-archive:``).

The writer uses :mod:`tarfile` only to encode headers and copies file data itself in large
chunks (tarfile's own copy is 16 KiB at a time). The extractor never follows or creates links
and refuses absolute or ``..`` names, so an archive cannot write outside its directory.
"""

from __future__ import annotations

import os
import posixpath
import tarfile

from ..errors import InvalidDocument
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

    def _header(self, info: tarfile.TarInfo) -> None:
        info.mtime = self.mtime
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        self._write(info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape"))

    def _pad(self, size: int) -> None:
        rem = size % BLOCK
        if rem:
            self._write(b"\0" * (BLOCK - rem))

    def add_dir(self, name: str) -> None:
        ti = tarfile.TarInfo(name.rstrip("/") + "/")
        ti.type = tarfile.DIRTYPE
        ti.mode = 0o755
        self._header(ti)

    def add_bytes(self, name: str, data: bytes, mode: int | None = None) -> None:
        ti = tarfile.TarInfo(name)
        ti.size = len(data)
        ti.mode = self.mode if mode is None else mode
        self._header(ti)
        self._write(data)
        self._pad(len(data))

    def add_file(self, name: str, path: str, mode: int | None = None) -> None:
        """Add a regular file from disk, streamed; its size must not change while being copied."""
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            ti = tarfile.TarInfo(name)
            ti.size = size
            ti.mode = self.mode if mode is None else mode
            self._header(ti)
            left = size
            while left:
                b = f.read(min(CHUNK, left))
                if not b:
                    raise _files.LocalFileError(f"{path}: file shrank while being archived")
                self._write(b)
                left -= len(b)
        self._pad(size)

    def add_symlink(self, name: str, target: str) -> None:
        ti = tarfile.TarInfo(name)
        ti.type = tarfile.SYMTYPE
        ti.linkname = target
        ti.mode = 0o777
        self._header(ti)

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


def extract_safely(stream, dest: str, what: str, limit: int = 0) -> None:
    """Extract a tar stream (plain, gzip or other tarfile-readable compression) into ``dest``.

    Only directories and regular files; links, devices and unsafe names are refused with a
    one-line error. Data is streamed, never held whole; with ``limit``, no more than that
    many bytes are written (``_files.SpoolLimit``).
    """
    written = 0
    try:
        tf = tarfile.open(fileobj=stream, mode="r|*")
    except tarfile.TarError as e:
        raise InvalidDocument(f"{what}: not a tar archive: {e}") from None
    try:
        with tf:
            for member in tf:
                name = clean_name(member.name, what)
                if not name:
                    continue
                target = os.path.join(dest, name)
                if member.isdir():
                    os.makedirs(target, 0o755, exist_ok=True)
                    continue
                if not member.isreg():
                    kind = "link" if (member.issym() or member.islnk()) else "special file"
                    raise InvalidDocument(f"{what}: unsupported {kind} {member.name!r} in the archive "
                                          "(an OCI layout holds only files and directories)")
                os.makedirs(os.path.dirname(target), 0o755, exist_ok=True)
                src = tf.extractfile(member)
                fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
                with open(fd, "wb") as out:
                    while True:
                        b = src.read(CHUNK)
                        if not b:
                            break
                        written += len(b)
                        if limit and written > limit:
                            from ._files import SpoolLimit

                            raise SpoolLimit(f"{what}: the archive holds more than the spool limit of {limit} "
                                             "bytes; stopped there (raise it with --spool-limit SIZE or limit in "
                                             "the [spool] table of /etc/pallet/storage.conf, 0 for none)")
                        out.write(b)
    except tarfile.TarError as e:
        raise InvalidDocument(f"{what}: corrupt tar archive: {e}") from None
    except EOFError:
        raise InvalidDocument(f"{what}: truncated tar archive") from None


class Member:
    __slots__ = ("name", "offset", "size", "kind", "linkname")

    def __init__(self, name: str, offset: int, size: int, kind: str, linkname: str = ""):
        self.name = name
        self.offset = offset
        self.size = size
        self.kind = kind  # "file", "dir", "symlink", "hardlink", "other"
        self.linkname = linkname


def scan(path: str, what: str) -> dict[str, Member]:
    """Name -> Member of every entry of an uncompressed tar file (headers only, data skipped)."""
    members: dict[str, Member] = {}
    try:
        with tarfile.open(path, mode="r:") as tf:
            while True:
                ti = tf.next()
                if ti is None:
                    break
                name = posixpath.normpath("/" + ti.name).lstrip("/")
                if ti.isreg():
                    kind = "file"
                elif ti.isdir():
                    kind = "dir"
                elif ti.issym():
                    kind = "symlink"
                elif ti.islnk():
                    kind = "hardlink"
                else:
                    kind = "other"
                members[name] = Member(name, ti.offset_data, ti.size, kind, ti.linkname)
                tf.members.clear()  # keep memory flat for archives with many entries
    except tarfile.TarError as e:
        raise InvalidDocument(f"{what}: not a tar archive: {e}") from None
    except EOFError:
        raise InvalidDocument(f"{what}: truncated tar archive") from None
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
