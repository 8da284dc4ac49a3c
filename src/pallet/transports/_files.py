"""File-system helpers shared by the local transports (``oci:``, ``oci-archive:``, ``docker-archive:``, ``dir:``).

Crash-safe writes (temp file in the same directory, fsync, rename, fsync the directory),
small bounded reads, a directory lock, and the translation of ``OSError`` into one-line
:class:`~pallet.errors.PalletError` messages (a missing file is ``NotFound``, exit code 2).
"""

from __future__ import annotations

import errno
import os

from ..errors import NotFound, PalletError

#: the largest manifest / index / config we read into memory
MAX_DOCUMENT = 32 << 20


class LocalFileError(PalletError):
    """A local file or directory could not be read or written (permissions, full disk, ...)."""


def os_error(e: OSError, what: str) -> PalletError:
    """A one-line PalletError for ``e``, met while doing ``what`` (e.g. "writing oci:/x")."""
    name = e.filename or ""
    where = f" {name}" if name else ""
    if e.errno == errno.ENOENT:
        return NotFound(f"{what}:{where} does not exist")
    if e.errno in (errno.EACCES, errno.EPERM):
        return LocalFileError(f"{what}: permission denied:{where}")
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        return LocalFileError(f"{what}: no space left on device{(' (' + name + ')') if name else ''}")
    if e.errno == errno.EROFS:
        return LocalFileError(f"{what}: read-only file system:{where}")
    if e.errno == errno.ENOTDIR:
        return LocalFileError(f"{what}: not a directory:{where}")
    if e.errno == errno.EISDIR:
        return LocalFileError(f"{what}: is a directory:{where}")
    return LocalFileError(f"{what}: {e.strerror or e}{':' + where if where else ''}")


class translate_errors:
    """``with translate_errors("reading oci:/x"):`` turns OSError into a one-line PalletError."""

    __slots__ = ("what",)

    def __init__(self, what: str):
        self.what = what

    def __enter__(self):
        return self

    def __exit__(self, typ, exc, tb):
        if exc is not None and isinstance(exc, OSError):
            raise os_error(exc, self.what) from None
        return False


def check_dir(path: str, what: str) -> None:
    """Raise the right one-line error unless ``path`` is an accessible directory."""
    import stat

    try:
        st = os.stat(path)
        if stat.S_ISDIR(st.st_mode):
            os.listdir(path)  # permission to read it
    except FileNotFoundError:
        raise NotFound(f"{what}: no such directory {path}") from None
    except OSError as e:
        raise os_error(e, f"reading {what}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise LocalFileError(f"{what}: {path} is not a directory")


from .._fs import fsync_dir, temp_name  # noqa: E402,F401  (one implementation, re-exported here)
from .._fs import write_atomic as atomic_write  # noqa: E402,F401


def read_small(path: str, limit: int = MAX_DOCUMENT) -> bytes:
    """A whole (small) file; refuses files larger than ``limit``."""
    with open(path, "rb") as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise LocalFileError(f"{path}: larger than {limit} bytes, refusing to read it into memory")
    return data


def _unlink_quiet(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def rmtree_quiet(path: str) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


from .._fs import is_special as is_stream_path  # noqa: E402,F401
from .._fs import output_target  # noqa: E402,F401


def big_temp_dir() -> str:
    """Where to spool big temporary files (containers/image uses /var/tmp, not a tmpfs /tmp)."""
    d = os.environ.get("TMPDIR")
    if d and os.path.isdir(d):
        return d
    return "/var/tmp" if os.path.isdir("/var/tmp") and os.access("/var/tmp", os.W_OK) else "/tmp"


class DirLock:
    """An exclusive ``flock`` on a directory itself (no lock file is added to the layout)."""

    __slots__ = ("path", "fd")

    def __init__(self, path: str):
        self.path = path
        self.fd = -1

    def __enter__(self):
        import fcntl

        self.fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        if self.fd >= 0:
            os.close(self.fd)  # releases the lock
            self.fd = -1
        return False


def make_dirs(path: str, created: list) -> None:
    """``os.makedirs`` that records, outermost first, each directory it created in ``created``."""
    missing = []
    p = os.path.abspath(path)
    while not os.path.isdir(p):
        missing.append(p)
        parent = os.path.dirname(p)
        if parent == p:
            break
        p = parent
    for d in reversed(missing):
        try:
            os.mkdir(d, 0o755)
        except FileExistsError:
            if not os.path.isdir(d):
                raise
            continue
        created.append(d)


def remove_created_dirs(created: list) -> None:
    """Remove (innermost first) the directories ``make_dirs`` created, if they are empty."""
    for d in reversed(created):
        try:
            os.rmdir(d)
        except OSError:
            pass
    created.clear()


class StagingCleanup:
    """Mixin for destinations that stage blobs in ``self._staging`` and create directories
    (listed in ``self._created``): ``close`` discards the staging area and, unless ``commit``
    set ``self._committed``, removes the directories it made."""

    def close(self) -> None:
        if self._staging is not None:
            self._staging.discard()
            self._staging = None
        if not self._committed:
            remove_created_dirs(self._created)
