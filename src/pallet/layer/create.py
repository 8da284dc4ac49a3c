"""Make an uncompressed tar layer from a directory, reproducibly, as a stream.

    with tar_overlay_upper("/store/overlay/abc/diff", epoch=0) as layer:
        blob = Compress(Digesting(layer), "gzip")       # diffID from the Digesting

Three sources:

:func:`tar_directory`
    a plain directory as a full layer (a base image, ``pallet build`` from scratch);
:func:`tar_overlay_upper`
    an overlayfs upper dir as a diff: a 0/0 character device NAME becomes ``.wh.NAME``, a
    directory with ``trusted.overlay.opaque=y`` gets a ``.wh..wh..opq`` marker;
:func:`tar_changes`
    the difference between two plain directories (the vfs driver: ``old`` is the parent
    layer's tree, ``new`` the container's): added and changed entries, ``.wh.NAME`` for
    removed ones. A changed entry deep in an unchanged directory brings its parent
    directories along, so a layer never makes the applier invent a parent's metadata.

Reproducible: the same tree gives the same bytes. Entries go depth first, each directory's
names sorted bytewise, whiteouts (and the opaque marker) before their siblings as the OCI
spec recommends; ustar headers with a PAX header only when a field does not fit; numeric
owners only (no user or group names); whole-second mtimes (clamped to ``epoch`` when it is
given, as ``SOURCE_DATE_EPOCH`` asks); no atime/ctime; xattrs ``security.capability`` and
``user.*`` (not ``user.overlay.*``, not ``security.selinux``: a host label is not image
content). Hardlinks are found by (device, inode): the first path carries the data.
Sockets are skipped (they cannot be archived). Nothing is read through a symlink: every
open is relative to its directory's fd with ``O_NOFOLLOW``.

Streaming: the result is a :class:`~pallet.layer.stream.Reader` whose bytes are produced as
they are read (one file chunk at a time), never the whole tar in memory.
"""

from __future__ import annotations

import errno
import os
import stat as _stat

from ..errors import LayerError
from . import _tar
from .idmap import to_container
from .apply import OPAQUE_MARKER, OVERLAY_OPAQUE_XATTR, WHITEOUT_PREFIX
from .stream import CHUNK, Reader

_O_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_O_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK


def epoch_from_env(environ=None) -> int | None:
    """``SOURCE_DATE_EPOCH`` as an int, or None when unset or empty."""
    v = (os.environ if environ is None else environ).get("SOURCE_DATE_EPOCH", "")
    if not v.strip():
        return None
    try:
        return int(v)
    except ValueError:
        raise LayerError(f"SOURCE_DATE_EPOCH={v!r} is not a number of seconds") from None


class LayerStream(Reader):
    """A readable tar stream pulled from a generator of byte chunks.

    ``entries`` counts the members written so far; ``close()`` stops the generator and
    closes every file it had open."""

    def __init__(self, chunks):
        super().__init__(None)
        self._gen = chunks
        self._buf = b""
        self._eof = False

    def _read(self, n: int) -> bytes:
        while not self._buf:
            if self._eof:
                return b""
            try:
                self._buf = next(self._gen)
            except StopIteration:
                self._eof = True
                return b""
        if len(self._buf) <= n:
            b, self._buf = self._buf, b""
            return bytes(b) if not isinstance(b, bytes) else b
        b, self._buf = self._buf[:n], self._buf[n:]
        return bytes(b)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._gen.close()


def tar_directory(root: str, *, epoch: int | None = None, uid_map=None, gid_map=None) -> LayerStream:
    """Everything below ``root`` (not ``root`` itself) as a full layer.

    ``uid_map``/``gid_map``: ``(container_id, host_id, size)`` triples; owners on disk are
    written as the container ids they map from (None: as they are)."""
    w = _Walker(epoch, uid_map, gid_map)
    return LayerStream(w.run(root, w.full_dir))


def tar_overlay_upper(upper: str, *, epoch: int | None = None, uid_map=None, gid_map=None,
                      opaque_xattr: str = OVERLAY_OPAQUE_XATTR) -> LayerStream:
    """An overlayfs upper (diff) dir as a layer with OCI whiteouts.

    Refuses (LayerError) upper dirs written with ``redirect_dir`` or ``metacopy`` on: a
    renamed directory or a metadata-only copy-up cannot be expressed in a tar layer; mount
    the container with ``redirect_dir=off,metacopy=off`` (pallet's store does)."""
    w = _Walker(epoch, uid_map, gid_map)
    w.opaque_xattr = opaque_xattr
    w.xattr_prefix = opaque_xattr.rsplit(".", 1)[0] + "."
    w.check_metacopy = True
    return LayerStream(w.run(upper, w.upper_dir))


