"""Scan targets: an image in the store, mounted read-only through the store's mount API and
unmounted after (even on failure), or a transport reference copied into a temporary store
inside the store's locked staging (removed after, and by the next run if this one is killed).
Nothing from the image is ever executed.

:class:`Layers` says which layer wrote a path: the topmost layer whose own changes hold it
(overlay), or, with vfs (each layer a full tree), the topmost whose copy differs from the one
below it.
"""

from __future__ import annotations

import contextlib
import os
import stat as _stat

from .. import _rootfs


class Layers:
    def __init__(self, store, chain: list[dict]):
        #: (diff_id, diff dir fd) top first
        self.kind = store.driver.name
        self.layers = []
        for rec in chain:
            try:
                fd = _rootfs.open_root(store.driver.diff_dir(rec["id"]))
            except OSError:
                continue
            self.layers.append((rec.get("diff_id") or rec["id"], fd))

    def close(self) -> None:
        for _, fd in self.layers:
            os.close(fd)
        self.layers = []

    @staticmethod
    def _stat(fd: int, rel: str):
        try:
            f = _rootfs.open_beneath(fd, rel)
        except OSError:
            try:  # a final symlink: its parent by fd, the link itself without following
                d, b = os.path.split(rel)
                pfd = _rootfs.open_beneath(fd, d or ".")
            except OSError:
                return None
            try:
                st = os.stat(b, dir_fd=pfd, follow_symlinks=False)
            except OSError:
                return None
            finally:
                os.close(pfd)
            return st
        try:
            return os.fstat(f)
        finally:
            os.close(f)

    def which(self, real_path: str) -> str | None:
        rel = real_path.lstrip("/") or "."
        stats = [self._stat(fd, rel) for _, fd in self.layers]
        for i, st in enumerate(stats):
            if st is None:
                continue
            if self.kind == "overlay" and not (_stat.S_ISCHR(st.st_mode) and st.st_rdev == 0):  # not a whiteout
                return self.layers[i][0]
            if self.kind != "overlay":
                below = stats[i + 1] if i + 1 < len(stats) else None
                if below is None or (below.st_mode, below.st_size, below.st_mtime_ns) != (
                        st.st_mode, st.st_size, st.st_mtime_ns):
                    return self.layers[i][0]
        return None


@contextlib.contextmanager
def store_image(store, text: str):
    """(store, image record, mounted path, Layers) of an image in ``store``; unmounted after."""
    rec = store.image(text)
    with store.owner() as owner:
        path = store.mount_image(rec["id"], owner=owner)
        layers = None
        try:
            with store.read() as st:
                chain = store.layer_chain(st, rec.get("top_layer"))
            layers = Layers(store, chain)
            yield store, rec, path, layers
        finally:
            if layers:
                layers.close()
            store.umount_image(rec["id"], owner=owner)


@contextlib.contextmanager
def transport_image(store, text: str, ctx, options):
    """A transport reference, copied into a temporary store inside ``store``'s staging."""
    from ..images.pull import pull_one
    from ..storage.options import StoreOptions
    from ..storage.store import Store
    from ..images.refs import parse_reference

    src = parse_reference(text, store)
    with store.staging() as stage:
        tmp = Store(StoreOptions(os.path.join(stage, "root"), os.path.join(stage, "run"), store.driver.name))
        try:
            rec = pull_one(tmp, src, None, ctx, options)
            with store_image(tmp, rec["id"]) as got:
                yield got
        finally:
            close = getattr(tmp, "close", None)
            if close:
                close()


@contextlib.contextmanager
def store_container(store, text: str):
    """A container in the store (a working container or a run one): its tree, its own layer
    on its image's, mounted read-only apart from the container's own mount."""
    with store.container_readonly(text) as (c, path, chain):
        layers = Layers(store, chain)
        try:
            rec = {"id": c["id"], "names": c.get("names") or [], "container": True, "image": c.get("image"),
                   "top_layer": c["layer"]}
            yield store, rec, path, layers
        finally:
            layers.close()


def open_target(store, text: str, ctx, options, kind: str | None = None):
    """A target's context manager: a transport reference, an image in the store, or (when no
    image has that name, or ``kind`` is "container") a container in the store."""
    from ..errors import NotFound
    from ..images.refs import has_transport

    if kind == "container":
        return store_container(store, text)
    if kind == "image":
        return store_image(store, text)
    if has_transport(text) and not text.startswith("containers-storage:"):
        return transport_image(store, text, ctx, options)
    name = text.removeprefix("containers-storage:")
    if kind is None and name == text:
        try:
            store.image(name)
        except NotFound:
            try:
                store.container(name)
            except NotFound:
                pass
            else:
                return store_container(store, name)
    return store_image(store, name)
