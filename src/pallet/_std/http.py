"""A small HTTP/1.1 client over sockets: what a registry client needs and no more.

Why not ``http.client``: it imports ``email.parser`` (and ``ssl``) and costs ~45 ms of
start-up, a third of a remote ``inspect``. This module speaks HTTP/1.1 with keep-alive,
``Content-Length`` and chunked bodies in both directions, and ``HEAD``. Connections go
through the C modules directly, with an ``io`` buffer on top: ``_socket`` (the ``socket``
module adds ``enum`` and ``selectors``, ~3 ms here) and, for https, ``_ssl`` (``ssl.py``
costs ~14 ms more to import than the ``_ssl`` it wraps: a third of a remote inspect). TLS is
set up as ``ssl.create_default_context()`` does it: TLS client defaults (certificate and
host name checked), the system's CA paths, plus the registry's CA files and client
certificates.

Nothing here knows about registries, auth or retries: a :class:`Pool` sends one request
and returns a :class:`Response` whose body is a stream. When the body has been read to
its end the connection goes back to the pool for the next request (one keep-alive
connection per concurrent user, so six layer threads hold six connections).
"""

from __future__ import annotations

import _socket
import _thread
import io  # locks only: threading costs an import on every registry command

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import BinaryIO

#: how much we read from a socket at once
_BUF = 1 << 16
#: a status line or header longer than this is not HTTP
_MAX_LINE = 65536
_MAX_HEADERS = 200
#: seconds a TLS handshake may take (Go's http.DefaultTransport: 10 s)
TLS_HANDSHAKE_TIMEOUT = 10.0
#: getaddrinfo's "try again" (a temporary DNS failure): the one resolver error worth a retry
EAI_AGAIN = _socket.EAI_AGAIN


class ProtocolError(ConnectionError):
    """The peer did not speak HTTP/1.x as expected (a broken or truncated connection)."""

    #: a connection cut short may work on another try (``_retry.is_transient``)
    transient = True


class MalformedResponse(ProtocolError):
    """The peer answered, with something that is not HTTP/1.x: another try gets the same."""

    transient = False


class PlainHTTPServer(ProtocolError):
    """An https origin answered our TLS ClientHello in plain HTTP: it does not speak TLS."""

    transient = False


def _probe_hello() -> bytes:
    """A TLS 1.2 ClientHello (ECDHE suites, x25519/P-256, the usual signature schemes) whose
    random holds a CRLF: a plain-HTTP server reading a request line answers it at once (Go's
    net/http waits for a line end), and a TLS server answers with a record of its own."""
    random = b"pallet probe: is this TLS?\r\n\0\0\0\0"  # 32 bytes
    suites = bytes.fromhex("c02bc02fc02cc030cca9cca8c009c013c00ac014009c009d002f0035")
    exts = b"".join(t.to_bytes(2, "big") + len(d).to_bytes(2, "big") + d for t, d in (
        (0x000a, bytes.fromhex("0004001d0017")),  # supported_groups: x25519, secp256r1
        (0x000b, bytes.fromhex("0100")),  # ec_point_formats: uncompressed
        (0x000d, bytes.fromhex("000c040305030804080502010201")),  # signature_algorithms
    ))
    body = (b"\x03\x03" + random + b"\x00" + len(suites).to_bytes(2, "big") + suites + b"\x01\x00"
            + len(exts).to_bytes(2, "big") + exts)
    hs = b"\x01" + len(body).to_bytes(3, "big") + body
    return b"\x16\x03\x01" + len(hs).to_bytes(2, "big") + hs


def answers_plain_http(sock, timeout: float) -> bool:
    """Send a TLS ClientHello on a fresh TCP connection: True if the peer answers in plain
    HTTP (``HTTP/``), so that a TLS handshake there can only fail. Anything else (a TLS
    record, silence, a closed connection) is False: the real handshake decides. Costs one
    round trip and no TLS library (``_ssl`` is not loaded)."""
    sock.settimeout(min(timeout, TLS_HANDSHAKE_TIMEOUT))
    try:
        sock.sendall(_probe_hello())
        head = b""
        while len(head) < 5:
            chunk = sock.recv(5 - len(head))
            if not chunk:
                break
            head += chunk
    except OSError:
        return False
    return head == b"HTTP/"


