"""The image configuration (OCI image config / Docker container image JSON)."""

from __future__ import annotations

from ..errors import InvalidDocument
from . import digest as _digest
from .manifest import load_json
from .platform import Platform

#: an image config larger than this is refused before it is read (it is held in memory)
MAX_CONFIG_SIZE = 32 << 20


class ImageConfig:
    """An image config: raw bytes plus accessors for the fields tools show.

    Only the fields pallet reads are validated; everything else is kept as is in ``doc``.
    """

    def __init__(self, raw: bytes, doc: dict):
        self.raw = raw
        self.doc = doc

    @classmethod
    def from_bytes(cls, raw: bytes) -> "ImageConfig":
        doc = load_json(raw, "config")
        for key in ("architecture", "os", "variant", "created", "author", "docker_version"):
            if key in doc and doc[key] is not None and not isinstance(doc[key], str):
                raise InvalidDocument(f"config.{key}: expected a string")
        rootfs = doc.get("rootfs")
        if rootfs is not None:
            if not isinstance(rootfs, dict):
                raise InvalidDocument("config.rootfs: expected an object")
            ids = rootfs.get("diff_ids") or []
            if not isinstance(ids, list):
                raise InvalidDocument("config.rootfs.diff_ids: expected a list")
            for i, d in enumerate(ids):
                _digest.validate(d, f"config.rootfs.diff_ids[{i}]")
        cfg = doc.get("config")
        if cfg is not None and not isinstance(cfg, dict):
            raise InvalidDocument("config.config: expected an object")
        if cfg:
            env = cfg.get("Env")
            if env is not None and (not isinstance(env, list) or not all(isinstance(e, str) for e in env)):
                raise InvalidDocument("config.config.Env: expected a list of strings")
            labels = cfg.get("Labels")
            if labels is not None and not isinstance(labels, dict):
                raise InvalidDocument("config.config.Labels: expected an object")
        hist = doc.get("history")
        if hist is not None and not isinstance(hist, list):
            raise InvalidDocument("config.history: expected a list")
        return cls(raw, doc)

    @property
    def digest(self) -> str:
        return _digest.of_bytes(self.raw)

    @property
    def architecture(self) -> str:
        return self.doc.get("architecture") or ""

    @property
    def os(self) -> str:
        return self.doc.get("os") or ""

    @property
    def variant(self) -> str:
        return self.doc.get("variant") or ""

    @property
    def platform(self) -> Platform:
        return Platform(self.os, self.architecture, self.variant)

    @property
    def created(self) -> str | None:
        return self.doc.get("created")

    @property
    def docker_version(self) -> str:
        return self.doc.get("docker_version") or ""

    @property
    def container_config(self) -> dict:
        return self.doc.get("config") or {}

    @property
    def env(self) -> list[str]:
        return list(self.container_config.get("Env") or [])

    @property
    def labels(self) -> dict:
        return dict(self.container_config.get("Labels") or {})

    @property
    def diff_ids(self) -> list[str]:
        return list((self.doc.get("rootfs") or {}).get("diff_ids") or [])

    @property
    def history(self) -> list[dict]:
        return list(self.doc.get("history") or [])


def exposed_port(word: str) -> str:
    """An ``EXPOSE``/``--port`` word (``80``, ``53/udp``, ``8000-8010/tcp``, ``127.0.0.1:80``) as
    its ``ExposedPorts`` key (a range stays one key, as buildah writes it); ``ValueError``
    naming the word when it is not a port."""
    port, _, proto = word.partition("/")
    proto = (proto or "tcp").lower()
    if proto not in ("tcp", "udp", "sctp"):
        raise ValueError(f"invalid proto: {proto}")
    if ":" in port:
        port = port.rsplit(":", 1)[1]
    lo, sep, hi = port.partition("-")
    try:
        a = int(lo)
        b = int(hi) if sep else a
    except ValueError:
        raise ValueError(f"invalid port {word!r}") from None
    if not (0 < a <= 65535 and a <= b <= 65535):
        raise ValueError(f"invalid port {word!r}")
    return f"{port}/{proto}"
