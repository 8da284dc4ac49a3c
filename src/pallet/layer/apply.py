"""Apply an uncompressed tar layer onto a directory, in one streaming pass, never outside it.

    stats = apply_layer(open_decompressed(blob), "/staging/dir", whiteouts="overlay")

Two output formats (``whiteouts=``):

``"apply"``
    the directory is a whole root filesystem (the vfs driver, ``umoci unpack``): a whiteout
    ``DIR/.wh.NAME`` deletes NAME (recursively); an opaque marker ``DIR/.wh..wh..opq`` empties
    DIR of everything lower layers put there, but keeps what this layer adds (before or after
    the marker: the order inside a tar is arbitrary). A whiteout of a name this same layer
    created is ignored for files and means "opaque" for directories.
``"overlay"``
    the directory is one overlayfs layer (a ``diff``/upper dir): ``.wh.NAME`` becomes a 0/0
    character device NAME, the opaque marker sets ``trusted.overlay.opaque=y`` (or
    ``opaque_xattr``, e.g. ``user.overlay.opaque`` for rootless mounts) on DIR. A directory
    entry that replaces a whiteout of this same layer is made opaque, which is what "deleted
    then re-created" means.

Names: a leading ``/`` is stripped (``/a`` is ``a``, as containers/storage and tar do); empty
and ``.`` components are dropped; any ``..`` component is refused; the root itself (``./``)
is not changed, its metadata belongs to whoever made the directory (its mode is reported in
``ApplyStats.root_mode`` for the store to use).

Symlinks in parent paths: every component is opened with ``O_NOFOLLOW`` relative to its
parent's fd (:func:`pallet._rootfs.walk_in_root`, the one resolver, with the rules below as
its hooks). A component that is a symlink is followed only when it is relative and stays
inside the root (``lib -> usr/lib``, as tar would); an absolute target or one climbing out
of the root is refused (umoci and containers/storage resolve those inside the root instead;
legitimate layers never write through a symlink, so refusing is the safe choice). The last
component is never followed: an entry replaces a symlink, it does not write through it.
Hardlink targets are resolved the same way and must exist, inside the root.

Failure: on any error this raises (a :class:`~pallet.errors.LayerError` for bad input) and
leaves the directory half written. Callers stage into a temporary directory and rename it
into place only on success (the store does), so nothing half applied is ever visible.

The caller computes the diffID by wrapping the stream in ``stream.Digesting``/``Verifying``:
after a successful apply the stream has been read to its end.
"""

from __future__ import annotations

import errno
import os
import stat as _stat

from ..errors import LayerError
from . import _tar
from .idmap import to_host

WHITEOUT_PREFIX = b".wh."
WHITEOUT_META_PREFIX = b".wh..wh."
OPAQUE_MARKER = b".wh..wh..opq"
OVERLAY_OPAQUE_XATTR = "trusted.overlay.opaque"

_O_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_CACHE = 64

# xattrs a layer may not set: overlayfs's own (a forged redirect/metacopy/opaque would change
# what the mount shows) and the host's security label
_REFUSED_XATTR_PREFIXES = (b"trusted.overlay.", b"user.overlay.", b"security.selinux")


class ApplyStats:
    """What one apply did. ``bytes``: tar bytes read (the whole stream); ``entries``: members
    processed; ``files``: regular files written; ``size``: bytes of file data written;
    ``root_mode``: the permission bits of the layer's own root entry (``./``), None without one
    (the applier does not change the root: the store gives it this mode, as containers/storage
    does)."""

    __slots__ = ("bytes", "entries", "files", "size", "whiteouts", "root_mode")

    def __init__(self):
        self.bytes = self.entries = self.files = self.size = self.whiteouts = 0
        self.root_mode = None

    def __repr__(self) -> str:
        return (f"ApplyStats(bytes={self.bytes}, entries={self.entries}, files={self.files}, "
                f"size={self.size}, whiteouts={self.whiteouts})")


