"""File locks shared between processes (flock), with a "last writer" token.

A writer stamps a fresh token into the lock file before it releases the exclusive lock;
a process that cached metadata compares the token when it next locks and reloads if
another process wrote in between (containers/storage's lockfile idea).
"""

from __future__ import annotations

import fcntl
import os
import threading


class FileLock:
    """A reader/writer lock on a file. Re-entrant within a process (counts per mode)."""

    def __init__(self, path: str):
        self.path = path
        os.makedirs(os.path.dirname(path), exist_ok=True)
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        self._mutex = threading.RLock()
        self._depth = 0
        self._mode = None

    def _acquire(self, exclusive: bool, blocking: bool = True) -> bool:
        self._mutex.acquire()
        if self._depth:
            if exclusive and self._mode != "x":
                self._mutex.release()
                raise RuntimeError("cannot upgrade a shared lock to an exclusive one")
            self._depth += 1
            return True
        flags = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
        try:
            fcntl.flock(self._fd, flags | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            self._mutex.release()
            return False
        except BaseException:
            self._mutex.release()
            raise
        self._depth = 1
        self._mode = "x" if exclusive else "s"
        return True

    def _release(self) -> None:
        self._depth -= 1
        if self._depth == 0:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            self._mode = None
        self._mutex.release()

    def exclusive(self, blocking: bool = True) -> "_Held":
        return _Held(self, True, blocking)

    def shared(self) -> "_Held":
        return _Held(self, False, True)

    def token(self) -> bytes:
        """The last writer's token (read while holding the lock)."""
        return os.pread(self._fd, 64, 0)

    def touch(self) -> bytes:
        """Stamp a new writer token (while holding the exclusive lock)."""
        tok = os.urandom(16).hex().encode()
        os.pwrite(self._fd, tok, 0)
        return tok

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class _Held:
    def __init__(self, lock: FileLock, exclusive: bool, blocking: bool):
        self.lock = lock
        self.exclusive = exclusive
        self.blocking = blocking
        self.acquired = False

    def __enter__(self) -> "_Held":
        self.acquired = self.lock._acquire(self.exclusive, self.blocking)
        return self

    def __exit__(self, *exc) -> None:
        if self.acquired:
            self.lock._release()


def try_lock_path(path: str) -> int | None:
    """Open and exclusively lock ``path`` without waiting; the fd, or None if someone holds it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def lock_path(path: str) -> int:
    """Open and exclusively lock ``path``, waiting for it; returns the fd (close to release)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
    except BaseException:
        os.close(fd)
        raise
    return fd
