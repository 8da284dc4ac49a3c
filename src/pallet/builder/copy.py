"""COPY and ADD: files from the build context, another stage or image, or a heredoc, into a
working container's root filesystem, with Docker's rules.

- Sources are globs (``*``, ``?``, ``[...]`` per path component, dotfiles included) relative to
  their root; a named source's symlinks are followed inside that root, never out of it.
- A directory source copies its contents, not itself; a file goes to ``DEST/NAME`` when the
  destination ends with ``/``, is an existing directory or there are several sources, else to
  ``DEST`` itself. Several sources need a destination ending with ``/``.
- Copied entries keep mode and mtime; owners become 0:0 (``--chown`` otherwise) for context
  sources, and stay as they were for ``--from`` sources; ``--chmod`` sets the mode of what is
  copied. A Dockerfile's COPY/ADD from the build context drops the setuid and setgid bits
  (not the sticky bit), as ``buildah bud`` does; ``--from`` sources and extracted archives
  keep them. Missing parent directories of the destination are made 0755.
- ADD extracts a local tar archive (plain, gzip, bzip2, xz) into the destination directory
  (with the archive's owners and modes: ``--chown`` applies only to the directories made for
  it), and downloads ``http(s)://`` sources. An archive may expand to no more than the store's
  ``layer_size_limit`` and must leave its ``free_space_reserve`` free (a decompression bomb).
- Paths the ignore rules exclude are never copied; naming only excluded files is an error.
"""

from __future__ import annotations

import errno
import os
import posixpath
import stat as _stat

from ..errors import BuildError, StoreError

_GLOB = set("*?[")


def _resolve(root: str, rel: str) -> str | None:
    """A source's host path inside its root (the context, a stage, an image), symlinks
    followed without leaving it; None when it is not all there (a symlink to a path the root
    lacks: ``link -> /etc/shadow`` never names the host's file)."""
    from ._paths import existing_in_root

    return existing_in_root(root, rel)


class Item:
    """One top-level thing to copy: ``path`` on the host, ``rel`` its path within its root
    (for ignore rules), ``name`` the base name it gets in a destination directory."""

    __slots__ = ("path", "rel", "name", "data", "mode", "url")

    def __init__(self, path: str | None, rel: str, name: str, data: bytes | None = None, mode: int | None = None,
                 url: str | None = None):
        self.path = path
        self.rel = rel
        self.name = name
        self.data = data
        self.mode = mode
        self.url = url