def apply_layer(stream, root: str, *, whiteouts: str = "apply", uid_map=None, gid_map=None,
                devices: str = "create", chown: bool = True, xattrs: bool = True,
                opaque_xattr: str = OVERLAY_OPAQUE_XATTR, lowers=(), owner: tuple[int, int] | None = None,
                replace_kind: bool = True) -> ApplyStats:
    """Extract the uncompressed tar ``stream`` (a readable with ``read(n)``) into ``root``.

    ``root`` must exist. ``whiteouts``: "apply" or "overlay" (see the module doc).
    ``uid_map``/``gid_map``: ``(container_id, host_id, size)`` triples mapping the layer's
    owners to the disk's (None: identity); an owner outside the mapping is an error.
    ``devices``: "create" device nodes, "skip" them, or "refuse" (raise) — FIFOs are always
    created, overlay whiteouts always made. ``chown=False`` leaves owners to the caller
    (unprivileged use). ``xattrs=False`` drops extended attributes.
    ``lowers`` (overlay only): the directories of the layers below, top-most first. A
    directory this layer writes into without listing it must exist in the layer's own dir;
    it gets the metadata (owner, mode, xattrs, times) it has in the merged view of the lowers,
    so the mount does not show a root-owned 0755 directory where the image had another.
    Without ``lowers`` such directories are root:root 0755, as containers/storage makes them.
    ``whiteouts="none"``: a plain archive, not a layer (``pallet cp``): ``.wh.`` names are
    ordinary files. ``owner``: every entry gets this (uid, gid), whatever the tar says (cp's
    ``--archive``). ``replace_kind=False``: a directory is never replaced by a non-directory,
    nor the other way round (LayerError naming the entry), as podman's cp refuses.
    Returns :class:`ApplyStats`; raises :class:`LayerError` for a malformed, truncated or
    unsafe layer (see the module doc for what happens to ``root`` then).
    """
    if whiteouts not in ("apply", "overlay", "none"):
        raise ValueError(f"whiteouts must be 'apply', 'overlay' or 'none', not {whiteouts!r}")
    if devices not in ("create", "skip", "refuse"):
        raise ValueError(f"devices must be 'create', 'skip' or 'refuse', not {devices!r}")
    a = _Applier(root, whiteouts == "overlay", uid_map, gid_map, devices, chown, xattrs, opaque_xattr)
    a.lowers = list(lowers) if whiteouts == "overlay" else []
    a.plain, a.owner, a.replace_kind = whiteouts == "none", owner, replace_kind
    try:
        return a.run(stream)
    finally:
        a.close()


def _split(name: bytes, what: str = "name") -> tuple:
    parts = tuple(p for p in name.split(b"/") if p and p != b".")
    if b".." in parts:
        raise LayerError(f"tar {what} {_show(name)} has a '..' component: refusing to write outside the root")
    return parts


_show = _tar.show


def _entry_error(h, e: OSError) -> LayerError:
    """The one-line error for a failed system call on entry ``h``: which entry, and why."""
    if e.errno == errno.ENAMETOOLONG:
        longest = max(_split(h.name) or (b"",), key=len)
        if len(longest) > 255:
            why = f"its path is too long: the component {_show(longest, 40)} is longer than 255 bytes"
        elif len(h.linkname) >= 4096:
            why = f"its link target is too long ({len(h.linkname)} bytes, at most 4095)"
        else:
            why = "its path is too long"
        return LayerError(f"applying layer entry {_show(h.name)}: {why}")
    if e.errno == errno.EINVAL and (h.uid or h.gid):
        from .._userns import in_initial_userns

        if not in_initial_userns():  # chown to an id the namespace does not map (podman's words)
            return LayerError(f"applying layer entry {_show(h.name)}: potentially insufficient UIDs or GIDs "
                              f"available in user namespace (requested {h.uid}:{h.gid}): check /etc/subuid and "
                              "/etc/subgid")
    return LayerError(f"applying layer entry {_show(h.name)}: {e.strerror or e}")


