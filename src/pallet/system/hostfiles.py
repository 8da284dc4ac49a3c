"""Files a system container puts on the host: its unit, its tmpfiles.d entry and what the
image ships under ``/exports/hostfs``. Each is recorded (path, kind, sha256 of what pallet
wrote) in the deployment's ``info.json`` before any is written, so that:

- switching deployments (install, update, rollback, a crash's recovery) is one function,
  :func:`switch`, from one list of records to another, idempotent when run twice;
- removal deletes exactly what pallet wrote; a file whose content the user changed since is
  kept and reported.

Host paths are resolved by fd inside the host root (``--host-root``, ``/`` by default), never
through a symlink on the last component; a file is written to a temporary name in its
directory and renamed over the old one, so a crash leaves the old content or the new.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat

from .. import _rootfs
from ..errors import PalletError, UsageError


class HostFileConflict(PalletError):
    """A host file the image ships exists already (a package's, or the administrator's)."""


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _sha256_at(dfd: int, name: str) -> str:
    """The sha256 of the regular file ``name`` in the directory ``dfd`` (never through a symlink)."""
    fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dfd)
    h = hashlib.sha256()
    try:
        while b := os.read(fd, 1 << 20):
            h.update(b)
    finally:
        os.close(fd)
    return h.hexdigest()


def _parts(path: str) -> list[str]:
    return [p for p in path.split("/") if p and p != "."]


def check_host_path(path: str, what: str) -> str:
    """An absolute, clean host path (no ``..``, no NUL): the host file's name as recorded."""
    if not isinstance(path, str) or not path.startswith("/") or "\0" in path or ".." in _parts(path) \
            or not _parts(path):
        raise UsageError(f"{what}: {path!r} is not an absolute host path")
    return "/" + "/".join(_parts(path))


# -- reading the image's /exports/hostfs ----------------------------------------------------

def walk_hostfs(root: str, renames: dict) -> list[dict]:
    """Records for the image's ``/exports/hostfs`` tree (inside ``root``, read by fd, no symlink
    followed below it): directories (parents first), regular files and symlinks; ``renames``
    maps a host path to the path it is installed as (manifest.json ``renameFiles``, already
    substituted). Other file types are skipped."""
    rfd = _rootfs.open_root(root)
    try:
        try:
            top = _rootfs.open_in_root(rfd, "/exports/hostfs", os.O_RDONLY | os.O_DIRECTORY)
        except (FileNotFoundError, NotADirectoryError):
            return []
        out: list[dict] = []
        try:
            _walk(top, "", out, renames)
        finally:
            os.close(top)
        return out
    finally:
        os.close(rfd)


def _walk(dfd: int, rel: str, out: list, renames: dict) -> None:
    for name in sorted(os.listdir(dfd)):
        src = f"{rel}/{name}"
        st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
        host = check_host_path(renames.get(src, src), f"/exports/hostfs{src}")
        if stat.S_ISDIR(st.st_mode):
            out.append({"path": host, "kind": "dir", "mode": stat.S_IMODE(st.st_mode)})
            fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dfd)
            try:
                _walk(fd, src, out, renames)
            finally:
                os.close(fd)
        elif stat.S_ISREG(st.st_mode):
            out.append({"path": host, "kind": "file", "role": "hostfs", "sha256": _sha256_at(dfd, name),
                        "mode": stat.S_IMODE(st.st_mode), "source": "/exports/hostfs" + src})
        elif stat.S_ISLNK(st.st_mode):
            out.append({"path": host, "kind": "symlink", "role": "hostfs",
                        "target": os.readlink(name, dir_fd=dfd)})


# -- Debian's package database ---------------------------------------------------------------

def dpkg_owner(host_root: str, admindir: str, paths: list[str]) -> dict:
    """``{path: package}`` for the ``paths`` some Debian package ships (its ``info/*.list``
    in the host root's dpkg database; none when there is no database)."""
    want = set(paths)
    found: dict = {}
    info = os.path.join(host_root, admindir.lstrip("/"), "info")
    try:
        names = sorted(n for n in os.listdir(info) if n.endswith(".list"))
    except OSError:
        return found
    for n in names:
        try:
            with open(os.path.join(info, n), "rb") as f:
                for line in f:
                    p = line.rstrip(b"\n").decode("utf-8", "surrogateescape")
                    if p in want and p not in found:
                        found[p] = n[:-5].partition(":")[0]
        except OSError:
            continue
    return found


# -- the host side ------------------------------------------------------------------------

