"""``local:`` — the store as a transport: ``local:NAME[:TAG]``, ``local:NAME@DIGEST``,
``local:@IMAGE_ID``. Pulls are copies into it, pushes copies out of it.

A reference carries the :class:`~pallet.storage.store.Store` it names an image in, as
containers/image's ``ParseStoreReference(store, ref)`` does: whoever holds a store parses
``local:`` text with :func:`parse` (``images.refs.parse_reference`` for any reference text), and
every source and destination works on that one open store (a second ``Store`` on the same lock
file in one process would wait for itself)."""

from __future__ import annotations

from ..errors import InvalidDocument, InvalidReference, StoreError, Unsupported
from ..oci import mediatype as mt
from ..transports.base import ImageDestination, ImageReference, ImageSource


def parse(store, details: str) -> "LocalReference":
    if not details:
        raise InvalidReference("invalid local: reference: empty (want local:NAME[:TAG] or local:@ID)")
    if details.startswith("@"):
        iid = details[1:].removeprefix("sha256:")
        if not (3 <= len(iid) <= 64 and all(c in "0123456789abcdef" for c in iid)):
            raise InvalidReference(f"invalid local: image ID {details[1:]!r}")
        return LocalReference(store, None, iid)
    from .names import qualify

    return LocalReference(store, qualify(details), None)


class LocalReference(ImageReference):
    """An image in ``store`` by name or ID. With neither (only made by the library, e.g. for a
    pull by digest) it is a destination that stores the image without a name."""

    transport = "local"

    def __init__(self, store, named, image_id: str | None, keep_digest: bool = False,
                 digest_verified: bool = False):
        from .store import Store

        if not isinstance(store, Store):
            raise StoreError(f"internal: a local: reference needs an open store, not {type(store).__name__}")
        self.store = store
        self.named = named
        self.image_id = image_id
        #: a destination: an image already stored keeps its manifest (see Store.add_image)
        self.keep_digest = keep_digest
        #: a destination named REPO@DIGEST whose source checked that digest (a pull by digest:
        #: the registry's manifest, or index, had it); otherwise the stored manifest must have it
        self.digest_verified = digest_verified

    def string_within_transport(self) -> str:
        if self.named is not None:
            return str(self.named)
        return "@" + self.image_id if self.image_id else "(no name)"

    def docker_reference(self):
        return self.named

    def lookup_text(self) -> str:
        return self.image_id if self.image_id else str(self.named)

    def new_source(self, ctx) -> "LocalSource":
        return LocalSource(self, self.store)

    def new_destination(self, ctx) -> "LocalDestination":
        if self.image_id:
            raise InvalidReference(f"cannot write to {self}: a destination needs NAME[:TAG] or NAME@DIGEST")
        if self.store.absent:
            raise StoreError(f"internal: {self} names a store opened read-only")
        return LocalDestination(self, self.store)

    def delete(self, ctx) -> None:
        self.store.remove_image(self.lookup_text())


class LocalSource(ImageSource):
    def __init__(self, ref: LocalReference, store):
        self.reference = ref
        self.store = store
        self.image = store.image(ref.lookup_text())

    def get_manifest(self, instance_digest: str | None = None) -> tuple[bytes, str]:
        digest = instance_digest or (self.reference.named.digest if self.reference.named else None) \
            or self.image["digest"]
        if digest not in self.image["manifests"]:
            from ..errors import NotFound

            raise NotFound(f"manifest {digest} is not in the store for image {self.image['id'][:12]}")
        with self.store.open_blob(digest) as f:
            return f.read(), self.image["manifests"][digest]

    def get_blob(self, desc):
        return self.store.open_blob(desc.digest)

    def get_signatures(self, instance_digest: str | None = None) -> list[bytes]:
        digest = instance_digest or (self.reference.named.digest if self.reference.named else None) \
            or self.image["digest"]
        out = []
        for d in (self.image.get("signatures") or {}).get(digest, ()):
            with self.store.open_blob(d) as f:
                out.append(f.read())
        return out


