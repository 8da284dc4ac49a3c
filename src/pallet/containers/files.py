"""A container's files: podman's ``cp``, ``diff`` and ``export``.

Every path inside a container is resolved by file descriptor in its mounted root filesystem
(:mod:`pallet._rootfs`): symlinks are followed as the container would see them and never lead
out of it, so a container whose ``/etc`` is a symlink to the host's ``/etc`` makes ``cp`` read
and write its own ``/etc``, never the host's. What is copied travels as a tar stream (as in
podman, through buildah's copier): written by :func:`pallet.layer.create.tar_entry` from an
open directory, extracted by :func:`pallet.layer.apply.apply_layer` (plain archive, no
whiteouts) into an open directory, never writing through a symlink.

podman's rules (``cp SRC DEST``, one side ``CONTAINER:PATH``):

- the destination exists and is a directory: SRC goes into it under its own name;
  ``SRC/.`` (a directory) copies its content instead;
- the destination exists and is a file: a file SRC replaces it; a directory SRC is an error;
- the destination does not exist: SRC (file or directory) is created under that name, its
  parent must exist; a destination ending with ``/`` must exist;
- ``-`` as SRC: a tar archive (plain, gzip or zstd) on stdin extracted into the destination
  directory; ``-`` as DEST: a tar archive of SRC on stdout;
- into a container, with ``--archive`` (the default) what is copied is owned by the container's
  user (its primary uid and gid); out of it, by the user running pallet; device nodes are not
  copied out.
- a relative path inside the container is relative to its working directory.
"""

from __future__ import annotations

import os
import posixpath
import stat as _stat

from .. import _fs, _rootfs
from ..errors import ContainerError, LayerError, UsageError

_O_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC


class _Tree:
    """A tree a container path can land in: its root filesystem (``/``) or the source of a
    bind mount (``dest``), open as a directory fd."""

    __slots__ = ("dest", "fd", "real", "readonly")

    def __init__(self, dest: str, fd: int, readonly: bool):
        self.dest, self.fd, self.readonly = dest, fd, readonly
        self.real = os.readlink(_rootfs.fd_path(fd))


def _proc_root(pid, rootfs_stat) -> int | None:
    """A running container's root as its init sees it (``/proc/PID/root``: with its tmpfs,
    bind and volume mounts), or None. It must be the very directory the store mounted (same
    device and inode): a PID that was reused, or a process without a mount namespace of its
    own, whose root is the host's, is never taken."""
    if not isinstance(pid, int) or pid <= 0:
        return None
    try:
        fd = os.open(f"/proc/{pid}/root", _O_DIR)
    except OSError:
        return None
    st = os.fstat(fd)
    if (st.st_dev, st.st_ino) != (rootfs_stat.st_dev, rootfs_stat.st_ino):
        os.close(fd)
        return None
    return fd