def tar_changes(old: str, new: str, *, epoch: int | None = None, uid_map=None, gid_map=None) -> LayerStream:
    """What changed from tree ``old`` to tree ``new`` as a layer that, applied onto ``old``,
    gives ``new``.

    An entry is changed when its type, mode, owner, size, mtime (to the nanosecond), device
    number, symlink target or kept xattrs differ — content is not compared, as in
    containers/storage: a tool that rewrites a file and restores its mtime and size fools it."""
    w = _Walker(epoch, uid_map, gid_map)
    return LayerStream(w.run_changes(old, new))


def tar_entry(dir_fd: int, name: bytes, arcname: bytes, *, epoch: int | None = None, uid_map=None,
              gid_map=None) -> LayerStream:
    """One entry of an archive (``pallet cp``, not a layer): ``name`` in the open directory
    ``dir_fd`` (never followed if it is a symlink) and, for a directory, everything below it,
    the top member named ``arcname``; ``arcname`` empty: a directory's content at the top,
    without a member for the directory itself (``cp SRC/.``)."""
    w = _Walker(epoch, uid_map, gid_map)

    def chunks():
        if not arcname:
            fd = os.open(name, _O_DIR, dir_fd=dir_fd)
            try:
                yield from w.full_dir(fd, b"")
            finally:
                os.close(fd)
        else:
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            yield from w.entry(dir_fd, name, arcname, st, w.full_dir)
        yield _tar.END

    return LayerStream(chunks())