class LocalDestination(ImageDestination):
    """Copies into the store: layers are applied as they arrive (overlay: in parallel),
    and the image appears, with its name, only at commit."""

    supports_index = False
    supported_manifest_types = (mt.OCI_MANIFEST, mt.DOCKER_V2S2)
    supports_signatures = True  # kept as blobs, listed in the image record

    def __init__(self, ref: LocalReference, store):
        self.reference = ref
        self.store = store
        # vfs copies the parent's tree for each layer: layers must arrive base first
        self.needs_ordered_blobs = store.driver.name == "vfs"
        self._plan: dict[str, list[int]] = {}
        self._chain: list[str] = []
        self._diff_ids: list[str] = []
        self._media: list[str] = []
        self._config: bytes | None = None
        self._config_digest: str | None = None
        self._manifest: tuple[bytes, str] | None = None
        self._deferred: list | None = None
        self._index_digest: str | None = None  # the manifest list the image was chosen from
        self._spool = None
        self._signatures: list[bytes] | None = None

    def begin_image(self, manifest, config: bytes | None) -> None:
        from ..oci.config import ImageConfig
        from .records import chain_ids

        if config is None:
            # Docker schema 1: the config (and so the diffIDs) is made while the layers are copied;
            # they are kept aside and applied at commit, when it is known
            self._deferred = []
            return
        cfg = ImageConfig.from_bytes(config)
        layers = [d for d in manifest.layers]
        diff_ids = cfg.diff_ids
        if len(diff_ids) != len(layers):
            raise InvalidDocument(f"config.rootfs.diff_ids: {len(diff_ids)} entries for {len(layers)} layers")
        self._diff_ids = diff_ids
        self._chain = chain_ids(diff_ids)
        self._media = [d.media_type for d in layers]
        with self.store.read() as st:
            for i, d in enumerate(layers):
                if d.urls and mt.is_nondistributable(d.media_type) and self._chain[i] not in st.layers:
                    raise Unsupported(f"layer {d.digest} is a non-distributable (foreign) layer, to be fetched "
                                      f"from {d.urls[0]}: foreign layers are not copied (as podman and skopeo "
                                      "do not), so the image cannot be stored in local:")
        self._plan = {}
        for i, d in enumerate(layers):
            self._plan.setdefault(d.digest, []).append(i)

    def try_reusing_blob(self, desc, source=None):
        idx = self._plan.get(desc.digest)
        if not idx:
            return None
        with self.store.read() as st:
            if all(self._chain[i] in st.layers for i in idx) and self.store.has_blob(desc.digest):
                return desc
        return None

    def put_blob(self, stream, desc, *, is_config: bool = False):
        if is_config:
            data = stream.read()
            while stream.read(1 << 16):
                pass
            self._config, self._config_digest = data, desc.digest
            return desc
        if self._deferred is not None:
            return self._keep_aside(stream, desc)
        indexes = self._plan.get(desc.digest)
        if not indexes:
            raise StoreError(f"blob {desc.digest} is not a layer of the image being stored")
        first = True
        for i in indexes:
            layer_id = self._chain[i]
            with self.store.layer_lock(layer_id):
                if self.store.has_layer(layer_id):
                    if first and not self.store.has_blob(desc.digest):
                        # the layer came as another blob (e.g. compressed, and now a docker-archive's
                        # plain tar): keep this one too, or the manifest names a blob nobody has
                        self.store.add_layer_blob(stream, layer_id=layer_id, diff_id=self._diff_ids[i],
                                                  blob_digest=desc.digest,
                                                  compression=mt.layer_compression(desc.media_type))
                        first = False
                    continue
                if not first:
                    # the same blob twice in one image (e.g. empty layers): reread it from the store
                    stream = self.store.open_blob(desc.digest)
                self.store.ingest_layer(stream, layer_id=layer_id, parent=self._chain[i - 1] if i else None,
                                        diff_id=self._diff_ids[i], blob_digest=desc.digest,
                                        media_type=desc.media_type,
                                        compression=mt.layer_compression(desc.media_type))
                first = False
        return desc

    def _keep_aside(self, stream, desc):
        import os

        if self._spool is None:
            self._spool_cm = self.store.staging()
            self._spool = self._spool_cm.__enter__()
        path = os.path.join(self._spool, f"{len(self._deferred)}.blob")
        size = 0
        with open(path, "wb") as f:
            while b := stream.read(1 << 20):
                f.write(b)
                size += len(b)
        self._deferred.append((desc, path))
        # schema 1 gives no sizes: the manifest made from these descriptors needs them, or the
        # image could never be copied out of the store again
        return desc.replace(size=size) if desc.size < 0 else desc

    def _apply_deferred(self) -> None:
        from ..oci.config import ImageConfig
        from .records import chain_ids

        diff_ids = ImageConfig.from_bytes(self._config).diff_ids
        if len(diff_ids) != len(self._deferred):
            raise InvalidDocument(f"config.rootfs.diff_ids: {len(diff_ids)} entries for {len(self._deferred)} layers")
        self._chain = chain_ids(diff_ids)
        for i, (desc, path) in enumerate(self._deferred):
            with self.store.layer_lock(self._chain[i]):
                if self.store.has_layer(self._chain[i]):
                    if not self.store.has_blob(desc.digest):  # the layer came as another blob (see put_blob)
                        with open(path, "rb") as f:
                            self.store.add_layer_blob(f, layer_id=self._chain[i], diff_id=diff_ids[i],
                                                      blob_digest=desc.digest,
                                                      compression=mt.layer_compression(desc.media_type))
                    continue
                with open(path, "rb") as f:
                    self.store.ingest_layer(f, layer_id=self._chain[i], parent=self._chain[i - 1] if i else None,
                                            diff_id=diff_ids[i], blob_digest=desc.digest, media_type=desc.media_type,
                                            compression=mt.layer_compression(desc.media_type))

    def close(self) -> None:
        if self._spool is not None:
            self._spool_cm.__exit__(None, None, None)
            self._spool = None

    def note_index(self, digest: str) -> None:
        """The image comes from this manifest list (for this system): recorded as the digest
        it was pulled by, as containers/storage's image Digest is."""
        self._index_digest = digest

    def put_manifest(self, raw: bytes, media_type: str, instance_digest: str | None = None) -> None:
        if instance_digest is not None:
            raise Unsupported("the store keeps one image per name, not a multi-platform index")
        self._manifest = (raw, media_type)

    def put_signatures(self, signatures: list[bytes], instance_digest: str | None = None) -> None:
        if instance_digest is not None:
            raise Unsupported("the store keeps one image per name, not a multi-platform index")
        self._signatures = [bytes(s) for s in signatures]

    def commit(self) -> None:
        from ..oci import manifest as _manifest

        if self._manifest is None or self._config is None:
            raise StoreError("internal: commit before the manifest and config were written")
        raw, media_type = self._manifest
        if self._deferred is not None:
            self._apply_deferred()
        named = self.reference.named
        names = [str(named.tagged_or_latest())] if named is not None else []
        manifest_digest = _manifest.digest_of(raw, media_type)
        if named is not None and named.digest and named.digest != manifest_digest \
                and not self.reference.digest_verified:
            raise InvalidReference(f"cannot store the image as {named}: its manifest's digest is {manifest_digest}")
        from .records import manifest_layer_blobs

        blobs = manifest_layer_blobs(raw)
        self.committed = self.store.add_image(config=self._config, config_digest=self._config_digest, manifest=raw,
                                          manifest_digest=manifest_digest,
                                          media_type=media_type, layers=self._chain, names=names,
                                          signatures=self._signatures, blobs=blobs,
                                          keep_digest=self.reference.keep_digest, list_digest=self._index_digest)


