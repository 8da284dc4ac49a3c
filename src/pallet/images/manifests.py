"""Manifest lists in the store, as podman's and buildah's ``manifest`` verbs keep them: a named
list (a Docker manifest list by default, or an OCI image index) of images in the store, each
listed by its manifest digest with the platform its config says.

A list lives in ``GRAPHROOT/manifest-lists/ID.json`` (its names, creation time, the index
document, and for each instance the image it came from), written whole and atomically under
that directory's lock. Its names are qualified as image names and may not be an image's
name; ``pallet images`` lists the lists too and ``rmi`` removes one. ``push`` copies every
instance and then the list itself through the copy engine.

Instances come from the store (an image's name or ID): adding a reference of another
transport (``docker://...``) is not supported yet.
"""

from __future__ import annotations

import os

from .._std import json
from ..errors import NotFound, PalletError, UsageError
from ..oci import mediatype as mt
from ..transports.base import ImageReference as _Ref
from ..transports.base import ImageSource as _Src

#: a list file is small (a few instances); anything larger is not ours
_MAX_FILE = 4 << 20


class ListUnknown(NotFound):
    """No manifest list has that name (exit 125, as podman)."""

    exit_code = 125


class ManifestLists:
    """The manifest lists of one store."""

    def __init__(self, store):
        self.store = store
        self.dir = os.path.join(store.graphroot, "manifest-lists")

    # -- reading -------------------------------------------------------------------------------

    def all(self) -> list[dict]:
        from .._fs import read_json_file

        out = []
        try:
            names = sorted(os.listdir(self.dir))
        except FileNotFoundError:
            return []
        for n in names:
            if len(n) == 69 and n.endswith(".json"):
                try:
                    rec = read_json_file(os.path.join(self.dir, n), _MAX_FILE, "a manifest list")
                except (OSError, PalletError):
                    continue  # removed meanwhile, or not ours
                if isinstance(rec, dict) and rec.get("id") == n[:-5]:
                    out.append(rec)
        return out

    def find(self, text: str) -> dict | None:
        """The list ``text`` names (a name, qualified as image names are, or an ID or its
        prefix), or None."""
        from ..storage.names import qualify

        try:
            q = str(qualify(text))
        except PalletError:
            q = None
        lists = self.all()
        for rec in lists:
            if text in rec["names"] or (q and q in rec["names"]):
                return rec
        t = text.removeprefix("sha256:")
        if len(t) >= 3 and all(c in "0123456789abcdef" for c in t):
            hits = [r for r in lists if r["id"].startswith(t)]
            if len(hits) == 1:
                return hits[0]
        return None

    def get(self, text: str) -> dict:
        rec = self.find(text)
        if rec is None:
            raise ListUnknown(f"{text}: image not known (no manifest list of that name)")
        return rec

    # -- changing ------------------------------------------------------------------------------

    def _lock(self) -> int:
        from ..storage.lock import lock_path

        os.makedirs(self.dir, 0o700, exist_ok=True)
        return lock_path(os.path.join(self.dir, "lock"))

    def _write(self, rec: dict) -> None:
        from .._fs import write_atomic

        write_atomic(os.path.join(self.dir, rec["id"] + ".json"), json.dumps(rec).encode(), 0o600)

    def create(self, name: str, images: list[str] = (), *, oci: bool = False, amend: bool = False) -> dict:
        """A new empty list named ``name`` (``amend``: the existing one), then ``images`` added."""
        from ..oci.digest import of_bytes
        from ..storage.names import qualify
        from ..storage.records import now

        q = str(qualify(name))
        for img in images:  # every image is found before anything is made
            self.store.image(img.removeprefix("containers-storage:").removeprefix("local:"))
        fd = self._lock()
        try:
            rec = self.find(name)
            if rec is not None and not amend:
                raise PalletError(f"creating manifest list {name}: {q}: name already in use by manifest list "
                                  f"{rec['id'][:12]} (use --amend to add to it)")
            if rec is None:
                try:
                    self.store.image(q)
                    taken = True
                except PalletError:
                    taken = False
                if taken:
                    raise PalletError(f"creating manifest list {name}: {q}: name already in use by an image")
                import time

                seed = f"{q}\0{time.time_ns()}\0{os.getpid()}\0".encode() + os.urandom(16)
                rec = {"id": of_bytes(seed).split(":", 1)[1], "names": [q], "created": now(),
                       "media_type": mt.OCI_INDEX if oci else mt.DOCKER_LIST, "manifests": [], "instances": {}}
                self._write(rec)
        finally:
            os.close(fd)
        for img in images:
            self.add(rec["id"], img)
        return self.get(rec["id"])

    def add(self, list_text: str, image: str, *, os_: str | None = None, arch: str | None = None,
            variant: str | None = None, features: list[str] = (), os_features: list[str] = (),
            os_version: str | None = None, annotations: dict | None = None) -> str:
        """Add the stored image ``image`` to the list (replacing an instance with its digest);
        returns its manifest digest."""
        from ..images.refs import has_transport

        if has_transport(image) and not image.startswith(("containers-storage:", "local:")):
            raise UsageError(f"manifest add {image}: adding an image from another transport is not supported "
                             "yet: pull it first, then add it by name")
        image = image.removeprefix("containers-storage:").removeprefix("local:")
        img = self.store.image(image)
        digest = img["digest"]
        with self.store.open_blob(digest) as f:
            raw = f.read()
        media_type = img["manifests"].get(digest) or mt.OCI_MANIFEST
        with self.store.open_blob(img["config"]) as f:
            try:
                cfg = json.loads(f.read())
            except ValueError:
                cfg = {}
        platform = {"architecture": arch or cfg.get("architecture") or "", "os": os_ or cfg.get("os") or ""}
        if os_version or cfg.get("os.version"):
            platform["os.version"] = os_version or cfg["os.version"]
        feats = list(os_features or cfg.get("os.features") or ())
        if feats:
            platform["os.features"] = feats
        if variant or cfg.get("variant"):
            platform["variant"] = variant or cfg["variant"]
        if features:
            platform["features"] = list(features)
        entry = {"mediaType": media_type, "size": len(raw), "digest": digest, "platform": platform}
        if annotations:
            entry["annotations"] = dict(annotations)
        fd = self._lock()
        try:
            rec = self.get(list_text)
            rec["manifests"] = [m for m in rec["manifests"] if m["digest"] != digest] + [entry]
            rec["instances"][digest] = img["id"]
            self._write(rec)
        finally:
            os.close(fd)
        return digest

    def remove_instance(self, list_text: str, digest: str) -> None:
        fd = self._lock()
        try:
            rec = self.get(list_text)
            left = [m for m in rec["manifests"] if m["digest"] != digest]
            if len(left) == len(rec["manifests"]):
                raise NotFound(f"removing {digest} from manifest list {list_text}: no instance with that digest")
            rec["manifests"] = left
            rec["instances"].pop(digest, None)
            self._write(rec)
        finally:
            os.close(fd)

    def delete(self, text: str) -> dict:
        """Remove the list ``text`` names (not the images it lists); returns its record."""
        fd = self._lock()
        try:
            rec = self.get(text)
            os.unlink(os.path.join(self.dir, rec["id"] + ".json"))
        finally:
            os.close(fd)
        return rec

    # -- the document --------------------------------------------------------------------------

    def document(self, text: str) -> tuple[bytes, str]:
        """The list as a registry would serve it: (raw JSON, media type)."""
        rec = self.get(text)
        return index_bytes(rec), rec["media_type"]

    def push(self, text: str, destination: str, src_ctx, dest_ctx, options=None, *, all_: bool = True):
        """Copy every instance, then the list, to ``destination`` (a transport reference, or
        ``HOST/REPO:TAG`` for the registry); returns the copy result (the list's digest)."""
        from ..transports.copy import CopyOptions, copy_image
        from .refs import has_transport, parse_reference

        rec = self.get(text)
        if not has_transport(destination):
            destination = "docker://" + destination
        dest = parse_reference(destination, self.store)
        options = options or CopyOptions()
        options.multi_arch = "all" if all_ else "system"
        return copy_image(_ListReference(self.store, rec), dest, src_ctx, dest_ctx, options)


