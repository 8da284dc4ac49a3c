"""A user namespace with given id maps, as an fd: what an id-mapped mount needs
(``mount_setattr(MOUNT_ATTR_IDMAP)``), for the store's layers and the runtime's mounts alike."""

from __future__ import annotations

import os

from ._std import syscalls as _sys
from .errors import PalletError

CLONE_NEWUSER = 0x10000000


def userns_fd(uid_map, gid_map, error=PalletError) -> int:
    """An fd of a new user namespace with these maps (``[[container, host, size], ...]``); the
    process that made it is gone when this returns. Failures raise ``error`` (the caller's
    class of the hierarchy: the store's, the runtime's)."""
    r, w = os.pipe()
    r2, w2 = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child only makes the namespace and waits
        try:
            os.close(r)
            os.close(w2)
            _sys.unshare(CLONE_NEWUSER)
            os.write(w, b"1")
            os.read(r2, 1)
        finally:
            os._exit(0)
    os.close(w)
    os.close(r2)
    try:
        if os.read(r, 1) != b"1":
            raise error("cannot make a user namespace for an id-mapped mount")
        for kind, mapping in (("uid", uid_map), ("gid", gid_map)):
            lines = "".join(f"{c} {h} {n}\n" for c, h, n in mapping)
            try:
                with open(f"/proc/{pid}/{kind}_map", "w") as f:
                    f.write(lines)
            except OSError as e:
                raise error(f"the kernel refused the {kind} mapping {lines.strip()!r}: {e.strerror}") from None
        return os.open(f"/proc/{pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    finally:
        os.close(w2)
        os.close(r)
        os.waitpid(pid, 0)