class Rootfs:
    """A container's root filesystem mounted (counted: a running container's stays mounted) and
    open as a directory fd. A running container's paths are resolved in its init's root
    (:func:`_proc_root`), so its tmpfs, bind and volume mounts are what it sees; a stopped one's
    in its root filesystem and its bind mounts' sources (a path below a bind mount's
    destination is that source's); ``close()`` lets go of them."""

    def __init__(self, ctrs, text: str):
        self.ctrs = ctrs
        self.rec = ctrs.get(text)
        ctrs.check_has_layer(self.rec, "cp and export")
        self.id = self.rec["id"]
        self.meta = self.rec["metadata"]["pallet"]
        self.path = ctrs.store.mount_container(self.id)
        self.trees: list[_Tree] = []
        try:
            self.fd = os.open(self.path, _O_DIR)
            self.real = os.readlink(_rootfs.fd_path(self.fd))
            st = ctrs.state(self.id)
            live = _proc_root(st.get("pid"), os.fstat(self.fd)) if st.get("state") == "running" else None
            if live is not None:  # everything as the container sees it: its tmpfs, binds and volumes
                self.trees.append(_Tree("/", live, False))
                return
            for b in self.meta.get("binds") or []:
                try:
                    fd = os.open(b["source"], _O_DIR)
                except OSError:  # gone, or a file: the container's own tree there
                    continue
                self.trees.append(_Tree(posixpath.normpath(b["destination"]), fd, bool(b.get("readonly"))))
            self.trees.sort(key=lambda t: len(t.dest), reverse=True)
            self.trees.append(_Tree("/", self.fd, False))
        except BaseException:
            for t in self.trees:
                if t.fd != self.fd:
                    os.close(t.fd)
            ctrs.store.umount_container(self.id)
            raise

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def close(self) -> None:
        if self.fd >= 0:
            for t in self.trees:
                if t.fd != self.fd:
                    os.close(t.fd)
            os.close(self.fd)
            self.fd = -1
            self.ctrs.store.umount_container(self.id)

    @property
    def name(self) -> str:
        return self.meta["name"]

    def absolute(self, path: str) -> str:
        """A container path as an absolute one (relative: from the working directory)."""
        if path.startswith("/"):
            return path
        try:
            wd = (self.ctrs.spec(self.id).get("process") or {}).get("cwd") or "/"
        except ContainerError:
            wd = "/"
        return posixpath.join(wd, path)

    def route(self, path: str) -> tuple[_Tree, str]:
        """The tree an (absolute) container path is in and the path inside it."""
        norm = posixpath.normpath(path)
        for t in self.trees[:-1]:
            if norm == t.dest or norm.startswith(t.dest + "/"):
                return t, norm[len(t.dest):] or "/"
        return self.trees[-1], path

    def inside(self, fd: int, tree: _Tree | None = None) -> str:
        """The container path of an fd opened inside ``tree`` (the root filesystem)."""
        tree = tree or self.trees[-1]
        real = os.readlink(_rootfs.fd_path(fd))
        if real == tree.real:
            return tree.dest
        if not real.startswith(tree.real.rstrip("/") + "/"):  # cannot happen: resolved in the tree
            raise ContainerError(f"container {self.name}: a path resolved outside its root filesystem")
        return posixpath.join(tree.dest, real[len(tree.real.rstrip("/")) + 1:])

    def stat(self, path: str):
        """``(container path with symlinks resolved, stat)`` of ``path``, or None when missing."""
        tree, rest = self.route(self.absolute(path))
        try:
            fd = _rootfs.open_in_root(tree.fd, rest)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as e:
            raise ContainerError(f"{path!r} in container {self.name}: {e.strerror}") from None
        try:
            return self.inside(fd, tree), os.fstat(fd)
        finally:
            os.close(fd)

    def open_dir(self, path: str, write: bool = False) -> int:
        tree, rest = self.route(path)
        if write and tree.readonly:
            raise ContainerError(f"{path!r} in container {self.name} is on a read-only mount ({tree.dest})")
        return _rootfs.open_in_root(tree.fd, rest, _O_DIR)

    def dangling(self, path: str) -> str:
        """``path``, or where it points when it is a symlink to nothing (a destination podman
        writes through: ``x -> /tmp/none`` makes ``/tmp/none``); the link's target is taken as
        the container reads it, and resolved by fd again by whoever uses the answer."""
        if path.endswith("/"):
            return path
        for _ in range(40):  # the kernel's MAXSYMLINKS
            tree, rest = self.route(path)
            try:
                fd = _rootfs.open_in_root(tree.fd, rest, os.O_PATH | os.O_NOFOLLOW, follow_last=False)
            except OSError:
                return path
            try:
                if not _stat.S_ISLNK(os.fstat(fd).st_mode):
                    return path
                target = os.readlink("", dir_fd=fd)
                link = self.inside(fd, tree)
            finally:
                os.close(fd)
            if self.stat(link) is not None:  # not dangling: the caller's stat follows it
                return path
            path = posixpath.normpath(posixpath.join(posixpath.dirname(link), target))
        return path

    def parent(self, real: str) -> tuple[int, str]:
        """``(fd of its directory, name in it)`` of a resolved container path; a tree's top
        (``/``, a bind mount's destination) is ``"."`` in itself."""
        tree, rest = self.route(real)
        if rest == "/":
            return os.open(".", _O_DIR, dir_fd=tree.fd), "."
        return self.open_dir(posixpath.dirname(real)), posixpath.basename(real)

    def user(self) -> tuple[int, int]:
        """The container's primary uid and gid (its ``--user``, else the image's, by its passwd),
        as the host writes them (a user namespace's mapped ids)."""
        try:
            spec = self.ctrs.spec(self.id).get("_user") or "0"
        except ContainerError:
            spec = "0"
        uid, gid, _ = self.ctrs.resolve_user(self.path, spec)
        umap, gmap = self.maps
        if umap:
            from ..layer.idmap import to_host

            uid, gid = to_host(umap, uid), to_host(gmap, gid)
        return uid, gid

    @property
    def maps(self):
        """A user namespace's ``(uid map, gid map)`` (ids outside them are nobody's), else Nones."""
        uns = (self.meta.get("extra") or {}).get("userns")
        if not uns or not uns.get("uid"):
            return None, None
        from ..layer.idmap import Tolerant

        return Tolerant(uns["uid"]), Tolerant(uns["gid"])


