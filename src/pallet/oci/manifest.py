"""Image manifests and indexes: OCI, Docker schema 2, and Docker schema 1 (read-only).

``parse(raw, media_type)`` returns a :class:`Manifest`, :class:`Index` or
:class:`Schema1Manifest` that keeps ``raw``; its ``digest`` is always over those bytes.
Documents this module writes are serialised as Go's encoding/json does (compact, the
same field order, ``<>&`` escaped) so a conversion gives the digest skopeo would.
"""

from __future__ import annotations

from .._std import json

from ..errors import InvalidDocument, Unsupported
from . import digest as _digest
from . import mediatype as mt
from .descriptor import Descriptor
from .platform import Platform


def dumps(obj: object) -> bytes:
    """Serialise like Go's json.Marshal: compact, HTML characters escaped."""
    text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    try:
        return text.encode()
    except UnicodeEncodeError:  # lone surrogates (argv or files read with surrogateescape, "\\ud800" in
        # JSON): Go's json.Marshal writes U+FFFD for what is not UTF-8, and so does this
        return "".join("\ufffd" if "\ud800" <= c <= "\udfff" else c for c in text).encode()


def load_json(raw: bytes, what: str) -> dict:
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise InvalidDocument(f"{what}: not valid JSON: {e}") from None
    if not isinstance(doc, dict):
        raise InvalidDocument(f"{what}: expected a JSON object, got {type(doc).__name__}")
    return doc


def guess_media_type(raw: bytes) -> str:
    """The media type of a manifest whose transport did not say (containers/image's GuessMIMEType)."""
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return ""
    if not isinstance(doc, dict):
        return ""
    m = doc.get("mediaType")
    if isinstance(m, str) and m:
        return m
    if doc.get("schemaVersion") == 1:
        return mt.DOCKER_V2S1_SIGNED if "signatures" in doc else mt.DOCKER_V2S1
    if "manifests" in doc:
        return mt.OCI_INDEX
    if "config" in doc and "layers" in doc:
        cfg = doc["config"]
        if isinstance(cfg, dict) and cfg.get("mediaType") == mt.DOCKER_CONFIG:
            return mt.DOCKER_V2S2
        return mt.OCI_MANIFEST
    return ""


def _schema_version(doc: dict, want: int, what: str) -> None:
    v = doc.get("schemaVersion")
    if v != want or isinstance(v, bool):
        raise InvalidDocument(f"{what}.schemaVersion: expected {want}, got {v!r}")


def _annotations(doc: dict, what: str) -> dict:
    ann = doc.get("annotations") or {}
    if not isinstance(ann, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in ann.items()):
        raise InvalidDocument(f"{what}.annotations: expected an object of strings")
    return ann


def _check_media_type(doc: dict, media_type: str, what: str) -> None:
    declared = doc.get("mediaType")
    if declared is not None and not isinstance(declared, str):
        raise InvalidDocument(f"{what}.mediaType: expected a string")
    if declared and declared != media_type:
        raise InvalidDocument(f"{what}.mediaType: document says {declared!r} but it was served as {media_type!r}")
    if media_type in (mt.DOCKER_V2S2, mt.DOCKER_LIST) and not declared:
        raise InvalidDocument(f"{what}.mediaType: missing (required in Docker schema 2)")


