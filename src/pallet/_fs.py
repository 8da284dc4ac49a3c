"""Crash-safe file writes: temp file in the same directory, fsync, rename, fsync the directory.

Temp names carry the writer's PID (``.NAME.tmp-PID-RAND``) so a later process can tell
a dead writer's leftovers from a live one's work.
"""

from __future__ import annotations

import os


def _contextmanager(generator):
    """``contextlib.contextmanager``, imported when first used: pallet-runtime writes its
    ``--pid-file`` through this module and must not pay for contextlib (and collections,
    functools) at every container start."""
    def make(*args, **kwargs):
        import contextlib

        return contextlib.contextmanager(generator)(*args, **kwargs)

    make.__name__, make.__doc__ = generator.__name__, generator.__doc__
    return make


def fsync_dir(path: str) -> None:
    fd = os.open(path or ".", os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def rmtree(path: str) -> None:
    """``shutil.rmtree(path, ignore_errors=True)`` without importing ``shutil`` (it imports
    ``bz2``, ``lzma``, ``fnmatch``: milliseconds of every ``run``). As shutil's safe variant it
    works through directory fds (``os.fwalk``): a symlink is removed, never followed, and a
    directory swapped for a symlink meanwhile is not entered. ``path`` itself being a symlink
    or not a directory: nothing is done (as shutil refuses it)."""
    import stat

    try:
        if not stat.S_ISDIR(os.lstat(path).st_mode):
            return
        for _, dirs, files, fd in os.fwalk(path, topdown=False):
            for name in files:
                try:
                    os.unlink(name, dir_fd=fd)
                except OSError:
                    pass
            for name in dirs:
                try:
                    os.rmdir(name, dir_fd=fd)
                except NotADirectoryError:  # a symlink to a directory: listed as one
                    try:
                        os.unlink(name, dir_fd=fd)
                    except OSError:
                        pass
                except OSError:
                    pass
        os.rmdir(path)
    except OSError:
        pass


def temp_name(directory: str, base: str) -> str:
    """A hidden, unique temp file name in ``directory`` for a file that becomes ``base``."""
    return os.path.join(directory, f".{base}.tmp-{os.getpid()}-{os.urandom(4).hex()}")


def temp_owner_alive(name: str) -> bool:
    """For a name made by :func:`temp_name`: is the process that made it still running?"""
    pid = name.rsplit(".tmp-", 1)[-1].split("-", 1)[0]
    return not pid.isdigit() or os.path.exists(f"/proc/{pid}")


def locked_scratch_name(base: str, lock) -> tuple[str, int]:
    """A fresh ``<pid>-<random>`` name in ``base`` whose ``<name>.lock`` is held: ``lock(path)``
    opens and locks a file, returning its fd; returns (name, fd). The lock comes first, then the
    caller makes the directory: whoever cleans leftovers takes a name without a held lock for a
    dead one's. If a cleaner took our lock file between our open and our lock (and removed it),
    the lock we hold is on an unlinked file: try another name."""
    while True:
        path = os.path.join(base, f"{os.getpid()}-{os.urandom(6).hex()}")
        fd = lock(path + ".lock")
        try:
            if os.fstat(fd).st_ino == os.stat(path + ".lock").st_ino:
                return path, fd
        except FileNotFoundError:
            pass
        os.close(fd)


def hold_owner_lock(base: str, name: str, content: bytes = b"") -> int:
    """``base/NAME.lock``, held (flock) by this process while it uses what NAME is, with
    ``content`` for whoever reaps it (:func:`reap_orphaned_locks`): made under a scratch name,
    locked and written, then renamed into place, so a reaper never sees it unlocked. Returns its
    fd; :func:`drop_owner_lock` when done."""
    import fcntl

    os.makedirs(base, mode=0o700, exist_ok=True)
    scratch = os.path.join(base, f".{name}.{os.getpid()}")
    fd = os.open(scratch, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        if content:
            os.write(fd, content)
        os.rename(scratch, os.path.join(base, name + ".lock"))
    except BaseException:
        os.close(fd)
        try:
            os.unlink(scratch)
        except OSError:
            pass
        raise
    return fd


def drop_owner_lock(base: str, name: str, fd: int) -> None:
    """The lock of :func:`hold_owner_lock` removed, then let go."""
    try:
        os.unlink(os.path.join(base, name + ".lock"))
    except OSError:
        pass
    os.close(fd)


def reap_orphaned_locks(base: str, clean) -> list[str]:
    """For each ``NAME.lock`` in ``base`` that no process holds (its owner died without cleaning
    up; a live owner holds its flock), ``clean(base/NAME)`` runs with the lock held by us; when it
    returns true the lock file is removed (false: left for a later try). Returns the NAMEs cleaned.
    Names starting with a dot are skipped (scratch names an owner renames into place once locked)."""
    import fcntl

    try:
        names = os.listdir(base)
    except OSError:
        return []
    done = []
    for n in names:
        if not n.endswith(".lock") or n.startswith("."):
            continue
        lock = os.path.join(base, n)
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CLOEXEC | os.O_NOFOLLOW)
        except OSError:
            continue
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue  # held: its process is alive
            if clean(lock[: -len(".lock")]):
                try:
                    os.unlink(lock)
                except OSError:
                    pass
                done.append(n[: -len(".lock")])
        finally:
            os.close(fd)
    return done


def text_lines(path: str, default: list[str]) -> list[str]:
    """The lines of the text file ``path`` without their newlines, or ``default`` when it cannot
    be read (the host's /etc/hosts for a container on the host's network)."""
    try:
        with open(path) as f:
            return [line.rstrip("\n") for line in f]
    except OSError:
        return default


def open_regular(path: str):
    """``open(path, "rb")`` of a regular file only (symlinks followed): what is there is looked
    at through an ``O_PATH`` fd and reopened (``/proc/self/fd/N``, the same inode) only when it
    is a regular file, so a FIFO planted as a blob does not block the reader forever and a device
    node is never opened. OSError(EINVAL, "not a regular file") otherwise."""
    import errno
    import stat

    pfd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    try:
        if not stat.S_ISREG(os.fstat(pfd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", path)
        return open(os.open(f"/proc/self/fd/{pfd}", os.O_RDONLY | os.O_CLOEXEC), "rb")
    finally:
        os.close(pfd)


def read_to_eof(fd: int, size: int = 4096) -> bytes:
    """All that ``fd`` gives until end of file (for a pipe: until every writer closed it)."""
    out = b""
    while True:
        chunk = os.read(fd, size)
        if not chunk:
            return out
        out += chunk


def read_json_file(path: str, limit: int, what: str):
    """The JSON document in ``path`` (UTF-8, at most ``limit`` bytes); FileNotFoundError when there
    is no such file, otherwise a ConfigError naming the path (``larger than N MiB: not <what>``)."""
    from .errors import ConfigError
    try:
        with open(path, "rb") as f:
            data = f.read(limit + 1)
    except FileNotFoundError:
        raise
    except OSError as e:
        raise ConfigError(f"{path}: {e.strerror}") from None
    if len(data) > limit:
        raise ConfigError(f"{path}: larger than {limit >> 20} MiB: not {what}")
    from ._std import json
    try:
        return json.loads(data.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: not valid JSON: {e}") from None


@_contextmanager
def atomic_file(path: str, mode: int = 0o644, durable: bool = True, sync_dir: bool = True):
    """Write ``path`` through a file object; it replaces ``path`` only if the block succeeds.

    ``durable=False`` for volatile state (the run root's records of mounts and network
    attachments, which a reboot makes void anyway): still replaced atomically by rename, so a
    crashed writer leaves the old content or the new, but not flushed to the disk (no fsync).
    ``sync_dir=False`` (durable): the caller fsyncs the directory itself, once for several
    files replaced in it."""
    directory = os.path.dirname(os.path.abspath(path))
    tmp = temp_name(directory, os.path.basename(path))
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    try:
        with os.fdopen(fd, "wb", buffering=1 << 20) as f:
            yield f
            f.flush()
            os.fchmod(f.fileno(), mode)
            if durable:
                os.fsync(f.fileno())
        os.rename(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    if durable and sync_dir:
        fsync_dir(directory)


def write_atomic(path: str, data: bytes, mode: int = 0o644, durable: bool = True, sync_dir: bool = True) -> None:
    """Replace ``path`` with ``data`` so that a crash leaves either the old or the new content
    (``durable``, ``sync_dir``: see :func:`atomic_file`)."""
    with atomic_file(path, mode, durable, sync_dir) as f:
        f.write(data)


# -- files a user named (--iidfile, --digestfile, --output, -o, --authfile, --pid-file...) --

def is_special(path: str) -> bool:
    """True for a path that is (through symlinks) a character or block device, FIFO or socket."""
    import stat

    try:
        st = os.stat(path)
    except OSError:
        return False
    return stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) or stat.S_ISFIFO(st.st_mode) \
        or stat.S_ISSOCK(st.st_mode)


def _planted(path: str, st, euid: int) -> str | None:
    """Why ``path`` (lstat ``st``: a symlink, FIFO or socket) is someone else's trap, or None:
    the kernel's ``protected_symlinks``/``protected_fifos`` rule -- it sits in a sticky,
    world-writable directory (``/tmp``) and belongs neither to us nor to that directory's owner."""
    import stat

    parent = os.path.dirname(path) or "/"
    try:
        dst = os.stat(parent)
    except OSError:
        return None
    if not (dst.st_mode & stat.S_ISVTX and dst.st_mode & stat.S_IWOTH) or st.st_uid in (euid, dst.st_uid):
        return None
    link = stat.S_ISLNK(st.st_mode)
    kind = "symlink" if link else "FIFO" if stat.S_ISFIFO(st.st_mode) else "socket"
    return f"a {kind} of uid {st.st_uid} in the sticky directory {parent}: not " \
           f"{'followed' if link else 'written'} (the kernel's protected_{'symlinks' if link else 'fifos'} rule)"


def _resolve_unplanted(p: str) -> str:
    """``os.path.realpath(p)`` for an absolute ``p``, but a symlink on the way that another user
    planted in a sticky world-writable directory (see :func:`_planted`) raises PermissionError
    instead of being followed. realpath reads links with readlink, which the kernel's
    ``fs.protected_symlinks`` does not guard: writing to the path it returns would go where a
    planted ``/tmp/build.log -> /etc/shadow`` points, which an ``open`` of the name would refuse."""
    import errno
    import stat

    euid = os.geteuid()
    todo = [c for c in reversed(p.split("/")) if c]
    resolved, links = "/", 0
    while todo:
        name = todo.pop()
        if name == ".":
            continue
        if name == "..":
            resolved = os.path.dirname(resolved)
            continue
        cand = os.path.join(resolved, name)
        try:
            st = os.lstat(cand)
        except OSError:  # missing (or unreadable): the rest is taken as it is
            return os.path.join(cand, *reversed(todo)) if todo else cand
        if not stat.S_ISLNK(st.st_mode):
            resolved = cand
            continue
        links += 1
        if links > 40:  # the kernel's MAXSYMLINKS
            raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), p)
        why = _planted(cand, st, euid)
        if why:
            raise PermissionError(errno.EACCES, why, cand)
        target = os.readlink(cand)
        if target.startswith("/"):
            resolved = "/"
        todo.extend(c for c in reversed(target.split("/")) if c)
    return resolved


def output_target(path: str) -> tuple[str, bool]:
    """Where a file the user named is written: ``(file, False)`` for a regular file or a new
    one -- symlinks followed to their target, which is written to a temp file beside it and
    renamed over it -- or ``(path, True)`` for a device, FIFO or socket (``/dev/null``,
    ``/dev/stdout``, ``/proc/self/fd/N``, a pipe), which is opened and written in place:
    nothing is ever renamed over, or deleted at, such a path. A symlink, FIFO or socket another
    user planted in a sticky world-writable directory is refused (PermissionError naming it),
    as the kernel's ``protected_symlinks`` and ``protected_fifos`` refuse an ``open`` of it."""
    import stat

    p = os.path.abspath(path)
    real = _resolve_unplanted(p)
    try:
        st = os.lstat(real)
    except OSError:
        st = None
    if st is not None and (stat.S_ISFIFO(st.st_mode) or stat.S_ISSOCK(st.st_mode)):
        why = _planted(real, st, os.geteuid())
        if why:
            import errno

            raise PermissionError(errno.EACCES, why, real)
    special = ("/dev/", "/proc/")
    if is_special(p) or (p.startswith(special) or real.startswith(special)) and os.path.exists(p):
        return p, True
    return real, False


@_contextmanager
def _open_in_place(path: str):
    import stat

    try:
        sock = stat.S_ISSOCK(os.stat(path).st_mode)
    except OSError:
        sock = False
    if sock:  # open() cannot open a socket: connect to it, as `cat > socket` cannot but a user means
        import socket

        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(path)
            with s.makefile("wb") as f:
                yield f
        finally:
            s.close()
        return
    # no O_CREAT for an existing device (no O_TRUNC either: it means nothing there); /dev/stdout
    # redirected to a regular file is truncated, as the shell's > does
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC | os.O_TRUNC)
    with os.fdopen(fd, "wb") as f:
        yield f


@_contextmanager
def output_file(path: str, mode: int = 0o644):
    """Write a file the user named (see :func:`output_target`): a regular file atomically
    (temp + fsync + rename, with ``mode``), a device, FIFO or socket in place."""
    target, stream = output_target(path)
    if stream:
        with _open_in_place(target) as f:
            yield f
    else:
        with atomic_file(target, mode) as f:
            yield f


def write_output(path: str, data: bytes, mode: int = 0o644, what: str = "") -> None:
    """Write ``data`` to a file the user named through :func:`output_file`; ``what`` (the
    option, e.g. ``--iidfile``) names it in the one-line error if that fails."""
    try:
        with output_file(path, mode) as f:
            f.write(data)
    except OSError as e:
        from .errors import PalletError

        raise PalletError(f"{what + ' ' if what else ''}{path}: cannot write: {e.strerror}") from None


def read_int(path: str, limit: int = 64) -> int | None:
    """The integer a small text file holds (a pid file, a cgroup counter), None when it cannot
    be read or is not one."""
    try:
        with open(path, "rb") as f:
            return int(f.read(limit).strip())
    except (OSError, ValueError):
        return None
