"""Platforms (os/architecture/variant) and choosing one from a multi-arch index.

Variant matching follows containers/image: an ``arm/v7`` host can run ``v7``, ``v6``
and ``v5`` images, best first; ``arm64`` means ``v8`` when no variant is given.
"""

from __future__ import annotations

import os as _os

from ..errors import InvalidDocument, UsageError

_ARCH_ALIASES = {
    "x86_64": "amd64", "x86-64": "amd64", "aarch64": "arm64", "armhf": "arm", "armel": "arm",
    "i386": "386", "i686": "386", "ppc64el": "ppc64le",
}
_ARM_VARIANTS = ["v8", "v7", "v6", "v5"]
_AMD64_VARIANTS = ["v4", "v3", "v2", "v1"]


class Platform:
    """An image platform: ``os``, ``architecture`` and the optional ``variant`` and ``os_version``."""

    __slots__ = ("os", "architecture", "variant", "os_version", "os_features")

    def __init__(self, os: str, architecture: str, variant: str = "", os_version: str = "",
                 os_features: tuple[str, ...] = ()):
        self.os = os
        self.architecture = architecture
        self.variant = variant
        self.os_version = os_version
        self.os_features = tuple(os_features)

    @classmethod
    def parse(cls, text: str) -> "Platform":
        """Parse ``os/arch[/variant]`` as ``--platform`` takes it."""
        parts = text.split("/")
        if len(parts) not in (2, 3) or not all(parts):
            raise UsageError(f"invalid platform {text!r}: want os/arch[/variant], e.g. linux/arm64")
        return cls(parts[0], parts[1], parts[2] if len(parts) == 3 else "").normalized()

    @classmethod
    def from_dict(cls, d: object, field: str = "platform") -> "Platform":
        if not isinstance(d, dict):
            raise InvalidDocument(f"{field}: expected an object")
        for key in ("os", "architecture"):
            if not isinstance(d.get(key), str):
                raise InvalidDocument(f"{field}.{key}: missing or not a string")
        variant = d.get("variant", "")
        if not isinstance(variant, str):
            raise InvalidDocument(f"{field}.variant: not a string")
        os_version = d.get("os.version", "")
        feats = d.get("os.features") or ()
        if not isinstance(feats, (list, tuple)):
            raise InvalidDocument(f"{field}.os.features: not a list")
        return cls(d["os"], d["architecture"], variant, os_version if isinstance(os_version, str) else "",
                   tuple(feats))

    def to_dict(self) -> dict:
        d: dict = {"architecture": self.architecture, "os": self.os}
        if self.os_version:
            d["os.version"] = self.os_version
        if self.os_features:
            d["os.features"] = list(self.os_features)
        if self.variant:
            d["variant"] = self.variant
        return d

    def normalized(self) -> "Platform":
        arch = _ARCH_ALIASES.get(self.architecture, self.architecture)
        variant = self.variant
        if self.architecture in ("armhf",) and not variant:
            variant = "v7"
        if self.architecture == "armel" and not variant:
            variant = "v6"
        if arch == "arm64" and variant == "8":
            variant = "v8"
        if arch == "arm" and variant in ("5", "6", "7", "8"):
            variant = "v" + variant
        return Platform(self.os, arch, variant, self.os_version, self.os_features)

    def compatible_variants(self) -> list[str]:
        """Variants this platform can run, best first; "" (no variant) is always last."""
        p = self.normalized()
        if p.architecture == "arm64":
            return ["v8", ""] if p.variant in ("", "v8") else [p.variant, ""]
        if p.architecture == "arm":
            v = p.variant or "v7"
            if v in _ARM_VARIANTS:
                return _ARM_VARIANTS[_ARM_VARIANTS.index(v):] + [""]
            return [v, ""]
        if p.architecture == "amd64" and p.variant in _AMD64_VARIANTS:
            return _AMD64_VARIANTS[_AMD64_VARIANTS.index(p.variant):] + [""]
        return [p.variant, ""] if p.variant else [""]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Platform) and (self.os, self.architecture, self.variant) == (
            other.os, other.architecture, other.variant)

    def __hash__(self) -> int:
        return hash((self.os, self.architecture, self.variant))

    def __str__(self) -> str:
        return "/".join(x for x in (self.os, self.architecture, self.variant) if x)

    __repr__ = lambda self: f"Platform({str(self)!r})"  # noqa: E731


def host() -> Platform:
    """The platform of this machine."""
    machine = _os.uname().machine
    arch = _ARCH_ALIASES.get(machine, machine)
    variant = ""
    if arch == "arm" and machine.startswith("armv"):
        variant = "v" + machine[4]
    if arch == "arm64":
        variant = "v8"
    return Platform(_os.uname().sysname.lower(), arch, variant)


def wanted(os: str | None = None, arch: str | None = None, variant: str | None = None) -> Platform:
    """The platform to select: the host, with ``--override-*`` values applied."""
    h = host()
    p = Platform(os or h.os, arch or h.architecture,
                 variant if variant is not None else (h.variant if not arch or arch == h.architecture else ""))
    return p.normalized()


def rank(want: Platform, have: Platform) -> int | None:
    """How well ``have`` serves ``want``: 0 is best, None means it cannot run."""
    have = have.normalized()
    want = want.normalized()
    if have.os != want.os or have.architecture != want.architecture:
        return None
    variants = want.compatible_variants()
    hv = have.variant
    if hv == "" and want.architecture == "arm64":
        hv = "v8"
    if hv in variants:
        return variants.index(hv)
    return None