class _Walker:
    def __init__(self, epoch, uid_map, gid_map):
        self.epoch = epoch
        self.uid_map, self.gid_map = uid_map, gid_map
        self.links: dict = {}  # (dev, ino) -> first name written
        self.pending: list = []  # headers of unchanged parent dirs (tar_changes)
        self.opaque_xattr = OVERLAY_OPAQUE_XATTR
        self.xattr_prefix = "trusted.overlay."
        self.check_metacopy = False

    # -- drivers --------------------------------------------------------------------------
    def run(self, root: str, walk_dir):
        fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            yield from walk_dir(fd, b"")
        finally:
            os.close(fd)
        yield _tar.END

    def run_changes(self, old: str, new: str):
        ofd = os.open(old, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            nfd = os.open(new, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                yield from self.changes_dir(ofd, nfd, b"")
            finally:
                os.close(nfd)
        finally:
            os.close(ofd)
        yield _tar.END

    # -- headers --------------------------------------------------------------------------
    def _mtime(self, st) -> int:
        t = st.st_mtime_ns // 1_000_000_000
        return t if self.epoch is None else min(t, self.epoch)

    def _hdr(self, name: bytes, typ: bytes, st, size: int = 0, linkname: bytes = b"", xattrs=None) -> bytes:
        dev = st.st_rdev if typ in (_tar.CHR, _tar.BLK) else 0
        return _tar.header(name, typ, mode=_stat.S_IMODE(st.st_mode),
                           uid=to_container(self.uid_map, st.st_uid, "uid"),
                           gid=to_container(self.gid_map, st.st_gid, "gid"),
                           size=size, mtime=self._mtime(st), linkname=linkname,
                           devmajor=os.major(dev), devminor=os.minor(dev), xattrs=xattrs)

    def _marker(self, name: bytes, parent_st) -> bytes:
        """A whiteout or opaque marker: an empty root-owned file with the parent's mtime."""
        return _tar.header(name, _tar.REG, mode=0o644, mtime=self._mtime(parent_st))

    # -- one entry ------------------------------------------------------------------------
    def entry(self, dfd: int, name: bytes, rel: bytes, st, descend=None):
        """The member(s) for ``name`` in directory ``dfd`` (stat ``st``); for a directory,
        ``descend(fd, rel)`` produces its content."""
        m = st.st_mode
        if _stat.S_ISDIR(m):
            fd = os.open(name, _O_DIR, dir_fd=dfd)
            try:
                yield self._hdr(rel + b"/", _tar.DIR, st, xattrs=_xattrs(fd))
                if descend is not None:
                    yield from descend(fd, rel)
            finally:
                os.close(fd)
        elif _stat.S_ISREG(m):
            yield from self._file(dfd, name, rel, st)
        elif _stat.S_ISLNK(m):
            target = os.readlink(name, dir_fd=dfd)
            yield self._hdr(rel, _tar.SYM, st, linkname=target, xattrs=_xattrs(_proc(dfd, name)))
        elif _stat.S_ISCHR(m) or _stat.S_ISBLK(m) or _stat.S_ISFIFO(m):
            if st.st_nlink > 1:
                key = (st.st_dev, st.st_ino)
                if key in self.links:
                    yield self._hdr(rel, _tar.LNK, st, linkname=self.links[key])
                    return
                self.links[key] = rel
            typ = _tar.CHR if _stat.S_ISCHR(m) else _tar.BLK if _stat.S_ISBLK(m) else _tar.FIFO
            yield self._hdr(rel, typ, st, xattrs=_xattrs(_proc(dfd, name)))
        # sockets (and anything else) have no tar form: skipped, as tar and docker do

    def _file(self, dfd: int, name: bytes, rel: bytes, st):
        if st.st_nlink > 1:
            key = (st.st_dev, st.st_ino)
            if key in self.links:
                yield self._hdr(rel, _tar.LNK, st, linkname=self.links[key])
                return
        fd = os.open(name, _O_FILE, dir_fd=dfd)
        try:
            fst = os.fstat(fd)
            if not _stat.S_ISREG(fst.st_mode) or (fst.st_dev, fst.st_ino) != (st.st_dev, st.st_ino):
                raise LayerError(f"{_show(rel)} changed while the layer was being written")
            if fst.st_nlink > 1:
                self.links[(fst.st_dev, fst.st_ino)] = rel
            self._check_file(fd, rel)
            size = fst.st_size
            yield self._hdr(rel, _tar.REG, fst, size=size, xattrs=_xattrs(fd))
            left = size
            while left:
                b = os.read(fd, min(CHUNK, left))
                if not b:
                    raise LayerError(f"{_show(rel)} shrank while the layer was being written")
                left -= len(b)
                yield b
            if size % _tar.BLOCK:
                yield _tar.padding(size)
        finally:
            os.close(fd)

    def _check_file(self, fd: int, rel: bytes) -> None:
        if not self.check_metacopy:
            return
        try:
            os.getxattr(fd, self.xattr_prefix + "metacopy")
        except OSError:
            return
        raise LayerError(f"{_show(rel)} in the overlay upper dir is a metadata-only copy (metacopy): "
                         "mount with metacopy=off to make layers from it")

    # -- full layer -----------------------------------------------------------------------
    def full_dir(self, dfd: int, rel: bytes):
        for name in _names(dfd):
            st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
            yield from self.entry(dfd, name, _join(rel, name), st, self.full_dir)

    # -- overlay upper --------------------------------------------------------------------
    def upper_dir(self, dfd: int, rel: bytes):
        dst = None
        others = []
        for name in _names(dfd):
            st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
            if _stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
                dst = dst or os.fstat(dfd)
                yield self._marker(_join(rel, WHITEOUT_PREFIX + name), dst)
            else:
                others.append((name, st))
        for name, st in others:
            crel = _join(rel, name)
            if _stat.S_ISDIR(st.st_mode):
                yield from self._upper_subdir(dfd, name, crel, st)
            else:
                yield from self.entry(dfd, name, crel, st)

    def _upper_subdir(self, dfd: int, name: bytes, rel: bytes, st):
        fd = os.open(name, _O_DIR, dir_fd=dfd)
        try:
            over = _overlay_xattrs(fd, self.xattr_prefix)
            if over.get("redirect") is not None:
                raise LayerError(f"{_show(rel)} in the overlay upper dir is a renamed directory "
                                 "(redirect_dir): mount with redirect_dir=off to make layers from it")
            yield self._hdr(rel + b"/", _tar.DIR, st, xattrs=_xattrs(fd))
            if over.get(self.opaque_xattr[len(self.xattr_prefix):]) == b"y":
                yield self._marker(_join(rel, OPAQUE_MARKER), st)
            yield from self.upper_dir(fd, rel)
        finally:
            os.close(fd)

    # -- two trees ------------------------------------------------------------------------
    def _flush(self):
        if self.pending:
            yield from self.pending
            self.pending.clear()

    def changes_dir(self, ofd: int, nfd: int, rel: bytes):
        new = _names(nfd)
        old = set(_names(ofd))
        removed = sorted(old.difference(new))
        if removed:
            yield from self._flush()
            dst = os.fstat(nfd)
            for name in removed:
                yield self._marker(_join(rel, WHITEOUT_PREFIX + name), dst)
        for name in new:
            crel = _join(rel, name)
            nst = os.stat(name, dir_fd=nfd, follow_symlinks=False)
            if name not in old:
                yield from self._flush()
                yield from self.entry(nfd, name, crel, nst, self.full_dir)
                continue
            ost = os.stat(name, dir_fd=ofd, follow_symlinks=False)
            if _stat.S_ISDIR(nst.st_mode) and _stat.S_ISDIR(ost.st_mode):
                yield from self._changed_subdir(ofd, nfd, name, crel, ost, nst)
                continue
            if not _stat.S_ISDIR(nst.st_mode) and not self._differs(ofd, nfd, name, ost, nst):
                continue
            yield from self._flush()
            yield from self.entry(nfd, name, crel, nst, self.full_dir)

    def _changed_subdir(self, ofd: int, nfd: int, name: bytes, rel: bytes, ost, nst):
        ocfd = os.open(name, _O_DIR, dir_fd=ofd)
        try:
            ncfd = os.open(name, _O_DIR, dir_fd=nfd)
            try:
                nx = _xattrs(ncfd)
                hdr = self._hdr(rel + b"/", _tar.DIR, nst, xattrs=nx)
                if _meta(ost) != _meta(nst) or _xattrs(ocfd) != nx:
                    yield from self._flush()
                    yield hdr
                    yield from self.changes_dir(ocfd, ncfd, rel)
                else:
                    mark = len(self.pending)
                    self.pending.append(hdr)  # written only if something below changed
                    yield from self.changes_dir(ocfd, ncfd, rel)
                    del self.pending[mark:]
            finally:
                os.close(ncfd)
        finally:
            os.close(ocfd)

    def _differs(self, ofd: int, nfd: int, name: bytes, ost, nst) -> bool:
        if _meta(ost) != _meta(nst) or ost.st_size != nst.st_size:
            return True
        m = nst.st_mode
        if (_stat.S_ISCHR(m) or _stat.S_ISBLK(m)) and ost.st_rdev != nst.st_rdev:
            return True
        if _stat.S_ISLNK(m) and os.readlink(name, dir_fd=ofd) != os.readlink(name, dir_fd=nfd):
            return True
        return _xattrs(_proc(ofd, name)) != _xattrs(_proc(nfd, name))


def _meta(st) -> tuple:
    return (st.st_mode, st.st_uid, st.st_gid, st.st_mtime_ns)


def _names(dfd: int) -> list:
    """The names in directory ``dfd``, as bytes, sorted bytewise."""
    return sorted(os.fsencode(n) for n in os.listdir(dfd))


def _join(rel: bytes, name: bytes) -> bytes:
    return rel + b"/" + name if rel else name


def _show(name: bytes) -> str:
    return repr(os.fsdecode(name))


def _proc(dfd: int, name: bytes) -> bytes:
    """A path naming ``name`` in the directory ``dfd`` for the l*xattr calls (no *at form)."""
    return b"/proc/self/fd/%d/%s" % (dfd, name)


def _keep(k: str) -> bool:
    return k == "security.capability" or (k.startswith("user.") and not k.startswith("user.overlay."))


def _xattrs(target) -> dict | None:
    """The xattrs a layer keeps, of an fd or of a /proc path (not followed)."""
    try:
        if isinstance(target, int):
            names = os.listxattr(target)
        else:
            names = os.listxattr(target, follow_symlinks=False)
    except OSError as e:
        if e.errno in (errno.ENOTSUP, errno.EPERM):
            return None
        raise
    out = {}
    for k in names:
        if _keep(k):
            try:
                if isinstance(target, int):
                    v = os.getxattr(target, k)
                else:
                    v = os.getxattr(target, k, follow_symlinks=False)
            except OSError as e:
                if e.errno == errno.ENODATA:
                    continue
                raise
            out[k.encode()] = v
    return out or None


def _overlay_xattrs(fd: int, prefix: str) -> dict:
    out = {}
    for k in os.listxattr(fd):
        if k.startswith(prefix):
            try:
                out[k[len(prefix):]] = os.getxattr(fd, k)
            except OSError:
                pass
    return out
