"""SPDY/3.1 framing and sessions: what the kubelet's clients (client-go's remotecommand and
portforward, through moby/spdystream) speak to a CRI streaming server after an HTTP upgrade.

The facts used (the SPDY/3.1 draft): every frame has an 8-byte header. A control frame is
``1 | version(15) | type(16) | flags(8) | length(24)``, a data frame
``0 | stream-id(31) | flags(8) | length(24)``; flag 0x01 is FIN (that side's half of the stream
is done), 0x02 on SYN_STREAM is UNIDIRECTIONAL. SYN_STREAM (1) carries ``stream-id(31)
assoc-id(31) priority(3) unused(5) slot(8)`` and a header block, SYN_REPLY (2) ``stream-id(31)``
and a header block, RST_STREAM (3) ``stream-id status``, SETTINGS (4) ``count`` then
``flags(8) id(24) value(32)`` entries, PING (6) ``id``, GOAWAY (7) ``last-good-id status``,
HEADERS (8) ``stream-id`` and a header block, WINDOW_UPDATE (9) ``stream-id delta``. A header
block is ``count(32)`` then ``len(32) name len(32) value`` pairs (names lower case, several values
NUL-separated), zlib-compressed with the draft's dictionary, one compression context per
direction for the whole session, each block ended by a sync flush. The client opens odd stream
IDs, the server even ones.

spdystream neither sends WINDOW_UPDATE nor waits for one, so flow control is not applied here
either (WINDOW_UPDATE and SETTINGS are read and ignored); instead a stream holds at most
``MAX_BUFFERED`` bytes its reader has not taken, and the session stops reading the socket until
it does (TCP's own window then holds the peer back).

A ``Session`` is symmetric: the streaming server accepts the streams a client opens
(``on_stream``), tests' clients open them (``open``).
"""

from __future__ import annotations

import hashlib
import socket
import struct
import threading
import zlib

VERSION = 3
SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS, WINDOW_UPDATE = 1, 2, 3, 4, 6, 7, 8, 9
FLAG_FIN, FLAG_UNIDIRECTIONAL = 0x01, 0x02
RST_PROTOCOL_ERROR, RST_INVALID_STREAM, RST_CANCEL = 1, 2, 5
#: data written in frames of at most this much (the peer reads whole frames into memory)
CHUNK = 32 << 10
#: a header block may not inflate past this (hostile peers)
MAX_HEADERS = 256 << 10
#: what one stream may hold unread before the session stops reading (a peer without flow control)
MAX_BUFFERED = 4 << 20

_WORDS = ("options head post put delete trace accept accept-charset accept-encoding accept-language "
          "accept-ranges age allow authorization cache-control connection content-base content-encoding "
          "content-language content-length content-location content-md5 content-range content-type date etag "
          "expect expires from host if-match if-modified-since if-none-match if-range if-unmodified-since "
          "last-modified location max-forwards pragma proxy-authenticate proxy-authorization range referer "
          "retry-after server te trailer transfer-encoding upgrade user-agent vary via warning www-authenticate "
          "method get status |200 OK| version HTTP/1.1 url public set-cookie keep-alive origin")
_TAIL = ("100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505"
         "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request401 Unauthorized"
         "403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented503 Service Unavailable"
         "Jan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMT"
         "chunked,text/html,image/png,image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,"
         "text/javascript,publicprivatemax-age=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.")


def _dictionary() -> bytes:
    words = []
    for part in _WORDS.split("|"):
        words += [part] if part.startswith("200") else part.split()
    return b"".join(struct.pack(">I", len(w)) + w.encode() for w in words) + _TAIL.encode()


#: the SPDY/3 header compression dictionary (1423 bytes)
DICTIONARY = _dictionary()
DICTIONARY_SHA256 = "51d27341373f923f3cd88e1eb7162aeaa3723d7585ff2399201dc06498407f02"


class ProtocolError(Exception):
    pass


def recv_exact(sock: socket.socket, n: int) -> bytes:
    """``n`` bytes from ``sock`` (read in pieces of at most 64 KiB); EOFError at its end."""
    buf = bytearray()
    while len(buf) < n:
        b = sock.recv(min(n - len(buf), 1 << 16))
        if not b:
            raise EOFError
        buf += b
    return bytes(buf)


def encode_headers(headers: dict) -> bytes:
    """The uncompressed name/value block: names lower-cased, a list value NUL-joined."""
    out = [struct.pack(">I", len(headers))]
    for k, v in headers.items():
        name = str(k).lower().encode()
        value = b"\0".join(x.encode() for x in v) if isinstance(v, (list, tuple)) else str(v).encode()
        out += [struct.pack(">I", len(name)), name, struct.pack(">I", len(value)), value]
    return b"".join(out)


