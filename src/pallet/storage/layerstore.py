"""Blobs and layers: the compressed blobs images were made from, the layers (by chain ID) the
driver holds, their ingestion (one process per layer, under its layer lock) and the garbage
collection of what nothing needs. A part of :class:`~pallet.storage.store.Store`."""

from __future__ import annotations

import contextlib
import os

from .. import _fs
from .._log import debug
from ..errors import DigestMismatch, StoreError
from . import _mount
from .lock import lock_path
from .records import State as _State
from .records import chain_step as _chain_step
from .records import now as _now


class LayerStore:
    """The store's blobs and layers (a part of ``Store``: it uses the store's locks and driver)."""

    def blob_path(self, digest: str) -> str:
        algo, hexpart = digest.split(":", 1)
        if algo != "sha256":
            raise StoreError(f"the store keeps sha256 blobs only, not {algo}")
        return os.path.join(self.graphroot, "blobs", "sha256", hexpart)

    def has_blob(self, digest: str) -> bool:
        return os.path.exists(self.blob_path(digest))

    def put_blob_bytes(self, data: bytes, digest: str) -> None:
        """Store a small blob (manifest, config) whose digest the caller verified."""
        path = self.blob_path(digest)
        if not os.path.exists(path):
            _fs.write_atomic(path, data, 0o644)

    def open_blob(self, digest: str):
        try:
            return open(self.blob_path(digest), "rb")
        except FileNotFoundError:
            from ..errors import BlobNotFound

            raise BlobNotFound(f"blob {digest} is not in the store") from None

    @contextlib.contextmanager
    def layer_lock(self, layer_id: str):
        """Held while one process ingests a layer; others wait, then find it present."""
        fd = lock_path(os.path.join(self.runroot, "locks", f"layer-{layer_id}.lock"))
        try:
            yield
        finally:
            os.close(fd)

    def has_layer(self, layer_id: str) -> bool:
        with self.read() as st:
            return layer_id in st.layers

    def ingest_layer(self, stream, *, layer_id: str, parent: str | None, diff_id: str, blob_digest: str | None,
                     media_type: str, compression: str | None) -> dict:
        """Apply a layer blob stream (as pulled) into the store as ``layer_id`` (its chain ID).

        The compressed bytes are kept as a blob while they are decompressed and applied in one
        pass; the diffID must equal ``diff_id``. Call with ``layer_lock(layer_id)`` held.
        Nothing is visible unless it all succeeds.
        """
        return self._ingest(stream, parent=parent, compressed=True, compression=compression, diff_id=diff_id,
                            layer_id=layer_id, blob_digest=blob_digest, media_type=media_type)

    def add_layer_from_tar(self, tar_stream, *, parent: str | None, compression: str = "gzip",
                           media_type: str | None = None) -> dict:
        """A new layer from an uncompressed tar stream (a build step, a commit): it is applied,
        and compressed into the blob kept for pushes, in the same pass. Its ID is the chain ID
        of ``parent`` and the tar's digest; an identical existing layer is reused."""
        from ..oci import mediatype as mt

        return self._ingest(tar_stream, parent=parent, compressed=False, compression=compression,
                            media_type=media_type or mt.layer_type("oci", None if compression == "none" else compression))

    def _ingest(self, source, *, parent: str | None, compressed: bool, compression: str | None, media_type: str,
                diff_id: str | None = None, layer_id: str | None = None, blob_digest: str | None = None) -> dict:
        from ..layer import stream as _stream
        from ..layer.apply import apply_layer

        with self.staging() as staging:
            parent_dir = self.driver.layer_dir(parent) if parent and self.driver.name == "vfs" else None
            target = self.driver.stage(staging, parent_dir)
            blob_tmp = os.path.join(staging, "blob")
            with open(blob_tmp, "wb") as bf:
                opts = self.options  # a decompression bomb fills neither the store nor the disk
                guard = dict(path=staging, what=f"layer {blob_digest or diff_id}" if blob_digest or diff_id else "the new layer",
                             limit=opts.layer_size_limit, reserve=opts.free_space_reserve)
                if compressed:  # keep the bytes as they came, apply what they decompress to
                    sink = _stream.HashingWriter(bf, hash=blob_digest is None)  # a known digest is verified upstream
                    diff = _stream.DiffIDReader(_stream.Tee(source, sink), compression)
                    packer = None
                else:  # apply the tar, keep it compressed
                    sink = _stream.HashingWriter(bf)
                    packer = _stream.CompressingWriter(sink, None if compression == "none" else compression)
                    diff = _stream.DiffIDReader(_stream.Tee(source, packer), "none")
                plain = _stream.SpaceGuard(diff, **guard)
                stats = apply_layer(plain, target, whiteouts=self.driver.whiteouts,
                                    opaque_xattr=self.driver.opaque_xattr)
                own = stats.root_mode if self.driver.root_entry_sets_mode else None
                os.chmod(target, own if own is not None else self.driver.root_mode(parent))
                while plain.read(_stream.CHUNK):  # trailing padding, and the verification at EOF
                    pass
                if packer is not None:
                    packer.close()
                bf.flush()
            if diff_id is not None and diff.digest != diff_id:
                raise DigestMismatch(f"layer {blob_digest or diff_id}: uncompressed content has digest "
                                     f"{diff.digest}, but the image config says {diff_id}")
            diff_id = diff.digest
            if layer_id is None:
                layer_id = _chain_step(parent, diff_id) if parent else diff_id.split(":", 1)[1]
            _mount.syncfs(staging)
            blob_digest = blob_digest or sink.digest
            debug(f"layer {layer_id[:12]}: applied {stats.entries} entries ({stats.bytes} bytes) from {blob_digest}")
            with self.write() as st:
                if layer_id in st.layers:
                    return st.layers[layer_id]
                bpath = self.blob_path(blob_digest)
                if not os.path.exists(bpath):
                    os.rename(blob_tmp, bpath)
                drv = self.driver.install(staging, layer_id)
                rec = {"id": layer_id, "parent": parent, "diff_id": diff_id, "blob": blob_digest,
                       "blob_size": sink.size, "media_type": media_type, "size": stats.bytes,
                       "created": _now(), "driver": drv, "kind": "image"}
                st.layers[layer_id] = rec
                st.dirty.add("layers")
                return rec

    def add_layer_blob(self, stream, *, layer_id: str, diff_id: str, blob_digest: str, compression: str | None) -> None:
        """Keep another blob of a layer the store already has (the same diff as it came from
        another source: a docker-archive's uncompressed tar, another compression), so images
        whose manifests name it can be saved and pushed. The blob's digest is verified upstream;
        what it decompresses to must be the layer's diffID. The layer itself is not touched."""
        from ..layer import stream as _stream

        with self.staging() as staging:
            blob_tmp = os.path.join(staging, "blob")
            with open(blob_tmp, "wb") as bf:
                plain = _stream.Digesting(_stream.open_decompressed(_stream.Tee(stream, bf), compression))
                while plain.read(_stream.CHUNK):
                    pass
                bf.flush()
                os.fsync(bf.fileno())
            if plain.digest != diff_id:
                raise DigestMismatch(f"layer {blob_digest}: uncompressed content has digest {plain.digest}, "
                                     f"but the image config says {diff_id}")
            with self.write() as st:
                if layer_id not in st.layers:
                    raise StoreError(f"layer {layer_id[:12]} was removed while its blob {blob_digest} was "
                                     "being stored; try again")
                bpath = self.blob_path(blob_digest)
                if not os.path.exists(bpath):
                    os.rename(blob_tmp, bpath)

    def layer_chain(self, st: _State, top: str | None) -> list[dict]:
        """Records from ``top`` down to the base (top first); StoreError if one is missing."""
        out = []
        cur = top
        while cur:
            rec = st.layers.get(cur)
            if rec is None:
                raise StoreError(f"layer {cur[:12]} is missing from the store: run 'pallet system check --repair'")
            out.append(rec)
            cur = rec.get("parent")
        return out

    def layers(self) -> list[dict]:
        with self.read() as st:
            return [dict(r) for r in st.layers.values()]

    def _gc(self, st: _State, trash: str) -> None:
        """Remove layers no image or container needs, and blobs nothing refers to."""
        keep: set[str] = set()
        for rec in st.images.values():
            keep.update(rec.get("layers") or [])
        for c in st.containers.values():
            keep.add(c["layer"])
            keep.update(r["id"] for r in self.layer_chain(st, st.layers.get(c["layer"], {}).get("parent")))
        for lid in [lid for lid in st.layers if lid not in keep]:
            del st.layers[lid]
            st.dirty.add("layers")
            st.after.append(lambda lid=lid: self.driver.remove(lid, trash))
        blobs: set[str] = set()
        for rec in st.images.values():
            blobs.add(rec["config"])
            blobs.update(rec["digests"])
            blobs.update(rec.get("blobs") or ())
            for sigs in (rec.get("signatures") or {}).values():
                blobs.update(sigs)
        for layer in st.layers.values():
            if layer.get("blob"):
                blobs.add(layer["blob"])
        bdir = os.path.join(self.graphroot, "blobs", "sha256")

        def drop_blobs():
            for hexpart in os.listdir(bdir):
                if "sha256:" + hexpart not in blobs and not hexpart.startswith("."):
                    os.rename(os.path.join(bdir, hexpart), os.path.join(trash, "blob-" + hexpart))

        st.after.append(drop_blobs)