class Source:
    """Where sources are looked up: a root directory (context, mounted stage or image) and
    the ignore rules that apply to it (the context only)."""

    def __init__(self, root: str, ignore=None, preserve_owner: bool = False, what: str = "build context",
                 strip_setid: bool = False):
        self.root = root
        self.ignore = ignore
        self.preserve_owner = preserve_owner
        self.what = what
        self.strip_setid = strip_setid  # drop setuid/setgid bits of what is copied

    def excluded(self, rel: str) -> bool:
        return bool(self.ignore) and self.ignore.excluded(rel)

    def match(self, pattern: str) -> list[Item]:
        """The items a source argument names (glob expanded); BuildError when none."""
        clean = os.path.normpath("/" + pattern).lstrip("/")
        parts = [p for p in clean.split("/") if p]
        if not parts:
            return [Item(self.root, "", "", None)]
        found = [("", self.root)]
        for i, comp in enumerate(parts):
            last = i == len(parts) - 1
            nxt = []
            for rel, host in found:
                if not os.path.isdir(host):
                    continue
                if _GLOB & set(comp):
                    import fnmatch

                    try:
                        names = sorted(os.listdir(host))
                    except OSError:
                        continue
                    for n in names:
                        if fnmatch.fnmatchcase(n, comp):
                            self._found(pattern, rel, host, n, nxt)
                else:
                    self._found(pattern, rel, host, comp, nxt)
            found = nxt
            del last
        items = []
        filtered = 0
        for rel, host in found:
            if self.excluded(rel) and not (os.path.isdir(host) and self.ignore.may_include_below(rel)):
                filtered += 1
                continue
            items.append(Item(host, rel, os.path.basename(rel)))
        if not items:
            extra = f" ({filtered} filtered out using {self.ignore.source})" if filtered else ""
            raise BuildError(f"COPY/ADD source {pattern!r}: no such file or directory in the {self.what}{extra}")
        return items

    def _found(self, pattern: str, rel: str, host: str, name: str, out: list) -> None:
        """Add ``name`` of the directory ``host`` (``rel`` in the root) to ``out`` when it is
        there, a symlink resolved inside the root; a symlink whose target the root lacks is
        an error naming it, as buildah's copier fails on it (unless the ignore rules drop it)."""
        entry = os.path.join(host, name)
        if not os.path.lexists(entry):
            return
        r = f"{rel}/{name}".lstrip("/")
        h = _resolve(self.root, r)
        if h is not None:
            out.append((r, h))
        elif not self.excluded(r):
            try:
                target = os.readlink(entry)
            except OSError:
                target = "?"
            raise BuildError(f"COPY/ADD source {pattern!r}: {r} is a symbolic link to {target!r}, which is not in "
                             f"the {self.what} (symbolic links are followed inside it, never out of it): "
                             "no such file or directory")

    def checksum(self, items: list[Item], h) -> None:
        """Feed the names, types, modes and contents of ``items`` to the hash ``h`` (the build
        cache key of a COPY/ADD)."""
        for it in items:
            h.update(b"\0item\0" + it.name.encode("utf-8", "surrogateescape"))
            if it.data is not None:
                h.update(b"data" + str(it.mode).encode() + it.data)
                continue
            if it.url is not None:
                h.update(b"url" + it.url.encode())
                continue
            self._sum_tree(it.path, it.rel, "", h)

    def _sum_tree(self, host: str, rel: str, sub: str, h) -> None:
        st = os.lstat(host)
        owner = f"{st.st_uid}:{st.st_gid}" if self.preserve_owner else ""
        h.update(f"\0{sub}\0{st.st_mode:o}{owner}".encode("utf-8", "surrogateescape"))
        if _stat.S_ISREG(st.st_mode):
            with open(host, "rb") as f:
                while True:
                    b = f.read(1 << 20)
                    if not b:
                        break
                    h.update(b)
        elif _stat.S_ISLNK(st.st_mode):
            h.update(os.readlink(host).encode("utf-8", "surrogateescape"))
        elif _stat.S_ISDIR(st.st_mode):
            for n in sorted(os.listdir(host)):
                r = f"{rel}/{n}".lstrip("/")
                if self.excluded(r) and not (self.ignore.may_include_below(r) and os.path.isdir(os.path.join(host, n))):
                    continue
                self._sum_tree(os.path.join(host, n), r, f"{sub}/{n}", h)


class FileCopyOptions:
    """How COPY/ADD writes: ``chown``/``chmod`` as parsed, ``extract`` (ADD's archive
    unpacking), ``workdir`` for a relative destination; ``size_limit`` and ``space_reserve``
    bound what an extracted archive may expand to, as the store bounds a layer (storage.conf
    ``layer_size_limit``/``free_space_reserve``: :func:`limits_of` reads them from a store)."""

    __slots__ = ("chown", "chmod", "extract", "workdir", "size_limit", "space_reserve")

    def __init__(self, chown: tuple[int, int] | None = None, chmod: int | None = None, extract: bool = False,
                 workdir: str = "/", size_limit: int = 0, space_reserve: int = 0):
        self.chown = chown
        self.chmod = chmod
        self.extract = extract
        self.workdir = workdir or "/"
        self.size_limit = size_limit
        self.space_reserve = space_reserve


def limits_of(store) -> dict:
    """``size_limit``/``space_reserve`` keyword arguments of :class:`FileCopyOptions` for a build
    into ``store``: its ``layer_size_limit`` and ``free_space_reserve``."""
    opts = getattr(store, "options", None)
    return dict(size_limit=getattr(opts, "layer_size_limit", 0) or 0,
                space_reserve=getattr(opts, "free_space_reserve", 0) or 0)


def parse_chmod(text: str) -> int:
    try:
        v = int(text, 8)
    except ValueError:
        raise BuildError(f"invalid --chmod {text!r}: want an octal mode such as 755") from None
    if v > 0o7777:
        raise BuildError(f"invalid --chmod {text!r}: want an octal mode such as 755")
    return v


