"""The interfaces every transport implements, and the options that reach them.

Shaped after containers/image: an :class:`ImageReference` names an image in one
transport and opens an :class:`ImageSource` to read it or an :class:`ImageDestination`
to write it.  The copy engine (``copy.py``) speaks only these interfaces.

Contract of a destination (what makes a failed copy leave nothing behind):

- ``put_blob`` reads the stream to EOF *before* the blob becomes visible. The copy
  engine hands it a stream that raises :class:`~pallet.errors.DigestMismatch` instead of
  signalling EOF when the data is corrupt, so a destination that writes to a temp file and
  renames after EOF never publishes bad data. On any exception ``put_blob`` removes its
  temp data and re-raises.
- ``put_blob`` is idempotent ("no error means the content is there") and must be safe to
  call from several threads at once (layers are copied in parallel).
- Nothing the copy wrote is *reachable* (index.json entry, tag, archive file) until
  ``commit``; ``close`` without ``commit`` discards what was staged.
"""

from __future__ import annotations

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs start-up time
if TYPE_CHECKING:
    from typing import BinaryIO

    from ..oci.descriptor import Descriptor


class SystemContext:
    """Options for one side of an operation (containers/image's ``types.SystemContext``).

    ``copy`` has one for the source and one for the destination.
    """

    __slots__ = ("tls_verify", "creds", "registry_token", "authfile", "registries_conf", "registries_conf_dir", "cert_dir",
                 "retry_times", "retry_delay", "override_os", "override_arch", "override_variant",
                 "user_agent", "no_creds", "debug", "compress_format", "compress_level",
                 "docker_archive_additional_tags", "oci_shared_blob_dir", "registries_d",
                 "spool_limit", "signature_policy", "insecure_policy")

    def __init__(self, **kw):
        self.tls_verify: bool | None = None  # None: per registries.conf (insecure) / default True
        self.creds: str | None = None  # "user[:password]"
        self.registry_token: str | None = None
        self.authfile: str | None = None
        self.registries_conf: str | None = None
        self.registries_conf_dir: str | None = None  # drop-ins read instead of the default directories
        self.cert_dir: str | None = None
        self.retry_times: int = 3
        self.retry_delay: float | None = None  # None: exponential backoff from 1 s
        self.override_os: str | None = None
        self.override_arch: str | None = None
        self.override_variant: str | None = None
        self.user_agent: str = "pallet/0.1"
        self.no_creds: bool = False
        self.debug: bool = False
        self.compress_format: str | None = None  # destination: "gzip", "zstd", or None (keep)
        self.compress_level: int | None = None
        self.docker_archive_additional_tags: list = []
        self.oci_shared_blob_dir: str | None = None
        self.registries_d: str | None = None  # where lookaside (signature) locations are configured
        self.spool_limit: int | None = None  # bytes a piped archive may spool (None: config, default)
        # the trust policy every copy from this side is checked against (containers/image's
        # SignaturePolicyPath): None for the containers-policy.json locations
        self.signature_policy: str | None = None
        self.insecure_policy: bool = False
        for k, v in kw.items():
            setattr(self, k, v)


class ImageReference:
    """An image named within one transport. Subclasses set ``transport`` and implement the methods."""

    transport: str = ""

    def string_within_transport(self) -> str:
        raise NotImplementedError

    def __str__(self) -> str:
        sep = "://" if self.transport == "docker" else ":"
        return f"{self.transport}{sep}{self.string_within_transport().removeprefix('//')}"

    def docker_reference(self):
        """The :class:`~pallet.oci.reference.Named` this image is known as, if any (for tags)."""
        return None

    def new_source(self, ctx: SystemContext) -> "ImageSource":
        raise NotImplementedError

    def new_destination(self, ctx: SystemContext) -> "ImageDestination":
        raise NotImplementedError

    def delete(self, ctx: SystemContext) -> None:
        from ..errors import Unsupported

        raise Unsupported(f"deleting images is not supported by the {self.transport} transport")


class ImageSource:
    """Reads one image (or index) from a transport."""

    reference: ImageReference

    def get_manifest(self, instance_digest: str | None = None) -> tuple[bytes, str]:
        """The raw manifest and its media type ("" if the transport cannot tell).

        ``instance_digest`` asks for a manifest listed in the top-level index (by digest);
        None asks for the top level. Raises NotFound when absent.
        """
        raise NotImplementedError

    def get_signatures(self, instance_digest: str | None = None) -> list[bytes]:
        """The simple-signing signatures of the image (or of one instance of its index), as
        stored: OpenPGP messages, in order. ``[]`` where the transport keeps none."""
        return []

    def get_blob(self, desc: "Descriptor") -> BinaryIO:
        """A stream of the blob's stored (usually compressed) bytes, NOT verified.

        The caller wraps it in ``layer.stream.Verifying``. Raises BlobNotFound when absent.
        Safe to call from several threads at once.
        """
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class ImageDestination:
    """Writes one image (or index) into a transport; see the module docstring for the contract."""

    reference: ImageReference

    #: manifest media types this destination can store, preferred first; () means any
    supported_manifest_types: tuple[str, ...] = ()
    #: can it store a multi-platform index?
    supports_index: bool = True
    #: compression it wants for layers: None keeps what the source has
    desired_compression: str | None = None
    #: True when blobs must arrive in manifest order (a tar stream being written)
    needs_ordered_blobs: bool = False
    #: after ``commit``: what the destination made, where it can say (the store: the image record)
    committed = None

    def begin_image(self, manifest, config: bytes | None) -> None:
        """Called before the layers of one single-platform image are copied, with its parsed
        source manifest and its verified config bytes (None for schema 1 sources). A destination
        that needs to know the image up front (the local store: chain IDs, diffIDs) uses it."""

    def try_reusing_blob(self, desc: "Descriptor", source: "ImageReference | None" = None) -> "Descriptor | None":
        """The descriptor of this blob if the destination already has it (or could get it without
        the data, e.g. a cross-repository mount from ``source`` when both are on one registry);
        None if it must be uploaded. Safe to call from several threads at once."""
        return None

    def put_blob(self, stream: BinaryIO, desc: "Descriptor", *, is_config: bool = False) -> "Descriptor":
        """Store a blob read from ``stream`` to EOF; return its descriptor (digest and size known).

        ``desc.digest`` may be None and ``desc.size`` -1 when not known in advance (recompressed data).
        """
        raise NotImplementedError

    def put_manifest(self, raw: bytes, media_type: str, instance_digest: str | None = None) -> None:
        """Store a manifest. ``instance_digest`` is set for a per-platform manifest of an index
        (stored by digest only); None for the top-level manifest or index."""
        raise NotImplementedError

    #: can ``put_signatures`` store signatures here?
    supports_signatures: bool = False

    def put_signatures(self, signatures: list[bytes], instance_digest: str | None = None) -> None:
        """Store signatures for the manifest written (kept with the image, made visible at
        ``commit``). A transport that cannot store them refuses any."""
        if signatures:
            from ..errors import Unsupported

            raise Unsupported(f"{self.reference}: this transport cannot store signatures "
                              "(use --remove-signatures to copy the image without them)")

    def commit(self) -> None:
        """Make the image visible. Before this call nothing the copy wrote is reachable."""

    def close(self) -> None:
        """Release resources; discard staged data if ``commit`` was not called."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
