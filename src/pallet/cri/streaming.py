"""The streaming server: Exec, Attach and PortForward answer a URL; the client (the kubelet,
crictl, critest) POSTs to it with ``Upgrade: SPDY/3.1`` and then speaks SPDY streams, or (client-go
1.29+, kubectl 1.30+) GETs it with ``Upgrade: websocket`` and speaks a channel protocol
(``cri/websocket.py``; the same handlers below run on its channels as on SPDY streams).

As the kubelet's streaming server does: each URL carries a random single-use token that expires
after a minute (``/exec/TOKEN``, ``/attach/TOKEN``, ``/portforward/TOKEN``); the server listens on
``stream_address:stream_port`` (127.0.0.1 and a free port by default) with no other
authentication, so it should not listen beyond the node.

Exec and attach (``X-Stream-Protocol-Version`` ``v4.channel.k8s.io``, ``v3`` or ``v2``): the client
opens one stream per ``streamType`` header: ``error`` always, ``stdin``/``stdout`` when asked,
``stderr`` unless there is a terminal, ``resize`` (v3+) with one (JSON ``{"Width":W,"Height":H}``
objects). When the command ends, stdout and stderr are closed, the error stream gets the result
(v4: a ``metav1.Status`` JSON, ``Success`` or ``Failure`` with reason ``NonZeroExitCode`` and an
``ExitCode`` cause; v2/v3: the error text, nothing on success) and the session ends.

Port forward (``portforward.k8s.io``): for each connection the client opens an ``error`` and a
``data`` stream with the same ``requestID`` and the ``port``; the server connects to
127.0.0.1:PORT in the pod's network namespace and copies both ways; a failure is written to the
error stream.
"""

from __future__ import annotations

import base64
import os
import queue
import secrets
import socket
import threading
import time

from .._std import json
from . import spdy

TOKEN_TTL = 60
STREAM_CREATION_TIMEOUT = 30
#: how long a terminal exec waits for the client's first size before it starts without one
FIRST_SIZE_WAIT = 2.0  # (kubectl and crictl send it at once; 0.5 s was missed on a loaded machine)
EXEC_PROTOCOLS = ("v4.channel.k8s.io", "v3.channel.k8s.io", "v2.channel.k8s.io")
PORTFORWARD_PROTOCOL = "portforward.k8s.io"
#: over WebSocket (the client's order of preference decides among them)
WS_EXEC_PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io", "v4.base64.channel.k8s.io", "channel.k8s.io",
                     "base64.channel.k8s.io")
WS_PORTFORWARD_PROTOCOLS = ("portforward.k8s.io", "v4.channel.k8s.io", "v4.base64.channel.k8s.io")
#: the exec and attach channels' numbers over WebSocket
WS_CHANNELS = {"stdin": 0, "stdout": 1, "stderr": 2, "error": 3, "resize": 4}
#: the protocols whose end is a metav1.Status (the older ones send the error's text)
STATUS_PROTOCOLS = ("v4.channel.k8s.io", "v5.channel.k8s.io", "v4.base64.channel.k8s.io")
#: port-forward requests (error + data streams) a session may have half-open at once
MAX_PENDING_PAIRS = 256
#: seconds a connection has to send its whole request head (a peer dripping a byte at a time
#: is cut off then, not after 16 KiB times a per-read timeout)
HEAD_DEADLINE = 10.0
#: connections still sending their head at once; more are closed as they come (each waits in a
#: thread of its own before it has shown a token)
MAX_HANDSHAKES = 128
CLONE_NEWNET = 0x40000000


class Request:
    """What a URL stands for: ``kind`` (exec, attach, portforward) and its values."""

    def __init__(self, kind: str, **values):
        self.kind, self.values, self.expires = kind, values, time.monotonic() + TOKEN_TTL