def copy(rootfs: str, source: Source, items: list[Item], dest: str, o: FileCopyOptions, several: bool = False) -> None:
    """Copy ``items`` into the tree at ``rootfs`` at ``dest`` (see the module doc). The
    destination is resolved inside the root by fd (:mod:`pallet._rootfs`): its directories
    are made by mkdirat and written through ``/proc/self/fd/N``, so a symlink in the image
    (``/app -> /etc``, ``/x -> ../../..``) resolves inside the root and never on the host."""
    from .. import _rootfs

    if not dest.startswith("/"):
        dest = os.path.join(o.workdir, dest)
    dir_mode = dest.endswith("/") or dest.endswith("/.") or several or len(items) > 1
    root_fd = _rootfs.open_root(rootfs)
    fds: list[int] = []

    def directory(path: str) -> str:
        """``path`` inside the root, made if missing (0755, ``--chown``'s owner): a path string
        that names that very directory whatever the tree does afterwards."""
        try:
            fd = _rootfs.mkdir_all_in_root(root_fd, path, 0o755, owner=o.chown)
        except NotADirectoryError:
            raise BuildError(f"{path}: a component of it is not a directory in the container") from None
        fds.append(fd)
        return _rootfs.fd_path(fd)

    try:
        parent, name = posixpath.split(posixpath.normpath(dest))
        try:  # an existing destination (a symlink followed inside the root) that is a directory
            fd = _rootfs.open_in_root(root_fd, dest, os.O_RDONLY | os.O_DIRECTORY)
            fds.append(fd)
            dir_mode = True
            dest_dir = _rootfs.fd_path(fd)
        except (FileNotFoundError, NotADirectoryError):
            dest_dir = None
        except OSError as e:
            if e.errno != errno.ELOOP:
                raise
            raise BuildError(f"{dest}: too many levels of symbolic links in the container") from None
        if not dir_mode:
            # a file destination: a last component that is a symlink is followed inside the root
            real = _rootfs.resolve_in_root(rootfs, dest)
            rel = "/" + os.path.relpath(real, rootfs) if real != rootfs else "/"
            parent, name = posixpath.split(rel)
        w = _Writer(rootfs, source, o)

        def into_dir() -> str:
            nonlocal dest_dir
            if dest_dir is None:
                dest_dir = directory(dest)
            return dest_dir

        def file_target(base: str) -> str:
            return os.path.join(into_dir(), base) if dir_mode else os.path.join(directory(parent), name)

        for it in items:
            if it.data is not None:  # a heredoc
                w.write_bytes(file_target(it.name), it.data, it.mode)
                continue
            if it.url is not None:
                w.download(it.url, file_target(_url_name(it.url)))
                continue
            st = os.stat(it.path)
            if _stat.S_ISDIR(st.st_mode):
                w.copy_children(it.path, it.rel, into_dir())
            elif o.extract and _stat.S_ISREG(st.st_mode) and _is_archive(it.path):
                w.extract(it.path, into_dir())
            else:
                w.copy_entry(it.path, file_target(it.name), follow=True)
    finally:
        for fd in fds:
            os.close(fd)
        os.close(root_fd)


def copy_tree(src_dir: str, dest_dir: str) -> None:
    """The contents of ``src_dir`` into the host directory ``dest_dir`` (made if missing),
    owners, modes and times kept (``build --output type=local``)."""
    os.makedirs(dest_dir, exist_ok=True)
    _Writer("/", Source(src_dir, preserve_owner=True), FileCopyOptions()).copy_children(src_dir, None, dest_dir)


def _url_name(url: str) -> str:
    from urllib.parse import urlparse

    name = os.path.basename(urlparse(url).path.rstrip("/"))
    return name or "download"


def _is_archive(path: str) -> bool:
    with open(path, "rb") as f:
        head = f.read(512)
    if head[:2] == b"\x1f\x8b" or head[:3] == b"BZh" or head[:6] == b"\xfd7zXZ\x00" or head[:4] == b"\x28\xb5\x2f\xfd":
        return True
    return len(head) >= 262 and head[257:262] == b"ustar"


