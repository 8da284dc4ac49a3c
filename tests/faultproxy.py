"""A fault-injecting HTTP proxy between a registry client and a real registry (tests only).

It listens on 127.0.0.1, relays each request to the upstream registry and applies the
first matching :class:`Rule` that still has uses left:

- ``reset`` / ``close``: send the headers and ``after`` bytes of the body, then abort the
  connection (RST) or close it (FIN) — a stream broken mid-blob;
- ``status``: answer ``code`` (503, 429...) with an optional ``Retry-After`` instead of relaying;
- ``corrupt``: relay, with one byte of the body flipped;
- ``redirect``: answer 307 to ``http://localhost:PORT/redirected/...`` (another origin),
  where the proxy serves the bytes it fetched itself and notes whether the client sent an
  Authorization header there.

Everything is logged in ``self.log`` (method, path, Range, Authorization present,
status, body bytes sent) so tests can prove a resume rather than a restart.
Bodies are held in memory: test blobs are small.
"""

from __future__ import annotations

import socket
import struct
import threading
import time

from tcpserver import TCPServer


class Rule:
    def __init__(self, action: str, method: str = "GET", path: str = "", times: int = 1, *, after: int = 0,
                 code: int = 503, retry_after: str | None = None, want_range: bool | None = None,
                 headers: dict | None = None, body: bytes | None = None):
        self.action = action
        self.method = method
        self.path = path
        self.times = times
        self.after = after
        self.code = code
        self.retry_after = retry_after
        self.want_range = want_range
        self.headers = dict(headers or {})
        self.body = body
        self.used = 0

    def matches(self, method: str, path: str, headers: dict) -> bool:
        if self.used >= self.times or method != self.method or self.path not in path:
            return False
        if self.want_range is not None and ("range" in headers) != self.want_range:
            return False
        return True


def _read_head(f) -> tuple[str, list[tuple[str, str]]] | None:
    line = f.readline(65536)
    if not line:
        return None
    first = line.decode("latin-1").rstrip("\r\n")
    headers = []
    while True:
        h = f.readline(65536)
        if h in (b"\r\n", b"\n", b""):
            break
        k, _, v = h.decode("latin-1").partition(":")
        headers.append((k.strip(), v.strip()))
    return first, headers


def _read_body(f, headers: dict, head_request: bool = False, status: int = 200) -> bytes:
    if head_request or status in (204, 304):
        return b""
    if "chunked" in headers.get("transfer-encoding", "").lower():
        out = []
        while True:
            size = int(f.readline().split(b";")[0].strip(), 16)
            if size == 0:
                while f.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(out)
            out.append(f.read(size))
            f.readline()
    n = int(headers.get("content-length", "0") or 0)
    return f.read(n) if n else b""


def _wait_acked(c: socket.socket, timeout: float = 30.0) -> None:
    """Wait until the client has acknowledged every byte sent (the socket's send queue is
    empty), so the abort that follows breaks the stream after exactly the bytes the rule
    says, however slow a loaded machine is. Bounded: a client that stops reading must not
    hang the proxy's thread."""
    import fcntl
    import termios

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            queued = struct.unpack("i", fcntl.ioctl(c.fileno(), termios.TIOCOUTQ, b"\0\0\0\0"))[0]
        except OSError:
            return
        if queued == 0:
            return
        time.sleep(0.005)