class Manifest:
    """A single-platform image manifest (OCI or Docker schema 2)."""

    def __init__(self, raw: bytes, media_type: str, config: Descriptor, layers: list[Descriptor],
                 annotations: dict, subject: Descriptor | None = None, artifact_type: str | None = None):
        self.raw = raw
        self.media_type = media_type
        self.config = config
        self.layers = layers
        self.annotations = annotations
        self.subject = subject
        self.artifact_type = artifact_type

    is_index = False

    @property
    def digest(self) -> str:
        return _digest.of_bytes(self.raw)

    @classmethod
    def from_bytes(cls, raw: bytes, media_type: str) -> "Manifest":
        what = "manifest"
        doc = load_json(raw, what)
        _schema_version(doc, 2, what)
        _check_media_type(doc, media_type, what)
        config = Descriptor.from_dict(doc.get("config"), f"{what}.config")
        layers_raw = doc.get("layers")
        if not isinstance(layers_raw, list):
            raise InvalidDocument(f"{what}.layers: missing or not a list")
        layers = [Descriptor.from_dict(x, f"{what}.layers[{i}]") for i, x in enumerate(layers_raw)]
        subject = Descriptor.from_dict(doc["subject"], f"{what}.subject") if doc.get("subject") else None
        at = doc.get("artifactType")
        if at is not None and not isinstance(at, str):
            raise InvalidDocument(f"{what}.artifactType: expected a string")
        if media_type == mt.DOCKER_V2S2 and config.media_type not in (mt.DOCKER_CONFIG, mt.DOCKER_PLUGIN_CONFIG):
            raise InvalidDocument(f"{what}.config.mediaType: {config.media_type!r} is not a Docker image config type")
        return cls(raw, media_type, config, layers, _annotations(doc, what), subject, at)

    @classmethod
    def build(cls, media_type: str, config: Descriptor, layers: list[Descriptor],
              annotations: dict | None = None, subject: Descriptor | None = None,
              artifact_type: str | None = None) -> "Manifest":
        docker = media_type == mt.DOCKER_V2S2
        doc: dict = {"schemaVersion": 2, "mediaType": media_type}
        if artifact_type and not docker:
            doc["artifactType"] = artifact_type
        doc["config"] = config.to_dict(docker)
        doc["layers"] = [x.to_dict(docker) for x in layers]
        if subject is not None and not docker:
            doc["subject"] = subject.to_dict()
        if annotations and not docker:
            doc["annotations"] = dict(annotations)
        return cls(dumps(doc), media_type, config, list(layers), dict(annotations or {}) if not docker else {},
                   subject if not docker else None, artifact_type if not docker else None)

    def convert(self, media_type: str, layers: list[Descriptor] | None = None) -> "Manifest":
        """This manifest as ``media_type``, optionally with replaced layer descriptors.

        Layer media types are rewritten for the target family; raises Unsupported when the
        target cannot describe the image (zstd layers or artifacts in Docker schema 2).
        """
        layers = list(self.layers if layers is None else layers)
        if media_type == self.media_type and layers == self.layers:
            return self
        fmt = "docker" if media_type == mt.DOCKER_V2S2 else "oci"
        if media_type not in (mt.DOCKER_V2S2, mt.OCI_MANIFEST):
            raise Unsupported(f"cannot convert a manifest to {media_type}")
        config = self.config
        if fmt == "docker":
            if config.media_type not in (mt.OCI_CONFIG, mt.DOCKER_CONFIG):
                raise Unsupported(f"config of type {config.media_type} cannot be stored in a Docker schema 2 manifest")
            config = config.replace(media_type=mt.DOCKER_CONFIG, annotations={}, artifact_type=None)
        elif config.media_type == mt.DOCKER_CONFIG:
            config = config.replace(media_type=mt.OCI_CONFIG)
        new_layers = []
        for i, layer in enumerate(layers):
            if mt.is_layer(layer.media_type):
                nondist = mt.is_nondistributable(layer.media_type)
                layer = layer.replace(media_type=mt.layer_type(fmt, mt.layer_compression(layer.media_type), nondist))
            elif fmt == "docker":
                raise Unsupported(f"layers[{i}] of type {layer.media_type} cannot be stored in a Docker schema 2 manifest")
            if fmt == "docker":
                layer = layer.replace(annotations={})
            new_layers.append(layer)
        return Manifest.build(media_type, config, new_layers, self.annotations, self.subject, self.artifact_type)

    def to_dict(self) -> dict:
        return json.loads(self.raw)