class _Writer:
    def __init__(self, rootfs: str, source: Source, o: FileCopyOptions):
        self.rootfs = rootfs
        self.source = source
        self.o = o
        self.links: dict[tuple[int, int], str] = {}

    def owner(self, st) -> tuple[int, int]:
        if self.o.chown is not None:
            return self.o.chown
        if self.source.preserve_owner:
            return st.st_uid, st.st_gid
        return 0, 0

    def _meta(self, target: str, st, is_link: bool = False) -> None:
        uid, gid = self.owner(st)
        os.lchown(target, uid, gid)
        if not is_link:
            mode = _stat.S_IMODE(st.st_mode)
            if self.source.strip_setid:
                mode &= ~(_stat.S_ISUID | _stat.S_ISGID)
            if self.o.chmod is not None:
                mode = self.o.chmod
            os.chmod(target, mode)
        os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=not is_link)

    def _clear(self, target: str, want_dir: bool) -> None:
        try:
            st = os.lstat(target)
        except FileNotFoundError:
            return
        if _stat.S_ISDIR(st.st_mode):
            if want_dir:
                return
            where = os.path.relpath(os.path.realpath(target), os.path.realpath(self.rootfs))
            raise BuildError(f"cannot copy a file over the directory /{where}")
        os.unlink(target)

    def copy_entry(self, src: str, target: str, follow: bool = False) -> None:
        st = os.stat(src) if follow else os.lstat(src)
        mode = st.st_mode
        if _stat.S_ISDIR(mode):
            self._clear(target, True)
            if not os.path.isdir(target):
                os.mkdir(target, 0o700)
            self.copy_children(src, None, target)
            self._meta(target, st)
            return
        self._clear(target, False)
        if _stat.S_ISLNK(mode):
            os.symlink(os.readlink(src), target)
            self._meta(target, st, is_link=True)
            return
        if _stat.S_ISREG(mode):
            key = (st.st_dev, st.st_ino)
            if st.st_nlink > 1 and key in self.links:
                os.link(self.links[key], target)
                return
            _copy_file(src, target)
            if st.st_nlink > 1:
                self.links[key] = target
        elif _stat.S_ISFIFO(mode):
            os.mkfifo(target, 0o600)
        elif _stat.S_ISCHR(mode) or _stat.S_ISBLK(mode):
            os.mknod(target, mode, st.st_rdev)
        else:
            return  # sockets are not copied
        self._meta(target, st)

    def copy_children(self, src_dir: str, rel: str | None, target_dir: str) -> None:
        for n in sorted(os.listdir(src_dir)):
            r = f"{rel}/{n}".lstrip("/") if rel is not None else None
            s = os.path.join(src_dir, n)
            if r is not None and self.source.excluded(r):
                if os.path.isdir(s) and not os.path.islink(s) and self.source.ignore.may_include_below(r):
                    t = os.path.join(target_dir, n)
                    self._copy_dir_filtered(s, r, t)
                continue
            if r is not None and os.path.isdir(s) and not os.path.islink(s):
                self._copy_dir_filtered(s, r, os.path.join(target_dir, n))
                continue
            self.copy_entry(s, os.path.join(target_dir, n))

    def _copy_dir_filtered(self, src: str, rel: str, target: str) -> None:
        st = os.lstat(src)
        self._clear(target, True)
        if not os.path.isdir(target):
            os.mkdir(target, 0o700)
        self.copy_children(src, rel, target)
        self._meta(target, st)

    def write_bytes(self, target: str, data: bytes, mode: int | None) -> None:
        self._clear(target, False)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
        uid, gid = self.o.chown if self.o.chown is not None else (0, 0)
        os.lchown(target, uid, gid)
        os.chmod(target, self.o.chmod if self.o.chmod is not None else (mode if mode is not None else 0o644))

    def extract(self, archive: str, dest: str) -> None:
        extract_archive(archive, dest, f"ADD {os.path.basename(archive)}", self.o.size_limit, self.o.space_reserve)
        # the archive's own owners stay: --chown applies to the directories ADD makes for it,
        # not to what the archive holds (buildah bud's behaviour; it also left files that were
        # already in the destination alone, which a walk over it did not)

    def download(self, url: str, target: str) -> None:
        import email.utils

        self._clear(target, False)
        try:
            from ..images.archive import http_only_opener
            from ..layer import stream as _stream

            with http_only_opener(url).open(url, timeout=60) as r, open(target, "wb") as f:
                # the body is held to the layer's limits, as an archive ADD extracts is
                body = _stream.SpaceGuard(r, os.path.dirname(target), f"ADD {url}", limit=self.o.size_limit,
                                          reserve=self.o.space_reserve)
                try:
                    while True:
                        b = body.read(1 << 20)
                        if not b:
                            break
                        f.write(b)
                except BaseException:  # nothing half-written stays in the container
                    os.unlink(target)
                    raise
                lm = r.headers.get("Last-Modified")
        except OSError as e:
            raise BuildError(url_failure(url, e)) from None
        uid, gid = self.o.chown if self.o.chown is not None else (0, 0)
        os.lchown(target, uid, gid)
        os.chmod(target, self.o.chmod if self.o.chmod is not None else 0o600)
        if lm:
            try:
                t = email.utils.parsedate_to_datetime(lm).timestamp()
                os.utime(target, (t, t))
            except (TypeError, ValueError):
                pass