class URL:
    """``scheme://host[:port]/path?query`` split once; ``host`` keeps IPv6 brackets."""

    __slots__ = ("scheme", "host", "port", "target")

    def __init__(self, scheme: str, host: str, port: int, target: str):
        self.scheme = scheme
        self.host = host
        self.port = port
        self.target = target or "/"

    @classmethod
    def parse(cls, text: str) -> "URL":
        scheme, sep, rest = text.partition("://")
        if not sep or scheme not in ("http", "https"):
            raise ValueError(f"unsupported URL {text!r}")
        i = len(rest)
        for c in "/?#":
            j = rest.find(c)
            if j != -1 and j < i:
                i = j
        netloc, target = rest[:i], rest[i:]
        target = target.split("#", 1)[0]
        if "@" in netloc:  # userinfo is never used by registries; do not send it anywhere
            netloc = netloc.rsplit("@", 1)[1]
        host, port = split_host_port(netloc, 443 if scheme == "https" else 80)
        if target.startswith("?"):
            target = "/" + target
        return cls(scheme, host, port, target)

    @property
    def origin(self) -> tuple[str, str, int]:
        return (self.scheme, self.host.lower(), self.port)

    @property
    def netloc(self) -> str:
        default = 443 if self.scheme == "https" else 80
        return self.host if self.port == default else f"{self.host}:{self.port}"

    def join(self, location: str) -> "URL":
        """Resolve a ``Location`` / ``Link`` value against this URL (absolute, or a path)."""
        if "://" in location.split("?", 1)[0]:
            return URL.parse(location)
        if location.startswith("//"):
            return URL.parse(f"{self.scheme}:{location}")
        if location.startswith("/"):
            return URL(self.scheme, self.host, self.port, location)
        base = self.target.split("?", 1)[0]
        return URL(self.scheme, self.host, self.port, base.rsplit("/", 1)[0] + "/" + location)

    def __str__(self) -> str:
        return f"{self.scheme}://{self.netloc}{self.target}"


def split_host_port(netloc: str, default_port: int) -> tuple[str, int]:
    if netloc.startswith("["):
        end = netloc.find("]")
        host, rest = netloc[: end + 1], netloc[end + 1:]
        port = int(rest[1:]) if rest.startswith(":") and rest[1:] else default_port
        return host, port
    host, sep, port = netloc.rpartition(":")
    if sep and port.isdigit():
        return host, int(port)
    return netloc, default_port


class Headers:
    """Response headers: case-insensitive lookup; repeated headers kept (``get_all``)."""

    __slots__ = ("_items",)

    def __init__(self, items: list[tuple[str, str]]):
        self._items = items

    def get(self, name: str, default: str | None = None) -> str | None:
        name = name.lower()
        vals = [v for k, v in self._items if k == name]
        if not vals:
            return default
        return ", ".join(vals)

    def get_all(self, name: str) -> list[str]:
        name = name.lower()
        return [v for k, v in self._items if k == name]

    def __contains__(self, name: str) -> bool:
        name = name.lower()
        return any(k == name for k, _ in self._items)

    def items(self) -> list[tuple[str, str]]:
        return list(self._items)


def _digits(text: str) -> bool:
    """ASCII digits only (``str.isdigit`` takes other scripts' digits, ``int`` signs and spaces)."""
    return bool(text) and not text.strip("0123456789")


def _content_length(value: str) -> int:
    """The Content-Length: digits only; repeated headers must agree (as Go's net/http,
    where http.client would read a body of a guessed length)."""
    vals = {v.strip() for v in value.split(",")}
    if len(vals) != 1:
        raise MalformedResponse(f"conflicting Content-Length headers {value[:60]!r}")
    v = vals.pop()
    if not _digits(v) or len(v) > 19:
        raise MalformedResponse(f"invalid Content-Length {value[:60]!r}")
    return int(v)