def decode_headers(block: bytes) -> dict:
    """name -> value (several values NUL-joined stay joined); a malformed block is a ProtocolError."""
    try:
        (n,), i, out = struct.unpack_from(">I", block), 4, {}
        for _ in range(n):
            (ln,) = struct.unpack_from(">I", block, i)
            name, i = block[i + 4:i + 4 + ln], i + 4 + ln
            (lv,) = struct.unpack_from(">I", block, i)
            value, i = block[i + 4:i + 4 + lv], i + 4 + lv
            if len(name) != ln or len(value) != lv:
                raise ProtocolError("truncated header block")
            out[name.decode("utf-8", "replace").lower()] = value.decode("utf-8", "replace")
        return out
    except struct.error:
        raise ProtocolError("truncated header block") from None


def control_frame(ftype: int, flags: int, payload: bytes) -> bytes:
    return struct.pack(">HHI", 0x8000 | VERSION, ftype, (flags << 24) | len(payload)) + payload


def data_frame(stream_id: int, flags: int, data: bytes) -> bytes:
    return struct.pack(">II", stream_id & 0x7FFFFFFF, (flags << 24) | len(data)) + data


class Stream:
    """One SPDY stream: ``read`` what the peer sends (b"" once it sent FIN or the session ended),
    ``write``, ``close`` our half (FIN), ``reset``."""

    def __init__(self, session: "Session", sid: int, headers: dict):
        self.session, self.id, self.headers = session, sid, headers
        self._cond = threading.Condition()
        self._chunks: list[bytes] = []
        self._buffered = 0
        self._eof = False
        self.closed = False  # our half
        self._replied = threading.Event()

    # fed by the session's reader
    def _feed(self, data: bytes, fin: bool) -> None:
        with self._cond:
            if data:
                # backpressure: wait for the reader (or for the session to be closed)
                self._cond.wait_for(lambda: self._buffered < MAX_BUFFERED or self.session.closing)
                self._chunks.append(data)
                self._buffered += len(data)
            if fin:
                self._eof = True
            self._cond.notify_all()

    def read(self, timeout: float | None = None) -> bytes:
        with self._cond:
            if not self._cond.wait_for(lambda: self._chunks or self._eof, timeout):
                raise TimeoutError(f"stream {self.id}: nothing read in {timeout}s")
            if self._chunks:
                b = self._chunks.pop(0)
                self._buffered -= len(b)
                self._cond.notify_all()
                return b
            return b""

    def read_all(self, timeout: float | None = None) -> bytes:
        out = []
        while True:
            b = self.read(timeout)
            if not b:
                return b"".join(out)
            out.append(b)

    def write(self, data: bytes) -> None:
        if self.closed:
            raise BrokenPipeError(f"stream {self.id} is closed")
        view = memoryview(data)
        while view:
            self.session._send(data_frame(self.id, 0, bytes(view[:CHUNK])))
            view = view[CHUNK:]

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            try:
                self.session._send(data_frame(self.id, FLAG_FIN, b""))
            except OSError:
                pass

    def reset(self, status: int = RST_CANCEL) -> None:
        self.closed = True
        try:
            self.session._send(control_frame(RST_STREAM, 0, struct.pack(">II", self.id, status)))
        except OSError:
            pass
        self._feed(b"", True)


