"""WebSocket (RFC 6455) framing and the Kubernetes channel protocols over it: what client-go's
remotecommand speaks since 1.29 (``v5.channel.k8s.io``, kubectl's default from 1.30) and the
kubelet's streaming library has long accepted (``v4.channel.k8s.io``, ``channel.k8s.io`` and
their ``base64.`` variants; port forward with channel pairs).

The facts used (RFC 6455): after an HTTP/1.1 ``GET`` with ``Upgrade: websocket``,
``Sec-WebSocket-Version: 13`` and a ``Sec-WebSocket-Key``, the server answers 101 with
``Sec-WebSocket-Accept`` = base64(SHA-1(key + the RFC's GUID)) and at most one of the offered
``Sec-WebSocket-Protocol`` values. A frame is ``FIN(1) RSV(3) opcode(4) MASK(1) len(7)``, then a
16- or 64-bit length when ``len`` is 126 or 127, a 4-byte masking key when MASK is set, and the
payload (XORed with the key). Opcodes: 0 continuation, 1 text, 2 binary, 8 close (a 2-byte code
and a reason), 9 ping, 10 pong; control frames are at most 125 bytes and never fragmented; a
client's frames are always masked, a server's never.

The channel protocols (the kubelet's ``wsstream``): every binary message starts with a byte, the
channel (exec and attach: 0 stdin, 1 stdout, 2 stderr, 3 error, 4 resize); the ``base64.``
variants send text messages whose first character is ``'0' + channel`` and the rest the base64
of the data. ``v5.channel.k8s.io`` adds the CLOSE signal: a binary message ``[255, channel]``
from the client ends that channel's data (stdin's end of file), which older versions could not
say. The server sends an empty message on stdout (or stderr, or error) once the connection is
up, as the kubelet does.

Hostile peers: a frame that breaks the rules (an unmasked client frame, a reserved bit or opcode,
a control frame over 125 bytes or fragmented, a message over ``MAX_MESSAGE``, a text message
where binary ones are spoken, bad base64) closes the connection with the RFC's status code and
one log line naming the peer and the reason; nothing else of the server is affected. Each
channel holds at most ``spdy.MAX_BUFFERED`` bytes its reader has not taken; the connection's
reader then waits (TCP's window holds the peer back), as with SPDY.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import os
import socket
import struct
import threading

from . import spdy

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10
CLOSE_NORMAL, CLOSE_PROTOCOL, CLOSE_UNSUPPORTED, CLOSE_INVALID, CLOSE_TOO_BIG = 1000, 1002, 1003, 1007, 1009
#: the largest message (all its fragments) a peer may send: client-go sends at most 32 KiB
MAX_MESSAGE = 1 << 20
#: the CLOSE signal's first byte (v5.channel.k8s.io)
STREAM_CLOSE = 255
#: data written in messages of at most this much
CHUNK = 32 << 10
#: the channels a client writes to (what it sends on the others is dropped)
CLIENT_WRITES = ("stdin", "resize", "data")

log = logging.getLogger("pallet.cri")


class ProtocolError(Exception):
    def __init__(self, code: int, text: str):
        super().__init__(text)
        self.code = code


def accept_key(key: str) -> str:
    return base64.b64encode(hashlib.sha1((key.strip() + GUID).encode()).digest()).decode()


def frame(opcode: int, payload: bytes, mask: bytes | None = None, fin: bool = True) -> bytes:
    """One frame; ``mask`` (4 bytes) for a client's frames."""
    n = len(payload)
    head = bytes([(0x80 if fin else 0) | opcode])
    m = 0x80 if mask is not None else 0
    if n < 126:
        head += bytes([m | n])
    elif n < 1 << 16:
        head += bytes([m | 126]) + struct.pack(">H", n)
    else:
        head += bytes([m | 127]) + struct.pack(">Q", n)
    if mask is None:
        return head + payload
    return head + mask + _xor(payload, mask)


