"""``socket`` for what the container path uses, over ``_socket``: unix sockets and socket pairs
(conmon's sync, start and attach sockets), an inet datagram socket (``lo`` up in a new network
namespace).

``socket`` wraps ``_socket`` in a subclass and converts its constants to enums
(``AddressFamily``, ``SocketKind``, ``MsgFlag``...): building them imports ``enum``,
``selectors``, ``collections`` and ``functools`` and costs ~2-3 ms of every ``run``. The objects
here are ``_socket.socket`` itself, the class ``socket.socket`` derives from: the same calls
(``connect``, ``send``, ``sendall``, ``recv``, ``shutdown``, ``fileno``, ``close``), the same
errors (``OSError`` subclasses), non-inheritable as ``socket``'s are; there is no ``makefile``,
``dup`` or ``with`` (close them in a ``finally``).
"""

import _socket

AF_UNIX = _socket.AF_UNIX
AF_INET = _socket.AF_INET
SOCK_STREAM = _socket.SOCK_STREAM
SOCK_DGRAM = _socket.SOCK_DGRAM
SOCK_SEQPACKET = _socket.SOCK_SEQPACKET
SHUT_WR = _socket.SHUT_WR

error = OSError


def socket(family: int = AF_INET, type: int = SOCK_STREAM, proto: int = 0):
    """``socket.socket(family, type, proto)``."""
    return _socket.socket(family, type, proto)


def socketpair(family: int = AF_UNIX, type: int = SOCK_STREAM, proto: int = 0):
    """``socket.socketpair(family, type, proto)``: two connected sockets."""
    return _socket.socketpair(family, type, proto)