class Response:
    """Status, headers and a body stream. Read the body to its end (or ``close``) to free
    the connection; a body read to its end returns the connection to its pool."""

    def __init__(self, conn: "Connection", status: int, reason: str, headers: Headers, method: str, url: URL):
        self.status = status
        self.reason = reason
        self.headers = headers
        self.url = url
        self._conn: Connection | None = conn
        self._chunked = False
        self._remaining = -1  # bytes left of a Content-Length body; -1: until close (or chunked)
        self._chunk_left = 0
        self._done = False
        self._keep_alive = True
        #: bytes of body handed out so far
        self.consumed = 0
        te = (headers.get("transfer-encoding") or "").lower()
        conn_hdr = (headers.get("connection") or "").lower()
        if "close" in conn_hdr:
            self._keep_alive = False
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            self._remaining = 0
        elif "chunked" in te:
            self._chunked = True
        else:
            cl = headers.get("content-length")
            if cl is not None:
                self._remaining = _content_length(cl)
            else:
                self._keep_alive = False  # body runs until the server closes
        if self._remaining == 0 and not self._chunked:
            self._finish()

    @property
    def content_length(self) -> int:
        cl = self.headers.get("content-length")
        try:
            return _content_length(cl) if cl is not None else -1
        except MalformedResponse:
            return -1

    @property
    def media_type(self) -> str:
        """Content-Type without parameters."""
        return (self.headers.get("content-type") or "").split(";", 1)[0].strip()

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        if self._done or self._conn is None:
            return b""
        if n is None or n < 0:
            parts = []
            while True:
                b = self.read(_BUF)
                if not b:
                    return b"".join(parts)
                parts.append(b)
        if n == 0:
            return b""
        try:
            data = self._read_chunked(n) if self._chunked else self._read_plain(n)
        except (OSError, ProtocolError):
            self._abort()
            raise
        self.consumed += len(data)
        return data

    def _read_plain(self, n: int) -> bytes:
        rf = self._conn.rfile
        if self._remaining >= 0:
            data = rf.read1(min(n, self._remaining)) if self._remaining else b""
            if not data and self._remaining:
                raise ProtocolError(f"the registry closed the connection after {self.consumed} of "
                                    f"{self.consumed + self._remaining} bytes of the response body")
            self._remaining -= len(data)
            if self._remaining == 0:
                self._finish()
            return data
        data = rf.read1(n)
        if not data:
            self._finish()
        return data

    def _read_chunked(self, n: int) -> bytes:
        rf = self._conn.rfile
        if self._chunk_left == 0:
            line = rf.readline(_MAX_LINE)
            if not line.endswith(b"\n"):
                raise ProtocolError("connection closed inside a chunked body")
            size_text = line.split(b";", 1)[0].strip()
            if not size_text or size_text.strip(b"0123456789abcdefABCDEF") or len(size_text) > 16:
                raise MalformedResponse(f"invalid chunk size line {line[:40]!r}")
            size = int(size_text, 16)
            if size == 0:
                while True:  # trailers
                    t = rf.readline(_MAX_LINE)
                    if t in (b"\r\n", b"\n"):
                        break
                    if not t:
                        raise ProtocolError("connection closed inside chunked trailers")
                self._finish()
                return b""
            self._chunk_left = size
        data = rf.read1(min(n, self._chunk_left))
        if not data:
            raise ProtocolError("connection closed inside a chunk")
        self._chunk_left -= len(data)
        if self._chunk_left == 0:
            if rf.readline(_MAX_LINE) not in (b"\r\n", b"\n"):
                raise ProtocolError("missing CRLF after a chunk")
        return data

    def _finish(self) -> None:
        self._done = True
        conn, self._conn = self._conn, None
        if conn is not None:
            if self._keep_alive:
                conn.release()
            else:
                conn.close()

    def interrupt(self) -> None:
        """From another thread: wake a read blocked on this response and fail it (the
        socket is shut down; the connection is not reused)."""
        conn = self._conn
        if conn is not None:
            conn.interrupt()

    def _abort(self) -> None:
        self._done = True
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def drain(self, limit: int = 1 << 16) -> None:
        """Read and drop a small rest of the body so the connection can be reused; close otherwise."""
        if self._done:
            return
        if self._remaining > limit or (self._remaining < 0 and not self._chunked):
            self._abort()
            return
        try:
            got = 0
            while not self._done:
                b = self.read(_BUF)
                got += len(b)
                if got > limit:
                    self._abort()
                    return
        except (OSError, ProtocolError):
            pass

    def close(self) -> None:
        if not self._done:
            self.drain()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class _Reader(io.RawIOBase):
    """A ``_socket.socket`` (or a :class:`_TLS` on one) as a raw binary stream (what
    ``socket.makefile`` gives)."""

    def __init__(self, sock):
        self._sock = sock

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        return self._sock.recv_into(b)


class _Sock(_socket.socket):
    """``_socket.socket`` with weak references (``_ssl`` holds its socket by one)."""

    __slots__ = ("__weakref__",)