def _xor(data: bytes, mask: bytes) -> bytes:
    if not data:
        return b""
    n = len(data)
    key = int.from_bytes((mask * (n // 4 + 1))[:n], "little")
    return (int.from_bytes(data, "little") ^ key).to_bytes(n, "little")


class Channel(spdy.Stream):
    """One channel of a connection: ``read`` what the peer sends on it (b"" after its CLOSE
    signal or the connection's end), ``write``, ``close`` our half (a v5 client sends the CLOSE
    signal; the server's channels end with the connection, as the kubelet's do)."""

    def write(self, data: bytes) -> None:
        if self.closed:
            raise BrokenPipeError(f"channel {self.id} is closed")
        view = memoryview(data)
        while True:
            self.session.send_data(self.id, bytes(view[:CHUNK]))
            view = view[CHUNK:]
            if not view:
                return

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            if self.session.close_signal and not self.session.server:
                try:
                    self.session.send_message(OP_BINARY, bytes([STREAM_CLOSE, self.id]))
                except OSError:
                    pass

    def reset(self, status: int = 0) -> None:
        self.close()
        self._feed(b"", True)


class Session:
    """A WebSocket connection carrying channels. ``channels`` maps a channel number to its
    headers (``streamtype`` and, for port forward, ``port``); ``base64`` and ``close_signal``
    follow the negotiated protocol. ``start()`` runs the reader thread."""

    def __init__(self, sock: socket.socket, *, server: bool, channels: dict, base64: bool = False,
                 close_signal: bool = False, peer: str = ""):
        self.sock, self.server, self.base64, self.close_signal = sock, server, base64, close_signal
        self.peer = peer
        self.streams = {n: Channel(self, n, headers) for n, headers in channels.items()}
        self._send_lock = threading.Lock()
        self.done = threading.Event()
        self.closing = False
        self._close_sent = False
        self.error: str | None = None
        self._thread = None

    def start(self) -> "Session":
        self._thread = threading.Thread(target=self._reader, name="ws-reader", daemon=True)
        self._thread.start()
        return self

    # -- sending --------------------------------------------------------------------------------
    def send_message(self, opcode: int, payload: bytes) -> None:
        mask = None if self.server else os.urandom(4)
        with self._send_lock:
            if self._close_sent:
                raise BrokenPipeError("the websocket connection is closing")
            if opcode == OP_CLOSE:
                self._close_sent = True
            self.sock.sendall(frame(opcode, payload, mask))

    def send_data(self, channel: int, data: bytes) -> None:
        if self.base64:
            self.send_message(OP_TEXT, bytes([ord("0") + channel]) + base64.b64encode(data))
        else:
            self.send_message(OP_BINARY, bytes([channel]) + data)

    def ping(self, payload: bytes = b"") -> None:
        self.send_message(OP_PING, payload)

    def close(self, code: int = CLOSE_NORMAL, reason: str = "") -> None:
        """A close frame, then the socket is shut for writing and closed once the peer answered
        (bounded)."""
        self.closing = True
        for st in list(self.streams.values()):  # a reader waiting for room goes on
            with st._cond:
                st._cond.notify_all()
        try:
            self.send_message(OP_CLOSE, struct.pack(">H", code) + reason.encode()[:120])
        except OSError:
            pass
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(5)
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            self.sock.close()
        except OSError:
            pass

    # -- receiving ------------------------------------------------------------------------------
    def _recv_exact(self, n: int) -> bytes:
        return spdy.recv_exact(self.sock, n)

    def _frame(self):
        """(fin, opcode, payload) of the next frame, checked."""
        b0, b1 = self._recv_exact(2)
        fin, rsv, opcode = bool(b0 & 0x80), b0 & 0x70, b0 & 0x0F
        masked, n = bool(b1 & 0x80), b1 & 0x7F
        if rsv:
            raise ProtocolError(CLOSE_PROTOCOL, "a frame with reserved bits set (no extension was negotiated)")
        if opcode not in (OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG):
            raise ProtocolError(CLOSE_PROTOCOL, f"a frame with the reserved opcode {opcode}")
        if self.server and not masked:
            raise ProtocolError(CLOSE_PROTOCOL, "an unmasked frame from the client")
        if not self.server and masked:
            raise ProtocolError(CLOSE_PROTOCOL, "a masked frame from the server")
        if opcode >= OP_CLOSE and (n > 125 or not fin):
            raise ProtocolError(CLOSE_PROTOCOL, "a control frame over 125 bytes or fragmented")
        if n == 126:
            (n,) = struct.unpack(">H", self._recv_exact(2))
        elif n == 127:
            (n,) = struct.unpack(">Q", self._recv_exact(8))
        if n > MAX_MESSAGE:
            raise ProtocolError(CLOSE_TOO_BIG, f"a frame of {n} bytes (at most {MAX_MESSAGE})")
        mask = self._recv_exact(4) if masked else None
        payload = self._recv_exact(n) if n else b""
        return fin, opcode, _xor(payload, mask) if mask else payload

    def _reader(self) -> None:
        parts: list[bytes] = []
        size, kind = 0, None
        try:
            while True:
                fin, opcode, payload = self._frame()
                if opcode == OP_PING:
                    try:
                        self.send_message(OP_PONG, payload)
                    except OSError:
                        pass
                    continue
                if opcode == OP_PONG:
                    continue
                if opcode == OP_CLOSE:
                    if not self._close_sent:  # the peer's close: echoed with its code
                        try:
                            self.send_message(OP_CLOSE, payload[:2])
                        except OSError:
                            pass
                    return
                if opcode == OP_CONT:
                    if kind is None:
                        raise ProtocolError(CLOSE_PROTOCOL, "a continuation frame outside a message")
                elif kind is not None:
                    raise ProtocolError(CLOSE_PROTOCOL, "a new message inside a fragmented one")
                else:
                    kind = opcode
                size += len(payload)
                if size > MAX_MESSAGE:
                    raise ProtocolError(CLOSE_TOO_BIG, f"a message over {MAX_MESSAGE} bytes")
                parts.append(payload)
                if fin:
                    self._message(kind, b"".join(parts))
                    parts, size, kind = [], 0, None
        except ProtocolError as e:
            self.error = str(e)
            log.warning("websocket connection from %s closed: %s", self.peer or "a peer", e)
            try:
                self.send_message(OP_CLOSE, struct.pack(">H", e.code) + str(e).encode()[:120])
            except OSError:
                pass
        except (EOFError, OSError, struct.error, ValueError):
            pass
        finally:
            self.done.set()
            for st in list(self.streams.values()):
                st._feed(b"", True)

    def _message(self, kind: int, data: bytes) -> None:
        if not data:
            return
        if self.base64:
            if kind != OP_TEXT:
                raise ProtocolError(CLOSE_UNSUPPORTED, "a binary message on a base64 channel protocol")
            channel = data[0] - ord("0")
            try:
                data = base64.b64decode(data[1:], validate=True)
            except (binascii.Error, ValueError):
                raise ProtocolError(CLOSE_INVALID, f"bad base64 on channel {channel}") from None
        else:
            if kind != OP_BINARY:
                raise ProtocolError(CLOSE_UNSUPPORTED, "a text message on a binary channel protocol")
            channel, data = data[0], data[1:]
            if channel == STREAM_CLOSE and self.close_signal:
                st = self.streams.get(data[0]) if len(data) == 1 else None
                if st is not None:
                    st._feed(b"", True)
                return
        st = self.streams.get(channel)
        if st is None or not data or st._eof:  # data for no channel (or a closed one): dropped
            return
        if self.server and st.headers.get("streamtype") not in CLIENT_WRITES:
            return  # the server's own output channels: nobody would read it (unbounded stall)
        st._feed(data, False)


def client_handshake(sock: socket.socket, host: str, path: str, protocols: list[str]) -> tuple[int, dict]:
    """The client's side of the upgrade (tests, tools): (HTTP status, response headers)."""
    key = base64.b64encode(os.urandom(16)).decode()
    head = [f"GET {path} HTTP/1.1", f"Host: {host}", "Connection: Upgrade", "Upgrade: websocket",
            "Sec-WebSocket-Version: 13", f"Sec-WebSocket-Key: {key}"]
    if protocols:
        head.append("Sec-WebSocket-Protocol: " + ", ".join(protocols))
    sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        b = sock.recv(1)  # byte by byte: what follows the head is the first frame
        if not b:
            raise EOFError("the server closed the connection during the handshake")
        buf += b
    lines = buf.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    code = int(lines[0].split()[1])
    if code == 101 and headers.get("sec-websocket-accept") != accept_key(key):
        raise ProtocolError(CLOSE_PROTOCOL, "the server's Sec-WebSocket-Accept does not match the key")
    return code, headers
