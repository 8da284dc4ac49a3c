"""Persistent network namespaces, as podman's /run/netns handling (without ``ip netns``).

A namespace is a file ``RUNROOT/netns/NAME`` on which a child process, after
``unshare(CLONE_NEWNET)`` and bringing ``lo`` up, bind-mounts its ``/proc/self/ns/net``; the
child then exits and the mount keeps the namespace alive. The directory is a shared mount
(bound onto itself once), so an unmount reaches the copies in mount namespaces made since
(a container's), and ``remove`` really frees the namespace.
"""

from __future__ import annotations

import os

from ..._fs import read_to_eof
from ...errors import ContainerNetworkError

CLONE_NEWNET = 0x40000000
MS_BIND, MS_REC, MS_SHARED = 0x1000, 0x4000, 1 << 20
_SIOCGIFFLAGS, _SIOCSIFFLAGS, _IFF_UP = 0x8913, 0x8914, 0x1


def netns_dir(runroot: str) -> str:
    return os.path.join(runroot, "netns")


def is_mounted(path: str) -> bool:
    """Whether ``path`` is (still) a mount point: a namespace file ``create`` made and nobody removed."""
    try:
        return os.path.exists(path) and _is_mountpoint(path)
    except OSError:
        return False


def _is_mountpoint(path: str) -> bool:
    real = os.path.realpath(path)
    with open("/proc/self/mountinfo", "rb") as f:
        for line in f:
            fields = line.split(b" ")
            if len(fields) > 4 and fields[4].decode("utf-8", "surrogateescape").replace("\\040", " ") == real:
                return True
    return False


def _shared_dir(path: str) -> None:
    from ..._std import syscalls as _sys

    os.makedirs(path, mode=0o755, exist_ok=True)
    if not _is_mountpoint(path):
        _sys.mount(path, path, None, MS_BIND | MS_REC)
    _sys.mount(None, path, None, MS_SHARED | MS_REC)


def _lo_up() -> None:
    import fcntl
    import struct

    from ..._std import sock as socket

    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        req = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(s.fileno(), _SIOCGIFFLAGS, req))[1]
        fcntl.ioctl(s.fileno(), _SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | _IFF_UP))
    finally:
        s.close()


def create(runroot: str, name: str) -> str:
    """A new network namespace (only ``lo``, up) kept at ``RUNROOT/netns/NAME``; its path."""
    d = netns_dir(runroot)
    try:
        _shared_dir(d)
    except OSError as e:
        raise ContainerNetworkError(f"cannot prepare the network namespace directory {d}: {e.strerror}") from None
    path = os.path.join(d, name)
    try:
        os.close(os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0o444))
    except FileExistsError:
        raise ContainerNetworkError(f"network namespace {path} already exists") from None
    # what the child runs is imported here: a child imports nothing (another thread of this
    # process may hold an import lock at the fork, which the child would wait for forever)
    import fcntl  # noqa: F401
    import struct  # noqa: F401

    from ..._std import sock  # noqa: F401
    from ..._std import syscalls as _sys

    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: a new namespace, lo up, bound onto the file
        try:
            os.close(r)
            _sys.unshare(CLONE_NEWNET)
            _lo_up()
            _sys.mount("/proc/self/ns/net", path, None, MS_BIND)
            os._exit(0)
        except BaseException as e:  # noqa: BLE001 - reported to the parent, never raised here
            try:
                os.write(w, str(getattr(e, "strerror", None) or e).encode()[:500])
            finally:
                os._exit(1)
    os.close(w)
    try:
        msg = read_to_eof(r, 512)
    finally:
        os.close(r)
    _, status = os.waitpid(pid, 0)
    if status != 0:
        try:
            os.unlink(path)
        except OSError:
            pass
        raise ContainerNetworkError(f"cannot create network namespace {path}: {msg.decode(errors='replace') or status}")
    return path


def add_placeholders(path: str, names: list[str]) -> None:
    """A veth pair per name inside the namespace at ``path`` (``NAME`` and ``phN``), for
    netavark's teardown to delete in place of a container's vanished interfaces."""
    import subprocess

    for i, name in enumerate(names):
        p = subprocess.run(["nsenter", f"--net={path}", "ip", "link", "add", name, "type", "veth", "peer", "name",
                            f"ph{i}"], capture_output=True, text=True)
        if p.returncode != 0:
            raise ContainerNetworkError(f"cannot make a stand-in interface {name} in {path}: {p.stderr.strip()}")


def remove(path: str) -> None:
    """Unmount and delete a namespace file made by ``create`` (missing: nothing to do)."""
    from ..._std import syscalls as _sys

    try:
        _sys.umount2(path, _sys.MNT_DETACH)
    except OSError as e:
        import errno

        if e.errno not in (errno.EINVAL, errno.ENOENT):  # not mounted (any more)
            raise ContainerNetworkError(f"cannot unmount network namespace {path}: {e.strerror}") from None
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