def _tcp_connect(host, port: int, timeout: float):
    """``socket.create_connection`` on ``_socket``: every address in turn, the last error raised."""
    err = None
    for family, type_, proto, _, addr in _socket.getaddrinfo(host, port, 0, _socket.SOCK_STREAM):
        sock = _Sock(family, type_, proto)
        try:
            sock.settimeout(timeout)
            sock.connect(addr)
            return sock
        except OSError as e:
            err = e
            sock.close()
    raise err if err is not None else OSError(f"no address found for {host!r}")


class Connection:
    """One TCP (maybe TLS) connection to one origin."""

    def __init__(self, pool: "Pool", sock):
        self.pool = pool
        self.sock = sock
        self.rfile = io.BufferedReader(_Reader(sock), _BUF)  # a _socket.socket or a _TLS
        self.used = False

    def release(self) -> None:
        self.pool._put_idle(self)

    def interrupt(self) -> None:
        """Shut the socket down (both ways): a thread blocked reading it wakes with EOF or an error."""
        try:
            self.sock.shutdown(_socket.SHUT_RDWR)
        except OSError:
            pass

    def close(self) -> None:
        try:
            self.rfile.close()
        except OSError:
            pass
        try:
            self.sock.close()
        except OSError:
            pass

    def is_stale(self) -> bool:
        """An idle connection the server has closed (EOF) or sent unsolicited bytes on."""
        import select

        try:
            r, _, _ = select.select([self.sock], [], [], 0)
        except (OSError, ValueError):
            return True
        return bool(r)

    def send(self, head: bytes, body) -> None:
        s = self.sock
        if body is None:
            s.sendall(head)
            return
        if isinstance(body, (bytes, bytearray, memoryview)):
            if len(body) < 65536:
                s.sendall(head + bytes(body))
            else:
                s.sendall(head)
                s.sendall(body)
            return
        s.sendall(head)
        body.send(s)

    def read_head(self) -> tuple[int, str, Headers]:
        rf = self.rfile
        while True:
            line = rf.readline(_MAX_LINE)
            if not line:
                raise ProtocolError("connection closed before a response")
            if not line.startswith(b"HTTP/1."):
                raise MalformedResponse(f"not an HTTP response: {line[:40]!r}")
            # as http.client and Go: spaces between the fields, a status of exactly 3 digits
            parts = line.decode("latin-1").rstrip("\r\n").split(None, 2)
            code = parts[1] if len(parts) > 1 else ""
            if len(code) != 3 or not _digits(code) or code[0] == "0":
                raise MalformedResponse(f"invalid status line {line[:60]!r}")
            status = int(code)
            reason = parts[2] if len(parts) > 2 else ""
            items = []
            while True:
                h = rf.readline(_MAX_LINE)
                if h in (b"\r\n", b"\n"):
                    break
                if not h:
                    raise ProtocolError("connection closed inside response headers")
                if len(items) > _MAX_HEADERS:
                    raise MalformedResponse("too many response headers")
                text = h.decode("latin-1")
                if text[:1] in (" ", "\t"):
                    # an obsolete folded line continues the header before it (RFC 9112 5.2:
                    # replaced by a space)
                    if items:
                        k, v = items[-1]
                        items[-1] = (k, f"{v} {text.strip()}".strip())
                    continue
                k, sep, v = text.partition(":")
                if not sep:
                    continue
                items.append((k.strip().lower(), v.strip()))
            if status == 100:  # "100 Continue": the real answer follows
                continue
            return status, reason, Headers(items)


class StreamBody:
    """A request body read from a stream: ``size`` >= 0 sends Content-Length, -1 chunked.

    The last piece is held back until the source says EOF: a source that raises at EOF
    (``layer.stream.Verifying`` on corrupt data) therefore stops the request before the
    server has a complete body, and nothing is committed.
    """

    def __init__(self, stream: "BinaryIO", size: int = -1, chunk: int = 1 << 20):
        self.stream = stream
        self.size = size
        self.chunk = chunk
        self.sent = 0

    def send(self, sock) -> None:
        chunked = self.size < 0
        pending = b""
        while True:
            data = self.stream.read(self.chunk)
            if not data:
                break
            if pending:
                self._write(sock, pending, chunked)
            pending = data
        if pending:
            self._write(sock, pending, chunked)
        if chunked:
            sock.sendall(b"0\r\n\r\n")
        elif self.sent != self.size:
            raise ProtocolError(f"request body was {self.sent} bytes, announced {self.size}")

    def _write(self, sock, data: bytes, chunked: bool) -> None:
        if not chunked and self.sent + len(data) > self.size:
            raise ProtocolError(f"request body longer than the announced {self.size} bytes")
        self.sent += len(data)
        if chunked:
            sock.sendall(b"%x\r\n" % len(data) + data + b"\r\n")
        else:
            sock.sendall(data)