def split_arg(text: str) -> tuple[str | None, str]:
    """podman's ``[CONTAINER:]PATH``: a path starting with ``.`` or ``/`` names no container."""
    if text and text[0] not in "./" and ":" in text:
        c, _, p = text.partition(":")
        return c, p
    return None, text


def _top_name(src: str, real: str, is_dir: bool) -> str:
    """The name a source has at the top of the archive: "" for ``DIR/.`` (its content)."""
    if is_dir and (src == "." or src.endswith("/.")):
        return ""
    return posixpath.basename(real.rstrip("/")) or "/"


class _Dest:
    """Where an archive is extracted: an open directory and the name its top entry gets
    (None: the archive's own names)."""

    def __init__(self, dir_path: str, rename: str | None, is_dir: bool, exists: bool):
        self.dir_path, self.rename, self.is_dir, self.exists = dir_path, rename, is_dir, exists


def _plan(dest_given: str, dest_stat, src_is_dir: bool | None, where: str, parent_exists,
          shown: str | None = None) -> _Dest:
    """podman's destination rules; ``dest_stat``: ``(resolved path, stat)`` or None when missing;
    ``src_is_dir`` None: a tar from stdin; ``shown``: the path as the user wrote it (errors)."""
    shown = shown or dest_given
    if dest_stat is None:
        if dest_given.endswith("/"):
            raise UsageError(f"\"{shown}\" could not be found {where}: no such file or directory")
        if src_is_dir is None:
            raise UsageError("destination must be a directory when copying from stdin")
        parent = posixpath.dirname(dest_given.rstrip("/")) or ("/" if dest_given.startswith("/") else ".")
        if not parent_exists(parent):
            raise UsageError(f"\"{shown}\" could not be found {where}: no such file or directory")
        return _Dest(parent, posixpath.basename(dest_given.rstrip("/")), False, False)
    real, st = dest_stat
    if _stat.S_ISDIR(st.st_mode):
        return _Dest(real, None, True, True)
    if src_is_dir is None:
        raise UsageError("destination must be a directory when copying from stdin")
    if src_is_dir:
        raise UsageError("destination must be a directory when copying a directory")
    if not _stat.S_ISREG(st.st_mode):
        raise UsageError(f"invalid destination: \"{shown}\" must be a directory or a regular file")
    return _Dest(posixpath.dirname(real) or "/", posixpath.basename(real), False, True)


def _extract(stream, dir_fd: int, *, owner, devices: str, where: str, overwrite: bool = False) -> None:
    """Extract an archive into ``dir_fd`` (``where``: how errors name that directory);
    ``overwrite``: a directory may replace a non-directory and the other way round."""
    from ..layer.apply import apply_layer

    try:
        apply_layer(stream, _rootfs.fd_path(dir_fd), whiteouts="none", owner=owner, devices=devices,
                    replace_kind=overwrite)
    except LayerError as e:
        entry = getattr(e, "entry", None)
        if entry is not None:  # podman's words (its scripts grep them)
            path = posixpath.join(where, os.fsdecode(entry).strip("/"))
            raise ContainerError(f"copying: error creating \"{path}\": {e}: file exists (--overwrite replaces it)") \
                from None
        raise ContainerError(f"copying: {str(e).replace('applying layer entry', 'entry')}") from None


def _archive(parent_fd: int, name: str, top: str, maps=(None, None)):
    from ..layer.create import tar_entry

    return tar_entry(parent_fd, os.fsencode(name), os.fsencode(top), uid_map=maps[0], gid_map=maps[1])


# -- out of a container ------------------------------------------------------------------------

def _found(root: Rootfs, path: str):
    found = root.stat(path)
    if found is None:
        raise ContainerError(f"\"{path}\" could not be found on container {root.name}: no such file or directory")
    return found


def archive_from(root: Rootfs, path: str, rename: str | None = None):
    """``(stream, parent fd)``: a tar of ``path`` in the container (symlinks followed inside
    it); its top entry is ``rename``, else the path's base name ("" for ``DIR/.``: the
    content). The caller closes the fd once the stream is read."""
    real, st = _found(root, path)
    top = rename if rename is not None else _top_name(path, real, _stat.S_ISDIR(st.st_mode))
    if real == "/":
        top = rename or ""
    pfd, name = root.parent(real)
    try:
        return _archive(pfd, name, top, root.maps), pfd
    except BaseException:
        os.close(pfd)
        raise


def pump(stream, out) -> None:
    with stream:
        while True:
            b = stream.read(1 << 20)
            if not b:
                break
            out.write(b)
    out.flush()


