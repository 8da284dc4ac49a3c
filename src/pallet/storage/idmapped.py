"""Id-mapped lower layers for a container in a user namespace (overlay driver).

The image's layers stay as they are on disk (container ids); each lower directory is cloned
(``open_tree(OPEN_TREE_CLONE)``), the clone id-mapped with ``mount_setattr(MOUNT_ATTR_IDMAP)``
through a user namespace holding the container's mapping, attached under the container's own
directory for as long as ``mount(2)`` of the overlay needs their paths, then detached again:
overlayfs keeps private clones of its layers. The upper dir is not mapped: what the container
writes lands with host ids, as podman's. No fork of a helper outlives the call, no mount is
left but the overlay itself.

A kernel without id-mapped overlay layers (before 5.19) refuses the mount: the caller says so;
containers/storage's fallback there, a chowned copy of the image per mapping, is not done.
"""

from __future__ import annotations

import contextlib
import os

from .._std import syscalls as _sys
from .._userns import userns_fd
from ..errors import StoreError

@contextlib.contextmanager
def mapped_lowers(lowers: list[str], scratch: str, idmap: dict):
    """The absolute ``lowers`` as id-mapped clones attached at ``scratch/N`` (yielded as those
    paths) while the block runs; detached and removed after it, even when it fails."""
    os.makedirs(scratch, 0o700, exist_ok=True)
    for name in os.listdir(scratch):  # left by a process killed in between: never stacked on
        with contextlib.suppress(OSError):
            _sys.umount2(os.path.join(scratch, name), _sys.MNT_DETACH)
    attached: list[str] = []
    ufd = userns_fd(idmap["uid"], idmap["gid"], StoreError)
    try:
        for i, lower in enumerate(lowers):
            path = os.path.join(scratch, str(i))
            os.makedirs(path, 0o700, exist_ok=True)
            try:
                tree = _sys.open_tree(lower, recursive=False)
                try:
                    _sys.mount_setattr("", _sys.MOUNT_ATTR_IDMAP, 0, recursive=False, dirfd=tree, userns_fd=ufd)
                    _sys.move_mount(tree, _sys.AT_FDCWD, path)
                finally:
                    os.close(tree)
            except OSError as e:
                raise StoreError(f"id-mapping layer {lower}: {e.strerror} (user namespaces need a kernel with "
                                 "id-mapped mounts, 5.12 or later; a chowned copy of the image is not supported "
                                 "yet)") from None
            attached.append(path)
        yield attached
    finally:
        os.close(ufd)
        for path in attached:
            try:
                _sys.umount2(path, _sys.MNT_DETACH)
            except OSError:
                pass
        for name in os.listdir(scratch):
            with contextlib.suppress(OSError):
                os.rmdir(os.path.join(scratch, name))
        with contextlib.suppress(OSError):
            os.rmdir(scratch)


#: where a rootless store keeps its layers chowned to a container's mapping: overlay/mapped-HASH/ID/diff
MAPPED_PREFIX = "mapped-"


def mapping_key(idmap: dict) -> str:
    """A short name of a mapping (its copies of the layers are shared by containers with it)."""
    from ..oci.digest import of_bytes

    text = repr((idmap["uid"], idmap["gid"])).encode()
    return of_bytes(text).split(":", 1)[1][:16]


def chowned_lowers(home: str, lowers: list[str], idmap: dict) -> list[str]:
    """containers/storage's fallback where a layer cannot be id-mapped by the kernel (a rootless
    store: id-mapped mounts of the host's filesystems are the host root's to make): each lower
    layer copied once per mapping (reflinks where the filesystem has them) with every owner
    shifted through ``idmap`` (container ids -> the ids on disk), then kept beside the layer
    for the next container with that mapping (removed with the layer). ``lowers`` are paths
    relative to ``home`` (the driver's ``l/SHORT`` links); the copies' paths are returned, the
    same way. A copy is made in ``.tmp-PID-RAND`` beside where it goes, then renamed there."""
    import shutil
    import subprocess

    from ..layer.idmap import Tolerant, to_host

    key = MAPPED_PREFIX + mapping_key(idmap)
    uids, gids = Tolerant(idmap["uid"]), Tolerant(idmap["gid"])
    out = []
    for lower in lowers:
        diff = os.path.realpath(os.path.join(home, lower))  # .../overlay/ID/diff
        layer_id = os.path.basename(os.path.dirname(diff))
        rel = os.path.join(key, layer_id, "diff")
        dest = os.path.join(home, rel)
        if not os.path.isdir(dest):
            os.makedirs(os.path.join(home, key), 0o700, exist_ok=True)
            work = os.path.join(home, key, f".tmp-{os.getpid()}-{os.urandom(4).hex()}")
            os.mkdir(work, 0o700)
            p = subprocess.run(["cp", "-a", "--reflink=auto", diff, os.path.join(work, "diff")],
                               capture_output=True, text=True)
            if p.returncode != 0:
                shutil.rmtree(work, ignore_errors=True)
                raise StoreError(f"copying layer {layer_id} for a user namespace: {p.stderr.strip()}")
            try:
                _shift_owners(os.path.join(work, "diff"), uids, gids, to_host)
            except OSError as e:
                shutil.rmtree(work, ignore_errors=True)
                raise StoreError(f"shifting the owners of layer {layer_id}'s copy: {e.strerror}: {e.filename}") \
                    from None
            try:
                os.rename(work, os.path.dirname(dest))
            except OSError:  # another process made it meanwhile: theirs is as good
                shutil.rmtree(work, ignore_errors=True)
        out.append(rel)
    return out


def _shift_owners(root: str, uids, gids, to_host) -> None:
    """Every entry's owner mapped (symlinks not followed); the mode set again after, since a
    chown drops setuid/setgid bits."""
    import stat

    def shift(path: str) -> None:
        st = os.lstat(path)
        os.chown(path, to_host(uids, st.st_uid), to_host(gids, st.st_gid, "gid"), follow_symlinks=False)
        if not stat.S_ISLNK(st.st_mode) and st.st_mode & 0o6000:
            os.chmod(path, stat.S_IMODE(st.st_mode))

    shift(root)
    for d, dirs, files in os.walk(root):
        for name in dirs + files:
            shift(os.path.join(d, name))


def remove_chowned(home: str, layer_id: str, trash: str) -> None:
    """A layer's chowned copies, every mapping's, moved to ``trash`` with the layer."""
    for name in os.listdir(home):
        if name.startswith(MAPPED_PREFIX):
            d = os.path.join(home, name, layer_id)
            if os.path.lexists(d):
                os.rename(d, os.path.join(trash, f"{name}-{layer_id}-{os.urandom(4).hex()}"))