class Host:
    """The host's files, under ``root`` (``/`` normally; a directory in tests)."""

    def __init__(self, root: str):
        self.root = root

    def _parent(self, path: str, create: bool) -> tuple[int, str]:
        """An fd on ``path``'s directory inside the root (made when ``create``), and its name."""
        parts = _parts(path)
        rfd = _rootfs.open_root(self.root)
        try:
            parent = "/" + "/".join(parts[:-1])
            if create:
                return _rootfs.mkdir_all_in_root(rfd, parent), parts[-1]
            return _rootfs.open_in_root(rfd, parent, os.O_RDONLY | os.O_DIRECTORY), parts[-1]
        finally:
            os.close(rfd)

    def state(self, rec: dict) -> tuple[str, str | None]:
        """What is at the record's path: ``("missing"|"file"|"dir"|"symlink"|"other", sha256 or link target)``."""
        try:
            pfd, name = self._parent(rec["path"], False)
        except (FileNotFoundError, NotADirectoryError):
            return "missing", None
        try:
            try:
                st = os.stat(name, dir_fd=pfd, follow_symlinks=False)
            except FileNotFoundError:
                return "missing", None
            if stat.S_ISLNK(st.st_mode):
                return "symlink", os.readlink(name, dir_fd=pfd)
            if stat.S_ISDIR(st.st_mode):
                return "dir", None
            if not stat.S_ISREG(st.st_mode):
                return "other", None
            return "file", _sha256_at(pfd, name)
        finally:
            os.close(pfd)

    def is_ours(self, rec: dict) -> bool:
        """Is the path's content what ``rec`` says pallet wrote?"""
        kind, value = self.state(rec)
        if rec["kind"] == "file":
            return kind == "file" and value == rec["sha256"]
        if rec["kind"] == "symlink":
            return kind == "symlink" and value == rec["target"]
        return kind == "dir"

    def read(self, rec: dict) -> bytes:
        pfd, name = self._parent(rec["path"], False)
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=pfd)
        finally:
            os.close(pfd)
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):  # swapped since it was looked at
                raise HostFileConflict(f"{rec['path']} is no longer a regular file")
            return f.read()

    def mkdir(self, path: str, mode: int) -> bool:
        """Make the directory (and its parents); True if this call made ``path`` itself."""
        pfd, name = self._parent(path, True)
        try:
            try:
                os.mkdir(name, mode, dir_fd=pfd)
            except FileExistsError:
                st = os.stat(name, dir_fd=pfd, follow_symlinks=False)
                if not stat.S_ISDIR(st.st_mode):
                    raise HostFileConflict(f"{path} exists and is not a directory") from None
                return False
            os.chmod(name, mode, dir_fd=pfd)
            return True
        finally:
            os.close(pfd)

    def write(self, rec: dict, data: bytes | None) -> None:
        """Put the record's file (``data``) or symlink at its path, replacing what is there
        atomically (a directory there is a conflict)."""
        pfd, name = self._parent(rec["path"], True)
        try:
            try:
                st = os.stat(name, dir_fd=pfd, follow_symlinks=False)
                if stat.S_ISDIR(st.st_mode):
                    raise HostFileConflict(f"{rec['path']} is a directory on the host")
            except FileNotFoundError:
                pass
            tmp = f".{name}.pallet-{os.urandom(4).hex()}"
            try:
                if rec["kind"] == "symlink":
                    os.symlink(rec["target"], tmp, dir_fd=pfd)
                else:
                    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                                 0o600, dir_fd=pfd)
                    try:
                        view = memoryview(data or b"")
                        while view:
                            view = view[os.write(fd, view):]
                        os.fchmod(fd, rec.get("mode", 0o644))
                        os.fsync(fd)
                    finally:
                        os.close(fd)
                os.rename(tmp, name, src_dir_fd=pfd, dst_dir_fd=pfd)
            except BaseException:
                try:
                    os.unlink(tmp, dir_fd=pfd)
                except OSError:
                    pass
                raise
            os.fsync(pfd)
        finally:
            os.close(pfd)

    def remove(self, rec: dict) -> None:
        try:
            pfd, name = self._parent(rec["path"], False)
        except (FileNotFoundError, NotADirectoryError):
            return
        try:
            if rec["kind"] == "dir":
                try:
                    os.rmdir(name, dir_fd=pfd)
                except OSError as e:  # not empty (the user's files in it), or gone
                    if e.errno not in (errno.ENOTEMPTY, errno.ENOENT, errno.EEXIST):
                        raise
            else:
                try:
                    os.unlink(name, dir_fd=pfd)
                except FileNotFoundError:
                    pass
            os.fsync(pfd)
        finally:
            os.close(pfd)
