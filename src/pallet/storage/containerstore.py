"""Containers: a writable layer on an image, their records, mounts and removal. A part of
:class:`~pallet.storage.store.Store`."""

from __future__ import annotations

import contextlib
import os

from ..errors import NotFound, PalletError, StoreError
from . import _mount
from .records import ImageUnknown
from .records import State as _State
from .records import now as _now


class ContainerStore:
    """The store's containers (a part of ``Store``)."""

    def containers(self) -> list[dict]:
        with self.read() as st:
            return [dict(r) for r in st.containers.values()]

    def create_container(self, image: str | None, name: str | None = None, kind: str = "container",
                         metadata: dict | None = None, owner: str | None = None, idmap: dict | None = None) -> dict:
        """A container: a writable layer on an image (None: on nothing, like ``scratch``).
        ``owner`` (from :meth:`owner`): the container goes when that owner's process dies.
        ``idmap`` (``{"uid": [[container, host, size], ...], "gid": [...]}``): its ids in a user
        namespace (containers/storage's UIDMap/GIDMap): the image's layers are mounted id-mapped
        to it, its own layer holds host ids (its root directory the mapped root's) and its
        changes are read back with container ids (:meth:`container_changes`)."""
        from ..layer.idmap import to_host

        if idmap and self.driver.name != "overlay":
            raise StoreError("user namespaces need the overlay driver (id-mapped layers): the vfs driver's "
                             "chowned copies are not supported yet")
        cid = os.urandom(32).hex()
        with self.staging() as staging:
            with self.read() as st:
                rec = self.lookup_image(st, image) if image else None
                top = rec.get("top_layer") if rec else None
                parent_dir = self.driver.layer_dir(top) if top and self.driver.name == "vfs" else None
                upper = self.driver.stage(staging, parent_dir)
                os.chmod(upper, self.driver.root_mode(top))  # the image's root mode (0555 by default)
            if idmap:  # the merged root is the upper dir's: the image root's owner, mapped
                st_root = os.stat(self.driver.diff_dir(top)) if top else None
                uid, gid = (st_root.st_uid, st_root.st_gid) if st_root else (0, 0)
                try:
                    os.chown(upper, to_host(idmap["uid"], uid), to_host(idmap["gid"], gid, "gid"))
                except PalletError:  # not in the mapping: left to the host's root, as nobody sees it
                    pass
                if st_root:
                    os.chmod(upper, st_root.st_mode & 0o7777)
                try:  # containers/storage's: the layer's directory is the mapped root's, so that a
                    # runtime inside the namespace (runc, crun) can reach its mount point
                    os.chown(staging, to_host(idmap["uid"], 0), to_host(idmap["gid"], 0, "gid"))
                except PalletError:
                    pass
                for d in (self.graphroot, self.driver.home):  # and the store's 0711 (traverse only)
                    mode = os.stat(d).st_mode & 0o7777
                    if mode & 0o011 != 0o011:
                        os.chmod(d, mode | 0o011)
            with self.write() as st:
                if name and any(name in c["names"] for c in st.containers.values()):
                    raise StoreError(f"the container name {name!r} is already in use")
                if rec and rec["id"] not in st.images:
                    raise ImageUnknown(f"{image}: image was removed meanwhile")
                drv = self.driver.install(staging, cid)
                st.layers[cid] = {"id": cid, "parent": top, "diff_id": None, "blob": None, "size": 0,
                                  "created": _now(), "driver": drv, "kind": "container"}
                c = {"id": cid, "names": [name] if name else [], "image": rec["id"] if rec else None,
                     "layer": cid, "created": _now(), "kind": kind, "metadata": metadata or {}}
                if idmap:
                    c["idmap"] = {"uid": [list(m) for m in idmap["uid"]], "gid": [list(m) for m in idmap["gid"]]}
                if owner:
                    c["owner"] = owner
                st.containers[cid] = c
                st.dirty.update(("layers", "containers"))
                return dict(c)

    def lookup_container(self, st: _State, text: str) -> dict:
        for c in st.containers.values():
            if text in c["names"] or c["id"] == text:
                return c
        found = [c for c in st.containers.values() if len(text) >= 3 and c["id"].startswith(text)]
        if len(found) == 1:
            return found[0]
        raise NotFound(f"{text}: no such container")

    def container(self, text: str) -> dict:
        with self.read() as st:
            return dict(self.lookup_container(st, text))

    def update_container(self, text: str, **changes) -> dict:
        with self.write() as st:
            c = self.lookup_container(st, text)
            c.update(changes)
            st.dirty.add("containers")
            return dict(c)

    def mount_container(self, text: str, volatile: bool = False) -> str:
        """The container's tree mounted (counted); ``volatile``: see ``Driver.mount``."""
        with self.write() as st:
            c = self.lookup_container(st, text)
            key = f"container-{c['id']}"
            mounts = self._mounts()
            m = mounts.get(key)
            path = self._container_mount_path(c)
            if m and _mount.is_mounted(m["path"]):
                m["count"] += 1
            elif _mount.is_mounted(path):  # mounted by a process killed before it counted
                m = mounts[key] = {"path": path, "count": 1, "container": c["id"]}
            else:
                os.makedirs(path, 0o755, exist_ok=True)
                layer = st.layers[c["layer"]]
                chain = self.layer_chain(st, layer.get("parent"))
                m = mounts[key] = {"path": path, "count": 1, "container": c["id"]}
                self._save_mounts(mounts)  # counted before it is made (see mount_image)
                try:
                    self.driver.mount(chain, path, writable=layer, idmap=c.get("idmap"), volatile=volatile)
                except BaseException:
                    mounts.pop(key, None)
                    self._save_mounts(mounts)
                    raise
                return path  # its count is saved already
            self._save_mounts(mounts)
            return m["path"]

    @contextlib.contextmanager
    def container_readonly(self, text: str):
        """(container record, path, layer chain top first): the container's tree (its own layer
        on its image's) mounted read-only (nodev, nosuid) in a staging directory of its own, for
        a reader such as a scan; unmounted after, and by the next open of the store when the
        process is killed. The container's own mount, if any, is left alone."""
        with self.read() as st:
            c = dict(self.lookup_container(st, text))
            chain = [dict(r) for r in self.layer_chain(st, c["layer"])]
        with self.staging() as stage:
            path = os.path.join(stage, "rootfs")
            os.mkdir(path, 0o755)
            self.driver.mount(chain, path)
            try:
                yield c, path, chain
            finally:
                _mount.umount(path, detach=True)

    def _container_mount_path(self, c: dict) -> str:
        return os.path.join(self.driver.layer_dir(c["layer"]), "merged") if self.driver.name == "overlay" \
            else os.path.join(self.graphroot, "mounts", c["id"])

    def umount_container(self, text: str, force: bool = False) -> bool:
        with self.write() as st:
            c = self.lookup_container(st, text)
            key = f"container-{c['id']}"
            mounts = self._mounts()
            m = mounts.get(key)
            if not m:
                return True
            m["count"] -= 1
            done = force or m["count"] <= 0
            if done:
                self._unmount_key(mounts, key)
            self._save_mounts(mounts)
            return done

    def container_mountpoint(self, text: str) -> str | None:
        with self.read() as st:
            c = self.lookup_container(st, text)
            m = self._mounts().get(f"container-{c['id']}")
            return m["path"] if m and _mount.is_mounted(m["path"]) else None

    def remove_container(self, text: str) -> str:
        with self.staging() as trash, self.write() as st:
            c = self.lookup_container(st, text)
            mounts = self._mounts()
            self._remove_container(st, c, trash, mounts)
            self._save_mounts(mounts)
        return c["id"]

    def _remove_container(self, st: _State, c: dict, trash: str, mounts: dict) -> None:
        self._unmount_key(mounts, f"container-{c['id']}")
        path = self._container_mount_path(c)
        if _mount.is_mounted(path):  # mounted, never counted: its process was killed in between
            try:
                _mount.umount(path)
            except OSError as e:
                raise StoreError(f"unmounting {path}: {e.strerror} (is a process using it?)") from None
        del st.containers[c["id"]]
        st.layers.pop(c["layer"], None)
        st.after.append(lambda: self.driver.remove(c["layer"], trash))
        st.dirty.update(("layers", "containers"))

    def container_changes(self, text: str, epoch: int | None = None):
        """What the container changed on its image, as a tar layer stream (a context manager):
        overlay, its upper dir with OCI whiteouts; vfs, its tree compared with its image's top
        layer. Used by a commit (builder, ``pallet commit``) and ``pallet diff``."""
        from ..layer.create import tar_changes, tar_directory, tar_overlay_upper

        with self.read() as st:
            c = self.lookup_container(st, text)
            top = (st.layers.get(c["layer"]) or {}).get("parent")
        diff = self.driver.diff_dir(c["layer"])
        if self.driver.name == "overlay":
            idmap = c.get("idmap") or {}  # host ids on disk, container ids in the layer
            return tar_overlay_upper(diff, epoch=epoch, uid_map=idmap.get("uid"), gid_map=idmap.get("gid"),
                                     opaque_xattr=self.driver.opaque_xattr)
        if top is None:
            return tar_directory(diff, epoch=epoch)
        return tar_changes(self.driver.layer_dir(top), diff, epoch=epoch)

    def rename_container(self, text: str, name: str, meta_key: str | None = None) -> dict:
        """Give a container a new (unique) name; with ``meta_key``, ``metadata[meta_key]["name"]``
        too, in the same write."""
        with self.write() as st:
            c = self.lookup_container(st, text)
            if any(name in o["names"] for o in st.containers.values() if o["id"] != c["id"]):
                raise StoreError(f"the container name {name!r} is already in use")
            c["names"] = [name]
            if meta_key and isinstance((c.get("metadata") or {}).get(meta_key), dict):
                c["metadata"][meta_key]["name"] = name
            st.dirty.add("containers")
            return dict(c)

    def container_diff_dir(self, text: str) -> str:
        with self.read() as st:
            c = self.lookup_container(st, text)
            return self.driver.diff_dir(c["layer"])
