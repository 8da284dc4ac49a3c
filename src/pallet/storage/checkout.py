"""Check an image out of the store as a plain directory tree that shares the store's files:
hard links (the ostree checkout atomic's system containers used), a reflink where the
directory is on another filesystem that has them, a copy as the last resort.

The tree is for a read-only root filesystem (a system container's deployment): a file in it
*is* the store's file (same inode), so whoever runs it must mount it read-only. Directories,
symlinks and devices are made fresh (they cannot be linked); their owners, modes and times
are the layer's.

overlay: the layers' ``diff`` directories are merged base first, as the kernel stacks them
(a 0/0 character device deletes what is below, an opaque directory hides it). vfs: the top
layer's directory already holds the whole tree.
"""

from __future__ import annotations

import errno
import os
import stat

from ..errors import StoreError
from .drivers import OPAQUE_XATTR


def _is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _remove(path: str) -> None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        from .records import rmtree

        rmtree(path, ignore_errors=False)
    else:
        os.unlink(path)


class _Linker:
    """Puts one file at a destination: link, else reflink, else copy (remembering which worked)."""

    def __init__(self):
        self.mode = "hardlink"
        self.files = 0

    def put(self, src: str, dst: str, st: os.stat_result) -> None:
        self.files += 1
        if self.mode == "hardlink":
            try:
                os.link(src, dst, follow_symlinks=False)
                return
            except OSError as e:
                if e.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK):
                    raise
                self.mode = "reflink"
        self._clone(src, dst, st)

    def _clone(self, src: str, dst: str, st: os.stat_result) -> None:
        sfd = os.open(src, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            dfd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            try:
                if self.mode == "reflink":
                    try:
                        import fcntl

                        fcntl.ioctl(dfd, 0x40049409, sfd)  # FICLONE
                    except OSError:
                        self.mode = "copy"
                if self.mode == "copy":
                    _copy_data(sfd, dfd)
                os.fchown(dfd, st.st_uid, st.st_gid)
                os.fchmod(dfd, stat.S_IMODE(st.st_mode))
                os.utime(dfd, ns=(st.st_atime_ns, st.st_mtime_ns))
            finally:
                os.close(dfd)
        finally:
            os.close(sfd)


def _copy_xattrs(src: str, dst: str) -> None:
    """A made-fresh entry's extended attributes (not overlay's own: the opaque marker was applied)."""
    try:
        names = os.listxattr(src, follow_symlinks=False)
    except OSError:
        return
    for k in names:
        if k.startswith("trusted.overlay."):
            continue
        try:
            os.setxattr(dst, k, os.getxattr(src, k, follow_symlinks=False), follow_symlinks=False)
        except OSError as e:
            if e.errno not in (errno.ENOTSUP, errno.EPERM):
                raise


def _copy_data(sfd: int, dfd: int) -> None:
    """The bytes of one file into another: copy_file_range (in-kernel), or read/write where the
    kernel will not across these filesystems (EXDEV since Linux 5.19)."""
    try:
        while os.copy_file_range(sfd, dfd, 1 << 30):
            pass
        return
    except OSError as e:
        if e.errno not in (errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
            raise
    os.lseek(sfd, 0, os.SEEK_SET)
    os.lseek(dfd, 0, os.SEEK_SET)
    os.ftruncate(dfd, 0)
    while b := os.read(sfd, 1 << 20):
        view = memoryview(b)
        while view:
            view = view[os.write(dfd, view):]


def _copy_meta(src_st: os.stat_result, dst: str) -> None:
    os.chown(dst, src_st.st_uid, src_st.st_gid, follow_symlinks=False)
    if not stat.S_ISLNK(src_st.st_mode):
        os.chmod(dst, stat.S_IMODE(src_st.st_mode))
    os.utime(dst, ns=(src_st.st_atime_ns, src_st.st_mtime_ns), follow_symlinks=False)


def _merge(src: str, dst: str, linker: _Linker, dirs: dict) -> None:
    """Merge the layer directory ``src`` onto ``dst`` (neither followed through a symlink)."""
    with os.scandir(src) as it:
        entries = sorted(it, key=lambda e: e.name)
    for e in entries:
        s = os.path.join(src, e.name)
        d = os.path.join(dst, e.name)
        st = e.stat(follow_symlinks=False)
        if _is_whiteout(st):
            _remove(d)
            continue
        if stat.S_ISDIR(st.st_mode):
            try:
                dst_st = os.lstat(d)
            except FileNotFoundError:
                dst_st = None
            if dst_st is not None and not stat.S_ISDIR(dst_st.st_mode):
                os.unlink(d)
                dst_st = None
            try:
                opaque = os.getxattr(s, OPAQUE_XATTR, follow_symlinks=False) == b"y"
            except OSError:
                opaque = False
            if dst_st is not None and opaque:
                _remove(d)
                dst_st = None
            if dst_st is None:
                os.mkdir(d, 0o700)
            _merge(s, d, linker, dirs)
            dirs[d] = st  # the topmost layer's directory wins
            _copy_xattrs(s, d)
            continue
        _remove(d)
        if stat.S_ISREG(st.st_mode):
            linker.put(s, d, st)
        elif stat.S_ISLNK(st.st_mode):
            os.symlink(os.readlink(s), d)
            _copy_meta(st, d)
            _copy_xattrs(s, d)
        elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) or stat.S_ISFIFO(st.st_mode):
            os.mknod(d, st.st_mode, st.st_rdev)
            _copy_meta(st, d)
            _copy_xattrs(s, d)
        # sockets are not image content: skipped


def checkout_image(store, text: str, dest: str) -> dict:
    """Check the image ``text`` out at ``dest`` (which must not exist; its parent must) and
    return ``{"image": id, "mode": "hardlink"|"reflink"|"copy", "files": N}``. The store's
    shared lock is held throughout, so no layer is removed while it is linked. A failure
    removes what was made."""
    if os.path.lexists(dest):
        raise StoreError(f"checkout: {dest} exists")
    with store.read() as st:
        rec = store.lookup_image(st, text)
        chain = store.layer_chain(st, rec.get("top_layer"))
        vfs = store.driver.name == "vfs"
        layers = chain[:1] if vfs else list(reversed(chain))
        linker = _Linker()
        dirs: dict = {}
        try:
            os.mkdir(dest, 0o755)
            for layer in layers:
                d = store.driver.diff_dir(layer["id"])
                if not vfs and store.driver.root_opaque(layer["id"]):
                    for name in os.listdir(dest):
                        _remove(os.path.join(dest, name))
                _merge(d, dest, linker, dirs)
            # directory metadata last (deepest first), so adding entries did not change their times
            for path in sorted(dirs, key=lambda p: -p.count("/")):
                if os.path.isdir(path) and not os.path.islink(path):  # not since removed by a layer above
                    _copy_meta(dirs[path], path)
            if layers:
                _copy_meta(os.lstat(store.driver.diff_dir(layers[-1]["id"])), dest)
        except BaseException as e:
            _remove(dest)
            if isinstance(e, OSError):
                raise StoreError(f"checking out {text} at {dest}: {e.strerror or e}") from None
            raise
    return {"image": rec["id"], "mode": linker.mode, "files": linker.files}
