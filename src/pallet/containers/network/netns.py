"""Persistent network namespaces, as podman's /run/netns handling (without ``ip netns``).

A namespace is a file ``RUNROOT/netns/NAME`` onto which we bind-mount the
``/proc/PID/ns/net`` of a child that made it (``unshare(CLONE_NEWNET)``, ``lo`` up; inside a
container's user namespace when it has one); the child then exits and the mount keeps the
namespace alive. The directory is a shared mount
(bound onto itself once), so an unmount reaches the copies in mount namespaces made since
(a container's), and ``remove`` really frees the namespace. When the last namespace file is
removed, the directory's own mount goes too (under ``RUNROOT/netns.lock``, which ``create``
holds while it prepares the directory and makes its file): nothing stays mounted under the
run root once the last container is gone (podman keeps its namespaces in ``/run/netns``, so
``rm -rf RUNROOT`` works there; it must here too).
"""

from __future__ import annotations

import os

from ...errors import ContainerNetworkError

CLONE_NEWNET, CLONE_NEWUSER = 0x40000000, 0x10000000
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
        data = f.read()
    if os.fsencode(real).replace(b" ", b"\\040") not in data:  # one search, no line split, mostly
        return False
    for line in data.splitlines():
        fields = line.split(b" ")
        if len(fields) > 4 and fields[4].decode("utf-8", "surrogateescape").replace("\\040", " ") == real:
            return True
    return False


def shared_dir(path: str) -> None:
    """``path`` made (once) a shared mount of its own: what is bound below reaches later copies."""
    from ..._std import syscalls as _sys

    os.makedirs(path, mode=0o755, exist_ok=True)
    if not _is_mountpoint(path):
        _sys.mount(path, path, None, MS_BIND | MS_REC)
    _sys.mount(None, path, None, MS_SHARED | MS_REC)


def _dir_lock(path: str):
    """``PATH.lock`` held exclusively (a file beside the directory, ``O_NOFOLLOW``): between
    making a file in the shared directory and unmounting the emptied directory."""
    import contextlib
    import fcntl

    @contextlib.contextmanager
    def held():
        fd = os.open(path.rstrip("/") + ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    return held()


def make_entry(d: str, name: str) -> str:
    """The empty file ``D/NAME`` (``O_EXCL``) in ``D`` made a shared mount of its own first
    (``shared_dir``), under the directory's lock; its path. ``OSError`` as the calls raise it."""
    os.makedirs(os.path.dirname(d.rstrip("/")) or "/", mode=0o755, exist_ok=True)
    path = os.path.join(d, name)
    with _dir_lock(d):
        shared_dir(d)
        os.close(os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o444))
    return path


def drop_entry(path: str) -> None:
    """Delete a file ``make_entry`` made (unmounted already; missing: nothing to do) and, when
    its directory is left empty, unmount the directory's own mount (under the lock: a
    concurrent ``make_entry`` either made its file first, so the directory stays, or waits and
    mounts it again)."""
    from ..._std import syscalls as _sys

    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    d = os.path.dirname(path)
    with _dir_lock(d):
        try:
            if os.listdir(d):
                return
        except FileNotFoundError:
            return
        for _ in range(8):  # bound onto itself once; more only if something else stacked it
            if not _is_mountpoint(d):
                break
            _sys.umount2(d, _sys.MNT_DETACH)


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


def _new_file(runroot: str, name: str) -> str:
    """The empty file ``RUNROOT/netns/NAME`` a namespace is bound onto (in the shared directory)."""
    d = netns_dir(runroot)
    try:
        return make_entry(d, name)
    except FileExistsError:
        raise ContainerNetworkError(f"network namespace {os.path.join(d, name)} already exists") from None
    except OSError as e:
        raise ContainerNetworkError(f"cannot prepare the network namespace directory {d}: {e.strerror}") from None


def create_threaded(runroot: str, name: str) -> str:
    """As ``create`` without a user namespace, for a threaded server: a thread of this process,
    not a forked child, makes it. The thread unshares its own network namespace (a thread may),
    brings ``lo`` up, binds ``/proc/thread-self/ns/net`` onto the file and ends (the mount keeps
    the namespace). No fork (which copies a large process's memory map and every descriptor it
    has open at that moment, other threads' pipes too), so concurrent calls need no lock."""
    import threading

    from ..._std import syscalls as _sys

    path = _new_file(runroot, name)
    out: dict = {}

    def run():  # this thread's namespace changes; it ends right after, never reused
        try:
            _sys.unshare(CLONE_NEWNET)
            _lo_up()
            _sys.mount("/proc/thread-self/ns/net", path, None, MS_BIND)
        except OSError as e:
            out["error"] = e.strerror or str(e)

    t = threading.Thread(target=run, name="netns-create", daemon=True)
    t.start()
    t.join()
    if "error" in out:
        try:
            drop_entry(path)
        except OSError:
            pass
        raise ContainerNetworkError(f"cannot create network namespace {path}: {out['error']}")
    return path


def create(runroot: str, name: str, userns: str | None = None) -> str:
    """A new network namespace (only ``lo``, up) kept at ``RUNROOT/netns/NAME``; its path.
    ``userns``: the (persistent) user namespace that owns it: the container's root may then
    set its sysctls and mount its sysfs, as with podman, whose runtime makes it inside."""
    path = _new_file(runroot, name)
    # what the child runs is imported here: a child imports nothing (another thread of this
    # process may hold an import lock at the fork, which the child would wait for forever)
    import fcntl  # noqa: F401
    import struct  # noqa: F401

    from ..._std import sock  # noqa: F401
    from ..._std import syscalls as _sys

    r, w = os.pipe()
    r2, w2 = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: [the user namespace,] a new namespace, lo up; then it waits
        try:
            os.close(r)
            os.close(w2)
            if userns:
                _sys.setns(os.open(userns, os.O_RDONLY | os.O_CLOEXEC), CLONE_NEWUSER)
            _sys.unshare(CLONE_NEWNET)
            _lo_up()
            os.write(w, b"ok")
            os.read(r2, 1)
            os._exit(0)
        except BaseException as e:  # noqa: BLE001 - reported to the parent, never raised here
            try:
                os.write(w, str(getattr(e, "strerror", None) or e).encode()[:500] or b"?")
            finally:
                os._exit(1)
    os.close(w)
    os.close(r2)
    err = None
    try:  # we bind its namespace (in a user namespace it could not mount on the host's side)
        msg = os.read(r, 512)
        if msg == b"ok":
            from ..._std import syscalls as _sys

            try:
                _sys.mount(f"/proc/{pid}/ns/net", path, None, MS_BIND)
            except OSError as e:
                err = e.strerror
        else:
            err = msg.decode(errors="replace") or "the child died"
    finally:
        os.close(r)
        os.close(w2)
        os.waitpid(pid, 0)
    if err:
        try:
            drop_entry(path)
        except OSError:
            pass
        where = f" in user namespace {userns}" if userns else ""
        raise ContainerNetworkError(f"cannot create network namespace {path}{where}: {err}")
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
        drop_entry(path)
    except OSError as e:
        raise ContainerNetworkError(f"cannot remove network namespace {path}: {e.strerror}") from None
