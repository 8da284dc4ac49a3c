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