def copy_out(ctrs, text: str, path: str, host_dest: str, out=None, *, overwrite: bool = False) -> None:
    """``cp CONTAINER:PATH HOST_DEST`` (``-``: a tar to ``out``, a binary file)."""
    with Rootfs(ctrs, text) as root:
        if host_dest == "-":
            stream, pfd = archive_from(root, path)
            try:
                pump(stream, out)
            finally:
                os.close(pfd)
            return
        _, st = _found(root, path)
        special = ("/dev/", "/proc/")
        if os.path.abspath(host_dest).startswith(special) or os.path.realpath(host_dest).startswith(special) \
                or _fs.is_special(host_dest):  # never written: /dev/stdout is "-"'s job
            raise UsageError(f"invalid destination: \"{host_dest}\" must be a directory or a regular file")
        d = _plan(host_dest, _host_stat(host_dest), _stat.S_ISDIR(st.st_mode), "on the host", os.path.isdir)
        hfd = os.open(d.dir_path, _O_DIR)
        try:
            stream, pfd = archive_from(root, path, d.rename)
            try:
                with stream:
                    _extract(stream, hfd, owner=(os.getuid(), os.getgid()), devices="skip", where="/",
                             overwrite=overwrite)
            finally:
                os.close(pfd)
        finally:
            os.close(hfd)


def _host_stat(path: str):
    try:
        return os.path.realpath(path), os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None


# -- into a container --------------------------------------------------------------------------

def copy_in(ctrs, text: str, path: str, host_src: str, *, archive: bool = True, stdin=None,
            overwrite: bool = False) -> None:
    """``cp HOST_SRC CONTAINER:PATH`` (``-``: a tar, maybe compressed, read from ``stdin``)."""
    if host_src != "-":
        src_stat = _host_stat(host_src)
        if src_stat is None:
            raise UsageError(f"\"{host_src}\" could not be found on the host: no such file or directory")
        src_real, sst = src_stat
        src_is_dir = _stat.S_ISDIR(sst.st_mode)
    else:
        src_is_dir = None
    with Rootfs(ctrs, text) as root:
        want = root.dangling(root.absolute(path))

        def parent_exists(p):
            found = root.stat(p)
            return found is not None and _stat.S_ISDIR(found[1].st_mode)

        d = _plan(want, root.stat(want), src_is_dir, f"on container {root.name}", parent_exists, path)
        owner = root.user() if archive else None
        dfd = root.open_dir(d.dir_path, write=True)
        try:
            if host_src == "-":
                from ..layer.stream import Peek, open_decompressed

                stream = Peek(open_decompressed(stdin))
                if not _tar_head(stream.peek(512)):
                    raise UsageError("source must be a (compressed) tar archive when copying from stdin")
                _extract(stream, dfd, owner=owner, devices="create", where=d.dir_path, overwrite=overwrite)
                return
            # to a new name, a directory (DIR/. too) is made under that name
            top = d.rename if d.rename is not None else _top_name(host_src, src_real, src_is_dir)
            if src_real == "/":
                pfd, name = os.open("/", _O_DIR), "."
                top = top or ""
            else:
                pfd, name = os.open(os.path.dirname(src_real), _O_DIR), os.path.basename(src_real)
            try:
                with _archive(pfd, name, top) as stream:
                    _extract(stream, dfd, owner=owner, devices="create", where=d.dir_path, overwrite=overwrite)
            finally:
                os.close(pfd)
        finally:
            os.close(dfd)


def _tar_head(head: bytes) -> bool:
    """Does a stream start like a tar archive: a header block whose checksum holds (or the zero
    block of an empty archive)?"""
    if len(head) < 512:
        return False
    if not head.strip(b"\0"):
        return True
    field = head[148:156].strip(b" \0")
    try:
        want = int(field, 8)
    except ValueError:
        return False
    return sum(head[:148]) + 8 * 32 + sum(head[156:512]) == want


def copy_between(ctrs, src_text: str, src_path: str, dst_text: str, dst_path: str, *, archive: bool = True,
                 overwrite: bool = False) -> None:
    """``cp A:PATH B:PATH``: the archive of A's path extracted in B."""
    with Rootfs(ctrs, src_text) as a, Rootfs(ctrs, dst_text) as b:
        found = _found(a, src_path)
        want = b.dangling(b.absolute(dst_path))

        def parent_exists(p):
            f = b.stat(p)
            return f is not None and _stat.S_ISDIR(f[1].st_mode)

        d = _plan(want, b.stat(want), _stat.S_ISDIR(found[1].st_mode), f"on container {b.name}", parent_exists,
                  dst_path)
        dfd = b.open_dir(d.dir_path, write=True)
        try:
            stream, pfd = archive_from(a, src_path, d.rename)
            try:
                with stream:
                    _extract(stream, dfd, owner=b.user() if archive else None, devices="create", where=d.dir_path,
                             overwrite=overwrite)
            finally:
                os.close(pfd)
        finally:
            os.close(dfd)


