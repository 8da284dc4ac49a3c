"""Users looked up in a container's ``/etc/passwd`` and ``/etc/group`` (read by fd inside
its root), and Dockerfile path arithmetic. Paths inside a root are resolved by
:mod:`pallet._rootfs`, the one resolver."""

from __future__ import annotations

import posixpath

from ..errors import BuildError


def existing_in_root(root: str, path: str) -> str | None:
    """The host path of ``path`` in the tree at ``root`` when every component of it is there,
    symlinks followed inside the root (:func:`pallet._rootfs.open_in_root`); None when some part
    is missing, a symlink whose target the root lacks included. Where
    :func:`pallet._rootfs.resolve_in_root` appends a missing rest as written (for what is about to be made),
    this never names a path that reaches a symlink: a caller that reads, stats or mounts the
    answer by path cannot be led out of the root (``ctx/link -> /etc/shadow``)."""
    import errno
    import os

    from .. import _rootfs

    rfd = _rootfs.open_root(root)
    try:
        try:
            fd = _rootfs.open_in_root(rfd, path or ".")
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as e:
            if e.errno == errno.ELOOP:
                return None
            raise BuildError(f"{path}: cannot resolve it in {root}: {e.strerror}") from None
        try:
            here = os.readlink(_rootfs.fd_path(fd))
        finally:
            os.close(fd)
        rel = os.path.relpath(here, os.readlink(_rootfs.fd_path(rfd)))
    finally:
        os.close(rfd)
    return root if rel == "." else os.path.join(root, rel)


def _read_db(root: str, name: str) -> list[list[str]]:
    """The entries of the image's ``/etc/NAME``, read by fd inside the root."""
    from .._rootfs import read_in_root

    data = read_in_root(root, f"/etc/{name}")
    if data is None:
        return []
    text = data.decode("utf-8", "replace")
    return [line.split(":") for line in text.splitlines() if line.strip() and not line.startswith("#")]


def lookup_user(root: str | None, spec: str) -> tuple[int, int, list[int]]:
    """(uid, gid, supplementary gids) for ``USER`` text ``user[:group]`` in the tree at ``root``
    (the parsing is ``oci.users``, shared with containers)."""
    from ..oci.users import lookup

    passwd = _read_db(root, "passwd") if root else []
    groups = _read_db(root, "group") if root else []
    return lookup(spec, passwd, groups, BuildError)


def lookup_chown(root: str | None, spec: str) -> tuple[int, int]:
    """(uid, gid) for ``--chown`` text, as buildah's COPY/ADD read it: a UID alone is also the
    GID (whether or not passwd has it: Docker's documented rule); ``UID:GID`` as given; a
    user name alone gets its primary group from the image's passwd (buildah and BuildKit do
    this, although Docker's documentation says the UID's value); a name or group the
    image's passwd/group files lack is an error naming it."""
    user, sep, group = spec.partition(":")
    if not user and not group:
        raise BuildError(f'--chown={spec}: looking up UID/GID for "{spec}": '  # buildah's words
                         f"can't find uid for user {spec}")
    for n in (user, group):
        if n.isdigit() and int(n) > 0xFFFFFFFE:
            raise BuildError(f"--chown={spec}: {n} is out of range (0 to 4294967294)")
    if user.isdigit() and (not group or group.isdigit()):
        return int(user), int(group) if group else int(user)
    uid, gid, _ = lookup_user(root, spec if user else "0" + spec)
    if sep and not group:
        gid = uid
    return uid, gid


def clean_abs(path: str, workdir: str = "/") -> str:
    """``path`` made absolute against ``workdir`` and cleaned (a trailing ``/`` is dropped)."""
    if not path.startswith("/"):
        path = posixpath.join(workdir or "/", path)
    p = posixpath.normpath(path)
    return "/" + p.lstrip("/")