class Index:
    """A multi-platform index (OCI image index or Docker manifest list)."""

    is_index = True

    def __init__(self, raw: bytes, media_type: str, manifests: list[Descriptor], annotations: dict,
                 subject: Descriptor | None = None, artifact_type: str | None = None):
        self.raw = raw
        self.media_type = media_type
        self.manifests = manifests
        self.annotations = annotations
        self.subject = subject
        self.artifact_type = artifact_type

    @property
    def digest(self) -> str:
        return _digest.of_bytes(self.raw)

    @classmethod
    def from_bytes(cls, raw: bytes, media_type: str) -> "Index":
        what = "index" if media_type == mt.OCI_INDEX else "manifest list"
        doc = load_json(raw, what)
        _schema_version(doc, 2, what)
        _check_media_type(doc, media_type, what)
        ms = doc.get("manifests")
        if not isinstance(ms, list):
            raise InvalidDocument(f"{what}.manifests: missing or not a list")
        manifests = [Descriptor.from_dict(x, f"{what}.manifests[{i}]") for i, x in enumerate(ms)]
        if media_type == mt.DOCKER_LIST:
            for i, d in enumerate(manifests):
                if d.platform is None:
                    raise InvalidDocument(f"{what}.manifests[{i}].platform: missing (required in a manifest list)")
        subject = Descriptor.from_dict(doc["subject"], f"{what}.subject") if doc.get("subject") else None
        return cls(raw, media_type, manifests, _annotations(doc, what), subject, doc.get("artifactType"))

    @classmethod
    def build(cls, media_type: str, manifests: list[Descriptor], annotations: dict | None = None,
              subject: Descriptor | None = None, artifact_type: str | None = None) -> "Index":
        docker = media_type == mt.DOCKER_LIST
        doc: dict = {"schemaVersion": 2, "mediaType": media_type}
        if artifact_type and not docker:
            doc["artifactType"] = artifact_type
        doc["manifests"] = [d.to_dict(docker) for d in manifests]
        if subject is not None and not docker:
            doc["subject"] = subject.to_dict()
        if annotations and not docker:
            doc["annotations"] = dict(annotations)
        return cls(dumps(doc), media_type, list(manifests), dict(annotations or {}), subject, artifact_type)

    def convert(self, media_type: str, manifests: list[Descriptor] | None = None) -> "Index":
        """This index as ``media_type`` (OCI index <-> Docker list), with instance descriptors replaced."""
        manifests = list(self.manifests if manifests is None else manifests)
        if media_type == self.media_type and manifests == self.manifests:
            return self
        if media_type not in mt.INDEXES:
            raise Unsupported(f"cannot convert an index to {media_type}")
        return Index.build(media_type, manifests, self.annotations, self.subject, self.artifact_type)

    def select(self, want: Platform) -> Descriptor:
        """The instance that best runs on ``want`` (first listed wins ties), or Unsupported."""
        from . import platform as _pl

        best = None
        for d in self.manifests:
            if d.platform is None or d.media_type in mt.INDEXES:
                continue
            r = _pl.rank(want, d.platform)
            if r is not None and (best is None or r < best[0]):
                best = (r, d)
        if best is None:
            for d in self.manifests:
                if d.media_type in mt.INDEXES and (d.platform is None or _pl.rank(want, d.platform) is not None):
                    raise Unsupported(f"index {self.digest} nests another index ({d.digest}"
                                      f"{' for ' + str(d.platform) if d.platform else ''}) instead of an image: "
                                      f"nested indexes are not supported; resolve it by naming that index by "
                                      f"digest (@{d.digest})")
            have = ", ".join(str(d.platform) for d in self.manifests
                             if d.platform and d.media_type not in mt.INDEXES) or "none"
            # containers/image's words; exit 1 as skopeo (the image exists, not for this platform)
            kind = "manifest list" if self.media_type == mt.DOCKER_LIST else "image index"
            raise Unsupported(f"choosing image instance: no image found in {kind} for architecture "
                              f"{want.architecture}, variant \"{want.variant or ''}\", OS {want.os} "
                              f"(available: {have})")
        return best[1]

    def to_dict(self) -> dict:
        return json.loads(self.raw)


def _b64url(s: str) -> bytes:
    import base64  # schema 1 signatures only

    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