class TLSConfig:
    """What an https connection trusts and presents: ``verify``, extra CA files, client cert pairs."""

    __slots__ = ("verify", "ca_files", "client_certs", "_ctx", "_bundle", "_lock")

    def __init__(self, verify: bool = True, ca_files: tuple[str, ...] = (),
                 client_certs: tuple[tuple[str, str], ...] = ()):
        self.verify = verify
        self.ca_files = tuple(ca_files)
        self.client_certs = tuple(client_certs)
        self._ctx = None
        self._bundle = None  # the system bundle, loaded only when the hashed directory falls short
        self._lock = _thread.allocate_lock()

    def load_bundle(self) -> bool:
        """Add the system CA bundle file to the context, once: True if that changed the trust
        (a handshake that failed verification is then worth one more try)."""
        with self._lock:
            bundle, self._bundle = self._bundle, None
            if bundle is None or self._ctx is None:
                return False
            try:
                self._ctx.load_verify_locations(bundle)
            except OSError:
                return False
            return True

    def context(self):
        if self._ctx is None:
            import _ssl

            ctx = _ssl._SSLContext(_ssl.PROTOCOL_TLS_CLIENT)  # CERT_REQUIRED and check_hostname
            if not self.verify:
                ctx.check_hostname = False
                ctx.verify_mode = _ssl.CERT_NONE
            else:
                self._bundle = _trust_system_cas(ctx)
            for ca in self.ca_files:
                ctx.load_verify_locations(ca)
            for cert, key in self.client_certs:
                ctx.load_cert_chain(cert, key)
            ctx._set_alpn_protocols(b"\x08http/1.1")
            if hasattr(ctx, "post_handshake_auth"):
                ctx.post_handshake_auth = True
            self._ctx = ctx
        return self._ctx


def _trust_system_cas(ctx) -> str | None:
    """The system's CAs, as ``set_default_verify_paths`` gives them (the hashed directory and
    the bundle file), but the hashed directory (``/etc/ssl/certs``) first: OpenSSL reads its
    certificates as chains need them, while the bundle is parsed whole (~40 ms here). The
    bundle is returned, to be loaded (:meth:`TLSConfig.load_bundle`) only when a chain does
    not verify with the directory alone: a CA appended to the bundle without a rehash
    (corporate images, ``update-ca-certificates`` users) is trusted, as by every other tool.
    ``SSL_CERT_FILE`` / ``SSL_CERT_DIR`` are honoured as OpenSSL does (``SSL_CERT_FILE``
    replaces the bundle; naming the system bundle itself changes nothing); without a hashed
    directory, the defaults as they are."""
    import _ssl
    import os

    file_env, default_file, dir_env, default_dir = _ssl.get_default_verify_paths()
    cafile = os.environ.get(file_env)
    capath = os.environ.get(dir_env) or default_dir
    bundle = default_file
    if cafile and os.path.realpath(cafile) == os.path.realpath(default_file):
        cafile = None  # the system bundle named again: loaded lazily, as without the variable
    if cafile:
        try:
            ctx.load_verify_locations(cafile)
        except OSError:
            pass  # a missing SSL_CERT_FILE adds nothing, as for OpenSSL: verification says the rest
        bundle = None  # SSL_CERT_FILE replaces the system bundle, for OpenSSL too
    try:
        hashed = capath and any(n.endswith(".0") for n in os.listdir(capath))
    except OSError:
        hashed = False
    if hashed:
        ctx.load_verify_locations(None, capath)
        return bundle if bundle and os.path.exists(bundle) else None
    if not cafile:
        ctx.set_default_verify_paths()
    return None