class StreamServer:
    def __init__(self, ctx, address: str = "127.0.0.1", port: int = 0):
        self.ctx = ctx
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        self.sock = socket.create_server((address, port), family=family, backlog=64)
        host, self.port = self.sock.getsockname()[:2]
        if host in ("0.0.0.0", "::"):
            host = "127.0.0.1" if family == socket.AF_INET else "::1"
        self.base = f"http://[{host}]:{self.port}" if ":" in host else f"http://{host}:{self.port}"
        self._tokens: dict[str, Request] = {}
        self._lock = threading.Lock()
        self._thread = None
        self._handshakes = threading.BoundedSemaphore(MAX_HANDSHAKES)

    def start(self) -> "StreamServer":
        self._thread = threading.Thread(target=self._accept, name="cri-streaming", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()

    def url(self, kind: str, **values) -> str:
        token = secrets.token_urlsafe(16)
        now = time.monotonic()
        with self._lock:
            for t in [t for t, r in self._tokens.items() if r.expires < now]:
                del self._tokens[t]
            self._tokens[token] = Request(kind, **values)
        return f"{self.base}/{kind}/{token}"

    def _take(self, kind: str, token: str) -> Request | None:
        with self._lock:
            r = self._tokens.get(token)
            if r is None or r.kind != kind or r.expires < time.monotonic():
                return None
            del self._tokens[token]
            return r

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            if not self._handshakes.acquire(blocking=False):  # too many heads pending: this one waits not
                conn.close()
                continue
            threading.Thread(target=self._connection, args=(conn,), name="cri-stream", daemon=True).start()

    # -- HTTP ----------------------------------------------------------------------------------
    def _connection(self, conn: socket.socket) -> None:
        try:
            try:
                head = _read_head(conn, time.monotonic() + HEAD_DEADLINE)
            finally:
                self._handshakes.release()
            conn.settimeout(None)
            if head is None:
                return _respond(conn, 400, "bad request")
            method, path, headers = head
            parts = path.split("?", 1)[0].strip("/").split("/")
            if method not in ("GET", "POST") or len(parts) != 2 or parts[0] not in ("exec", "attach", "portforward"):
                return _respond(conn, 404, "not found")
            upgrade = [v.strip().lower() for v in headers.get("upgrade", [""])[0].split(",")]
            if "websocket" in upgrade:
                return self._websocket(conn, method, path, parts, headers)
            if "spdy/3.1" not in upgrade:
                return _respond(conn, 400, "want Upgrade: SPDY/3.1 or Upgrade: websocket")
            offered = [p.strip() for v in headers.get("x-stream-protocol-version", []) for p in v.split(",")]
            known = (PORTFORWARD_PROTOCOL,) if parts[0] == "portforward" else EXEC_PROTOCOLS
            proto = next((p for p in offered if p in known), None)
            if proto is None:
                return _respond(conn, 403, f"no supported stream protocol among {offered}: want one of "
                                           f"{', '.join(known)}")
            req = self._take(parts[0], parts[1])  # taken only by a request that can use it
            if req is None:
                return _respond(conn, 404, "unknown or expired streaming token")
            conn.sendall(("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n"
                          f"X-Stream-Protocol-Version: {proto}\r\n\r\n").encode())
        except OSError:
            conn.close()
            return
        incoming: queue.Queue = queue.Queue()
        sess = spdy.Session(conn, server=True, on_stream=incoming.put).start()
        try:
            if req.kind == "portforward":
                _PortForward(self.ctx, sess, incoming, req.values).run()
            else:
                _Exec(self.ctx, sess, incoming, req, proto).run()
        except Exception:  # a session's failure ends that session, never the server
            import logging

            logging.getLogger("pallet.cri").exception("streaming session failed")
        finally:
            sess.close()


    # -- WebSocket -----------------------------------------------------------------------------
    def _websocket(self, conn: socket.socket, method: str, path: str, parts: list, headers: dict) -> None:
        from urllib.parse import parse_qs, urlsplit

        from . import websocket

        try:
            if method != "GET":
                return _respond(conn, 400, "a websocket upgrade is a GET")
            if headers.get("sec-websocket-version", [""])[0].strip() != "13":
                return _respond(conn, 426, "want Sec-WebSocket-Version: 13", ["Sec-WebSocket-Version: 13"])
            key = headers.get("sec-websocket-key", [""])[0].strip()
            try:
                if len(base64.b64decode(key, validate=True)) != 16:
                    raise ValueError
            except ValueError:
                return _respond(conn, 400, "want a Sec-WebSocket-Key of 16 bytes in base64")
            offered = [p.strip() for v in headers.get("sec-websocket-protocol", []) for p in v.split(",") if p.strip()]
            known = WS_PORTFORWARD_PROTOCOLS if parts[0] == "portforward" else WS_EXEC_PROTOCOLS
            proto = next((p for p in offered if p in known), None)
            if proto is None and offered:
                return _respond(conn, 403, f"no supported websocket protocol among {offered}: want one of "
                                           f"{', '.join(known)}")
            proto = proto or ""
            ports: list[int] = []
            if parts[0] == "portforward":  # the ports are the query's (the kubelet's rule)
                for text in parse_qs(urlsplit(path).query).get("port", []):
                    for p in text.split(","):
                        if not (p.isascii() and p.isdigit() and len(p) <= 5 and 0 < int(p) < 65536):
                            return _respond(conn, 400, f"invalid port {p!r} in the query")
                        ports.append(int(p))
                if not ports or len(ports) > 64:
                    return _respond(conn, 400, "want 1 to 64 port=N query parameters")
            req = self._take(parts[0], parts[1])
            if req is None:
                return _respond(conn, 404, "unknown or expired streaming token")
            head = ("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                    f"Sec-WebSocket-Accept: {websocket.accept_key(key)}\r\n")
            if proto:
                head += f"Sec-WebSocket-Protocol: {proto}\r\n"
            conn.sendall((head + "\r\n").encode())
        except OSError:
            conn.close()
            return
        try:
            peer = "%s:%s" % conn.getpeername()[:2]
        except OSError:
            peer = ""
        b64 = ".base64." in "." + proto
        if req.kind == "portforward":
            channels = {}
            for i, port in enumerate(ports):
                channels[2 * i] = {"streamtype": "data", "port": str(port), "requestid": str(i)}
                channels[2 * i + 1] = {"streamtype": "error", "port": str(port), "requestid": str(i)}
        else:
            v = req.values
            channels = {WS_CHANNELS["error"]: {"streamtype": "error"}}
            for name in ("stdin", "stdout", "stderr"):
                if v.get(name) and not (name == "stderr" and v.get("tty")):
                    channels[WS_CHANNELS[name]] = {"streamtype": name}
            if v.get("tty"):
                channels[WS_CHANNELS["resize"]] = {"streamtype": "resize"}
        sess = websocket.Session(conn, server=True, channels=channels, base64=b64,
                                 close_signal=proto == "v5.channel.k8s.io", peer=peer).start()
        try:
            if req.kind == "portforward":
                _WSPortForward(self.ctx, sess, req.values).run()
            else:
                # the kubelet's first message: an empty one on the first output channel
                first = next(n for n in ("stdout", "stderr", "error") if WS_CHANNELS[n] in channels)
                sess.send_data(WS_CHANNELS[first], b"")
                incoming: queue.Queue = queue.Queue()
                for st in sess.streams.values():
                    incoming.put(st)
                _Exec(self.ctx, sess, incoming, req, proto or "channel.k8s.io").run()
        except Exception:  # a session's failure ends that session, never the server
            import logging

            logging.getLogger("pallet.cri").exception("streaming session failed")
        finally:
            sess.close()


def _read_head(conn: socket.socket, deadline: float):
    """(method, path, headers) of a request head of at most 16 KiB that arrived by ``deadline``
    (monotonic), else None."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        left = deadline - time.monotonic()
        if len(buf) > 16 << 10 or left <= 0:
            return None
        conn.settimeout(left)
        b = conn.recv(4096)
        if not b:
            return None
        buf += b
    head = buf.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    lines = head.split("\r\n")
    first = lines[0].split(" ")
    if len(first) != 3:
        return None
    headers: dict = {}
    for line in lines[1:]:
        k, sep, v = line.partition(":")
        if sep:
            headers.setdefault(k.strip().lower(), []).append(v.strip())
    return first[0], first[1], headers


def _respond(conn: socket.socket, code: int, text: str, extra: list[str] = ()) -> None:
    reason = {400: "Bad Request", 403: "Forbidden", 404: "Not Found", 426: "Upgrade Required"}.get(code, "Error")
    body = (text + "\n").encode()
    more = "".join(h + "\r\n" for h in extra)
    try:
        conn.sendall(f"HTTP/1.1 {code} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\n"
                     f"{more}Connection: close\r\n\r\n".encode() + body)
    except OSError:
        pass
    conn.close()


def _pump(read, write, done=None) -> threading.Thread:
    """A thread copying ``read()`` chunks to ``write`` until b"" (or an error), then ``done()``."""

    def run():
        try:
            while True:
                b = read()
                if not b:
                    break
                write(b)
        except (OSError, ValueError):  # the other end went (a closed pipe, file or stream)
            pass
        finally:
            if done is not None:
                try:
                    done()
                except OSError:
                    pass

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def _file_writer(f):
    """All of each chunk to the raw file ``f`` (a pipe or terminal takes what it has room for)."""
    def write(b):
        view = memoryview(b)
        while view:
            view = view[f.write(view):]

    return write


def _file_reader(f):
    def read():
        return f.read(32 << 10) or b""  # (None: never, the file blocks)

    return read


def _fd_reader(fd: int):
    def read():
        try:
            return os.read(fd, 32 << 10)
        except OSError:  # EIO: a terminal whose last process ended
            return b""

    return read


class _Sizes:
    """The ``resize`` stream: consecutive JSON objects ``{"Width": W, "Height": H}``."""

    def __init__(self, stream):
        import json as stdjson

        self.stream, self.text, self.dec = stream, "", stdjson.JSONDecoder()

    def next(self, timeout: float | None = None):
        """The next (width, height), None at the stream's end (or junk); TimeoutError."""
        while True:
            body = self.text.lstrip()
            if body:
                try:
                    doc, end = self.dec.raw_decode(body)
                except ValueError:
                    doc = None
                else:
                    self.text = body[end:]
                    try:
                        return int(doc.get("Width") or 0), int(doc.get("Height") or 0)
                    except (AttributeError, ValueError, TypeError):
                        continue
            if len(self.text) > 4096:  # not JSON objects at all
                return None
            b = self.stream.read(timeout)
            if not b:
                return None
            self.text += b.decode("utf-8", "replace")

    def follow(self, apply) -> threading.Thread:
        """Applies every further size, on a thread of its own."""

        def run():
            while True:
                size = self.next()
                if size is None:
                    return
                try:
                    apply(*size)
                except OSError:
                    pass

        t = threading.Thread(target=run, daemon=True)
        t.start()
        return t


def _set_winsize(fd: int, width: int, height: int) -> None:
    import fcntl
    import struct
    import termios

    if 0 < width < 65536 and 0 < height < 65536:
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))