def url_failure(url: str, e: OSError) -> str:
    """Why fetching ``url`` failed, in the words of Go's HTTP client that buildah prints and
    scripts match: ``reading "URL": invalid response status 404``, ``... lookup HOST: no such
    host``, ``... connection refused`` (an offline machine says which)."""
    import socket
    import urllib.error
    import urllib.parse

    if isinstance(e, urllib.error.HTTPError):
        why = f"invalid response status {e.code}"
    else:
        reason = getattr(e, "reason", None) or e
        if isinstance(reason, socket.gaierror):
            why = f"lookup {urllib.parse.urlsplit(url).hostname}: no such host"
        elif isinstance(reason, (TimeoutError, socket.timeout)):
            why = "i/o timeout"
        elif isinstance(reason, OSError) and reason.strerror:
            why = reason.strerror[:1].lower() + reason.strerror[1:]
        else:
            why = str(reason)
    return f'reading "{url}": {why}'


def extract_archive(archive: str, dest: str, what: str, limit: int = 0, reserve: int = 0) -> None:
    """A tar archive (plain, gzip, zstd, bzip2 or xz) extracted into ``dest`` by the layer
    applier (paths kept inside ``dest``, owners kept), with the decompression-bomb guard."""
    from ..layer import stream as _stream
    from ..layer.apply import apply_layer

    with open(archive, "rb") as f:
        comp = _detect(f)
        if comp == "bz2":
            import bz2

            src = bz2.open(f)
        elif comp == "xz":
            import lzma

            src = lzma.open(f)
        else:
            src = _stream.open_decompressed(f, comp) if comp else f
        guard = _stream.SpaceGuard(src, dest, what, limit=limit, reserve=reserve)
        try:
            apply_layer(guard, dest, chown=True)
        except (BuildError, StoreError):
            raise
        except Exception as e:  # a malformed archive is the user's input: one line
            raise BuildError(f"{what}: cannot extract: {e}") from None


def is_archive(path: str) -> bool:
    """Whether a file is a tar archive, compressed or not (by its first bytes)."""
    with open(path, "rb") as f:
        if _detect(f):
            return True
        head = f.read(512)
    return len(head) >= 262 and head[257:262] == b"ustar"


def _detect(f) -> str | None:
    head = f.read(6)
    f.seek(0)
    if head[:2] == b"\x1f\x8b":
        return "gzip"
    if head[:4] == b"\x28\xb5\x2f\xfd":
        return "zstd"
    if head[:3] == b"BZh" or head[:6] == b"\xfd7zXZ\x00":
        return "bz2" if head[:3] == b"BZh" else "xz"
    return None


def _copy_file(src: str, dst: str) -> None:
    sfd = os.open(src, os.O_RDONLY | os.O_CLOEXEC)
    try:
        dfd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            size = os.fstat(sfd).st_size
            done = 0
            use_cfr = hasattr(os, "copy_file_range")
            while done < size:
                n = 0
                if use_cfr:
                    try:
                        n = os.copy_file_range(sfd, dfd, size - done)
                    except OSError as e:
                        if e.errno not in (errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
                            raise
                        use_cfr = False
                        continue
                else:
                    n = os.sendfile(dfd, sfd, None, size - done)
                if n == 0:
                    break
                done += n
        finally:
            os.close(dfd)
    finally:
        os.close(sfd)