class _TLS:
    """A TLS connection on a ``_socket.socket``, through ``_ssl`` (what ``ssl.SSLSocket``
    does, without importing ``ssl``): ``sendall``, ``recv_into``, ``fileno``, ``close``."""

    def __init__(self, sock, ctx, server_hostname: str):
        self._sock = sock  # _ssl keeps only a weak reference to it
        self._obj = ctx._wrap_socket(sock, False, server_hostname)
        self._obj.do_handshake()

    def sendall(self, data) -> None:
        view = memoryview(data).cast("B")
        while view:
            n = self._obj.write(view)
            view = view[n:]

    def recv_into(self, b) -> int:
        import _ssl

        try:
            return self._obj.read(len(b), b)
        except (_ssl.SSLZeroReturnError, _ssl.SSLEOFError):  # closed (ragged EOFs too, as ssl does)
            return 0

    def fileno(self) -> int:
        return self._sock.fileno()

    def shutdown(self, how: int) -> None:
        self._sock.shutdown(how)

    def settimeout(self, t: float) -> None:
        self._sock.settimeout(t)

    def close(self) -> None:
        self._sock.close()


class ProxyError(ProtocolError):
    """The proxy could not be reached or refused the tunnel: another try would not help."""

    transient = False


def _os_reason(e: OSError) -> str:
    return getattr(e, "strerror", None) or str(e) or type(e).__name__


class Proxy:
    """An ``http://[user:password@]host[:port]`` proxy from the environment."""

    __slots__ = ("host", "port", "auth", "display")

    def __init__(self, host: str, port: int, auth: str | None, display: str):
        self.host = host
        self.port = port
        self.auth = auth  # a Proxy-Authorization value, or None
        self.display = display  # without the password


def _getenv(*names: str) -> str:
    import os

    for n in names:
        v = os.environ.get(n)
        if v:
            return v
    return ""


def parse_proxy(value: str, var: str) -> Proxy:
    """A proxy URL as Go's httpproxy reads it: without a scheme, ``http://`` is assumed."""
    text = value.strip()
    if "://" not in text:
        text = "http://" + text
    scheme, _, rest = text.partition("://")
    scheme = scheme.lower()
    if scheme != "http":
        from ..errors import ConfigError

        raise ConfigError(f"${var}: proxy scheme {scheme!r} is not supported (http:// proxies are)")
    netloc = rest.split("/", 1)[0].split("?", 1)[0]
    auth = None
    if "@" in netloc:
        import base64
        from urllib.parse import unquote  # only with a proxy password: not on the hot path

        userinfo, netloc = netloc.rsplit("@", 1)
        user, _, password = userinfo.partition(":")
        auth = "Basic " + base64.b64encode(f"{unquote(user)}:{unquote(password)}".encode()).decode()
    try:
        host, port = split_host_port(netloc, 80)
    except ValueError:
        host, port = "", 0
    if not host or not 0 < port < 65536:
        from ..errors import ConfigError

        raise ConfigError(f"${var}: {value!r} is not a proxy URL (want http://HOST[:PORT])")
    return Proxy(host, port, auth, f"http://{netloc}")


def _parse_ip(text: str):
    """The address as (version, int), or None when ``text`` is not an IP literal."""
    import _socket

    for fam, v in ((_socket.AF_INET, 4), (_socket.AF_INET6, 6)):
        try:
            return v, int.from_bytes(_socket.inet_pton(fam, text), "big")
        except (OSError, ValueError):
            pass
    return None


def _is_loopback(ip) -> bool:
    v, n = ip
    if v == 4:
        return n >> 24 == 127
    return n == 1 or (n >> 32 == 0xFFFF and (n >> 24) & 0xFF == 127)  # ::1, ::ffff:127.x


def no_proxy_matches(no_proxy: str, host: str, port: int) -> bool:
    """Whether ``NO_PROXY`` exempts ``host:port``, with golang.org/x/net/http/httpproxy's
    rules: ``*`` exempts everything; entries are IPs (optionally with a port), CIDRs, or
    domains (optionally with a port): ``example.com`` matches it and its subdomains,
    ``.example.com`` and ``*.example.com`` only the subdomains."""
    host = host.lower().strip()
    if host.startswith("["):
        host = host[1:-1]
    ip = _parse_ip(host)
    sport = str(port)
    for p in no_proxy.split(","):
        p = p.strip().lower()
        if not p:
            continue
        if p == "*":
            return True
        if "/" in p:  # CIDR
            addr, _, bits = p.partition("/")
            net = _parse_ip(addr)
            if net is not None and ip is not None and bits.isdigit() and net[0] == ip[0]:
                width = 32 if net[0] == 4 else 128
                b = int(bits)
                if 0 <= b <= width and (net[1] >> (width - b)) == (ip[1] >> (width - b)):
                    return True
            continue
        phost, pport = p, ""
        if p.startswith("["):
            end = p.find("]")
            phost, rest = p[1:end], p[end + 1:]
            pport = rest[1:] if rest.startswith(":") else ""
        elif p.count(":") == 1:
            phost, pport = p.split(":")
        pip = _parse_ip(phost)
        if pip is not None:
            if ip is not None and pip == ip and (not pport or pport == sport):
                return True
            continue
        if not phost:
            continue
        if phost.startswith("*."):
            phost = phost[1:]
        match_host = not phost.startswith(".")
        if match_host:
            phost = "." + phost
        if host.endswith(phost) or (match_host and host == phost[1:]):
            if not pport or pport == sport:
                return True
    return False


