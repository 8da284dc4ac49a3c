"""Content descriptors: what a manifest or index says about a blob it points to."""

from __future__ import annotations

from ..errors import InvalidDocument
from . import digest as _digest
from .platform import Platform


def _str(d: dict, key: str, field: str, required: bool = True) -> str | None:
    v = d.get(key)
    if v is None:
        if required:
            raise InvalidDocument(f"{field}.{key}: missing")
        return None
    if not isinstance(v, str):
        raise InvalidDocument(f"{field}.{key}: expected a string, got {type(v).__name__}")
    return v


class Descriptor:
    """A blob reference: media type, digest, size, and the optional descriptor fields.

    ``digest`` may be None and ``size`` -1 for a blob not written yet (e.g. a layer
    being recompressed); every descriptor read from a document has both.
    Unknown fields are kept in ``extra`` so a round trip loses nothing.
    """

    __slots__ = ("media_type", "digest", "size", "urls", "annotations", "platform", "artifact_type",
                 "data", "extra")

    def __init__(self, media_type: str, digest: str | None, size: int = -1, *, urls: tuple[str, ...] = (),
                 annotations: dict | None = None, platform: Platform | None = None,
                 artifact_type: str | None = None, data: str | None = None, extra: dict | None = None):
        self.media_type = media_type
        self.digest = digest
        self.size = size
        self.urls = tuple(urls)
        self.annotations = dict(annotations or {})
        self.platform = platform
        self.artifact_type = artifact_type
        self.data = data
        self.extra = dict(extra or {})

    @classmethod
    def from_dict(cls, d: object, field: str = "descriptor") -> "Descriptor":
        if not isinstance(d, dict):
            raise InvalidDocument(f"{field}: expected an object, got {type(d).__name__}")
        media_type = _str(d, "mediaType", field)
        dig = _digest.validate(d.get("digest"), f"{field}.digest")
        size = d.get("size")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise InvalidDocument(f"{field}.size: expected a non-negative integer, got {size!r}")
        urls = d.get("urls") or []
        if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
            raise InvalidDocument(f"{field}.urls: expected a list of strings")
        ann = d.get("annotations") or {}
        if not isinstance(ann, dict) or not all(isinstance(v, str) for v in ann.values()):
            raise InvalidDocument(f"{field}.annotations: expected an object of strings")
        plat = Platform.from_dict(d["platform"], f"{field}.platform") if d.get("platform") is not None else None
        known = {"mediaType", "digest", "size", "urls", "annotations", "platform", "artifactType", "data"}
        extra = {k: v for k, v in d.items() if k not in known}
        return cls(media_type, dig, size, urls=tuple(urls), annotations=ann, platform=plat,
                   artifact_type=_str(d, "artifactType", field, False), data=_str(d, "data", field, False),
                   extra=extra)

    def to_dict(self, docker: bool = False) -> dict:
        """The JSON object, fields in the order Go tools write them (so digests match theirs).

        ``docker`` selects Docker schema 2's order (mediaType, size, digest).
        """
        if docker:
            d: dict = {"mediaType": self.media_type, "size": self.size, "digest": self.digest}
        else:
            d = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.urls:
            d["urls"] = list(self.urls)
        if self.annotations:
            d["annotations"] = dict(self.annotations)
        if self.data is not None:
            d["data"] = self.data
        if self.platform is not None:
            d["platform"] = self.platform.to_dict()
        if self.artifact_type:
            d["artifactType"] = self.artifact_type
        d.update(self.extra)
        return d

    def replace(self, **changes) -> "Descriptor":
        """A copy with some fields changed (descriptors are treated as immutable)."""
        kw = {s: getattr(self, s) for s in self.__slots__}
        kw.update(changes)
        media_type = kw.pop("media_type")
        dig = kw.pop("digest")
        size = kw.pop("size")
        return Descriptor(media_type, dig, size, **kw)

    def __repr__(self) -> str:
        return f"Descriptor({self.media_type!r}, {self.digest!r}, {self.size})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Descriptor) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash((self.media_type, self.digest, self.size))