class Schema1Manifest:
    """Docker image manifest schema 1, signed or not. Read-only: inspect and pull from it."""

    is_index = False

    def __init__(self, raw: bytes, media_type: str, name: str, tag: str, architecture: str,
                 fs_layers: list[str], history: list[dict], payload: bytes):
        self.raw = raw
        self.media_type = media_type
        self.name = name
        self.tag = tag
        self.architecture = architecture
        self.fs_layers = fs_layers  # blobSums, newest first as in the document
        self.history = history  # parsed v1Compatibility objects, newest first
        self.payload = payload

    @property
    def digest(self) -> str:
        """Over the payload without signatures, as the registry computes it."""
        return _digest.of_bytes(self.payload)

    @classmethod
    def from_bytes(cls, raw: bytes, media_type: str) -> "Schema1Manifest":
        what = "manifest"
        doc = load_json(raw, what)
        _schema_version(doc, 1, what)
        fs = doc.get("fsLayers")
        hist = doc.get("history")
        if not isinstance(fs, list) or not fs:
            raise InvalidDocument(f"{what}.fsLayers: missing or empty")
        if not isinstance(hist, list) or len(hist) != len(fs):
            raise InvalidDocument(f"{what}.history: missing or not as long as fsLayers")
        sums = []
        for i, x in enumerate(fs):
            if not isinstance(x, dict):
                raise InvalidDocument(f"{what}.fsLayers[{i}]: expected an object")
            sums.append(_digest.validate(x.get("blobSum"), f"{what}.fsLayers[{i}].blobSum"))
        history = []
        for i, h in enumerate(hist):
            v1 = h.get("v1Compatibility") if isinstance(h, dict) else None
            if not isinstance(v1, str):
                raise InvalidDocument(f"{what}.history[{i}].v1Compatibility: missing or not a string")
            history.append(load_json(v1.encode(), f"{what}.history[{i}].v1Compatibility"))
        payload = raw
        sigs = doc.get("signatures")
        if sigs:
            try:
                protected = json.loads(_b64url(sigs[0]["protected"]))
                payload = raw[: protected["formatLength"]] + _b64url(protected["formatTail"])
            except (KeyError, TypeError, ValueError, IndexError) as e:
                raise InvalidDocument(f"{what}.signatures[0].protected: malformed JWS header: {e}") from None
        for key in ("name", "tag", "architecture"):
            if not isinstance(doc.get(key, ""), str):
                raise InvalidDocument(f"{what}.{key}: expected a string")
        return cls(raw, media_type, doc.get("name", ""), doc.get("tag", ""), doc.get("architecture", ""),
                   sums, history, payload)

    @property
    def layers(self) -> list[Descriptor]:
        """Layer blobs, base first, with empty (throwaway) layers left out."""
        out = []
        for blob, h in zip(reversed(self.fs_layers), reversed(self.history)):
            if h.get("throwaway"):
                continue
            out.append(Descriptor(mt.DOCKER_LAYER_GZIP, blob, -1))
        return out

    def layers_all(self) -> list[Descriptor]:
        """Every distinct blob the manifest names (throwaway ones too), base first."""
        seen, out = set(), []
        for blob in reversed(self.fs_layers):
            if blob not in seen:
                seen.add(blob)
                out.append(Descriptor(mt.DOCKER_LAYER_GZIP, blob, -1))
        return out

    def synthesize_config(self, diff_ids: list[str]) -> bytes:
        """An image config for this image, as a schema 2 conversion needs it.

        ``diff_ids`` are those of :attr:`layers` (the non-throwaway layers), base first.
        The top history entry gives the config; each v1 entry gives a history line.
        """
        top = dict(self.history[0])
        for key in ("id", "parent", "Size", "parent_id", "layer_id", "throwaway"):
            top.pop(key, None)
        history = []
        for h in reversed(self.history):
            cmd = (h.get("container_config") or {}).get("Cmd") or []
            item = {"created": h.get("created", "")}
            if h.get("author"):
                item["author"] = h["author"]
            item["created_by"] = " ".join(cmd) if isinstance(cmd, list) else str(cmd)
            if h.get("comment"):
                item["comment"] = h["comment"]
            if h.get("throwaway"):
                item["empty_layer"] = True
            history.append(item)
        top["history"] = history
        top["rootfs"] = {"type": "layers", "diff_ids": list(diff_ids)}
        return dumps(top)

    def to_dict(self) -> dict:
        return json.loads(self.raw)


def parse(raw: bytes, media_type: str | None = None):
    """Parse a manifest or index of any supported type, keeping ``raw``.

    ``media_type`` is what the transport said (Content-Type, descriptor); when absent or
    generic, the type is guessed from the document.
    """
    if not media_type or media_type in ("application/json", "text/plain", "application/octet-stream"):
        media_type = guess_media_type(raw)
    if media_type in mt.INDEXES:
        return Index.from_bytes(raw, media_type)
    if media_type in (mt.OCI_MANIFEST, mt.DOCKER_V2S2):
        return Manifest.from_bytes(raw, media_type)
    if media_type in mt.SCHEMA1:
        return Schema1Manifest.from_bytes(raw, media_type)
    if not media_type:
        raise InvalidDocument("manifest: cannot tell its type (no mediaType, not a known layout)")
    raise InvalidDocument(f"manifest: unsupported media type {media_type!r}")


def digest_of(raw: bytes, media_type: str | None = None) -> str:
    """The digest a registry gives these manifest bytes (schema 1: without signatures)."""
    if media_type in mt.SCHEMA1 or (not media_type and guess_media_type(raw) in mt.SCHEMA1):
        return Schema1Manifest.from_bytes(raw, media_type or mt.DOCKER_V2S1_SIGNED).digest
    return _digest.of_bytes(raw)
