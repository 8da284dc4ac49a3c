"""Paths inside a root filesystem, resolved by file descriptor as a process chrooted there
would see them: symlinks followed (an absolute target starts again at the root), ``..``
stopped at the root, so no lookup ever leaves it, whatever the tree holds.

    root = open_root("/var/lib/pallet/overlay/ID/merged")
    fd = open_in_root(root, "/etc/passwd", os.O_RDONLY)        # a fd, never a host path
    dfd = mkdir_all_in_root(root, "/app/src", owner=(1000, 1000))  # each part made by mkdirat

The one resolver below builder/, layer/ and runtime/. Two ways, same answers:

- ``openat2(2)`` with ``RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS`` (Linux 5.6+): the kernel does
  the whole lookup at once, so a component swapped for a symlink to a host path while we
  look still lands inside the root;
- elsewhere (an older kernel, seccomp refusing the call) a walk one component at a time, each
  opened ``O_PATH | O_NOFOLLOW`` relative to its parent's fd, symlinks read with readlinkat and
  expanded in place: never a path string handed to the kernel to resolve.

Where a caller needs a path string for an API that takes one (a subprocess, a tar applier),
:func:`fd_path` names the open directory (``/proc/self/fd/N``), which the kernel resolves to
that very directory even if the tree changes afterwards.
"""

# no ``from __future__ import annotations`` (pallet-runtime's start: see errors.py)

import errno
import os
import stat as _stat

__all__ = ["open_root", "open_in_root", "open_beneath", "open_in_root_walk", "open_in_root_openat2", "walk_in_root",
           "mkdir_all_in_root", "mkfile_in_root", "open_file_in_root", "read_in_root", "resolve_in_root", "fd_path", "have_openat2"]

_O_PATH = os.O_PATH | os.O_CLOEXEC
_MAX_LINKS = 40  # the kernel's MAXSYMLINKS
_RESOLVE_NO_MAGICLINKS, _RESOLVE_NO_SYMLINKS, _RESOLVE_BENEATH, _RESOLVE_IN_ROOT = 0x02, 0x04, 0x08, 0x10
_openat2 = None  # the syscall stand-in's openat2 once probed; False: the kernel lacks it


def _parts(path: str) -> list[str]:
    return [p for p in os.fsdecode(path).split("/") if p and p != "."]


def fd_path(fd: int) -> str:
    """A path string naming the open file ``fd`` (for APIs that take paths)."""
    return f"/proc/self/fd/{fd}"


def open_root(path: str) -> int:
    """An ``O_PATH`` fd on the directory ``path``, the root of later lookups (caller closes)."""
    return os.open(path, _O_PATH | os.O_DIRECTORY)


# -- openat2 ------------------------------------------------------------------------------

def _load_openat2():
    global _openat2
    if _openat2 is None:
        try:
            # the syscall stand-in (over _ctypes): ctypes itself costs the runtime's start-up
            from ._std.syscalls import openat2 as call

            rfd = os.open("/", _O_PATH | os.O_DIRECTORY)
            try:
                os.close(call(rfd, ".", _O_PATH, _RESOLVE_IN_ROOT))
                _openat2 = call
            finally:
                os.close(rfd)
        except (OSError, AttributeError, ImportError):  # ENOSYS, EPERM from a seccomp filter, no libc
            _openat2 = False
    return _openat2


def have_openat2() -> bool:
    """Whether this kernel (and seccomp profile) lets us use openat2(RESOLVE_IN_ROOT)."""
    return bool(_load_openat2())


def open_in_root_openat2(root_fd: int, path: str, flags: int = _O_PATH, *, follow_last: bool = True) -> int:
    """:func:`open_in_root` by one openat2(RESOLVE_IN_ROOT) call (OSError ENOSYS without it)."""
    call = _load_openat2()
    if not call:
        raise OSError(errno.ENOSYS, "openat2 is not available", path)
    if not follow_last:
        flags |= os.O_NOFOLLOW
    return call(root_fd, "/".join(_parts(path)) or ".", flags | os.O_CLOEXEC,
                _RESOLVE_IN_ROOT | _RESOLVE_NO_MAGICLINKS)


# -- the fd walk --------------------------------------------------------------------------

