"""The TCP server the test stand-ins share (fault proxy, forward proxy, TLS terminator,
scripted registries): one listening socket on 127.0.0.1 on a port of its own, and an accept
loop on a daemon thread."""

from __future__ import annotations

import socket
import threading


class TCPServer:
    """Listens on 127.0.0.1 (``port``; ``host`` is "127.0.0.1:PORT") and hands each accepted
    connection to ``on_connection``, which serves it with ``serve(conn)`` on a thread of its
    own (override it to serve on the accepting thread). A subclass sets its own state first
    and calls ``super().__init__()`` last: the accept loop starts there. ``stop()`` (or
    ``close()``) closes the listening socket, which ends the loop."""

    def __init__(self, backlog: int = 16, reuse_addr: bool = False):
        self.sock = socket.socket()
        if reuse_addr:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(backlog)
        self.port = self.sock.getsockname()[1]
        self.host = f"127.0.0.1:{self.port}"
        self.accept_thread = threading.Thread(target=self._accept, daemon=True)
        self.accept_thread.start()

    def _accept(self) -> None:
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.on_connection(c)

    def on_connection(self, c: socket.socket) -> None:
        threading.Thread(target=self.serve, args=(c,), daemon=True).start()

    def serve(self, c: socket.socket) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    close = stop


def relay(a, b, seen=None, idle: float = 30) -> None:
    """Copy bytes both ways between sockets ``a`` (the client's; a TLS socket too: what it
    has decrypted already is read first) and ``b`` until either side closes or nothing moves
    for ``idle`` seconds; ``seen(data)`` is called with every chunk from ``a`` before it is
    sent on. OSError ends the relay; closing the sockets is the caller's."""
    import select

    while True:
        pending = getattr(a, "pending", None)
        r = [a] if pending and pending() else select.select([a, b], [], [], idle)[0]
        if not r:
            return
        if a in r:
            data = a.recv(65536)
            if not data:
                return
            if seen is not None:
                seen(data)
            b.sendall(data)
        if b in r:
            data = b.recv(65536)
            if not data:
                return
            a.sendall(data)
