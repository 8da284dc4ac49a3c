"""A staging area of content-addressed blobs, shared by the local destinations.

A destination writes every blob into a private staging directory on the same file system
as its final place: each blob goes to a temp file, hashed while written, fsynced, checked
against the digest and size it was announced with, then renamed to its digest name
("no error means the content is there": puts are idempotent and thread-safe). ``commit``
moves the staged blobs into place; ``discard`` removes everything, so a copy that fails or
is abandoned leaves the destination exactly as it was.
"""

from __future__ import annotations

import hashlib
import os
import threading

from ..errors import BlobNotFound, DigestMismatch
from ..oci import digest as _digest
from . import _files

CHUNK = 1 << 20


def staged_name(digest: str) -> str:
    return digest.replace(":", "-", 1)


class Staging:
    """Blobs written but not yet published, in a hidden temp directory under ``parent``."""

    def __init__(self, parent: str, what: str):
        import tempfile

        self.what = what
        self.dir = tempfile.mkdtemp(prefix=".pallet-staging-", dir=parent)
        self._lock = threading.Lock()
        self._sizes: dict[str, int] = {}

    def path(self, digest: str) -> str:
        return os.path.join(self.dir, staged_name(digest))

    def size(self, digest: str) -> int | None:
        """The size of a staged blob, None if it is not staged."""
        with self._lock:
            return self._sizes.get(digest)

    def digests(self) -> dict[str, int]:
        with self._lock:
            return dict(self._sizes)

    def put(self, stream, expected_digest: str | None = None, expected_size: int = -1) -> tuple[str, int]:
        """Write ``stream`` to EOF as a staged blob; return (digest, size).

        Raises DigestMismatch (and keeps nothing) when the data is not what was announced;
        any exception from ``stream`` (the copy engine's verifying reader) removes the temp data.
        """
        algo = _digest.algorithm(expected_digest) if expected_digest else "sha256"
        h = hashlib.new(algo)
        size = 0
        fd = -1
        tmp = os.path.join(self.dir, f".blob-{os.urandom(8).hex()}.tmp")
        try:
            with _files.translate_errors(f"writing {self.what}"):
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
                f = open(fd, "wb", buffering=0, closefd=True)
                fd = -1
                with f:
                    while True:
                        b = stream.read(CHUNK)
                        if not b:
                            break
                        h.update(b)
                        size += len(b)
                        view = memoryview(b)
                        while view:
                            n = f.write(view)
                            view = view[n:]
                    os.fsync(f.fileno())
            digest = f"{algo}:{h.hexdigest()}"
            if expected_digest and digest != expected_digest:
                raise DigestMismatch(f"{self.what}: blob digest mismatch: expected {expected_digest}, got {digest}")
            if expected_size >= 0 and size != expected_size:
                raise DigestMismatch(f"{self.what}: blob {digest}: got {size} bytes, expected {expected_size}")
            with _files.translate_errors(f"writing {self.what}"):
                os.rename(tmp, self.path(digest))
        except BaseException:
            if fd >= 0:
                os.close(fd)
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
        with self._lock:
            self._sizes[digest] = size
        return digest, size

    def put_bytes(self, data: bytes) -> tuple[str, int]:
        import io

        return self.put(io.BytesIO(data))

    def adopt(self, digest: str, existing: str) -> int | None:
        """Stage an existing file (already verified when it was written) by hard-linking it; its size or None."""
        target = self.path(digest)
        try:
            if not os.path.exists(target):
                os.link(existing, target)
            size = os.stat(target).st_size
        except OSError:
            return None
        with self._lock:
            self._sizes[digest] = size
        return size

    def publish(self, digest: str, final: str) -> None:
        """Move a staged blob to ``final`` (kept as is when ``final`` already holds it)."""
        src = self.path(digest)
        if os.path.exists(final):
            os.unlink(src)
        else:
            os.rename(src, final)

    def discard(self) -> None:
        _files.rmtree_quiet(self.dir)
        with self._lock:
            self._sizes.clear()


def open_blob(path: str, digest: str, what: str):
    """Open a stored blob for reading (a regular file: ``_fs.open_regular``); BlobNotFound when
    it is missing."""
    from .._fs import open_regular

    try:
        return open_regular(path)
    except FileNotFoundError:
        raise BlobNotFound(f"{what}: blob {digest} not found") from None
    except OSError as e:
        raise _files.os_error(e, f"reading {what}") from None


class Section:
    """A readable window ``[offset, offset+size)`` of a file, with its own file handle (thread-safe use)."""

    def __init__(self, path: str, offset: int, size: int):
        self._f = open(path, "rb")
        self._f.seek(offset)
        self._left = size
        self.closed = False

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        if self._left <= 0:
            return b""
        if n is None or n < 0 or n > self._left:
            n = self._left
        b = self._f.read(n)
        if not b:
            from ..errors import PalletError

            raise PalletError("archive member truncated: the file ended early")
        self._left -= len(b)
        return b

    def readinto(self, buf) -> int:
        data = self.read(len(buf))
        buf[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
