"""mount(2)/umount2(2) through libc, and reading /proc/self/mountinfo.

The store mounts with the syscall (no fork+exec of mount(8)); overlay's lowerdir list uses
short relative names, so those mounts are made with the driver's directory as the working
directory, by a thread with a working directory of its own once ``threading`` is loaded (else
in a forked child), so the process's own cwd never changes under its threads.
"""

from __future__ import annotations

import os

from ..errors import StoreError

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
MNT_DETACH = 2

_libc = None


def _lib():
    """mount(2), umount2(2), syncfs(2) through ``_std.syscalls``' foreign functions (``_ctypes``:
    not ``ctypes``, whose import costs milliseconds of every ``run``)."""
    global _libc
    if _libc is None:
        from .._std import syscalls as sc

        class _Libc:
            mount = sc._mount
            umount2 = sc._umount2
            syncfs = sc._func("syncfs", (sc.c_int,))

        _libc = _Libc
    return _libc


def _errno() -> int:
    from .._std.syscalls import get_errno

    return get_errno()


def mount(source: str, target: str, fstype: str | None, flags: int = 0, data: str | None = None,
          cwd: str | None = None) -> None:
    """mount(2); with ``cwd`` the call runs in a thread of its own with a working directory of its
    own, once ``threading`` is loaded (a build's, a threaded server's), else in a forked child
    whose working directory is ``cwd`` (a process that never loads ``threading``)."""
    if cwd is None:
        _mount_here(source, target, fstype, flags, data)
        return
    import sys

    if "threading" in sys.modules:  # threads run here, or may: a thread (no copy of the process:
        _mount_in_thread(source, target, fstype, flags, data, cwd)  # a fork copies its page tables
        return  # and every page it then writes, ~1 ms of a build's two mounts each)
    _lib()  # loaded here: the child must import nothing (another thread may hold an import lock)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: chdir, mount, report errno; never returns into the caller's code
        try:
            code = 0
            try:
                os.close(r)
                os.chdir(cwd)
                _mount_here(source, target, fstype, flags, data)
            except OSError as e:
                code = e.errno or 1
            except BaseException:
                code = 255
            os.write(w, str(code).encode())  # EPIPE when the parent was interrupted: nobody to tell
        finally:
            os._exit(0)
    os.close(w)
    try:
        out = b""
        while chunk := os.read(r, 64):
            out += chunk
    finally:
        os.close(r)
        os.waitpid(pid, 0)
    code = int(out or b"255")
    if code:
        raise OSError(code, os.strerror(code) if code != 255 else "mount failed", target)


CLONE_FS = 0x200


def _mount_in_thread(source, target, fstype, flags, data, cwd) -> None:
    """The mount made by a short-lived thread that unshares its filesystem attributes
    (``unshare(CLONE_FS)``: a working directory of its own) and changes to ``cwd``. A threaded
    server (the CRI's) forks no copy of itself for it, and its other threads run meanwhile."""
    from .._std import futures
    from .._std import syscalls as sc

    def run():  # this thread's working directory changes; it ends right after, never reused
        sc.unshare(CLONE_FS)
        os.chdir(cwd)
        _mount_here(source, target, fstype, flags, data)

    try:
        futures.submit(run, "mount").result()
    except OSError as e:
        raise OSError(e.errno or 1, e.strerror or "mount failed", target) from None


def _mount_here(source, target, fstype, flags, data) -> None:
    lib = _lib()
    rc = lib.mount(source.encode(), target.encode(), fstype.encode() if fstype else None, flags,
                   data.encode() if data else None)
    if rc != 0:
        e = _errno()
        raise OSError(e, os.strerror(e), target)


#: how long :func:`umount` waits for a mount that is busy to become free (seconds)
BUSY_WAIT = 0.25


def umount(target: str, detach: bool = False) -> None:
    """umount2(2). A mount that is busy (EBUSY) is tried again for up to :data:`BUSY_WAIT`
    seconds: a container's mount namespace holds copies of the host's mounts (slaves, which an
    unmount on the host reaches), and when its last process exits the kernel releases them a
    moment after that process is reaped (deferred work), so an unmount right after a RUN step's
    runtime returned can meet them still there. One in use for longer is still an error."""
    waited, delay = 0.0, 0.002
    while True:
        rc = _lib().umount2(target.encode(), MNT_DETACH if detach else 0)
        if rc == 0:
            return
        e = _errno()
        if e != 16 or detach or waited >= BUSY_WAIT:  # EBUSY
            raise OSError(e, os.strerror(e), target)
        import time

        time.sleep(delay)
        waited += delay
        delay = min(delay * 2, 0.05)


def is_mounted(path: str) -> bool:
    """True when ``path`` is a mount point (per /proc/self/mountinfo)."""
    # the path as the kernel writes a mount point (space, tab, newline, backslash as \ooo),
    # compared with field 5 of each line; one read, and no line split unless it is there
    want = (os.fsencode(os.path.realpath(path)).replace(b"\\", b"\\134").replace(b" ", b"\\040")
            .replace(b"\t", b"\\011").replace(b"\n", b"\\012"))
    try:
        with open("/proc/self/mountinfo", "rb") as f:
            data = f.read()
    except OSError as e:
        raise StoreError(f"reading /proc/self/mountinfo: {e.strerror}") from None
    if b" " + want + b" " not in data:  # every field 5 has a space on each side
        return False
    return any(line.split(b" ", 5)[4] == want for line in data.splitlines())


def mounts_under(prefix: str) -> list[str]:
    prefix = os.path.realpath(prefix).rstrip("/") + "/"
    out = []
    with open("/proc/self/mountinfo", "rb") as f:
        for line in f:
            p = _unescape(line.split(b" ", 5)[4])
            if p.startswith(prefix):
                out.append(p)
    return out


def _unescape(b: bytes) -> str:
    s = b.decode(errors="surrogateescape")
    if "\\" not in s:
        return s
    import re

    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), s)


def syncfs(path: str) -> None:
    """Flush the filesystem holding ``path`` (one call instead of an fsync per file)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        lib = _lib()
        if lib.syncfs(fd) != 0:
            e = _errno()
            raise OSError(e, os.strerror(e), path)
    finally:
        os.close(fd)


def overlay_supported() -> bool:
    try:
        with open("/proc/filesystems") as f:
            if any(line.split()[-1] == "overlay" for line in f if line.strip()):
                return True
    except OSError:
        return False
    return False
