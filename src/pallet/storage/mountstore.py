"""Mounts of images, counted across processes in ``RUNROOT/mounts.json``. A part of
:class:`~pallet.storage.store.Store`."""

from __future__ import annotations

import contextlib
import os

from .._std import json
from .. import _fs
from ..errors import StoreError
from . import _mount


class MountStore:
    """Image mounts (a part of ``Store``)."""

    def _mounts(self) -> dict:
        try:
            with open(os.path.join(self.runroot, "mounts.json"), "rb") as f:
                doc = json.loads(f.read())
            return doc if isinstance(doc, dict) else {}
        except FileNotFoundError:
            return {}
        except ValueError:
            return {}  # rebuilt from what is really mounted

    def _save_mounts(self, mounts: dict) -> None:
        # volatile (the run root, as containers/storage keeps mountpoints.json): no fsync
        _fs.write_atomic(os.path.join(self.runroot, "mounts.json"), json.dumps(mounts, separators=(",", ":")).encode(),
                         0o600, durable=False)

    def _unmount_key(self, mounts: dict, key: str) -> None:
        m = mounts.pop(key, None)
        if m and _mount.is_mounted(m["path"]):
            try:
                _mount.umount(m["path"])
            except OSError as e:
                raise StoreError(f"unmounting {m['path']}: {e.strerror} (is a process using it?)") from None
        if m:
            with contextlib.suppress(OSError):
                os.rmdir(m["path"])

    def mount_image(self, text: str, owner: str | None = None) -> str:
        """Mount an image's root filesystem read-only (nodev, nosuid); counted across processes.
        ``owner`` (from :meth:`owner`): its references are dropped when that process dies."""
        with self.write() as st:
            rec = self.lookup_image(st, text)
            key = f"image-{rec['id']}"
            mounts = self._mounts()
            m = mounts.get(key)
            path = os.path.join(self.graphroot, "mounts", rec["id"])
            if m and _mount.is_mounted(m["path"]):
                m["count"] += 1
            elif _mount.is_mounted(path):  # mounted by a process killed before it counted
                m = mounts[key] = {"path": path, "count": 1, "image": rec["id"]}
            else:
                os.makedirs(path, 0o755, exist_ok=True)
                chain = self.layer_chain(st, rec.get("top_layer"))
                # counted (with its owner) before it is made: a process killed in between leaves
                # a count for a mount that is not there, which is seen as stale, never a mount
                # nobody knows of
                m = mounts[key] = {"path": path, "count": 1, "image": rec["id"]}
                if owner:
                    m["owners"] = {owner: 1}
                self._save_mounts(mounts)
                owner = None
                try:
                    if chain:
                        self.driver.mount(chain, path)
                    else:  # an image with no layers: an empty, read-only tree
                        _mount.mount("tmpfs", path, "tmpfs", _mount.MS_RDONLY | _mount.MS_NODEV | _mount.MS_NOSUID,
                                     "size=4k,mode=755")
                except BaseException:
                    mounts.pop(key, None)
                    self._save_mounts(mounts)
                    raise
                return path  # its count and owner are saved already
            if owner:
                owners = m.setdefault("owners", {})
                owners[owner] = owners.get(owner, 0) + 1
            self._save_mounts(mounts)
            return m["path"]

    def umount_image(self, text: str, force: bool = False, owner: str | None = None) -> bool:
        """Drop one mount reference (all with ``force``); unmounts at zero. True if unmounted."""
        with self.write() as st:
            rec = self.lookup_image(st, text)
            key = f"image-{rec['id']}"
            mounts = self._mounts()
            m = mounts.get(key)
            if not m:
                raise StoreError(f"image {text} is not mounted")
            owners = m.get("owners") or {}
            if owner in owners:
                owners[owner] -= 1
                if owners[owner] <= 0:
                    del owners[owner]
            m["count"] -= 1
            done = force or m["count"] <= 0 or not _mount.is_mounted(m["path"])
            if done:
                self._unmount_key(mounts, key)
            self._save_mounts(mounts)
            return done

    def mounted_images(self) -> list[tuple[dict, str, int]]:
        with self.read() as st:
            out = []
            for key, m in self._mounts().items():
                if key.startswith("image-") and m.get("image") in st.images and _mount.is_mounted(m["path"]):
                    out.append((dict(st.images[m["image"]]), m["path"], m["count"]))
            return out
