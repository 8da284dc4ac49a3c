"""``run/create --rootfs PATH[:O]``: a container on an exploded root filesystem the user manages,
as podman 4.3 runs one (no image: the path is the root).

The path is opened once (``O_DIRECTORY``) and that very directory is bound, by its fd
(``open_tree`` + ``move_mount``), at ``RUNDIR/rootfs``: the runtime gets pallet's own mount
point, so nothing swapped at the path meanwhile (a symlink, another directory) is what runs.

- ``PATH``: the container writes into the directory itself, as podman's (it is the container's
  root; pallet adds what podman adds there: ``/etc/mtab``, and the runtime the mount points).
- ``PATH:O``: an overlay mount with the directory as its lower layer and an upper directory in the
  container's own data (``GRAPHROOT/pallet-containers/ID/rootfs-overlay``): the directory is never
  written, and the changes are dropped when the container stops (podman's "Modifications to the
  mount point are destroyed when the container finishes executing"). A read-only directory (an
  image mounted by ``image mount``) works this way.
"""

from __future__ import annotations

import os

from .._fs import rmtree
from ..errors import UsageError


def parse(text: str) -> dict:
    """``PATH[:O]`` -> ``{"path": ABSOLUTE, "overlay": bool}``; the path must be a directory."""
    overlay = text.endswith(":O")
    path = text[:-2] if overlay else text
    if not path or "\0" in path:
        raise UsageError(f"invalid --rootfs {text!r}: want a directory (PATH or PATH:O)")
    path = os.path.abspath(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as e:
        raise UsageError(f"--rootfs {path}: {e.strerror.lower()}") from None
    os.close(fd)
    return {"path": path, "overlay": overlay}


def _is_mountpoint(path: str) -> bool:
    from .network.netns import is_mounted

    return is_mounted(path)


def mount(rundir: str, datadir: str, spec: dict) -> str:
    """The container's root mounted at ``RUNDIR/rootfs`` (again: the mount that is there)."""
    from .._std import syscalls

    target = os.path.join(rundir, "rootfs")
    if _is_mountpoint(target):
        return target
    os.makedirs(target, 0o700, exist_ok=True)
    try:
        fd = os.open(spec["path"], os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as e:
        from ..errors import ContainerError

        raise ContainerError(f"--rootfs {spec['path']}: {e.strerror.lower()}") from None
    try:
        tree = syscalls.open_tree("", recursive=True, dirfd=fd)
        try:
            if not spec.get("overlay"):
                syscalls.move_mount(tree, syscalls.AT_FDCWD, target)
                return target
            lower = os.path.join(rundir, "rootfs-lower")
            os.makedirs(lower, 0o700, exist_ok=True)
            syscalls.move_mount(tree, syscalls.AT_FDCWD, lower)
        finally:
            os.close(tree)
    finally:
        os.close(fd)
    try:  # :O -- a fresh upper layer at every start
        top = os.path.join(datadir, "rootfs-overlay")
        rmtree(top)
        upper, work = os.path.join(top, "upper"), os.path.join(top, "work")
        os.makedirs(upper, 0o755)
        os.makedirs(work, 0o700)
        os.chmod(upper, os.stat(lower).st_mode & 0o7777)  # the root shows the directory's mode
        syscalls.mount("overlay", target, "overlay", 0, f"lowerdir={lower},upperdir={upper},workdir={work}")
    finally:
        syscalls.umount2(lower, 2)  # MNT_DETACH: the overlay holds its own copy of the lower mount
    return target


def release(rundir: str) -> bool:
    """Before ``rundir`` is deleted: no ``--rootfs`` directory may still be bound below it (the
    deletion would go through it into the user's files). Unmounts what is there; False when a
    mount stays (then the directory must be kept)."""
    from .._std import syscalls

    ok = True
    for path in (os.path.join(rundir, "rootfs"), os.path.join(rundir, "rootfs-lower")):
        if os.path.lexists(path) and _is_mountpoint(path):
            try:
                syscalls.umount2(path, 2)
            except OSError:
                pass
            ok = ok and not _is_mountpoint(path)
    return ok


def unmount(rundir: str, datadir: str, spec: dict) -> None:
    """Undo :func:`mount` (an overlay's changes dropped)."""
    from .._std import syscalls

    for path in (os.path.join(rundir, "rootfs"), os.path.join(rundir, "rootfs-lower")):
        if _is_mountpoint(path):
            syscalls.umount2(path, 2)
    if spec.get("overlay"):
        rmtree(os.path.join(datadir, "rootfs-overlay"))