# -- diff, export ----------------------------------------------------------------------------

#: what the runtime makes for every container, left out of ``diff`` (libpod's initInodes)
INIT_PATHS = frozenset(("/dev", "/etc/hostname", "/etc/hosts", "/etc/resolv.conf", "/proc", "/run", "/run/notify",
                        "/run/.containerenv", "/run/secrets", "/run/podman-init", "/sys", "/etc/mtab"))


def changes(ctrs, text: str) -> list[tuple[str, str]]:
    """podman's ``diff``: ``(kind, path)`` sorted by path, kind ``A`` (added), ``C`` (changed:
    it was in the image; a directory whose content changed is changed too) or ``D`` (deleted),
    without what the runtime makes in every container (:data:`INIT_PATHS`), from the
    container's layer against its image (overlay: its upper dir, metadata only; vfs: the layer
    a commit would store)."""
    c = ctrs.get(text)
    ctrs.check_has_layer(c, "diff")
    store = ctrs.store
    image_id = c.get("image")
    lower = store.mount_image(image_id) if image_id else None
    try:
        lfd = os.open(lower, _O_DIR) if lower else -1
        try:
            out: dict = {}
            if store.driver.name == "overlay":  # its upper dir, metadata only (no file is read)
                ufd = os.open(store.container_diff_dir(c["id"]), _O_DIR | os.O_NOFOLLOW)
                try:
                    _upper_changes(ufd, "", lfd, out)
                finally:
                    os.close(ufd)
            else:
                _stream_changes(store, c["id"], lfd, out)
        finally:
            if lfd >= 0:
                os.close(lfd)
    finally:
        if lower:
            store.umount_image(image_id)
    return sorted(((k, p) for p, k in out.items() if p not in INIT_PATHS), key=lambda kp: kp[1])


def _upper_changes(dfd: int, rel: str, lfd: int, out: dict) -> None:
    """An overlay upper dir's changes: a 0/0 character device is a deletion, anything else
    added or (when the image has it) changed; directories walked by fd, never followed."""
    for name in sorted(os.listdir(dfd)):
        st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
        path = f"{rel}/{name}"
        if _stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
            out[path] = "D"
            continue
        out[path] = "C" if lfd >= 0 and _in_lower(lfd, path) else "A"
        if _stat.S_ISDIR(st.st_mode):
            fd = os.open(name, _O_DIR | os.O_NOFOLLOW, dir_fd=dfd)
            try:
                _upper_changes(fd, path, lfd, out)
            finally:
                os.close(fd)


def _stream_changes(store, cid: str, lfd: int, out: dict) -> None:
    """The vfs driver's changes: the layer a commit would store, its entries read."""
    from ..layer.apply import OPAQUE_MARKER, WHITEOUT_PREFIX
    from ..layer.tar import TarReader

    with store.container_changes(cid) as stream:
        tr = TarReader(stream)
        while True:
            h = tr.next()
            if h is None:
                break
            parts = [p for p in h.name.split(b"/") if p and p != b"."]
            if not parts or parts[-1] == OPAQUE_MARKER:
                continue
            base = parts[-1]
            if base.startswith(WHITEOUT_PREFIX):
                out["/" + os.fsdecode(b"/".join(parts[:-1] + [base[len(WHITEOUT_PREFIX):]]))] = "D"
                continue
            path = "/" + os.fsdecode(b"/".join(parts))
            out[path] = "C" if lfd >= 0 and _in_lower(lfd, path) else "A"
        tr.finish()


def _in_lower(lfd: int, path: str) -> bool:
    try:
        os.close(_rootfs.open_beneath(lfd, path.lstrip("/"), os.O_PATH | os.O_NOFOLLOW))
        return True
    except OSError:
        return False


def export(ctrs, text: str, out) -> None:
    """podman's ``export``: the container's root filesystem as one tar (no volume or bind
    mount content) written to ``out``."""
    from ..layer.create import tar_directory

    with Rootfs(ctrs, text) as root:
        umap, gmap = root.maps  # a user namespace's files with the container's ids
        pump(tar_directory(_rootfs.fd_path(root.fd), uid_map=umap, gid_map=gmap), out)
