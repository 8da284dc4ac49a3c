"""Paths inside a container's root filesystem, resolved as the container would see them
(symlinks followed inside the root, ``..`` stopped at it), and users looked up in its
``/etc/passwd`` and ``/etc/group``."""

from __future__ import annotations

import os
import posixpath

from ..errors import BuildError


def resolve_in_root(root: str, path: str, follow_last: bool = True) -> str:
    """The host path of ``path`` in the tree at ``root``: symlinks (absolute ones relative to
    ``root``) are followed without ever leaving it; missing components are kept as they are."""
    parts = [p for p in path.split("/") if p and p != "."]
    done: list[str] = []
    hops = 0
    while parts:
        p = parts.pop(0)
        if p == "..":
            if done:
                done.pop()
            continue
        cand = os.path.join(root, *done, p)
        if (parts or follow_last) and os.path.islink(cand):
            hops += 1
            if hops > 255:
                raise BuildError(f"{path}: too many levels of symbolic links")
            target = os.readlink(cand)
            if target.startswith("/"):
                done = []
            parts = [x for x in target.split("/") if x and x != "."] + parts
            continue
        done.append(p)
    return os.path.join(root, *done) if done else root


def _read_db(root: str, name: str) -> list[list[str]]:
    try:
        with open(resolve_in_root(root, f"/etc/{name}"), encoding="utf-8", errors="replace") as f:
            return [line.rstrip("\n").split(":") for line in f if line.strip() and not line.startswith("#")]
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return []


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
        raise BuildError(f"--chown={spec}: no user given")
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
