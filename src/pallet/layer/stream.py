"""Streams for blobs: digest verification, counting, (de)compression — never buffering a layer.

Every class here is a readable file-like object with ``read(n)`` and ``close()`` that
pulls from another one, so they compose: ``Verifying(http_body) -> Decompress -> Compress``.
gzip goes through isal (igzip), zstd through zstandard.
"""

from __future__ import annotations

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

    def __init__(self, source, algo: str = "sha256", size_hint: int = -1):
        super().__init__(source)
        self.algo = algo
        self._h = _digest.hasher(algo, size_hint)
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
        super().__init__(source, _digest.algorithm(expected_digest), expected_size)
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
            raise DigestMismatch(f"{self.what} {self.expected}: more data than the announced {self.expected_size} bytes",
                                 digest=self.expected)
        if not b:
            if self.expected_size >= 0 and self.size != self.expected_size:
                raise DigestMismatch(f"{self.what} {self.expected}: got {self.size} bytes, expected {self.expected_size}",
                                     digest=self.expected)
            if self.digest != self.expected:
                raise DigestMismatch(f"{self.what}: digest mismatch: expected {self.expected}, got {self.digest}",
                                     digest=self.expected)
            self.verified = True
        return b


#: the most output one decompression step may produce: bounds memory against decompression bombs
OUT_MAX = 4 << 20


class _Buffered(Reader):
    """Serves reads from chunks produced by ``_fill()`` through a position, so a small read
    copies only what it returns (slicing off the rest each time would be quadratic)."""

    def __init__(self, source):
        super().__init__(source)
        self._buf = b""
        self._pos = 0
        self._done = False

    def _fill(self) -> bytes:
        raise NotImplementedError

    def _read(self, n: int) -> bytes:
        if self._pos >= len(self._buf):
            self._buf, self._pos = b"", 0
            while not self._buf and not self._done:
                self._buf = self._fill()
        if self._pos == 0 and n >= len(self._buf):
            b, self._buf = self._buf, b""
            return b
        b = self._buf[self._pos:self._pos + n]
        self._pos += len(b)
        return b


class Decompress(_Buffered):
    """Decompresses gzip (isal; concatenated members too), zstd, xz or bzip2 (``algo``) from ``source``.

    Output per step is bounded (``OUT_MAX``), so a small, highly compressed blob cannot make
    it allocate gigabytes. A truncated gzip stream is an error; for zstd the binding cannot
    tell, and the diffID check that follows every decompression catches it instead.
    """

    def __init__(self, source, algo: str):
        super().__init__(source)
        self.algo = algo
        self._pending = b""
        if algo == "gzip":
            from isal import isal_zlib

            self._zlib = isal_zlib
            self._d = isal_zlib.decompressobj(wbits=31)
        elif algo == "zstd":
            import zstandard

            self._z = zstandard.ZstdDecompressor().stream_reader(source, read_size=CHUNK, read_across_frames=True,
                                                                 closefd=False)
        elif algo in ("xz", "bzip2"):  # as containers/image reads them (archives, old layers)
            if algo == "xz":
                import lzma

                self._d, self._errors = lzma.LZMADecompressor(), (lzma.LZMAError, EOFError)
            else:
                import bz2

                self._d, self._errors = bz2.BZ2Decompressor(), (OSError, EOFError)
        else:
            raise Unsupported(f"cannot decompress {algo}")

    def _fill_other(self) -> bytes:
        d = self._d
        if d.eof:
            self._done = True
            return b""
        data = self._src.read(CHUNK) if d.needs_input else b""
        if d.needs_input and not data:
            self._done = True
            raise DigestMismatch(f"truncated {self.algo} stream")
        try:
            return d.decompress(data, OUT_MAX)  # bounded; the rest stays buffered in ``d``
        except self._errors as e:
            raise DigestMismatch(f"corrupt {self.algo} stream: {e}") from None

    def _fill(self) -> bytes:
        if self.algo in ("xz", "bzip2"):
            return self._fill_other()
        if self.algo == "zstd":
            import zstandard

            try:
                out = self._z.read(OUT_MAX)
            except zstandard.ZstdError as e:
                raise DigestMismatch(f"corrupt zstd stream: {e}") from None
            if not out:
                self._done = True
            return out
        d = self._d
        if d.unconsumed_tail:
            data = d.unconsumed_tail
        elif self._pending:
            data, self._pending = self._pending, b""
        else:
            data = self._src.read(CHUNK)
        if not data:
            self._done = True
            if not d.eof:
                raise DigestMismatch("truncated gzip stream")
            return b""
        try:
            out = d.decompress(data, OUT_MAX)
        except self._zlib.error as e:
            raise DigestMismatch(f"corrupt gzip stream: {e}") from None
        if d.eof and d.unused_data:
            rest = d.unused_data
            if rest.strip(b"\0"):  # another gzip member follows (pigz and some tools write several)
                self._pending = rest
                self._d = self._zlib.decompressobj(wbits=31)
        return out