def walk_in_root(root_fd: int, path, *, flags: int = _O_PATH, follow_last: bool = True, missing=None,
                 not_dir=None, absolute=None, escape=None) -> tuple[int, tuple]:
    """The fd walk itself: ``(fd, real components)`` of ``path`` (str or bytes, or a sequence
    of components) inside the root, each component opened with ``flags | O_NOFOLLOW`` relative
    to its parent's fd and every symlink read with readlinkat and expanded in place. The fd is
    the caller's (a dup of ``root_fd`` for the root itself). A final symlink is opened itself
    when ``follow_last`` is false (with ``O_PATH``).

    Hooks, for callers with rules of their own (the layer applier):

    - ``missing(dir_fd, name, real)``: ``name`` is absent from the directory ``real``: return
      a fd of what now stands there (it is walked into), None to look again, or raise;
      without it, FileNotFoundError;
    - ``not_dir(dir_fd, name, real, st)``: ``name`` is neither a directory nor a symlink but
      must be walked through: return a fd of a directory to walk into instead, or raise;
      without it, ENOTDIR;
    - ``absolute(here, target)``: the symlink ``here`` (components) points at the absolute
      ``target``: raise to refuse; without it (or when it returns), the lookup starts again
      at the root;
    - ``escape(here)``: a ``..`` at the root: raise to refuse; without it, it stays there.

    More than 40 symlinks (the kernel's MAXSYMLINKS) is ELOOP."""
    sep = b"/" if isinstance(path, bytes) or (not isinstance(path, str) and path and
                                               isinstance(path[0], bytes)) else "/"
    dot, dotdot = (b".", b"..") if sep == b"/" else (".", "..")
    todo = list(reversed(path.split(sep) if isinstance(path, (str, bytes)) else list(path)))
    stack = [os.dup(root_fd)]  # fds of the directories walked through, root first
    real: list = []
    links = 0
    try:
        while todo:
            name = todo.pop()
            if not name or name == dot:
                continue
            if name == dotdot:
                if real:
                    os.close(stack.pop())
                    real.pop()
                elif escape is not None:
                    escape(real + [name])
                continue
            cur = stack[-1]
            try:
                fd = os.open(name, flags | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=cur)
            except FileNotFoundError:
                if missing is None:
                    raise
                fd = missing(cur, name, list(real))
                if fd is None:  # made (or raced): look again
                    todo.append(name)
                else:
                    stack.append(fd)
                    real.append(name)
                continue
            except OSError as e:
                if e.errno not in (errno.ELOOP, errno.ENOTDIR):  # O_DIRECTORY: a symlink, a file
                    raise
                fd = -1
            st = os.fstat(fd) if fd >= 0 else os.stat(name, dir_fd=cur, follow_symlinks=False)
            if _stat.S_ISLNK(st.st_mode) and (todo or follow_last):
                if fd >= 0:
                    os.close(fd)
                links += 1
                if links > _MAX_LINKS:
                    raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), os.fsdecode(sep.join(real + [name])))
                target = os.readlink(name, dir_fd=cur)
                if target.startswith(sep):  # absolute: from the root again
                    if absolute is not None:
                        absolute(real + [name], target)
                    while len(stack) > 1:
                        os.close(stack.pop())
                    real.clear()
                todo.extend(reversed(target.split(sep)))
                continue
            if not _stat.S_ISDIR(st.st_mode) and (todo or fd < 0):
                if fd >= 0:
                    os.close(fd)
                if not_dir is None or _stat.S_ISLNK(st.st_mode):
                    raise OSError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), os.fsdecode(sep.join(real + [name])))
                fd = not_dir(cur, name, list(real), st)
            stack.append(fd)
            real.append(name)
        return stack.pop(), tuple(real)
    finally:
        for fd in stack:
            os.close(fd)


def _walk(root_fd: int, path: str, *, follow_last: bool = True, create_mode: int | None = None,
          owner: tuple[int, int] | None = None) -> int:
    """:func:`walk_in_root` for :func:`open_in_root_walk` and :func:`mkdir_all_in_root`: an
    ``O_PATH`` fd of ``path`` (with ``create_mode``, missing directories are made with mkdirat,
    chmod to that mode and chowned to ``owner``)."""
    def make(cur: int, name: str, _real) -> None:
        try:
            os.mkdir(name, create_mode, dir_fd=cur)
        except FileExistsError:  # raced: look again
            return None
        fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=cur)
        try:
            os.fchmod(fd, create_mode)  # whatever the umask
            if owner is not None:
                os.fchown(fd, *owner)
        finally:
            os.close(fd)
        return None

    try:
        return walk_in_root(root_fd, _parts(path), follow_last=follow_last,
                            missing=None if create_mode is None else make)[0]
    except OSError as e:
        if e.errno in (errno.ENOTDIR, errno.ELOOP):  # named by the path asked for, as open(2) does
            raise OSError(e.errno, os.strerror(e.errno), path) from None
        raise