def _collect(sess, incoming: queue.Queue, want: set) -> dict | None:
    """The streams named in ``want`` (by ``streamtype``), waited for (bounded)."""
    got: dict = {}
    deadline = time.monotonic() + STREAM_CREATION_TIMEOUT
    while not want <= got.keys():
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        try:
            st = incoming.get(timeout=min(left, 0.5))
        except queue.Empty:
            if sess.done.is_set():
                return None
            continue
        got[st.headers.get("streamtype", "")] = st
    return got


class _Exec:
    def __init__(self, ctx, sess, incoming, req: Request, proto: str):
        self.ctx, self.sess, self.incoming, self.req, self.proto = ctx, sess, incoming, req, proto
        self.v = req.values

    def run(self) -> None:
        v = self.v
        tty = bool(v.get("tty"))
        want = {"error"}
        if v.get("stdin"):
            want.add("stdin")
        if v.get("stdout"):
            want.add("stdout")
        if v.get("stderr") and not tty:
            want.add("stderr")
        if tty and self.proto != "v2.channel.k8s.io":
            want.add("resize")
        streams = _collect(self.sess, self.incoming, want)
        if streams is None:
            return
        try:
            if self.req.kind == "exec":
                code = self._exec(streams, tty)
            else:
                code = self._attach(streams, tty)
            err = None
        except Exception as e:  # noqa: BLE001 - reported to the client, one line
            code, err = None, str(e) or type(e).__name__
        for name in ("stdout", "stderr"):
            if name in streams:
                streams[name].close()
        self._status(streams["error"], code, err)
        streams["error"].close()

    def _status(self, stream, code, err) -> None:
        v4 = self.proto in STATUS_PROTOCOLS
        if err is None and code == 0:
            if v4:
                stream.write(b'{"metadata":{},"status":"Success"}')
            return
        if err is None:
            err = f"command terminated with non-zero exit code: exit status {code}"
        if not v4:
            stream.write(err.encode())
            return
        doc = {"metadata": {}, "status": "Failure", "message": err}
        if code is not None:
            doc.update(reason="NonZeroExitCode",
                       details={"causes": [{"reason": "ExitCode", "message": str(code)}]})
        else:
            doc["reason"] = "InternalError"
        stream.write(json.dumps(doc).encode())

    # exec: the OCI runtime's exec, as ExecSync runs it
    def _exec(self, streams: dict, tty: bool) -> int:
        import tempfile

        from .._std import proc  # its spawn lets the server's other threads run (subprocess's holds the GIL)

        v = self.v
        with tempfile.TemporaryDirectory(prefix="exec-", dir=self.ctx.containers.base) as tmp:
            argv = [v["runtime"], "--root", self.ctx.containers.oci_root, "exec", "--pid-file",
                    os.path.join(tmp, "pid")]
            if not tty:
                p = proc.Popen(argv + [v["cid"]] + list(v["cmd"]),
                               stdin=proc.PIPE if "stdin" in streams else proc.DEVNULL,
                               stdout=proc.PIPE if "stdout" in streams else proc.DEVNULL,
                               stderr=proc.PIPE if "stderr" in streams else proc.DEVNULL)
                # our pipes' ends as file objects: a pump still running after a close gets
                # ValueError instead of writing to whatever reuses the number
                ends = {child: open(fd, "wb" if child == 0 else "rb", buffering=0)
                        for child in (0, 1, 2) if (fd := p.take_pipe(child)) is not None}
                try:
                    outs = []
                    if 0 in ends:
                        _pump(streams["stdin"].read, _file_writer(ends[0]), ends[0].close)
                    for child, name in ((1, "stdout"), (2, "stderr")):
                        if child in ends:
                            outs.append(_pump(_file_reader(ends[child]), streams[name].write))
                    rc = p.wait()
                    for t in outs:
                        t.join()
                    return rc
                finally:
                    for f in ends.values():
                        f.close()
                    p.close()
            # a terminal. The client's first size (sent at once from a terminal) is the console's
            # size from the start (process.consoleSize, or the size of runc's own terminal): a
            # command asking for it at once must not see 0x0
            from ..containers.exec import ExecOptions, process
            from .ctrs import console_socket_exec

            sizes = _Sizes(streams["resize"]) if "resize" in streams else None
            first = None
            if sizes is not None:
                try:
                    first = sizes.next(FIRST_SIZE_WAIT)
                except TimeoutError:
                    pass
            c = self.ctx.containers.get(v["cid"])
            spec = process(self.ctx.containers, v["cid"], c["metadata"]["pallet"],
                           ExecOptions(v["cmd"], interactive="stdin" in streams, tty=True))
            if first and 0 < first[0] < 65536 and 0 < first[1] < 65536:
                spec["consoleSize"] = {"width": first[0], "height": first[1]}
            with open(os.path.join(tmp, "process.json"), "w") as f:
                json.dump(spec, f)
            if not console_socket_exec(v["runtime"]):
                return self._exec_on_pty(argv + ["--process", os.path.join(tmp, "process.json"), v["cid"]],
                                         streams, sizes, first, os.path.join(tmp, "pid"))
            # pallet-runtime sends the terminal's master over a console socket
            listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            listener.bind(os.path.join(tmp, "console"))
            listener.listen(1)
            p = proc.Popen(argv + ["--process", os.path.join(tmp, "process.json"), "--console-socket",
                                   os.path.join(tmp, "console"), v["cid"]],
                           stdin=proc.DEVNULL, stdout=proc.DEVNULL, stderr=proc.PIPE)
            errors = open(p.take_pipe(2), "rb")
            master = None
            try:
                listener.settimeout(0.1)
                while master is None:
                    try:
                        conn, _ = listener.accept()
                    except socket.timeout:
                        if p.poll() is not None:
                            err = errors.read().decode("utf-8", "replace").strip()
                            raise RuntimeError(err.splitlines()[-1] if err else
                                               f"the runtime's exec failed (exit {p.returncode})")
                        continue
                    with conn:
                        _, fds, _, _ = socket.recv_fds(conn, 4096, 1)
                    if fds:
                        master = fds[0]
                if sizes is not None:  # the sizes after the first (at its end: returns at once)
                    sizes.follow(lambda w, h: _set_winsize(master, w, h))
                if "stdin" in streams:
                    _pump(streams["stdin"].read, lambda b: _write_all(master, b))
                out = _pump(_fd_reader(master), streams["stdout"].write if "stdout" in streams else (lambda b: None))
                rc = p.wait()
                out.join(5)
                return rc
            finally:
                listener.close()
                if master is not None:
                    os.close(master)
                p.close()
                errors.close()

    @staticmethod
    def _exec_on_pty(argv: list, streams: dict, sizes, first, pid_file: str) -> int:
        """runc and crun with a terminal and no console socket relay the container's terminal to
        their own stdio (raw): their stdio is a pty of ours, whose master the streams are copied
        to and from. Its size is the container terminal's at the start; later sizes go to runc
        by SIGWINCH (it copies our pty's size), and to the process's own terminal (crun 1.8 does
        not follow SIGWINCH)."""
        import signal

        from .._std import proc

        fd, slave = os.openpty()
        # a file object, not the number: a pump still running after the close gets ValueError
        # instead of writing to whatever reuses the number
        master = open(fd, "r+b", buffering=0)
        try:
            import tty as ttymod

            ttymod.setraw(slave)  # as the runtime sets it, but before the first byte: no \r\r\n
            if first:
                _set_winsize(fd, *first)
            p = proc.Popen(argv, stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
        except BaseException:
            master.close()
            raise
        finally:
            os.close(slave)
        try:
            def resize(w, h):
                _set_winsize(master.fileno(), w, h)
                if p.poll() is None:
                    p.send_signal(signal.SIGWINCH)
                    _resize_process_terminal(pid_file, w, h)

            def read():
                try:
                    return master.read(32 << 10)
                except OSError:  # EIO: the runtime and its terminal are gone
                    return b""

            if sizes is not None:
                sizes.follow(resize)
            if "stdin" in streams:
                _pump(streams["stdin"].read, _file_writer(master))
            out = _pump(read, streams["stdout"].write if "stdout" in streams else (lambda b: None))
            rc = p.wait()
            out.join(5)  # what the runtime wrote before it exited (then EIO: no slave left)
            return rc
        finally:
            p.close()
            master.close()

    # attach: conmon's attach socket (its output packets tagged 2 stdout, 3 stderr; our bytes its stdin)
    def _attach(self, streams: dict, tty: bool) -> int:
        from ..containers import conmon

        userdata = os.path.join(self.ctx.containers.data, self.v["cid"], "userdata")
        sock = conmon.attach_socket(userdata)
        try:
            if "resize" in streams:
                _Sizes(streams["resize"]).follow(lambda w, h: _conmon_resize(userdata, w, h))
            if "stdin" in streams:
                _pump(streams["stdin"].read, sock.sendall, lambda: sock.shutdown(socket.SHUT_WR))
            out = {conmon.STDOUT: streams.get("stdout"), conmon.STDERR: streams.get("stderr") or
                   (streams.get("stdout") if tty else None)}
            while True:
                try:
                    pkt = sock.recv(conmon.BUF)
                except OSError:
                    break
                if not pkt:
                    break
                st = out.get(pkt[0])
                if st is not None and len(pkt) > 1:
                    try:
                        st.write(pkt[1:])
                    except OSError:
                        break
            return 0
        finally:
            sock.close()


#: the device majors of UNIX 98 pty slaves (Documentation/admin-guide/devices.txt)
PTY_SLAVE_MAJORS = range(136, 144)


def _resize_process_terminal(pid_file: str, width: int, height: int) -> None:
    """Sizes the terminal on the stdin of the exec'd process named by the runtime's pid file,
    when that is a pty slave (checked before it is opened: the container owns its descriptors)."""
    import stat

    try:
        with open(pid_file) as f:
            text = f.read(32).strip()
        if not text.isdigit():
            return
        path = f"/proc/{int(text)}/fd/0"
        st = os.stat(path)
        if not stat.S_ISCHR(st.st_mode) or os.major(st.st_rdev) not in PTY_SLAVE_MAJORS:
            return
        fd = os.open(path, os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            if os.isatty(fd) and os.fstat(fd).st_rdev == st.st_rdev:
                _set_winsize(fd, width, height)
        finally:
            os.close(fd)
    except (OSError, ValueError):
        pass


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _conmon_resize(userdata: str, width: int, height: int) -> None:
    """conmon's ``ctl`` FIFO: ``1 HEIGHT WIDTH`` resizes the container's terminal."""
    import stat

    if not (0 < width < 65536 and 0 < height < 65536):
        return
    fd = os.open(os.path.join(userdata, "ctl"), os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOFOLLOW)
    try:
        if stat.S_ISFIFO(os.fstat(fd).st_mode):
            os.write(fd, f"1 {height} {width}\n".encode())
    finally:
        os.close(fd)


def dial_in_netns(netns: str | None, port: int, timeout: float = 10) -> socket.socket:
    """A TCP connection to 127.0.0.1:``port`` (then ::1) made in the network namespace at
    ``netns`` (None: ours). The namespace is entered by a thread of its own, which then ends: a
    socket stays in the namespace it was made in."""
    from .._std import futures

    def run():
        if netns:
            from .._std import syscalls

            fd = os.open(netns, os.O_RDONLY | os.O_CLOEXEC)
            try:
                syscalls.setns(fd, CLONE_NEWNET)
            finally:
                os.close(fd)
        last = None
        for host in ("127.0.0.1", "::1"):
            try:
                s = socket.create_connection((host, port), timeout=timeout)
                s.settimeout(None)
                return s
            except OSError as e:
                last = e
        raise last

    try:
        return futures.submit(run, "cri-netns-dial").result()
    except OSError as e:
        raise ConnectionError(f"connecting to port {port} in the pod: {e.strerror or e}") from None


class _WSPortForward:
    """Port forward over WebSocket: a channel pair per port of the query (data ``2i``, error
    ``2i+1``), each starting with the port (2 bytes, little endian) as the kubelet sends it; one
    connection to each port, the session ends when all are done."""

    def __init__(self, ctx, sess, values: dict):
        self.ctx, self.sess, self.v = ctx, sess, values

    def run(self) -> None:
        import struct

        fwd = _PortForward(self.ctx, self.sess, None, self.v)
        threads = []
        for n in sorted(self.sess.streams)[::2]:
            data, err = self.sess.streams[n], self.sess.streams[n + 1]
            prefix = struct.pack("<H", int(data.headers["port"]))
            data.write(prefix)
            err.write(prefix)
            t = threading.Thread(target=fwd._forward, args=({"data": data, "error": err},), daemon=True)
            t.start()
            threads.append(t)
        for t in threads:
            t.join()


class _PortForward:
    def __init__(self, ctx, sess, incoming, values: dict):
        self.ctx, self.sess, self.incoming, self.v = ctx, sess, incoming, values

    def run(self) -> None:
        pending: dict = {}
        while True:
            try:
                st = self.incoming.get(timeout=0.5)
            except queue.Empty:
                if self.sess.done.is_set():
                    return
                continue
            rid = st.headers.get("requestid", "")
            kind = st.headers.get("streamtype", "")
            if kind not in ("error", "data"):
                st.reset()
                continue
            if rid not in pending and len(pending) >= MAX_PENDING_PAIRS:
                st.reset()  # halves of pairs that never complete: bounded
                continue
            pair = pending.setdefault(rid, {})
            pair[kind] = st
            if len(pair) == 2:
                del pending[rid]
                threading.Thread(target=self._forward, args=(pair,), daemon=True).start()

    def _forward(self, pair: dict) -> None:
        data, err = pair["data"], pair["error"]
        try:
            text = data.headers.get("port", "")
            port = int(text) if text.isascii() and text.isdigit() and len(text) <= 5 else 0
            if not 0 < port < 65536:
                raise ConnectionError(f"invalid port {text!r}")
            allowed = self.v.get("ports") or []
            if allowed and port not in allowed:
                raise ConnectionError(f"port {port} was not among the PortForward request's ports {allowed}")
            conn = dial_in_netns(self.v.get("netns"), port)
        except ConnectionError as e:
            try:
                err.write(str(e).encode())
            except OSError:
                pass
            err.close()
            data.close()
            return
        try:
            def half_close():
                try:
                    conn.shutdown(socket.SHUT_WR)
                except OSError:
                    pass

            _pump(data.read, conn.sendall, half_close)
            back = _pump(lambda: conn.recv(32 << 10), data.write, data.close)
            back.join()
        finally:
            conn.close()
            err.close()
