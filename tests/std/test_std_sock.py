"""``pallet._std.sock`` against ``socket``, the module it stands in for (``socket`` builds enums
and imports ``selectors``): the same packets, the same errors, the same inheritance."""

from __future__ import annotations

import os
import socket

import pytest

from pallet._std import sock

pytestmark = pytest.mark.unit


def test_constants_are_sockets():
    for name in ("AF_UNIX", "AF_INET", "SOCK_STREAM", "SOCK_DGRAM", "SOCK_SEQPACKET", "SHUT_WR"):
        assert getattr(sock, name) == int(getattr(socket, name))


@pytest.mark.parametrize("mod", [sock, socket])
def test_seqpacket_pairs_and_unix_connects_as_socket(mod, tmp_path):
    a, b = mod.socketpair(mod.AF_UNIX, mod.SOCK_SEQPACKET)
    try:
        assert not os.get_inheritable(a.fileno()) and not os.get_inheritable(b.fileno())
        a.send(b"\x02one")
        a.sendall(b"\x03two")
        assert (b.recv(100), b.recv(100)) == (b"\x02one", b"\x03two")  # packet boundaries kept
        a.shutdown(mod.SHUT_WR)
        assert b.recv(100) == b""
    finally:
        a.close()
        b.close()
    path = str(tmp_path / "attach")
    c = mod.socket(mod.AF_UNIX, mod.SOCK_SEQPACKET)
    try:
        with pytest.raises(FileNotFoundError):
            c.connect(path)
    finally:
        c.close()
    server = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    server.bind(path)
    c = mod.socket(mod.AF_UNIX, mod.SOCK_SEQPACKET)
    try:
        with pytest.raises(ConnectionRefusedError):  # bound, not listening
            c.connect(path)
        server.listen(1)
        c2 = mod.socket(mod.AF_UNIX, mod.SOCK_SEQPACKET)
        c2.connect(path)
        peer, _ = server.accept()
        peer.send(b"hi")
        assert c2.recv(10) == b"hi"
        peer.close()
        c2.close()
    finally:
        c.close()
        server.close()