def index_bytes(rec: dict) -> bytes:
    """The index document of a list record (JSON, 4-space indented as buildah prints it)."""
    doc = {"schemaVersion": 2, "mediaType": rec["media_type"], "manifests": rec["manifests"]}
    return (json.dumps(doc, indent=4) + "\n").encode()


class _ListSource(_Src):
    """A stored list as a copy source: the index, each instance's manifest and blobs from the
    store."""

    def __init__(self, ref, store, rec: dict):
        self.reference = ref
        self.store = store
        self.rec = rec

    def get_manifest(self, instance_digest: str | None = None) -> tuple[bytes, str]:
        if instance_digest is None:
            return index_bytes(self.rec), self.rec["media_type"]
        iid = self.rec["instances"].get(instance_digest)
        if iid is None:
            raise NotFound(f"manifest {instance_digest} is not in manifest list {self.rec['names'][0]}")
        img = self.store.image(iid)
        if instance_digest not in img["manifests"]:
            raise NotFound(f"manifest {instance_digest} is no longer in the store (image {iid[:12]})")
        with self.store.open_blob(instance_digest) as f:
            return f.read(), img["manifests"][instance_digest]

    def get_signatures(self, instance_digest: str | None = None) -> list[bytes]:
        return []

    def get_blob(self, desc):
        return self.store.open_blob(desc.digest)


class _ListReference(_Ref):
    """``local:`` reference of a stored list (the trust policy sees the local transport)."""

    transport = "local"

    def __init__(self, store, rec: dict):
        self.store = store
        self.rec = rec

    def string_within_transport(self) -> str:
        return self.rec["names"][0] if self.rec["names"] else self.rec["id"]

    def docker_reference(self):
        return None

    def new_source(self, ctx) -> _ListSource:
        return _ListSource(self, self.store, self.rec)