class Session:
    """A SPDY/3.1 session on a connected socket. ``start()`` runs the reader thread; the server
    side's ``on_stream(stream)`` is called (on that thread: keep it short) for each stream the
    peer opens, before its SYN_REPLY goes out."""

    def __init__(self, sock: socket.socket, *, server: bool, on_stream=None):
        self.sock, self.server, self.on_stream = sock, server, on_stream
        self._send_lock = threading.Lock()
        self._lock = threading.Lock()
        self._deflate = zlib.compressobj(zdict=DICTIONARY)
        self._inflate = zlib.decompressobj(zdict=DICTIONARY)
        self.streams: dict[int, Stream] = {}
        self._next_id = 2 if server else 1
        self.done = threading.Event()
        self.closing = False
        self._thread = None

    def start(self) -> "Session":
        self._thread = threading.Thread(target=self._reader, name="spdy-reader", daemon=True)
        self._thread.start()
        return self

    # -- sending --------------------------------------------------------------------------------
    def _send(self, frame: bytes) -> None:
        with self._send_lock:
            self.sock.sendall(frame)

    def _compress(self, headers: dict) -> bytes:
        return self._deflate.compress(encode_headers(headers)) + self._deflate.flush(zlib.Z_SYNC_FLUSH)

    def open(self, headers: dict, fin: bool = False, timeout: float = 30) -> Stream:
        """A new stream (the client side): SYN_STREAM, then wait for its SYN_REPLY."""
        with self._send_lock:
            with self._lock:
                sid = self._next_id
                self._next_id += 2
                st = self.streams[sid] = Stream(self, sid, headers)
            block = self._deflate.compress(encode_headers(headers)) + self._deflate.flush(zlib.Z_SYNC_FLUSH)
            self.sock.sendall(control_frame(SYN_STREAM, FLAG_FIN if fin else 0,
                                            struct.pack(">IIH", sid, 0, 0) + block))
        if fin:
            st.closed = True
        if not st._replied.wait(timeout) or self.done.is_set() and not st._replied.is_set():
            raise ProtocolError(f"stream {sid}: no reply")
        return st

    def ping(self, pid: int = 1) -> None:
        self._send(control_frame(PING, 0, struct.pack(">I", pid)))

    def close(self) -> None:
        """GOAWAY, then the socket is shut for writing and closed once the peer closed its end
        (bounded), so nothing it still sends resets what we sent."""
        self.closing = True
        with self._lock:
            streams = list(self.streams.values())
        for st in streams:  # a reader waiting for room in a stream nobody reads goes on
            with st._cond:
                st._cond.notify_all()
        try:
            with self._lock:
                last = max((i for i in self.streams if i % 2 != self._next_id % 2), default=0)
            self._send(control_frame(GOAWAY, 0, struct.pack(">II", last, 0)))
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(5)
        try:
            self.sock.close()
        except OSError:
            pass

    # -- receiving ------------------------------------------------------------------------------
    def _recv_exact(self, n: int) -> bytes:
        return recv_exact(self.sock, n)

    def _headers(self, block: bytes) -> dict:
        raw = self._inflate.decompress(block, MAX_HEADERS)
        if self._inflate.unconsumed_tail:
            raise ProtocolError("header block too large")
        return decode_headers(raw)

    def _reader(self) -> None:
        try:
            while True:
                head = self._recv_exact(8)
                a, b = struct.unpack(">II", head)
                flags, length = b >> 24, b & 0xFFFFFF
                payload = self._recv_exact(length) if length else b""
                if a & 0x80000000:
                    version, ftype = (a >> 16) & 0x7FFF, a & 0xFFFF
                    if version != VERSION:
                        raise ProtocolError(f"SPDY version {version}")
                    self._control(ftype, flags, payload)
                else:
                    st = self.streams.get(a & 0x7FFFFFFF)
                    if st is not None:
                        st._feed(payload, bool(flags & FLAG_FIN))
        except (EOFError, OSError, ProtocolError, zlib.error, struct.error):
            pass
        finally:
            self.done.set()
            with self._lock:
                streams = list(self.streams.values())
            for st in streams:
                st._feed(b"", True)
                st._replied.set()

    def _control(self, ftype: int, flags: int, p: bytes):
        if ftype == SYN_STREAM:
            sid, _assoc, _prio = struct.unpack_from(">IIH", p)
            sid &= 0x7FFFFFFF
            headers = self._headers(p[10:])
            if sid % 2 == self._next_id % 2 or sid in self.streams:
                self._send(control_frame(RST_STREAM, 0, struct.pack(">II", sid, RST_PROTOCOL_ERROR)))
                return None
            st = Stream(self, sid, headers)
            if flags & FLAG_FIN:
                st._eof = True
            with self._lock:
                self.streams[sid] = st
            if self.on_stream is not None:
                self.on_stream(st)
            with self._send_lock:
                block = self._compress({})
                self.sock.sendall(control_frame(SYN_REPLY, 0, struct.pack(">I", sid) + block))
        elif ftype == SYN_REPLY:
            (sid,) = struct.unpack_from(">I", p)
            self._headers(p[4:])  # keeps the shared inflate context in step
            st = self.streams.get(sid & 0x7FFFFFFF)
            if st is not None:
                if flags & FLAG_FIN:
                    st._feed(b"", True)
                st._replied.set()
        elif ftype == HEADERS:
            (sid,) = struct.unpack_from(">I", p)
            self._headers(p[4:])
        elif ftype == RST_STREAM:
            (sid, _status) = struct.unpack_from(">II", p)
            st = self.streams.get(sid & 0x7FFFFFFF)
            if st is not None:
                st.closed = True
                st._feed(b"", True)
                st._replied.set()
        elif ftype == PING:
            (pid,) = struct.unpack_from(">I", p)
            if pid % 2 != self._next_id % 2:  # the peer's ping: echoed
                self._send(control_frame(PING, 0, p[:4]))
        # GOAWAY: no new streams; the open ones run on until the peer closes the connection
        # SETTINGS, WINDOW_UPDATE and unknown types: ignored (no flow control, see above)
        return None


def dictionary_ok() -> bool:
    return hashlib.sha256(DICTIONARY).hexdigest() == DICTIONARY_SHA256
