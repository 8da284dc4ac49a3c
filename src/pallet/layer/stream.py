"""Streams for blobs: digest verification, counting, (de)compression — never buffering a layer.

Every class here is a readable file-like object with ``read(n)`` and ``close()`` that
pulls from another one, so they compose: ``Verifying(http_body) -> Decompress -> Compress``.
gzip goes through isal (igzip), zstd through zstandard.
"""

from __future__ import annotations

import hashlib

from ..errors import DigestMismatch, Unsupported
from ..oci import digest as _digest

CHUNK = 1 << 20

_MAGIC = {
    b"\x1f\x8b": "gzip",
    b"\x28\xb5\x2f\xfd": "zstd",
    b"BZh": "bzip2",
    b"\xfd7zXZ\x00": "xz",
}


def detect(prefix: bytes) -> str | None:
    """The compression a stream starts with: "gzip", "zstd", "bzip2", "xz" or None."""
    for magic, name in _MAGIC.items():
        if prefix.startswith(magic):
            return name
    return None


class Reader:
    """Base for pull streams: subclasses implement ``_read(n)`` returning b"" at EOF."""

    def __init__(self, source):
        self._src = source
        self.closed = False

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            parts = []
            while True:
                b = self._read(CHUNK)
                if not b:
                    return b"".join(parts)
                parts.append(b)
        return self._read(n)

    def readinto(self, buf) -> int:
        data = self.read(len(buf))
        buf[: len(data)] = data
        return len(data)

    def _read(self, n: int) -> bytes:
        return self._src.read(n)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            close = getattr(self._src, "close", None)
            if close:
                close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Digesting(Reader):
    """Counts bytes and computes a digest of everything read through it."""

    def __init__(self, source, algo: str = "sha256"):
        super().__init__(source)
        self.algo = algo
        self._h = hashlib.new(algo)
        self.size = 0

    def _read(self, n: int) -> bytes:
        b = self._src.read(n)
        if b:
            self._h.update(b)
            self.size += len(b)
        return b

    @property
    def digest(self) -> str:
        return f"{self.algo}:{self._h.hexdigest()}"


class Verifying(Digesting):
    """Passes bytes through and raises DigestMismatch at EOF (or on overrun) if they are not
    what ``expected_digest`` and ``expected_size`` (-1: unknown) promised.

    A consumer that reads to EOF before making data visible therefore never publishes
    corrupt data: the read that would signal EOF raises instead.
    """

    def __init__(self, source, expected_digest: str, expected_size: int = -1, what: str = "blob"):
        super().__init__(source, _digest.algorithm(expected_digest))
        self.expected = expected_digest
        self.expected_size = expected_size
        self.what = what
        self.verified = False

    def _read(self, n: int) -> bytes:
        if self.expected_size >= 0:
            # never ask for more than the announced size + 1: an overrun is an error, not a hang
            n = max(1, min(n, self.expected_size - self.size + 1))
        b = super()._read(n)
        if self.expected_size >= 0 and self.size > self.expected_size:
            raise DigestMismatch(f"{self.what} {self.expected}: more data than the announced {self.expected_size} bytes")
        if not b:
            if self.expected_size >= 0 and self.size != self.expected_size:
                raise DigestMismatch(f"{self.what} {self.expected}: got {self.size} bytes, expected {self.expected_size}")
            if self.digest != self.expected:
                raise DigestMismatch(f"{self.what}: digest mismatch: expected {self.expected}, got {self.digest}")
            self.verified = True
        return b


class Decompress(Reader):
    """Decompresses gzip or zstd (``algo``) from ``source``."""

    def __init__(self, source, algo: str):
        super().__init__(source)
        self.algo = algo
        if algo == "gzip":
            from isal import isal_zlib

            self._d = isal_zlib.decompressobj(wbits=31)
            self._gz = True
        elif algo == "zstd":
            import zstandard

            self._d = zstandard.ZstdDecompressor().decompressobj()
            self._gz = False
        else:
            raise Unsupported(f"cannot decompress {algo}")
        self._buf = b""
        self._eof = False

    def _read(self, n: int) -> bytes:
        while not self._buf and not self._eof:
            raw = self._src.read(CHUNK)
            if not raw:
                self._eof = True
                if self._gz:
                    self._buf = self._d.flush()
                    if not self._d.eof:
                        raise DigestMismatch("truncated gzip stream")
                break
            if self._gz:
                out = self._d.decompress(raw)
                # concatenated gzip members (pigz, some tools) decode as one stream
                while self._d.eof and self._d.unused_data:
                    from isal import isal_zlib

                    rest = self._d.unused_data
                    self._d = isal_zlib.decompressobj(wbits=31)
                    out += self._d.decompress(rest)
            else:
                out = self._d.decompress(raw)
            self._buf = out
        b, self._buf = self._buf[:n], self._buf[n:]
        return b


class Compress(Reader):
    """Compresses ``source`` with gzip (isal) or zstd at ``level`` (None: the tool's default)."""

    def __init__(self, source, algo: str, level: int | None = None):
        super().__init__(source)
        self.algo = algo
        if algo == "gzip":
            from isal import isal_zlib

            # isal has levels 0-3; map zlib's 1-9 onto them (1-3 -> 1, 4-6 -> 2, 7-9 -> 3)
            lvl = 1 if level is None else (0 if level <= 0 else min(3, (level + 2) // 3))
            self._c = isal_zlib.compressobj(lvl, isal_zlib.DEFLATED, 31)
        elif algo == "zstd":
            import zstandard

            self._c = zstandard.ZstdCompressor(level=3 if level is None else level).compressobj()
        else:
            raise Unsupported(f"cannot compress with {algo} (want gzip or zstd)")
        self._buf = b""
        self._eof = False

    def _read(self, n: int) -> bytes:
        while not self._buf and not self._eof:
            raw = self._src.read(CHUNK)
            if raw:
                self._buf = self._c.compress(raw)
            else:
                self._eof = True
                self._buf = self._c.flush()
        b, self._buf = self._buf[:n], self._buf[n:]
        return b


def open_decompressed(source, declared: str | None = None) -> Reader:
    """The uncompressed bytes of ``source``, sniffing the compression when ``declared`` is None."""
    peek = Peek(source)
    algo = declared or detect(peek.peek(8))
    if algo is None:
        return peek
    if algo in ("bzip2", "xz"):
        raise Unsupported(f"{algo}-compressed layers are not supported")
    return Decompress(peek, algo)


class Peek(Reader):
    """Lets a caller look at the first bytes of a stream without consuming them."""

    def __init__(self, source):
        super().__init__(source)
        self._head = b""

    def peek(self, n: int) -> bytes:
        while len(self._head) < n:
            b = self._src.read(n - len(self._head))
            if not b:
                break
            self._head += b
        return self._head[:n]

    def _read(self, n: int) -> bytes:
        if self._head:
            b, self._head = self._head[:n], self._head[n:]
            return b
        return self._src.read(n)


def copy(src, dst, chunk: int = CHUNK) -> int:
    """Copy a readable stream to a writable one in chunks; returns the byte count."""
    total = 0
    while True:
        b = src.read(chunk)
        if not b:
            return total
        dst.write(b)
        total += len(b)