def proxy_for(scheme: str, host: str, port: int) -> "Proxy | None":
    """The proxy for a connection to ``scheme://host:port`` from the environment, as Go's
    ``http.ProxyFromEnvironment`` decides: ``HTTPS_PROXY`` for https, ``HTTP_PROXY`` for
    http (upper case first, then lower case), never for ``localhost`` or a loopback address,
    not when ``NO_PROXY`` matches. None: connect directly."""
    if scheme == "https":
        var = "HTTPS_PROXY" if _getenv("HTTPS_PROXY") else "https_proxy"
        value = _getenv("HTTPS_PROXY", "https_proxy")
    else:
        var = "HTTP_PROXY" if _getenv("HTTP_PROXY") else "http_proxy"
        value = _getenv("HTTP_PROXY", "http_proxy")
        if value and _getenv("REQUEST_METHOD"):
            return None  # a CGI environment: HTTP_PROXY may come from a request header (httpoxy)
    if not value:
        return None
    h = host[1:-1] if host.startswith("[") else host
    if h.lower() == "localhost":
        return None
    ip = _parse_ip(h)
    if ip is not None and _is_loopback(ip):
        return None
    if no_proxy_matches(_getenv("NO_PROXY", "no_proxy"), host, port):
        return None
    return parse_proxy(value, var)


