"""Attaching to a running container's conmon (its ``attach`` socket), with podman's detach keys.

conmon's attach socket (SOCK_SEQPACKET) carries the container's output as packets whose first
byte names the stream (2 stdout, 3 stderr); what is sent to it is the container's stdin. The
detach keys (podman's default ``ctrl-p,ctrl-q``) typed on a terminal leave the container running
and end the attachment (a prefix of them is held back until the next byte decides); when stdin is
not a terminal podman 4.3 passes them on as input, and so does pallet.
"""

from __future__ import annotations

import os

from .._std import sock as socket  # not socket: its enums and selectors cost every run
from ..errors import UsageError
from .conmon import BUF, STDERR, STDOUT  # the attach socket's stream tags and packet size

DEFAULT_DETACH_KEYS = "ctrl-p,ctrl-q"


def parse_detach_keys(text: str | None) -> bytes:
    """podman's ``--detach-keys``: comma-separated ``a``..``z`` (one character) or ``ctrl-X``
    (X one of ``a-z @ [ \\ ] ^ _``); the empty string disables detaching."""
    if text is None:
        text = DEFAULT_DETACH_KEYS
    if text == "":
        return b""
    out = bytearray()
    for key in text.split(","):
        if len(key) == 1 and key.isascii():
            out.append(ord(key))
            continue
        low = key.lower()
        if low.startswith("ctrl-") and len(key) == 6:
            c = key[5].lower()
            if "a" <= c <= "z":
                out.append(ord(c) - ord("a") + 1)
                continue
            codes = {"@": 0, "[": 27, "\\": 28, "]": 29, "^": 30, "_": 31}
            if c in codes:
                out.append(codes[c])
                continue
        raise UsageError(f"invalid detach keys {text!r}: {key!r} is not a valid key (want a-z or ctrl-a..ctrl-z, "
                         "ctrl-@, ctrl-[, ctrl-\\, ctrl-], ctrl-^, ctrl-_, comma-separated)")
    return bytes(out)


class _KeyWatch:
    """Finds the detach sequence in stdin's chunks: returns what to forward, and whether the
    sequence was typed."""

    def __init__(self, keys: bytes):
        self.keys, self.held = keys, b""

    def feed(self, chunk: bytes) -> tuple[bytes, bool]:
        if not self.keys:
            return chunk, False
        out = bytearray()
        for b in chunk:
            self.held += bytes([b])
            if self.held == self.keys:
                return bytes(out), True
            if not self.keys.startswith(self.held):
                # the longest held suffix that still begins the sequence stays held
                i = 1
                while i < len(self.held) and not self.keys.startswith(self.held[i:]):
                    i += 1
                out += self.held[:i]
                self.held = self.held[i:]
        return bytes(out), False


def relay(sock, stdin_fd: int | None = None, detach_keys: bytes = b"", streams=None) -> bool:
    """Copy the container's output to our stdout/stderr until conmon closes the socket; with
    ``stdin_fd``, our stdin goes to the container (its EOF closes the container's stdin);
    ``streams``: only these of our fds (1, 2) are written (``run --attach``).
    Returns True when the user typed the detach keys (the container keeps running)."""
    import select

    out = {k: fd for k, fd in ((STDOUT, 1), (STDERR, 2)) if streams is None or fd in streams}
    watch = [sock] + ([stdin_fd] if stdin_fd is not None else [])
    keys = _KeyWatch(detach_keys)
    while True:
        ready, _, _ = select.select(watch, [], [])
        if stdin_fd is not None and stdin_fd in ready:
            chunk = os.read(stdin_fd, 8192)
            if chunk:
                data, detached = keys.feed(chunk)
                if data:
                    try:
                        sock.sendall(data)
                    except OSError:
                        watch.remove(stdin_fd)
                        stdin_fd = None
                if detached:
                    return True
            else:
                watch.remove(stdin_fd)
                stdin_fd = None
                try:
                    sock.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
        if sock in ready:
            try:
                pkt = sock.recv(BUF)
            except ConnectionResetError:
                return False
            if not pkt:
                return False
            fd = out.get(pkt[0])
            if fd is not None and len(pkt) > 1:
                view = memoryview(pkt)[1:]
                while view:
                    try:
                        n = os.write(fd, view)
                    except BrokenPipeError:
                        break
                    view = view[n:]


class raw_tty:
    """Our terminal in raw mode while attached to a container's console (its own line
    discipline does the echo and line editing)."""

    def __init__(self, fd: int, active: bool):
        self.fd, self.active, self.saved = fd, active and os.isatty(fd), None

    def __enter__(self):
        if self.active:
            import termios
            import tty

            self.saved = termios.tcgetattr(self.fd)
            tty.setraw(self.fd, termios.TCSANOW)  # not TCSAFLUSH: what was typed already is input
        return self

    def __exit__(self, *exc):
        if self.saved is not None:
            import termios

            termios.tcsetattr(self.fd, termios.TCSADRAIN, self.saved)
        return False


def attach(ctrs, text: str, *, no_stdin: bool = False, detach_keys: bytes = b"\x10\x11") -> tuple[str, bool]:
    """Attach to the running container ``text``: (its ID, whether the user detached)."""
    from . import conmon
    from .container import META, RUNNING

    c = ctrs.get(text)
    cid, meta = c["id"], c["metadata"][META]
    if ctrs.state(cid).get("state") != RUNNING:
        from ..errors import ContainerStateError

        raise ContainerStateError("you can only attach to running containers")
    sock = conmon.attach_socket(os.path.join(ctrs.data, cid, "userdata"))
    try:
        stdin = 0 if meta.get("interactive") and not no_stdin else None
        with raw_tty(0, stdin is not None and meta.get("tty")):
            # podman 4.3 watches for the detach keys only when its stdin is a terminal; else they are input
            return cid, relay(sock, stdin, detach_keys if os.isatty(0) else b"")
    finally:
        sock.close()


class sig_proxy:
    """podman's --sig-proxy (its default): the signals pallet gets while it relays a foreground
    container's output go to the container (Ctrl-C, kill PID), which then exits as it chooses."""

    SIGNALS = (1, 2, 3, 10, 12, 15)  # HUP INT QUIT USR1 USR2 TERM

    def __init__(self, ctrs, cid, enabled=True):
        self.ctrs, self.cid, self.old, self.enabled = ctrs, cid, {}, enabled

    def __enter__(self):
        import _signal

        if not self.enabled:  # --sig-proxy=false: pallet's own handling (it exits, the container runs on)
            return self

        for n in self.SIGNALS:
            self.old[n] = _signal.signal(n, self._forward)
        return self

    def _forward(self, signum, frame):
        self.ctrs.signal(self.cid, signum)

    def __exit__(self, *exc):
        import _signal

        for n, h in self.old.items():
            _signal.signal(n, h)
        return False