class _Applier:
    def __init__(self, root, overlay, uid_map, gid_map, devices, chown, xattrs, opaque_xattr):
        self.root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        self.root = root
        self.overlay = overlay
        self.uid_map, self.gid_map = uid_map, gid_map
        self.devices = devices
        self.chown = chown
        self.xattrs = xattrs
        self.opaque_xattr = opaque_xattr
        self.cache: dict = {}  # tar parent parts -> (fd, real parts); LRU by insertion order
        self.stale: list = []  # fds dropped from the cache, closed after the current entry
        self.mine: set = {b""}  # real paths this layer created, and their ancestors
        self.dir_times: dict = {}  # real path -> (atime_ns, mtime_ns, generation) of layer dirs
        self.parent_times: dict = {}  # real path -> (atime_ns, mtime_ns) of dirs from before
        self.gen = 0  # bumped whenever a directory or symlink is removed
        self.stats = ApplyStats()
        self.plain, self.owner, self.replace_kind = False, None, True
        # directories made by this pass: a name not in ``mine`` cannot exist in them, so the
        # stat that looks for an entry to replace is skipped (most layers go into an empty dir)
        self.fresh: set = set()
        with os.scandir(self.root_fd) as it:
            if next(it, None) is None:
                self.fresh.add(b"")
        rst = os.fstat(self.root_fd)
        self.root_sgid = bool(rst.st_mode & _stat.S_ISGID)
        self.euid, self.egid = os.geteuid(), os.getegid()
        self.umask = _umask()

    def close(self) -> None:
        for v in self.cache.values():
            os.close(v[0])
        self.cache.clear()
        self._close_stale()
        if self.root_fd >= 0:
            os.close(self.root_fd)
            self.root_fd = -1

    def _close_stale(self) -> None:
        for fd in self.stale:
            os.close(fd)
        self.stale.clear()

    def _invalidate(self) -> None:
        self.gen += 1
        self._drop_cache()

    def _drop_cache(self) -> None:
        for v in self.cache.values():
            self.stale.append(v[0])
        self.cache.clear()

    # -- the pass -------------------------------------------------------------------------
    def run(self, stream) -> ApplyStats:
        tr = _tar.TarReader(stream)
        st = self.stats
        try:
            while True:
                h = tr.next()
                if h is None:
                    break
                st.entries += 1
                try:
                    self._entry(tr, h)
                except OSError as e:
                    raise _entry_error(h, e) from e
                finally:
                    if self.stale:
                        self._close_stale()
            tr.finish()
            self._finish_times()
        finally:
            st.bytes = tr.bytes_read
        return st

    def _entry(self, tr, h) -> None:
        parts = _split(h.name)
        if not parts or h.type == b"V":
            if not parts and h.type == _tar.DIR:
                self.stats.root_mode = h.mode & 0o7777
            return
        base = parts[-1]
        if base.startswith(WHITEOUT_PREFIX) and not self.plain:
            self.stats.whiteouts += 1
            if base == OPAQUE_MARKER:
                self._opaque(parts[:-1], h)
            elif base.startswith(WHITEOUT_META_PREFIX):
                pass  # aufs bookkeeping (.wh..wh.plnk, .wh..wh.aufs): not content
            else:
                self._whiteout(parts[:-1], base[len(WHITEOUT_PREFIX):], h)
            return
        t = h.type
        if t in (_tar.CHR, _tar.BLK) and self.devices != "create":
            if self.devices == "refuse":
                raise LayerError(f"layer has a device node {_show(h.name)} and device nodes are not allowed here")
            return
        pfd, _, rkey, sgid = self._parent(parts[:-1], h.name)
        mine = self.mine
        if rkey not in mine:
            self._note_parent(pfd, rkey)
        key = rkey + b"/" + base if rkey else base

        # hardlink targets are resolved before anything is removed (a link to itself is a no-op)
        if t == _tar.LNK:
            tparts = _split(h.linkname, "hardlink target")
            if not tparts:
                raise LayerError(f"hardlink {_show(h.name)} points at the root directory")
            tpfd = self._parent(tparts[:-1], h.linkname, create=False, link_of=h.name)[0]
            try:
                tst = os.stat(tparts[-1], dir_fd=tpfd, follow_symlinks=False)
            except FileNotFoundError:
                raise LayerError(f"hardlink {_show(h.name)}: target {_show(h.linkname)} does not exist "
                                 "(in this layer, or below it)") from None
            if _stat.S_ISDIR(tst.st_mode):
                raise LayerError(f"hardlink {_show(h.name)}: target {_show(h.linkname)} is a directory")

        if rkey in self.fresh and key not in mine:
            old = None
        else:
            try:
                old = os.stat(base, dir_fd=pfd, follow_symlinks=False)
            except FileNotFoundError:
                old = None
        was_whiteout = False
        if old is not None:
            if t == _tar.DIR and _stat.S_ISDIR(old.st_mode):
                self._dir_meta(pfd, base, key, h, merge=True)
                self._mark(key)
                return
            if t == _tar.LNK and (old.st_dev, old.st_ino) == (tst.st_dev, tst.st_ino):
                self._mark(key)
                return
            if not self.replace_kind and _stat.S_ISDIR(old.st_mode) != (t == _tar.DIR):
                what = "directory with non-directory" if _stat.S_ISDIR(old.st_mode) else "non-directory with directory"
                err = LayerError(f"cannot overwrite {what} {_show(h.name)}")
                err.entry = h.name  # for a caller that names it its own way (cp: podman's wording)
                raise err
            was_whiteout = (self.overlay and _stat.S_ISCHR(old.st_mode) and old.st_rdev == 0
                            and key in self.mine)
            self._remove(pfd, base, old)

        if t == _tar.REG:
            mode = h.mode & 0o7777
            fd = os.open(base, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                         mode & 0o777, dir_fd=pfd)
            try:
                self.stats.size += tr.copy_to(fd)
                self.stats.files += 1
                if h.xattrs or mode != mode & 0o777 & ~self.umask or not self.chown or sgid or \
                        self.uid_map or self.gid_map or self.owner or (h.uid, h.gid) != (self.euid, self.egid):
                    self._fd_meta(fd, h)
                # else: the kernel already gave it our owner and exactly this mode
                os.utime(fd, ns=(h.atime_ns, h.mtime_ns))
            finally:
                os.close(fd)
        elif t == _tar.DIR:
            os.mkdir(base, 0o700, dir_fd=pfd)
            self.fresh.add(key)
            self._dir_meta(pfd, base, key, h, merge=False, opaque=was_whiteout)
        elif t == _tar.SYM:
            os.symlink(h.linkname, base, dir_fd=pfd)
            if self.chown:
                os.chown(base, self._uid(h), self._gid(h), dir_fd=pfd, follow_symlinks=False)
            self._path_xattrs(pfd, base, h)
            os.utime(base, ns=(h.atime_ns, h.mtime_ns), dir_fd=pfd, follow_symlinks=False)
        elif t == _tar.LNK:
            os.link(tparts[-1], base, src_dir_fd=tpfd, dst_dir_fd=pfd, follow_symlinks=False)
        else:  # FIFO, CHR, BLK
            if t == _tar.FIFO:
                os.mkfifo(base, 0o600, dir_fd=pfd)
            else:
                kind = _stat.S_IFCHR if t == _tar.CHR else _stat.S_IFBLK
                try:
                    os.mknod(base, kind | 0o600, os.makedev(h.devmajor, h.devminor), dir_fd=pfd)
                except PermissionError:
                    raise LayerError(f"cannot create device node {_show(h.name)} (no CAP_MKNOD here): "
                                     "apply with devices='skip'") from None
            if self.chown:
                os.chown(base, self._uid(h), self._gid(h), dir_fd=pfd, follow_symlinks=False)
            os.chmod(base, h.mode & 0o7777, dir_fd=pfd)  # just created by us: not a symlink
            self._path_xattrs(pfd, base, h)
            os.utime(base, ns=(h.atime_ns, h.mtime_ns), dir_fd=pfd, follow_symlinks=False)
        self._mark(key)

    # -- whiteouts ------------------------------------------------------------------------
    def _whiteout(self, parent: tuple, name: bytes, h) -> None:
        if name in (b"", b".", b".."):
            raise LayerError(f"whiteout {_show(h.name)} names no entry (or its parent): refused")
        if self.overlay:
            pfd, _, rkey, _ = self._parent(parent, h.name)
        else:
            try:
                pfd, _, rkey, _ = self._parent(parent, h.name, create=False)
            except _Missing:
                return  # nothing below to delete
        key = rkey + b"/" + name if rkey else name
        try:
            old = os.stat(name, dir_fd=pfd, follow_symlinks=False)
        except FileNotFoundError:
            old = None
        if old is not None and key in self.mine:
            # this layer made NAME: a whiteout only hides what lower layers had
            if _stat.S_ISDIR(old.st_mode):
                self._opaque(parent + (name,), h)
            return
        self._note_parent(pfd, rkey)
        if old is not None:
            self._remove(pfd, name, old)
        if self.overlay:
            os.mknod(name, _stat.S_IFCHR | 0o000, os.makedev(0, 0), dir_fd=pfd)
            if self.chown:
                os.chown(name, self._uid(h), self._gid(h), dir_fd=pfd, follow_symlinks=False)
            self.mine.add(key)  # so a directory replacing it in this layer becomes opaque

    def _opaque(self, dirparts: tuple, h) -> None:
        fd, real = self._open_dir(dirparts, h.name)
        try:
            if self.overlay:
                os.setxattr(fd, self.opaque_xattr, b"y")
            else:
                key = b"/".join(real)
                self._note_dir(fd, key)
                self._clear_lower(fd, key)
        finally:
            os.close(fd)

    def _clear_lower(self, fd: int, key: bytes) -> None:
        """Remove from the directory ``fd`` everything this layer did not create."""
        prefix = key + b"/" if key else b""
        for e in os.scandir(fd):
            name = os.fsencode(e.name)
            ckey = prefix + name
            if ckey in self.mine:
                if e.is_dir(follow_symlinks=False):
                    cfd = os.open(name, _O_DIR, dir_fd=fd)
                    try:
                        self._note_dir(cfd, ckey)
                        self._clear_lower(cfd, ckey)
                    finally:
                        os.close(cfd)
            else:
                self._remove(fd, name, os.stat(name, dir_fd=fd, follow_symlinks=False))

    # -- paths ----------------------------------------------------------------------------
    def _parent(self, parts: tuple, name: bytes, create: bool = True, link_of: bytes | None = None):
        """(fd, real parts, real path, setgid) of the directory ``parts`` inside the root; the
        fd is borrowed (valid until the current entry is done)."""
        if not parts:
            return self.root_fd, (), b"", self.root_sgid
        hit = self.cache.get(parts)
        if hit is not None:
            return hit
        fd, real = self._resolve(parts, name, create, link_of)
        hit = (fd, real, b"/".join(real), bool(os.fstat(fd).st_mode & _stat.S_ISGID))
        self.cache[parts] = hit
        if len(self.cache) > _CACHE:
            old = next(iter(self.cache))
            self.stale.append(self.cache.pop(old)[0])
        return hit

    def _open_dir(self, parts: tuple, name: bytes):
        """An fd of its own (caller closes) on the directory ``parts``, created if missing."""
        if not parts:
            return os.dup(self.root_fd), ()
        fd, real = self._parent(parts, name)[:2]
        return os.dup(fd), real

    def _resolve(self, parts: tuple, name: bytes, create: bool, link_of: bytes | None):
        """(fd, real parts) of the directory ``parts``: :func:`pallet._rootfs.walk_in_root`,
        the one resolver, with the applier's rules as its hooks (missing directories made and
        recorded as this layer's, a whiteout of this layer replaced by an opaque directory,
        absolute symlinks and ``..`` out of the root refused)."""
        from .._rootfs import walk_in_root

        what = (f"hardlink {_show(link_of)} -> {_show(name)}" if link_of is not None
                else f"entry {_show(name)}")

        def missing(cur: int, c: bytes, real: list) -> int:
            if not create:
                raise _Missing(what)
            os.mkdir(c, 0o700, dir_fd=cur)
            fd = os.open(c, _O_DIR, dir_fd=cur)
            os.fchmod(fd, 0o755)
            key = b"/".join(real + [c])
            self._mark(key)
            self.fresh.add(key)
            if self.lowers:
                self._copy_lower_dir(fd, key)
            return fd

        def not_dir(cur: int, c: bytes, real: list, st) -> int:
            here = b"/".join(real + [c])
            if create and self.overlay and here in self.mine and _stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
                # this layer whited NAME out and now puts entries below it: in overlay
                # terms that is an opaque directory replacing the whiteout
                os.unlink(c, dir_fd=cur)
                os.mkdir(c, 0o755, dir_fd=cur)
                fd = os.open(c, _O_DIR, dir_fd=cur)
                os.fchmod(fd, 0o755)
                os.setxattr(fd, self.opaque_xattr, b"y")
                self.fresh.add(here)
                return fd
            raise LayerError(f"{what}: {_show(here)} is not a directory")

        def absolute(here: list, target: bytes) -> None:
            raise LayerError(f"{what}: its parent {_show(b'/'.join(here))} is a symlink to the absolute "
                             f"path {_show(target)}, outside the root: refused")

        def escape(_here: list) -> None:
            raise LayerError(f"{what}: a symlink in its path leads out of the root: refused")

        try:
            return walk_in_root(self.root_fd, parts, flags=_O_DIR, missing=missing, not_dir=not_dir,
                                absolute=absolute, escape=escape)
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise LayerError(f"{what}: too many levels of symlinks") from None
            raise

    def _copy_lower_dir(self, fd: int, key: bytes) -> None:
        """Give the implicit directory ``key`` the metadata the lowers' merged view has for it."""
        st, xa = _lookup_lower(self.lowers, key, self.opaque_xattr)
        if st is None:
            return
        if self.chown:
            os.fchown(fd, st.st_uid, st.st_gid)
        os.fchmod(fd, _stat.S_IMODE(st.st_mode))
        for k, v in xa.items():
            os.setxattr(fd, k, v)
        self.parent_times[key] = (st.st_atime_ns, st.st_mtime_ns, self.gen)

    def _mark(self, key: bytes) -> None:
        """Record ``key`` (and its ancestors) as this layer's own."""
        mine = self.mine
        while key not in mine:
            mine.add(key)
            i = key.rfind(b"/")
            key = key[:i] if i > 0 else b""

    def _note_parent(self, fd: int, key: bytes) -> None:
        if key not in self.parent_times and key not in self.mine:
            self._note_dir(fd, key)

    def _note_dir(self, fd: int, key: bytes) -> None:
        """Remember a pre-existing directory's times: changing its content must not change them."""
        if key not in self.parent_times:
            st = os.fstat(fd)
            self.parent_times[key] = (st.st_atime_ns, st.st_mtime_ns, self.gen)

    # -- changes --------------------------------------------------------------------------
    def _remove(self, pfd: int, name: bytes, st) -> None:
        if _stat.S_ISDIR(st.st_mode):
            self._invalidate()
            _rmtree_at(pfd, name)
        else:
            if _stat.S_ISLNK(st.st_mode):
                self._invalidate()
            os.unlink(name, dir_fd=pfd)

    def _uid(self, h) -> int:
        return self.owner[0] if self.owner else to_host(self.uid_map, h.uid, "uid")

    def _gid(self, h) -> int:
        return self.owner[1] if self.owner else to_host(self.gid_map, h.gid, "gid")

    def _wanted_xattrs(self, h) -> dict:
        if not self.xattrs or not h.xattrs:
            return {}
        return {k: v for k, v in h.xattrs.items() if not k.startswith(_REFUSED_XATTR_PREFIXES)}

    def _fd_meta(self, fd: int, h, clear: bool = False) -> None:
        """Owner, mode, xattrs on an open file or directory (in that order: chown clears
        setuid bits and file capabilities)."""
        if self.chown:
            os.fchown(fd, self._uid(h), self._gid(h))
        os.fchmod(fd, h.mode & 0o7777)
        want = self._wanted_xattrs(h)
        if clear and self.xattrs:
            for k in os.listxattr(fd):
                kb = os.fsencode(k)
                if kb not in want and (kb.startswith(b"user.") or kb == b"security.capability") \
                        and not kb.startswith(b"user.overlay."):
                    os.removexattr(fd, k)
        for k, v in want.items():
            try:
                os.setxattr(fd, k, v)
            except OSError as e:
                raise LayerError(f"cannot set xattr {os.fsdecode(k)} on {_show(h.name)}: {e.strerror}") from e

    def _path_xattrs(self, pfd: int, name: bytes, h) -> None:
        want = self._wanted_xattrs(h)
        if not want:
            return
        path = b"/proc/self/fd/%d/%s" % (pfd, name)
        for k, v in want.items():
            try:
                os.setxattr(path, k, v, follow_symlinks=False)
            except OSError as e:
                if e.errno == errno.EPERM and k.startswith(b"user."):
                    continue  # user.* is not allowed on symlinks and device nodes
                raise LayerError(f"cannot set xattr {os.fsdecode(k)} on {_show(h.name)}: {e.strerror}") from e

    def _dir_meta(self, pfd: int, name: bytes, key: bytes, h, merge: bool, opaque: bool = False) -> None:
        fd = os.open(name, _O_DIR, dir_fd=pfd)
        if h.mode & _stat.S_ISGID:
            self._drop_cache()  # cached "parent is not setgid" flags may now be wrong
        try:
            self._fd_meta(fd, h, clear=merge)
            if opaque:
                os.setxattr(fd, self.opaque_xattr, b"y")
        finally:
            os.close(fd)
        self.dir_times[key] = (h.atime_ns, h.mtime_ns, self.gen)

    def _finish_times(self) -> None:
        """Directory times last: creating their content changed them."""
        todo = [(k, v) for k, v in self.parent_times.items() if k not in self.dir_times]
        todo += self.dir_times.items()
        for key, (atime, mtime, gen) in todo:
            if gen == self.gen:
                # nothing was removed since we saw this path made of real directories, so no
                # component can have become a symlink: the kernel may resolve it directly
                os.utime(key or b".", ns=(atime, mtime), dir_fd=self.root_fd, follow_symlinks=False)
                continue
            fd = _open_strict(self.root_fd, key)
            if fd is not None:
                try:
                    os.utime(fd, ns=(atime, mtime))
                finally:
                    os.close(fd)


