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
    """A whole (small) regular file; refuses files larger than ``limit`` (and a FIFO or device:
    ``_fs.open_regular``)."""
    from .._fs import open_regular

    with open_regular(path) as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise LocalFileError(f"{path}: larger than {limit} bytes, refusing to read it into memory")
    return data


def _unlink_quiet(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


from .._fs import rmtree as rmtree_quiet  # noqa: E402,F401

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


# -- spooling streams (pipes, stdin, compressed archives) to disk -----------------------------

#: how much a stream may spool when neither --spool-limit nor the config says (32 GiB)
DEFAULT_SPOOL_LIMIT = 32 << 30
#: a spool stops before the file system it is on has less than this free
SPOOL_MIN_FREE = 256 << 20


class SpoolLimit(PalletError):
    """A stream was larger than the spool may grow (``--spool-limit``, ``[spool] limit``)."""


def parse_size(text: str, what: str) -> int:
    """``1073741824``, ``512M``, ``32G``, ``1T`` (binary units; ``0``: no limit) in bytes."""
    t = str(text).strip().upper().removesuffix("B").removesuffix("I")
    mult = 1
    if t and t[-1] in "KMGT":
        mult = 1 << (10 * ("KMGT".index(t[-1]) + 1))
        t = t[:-1]
    if not t.isdigit():
        from ..errors import UsageError

        raise UsageError(f"{what}: {text!r} is not a size (want bytes, or a number with K, M, G or T)")
    return int(t) * mult


def spool_limit(ctx=None) -> int:
    """The spool limit in bytes (0: none): ``ctx.spool_limit`` (``--spool-limit``), else
    ``limit`` in the ``[spool]`` table of pallet's config (``$PALLET_STORAGE_CONF`` or
    ``/etc/pallet/storage.conf``), else :data:`DEFAULT_SPOOL_LIMIT`."""
    given = getattr(ctx, "spool_limit", None) if ctx is not None else None
    if given is not None:
        return given if isinstance(given, int) else parse_size(given, "--spool-limit")
    path = os.environ.get("PALLET_STORAGE_CONF") or "/etc/pallet/storage.conf"
    try:
        with open(path, "rb") as f:
            data = f.read(1 << 20)
    except OSError:
        return DEFAULT_SPOOL_LIMIT
    if b"spool" not in data:
        return DEFAULT_SPOOL_LIMIT
    import tomllib  # rare path: only with a config that mentions the spool

    try:
        doc = tomllib.loads(data.decode("utf-8", "replace"))
    except tomllib.TOMLDecodeError as e:
        from ..errors import ConfigError

        raise ConfigError(f"{path}: {e}") from None
    spool = doc.get("spool", {})
    if not isinstance(spool, dict) or "limit" not in spool:
        return DEFAULT_SPOOL_LIMIT
    v = spool["limit"]
    if isinstance(v, bool) or not isinstance(v, (int, str)):
        from ..errors import ConfigError

        raise ConfigError(f"{path}: spool.limit must be a size such as \"32G\"")
    return v if isinstance(v, int) else parse_size(v, f"{path}: spool.limit")


def check_tar_header(block: bytes, what: str) -> None:
    """Fail at once, naming the input, when a stream's first 512 bytes are not a tar header."""
    from ..errors import InvalidDocument

    if len(block) < 512:
        raise InvalidDocument(f"{what}: not a tar archive: the stream ends after {len(block)} bytes")
    if not any(block):
        raise InvalidDocument(f"{what}: not a tar archive: it begins with an all-zero block "
                              "(an empty archive, or a stream of zeros such as /dev/zero)")
    field = block[148:156].split(b"\0", 1)[0].strip()
    try:
        want = int(field, 8)
    except ValueError:
        want = -1
    rest = block[:148] + block[156:512]
    unsigned = sum(rest) + 8 * 32  # the checksum field itself counts as spaces
    signed = unsigned - 256 * sum(1 for b in rest if b > 127)  # what some old tars wrote
    if want not in (unsigned, signed):
        raise InvalidDocument(f"{what}: not a tar archive: the first header's checksum is wrong "
                              f"(starts with {block[:16]!r})")


def spool_copy(src, out, limit: int, what: str) -> int:
    """Copy ``src`` to the file ``out`` up to ``limit`` bytes (0: no limit), checking that it
    starts as a tar archive, and that the file system keeps :data:`SPOOL_MIN_FREE` free."""
    first = b""
    while len(first) < 512:
        b = src.read(512 - len(first))
        if not b:
            break
        first += b
    check_tar_header(first, what)
    out.write(first)
    total = len(first)
    fd = out.fileno()
    checked = 0
    while True:
        b = src.read(1 << 20)
        if not b:
            return total
        total += len(b)
        if limit and total > limit:
            raise SpoolLimit(f"{what}: the stream is larger than the spool limit of {limit} bytes; stopped there "
                             "(raise it with --spool-limit SIZE or limit in the [spool] table of "
                             "/etc/pallet/storage.conf, 0 for none)")
        if total - checked >= 64 << 20:  # the disk: checked every 64 MiB
            checked = total
            st = os.fstatvfs(fd)
            if st.f_bavail * st.f_frsize < SPOOL_MIN_FREE:
                raise SpoolLimit(f"{what}: spooling stopped after {total} bytes: the file system of the spool "
                                 f"has less than {SPOOL_MIN_FREE >> 20} MiB left")
        out.write(b)


class SpoolDir:
    """A private directory for one process's spooled streams, in a per-user spool directory
    (``$TMPDIR`` or ``/var/tmp``, ``pallet-spool-UID``, mode 0700 and ours). Each process holds
    an ``flock`` on its directory's lock file; a directory whose lock nobody holds belongs to a
    process that died (SIGKILL) and is removed by the next one that spools."""

    def __init__(self):
        for attempt in range(5):
            try:
                self._open()
                return
            except FileNotFoundError:  # another process removed the (then empty) spool directory
                if attempt == 4:
                    raise LocalFileError("cannot create a spool directory: it keeps disappearing") from None

    def _open(self) -> None:
        import fcntl

        from .._userns import host_euid

        # named for the user on the host (inside pallet's rootless namespace its euid is 0: not root's)
        base = os.path.join(big_temp_dir(), f"pallet-spool-{host_euid()}")
        try:
            os.mkdir(base, 0o700)
        except FileExistsError:
            pass
        except OSError as e:
            raise os_error(e, "creating the spool directory") from None
        import stat

        st = os.lstat(base)
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o022:
            raise LocalFileError(f"spool directory {base} is not a private directory of this user "
                                 "(a symlink, another owner, or writable by others): remove it")
        _clean_stale_spools(base)
        def lock(name: str) -> int:
            fd = os.open(name, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX)
            return fd

        from .._fs import locked_scratch_name  # the lock first, then the directory, as the store's staging
        path, fd = locked_scratch_name(base, lock)
        try:
            os.mkdir(path, 0o700)
        except BaseException:
            os.close(fd)
            raise
        self.base = base
        self.path = path
        self._fd = fd

    def close(self) -> None:
        if self._fd is None:
            return
        rmtree_quiet(self.path)
        try:
            os.unlink(self.path + ".lock")
        except OSError:
            pass
        os.close(self._fd)
        self._fd = None
        try:
            os.rmdir(self.base)  # when no other process spools: nothing is left in $TMPDIR
        except OSError:
            pass


def _clean_stale_spools(base: str) -> None:
    from .._fs import reap_orphaned_locks

    def clean(stem: str) -> bool:
        rmtree_quiet(stem)
        return True

    reap_orphaned_locks(base, clean)
