"""An image's root filesystem read as a process chrooted there would see it, by file
descriptor (:mod:`pallet._rootfs`): well-known paths follow the image's own symlinks (an
absolute target starts again at the image root), the walk never follows one, and no lookup
leaves the root. Every read is bounded; a file that cannot be read is a warning naming it."""

from __future__ import annotations

import errno
import os
import stat as _stat

from .. import _rootfs

#: the most bytes one metadata file may have (a dpkg status of 20k packages is ~20 MB)
READ_LIMIT = 64 << 20
#: how deep the walk goes (a loop of directories cannot exist without symlinks; a deep tree can)
MAX_DEPTH = 256


class Tree:
    """The read-only tree at ``path``; ``warn(file, message)`` collects problems."""

    def __init__(self, path: str, warn, scratch: str | None = None):
        self.path = path
        self.warn = warn
        #: a private directory for copies a reader needs (the store's staging: a killed scan's
        #: copies are removed by the next run)
        self.scratch = scratch
        self.fd = _rootfs.open_root(path)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def read(self, path: str, limit: int = READ_LIMIT) -> bytes | None:
        """The regular file ``path`` (symlinks followed inside the root), None when missing."""
        try:
            data = _rootfs.read_in_root(self.fd, path, limit + 1)
        except OSError as e:
            self.warn(path, f"cannot be read: {e.strerror or e}")
            return None
        if data is None:
            self._why_not(path)
        elif len(data) > limit:
            self.warn(path, f"larger than {limit} bytes: only the start is read")
            data = data[:limit]
        return data

    def _why_not(self, path: str) -> None:
        """A warning for ``path`` when it exists but is no regular file one can read (a symlink
        loop, a directory, a FIFO or device); nothing when it is simply missing."""
        try:
            fd = _rootfs.open_in_root(self.fd, path)
        except (FileNotFoundError, NotADirectoryError):
            return
        except OSError as e:
            if e.errno == errno.ELOOP:
                self.warn(path, "a symlink loop (or more than 40 links in a row): not read")
            else:
                self.warn(path, f"cannot be read: {e.strerror or e}")
            return
        try:
            mode = os.fstat(fd).st_mode
        finally:
            os.close(fd)
        if not _stat.S_ISREG(mode):
            kind = {_stat.S_IFDIR: "a directory", _stat.S_IFIFO: "a FIFO", _stat.S_IFCHR: "a device",
                    _stat.S_IFBLK: "a device", _stat.S_IFSOCK: "a socket"}.get(_stat.S_IFMT(mode), "special")
            self.warn(path, f"not a regular file ({kind}): not read")

    def exists(self, path: str) -> bool:
        try:
            os.close(_rootfs.open_in_root(self.fd, path, follow_last=False))
            return True
        except OSError:
            return False

    def real_path(self, path: str) -> str:
        """``path`` with the image's symlinks resolved inside the root (for layer attribution)."""
        try:
            fd = _rootfs.open_in_root(self.fd, path, follow_last=True)
        except OSError:
            return "/" + "/".join(p for p in path.split("/") if p)
        try:
            here = os.readlink(_rootfs.fd_path(fd))
            top = os.readlink(_rootfs.fd_path(self.fd))
        finally:
            os.close(fd)
        rel = os.path.relpath(here, top)
        return "/" if rel == "." else "/" + rel

    def listdir(self, path: str) -> list[str]:
        """The names in the directory ``path`` (symlinks followed inside the root); [] if none."""
        try:
            fd = _rootfs.open_in_root(self.fd, path, os.O_RDONLY | os.O_DIRECTORY)
        except (FileNotFoundError, NotADirectoryError):
            return []
        except OSError as e:
            self.warn(path, f"cannot be listed: {e.strerror or e}")
            return []
        try:
            return sorted(os.listdir(fd))
        finally:
            os.close(fd)

    def walk(self, visit, path: str = "/") -> None:
        """Call ``visit(dir_path, dir_fd, names)`` for every directory below ``path``, no symlink
        followed (each child opened ``O_NOFOLLOW`` relative to its parent's fd)."""
        try:
            fd = _rootfs.open_in_root(self.fd, path, os.O_RDONLY | os.O_DIRECTORY)
        except OSError:
            return
        stack = [(path.rstrip("/") or "", fd, 0)]
        while stack:
            dpath, dfd, depth = stack.pop()
            try:
                try:
                    entries = sorted(os.scandir(dfd), key=lambda e: e.name)
                except OSError as e:
                    self.warn(dpath or "/", f"cannot be listed: {e.strerror or e}")
                    continue
                names = [e.name for e in entries]
                descend = visit(dpath or "/", dfd, names)
                if descend is False:
                    continue
                for e in reversed(entries):
                    try:
                        if not e.is_dir(follow_symlinks=False):
                            continue
                    except OSError:
                        continue
                    if depth >= MAX_DEPTH:
                        self.warn(f"{dpath}/{e.name}", f"deeper than {MAX_DEPTH} directories: not walked")
                        continue
                    try:
                        cfd = os.open(e.name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dfd)
                    except OSError as err:
                        if err.errno not in (errno.ENOENT, errno.ELOOP, errno.ENOTDIR):
                            self.warn(f"{dpath}/{e.name}", f"cannot be opened: {err.strerror}")
                        continue
                    stack.append((f"{dpath}/{e.name}", cfd, depth + 1))
            finally:
                os.close(dfd)
        # (every fd on the stack is closed as it is popped)

    def open_at(self, dfd: int, name: str, shown: str) -> int | None:
        """An fd on ``name`` in the directory open at ``dfd`` (no symlink followed, no blocking on a
        FIFO), or None after a warning naming ``shown`` when it cannot be opened."""
        try:
            return os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dfd)
        except OSError as e:
            self.warn(shown, f"cannot be read: {e.strerror or e}")
            return None

    def read_at(self, dfd: int, name: str, shown: str, limit: int = READ_LIMIT) -> bytes | None:
        """The regular file ``name`` in the directory open at ``dfd`` (no symlink followed)."""
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dfd)
        except FileNotFoundError:
            return None
        except OSError as e:
            if e.errno == errno.ELOOP:  # a symlink: resolved inside the root instead
                data = self.read(shown, limit)
                if data is None:
                    self.warn(shown, "a symlink that leads to no regular file inside the image "
                                     "(a loop, dangling, or pointing out of it): skipped")
                return data
            self.warn(shown, f"cannot be read: {e.strerror or e}")
            return None
        try:
            if not _stat.S_ISREG(os.fstat(fd).st_mode):
                return None
            with os.fdopen(fd, "rb", closefd=False) as f:
                data = f.read(limit + 1)
        except OSError as e:
            self.warn(shown, f"cannot be read: {e.strerror or e}")
            return None
        finally:
            os.close(fd)
        if len(data) > limit:
            self.warn(shown, f"larger than {limit} bytes: only the start is read")
            data = data[:limit]
        return data