def open_in_root_walk(root_fd: int, path: str, flags: int = _O_PATH, *, follow_last: bool = True) -> int:
    """:func:`open_in_root` by the component-by-component fd walk (no openat2 needed)."""
    fd = _walk(root_fd, path, follow_last=follow_last)
    if flags & ~os.O_CLOEXEC == os.O_PATH:
        return fd
    try:
        if flags & os.O_DIRECTORY and not _stat.S_ISDIR(os.fstat(fd).st_mode):
            raise OSError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), path)
        # reopen the O_PATH fd for I/O: through /proc it names this very inode, no lookup
        return os.open(fd_path(fd), (flags & ~os.O_NOFOLLOW) | os.O_CLOEXEC)
    finally:
        os.close(fd)


# -- the API ------------------------------------------------------------------------------

def open_in_root(root_fd: int, path: str, flags: int = _O_PATH, *, follow_last: bool = True) -> int:
    """``path`` opened with ``flags`` inside the root open at ``root_fd`` (see the module doc);
    raises OSError as open(2) would (ENOENT, ENOTDIR, ELOOP). ``follow_last=False`` opens a
    final symlink itself (with ``O_PATH``)."""
    if _load_openat2():
        return open_in_root_openat2(root_fd, path, flags, follow_last=follow_last)
    return open_in_root_walk(root_fd, path, flags, follow_last=follow_last)


def open_beneath(root_fd: int, path, flags: int = _O_PATH) -> int:
    """``path`` (str or bytes) below ``root_fd`` opened following no symlink at all and no
    ``..`` out (ELOOP on a symlink, EXDEV/ENOENT...): for trees whose every component must be
    a real directory (the layer applier's own output)."""
    rel = os.fsdecode(path)
    if _load_openat2():
        return _openat2(root_fd, "/".join(_parts(rel)) or ".", flags | os.O_CLOEXEC,
                        _RESOLVE_BENEATH | _RESOLVE_NO_SYMLINKS | _RESOLVE_NO_MAGICLINKS)
    return open_beneath_walk(root_fd, rel, flags)


def open_beneath_walk(root_fd: int, path, flags: int = _O_PATH) -> int:
    """:func:`open_beneath` one ``O_NOFOLLOW`` component at a time (no openat2 needed)."""
    rel = os.fsdecode(path)
    parts = _parts(rel)
    if ".." in parts:
        raise OSError(errno.EXDEV, os.strerror(errno.EXDEV), rel)
    fd = os.dup(root_fd)
    try:
        for i, name in enumerate(parts):
            last = i == len(parts) - 1
            nfd = os.open(name, (flags if last else _O_PATH | os.O_DIRECTORY) | os.O_NOFOLLOW | os.O_CLOEXEC,
                          dir_fd=fd)
            os.close(fd)
            fd = nfd
        if not parts:
            nfd = os.open(".", flags | os.O_CLOEXEC, dir_fd=fd)
            os.close(fd)
            fd = nfd
        return fd
    except BaseException:
        os.close(fd)
        raise


def mkdir_all_in_root(root_fd: int, path: str, mode: int = 0o755, owner: tuple[int, int] | None = None, *,
                      flags: int = os.O_RDONLY | os.O_DIRECTORY) -> int:
    """A fd (opened with ``flags``: ``O_RDONLY`` by default, ``O_PATH`` for a mount point) on
    the directory ``path`` inside the root, each missing component made (``mode`` whatever
    the umask, chowned to ``owner``) by mkdirat relative to its parent's fd. A component that
    exists and is not a directory is ENOTDIR; a dangling symlink on the way is followed and
    its target made, inside the root."""
    flags |= os.O_DIRECTORY
    try:
        return open_in_root(root_fd, path, flags)
    except FileNotFoundError:
        pass
    fd = _walk(root_fd, path, create_mode=mode, owner=owner)
    try:
        if not _stat.S_ISDIR(os.fstat(fd).st_mode):
            raise OSError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), path)
        if flags & ~(os.O_CLOEXEC | os.O_DIRECTORY) == os.O_PATH:
            fd, out = -1, fd
            return out
        return os.open(fd_path(fd), flags | os.O_CLOEXEC)
    finally:
        if fd >= 0:
            os.close(fd)


