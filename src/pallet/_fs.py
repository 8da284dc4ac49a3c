"""Crash-safe file writes: temp file in the same directory, fsync, rename, fsync the directory.

Temp names carry the writer's PID (``.NAME.tmp-PID-RAND``) so a later process can tell
a dead writer's leftovers from a live one's work.
"""

from __future__ import annotations

import contextlib
import os


def fsync_dir(path: str) -> None:
    fd = os.open(path or ".", os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def temp_name(directory: str, base: str) -> str:
    """A hidden, unique temp file name in ``directory`` for a file that becomes ``base``."""
    return os.path.join(directory, f".{base}.tmp-{os.getpid()}-{os.urandom(4).hex()}")


def temp_owner_alive(name: str) -> bool:
    """For a name made by :func:`temp_name`: is the process that made it still running?"""
    pid = name.rsplit(".tmp-", 1)[-1].split("-", 1)[0]
    return not pid.isdigit() or os.path.exists(f"/proc/{pid}")


@contextlib.contextmanager
def atomic_file(path: str, mode: int = 0o644):
    """Write ``path`` through a file object; it replaces ``path`` only if the block succeeds."""
    directory = os.path.dirname(os.path.abspath(path))
    tmp = temp_name(directory, os.path.basename(path))
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    try:
        with os.fdopen(fd, "wb", buffering=1 << 20) as f:
            yield f
            f.flush()
            os.fchmod(f.fileno(), mode)
            os.fsync(f.fileno())
        os.rename(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(directory)


def write_atomic(path: str, data: bytes, mode: int = 0o644) -> None:
    """Replace ``path`` with ``data`` so that a crash leaves either the old or the new content."""
    with atomic_file(path, mode) as f:
        f.write(data)
