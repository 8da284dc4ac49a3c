"""Images: records, names (podman's rules: a name moves), lookup, removal and pruning. A part of
:class:`~pallet.storage.store.Store`."""

from __future__ import annotations

import os

from .._log import debug
from .._std import json
from ..errors import NotFound, StoreError
from . import _mount
from .records import ImageInUse, ImageUnknown
from .records import State as _State
from .records import now as _now
from .records import now_ns as _now_ns


def names_changed(rec: dict) -> None:
    """containers/storage's names history after a change of an image's names: each current name
    moves to the front in turn (the last one first), older names follow, each once."""
    history = list(rec.get("names_history") or [])
    for n in rec["names"]:
        history = [n] + [h for h in history if h != n]
    rec["names_history"] = history



def log_created(image_id: str) -> None:
    """containers/image's debug line for an image just made (buildah's tests count it)."""
    debug(f'created new image ID "{image_id}" with metadata "{{}}"')

class ImageStore:
    """The store's images (a part of ``Store``)."""

    def add_image(self, *, config: bytes, config_digest: str, manifest: bytes, manifest_digest: str,
                  media_type: str, layers: list[str], names: list[str], signatures: list[bytes] | None = None,
                  blobs: list[str] | None = None, keep_digest: bool = False, list_digest: str | None = None,
                  log: bool = True) -> dict:
        """Record an image whose layers are all in the store; names move from other images.
        ``signatures`` (simple signing, kept as blobs) replace the manifest's when given.
        ``blobs``: the layer blobs the manifest names (all in the store), kept while the image
        is. ``keep_digest``: an image already stored keeps the manifest it is pushed and saved
        with (a load adds the archive's manifest without replacing the pulled one). ``list_digest``:
        the manifest list it was chosen from, the digest it was pulled by (podman's Digest).
        ``log``: False leaves the debug line of a new image to the caller (:func:`log_created`)."""
        from ..oci import digest as _digest

        self.put_blob_bytes(config, config_digest)
        self.put_blob_bytes(manifest, manifest_digest)
        sig_digests = None
        if signatures is not None:
            sig_digests = []
            for sig in signatures:
                d = _digest.of_bytes(sig)
                self.put_blob_bytes(sig, d)
                sig_digests.append(d)
        image_id = config_digest.split(":", 1)[1]
        try:
            created = json.loads(config).get("created") or _now()
        except ValueError:
            created = _now()
        with self.write() as st:
            for lid in layers:
                if lid not in st.layers:
                    raise StoreError(f"layer {lid[:12]} vanished while the image was being stored; try again")
            for b in blobs or ():
                if not os.path.exists(self.blob_path(b)):
                    raise StoreError(f"blob {b} vanished while the image was being stored; try again")
            known = image_id in st.images
            rec = st.images.get(image_id) or {"id": image_id, "names": [], "digests": [], "manifests": {},
                                              "created": created, "added": _now_ns()}
            rec["config"] = config_digest
            rec["layers"] = list(layers)
            rec["top_layer"] = layers[-1] if layers else None
            if not (keep_digest and known and rec.get("digest") in rec["manifests"]):
                rec["digest"] = manifest_digest
            if blobs:
                rec["blobs"] = sorted(set(rec.get("blobs") or ()) | set(blobs))
            if manifest_digest not in rec["digests"]:
                rec["digests"].append(manifest_digest)
            if list_digest:
                rec["list_digest"] = list_digest
            elif not keep_digest:
                rec.pop("list_digest", None)
            rec["manifests"][manifest_digest] = media_type
            if sig_digests is not None:
                rec.setdefault("signatures", {})[manifest_digest] = sig_digests
            rec["size"] = sum(st.layers[lid].get("size", 0) for lid in layers)
            for name in names:
                self._move_name(st, name, rec)
            if names:  # containers/image's order: the names just given first, then the old ones
                rec["names"] = [n for n in names if n in rec["names"]] + [n for n in rec["names"] if n not in names]
                names_changed(rec)
            st.images[image_id] = rec
            st.dirty.add("images")
        if not known and log:
            log_created(image_id)
        return rec

    def _move_name(self, st: _State, name: str, rec: dict) -> None:
        for other in st.images.values():
            if other is not rec and name in other["names"]:
                other["names"].remove(name)
        if name not in rec["names"]:
            rec["names"].append(name)

    def lookup_image(self, st: _State, text: str) -> dict:
        """The image record ``text`` names (see names.py), or ImageUnknown."""
        from . import names as _names

        t = text.removeprefix("sha256:") if text.startswith("sha256:") else text
        if len(t) == 64 and t in st.images:
            return st.images[t]
        named, short = _names.candidates(text)
        if named is not None:
            def names_repo(rec) -> bool:  # does the image have a name in this repository?
                if short:
                    return any(_names.name_matches_short(n, (short[0], None, None)) for n in rec["names"])
                return any(_names.split_name(n)[0] == named.name for n in rec["names"])

            if named.digest:
                # by the name it was pulled as (repo@digest: the digest may be an index's), or by a
                # manifest it has in a repository it is named in
                def named_as(rec) -> bool:
                    return any(n.endswith("@" + named.digest) and (
                        _names.name_matches_short(n, (short[0], None, None)) if short
                        else n == f"{named.name}@{named.digest}") for n in rec["names"])

                found = [rec for rec in st.images.values()
                         if named_as(rec) or ((named.digest in rec["digests"] or named.digest == rec.get("list_digest"))
                                              and names_repo(rec))]
            else:
                full = str(named)
                found = [rec for rec in st.images.values() if full in rec["names"]]
                if not found and short:
                    found = [rec for rec in st.images.values()
                             if any(_names.name_matches_short(n, short) for n in rec["names"])]
            if len(found) == 1:
                return found[0]
            if len(found) > 1:
                raise StoreError(f"{text!r} is ambiguous: it matches images "
                                 + ", ".join(sorted(r["id"][:12] for r in found)))
        if _names.is_id_like(text):
            found = [rec for iid, rec in st.images.items() if iid.startswith(t)]
            if len(found) == 1:
                return found[0]
            if len(found) > 1:
                raise StoreError(f"image ID prefix {t!r} is ambiguous: use more characters")
        raise ImageUnknown(f"{text}: image not known")

    def image(self, text: str) -> dict:
        with self.read() as st:
            return dict(self.lookup_image(st, text))

    def image_max_ids(self, text: str) -> tuple[int, int]:
        """The highest uid and gid owning a file in the image's layers (containers/storage reads
        them to size a ``--userns=auto`` namespace); whiteouts count as the kernel's 0:0."""
        with self.read() as st:
            rec = self.lookup_image(st, text)
            dirs = [self.driver.diff_dir(r["id"]) for r in self.layer_chain(st, rec.get("top_layer"))]
        uid = gid = 0
        for top in dirs:
            for d, subdirs, files in os.walk(top):
                for n in subdirs + files:
                    try:
                        s = os.lstat(os.path.join(d, n))
                    except OSError:
                        continue
                    uid, gid = max(uid, s.st_uid), max(gid, s.st_gid)
        return uid, gid

    def images(self) -> list[dict]:
        with self.read() as st:
            return [dict(r) for r in st.images.values()]

    def tag(self, text: str, names: list[str]) -> dict:
        from . import names as _names

        qualified = [str(_names.qualify(n)) for n in names]
        with self.write() as st:
            rec = self.lookup_image(st, text)
            for n in qualified:
                self._move_name(st, n, rec)
            names_changed(rec)
            st.dirty.add("images")
            return dict(rec)

    def untag(self, text: str, names: list[str]) -> dict:
        from . import names as _names

        with self.write() as st:
            rec = self.lookup_image(st, text)
            if not names:
                rec["names"] = []
            for n in names:
                q = str(_names.qualify(n))
                if q not in rec["names"]:
                    raise NotFound(f"{n}: tag not known")  # podman's words
                rec["names"].remove(q)
            names_changed(rec)
            st.dirty.add("images")
            return dict(rec)

    def remove_image(self, text: str, force: bool = False, every_name: bool = False) -> tuple[str, list[str], bool]:
        """Remove an image (or, named by one of several names, just that name).

        An image with several names named by ID is refused unless ``force`` or ``every_name``
        (``rmi --all``). Returns (id, untagged names, deleted?)."""
        from . import names as _names

        with self.staging() as trash, self.write() as st:
            rec = self.lookup_image(st, text)
            iid = rec["id"]
            by_name = not (_names.is_id_like(text) and (iid.startswith(text.removeprefix("sha256:"))))
            if by_name and len(rec["names"]) > 1:  # even with force, a name goes alone (podman's)
                named, short = _names.candidates(text)
                stored = str(_names.qualify(text)) if named is not None else None
                name = stored if stored in rec["names"] else next(
                    (n for n in rec["names"] if short and _names.name_matches_short(n, short)), None)
                if name:
                    rec["names"].remove(name)
                    names_changed(rec)
                    st.dirty.add("images")
                    return iid, [name], False
            if not by_name and len(rec["names"]) > 1 and not (force or every_name):
                raise ImageInUse(f"image {iid[:12]} has {len(rec['names'])} names: remove them by name, "
                                 "or use --force")
            mounts = self._mounts()
            untagged = self._drop_image(st, rec, trash, mounts, force, text)
            self._save_mounts(mounts)
            self._gc(st, trash)
        return iid, untagged, True

    def _drop_image(self, st: _State, rec: dict, trash: str, mounts: dict, force: bool, text: str) -> list[str]:
        """Remove the image ``rec`` (under the write lock; the caller saves ``mounts`` and collects
        garbage); without ``force`` an image a container uses or a mount holds is refused."""
        iid = rec["id"]
        users = [c for c in st.containers.values() if c["image"] == iid]
        mounted = mounts.get(f"image-{iid}")
        if mounted and not _mount.is_mounted(mounted["path"]):
            mounted = None
        if not force:
            if users:
                raise ImageInUse(f"image {iid[:12]} is in use by container "
                                 f"{users[0]['names'][0] if users[0]['names'] else users[0]['id'][:12]}: "
                                 "remove the container first, or use --force")
            if mounted:
                raise ImageInUse(f"image {iid[:12]} is mounted at {mounted['path']}: "
                                 f"run 'pallet image umount {text}' first, or use --force")
        for c in users:
            if c.get("kind") == "container" and "pallet" in (c.get("metadata") or {}):
                # a run container (conmon, network, mounts): only the container model stops and
                # removes it; dropping its record here would leave it running, unreachable
                raise ImageInUse(f"image {iid[:12]} is in use by container "
                                 f"{c['names'][0] if c['names'] else c['id'][:12]}: remove it with "
                                 "'pallet rm -f' first, or remove the image with 'pallet rmi -f'")
            self._remove_container(st, c, trash, mounts)
        if mounted:
            self._unmount_key(mounts, f"image-{iid}")
        untagged = list(rec["names"])
        del st.images[iid]
        st.dirty.add("images")
        return untagged

    def prune_images(self, select) -> list[str]:
        """Remove, under one hold of the write lock, the images ``select(images, in_use)`` picks
        (``images``: the records; ``in_use``: IDs a container uses or a mount holds), round after
        round while a round removed something; returns the IDs removed. Deciding and removing
        under the same lock is what keeps a concurrent build's image, or its working container,
        from going between the two (``image prune`` racing ``build``)."""
        removed: list[str] = []
        if self.absent:
            return removed
        with self.staging() as trash, self.write() as st:
            mounts = self._mounts()
            while True:
                in_use = {c["image"] for c in st.containers.values()}
                in_use.update(m.get("image") for k, m in mounts.items()
                              if k.startswith("image-") and _mount.is_mounted(m["path"]))
                batch = [iid for iid in select(list(st.images.values()), in_use) if iid in st.images
                         and iid not in in_use]
                if not batch:
                    break
                for iid in batch:
                    self._drop_image(st, st.images[iid], trash, mounts, False, iid)
                    removed.append(iid)
            if removed:
                self._save_mounts(mounts)
                self._gc(st, trash)
        return removed