class Pool:
    """Keep-alive connections to one origin (scheme, host, port); safe for many threads.

    A thread takes an idle connection (or opens one), sends, and the connection comes back
    when the response body has been read to its end.
    """

    def __init__(self, scheme: str, host: str, port: int, tls: TLSConfig | None = None,
                 timeout: float = 60.0, max_idle: int = 8):
        self.scheme = scheme
        self.host = host
        self.port = port
        self.tls = tls or TLSConfig()
        self.timeout = timeout
        self.max_idle = max_idle
        self._idle: list[Connection] = []
        self._lock = _thread.allocate_lock()
        #: the proxy of $HTTPS_PROXY / $HTTP_PROXY for this origin (None: connect directly)
        self.proxy = proxy_for(scheme, host, port)
        self._tls_seen = False  # a TLS answer seen from this origin (no more plain-HTTP probes)

    def _put_idle(self, conn: Connection) -> None:
        with self._lock:
            if len(self._idle) < self.max_idle:
                conn.used = True
                self._idle.append(conn)
                return
        conn.close()

    def _get_idle(self) -> Connection | None:
        while True:
            with self._lock:
                if not self._idle:
                    return None
                conn = self._idle.pop()
            if conn.is_stale():
                conn.close()
                continue
            return conn

    def _connect(self) -> Connection:
        host = self.host[1:-1] if self.host.startswith("[") else self.host
        # an ASCII host goes to getaddrinfo as bytes: a str would load the idna codec (start-up time)
        addr = host.encode("ascii") if host.isascii() else host
        if self.scheme == "https" and not self.tls.verify and self.proxy is None and not self._tls_seen:
            # verification off (an insecure registry, probed https first then http): a plain-HTTP
            # server is told apart by one round trip, before any TLS library is loaded
            sock = _tcp_connect(addr, self.port, self.timeout)
            try:
                if answers_plain_http(sock, self.timeout):
                    raise PlainHTTPServer(f"TLS error: the server does not speak TLS (it answered a TLS "
                                          f"handshake in plain HTTP; is it a plain-HTTP registry?)")
            finally:
                sock.close()
            self._tls_seen = True
        ctx = self.tls.context() if self.scheme == "https" else None
        while True:
            if self.proxy is not None:
                sock = self._connect_proxy()
            else:
                sock = _tcp_connect(addr, self.port, self.timeout)
            sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
            if ctx is None:
                return Connection(self, sock)
            try:
                # a peer that never answers the handshake (a plain-HTTP server waiting for a
                # request line) fails after Go's TLSHandshakeTimeout, not the read timeout
                sock.settimeout(min(self.timeout, TLS_HANDSHAKE_TIMEOUT))
                tls = _TLS(sock, ctx, host)
                tls.settimeout(self.timeout)
                return Connection(self, tls)
            except BaseException as e:
                sock.close()
                # the chain's CA may be in the system bundle only: load it, and try once more
                if type(e).__name__ == "SSLCertVerificationError" and self.tls.load_bundle():
                    continue
                raise

    def request(self, method: str, url: URL, headers: dict[str, str], body=None) -> Response:
        """Send one request; ``body`` is None, bytes, or a :class:`StreamBody`.

        A reused connection that turns out dead before any response byte arrives is
        replaced once, when the body can be sent again (bytes or nothing).
        """
        replayable = not isinstance(body, StreamBody)
        head = self._head(method, url, headers, body)
        conn = self._get_idle()
        if conn is not None:
            try:
                conn.send(head, body)
                status, reason, hdrs = conn.read_head()
                return Response(conn, status, reason, hdrs, method, url)
            except OSError:
                conn.close()
                if not replayable:
                    raise
            except BaseException:
                conn.close()
                raise
        conn = self._connect()
        try:
            conn.send(head, body)
            status, reason, hdrs = conn.read_head()
        except BaseException:
            conn.close()
            raise
        return Response(conn, status, reason, hdrs, method, url)

    def _connect_proxy(self):
        """A TCP connection to the proxy; for https, a tunnel (``CONNECT``) to the origin."""
        px = self.proxy
        phost = px.host[1:-1] if px.host.startswith("[") else px.host
        try:
            sock = _tcp_connect(phost.encode("ascii") if phost.isascii() else phost, px.port, self.timeout)
        except OSError as e:
            raise ProxyError(f"proxy {px.display}: {_os_reason(e)}") from None
        if self.scheme != "https":
            return sock
        target = f"{self.host}:{self.port}"
        head = [f"CONNECT {target} HTTP/1.1", f"Host: {target}"]
        if px.auth:
            head.append(f"Proxy-Authorization: {px.auth}")
        try:
            sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
            # read the answer byte-wise up to its blank line: what follows is the origin's TLS
            buf = b""
            while not buf.endswith(b"\r\n\r\n") and not buf.endswith(b"\n\n"):
                b = sock.recv(1)
                if not b:
                    raise ProxyError(f"proxy {px.display} closed the connection instead of answering CONNECT {target}")
                buf += b
                if len(buf) > _MAX_LINE:
                    raise ProxyError(f"proxy {px.display}: no answer to CONNECT {target}")
            first = buf.split(b"\n", 1)[0].decode("latin-1").strip()
            parts = first.split(" ", 2)
            if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or parts[1] != "200":
                raise ProxyError(f"proxy {px.display} refused CONNECT {target}: {first[:100]!r}")
        except BaseException:
            sock.close()
            raise
        return sock

    def _head(self, method: str, url: URL, headers: dict[str, str], body) -> bytes:
        if self.proxy is not None and self.scheme == "http":  # absolute form, to the proxy
            lines = [f"{method} http://{url.netloc}{url.target} HTTP/1.1", f"Host: {url.netloc}"]
            if self.proxy.auth:
                lines.append(f"Proxy-Authorization: {self.proxy.auth}")
        else:
            lines = [f"{method} {url.target} HTTP/1.1", f"Host: {url.netloc}"]
        has = {k.lower() for k in headers}
        for k, v in headers.items():
            if "\n" in v or "\r" in v:
                raise ValueError(f"header {k} contains a line break")
            lines.append(f"{k}: {v}")
        if isinstance(body, StreamBody):
            if body.size >= 0:
                lines.append(f"Content-Length: {body.size}")
            else:
                lines.append("Transfer-Encoding: chunked")
        elif body is not None:
            lines.append(f"Content-Length: {len(body)}")
        elif method in ("PUT", "POST", "PATCH") and "content-length" not in has:
            lines.append("Content-Length: 0")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for c in idle:
            c.close()
