"""``pallet system check``: verify every layer, image and container record against the disk,
and with ``repair`` remove what is broken (and what depends on it) so the store is usable."""

from __future__ import annotations

import hashlib
import os

from . import _mount

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .store import Store


def _file_digest(path: str) -> str | None:
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            while b := f.read(1 << 20):
                h.update(b)
    except OSError:
        return None
    return "sha256:" + h.hexdigest()


def _manifest_blobs(store: "Store", digest: str) -> list[str]:
    from ..errors import PalletError
    from .records import manifest_layer_blobs

    try:
        with store.open_blob(digest) as f:
            return manifest_layer_blobs(f.read())
    except (PalletError, OSError):
        return []


def _bad_layer_blobs(store: "Store", digest: str, hashed: dict | None) -> list[tuple[str, str]]:
    """(blob, "missing" or "corrupt") for the layer blobs a stored manifest names that the store
    cannot produce (foreign layers, fetched from their URLs, excepted). ``hashed``: digest ->
    what re-hashing the blob gave, shared between calls; None: no re-hashing. An unreadable
    manifest is reported elsewhere."""
    from ..errors import PalletError

    out = []
    for d in _manifest_blobs(store, digest):
        try:
            path = store.blob_path(d)
        except (PalletError, ValueError):  # not a digest the store can keep
            out.append((d, "missing"))
            continue
        if not os.path.exists(path):
            out.append((d, "missing"))
        elif hashed is not None:
            if d not in hashed:
                hashed[d] = _file_digest(path)
            if hashed[d] != d:
                out.append((d, "corrupt"))
    return out


def check(store: "Store", repair: bool = False, verify_blobs: bool = True) -> list[str]:
    """Problems found (one line each). With ``repair``, they are fixed by removal, and the list
    says what was done."""
    problems: list[str] = []
    if store.absent:  # no store there (a read-only open of a missing or empty root): nothing to check
        return problems
    with store.staging() as trash, store.write() as st:
        drv = store.driver
        bad_layers: set[str] = set()
        #: blob -> the digest re-hashing it gave (each blob once); None: no re-hashing
        hashed: dict | None = {} if verify_blobs else None
        for lid, rec in st.layers.items():
            d = drv.layer_dir(lid)
            if not os.path.isdir(d):
                problems.append(f"layer {lid[:12]}: its directory {d} is missing")
                bad_layers.add(lid)
                continue
            if drv.name == "overlay":
                link = (rec.get("driver") or {}).get("link")
                if not link or not os.path.isdir(os.path.join(drv.home, "l", link)):
                    problems.append(f"layer {lid[:12]}: its short link l/{link} is missing or broken")
                    bad_layers.add(lid)
                    continue
            if rec.get("parent") and rec["parent"] not in st.layers:
                if any(lid in (img.get("layers") or []) for img in st.images.values()) or rec.get("kind") == "container":
                    problems.append(f"layer {lid[:12]}: its parent {rec['parent'][:12]} is missing")
                    bad_layers.add(lid)
            if rec.get("kind") == "image" and rec.get("blob"):
                bpath = store.blob_path(rec["blob"])
                if not os.path.exists(bpath):
                    problems.append(f"layer {lid[:12]}: its blob {rec['blob']} is missing")
                    bad_layers.add(lid)
                elif verify_blobs:
                    got = hashed[rec["blob"]] = _file_digest(bpath)
                    if got != rec["blob"]:
                        problems.append(f"layer {lid[:12]}: its blob {rec['blob']} is corrupt")
                        bad_layers.add(lid)
        # a layer on top of a bad one is bad too
        changed = True
        while changed:
            changed = False
            for lid, rec in st.layers.items():
                if lid not in bad_layers and rec.get("parent") in bad_layers:
                    bad_layers.add(lid)
                    changed = True
        bad_images: set[str] = set()
        bad_manifests: list[tuple[str, str]] = []  # (image, manifest) to forget; the image stays
        for iid, img in st.images.items():
            for lid in img.get("layers") or []:
                if lid not in st.layers or lid in bad_layers:
                    problems.append(f"image {iid[:12]} ({', '.join(img['names']) or 'no name'}): "
                                    f"layer {lid[:12]} is missing or damaged")
                    bad_images.add(iid)
                    break
            for what, digest in [("config", img.get("config"))] + [("manifest", d) for d in img.get("digests", [])]:
                path = store.blob_path(digest) if digest else ""
                got = _file_digest(path) if digest and (verify_blobs or not os.path.exists(path)) else digest
                if not digest or not os.path.exists(path):
                    problems.append(f"image {iid[:12]}: its {what} {digest} is missing")
                    bad_images.add(iid)
                elif got != digest:
                    problems.append(f"image {iid[:12]}: its {what} {digest} is corrupt")
                    bad_images.add(iid)
            for mdigest in img.get("manifests") or {}:
                bad = _bad_layer_blobs(store, mdigest, hashed)
                if bad:
                    blob, how = bad[0]
                    problems.append(f"image {iid[:12]}: its manifest {mdigest} names layer blob {blob}, which "
                                    + ("the store does not have" if how == "missing" else "is corrupt")
                                    + " (it cannot be saved or pushed with it)")
                    if mdigest == img.get("digest") or len(img["manifests"]) == 1:
                        bad_images.add(iid)
                    else:
                        bad_manifests.append((iid, mdigest))
            if img.get("config") and img["config"].split(":", 1)[1] != iid:
                problems.append(f"image {iid[:12]}: its ID does not match its config digest")
                bad_images.add(iid)
        bad_containers = set()
        for cid, c in st.containers.items():
            if c["layer"] not in st.layers or c["layer"] in bad_layers:
                problems.append(f"container {cid[:12]}: its layer is missing or damaged")
                bad_containers.add(cid)
            elif c.get("image") and c["image"] not in st.images:
                problems.append(f"container {cid[:12]}: its image {c['image'][:12]} is missing")
                bad_containers.add(cid)
        # files the records do not know
        orphans = store.orphans(st)
        problems.extend(f"{label}: not a known layer (left by an interrupted operation)" for label, _ in orphans)
        mounts = store._mounts()
        stale = [k for k, m in mounts.items() if not _mount.is_mounted(m["path"])]
        if repair and problems:
            for cid in bad_containers:
                store._remove_container(st, st.containers[cid], trash, mounts)
            for iid in bad_images:
                del st.images[iid]
                st.dirty.add("images")
            for iid, mdigest in bad_manifests:
                img = st.images.get(iid)
                if img is not None:
                    img["manifests"].pop(mdigest, None)
                    img["digests"] = [d for d in img["digests"] if d != mdigest]
                    (img.get("signatures") or {}).pop(mdigest, None)
                    # keep only the blobs the remaining manifests name: the others go with the gc
                    named: set = set()
                    for d in img["manifests"]:
                        named.update(_manifest_blobs(store, d))
                    img["blobs"] = sorted(b for b in img.get("blobs") or () if b in named)
                    st.dirty.add("images")
            for lid in bad_layers:
                for cid, c in list(st.containers.items()):
                    if c["layer"] == lid:
                        del st.containers[cid]
                        st.dirty.add("containers")
                if lid in st.layers:
                    del st.layers[lid]
                    st.dirty.add("layers")
                st.after.append(lambda lid=lid: drv.remove(lid, trash))
            st.after.append(lambda: store._remove_orphans(st))
            store._gc(st, trash)  # unreferenced layers and blobs go; images left without names stay
        if repair:
            for k in stale:
                mounts.pop(k)
            store._save_mounts(mounts)
    return problems