def mkfile_in_root(root_fd: int, path: str, mode: int = 0o644) -> int:
    """An ``O_PATH`` fd on ``path`` inside the root (a bind mount's point); when nothing is
    there, its directories are made (:func:`mkdir_all_in_root`) and an empty file created
    relative to its parent's fd (``O_EXCL | O_NOFOLLOW``: never through a symlink)."""
    try:
        return open_in_root(root_fd, path)
    except FileNotFoundError:
        pass
    parts = _parts(path)
    if not parts or parts[-1] == "..":
        raise OSError(errno.EISDIR, os.strerror(errno.EISDIR), path)
    pfd = mkdir_all_in_root(root_fd, "/".join(parts[:-1]) or ".", flags=_O_PATH)
    try:
        try:
            os.close(os.open(parts[-1], os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                             mode, dir_fd=pfd))
        except FileExistsError:  # raced, or a dangling symlink: what is there now is looked up
            pass
    finally:
        os.close(pfd)
    return open_in_root(root_fd, path)


def open_file_in_root(root_fd: int, path: str, flags: int, *, follow_last: bool = True) -> int | None:
    """``path`` inside the root opened with ``flags`` if it is a regular file, else None. What
    is there is looked at through an ``O_PATH`` fd first and reopened (``/proc/self/fd/N``, the
    same inode) only when regular: an image's ``/etc/passwd`` that is a device node is never
    opened (opening a watchdog starts it, a tape rewinds on close), nor a FIFO or socket. With
    ``follow_last=False`` a final symlink is no regular file. OSError as :func:`open_in_root`."""
    pfd = open_in_root(root_fd, path, _O_PATH if follow_last else _O_PATH | os.O_NOFOLLOW,
                       follow_last=follow_last)
    try:
        if not _stat.S_ISREG(os.fstat(pfd).st_mode):
            return None
        return os.open(fd_path(pfd), (flags & ~(os.O_CREAT | os.O_NOFOLLOW)) | os.O_CLOEXEC)
    finally:
        os.close(pfd)


def read_in_root(root: str | int, path: str, limit: int = 16 << 20) -> bytes | None:
    """The content of the regular file ``path`` inside ``root`` (a path or an fd), or None when
    it is missing or not a regular file (an ``/etc/passwd`` that is a FIFO or a device is no
    passwd, and is not opened: see :func:`open_file_in_root`)."""
    rfd = open_root(root) if isinstance(root, str) else root
    try:
        try:
            fd = open_file_in_root(rfd, path, os.O_RDONLY | os.O_NONBLOCK)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None
        except OSError as e:
            if e.errno == errno.ELOOP:
                return None
            raise
        if fd is None:
            return None
        try:
            with os.fdopen(fd, "rb", closefd=False) as f:
                return f.read(limit)
        finally:
            os.close(fd)
    finally:
        if isinstance(root, str):
            os.close(rfd)


def resolve_in_root(root: str, path: str, follow_last: bool = True) -> str:
    """The host path of ``path`` in the tree at ``root``, for APIs that only take paths: the
    longest existing prefix is resolved by fd (:func:`open_in_root`), the kernel names where it
    landed, the missing rest is appended as written (``..`` in it stopped at what exists).
    The answer is right when asked; code that then creates or writes something under it
    should hold a fd instead (:func:`mkdir_all_in_root`, :func:`open_in_root`)."""
    parts = _parts(path)
    rfd = open_root(root)
    try:
        real_root = os.readlink(fd_path(rfd))
        for i in range(len(parts), -1, -1):
            try:
                fd = open_in_root(rfd, "/".join(parts[:i]) or ".", follow_last=follow_last or i < len(parts))
            except (FileNotFoundError, NotADirectoryError):
                continue
            except OSError as e:
                if e.errno != errno.ELOOP:
                    raise
                continue
            try:
                here = os.readlink(fd_path(fd))
            finally:
                os.close(fd)
            out = here
            for p in parts[i:]:
                if p == "..":
                    out = os.path.dirname(out) if out != real_root else out
                else:
                    out = os.path.join(out, p)
            # named from ``root`` as the caller wrote it (it may reach the tree through a symlink)
            rel = os.path.relpath(out, real_root)
            return root if rel == "." else os.path.join(root, rel)
        return root
    finally:
        os.close(rfd)