class FaultProxy(TCPServer):
    def __init__(self, upstream: str):
        self.upstream_host, port = upstream.rsplit(":", 1)
        self.upstream_port = int(port)
        self.rules: list[Rule] = []
        self.log: list[dict] = []
        self.redirected: dict[str, bytes] = {}
        self._lock = threading.Lock()
        self._stop = False
        self._conns: list[socket.socket] = []
        super().__init__(backlog=64, reuse_addr=True)

    def add(self, rule: Rule) -> Rule:
        with self._lock:
            self.rules.append(rule)
        return rule

    def entries(self, path: str = "", method: str | None = None) -> list[dict]:
        with self._lock:
            return [e for e in self.log if path in e["path"] and (method is None or e["method"] == method)]

    def stop(self) -> None:
        self._stop = True
        super().stop()
        with self._lock:
            conns = list(self._conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            c.close()

    def on_connection(self, c: socket.socket) -> None:
        if self._stop:
            c.close()
            return
        with self._lock:
            self._conns.append(c)
        super().on_connection(c)

    def _rule_for(self, method: str, path: str, headers: dict) -> Rule | None:
        with self._lock:
            for r in self.rules:
                if r.matches(method, path, headers):
                    r.used += 1
                    return r
        return None

    def serve(self, c: socket.socket) -> None:
        up = None
        f = c.makefile("rb")
        try:
            if f.peek(1)[:1] == b"\x16":  # a TLS ClientHello: answer as Go's net/http server does
                c.sendall(b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n")
                return
            while True:
                head = _read_head(f)
                if head is None:
                    return
                first, hlist = head
                method, target, _ = first.split(" ", 2)
                hdrs = {k.lower(): v for k, v in hlist}
                body = _read_body(f, hdrs)
                entry = {"method": method, "path": target, "range": hdrs.get("range"),
                         "authorization": "authorization" in hdrs, "host": hdrs.get("host"),
                         "time": time.monotonic(), "status": None, "sent": 0}
                with self._lock:
                    self.log.append(entry)
                if target.startswith("/redirected/"):
                    data = self.redirected.get(target, b"")
                    self._respond(c, 200, {"Content-Type": "application/octet-stream"}, data, entry)
                    continue
                rule = self._rule_for(method, target, hdrs)
                if rule is not None and rule.action == "status":
                    extra = {"Content-Type": "application/json"}
                    if rule.retry_after is not None:
                        extra["Retry-After"] = rule.retry_after
                    msg = b'{"errors":[{"code":"UNAVAILABLE","message":"injected fault"}]}'
                    if rule.code == 429:
                        msg = b'{"errors":[{"code":"TOOMANYREQUESTS","message":"too many requests"}]}'
                    if rule.body is not None:
                        msg = rule.body
                    extra.update(rule.headers)
                    self._respond(c, rule.code, extra, msg, entry)
                    continue
                if up is None:
                    up = socket.create_connection((self.upstream_host, self.upstream_port))
                    upf = up.makefile("rb")
                out = [f"{method} {target} HTTP/1.1"]
                for k, v in hlist:
                    if k.lower() in ("content-length", "transfer-encoding", "connection"):
                        continue
                    out.append(f"{k}: {v}")
                if body or method in ("PUT", "POST", "PATCH"):
                    out.append(f"Content-Length: {len(body)}")
                up.sendall(("\r\n".join(out) + "\r\n\r\n").encode("latin-1") + body)
                rhead = _read_head(upf)
                if rhead is None:
                    return
                status = int(rhead[0].split(" ", 2)[1])
                rh = {k.lower(): v for k, v in rhead[1]}
                rbody = _read_body(upf, rh, method == "HEAD", status)
                resp_headers = {k: v for k, v in rhead[1]
                                if k.lower() not in ("content-length", "transfer-encoding", "connection")}
                if rule is not None and rule.action == "redirect" and status == 200:
                    key = f"/redirected/{len(self.redirected)}{target[target.rfind('/'):]}"
                    self.redirected[key] = rbody
                    self._respond(c, 307, {"Location": f"http://localhost:{self.port}{key}"}, b"", entry)
                    continue
                if rule is not None and rule.action == "corrupt" and rbody:
                    i = len(rbody) // 2
                    rbody = rbody[:i] + bytes([rbody[i] ^ 0xFF]) + rbody[i + 1:]
                if rule is not None and rule.action in ("reset", "close") and len(rbody) > rule.after:
                    entry["status"] = status
                    entry["sent"] = rule.after
                    entry["broken"] = rule.action
                    self._send_head(c, status, resp_headers, len(rbody))
                    c.sendall(rbody[:rule.after])
                    _wait_acked(c)
                    if rule.action == "reset":
                        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    else:
                        c.shutdown(socket.SHUT_RDWR)
                    return
                if rule is not None and rule.action == "slow" and rbody:
                    # the body in 20 pieces over about ``after`` milliseconds (default 1 s)
                    entry["status"] = status
                    entry["sent"] = len(rbody)
                    self._send_head(c, status, resp_headers, len(rbody))
                    step = max(1, len(rbody) // 20)
                    for i in range(0, len(rbody), step):
                        c.sendall(rbody[i:i + step])
                        time.sleep((rule.after or 1000) / 20000)
                    continue
                if method == "HEAD":
                    entry["status"] = status
                    self._send_head(c, status, resp_headers, int(rh.get("content-length", "0") or 0))
                    continue
                self._respond(c, status, resp_headers, rbody, entry)
        except (OSError, ValueError):
            return
        finally:
            try:
                c.close()
            except OSError:
                pass
            if up is not None:
                up.close()

    def _send_head(self, c, status: int, headers: dict, length: int) -> None:
        lines = [f"HTTP/1.1 {status} X"] + [f"{k}: {v}" for k, v in headers.items()]
        lines.append(f"Content-Length: {length}")
        c.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))

    def _respond(self, c, status: int, headers: dict, body: bytes, entry: dict) -> None:
        entry["status"] = status  # before sending: the client may look at the log right after
        entry["sent"] = len(body)
        self._send_head(c, status, headers, len(body))
        c.sendall(body)