def compressor(algo: str, level: int | None = None):
    """A compression object (``compress``/``flush``): gzip through isal, or zstd."""
    if algo == "gzip":
        from isal import isal_zlib

        # isal has levels 0-3; map zlib's 1-9 onto them (1-3 -> 1, 4-6 -> 2, 7-9 -> 3)
        lvl = 1 if level is None else (0 if level <= 0 else min(3, (level + 2) // 3))
        return isal_zlib.compressobj(lvl, isal_zlib.DEFLATED, 31)
    if algo == "zstd":
        import zstandard

        return zstandard.ZstdCompressor(level=3 if level is None else level).compressobj()
    raise Unsupported(f"cannot compress with {algo} (want gzip or zstd)")


class Compress(_Buffered):
    """Compresses ``source`` with gzip (isal) or zstd at ``level`` (None: the tool's default)."""

    def __init__(self, source, algo: str, level: int | None = None):
        super().__init__(source)
        self.algo = algo
        self._c = compressor(algo, level)

    def _fill(self) -> bytes:
        raw = self._src.read(CHUNK)
        if raw:
            return self._c.compress(raw)
        self._done = True
        return self._c.flush()


def open_decompressed(source, declared: str | None = None) -> Reader:
    """The uncompressed bytes of ``source``, sniffing the compression when ``declared`` is None."""
    peek = Peek(source)
    algo = declared or detect(peek.peek(8))
    if algo is None:
        return peek
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


class Tee(Reader):
    """Passes reads through and writes a copy of every byte to ``sink`` (a writer)."""

    def __init__(self, source, sink):
        super().__init__(source)
        self.sink = sink

    def _read(self, n: int) -> bytes:
        b = self._src.read(n)
        if b:
            self.sink.write(b)
        return b


class HashingWriter:
    """A write sink that counts, hashes (unless ``hash`` is False) and passes bytes on to ``out``
    (None: nowhere)."""

    def __init__(self, out=None, algo: str = "sha256", hash: bool = True):
        self._out = out
        self.algo = algo
        self._h = _digest.hasher(algo) if hash else None
        self.size = 0

    def write(self, b: bytes) -> None:
        if b:
            if self._out is not None:
                self._out.write(b)
            if self._h is not None:
                self._h.update(b)
            self.size += len(b)

    def close(self) -> None:
        pass

    @property
    def digest(self) -> str:
        return f"{self.algo}:{self._h.hexdigest()}"


class CompressingWriter:
    """A write sink that compresses (gzip through isal, zstd, or None: as is) into ``out``;
    ``close`` writes the end of the stream."""

    def __init__(self, out, algo: str | None, level: int | None = None):
        self._out = out
        self._c = compressor(algo, level) if algo is not None else None

    def write(self, b: bytes) -> None:
        self._out.write(self._c.compress(b) if self._c is not None else b)

    def close(self) -> None:
        if self._c is not None:
            self._out.write(self._c.flush())
            self._c = None


class DecompressingWriter:
    """A write sink that decompresses what it is given (gzip, zstd or plain, sniffed from the
    first bytes) into ``out``, with bounded output per step; ``close`` checks the stream ended."""

    def __init__(self, out):
        self._out = out
        self._head = b""
        self._algo: str | None = None
        self._d = None

    def write(self, b: bytes) -> None:
        if self._algo is None:
            self._head += b
            if len(self._head) < 8:
                return
            b, self._head = self._head, b""
            self._start(detect(b) or "none")
        self._feed(b)

    def _start(self, algo: str) -> None:
        self._algo = algo
        if algo == "gzip":
            from isal import isal_zlib

            self._zlib = isal_zlib
            self._d = isal_zlib.decompressobj(wbits=31)
        elif algo == "zstd":
            import zstandard

            self._d = zstandard.ZstdDecompressor().stream_writer(self._out, write_size=OUT_MAX, closefd=False)
        elif algo != "none":
            raise Unsupported(f"{algo}-compressed layers are not supported")

    def _feed(self, data: bytes) -> None:
        if self._algo == "none":
            self._out.write(data)
        elif self._algo == "zstd":
            self._d.write(data)
        else:
            while data:
                d = self._d
                try:
                    self._out.write(d.decompress(data, OUT_MAX))
                except self._zlib.error as e:
                    raise DigestMismatch(f"corrupt gzip stream: {e}") from None
                data = d.unconsumed_tail
                if d.eof and d.unused_data:
                    data = d.unused_data
                    if not data.strip(b"\0"):
                        return
                    self._d = self._zlib.decompressobj(wbits=31)

    def close(self) -> None:
        if self._algo is None:  # fewer than 8 bytes in all
            head, self._head = self._head, b""
            self._start(detect(head) or "none")
            self._feed(head)
        if self._algo == "gzip" and not self._d.eof:
            raise DigestMismatch("truncated gzip stream")
        if self._algo == "zstd":
            self._d.flush()


# -- diffIDs: the one place they are computed -------------------------------------------------

class DiffIDReader(Digesting):
    """The uncompressed bytes of a layer blob (compression sniffed unless ``compression`` is
    given; "none": a plain tar, never sniffed), digested as they are read: after the last read ``digest`` is the layer's diffID
    and ``size`` its uncompressed size; ``compression`` is what the blob was ("gzip", "zstd",
    None). The pull form, for whoever consumes the plain tar (the store applies it, the
    docker-archive source only counts it)."""

    def __init__(self, source, compression: str | None = None):
        plain = source if compression == "none" else open_decompressed(source, compression)
        super().__init__(plain)
        self.compression = getattr(plain, "algo", None)


class DiffIDWriter(DecompressingWriter):
    """The push form of :class:`DiffIDReader`: a sink fed a layer blob's bytes as they pass
    (``copy`` tees them to the destination); after ``close``, ``digest`` and ``size``."""

    def __init__(self):
        self._plain = HashingWriter()
        super().__init__(self._plain)

    @property
    def digest(self) -> str:
        return self._plain.digest

    @property
    def size(self) -> int:
        return self._plain.size


def diff_id_of(source, compression: str | None = None, chunk: int = CHUNK) -> DiffIDReader:
    """Read a layer blob to its end; the DiffIDReader holds its diffID, size and compression."""
    r = DiffIDReader(source, compression)
    while r.read(chunk):
        pass
    return r


def copy(src, dst, chunk: int = CHUNK) -> int:
    """Copy a readable stream to a writable one in chunks; returns the byte count."""
    total = 0
    while True:
        b = src.read(chunk)
        if not b:
            return total
        dst.write(b)
        total += len(b)


def _mib(n: int) -> str:
    return f"{n / (1 << 20):.1f} MiB" if n % (1 << 20) else f"{n >> 20} MiB"


class SpaceGuard(Reader):
    """Passes a layer's uncompressed stream through and stops it, with a StoreError naming
    ``what`` (the layer) and the limit, when it grows past ``limit`` bytes (0: no limit) or when
    the filesystem holding ``path`` has less than ``reserve`` bytes free (looked at before the
    first byte and after every ``every`` bytes): a decompression bomb fills neither the store
    nor the disk. The consumer writes at most a buffer behind what it read, so the check holds
    while writing."""

    def __init__(self, source, path: str, what: str, *, limit: int = 0, reserve: int = 0, every: int = 1 << 20):
        super().__init__(source)
        self.path = path
        self.what = what
        self.limit = limit
        self.reserve = reserve
        self.every = every
        self.count = 0
        self._next_check = 0

    def _read(self, n: int) -> bytes:
        if self.reserve and self.count >= self._next_check:
            self._check_space()
            self._next_check = self.count + self.every
        b = self._src.read(n)
        self.count += len(b)
        if self.limit and self.count > self.limit:
            from ..errors import StoreError

            raise StoreError(f"{self.what}: it expands to more than the layer_size_limit of {_mib(self.limit)} "
                             "(storage.conf [storage.options.pallet]): refused")
        return b

    def _check_space(self) -> None:
        import os

        st = os.statvfs(self.path)
        free = st.f_bavail * st.f_frsize
        if free < self.reserve:
            from ..errors import StoreError

            raise StoreError(f"{self.what}: only {_mib(free)} left free on the store's filesystem ({self.path}) "
                             f"after {_mib(self.count)} of it, less than the free_space_reserve of "
                             f"{_mib(self.reserve)} (storage.conf [storage.options.pallet]): refused")