def _umask() -> int:
    """The process umask, read without changing it (os.umask would, racing other threads)."""
    try:
        with open("/proc/self/status", "rb") as f:
            for line in f:
                if line.startswith(b"Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return 0o777  # unknown: assume the worst, so modes are always set explicitly


class _Missing(LayerError):
    """A path component does not exist (and we were told not to create it)."""

    def __init__(self, what: str):
        super().__init__(f"{what}: a directory in its path does not exist")


def _lookup_lower(lowers, key: bytes, opaque_xattr: str):
    """(stat, xattrs) of directory ``key`` as the overlay of ``lowers`` (top first) shows it,
    or (None, None) when it is not a directory there. Follows no symlink."""
    parts = key.split(b"/")
    for lower in lowers:
        fd = os.open(lower, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            hidden = False  # an opaque directory or a whiteout here hides the layers below
            for i, c in enumerate(parts):
                try:
                    st = os.stat(c, dir_fd=fd, follow_symlinks=False)
                except FileNotFoundError:
                    break
                if not _stat.S_ISDIR(st.st_mode):
                    return None, None  # a file, symlink or whiteout covers the path
                nfd = os.open(c, _O_DIR, dir_fd=fd)
                os.close(fd)
                fd = nfd
                if i == len(parts) - 1:
                    xa = {}
                    for k in os.listxattr(fd):
                        kb = os.fsencode(k)
                        if (kb.startswith(b"user.") and not kb.startswith(b"user.overlay.")) \
                                or kb == b"security.capability":
                            xa[k] = os.getxattr(fd, k)
                    return st, xa
                try:
                    hidden = os.getxattr(fd, opaque_xattr) == b"y"
                except OSError:
                    hidden = False
                if hidden:
                    break
            if hidden:
                return None, None
        finally:
            os.close(fd)
        if _root_opaque(lower, opaque_xattr):
            break  # this layer's root replaced everything below it
    return None, None


def _root_opaque(d: str, opaque_xattr: str) -> bool:
    try:
        return os.getxattr(d, opaque_xattr) == b"y"
    except OSError:
        return False


def _open_strict(root_fd: int, key: bytes):
    """An fd on the directory ``key`` below ``root_fd`` following no symlink, or None."""
    from .._rootfs import open_beneath

    try:
        return open_beneath(root_fd, key, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return None


def _rmtree_at(pfd: int, name: bytes) -> None:
    """Remove the directory ``name`` in ``pfd`` and everything below it, following no symlink.

    Iterative (no recursion limit); each directory is listed whole before anything in it is
    removed, so deleting never races the listing."""
    fd = os.open(name, _O_DIR, dir_fd=pfd)
    stack = [(pfd, name, fd, _subdirs_after_unlinking(fd))]
    try:
        while stack:
            parent, dname, fd, subdirs = stack[-1]
            if subdirs:
                sub = subdirs.pop()
                sfd = os.open(sub, _O_DIR, dir_fd=fd)
                stack.append((fd, sub, sfd, None))  # on the stack first, so an error closes it
                stack[-1] = (fd, sub, sfd, _subdirs_after_unlinking(sfd))
                continue
            stack.pop()
            os.close(fd)
            os.rmdir(dname, dir_fd=parent)
    finally:
        for _, _, fd, _ in stack:
            os.close(fd)


def _subdirs_after_unlinking(fd: int) -> list:
    """Unlink every non-directory in ``fd``; return the names of its subdirectories."""
    with os.scandir(fd) as it:
        entries = list(it)
    subdirs = []
    for e in entries:
        if e.is_dir(follow_symlinks=False):
            subdirs.append(e.name)
        else:
            os.unlink(e.name, dir_fd=fd)
    return subdirs
