"""Media types of the OCI image-spec and of Docker's image formats."""

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
OCI_LAYER_NONDIST = "application/vnd.oci.image.layer.nondistributable.v1.tar"
OCI_LAYER_NONDIST_GZIP = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
OCI_LAYER_NONDIST_ZSTD = "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
OCI_LAYOUT_HEADER = "application/vnd.oci.layout.header.v1+json"

DOCKER_V2S2 = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_V2S1 = "application/vnd.docker.distribution.manifest.v1+json"
DOCKER_V2S1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_LAYER_FOREIGN = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
DOCKER_PLUGIN_CONFIG = "application/vnd.docker.plugin.v1+json"

SCHEMA1 = (DOCKER_V2S1, DOCKER_V2S1_SIGNED)
INDEXES = (OCI_INDEX, DOCKER_LIST)
SINGLE_MANIFESTS = (OCI_MANIFEST, DOCKER_V2S2, DOCKER_V2S1_SIGNED, DOCKER_V2S1)
ALL_MANIFESTS = (OCI_INDEX, DOCKER_LIST) + SINGLE_MANIFESTS

#: what a registry client asks for, best first
ACCEPT = ALL_MANIFESTS

#: compression of a layer by media type: "gzip", "zstd" or None (plain tar)
_LAYER_COMPRESSION = {
    OCI_LAYER: None,
    OCI_LAYER_GZIP: "gzip",
    OCI_LAYER_ZSTD: "zstd",
    OCI_LAYER_NONDIST: None,
    OCI_LAYER_NONDIST_GZIP: "gzip",
    OCI_LAYER_NONDIST_ZSTD: "zstd",
    DOCKER_LAYER_GZIP: "gzip",
    DOCKER_LAYER_FOREIGN: "gzip",
    "application/vnd.docker.image.rootfs.diff.tar": None,
}

#: short names used on the command line for manifest formats
FORMAT_NAMES = {"oci": OCI_MANIFEST, "v2s2": DOCKER_V2S2, "v2s1": DOCKER_V2S1_SIGNED}


def is_nondistributable(media_type: str) -> bool:
    """A foreign (Docker) or non-distributable (OCI) layer type: fetched from its URLs, never copied."""
    return "nondistributable" in media_type or "foreign" in media_type


def is_layer(media_type: str) -> bool:
    return media_type in _LAYER_COMPRESSION


def layer_compression(media_type: str) -> str | None:
    """The compression a layer media type declares (None for plain tar or unknown types)."""
    return _LAYER_COMPRESSION.get(media_type)


def is_oci(media_type: str) -> bool:
    return media_type.startswith("application/vnd.oci.")


def layer_type(fmt: str, compression: str | None, nondistributable: bool = False) -> str:
    """The layer media type for manifest family ``fmt`` ("oci" or "docker") and a compression."""
    if fmt == "docker":
        if compression == "gzip":
            return DOCKER_LAYER_FOREIGN if nondistributable else DOCKER_LAYER_GZIP
        if compression is None:
            return "application/vnd.docker.image.rootfs.diff.tar"
        from ..errors import Unsupported

        raise Unsupported(f"Docker schema 2 manifests cannot describe {compression}-compressed layers; use --format oci")
    base = OCI_LAYER_NONDIST if nondistributable else OCI_LAYER
    return base if compression is None else f"{base}+{compression}"
