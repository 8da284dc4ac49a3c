"""What ``pallet inspect`` shows: skopeo's inspect output, computed from any transport."""

from __future__ import annotations

from .._std import futures, json

from ..errors import DigestMismatch, PalletError, Unsupported
from ..layer import stream as _stream
from ..oci import manifest as _manifest
from ..oci import platform as _platform
from ..oci.config import ImageConfig

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .base import ImageReference, ImageSource, SystemContext


def raw_manifest(ref: "ImageReference", ctx: "SystemContext") -> tuple[bytes, str]:
    """The top-level manifest bytes, exactly as stored."""
    with ref.new_source(ctx) as src:
        return src.get_manifest()


def _chosen(src: "ImageSource", ctx: "SystemContext"):
    """(top-level raw, top-level parsed, the single-platform manifest for this system)."""
    raw, media_type = src.get_manifest()
    top = _manifest.parse(raw, media_type)
    if not top.is_index:
        return raw, top, top
    want = _platform.wanted(ctx.override_os, ctx.override_arch, ctx.override_variant)
    try:
        desc = top.select(want)
    except Unsupported as e:  # skopeo inspect's prefix, which its own suite looks for
        raise Unsupported(f"parsing manifest for image: {e}") from None
    iraw, itype = src.get_manifest(desc.digest)
    got = _manifest.digest_of(iraw, itype or desc.media_type)
    if got != desc.digest:
        raise DigestMismatch(f"manifest {desc.digest}: the source served data with digest {got}")
    inst = _manifest.parse(iraw, itype or desc.media_type)
    if inst.is_index:
        raise PalletError(f"nested index {desc.digest} is not supported")
    return raw, top, inst


def read_config(src: "ImageSource", m) -> bytes:
    """The config blob of a single-platform manifest, verified; schema 1 has it inline."""
    from ..oci.config import MAX_CONFIG_SIZE

    if isinstance(m, _manifest.Schema1Manifest):
        return json.dumps(m.history[0]).encode()
    if m.config.size > MAX_CONFIG_SIZE:
        from ..errors import InvalidDocument

        raise InvalidDocument(f"manifest.config.size: {m.config.size} bytes is too large for an image config")
    with _stream.Verifying(src.get_blob(m.config), m.config.digest, m.config.size, "config") as s:
        return s.read()


def raw_config(ref: "ImageReference", ctx: "SystemContext") -> bytes:
    with ref.new_source(ctx) as src:
        _, _, m = _chosen(src, ctx)
        return read_config(src, m)


def inspect(ref: "ImageReference", ctx: "SystemContext", tags: bool = True) -> dict:
    """skopeo inspect's JSON object for ``ref`` (keys and order as skopeo prints them)."""
    with ref.new_source(ctx) as src:
        raw, top, m = _chosen(src, ctx)
        tag_job = None
        if tags and ref.transport == "docker":  # the tag list comes while the config does
            tag_job = futures.submit(src.get_tags)
        config = ImageConfig.from_bytes(read_config(src, m))
        repo_tags = tag_job.result() if tag_job else []
    out: dict = {}
    named = ref.docker_reference()
    if ref.transport == "docker" and named is not None:
        out["Name"] = named.name
    out["Digest"] = _manifest.digest_of(raw, top.media_type)
    out["RepoTags"] = repo_tags
    out["Created"] = config.created
    out["DockerVersion"] = config.docker_version
    out["Labels"] = config.labels or None
    out["Architecture"] = config.architecture
    if config.variant:
        out["Variant"] = config.variant
    out["Os"] = config.os
    layers = m.layers
    out["Layers"] = [d.digest for d in layers]
    out["LayersData"] = [{"MIMEType": d.media_type, "Digest": d.digest, "Size": d.size,
                          "Annotations": d.annotations or None} for d in layers]
    out["Env"] = config.env or None
    return out
